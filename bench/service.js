// (g) the REST service: a real `capsa serve` (bin/capsa.js, a child process) on 127.0.0.1 with a
// fresh data directory; a tenant made with `capsa tenant create`, hello.wasm uploaded, then CLIENTS
// keep-alive clients POST /v1/runs {module, manifest: "args: [world]\n", stdin: "", wait: 5} for
// REQUESTS requests, each answer checked (201, exited, "hello world\n"). Latency is per request as
// the client sees it, including the run's persistence (queued → running → exited and its events in
// SQLite). Next to it, the same runs through host.run in this process (no HTTP, no store), to show
// what the service layer costs.
//
// The load generator is node:http with a keep-alive Agent (one socket per client), no dependency:
// on a 2-core machine the client shares the CPU with the server, and node:http costs less per
// request than fetch (undici's WHATWG streams and Headers), so less of the machine goes to the load
// generator. autocannon would measure the same thing but adds a dependency for a 60-line loop.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { createHost } from '../dist/index.js';
import { check, closedLoop, fmt, request, ROOT } from './lib.js';

const HELLO = `${ROOT}guests/build/hello.wasm`;
const BIN = `${ROOT}bin/capsa.js`;
const CLIENTS = 32;
const WARMUP = 1000;
const REQUESTS = 5000;
const SOLO = 500;
const WORKERS = 2;
const TARGET_RPS = 1000;
const TARGET_P99 = 20;

const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];

/** user+system CPU ms of a process, from /proc (Linux); undefined elsewhere. */
function cpuMsOf(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1000) / 100; // utime, stime in clock ticks (USER_HZ = 100)
  } catch {
    return undefined;
  }
}

function rssMbOf(pid) {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** Starts `capsa serve --port 0` and resolves with its URL once it logs "listening". */
function startServer(data) {
  const proc = spawn(process.execPath, [BIN, 'serve', '--host', '127.0.0.1', '--port', '0', '--data', data, '--workers', String(WORKERS)], {
    cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  let lines = 0;
  proc.stderr.setEncoding('utf8').on('data', (d) => { err += d; });
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  const url = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`capsa serve did not start within 20 s: ${err}`)), 20_000);
    let buf = '';
    let found = false;
    proc.stdout.setEncoding('utf8').on('data', (d) => {
      // The log keeps flowing during the run (a line per request, two per run); it is drained and counted.
      if (found) { for (let i = d.indexOf('\n'); i >= 0; i = d.indexOf('\n', i + 1)) lines++; return; }
      buf += d;
      for (const line of buf.split('\n')) {
        if (!line.includes('"listening"')) continue;
        found = true;
        clearTimeout(timer);
        resolve(JSON.parse(line).url);
      }
    });
    exited.then(({ code, signal }) => { clearTimeout(timer); reject(new Error(`capsa serve exited (${code ?? signal}): ${err}`)); });
  });
  return { proc, url, exited, stderr: () => err, logLines: () => lines };
}

export async function run() {
  const data = fs.mkdtempSync(path.join(os.tmpdir(), 'capsa-bench-service-'));
  const server = startServer(data);
  const agent = new http.Agent({ keepAlive: true, maxSockets: CLIENTS });
  try {
    const url = await server.url;
    check(new URL(url).hostname === '127.0.0.1', `the server listens on ${url}, not loopback`);
    const t = spawnSync(process.execPath, [BIN, 'tenant', 'create', 'bench', '--data', data], { cwd: ROOT, encoding: 'utf8', timeout: 20_000 });
    check(t.status === 0 && /^\S+\n$/.test(t.stdout), `capsa tenant create: ${t.stderr}`);
    const key = t.stdout.trim();

    const up = await request(agent, url, 'POST', '/v1/modules', { authorization: `Bearer ${key}`, 'content-type': 'application/wasm' }, fs.readFileSync(HELLO));
    check(up.status === 201, `upload: ${up.status} ${up.text}`);
    const moduleId = JSON.parse(up.text).id;
    const body = Buffer.from(JSON.stringify({ module: moduleId, manifest: 'args: [world]\n', stdin: '', wait: 5 }));
    const headers = { authorization: `Bearer ${key}`, 'content-type': 'application/json' };

    const once = async () => {
      const r = await request(agent, url, 'POST', '/v1/runs', headers, body);
      check(r.status === 201, `POST /v1/runs: ${r.status} ${r.text.slice(0, 300)}`);
      const v = JSON.parse(r.text);
      check(v.status === 'exited' && v.exitCode === 0 && v.stdout === 'hello world\n', `run: ${r.text.slice(0, 300)}`);
    };
    const load = async (count, lat) => {
      let next = 0;
      await closedLoop(CLIENTS, () => next++ < count, async () => {
        const t0 = performance.now();
        await once();
        lat?.push(performance.now() - t0);
      });
    };

    await load(WARMUP);
    // One client, one request at a time: the service's own latency, nothing queued behind others.
    const solo = [];
    for (let i = 0; i < SOLO; i++) {
      const t = performance.now();
      await once();
      solo.push(performance.now() - t);
    }
    solo.sort((a, b) => a - b);
    globalThis.gc?.();
    const lat = [];
    const cpu0 = cpuMsOf(server.proc.pid);
    const client0 = process.cpuUsage();
    const lines0 = server.logLines();
    const t0 = performance.now();
    await load(REQUESTS, lat);
    const seconds = (performance.now() - t0) / 1000;
    const cpu1 = cpuMsOf(server.proc.pid);
    const client = process.cpuUsage(client0);
    const logLines = server.logLines() - lines0;
    const rss = rssMbOf(server.proc.pid);
    const dbBytes = fs.readdirSync(data).filter((f) => f.startsWith('capsa.db')).reduce((n, f) => n + fs.statSync(path.join(data, f)).size, 0);
    const rps = REQUESTS / seconds;
    lat.sort((a, b) => a - b);
    const p50 = pct(lat, 50), p90 = pct(lat, 90), p99 = pct(lat, 99);

    agent.destroy();
    server.proc.kill('SIGTERM');
    const end = await Promise.race([server.exited, new Promise((r) => setTimeout(() => r({ code: 'no exit within 20 s' }), 20_000))]);
    check(end.code === 0, `capsa serve after SIGTERM: ${JSON.stringify(end)} ${server.stderr()}`);

    // The same runs without the service: host.run in this process, same workers, same concurrency.
    const host = await createHost({ workers: WORKERS, maxQueue: 100_000 });
    const id = host.add(fs.readFileSync(HELLO));
    const direct = async (count) => {
      let next = 0;
      await closedLoop(CLIENTS, () => next++ < count, async () => {
        const r = await host.run({ module: id, args: ['world'], stdin: '' });
        check(r.status === 'exited' && Buffer.from(r.stdout).toString() === 'hello world\n', `host.run: ${r.status}`);
      });
    };
    await direct(WARMUP);
    const d0 = performance.now();
    await direct(REQUESTS);
    const directRps = REQUESTS / ((performance.now() - d0) / 1000);
    await host.close();

    const SERVICE = `capsa serve POST /v1/runs wait (${CLIENTS} clients)`;
    const DIRECT = `host.run in-process (${CLIENTS} in flight)`;
    const results = new Map([
      [SERVICE, { median: p50, min: lat[0], max: lat.at(-1), n: lat.length, rps }],
      [DIRECT, { median: 1000 * CLIENTS / directRps, min: 1000 * CLIENTS / directRps, max: 1000 * CLIENTS / directRps, n: REQUESTS, rps: directRps }],
    ]);
    const met = rps >= TARGET_RPS && p99 <= TARGET_P99;
    const serverCpu = cpu0 !== undefined && cpu1 !== undefined ? (cpu1 - cpu0) / REQUESTS : undefined;
    const clientCpu = (client.user + client.system) / 1000 / REQUESTS;
    return {
      title: '(g) service: hello.wasm through POST /v1/runs',
      unit: 'runs/s',
      results,
      throughput: (name) => results.get(name).rps,
      comparisons: [
        { capsa: SERVICE, peer: DIRECT, ratio: rps / directRps, goal: `≥ ${fmt(TARGET_RPS)} runs/s, p99 ≤ ${TARGET_P99} ms`, met },
      ],
      notes: [
        `A real \`capsa serve --workers ${WORKERS}\` (bin/capsa.js) on 127.0.0.1 with a fresh data directory; ${CLIENTS} keep-alive`,
        `clients (node:http, in the bench process, on the same ${os.cpus().length} cores) POST hello-world runs with \`wait: 5\` and check`,
        `each answer; ${fmt(WARMUP)} warm-up requests, then ${fmt(REQUESTS)} timed. Every run is persisted (created, started,`,
        'finished, four events) before its answer. The peer is the engine alone: host.run in this process, no HTTP, no store.',
        `With ${CLIENTS} clients each waiting for its answer, mean latency is ${CLIENTS} / throughput (Little's law), so p99 ≤ ${TARGET_P99} ms`,
        `needs about ${fmt(CLIENTS * 1000 / TARGET_P99, 0)} runs/s or more; the server's main thread (HTTP, validation, SQLite, scheduling) is what`,
        'saturates first: the workers and the engine have room (see the peer).',
        '',
        '| Service figure | value | target |',
        '|---|--:|---|',
        `| throughput, ${CLIENTS} clients | ${fmt(rps, 0)} runs/s | ≥ ${fmt(TARGET_RPS)} ${rps >= TARGET_RPS ? '✅' : '❌'} |`,
        `| latency p50 / p90 | ${fmt(p50, 2)} / ${fmt(p90, 2)} ms | |`,
        `| latency p99 | ${fmt(p99, 2)} ms | ≤ ${TARGET_P99} ms ${p99 <= TARGET_P99 ? '✅' : '❌'} |`,
        `| latency max | ${fmt(lat.at(-1), 1)} ms | |`,
        `| latency p50 / p99, one client, one request at a time | ${fmt(pct(solo, 50), 2)} / ${fmt(pct(solo, 99), 2)} ms | |`,
        `| the engine alone (host.run, ${CLIENTS} in flight) | ${fmt(directRps, 0)} runs/s | |`,
        serverCpu !== undefined ? `| server CPU per run (main thread + workers) | ${fmt(serverCpu, 3)} ms | |` : '| server CPU per run | n/a (no /proc) | |',
        `| load generator CPU per request | ${fmt(clientCpu, 3)} ms | |`,
        `| log lines per run (info level) | ${fmt(logLines / REQUESTS, 1)} | |`,
        `| server RSS after the run | ${rss !== undefined ? `${fmt(rss, 0)} MB` : 'n/a'} | |`,
        `| SQLite database (+ WAL) after ${fmt(WARMUP + REQUESTS)} runs | ${fmt(dbBytes / 1e6, 1)} MB | |`,
      ],
    };
  } finally {
    agent.destroy();
    if (server.proc.exitCode === null && server.proc.signalCode === null) server.proc.kill('SIGKILL');
    fs.rmSync(data, { recursive: true, force: true });
  }
}

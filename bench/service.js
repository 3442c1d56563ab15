// (g) the REST service: two real `capsa serve` (bin/capsa.js, child processes) on 127.0.0.1, guests
// on threads in one and in executor processes in the other, both running at once and measured in
// alternating turns, each with a fresh data directory; a tenant made with `capsa tenant create`, hello.wasm uploaded, then CLIENTS
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
/** Turns of the interleaved measurement: each server serves REQUESTS / PHASES requests a turn. */
const PHASES = 10;
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

/** Starts `capsa serve --port 0` (on `data`, or with `--store` in `extra` when data is null) and resolves with its URL once it logs "listening". */
function startServer(data, extra, env = {}) {
  const proc = spawn(process.execPath, [BIN, 'serve', '--host', '127.0.0.1', '--port', '0', ...(data === null ? [] : ['--data', data]), ...extra], {
    cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env },
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

/** user+system CPU ms of a process and its descendants (the executors), from /proc. */
function treeCpuMs(pid) {
  let kids = [];
  try { kids = fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number); } catch { /* gone */ }
  const own = cpuMsOf(pid);
  return own === undefined ? undefined : kids.reduce((n, k) => n + (treeCpuMs(k) ?? 0), own);
}

function treeRssMb(pid) {
  let kids = [];
  try { kids = fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number); } catch { /* gone */ }
  const own = rssMbOf(pid);
  return own === undefined ? undefined : kids.reduce((n, k) => n + (treeRssMb(k) ?? 0), own);
}

/** A real server with `extra` flags, a tenant and hello.wasm uploaded: `once()` makes one checked run. */
async function service(extra) {
  const data = fs.mkdtempSync(path.join(os.tmpdir(), 'capsa-bench-service-'));
  const server = startServer(data, extra);
  const agent = new http.Agent({ keepAlive: true, maxSockets: CLIENTS });
  const close = async () => {
    agent.destroy();
    if (server.proc.exitCode === null && server.proc.signalCode === null) {
      server.proc.kill('SIGTERM');
      const end = await Promise.race([server.exited, new Promise((r) => setTimeout(() => r({ code: 'no exit within 20 s' }), 20_000))]);
      if (server.proc.exitCode === null && server.proc.signalCode === null) server.proc.kill('SIGKILL');
      check(end.code === 0, `capsa serve after SIGTERM: ${JSON.stringify(end)} ${server.stderr()}`);
    }
    fs.rmSync(data, { recursive: true, force: true });
  };
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
    const dbBytes = () => fs.readdirSync(data).filter((f) => f.startsWith('capsa.db')).reduce((n, f) => n + fs.statSync(path.join(data, f)).size, 0);
    return { once, close, server, dbBytes };
  } catch (e) {
    await close().catch(() => {});
    throw e;
  }
}

/** `count` runs by CLIENTS closed-loop clients; latencies pushed to `lat`. */
async function load(svc, count, lat) {
  let next = 0;
  await closedLoop(CLIENTS, () => next++ < count, async () => {
    const t0 = performance.now();
    await svc.once();
    lat?.push(performance.now() - t0);
  });
}

/**
 * Both servers at once, measured in turns (thread, process, thread, …; PHASES each), so that the
 * shared machine's load, which drifts, falls on both alike: throughput, latency, CPU, memory.
 */
async function measureInterleaved(kinds) {
  const svcs = [];
  try {
    for (const k of kinds) svcs.push(await service(k.flags));
    const acc = svcs.map(() => ({ lat: [], seconds: 0, cpuMs: 0, clientMs: 0, logLines: 0, solo: [] }));
    for (const svc of svcs) await load(svc, WARMUP);
    const chunk = Math.ceil(REQUESTS / PHASES);
    for (let phase = 0; phase < PHASES; phase++) {
      for (let i = 0; i < svcs.length; i++) {
        const j = (i + phase) % svcs.length; // rotate who goes first
        const svc = svcs[j], a = acc[j];
        globalThis.gc?.();
        const cpu0 = treeCpuMs(svc.server.proc.pid), client0 = process.cpuUsage(), lines0 = svc.server.logLines();
        const t0 = performance.now();
        await load(svc, chunk, a.lat);
        a.seconds += (performance.now() - t0) / 1000;
        const cpu1 = treeCpuMs(svc.server.proc.pid);
        if (cpu0 !== undefined && cpu1 !== undefined) a.cpuMs += cpu1 - cpu0; else a.cpuMs = NaN;
        const c = process.cpuUsage(client0);
        a.clientMs += (c.user + c.system) / 1000;
        a.logLines += svc.server.logLines() - lines0;
        // One client, one request at a time: the service's own latency, nothing queued behind others.
        for (let k = 0; k < SOLO / PHASES; k++) {
          const t = performance.now();
          await svc.once();
          a.solo.push(performance.now() - t);
        }
      }
    }
    return acc.map((a, i) => {
      const n = a.lat.length;
      a.lat.sort((x, y) => x - y);
      a.solo.sort((x, y) => x - y);
      return {
        rps: n / a.seconds, p50: pct(a.lat, 50), p90: pct(a.lat, 90), p99: pct(a.lat, 99), lat: a.lat, solo: a.solo,
        serverCpu: Number.isNaN(a.cpuMs) ? undefined : a.cpuMs / n, clientCpu: a.clientMs / n, logLines: a.logLines,
        rss: treeRssMb(svcs[i].server.proc.pid), dbBytes: svcs[i].dbBytes(), n,
      };
    });
  } finally {
    for (const svc of svcs) await svc.close();
  }
}

/** host.run in this process, CLIENTS in flight: runs/s; and one at a time: p50 of a warm hello. */
async function direct(isolation) {
  const host = await createHost({ isolation, workers: WORKERS, executors: { count: WORKERS }, maxQueue: 100_000 });
  const id = host.add(fs.readFileSync(HELLO));
  const load = async (count) => {
    let next = 0;
    await closedLoop(CLIENTS, () => next++ < count, async () => {
      const r = await host.run({ module: id, args: ['world'], stdin: '' });
      check(r.status === 'exited' && Buffer.from(r.stdout).toString() === 'hello world\n', `host.run: ${r.status} ${r.message ?? ''}`);
    });
  };
  await load(WARMUP);
  const d0 = performance.now();
  await load(REQUESTS);
  const rps = REQUESTS / ((performance.now() - d0) / 1000);
  const solo = [];
  for (let i = 0; i < SOLO; i++) {
    const t = performance.now();
    await host.run({ module: id, args: ['world'], stdin: '' });
    solo.push(performance.now() - t);
  }
  solo.sort((a, b) => a - b);
  const layers = host.executors()[0]?.layers.join(', ') ?? 'threads in this process';
  await host.close();
  return { rps, p50: pct(solo, 50), layers };
}

export async function run(mode) {
  if (mode === 'nodes') return runNodes();
  const kinds = [
    { name: 'thread', flags: ['--isolation', 'none', '--workers', String(WORKERS)] },
    { name: 'process', flags: ['--executors', String(WORKERS), '--workers', String(WORKERS)] },
  ];
  const m = {};
  process.stderr.write('[services, interleaved: ');
  const measured = await measureInterleaved(kinds);
  kinds.forEach((k, i) => { m[k.name] = { service: measured[i] }; });
  process.stderr.write(`${kinds.map((k) => `${k.name} ${fmt(m[k.name].service.rps, 0)}`).join(', ')} runs/s] `);
  // The engine alone, in turns too (thread, process, thread, process).
  for (const round of [0, 1]) {
    for (const k of kinds) {
      const d = await direct(k.name);
      const prev = m[k.name].direct;
      m[k.name].direct = prev ? { rps: (prev.rps + d.rps) / 2, p50: (prev.p50 + d.p50) / 2, layers: d.layers } : d;
      if (round === 1) process.stderr.write(`[${k.name}: engine ${fmt(m[k.name].direct.rps, 0)} runs/s, warm p50 ${fmt(m[k.name].direct.p50, 2)} ms] `);
    }
  }
  const SERVICE = (k) => `capsa serve, ${k} executors: POST /v1/runs wait (${CLIENTS} clients)`;
  const DIRECT = (k) => `host.run in-process, isolation '${k}' (${CLIENTS} in flight)`;
  const results = new Map();
  for (const k of kinds) {
    const s = m[k.name].service, d = m[k.name].direct;
    results.set(SERVICE(k.name), { median: s.p50, min: s.lat[0], max: s.lat.at(-1), n: s.n, rps: s.rps });
    results.set(DIRECT(k.name), { median: 1000 * CLIENTS / d.rps, min: 1000 * CLIENTS / d.rps, max: 1000 * CLIENTS / d.rps, n: REQUESTS, rps: d.rps });
  }
  const met = (s) => s.rps >= TARGET_RPS && s.p99 <= TARGET_P99;
  const row = (label, f, target = () => '') => `| ${label} | ${kinds.map((k) => f(m[k.name])).join(' | ')} | ${target()} |`;
  const mark = (ok) => (ok ? '✅' : '❌');
  return {
    title: '(g) service: hello.wasm through POST /v1/runs, thread and process executors',
    unit: 'runs/s',
    results,
    throughput: (name) => results.get(name).rps,
    comparisons: kinds.map((k) => ({ capsa: SERVICE(k.name), peer: DIRECT(k.name), ratio: m[k.name].service.rps / m[k.name].direct.rps, goal: `≥ ${fmt(TARGET_RPS)} runs/s, p99 ≤ ${TARGET_P99} ms`, met: met(m[k.name].service) })),
    notes: [
      `Two real \`capsa serve\` (bin/capsa.js) on 127.0.0.1 at once, each with a fresh data directory, measured in ${PHASES} alternating turns`,
      `(so that the shared machine's drifting load falls on both alike): guests on`,
      `${WORKERS} worker threads inside the API process (\`--isolation none\`), then in ${WORKERS} executor processes of one worker each`,
      `(the default: bubblewrap and Node's permission model where available; layers: ${m.process.direct.layers}).`,
      `${CLIENTS} keep-alive clients (node:http, in the bench process, on the same ${os.cpus().length} cores) POST hello-world runs with`,
      `\`wait: 5\` and check each answer; ${fmt(WARMUP)} warm-up requests, then ${fmt(REQUESTS)} timed. Every run is persisted before its`,
      'answer. The peers are the engine alone (host.run in this process, no HTTP, no store) with the same isolation.',
      '',
      `| Service figure | threads | processes | target |`,
      '|---|--:|--:|---|',
      row(`throughput, ${CLIENTS} clients`, (x) => `${fmt(x.service.rps, 0)} runs/s ${mark(x.service.rps >= TARGET_RPS)}`, () => `≥ ${fmt(TARGET_RPS)}`),
      row('latency p50 / p90', (x) => `${fmt(x.service.p50, 2)} / ${fmt(x.service.p90, 2)} ms`),
      row('latency p99', (x) => `${fmt(x.service.p99, 2)} ms ${mark(x.service.p99 <= TARGET_P99)}`, () => `≤ ${TARGET_P99} ms`),
      row('latency max', (x) => `${fmt(x.service.lat.at(-1), 1)} ms`),
      row('latency p50 / p99, one client, one request at a time', (x) => `${fmt(pct(x.service.solo, 50), 2)} / ${fmt(pct(x.service.solo, 99), 2)} ms`),
      row(`the engine alone (host.run, ${CLIENTS} in flight)`, (x) => `${fmt(x.direct.rps, 0)} runs/s`),
      row('the engine alone, warm hello p50, one at a time', (x) => `${fmt(x.direct.p50, 2)} ms`, () => '≤ 1 ms (processes)'),
      row('server CPU per run (API process + executors)', (x) => (x.service.serverCpu !== undefined ? `${fmt(x.service.serverCpu, 3)} ms` : 'n/a')),
      row('load generator CPU per request', (x) => `${fmt(x.service.clientCpu, 3)} ms`),
      row('log lines per run (info level)', (x) => fmt(x.service.logLines / x.service.n, 1)),
      row('server RSS after the run (with executors)', (x) => (x.service.rss !== undefined ? `${fmt(x.service.rss, 0)} MB` : 'n/a')),
      row(`SQLite database (+ WAL) after ${fmt(WARMUP + REQUESTS + SOLO)} runs`, (x) => `${fmt(x.service.dbBytes / 1e6, 1)} MB`),
    ],
  };
}

// ---- nodes mode (`npm run bench -- service:nodes`): 1, 2 and 3 `capsa serve` on one PostgreSQL database ----

const NODE_COUNTS = [1, 2, 3];
const NODE_WARMUP = 200;
const NODE_REQUESTS = 1000;
/** Clients of the nodes mode: 32 on 2 cores queue runs for longer than a request's 10 s timeout. */
const NODE_CLIENTS = 8;
const ADMIN = 'bench-admin-token-0123456789abcdef';

/** A PostgreSQL server: CAPSA_DATABASE_URL's, or a throw-away cluster (scripts/pg-cluster.sh) stopped by `stop()`. */
function pgServer() {
  const given = process.env.CAPSA_DATABASE_URL;
  if (given) return { url: given, own: false, stop() {} };
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'capsa-bench-pg-'));
  const r = spawnSync('bash', [`${ROOT}scripts/pg-cluster.sh`, 'start', dir], { encoding: 'utf8', timeout: 120_000 });
  check(r.status === 0, `cannot start a PostgreSQL cluster: ${r.stderr}`);
  return {
    url: r.stdout.trim(), own: true,
    stop() {
      spawnSync('bash', [`${ROOT}scripts/pg-cluster.sh`, 'stop', dir], { timeout: 60_000 });
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** psql-free SQL on the server: one statement through the pg driver. */
async function sql(url, text, values = []) {
  const { default: pg } = await import('pg');
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try { return (await c.query(text, values)).rows; } finally { await c.end(); }
}

/** Commits the database has counted (pg_stat_database; backends report within a second). */
async function commitsOf(server, db) {
  await new Promise((r) => setTimeout(r, 1500));
  const rows = await sql(server, 'SELECT xact_commit FROM pg_stat_database WHERE datname = $1', [db]);
  return Number(rows[0]?.xact_commit ?? NaN);
}

/** `n` nodes on a fresh database: runs/s and latency of CLIENTS clients spread over them, commits per run. */
async function measureNodes(server, n) {
  const db = `capsa_bench_${n}_${process.pid}`;
  await sql(server.url, `DROP DATABASE IF EXISTS ${db}`);
  await sql(server.url, `CREATE DATABASE ${db}`);
  const u = new URL(server.url);
  u.pathname = `/${db}`;
  const dbUrl = u.toString();
  const nodes = [];
  const agent = new http.Agent({ keepAlive: true, maxSockets: NODE_CLIENTS });
  try {
    // One at a time: the first migrates the database.
    for (let i = 0; i < n; i++) {
      const srv = startServer(null, ['--store', dbUrl, '--node-id', `bench-${i + 1}`, '--isolation', 'none', '--workers', String(WORKERS)], { CAPSA_ADMIN_TOKEN: ADMIN, CAPSA_LOG_LEVEL: 'warn' });
      nodes.push(srv);
      srv.base = await srv.url;
    }
    const t = await request(agent, nodes[0].base, 'POST', '/v1/admin/tenants', { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }, Buffer.from(JSON.stringify({ name: 'bench' })));
    check(t.status === 201, `tenant: ${t.status} ${t.text}`);
    const key = JSON.parse(t.text).key.key;
    const up = await request(agent, nodes[0].base, 'POST', '/v1/modules', { authorization: `Bearer ${key}`, 'content-type': 'application/wasm' }, fs.readFileSync(HELLO));
    check(up.status === 201, `upload: ${up.status} ${up.text}`);
    const body = Buffer.from(JSON.stringify({ module: JSON.parse(up.text).id, manifest: 'args: [world]\n', stdin: '', wait: 2 }));
    const headers = { authorization: `Bearer ${key}`, 'content-type': 'application/json' };
    let turn = 0;
    // Each request to the next node in turn, as a round-robin load balancer would send it.
    const once = async () => {
      const base = nodes[turn++ % n].base;
      const r = await request(agent, base, 'POST', '/v1/runs', headers, body);
      check(r.status === 201, `POST /v1/runs: ${r.status} ${r.text.slice(0, 300)}`);
      let v = JSON.parse(r.text);
      // On a loaded machine a run may outlast the wait (the first ones wait for the module's compilation): poll it then.
      while (v.status === 'queued' || v.status === 'running') {
        await new Promise((res) => setTimeout(res, 20));
        v = JSON.parse((await request(agent, base, 'GET', `/v1/runs/${v.id}`, headers)).text);
      }
      check(v.status === 'exited' && v.stdout === 'hello world\n', `run: ${JSON.stringify(v).slice(0, 300)}`);
      return v.node;
    };
    const drive = async (count, lat, byNode) => {
      let next = 0;
      await closedLoop(NODE_CLIENTS, () => next++ < count, async () => {
        const t0 = performance.now();
        const node = await once();
        lat?.push(performance.now() - t0);
        if (byNode) byNode.set(node, (byNode.get(node) ?? 0) + 1);
      });
    };
    await drive(NODE_WARMUP);
    const load0 = os.loadavg()[0];
    const c0 = await commitsOf(server.url, db);
    const lat = [];
    const byNode = new Map();
    const t0 = performance.now();
    await drive(NODE_REQUESTS, lat, byNode);
    const seconds = (performance.now() - t0) / 1000;
    const c1 = await commitsOf(server.url, db);
    lat.sort((a, b) => a - b);
    return {
      n, rps: NODE_REQUESTS / seconds, p50: pct(lat, 50), p99: pct(lat, 99), lat,
      commitsPerRun: (c1 - c0) / NODE_REQUESTS, load: [load0, os.loadavg()[0]], byNode: [...byNode].sort(),
    };
  } finally {
    agent.destroy();
    for (const srv of nodes) srv.proc.kill('SIGTERM');
    for (const srv of nodes) {
      await Promise.race([srv.exited, new Promise((r) => setTimeout(r, 20_000))]);
      if (srv.proc.exitCode === null && srv.proc.signalCode === null) srv.proc.kill('SIGKILL');
    }
    await sql(server.url, `DROP DATABASE IF EXISTS ${db} WITH (FORCE)`).catch(() => {});
  }
}

async function runNodes() {
  const server = pgServer();
  const m = [];
  try {
    for (const n of NODE_COUNTS) {
      const r = await measureNodes(server, n);
      process.stderr.write(`[${n} node${n > 1 ? 's' : ''}: ${fmt(r.rps, 0)} runs/s, p99 ${fmt(r.p99, 1)} ms, ${fmt(r.commitsPerRun, 1)} commits/run, load ${r.load.map((x) => x.toFixed(1)).join('→')}] `);
      m.push(r);
    }
  } finally {
    server.stop();
  }
  const LABEL = (n) => `${n} × capsa serve on one PostgreSQL database: POST /v1/runs wait (${NODE_CLIENTS} clients)`;
  const results = new Map(m.map((r) => [LABEL(r.n), { median: r.p50, min: r.lat[0], max: r.lat.at(-1), n: NODE_REQUESTS, rps: r.rps }]));
  return {
    title: '(g′) service nodes: hello.wasm through POST /v1/runs on 1, 2 and 3 nodes sharing one PostgreSQL database',
    unit: 'runs/s',
    results,
    throughput: (name) => results.get(name).rps,
    comparisons: [],
    notes: [
      `1, 2 and 3 real \`capsa serve --store\` processes (threads, ${WORKERS} workers each, log level warn) on one fresh PostgreSQL`,
      `database (${server.own ? 'a throw-away cluster from scripts/pg-cluster.sh: fsync and synchronous_commit off' : 'CAPSA_DATABASE_URL'}) on this ${os.cpus().length}-core machine, which also runs the database and the`,
      `${NODE_CLIENTS} keep-alive clients; each request goes to the next node in turn. ${fmt(NODE_WARMUP)} warm-up runs, then ${fmt(NODE_REQUESTS)} timed.`,
      'Commits per run: the database\'s pg_stat_database.xact_commit over the timed part / runs (every node\'s',
      'statements, polls and lease renewals included).',
      '',
      '| nodes | runs/s | p50 | p99 | commits / run | runs per node | load average (1 min) |',
      '|--:|--:|--:|--:|--:|---|---|',
      ...m.map((r) => `| ${r.n} | ${fmt(r.rps, 0)} | ${fmt(r.p50, 1)} ms | ${fmt(r.p99, 1)} ms | ${fmt(r.commitsPerRun, 1)} | ${r.byNode.map(([k, v]) => `${k} ${v}`).join(', ')} | ${r.load.map((x) => x.toFixed(1)).join(' → ')} |`),
    ],
  };
}

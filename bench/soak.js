// npm run soak [-- --seconds 60 --clients 16 --kill-every 2000 --isolation both --json]: the REST
// service under sustained load while what runs its guests is killed, then an audit of everything
// it accepted. --isolation thread soaks guests on worker threads, process on executor processes
// (`capsa serve --isolation best-effort`), both (the default) one after the other, each for SECONDS.
//
// The server is `capsa serve`'s wiring (SQLite store in a fresh directory, a host of WORKERS worker
// threads or of WORKERS executor processes of one worker each, the scheduler, the Hono app on
// node:http) built from the library in this process, on 127.0.0.1: worker threads cannot be killed
// from outside a process, and the pools already hand out their busy workers and executors
// (host.pool.busyWorkers(), busyPids()), so no test hook or admin route is needed in shipped code.
// A killed executor gets SIGKILL, as an OOM killer or an operator's kill -9 would give it. The load is bench/service.js's generator (bench/lib.js): CLIENTS keep-alive clients in
// closed loops of POST /v1/runs with `wait`, as fast as the service answers, for SECONDS; nine runs
// in ten are hello.wasm, one in ten a guest that sleeps 20 ms (so that a kill finds a guest running).
// Every KILL_EVERY ms (±50 %) a random busy worker is terminated, or a busy executor killed.
//
// Checks, each a failure (exit status 1) when it does not hold:
// - every answer is 201 (the run), or the documented 429/503; nothing else, no transport error;
// - every accepted run ends exactly once: the store holds it in a terminal state with one `exit`
//   event and one terminal `status` event, and the state its 201 answer gave (if it had ended) is
//   the one stored; nothing is left queued or running;
// - an exited run printed what it should; runs ended host_error (blame host) are at most the guests
//   the kills could reach (one per killed worker or executor);
// - the process's RSS, after the load stopped, the scheduler went idle and the heap was collected,
//   settles within RSS_SLACK of its baseline (measured the same way after a warm-up).
//
// It runs the TypeScript sources (node --import tsx), so `npm test` runs a short one without a
// build: test/api/soak.test.ts. The RSS is the whole process's, load generator included (its
// memory is a fixed number of sockets and counters).
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { createAdaptorServer } from '@hono/node-server';
import { createApp } from '../src/api/app.ts';
import { createLogger } from '../src/api/log.ts';
import { isTerminal } from '../src/api/runs/record.ts';
import { createScheduler } from '../src/api/scheduler.ts';
import { createSqliteStore } from '../src/api/store/sqlite.ts';
import { createHost } from '../src/host/host.ts';
import { command } from '../test/helpers/wat.ts';
import { closedLoop, fmt, request, ROOT } from './lib.js';

const WORKERS = 2;
/** The RSS after the soak may exceed the baseline by this much (MiB) plus RSS_SLACK_SHARE of it. */
const RSS_SLACK_MB = 64;
const RSS_SLACK_SHARE = 0.25;

const { values: opt } = parseArgs({
  options: {
    seconds: { type: 'string', default: '60' },
    warmup: { type: 'string', default: '5' },
    clients: { type: 'string', default: '16' },
    'kill-every': { type: 'string', default: '2000' },
    isolation: { type: 'string', default: 'both' },
    json: { type: 'boolean', default: false },
  },
});
const SECONDS = Number(opt.seconds);
const WARMUP = Number(opt.warmup);
const CLIENTS = Number(opt.clients);
const KILL_EVERY = Number(opt['kill-every']);
for (const [name, v] of Object.entries({ seconds: SECONDS, warmup: WARMUP, clients: CLIENTS, 'kill-every': KILL_EVERY })) {
  if (!(v > 0)) fail(`--${name}: expected a positive number`);
}
const MODES = opt.isolation === 'both' ? ['thread', 'process'] : [opt.isolation];
if (!MODES.every((m) => m === 'thread' || m === 'process')) fail(`--isolation ${opt.isolation}: expected thread, process or both`);
if (typeof globalThis.gc !== 'function') fail('run with --expose-gc (npm run soak does): the RSS is measured after a full collection');

const HELLO = fs.readFileSync(`${ROOT}guests/build/hello.wasm`);
const POLL = '(import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))';
// One poll_oneoff on a relative monotonic clock of 20 ms.
const NAP = command(`
  (i64.store (i32.const 0) (i64.const 1))
  (i32.store8 (i32.const 8) (i32.const 0))
  (i32.store (i32.const 16) (i32.const 1))
  (i64.store (i32.const 24) (i64.const 20000000))
  (drop (call $poll (i32.const 0) (i32.const 100) (i32.const 1) (i32.const 200)))`, POLL);

const rssMb = () => process.memoryUsage().rss / 2 ** 20;
/** Resolves on the next turn of the event loop (polling a state without sleeping a fixed time). */
const turn = () => new Promise((r) => setImmediate(r));
const pause = (ms) => new Promise((r) => setTimeout(r, ms));

/** Soaks a fresh service whose guests run on worker threads or in executor processes; returns its figures. */
async function soak(mode) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'capsa-soak-'));
  const store = createSqliteStore({ dir });
  const host = await createHost(mode === 'thread' ? { workers: WORKERS } : {
    // `capsa serve --workers 2 --isolation best-effort`: one executor per worker.
    workers: 1, isolation: 'process', executors: { count: WORKERS, isolation: 'best-effort' },
  });
  const logger = createLogger({ level: 'silent' });
  const scheduler = createScheduler({ store, host, logger });
  const app = createApp({ store, host, scheduler, logger });
  const server = createAdaptorServer({ fetch: app.fetch, hostname: '127.0.0.1' });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  await scheduler.start();
  const url = `http://127.0.0.1:${server.address().port}`;
  const agent = new http.Agent({ keepAlive: true, maxSockets: CLIENTS });

  const problems = [];
  const problem = (m) => { problems.push(m); };
  let figures;

  try {
    const tenants = [];
    for (const name of ['soak-a', 'soak-b']) {
      const t = await store.createTenant(name);
      tenants.push({ id: t.id, key: (await store.createKey(t.id)).key });
    }
    const modules = [];
    for (const t of tenants) {
      for (const [bytes, kind] of [[HELLO, 'hello'], [NAP, 'nap']]) {
        const r = await request(agent, url, 'POST', '/v1/modules', { authorization: `Bearer ${t.key}`, 'content-type': 'application/wasm' }, Buffer.from(bytes));
        if (r.status !== 201) fail(`upload: ${r.status} ${r.text}`);
        modules.push({ tenant: t, kind, body: Buffer.from(JSON.stringify({ module: JSON.parse(r.text).id, manifest: 'args: [soak]\n', wait: 5 })) });
      }
    }
    const hello = modules.filter((m) => m.kind === 'hello');
    const nap = modules.filter((m) => m.kind === 'nap');

    const answers = new Map(); // HTTP status (or 'transport') → count
    /** Accepted run id → { tenant, kind, state its answer gave }. */
    const accepted = new Map();
    const once = async () => {
      const pool = Math.random() < 0.1 ? nap : hello;
      const m = pool[Math.floor(Math.random() * pool.length)];
      let r;
      try {
        r = await request(agent, url, 'POST', '/v1/runs', { authorization: `Bearer ${m.tenant.key}`, 'content-type': 'application/json' }, m.body);
      } catch (e) {
        answers.set('transport', (answers.get('transport') ?? 0) + 1);
        problem(`POST /v1/runs: ${e.message}`);
        return;
      }
      answers.set(r.status, (answers.get(r.status) ?? 0) + 1);
      if (r.status === 429 || r.status === 503) {
        // Documented refusals: the client backs off as told (bounded: the loop ends at the deadline).
        await pause(Math.min(1000, 1000 * Number(r.headers['retry-after'] ?? 1)));
        return;
      }
      if (r.status !== 201) return problem(`POST /v1/runs: ${r.status} ${r.text.slice(0, 200)}`);
      const v = JSON.parse(r.text);
      accepted.set(v.id, { tenant: m.tenant, kind: m.kind, answered: v.status });
      if (v.status === 'exited' && (v.exitCode !== 0 || v.stdout !== (m.kind === 'hello' ? 'hello soak\n' : ''))) {
        problem(`${v.id} (${m.kind}) exited with ${v.exitCode} and stdout ${JSON.stringify(v.stdout)}`);
      }
    };

    /** Waits (by polling states, bounded) until the scheduler and the pool have nothing to do. */
    const idle = async () => {
      const until = Date.now() + 60_000;
      while (scheduler.stats().queued || scheduler.stats().running || host.stats().busy || host.stats().queued) {
        if (Date.now() > until) fail(`the service is not idle 60 s after the load stopped: ${JSON.stringify({ ...scheduler.stats(), ...host.stats() })}`);
        await pause(20);
      }
    };
    /** The RSS once it settled: collected, sampled until it stops falling (bounded). */
    const settledRss = async (target = 0) => {
      let best = Infinity;
      let flat = 0;
      const until = Date.now() + 30_000;
      while (flat < 5 && Date.now() < until) {
        globalThis.gc();
        const now = rssMb();
        if (now <= target) return now;
        if (now < best - 1) { best = now; flat = 0; } else flat++;
        await pause(200);
      }
      return Math.min(best, rssMb());
    };

    // Warm-up: the JIT, SQLite's page cache, the pool's first workers; then the baseline.
    const w0 = Date.now();
    await closedLoop(CLIENTS, () => Date.now() - w0 < WARMUP * 1000, once);
    await idle();
    const rssBefore = await settledRss();
    const warmRuns = accepted.size;

    // The soak: load and kills until the deadline.
    let kills = 0;
    let missed = 0;
    const t0 = Date.now();
    const deadline = t0 + SECONDS * 1000;
    // What a kill can take: a worker thread (its guest), or an executor process (its one worker's guest).
    const busyOnes = () => (mode === 'thread' ? host.pool.busyWorkers() : host.pool.busyPids());
    const kill = async (victim) => {
      if (mode === 'thread') return victim.terminate();
      try {
        process.kill(victim, 'SIGKILL');
      } catch (e) {
        if (e.code !== 'ESRCH') throw e; // it died on its own meanwhile: not a kill of ours
        kills--;
      }
    };
    const killer = (async () => {
      while (Date.now() < deadline) {
        await pause(KILL_EVERY * (0.5 + Math.random()));
        // Wait for a guest to be running (a state), then kill what runs one, at random.
        let busy = busyOnes();
        while (!busy.length && Date.now() < deadline) { await turn(); busy = busyOnes(); }
        if (!busy.length) break;
        kills++;
        await kill(busy[Math.floor(Math.random() * busy.length)]);
      }
    })();
    await closedLoop(CLIENTS, () => Date.now() < deadline, once);
    const seconds = (Date.now() - t0) / 1000;
    await killer;
    const soakRuns = accepted.size - warmRuns;
    await idle();

    // Every accepted run ended exactly once.
    const states = new Map();
    for (const [id, a] of accepted) {
      const run = await store.getRun(a.tenant.id, id);
      if (!run) { problem(`${id}: accepted but not in the store`); continue; }
      states.set(run.state, (states.get(run.state) ?? 0) + 1);
      if (!isTerminal(run.state) || !run.result) problem(`${id}: ${run.state}, ${run.result ? 'with' : 'without'} a result`);
      if (isTerminal(a.answered) && a.answered !== run.state) problem(`${id}: answered ${a.answered}, stored ${run.state}`);
      const events = await store.events(id, 0);
      const exits = events.filter((e) => e.type === 'exit').length;
      const ends = events.filter((e) => e.type === 'status' && isTerminal(JSON.parse(e.data).state)).length;
      if (exits !== 1 || ends !== 1 || events.at(-1)?.type !== 'exit') problem(`${id}: ${exits} exit and ${ends} terminal status events (${events.map((e) => e.type).join(' ')})`);
      if (run.state === 'host_error' && JSON.parse(run.result).blame !== 'host') problem(`${id}: host_error not blamed on the host`);
    }
    for (const s of ['queued', 'running']) {
      const left = (await store.runsInState(s)).length;
      if (left) problem(`${left} runs left ${s}`);
    }
    const hostErrors = states.get('host_error') ?? 0;
    if (hostErrors > kills) problem(`${hostErrors} runs ended host_error but only ${kills} ${mode === 'thread' ? 'workers' : 'executors'} were killed`);
    if (kills === 0) problem(`no ${mode === 'thread' ? 'worker' : 'executor'} was killed`);
    const errors = [...answers].filter(([s]) => ![201, 429, 503].includes(s)).reduce((n, [, c]) => n + c, 0);

    // The RSS returns near the baseline.
    const bound = rssBefore * (1 + RSS_SLACK_SHARE) + RSS_SLACK_MB;
    const rssAfter = await settledRss(bound);
    if (rssAfter > bound) problem(`RSS ${fmt(rssAfter, 0)} MiB after the soak, above ${fmt(bound, 0)} MiB (baseline ${fmt(rssBefore, 0)} MiB)`);

    figures = {
      isolation: mode, seconds: Number(seconds.toFixed(1)), clients: CLIENTS, workers: WORKERS, runsPerSecond: Number((soakRuns / seconds).toFixed(0)),
      runs: soakRuns, runsChecked: accepted.size, kills, hostErrors, states: Object.fromEntries(states),
      answers: Object.fromEntries(answers), errors, rssBeforeMb: Number(rssBefore.toFixed(1)), rssAfterMb: Number(rssAfter.toFixed(1)),
      rssBoundMb: Number(bound.toFixed(1)), spawned: host.stats().spawned,
      ...(mode === 'process' ? { executorsStarted: host.pool.spawnedExecutors } : {}),
      problems: problems.slice(0, 20), problemCount: problems.length,
    };
    if (opt.json) {
      process.stdout.write(JSON.stringify(figures) + '\n');
    } else {
      const what = mode === 'thread' ? 'worker' : 'executor';
      const lines = [
        `soak (${mode === 'thread' ? `${WORKERS} worker threads` : `${WORKERS} executor processes`}): ${fmt(seconds, 1)} s, ${CLIENTS} clients, a busy ${what} killed every ~${KILL_EVERY} ms`,
        `  runs            ${fmt(soakRuns)} (${fmt(soakRuns / seconds, 0)} runs/s sustained), ${fmt(accepted.size)} checked with the warm-up's`,
        `  kills           ${fmt(kills)} (runs ended host_error: ${fmt(hostErrors)}; ${mode === 'thread' ? `workers started: ${fmt(host.stats().spawned)}` : `executors started: ${fmt(host.pool.spawnedExecutors)}`})`,
        `  end states      ${[...states].map(([s, n]) => `${s} ${fmt(n)}`).join(', ')}`,
        `  answers         ${[...answers].map(([s, n]) => `${s}: ${fmt(n)}`).join(', ')}; errors (not 201/429/503): ${fmt(errors)}`,
        `  RSS             ${fmt(rssBefore, 0)} MiB before, ${fmt(rssAfter, 0)} MiB after (bound ${fmt(bound, 0)} MiB)`,
        problems.length ? `FAILED (${problems.length} problems):\n  ${problems.slice(0, 20).join('\n  ')}` : '  every accepted run ended exactly once; OK',
      ];
      process.stdout.write(lines.join('\n') + '\n');
    }
  } finally {
    agent.destroy();
    await new Promise((r) => server.close(r));
    await scheduler.stop(5000);
    await host.close();
    await store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return figures;
}

let failed = false;
for (const mode of MODES) {
  const figures = await soak(mode);
  if (figures.problemCount) failed = true;
}
process.exitCode = failed ? 1 : 0;

function fail(message) {
  console.error(`soak: ${message}`);
  process.exit(1);
}

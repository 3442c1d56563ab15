/**
 * `capsa serve` and `capsa tenant` end to end: a real server in a child process on a loopback port
 * (--port 0, the port read from its "listening" log line), real HTTP, the real store in a temp data
 * directory. Covers the session (tenant create → upload → run with wait → SSE events),
 * restart safety after kill -9, and the graceful stop on SIGTERM.
 *
 * The CLI runs as bin/capsa.js runs it (test/helpers/serve.ts). Every request goes to 127.0.0.1 with a
 * timeout; every child is killed in afterAll.
 */
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { wat } from '../helpers/wat.js';
import { api, CLI, exitOf, kill9, killServers, REPO, startServe, type Server } from '../helpers/serve.js';
import { memoryCgroupRoot } from '../../src/host/executor/sandbox.js';

/** The memory cgroup layer, where this machine lets capsa make one (docs/security.md). */
const CGROUP = typeof memoryCgroupRoot() === 'string' ? [] : ['cgroup-memory'];

const HELLO = path.join(REPO, 'guests', 'build', 'hello.wasm');

/** A guest that spins on the monotonic clock for `ms`, then prints "done <ms>\n". */
function spinner(ms: number): Uint8Array {
  const text = `done ${ms}\n`;
  return wat(`(module
    (import "wasi_snapshot_preview1" "clock_time_get" (func $now (param i32 i64 i32) (result i32)))
    (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
    (memory (export "memory") 1)
    (data (i32.const 64) ${JSON.stringify(text)})
    (func (export "_start") (local $t0 i64)
      (drop (call $now (i32.const 1) (i64.const 1000) (i32.const 0)))
      (local.set $t0 (i64.load (i32.const 0)))
      (block $out (loop $spin
        (drop (call $now (i32.const 1) (i64.const 1000) (i32.const 0)))
        (br_if $out (i64.ge_u (i64.sub (i64.load (i32.const 0)) (local.get $t0)) (i64.const ${ms * 1_000_000})))
        (br $spin)))
      (i32.store (i32.const 16) (i32.const 64))
      (i32.store (i32.const 20) (i32.const ${text.length}))
      (drop (call $write (i32.const 1) (i32.const 16) (i32.const 1) (i32.const 32)))))`);
}

let tmp: string;

beforeAll(() => {
  tmp = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'capsa-serve-')));
});

afterAll(() => {
  killServers();
  fs.rmSync(tmp, { recursive: true, force: true });
});

function capsa(args: string[], env: Record<string, string> = {}): SpawnSyncReturns<string> {
  const r = spawnSync(process.execPath, [...CLI, ...args], { cwd: REPO, encoding: 'utf8', timeout: 25_000, env: { ...process.env, ...env } });
  if (r.error) throw r.error;
  return r;
}

/** Starts `capsa serve --port 0` on `data` and waits for its "listening" line. */
function startServer(data: string, extra: string[] = [], env: Record<string, string> = {}): Promise<Server> {
  return startServe(['--data', data, ...extra], env);
}

function newTenant(data: string, name: string): string {
  const r = capsa(['tenant', 'create', name, '--data', data]);
  expect(r.stderr).toMatch(/tenant/);
  expect(r.status).toBe(0);
  // The key alone on stdout, so that KEY=$(capsa tenant create NAME) works.
  expect(r.stdout).toMatch(/^\S+\n$/);
  return r.stdout.trim();
}

async function upload(s: Server, key: string, bytes: Uint8Array): Promise<string> {
  const r = await api(s, 'POST', '/v1/modules', key, bytes);
  expect([200, 201]).toContain(r.status);
  expect(r.body['id']).toMatch(/^sha256:[0-9a-f]{64}$/);
  return r.body['id'] as string;
}

const TERMINAL = new Set(['exited', 'trapped', 'timeout', 'memory_limit', 'output_limit', 'cancelled', 'invalid_module', 'host_error', 'interrupted']);

/** Polls a run until `until(run)` holds, at most `ms`. */
async function poll(s: Server, key: string, id: string, until: (run: Record<string, unknown>) => boolean, ms = 20_000): Promise<Record<string, unknown>> {
  const t0 = Date.now();
  for (;;) {
    const r = await api(s, 'GET', `/v1/runs/${id}`, key);
    expect(r.status).toBe(200);
    if (until(r.body)) return r.body;
    if (Date.now() - t0 > ms) throw new Error(`run ${id} is still ${JSON.stringify(r.body['status'])} after ${ms} ms`);
    await new Promise((res) => setTimeout(res, 50));
  }
}

/** Reads an SSE stream until an event of type `last` (or the stream's end); returns the events. */
async function sse(s: Server, p: string, key: string, last = 'exit', timeoutMs = 10_000, onEvent?: () => void): Promise<{ event: string; data: string; id?: string }[]> {
  const res = await fetch(new URL(p, s.url), { headers: { authorization: `Bearer ${key}`, accept: 'text/event-stream', connection: 'close' }, signal: AbortSignal.timeout(timeoutMs) });
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
  const events: { event: string; data: string; id?: string }[] = [];
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return events;
      buf += value;
      let sep: number;
      while ((sep = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, sep);
        buf = buf.slice(sep + 2);
        const ev: { event: string; data: string; id?: string } = { event: 'message', data: '' };
        const data: string[] = [];
        for (const line of block.split('\n')) {
          if (line.startsWith(':')) continue;
          const colon = line.indexOf(':');
          const field = colon < 0 ? line : line.slice(0, colon);
          const v = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
          if (field === 'event') ev.event = v;
          else if (field === 'data') data.push(v);
          else if (field === 'id') ev.id = v;
        }
        if (!data.length && ev.event === 'message') continue;
        ev.data = data.join('\n');
        events.push(ev);
        onEvent?.();
        if (ev.event === last) return events;
      }
    }
  } finally {
    await reader.cancel().catch(() => undefined);
  }
}

// Each test spawns capsa (tsx, a worker pool) several times: seconds each on a loaded machine.
describe('capsa serve and capsa tenant: the command line', { timeout: 180_000 }, () => {
  it('capsa --help lists serve and tenant', () => {
    const r = capsa(['--help']);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^\s+serve\s/m);
    expect(r.stdout).toMatch(/^\s+tenant create NAME/m);
  });

  it('capsa serve --help names every option and the shutdown rule', () => {
    const r = capsa(['serve', '--help']);
    expect(r.status).toBe(0);
    for (const o of ['--host', '--port', '--data', '--policy', '--workers', '--grace', '--webhook-timeout', 'CAPSA_ADMIN_TOKEN', 'SIGTERM', 'interrupted']) expect(r.stdout).toContain(o);
  });

  it('capsa tenant --help names every subcommand', () => {
    const r = capsa(['tenant', '--help']);
    expect(r.status).toBe(0);
    for (const o of ['create', 'list', 'add-key', 'revoke-key', 'set-policy', '--data']) expect(r.stdout).toContain(o);
  });

  it('usage errors exit 2', () => {
    expect(capsa(['serve', '--port', 'eighty']).status).toBe(2);
    expect(capsa(['serve', '--workers', '0']).status).toBe(2);
    expect(capsa(['serve', '--bogus']).status).toBe(2);
    for (const t of ['soon', '10ms']) {
      const r = capsa(['serve', '--webhook-timeout', t]);
      expect(r.status).toBe(2);
      expect(r.stderr).toContain('--webhook-timeout');
    }
    expect(capsa(['tenant', 'frobnicate']).status).toBe(2);
    expect(capsa(['tenant', 'create']).status).toBe(2);
    expect(capsa(['tenant', 'revoke-key', 'only-one']).status).toBe(2);
  });

  it('tenant create, list, add-key, keys, revoke-key on a data directory', () => {
    const data = path.join(tmp, 'tenants');
    const key1 = newTenant(data, 'acme');
    expect(capsa(['tenant', 'create', 'acme', '--data', data]).status).toBe(1); // names are unique

    const add = capsa(['tenant', 'add-key', 'acme', '--data', data]);
    expect(add.status).toBe(0);
    expect(add.stdout).toMatch(/^\S+\n$/);
    expect(add.stdout.trim()).not.toBe(key1);

    const list = capsa(['tenant', 'list', '--data', data, '--json']);
    expect(list.status).toBe(0);
    const rows = list.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ name: 'acme', keys: 2, revokedKeys: 0 });
    const table = capsa(['tenant', 'list', '--data', data]);
    expect(table.stdout).toMatch(/^ID\s+NAME\s+CREATED\s+KEYS/);
    expect(table.stdout).toContain('acme');

    const keys = capsa(['tenant', 'keys', String(rows[0]!['id']), '--data', data]);
    expect(keys.status).toBe(0);
    const keyIds = keys.stdout.trim().split('\n').slice(1).map((l) => l.split(/\s+/)[0]!);
    expect(keyIds).toHaveLength(2);
    const revoke = capsa(['tenant', 'revoke-key', 'acme', keyIds[0]!, '--data', data]);
    expect(revoke.stderr).toMatch(/revoked/);
    expect(revoke.status).toBe(0);
    expect(capsa(['tenant', 'revoke-key', 'acme', 'key_nope', '--data', data]).status).toBe(1);
    expect(capsa(['tenant', 'add-key', 'nobody', '--data', data]).status).toBe(1);
    const after = JSON.parse(capsa(['tenant', 'list', '--data', data, '--json']).stdout.trim()) as Record<string, unknown>;
    expect(after).toMatchObject({ keys: 1, revokedKeys: 1 });

    expect(capsa(['tenant', 'list', '--data', path.join(tmp, 'no-such-dir')]).status).toBe(1);
  });

  it('tenant set-policy checks the file first: mistakes as FILE:LINE:COL, exit 1, nothing changed', () => {
    const data = path.join(tmp, 'policies');
    newTenant(data, 'p');
    const bad = path.join(tmp, 'bad-policy.yaml');
    fs.writeFileSync(bad, 'limits:\n  wall: 5s\n  memroy: 64MiB\n');
    const r = capsa(['tenant', 'set-policy', 'p', bad, '--data', data]);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`${bad}:3:3: limits.memroy: unknown limit "memroy"`);
    expect(JSON.parse(capsa(['tenant', 'list', '--data', data, '--json']).stdout)).toMatchObject({ policy: 'default' });

    const good = path.join(tmp, 'good-policy.yaml');
    fs.writeFileSync(good, 'limits:\n  wall: 5s\n  memory: 64MiB\ndirs:\n  - source: memory\n    rights: [rpath, wpath]\n');
    const ok = capsa(['tenant', 'set-policy', 'p', good, '--data', data]);
    expect(ok.stderr).toMatch(/policy/);
    expect(ok.status).toBe(0);
    expect(JSON.parse(capsa(['tenant', 'list', '--data', data, '--json']).stdout)).toMatchObject({ policy: 'own' });
    expect(capsa(['tenant', 'set-policy', 'p', '--clear', '--data', data]).status).toBe(0);
    expect(JSON.parse(capsa(['tenant', 'list', '--data', data, '--json']).stdout)).toMatchObject({ policy: 'default' });
    expect(capsa(['tenant', 'set-policy', 'p', path.join(tmp, 'missing.yaml'), '--data', data]).status).toBe(1);

    // Valid, but the service gives tenants in-memory directories only: said, and saved.
    const host = path.join(tmp, 'host-policy.yaml');
    fs.writeFileSync(host, `dirs:\n  - source: ${tmp}\n    rights: [rpath]\n`);
    const warned = capsa(['tenant', 'set-policy', 'p', host, '--data', data]);
    expect(warned.status).toBe(0);
    expect(warned.stderr).toMatch(/1 host directory rule\(s\) will be ignored/);
  });

  it('tenant set-quota reads NAME=VALUE assignments, merges them, gives one back with NAME=default, all with --clear', () => {
    const data = path.join(tmp, 'quotas');
    newTenant(data, 'q');
    const quotas = () => (JSON.parse(capsa(['tenant', 'list', '--data', data, '--json']).stdout) as { quotas: unknown }).quotas;
    const ok = capsa(['tenant', 'set-quota', 'q', 'concurrent-runs=2', 'module-storage=64MiB', 'cpu-per-day=10m', 'retain=7d', '--data', data]);
    expect(ok.stderr).toMatch(/quotas of tenant/);
    expect(ok.status).toBe(0);
    expect(quotas()).toEqual({ concurrentRuns: 2, moduleStorageBytes: 64 << 20, cpuSecondsPerDay: 600, retainSeconds: 7 * 86_400 });
    expect(capsa(['tenant', 'set-quota', 'q', 'queued-runs=10', 'retain=default', '--data', data]).status).toBe(0);
    expect(quotas()).toEqual({ concurrentRuns: 2, moduleStorageBytes: 64 << 20, cpuSecondsPerDay: 600, queuedRuns: 10 });
    // A mistake is a usage error naming it; nothing changes.
    for (const bad of ['concurent-runs=2', 'concurrent-runs=0', 'concurrent-runs=two', 'retain=soon', 'module-storage']) {
      const r = capsa(['tenant', 'set-quota', 'q', bad, '--data', data]);
      expect(r.status).toBe(2);
      expect(r.stderr).toContain(bad.split('=')[0]);
    }
    expect(capsa(['tenant', 'set-quota', 'q', '--data', data]).status).toBe(2);
    expect(quotas()).toEqual({ concurrentRuns: 2, moduleStorageBytes: 64 << 20, cpuSecondsPerDay: 600, queuedRuns: 10 });
    expect(capsa(['tenant', 'set-quota', 'nobody', 'queued-runs=1', '--data', data]).status).toBe(1);
    expect(capsa(['tenant', 'set-quota', 'q', '--clear', '--data', data]).status).toBe(0);
    expect(quotas()).toEqual({});
  });

  it('serve refuses a bad --quota or --retain as a usage error', () => {
    for (const [flag, value] of [['--quota', 'cpu=1'], ['--retain', 'a week']]) {
      const r = capsa(['serve', '--port', '0', '--data', path.join(tmp, 'never'), flag!, value!]);
      expect(r.status).toBe(2);
      expect(r.stderr).toMatch(/--quota\/--retain/);
    }
  });
});

describe('capsa serve: a real server on 127.0.0.1', () => {
  it('refuses what it cannot use: a bad policy (FILE:LINE:COL), a taken data directory, a taken port', async () => {
    const policy = path.join(tmp, 'serve-policy.yaml');
    fs.writeFileSync(policy, 'limits:\n  wal: 5s\n');
    const bad = capsa(['serve', '--port', '0', '--data', path.join(tmp, 'refused'), '--policy', policy]);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toContain(`${policy}:2:3: limits.wal: unknown limit "wal"`);

    const data = path.join(tmp, 'locked');
    // At CAPSA_LOG_LEVEL=warn the info lines go, but "listening" (with the URL) is still written.
    const s = await startServer(data, ['--workers', '1'], { CAPSA_LOG_LEVEL: 'warn' });
    try {
      expect(s.logs.map((l) => l['msg'])).toEqual(['listening']);
      const second = capsa(['serve', '--port', '0', '--data', data]);
      expect(second.status).toBe(1);
      expect(second.stderr).toMatch(/another capsa serve \(pid \d+\) is using the data directory/);
      const port = new URL(s.url).port;
      const taken = capsa(['serve', '--port', port, '--data', path.join(tmp, 'other')]);
      expect(taken.status).toBe(1);
      expect(taken.stderr).toMatch(/cannot listen on 127\.0\.0\.1:\d+: .*EADDRINUSE/);
    } finally {
      s.proc.kill('SIGTERM');
      expect((await exitOf(s)).code).toBe(0);
    }
  }, 180_000);

  it('runs guests in executor processes: /healthz and /metrics list them and their layers; strict isolation refuses without bubblewrap', async () => {
    const data = path.join(tmp, 'executors');
    const key = newTenant(data, 'exec');
    const s = await startServer(data, ['--executors', '2']);
    try {
      const health = await (await fetch(`${s.url}/healthz`)).json() as { status: string; node: string; isolation: string; executors: { pid: number; runtime: string; layers: string[]; workers: number }[] };
      expect(health).toMatchObject({ status: 'ok', isolation: 'process' });
      expect(health.executors).toHaveLength(2);
      for (const e of health.executors) {
        expect(e).toMatchObject({ runtime: 'node', workers: 1, layers: ['node-permission', 'bubblewrap', ...CGROUP, 'capsicum-rights'] });
        expect(e.pid).not.toBe(s.proc.pid);
      }
      const metrics = await (await fetch(`${s.url}/metrics`)).text();
      expect(metrics).toContain(`capsa_executors{node="${String(health.node)}",runtime="node",layers="${['node-permission', 'bubblewrap', ...CGROUP, 'capsicum-rights'].join(',')}"} 2`);
      const up = await api(s, 'POST', '/v1/modules', key, new Uint8Array(fs.readFileSync(HELLO)));
      const run = await api(s, 'POST', '/v1/runs', key, { module: up.body['id'], manifest: 'args: [exec]\n', wait: 20 }, 30_000);
      expect(run.body).toMatchObject({ status: 'exited', stdout: 'hello exec\n' });
    } finally {
      s.proc.kill('SIGTERM');
      expect((await exitOf(s)).code).toBe(0);
    }
    // Without bwrap on the PATH: best-effort starts with a warning and says so; strict refuses.
    const noBwrap = { PATH: '/nonexistent' };
    const strict = capsa(['serve', '--port', '0', '--data', path.join(tmp, 'strict'), '--isolation', 'strict'], noBwrap);
    expect(strict.status).toBe(1);
    expect(strict.stderr).toMatch(/cannot start the executors: Cannot start executors in strict isolation: executors run without bubblewrap: bwrap is not installed/);
    const best = await startServer(path.join(tmp, 'best-effort'), ['--executors', '1'], noBwrap);
    try {
      expect(best.logs).toContainEqual(expect.objectContaining({ level: 40, msg: expect.stringMatching(/executors run without bubblewrap/) }));
      const health = await (await fetch(`${best.url}/healthz`)).json() as { executors: { layers: string[] }[] };
      expect(health.executors[0]!.layers).toEqual(['node-permission', ...CGROUP, 'capsicum-rights']);
    } finally {
      best.proc.kill('SIGTERM');
      expect((await exitOf(best)).code).toBe(0);
    }
  }, 90_000);

  it("the issue's session: tenant create → upload hello.wasm → run with wait → its events over SSE", async () => {
    const data = path.join(tmp, 'session');
    const key = newTenant(data, 'acme');
    const s = await startServer(data);
    try {
      expect(s.logs.find((l) => l['msg'] === 'listening')).toMatchObject({ url: expect.stringMatching(/^http:\/\/127\.0\.0\.1:\d+$/) });
      expect(s.logs[0]!['msg']).toBe('listening');

      const unauth = await api(s, 'GET', '/v1/runs', 'capsa_not-a-key');
      expect(unauth.status).toBe(401);

      const up = await api(s, 'POST', '/v1/modules', key, new Uint8Array(fs.readFileSync(HELLO)));
      expect(up.status).toBe(201);
      expect(up.body['id']).toMatch(/^sha256:[0-9a-f]{64}$/);
      const again = await api(s, 'POST', '/v1/modules', key, new Uint8Array(fs.readFileSync(HELLO)));
      expect(again.status).toBe(200);
      expect(again.body['id']).toBe(up.body['id']);

      const run = await api(s, 'POST', '/v1/runs', key, { module: up.body['id'], manifest: 'args: [world]\n', stdin: '', wait: 5 });
      expect(run.status).toBe(201);
      expect(run.body).toMatchObject({ status: 'exited', exitCode: 0, stdout: 'hello world\n', attempts: 1 });
      const id = run.body['id'] as string;
      expect(id).toMatch(/^run_/);
      expect(run.headers.get('location')).toBe(`/v1/runs/${id}`);

      const events = await sse(s, `/v1/runs/${id}/events`, key);
      expect(events.map((e) => e.event)).toEqual(['status', 'stdout', 'status', 'exit']);
      expect(JSON.parse(events[1]!.data)).toEqual({ data: 'hello world\n', encoding: 'utf8', attempt: 1 });
      expect(JSON.parse(events.at(-1)!.data)).toMatchObject({ state: 'exited', exitCode: 0 });
      // Resuming after the stdout event replays only what follows.
      const resumed = await sse(s, `/v1/runs/${id}/events?lastEventId=${events[1]!.id!}`, key);
      expect(resumed.map((e) => e.event)).toEqual(['status', 'exit']);

      // A key made while the server runs works at once; a revoked one is refused at once.
      const add = capsa(['tenant', 'add-key', 'acme', '--data', data]);
      expect(add.status).toBe(0);
      const key2 = add.stdout.trim();
      expect((await api(s, 'GET', `/v1/runs/${id}`, key2)).body).toMatchObject({ status: 'exited' });
      const keyId = /key (key_\S+)/.exec(add.stderr)![1]!;
      expect(capsa(['tenant', 'revoke-key', 'acme', keyId, '--data', data]).status).toBe(0);
      expect((await api(s, 'GET', `/v1/runs/${id}`, key2)).status).toBe(401);

      // A policy set while the server runs applies to the next request.
      const policy = path.join(tmp, 'session-policy.yaml');
      fs.writeFileSync(policy, 'limits:\n  wall: 1s\n');
      expect(capsa(['tenant', 'set-policy', 'acme', policy, '--data', data]).status).toBe(0);
      const over = await api(s, 'POST', '/v1/runs', key, { module: up.body['id'], manifest: 'args: [world]\nlimits: { wall: 5s }\n' });
      expect(over.status).toBe(422);
      expect(JSON.stringify(over.body)).toMatch(/wall/);
      expect((await api(s, 'POST', '/v1/runs', key, { module: up.body['id'], manifest: 'args: [again]\n', wait: 5 })).body)
        .toMatchObject({ status: 'exited', stdout: 'hello again\n' });
    } finally {
      s.proc.kill('SIGTERM');
      expect((await exitOf(s)).code).toBe(0);
    }
  }, 180_000);

  it('kill -9 loses nothing: queued runs run after the restart; a running one is retried once, then ends interrupted (blame host)', async () => {
    const data = path.join(tmp, 'crash');
    const key = newTenant(data, 'crash');
    const a = await startServer(data, ['--workers', '1']);
    const mod = await upload(a, key, spinner(1500));
    // The first one runs longer than any stall of a loaded machine: it is still running at each kill.
    const long = await upload(a, key, spinner(8000));
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await api(a, 'POST', '/v1/runs', key, { module: i === 0 ? long : mod });
      expect(r.status).toBe(201);
      ids.push(r.body['id'] as string);
    }
    const [first, ...rest] = ids as [string, ...string[]];
    await poll(a, key, first, (r) => r['status'] === 'running');
    for (const id of rest) expect((await api(a, 'GET', `/v1/runs/${id}`, key)).body['status']).toBe('queued');
    await kill9(a);

    // Restart: the running run goes back to the queue for its one retry, ahead of the others.
    const b = await startServer(data, ['--workers', '1']);
    const retried = await poll(b, key, first, (r) => r['status'] === 'running' && r['attempts'] === 2);
    expect(retried['attempts']).toBe(2);
    await kill9(b);

    // Its retry was cut off too: it ends interrupted, blamed on the host. The others still run.
    const c = await startServer(data, ['--workers', '1']);
    try {
      const gaveUp = await poll(c, key, first, (r) => TERMINAL.has(r['status'] as string));
      expect(gaveUp).toMatchObject({ status: 'interrupted', blame: 'host', attempts: 2 });
      for (const id of rest) {
        const r = await poll(c, key, id, (x) => TERMINAL.has(x['status'] as string));
        expect(r).toMatchObject({ status: 'exited', exitCode: 0, stdout: 'done 1500\n', attempts: 1 });
      }
      const events = await sse(c, `/v1/runs/${first}/events`, key);
      expect(events.at(-1)).toMatchObject({ event: 'exit' });
      expect(JSON.parse(events.at(-1)!.data)).toMatchObject({ state: 'interrupted', blame: 'host' });
      // Every attempt is on the record: two starts, each requeue/interruption announced.
      expect(events.filter((e) => e.event === 'status' && JSON.parse(e.data).state === 'running')).toHaveLength(2);
      // Each event says its attempt; the retry opened with an attempt event of its own.
      expect(events.map((e) => JSON.parse(e.data).attempt)).toEqual([1, 1, 2, 2, 2, 2]);
      expect(events.map((e) => e.event)).toEqual(['status', 'status', 'attempt', 'status', 'status', 'exit']);
    } finally {
      c.proc.kill('SIGTERM');
      expect((await exitOf(c)).code).toBe(0);
    }
  }, 180_000);

  it('SIGTERM: a running run finishes within the grace time, queued runs stay queued, exit 0', async () => {
    const data = path.join(tmp, 'graceful');
    const key = newTenant(data, 'g');
    const a = await startServer(data, ['--workers', '1', '--grace', '10s']);
    const mod = await upload(a, key, spinner(1200));
    const one = (await api(a, 'POST', '/v1/runs', key, { module: mod })).body['id'] as string;
    const two = (await api(a, 'POST', '/v1/runs', key, { module: mod })).body['id'] as string;
    await poll(a, key, one, (r) => r['status'] === 'running');
    a.proc.kill('SIGTERM');
    expect(await exitOf(a)).toEqual({ code: 0, signal: null });
    // The process's last output may arrive after its exit event.
    await vi.waitFor(() => expect(a.logs.map((l) => l['msg'])).toContain('stopped'), { timeout: 10_000 });
    expect(fs.existsSync(path.join(data, 'serve.pid'))).toBe(false);

    const b = await startServer(data, ['--workers', '1']);
    try {
      // Finished before the stop, on its first attempt.
      expect((await api(b, 'GET', `/v1/runs/${one}`, key)).body).toMatchObject({ status: 'exited', stdout: 'done 1200\n', attempts: 1 });
      // Never started before the stop; runs now.
      expect(await poll(b, key, two, (r) => TERMINAL.has(r['status'] as string))).toMatchObject({ status: 'exited', attempts: 1 });
    } finally {
      b.proc.kill('SIGTERM');
      expect((await exitOf(b)).code).toBe(0);
    }
  }, 180_000);

  it('SIGTERM: a run still running when the grace time ends is queued again and completes after the restart', async () => {
    const data = path.join(tmp, 'requeue');
    const key = newTenant(data, 'r');
    const a = await startServer(data, ['--workers', '1', '--grace', '300ms']);
    // Longer than any stall of a loaded machine plus the 300 ms grace: still running when the grace ends.
    const mod = await upload(a, key, spinner(5000));
    const id = (await api(a, 'POST', '/v1/runs', key, { module: mod })).body['id'] as string;
    await poll(a, key, id, (r) => r['status'] === 'running');
    // An open event stream does not hold the stop up: it sees the run go back to the queue, then closes.
    let connected!: () => void;
    const streaming = new Promise<void>((r) => { connected = r; });
    const stream = sse(a, `/v1/runs/${id}/events`, key, 'exit', 20_000, () => connected()).then((evs) => evs, (e: Error) => e);
    await streaming;
    a.proc.kill('SIGTERM');
    expect(await exitOf(a)).toEqual({ code: 0, signal: null });
    const seen = await stream;
    if (Array.isArray(seen)) expect(seen.map((e) => JSON.parse(e.data).state)).toContain('queued');

    const b = await startServer(data, ['--workers', '1']);
    try {
      const r = await poll(b, key, id, (x) => TERMINAL.has(x['status'] as string));
      expect(r).toMatchObject({ status: 'exited', stdout: 'done 5000\n', attempts: 2 });
    } finally {
      b.proc.kill('SIGTERM');
      expect((await exitOf(b)).code).toBe(0);
    }
  }, 180_000);
});

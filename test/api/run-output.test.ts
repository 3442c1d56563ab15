/**
 * What a guest wrote before its run was ended reaches the REST API: the run's result, its stored
 * events, and a client polling or streaming while it runs. The guest writes "looping" and "\n"
 * (one fd_write, two iovecs, as libc's puts + fflush does) and then spins until it is stopped.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createLogger } from '../../src/api/log.js';
import { encodeRequest } from '../../src/api/runs/record.js';
import { createScheduler } from '../../src/api/scheduler.js';
import type { Host, RunHandle, RunRequest } from '../../src/host/host.js';
import { toRunOutput, type RunResult } from '../../src/host/result.js';
import { command } from '../helpers/wat.js';
import { createFakeStore } from './fake-store.js';
import { call, json, readSSE, startService, waitRun, type Service } from './helpers.js';

const LOOPING = command(`
  (i32.store (i32.const 0) (i32.const 64)) (i32.store (i32.const 4) (i32.const 7))
  (i32.store (i32.const 8) (i32.const 71)) (i32.store (i32.const 12) (i32.const 1))
  (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 2) (i32.const 16)))
  (loop $l (br $l))`,
'(import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))',
'(memory (export "memory") 1) (data (i32.const 64) "looping\\n")');

let svc: Service;
let key: string;
let looping: string;
const started: string[] = [];

beforeAll(async () => {
  svc = await startService();
  ({ key } = await svc.tenant());
  looping = await svc.upload(key, LOOPING);
});
afterAll(async () => {
  // A run a failed test left running is cancelled, not left to its wall limit.
  for (const id of started) await call(svc.app, 'DELETE', `/v1/runs/${id}`, { key });
  await svc.close();
});

const stdoutEvents = async (id: string) => (await readSSE(await call(svc.app, 'GET', `/v1/runs/${id}/events`, { key })))
  .filter((e) => e.event === 'stdout').map((e) => JSON.parse(e.data).data as string).join('');

describe('output of a run ended by the service', () => {
  it('wall-clock limit: POST /v1/runs with wait answers timeout with the line, and the events hold it', async () => {
    const r = await call(svc.app, 'POST', '/v1/runs', { key, json: { module: looping, manifest: 'limits: { wall: 1s }', wait: 20 } });
    expect(r.status).toBe(201);
    const run = await json(r);
    started.push(run.id);
    const done = run.status === 'running' || run.status === 'queued' ? await waitRun(svc.app, key, run.id) : run;
    expect(done).toMatchObject({ status: 'timeout', timeout: 'wall', stdout: 'looping\n' });
    expect(await stdoutEvents(run.id)).toBe('looping\n');
  });

  it('cancel: a streaming client and a polling one see the line while the guest runs; DELETE answers with it', async () => {
    // Long enough to be cancelled first; short enough that a stream that never shows the line ends within the test's time.
    const run = await json(await call(svc.app, 'POST', '/v1/runs', { key, json: { module: looping, manifest: 'limits: { wall: 20s, cpu: 20s }' } }));
    started.push(run.id);
    const seen = await readSSE(await call(svc.app, 'GET', `/v1/runs/${run.id}/events`, { key }), (e) => e.event === 'stdout');
    expect(JSON.parse(seen.at(-1)!.data)).toMatchObject({ data: 'looping\n' });
    await vi.waitFor(async () => {
      expect(await json(await call(svc.app, 'GET', `/v1/runs/${run.id}`, { key }))).toMatchObject({ status: 'running', stdout: 'looping\n' });
    }, { timeout: 10_000 });
    const cancelled = await call(svc.app, 'DELETE', `/v1/runs/${run.id}`, { key });
    expect(cancelled.status).toBe(200);
    expect(await json(cancelled)).toMatchObject({ status: 'cancelled', stdout: 'looping\n' });
    expect(await stdoutEvents(run.id)).toBe('looping\n');
  });
});

describe('the scheduler stores output as it comes', () => {
  it('a write after a quiet spell is an event at once, not when a coalescing timer fires', async () => {
    // A host whose run writes one line and then runs until it is cancelled.
    const host = {
      stats: () => ({ workers: 1, busy: 0, queued: 0, spawned: 1, cachedModules: 0, cacheBytes: 0 }),
      has: () => false,
      start(req: RunRequest): RunHandle {
        const result = new Promise<RunResult>((resolve) => req.signal?.addEventListener('abort', () => resolve({
          status: 'cancelled', blame: 'host', stdout: new TextEncoder().encode('looping\n'), stderr: new Uint8Array(), files: {},
          usage: { wallMs: 1, cpuMs: 1, peakMemoryBytes: 0 }, audit: { events: [], dropped: 0 },
        }))).then(toRunOutput);
        return {
          result,
          async *[Symbol.asyncIterator]() {
            yield { type: 'stdout' as const, data: new TextEncoder().encode('looping\n') };
            // Then a burst, byte by byte: coalesced, not an event per byte.
            for (let i = 0; i < 50; i++) yield { type: 'stdout' as const, data: new TextEncoder().encode('x') };
            yield { type: 'result' as const, result: await result };
          },
        };
      },
    } as unknown as Host;
    const store = createFakeStore();
    const t = await store.createTenant('t');
    const mod = (await store.putModule(t.id, new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0]), [])).record;
    const run = await store.createRun({ id: 'run_q', tenantId: t.id, moduleId: mod.id, createdAt: Date.now(), request: encodeRequest('', {}) });
    const scheduler = createScheduler({ store, host, logger: createLogger({ level: 'silent' }) });
    // Timers stand still: only what the scheduler stores without one can show up.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      await scheduler.start();
      scheduler.submit(t.id, run.id);
      const stored = async () => (await store.events(run.id, 0)).filter((e) => e.type === 'stdout').map((e) => JSON.parse(e.data).data as string);
      for (let i = 0; i < 200 && (await stored()).length === 0; i++) await new Promise((r) => setImmediate(r));
      expect(await stored()).toEqual(['looping\n']);
      await scheduler.cancel(t.id, run.id);
      await vi.waitFor(async () => expect((await store.getRun(t.id, run.id))!.state).toBe('cancelled'));
      expect(await stored()).toEqual(['looping\n', 'x'.repeat(50)]);
    } finally {
      vi.useRealTimers();
      await scheduler.cancel(t.id, run.id);
      await scheduler.stop(1000);
    }
  });

  it('an exit event the store does not back (a forged NOTIFY) does not stop the guest; a real end elsewhere does', async () => {
    let signal: AbortSignal | undefined;
    const host = {
      stats: () => ({ workers: 1, busy: 0, queued: 0, spawned: 1, cachedModules: 0, cacheBytes: 0 }),
      has: () => false,
      start(req: RunRequest): RunHandle {
        signal = req.signal;
        const result = new Promise<RunResult>((resolve) => req.signal?.addEventListener('abort', () => resolve({
          status: 'cancelled', blame: 'host', stdout: new Uint8Array(), stderr: new Uint8Array(), files: {},
          usage: { wallMs: 1, cpuMs: 1, peakMemoryBytes: 0 }, audit: { events: [], dropped: 0 },
        }))).then(toRunOutput);
        return { result, async *[Symbol.asyncIterator]() { yield { type: 'result' as const, result: await result }; } };
      },
    } as unknown as Host;
    const store = createFakeStore();
    const t = await store.createTenant('t');
    const mod = (await store.putModule(t.id, new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0]), [])).record;
    const run = await store.createRun({ id: 'run_f', tenantId: t.id, moduleId: mod.id, createdAt: Date.now(), request: encodeRequest('', {}) });
    const scheduler = createScheduler({ store, host, logger: createLogger({ level: 'silent' }) });
    try {
      await scheduler.start();
      scheduler.submit(t.id, run.id);
      await vi.waitFor(() => expect(signal).toBeDefined());
      // An exit notice while the store still has the run running (what a forged NOTIFY looks like):
      // the scheduler asks the store (answered at once here) and keeps the guest running.
      await store.appendEvent(run.id, 'exit', '{}');
      await store.getRun(t.id, run.id);
      await new Promise((r) => setImmediate(r));
      expect(signal!.aborted).toBe(false);
      // Ended by another node (in the store, then its exit): the guest stops here.
      expect(await store.finishRun(run.id, 'cancelled', '{}', Date.now(), 0)).toBe(true);
      await store.appendEvent(run.id, 'exit', '{}');
      await vi.waitFor(() => expect(signal!.aborted).toBe(true));
    } finally {
      await scheduler.stop(1000);
    }
  });

  it('a run that writes and ends in one turn stores and announces its output before its end', async () => {
    const hello = new TextEncoder().encode('hello\n');
    const host = {
      stats: () => ({ workers: 1, busy: 0, queued: 0, spawned: 1, cachedModules: 0, cacheBytes: 0 }),
      has: () => false,
      start(): RunHandle {
        const result = Promise.resolve(toRunOutput({
          status: 'exited', blame: 'guest', exitCode: 0, stdout: hello, stderr: new Uint8Array(), files: {},
          usage: { wallMs: 1, cpuMs: 1, peakMemoryBytes: 0 }, audit: { events: [], dropped: 0 },
        }));
        return {
          result,
          async *[Symbol.asyncIterator]() {
            yield { type: 'stdout' as const, data: hello };
            yield { type: 'result' as const, result: await result };
          },
        };
      },
    } as unknown as Host;
    const store = createFakeStore();
    const t = await store.createTenant('t');
    const mod = (await store.putModule(t.id, new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0]), [])).record;
    const run = await store.createRun({ id: 'run_c', tenantId: t.id, moduleId: mod.id, createdAt: Date.now(), request: encodeRequest('', {}) });
    const seen: string[] = [];
    const scheduler = createScheduler({ store, host, logger: createLogger({ level: 'silent' }) });
    await scheduler.events.subscribe(run.id, (n) => { if (n !== 'resync') seen.push(n.type); });
    try {
      await scheduler.start();
      scheduler.submit(t.id, run.id);
      await vi.waitFor(async () => expect((await store.getRun(t.id, run.id))!.state).toBe('exited'));
      expect((await store.events(run.id, 0)).map((e) => e.type)).toEqual(['status', 'stdout', 'status', 'exit']);
      // Every stored event was announced, after it was stored.
      await vi.waitFor(() => expect(seen).toEqual(['status', 'stdout', 'status', 'exit']));
    } finally {
      await scheduler.stop(1000);
    }
  });
});

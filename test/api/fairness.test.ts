/** Fairness: one tenant's long queue does not starve another tenant's run. */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { STATE_WAIT } from '../helpers/host.js';
import { createScheduler } from '../../src/api/scheduler.js';
import { encodeRequest } from '../../src/api/runs/record.js';
import { createLogger } from '../../src/api/log.js';
import type { Host, RunHandle, RunRequest } from '../../src/host/host.js';
import { toRunOutput, type RunResult } from '../../src/host/result.js';
import { createFakeStore } from './fake-store.js';
import { call, json, slowGuest, startService, waitRun, type Service } from './helpers.js';

describe('through the API, on a real host with 2 workers', () => {
  let svc: Service;
  // Paused until A's runs are all queued: on a loaded machine they could otherwise drain while the
  // test is still submitting them, and B would find no queue to overtake.
  beforeAll(async () => { svc = await startService({ paused: true }); });
  afterAll(async () => { await svc.close(); });

  it('tenant B\'s single run finishes long before tenant A\'s 50 queued runs drain', async () => {
    const a = await svc.tenant();
    const b = await svc.tenant();
    const slowA = await svc.upload(a.key, slowGuest(40));
    const slowB = await svc.upload(b.key, slowGuest(40));
    const aIds: string[] = [];
    for (let i = 0; i < 50; i += 10) {
      const batch = await json(await call(svc.app, 'POST', '/v1/runs:batch', { key: a.key, json: Array.from({ length: 10 }, () => ({ module: slowA })) }));
      aIds.push(...batch.items.map((x: { run: { id: string } }) => x.run.id));
    }
    expect(aIds).toHaveLength(50);
    await svc.scheduler.start();
    // A's first two take both workers; 48 wait.
    await vi.waitFor(async () => expect(await svc.store.countRuns(a.id, 'running')).toBe(2), STATE_WAIT);
    const bRun = await json(await call(svc.app, 'POST', '/v1/runs', { key: b.key, json: { module: slowB, wait: 20 } }));
    expect(bRun.status).toBe('exited');
    const aRuns = [];
    for (const id of aIds) aRuns.push(await waitRun(svc.app, a.key, id, 30_000));
    expect(aRuns.every((r) => r.status === 'exited')).toBe(true);
    // No run of A started between B's submission and B's start: B was next in turn.
    const [bCreated, bStart] = [Date.parse(bRun.createdAt), Date.parse(bRun.startedAt)];
    expect(aRuns.filter((r) => Date.parse(r.startedAt) > bCreated && Date.parse(r.startedAt) < bStart)).toEqual([]);
    // Meanwhile A's other worker ran a run or two of the same length: most of A's started after B ended.
    expect(aRuns.filter((r) => Date.parse(r.startedAt) > Date.parse(bRun.finishedAt)).length).toBeGreaterThan(40);
  });
});

describe('the scheduler\'s order (fake host, in-memory store)', () => {
  /** A host whose runs end when the test says, recording the order they started in. */
  function fakeHost(workers: number) {
    const started: string[] = [];
    const pending: (() => void)[] = [];
    const result: RunResult = {
      status: 'exited', blame: 'guest', exitCode: 0, stdout: new Uint8Array(), stderr: new Uint8Array(), files: {},
      usage: { wallMs: 1, cpuMs: 1, peakMemoryBytes: 0 }, audit: { events: [], dropped: 0 },
    };
    const host = {
      stats: () => ({ workers, busy: 0, queued: 0, spawned: workers, cachedModules: 0, cacheBytes: 0 }),
      has: () => false,
      start(req: RunRequest): RunHandle {
        started.push((req.args ?? [])[0] ?? '?');
        const done = new Promise<RunResult>((resolve) => {
          pending.push(() => resolve(result));
          req.signal?.addEventListener('abort', () => resolve({ ...result, status: 'cancelled' }));
        }).then(toRunOutput);
        return {
          result: done,
          async *[Symbol.asyncIterator]() { yield { type: 'result' as const, result: await done }; },
        };
      },
    } as unknown as Host;
    return { host, started, finishOne: () => pending.shift()?.() };
  }

  it('takes one run per tenant in turn, oldest first within a tenant', async () => {
    const store = createFakeStore();
    const { host, started, finishOne } = fakeHost(1);
    const scheduler = createScheduler({ store, host, logger: createLogger({ level: 'silent' }) });
    const tenants = [await store.createTenant('A'), await store.createTenant('B'), await store.createTenant('C')];
    const mods = [];
    for (const t of tenants) mods.push((await store.putModule(t.id, new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0]), [])).record);
    const plan: [number, number][] = [[0, 5], [1, 2], [2, 1]];
    for (const [t, n] of plan) {
      for (let i = 0; i < n; i++) {
        const run = await store.createRun({
          id: `run_${'ABC'[t]}${i}`, tenantId: tenants[t]!.id, moduleId: mods[t]!.id, createdAt: Date.now(),
          request: encodeRequest('', { args: [`${'ABC'[t]}${i}`] }),
        });
        scheduler.submit(tenants[t]!.id, run.id);
      }
    }
    await scheduler.start();
    for (let i = 0; i < 8; i++) {
      await vi.waitFor(async () => expect(started).toHaveLength(i + 1), STATE_WAIT);
      finishOne();
    }
    await vi.waitFor(async () => expect(await store.runsInState('running')).toEqual([]), STATE_WAIT);
    expect(started).toEqual(['A0', 'B0', 'C0', 'A1', 'B1', 'A2', 'A3', 'A4']);
    expect(await store.countRuns(tenants[0]!.id, 'queued')).toBe(0);
    await scheduler.stop(100);
  });

  it('a tenant that submits later joins the rotation at once', async () => {
    const store = createFakeStore();
    const { host, started, finishOne } = fakeHost(1);
    const scheduler = createScheduler({ store, host, logger: createLogger({ level: 'silent' }) });
    await scheduler.start();
    const [a, b] = [await store.createTenant('A'), await store.createTenant('B')];
    const ma = (await store.putModule(a!.id, new Uint8Array([1]), [])).record;
    const mb = (await store.putModule(b!.id, new Uint8Array([2]), [])).record;
    const submit = async (t: typeof a, m: typeof ma, name: string) => {
      const run = await store.createRun({ id: `run_${name}`, tenantId: t!.id, moduleId: m.id, createdAt: Date.now(), request: encodeRequest('', { args: [name] }) });
      scheduler.submit(t!.id, run.id);
    };
    for (let i = 0; i < 1000; i++) await submit(a, ma, `A${i}`);
    await vi.waitFor(async () => expect(started).toHaveLength(1), STATE_WAIT);
    finishOne();
    await vi.waitFor(async () => expect(started).toHaveLength(2), STATE_WAIT);
    await submit(b, mb, 'B0');
    for (let i = 0; i < 3; i++) {
      await vi.waitFor(async () => expect(started).toHaveLength(i + 2), STATE_WAIT);
      finishOne();
    }
    await vi.waitFor(async () => expect(started).toHaveLength(5), STATE_WAIT);
    expect(started.slice(0, 4)).toEqual(['A0', 'A1', 'B0', 'A2']);
    await scheduler.stop(0);
    // stop() with runs in flight gives them back to the queue.
    expect(await store.countRuns(a!.id, 'running')).toBe(0);
  });
});

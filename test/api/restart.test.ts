/**
 * Restart safety with the SQLite store: what a killed process leaves in its data dir is picked up
 * by the next one. Queued runs run; a run left running is retried once (attempts 2) or, if it had
 * its retry already, ends `interrupted`. stop() with a deadline requeues what it had to abort.
 */
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { STATE_WAIT } from '../helpers/host.js';
import { createApp } from '../../src/api/app.js';
import { createLogger } from '../../src/api/log.js';
import { createScheduler } from '../../src/api/scheduler.js';
import { createSqliteStore } from '../../src/api/store/sqlite.js';
import type { Store } from '../../src/api/store/types.js';
import { createHost, type Host } from '../../src/host/host.js';
import { ADMIN, call, HELLO, json, readSSE, slowGuest, tickerGuest, waitRun, testHost } from './helpers.js';
import { command } from '../helpers/wat.js';

let host: Host;
let dir: string;
const logger = createLogger({ level: 'silent' });
const open: Store[] = [];

beforeAll(async () => { host = await testHost({ workers: 2 }); });
afterAll(async () => {
  for (const s of open) await s.close();
  await host.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** A "process": a store on the data dir, a scheduler and the app (the scheduler started unless paused). */
async function boot(paused = false, on: { host?: Host; dir?: string } = {}) {
  const store = createSqliteStore({ dir: on.dir ?? dir });
  open.push(store);
  const scheduler = createScheduler({ store, host: on.host ?? host, logger, exclusive: true });
  if (!paused) await scheduler.start();
  const app = createApp({ store, host: on.host ?? host, scheduler, adminToken: ADMIN, logger });
  return { store, scheduler, app };
}

describe('restart safety', () => {
  it('queued runs of a killed process run after the restart', async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'capsa-restart-'));
    const first = await boot(true);
    const t = await json(await call(first.app, 'POST', '/v1/admin/tenants', { headers: { authorization: `Bearer ${ADMIN}` }, json: { name: 'acme' } }));
    const key = t.key.key;
    const mod = (await json(await call(first.app, 'POST', '/v1/modules', { key, body: HELLO, headers: { 'content-type': 'application/wasm' } }))).id;
    const ids = [];
    for (const w of ['one', 'two', 'three']) ids.push((await json(await call(first.app, 'POST', '/v1/runs', { key, json: { module: mod, manifest: { args: [w] } } }))).id);
    // kill -9: nothing is stopped or closed; a second process opens the same dir.
    const second = await boot();
    const out = [];
    for (const id of ids) out.push(await waitRun(second.app, key, id));
    expect(out.map((r) => r.stdout)).toEqual(['hello one\n', 'hello two\n', 'hello three\n']);
    expect(out.every((r) => r.attempts === 1)).toBe(true);
    await second.scheduler.stop(1000);
  });

  it('a run left running is retried once; one that had its retry ends interrupted', async () => {
    const first = await boot(true);
    const t = (await first.store.findTenantByName('acme'))!;
    const key = (await first.store.createKey(t.id)).key;
    const mod = (await json(await call(first.app, 'POST', '/v1/modules', { key, body: HELLO, headers: { 'content-type': 'application/wasm' } }))).id;
    const retry = (await json(await call(first.app, 'POST', '/v1/runs', { key, json: { module: mod, manifest: { args: ['again'] } } }))).id;
    const lost = (await json(await call(first.app, 'POST', '/v1/runs', { key, json: { module: mod } }))).id;
    // The process died while running both; `lost` was already on its second attempt.
    expect(await first.store.startRun(retry, Date.now())).toBe(true);
    expect(await first.store.startRun(lost, Date.now())).toBe(true);
    await first.store.requeueRun(lost);
    expect(await first.store.startRun(lost, Date.now())).toBe(true);

    const second = await boot();
    const r1 = await waitRun(second.app, key, retry);
    expect(r1).toMatchObject({ status: 'exited', stdout: 'hello again\n', attempts: 2 });
    const r2 = await waitRun(second.app, key, lost);
    expect(r2).toMatchObject({ status: 'interrupted', attempts: 2, blame: 'host' });
    expect(r2.message).toMatch(/retried once/);
    // Its event stream ends, with the reason.
    const evs = await readSSE(await call(second.app, 'GET', `/v1/runs/${lost}/events`, { key }));
    expect(evs.map((e) => e.event)).toEqual(['status', 'exit']);
    expect(JSON.parse(evs[1]!.data)).toMatchObject({ state: 'interrupted' });
    await second.scheduler.stop(1000);
  });

  it('stop() waits for runs that end before the deadline', async () => {
    const svc = await boot();
    const t = (await svc.store.findTenantByName('acme'))!;
    const key = (await svc.store.createKey(t.id)).key;
    const mod = (await json(await call(svc.app, 'POST', '/v1/modules', { key, body: slowGuest(200), headers: { 'content-type': 'application/wasm' } }))).id;
    const id = (await json(await call(svc.app, 'POST', '/v1/runs', { key, json: { module: mod } }))).id;
    await vi.waitFor(async () => expect((await svc.store.getRun(t.id, id))!.state).toBe('running'), STATE_WAIT);
    await svc.scheduler.stop(20_000);
    expect(await svc.store.getRun(t.id, id)).toMatchObject({ state: 'exited', attempts: 1 });
    // A stopping service refuses new runs and says so on /healthz.
    const refused = await call(svc.app, 'POST', '/v1/runs', { key, json: { module: mod } });
    expect(refused.status).toBe(503);
    expect((await json(refused)).error.code).toBe('shutting_down');
    expect((await call(svc.app, 'GET', '/healthz')).status).toBe(503);
  });

  it('stop() past its deadline aborts running runs and requeues them; the next process runs them', async () => {
    const svc = await boot();
    const t = (await svc.store.findTenantByName('acme'))!;
    const key = (await svc.store.createKey(t.id)).key;
    // Longer than any stall of a loaded machine, so that these runs are still running when stop() gives up.
    const mod = (await json(await call(svc.app, 'POST', '/v1/modules', { key, body: slowGuest(25_000), headers: { 'content-type': 'application/wasm' } }))).id;
    const quick = (await json(await call(svc.app, 'POST', '/v1/modules', { key, body: HELLO, headers: { 'content-type': 'application/wasm' } }))).id;
    const long = (await json(await call(svc.app, 'POST', '/v1/runs', { key, json: { module: mod, manifest: 'limits: { wall: 30s, cpu: 30s }' } }))).id;
    const waiting = [];
    // Both workers busy, so these stay queued.
    const long2 = (await json(await call(svc.app, 'POST', '/v1/runs', { key, json: { module: mod, manifest: 'limits: { wall: 30s, cpu: 30s }' } }))).id;
    for (let i = 0; i < 2; i++) waiting.push((await json(await call(svc.app, 'POST', '/v1/runs', { key, json: { module: quick } }))).id);
    await vi.waitFor(async () => expect((await svc.store.getRun(t.id, long))!.state).toBe('running'), STATE_WAIT);
    await svc.scheduler.stop(100);
    expect(await svc.store.getRun(t.id, long)).toMatchObject({ state: 'queued', attempts: 1 });
    for (const id of waiting) expect((await svc.store.getRun(t.id, id))!.state).toBe('queued');
    const evs = (await svc.store.events(long, 0)).map((e) => [e.type, JSON.parse(e.data).state]);
    expect(evs).toEqual([['status', 'running'], ['status', 'queued']]);

    const next = await boot();
    // The requeued runs start again (second attempt) before the runs queued after them.
    for (const id of [long, long2]) {
      const c = await json(await call(next.app, 'DELETE', `/v1/runs/${id}`, { key }));
      expect(c).toMatchObject({ status: 'cancelled', attempts: 2 });
    }
    for (const id of waiting) expect((await waitRun(next.app, key, id)).status).toBe('exited');
    await next.scheduler.stop(1000);
  });

  it('a run retried after kill -9: its events say their attempt, a retry opens with an attempt event, and the run shows the last attempt\'s output only', async () => {
    const dirA = mkdtempSync(path.join(tmpdir(), 'capsa-retry-a-'));
    const dirB = mkdtempSync(path.join(tmpdir(), 'capsa-retry-b-'));
    const hostA = await createHost({ workers: 2 });
    try {
      const a = await boot(false, { host: hostA, dir: dirA });
      const t = await json(await call(a.app, 'POST', '/v1/admin/tenants', { headers: { authorization: `Bearer ${ADMIN}` }, json: { name: 'retry' } }));
      const key = t.key.key as string;
      const upload = async (bytes: Uint8Array) => (await json(await call(a.app, 'POST', '/v1/modules', { key, body: bytes as Uint8Array<ArrayBuffer>, headers: { 'content-type': 'application/wasm' } }))).id as string;
      // "started\n", then it spins until cancelled.
      const started = await upload(command(`(i32.store (i32.const 16) (i32.const 64)) (i32.store (i32.const 20) (i32.const 8))
        (drop (call $write (i32.const 1) (i32.const 16) (i32.const 1) (i32.const 24))) (loop $l (br $l))`,
      '(import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))',
      '(memory (export "memory") 1) (data (i32.const 64) "started\\n")'));
      const ticker = await upload(tickerGuest(3, 1500));
      const long = 'limits: { wall: 60s, cpu: 60s }';
      const spinning = (await json(await call(a.app, 'POST', '/v1/runs', { key, json: { module: started, manifest: long } }))).id as string;
      const ticking = (await json(await call(a.app, 'POST', '/v1/runs', { key, json: { module: ticker, manifest: long } }))).id as string;
      const wrote = async (s: Store, id: string, attempt: number) => (await s.events(id, 0)).some((e) => e.type === 'stdout' && e.attempt === attempt);
      await vi.waitFor(async () => { expect(await wrote(a.store, spinning, 1) && await wrote(a.store, ticking, 1)).toBe(true); }, { timeout: 20_000 });
      // kill -9 now: the next process finds the data dir as it is at this instant (the WAL included).
      cpSync(dirA, dirB, { recursive: true, filter: (src) => !src.endsWith('-shm') });
      expect((await a.store.getRun(t.tenant.id, ticking))!.state).toBe('running');
      await a.scheduler.stop(0);
      await hostA.close();

      const b = await boot(false, { dir: dirB });
      try {
        // The run that ends by itself: its result holds its second attempt's output, once.
        const done = await waitRun(b.app, key, ticking, 30_000);
        expect(done).toMatchObject({ status: 'exited', attempts: 2, stdout: 'tick\n'.repeat(3) });
        const evs = (await readSSE(await call(b.app, 'GET', `/v1/runs/${ticking}/events`, { key }))).map((e) => ({ event: e.event, ...JSON.parse(e.data) }));
        expect(evs.every((e) => e.attempt === 1 || e.attempt === 2)).toBe(true);
        const retry = evs.findIndex((e) => e.event === 'attempt');
        expect(evs[retry]).toMatchObject({ attempt: 2 });
        expect(evs.slice(0, retry).every((e) => e.attempt === 1)).toBe(true);
        expect(evs.slice(retry).every((e) => e.attempt === 2)).toBe(true);
        expect(evs.slice(retry + 1, retry + 2)).toMatchObject([{ event: 'status', state: 'running', attempt: 2 }]);
        const out = (attempt: number) => evs.filter((e) => e.event === 'stdout' && e.attempt === attempt).map((e) => e.data).join('');
        expect(out(1)).toMatch(/^(tick\n)+$/);
        expect(out(2)).toBe(done.stdout);

        // The run still running its retry: polling shows this attempt's output only, and so does its end.
        await vi.waitFor(async () => { expect(await wrote(b.store, spinning, 2)).toBe(true); }, { timeout: 20_000 });
        expect(await json(await call(b.app, 'GET', `/v1/runs/${spinning}`, { key }))).toMatchObject({ status: 'running', attempts: 2, stdout: 'started\n' });
        expect(await json(await call(b.app, 'DELETE', `/v1/runs/${spinning}`, { key }))).toMatchObject({ status: 'cancelled', attempts: 2, stdout: 'started\n' });
      } finally {
        await b.scheduler.stop(1000);
      }
    } finally {
      await hostA.close();
      rmSync(dirA, { recursive: true, force: true });
      rmSync(dirB, { recursive: true, force: true });
    }
  }, 90_000);
});

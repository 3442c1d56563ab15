/**
 * Restart safety with the SQLite store: what a killed process leaves in its data dir is picked up
 * by the next one. Queued runs run; a run left running is retried once (attempts 2) or, if it had
 * its retry already, ends `interrupted`. stop() with a deadline requeues what it had to abort.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../src/api/app.js';
import { createLogger } from '../../src/api/log.js';
import { createScheduler } from '../../src/api/scheduler.js';
import { createSqliteStore } from '../../src/api/store/sqlite.js';
import type { Store } from '../../src/api/store/types.js';
import type { Host } from '../../src/host/host.js';
import { ADMIN, call, HELLO, json, readSSE, slowGuest, waitRun, testHost } from './helpers.js';

let host: Host;
let dir: string;
const logger = createLogger({ level: 'silent' });
const open: Store[] = [];

beforeAll(async () => { host = await testHost({ workers: 2 }); });
afterAll(async () => {
  for (const s of open) s.close();
  await host.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** A "process": a store on the data dir, a scheduler and the app (the scheduler started unless paused). */
function boot(paused = false) {
  const store = createSqliteStore({ dir });
  open.push(store);
  const scheduler = createScheduler({ store, host, logger });
  if (!paused) scheduler.start();
  const app = createApp({ store, host, scheduler, adminToken: ADMIN, logger });
  return { store, scheduler, app };
}

describe('restart safety', () => {
  it('queued runs of a killed process run after the restart', async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'capsa-restart-'));
    const first = boot(true);
    const t = await json(await call(first.app, 'POST', '/v1/admin/tenants', { headers: { authorization: `Bearer ${ADMIN}` }, json: { name: 'acme' } }));
    const key = t.key.key;
    const mod = (await json(await call(first.app, 'POST', '/v1/modules', { key, body: HELLO, headers: { 'content-type': 'application/wasm' } }))).id;
    const ids = [];
    for (const w of ['one', 'two', 'three']) ids.push((await json(await call(first.app, 'POST', '/v1/runs', { key, json: { module: mod, manifest: { args: [w] } } }))).id);
    // kill -9: nothing is stopped or closed; a second process opens the same dir.
    const second = boot();
    const out = [];
    for (const id of ids) out.push(await waitRun(second.app, key, id));
    expect(out.map((r) => r.stdout)).toEqual(['hello one\n', 'hello two\n', 'hello three\n']);
    expect(out.every((r) => r.attempts === 1)).toBe(true);
    await second.scheduler.stop(1000);
  });

  it('a run left running is retried once; one that had its retry ends interrupted', async () => {
    const first = boot(true);
    const t = first.store.findTenantByName('acme')!;
    const key = first.store.createKey(t.id).key;
    const mod = (await json(await call(first.app, 'POST', '/v1/modules', { key, body: HELLO, headers: { 'content-type': 'application/wasm' } }))).id;
    const retry = (await json(await call(first.app, 'POST', '/v1/runs', { key, json: { module: mod, manifest: { args: ['again'] } } }))).id;
    const lost = (await json(await call(first.app, 'POST', '/v1/runs', { key, json: { module: mod } }))).id;
    // The process died while running both; `lost` was already on its second attempt.
    expect(first.store.startRun(retry, Date.now())).toBe(true);
    expect(first.store.startRun(lost, Date.now())).toBe(true);
    first.store.requeueRun(lost);
    expect(first.store.startRun(lost, Date.now())).toBe(true);

    const second = boot();
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
    const svc = boot();
    const t = svc.store.findTenantByName('acme')!;
    const key = svc.store.createKey(t.id).key;
    const mod = (await json(await call(svc.app, 'POST', '/v1/modules', { key, body: slowGuest(200), headers: { 'content-type': 'application/wasm' } }))).id;
    const id = (await json(await call(svc.app, 'POST', '/v1/runs', { key, json: { module: mod } }))).id;
    await new Promise((r) => setTimeout(r, 50));
    await svc.scheduler.stop(5000);
    expect(svc.store.getRun(t.id, id)).toMatchObject({ state: 'exited', attempts: 1 });
    // A stopping service refuses new runs and says so on /healthz.
    const refused = await call(svc.app, 'POST', '/v1/runs', { key, json: { module: mod } });
    expect(refused.status).toBe(503);
    expect((await json(refused)).error.code).toBe('shutting_down');
    expect((await call(svc.app, 'GET', '/healthz')).status).toBe(503);
  });

  it('stop() past its deadline aborts running runs and requeues them; the next process runs them', async () => {
    const svc = boot();
    const t = svc.store.findTenantByName('acme')!;
    const key = svc.store.createKey(t.id).key;
    const mod = (await json(await call(svc.app, 'POST', '/v1/modules', { key, body: slowGuest(5000), headers: { 'content-type': 'application/wasm' } }))).id;
    const quick = (await json(await call(svc.app, 'POST', '/v1/modules', { key, body: HELLO, headers: { 'content-type': 'application/wasm' } }))).id;
    const long = (await json(await call(svc.app, 'POST', '/v1/runs', { key, json: { module: mod, manifest: 'limits: { wall: 30s, cpu: 30s }' } }))).id;
    const waiting = [];
    // Both workers busy, so these stay queued.
    const long2 = (await json(await call(svc.app, 'POST', '/v1/runs', { key, json: { module: mod, manifest: 'limits: { wall: 30s, cpu: 30s }' } }))).id;
    for (let i = 0; i < 2; i++) waiting.push((await json(await call(svc.app, 'POST', '/v1/runs', { key, json: { module: quick } }))).id);
    await new Promise((r) => setTimeout(r, 100));
    expect(svc.store.getRun(t.id, long)!.state).toBe('running');
    const t0 = Date.now();
    await svc.scheduler.stop(100);
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(svc.store.getRun(t.id, long)).toMatchObject({ state: 'queued', attempts: 1 });
    for (const id of waiting) expect(svc.store.getRun(t.id, id)!.state).toBe('queued');
    const evs = svc.store.events(long, 0).map((e) => [e.type, JSON.parse(e.data).state]);
    expect(evs).toEqual([['status', 'running'], ['status', 'queued']]);

    const next = boot();
    // The requeued runs start again (second attempt) before the runs queued after them.
    for (const id of [long, long2]) {
      const c = await json(await call(next.app, 'DELETE', `/v1/runs/${id}`, { key }));
      expect(c).toMatchObject({ status: 'cancelled', attempts: 2 });
    }
    for (const id of waiting) expect((await waitRun(next.app, key, id)).status).toBe('exited');
    await next.scheduler.stop(1000);
  });
});

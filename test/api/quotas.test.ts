/** Per-tenant quotas answer 429 (with Retry-After where waiting helps); a full global queue 503. */
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { STATE_WAIT } from '../helpers/host.js';
import type { Host } from '../../src/host/host.js';
import { ADMIN, call, HELLO, json, slowGuest, startService, tickerGuest, waitRun, type Service, testHost } from './helpers.js';

let host: Host;
const services: Service[] = [];
beforeAll(async () => { host = await testHost({ workers: 2 }); });
afterEach(async () => { for (const s of services.splice(0)) await s.close(); });
afterAll(async () => { await host.close(); });

const service = async (o: Parameters<typeof startService>[0]) => {
  const s = await startService({ host, ...o });
  services.push(s);
  return s;
};

describe('quotas', () => {
  it('queued runs: the run past the quota is 429 with Retry-After; other tenants are unaffected', async () => {
    const svc = await service({ paused: true, quotas: { queuedRuns: 2 } });
    const a = await svc.tenant();
    const b = await svc.tenant();
    const ma = await svc.upload(a.key, HELLO);
    const mb = await svc.upload(b.key, HELLO);
    for (let i = 0; i < 2; i++) expect((await call(svc.app, 'POST', '/v1/runs', { key: a.key, json: { module: ma } })).status).toBe(201);
    const r = await call(svc.app, 'POST', '/v1/runs', { key: a.key, json: { module: ma } });
    expect(r.status).toBe(429);
    expect(Number(r.headers.get('retry-after'))).toBeGreaterThan(0);
    const e = (await json(r)).error;
    expect(e).toMatchObject({ code: 'quota_exceeded', details: { quota: 'queuedRuns', limit: 2, used: 2 } });
    expect(e.message).toMatch(/queued runs/);
    expect((await call(svc.app, 'POST', '/v1/runs', { key: b.key, json: { module: mb } })).status).toBe(201);
    // In a batch, the items past the quota are refused one by one.
    const batch = await json(await call(svc.app, 'POST', '/v1/runs:batch', { key: b.key, json: [{ module: mb }, { module: mb }, { module: mb }] }));
    expect(batch.items.map((i: { status: number }) => i.status)).toEqual([201, 429, 429]);
    // Nothing was stored for the refused ones.
    expect((await json(await call(svc.app, 'GET', '/v1/runs', { key: a.key }))).items).toHaveLength(2);
    // Once the queue drains, the tenant may submit again.
    await svc.scheduler.start();
    for (const run of (await json(await call(svc.app, 'GET', '/v1/runs', { key: a.key }))).items) await waitRun(svc.app, a.key, run.id);
    expect((await call(svc.app, 'POST', '/v1/runs', { key: a.key, json: { module: ma } })).status).toBe(201);
  });

  it('a full global queue is 503 with Retry-After', async () => {
    const svc = await service({ paused: true, quotas: { globalQueuedRuns: 3 } });
    const a = await svc.tenant();
    const b = await svc.tenant();
    const ma = await svc.upload(a.key, HELLO);
    const mb = await svc.upload(b.key, HELLO);
    for (let i = 0; i < 3; i++) expect((await call(svc.app, 'POST', '/v1/runs', { key: i % 2 ? b.key : a.key, json: { module: i % 2 ? mb : ma } })).status).toBe(201);
    const r = await call(svc.app, 'POST', '/v1/runs', { key: b.key, json: { module: mb } });
    expect(r.status).toBe(503);
    expect(r.headers.get('retry-after')).toBeTruthy();
    expect((await json(r)).error.code).toBe('queue_full');
  });

  it('module storage: an upload past the quota is 429; the same module again is fine', async () => {
    const svc = await service({ quotas: { moduleStorageBytes: HELLO.length + 100 } });
    const a = await svc.tenant();
    expect((await call(svc.app, 'POST', '/v1/modules', { key: a.key, body: HELLO, headers: { 'content-type': 'application/wasm' } })).status).toBe(201);
    expect((await call(svc.app, 'POST', '/v1/modules', { key: a.key, body: HELLO, headers: { 'content-type': 'application/wasm' } })).status).toBe(200);
    const r = await call(svc.app, 'POST', '/v1/modules', { key: a.key, body: slowGuest(1), headers: { 'content-type': 'application/wasm' } });
    expect(r.status).toBe(429);
    expect((await json(r)).error).toMatchObject({ code: 'quota_exceeded', details: { quota: 'moduleStorageBytes' } });
    // Deleting frees it.
    const id = (await json(await call(svc.app, 'GET', '/v1/modules', { key: a.key }))).items[0].id;
    expect((await call(svc.app, 'DELETE', `/v1/modules/${id}`, { key: a.key })).status).toBe(204);
    expect((await call(svc.app, 'POST', '/v1/modules', { key: a.key, body: slowGuest(1), headers: { 'content-type': 'application/wasm' } })).status).toBe(201);
  });

  it('CPU seconds per day: once used up, 429 until midnight UTC', async () => {
    const svc = await service({ quotas: { cpuSecondsPerDay: 0.05 } });
    const a = await svc.tenant();
    const b = await svc.tenant();
    // CPU time, not wall time: on a loaded machine 150 ms of wall time was 30 ms of CPU (the process's clock counts
    // its other threads too, hence twice the 50 ms needed).
    const slow = await svc.upload(a.key, slowGuest(300, 'cpu'));
    const run = await json(await call(svc.app, 'POST', '/v1/runs', { key: a.key, json: { module: slow, wait: 10 } }));
    expect(run.status).toBe('exited');
    expect(run.usage.cpuMs).toBeGreaterThan(50);
    const r = await call(svc.app, 'POST', '/v1/runs', { key: a.key, json: { module: slow } });
    expect(r.status).toBe(429);
    const now = new Date();
    const toMidnight = (Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() + 1) - now.getTime()) / 1000;
    expect(Math.abs(Number(r.headers.get('retry-after')) - toMidnight)).toBeLessThan(5);
    expect((await json(r)).error.details.quota).toBe('cpuSecondsPerDay');
    const lim = await json(await call(svc.app, 'GET', '/v1/limits', { key: a.key }));
    expect(lim.quotas.cpuSecondsPerDay.used).toBeGreaterThan(0.05);
    // Another tenant has its own budget.
    const hb = await svc.upload(b.key, HELLO);
    expect((await call(svc.app, 'POST', '/v1/runs', { key: b.key, json: { module: hb } })).status).toBe(201);
  });

  it('concurrent runs: a tenant\'s runs past its quota wait their turn (never overlap)', async () => {
    // Paused while the runs are submitted, so that the order below is the scheduler's, not the clock's.
    const svc = await service({ quotas: { concurrentRuns: 1 }, paused: true });
    const a = await svc.tenant();
    const b = await svc.tenant();
    const ticker = await svc.upload(a.key, tickerGuest(2, 100));
    const tb = await svc.upload(b.key, tickerGuest(2, 100));
    const ids = [];
    for (let i = 0; i < 3; i++) ids.push((await json(await call(svc.app, 'POST', '/v1/runs', { key: a.key, json: { module: ticker } }))).id);
    const bRun = (await json(await call(svc.app, 'POST', '/v1/runs', { key: b.key, json: { module: tb } }))).id;
    await svc.scheduler.start();
    const runs = [];
    for (const id of ids) runs.push(await waitRun(svc.app, a.key, id));
    const spans = runs.map((r) => [Date.parse(r.startedAt), Date.parse(r.finishedAt)] as const).sort((x, y) => x[0] - y[0]);
    for (let i = 1; i < spans.length; i++) expect(spans[i]![0]).toBeGreaterThanOrEqual(spans[i - 1]![1]);
    // B's run took the second worker beside A's first rather than waiting behind A's.
    const rb = await waitRun(svc.app, b.key, bRun);
    expect(Date.parse(rb.startedAt)).toBeLessThan(spans[1]![0]);
    // The run is stored as ended just before the scheduler lets go of it.
    await vi.waitFor(() => expect(svc.scheduler.stats().running).toBe(0), STATE_WAIT);
  });
});

const admin = (svc: Service, method: string, url: string, body?: unknown) =>
  call(svc.app, method, url, { headers: { authorization: `Bearer ${ADMIN}` }, ...(body !== undefined ? { json: body } : {}) });

describe('quotas per tenant (admin API), over the service\'s', () => {
  it('a tenant\'s own queued-runs quota is enforced, shown at /v1/limits, and another tenant keeps the service\'s', async () => {
    const svc = await service({ paused: true, quotas: { queuedRuns: 5 } });
    const a = await svc.tenant();
    const b = await svc.tenant();
    const r = await admin(svc, 'PUT', `/v1/admin/tenants/${a.id}/quotas`, { queuedRuns: 1, moduleStorageBytes: 1 << 20, retainSeconds: 3600 });
    expect(r.status).toBe(200);
    expect((await json(r)).quotas).toEqual({ queuedRuns: 1, moduleStorageBytes: 1 << 20, retainSeconds: 3600 });
    const ma = await svc.upload(a.key, HELLO);
    const mb = await svc.upload(b.key, HELLO);
    expect((await call(svc.app, 'POST', '/v1/runs', { key: a.key, json: { module: ma } })).status).toBe(201);
    const refused = await call(svc.app, 'POST', '/v1/runs', { key: a.key, json: { module: ma } });
    expect(refused.status).toBe(429);
    expect((await json(refused)).error.details).toMatchObject({ quota: 'queuedRuns', limit: 1, used: 1 });
    for (let i = 0; i < 2; i++) expect((await call(svc.app, 'POST', '/v1/runs', { key: b.key, json: { module: mb } })).status).toBe(201);

    const la = await json(await call(svc.app, 'GET', '/v1/limits', { key: a.key }));
    expect(la.quotas.queuedRuns).toEqual({ limit: 1, used: 1 });
    expect(la.quotas.moduleStorageBytes.limit).toBe(1 << 20);
    expect(la.retention).toEqual({ retainSeconds: 3600, own: true });
    const lb = await json(await call(svc.app, 'GET', '/v1/limits', { key: b.key }));
    expect(lb.quotas.queuedRuns).toEqual({ limit: 5, used: 2 });
    expect(lb.retention).toEqual({ retainSeconds: 0, own: false });

    // {} gives every quota back to the service.
    expect((await json(await admin(svc, 'PUT', `/v1/admin/tenants/${a.id}/quotas`, {}))).quotas).toEqual({});
    expect((await call(svc.app, 'POST', '/v1/runs', { key: a.key, json: { module: ma } })).status).toBe(201);
  });

  it('a tenant\'s module storage quota below the service\'s refuses an upload with 429', async () => {
    const svc = await service({});
    const a = await svc.tenant();
    await admin(svc, 'PUT', `/v1/admin/tenants/${a.id}/quotas`, { moduleStorageBytes: 10 });
    const r = await call(svc.app, 'POST', '/v1/modules', { key: a.key, body: HELLO, headers: { 'content-type': 'application/wasm' } });
    expect(r.status).toBe(429);
    expect((await json(r)).error.details).toMatchObject({ quota: 'moduleStorageBytes', limit: 10 });
  });

  it('a tenant\'s concurrency quota of 1 runs its runs one at a time while the service allows more', async () => {
    const svc = await service({ quotas: { concurrentRuns: 8 }, paused: true });
    const a = await svc.tenant();
    await admin(svc, 'PUT', `/v1/admin/tenants/${a.id}/quotas`, { concurrentRuns: 1 });
    const ticker = await svc.upload(a.key, tickerGuest(2, 50));
    const ids = [];
    for (let i = 0; i < 2; i++) ids.push((await json(await call(svc.app, 'POST', '/v1/runs', { key: a.key, json: { module: ticker } }))).id);
    await svc.scheduler.start();
    const runs = [];
    for (const id of ids) runs.push(await waitRun(svc.app, a.key, id));
    const spans = runs.map((r) => [Date.parse(r.startedAt), Date.parse(r.finishedAt)] as const).sort((x, y) => x[0] - y[0]);
    expect(spans[1]![0]).toBeGreaterThanOrEqual(spans[0]![1]);
  });

  it('refuses unknown and out-of-range quotas (422 naming each), an unknown tenant (404), and a tenant key (401)', async () => {
    const svc = await service({ paused: true });
    const a = await svc.tenant();
    const bad = await admin(svc, 'PUT', `/v1/admin/tenants/${a.id}/quotas`, { concurrentRuns: 0, queuedRuns: -1, cpuSeconds: 5 });
    expect(bad.status).toBe(422);
    const e = (await json(bad)).error;
    expect(e.details.map((d: { path: string }) => d.path).sort()).toEqual(['', 'concurrentRuns', 'queuedRuns']);
    expect(e.message).toMatch(/cpuSeconds/);
    expect((await admin(svc, 'PUT', `/v1/admin/tenants/${a.id}/quotas`, { queuedRuns: 1.5 })).status).toBe(422);
    expect((await admin(svc, 'PUT', '/v1/admin/tenants/ten_nope/quotas', {})).status).toBe(404);
    expect((await call(svc.app, 'PUT', `/v1/admin/tenants/${a.id}/quotas`, { key: a.key, json: {} })).status).toBe(401);
    // Nothing changed.
    expect((await svc.store.getTenant(a.id))?.quotas).toEqual({});
  });
});

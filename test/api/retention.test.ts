/** Retention prunes exactly the finished runs (output, events) and unreferenced modules older than the tenant's retention. */
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Host } from '../../src/host/host.js';
import { createRetention } from '../../src/api/retention.js';
import { createLogger } from '../../src/api/log.js';
import { ADMIN, CAT, call, HELLO, json, slowGuest, startService, testHost, waitRun, type Service } from './helpers.js';

let host: Host;
const services: Service[] = [];
beforeAll(async () => { host = await testHost({ workers: 2 }); });
afterEach(async () => { for (const s of services.splice(0)) await s.close(); });
afterAll(async () => { await host.close(); });

const HOUR = 3600;

describe('retention', () => {
  it('prunes finished runs and unreferenced modules past the retention; never queued, running or recent runs, nor a tenant that keeps its own', async () => {
    const svc = await startService({ host });
    services.push(svc);
    const a = await svc.tenant();
    const keep = await svc.tenant();
    // keep's own retention (0: forever) goes over the service's.
    await call(svc.app, 'PUT', `/v1/admin/tenants/${keep.id}/quotas`, { headers: { authorization: `Bearer ${ADMIN}` }, json: { retainSeconds: 0 } });
    await call(svc.app, 'PUT', `/v1/admin/tenants/${a.id}/quotas`, { headers: { authorization: `Bearer ${ADMIN}` }, json: { concurrentRuns: 1 } });
    const hello = await svc.upload(a.key, HELLO);
    const unused = await svc.upload(a.key, CAT);
    const slow = await svc.upload(a.key, slowGuest(60_000));
    const done = [];
    for (let i = 0; i < 3; i++) done.push((await waitRun(svc.app, a.key, (await json(await call(svc.app, 'POST', '/v1/runs', { key: a.key, json: { module: hello } }))).id)).id);
    const kh = await svc.upload(keep.key, HELLO);
    const kept = (await waitRun(svc.app, keep.key, (await json(await call(svc.app, 'POST', '/v1/runs', { key: keep.key, json: { module: kh } }))).id)).id;
    // One running (the tenant's concurrency is 1) and one queued behind it, both using `slow`.
    const running = (await json(await call(svc.app, 'POST', '/v1/runs', { key: a.key, json: { module: slow } }))).id;
    const queued = (await json(await call(svc.app, 'POST', '/v1/runs', { key: a.key, json: { module: slow } }))).id;
    await vi.waitFor(async () => expect((await json(await call(svc.app, 'GET', `/v1/runs/${running}`, { key: a.key }))).status).toBe('running'), { timeout: 20_000 });

    const logger = createLogger({ level: 'silent' });
    // Now: everything is recent, nothing goes.
    expect(await createRetention({ store: svc.store, retainSeconds: HOUR, batch: 1, logger }).sweep()).toEqual({ runs: 0, modules: 0 });
    // Two hours on: the finished runs (in batches of one), then the modules no run uses: the one
    // never run and hello, whose runs just went.
    const later = createRetention({ store: svc.store, retainSeconds: HOUR, batch: 1, now: () => Date.now() + 2 * HOUR * 1000, logger });
    expect(await later.sweep()).toEqual({ runs: 3, modules: 2 });
    for (const id of done) {
      expect((await call(svc.app, 'GET', `/v1/runs/${id}`, { key: a.key })).status).toBe(404);
      expect((await call(svc.app, 'GET', `/v1/runs/${id}/events`, { key: a.key })).status).toBe(404);
      expect(await svc.store.events(id, 0)).toEqual([]);
    }
    expect((await call(svc.app, 'GET', `/v1/modules/${unused}`, { key: a.key })).status).toBe(404);
    expect((await call(svc.app, 'GET', `/v1/modules/${hello}`, { key: a.key })).status).toBe(404);
    // slow is still referenced by the queued and running runs.
    expect(await later.sweep()).toEqual({ runs: 0, modules: 0 });
    expect((await call(svc.app, 'GET', `/v1/modules/${slow}`, { key: a.key })).status).toBe(200);
    for (const id of [running, queued]) expect((await call(svc.app, 'GET', `/v1/runs/${id}`, { key: a.key })).status).toBe(200);
    expect((await call(svc.app, 'GET', `/v1/runs/${kept}`, { key: keep.key })).status).toBe(200);
    expect((await call(svc.app, 'GET', `/v1/modules/${kh}`, { key: keep.key })).status).toBe(200);
    // The listing agrees.
    expect((await json(await call(svc.app, 'GET', '/v1/runs', { key: a.key }))).items.map((r: { id: string }) => r.id).sort()).toEqual([running, queued].sort());
    for (const id of [queued, running]) await call(svc.app, 'DELETE', `/v1/runs/${id}`, { key: a.key });
  });

  it('without a retention (the default) nothing is pruned, however old', async () => {
    const svc = await startService({ host });
    services.push(svc);
    const a = await svc.tenant();
    const m = await svc.upload(a.key, HELLO);
    const id = (await waitRun(svc.app, a.key, (await json(await call(svc.app, 'POST', '/v1/runs', { key: a.key, json: { module: m } }))).id)).id;
    const r = createRetention({ store: svc.store, retainSeconds: 0, now: () => Date.now() + 1e12, logger: createLogger({ level: 'silent' }) });
    expect(await r.sweep()).toEqual({ runs: 0, modules: 0 });
    expect((await call(svc.app, 'GET', `/v1/runs/${id}`, { key: a.key })).status).toBe(200);
  });
});

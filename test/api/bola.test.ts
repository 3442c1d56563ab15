/**
 * Broken object-level authorisation: every route that takes an id, called by tenant B with tenant
 * A's ids, answers exactly as for an id that does not exist (404; never 403, never A's data), and
 * changes nothing of A's.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN, call, HELLO, json, slowGuest, startService, waitRun, type Service } from './helpers.js';

let svc: Service;
let a: { id: string; key: string };
let b: { id: string; key: string };
let aModule: string;
let aSlow: string;
let aDone: string;
let aLive: string;
const missingModule = `sha256:${'ab'.repeat(32)}`;
const missingRun = 'run_AAAAAAAAAAAAAAAAAAAAAA';

beforeAll(async () => {
  svc = await startService();
  a = await svc.tenant();
  b = await svc.tenant();
  aModule = await svc.upload(a.key, HELLO);
  aSlow = await svc.upload(a.key, slowGuest(1500));
  aDone = (await json(await call(svc.app, 'POST', '/v1/runs', { key: a.key, json: { module: aModule, manifest: 'args: [secret-of-a]', audit: 'all', wait: 5 } }))).id;
  aLive = (await json(await call(svc.app, 'POST', '/v1/runs', { key: a.key, json: { module: aSlow } }))).id;
  // B holds modules too, so that its own listings are not trivially empty.
  await svc.upload(b.key, slowGuest(1));
});
afterAll(async () => { await svc.close(); });

type Case = { name: string; method: string; url: (id: string) => string; ids: () => [string, string]; json?: (id: string) => unknown };

const cases: Case[] = [
  { name: 'GET module', method: 'GET', url: (id) => `/v1/modules/${id}`, ids: () => [aModule, missingModule] },
  { name: 'GET module (url-encoded id)', method: 'GET', url: (id) => `/v1/modules/${encodeURIComponent(id)}`, ids: () => [aModule, missingModule] },
  { name: 'DELETE module', method: 'DELETE', url: (id) => `/v1/modules/${id}`, ids: () => [aModule, missingModule] },
  { name: 'GET run (finished)', method: 'GET', url: (id) => `/v1/runs/${id}`, ids: () => [aDone, missingRun] },
  { name: 'GET run (running)', method: 'GET', url: (id) => `/v1/runs/${id}`, ids: () => [aLive, missingRun] },
  { name: 'DELETE run (running)', method: 'DELETE', url: (id) => `/v1/runs/${id}`, ids: () => [aLive, missingRun] },
  { name: 'DELETE run (finished)', method: 'DELETE', url: (id) => `/v1/runs/${id}`, ids: () => [aDone, missingRun] },
  { name: 'GET run audit', method: 'GET', url: (id) => `/v1/runs/${id}/audit`, ids: () => [aDone, missingRun] },
  { name: 'GET run events', method: 'GET', url: (id) => `/v1/runs/${id}/events`, ids: () => [aDone, missingRun] },
  { name: 'GET run events (live)', method: 'GET', url: (id) => `/v1/runs/${id}/events`, ids: () => [aLive, missingRun] },
];

const strip = (s: string, id: string) => s.split(id).join('<id>');

describe('another tenant\'s ids are not found', () => {
  for (const c of cases) {
    it(`${c.name}: 404, the same answer as for an id nobody has`, async () => {
      const [theirs, nobody] = c.ids();
      const r1 = await call(svc.app, c.method, c.url(theirs), { key: b.key });
      const r2 = await call(svc.app, c.method, c.url(nobody), { key: b.key });
      expect(r1.status).toBe(404);
      expect(r2.status).toBe(404);
      const t1 = await r1.text();
      const t2 = await r2.text();
      expect(strip(t1, theirs)).toBe(strip(t2, nobody));
      expect(JSON.parse(t1).error.code).toBe('not_found');
      expect(t1).not.toContain('secret-of-a');
      expect(t1).not.toContain(a.id);
    });
  }

  it('POST /v1/runs with another tenant\'s module: the same 422 as for a module nobody has', async () => {
    const r1 = await call(svc.app, 'POST', '/v1/runs', { key: b.key, json: { module: aModule } });
    const r2 = await call(svc.app, 'POST', '/v1/runs', { key: b.key, json: { module: missingModule } });
    expect(r1.status).toBe(422);
    expect(r2.status).toBe(422);
    expect(strip(await r1.text(), aModule)).toBe(strip(await r2.text(), missingModule));
    const r3 = await call(svc.app, 'POST', '/v1/runs', { key: b.key, json: { manifest: `module: "${aModule}"` } });
    expect(r3.status).toBe(422);
    expect((await json(r3)).error.code).toBe('unknown_module');
  });

  it('POST /v1/runs:batch with another tenant\'s module: refused per item', async () => {
    const r = await json(await call(svc.app, 'POST', '/v1/runs:batch', { key: b.key, json: [{ module: aModule }] }));
    expect(r.items[0]).toMatchObject({ status: 422, error: { code: 'unknown_module' } });
  });

  it('listings show only the caller\'s own', async () => {
    const mods = await call(svc.app, 'GET', '/v1/modules', { key: b.key });
    const runs = await call(svc.app, 'GET', '/v1/runs', { key: b.key });
    const text = (await mods.text()) + (await runs.text());
    for (const id of [aModule, aSlow, aDone, aLive]) expect(text).not.toContain(id);
    expect((await json(await call(svc.app, 'GET', '/v1/runs?status=running', { key: b.key }))).items).toEqual([]);
  });

  it('a cursor cannot reach another tenant\'s rows', async () => {
    const page = await json(await call(svc.app, 'GET', '/v1/runs?limit=1', { key: a.key }));
    expect(page.next).toBeTruthy();
    const r = await call(svc.app, 'GET', `/v1/runs?limit=10&cursor=${page.next}`, { key: b.key });
    expect(r.status).toBeLessThan(500);
    const text = await r.text();
    for (const id of [aDone, aLive]) expect(text).not.toContain(id);
  });

  it('tenant keys cannot use admin routes, on any tenant', async () => {
    const admin = [
      ['GET', '/v1/admin/tenants'], ['POST', `/v1/admin/tenants/${a.id}/keys`], ['POST', `/v1/admin/tenants/${b.id}/keys`],
      ['DELETE', `/v1/admin/tenants/${a.id}/keys/key_x`], ['PUT', `/v1/admin/tenants/${b.id}/policy`], ['POST', '/v1/admin/tenants'],
    ] as const;
    for (const [m, u] of admin) {
      const r = await call(svc.app, m, u, { key: b.key, json: m === 'POST' && u === '/v1/admin/tenants' ? { name: 'x' } : undefined });
      expect(r.status, `${m} ${u}`).toBe(401);
    }
  });

  it('after all that, A\'s things are intact', async () => {
    expect((await call(svc.app, 'GET', `/v1/modules/${aModule}`, { key: a.key })).status).toBe(200);
    const done = await json(await call(svc.app, 'GET', `/v1/runs/${aDone}`, { key: a.key }));
    expect(done).toMatchObject({ status: 'exited', stdout: 'hello secret-of-a\n' });
    // B's DELETE did not cancel A's running run.
    expect((await waitRun(svc.app, a.key, aLive)).status).toBe('exited');
    expect((await call(svc.app, 'GET', `/v1/runs/${aDone}/audit`, { key: a.key })).status).toBe(200);
    const keys = await json(await call(svc.app, 'GET', '/v1/admin/tenants', { headers: { authorization: `Bearer ${ADMIN}` } }));
    expect(keys.items.find((t: { id: string }) => t.id === a.id).keys.every((k: { revokedAt: unknown }) => k.revokedAt === null)).toBe(true);
  });
});

/**
 * Webhooks against a real HTTP receiver on loopback (allowed explicitly here: --webhook-allow-private):
 * signed with the tenant's secret and a timestamp, retried with backoff, recorded; refused for a
 * loopback target when private targets are not allowed, whether named by address or by a name
 * resolving to it; pinned to the address checked; redirects not followed.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Host } from '../../src/host/host.js';
import { createWebhooks, privateAddress, type Lookup, type WebhookOptions } from '../../src/api/webhooks.js';
import { createLogger } from '../../src/api/log.js';
import { call, HELLO, json, startService, testHost, waitRun, type Service } from './helpers.js';

interface Received { path: string; host: string; headers: http.IncomingHttpHeaders; body: string }

/** A receiver on 127.0.0.1 answering each request with the next status of `statuses` (the last one repeats). */
async function receiver(statuses: number[]): Promise<{ port: number; got: Received[]; close(): Promise<void> }> {
  const got: Received[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => { body += d.toString('utf8'); });
    req.on('end', () => {
      got.push({ path: req.url ?? '', host: req.headers.host ?? '', headers: req.headers, body });
      const status = statuses[Math.min(got.length - 1, statuses.length - 1)]!;
      res.writeHead(status, status >= 300 && status < 400 ? { location: `http://127.0.0.1:${port}/elsewhere` } : {});
      res.end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return { port, got, close: () => new Promise((r) => server.close(() => r())) };
}

/** The receiver's side of docs/webhooks.md: recompute the signature, compare in constant time, check the timestamp's age. */
function verify(secret: string, r: Received, maxAgeSeconds = 300): boolean {
  const ts = Number(r.headers['capsa-timestamp']);
  const sig = String(r.headers['capsa-signature'] ?? '');
  if (!Number.isInteger(ts) || Math.abs(Date.now() / 1000 - ts) > maxAgeSeconds) return false;
  const want = Buffer.from(`v1=${createHmac('sha256', secret).update(`${ts}.${r.body}`).digest('hex')}`);
  return want.length === sig.length && timingSafeEqual(want, Buffer.from(sig));
}

let host: Host;
const cleanup: (() => Promise<void>)[] = [];
beforeAll(async () => { host = await testHost({ workers: 2 }); });
afterEach(async () => { for (const f of cleanup.splice(0).reverse()) await f(); });
afterAll(async () => { await host.close(); });

async function service(o: Omit<WebhookOptions, 'store'>): Promise<{ svc: Service; key: string; module: string }> {
  const svc = await startService({ host, webhooks: (store) => createWebhooks({ store, backoffMs: 20, logger: createLogger({ level: 'silent' }), ...o }) });
  cleanup.push(() => svc.close());
  const key = (await svc.tenant()).key;
  return { svc, key, module: await svc.upload(key, HELLO) };
}

const deliveries = async (svc: Service, key: string, id: string) => (await json(await call(svc.app, 'GET', `/v1/runs/${id}/webhooks`, { key }))).items;
const settled = (svc: Service, key: string, id: string) => vi.waitFor(async () => {
  const d = await deliveries(svc, key, id);
  expect(d).toHaveLength(1);
  expect(d[0].state).not.toBe('pending');
  return d[0];
}, { timeout: 20_000, interval: 20 });

describe('webhooks', () => {
  it('POSTs the run\'s end, signed with the tenant\'s secret and a timestamp; retried with backoff after a 500; recorded', async () => {
    const rx = await receiver([500, 204]);
    cleanup.push(() => rx.close());
    const { svc, key, module } = await service({ allowHosts: ['127.0.0.1'], allowPrivate: true });
    const url = `http://127.0.0.1:${rx.port}/hook?x=1`;
    const run = await json(await call(svc.app, 'POST', '/v1/runs', { key, json: { module, callback_url: url } }));
    await waitRun(svc.app, key, run.id);
    const d = await settled(svc, key, run.id);
    expect(d).toMatchObject({ url, state: 'delivered', attempts: 2, lastStatus: 204, lastError: null, nextAt: null });
    expect(rx.got).toHaveLength(2);
    const secret = (await json(await call(svc.app, 'GET', '/v1/webhooks/secret', { key }))).secret;
    expect(secret).toMatch(/^whsec_/);
    for (const [i, r] of rx.got.entries()) {
      expect(r.path).toBe('/hook?x=1');
      expect(r.headers['content-type']).toBe('application/json');
      expect(r.headers['capsa-delivery']).toBe(d.id);
      expect(verify(secret, r)).toBe(true);
      const body = JSON.parse(r.body);
      expect(body).toMatchObject({ type: 'run.finished', delivery: d.id, attempt: i + 1, run: { id: run.id, status: 'exited', exitCode: 0, blame: 'guest' } });
    }
    // Adversarial: another secret, a changed body, or an old timestamp do not verify.
    expect(verify('whsec_other', rx.got[1]!)).toBe(false);
    expect(verify(secret, { ...rx.got[1]!, body: rx.got[1]!.body.replace('exited', 'trapped') })).toBe(false);
    expect(verify(secret, rx.got[1]!, -1)).toBe(false);

    // A rotated secret signs the next deliveries; the old one no longer verifies them.
    const rotated = (await json(await call(svc.app, 'POST', '/v1/webhooks/secret', { key }))).secret;
    expect(rotated).not.toBe(secret);
    const run2 = await json(await call(svc.app, 'POST', '/v1/runs', { key, json: { module, callback_url: url, wait: 10 } }));
    await settled(svc, key, run2.id);
    const last = rx.got[rx.got.length - 1]!;
    expect(verify(rotated, last)).toBe(true);
    expect(verify(secret, last)).toBe(false);
    // Another tenant sees neither the deliveries nor the secret.
    const other = await svc.tenant();
    expect((await call(svc.app, 'GET', `/v1/runs/${run.id}/webhooks`, { key: other.key })).status).toBe(404);
    expect((await json(await call(svc.app, 'GET', '/v1/webhooks/secret', { key: other.key }))).secret).not.toBe(rotated);
    expect(svc.logs.lines.join('\n')).not.toContain(rotated);
  });

  it('gives up after the last attempt and says why; a redirect is not followed', async () => {
    const rx = await receiver([302]);
    cleanup.push(() => rx.close());
    const { svc, key, module } = await service({ allowHosts: ['127.0.0.1'], allowPrivate: true, attempts: 3 });
    const run = await json(await call(svc.app, 'POST', '/v1/runs', { key, json: { module, callback_url: `http://127.0.0.1:${rx.port}/hook`, wait: 10 } }));
    const d = await settled(svc, key, run.id);
    expect(d).toMatchObject({ state: 'failed', attempts: 3, lastStatus: 302 });
    expect(d.lastError).toMatch(/redirects are not followed/);
    expect(rx.got.map((r) => r.path)).toEqual(['/hook', '/hook', '/hook']);
  });

  it('connects to the address it checked, sending the name as Host (resolved once per attempt, pinned)', async () => {
    const rx = await receiver([200]);
    cleanup.push(() => rx.close());
    const asked: string[] = [];
    const lookup: Lookup = async (name) => { asked.push(name); return [{ address: '127.0.0.1', family: 4 }]; };
    const { svc, key, module } = await service({ allowHosts: ['*.hooks.test'], allowPrivate: true, lookup });
    const run = await json(await call(svc.app, 'POST', '/v1/runs', { key, json: { module, callback_url: `http://a.hooks.test:${rx.port}/in`, wait: 10 } }));
    expect((await settled(svc, key, run.id)).state).toBe('delivered');
    expect(asked).toEqual(['a.hooks.test']);
    expect(rx.got[0]!.host).toBe(`a.hooks.test:${rx.port}`);
  });

  it('refuses a loopback target unless private targets are allowed: by address at submission, by name at delivery', async () => {
    const rx = await receiver([200]);
    cleanup.push(() => rx.close());
    // Never connected to: any address that is not public refuses the whole name.
    const lookup: Lookup = async () => [{ address: '93.184.216.34', family: 4 }, { address: '127.0.0.1', family: 4 }];
    const { svc, key, module } = await service({ allowHosts: ['127.0.0.1', '[::1]', 'rebind.test'], lookup });
    for (const url of [`http://127.0.0.1:${rx.port}/`, `http://[::1]:${rx.port}/`]) {
      const r = await call(svc.app, 'POST', '/v1/runs', { key, json: { module, callback_url: url } });
      expect(r.status).toBe(422);
      const e = (await json(r)).error;
      expect(e.message).toMatch(/callback_url is refused: .* is a loopback address/);
      expect(e.details[0].path).toBe('callback_url');
    }
    // A name on the allowlist that resolves to loopback (among public addresses): accepted, then refused, never retried.
    const run = await json(await call(svc.app, 'POST', '/v1/runs', { key, json: { module, callback_url: `http://rebind.test:${rx.port}/`, wait: 10 } }));
    expect(run.status).toBe('exited');
    const d = await settled(svc, key, run.id);
    expect(d).toMatchObject({ state: 'failed', attempts: 1, lastStatus: null });
    expect(d.lastError).toMatch(/rebind\.test resolves to 127\.0\.0\.1 is a loopback address/);
    expect(rx.got).toEqual([]);
  });

  it('refuses a callback_url off the allowlist, of another scheme, with credentials, or when webhooks are off (422, nothing stored)', async () => {
    const { svc, key, module } = await service({ allowHosts: ['hooks.example.com', '*.example.net'] });
    for (const [url, why] of [
      ['https://evil.example.org/x', /not among the hosts the operator allows/],
      ['https://example.net/x', /not among the hosts/],
      ['https://hooks.example.com.evil.org/x', /not among the hosts/],
      ['ftp://hooks.example.com/x', /must be http or https/],
      ['https://user:pw@hooks.example.com/x', /user name or password/],
      ['not a url', /is not a URL/],
    ] as const) {
      const r = await call(svc.app, 'POST', '/v1/runs', { key, json: { module, callback_url: url } });
      expect(r.status, url).toBe(422);
      expect((await json(r)).error.message).toMatch(why);
    }
    expect((await json(await call(svc.app, 'GET', '/v1/runs', { key }))).items).toEqual([]);
    const off = await startService({ host, store: 'fake', paused: true });
    cleanup.push(() => off.close());
    const k = (await off.tenant()).key;
    const m = await off.upload(k, HELLO);
    const r = await call(off.app, 'POST', '/v1/runs', { key: k, json: { module: m, callback_url: 'https://hooks.example.com/x' } });
    expect(r.status).toBe(422);
    expect((await json(r)).error.message).toMatch(/sends no webhooks/);
  });

  it('classifies addresses: private, loopback, link-local, mapped and reserved are refused; public ones pass', () => {
    for (const a of ['10.1.2.3', '172.16.0.1', '192.168.1.1', '127.0.0.1', '169.254.169.254', '0.0.0.0', '100.64.0.1', '::1', 'fe80::1', 'fd00::1', '::ffff:127.0.0.1', '::ffff:10.0.0.1', '224.0.0.1', '::']) {
      expect(privateAddress(a), a).toBeDefined();
    }
    for (const a of ['93.184.216.34', '8.8.8.8', '2606:4700::1111', '::ffff:8.8.8.8']) expect(privateAddress(a), a).toBeUndefined();
  });
});

/**
 * Casper's system.net in the service: a tenant's outgoing connections follow its policy's net
 * rules (none by default), and a manifest asking for more is refused naming each address.
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ADMIN, call, json, startService, type Service } from './helpers.js';

const FETCH = new Uint8Array(readFileSync(path.join(import.meta.dirname, '../../guests/build/fetch.wasm')));

let svc: Service;
let server: http.Server;
let port: number;
let connections = 0;

beforeAll(async () => {
  server = http.createServer((_req, res) => { res.end('from loopback\n'); });
  server.on('connection', () => { connections++; });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as net.AddressInfo).port;
  svc = await startService({ workers: 1 });
});
afterAll(async () => {
  await svc.close();
  await new Promise<void>((r) => server.close(() => r()));
});

const manifest = (connect: string) =>
  `args: ["http://127.0.0.1:${port}/"]\ncasper:\n  system.net: { mode: [connect, name2addr], connect: ["${connect}"] }\n`;

it('the default policy allows no service and no network: the manifest is refused, naming the address', async () => {
  const t = await svc.tenant();
  const m = await svc.upload(t.key, FETCH);
  const r = await call(svc.app, 'POST', '/v1/runs', { key: t.key, json: { module: m, manifest: manifest(`127.0.0.1:${port}`) } });
  const e = (await json(r)).error;
  expect(r.status).toBe(422);
  expect(e.code).toBe('policy_violation');
  expect(e.message).toContain('casper.system.net: the policy does not allow this service');
  expect(e.message).toContain(`casper.system.net: connect to 127.0.0.1:${port} is not allowed by the policy (net.connect allows: none)`);
});

it('a policy that allows the service but no network still refuses every connection it could make', async () => {
  const t = await svc.tenant();
  const admin = { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/yaml' };
  expect((await call(svc.app, 'PUT', `/v1/admin/tenants/${t.id}/policy`, { headers: admin, body: 'casper: { system.net: {} }\n' })).status).toBe(200);
  const m = await svc.upload(t.key, FETCH);
  const r = await call(svc.app, 'POST', '/v1/runs', { key: t.key, json: { module: m, manifest: 'casper: { system.net: {} }\n' } });
  expect(r.status).toBe(422);
  expect((await json(r)).error.message).toContain('casper.system.net: connect to any address');
});

it('a policy naming the address lets the run connect there, and only there', async () => {
  const t = await svc.tenant();
  const admin = { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/yaml' };
  const policy = `casper: { system.net: {} }\nnet: { connect: ["127.0.0.1:${port}"] }\n`;
  expect((await call(svc.app, 'PUT', `/v1/admin/tenants/${t.id}/policy`, { headers: admin, body: policy })).status).toBe(200);
  const m = await svc.upload(t.key, FETCH);
  const before = connections;
  const ok = await json(await call(svc.app, 'POST', '/v1/runs', { key: t.key, json: { module: m, manifest: manifest(`127.0.0.1:${port}`), wait: 20 } }));
  expect(ok.status).toBe('exited');
  expect(ok.exitCode).toBe(0);
  expect(ok.stdout).toBe('from loopback\n');
  expect(connections).toBe(before + 1);
  const wide = await call(svc.app, 'POST', '/v1/runs', { key: t.key, json: { module: m, manifest: manifest(`127.0.0.1:${port + 1}`) } });
  expect(wide.status).toBe(422);
  expect((await json(wide)).error.message).toContain(`connect to 127.0.0.1:${port + 1} is not allowed by the policy (net.connect allows: 127.0.0.1:${port})`);
});

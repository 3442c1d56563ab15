/**
 * Casper's system.net through `capsa serve` with its default process isolation: the executor has
 * no network, the node's own process resolves (system.net's DNS servers from --casper-config),
 * checks the tenant's policy and the manifest's limits, connects, and hands the connection to the
 * guest in its executor. A tenant whose policy does not name the address gets ENOTCAPABLE and the
 * server sees no connection. All traffic stays on 127.0.0.1.
 */
import fs from 'node:fs';
import http from 'node:http';
import type net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startDnsServer, type DnsFixture } from '../helpers/dns.js';
import { api, killServers, REPO, startServe, type Server } from '../helpers/serve.js';
import { bubblewrapStatus } from '../../src/host/executor/sandbox.js';

const ADMIN = 'serve-net-admin-token-0123456789';
const FETCH = new Uint8Array(fs.readFileSync(path.join(REPO, 'guests', 'build', 'fetch.wasm')));

let tmp: string;
let dns: DnsFixture;
let web: http.Server;
let port: number;
let connections = 0;
let s: Server;

beforeAll(async () => {
  tmp = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'capsa-serve-net-')));
  dns = await startDnsServer({ a: { 'web.test': '127.0.0.1' } });
  web = http.createServer((req, res) => { res.end(`hello from ${req.url}\n`); });
  web.on('connection', () => { connections++; });
  await new Promise<void>((r) => web.listen(0, '127.0.0.1', r));
  port = (web.address() as net.AddressInfo).port;
  const config = path.join(tmp, 'casper.yaml');
  fs.writeFileSync(config, `system.net: { servers: ["127.0.0.1:${dns.port}"], timeout: 2000, tries: 2 }\n`);
  s = await startServe(['--data', path.join(tmp, 'data'), '--workers', '1', '--casper-config', config], { CAPSA_ADMIN_TOKEN: ADMIN });
});
afterAll(async () => {
  killServers();
  await new Promise<void>((r) => web.close(() => r()));
  await dns.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** A tenant with this policy (YAML), its key, and the fetch module uploaded. */
async function tenant(name: string, policy: string): Promise<{ key: string; module: string }> {
  const t = await api(s, 'POST', '/v1/admin/tenants', ADMIN, { name, policy });
  expect(t.status).toBe(201);
  const key = (t.body['key'] as { key: string }).key;
  const m = await api(s, 'POST', '/v1/modules', key, FETCH);
  return { key, module: m.body['id'] as string };
}

const manifest = (url: string, connect: string, names = `, name2addr: { hosts: { web.test: "${port}" } }`) =>
  `args: ["${url}"]\ncasper:\n  system.net: { mode: [connect, name2addr], connect: ["${connect}"]${names} }\n`;

it('guests run in executors, under bubblewrap (no network of their own) where this machine has it', () => {
  const listening = s.logs.find((l) => l['msg'] === 'listening') as { isolation: string; executors: { layers: string[] }[] };
  expect(listening.isolation).toBe('best-effort');
  expect(listening.executors.length).toBeGreaterThan(0);
  if (bubblewrapStatus() === true) for (const e of listening.executors) expect(e.layers).toContain('bubblewrap');
});

it('a tenant whose policy names the address: fetch resolves through dns2 and gets the page from its executor', async () => {
  const t = await tenant('allowed', `casper: { system.net: {} }\nnet: { connect: ["web.test:${port}", "127.0.0.1:${port}"] }\n`);
  const before = connections;
  const r = await api(s, 'POST', '/v1/runs', t.key, { module: t.module, manifest: manifest(`http://web.test:${port}/named`, `web.test:${port}`), wait: 25 }, 30_000);
  expect(r.status).toBe(201);
  expect(r.body).toMatchObject({ status: 'exited', exitCode: 0, stdout: 'hello from /named\n' });
  expect(dns.queries).toContain('web.test');
  expect(connections).toBe(before + 1);
});

it('a tenant whose policy does not name the address gets ENOTCAPABLE, and the server sees no connection', async () => {
  // The policy lets the service connect to another port only; the manifest keeps to it.
  const t = await tenant('narrow', `casper: { system.net: {} }\nnet: { connect: ["127.0.0.1:${port + 1}"] }\n`);
  const before = connections;
  const r = await api(s, 'POST', '/v1/runs', t.key, { module: t.module, manifest: manifest(`http://127.0.0.1:${port}/`, `127.0.0.1:${port + 1}`, ''), wait: 25 }, 30_000);
  expect(r.status).toBe(201);
  expect(r.body).toMatchObject({ status: 'exited', exitCode: 1 });
  expect(r.body['stderr']).toMatch(/connect 127\.0\.0\.1:\d+: Capabilities insufficient/);
  expect(connections).toBe(before);
});

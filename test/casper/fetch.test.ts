// Casper's system.net end to end: guests/src/fetch.c (an HTTP GET through cap_getaddrinfo and
// cap_connect, after cap_enter) through createHost, against a real HTTP server and a DNS server
// on loopback. A name or address outside the limits never reaches either.
import fs from 'node:fs';
import http from 'node:http';
import type net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHost, type Host } from '../../src/host/host.js';
import { startDnsServer, type DnsFixture } from '../helpers/dns.js';

const guest = (name: string) => fs.readFileSync(new URL(`../../guests/build/${name}.wasm`, import.meta.url));
const text = (b: Uint8Array) => new TextDecoder().decode(b);

let dns: DnsFixture;
let host: Host;
let server: http.Server;
let port: number;
/** Connections the HTTP server saw, and the paths asked. */
let connections = 0;
const paths: string[] = [];

beforeAll(async () => {
  dns = await startDnsServer({ a: { 'web.test': '127.0.0.1', 'other.test': '127.0.0.1' } });
  server = http.createServer((req, res) => {
    paths.push(req.url ?? '');
    if (req.url === '/missing') { res.writeHead(404); res.end('no\n'); return; }
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end(`hello from ${req.url}\n`);
  });
  server.on('connection', () => { connections++; });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as net.AddressInfo).port;
  host = await createHost({ workers: 1, casperConfig: { 'system.net': { servers: [`127.0.0.1:${dns.port}`], timeout: 2000, tries: 2 } } });
});
afterAll(async () => {
  await host.close();
  await new Promise<void>((r) => server.close(() => r()));
  await dns.close();
});

describe('fetch', () => {
  it('GETs a page through system.net after cap_enter, narrowing itself to the one name', async () => {
    const r = await host.run({
      module: guest('fetch'), args: [`http://web.test:${port}/index.html`],
      casper: { 'system.net': { mode: ['name2addr', 'connectdns', 'connect'], name2addr: { hosts: { 'web.test': '' } } } },
      audit: 'all',
    });
    expect(text(r.stderr)).toContain('HTTP/1.1 200 OK');
    expect(r.exitCode).toBe(0);
    expect(text(r.stdout)).toBe('hello from /index.html\n');
    expect(dns.queries).toContain('web.test');
    const connects = r.audit.events.filter((e) => e.call === 'cap_connect');
    expect(connects).toEqual([expect.objectContaining({ path: `127.0.0.1:${port}`, decision: 'allowed' })]);
  });

  it('a manifest naming the address to connect to: fetch keeps the narrower grant and still gets the page', async () => {
    const r = await host.run({
      module: guest('fetch'), args: [`http://web.test:${port}/named`],
      casper: { 'system.net': { mode: ['connect', 'name2addr'], connect: [`web.test:${port}`], name2addr: { hosts: { 'web.test': String(port) } } } },
    });
    expect(text(r.stderr)).toContain('keeping the granted limits');
    expect(r.exitCode).toBe(0);
    expect(text(r.stdout)).toBe('hello from /named\n');
  });

  it('a name outside name2addr is refused before any query, and nothing connects', async () => {
    const before = connections;
    dns.queries.length = 0;
    const r = await host.run({
      module: guest('fetch'), args: [`http://other.test:${port}/`],
      casper: { 'system.net': { mode: ['name2addr', 'connectdns'], name2addr: { hosts: { 'web.test': '' } } } },
      audit: 'denied',
    });
    expect(r.exitCode).toBe(1);
    expect(text(r.stderr)).toMatch(/other\.test:\d+: Capabilities insufficient/);
    expect(dns.queries).toEqual([]);
    expect(connections).toBe(before);
    expect(r.audit.events).toContainEqual(expect.objectContaining({ call: 'cap_getaddrinfo', path: `other.test:${port}`, decision: 'denied' }));
  });

  it('cap_connect to an address outside the connect limits is refused: the server sees no connection attempt', async () => {
    const before = connections;
    // The name resolves, but the grant allows connecting to another port only.
    const r = await host.run({
      module: guest('fetch'), args: [`http://127.0.0.1:${port}/`],
      casper: { 'system.net': { mode: ['connect', 'name2addr'], connect: [`127.0.0.1:${port + 1}`] } },
      audit: 'denied',
    });
    expect(r.exitCode).toBe(1);
    expect(text(r.stderr)).toMatch(/connect 127\.0\.0\.1:\d+: Capabilities insufficient/);
    expect(r.audit.events).toContainEqual(expect.objectContaining({
      call: 'cap_connect', path: `127.0.0.1:${port}`, decision: 'denied', message: expect.stringContaining('connect limits'),
    }));
    // An allowed fetch made after it is the only connection the server sees.
    const ok = await host.run({ module: guest('fetch'), args: [`http://127.0.0.1:${port}/after`], casper: { 'system.net': {} } });
    expect(ok.exitCode).toBe(0);
    expect(connections).toBe(before + 1);
  });

  it('without a system.net grant the service cannot be opened', async () => {
    const before = connections;
    const r = await host.run({ module: guest('fetch'), args: [`http://127.0.0.1:${port}/`] });
    expect(r.exitCode).toBe(1);
    expect(text(r.stderr)).toContain('unable to open system.net');
    expect(connections).toBe(before);
  });

  it('a non-2xx status exits 2', async () => {
    const r = await host.run({ module: guest('fetch'), args: [`http://127.0.0.1:${port}/missing`], casper: { 'system.net': {} } });
    expect(r.exitCode).toBe(2);
    expect(text(r.stderr)).toContain('404');
  });
});

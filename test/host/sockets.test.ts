/**
 * Sockets end to end: guests handed listening sockets by the host serve real loopback clients;
 * a guest without a grant gets none; limits end misbehaving guests with the host's memory flat;
 * a run's sockets close when it ends. All traffic stays on 127.0.0.1.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createHost, type Host, type RunRequest } from '../../src/host/host.js';
import type { RunResult } from '../../src/host/result.js';

const run = promisify(execFile);
const guest = (name: string) => fs.readFileSync(path.join(import.meta.dirname, '../../guests/build', `${name}.wasm`));
const decode = (b: Uint8Array) => new TextDecoder().decode(b);

let host: Host;
let site: string;
beforeAll(async () => {
  host = await createHost({ workers: 2 });
  site = fs.mkdtempSync(path.join(os.tmpdir(), 'capsa-site-'));
  fs.writeFileSync(path.join(site, 'index.html'), '<h1>served by a guest</h1>\n');
  fs.writeFileSync(path.join(site, 'big.bin'), Buffer.alloc(1 << 20, 7));
});
afterAll(async () => {
  await host.close();
  fs.rmSync(site, { recursive: true, force: true });
});

/** Starts a run with sockets; resolves once it listens, with its address and a way to end it. */
async function serve(req: Omit<RunRequest, 'signal' | 'onListening'>): Promise<{ addr: string; stop(): Promise<RunResult>; result: Promise<RunResult> }> {
  const ac = new AbortController();
  let addr: string | undefined;
  const result = host.run({ ...req, signal: ac.signal, onListening: (a) => { addr = a[0]; } });
  await vi.waitFor(() => { if (!addr) throw new Error('not listening yet'); }, { timeout: 20_000, interval: 20 });
  return { addr: addr!, result, stop: () => { ac.abort(); return result; } };
}

function get(addr: string, p: string): Promise<{ status: number; body: string }> {
  const [hostname, port] = addr.split(':');
  return new Promise((resolve, reject) => {
    http.get({ hostname, port: Number(port), path: p, agent: false }, (res) => {
      let body = '';
      res.setEncoding('latin1');
      res.on('data', (c: string) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    }).on('error', reject);
  });
}

const httpd = () => ({ module: guest('httpd'), dirs: [{ guest: '/site', host: site, readonly: true }], sockets: [{ bind: '127.0.0.1:0' }], limits: { wallMs: 60_000, fds: 256 } });

describe('httpd under capsa', () => {
  it('serves curl, 404s and 405s, and closes its sockets when the run ends', async () => {
    const s = await serve(httpd());
    const { stdout } = await run('curl', ['-s', '-i', `http://${s.addr}/index.html`]);
    expect(stdout).toMatch(/^HTTP\/1.1 200 OK/);
    expect(stdout).toContain('<h1>served by a guest</h1>');
    expect((await get(s.addr, '/missing')).status).toBe(404);
    expect((await get(s.addr, '/../etc/passwd')).status).toBe(403);
    const r = await s.stop();
    expect(r.status).toBe('cancelled');
    // The listener went with the run.
    const [h, p] = s.addr.split(':');
    await expect(new Promise((resolve, reject) => net.connect(Number(p), h).on('connect', resolve).on('error', reject))).rejects.toThrow(/ECONNREFUSED/);
  });

  it('serves 64 concurrent loopback clients without error', async () => {
    const s = await serve(httpd());
    const rounds = 4;
    const clients = Array.from({ length: 64 }, async () => {
      const out: number[] = [];
      for (let i = 0; i < rounds; i++) {
        const r = await get(s.addr, i % 2 ? '/big.bin' : '/index.html');
        expect(r.body.length).toBe(i % 2 ? 1 << 20 : 27);
        out.push(r.status);
      }
      return out;
    });
    const statuses = (await Promise.all(clients)).flat();
    expect(statuses).toEqual(new Array(64 * rounds).fill(200));
    const r = await s.stop();
    expect(r.status).toBe('cancelled');
    expect(decode(r.stderr)).toBe('');
  });
});

describe('sockets as grants', () => {
  it('a seed-style program takes its listener from argdata (!socket), enters capability mode, and echoes', async () => {
    const s = await serve({
      module: guest('echod'), limits: { wallMs: 30_000 },
      argdata: { type: 'map', entries: [
        [{ type: 'str', value: 'listener' }, { type: 'socket', socket: { bind: '127.0.0.1:0' } }],
        [{ type: 'str', value: 'greeting' }, { type: 'str', value: 'hello' }],
        [{ type: 'str', value: 'count' }, { type: 'int', value: 1n }],
      ] },
    });
    const [h, p] = s.addr.split(':');
    const c = net.connect(Number(p), h);
    let got = '';
    c.setEncoding('utf8');
    c.on('data', (d: string) => { got += d; });
    c.write('ping\n');
    await vi.waitFor(() => expect(got).toBe('hello\nping\n'), { timeout: 20_000 });
    c.end();
    const r = await s.result;
    expect([r.status, r.exitCode, decode(r.stderr)]).toEqual(['exited', 0, '']);
  });

  it('a guest without a socket grant cannot obtain one by any call', async () => {
    const r = await host.run({ module: guest('sockprobe'), args: ['grab'], files: { '/tmp/x.sock': '' } });
    expect(decode(r.stdout)).not.toMatch(/is a socket|sock_accept\(\d+\): 0\n/);
    expect([r.status, r.exitCode]).toEqual(['exited', 0]);
  });

  it('a socket that cannot be bound rejects the run with the address named', async () => {
    const blocker = net.createServer().listen(0, '127.0.0.1');
    await new Promise((r) => blocker.once('listening', r));
    const port = (blocker.address() as net.AddressInfo).port;
    try {
      await expect(host.run({ module: guest('httpd'), sockets: [{ bind: `127.0.0.1:${port}` }] })).rejects.toThrow(`Cannot listen on 127.0.0.1:${port}`);
      await expect(host.run({ module: guest('httpd'), sockets: [{ bind: '/tmp/capsa-no.sock', type: 'dgram' }] })).rejects.toThrow(/datagram sockets are UDP/);
    } finally {
      blocker.close();
    }
  });
});

describe('socket limits', () => {
  it('a run that times out closes its listener and its connections too', async () => {
    const s = await serve({ module: guest('sockprobe'), args: ['hold'], sockets: [{ bind: '127.0.0.1:0' }], limits: { wallMs: 3000 } });
    const [h, p] = s.addr.split(':');
    const c = net.connect(Number(p), h).on('error', () => {});
    const closed = new Promise<void>((r) => c.on('close', () => r()));
    const r = await s.result;
    expect([r.status, r.timeout]).toEqual(['timeout', 'wall']);
    await closed;
    await expect(new Promise((resolve, reject) => net.connect(Number(p), h).on('connect', resolve).on('error', reject))).rejects.toThrow(/ECONNREFUSED/);
  });

  it('connections past net.connections are refused, each an audit entry', async () => {
    const s = await serve({ ...httpd(), net: { connections: 2 }, audit: 'denied' });
    const [h, p] = s.addr.split(':');
    const socks = Array.from({ length: 3 }, () => net.connect(Number(p), h).on('error', () => {}));
    const closed = socks.map((c) => new Promise<void>((r) => c.on('close', () => r())));
    await Promise.race(closed);
    const r = await s.stop();
    for (const c of socks) c.destroy();
    const refusals = r.audit.events.filter((e) => e.call === 'sock_accept' && e.decision === 'denied');
    expect(refusals.length).toBeGreaterThanOrEqual(1);
    expect(refusals[0]!.message).toMatch(/Refused a connection from 127\.0\.0\.1:\d+ on 127\.0\.0\.1:\d+: the run has 2 connections open, its limit \(net.connections\)/);
  });

  it('a guest that floods sends ends by net.bytes (output_limit)', async () => {
    const s = await serve({ module: guest('sockprobe'), args: ['flood'], sockets: [{ bind: '127.0.0.1:0' }], net: { bytes: 4 << 20 }, limits: { wallMs: 30_000 } });
    const [h, p] = s.addr.split(':');
    let received = 0;
    const c = net.connect(Number(p), h).on('data', (d) => { received += d.length; }).on('error', () => {});
    const r = await s.result;
    c.destroy();
    expect(r.status).toBe('output_limit');
    expect(r.message).toBe("the run's network traffic exceeded its limit of 4194304 bytes (net.bytes)");
    expect(received).toBeLessThanOrEqual(4 << 20);
  });

  it('a guest that never reads, or a peer that never reads, cannot make the host buffer: memory stays flat', async () => {
    const rss0 = process.memoryUsage().rss;
    // A peer pushing 256 MiB at a guest that never reads: the guest's ring fills, the host pauses the socket.
    const hold = await serve({ module: guest('sockprobe'), args: ['hold'], sockets: [{ bind: '127.0.0.1:0' }], limits: { wallMs: 60_000 } });
    const [h1, p1] = hold.addr.split(':');
    const pusher = net.connect(Number(p1), h1).on('error', () => {});
    let pushed = 0;
    const chunk = Buffer.alloc(1 << 20, 1);
    const push = () => { while (pushed < 256 << 20) { pushed += chunk.length; if (!pusher.write(chunk)) return; } };
    pusher.on('drain', push);
    pusher.on('connect', push);
    // A guest flooding a peer that never reads: its sends block once the rings and the kernel are full.
    const flood = await serve({ module: guest('sockprobe'), args: ['flood'], sockets: [{ bind: '127.0.0.1:0' }], limits: { wallMs: 60_000 } });
    const [h2, p2] = flood.addr.split(':');
    const sink = net.connect(Number(p2), h2).on('error', () => {});
    sink.pause();
    // Backpressure reaches the pusher: it settles (five samples alike) long before 256 MiB. A host
    // that buffered without bound would take all 256 MiB and settle only then.
    let last = -1, same = 0;
    await vi.waitFor(() => {
      if (pushed !== last || pusher.writableLength === 0) { last = pushed; same = 0; throw new Error(`still pushing: ${pushed}`); }
      if (++same < 5) throw new Error('settling');
    }, { timeout: 30_000, interval: 100 });
    expect(pushed).toBeLessThan(64 << 20);
    expect(process.memoryUsage().rss - rss0).toBeLessThan(200 << 20);
    const [r1, r2] = await Promise.all([hold.stop(), flood.stop()]);
    pusher.destroy();
    sink.destroy();
    expect([r1.status, r2.status]).toEqual(['cancelled', 'cancelled']);
  });
});

/**
 * Sockets under process isolation: the executor has no network (bubblewrap's --unshare-net), so
 * the engine binds and connects, after the limits check, and hands the descriptor to the executor,
 * where the guest uses it as on a thread. Casper's cap_connect and a pre-bound listener work; an
 * address outside the limits reaches nothing; a guest that stops reading makes neither process
 * buffer without bound; the sockets close when the run ends or its executor is killed. All traffic
 * stays on 127.0.0.1.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createHost, type Host, type RunRequest } from '../../src/host/host.js';
import type { ExecutorPool } from '../../src/host/executor/executor-pool.js';
import { denoBinary } from '../../src/host/executor/sandbox.js';

const guest = (name: string) => fs.readFileSync(path.join(import.meta.dirname, '../../guests/build', `${name}.wasm`));
const text = (b: Uint8Array) => new TextDecoder().decode(b);

let host: Host;
let web: http.Server;
let webPort: number;
let webConnections = 0;

/** A server that pushes up to 256 MiB at each client, as fast as the client's side takes it. */
interface Flood { port: number; pushed: () => number; blocked: () => boolean; closed: Promise<void>; connected: Promise<void>; close(): void }
async function floodServer(): Promise<Flood> {
  let socket: net.Socket | undefined;
  let pushed = 0;
  let onClose!: () => void, onConnect!: () => void;
  const closed = new Promise<void>((r) => { onClose = r; });
  const connected = new Promise<void>((r) => { onConnect = r; });
  const chunk = Buffer.alloc(1 << 20, 1);
  const server = net.createServer((s) => {
    socket = s;
    onConnect();
    s.on('error', () => {});
    s.on('close', onClose);
    const push = () => { while (pushed < 256 << 20) { pushed += chunk.length; if (!s.write(chunk)) return; } };
    s.on('drain', push);
    push();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    pushed: () => pushed,
    blocked: () => (socket?.writableLength ?? 0) > 0,
    closed, connected,
    close: () => { socket?.destroy(); server.close(); },
  };
}

/** Waits until the flood settles (five samples alike, its socket blocked): back-pressure reached it. */
async function settled(f: Flood): Promise<void> {
  let last = -1, same = 0;
  await vi.waitFor(() => {
    if (f.pushed() !== last || !f.blocked()) { last = f.pushed(); same = 0; throw new Error(`still pushing: ${f.pushed()}`); }
    if (++same < 5) throw new Error('settling');
  }, { timeout: 30_000, interval: 100 });
}

/** Starts `hold` against `port` and resolves once it says it is connected. */
async function holding(h: Host, port: number, extra: Partial<RunRequest> = {}) {
  const ac = new AbortController();
  const handle = h.start({ module: guest('hold'), args: ['127.0.0.1', String(port)], casper: { 'system.net': {} }, limits: { wallMs: 60_000 }, signal: ac.signal, ...extra });
  const it = handle[Symbol.asyncIterator]();
  let out = '';
  while (!out.includes('connected')) {
    const e = await it.next();
    if (e.done) throw new Error('hold ended before it connected');
    if (e.value.type === 'stdout') out += text(e.value.data);
    if (e.value.type === 'result') throw new Error(`hold ended before it connected: ${e.value.result.status} ${text(e.value.result.stderr)}`);
  }
  return { result: handle.result, stop: () => { ac.abort(); return handle.result; } };
}

beforeAll(async () => {
  web = http.createServer((req, res) => { res.end(`hello from ${req.url}\n`); });
  web.on('connection', () => { webConnections++; });
  await new Promise<void>((r) => web.listen(0, '127.0.0.1', r));
  webPort = (web.address() as net.AddressInfo).port;
  host = await createHost({ workers: 1, isolation: 'process', executors: { count: 1 } });
});
afterAll(async () => {
  await host.close();
  await new Promise<void>((r) => web.close(() => r()));
});

describe('sockets under process isolation', () => {
  it('cap_connect works from an executor: the engine connects, the executor holds the socket', async () => {
    expect(host.executors()[0]!.layers).toContain('capsicum-rights');
    const before = webConnections;
    const r = await host.run({ module: guest('fetch'), args: [`http://127.0.0.1:${webPort}/page`], casper: { 'system.net': {} }, audit: 'all' });
    expect(text(r.stderr)).toContain('HTTP/1.1 200 OK');
    expect(r.exitCode).toBe(0);
    expect(text(r.stdout)).toBe('hello from /page\n');
    expect(webConnections).toBe(before + 1);
    expect(r.audit.events).toContainEqual(expect.objectContaining({ call: 'cap_connect', path: `127.0.0.1:${webPort}`, decision: 'allowed' }));
  });

  it('an address outside the limits is refused with ENOTCAPABLE, and the server sees no connection', async () => {
    const before = webConnections;
    const r = await host.run({
      module: guest('fetch'), args: [`http://127.0.0.1:${webPort}/`],
      casper: { 'system.net': { mode: ['connect', 'name2addr'], connect: [`127.0.0.1:${webPort + 1}`] } }, audit: 'denied',
    });
    expect(r.exitCode).toBe(1);
    expect(text(r.stderr)).toMatch(/connect 127\.0\.0\.1:\d+: Capabilities insufficient/);
    expect(r.audit.events).toContainEqual(expect.objectContaining({ call: 'cap_connect', decision: 'denied' }));
    expect(webConnections).toBe(before);
  });

  it('a run at its connection limit is refused before anything is sent (EMFILE)', async () => {
    const before = webConnections;
    const r = await host.run({ module: guest('fetch'), args: [`http://127.0.0.1:${webPort}/`], casper: { 'system.net': {} }, net: { connections: 0 } });
    expect(r.exitCode).toBe(1);
    expect(text(r.stderr)).toContain('No file descriptors available'); // EMFILE, as wasi-libc spells it
    expect(webConnections).toBe(before);
  });

  it('a pre-bound listener (--listen, !socket { bind }) serves from the executor', async () => {
    const ac = new AbortController();
    let addr: string | undefined;
    const result = host.run({
      module: guest('httpd'), args: ['/site'], files: { '/site/index.html': 'served from an executor\n' },
      sockets: [{ bind: '127.0.0.1:0' }], limits: { wallMs: 60_000 }, signal: ac.signal, onListening: (a) => { addr = a[0]; },
    });
    await vi.waitFor(() => { if (!addr) throw new Error('not listening yet'); }, { timeout: 20_000, interval: 20 });
    for (let i = 0; i < 3; i++) {
      const res = await fetch(`http://${addr}/index.html`, { headers: { connection: 'close' } });
      expect(res.status).toBe(200);
      expect(await res.text()).toBe('served from an executor\n');
    }
    ac.abort();
    expect((await result).status).toBe('cancelled');
    // The listener closed with the run: in the executor, and the engine kept no copy.
    await expect(fetch(`http://${addr}/index.html`)).rejects.toThrow();
  });

  it('the listener of a queued run is announced once its executor holds it; a connection before that is reset, never left hanging', async () => {
    const h = await createHost({ workers: 1, isolation: 'process', executors: { count: 1 } });
    const free = net.createServer();
    await new Promise<void>((r) => free.listen(0, '127.0.0.1', r));
    const port = (free.address() as net.AddressInfo).port;
    await new Promise<void>((r) => free.close(() => r()));
    const first = new AbortController(), second = new AbortController();
    try {
      // The only worker is busy, so the second run waits in the queue with its listener bound here.
      let busy: string | undefined;
      const running = h.run({ module: guest('httpd'), args: ['/site'], files: { '/site/index.html': 'a\n' }, sockets: [{ bind: '127.0.0.1:0' }], signal: first.signal, onListening: (a) => { busy = a[0]; } });
      await vi.waitFor(() => { if (!busy) throw new Error('first run not listening yet'); }, { timeout: 20_000, interval: 20 });
      let announced: string | undefined;
      const queued = h.run({
        module: guest('httpd'), args: ['/site'], files: { '/site/index.html': 'queued\n' },
        sockets: [{ bind: `127.0.0.1:${port}` }], signal: second.signal, onListening: (a) => { announced = a[0]; },
      });
      // Wait until the port is bound, then a client that connects before the executor holds it is closed.
      const early = await vi.waitFor(() => new Promise<net.Socket>((resolve, reject) => {
        const c = net.connect(port, '127.0.0.1', () => resolve(c));
        c.on('error', reject);
      }), { timeout: 20_000, interval: 20 });
      const closed = new Promise<void>((r) => early.on('close', () => r()));
      early.on('error', () => {});
      await closed;
      expect(announced).toBeUndefined();
      first.abort();
      expect((await running).status).toBe('cancelled');
      await vi.waitFor(() => { if (!announced) throw new Error('not announced yet'); }, { timeout: 20_000, interval: 20 });
      const res = await fetch(`http://${announced}/index.html`, { headers: { connection: 'close' } });
      expect(await res.text()).toBe('queued\n');
      second.abort();
      expect((await queued).status).toBe('cancelled');
    } finally {
      first.abort();
      second.abort();
      await h.close();
    }
  });

  it('a guest that stops reading makes neither the engine nor the executor buffer without bound; its socket closes when the run ends', async () => {
    const flood = await floodServer();
    const rss0 = process.memoryUsage().rss;
    const exec0 = host.executors()[0]!.rssBytes;
    const hold = await holding(host, flood.port);
    await flood.connected;
    await settled(flood);
    // 256 MiB wanted; what left the server is the kernel's buffers and the slot's 64 KiB ring.
    expect(flood.pushed()).toBeLessThan(64 << 20);
    expect(process.memoryUsage().rss - rss0).toBeLessThan(200 << 20);
    // The executor's heartbeat reports its RSS every 500 ms.
    await vi.waitFor(() => expect(host.executors()[0]!.rssBytes).not.toBe(exec0), { timeout: 10_000 });
    expect(host.executors()[0]!.rssBytes - exec0).toBeLessThan(200 << 20);
    expect((await hold.stop()).status).toBe('cancelled');
    await flood.closed;
    flood.close();
  });

  it('a run that times out closes its connection', async () => {
    const flood = await floodServer();
    const hold = await holding(host, flood.port, { limits: { wallMs: 1500 } });
    const r = await hold.result;
    expect(r.status).toBe('timeout');
    await flood.closed;
    flood.close();
  });
});

describe('an executor killed mid-connection', () => {
  it('the server sees the connection close, and the run ends crashed (host_error, blame host), once', async () => {
    const h = await createHost({ workers: 1, isolation: 'process', executors: { count: 1 } });
    try {
      const flood = await floodServer();
      const hold = await holding(h, flood.port);
      await flood.connected;
      const [victim] = (h.pool as ExecutorPool).busyPids();
      process.kill(victim!, 'SIGKILL');
      await flood.closed;
      const r = await hold.result;
      expect(r).toMatchObject({ status: 'host_error', blame: 'host', message: expect.stringMatching(/SIGKILL/) });
      flood.close();
      // The replacement executor serves sockets too.
      await vi.waitFor(() => expect(h.executors()[0]?.pid).not.toBe(victim), { timeout: 20_000 });
      const ok = await h.run({ module: guest('fetch'), args: [`http://127.0.0.1:${webPort}/again`], casper: { 'system.net': {} } });
      expect(text(ok.stdout)).toBe('hello from /again\n');
    } finally {
      await h.close();
    }
  });
});

const hasDeno = spawnSync(denoBinary(), ['--version']).status === 0;

describe.skipIf(!hasDeno)('a Deno executor', () => {
  it('takes connections made here (cap_connect); a pre-bound listener is refused up front, naming where it works', async () => {
    const h = await createHost({ workers: 1, isolation: 'process', executors: { count: 1, runtime: 'deno' } });
    try {
      expect(h.executors()[0]!.layers).toContain('deno-permission');
      const r = await h.run({ module: guest('fetch'), args: [`http://127.0.0.1:${webPort}/deno`], casper: { 'system.net': {} } });
      expect(text(r.stdout)).toBe('hello from /deno\n');
      // Deno sometimes leaves a handed listener's first connection unanswered: refused, never a hang.
      let announced = false;
      await expect(h.run({
        module: guest('httpd'), args: ['/site'], files: { '/site/index.html': 'from deno\n' },
        sockets: [{ bind: '127.0.0.1:0' }], onListening: () => { announced = true; },
      })).rejects.toThrow(/Cannot open the listener 127\.0\.0\.1:0: Deno executors cannot serve a listener handed to them; run it on Node executors/);
      expect(announced).toBe(false);
    } finally {
      await h.close();
    }
  });
});

/**
 * The host's end of a run's sockets as Casper's system.net uses it: connect and listen on demand
 * into the run's slots, nothing sent once the slots are full, a released listener closed.
 */
import net from 'node:net';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { NetOwner, SocketOpenError } from '../../src/host/net/owner.js';
import { ERRNO } from '../../src/wasi/constants.js';

let server: net.Server;
let port: number;
let seen = 0;
beforeAll(async () => {
  server = net.createServer((s) => { seen++; s.on('error', () => {}); });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as net.AddressInfo).port;
});
afterAll(async () => { await new Promise<void>((r) => server.close(() => r())); });

const owner = (connections: number) => new NetOwner(0, { connections, backlog: 4, maxBytes: 1 << 20, maxDatagrams: 1000, audit: () => {} });

it('past net.connections a connect is EMFILE and sends nothing', async () => {
  const o = owner(1);
  await o.open([], undefined);
  try {
    const before = seen;
    expect(await o.connect({ kind: 'tcp', host: '127.0.0.1', port })).toBe(0);
    await vi.waitFor(() => expect(seen).toBe(before + 1));
    const full = await o.connect({ kind: 'tcp', host: '127.0.0.1', port }).catch((e: unknown) => e);
    expect(full).toBeInstanceOf(SocketOpenError);
    expect(full).toMatchObject({ errno: ERRNO.MFILE, message: expect.stringContaining('net.connections') });
    // A connection made after it is the next one the server sees: the refused one never went out.
    o.release(0);
    expect(await o.connect({ kind: 'tcp', host: '127.0.0.1', port })).toBe(0);
    await vi.waitFor(() => expect(seen).toBe(before + 2));
  } finally {
    o.close();
  }
});

it('a refused connect answers its errno; a released listener stops listening; nothing opens after close', async () => {
  const o = owner(2);
  await o.open([], undefined);
  const probe = net.createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  const free = (probe.address() as net.AddressInfo).port;
  await new Promise<void>((r) => probe.close(() => r()));
  expect(await o.connect({ kind: 'tcp', host: '127.0.0.1', port: free }).catch((e: unknown) => e)).toMatchObject({ errno: ERRNO.CONNREFUSED });
  const slot = await o.listen({ kind: 'tcp', host: '127.0.0.1', port: free });
  expect(o.addresses).toEqual([`127.0.0.1:${free}`]);
  o.release(slot);
  await vi.waitFor(async () => {
    const e = await new Promise<unknown>((resolve) => { const c = net.connect(free, '127.0.0.1'); c.once('connect', () => { c.destroy(); resolve(undefined); }); c.once('error', resolve); });
    expect(e).toMatchObject({ code: 'ECONNREFUSED' });
  });
  o.close();
  expect(await o.connect({ kind: 'tcp', host: '127.0.0.1', port }).catch((e: unknown) => e)).toMatchObject({ errno: ERRNO.CANCELED });
});

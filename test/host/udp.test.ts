/**
 * Datagram (UDP) sockets: `!socket { type: dgram, connect | bind }` hands the guest a datagram
 * socket; preview1's sock_send and sock_recv move one datagram each (a short buffer truncates it and
 * says so in roflags); preview1 has no sendto or recvfrom, so a connected socket talks to its peer
 * and a bound one only receives. Rights and limits (bytes, datagrams) hold as for streams, on
 * worker threads and in executor processes (which get the descriptor from the engine). Loopback only.
 */
import { spawnSync } from 'node:child_process';
import dgram from 'node:dgram';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHost, type Host, type RunRequest } from '../../src/host/host.js';
import { denoBinary } from '../../src/host/executor/sandbox.js';
import { R } from '../../src/wasi/rights.js';
import { STREAM_SOCKET_RIGHTS } from '../../src/wasi/sockets.js';

const DGRAM = fs.readFileSync(path.join(import.meta.dirname, '../../guests/build/dgram.wasm'));
const text = (b: Uint8Array) => new TextDecoder().decode(b);

let echo: dgram.Socket;
let echoPort: number;
/** Datagrams the echo server got. */
const got: string[] = [];

beforeAll(async () => {
  echo = dgram.createSocket('udp4');
  echo.on('message', (msg, from) => { got.push(String(msg)); echo.send(`echo:${msg}`, from.port, from.address); });
  await new Promise<void>((r) => echo.bind(0, '127.0.0.1', r));
  echoPort = echo.address().port;
});
afterAll(() => { echo.close(); });

/** Runs the guest on a bound datagram socket, sending `message` to it until the run ends. */
async function receiving(host: Host, req: Partial<RunRequest>, message: string) {
  const client = dgram.createSocket('udp4');
  let timer: NodeJS.Timeout | undefined;
  try {
    return await host.run({
      module: DGRAM, sockets: [{ bind: '127.0.0.1:0', type: 'dgram' }], limits: { wallMs: 20_000 }, ...req,
      onListening: ([addr]) => {
        const [h, p] = addr!.split(':');
        // UDP may drop: the guest takes what arrives once it is ready.
        timer = setInterval(() => client.send(message, Number(p), h), 20);
      },
    });
  } finally {
    clearInterval(timer);
    client.close();
  }
}

describe.each([['worker threads', 'thread'], ['executor processes', 'process']] as const)('UDP on %s', (_name, isolation) => {
  let host: Host;
  beforeAll(async () => { host = await createHost({ workers: 1, isolation, executors: { count: 1 } }); });
  afterAll(async () => { await host.close(); });

  const connected = (extra: Partial<RunRequest> = {}): RunRequest => ({
    module: DGRAM, sockets: [{ connect: `127.0.0.1:${echoPort}`, type: 'dgram' }], limits: { wallMs: 20_000 }, ...extra,
  });

  it('a connected datagram socket sends one datagram and receives the answer', async () => {
    const r = await host.run({ ...connected(), args: ['ping', 'hello'] });
    expect(text(r.stdout)).toBe('10: echo:hello\n');
    expect(r.exitCode).toBe(0);
    expect(got).toContain('hello');
  });

  it('a bound datagram socket receives; a short buffer truncates the datagram and roflags says so', async () => {
    const whole = await receiving(host, { args: ['recv', '64'] }, 'abcdefgh');
    expect(text(whole.stdout)).toBe('8: abcdefgh\n');
    const cut = await receiving(host, { args: ['recv', '4', '2'] }, 'abcdefgh');
    expect(text(cut.stdout)).toBe('4 truncated: abcd\n4 truncated: abcd\n');
  });

  it('a bound datagram socket cannot send: preview1 has no sendto (EDESTADDRREQ)', async () => {
    const r = await host.run({ module: DGRAM, sockets: [{ bind: '127.0.0.1:0', type: 'dgram' }], args: ['ping', 'x'] });
    expect(text(r.stdout)).toBe('fd 3: sock_send: Destination address required\n');
    expect(r.exitCode).toBe(1);
  });

  it('rights: without CAP_RECV sock_recv is ENOTCAPABLE, without CAP_SEND sock_send is', async () => {
    const noRecv = await host.run({ ...connected(), args: ['ping', 'r'], sockets: [{ connect: `127.0.0.1:${echoPort}`, type: 'dgram', rights: { base: STREAM_SOCKET_RIGHTS & ~R.fd_read, inheriting: 0n, names: [] } }] });
    expect(text(noRecv.stdout)).toBe('fd 3: sock_recv: Capabilities insufficient\n');
    const noSend = await host.run({ ...connected(), args: ['ping', 's'], sockets: [{ connect: `127.0.0.1:${echoPort}`, type: 'dgram', rights: { base: STREAM_SOCKET_RIGHTS & ~R.fd_write, inheriting: 0n, names: [] } }] });
    expect(text(noSend.stdout)).toBe('fd 3: sock_send: Capabilities insufficient\n');
    expect(got).not.toContain('s');
  });

  it('limits: past net.datagrams, or net.bytes, the run ends with output_limit', async () => {
    const byCount = await host.run({ ...connected({ net: { datagrams: 5 } }), args: ['flood'] });
    expect(byCount.status).toBe('output_limit');
    expect(byCount.message).toBe("the run's network traffic exceeded its limit of 5 datagrams (net.datagrams)");
    const byBytes = await host.run({ ...connected({ net: { bytes: 3500 } }), args: ['flood'] });
    expect(byBytes.status).toBe('output_limit');
    expect(byBytes.message).toBe("the run's network traffic exceeded its limit of 3500 bytes (net.bytes)");
  });
});

const hasDeno = spawnSync(denoBinary(), ['--version']).status === 0;

describe.skipIf(!hasDeno)('UDP on a Deno executor', () => {
  it('is refused up front with a message that says where it works', async () => {
    const host = await createHost({ workers: 1, isolation: 'process', executors: { count: 1, runtime: 'deno' } });
    try {
      await expect(host.run({ module: DGRAM, sockets: [{ connect: `127.0.0.1:${echoPort}`, type: 'dgram' }], args: ['ping', 'x'] }))
        .rejects.toThrow(/Cannot open the datagram socket 127\.0\.0\.1:\d+: Deno executors cannot serve a datagram socket handed to them; run it on Node executors/);
      expect(got).not.toContain('x');
    } finally {
      await host.close();
    }
  });
});

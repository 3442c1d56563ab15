import { afterEach, describe, expect, test, vi } from 'vitest';
import { STATE_WAIT } from '../helpers/host.js';
import { Worker } from 'node:worker_threads';
import {
  BridgeClient,
  BridgeError,
  BridgeServer,
  createBridgeChannel,
  memoryRequestHandler,
  type BridgeCallContext,
  type BridgeChannel,
  type BridgeHandler,
} from '../../src/host/bridge.js';
import type { BridgeWorkerAnswer, BridgeWorkerCommand, BridgeWorkerInit } from './fixtures/bridge-worker.js';

// Node 20 ignores `--import tsx` in a Worker's execArgv, so the worker registers tsx itself before
// loading the TypeScript fixture.
const TSX_API = import.meta.resolve('tsx/esm/api');
const FIXTURE = new URL('./fixtures/bridge-worker.ts', import.meta.url).href;
const BOOT = `import(${JSON.stringify(TSX_API)}).then((m) => { m.register(); return import(${JSON.stringify(FIXTURE)}); })`;

const enc = new TextEncoder();
const dec = new TextDecoder();

type Cmd = BridgeWorkerCommand extends infer C ? (C extends { id: number } ? Omit<C, 'id'> : never) : never;

interface Rig {
  channel: BridgeChannel;
  server: BridgeServer;
  errors: Error[];
  /** Sets what the host answers with from now on. */
  handle(h: BridgeHandler): void;
  run(cmd: Cmd): Promise<BridgeWorkerAnswer>;
  call(bytes: Uint8Array | string, timeoutMs?: number): Promise<BridgeWorkerAnswer>;
  /** Kills the worker (whatever it is doing) and attaches a fresh one to the same channel. */
  respawn(): Promise<void>;
}

const workers = new Set<Worker>();
const servers = new Set<BridgeServer>();

afterEach(async () => {
  for (const server of servers) server.close();
  servers.clear();
  await Promise.all([...workers].map((w) => w.terminate()));
  workers.clear();
});

async function rig(opts: { bufferBytes?: number; timeoutMs?: number; spin?: number; start?: boolean } = {}): Promise<Rig> {
  const channel = createBridgeChannel({ bufferBytes: opts.bufferBytes });
  let handler: BridgeHandler = (req) => req;
  const errors: Error[] = [];
  const server = new BridgeServer(channel, (req, ctx) => handler(req, ctx), { onError: (e) => errors.push(e) });
  servers.add(server);
  if (opts.start !== false) server.start();
  const init: BridgeWorkerInit = { channel };
  if (opts.timeoutMs !== undefined) init.timeoutMs = opts.timeoutMs;
  if (opts.spin !== undefined) init.spin = opts.spin;

  const pending = new Map<number, (a: BridgeWorkerAnswer) => void>();
  const settleAll = (code: string, message: string) => {
    for (const done of pending.values()) done({ id: -1, ok: false, code, message, elapsedMs: 0 });
  };
  let worker!: Worker;
  let nextId = 0;
  const run = (cmd: Cmd): Promise<BridgeWorkerAnswer> => {
    const id = ++nextId;
    return new Promise((resolve) => {
      pending.set(id, (a) => {
        pending.delete(id);
        resolve(a);
      });
      worker.postMessage({ ...cmd, id });
    });
  };
  const spawn = async () => {
    const w = new Worker(BOOT, { eval: true, workerData: init });
    workers.add(w);
    w.on('message', (a: BridgeWorkerAnswer) => pending.get(a.id)?.(a));
    w.on('error', (e) => settleAll('worker_error', String(e)));
    worker = w;
    // Make sure the fixture is loaded before a test starts timing anything.
    value(await run({ op: 'peek', ptr: 0, len: 0 }));
  };
  await spawn();
  return {
    channel,
    server,
    errors,
    handle: (h) => void (handler = h),
    run,
    call: (bytes, timeoutMs) =>
      run({ op: 'call', bytes: typeof bytes === 'string' ? enc.encode(bytes) : bytes, ...(timeoutMs === undefined ? {} : { timeoutMs }) }),
    respawn: async () => {
      const old = worker;
      workers.delete(old);
      await old.terminate();
      settleAll('terminated', 'worker terminated');
      await spawn();
    },
  };
}

function value(a: BridgeWorkerAnswer): unknown {
  if (!a.ok) throw new Error(`worker command failed: ${a.code}: ${a.message}`);
  return a.value;
}

function text(a: BridgeWorkerAnswer): string {
  return dec.decode(value(a) as Uint8Array);
}

function failure(a: BridgeWorkerAnswer): { code: string; message: string; elapsedMs: number } {
  if (a.ok) throw new Error(`expected the command to fail, got ${String(a.value)}`);
  return a;
}

/** Deterministic bytes, so a corrupted or shifted chunk can't pass by accident. */
function pattern(len: number, seed: number): Uint8Array {
  const out = new Uint8Array(len);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < len; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** Byte equality without a per-element diff walk (vitest's toEqual on 640 KiB takes seconds). */
function expectSameBytes(got: unknown, want: Uint8Array): void {
  expect(got).toBeInstanceOf(Uint8Array);
  const g = got as Uint8Array;
  expect(g.length).toBe(want.length);
  expect(Buffer.compare(g, want)).toBe(0);
}

function deferred<T>(): { promise: Promise<T>; resolve: (v: T) => void; reject: (e: unknown) => void } {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Resolves on a later turn of the event loop: an answer that comes after the call returned, whatever the clock says. */
const later = () => new Promise<void>((r) => setImmediate(r));
/** Resolves after `p` settled and the callbacks it queued ran (a macrotask later). */
const settled = async (p: Promise<unknown>) => { await p; await new Promise(setImmediate); };

describe('sync bridge', () => {
  test('small round trip', async () => {
    const r = await rig();
    r.handle((req) => enc.encode(`echo:${dec.decode(req)}`));
    expect(text(await r.call('hi'))).toBe('echo:hi');
    expect(text(await r.call(''))).toBe('echo:');
    r.handle(() => new Uint8Array(0));
    expect((value(await r.call('x')) as Uint8Array).length).toBe(0);
  });

  test('payloads 10x the buffer each way arrive byte-exact', async () => {
    const bufferBytes = 1024;
    const r = await rig({ bufferBytes });
    const request = pattern(bufferBytes * 10 + 7, 1);
    const reply = pattern(bufferBytes * 10 + 13, 2);
    let seen: Uint8Array | undefined;
    r.handle((req) => {
      seen = req;
      return reply;
    });
    const got = value(await r.call(request)) as Uint8Array;
    expectSameBytes(seen, request);
    expectSameBytes(got, reply);
    // Exact multiples of the chunk size are the off-by-one trap.
    r.handle((req) => req);
    const exact = pattern(bufferBytes * 10, 3);
    expectSameBytes(value(await r.call(exact)), exact);
  });

  test('the default 64 KiB buffer carries a 640 KiB request and reply', async () => {
    const r = await rig();
    const request = pattern(640 * 1024 + 1, 4);
    r.handle((req) => req.slice().reverse());
    expectSameBytes(value(await r.call(request)), request.slice().reverse());
  });

  test('an async handler is awaited', async () => {
    const r = await rig();
    r.handle(async (req) => {
      await later();
      return enc.encode(`late:${dec.decode(req)}`);
    });
    expect(text(await r.call('a'))).toBe('late:a');
  });

  test('a throwing or rejecting handler becomes host_error with its message', async () => {
    const r = await rig();
    r.handle(() => {
      throw new Error('sync boom');
    });
    expect(failure(await r.call('x'))).toMatchObject({ code: 'host_error', message: 'sync boom' });
    r.handle(async () => {
      await later();
      throw new Error('async boom');
    });
    expect(failure(await r.call('x'))).toMatchObject({ code: 'host_error', message: 'async boom' });
    r.handle(() => 42 as unknown as Uint8Array);
    expect(failure(await r.call('x')).code).toBe('host_error');
    r.handle((req) => req);
    expect(text(await r.call('fine'))).toBe('fine');
  });

  test('a hanging handler times out, its late reply is dropped, and the next call works', async () => {
    const r = await rig({ timeoutMs: 150 });
    const hang = deferred<Uint8Array>();
    let stale: BridgeCallContext | undefined;
    r.handle((_req, ctx) => {
      stale = ctx;
      return hang.promise;
    });
    const t = failure(await r.call('first'));
    expect(t.code).toBe('timeout');
    expect(t.elapsedMs).toBeGreaterThanOrEqual(140);

    r.handle((req) => enc.encode(`ok:${dec.decode(req)}`));
    expect(text(await r.call('second'))).toBe('ok:second');
    hang.resolve(enc.encode('LATE'));
    await settled(hang.promise);
    expect(text(await r.call('third'))).toBe('ok:third');
    // The timed-out call's context can't reach guest memory any more.
    await expect(stale!.readMemory(0, 4)).rejects.toMatchObject({ code: 'cancelled' });
    // A per-call deadline overrides the client's default.
    r.handle(() => new Promise(() => {}));
    expect(failure(await r.call('x', 20)).code).toBe('timeout');
    expect(r.errors).toEqual([]);
  });

  test('the host reads and writes guest memory while the worker is blocked', async () => {
    const bufferBytes = 256;
    const r = await rig({ bufferBytes });
    await r.run({ op: 'poke', ptr: 100, bytes: enc.encode('hello') });
    const big = pattern(bufferBytes * 10 + 3, 5);
    await r.run({ op: 'poke', ptr: 8192, bytes: big });
    const bigOut = pattern(bufferBytes * 7 + 1, 6);
    r.handle(async (req, ctx) => {
      const small = await ctx.readMemory(100, 5);
      await ctx.writeMemory(200, enc.encode(`${dec.decode(small)}+${dec.decode(req)}`));
      const chunked = await ctx.readMemory(8192, big.length);
      await ctx.writeMemory(32768, bigOut);
      // Concurrent ops from one handler are serialized, each gets its own bytes.
      const [a, b, empty] = await Promise.all([ctx.readMemory(100, 2), ctx.readMemory(103, 2), ctx.readMemory(0, 0)]);
      await ctx.writeMemory(300, new Uint8Array(0));
      return enc.encode(`${dec.decode(a)}|${dec.decode(b)}|${empty.length}|${chunked.length}|${chunked.every((x, i) => x === big[i])}`);
    });
    expect(text(await r.call('req'))).toBe(`he|lo|0|${big.length}|true`);
    expect(text(await r.run({ op: 'peek', ptr: 200, len: 9 }))).toBe('hello+req');
    expectSameBytes(value(await r.run({ op: 'peek', ptr: 32768, len: bigOut.length })), bigOut);
  });

  test('an out-of-range memory op rejects on the host and the call still completes', async () => {
    const r = await rig({ bufferBytes: 128 });
    const outcomes: string[] = [];
    r.handle(async (_req, ctx) => {
      for (const op of [
        () => ctx.readMemory(65536 - 2, 4),
        () => ctx.writeMemory(65536 - 100, new Uint8Array(1000)), // several chunks, fails only once whole
        () => ctx.readMemory(-1, 4),
        () => ctx.readMemory(2 ** 32, 1),
      ]) {
        try {
          await op();
          outcomes.push('ok');
        } catch (e) {
          outcomes.push(e instanceof BridgeError ? `${e.code}:${e.message}` : `${(e as Error).name}`);
        }
      }
      await ctx.writeMemory(10, enc.encode('still-works'));
      return enc.encode('done');
    });
    expect(text(await r.call('x'))).toBe('done');
    expect(outcomes[0]).toMatch(/^memory_fault:.*out of bounds/);
    expect(outcomes[1]).toMatch(/^memory_fault:.*out of bounds/);
    expect(outcomes.slice(2)).toEqual(['RangeError', 'RangeError']);
    // The failed chunked write must not have touched memory.
    expect(value(await r.run({ op: 'peek', ptr: 65536 - 100, len: 100 }))).toEqual(new Uint8Array(100));
    expect(text(await r.run({ op: 'peek', ptr: 10, len: 11 }))).toBe('still-works');
  });

  test('memory ops the handler did not await still run before the reply; later ones are cancelled', async () => {
    const r = await rig();
    let write: Promise<string> | undefined;
    let stale: BridgeCallContext | undefined;
    r.handle((_req, ctx) => {
      stale = ctx;
      write = ctx.writeMemory(40, enc.encode('fire-and-forget')).then(() => 'written', (e: BridgeError) => e.code);
      return enc.encode('quick');
    });
    expect(text(await r.call('x'))).toBe('quick');
    expect(await write).toBe('written');
    expect(text(await r.run({ op: 'peek', ptr: 40, len: 15 }))).toBe('fire-and-forget');
    await expect(stale!.readMemory(0, 1)).rejects.toMatchObject({ code: 'cancelled' });
  });

  test('a handler flooding memory ops cannot hold the worker past its deadline', async () => {
    const r = await rig({ timeoutMs: 150 });
    const stopped = deferred<string>();
    r.handle(async (_req, ctx) => {
      try {
        for (;;) await ctx.readMemory(0, 8);
      } catch (e) {
        stopped.resolve((e as BridgeError).code);
        throw e;
      }
    });
    expect(failure(await r.call('x')).code).toBe('timeout');
    expect(await stopped.promise).toBe('cancelled');
    r.handle((req) => req);
    expect(text(await r.call('next'))).toBe('next');
  });

  test('a fresh worker takes over a channel whose previous worker died mid-call', async () => {
    const r = await rig({ timeoutMs: 2000 });
    const entered = deferred<void>();
    const hang = deferred<Uint8Array>();
    r.handle(() => {
      entered.resolve();
      return hang.promise;
    });
    const lost = r.call('dies');
    await entered.promise;
    await r.respawn();
    expect((await lost).ok).toBe(false);
    r.handle((req) => enc.encode(`new:${dec.decode(req)}`));
    expect(text(await r.call('hello'))).toBe('new:hello');
    hang.resolve(enc.encode('stale'));
    await settled(hang.promise);
    expect(text(await r.call('again'))).toBe('new:again');
    expect(r.errors).toEqual([]);
  });

  test('close() wakes a blocked worker with closed, promptly', async () => {
    const r = await rig({ timeoutMs: 10_000 });
    const entered = deferred<void>();
    r.handle(() => {
      entered.resolve();
      return new Promise(() => {});
    });
    const pending = r.call('x');
    await entered.promise;
    r.server.close();
    // Promptly: without the wake-up the call would end 'timeout' after its 10 s.
    const f = failure(await pending);
    expect(f.code).toBe('closed');
    expect(failure(await r.call('again')).code).toBe('closed');
    expect(() => r.server.start()).toThrow(BridgeError);
  });

  test('a request sent before start() is served once the server starts', async () => {
    const r = await rig({ start: false });
    r.handle((req) => enc.encode(`got:${dec.decode(req)}`));
    const pending = r.call('early');
    // The worker has posted its request (the channel left IDLE) before the server starts.
    const ctl = new Int32Array(r.channel.sab, 0, 16);
    await vi.waitFor(() => expect(Atomics.load(ctl, 0)).not.toBe(0), STATE_WAIT);
    r.server.start();
    expect(text(await pending)).toBe('got:early');
  });

  test('garbage in the channel is reported and reset, never thrown into the event loop', async () => {
    // A hostile worker is simulated by scribbling on the SAB from here; the real worker is parked.
    const channel = createBridgeChannel({ bufferBytes: 64 });
    const errors: Error[] = [];
    const server = new BridgeServer(channel, (req) => req, { onError: (e) => errors.push(e), maxRequestBytes: 1000 });
    server.start();
    const ctl = new Int32Array(channel.sab, 0, 16);
    const poke = async (words: Record<number, number>) => {
      for (const [i, v] of Object.entries(words)) if (Number(i) !== 0) ctl[Number(i)] = v;
      Atomics.store(ctl, 0, words[0]!);
      Atomics.notify(ctl, 0);
      // The server has seen it once it reset the state (or answered).
      await vi.waitFor(() => expect(Atomics.load(ctl, 0)).not.toBe(words[0]), STATE_WAIT);
    };
    await poke({ 0: 99 }); // unknown state
    await poke({ 0: 8 }); // BUSY, which only the host may set
    await poke({ 0: 1, 1: 7, 3: -5, 4: 0, 5: 0 }); // negative total
    await poke({ 0: 1, 1: 7, 3: 10, 4: 0, 5: 64 }); // chunk longer than the message
    await poke({ 0: 1, 1: 7, 3: 500, 4: 64, 5: 64 }); // continuation of nothing
    await poke({ 0: 5 }); // memory result with no memory op
    await poke({ 0: 7 }); // reply ack with no reply
    await poke({ 0: 3 }); // HANDLING with no call
    expect(errors.map((e) => (e as BridgeError).code)).toEqual(Array(8).fill('protocol'));
    expect(Atomics.load(ctl, 0)).toBe(0);
    // An oversized request is refused with an error reply, not buffered.
    await poke({ 0: 1, 1: 8, 3: 5000, 4: 0, 5: 64 });
    expect(Atomics.load(ctl, 0)).toBe(6);
    expect(ctl[2]).toBe(1);
    Atomics.store(ctl, 0, 0);
    server.close();
    expect(Atomics.load(ctl, 0) & (1 << 30)).not.toBe(0);
  });

  test('the worker recovers after a host reset and keeps working', async () => {
    const r = await rig();
    r.handle((req) => req);
    expect(text(await r.call('before'))).toBe('before');
    // Garbage state while the worker is idle: the host resets it to IDLE and carries on.
    const ctl = new Int32Array(r.channel.sab, 0, 16);
    Atomics.store(ctl, 0, 42);
    Atomics.notify(ctl, 0);
    await vi.waitFor(() => expect(r.errors).toHaveLength(1), STATE_WAIT);
    expect(text(await r.call('after'))).toBe('after');
  });

  test('10,000 sequential calls complete; round-trip time is reported', async () => {
    type Stats = { medianUs: number; p99Us: number; meanUs: number };
    const show = (label: string, t: Stats) =>
      console.log(`bridge round trip, 16 B, ${label}: median ${t.medianUs.toFixed(2)} µs, p99 ${t.p99Us.toFixed(2)} µs, mean ${t.meanUs.toFixed(2)} µs`);

    const r = await rig();
    r.handle((req) => req);
    // The worker checks every reply; a stuck or lost call would throw (timeout) and fail the command.
    await r.run({ op: 'bench', n: 10_000, size: 16 });
    show('sync handler', value(await r.run({ op: 'bench', n: 10_000, size: 16 })) as Stats);
    r.handle(async (req) => req);
    show('async handler', value(await r.run({ op: 'bench', n: 10_000, size: 16 })) as Stats);
    expect(r.errors).toEqual([]);
    r.handle((req) => enc.encode(`still:${dec.decode(req)}`));
    expect(text(await r.call('alive'))).toBe('still:alive');

    // For comparison only: a worker that polls ~20k times before sleeping. Back-to-back calls can then run
    // with neither thread asleep; how often that holds depends on the machine, so the numbers are bimodal.
    const spinning = await rig({ spin: 20_000 });
    spinning.handle((req) => req);
    await spinning.run({ op: 'bench', n: 2_000, size: 16 });
    show('sync handler, spin 20k', value(await spinning.run({ op: 'bench', n: 10_000, size: 16 })) as Stats);
  });
});

describe('sync bridge, same-thread checks', () => {
  test('channel and option validation', () => {
    expect(() => createBridgeChannel({ bufferBytes: 10 })).toThrow(RangeError);
    expect(() => new BridgeClient({ sab: new ArrayBuffer(1024) as unknown as SharedArrayBuffer })).toThrow(TypeError);
    expect(() => new BridgeClient(createBridgeChannel(), { timeoutMs: -1 })).toThrow(RangeError);
    expect(createBridgeChannel().sab.byteLength).toBe(64 + 64 * 1024);
  });

  test('a client on a closed channel fails fast with closed', () => {
    const channel = createBridgeChannel();
    const server = new BridgeServer(channel, (req) => req);
    server.close();
    const client = new BridgeClient(channel, { timeoutMs: 1000 });
    expect(() => client.call(new Uint8Array(1))).toThrow(expect.objectContaining({ code: 'closed' }));
  });

  test('memoryRequestHandler bounds-checks against the current view', () => {
    let mem = new Uint8Array(16);
    const h = memoryRequestHandler(() => mem);
    h({ kind: 'write', ptr: 12, bytes: new Uint8Array([1, 2, 3, 4]) });
    expect(h({ kind: 'read', ptr: 12, len: 4 })).toEqual(new Uint8Array([1, 2, 3, 4]));
    expect(() => h({ kind: 'read', ptr: 13, len: 4 })).toThrow(/out of bounds/);
    mem = new Uint8Array(32);
    expect(() => h({ kind: 'read', ptr: 13, len: 4 })).not.toThrow();
  });
});

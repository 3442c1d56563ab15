import fs from 'node:fs';
import v8 from 'node:v8';
import vm from 'node:vm';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { createHost, type Host } from '../../src/host/host.js';
import { LimitError } from '../../src/host/limits.js';
import { QueueFullError, type Pool } from '../../src/host/pool.js';
import { endLeftoverRuns, STATE_WAIT } from '../helpers/host.js';
import { command, wat } from '../helpers/wat.js';

const guest = (name: string) => fs.readFileSync(new URL(`../../guests/build/${name}.wasm`, import.meta.url));
const text = (b: Uint8Array) => new TextDecoder().decode(b);

const FD_WRITE = '(import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))';
const POLL = '(import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))';
const EXIT = '(import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))';

const spin = command('(loop $l (br $l))');
// Sleeps 60 s in one poll_oneoff: a relative clock subscription at 0, written at start.
const sleeper = command(`
  (i64.store (i32.const 0) (i64.const 1))        ;; userdata
  (i32.store8 (i32.const 8) (i32.const 0))       ;; tag: clock
  (i32.store (i32.const 16) (i32.const 1))       ;; monotonic
  (i64.store (i32.const 24) (i64.const 60000000000))
  (drop (call $poll (i32.const 0) (i32.const 100) (i32.const 1) (i32.const 200)))`, POLL);
// Writes 4 KiB of 'x' forever.
const flood = command(`
  (memory.fill (i32.const 1024) (i32.const 120) (i32.const 4096))
  (i32.store (i32.const 0) (i32.const 1024)) (i32.store (i32.const 4) (i32.const 4096))
  (loop $l (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))) (br $l))`, FD_WRITE);
// Grows memory a page at a time; exits 7 when grow finally fails (as a malloc would report it).
const bomb = command(`
  (loop $l (if (i32.ne (memory.grow (i32.const 16)) (i32.const -1)) (then (br $l))))
  (call $exit (i32.const 7))`, EXIT);

let host: Host;
beforeAll(async () => { host = await createHost({ workers: 2, limits: { max: { wallMs: 20_000 } } }); });
afterAll(async () => { await host.close(); });
// A test that failed half-way must not leave a sleeper on the shared host for the next one.
afterEach(async () => { await endLeftoverRuns(host); });

describe('runs and results', () => {
  it('runs hello.wasm with args and returns its output', async () => {
    const r = await host.run({ module: guest('hello'), args: ['world'] });
    expect(r).toMatchObject({ status: 'exited', exitCode: 0, blame: 'guest' });
    expect(text(r.stdout)).toBe('hello world\n');
    expect(r.usage.wallMs).toBeGreaterThan(0);
    expect(r.usage.peakMemoryBytes).toBeGreaterThan(0);
  });

  it('passes stdin, env and an in-memory tree, and returns the tree', async () => {
    const r = await host.run({ module: guest('cat'), args: ['/data/in.txt', '-'], stdin: 'from stdin\n', files: { '/data/in.txt': 'hello\n' } });
    expect(text(r.stdout)).toBe('hello\nfrom stdin\n');
    expect(Object.keys(r.files)).toEqual(['/data/in.txt']);
    const u = await host.run({ module: guest('uniq'), args: ['/in/w.txt', '/out/u.txt'], files: { '/in/w.txt': 'a\na\nb\n', '/out/.keep': '' } });
    expect(u.status).toBe('exited');
    expect(text(u.files['/out/u.txt']!)).toBe('a\nb\n');
  });

  it('reports the exit code of proc_exit', async () => {
    const r = await host.run({ module: guest('hello'), args: ['--exit=9'] });
    expect(r).toMatchObject({ status: 'exited', exitCode: 9 });
  });

  it('reports a trap with its kind', async () => {
    const r = await host.run({ module: command('unreachable') });
    expect(r).toMatchObject({ status: 'trapped', blame: 'guest', trap: { kind: 'unreachable' } });
  });

  it('refuses an invalid module and unknown imports before using a worker', async () => {
    const spawned = host.stats().spawned;
    const bad = await host.run({ module: new Uint8Array([0, 97, 115, 109, 9, 9, 9, 9]) });
    expect(bad.status).toBe('invalid_module');
    const unknown = await host.run({ module: command('', '(import "env" "nope" (func))') });
    expect(unknown).toMatchObject({ status: 'invalid_module', blame: 'guest' });
    expect(unknown.message).toContain('env.nope');
    expect(host.stats().spawned).toBe(spawned);
  });

  it('refuses limits above the maximum, naming the field', async () => {
    await expect(host.run({ module: guest('hello'), limits: { memoryBytes: 8 << 30 } })).rejects.toThrow(LimitError);
    await expect(host.run({ module: guest('hello'), limits: { memoryBytes: 8 << 30 } })).rejects.toThrow(/limits\.memoryBytes/);
  });

  it('refuses a module above the size limit', async () => {
    const small = await createHost({ workers: 1, maxModuleBytes: 1000 });
    try {
      const r = await small.run({ module: guest('hello') });
      expect(r.status).toBe('invalid_module');
      expect(r.message).toMatch(/above the 1000 B limit/);
      expect(() => small.add(guest('hello'))).toThrow(/limit/);
    } finally {
      await small.close();
    }
  });

  it('runs a module added once by its sha256 id', async () => {
    const id = host.add(guest('hello'));
    expect(id).toMatch(/^sha256:[0-9a-f]{64}$/);
    const r = await host.run({ module: id, args: ['again'] });
    expect(text(r.stdout)).toBe('hello again\n');
    const missing = await host.run({ module: 'sha256:' + '0'.repeat(64) });
    expect(missing.status).toBe('invalid_module');
  });
});

describe('limits always end a run', () => {
  it('stops an infinite loop at its wall-clock limit while another run completes', async () => {
    const looping = host.run({ module: spin, limits: { wallMs: 1500, cpuMs: 10_000 } });
    const other = await host.run({ module: guest('hello'), args: ['meanwhile'] });
    expect(text(other.stdout)).toBe('hello meanwhile\n');
    const r = await looping;
    expect(r).toMatchObject({ status: 'timeout', timeout: 'wall', blame: 'guest' });
  });

  it('stops an infinite loop at its CPU limit', async () => {
    const r = await host.run({ module: spin, limits: { cpuMs: 300, wallMs: 15_000 } });
    expect(r).toMatchObject({ status: 'timeout', timeout: 'cpu' });
    expect(r.usage.cpuMs).toBeGreaterThanOrEqual(300);
  });

  it('a sleeping guest uses wall time, not CPU', async () => {
    const r = await host.run({ module: sleeper, limits: { wallMs: 400, cpuMs: 300 } });
    expect(r).toMatchObject({ status: 'timeout', timeout: 'wall' });
  });

  it('caps linear memory: grow past the limit fails and the run ends with memory_limit', async () => {
    const before = process.memoryUsage().rss;
    const r = await host.run({ module: bomb, limits: { memoryBytes: 32 << 20 } });
    expect(r.status).toBe('memory_limit');
    expect(r.exitCode).toBe(7);
    expect(r.usage.peakMemoryBytes).toBeLessThanOrEqual(32 << 20);
    expect(process.memoryUsage().rss - before).toBeLessThan(256 << 20);
  });

  it('refuses a module whose initial memory is above the limit', async () => {
    const big = wat('(module (memory (export "memory") 2000) (func (export "_start")))');
    const r = await host.run({ module: big, limits: { memoryBytes: 16 << 20 } });
    expect(r.status).toBe('memory_limit');
  });

  it('ends an output flood with output_limit, keeping output up to the cap', async () => {
    const r = await host.run({ module: flood, limits: { outputBytes: 100_000 } });
    expect(r.status).toBe('output_limit');
    expect(r.stdout.length).toBe(100_000);
  });

  it('caps open descriptors', async () => {
    const r = await host.run({ module: guest('cat'), args: ['/d/a'], files: { '/d/a': 'x' }, limits: { fds: 3 } });
    // stdio takes 3 slots; the preopen cannot be installed, so the guest finds no /d.
    expect(r.status).toBe('host_error');
    expect(r.message).toMatch(/descriptor/);
  });
});

describe('cancellation and failures', () => {
  it('cancels a running guest with an AbortSignal', async () => {
    const ac = new AbortController();
    const p = host.run({ module: sleeper, signal: ac.signal });
    await vi.waitFor(() => expect(host.stats().busy).toBe(1), STATE_WAIT);
    ac.abort();
    expect(await p).toMatchObject({ status: 'cancelled', blame: 'host', message: 'the run was cancelled' });
  });

  it('replaces a worker that dies, and its run ends with host_error', async () => {
    // Its own host: killing a worker of the shared one would leave the next test a booting replacement.
    const own = await createHost({ workers: 2 });
    try {
      const spawned = own.stats().spawned;
      const p = own.run({ module: sleeper, limits: { wallMs: 20_000 } });
      await vi.waitFor(() => expect((own.pool as Pool).busyWorkers()).toHaveLength(1), STATE_WAIT);
      await (own.pool as Pool).busyWorkers()[0]!.terminate();
      const r = await p;
      expect(r).toMatchObject({ status: 'host_error', blame: 'host' });
      const next = await own.run({ module: guest('hello'), args: ['after'] });
      expect(text(next.stdout)).toBe('hello after\n');
      expect(own.stats().workers).toBe(2);
      expect(own.stats().spawned).toBe(spawned + 1);
    } finally {
      await own.close();
    }
  });

  it('rejects past the queue bound with QueueFullError', async () => {
    const small = await createHost({ workers: 1, maxQueue: 1 });
    try {
      const ac = new AbortController();
      const running = small.run({ module: sleeper, signal: ac.signal });
      await vi.waitFor(() => expect(small.stats().busy).toBe(1), STATE_WAIT);
      const queued = small.run({ module: guest('hello') });
      await expect(small.run({ module: guest('hello') })).rejects.toThrow(QueueFullError);
      ac.abort();
      expect((await running).status).toBe('cancelled');
      expect((await queued).status).toBe('exited');
    } finally {
      await small.close();
    }
  });
});

describe('streaming and audit', () => {
  it('streams stdout chunks and ends with the result', async () => {
    const kinds: string[] = [];
    let out = '';
    for await (const ev of host.start({ module: guest('hello'), args: ['stream'] })) {
      kinds.push(ev.type);
      if (ev.type === 'stdout') out += text(ev.data);
    }
    expect(out).toBe('hello stream\n');
    expect(kinds.at(-1)).toBe('result');
  });

  it('records a denied path_open with the rights it lacked', async () => {
    const r = await host.run({ module: guest('escape'), files: { '/data/notes.txt': 'n' }, audit: 'denied' });
    const denied = r.audit.events.filter((e) => e.decision === 'denied');
    expect(denied.length).toBeGreaterThan(0);
    const dotdot = denied.find((e) => e.call === 'path_open' && e.path?.includes('..'));
    expect(dotdot).toMatchObject({ errno: 76 });
    // escape.c limits a file to CAP_READ, then asks for its original rights back.
    const widen = denied.find((e) => e.call === 'fd_fdstat_set_rights');
    expect(widen?.rightsHeld).toEqual(['CAP_READ']);
    expect(widen?.rightsNeeded).toContain('CAP_SEEK_SET');
  });

  it('keeps at most auditMax events and counts the rest', async () => {
    const small = await createHost({ workers: 1, auditMax: 5 });
    try {
      const r = await small.run({ module: guest('escape'), files: { '/data/notes.txt': 'n' }, audit: 'all' });
      expect(r.audit.events.length).toBe(5);
      expect(r.audit.dropped).toBeGreaterThan(0);
    } finally {
      await small.close();
    }
  });
});

describe('steady state', () => {
  it('1,000 runs in a row leave the heap and the worker count flat', async () => {
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as () => void;
    const id = host.add(guest('hello'));
    for (let i = 0; i < 50; i++) await host.run({ module: id });
    gc();
    const heap0 = process.memoryUsage().heapUsed;
    const spawned = host.stats().spawned;
    for (let i = 0; i < 1000; i++) {
      const r = await host.run({ module: id, args: [String(i)] });
      if (r.status !== 'exited') throw new Error(`run ${i}: ${r.status}`);
    }
    gc();
    expect(process.memoryUsage().heapUsed - heap0).toBeLessThan(8 << 20);
    expect(host.stats()).toMatchObject({ workers: 2, busy: 0, queued: 0, spawned });
  });
});

describe('host functions', () => {
  // The guest calls env.add(2, 40) and env.greet(ptr, len) → the host writes a reply into its memory.
  const IMPORTS = `
    (import "env" "add" (func $add (param i32 i32) (result i32)))
    (import "env" "greet" (func $greet (param i32 i32) (result i32)))
    (import "env" "boom" (func $boom (result i32)))
    ${EXIT}`;
  const guestModule = command(`
    (i32.store (i32.const 0) (call $add (i32.const 2) (i32.const 40)))
    (i32.store (i32.const 4) (call $greet (i32.const 100) (i32.const 5)))
    (i32.store (i32.const 8) (call $boom))
    (call $exit (i32.add (i32.load (i32.const 0))
      (i32.add (i32.mul (i32.eq (i32.load8_u (i32.const 200)) (i32.const 104)) (i32.const 100)) (i32.load (i32.const 8)))))`,
  IMPORTS, '(memory (export "memory") 1) (data (i32.const 100) "world")');

  it('an async host function answers a guest, reading and writing its memory', async () => {
    const seen: string[] = [];
    const r = await host.run({
      module: guestModule,
      functions: {
        env: {
          add: async (_ctx, a, b) => { await new Promise(setImmediate); return Number(a) + Number(b); },
          greet: async (ctx, ptr, len) => {
            const who = await ctx.readString(Number(ptr), Number(len));
            seen.push(who);
            await ctx.write(200, new TextEncoder().encode(`hi ${who}`));
            return 0;
          },
          boom: () => { throw new Error('kaboom'); },
        },
      },
    });
    expect(seen).toEqual(['world']);
    // exit code = add's result (42) + 100 if the host's "hi world" landed at 200 + boom's errno (EIO, 29):
    // the throwing function returned an errno instead of hanging the guest.
    expect(r).toMatchObject({ status: 'exited', exitCode: 42 + 100 + 29 });
    expect(r.warnings?.[0]).toMatch(/env\.boom failed: kaboom/);
  });

  it('a guest importing a function the embedder did not give is refused', async () => {
    const r = await host.run({ module: guestModule, functions: { env: { add: () => 0 } } });
    expect(r.status).toBe('invalid_module');
    expect(r.message).toContain('env.greet');
  });

  it('a host function that never answers is ended by the wall-clock limit', async () => {
    const r = await host.run({
      module: guestModule, limits: { wallMs: 500 },
      functions: { env: { add: () => new Promise<number>(() => {}), greet: () => 0, boom: () => 0 } },
    });
    expect(r).toMatchObject({ status: 'timeout', timeout: 'wall' });
  });
});

describe('one worker, many guests', () => {
  it('nothing of a guest survives into the next one on the same worker', async () => {
    const solo = await createHost({ workers: 1 });
    try {
      const CAP = `(import "capsicum" "cap_enter" (func $enter (result i32)))
        (import "capsicum" "cap_getmode" (func $getmode (param i32) (result i32)))
        (import "wasi_snapshot_preview1" "fd_fdstat_get" (func $fdstat (param i32 i32) (result i32)))
        ${EXIT}`;
      // A: has /data, enters capability mode. B: exits with mode*100 + errno of fd_fdstat_get(3).
      const a = command('(drop (call $enter)) (call $exit (i32.const 0))', CAP);
      const b = command(`(drop (call $getmode (i32.const 0)))
        (call $exit (i32.add (i32.mul (i32.load (i32.const 0)) (i32.const 100)) (call $fdstat (i32.const 3) (i32.const 64))))`, CAP);
      expect((await solo.run({ module: a, files: { '/data/x': 'secret' } })).exitCode).toBe(0);
      const r = await solo.run({ module: b });
      expect(r.exitCode).toBe(8); // mode 0, and fd 3 (A's /data) is EBADF
      expect(solo.stats().spawned).toBe(1);
    } finally {
      await solo.close();
    }
  });
});

describe('modules by id', () => {
  it('a module evicted from the cache comes back through the run\'s loader, and a loader cannot swap it', async () => {
    const small = await createHost({ workers: 1, cacheBytes: 140_000 });
    try {
      const hello = guest('hello');
      const id = small.add(hello);
      small.add(guest('cat'));
      small.add(guest('uniq')); // evicts hello (the cache holds about two modules)
      expect(small.has(id)).toBe(false);
      const r = await small.run({ module: id, args: ['again'], moduleLoader: () => hello });
      expect(text(r.stdout)).toBe('hello again\n');
      const swapped = await small.run({ module: 'sha256:' + '1'.repeat(64), moduleLoader: () => hello });
      expect(swapped.status).toBe('invalid_module');
      expect(swapped.message).toMatch(/loaded bytes are sha256:/);
    } finally {
      await small.close();
    }
  });
});

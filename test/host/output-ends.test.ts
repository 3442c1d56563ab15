/**
 * Nothing a guest wrote is lost, whatever ends its run: each guest below writes "looping" and "\n"
 * (one fd_write, two iovecs, as libc's puts + fflush does) and then does something that gets it
 * ended. The run's result holds those bytes, and a streaming consumer sees them while the guest is
 * still running, before it writes again (it never does).
 */
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { createHost, type Host, type RunEvent } from '../../src/host/host.js';
import { command } from '../helpers/wat.js';
import type { Pool } from '../../src/host/pool.js';

const text = (b: Uint8Array) => new TextDecoder().decode(b);

const FD_WRITE = '(import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))';
const WROTE = '(import "env" "wrote" (func $wrote))';
const MEMORY = '(memory (export "memory") 1) (data (i32.const 64) "looping\\n")';
// fd_write(1, [{64, 7}, {71, 1}]): "looping" then "\n".
const WRITE_LINE = `
  (i32.store (i32.const 0) (i32.const 64)) (i32.store (i32.const 4) (i32.const 7))
  (i32.store (i32.const 8) (i32.const 71)) (i32.store (i32.const 12) (i32.const 1))
  (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 2) (i32.const 16)))`;
const SPIN = '(loop $l (br $l))';

/** Writes the line, then spins until something ends it. */
const looping = command(`${WRITE_LINE} ${SPIN}`, FD_WRITE, MEMORY);
/** Writes the line, tells the host (env.wrote), then spins: the test knows the write happened. */
const loopingAndTell = command(`${WRITE_LINE} (call $wrote) ${SPIN}`, `${FD_WRITE} ${WROTE}`, MEMORY);
/** Writes the line, grows memory until it fails, then traps (as a failed malloc's abort does). */
const growing = command(`${WRITE_LINE}
  (loop $l (br_if $l (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))
  unreachable`, FD_WRITE, MEMORY);
/** Writes the line, then 4 KiB of 'x' forever. */
const flooding = command(`${WRITE_LINE}
  (memory.fill (i32.const 1024) (i32.const 120) (i32.const 4096))
  (i32.store (i32.const 32) (i32.const 1024)) (i32.store (i32.const 36) (i32.const 4096))
  (loop $l (drop (call $fd_write (i32.const 1) (i32.const 32) (i32.const 1) (i32.const 40))) (br $l))`, FD_WRITE, MEMORY);

/** Host functions for loopingAndTell: resolves `told` when the guest has written its line. */
function teller(): { functions: { env: { wrote: () => number } }; told: Promise<void> } {
  let tell!: () => void;
  const told = new Promise<void>((r) => { tell = r; });
  return { functions: { env: { wrote: () => { tell(); return 0; } } }, told };
}

let host: Host;
const leftovers: AbortController[] = [];
beforeAll(async () => { host = await createHost({ workers: 2, limits: { max: { wallMs: 60_000, cpuMs: 60_000 } } }); });
afterEach(() => { for (const ac of leftovers.splice(0)) ac.abort(); });
afterAll(async () => { await host.close(); });

describe('a run ended from outside keeps what the guest wrote', () => {
  it('wall-clock limit: the line and the audit events before it are in the result', async () => {
    const r = await host.run({ module: looping, audit: 'all', limits: { wallMs: 1000, cpuMs: 30_000 } });
    expect(r).toMatchObject({ status: 'timeout', timeout: 'wall' });
    expect(text(r.stdout)).toBe('looping\n');
    expect(r.audit.events.map((e) => e.call)).toContain('fd_write');
  });

  it('CPU limit', async () => {
    const r = await host.run({ module: looping, limits: { cpuMs: 300, wallMs: 30_000 } });
    expect(r).toMatchObject({ status: 'timeout', timeout: 'cpu' });
    expect(text(r.stdout)).toBe('looping\n');
  });

  it('cancel (AbortSignal) after the guest wrote', async () => {
    const { functions, told } = teller();
    const ac = new AbortController();
    const p = host.run({ module: loopingAndTell, functions, signal: ac.signal, limits: { wallMs: 30_000, cpuMs: 30_000 } });
    await told;
    ac.abort();
    const r = await p;
    expect(r).toMatchObject({ status: 'cancelled', blame: 'host' });
    expect(text(r.stdout)).toBe('looping\n');
  });

  it('a worker that dies under the run', async () => {
    // Its own host: the test kills a worker.
    const own = await createHost({ workers: 1 });
    try {
      const { functions, told } = teller();
      const p = own.run({ module: loopingAndTell, functions, limits: { wallMs: 30_000, cpuMs: 30_000 } });
      await told;
      await (own.pool as Pool).busyWorkers()[0]!.terminate();
      const r = await p;
      expect(r).toMatchObject({ status: 'host_error', blame: 'host' });
      expect(text(r.stdout)).toBe('looping\n');
      // The replacement worker starts clean: the next run has its own output only.
      expect(text((await own.run({ module: growing, limits: { memoryBytes: 4 << 20 } })).stdout)).toBe('looping\n');
    } finally {
      await own.close();
    }
  });
});

describe('a run that ends itself keeps what it wrote', () => {
  it('memory limit', async () => {
    const r = await host.run({ module: growing, limits: { memoryBytes: 8 << 20 } });
    expect(r.status).toBe('memory_limit');
    expect(text(r.stdout)).toBe('looping\n');
  });

  it('output limit: the bytes up to the cap, the line first', async () => {
    const r = await host.run({ module: flooding, limits: { outputBytes: 100_000 } });
    expect(r.status).toBe('output_limit');
    expect(r.stdout.length).toBe(100_000);
    expect(text(r.stdout.subarray(0, 9))).toBe('looping\nx');
  });

  it('a flood larger than the host\'s buffers arrives whole and in order', async () => {
    const r = await host.run({ module: flooding, limits: { outputBytes: 3 << 20 } });
    expect(r.status).toBe('output_limit');
    expect(r.stdout.length).toBe(3 << 20);
    expect(text(r.stdout.subarray(0, 8))).toBe('looping\n');
    expect(r.stdout.subarray(8).every((b) => b === 120)).toBe(true);
  });
});

describe('streaming', () => {
  it('a consumer sees a write while the guest runs, before it writes again', async () => {
    const ac = new AbortController();
    leftovers.push(ac);
    const handle = host.start({ module: looping, signal: ac.signal, limits: { wallMs: 60_000, cpuMs: 60_000 } });
    const events: RunEvent[] = [];
    const consumed = (async () => { for await (const ev of handle) events.push(ev); })();
    await vi.waitFor(() => expect(events.map((e) => e.type)).toContain('stdout'), { timeout: 20_000, interval: 5 });
    // Seen while running: the result is not in yet.
    expect(events.some((e) => e.type === 'result')).toBe(false);
    ac.abort();
    await consumed;
    const out = events.flatMap((e) => (e.type === 'stdout' ? [text(e.data)] : [])).join('');
    expect(out).toBe('looping\n');
    const last = events.at(-1)!;
    expect(last.type === 'result' && last.result.status).toBe('cancelled');
    expect(last.type === 'result' && text(last.result.stdout)).toBe('looping\n');
  });
});

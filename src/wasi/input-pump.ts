/**
 * stdin from a host pipe, socket or terminal, without a guest's thread ever sitting in read(2): a
 * thread blocked in a system call cannot be terminated, so a run reading an idle pipe could not be
 * cancelled or timed out. The host thread reads the descriptor asynchronously (libuv's epoll) into
 * a SharedArrayBuffer ring and wakes the run's Waker; the guest's fd_read and poll_oneoff look at
 * the ring and sleep on the Waker while it is empty. The pump starts at the guest's first read or
 * poll of stdin, so a guest that never reads stdin leaves it untouched.
 *
 * Layout: 16 bytes of header (Int32: write position, read position, state, wanted), then the data
 * area. Positions count bytes and wrap at 2^32; one writer (the pump), one reader (the guest).
 */
import fs from 'node:fs';
import net from 'node:net';
import tty from 'node:tty';
import type { Readable } from 'node:stream';
import { ERRNO } from './constants.js';
import { fail } from './errors.js';
import type { Waker } from './wake.js';

const WRITE = 0;
const READ = 1;
const STATE = 2;
const WANTED = 3;
const HEADER_BYTES = 16;
const OPEN = 0;
const EOF = 1;
const FAILED = 2;

/** Bytes the pump may read ahead of the guest: bounded, and several pipe buffers' worth. */
export const INPUT_RING_BYTES = 1 << 20;

/** stdin that a host-thread pump fills (startInputPump); plain data that crosses postMessage. */
export interface PumpedInput { pump: SharedArrayBuffer }

// Node has Atomics.waitAsync since 16; TypeScript declares it only in lib es2024, above this project's.
const waitAsync = (Atomics as unknown as {
  waitAsync(ta: Int32Array, index: number, value: number): { async: false; value: 'not-equal' | 'timed-out' } | { async: true; value: Promise<'ok' | 'timed-out'> };
}).waitAsync;

/** Copies `bytes` into ring data area `data` at position `pos` (wrapping around its end). */
export function ringPut(data: Uint8Array, pos: number, bytes: Uint8Array): void {
  const at = pos % data.length;
  const first = Math.min(bytes.length, data.length - at);
  data.set(bytes.subarray(0, first), at);
  if (first < bytes.length) data.set(bytes.subarray(first), 0);
}

/** Fills `out` from ring data area `data` at position `pos` (wrapping around its end). */
export function ringGet(data: Uint8Array, pos: number, out: Uint8Array): void {
  const at = pos % data.length;
  const first = Math.min(out.length, data.length - at);
  out.set(data.subarray(at, at + first), 0);
  if (first < out.length) out.set(data.subarray(0, out.length - first), first);
}

/** Resolves once ctl[index] is no longer `value` (or at once if it is not). */
export function changed(ctl: Int32Array, index: number, value: number): Promise<unknown> {
  const w = waitAsync(ctl, index, value);
  return w.async ? w.value : Promise.resolve();
}

/**
 * Whether reading `fd` may block: a pipe, a socket or a terminal. Regular files and devices such
 * as /dev/zero are read directly by the guest's thread (they never block for long).
 */
export function inputNeedsPump(fd: number): boolean {
  try {
    const st = fs.fstatSync(fd);
    return st.isFIFO() || st.isSocket() || tty.isatty(fd);
  } catch {
    return false;
  }
}

// A socket cannot be reopened through /proc (ENXIO), so its stream works on the caller's own
// descriptor. Destroying that stream would close the descriptor, so it is kept (paused) for the
// next run on the same socket; a descriptor number that now names another file gets a new one.
const socketStreams = new Map<number, { stream: net.Socket; dev: number; ino: number }>();

/**
 * A descriptor of our own for `fd`'s pipe or terminal: a new open file description, so libuv's
 * O_NONBLOCK does not change the caller's, and closing it closes nothing of theirs.
 */
export function reopen(fd: number, mode = fs.constants.O_RDONLY): number | undefined {
  try {
    return fs.openSync(`/proc/self/fd/${fd}`, mode | fs.constants.O_NONBLOCK | fs.constants.O_NOCTTY);
  } catch {
    return undefined;
  }
}

/** A readable stream over `fd` (a socket that reopen() could not copy); never destroyed. */
function socketStream(fd: number): net.Socket {
  const st = fs.fstatSync(fd);
  const kept = socketStreams.get(fd);
  if (kept && kept.dev === st.dev && kept.ino === st.ino) return kept.stream;
  const stream = new net.Socket({ fd, readable: true, writable: false });
  socketStreams.set(fd, { stream, dev: st.dev, ino: st.ino });
  return stream;
}

/** A running pump; stop() ends it (the run is over). */
export interface InputPump { stop(): void }

/**
 * Fills `sab` (createInputRing) from host fd `fd` once the guest asks for input, calling `wake`
 * whenever bytes, the end of input or an error arrive. Runs on a thread with an event loop.
 */
export function startInputPump(fd: number, sab: SharedArrayBuffer, wake: () => void): InputPump {
  const ctl = new Int32Array(sab, 0, 4);
  const data = new Uint8Array(sab, HEADER_BYTES);
  const cap = data.length;
  let w = Atomics.load(ctl, WRITE) >>> 0;
  let stopped = false;
  let stream: Readable | undefined;
  let owned = false;

  const finish = (state: number): void => {
    Atomics.store(ctl, STATE, state);
    wake();
  };
  /** Copies what fits of `chunk` into the ring; returns the rest. */
  const push = (chunk: Uint8Array): Uint8Array => {
    const free = cap - ((w - (Atomics.load(ctl, READ) >>> 0)) >>> 0);
    const n = Math.min(free, chunk.length);
    if (n === 0) return chunk;
    ringPut(data, w, chunk.subarray(0, n));
    w = (w + n) >>> 0;
    Atomics.store(ctl, WRITE, w | 0);
    wake();
    return chunk.subarray(n);
  };
  /** Waits for the guest to make room, then resumes reading once all of `rest` is in. */
  const drainInto = (rest: Uint8Array): void => {
    if (stopped) return;
    const r = Atomics.load(ctl, READ);
    const left = push(rest);
    if (left.length === 0) { stream?.resume(); return; }
    void changed(ctl, READ, r).then(() => drainInto(left));
  };
  const onData = (chunk: Buffer): void => {
    const left = push(chunk);
    if (left.length > 0) {
      stream!.pause();
      drainInto(left);
    }
  };
  const onEnd = (): void => finish(EOF);
  const onError = (): void => finish(FAILED);

  const listen = (flowing: boolean): void => {
    stream!.on('data', onData);
    stream!.once('end', onEnd);
    stream!.once('error', onError);
    if (flowing) stream!.resume();
    else stream!.pause();
  };
  /**
   * Reads `own` (non-blocking) on this thread while it has bytes and the ring has room, and hands
   * it to a stream only once it would block. A FIFO whose writers had all gone when it was
   * reopened reads as its end at once, but epoll never reports that end to the new description.
   */
  const readAhead = (own: number): void => {
    const scratch = Buffer.allocUnsafe(64 << 10);
    const step = (): void => {
      try {
        for (;;) {
          if (stopped) { fs.closeSync(own); return; }
          const r = Atomics.load(ctl, READ);
          const free = cap - ((w - (r >>> 0)) >>> 0);
          if (free === 0) { void changed(ctl, READ, r).then(step); return; }
          let n: number;
          try {
            n = fs.readSync(own, scratch, 0, Math.min(free, scratch.length), null);
          } catch (e) {
            if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e;
            stream = tty.isatty(own) ? new tty.ReadStream(own) : new net.Socket({ fd: own, readable: true, writable: false });
            owned = true;
            listen(true);
            return;
          }
          if (n === 0) { fs.closeSync(own); finish(EOF); return; }
          push(scratch.subarray(0, n));
        }
      } catch {
        try { fs.closeSync(own); } catch { /* already closed */ }
        finish(FAILED);
      }
    };
    step();
  };
  const start = (): void => {
    if (stopped) return;
    try {
      const own = reopen(fd);
      if (own === undefined) {
        stream = socketStream(fd);
        owned = false;
        // A kept socket whose end an earlier run read ends at once.
        if (stream.readableEnded) { finish(EOF); return; }
        listen(true);
        return;
      }
      readAhead(own);
    } catch {
      finish(FAILED);
    }
  };
  if (Atomics.load(ctl, WANTED) !== 0) start();
  else void changed(ctl, WANTED, 0).then(start);

  return {
    stop() {
      if (stopped) return;
      stopped = true;
      // Release the waits for a start or for room, so that what they hold is let go.
      Atomics.store(ctl, WANTED, -1);
      Atomics.notify(ctl, WANTED);
      Atomics.notify(ctl, READ);
      if (!stream) return;
      stream.off('data', onData);
      stream.off('end', onEnd);
      stream.off('error', onError);
      if (owned) stream.destroy();
      else stream.pause();
    },
  };
}

/** A new input ring's shared memory. */
export function createInputRing(dataBytes = INPUT_RING_BYTES): PumpedInput {
  return { pump: new SharedArrayBuffer(HEADER_BYTES + dataBytes) };
}

/** The guest's end of an input ring: reads block on the run's Waker, never in a system call. */
export class InputRingReader {
  private readonly ctl: Int32Array;
  private readonly data: Uint8Array;
  private r: number;
  constructor(input: PumpedInput, private readonly waker: Waker) {
    this.ctl = new Int32Array(input.pump, 0, 4);
    this.data = new Uint8Array(input.pump, HEADER_BYTES);
    this.r = Atomics.load(this.ctl, READ) >>> 0;
  }

  /** Whether a read would return now: bytes are waiting, or the input has ended. Starts the pump. */
  ready(): boolean {
    if (Atomics.load(this.ctl, WANTED) === 0) {
      Atomics.store(this.ctl, WANTED, 1);
      Atomics.notify(this.ctl, WANTED);
    }
    return Atomics.load(this.ctl, WRITE) >>> 0 !== this.r || Atomics.load(this.ctl, STATE) !== OPEN;
  }

  /** Fills `bufs` from the ring, sleeping on the Waker until input comes; 0 at the end of input. */
  read(bufs: Uint8Array[]): number {
    for (;;) {
      const seq = this.waker.seq;
      if (this.ready()) break;
      this.waker.sleep(seq, Infinity);
    }
    const end = Atomics.load(this.ctl, WRITE) >>> 0;
    let total = 0;
    for (const b of bufs) {
      const n = Math.min(b.length, (end - this.r) >>> 0);
      if (n === 0) { if (b.length === 0) continue; break; }
      ringGet(this.data, this.r, b.subarray(0, n));
      this.r = (this.r + n) >>> 0;
      total += n;
    }
    if (total > 0) {
      Atomics.store(this.ctl, READ, this.r | 0);
      Atomics.notify(this.ctl, READ);
      return total;
    }
    if (Atomics.load(this.ctl, STATE) === FAILED) fail(ERRNO.IO, 'reading stdin from the host failed');
    return 0;
  }
}

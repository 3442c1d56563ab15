/**
 * pipe(): a byte ring in a SharedArrayBuffer, so its two ends can live in different guests (a
 * parent and the children it passes them to), each on its own worker thread.
 *
 * Each end of a descriptor "holds" the pipe in one of HOLDERS slots per side, marked with its
 * process's pid. EOF is an empty ring with no writer slot marked; EPIPE is a write with no reader
 * slot marked. Marking by pid (rather than counting) lets the host release every slot of a child
 * it had to terminate, whose own close() never ran: `releasePipeHolder`, idempotent.
 *
 * Whoever changes a pipe (data in, data out, an end closed) wakes the family's Waker: every guest
 * of one run tree shares that cell, so a reader asleep in another worker wakes up (src/wasi/wake.ts).
 */
import { ERRNO, FILETYPE } from './constants.js';
import { fail } from './errors.js';
import { Handle } from './handles.js';
import type { Stat } from './fs/types.js';
import type { Waker } from './wake.js';

/** Bytes a pipe buffers, as Linux's default pipe capacity. */
export const PIPE_CAPACITY = 64 * 1024;
/** Writes up to this size are atomic (POSIX PIPE_BUF). */
export const PIPE_BUF = 4096;
/** Descriptors (across every guest of the run) that may hold one side of a pipe. */
export const PIPE_HOLDERS = 16;

const LOCK = 0;
const RPOS = 1; // bytes read so far (wraps)
const WPOS = 2; // bytes written so far (wraps)
const READERS = 4; // PIPE_HOLDERS slots
const WRITERS = READERS + PIPE_HOLDERS;
const HEADER_INTS = WRITERS + PIPE_HOLDERS;
const HEADER_BYTES = HEADER_INTS * 4;

/** Which side of a pipe a descriptor is. */
export type PipeSide = 'read' | 'write';

/** A new, empty pipe's shared buffer. */
export function createPipeBuffer(): SharedArrayBuffer {
  return new SharedArrayBuffer(HEADER_BYTES + PIPE_CAPACITY);
}

function slotsOf(side: PipeSide): number {
  return side === 'read' ? READERS : WRITERS;
}

/** Marks one slot of `side` with `pid`; false when every slot is taken. */
export function claimPipeHolder(sab: SharedArrayBuffer, side: PipeSide, pid: number): boolean {
  const h = new Int32Array(sab, 0, HEADER_INTS);
  const base = slotsOf(side);
  for (let i = 0; i < PIPE_HOLDERS; i++) if (Atomics.compareExchange(h, base + i, 0, pid) === 0) return true;
  return false;
}

/** Clears every slot `pid` holds on either side (a process that ended); returns how many. */
export function releasePipeHolder(sab: SharedArrayBuffer, pid: number): number {
  const h = new Int32Array(sab, 0, HEADER_INTS);
  let n = 0;
  for (let i = READERS; i < HEADER_INTS; i++) if (Atomics.compareExchange(h, i, pid, 0) === pid) n++;
  return n;
}

function holders(h: Int32Array, side: PipeSide): number {
  const base = slotsOf(side);
  let n = 0;
  for (let i = 0; i < PIPE_HOLDERS; i++) if (Atomics.load(h, base + i) !== 0) n++;
  return n;
}

/** One end of a pipe, as a descriptor of one guest. */
export class PipeHandle extends Handle {
  readonly filetype = FILETYPE.UNKNOWN;
  private readonly h: Int32Array;
  private readonly data: Uint8Array;
  private closed = false;
  /** `sab` is the pipe; the caller has already claimed a holder slot of `side` for `pid`. */
  constructor(readonly sab: SharedArrayBuffer, readonly side: PipeSide, readonly pid: number, private readonly waker: Waker) {
    super();
    this.h = new Int32Array(sab, 0, HEADER_INTS);
    this.data = new Uint8Array(sab, HEADER_BYTES, PIPE_CAPACITY);
  }

  private lock(): void {
    // Held only while bytes are copied: microseconds, never across a sleep.
    while (Atomics.compareExchange(this.h, LOCK, 0, 1) !== 0) Atomics.wait(this.h, LOCK, 1, 1);
  }
  private unlock(): void {
    Atomics.store(this.h, LOCK, 0);
    Atomics.notify(this.h, LOCK, 1);
  }
  private used(): number {
    return (Atomics.load(this.h, WPOS) - Atomics.load(this.h, RPOS)) | 0;
  }

  override read(bufs: Uint8Array[]): number {
    if (this.side !== 'read') return fail(ERRNO.BADF, 'this is the write end of a pipe');
    const want = bufs.reduce((n, b) => n + b.length, 0);
    if (want === 0) return 0;
    for (;;) {
      const seq = this.waker.seq;
      this.lock();
      const used = this.used();
      if (used > 0) {
        let rpos = Atomics.load(this.h, RPOS);
        let total = 0;
        for (const b of bufs) {
          let off = 0;
          while (off < b.length && total < used) {
            const at = (rpos >>> 0) % PIPE_CAPACITY;
            const n = Math.min(b.length - off, used - total, PIPE_CAPACITY - at);
            b.set(this.data.subarray(at, at + n), off);
            off += n; total += n; rpos = (rpos + n) | 0;
          }
          if (total >= used) break;
        }
        Atomics.store(this.h, RPOS, rpos);
        this.unlock();
        this.waker.wake();
        return total;
      }
      this.unlock();
      if (holders(this.h, 'write') === 0) return 0; // EOF: empty and no writer left
      if (this.nonblocking) return fail(ERRNO.AGAIN, 'the pipe is empty');
      this.waker.sleep(seq, Infinity);
    }
  }

  override write(bufs: Uint8Array[]): number {
    if (this.side !== 'write') return fail(ERRNO.BADF, 'this is the read end of a pipe');
    const all = bufs.length === 1 ? bufs[0]! : Buffer.concat(bufs);
    let done = 0;
    while (done < all.length) {
      const seq = this.waker.seq;
      if (holders(this.h, 'read') === 0) {
        if (done > 0) return done;
        return fail(ERRNO.PIPE, 'the pipe has no reader left');
      }
      this.lock();
      const room = PIPE_CAPACITY - this.used();
      const left = all.length - done;
      // Up to PIPE_BUF bytes go in one piece, so writers sharing a pipe never interleave them.
      const n = left <= PIPE_BUF && room < left ? 0 : Math.min(room, left);
      if (n > 0) {
        let wpos = Atomics.load(this.h, WPOS);
        let copied = 0;
        while (copied < n) {
          const at = (wpos >>> 0) % PIPE_CAPACITY;
          const k = Math.min(n - copied, PIPE_CAPACITY - at);
          this.data.set(all.subarray(done + copied, done + copied + k), at);
          copied += k; wpos = (wpos + k) | 0;
        }
        Atomics.store(this.h, WPOS, wpos);
        this.unlock();
        done += n;
        this.waker.wake();
        continue;
      }
      this.unlock();
      if (this.nonblocking) {
        if (done > 0) return done;
        return fail(ERRNO.AGAIN, 'the pipe is full');
      }
      this.waker.sleep(seq, Infinity);
    }
    return done;
  }

  override readReady(): boolean {
    return this.side === 'read' && (this.used() > 0 || holders(this.h, 'write') === 0);
  }

  override writeReady(): boolean {
    return this.side === 'write' && (holders(this.h, 'read') === 0 || PIPE_CAPACITY - this.used() >= PIPE_BUF);
  }

  override stat(): Stat {
    return { dev: 0n, ino: 0n, nlink: 1n, size: BigInt(this.side === 'read' ? this.used() : 0), atim: 0n, mtim: 0n, ctim: 0n, filetype: this.filetype };
  }

  override close(): void {
    if (this.closed) return;
    this.closed = true;
    const base = slotsOf(this.side);
    for (let i = 0; i < PIPE_HOLDERS; i++) {
      if (Atomics.compareExchange(this.h, base + i, this.pid, 0) === this.pid) break;
    }
    this.waker.wake();
  }
}

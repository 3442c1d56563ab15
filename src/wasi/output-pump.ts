/**
 * stdout and stderr to a host pipe or terminal (the CLI's `capsa run … | consumer`), without a
 * guest's thread ever sitting in write(2): a full pipe whose reader has stopped would hold it
 * there, where it cannot be terminated. The guest copies each write into a SharedArrayBuffer ring
 * and sleeps until the host thread, which writes the ring to the descriptor asynchronously (libuv's
 * epoll), has handed all of it to the kernel: fd_write returns when its bytes are in the pipe, as
 * a blocking write(2) does, so stdout and stderr on one pipe keep their order, and nothing is held
 * back when the run ends. The ring bounds what is in flight.
 *
 * Layout: 16 bytes of header (Int32: write position, read position, state), then the data area.
 * One writer (the guest), one reader (the pump).
 */
import fs from 'node:fs';
import net from 'node:net';
import tty from 'node:tty';
import type { Writable } from 'node:stream';
import { ERRNO } from './constants.js';
import { fail } from './errors.js';
import { changed, reopen, ringGet, ringPut } from './input-pump.js';

const WRITE = 0;
const READ = 1;
const STATE = 2;
const HEADER_BYTES = 16;
const OPEN = 0;
const FAILED = 2;

/** Bytes in flight between a guest and the descriptor it writes to. */
export const OUTPUT_RING_BYTES = 256 << 10;

/** A host fd the pump writes for the guest; plain data that crosses postMessage. */
export interface PumpedOutput { pump: SharedArrayBuffer }

/**
 * Whether writing `fd` may block and can be pumped: a pipe or a terminal, which the pump reopens
 * as a description of its own. Sockets (no reopening through /proc) and files are written directly.
 */
export function outputNeedsPump(fd: number): boolean {
  try {
    const st = fs.fstatSync(fd);
    return st.isFIFO() || tty.isatty(fd);
  } catch {
    return false;
  }
}

/** A new output ring's shared memory. */
export function createOutputRing(dataBytes = OUTPUT_RING_BYTES): PumpedOutput {
  return { pump: new SharedArrayBuffer(HEADER_BYTES + dataBytes) };
}

/**
 * A running output pump. stop() closes its descriptor: every fd_write that returned is written by
 * then, and what is left belongs to a write the end of the run interrupted (as a killed process's
 * write(2) is), which must not keep the host waiting on a reader that has stopped reading.
 */
export interface OutputPump { stop(): void }

/** Writes what the guest commits to `sab` to host fd `fd`. Runs on a thread with an event loop. */
export function startOutputPump(fd: number, sab: SharedArrayBuffer): OutputPump {
  const ctl = new Int32Array(sab, 0, 3);
  const data = new Uint8Array(sab, HEADER_BYTES);
  let r = Atomics.load(ctl, READ) >>> 0;
  let stream: Writable | undefined;
  let stopped = false;
  let failed = false;

  const failWith = (): void => {
    failed = true;
    Atomics.store(ctl, STATE, FAILED);
    Atomics.notify(ctl, READ);
    stream?.destroy();
  };
  const open = (): Writable => {
    const own = reopen(fd, fs.constants.O_WRONLY);
    if (own === undefined) throw new Error(`cannot reopen fd ${fd}`);
    const s: Writable = tty.isatty(own) ? new tty.WriteStream(own) : new net.Socket({ fd: own, readable: false, writable: true });
    s.on('error', failWith);
    return s;
  };
  const step = (): void => {
    if (failed) return;
    if (stopped) { stream?.destroy(); return; }
    const w = Atomics.load(ctl, WRITE) >>> 0;
    if (w === r) {
      void changed(ctl, WRITE, w | 0).then(step);
      return;
    }
    const n = (w - r) >>> 0;
    const chunk = Buffer.allocUnsafe(n);
    ringGet(data, r, chunk);
    try {
      stream ??= open();
    } catch {
      failWith();
      return;
    }
    stream.write(chunk, (e) => {
      if (stopped) return;
      if (e) return failWith();
      r = (r + n) >>> 0;
      Atomics.store(ctl, READ, r | 0);
      Atomics.notify(ctl, READ);
      step();
    });
  };
  step();
  return {
    stop() {
      stopped = true;
      stream?.destroy();
      // Release the wait for commits.
      Atomics.notify(ctl, WRITE);
    },
  };
}

/** The guest's end: each write returns once the host has handed all of it to the descriptor. */
export class OutputRingWriter {
  private readonly ctl: Int32Array;
  private readonly data: Uint8Array;
  private readonly cap: number;
  private w: number;
  constructor(output: PumpedOutput) {
    this.ctl = new Int32Array(output.pump, 0, 3);
    this.data = new Uint8Array(output.pump, HEADER_BYTES);
    this.cap = this.data.length;
    this.w = Atomics.load(this.ctl, WRITE) >>> 0;
  }

  /** Writes all of `bytes`, sleeping while the ring is full or not yet written out; EPIPE if the host could not write. */
  write(bytes: Uint8Array): void {
    let off = 0;
    for (;;) {
      if (Atomics.load(this.ctl, STATE) !== OPEN) fail(ERRNO.PIPE, 'writing to the host descriptor failed');
      const r = Atomics.load(this.ctl, READ);
      const inFlight = (this.w - (r >>> 0)) >>> 0;
      if (off === bytes.length && inFlight === 0) return;
      const n = Math.min(this.cap - inFlight, bytes.length - off);
      if (n > 0) {
        ringPut(this.data, this.w, bytes.subarray(off, off + n));
        off += n;
        this.w = (this.w + n) >>> 0;
        Atomics.store(this.ctl, WRITE, this.w | 0);
        Atomics.notify(this.ctl, WRITE);
        continue;
      }
      // The host notifies READ as the descriptor takes bytes (or fails); a stopped run's worker is terminated here.
      Atomics.wait(this.ctl, READ, r);
    }
  }
}

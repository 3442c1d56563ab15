/**
 * The output ring: a SharedArrayBuffer per pool slot through which a guest worker hands its output
 * and audit events to the host thread. A record is committed when the worker publishes the write
 * position after copying it in; from then on the bytes are in memory the host thread shares, so
 * terminating the worker (wall or CPU limit, cancel) or losing it cannot take them away: the pool
 * drains the ring before it reports the run's end. Nothing is held back in the worker, and a
 * streaming run wakes the host thread (Atomics.notify → Atomics.waitAsync) on every commit after
 * its first few milliseconds (before them the pool's clock drains it: see RingWriter.eagerFrom).
 *
 * Layout: 16 bytes of header (Int32: write position, read position), then the data area, a power
 * of two in size. Positions count bytes since the ring was made and wrap at 2^32 (the difference
 * of two positions, taken unsigned, is the bytes in between). A record is a 5-byte header (kind,
 * payload length u32 LE) and its payload; either may wrap around the end of the data area. One
 * writer (the worker), one reader (the host thread).
 */

/** What a record holds: stdout or stderr bytes, or one audit event as JSON. */
export const RecordKind = { stdout: 1, stderr: 2, audit: 3 } as const;
export type RecordKind = (typeof RecordKind)[keyof typeof RecordKind];

const WRITE = 0;
const READ = 1;
const HEADER_BYTES = 16;
const RECORD_HEADER = 5;

// Node has Atomics.waitAsync since 16; TypeScript declares it only in lib es2024, above this project's.
const waitAsync = (Atomics as unknown as {
  waitAsync(ta: Int32Array, index: number, value: number): { async: false; value: 'not-equal' | 'timed-out' } | { async: true; value: Promise<'ok' | 'timed-out'> };
}).waitAsync;

/** Bytes of data area per slot: enough that a host thread busy for a while does not stall the guest. */
export const RING_BYTES = 256 << 10;

/** A new ring's shared memory. */
export function createRing(dataBytes = RING_BYTES): SharedArrayBuffer {
  if (dataBytes < 64 || (dataBytes & (dataBytes - 1)) !== 0) throw new RangeError(`The output ring's size must be a power of two of at least 64 bytes, not ${dataBytes}`);
  return new SharedArrayBuffer(HEADER_BYTES + dataBytes);
}

class Ring {
  protected readonly ctl: Int32Array;
  protected readonly data: Uint8Array;
  protected readonly capacity: number;
  /** A ring at `offset` of `sab` (16 bytes of header, then `dataBytes`, a power of two; default: the rest of `sab`). */
  constructor(sab: SharedArrayBuffer, offset = 0, dataBytes?: number) {
    this.ctl = new Int32Array(sab, offset, 2);
    this.data = new Uint8Array(sab, offset + HEADER_BYTES, dataBytes);
    this.capacity = this.data.length;
  }

  protected put(pos: number, bytes: Uint8Array): void {
    const at = pos % this.capacity;
    const first = Math.min(bytes.length, this.capacity - at);
    this.data.set(bytes.subarray(0, first), at);
    if (first < bytes.length) this.data.set(bytes.subarray(first), 0);
  }

  protected copyOut(pos: number, len: number, into: Uint8Array, at: number): void {
    const from = pos % this.capacity;
    const first = Math.min(len, this.capacity - from);
    into.set(this.data.subarray(from, from + first), at);
    if (first < len) into.set(this.data.subarray(0, len - first), at + first);
  }
}

/** Bytes a byte ring at some offset takes: its header and its data area. */
export const byteRingBytes = (dataBytes: number): number => HEADER_BYTES + dataBytes;

/**
 * A byte stream through shared memory (a socket's receive or send side): one writer, one reader,
 * on any two threads, neither of which ever blocks here. The writer writes what fits and is told
 * how much; the reader reads, peeks, or sees what is there. Whoever waits for the other side
 * sleeps elsewhere (the run's Waker, or the host thread's event loop), so no call here waits.
 */
export class ByteRing extends Ring {
  /** Bytes written and not yet read. */
  available(): number {
    return (Atomics.load(this.ctl, WRITE) - Atomics.load(this.ctl, READ)) >>> 0;
  }

  /** Bytes the writer may still write. */
  room(): number {
    return this.capacity - this.available();
  }

  /** Writes as much of `bytes` as fits; returns how much that was. */
  write(bytes: Uint8Array): number {
    const n = Math.min(bytes.length, this.room());
    if (n === 0) return 0;
    const w = Atomics.load(this.ctl, WRITE) >>> 0;
    this.put(w, n === bytes.length ? bytes : bytes.subarray(0, n));
    Atomics.store(this.ctl, WRITE, (w + n) | 0);
    return n;
  }

  /** Copies up to `into.length` bytes out; consumes them unless `peek`. */
  read(into: Uint8Array, peek = false): number {
    const n = Math.min(into.length, this.available());
    if (n === 0) return 0;
    const r = Atomics.load(this.ctl, READ) >>> 0;
    this.copyOut(r, n, into, 0);
    if (!peek) Atomics.store(this.ctl, READ, (r + n) | 0);
    return n;
  }

  /** Empties the ring (both positions back to 0); only while neither side uses it. */
  clear(): void {
    Atomics.store(this.ctl, WRITE, 0);
    Atomics.store(this.ctl, READ, 0);
  }
}

/** The worker's end: copies records in, waiting for room when the host thread is behind. */
export class RingWriter extends Ring {
  /**
   * Wake the reader on every commit made from this time on (performance.now(); a streaming run
   * sets it a few ms after its start). Before it, and in a collected run (Infinity), only once the
   * ring is half full: the reader drains the rest on its own clock or when the run ends. A short
   * run then wakes its host thread once (its end), not once per write and once more for its end.
   */
  eagerFrom = Infinity;
  private w: number;
  private readonly head = new Uint8Array(RECORD_HEADER);
  private readonly headView = new DataView(this.head.buffer);
  constructor(sab: SharedArrayBuffer) {
    super(sab);
    this.w = Atomics.load(this.ctl, WRITE) >>> 0;
  }

  /** Commits `bytes` as one or more records of `kind`; returns once they are in the ring. */
  write(kind: RecordKind, bytes: Uint8Array): void {
    // A record is at most half the ring, so one always fits once the reader has caught up.
    const max = (this.capacity >>> 1) - RECORD_HEADER;
    for (let off = 0; off < bytes.length; off += max) {
      const part = bytes.subarray(off, Math.min(bytes.length, off + max));
      const need = RECORD_HEADER + part.length;
      for (;;) {
        const r = Atomics.load(this.ctl, READ);
        if (this.capacity - ((this.w - r) >>> 0) >= need) break;
        this.wake();
        // Room comes when the reader drains (it notifies READ). A stopped run's worker is terminated while it waits.
        Atomics.wait(this.ctl, READ, r);
      }
      this.head[0] = kind;
      this.headView.setUint32(1, part.length, true);
      this.put(this.w, this.head);
      this.put(this.w + RECORD_HEADER, part);
      this.w = (this.w + need) >>> 0;
      // The commit: from here on the record is the reader's, whatever happens to this thread.
      Atomics.store(this.ctl, WRITE, this.w | 0);
      if (((this.w - Atomics.load(this.ctl, READ)) >>> 0) >= this.capacity >>> 1 || performance.now() >= this.eagerFrom) this.wake();
    }
  }

  private wake(): void {
    Atomics.notify(this.ctl, WRITE);
  }

}

/** The host thread's end: drains committed records, and waits for commits without blocking. */
export class RingReader extends Ring {
  private r: number;
  private closed = false;
  private readonly head = new Uint8Array(RECORD_HEADER);
  private readonly headView = new DataView(this.head.buffer);
  constructor(sab: SharedArrayBuffer) {
    super(sab);
    this.r = Atomics.load(this.ctl, READ) >>> 0;
  }

  /**
   * Hands every record committed so far to `sink`, in order; adjacent records of one stream come
   * as one chunk, audit records one by one. Frees their room and wakes a writer waiting for it.
   */
  drain(sink: (kind: RecordKind, bytes: Uint8Array) => void): void {
    // Up to the write position seen now: a writer that keeps writing is served by the next wake-up.
    const end = Atomics.load(this.ctl, WRITE) >>> 0;
    if (end === this.r) return;
    let kind: RecordKind | undefined;
    let spans: [pos: number, len: number][] = [];
    let bytes = 0;
    const emit = (): void => {
      if (kind === undefined || spans.length === 0) return;
      const out = new Uint8Array(bytes);
      let at = 0;
      for (const [pos, len] of spans) { this.copyOut(pos, len, out, at); at += len; }
      spans = [];
      bytes = 0;
      sink(kind, out);
    };
    while (this.r !== end) {
      this.copyOut(this.r, RECORD_HEADER, this.head, 0);
      const k = this.head[0] as RecordKind;
      const len = this.headView.getUint32(1, true);
      if (k !== kind || k === RecordKind.audit) emit();
      kind = k;
      spans.push([this.r + RECORD_HEADER, len]);
      bytes += len;
      this.r = (this.r + RECORD_HEADER + len) >>> 0;
    }
    emit();
    Atomics.store(this.ctl, READ, this.r | 0);
    Atomics.notify(this.ctl, READ);
  }

  /**
   * Calls `onCommit` whenever the ring holds records not drained yet and the writer has signalled
   * (see RingWriter's `eager`), until close(). The wait does not keep the process alive.
   */
  watch(onCommit: () => void): void {
    const next = (): void => {
      if (this.closed) return;
      onCommit();
      arm();
    };
    const arm = (): void => {
      if (this.closed) return;
      // Wait while nothing is undrained: a commit made since the last drain answers at once.
      const w = waitAsync(this.ctl, WRITE, this.r | 0);
      if (w.async) void w.value.then(next);
      else setImmediate(next);
    };
    arm();
  }

  /** Stops watching and releases the pending wait. */
  close(): void {
    this.closed = true;
    Atomics.notify(this.ctl, WRITE);
  }
}

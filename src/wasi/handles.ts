import fs from 'node:fs';
import { ERRNO, FILETYPE, WHENCE } from './constants.js';
import { fail } from './errors.js';
import type { FileIO, FsDir, Stat, TimesUpdate } from './fs/types.js';
import { R } from './rights.js';
import { InputRingReader, type PumpedInput } from './input-pump.js';
import type { Waker } from './wake.js';

const ZERO_STAT: Omit<Stat, 'filetype'> = { dev: 0n, ino: 0n, nlink: 1n, size: 0n, atim: 0n, mtim: 0n, ctim: 0n };

/**
 * What an fd points at. Rights are checked by the FdTable before any method runs, so a method only
 * has to say what its kind of object cannot do (a directory cannot be read like a file, a pipe
 * cannot seek).
 */
export abstract class Handle {
  abstract readonly filetype: number;
  read(_bufs: Uint8Array[]): number { return fail(ERRNO.BADF); }
  write(_bufs: Uint8Array[]): number { return fail(ERRNO.BADF); }
  pread(_bufs: Uint8Array[], _pos: number): number { return fail(ERRNO.SPIPE); }
  pwrite(_bufs: Uint8Array[], _pos: number): number { return fail(ERRNO.SPIPE); }
  seek(_offset: bigint, _whence: number): bigint { return fail(ERRNO.SPIPE); }
  tell(): bigint { return fail(ERRNO.SPIPE); }
  stat(): Stat { return { ...ZERO_STAT, filetype: this.filetype }; }
  setSize(_size: number): void { fail(ERRNO.INVAL); }
  setTimes(_t: TimesUpdate): void { fail(ERRNO.NOTSUP); }
  allocate(_offset: number, _len: number): void { fail(ERRNO.NOTSUP); }
  sync(): void {}
  /** FDFLAGS.NONBLOCK, set by fd_fdstat_set_flags: a read or write that would block fails EAGAIN. */
  nonblocking = false;
  /** Whether fd_read would return without blocking (poll_oneoff). */
  readReady(): boolean { return true; }
  /** Whether fd_write would return without blocking (poll_oneoff). */
  writeReady(): boolean { return true; }
  /** The rights a poll_oneoff subscription on this descriptor needs (a process descriptor needs only CAP_EVENT). */
  pollRights(read: boolean): bigint { return (read ? R.fd_read : R.fd_write) | R.poll_fd_readwrite; }
  /** Bytes a read would return now, for poll_oneoff's `nbytes` (0 when unknown). */
  readyBytes(): number { return 0; }
  /** Whether the other end is gone (poll_oneoff's fd_readwrite_hangup). */
  hungUp(): boolean { return false; }
  close(): void {}
}

/** An open regular file. The offset belongs to the fd, as in POSIX after open(2). */
export class FileHandle extends Handle {
  readonly filetype = FILETYPE.REGULAR_FILE;
  offset = 0;
  constructor(readonly io: FileIO, public append: boolean) { super(); }

  override read(bufs: Uint8Array[]): number {
    const n = this.pread(bufs, this.offset);
    this.offset += n;
    return n;
  }
  override write(bufs: Uint8Array[]): number {
    if (this.append) {
      let total = 0;
      for (const b of bufs) { if (b.length) { this.offset = this.io.append(b); total += b.length; } }
      return total;
    }
    const n = this.pwrite(bufs, this.offset);
    this.offset += n;
    return n;
  }
  override pread(bufs: Uint8Array[], pos: number): number {
    let total = 0;
    for (const b of bufs) {
      const n = this.io.pread(b, pos + total);
      total += n;
      if (n < b.length) break;
    }
    return total;
  }
  override pwrite(bufs: Uint8Array[], pos: number): number {
    let total = 0;
    for (const b of bufs) total += this.io.pwrite(b, pos + total);
    return total;
  }
  override seek(offset: bigint, whence: number): bigint {
    let base: number;
    if (whence === WHENCE.SET) base = 0;
    else if (whence === WHENCE.CUR) base = this.offset;
    else if (whence === WHENCE.END) base = this.io.size();
    else return fail(ERRNO.INVAL, `whence ${whence} is not set, cur or end`);
    const next = BigInt(base) + offset;
    if (next < 0n) fail(ERRNO.INVAL, 'seek before the start of the file');
    if (next > BigInt(Number.MAX_SAFE_INTEGER)) fail(ERRNO.OVERFLOW);
    this.offset = Number(next);
    return next;
  }
  override tell(): bigint { return BigInt(this.offset); }
  override readyBytes(): number { return Math.max(0, this.io.size() - this.offset); }
  override stat(): Stat { return this.io.stat(); }
  override setSize(size: number): void { this.io.truncate(size); }
  override setTimes(t: TimesUpdate): void { this.io.setTimes(t); }
  override allocate(offset: number, len: number): void {
    if (offset + len > this.io.size()) this.io.truncate(offset + len);
  }
  override sync(): void { this.io.sync(); }
  override close(): void { this.io.close(); }
}

/** An open directory: the thing path_* calls resolve beneath. */
export class DirHandle extends Handle {
  readonly filetype = FILETYPE.DIRECTORY;
  constructor(readonly dir: FsDir) {
    super();
    dir.hold?.();
  }
  override close(): void { this.dir.release?.(); }
  override read(): number { return fail(ERRNO.ISDIR); }
  override write(): number { return fail(ERRNO.ISDIR); }
  override seek(): bigint { return fail(ERRNO.ISDIR); }
  override stat(): Stat { return this.dir.stat(); }
  override setTimes(t: TimesUpdate): void { this.dir.setTimes(t); }
}

/**
 * Where a guest's stdin comes from: bytes given up front, a host fd read on demand, a ring a
 * host-thread pump fills from a pipe (./input-pump.ts), or nothing.
 */
export type InputSource = string | Uint8Array | number | PumpedInput | undefined;

const napping = new Int32Array(new SharedArrayBuffer(4));

/**
 * stdin. Reads from a host fd block the guest's thread, as a blocking read(2) would; reads from a
 * pumped pipe sleep on the run's Waker until the pump brings bytes.
 */
export class InputHandle extends Handle {
  private data: Uint8Array | undefined;
  private pos = 0;
  private eof = false;
  private readonly ring: InputRingReader | undefined;
  constructor(private readonly source: InputSource, readonly filetype: number = FILETYPE.CHARACTER_DEVICE, waker?: Waker) {
    super();
    if (typeof source === 'string') this.data = new TextEncoder().encode(source);
    else if (source instanceof Uint8Array) this.data = source;
    else if (typeof source === 'object') {
      if (!waker) throw new TypeError('stdin from a pump needs the run\'s Waker');
      this.ring = new InputRingReader(source, waker);
    }
  }
  override readReady(): boolean {
    return this.ring ? this.ring.ready() : true;
  }
  override read(bufs: Uint8Array[]): number {
    if (this.ring) return this.ring.read(bufs);
    const src = this.source;
    if (typeof src === 'number') {
      if (this.eof) return 0;
      for (const b of bufs) {
        if (b.length === 0) continue;
        let n: number | undefined;
        while (n === undefined) {
          try {
            n = fs.readSync(src, b, 0, b.length, null);
          } catch (e) {
            const code = (e as NodeJS.ErrnoException).code;
            if (code === 'EOF') n = 0;
            // A non-blocking host fd read on the guest's own thread (the in-thread library: no
            // host thread is free to pump it). The host pumps pipes instead (./input-pump.ts).
            else if (code === 'EAGAIN') Atomics.wait(napping, 0, 0, 2);
            else throw e;
          }
        }
        if (n === 0) this.eof = true;
        return n;
      }
      return 0;
    }
    const data = this.data;
    if (!data) return 0;
    let total = 0;
    for (const b of bufs) {
      const n = Math.min(b.length, data.length - this.pos);
      if (n <= 0) break;
      b.set(data.subarray(this.pos, this.pos + n));
      this.pos += n;
      total += n;
    }
    return total;
  }
}

/** Where stdout or stderr go: a callback given each chunk (valid only during the call), a host fd, or nowhere. */
export type OutputSink = ((chunk: Uint8Array) => void) | number | undefined;

/** stdout and stderr. */
export class OutputHandle extends Handle {
  constructor(private readonly sink: OutputSink, readonly filetype: number = FILETYPE.CHARACTER_DEVICE) { super(); }
  override write(bufs: Uint8Array[]): number {
    const sink = this.sink;
    // One fd_write reaches a callback as one chunk, as writev(2) is one write: whoever streams the
    // output never shows half of it (libc's puts writes the line and its newline as two iovecs).
    if (typeof sink === 'function' && bufs.length > 1) {
      const all = Buffer.concat(bufs);
      if (all.length) sink(all);
      return all.length;
    }
    let total = 0;
    for (const b of bufs) {
      if (b.length === 0) continue;
      if (typeof sink === 'function') sink(b);
      else if (typeof sink === 'number') writeAll(sink, b);
      total += b.length;
    }
    return total;
  }
}

/** Writes all of `b` to a host fd, waiting out a full non-blocking pipe rather than dropping bytes. */
export function writeAll(fd: number, b: Uint8Array): void {
  let off = 0;
  while (off < b.length) {
    try {
      off += fs.writeSync(fd, b, off, b.length - off);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e;
      Atomics.wait(napping, 0, 0, 1);
    }
  }
}

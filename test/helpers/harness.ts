/**
 * Calls capsa's preview1 imports directly on a bare WebAssembly.Memory, the way a guest would,
 * so each syscall can be tested without compiling a module.
 */
import { createWasi, type WasiOptions, type Wasi } from '../../src/wasi/wasi.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export interface Harness {
  wasi: Wasi;
  memory: WebAssembly.Memory;
  /** The raw import functions (errno-returning). */
  call: Record<string, (...args: any[]) => number>;
  /** Writes bytes at a fresh scratch address and returns it. */
  put(bytes: Uint8Array | string): { ptr: number; len: number };
  /** Reserves `len` zeroed bytes (8-aligned) and returns their address. */
  alloc(len: number): number;
  u32(ptr: number): number;
  u64(ptr: number): bigint;
  bytes(ptr: number, len: number): Uint8Array;
  text(ptr: number, len: number): string;
  /** Builds an iovec array for `bufs` and returns its pointer. */
  iovecs(bufs: { ptr: number; len: number }[]): number;
  /** path_open returning [errno, fd]. */
  open(dirfd: number, path: string, opts?: { oflags?: number; base?: bigint; inheriting?: bigint; fdflags?: number; follow?: boolean }): [number, number];
  /** fd_write of a string; returns errno. */
  write(fd: number, s: string | Uint8Array): number;
  /** fd_read of up to `max` bytes; returns [errno, text]. */
  read(fd: number, max?: number): [number, string];
  /** fd_fdstat_get; returns [errno, {filetype, flags, base, inheriting}]. */
  fdstat(fd: number): [number, { filetype: number; flags: number; base: bigint; inheriting: bigint }];
}

/** A WASI environment bound to a 4-page memory; scratch allocations start at 1024. */
export function harness(options: WasiOptions = {}): Harness {
  // No stdio of the test process unless a test asks (createWasi defaults to fds 0-2, as node:wasi).
  const wasi = createWasi({ stdin: undefined, stdout: undefined, stderr: undefined, ...options });
  const memory = new WebAssembly.Memory({ initial: 4, maximum: 16 });
  wasi.context.mem.bind(memory);
  let next = 1024;
  const u8 = () => new Uint8Array(memory.buffer);
  const dv = () => new DataView(memory.buffer);
  const alloc = (len: number) => {
    const p = next;
    next += (len + 7) & ~7;
    if (next > memory.buffer.byteLength) throw new Error('harness: scratch memory exhausted');
    u8().fill(0, p, p + len);
    return p;
  };
  const put = (b: Uint8Array | string) => {
    const bytes = typeof b === 'string' ? encoder.encode(b) : b;
    const ptr = alloc(Math.max(bytes.length, 1));
    u8().set(bytes, ptr);
    return { ptr, len: bytes.length };
  };
  const call = wasi.wasiImport as unknown as Record<string, (...args: any[]) => number>;
  const h: Harness = {
    wasi, memory, call, put, alloc,
    u32: (p) => dv().getUint32(p, true),
    u64: (p) => dv().getBigUint64(p, true),
    bytes: (p, l) => u8().slice(p, p + l),
    text: (p, l) => decoder.decode(u8().slice(p, p + l)),
    iovecs(bufs) {
      const p = alloc(bufs.length * 8);
      bufs.forEach((b, i) => { dv().setUint32(p + i * 8, b.ptr, true); dv().setUint32(p + i * 8 + 4, b.len, true); });
      return p;
    },
    open(dirfd, path, o = {}) {
      // Like wasi-libc's openat: by default ask for everything the directory can pass on.
      const inh = h.fdstat(dirfd)[1].inheriting;
      const s = put(path);
      const out = alloc(4);
      const errno = call.path_open!(dirfd, o.follow === false ? 0 : 1, s.ptr, s.len, o.oflags ?? 0,
        o.base ?? inh, o.inheriting ?? inh, o.fdflags ?? 0, out);
      return [errno, h.u32(out)];
    },
    write(fd, s) {
      const b = put(s);
      const iov = h.iovecs([b]);
      const n = alloc(4);
      return call.fd_write!(fd, iov, 1, n);
    },
    read(fd, max = 4096) {
      const buf = alloc(max);
      const iov = h.iovecs([{ ptr: buf, len: max }]);
      const n = alloc(4);
      const errno = call.fd_read!(fd, iov, 1, n);
      return [errno, errno === 0 ? h.text(buf, h.u32(n)) : ''];
    },
    fdstat(fd) {
      const p = alloc(24);
      const errno = call.fd_fdstat_get!(fd, p);
      const d = dv();
      return [errno, { filetype: d.getUint8(p), flags: d.getUint16(p + 2, true), base: d.getBigUint64(p + 8, true), inheriting: d.getBigUint64(p + 16, true) }];
    },
  };
  return h;
}

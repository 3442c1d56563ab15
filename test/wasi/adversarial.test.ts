/**
 * Hostile guests, written in WAT and assembled at test time with wabt: each imports a few
 * wasi_snapshot_preview1 functions, makes calls no honest libc would, and stores every errno it
 * gets back at RESULTS + 4*i (pre-filled with -1, so a call that never ran cannot pass as 0).
 * The host must answer each with an errno, write nothing it was not asked to, and never throw.
 */
import fs from 'node:fs';
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import wabtInit from 'wabt';
import { ERRNO } from '../../src/wasi/constants.js';
import { createMemFs, seedMemDir, type MemDir } from '../../src/wasi/fs/memfs.js';
import { TYPE_RIGHTS } from '../../src/wasi/rights.js';
import { createWasi, type WasiOptions } from '../../src/wasi/wasi.js';

type Wabt = Awaited<ReturnType<typeof wabtInit>>;
let wabt: Wabt;
beforeAll(async () => { wabt = await wabtInit(); });

const PAGE = 65536;
const END = PAGE; // end of a one-page memory
const RESULTS = 0x100;
const MAX_RESULTS = 64;
const FILE_RIGHTS = TYPE_RIGHTS.regularFile.base;

/** wasi_snapshot_preview1 signatures, as wasm types. */
const SIGS: Record<string, { params: string[]; result: boolean }> = {
  args_get: { params: ['i32', 'i32'], result: true },
  args_sizes_get: { params: ['i32', 'i32'], result: true },
  environ_get: { params: ['i32', 'i32'], result: true },
  environ_sizes_get: { params: ['i32', 'i32'], result: true },
  clock_time_get: { params: ['i32', 'i64', 'i32'], result: true },
  random_get: { params: ['i32', 'i32'], result: true },
  fd_write: { params: ['i32', 'i32', 'i32', 'i32'], result: true },
  fd_read: { params: ['i32', 'i32', 'i32', 'i32'], result: true },
  fd_pwrite: { params: ['i32', 'i32', 'i32', 'i64', 'i32'], result: true },
  fd_pread: { params: ['i32', 'i32', 'i32', 'i64', 'i32'], result: true },
  fd_seek: { params: ['i32', 'i64', 'i32', 'i32'], result: true },
  fd_tell: { params: ['i32', 'i32'], result: true },
  fd_close: { params: ['i32'], result: true },
  fd_renumber: { params: ['i32', 'i32'], result: true },
  fd_fdstat_get: { params: ['i32', 'i32'], result: true },
  fd_filestat_get: { params: ['i32', 'i32'], result: true },
  fd_filestat_set_size: { params: ['i32', 'i64'], result: true },
  fd_allocate: { params: ['i32', 'i64', 'i64'], result: true },
  fd_prestat_get: { params: ['i32', 'i32'], result: true },
  fd_prestat_dir_name: { params: ['i32', 'i32', 'i32'], result: true },
  path_open: { params: ['i32', 'i32', 'i32', 'i32', 'i32', 'i64', 'i64', 'i32', 'i32'], result: true },
  path_filestat_get: { params: ['i32', 'i32', 'i32', 'i32', 'i32'], result: true },
  path_create_directory: { params: ['i32', 'i32', 'i32'], result: true },
  path_symlink: { params: ['i32', 'i32', 'i32', 'i32', 'i32'], result: true },
  poll_oneoff: { params: ['i32', 'i32', 'i32', 'i32'], result: true },
  proc_exit: { params: ['i32'], result: false },
};

type Arg = number | bigint | string;

/** `(call $name ...)`; numbers become consts of the parameter's type, strings are raw WAT. */
function call(name: string, ...args: Arg[]): string {
  const sig = SIGS[name];
  if (!sig) throw new Error(`no signature for ${name}`);
  if (args.length !== sig.params.length) throw new Error(`${name} takes ${sig.params.length} arguments`);
  const a = args.map((v, i) => (typeof v === 'string' ? v : `(${sig.params[i]}.const ${v})`));
  return `(call $${name} ${a.join(' ')})`;
}

/** Stores an errno (or any i32 expression) as result i. */
function rec(i: number, expr: string): string {
  if (i >= MAX_RESULTS) throw new Error('too many results');
  return `(i32.store (i32.const ${RESULTS + i * 4}) ${expr})`;
}

function esc(bytes: Uint8Array | string): string {
  const b = typeof bytes === 'string' ? new TextEncoder().encode(bytes) : bytes;
  return Array.from(b, (x) => '\\' + x.toString(16).padStart(2, '0')).join('');
}

function data(addr: number, bytes: Uint8Array | string): string {
  return `(data (i32.const ${addr}) "${esc(bytes)}")`;
}

function le32(...vals: number[]): Uint8Array {
  const out = new Uint8Array(vals.length * 4);
  const dv = new DataView(out.buffer);
  vals.forEach((v, i) => dv.setUint32(i * 4, v >>> 0, true));
  return out;
}

function wat(o: { imports: string[]; data?: string[]; body: string; pages?: number; maxPages?: number; funcs?: string }): string {
  const imports = o.imports.map((n) => {
    const s = SIGS[n]!;
    return `(import "wasi_snapshot_preview1" "${n}" (func $${n} (param ${s.params.join(' ')})${s.result ? ' (result i32)' : ''}))`;
  });
  return `(module
  ${imports.join('\n  ')}
  (memory (export "memory") ${o.pages ?? 1} ${o.maxPages ?? 4})
  ${data(RESULTS, new Uint8Array(MAX_RESULTS * 4).fill(0xff))}
  ${(o.data ?? []).join('\n  ')}
  ${o.funcs ?? ''}
  (func (export "_start") (local $fd i32) (local $i i32) (local $n i32)
    ${o.body}))`;
}

interface RunResult {
  code: number;
  results: number[];
  mem: Uint8Array;
  stdout: string;
  stdoutBytes: number;
  hostErrors: unknown[];
}

/** Every host error any guest caused; the suite ends by checking there were none. */
const allHostErrors: unknown[] = [];

function run(src: string, options: WasiOptions = {}, keepStdout = true): RunResult {
  const m = wabt.parseWat('adversarial.wat', src);
  m.resolveNames();
  m.validate();
  const { buffer } = m.toBinary({});
  m.destroy();
  const chunks: Uint8Array[] = [];
  let stdoutBytes = 0;
  const hostErrors: unknown[] = [];
  const wasi = createWasi({
    stdin: undefined, stderr: undefined,
    ...options,
    stdout: (c) => { stdoutBytes += c.length; if (keepStdout) chunks.push(c.slice()); },
    onHostError: (callName, e) => { hostErrors.push([callName, e]); allHostErrors.push([callName, e]); },
  });
  const instance = new WebAssembly.Instance(new WebAssembly.Module(new Uint8Array(buffer)), wasi.getImportObject());
  const code = wasi.start(instance);
  const mem = new Uint8Array((instance.exports['memory'] as WebAssembly.Memory).buffer);
  const dv = new DataView(mem.buffer);
  const results = Array.from({ length: MAX_RESULTS }, (_, i) => dv.getInt32(RESULTS + i * 4, true));
  return { code, results, mem, stdout: Buffer.concat(chunks).toString(), stdoutBytes, hostErrors };
}

const memPreopen = (seed: Record<string, string> = { f: 'file contents' }): { root: MemDir; options: WasiOptions } => {
  const root = createMemFs();
  seedMemDir(root, seed);
  return { root, options: { preopens: [{ guest: '/data', memory: root }] } };
};

describe('out-of-bounds pointers are EFAULT, and nothing is written', () => {
  const SENTINEL = new Uint8Array(32).fill(0xaa);
  let r: RunResult;
  beforeAll(() => {
    const body = [
      rec(0, call('fd_write', 1, 0xfffffff0, 1, 0x300)), // iovec array at the top of the 4 GiB space
      rec(1, call('fd_write', 1, 0x210, 1, 0x300)), // iovec buf just past the end
      rec(2, call('fd_write', 1, 0x220, 1, 0x300)), // iovec buf 0xFFFFFFFF + 2 wraps in 32 bits
      rec(3, call('fd_write', 1, 0x230, 1, 0x300)), // iovec buf straddles the end
      rec(4, call('fd_write', 1, 0x240, 2, 0x300)), // first iovec good, second bad: no partial write
      rec(5, call('fd_write', 1, 0x260, 1, 0x300)), // len 0xFFFFFFFF
      rec(6, call('fd_write', 1, 0x200, 1, END - 2)), // nwritten straddles the end
      rec(7, call('fd_write', 1, 0x200, 1, 0xfffffffc)), // nwritten out of range
      rec(8, call('fd_write', 1, END - 4, 1, 0x300)), // iovec array straddles the end
      rec(9, call('path_open', 3, 1, 0xfffffff0, 0x20, 0, 0n, 0n, 0, 0x304)), // path ptr+len past 4 GiB
      rec(10, call('path_open', 3, 1, END - 2, 16, 0, 0n, 0n, 0, 0x304)), // path straddles the end
      rec(11, call('fd_fdstat_get', 1, END - 8)), // 24-byte fdstat at the end of memory
      rec(12, call('fd_fdstat_get', 1, END - 23)),
      rec(13, call('fd_filestat_get', 3, END - 32)), // 64-byte filestat, half outside
      rec(14, call('path_filestat_get', 3, 0, 0x400, 1, END - 63)),
      rec(15, call('clock_time_get', 0, 0n, END - 4)),
      rec(16, call('random_get', END - 16, 32)),
      rec(17, call('fd_read', 0, 0x210, 1, 0x300)), // stdin read into a buffer past the end
      rec(18, call('fd_prestat_dir_name', 3, END - 2, 16)),
      rec(19, call('args_sizes_get', 0x308, 0xffffffff)), // count ok, size out of range
      rec(20, call('poll_oneoff', 0xfffffff0, 0x500, 1, 0x30c)),
      rec(21, call('path_open', 3, 1, 0x400, 1, 0, BigInt(FILE_RIGHTS), 0n, 0, END - 1)), // fd out ptr
      rec(22, call('fd_write', 1, 0x200, 1, 0x300)), // control: the same call, in bounds
      rec(23, '(i32.load (i32.const 0x300))'),
    ].join('\n    ');
    r = run(wat({
      imports: ['fd_write', 'fd_read', 'path_open', 'fd_fdstat_get', 'fd_filestat_get', 'path_filestat_get', 'clock_time_get',
        'random_get', 'fd_prestat_dir_name', 'args_sizes_get', 'poll_oneoff'],
      data: [
        data(0x200, le32(0x400, 5)),
        data(0x210, le32(END, 16)),
        data(0x220, le32(0xffffffff, 2)),
        data(0x230, le32(END - 2, 4)),
        data(0x240, le32(0x400, 5, END, 1)),
        data(0x260, le32(0x400, 0xffffffff)),
        data(0x300, new Uint8Array(16).fill(0xaa)),
        data(0x400, 'hello'),
        data(END - 32, SENTINEL),
      ],
      body,
    }), { ...memPreopen().options, args: ['prog', 'arg'], stdin: 'stdin data' });
  });

  const EFAULT_CASES: [number, string][] = [
    [0, 'fd_write: iovec array ptr 0xFFFFFFF0'],
    [1, 'fd_write: iovec buf at the end of memory'],
    [2, 'fd_write: iovec buf 0xFFFFFFFF (wraps)'],
    [3, 'fd_write: iovec buf straddling the end'],
    [4, 'fd_write: second iovec bad'],
    [5, 'fd_write: iovec len 0xFFFFFFFF'],
    [6, 'fd_write: nwritten straddling the end'],
    [7, 'fd_write: nwritten 0xFFFFFFFC'],
    [8, 'fd_write: iovec array straddling the end'],
    [9, 'path_open: path ptr+len past 4 GiB'],
    [10, 'path_open: path straddling the end'],
    [11, 'fd_fdstat_get: buf at end-8'],
    [12, 'fd_fdstat_get: buf at end-23'],
    [13, 'fd_filestat_get: buf at end-32'],
    [14, 'path_filestat_get: buf at end-63'],
    [15, 'clock_time_get: out at end-4'],
    [16, 'random_get: buf straddling the end'],
    [17, 'fd_read: buf past the end'],
    [18, 'fd_prestat_dir_name: buf straddling the end'],
    [19, 'args_sizes_get: size ptr out of range'],
    [20, 'poll_oneoff: subscriptions at 0xFFFFFFF0'],
    [21, 'path_open: fd out ptr straddling the end'],
  ];
  it.each(EFAULT_CASES)('result %i: %s -> EFAULT', (i) => {
    expect(r.results[i]).toBe(ERRNO.FAULT);
  });

  it('the in-bounds control call succeeds, and it alone reached stdout', () => {
    expect(r.code).toBe(0);
    expect(r.results[22]).toBe(ERRNO.SUCCESS);
    expect(r.results[23]).toBe(5);
    expect(r.stdout).toBe('hello');
  });

  it('no partial writes: the sentinel at the end of memory and the scratch words are intact', () => {
    expect(Array.from(r.mem.subarray(END - 32, END))).toEqual(Array.from(SENTINEL));
    // 0x304 (path_open's fd out), 0x308 (args count), 0x30c (poll nevents) were never written.
    expect(Array.from(r.mem.subarray(0x304, 0x310))).toEqual(new Array(12).fill(0xaa));
    expect(r.hostErrors).toEqual([]);
  });
});

describe('huge lengths and counts', () => {
  let r: RunResult;
  beforeAll(() => {
    const body = [
      rec(0, call('fd_write', 1, 0x200, 0x7fffffff, 0x300)),
      rec(1, call('fd_write', 1, 0x200, -1, 0x300)),
      rec(2, call('fd_write', 1, 0x200, 1025, 0x300)),
      rec(3, call('fd_write', 1, 0x200, 1024, 0x300)), // control: IOV_MAX entries is allowed
      rec(4, call('path_open', 3, 1, 0x3000, 0xffffffff, 0, 0n, 0n, 0, 0x304)),
      rec(5, call('path_open', 3, 1, 0x3000, 4097, 0, 0n, 0n, 0, 0x304)),
      rec(6, call('path_filestat_get', 3, 0, 0x3000, 0x80000000, 0x500)),
      rec(7, call('fd_read', 0, 0x200, 0x7fffffff, 0x300)),
      rec(8, call('poll_oneoff', 0x600, 0x700, 0xffffffff, 0x30c)),
      rec(9, call('poll_oneoff', 0x600, 0x700, 0, 0x30c)),
      rec(10, call('poll_oneoff', 0x600, 0x700, 4097, 0x30c)),
      rec(11, call('random_get', 0x3000, 0xffffffff)),
      rec(12, call('path_create_directory', 3, 0x3000, 0xffffffff)),
      rec(13, call('path_symlink', 0x3000, 0xffffffff, 3, 0x3000, 1)),
    ].join('\n    ');
    r = run(wat({
      imports: ['fd_write', 'fd_read', 'path_open', 'path_filestat_get', 'poll_oneoff', 'random_get', 'path_create_directory', 'path_symlink'],
      data: [data(0x200, le32(0x3000, 5)), data(0x3000, 'hello')],
      body,
    }), memPreopen().options);
  });

  it.each([
    [0, 'fd_write iovs_len 0x7FFFFFFF', ERRNO.INVAL],
    [1, 'fd_write iovs_len 0xFFFFFFFF', ERRNO.INVAL],
    [2, 'fd_write iovs_len 1025 (IOV_MAX + 1)', ERRNO.INVAL],
    [3, 'fd_write iovs_len 1024 (control)', ERRNO.SUCCESS],
    [4, 'path_open path_len 0xFFFFFFFF', ERRNO.NAMETOOLONG],
    [5, 'path_open path_len 4097', ERRNO.NAMETOOLONG],
    [6, 'path_filestat_get path_len 0x80000000', ERRNO.NAMETOOLONG],
    [7, 'fd_read iovs_len 0x7FFFFFFF', ERRNO.INVAL],
    [8, 'poll_oneoff nsubscriptions 0xFFFFFFFF', ERRNO.INVAL],
    [9, 'poll_oneoff nsubscriptions 0', ERRNO.INVAL],
    [10, 'poll_oneoff nsubscriptions 4097', ERRNO.INVAL],
    [11, 'random_get len 0xFFFFFFFF', ERRNO.FAULT],
    [12, 'path_create_directory path_len 0xFFFFFFFF', ERRNO.NAMETOOLONG],
    [13, 'path_symlink target_len 0xFFFFFFFF', ERRNO.NAMETOOLONG],
  ])('result %i: %s', (i, _what, errno) => {
    expect(r.results[i]).toBe(errno);
  });

  it('only the control call wrote, and the host raised nothing', () => {
    expect(r.stdout).toBe('hello');
    expect(r.hostErrors).toEqual([]);
  });
});

describe('forged descriptors are EBADF', () => {
  const FORGED = [0x7fffffff, -1, 1000, -0x80000000, 4, 3.5e9 | 0];
  const CALLS: [string, (fd: number) => string][] = [
    ['fd_write', (fd) => call('fd_write', fd, 0x200, 1, 0x300)],
    ['fd_read', (fd) => call('fd_read', fd, 0x200, 1, 0x300)],
    ['fd_close', (fd) => call('fd_close', fd)],
    ['fd_fdstat_get', (fd) => call('fd_fdstat_get', fd, 0x500)],
    ['fd_seek', (fd) => call('fd_seek', fd, 0n, 0, 0x500)],
    ['fd_prestat_get', (fd) => call('fd_prestat_get', fd, 0x500)],
    ['path_open', (fd) => call('path_open', fd, 1, 0x400, 1, 0, 0n, 0n, 0, 0x500)],
    ['fd_renumber(1, fd)', (fd) => call('fd_renumber', 1, fd)],
    ['fd_renumber(fd, 1)', (fd) => call('fd_renumber', fd, 1)],
  ];
  let r: RunResult;
  beforeAll(() => {
    const lines: string[] = [];
    let i = 0;
    for (const fd of FORGED) for (const [, mk] of CALLS) lines.push(rec(i++, mk(fd)));
    // Control: stdout survived every forged renumber.
    lines.push(rec(i++, call('fd_write', 1, 0x200, 1, 0x300)));
    expect(i).toBeLessThanOrEqual(MAX_RESULTS);
    r = run(wat({
      imports: ['fd_write', 'fd_read', 'fd_close', 'fd_fdstat_get', 'fd_seek', 'fd_prestat_get', 'path_open', 'fd_renumber'],
      data: [data(0x200, le32(0x400, 5)), data(0x400, 'hello')],
      body: lines.join('\n    '),
    }), memPreopen().options);
  });

  it.each(FORGED.flatMap((fd, fi) => CALLS.map(([name], ci) => [fi * CALLS.length + ci, name, fd] as const)))(
    'result %i: %s with fd %i -> EBADF', (i, _name, _fd) => {
      expect(r.results[i]).toBe(ERRNO.BADF);
    });

  it('stdout is still open and still stdout after the forged renumbers', () => {
    expect(r.results[FORGED.length * CALLS.length]).toBe(ERRNO.SUCCESS);
    expect(r.stdout).toBe('hello');
    expect(r.hostErrors).toEqual([]);
  });
});

describe('negative and huge sizes and offsets', () => {
  let r: RunResult;
  let root: MemDir;
  beforeAll(() => {
    const pre = memPreopen({ f: 'twelve bytes' });
    root = pre.root;
    const fd = '(local.get $fd)';
    const body = [
      rec(0, call('path_open', 3, 0, 0x400, 1, 0, BigInt(FILE_RIGHTS), 0n, 0, 0x300)),
      '(local.set $fd (i32.load (i32.const 0x300)))',
      rec(1, call('fd_filestat_set_size', fd, 0x8000000000000000n)),
      rec(2, call('fd_filestat_set_size', fd, -1n)),
      rec(3, call('fd_seek', fd, -1n, 0, 0x308)),
      rec(4, call('fd_seek', fd, -1n, 1, 0x308)),
      rec(5, call('fd_seek', fd, 0x7fffffffffffffffn, 0, 0x308)),
      rec(6, call('fd_seek', fd, 0n, 7, 0x308)),
      rec(7, call('fd_seek', fd, -13n, 2, 0x308)), // one before the start, from the end
      rec(8, call('fd_pwrite', fd, 0x200, 1, 0x8000000000000000n, 0x30c)),
      rec(9, call('fd_pread', fd, 0x200, 1, -1n, 0x30c)),
      rec(10, call('fd_allocate', fd, 0x4000000000000000n, 0x4000000000000000n)),
      rec(11, call('fd_filestat_set_size', fd, 1n << 40n)), // a TiB: the memfs quota says no
      rec(12, call('fd_tell', fd, 0x310)),
      rec(13, '(i32.wrap_i64 (i64.load (i32.const 0x310)))'),
      rec(14, call('fd_filestat_get', fd, 0x800)),
      rec(15, '(i32.wrap_i64 (i64.load (i32.const 0x820)))'), // filestat.size
      rec(16, call('fd_seek', fd, -12n, 2, 0x308)), // control: exactly the start
      rec(17, call('fd_seek', fd, 5n, 0, 0x308)), // control
      rec(18, '(i32.wrap_i64 (i64.load (i32.const 0x308)))'),
    ].join('\n    ');
    r = run(wat({
      imports: ['path_open', 'fd_filestat_set_size', 'fd_seek', 'fd_pwrite', 'fd_pread', 'fd_allocate', 'fd_tell', 'fd_filestat_get'],
      data: [data(0x200, le32(0x600, 4)), data(0x400, 'f'), data(0x600, 'data')],
      body,
    }), pre.options);
  });

  it('the file opens with every file right', () => { expect(r.results[0]).toBe(ERRNO.SUCCESS); });
  it('fd_filestat_set_size(2^63) -> EFBIG or EINVAL', () => { expect([ERRNO.FBIG, ERRNO.INVAL]).toContain(r.results[1]); });
  it('fd_filestat_set_size(2^64 - 1) -> EFBIG or EINVAL', () => { expect([ERRNO.FBIG, ERRNO.INVAL]).toContain(r.results[2]); });
  it('fd_seek to -1 (SET) -> EINVAL', () => { expect(r.results[3]).toBe(ERRNO.INVAL); });
  it('fd_seek by -1 from 0 (CUR) -> EINVAL', () => { expect(r.results[4]).toBe(ERRNO.INVAL); });
  it('fd_seek to 2^63 - 1 -> EOVERFLOW or EINVAL', () => { expect([ERRNO.OVERFLOW, ERRNO.INVAL]).toContain(r.results[5]); });
  it('fd_seek with whence 7 -> EINVAL', () => { expect(r.results[6]).toBe(ERRNO.INVAL); });
  it('fd_seek to one before the start from the end -> EINVAL', () => { expect(r.results[7]).toBe(ERRNO.INVAL); });
  it('fd_pwrite at 2^63 -> EFBIG or EINVAL', () => { expect([ERRNO.FBIG, ERRNO.INVAL]).toContain(r.results[8]); });
  it('fd_pread at 2^64 - 1 -> EINVAL or EFBIG', () => { expect([ERRNO.FBIG, ERRNO.INVAL]).toContain(r.results[9]); });
  it('fd_allocate(2^62, 2^62) -> EFBIG or EINVAL', () => { expect([ERRNO.FBIG, ERRNO.INVAL]).toContain(r.results[10]); });
  it('fd_filestat_set_size(1 TiB) on memfs -> ENOSPC, nothing allocated', () => { expect(r.results[11]).toBe(ERRNO.NOSPC); });
  it('failed seeks left the offset at 0 and failed sizes left the file alone', () => {
    expect(r.results[12]).toBe(ERRNO.SUCCESS);
    expect(r.results[13]).toBe(0);
    expect(r.results[14]).toBe(ERRNO.SUCCESS);
    expect(r.results[15]).toBe(12);
    const f = root.lookup('f') as unknown as { length: number; data: Uint8Array };
    expect(f.length).toBe(12);
    expect(f.data.length).toBeLessThan(1 << 20);
  });
  it('in-range seeks work (controls)', () => {
    expect(r.results[16]).toBe(ERRNO.SUCCESS);
    expect(r.results[17]).toBe(ERRNO.SUCCESS);
    expect(r.results[18]).toBe(5);
    expect(r.hostErrors).toEqual([]);
  });
});

describe('paths that are not UTF-8 are EILSEQ', () => {
  const BAD: [string, Uint8Array][] = [
    ['0xFF 0xFE', new Uint8Array([0xff, 0xfe])],
    ['overlong "/" (0xC0 0xAF) + "etc"', new Uint8Array([0xc0, 0xaf, 0x65, 0x74, 0x63])],
    ['lone surrogate (0xED 0xA0 0x80)', new Uint8Array([0xed, 0xa0, 0x80])],
    ['truncated sequence "f" 0xE2 0x82', new Uint8Array([0x66, 0xe2, 0x82])],
    ['overlong ".." (0xC0 0xAE 0xC0 0xAE)', new Uint8Array([0xc0, 0xae, 0xc0, 0xae])],
  ];
  let r: RunResult;
  let root: MemDir;
  beforeAll(() => {
    const pre = memPreopen();
    root = pre.root;
    const lines: string[] = [];
    const datas: string[] = [];
    BAD.forEach(([, b], k) => {
      const at = 0x1000 + k * 0x20;
      datas.push(data(at, b));
      lines.push(rec(k * 4, call('path_open', 3, 1, at, b.length, 1 /* CREAT */, BigInt(FILE_RIGHTS), 0n, 0, 0x300)));
      lines.push(rec(k * 4 + 1, call('path_create_directory', 3, at, b.length)));
      lines.push(rec(k * 4 + 2, call('path_symlink', at, b.length, 3, 0x400, 1)));
      lines.push(rec(k * 4 + 3, call('path_filestat_get', 3, 1, at, b.length, 0x800)));
    });
    lines.push(rec(40, call('path_open', 3, 1, 0x402, 1, 0, BigInt(FILE_RIGHTS), 0n, 0, 0x300))); // control: "f"
    r = run(wat({
      imports: ['path_open', 'path_create_directory', 'path_symlink', 'path_filestat_get'],
      data: [data(0x400, 'x f'), ...datas],
      body: lines.join('\n    '),
    }), pre.options);
  });

  it.each(BAD.flatMap(([what], k) => ['path_open(O_CREAT)', 'path_create_directory', 'path_symlink target', 'path_filestat_get']
    .map((c, j) => [k * 4 + j, c, what] as const)))('result %i: %s with %s -> EILSEQ', (i) => {
    expect(r.results[i]).toBe(ERRNO.ILSEQ);
  });

  it('nothing was created, and a valid path still opens (control)', () => {
    expect(r.results[40]).toBe(ERRNO.SUCCESS);
    expect([...root.entries.keys()]).toEqual(['f']);
    expect(r.hostErrors).toEqual([]);
  });
});

describe('args_get / environ_get with pointers out of range', () => {
  let r: RunResult;
  beforeAll(() => {
    const body = [
      rec(0, call('args_get', 0xfffffff0, 0x400)),
      rec(1, call('args_get', 0x300, 0xfffffff0)),
      rec(2, call('args_get', END - 4, 0x400)), // two pointers need 8 bytes
      rec(3, call('args_get', 0x300, END - 4)), // "prog\0arg\0" needs 9
      rec(4, call('environ_get', 0xfffffff0, 0x400)),
      rec(5, call('environ_get', 0x300, END - 2)),
      rec(6, call('args_sizes_get', 0xffffffff, 0x310)),
      rec(7, call('environ_sizes_get', 0x310, END - 2)),
      rec(8, call('args_get', 0x300, 0x400)), // control
    ].join('\n    ');
    r = run(wat({
      imports: ['args_get', 'args_sizes_get', 'environ_get', 'environ_sizes_get'],
      data: [data(0x300, new Uint8Array(0x20).fill(0xaa)), data(0x400, new Uint8Array(0x20).fill(0xaa)), data(END - 8, new Uint8Array(8).fill(0xaa))],
      body,
    }), { args: ['prog', 'arg'], env: { SECRET: 'value' } });
  });

  it.each([0, 1, 2, 3, 4, 5, 6, 7])('result %i -> EFAULT', (i) => {
    expect(r.results[i]).toBe(ERRNO.FAULT);
  });

  it('the control call lays out argv as usual (so the refusals above wrote nothing first)', () => {
    expect(r.results[8]).toBe(ERRNO.SUCCESS);
    const dv = new DataView(r.mem.buffer);
    expect(dv.getUint32(0x300, true)).toBe(0x400);
    expect(dv.getUint32(0x304, true)).toBe(0x405);
    expect(Buffer.from(r.mem.subarray(0x400, 0x409)).toString()).toBe('prog\0arg\0');
    // The area the refused calls aimed at: untouched (0x310: sizes_get's count, END-8: the tail).
    expect(Array.from(r.mem.subarray(0x310, 0x320))).toEqual(new Array(16).fill(0xaa));
    expect(Array.from(r.mem.subarray(END - 8, END))).toEqual(new Array(8).fill(0xaa));
    expect(r.hostErrors).toEqual([]);
  });
});

describe('many calls', () => {
  it('a guest that calls fd_write 100k times completes; the count comes back as its exit code', () => {
    const N = 100_000;
    const body = `
      (local.set $i (i32.const 0))
      (local.set $n (i32.const 0))
      (block $done (loop $again
        (br_if $done (i32.ge_u (local.get $i) (i32.const ${N})))
        (if ${call('fd_write', 1, 0x200, 1, 0x300)} (then (local.set $n (i32.add (local.get $n) (i32.const 1)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $again)))
      ${rec(0, '(local.get $n)')}
      ${call('proc_exit', '(i32.sub (local.get $i) (local.get $n))')}`;
    const r = run(wat({ imports: ['fd_write', 'proc_exit'], data: [data(0x200, le32(0x400, 6)), data(0x400, 'write\n')], body }), {}, false);
    expect(r.results[0]).toBe(0); // failed calls
    expect(r.code).toBe(N); // successful calls
    expect(r.stdoutBytes).toBe(N * 6);
    expect(r.hostErrors).toEqual([]);
  });

  it('20k path_open/fd_close pairs leak no descriptor: the last open still gets fd 4', () => {
    const N = 20_000;
    const body = `
      (local.set $i (i32.const 0))
      (local.set $n (i32.const 0))
      (block $done (loop $again
        (br_if $done (i32.ge_u (local.get $i) (i32.const ${N})))
        (if ${call('path_open', 3, 0, 0x400, 1, 0, BigInt(FILE_RIGHTS), 0n, 0, 0x300)} (then (local.set $n (i32.add (local.get $n) (i32.const 1)))))
        (if ${call('fd_close', '(i32.load (i32.const 0x300))')} (then (local.set $n (i32.add (local.get $n) (i32.const 1)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $again)))
      ${rec(0, '(local.get $n)')}
      ${rec(1, call('path_open', 3, 0, 0x400, 1, 0, BigInt(FILE_RIGHTS), 0n, 0, 0x300))}
      ${rec(2, '(i32.load (i32.const 0x300))')}`;
    const r = run(wat({ imports: ['path_open', 'fd_close'], data: [data(0x400, 'f')], body }), memPreopen().options);
    expect(r.results.slice(0, 3)).toEqual([0, ERRNO.SUCCESS, 4]);
    expect(r.hostErrors).toEqual([]);
  });
});

describe('memory that grows between calls', () => {
  let r: RunResult;
  beforeAll(() => {
    const P = PAGE;
    const body = [
      rec(0, call('fd_write', 1, 0x200, 1, 0x300)), // iovec -> buf in page 2, which does not exist yet
      rec(1, call('clock_time_get', 0, 0n, P + 8)),
      rec(2, '(memory.grow (i32.const 1))'),
      // "grown" at P, its iovec at P+16, the path "f" at P+100.
      `(i64.store (i32.const ${P}) (i64.const ${Buffer.from('grown\0\0\0').readBigUInt64LE()}))`,
      `(i32.store (i32.const ${P + 16}) (i32.const ${P}))`,
      `(i32.store (i32.const ${P + 20}) (i32.const 5))`,
      `(i32.store8 (i32.const ${P + 100}) (i32.const 102))`,
      rec(3, call('fd_write', 1, P + 16, 1, P + 32)),
      rec(4, `(i32.load (i32.const ${P + 32}))`),
      rec(5, call('fd_fdstat_get', 1, P + 64)),
      rec(6, call('clock_time_get', 0, 0n, 2 * P - 8)),
      rec(7, call('path_open', 3, 1, P + 100, 1, 0, BigInt(FILE_RIGHTS), 0n, 0, 2 * P - 4)),
      rec(8, call('fd_write', 1, P + 16, 1, 2 * P)), // one past the new end
      rec(9, call('fd_write', 1, 0x200, 1, 0x300)), // the call that failed before the grow
      rec(10, '(memory.grow (i32.const 2))'),
      rec(11, call('fd_write', 1, P + 16, 1, 4 * P - 4)), // the last word of the grown memory
      rec(12, '(memory.grow (i32.const 1))'), // past the maximum of 4 pages: -1, no trap
      rec(13, call('fd_write', 1, P + 16, 1, 4 * P)),
    ].join('\n    ');
    r = run(wat({
      imports: ['fd_write', 'clock_time_get', 'fd_fdstat_get', 'path_open'],
      data: [data(0x200, le32(P, 5))],
      body,
      pages: 1,
      maxPages: 4,
    }), memPreopen().options);
  });

  it('before the grow, the new region is EFAULT', () => {
    expect(r.results[0]).toBe(ERRNO.FAULT);
    expect(r.results[1]).toBe(ERRNO.FAULT);
    expect(r.results[2]).toBe(1); // old size in pages
  });
  it('after the grow, calls read and write the new region', () => {
    expect(r.results[3]).toBe(ERRNO.SUCCESS);
    expect(r.results[4]).toBe(5);
    expect(r.results[5]).toBe(ERRNO.SUCCESS);
    expect(r.results[6]).toBe(ERRNO.SUCCESS);
    expect(r.results[7]).toBe(ERRNO.SUCCESS);
    expect(r.results[9]).toBe(ERRNO.SUCCESS);
    expect(r.results[10]).toBe(2);
    expect(r.results[11]).toBe(ERRNO.SUCCESS);
    expect(r.mem.length).toBe(4 * PAGE);
    expect(new DataView(r.mem.buffer).getUint32(4 * PAGE - 4, true)).toBe(5);
  });
  it('the bound moves with the memory: one past each new end is still EFAULT', () => {
    expect(r.results[8]).toBe(ERRNO.FAULT);
    expect(r.results[12]).toBe(-1);
    expect(r.results[13]).toBe(ERRNO.FAULT);
    expect(r.stdout).toBe('grown'.repeat(3));
    expect(r.hostErrors).toEqual([]);
  });
});

describe('the host survived', () => {
  afterAll(() => {
    // Nothing above may have turned into a host exception (EIO through onHostError).
    expect(allHostErrors).toEqual([]);
  });

  it('a real guest still runs to completion in this process after all of the above', () => {
    const bytes = fs.readFileSync(new URL('../../guests/build/hello.wasm', import.meta.url));
    const out: Uint8Array[] = [];
    const wasi = createWasi({ args: ['hello', 'still', 'alive'], stdout: (c) => { out.push(c.slice()); } });
    const instance = new WebAssembly.Instance(new WebAssembly.Module(new Uint8Array(bytes)), wasi.getImportObject());
    expect(wasi.start(instance)).toBe(0);
    expect(Buffer.concat(out).toString()).toBe('hello still alive\n');
    expect(allHostErrors).toEqual([]);
    expect(process.exitCode ?? 0).toBe(0);
  });
});

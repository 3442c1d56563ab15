/**
 * Per-syscall behaviour of capsa's preview1 imports, called directly on a bare memory.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { hrtime } from 'node:process';
import wabtInit from 'wabt';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  CLOCKID, ERRNO, EVENTTYPE, FDFLAGS, FILETYPE, FSTFLAGS, LOOKUPFLAGS, OFLAGS, SDFLAGS, SUBCLOCKFLAGS, WHENCE,
} from '../../src/wasi/constants.js';
import { ProcExit } from '../../src/wasi/errors.js';
import type { Preview1Name } from '../../src/wasi/preview1.js';
import { R } from '../../src/wasi/rights.js';
import { createWasi, type WasiOptions } from '../../src/wasi/wasi.js';
import { harness, type Harness } from '../helpers/harness.js';

type Sys = Record<Preview1Name, (...a: any[]) => number>;
const sys = (h: Harness): Sys => h.call as unknown as Sys;

const tmpDirs: string[] = [];
const opened: Harness[] = [];
afterEach(() => {
  for (const h of opened.splice(0)) h.wasi.context.fds.closeAll();
  for (const d of tmpDirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

function make(options: WasiOptions = {}): Harness {
  const h = harness(options);
  opened.push(h);
  return h;
}

const SEED = { 'f.txt': 'data', sub: {} };
const mem = (extra: Partial<WasiOptions> = {}): Harness => make({ preopens: [{ guest: '/m', memory: SEED }], ...extra });
function host(): Harness {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'capsa-syscalls-'));
  tmpDirs.push(d);
  fs.writeFileSync(path.join(d, 'f.txt'), 'data');
  fs.mkdirSync(path.join(d, 'sub'));
  return make({ preopens: [{ guest: '/h', host: d }] });
}
const MOUNTS: [string, () => Harness][] = [['memfs', () => mem()], ['hostfs', host]];

// ---------------------------------------------------------------------------------------------

const dv = (h: Harness): DataView => new DataView(h.memory.buffer);

function open(h: Harness, p: string, o: { oflags?: number; base?: bigint; fdflags?: number; follow?: boolean } = {}): number {
  const [errno, fd] = h.open(3, p, o);
  expect(errno, `open ${p}`).toBe(ERRNO.SUCCESS);
  return fd;
}

function str(h: Harness, s: string): [number, number] {
  const p = h.put(s);
  return [p.ptr, p.len];
}

interface Filestat { dev: bigint; ino: bigint; filetype: number; nlink: bigint; size: bigint; atim: bigint; mtim: bigint; ctim: bigint }

function readFilestat(h: Harness, buf: number): Filestat {
  const d = dv(h);
  return {
    dev: d.getBigUint64(buf, true), ino: d.getBigUint64(buf + 8, true), filetype: d.getUint8(buf + 16),
    nlink: d.getBigUint64(buf + 24, true), size: d.getBigUint64(buf + 32, true), atim: d.getBigUint64(buf + 40, true),
    mtim: d.getBigUint64(buf + 48, true), ctim: d.getBigUint64(buf + 56, true),
  };
}

function fstat(h: Harness, fd: number): Filestat {
  const buf = h.alloc(64);
  expect(sys(h).fd_filestat_get(fd, buf)).toBe(ERRNO.SUCCESS);
  return readFilestat(h, buf);
}

function pstat(h: Harness, p: string, follow = true): [number, Filestat] {
  const buf = h.alloc(64);
  const errno = sys(h).path_filestat_get(3, follow ? LOOKUPFLAGS.SYMLINK_FOLLOW : 0, ...str(h, p), buf);
  return [errno, readFilestat(h, buf)];
}

/** The whole content of a file, read through a fresh descriptor. */
function content(h: Harness, p: string): string {
  const fd = open(h, p, { base: R.fd_read });
  const [errno, text] = h.read(fd, 1 << 14);
  expect(errno).toBe(ERRNO.SUCCESS);
  expect(sys(h).fd_close(fd)).toBe(ERRNO.SUCCESS);
  return text;
}

function seek(h: Harness, fd: number, offset: bigint, whence: number): [number, bigint] {
  const out = h.alloc(8);
  const errno = sys(h).fd_seek(fd, offset, whence, out);
  return [errno, h.u64(out)];
}

function tell(h: Harness, fd: number): bigint {
  const out = h.alloc(8);
  expect(sys(h).fd_tell(fd, out)).toBe(ERRNO.SUCCESS);
  return h.u64(out);
}

function pread(h: Harness, fd: number, len: number, offset: bigint): [number, string] {
  const buf = h.alloc(len);
  const n = h.alloc(4);
  const errno = sys(h).fd_pread(fd, h.iovecs([{ ptr: buf, len }]), 1, offset, n);
  return [errno, h.text(buf, h.u32(n))];
}

function pwrite(h: Harness, fd: number, s: string, offset: bigint): number {
  const n = h.alloc(4);
  const errno = sys(h).fd_pwrite(fd, h.iovecs([h.put(s)]), 1, offset, n);
  if (errno === 0) expect(h.u32(n)).toBe(Buffer.byteLength(s));
  return errno;
}

// ---------------------------------------------------------------------------------------------

describe('args and environ', () => {
  function strings(h: Harness, sizes: 'args_sizes_get' | 'environ_sizes_get', get: 'args_get' | 'environ_get') {
    const cnt = h.alloc(4);
    const size = h.alloc(4);
    expect(sys(h)[sizes](cnt, size)).toBe(ERRNO.SUCCESS);
    const count = h.u32(cnt);
    const bytes = h.u32(size);
    const ptrs = h.alloc(count * 4 + 4);
    const buf = h.alloc(bytes + 8);
    new Uint8Array(h.memory.buffer).fill(0xee, buf, buf + bytes + 8);
    expect(sys(h)[get](ptrs, buf)).toBe(ERRNO.SUCCESS);
    const u8 = new Uint8Array(h.memory.buffer);
    const out: string[] = [];
    for (let i = 0; i < count; i++) {
      const p = h.u32(ptrs + i * 4);
      expect(p).toBeGreaterThanOrEqual(buf);
      const end = u8.indexOf(0, p);
      expect(end).toBeLessThan(buf + bytes);
      out.push(Buffer.from(u8.subarray(p, end)).toString('utf8'));
    }
    expect(h.u32(ptrs)).toBe(count ? buf : 0);
    expect(u8[buf + bytes]).toBe(0xee);
    return { count, bytes, out };
  }

  it('args_sizes_get counts UTF-8 bytes with the NULs, args_get lays them out', () => {
    const h = make({ args: ['prog', 'héllo', '日本'] });
    const r = strings(h, 'args_sizes_get', 'args_get');
    // "prog\0" 5 + "héllo\0" 7 + "日本\0" 7
    expect(r.count).toBe(3);
    expect(r.bytes).toBe(19);
    expect(r.out).toEqual(['prog', 'héllo', '日本']);
  });

  it('no arguments: zero count and size', () => {
    const h = make();
    const cnt = h.alloc(4);
    const size = h.alloc(4);
    dv(h).setUint32(cnt, 99, true);
    dv(h).setUint32(size, 99, true);
    expect(sys(h).args_sizes_get(cnt, size)).toBe(ERRNO.SUCCESS);
    expect([h.u32(cnt), h.u32(size)]).toEqual([0, 0]);
    expect(sys(h).environ_sizes_get(cnt, size)).toBe(ERRNO.SUCCESS);
    expect([h.u32(cnt), h.u32(size)]).toEqual([0, 0]);
  });

  it('environ_sizes_get / environ_get use KEY=VALUE in UTF-8', () => {
    const h = make({ env: { A: '1', 'GRÜSS': 'wörld' } });
    const r = strings(h, 'environ_sizes_get', 'environ_get');
    // "A=1\0" 4 + "GRÜSS=wörld\0" 14
    expect(r.count).toBe(2);
    expect(r.bytes).toBe(18);
    expect(r.out).toEqual(['A=1', 'GRÜSS=wörld']);
  });

  it('a variable name containing "=" or an argument containing NUL is refused at setup', () => {
    expect(() => createWasi({ env: { 'A=B': 'x' } })).toThrow(/=/);
    expect(() => createWasi({ args: ['a\0b'] })).toThrow(/NUL/);
  });
});

describe('clocks', () => {
  const time = (h: Harness, id: number): [number, bigint] => {
    const out = h.alloc(8);
    const errno = sys(h).clock_time_get(id, 1n, out);
    return [errno, h.u64(out)];
  };

  it('realtime is close to Date.now()', () => {
    const h = make();
    const [errno, t] = time(h, CLOCKID.REALTIME);
    expect(errno).toBe(ERRNO.SUCCESS);
    const now = BigInt(Date.now()) * 1_000_000n;
    const diff = t > now ? t - now : now - t;
    expect(diff).toBeLessThan(1_000_000_000n);
  });

  it('monotonic never goes backwards and advances', () => {
    const h = make();
    let prev = time(h, CLOCKID.MONOTONIC)[1];
    const first = prev;
    for (let i = 0; i < 200; i++) {
      const [errno, t] = time(h, CLOCKID.MONOTONIC);
      expect(errno).toBe(ERRNO.SUCCESS);
      expect(t).toBeGreaterThanOrEqual(prev);
      prev = t;
    }
    const start = Date.now();
    while (Date.now() - start < 3) { /* spin 3 ms */ }
    expect(time(h, CLOCKID.MONOTONIC)[1] - first).toBeGreaterThanOrEqual(2_000_000n);
  });

  it('CPU-time clocks answer', () => {
    const h = make();
    expect(time(h, CLOCKID.PROCESS_CPUTIME_ID)).toEqual([ERRNO.SUCCESS, expect.any(BigInt)]);
    expect(time(h, CLOCKID.PROCESS_CPUTIME_ID)[1]).toBeGreaterThan(0n);
    expect(time(h, CLOCKID.THREAD_CPUTIME_ID)[0]).toBe(ERRNO.SUCCESS);
  });

  it('clock_res_get: 1 ns for realtime and monotonic, positive for the CPU clocks', () => {
    const h = make();
    const res = (id: number): [number, bigint] => {
      const out = h.alloc(8);
      const errno = sys(h).clock_res_get(id, out);
      return [errno, h.u64(out)];
    };
    expect(res(CLOCKID.REALTIME)).toEqual([ERRNO.SUCCESS, 1n]);
    expect(res(CLOCKID.MONOTONIC)).toEqual([ERRNO.SUCCESS, 1n]);
    const [e, cpu] = res(CLOCKID.PROCESS_CPUTIME_ID);
    expect(e).toBe(ERRNO.SUCCESS);
    expect(cpu).toBeGreaterThan(0n);
  });

  it('an unknown clock → EINVAL and nothing is written', () => {
    const h = make();
    const out = h.alloc(8);
    dv(h).setBigUint64(out, 0x1234n, true);
    expect(sys(h).clock_time_get(4, 1n, out)).toBe(ERRNO.INVAL);
    expect(sys(h).clock_time_get(0xffffffff, 1n, out)).toBe(ERRNO.INVAL);
    expect(sys(h).clock_res_get(99, out)).toBe(ERRNO.INVAL);
    expect(h.u64(out)).toBe(0x1234n);
  });
});

describe('random_get, proc_raise, sched_yield', () => {
  it('random_get fills exactly the buffer with random bytes', () => {
    const h = make();
    const a = h.alloc(72);
    const b = h.alloc(72);
    const u8 = new Uint8Array(h.memory.buffer);
    u8.fill(0x5a, a + 64, a + 72);
    expect(sys(h).random_get(a, 64)).toBe(ERRNO.SUCCESS);
    expect(sys(h).random_get(b, 64)).toBe(ERRNO.SUCCESS);
    const ra = h.bytes(a, 64);
    const rb = h.bytes(b, 64);
    expect(ra.some((x) => x !== 0)).toBe(true);
    expect(Buffer.from(ra).equals(Buffer.from(rb))).toBe(false);
    expect([...h.bytes(a + 64, 8)]).toEqual(new Array(8).fill(0x5a));
  });

  it('random_get of 0 bytes succeeds and writes nothing, even at the end of memory', () => {
    const h = make();
    const p = h.alloc(8);
    new Uint8Array(h.memory.buffer).fill(0x77, p, p + 8);
    expect(sys(h).random_get(p, 0)).toBe(ERRNO.SUCCESS);
    expect([...h.bytes(p, 8)]).toEqual(new Array(8).fill(0x77));
    expect(sys(h).random_get(h.memory.buffer.byteLength, 0)).toBe(ERRNO.SUCCESS);
  });

  it('proc_raise → ENOSYS; sched_yield → 0', () => {
    const h = make();
    expect(sys(h).proc_raise(6)).toBe(ERRNO.NOSYS);
    expect(sys(h).sched_yield()).toBe(ERRNO.SUCCESS);
  });
});

describe('proc_exit', () => {
  let wabt: Awaited<ReturnType<typeof wabtInit>>;
  beforeAll(async () => { wabt = await wabtInit(); });

  const compile = (wat: string): WebAssembly.Module => {
    const mod = wabt.parseWat('t.wat', wat);
    try {
      return new WebAssembly.Module(new Uint8Array(mod.toBinary({}).buffer));
    } finally {
      mod.destroy();
    }
  };

  it('the import throws ProcExit with the code', () => {
    const h = make();
    let caught: unknown;
    try { sys(h).proc_exit(3); } catch (e) { caught = e; }
    expect(caught).toBeInstanceOf(ProcExit);
    expect((caught as ProcExit).code).toBe(3);
  });

  it('start() returns the code a guest passes to proc_exit, after its output', () => {
    const out: string[] = [];
    const wasi = createWasi({ stdout: (c) => out.push(Buffer.from(c).toString()) });
    const mod = compile(`(module
      (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
      (memory (export "memory") 1)
      (data (i32.const 16) "hi\\n")
      (func (export "_start")
        (i32.store (i32.const 0) (i32.const 16))
        (i32.store (i32.const 4) (i32.const 3))
        (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
        (call $exit (i32.const 42))
        unreachable))`);
    const inst = new WebAssembly.Instance(mod, wasi.getImportObject());
    expect(wasi.start(inst)).toBe(42);
    expect(out.join('')).toBe('hi\n');
  });

  it('an fd_write of several iovecs reaches a stdout callback as one chunk', () => {
    const chunks: string[] = [];
    const h = make({ stdout: (c) => chunks.push(Buffer.from(c).toString()) });
    const n = h.alloc(4);
    const iov = h.iovecs([h.put('looping'), { ptr: h.alloc(1), len: 0 }, h.put('\n')]);
    expect(sys(h).fd_write(1, iov, 3, n)).toBe(ERRNO.SUCCESS);
    expect(h.u32(n)).toBe(8);
    expect(chunks).toEqual(['looping\n']);
  });

  it('start() returns 0 when _start returns', () => {
    const wasi = createWasi();
    const mod = compile('(module (memory (export "memory") 1) (func (export "_start")))');
    expect(wasi.start(new WebAssembly.Instance(mod, wasi.getImportObject()))).toBe(0);
  });
});

describe('fd_read / fd_write / fd_seek / fd_tell / fd_pread / fd_pwrite', () => {
  for (const [name, mk] of MOUNTS) {
    describe(name, () => {
      it('write and read back with several iovecs', () => {
        const h = mk();
        const fd = open(h, 'rw.txt', { oflags: OFLAGS.CREAT });
        const n = h.alloc(4);
        const iov = h.iovecs([h.put('ab'), { ptr: h.alloc(1), len: 0 }, h.put('cde')]);
        expect(sys(h).fd_write(fd, iov, 3, n)).toBe(ERRNO.SUCCESS);
        expect(h.u32(n)).toBe(5);
        expect(tell(h, fd)).toBe(5n);
        expect(seek(h, fd, 0n, WHENCE.SET)).toEqual([ERRNO.SUCCESS, 0n]);
        const b1 = h.alloc(2), b2 = h.alloc(2), b3 = h.alloc(10);
        const riov = h.iovecs([{ ptr: b1, len: 2 }, { ptr: b2, len: 2 }, { ptr: b3, len: 10 }]);
        expect(sys(h).fd_read(fd, riov, 3, n)).toBe(ERRNO.SUCCESS);
        expect(h.u32(n)).toBe(5);
        expect([h.text(b1, 2), h.text(b2, 2), h.text(b3, 1)]).toEqual(['ab', 'cd', 'e']);
        // At end of file a read returns 0 bytes.
        expect(sys(h).fd_read(fd, riov, 3, n)).toBe(ERRNO.SUCCESS);
        expect(h.u32(n)).toBe(0);
        expect(content(h, 'rw.txt')).toBe('abcde');
      });

      it('fd_seek SET / CUR / END, past the end, and fd_tell', () => {
        const h = mk();
        const fd = open(h, 'f.txt');
        expect(seek(h, fd, 1n, WHENCE.SET)).toEqual([ERRNO.SUCCESS, 1n]);
        expect(seek(h, fd, 2n, WHENCE.CUR)).toEqual([ERRNO.SUCCESS, 3n]);
        expect(tell(h, fd)).toBe(3n);
        expect(h.read(fd)).toEqual([ERRNO.SUCCESS, 'a']);
        expect(seek(h, fd, -1n, WHENCE.END)).toEqual([ERRNO.SUCCESS, 3n]);
        expect(seek(h, fd, -2n, WHENCE.CUR)).toEqual([ERRNO.SUCCESS, 1n]);
        expect(seek(h, fd, 0n, WHENCE.END)).toEqual([ERRNO.SUCCESS, 4n]);
        expect(seek(h, fd, 10n, WHENCE.SET)).toEqual([ERRNO.SUCCESS, 10n]);
        expect(h.read(fd)).toEqual([ERRNO.SUCCESS, '']);
        expect(seek(h, fd, 0n, WHENCE.SET)).toEqual([ERRNO.SUCCESS, 0n]);
        expect(h.read(fd, 2)).toEqual([ERRNO.SUCCESS, 'da']);
        expect(tell(h, fd)).toBe(2n);
      });

      it('a seek before the start or with a bad whence → EINVAL and the offset stays', () => {
        const h = mk();
        const fd = open(h, 'f.txt');
        expect(seek(h, fd, 2n, WHENCE.SET)[0]).toBe(ERRNO.SUCCESS);
        expect(seek(h, fd, -1n, WHENCE.SET)[0]).toBe(ERRNO.INVAL);
        expect(seek(h, fd, -3n, WHENCE.CUR)[0]).toBe(ERRNO.INVAL);
        expect(seek(h, fd, -5n, WHENCE.END)[0]).toBe(ERRNO.INVAL);
        expect(seek(h, fd, 0n, 3)[0]).toBe(ERRNO.INVAL);
        expect(tell(h, fd)).toBe(2n);
      });

      it('fd_pread / fd_pwrite use their offset and leave the fd offset alone', () => {
        const h = mk();
        const fd = open(h, 'f.txt');
        expect(h.read(fd, 1)).toEqual([ERRNO.SUCCESS, 'd']);
        expect(pread(h, fd, 10, 1n)).toEqual([ERRNO.SUCCESS, 'ata']);
        expect(pread(h, fd, 10, 9n)).toEqual([ERRNO.SUCCESS, '']);
        expect(tell(h, fd)).toBe(1n);
        expect(pwrite(h, fd, 'XY', 2n)).toBe(ERRNO.SUCCESS);
        expect(tell(h, fd)).toBe(1n);
        expect(content(h, 'f.txt')).toBe('daXY');
        // Past the end: the gap reads as zeros.
        expect(pwrite(h, fd, 'Z', 6n)).toBe(ERRNO.SUCCESS);
        expect(content(h, 'f.txt')).toBe('daXY\0\0Z');
        expect(tell(h, fd)).toBe(1n);
        expect(h.read(fd)).toEqual([ERRNO.SUCCESS, 'aXY\0\0Z']);
      });

      it('append mode writes at the end whatever the offset; fd_fdstat_set_flags turns it off and on', () => {
        const h = mk();
        const fd = open(h, 'f.txt', { fdflags: FDFLAGS.APPEND });
        expect(h.fdstat(fd)[1].flags & FDFLAGS.APPEND).toBe(FDFLAGS.APPEND);
        expect(h.write(fd, 'zz')).toBe(ERRNO.SUCCESS);
        expect(seek(h, fd, 0n, WHENCE.SET)[0]).toBe(ERRNO.SUCCESS);
        expect(h.write(fd, 'q')).toBe(ERRNO.SUCCESS);
        expect(content(h, 'f.txt')).toBe('datazzq');
        expect(tell(h, fd)).toBe(7n);

        expect(sys(h).fd_fdstat_set_flags(fd, 0)).toBe(ERRNO.SUCCESS);
        expect(h.fdstat(fd)[1].flags & FDFLAGS.APPEND).toBe(0);
        expect(seek(h, fd, 0n, WHENCE.SET)[0]).toBe(ERRNO.SUCCESS);
        expect(h.write(fd, 'Q')).toBe(ERRNO.SUCCESS);
        expect(content(h, 'f.txt')).toBe('Qatazzq');

        expect(sys(h).fd_fdstat_set_flags(fd, FDFLAGS.APPEND)).toBe(ERRNO.SUCCESS);
        expect(seek(h, fd, 0n, WHENCE.SET)[0]).toBe(ERRNO.SUCCESS);
        expect(h.write(fd, '!')).toBe(ERRNO.SUCCESS);
        expect(content(h, 'f.txt')).toBe('Qatazzq!');
      });

      it('fd_fdstat_set_flags: unknown flags → EINVAL; sync flags cannot change → ENOTSUP', () => {
        const h = mk();
        const fd = open(h, 'f.txt');
        expect(sys(h).fd_fdstat_set_flags(fd, 0x100)).toBe(ERRNO.INVAL);
        expect(sys(h).fd_fdstat_set_flags(fd, FDFLAGS.SYNC)).toBe(ERRNO.NOTSUP);
        expect(h.fdstat(fd)[1].flags).toBe(0);
      });

      it('fd_filestat_set_size grows with zeros and shrinks; bytes cut off do not come back', () => {
        const h = mk();
        const fd = open(h, 'f.txt');
        expect(sys(h).fd_filestat_set_size(fd, 10n)).toBe(ERRNO.SUCCESS);
        expect(fstat(h, fd).size).toBe(10n);
        expect(content(h, 'f.txt')).toBe('data\0\0\0\0\0\0');
        expect(sys(h).fd_filestat_set_size(fd, 2n)).toBe(ERRNO.SUCCESS);
        expect(fstat(h, fd).size).toBe(2n);
        expect(content(h, 'f.txt')).toBe('da');
        expect(sys(h).fd_filestat_set_size(fd, 4n)).toBe(ERRNO.SUCCESS);
        expect(content(h, 'f.txt')).toBe('da\0\0');
        // The offset is not moved by a resize.
        expect(tell(h, fd)).toBe(0n);
      });

      it('fd_advise validates the advice; fd_sync / fd_datasync succeed on a file', () => {
        const h = mk();
        const fd = open(h, 'f.txt');
        for (let advice = 0; advice <= 5; advice++) expect(sys(h).fd_advise(fd, 0n, 4n, advice)).toBe(ERRNO.SUCCESS);
        expect(sys(h).fd_advise(fd, 0n, 4n, 6)).toBe(ERRNO.INVAL);
        expect(sys(h).fd_advise(3, 0n, 4n, 0)).toBe(ERRNO.BADF);
        expect(sys(h).fd_sync(fd)).toBe(ERRNO.SUCCESS);
        expect(sys(h).fd_datasync(fd)).toBe(ERRNO.SUCCESS);
      });

      it('fd_allocate grows a file but never shrinks it', () => {
        const h = mk();
        const fd = open(h, 'f.txt');
        expect(sys(h).fd_allocate(fd, 2n, 10n)).toBe(ERRNO.SUCCESS);
        expect(fstat(h, fd).size).toBe(12n);
        expect(sys(h).fd_allocate(fd, 0n, 1n)).toBe(ERRNO.SUCCESS);
        expect(fstat(h, fd).size).toBe(12n);
        expect(content(h, 'f.txt').slice(0, 4)).toBe('data');
      });
    });
  }
});

describe('filestat and times', () => {
  for (const [name, mk] of MOUNTS) {
    describe(name, () => {
      it('fd_filestat_get fields of a file and a directory', () => {
        const h = mk();
        const before = BigInt(Date.now() - 60_000) * 1_000_000n;
        const fd = open(h, 'f.txt');
        const st = fstat(h, fd);
        const now = BigInt(Date.now() + 1000) * 1_000_000n;
        expect(st.filetype).toBe(FILETYPE.REGULAR_FILE);
        expect(st.size).toBe(4n);
        expect(st.nlink).toBe(1n);
        expect(st.ino).not.toBe(0n);
        for (const t of [st.atim, st.mtim, st.ctim]) {
          expect(t).toBeGreaterThan(before);
          expect(t).toBeLessThan(now);
        }
        const [e, ps] = pstat(h, 'f.txt');
        expect(e).toBe(ERRNO.SUCCESS);
        expect([ps.dev, ps.ino, ps.size, ps.filetype]).toEqual([st.dev, st.ino, st.size, st.filetype]);

        const dir = fstat(h, 3);
        expect(dir.filetype).toBe(FILETYPE.DIRECTORY);
        expect(dir.ino).not.toBe(st.ino);
        expect(dir.dev).toBe(st.dev);
      });

      it('times set with ATIM|MTIM read back to the nanosecond; unset times stay', () => {
        const h = mk();
        const fd = open(h, 'f.txt');
        const A = 1_234_567_890_123_456_789n;
        const M = 1_111_111_111_222_333_444n;
        expect(sys(h).fd_filestat_set_times(fd, A, M, FSTFLAGS.ATIM | FSTFLAGS.MTIM)).toBe(ERRNO.SUCCESS);
        let st = fstat(h, fd);
        expect([st.atim, st.mtim]).toEqual([A, M]);
        expect(pstat(h, 'f.txt')[1].mtim).toBe(M);

        expect(sys(h).fd_filestat_set_times(fd, 1_500_000_000_000_000_001n, 0n, FSTFLAGS.ATIM)).toBe(ERRNO.SUCCESS);
        st = fstat(h, fd);
        expect([st.atim, st.mtim]).toEqual([1_500_000_000_000_000_001n, M]);

        const [p, l] = str(h, 'f.txt');
        expect(sys(h).path_filestat_set_times(3, LOOKUPFLAGS.SYMLINK_FOLLOW, p, l, 0n, 1_600_000_000_000_000_007n, FSTFLAGS.MTIM)).toBe(ERRNO.SUCCESS);
        st = fstat(h, fd);
        expect([st.atim, st.mtim]).toEqual([1_500_000_000_000_000_001n, 1_600_000_000_000_000_007n]);
      });

      it('ATIM_NOW / MTIM_NOW set the current time', () => {
        const h = mk();
        const fd = open(h, 'f.txt');
        expect(sys(h).fd_filestat_set_times(fd, 5n, 5n, FSTFLAGS.ATIM | FSTFLAGS.MTIM)).toBe(ERRNO.SUCCESS);
        const lo = BigInt(Date.now() - 1000) * 1_000_000n;
        expect(sys(h).fd_filestat_set_times(fd, 0n, 0n, FSTFLAGS.ATIM_NOW | FSTFLAGS.MTIM_NOW)).toBe(ERRNO.SUCCESS);
        const hi = BigInt(Date.now() + 1000) * 1_000_000n;
        const st = fstat(h, fd);
        for (const t of [st.atim, st.mtim]) {
          expect(t).toBeGreaterThan(lo);
          expect(t).toBeLessThan(hi);
        }
      });

      it('a time both given and "now", or unknown fstflags → EINVAL, times unchanged', () => {
        const h = mk();
        const fd = open(h, 'f.txt');
        expect(sys(h).fd_filestat_set_times(fd, 7n, 9n, FSTFLAGS.ATIM | FSTFLAGS.MTIM)).toBe(ERRNO.SUCCESS);
        const [p, l] = str(h, 'f.txt');
        expect(sys(h).fd_filestat_set_times(fd, 1n, 1n, FSTFLAGS.ATIM | FSTFLAGS.ATIM_NOW)).toBe(ERRNO.INVAL);
        expect(sys(h).fd_filestat_set_times(fd, 1n, 1n, FSTFLAGS.MTIM | FSTFLAGS.MTIM_NOW)).toBe(ERRNO.INVAL);
        expect(sys(h).fd_filestat_set_times(fd, 1n, 1n, 0x10)).toBe(ERRNO.INVAL);
        expect(sys(h).path_filestat_set_times(3, 0, p, l, 1n, 1n, FSTFLAGS.ATIM | FSTFLAGS.ATIM_NOW)).toBe(ERRNO.INVAL);
        const st = fstat(h, fd);
        expect([st.atim, st.mtim]).toEqual([7n, 9n]);
      });
    });
  }
});

// ---------------------------------------------------------------------------------------------

interface Dirent { next: bigint; ino: bigint; type: number; name: string }

/** Parses the entries that lie wholly inside `bytes`. */
function parseDirents(bytes: Uint8Array): Dirent[] {
  const d = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: Dirent[] = [];
  let off = 0;
  while (off + 24 <= bytes.length) {
    const namlen = d.getUint32(off + 16, true);
    if (off + 24 + namlen > bytes.length) break;
    out.push({
      next: d.getBigUint64(off, true), ino: d.getBigUint64(off + 8, true), type: d.getUint8(off + 20),
      name: Buffer.from(bytes.subarray(off + 24, off + 24 + namlen)).toString('utf8'),
    });
    off += 24 + namlen;
  }
  return out;
}

function readdir(h: Harness, fd: number, bufLen: number, cookie: bigint): [number, number, Dirent[]] {
  const buf = h.alloc(bufLen);
  const used = h.alloc(4);
  const errno = sys(h).fd_readdir(fd, buf, bufLen, cookie, used);
  const n = h.u32(used);
  return [errno, n, parseDirents(h.bytes(buf, n))];
}

/** Pages through a directory with a `bufLen`-byte buffer, as wasi-libc's readdir does. */
function readdirAll(h: Harness, fd: number, bufLen: number): Dirent[] {
  const all: Dirent[] = [];
  let cookie = 0n;
  for (let round = 0; round < 100; round++) {
    const [errno, used, ents] = readdir(h, fd, bufLen, cookie);
    expect(errno).toBe(ERRNO.SUCCESS);
    all.push(...ents);
    if (used < bufLen) return all;
    // A full buffer: more may follow; it must hold at least one whole entry to make progress.
    expect(used).toBe(bufLen);
    expect(ents.length).toBeGreaterThan(0);
    cookie = ents[ents.length - 1]!.next;
  }
  throw new Error('readdir did not finish');
}

describe('fd_readdir', () => {
  for (const [name, mk] of MOUNTS) {
    describe(name, () => {
      const prepare = (h: Harness): void => {
        const [p, l] = str(h, 'f.txt');
        const [q, m] = str(h, 'ln');
        expect(sys(h).path_symlink(p, l, 3, q, m)).toBe(ERRNO.SUCCESS);
        open(h, 'a-much-longer-file-name.bin', { oflags: OFLAGS.CREAT });
      };

      it('lists ".", "..", and every entry with its d_type, d_namlen and increasing cookies', () => {
        const h = mk();
        prepare(h);
        const [errno, used, ents] = readdir(h, 3, 4096, 0n);
        expect(errno).toBe(ERRNO.SUCCESS);
        expect(used).toBeLessThan(4096);
        expect(used).toBe(ents.reduce((n, e) => n + 24 + Buffer.byteLength(e.name), 0));
        expect(ents.slice(0, 2).map((e) => e.name)).toEqual(['.', '..']);
        const types = Object.fromEntries(ents.map((e) => [e.name, e.type]));
        expect(types).toEqual({
          '.': FILETYPE.DIRECTORY, '..': FILETYPE.DIRECTORY, 'f.txt': FILETYPE.REGULAR_FILE, sub: FILETYPE.DIRECTORY,
          ln: FILETYPE.SYMBOLIC_LINK, 'a-much-longer-file-name.bin': FILETYPE.REGULAR_FILE,
        });
        ents.forEach((e, i) => { if (i > 0) expect(e.next).toBeGreaterThan(ents[i - 1]!.next); });
        const self = fstat(h, 3);
        expect(ents[0]!.ino).toBe(self.ino);
        const f = ents.find((e) => e.name === 'f.txt')!;
        expect(f.ino).toBe(pstat(h, 'f.txt')[1].ino);
      });

      it('small buffers: bufused == buf_len when truncated, and cookies continue where the last entry ended', () => {
        const h = mk();
        prepare(h);
        const full = readdir(h, 3, 4096, 0n)[2];
        expect(full.length).toBe(6);
        // 40 bytes hold "." (25 bytes) and part of "..".
        const [errno, used, first] = readdir(h, 3, 40, 0n);
        expect(errno).toBe(ERRNO.SUCCESS);
        expect(used).toBe(40);
        expect(first.map((e) => e.name)).toEqual(['.']);
        for (const len of [52, 60, 64, 80, 100, 200]) {
          expect(readdirAll(h, 3, len), `buffer ${len}`).toEqual(full);
        }
        // Continuing from the cookie of any entry gives exactly the entries after it.
        full.forEach((e, i) => expect(readdir(h, 3, 4096, e.next)[2]).toEqual(full.slice(i + 1)));
      });

      it('a cookie past the end gives nothing; a file fd is refused', () => {
        const h = mk();
        const [errno, used] = readdir(h, 3, 256, 1000n);
        expect(errno).toBe(ERRNO.SUCCESS);
        expect(used).toBe(0);
        const fd = open(h, 'f.txt');
        expect(readdir(h, fd, 256, 0n)[0]).toBe(ERRNO.NOTCAPABLE);
      });
    });
  }
});

describe('fd_prestat_get / fd_prestat_dir_name / fd_close', () => {
  it('names each preopen in UTF-8 bytes; a short buffer → ENAMETOOLONG', () => {
    const h = make({ preopens: [{ guest: '/m', memory: true }, { guest: '/dåta', memory: true }] });
    const pre = h.alloc(8);
    expect(sys(h).fd_prestat_get(4, pre)).toBe(ERRNO.SUCCESS);
    expect(dv(h).getUint8(pre)).toBe(0);
    expect(h.u32(pre + 4)).toBe(6);
    const buf = h.alloc(16);
    new Uint8Array(h.memory.buffer).fill(0x2e, buf, buf + 16);
    expect(sys(h).fd_prestat_dir_name(4, buf, 5)).toBe(ERRNO.NAMETOOLONG);
    expect(h.bytes(buf, 6).every((b) => b === 0x2e)).toBe(true);
    expect(sys(h).fd_prestat_dir_name(4, buf, 6)).toBe(ERRNO.SUCCESS);
    expect(h.text(buf, 6)).toBe('/dåta');
    expect(sys(h).fd_prestat_dir_name(3, buf, 16)).toBe(ERRNO.SUCCESS);
    expect(h.text(buf, 2)).toBe('/m');
    expect(sys(h).fd_prestat_get(3, pre)).toBe(ERRNO.SUCCESS);
    expect(h.u32(pre + 4)).toBe(2);
  });

  it('stdio, opened files and closed fds are not preopens → EBADF', () => {
    const h = mem();
    const fd = open(h, 'f.txt');
    for (const n of [0, 1, 2, fd, 40]) {
      expect(sys(h).fd_prestat_get(n, h.alloc(8)), `fd ${n}`).toBe(ERRNO.BADF);
      expect(sys(h).fd_prestat_dir_name(n, h.alloc(8), 8), `fd ${n}`).toBe(ERRNO.BADF);
    }
  });

  it('fd_close, then any use → EBADF; closing twice → EBADF', () => {
    const h = mem();
    const fd = open(h, 'f.txt');
    expect(sys(h).fd_close(fd)).toBe(ERRNO.SUCCESS);
    expect(h.read(fd)[0]).toBe(ERRNO.BADF);
    expect(h.write(fd, 'x')).toBe(ERRNO.BADF);
    expect(h.fdstat(fd)[0]).toBe(ERRNO.BADF);
    expect(sys(h).fd_filestat_get(fd, h.alloc(64))).toBe(ERRNO.BADF);
    expect(sys(h).fd_close(fd)).toBe(ERRNO.BADF);
    // Closing a preopen takes its whole tree away.
    expect(sys(h).fd_close(3)).toBe(ERRNO.SUCCESS);
    expect(h.open(3, 'f.txt')[0]).toBe(ERRNO.BADF);
    expect(sys(h).fd_prestat_get(3, h.alloc(8))).toBe(ERRNO.BADF);
  });
});

describe('path_* calls', () => {
  for (const [name, mk] of MOUNTS) {
    describe(name, () => {
      const call = (h: Harness, fn: 'path_create_directory' | 'path_remove_directory' | 'path_unlink_file', p: string): number =>
        sys(h)[fn](3, ...str(h, p));

      it('path_create_directory / path_remove_directory', () => {
        const h = mk();
        expect(call(h, 'path_create_directory', 'd')).toBe(ERRNO.SUCCESS);
        expect(pstat(h, 'd')[1].filetype).toBe(FILETYPE.DIRECTORY);
        expect(call(h, 'path_create_directory', 'd')).toBe(ERRNO.EXIST);
        expect(call(h, 'path_create_directory', 'f.txt')).toBe(ERRNO.EXIST);
        expect(call(h, 'path_create_directory', 'd/e')).toBe(ERRNO.SUCCESS);
        expect(call(h, 'path_remove_directory', 'd')).toBe(ERRNO.NOTEMPTY);
        expect(call(h, 'path_remove_directory', 'f.txt')).toBe(ERRNO.NOTDIR);
        expect(call(h, 'path_remove_directory', 'missing')).toBe(ERRNO.NOENT);
        expect(call(h, 'path_remove_directory', 'd/e')).toBe(ERRNO.SUCCESS);
        expect(call(h, 'path_remove_directory', 'd')).toBe(ERRNO.SUCCESS);
        expect(pstat(h, 'd')[0]).toBe(ERRNO.NOENT);
      });

      it('path_unlink_file: a directory → EISDIR; a file goes away', () => {
        const h = mk();
        expect(call(h, 'path_unlink_file', 'sub')).toBe(ERRNO.ISDIR);
        expect(pstat(h, 'sub')[1].filetype).toBe(FILETYPE.DIRECTORY);
        expect(call(h, 'path_unlink_file', 'f.txt')).toBe(ERRNO.SUCCESS);
        expect(pstat(h, 'f.txt')[0]).toBe(ERRNO.NOENT);
        expect(call(h, 'path_unlink_file', 'f.txt')).toBe(ERRNO.NOENT);
      });

      it('path_rename moves files (replacing a file) and directories with their contents', () => {
        const h = mk();
        const rename = (a: string, b: string): number => sys(h).path_rename(3, ...str(h, a), 3, ...str(h, b));
        expect(rename('f.txt', 'g.txt')).toBe(ERRNO.SUCCESS);
        expect(pstat(h, 'f.txt')[0]).toBe(ERRNO.NOENT);
        expect(content(h, 'g.txt')).toBe('data');

        const other = open(h, 'other.txt', { oflags: OFLAGS.CREAT });
        expect(h.write(other, 'other')).toBe(ERRNO.SUCCESS);
        expect(rename('g.txt', 'other.txt')).toBe(ERRNO.SUCCESS);
        expect(content(h, 'other.txt')).toBe('data');
        expect(pstat(h, 'g.txt')[0]).toBe(ERRNO.NOENT);

        const inner = open(h, 'sub/inner.txt', { oflags: OFLAGS.CREAT });
        expect(h.write(inner, 'in')).toBe(ERRNO.SUCCESS);
        expect(rename('sub', 'sub2')).toBe(ERRNO.SUCCESS);
        expect(pstat(h, 'sub')[0]).toBe(ERRNO.NOENT);
        expect(content(h, 'sub2/inner.txt')).toBe('in');
        expect(rename('missing', 'x')).toBe(ERRNO.NOENT);
      });

      it('path_link makes a second name for the same file', () => {
        const h = mk();
        const link = (a: string, b: string): number => sys(h).path_link(3, 0, ...str(h, a), 3, ...str(h, b));
        expect(link('f.txt', 'hard.txt')).toBe(ERRNO.SUCCESS);
        const [, a] = pstat(h, 'f.txt');
        const [, b] = pstat(h, 'hard.txt');
        expect([a.nlink, b.nlink]).toEqual([2n, 2n]);
        expect(b.ino).toBe(a.ino);
        const fd = open(h, 'hard.txt');
        expect(h.write(fd, 'DA')).toBe(ERRNO.SUCCESS);
        expect(content(h, 'f.txt')).toBe('DAta');
        expect(call(h, 'path_unlink_file', 'f.txt')).toBe(ERRNO.SUCCESS);
        expect(pstat(h, 'hard.txt')[1].nlink).toBe(1n);
        expect(content(h, 'hard.txt')).toBe('DAta');
        expect(link('hard.txt', 'sub')).toBe(ERRNO.EXIST);
        expect(link('missing', 'x')).toBe(ERRNO.NOENT);
      });

      it('path_symlink + path_readlink, with a truncating buffer', () => {
        const h = mk();
        expect(sys(h).path_symlink(...str(h, 'f.txt'), 3, ...str(h, 'ln'))).toBe(ERRNO.SUCCESS);
        expect(sys(h).path_symlink(...str(h, 'f.txt'), 3, ...str(h, 'ln'))).toBe(ERRNO.EXIST);
        const readlink = (p: string, len: number): [number, number, string] => {
          const buf = h.alloc(len + 8);
          new Uint8Array(h.memory.buffer).fill(0x23, buf, buf + len + 8);
          const used = h.alloc(4);
          const errno = sys(h).path_readlink(3, ...str(h, p), buf, len, used);
          expect(h.bytes(buf + len, 8).every((x) => x === 0x23)).toBe(true);
          return [errno, h.u32(used), h.text(buf, h.u32(used))];
        };
        expect(readlink('ln', 64)).toEqual([ERRNO.SUCCESS, 5, 'f.txt']);
        expect(readlink('ln', 3)).toEqual([ERRNO.SUCCESS, 3, 'f.t']);
        expect(readlink('f.txt', 64)[0]).toBe(ERRNO.INVAL);
        expect(readlink('missing', 64)[0]).toBe(ERRNO.NOENT);
        // The link works for lookups that follow it.
        expect(content(h, 'ln')).toBe('data');
      });

      it('path_filestat_get follows a final symlink only with SYMLINK_FOLLOW', () => {
        const h = mk();
        expect(sys(h).path_symlink(...str(h, 'f.txt'), 3, ...str(h, 'ln'))).toBe(ERRNO.SUCCESS);
        const [e1, nofollow] = pstat(h, 'ln', false);
        expect(e1).toBe(ERRNO.SUCCESS);
        expect(nofollow.filetype).toBe(FILETYPE.SYMBOLIC_LINK);
        expect(nofollow.size).toBe(5n);
        const [e2, follow] = pstat(h, 'ln', true);
        expect(e2).toBe(ERRNO.SUCCESS);
        expect(follow.filetype).toBe(FILETYPE.REGULAR_FILE);
        expect(follow.size).toBe(4n);
        expect(follow.ino).toBe(pstat(h, 'f.txt')[1].ino);
        expect(nofollow.ino).not.toBe(follow.ino);
        // Opening the link itself without following is ELOOP.
        expect(h.open(3, 'ln', { follow: false })[0]).toBe(ERRNO.LOOP);
      });
    });
  }
});

// ---------------------------------------------------------------------------------------------

interface Ev { userdata: bigint; error: number; type: number; nbytes: bigint }

function subClock(h: Harness, sub: number, userdata: bigint, clock: number, timeout: bigint, flags = 0): void {
  const d = dv(h);
  d.setBigUint64(sub, userdata, true);
  d.setUint8(sub + 8, EVENTTYPE.CLOCK);
  d.setUint32(sub + 16, clock, true);
  d.setBigUint64(sub + 24, timeout, true);
  d.setBigUint64(sub + 32, 0n, true);
  d.setUint16(sub + 40, flags, true);
}

function subFd(h: Harness, sub: number, userdata: bigint, type: number, fd: number): void {
  const d = dv(h);
  d.setBigUint64(sub, userdata, true);
  d.setUint8(sub + 8, type);
  d.setUint32(sub + 16, fd, true);
}

function poll(h: Harness, subs: number, n: number): [number, Ev[]] {
  const ev = h.alloc(32 * Math.max(n, 1));
  const nev = h.alloc(4);
  const errno = sys(h).poll_oneoff(subs, ev, n, nev);
  const d = dv(h);
  const out: Ev[] = [];
  for (let i = 0; i < (errno === 0 ? h.u32(nev) : 0); i++) {
    const q = ev + i * 32;
    out.push({ userdata: d.getBigUint64(q, true), error: d.getUint16(q + 8, true), type: d.getUint8(q + 10), nbytes: d.getBigUint64(q + 16, true) });
  }
  return [errno, out];
}

describe('poll_oneoff', () => {
  it('a relative clock subscription sleeps at least its timeout', () => {
    const h = make();
    const sub = h.alloc(48);
    const timeout = 30_000_000n;
    subClock(h, sub, 0xabcn, CLOCKID.MONOTONIC, timeout);
    const t0 = hrtime.bigint();
    const [errno, evs] = poll(h, sub, 1);
    const elapsed = hrtime.bigint() - t0;
    expect(errno).toBe(ERRNO.SUCCESS);
    expect(evs).toEqual([{ userdata: 0xabcn, error: 0, type: EVENTTYPE.CLOCK, nbytes: 0n }]);
    expect(elapsed).toBeGreaterThanOrEqual(timeout);
  });

  it('an absolute deadline in the past fires at once, before a later relative one', () => {
    const h = make();
    const subs = h.alloc(96);
    const past = BigInt(Date.now() - 1000) * 1_000_000n;
    subClock(h, subs, 1n, CLOCKID.REALTIME, past, SUBCLOCKFLAGS.ABSTIME);
    subClock(h, subs + 48, 2n, CLOCKID.MONOTONIC, 1_000_000_000n);
    const [errno, evs] = poll(h, subs, 2);
    expect(errno).toBe(ERRNO.SUCCESS);
    expect(evs).toEqual([{ userdata: 1n, error: 0, type: EVENTTYPE.CLOCK, nbytes: 0n }]);
  });

  it('no subscriptions → EINVAL', () => {
    const h = make();
    expect(sys(h).poll_oneoff(h.alloc(48), h.alloc(32), 0, h.alloc(4))).toBe(ERRNO.INVAL);
  });

  it('fd_read on a readable file reports the bytes left; fd_write is ready; a pending clock does not fire', () => {
    const h = mem();
    const fd = open(h, 'f.txt');
    const subs = h.alloc(48 * 3);
    subFd(h, subs, 10n, EVENTTYPE.FD_READ, fd);
    subFd(h, subs + 48, 11n, EVENTTYPE.FD_WRITE, fd);
    subClock(h, subs + 96, 12n, CLOCKID.MONOTONIC, 1_000_000_000n);
    let [errno, evs] = poll(h, subs, 3);
    expect(errno).toBe(ERRNO.SUCCESS);
    expect(evs).toEqual([
      { userdata: 10n, error: 0, type: EVENTTYPE.FD_READ, nbytes: 4n },
      { userdata: 11n, error: 0, type: EVENTTYPE.FD_WRITE, nbytes: 0n },
    ]);
    expect(h.read(fd, 1)).toEqual([ERRNO.SUCCESS, 'd']);
    [errno, evs] = poll(h, subs, 1);
    expect(errno).toBe(ERRNO.SUCCESS);
    expect(evs).toEqual([{ userdata: 10n, error: 0, type: EVENTTYPE.FD_READ, nbytes: 3n }]);
  });

  it('per-subscription errors are events: closed fd → EBADF, unknown clock → EINVAL', () => {
    const h = make();
    const subs = h.alloc(96);
    subFd(h, subs, 1n, EVENTTYPE.FD_READ, 55);
    subClock(h, subs + 48, 2n, 77, 0n);
    const [errno, evs] = poll(h, subs, 2);
    expect(errno).toBe(ERRNO.SUCCESS);
    expect(evs.map((e) => [e.userdata, e.error])).toEqual([[1n, ERRNO.BADF], [2n, ERRNO.INVAL]]);
  });
});

describe('sockets', () => {
  it('sock_* on stdout or a directory → ENOTSOCK; on a closed fd → EBADF', () => {
    const h = mem();
    const iov = h.iovecs([{ ptr: h.alloc(8), len: 8 }]);
    const calls = (fd: number): number[] => [
      sys(h).sock_accept(fd, 0, h.alloc(4)),
      sys(h).sock_recv(fd, iov, 1, 0, h.alloc(4), h.alloc(4)),
      sys(h).sock_send(fd, iov, 1, 0, h.alloc(4)),
      sys(h).sock_shutdown(fd, SDFLAGS.RD | SDFLAGS.WR),
    ];
    expect(calls(1)).toEqual(new Array(4).fill(ERRNO.NOTSOCK));
    expect(calls(3)).toEqual(new Array(4).fill(ERRNO.NOTSOCK));
    expect(calls(99)).toEqual(new Array(4).fill(ERRNO.BADF));
  });
});

describe('stdio', () => {
  it.each([[true, FILETYPE.CHARACTER_DEVICE], [false, FILETYPE.UNKNOWN]] as const)('tty=%s: filetype %i, read on stdin, write on stdout/stderr, no seek', (tty, filetype) => {
    const h = make({ tty });
    const [e0, stdin] = h.fdstat(0);
    expect(e0).toBe(ERRNO.SUCCESS);
    expect(stdin.filetype).toBe(filetype);
    expect(stdin.base & R.fd_read).toBe(R.fd_read);
    expect(stdin.base & R.fd_write).toBe(0n);
    for (const fd of [1, 2]) {
      const [e, st] = h.fdstat(fd);
      expect(e).toBe(ERRNO.SUCCESS);
      expect(st.filetype).toBe(filetype);
      expect(st.base & R.fd_write).toBe(R.fd_write);
      expect(st.base & R.fd_read).toBe(0n);
    }
    for (const fd of [0, 1, 2]) expect(h.fdstat(fd)[1].base & (R.fd_seek | R.fd_tell)).toBe(0n);
  });

  it('stdin bytes are read, stdout and stderr go to their sinks', () => {
    const out: string[] = [];
    const err: string[] = [];
    const h = make({
      stdin: 'in put', stdout: (c) => out.push(Buffer.from(c).toString()), stderr: (c) => err.push(Buffer.from(c).toString()),
    });
    expect(h.read(0, 3)).toEqual([ERRNO.SUCCESS, 'in ']);
    expect(h.read(0)).toEqual([ERRNO.SUCCESS, 'put']);
    expect(h.read(0)).toEqual([ERRNO.SUCCESS, '']);
    expect(h.write(1, 'o')).toBe(ERRNO.SUCCESS);
    expect(h.write(2, 'e')).toBe(ERRNO.SUCCESS);
    expect([out.join(''), err.join('')]).toEqual(['o', 'e']);
  });
});

describe('descriptor table', () => {
  it('maxFds → EMFILE when exceeded, and a freed slot can be used again', () => {
    const h = mem({ maxFds: 5 });
    expect(h.wasi.context.fds.size).toBe(4);
    const [e1, fd] = h.open(3, 'f.txt');
    expect([e1, fd]).toEqual([ERRNO.SUCCESS, 4]);
    expect(h.open(3, 'f.txt')[0]).toBe(ERRNO.MFILE);
    expect(h.open(3, 'sub', { oflags: OFLAGS.DIRECTORY, base: R.fd_readdir })[0]).toBe(ERRNO.MFILE);
    expect(h.wasi.context.fds.size).toBe(5);
    expect(sys(h).fd_close(fd)).toBe(ERRNO.SUCCESS);
    expect(h.open(3, 'f.txt')).toEqual([ERRNO.SUCCESS, 4]);
  });

  it('fd_renumber frees a slot under maxFds', () => {
    const h = mem({ maxFds: 5 });
    const fd = open(h, 'f.txt');
    expect(h.open(3, 'f.txt')[0]).toBe(ERRNO.MFILE);
    expect(sys(h).fd_renumber(fd, 2)).toBe(ERRNO.SUCCESS);
    expect(h.wasi.context.fds.size).toBe(4);
    expect(h.open(3, 'f.txt')).toEqual([ERRNO.SUCCESS, 4]);
    expect(h.open(3, 'f.txt')[0]).toBe(ERRNO.MFILE);
  });

  it('fds are reused lowest-first after close', () => {
    const h = mem();
    const fds = [open(h, 'f.txt'), open(h, 'f.txt'), open(h, 'f.txt')];
    expect(fds).toEqual([4, 5, 6]);
    expect(sys(h).fd_close(5)).toBe(ERRNO.SUCCESS);
    expect(sys(h).fd_close(4)).toBe(ERRNO.SUCCESS);
    expect(open(h, 'f.txt')).toBe(4);
    expect(open(h, 'f.txt')).toBe(5);
    expect(open(h, 'f.txt')).toBe(7);
    expect(sys(h).fd_close(0)).toBe(ERRNO.SUCCESS);
    expect(open(h, 'f.txt')).toBe(0);
  });
});

describe('in-memory quota', () => {
  it('a write past maxBytes → ENOSPC; space comes back when a file is removed', () => {
    const h = mem({ memFs: { maxBytes: 1024 } });
    // The seed (4 bytes of data, the names f.txt and sub: 12 bytes) and every name count.
    const other = open(h, 'other', { oflags: OFLAGS.CREAT });
    const fd = open(h, 'big', { oflags: OFLAGS.CREAT });
    expect(h.write(fd, 'x'.repeat(1000))).toBe(ERRNO.SUCCESS);
    expect(h.write(fd, 'y'.repeat(5))).toBe(ERRNO.NOSPC);
    expect(fstat(h, fd).size).toBe(1000n);
    expect(h.write(fd, 'y'.repeat(4))).toBe(ERRNO.SUCCESS);
    expect(h.write(fd, 'z')).toBe(ERRNO.NOSPC);
    expect(sys(h).fd_filestat_set_size(fd, 2000n)).toBe(ERRNO.NOSPC);
    expect(fstat(h, fd).size).toBe(1004n);
    expect(sys(h).path_create_directory(3, ...str(h, 'd'))).toBe(ERRNO.NOSPC);

    expect(h.write(other, 'q'.repeat(10))).toBe(ERRNO.NOSPC);
    expect(sys(h).fd_close(fd)).toBe(ERRNO.SUCCESS);
    expect(sys(h).path_unlink_file(3, ...str(h, 'big'))).toBe(ERRNO.SUCCESS);
    expect(h.write(other, 'q'.repeat(1000))).toBe(ERRNO.SUCCESS);
  });


  // POSIX frees an unlinked file's blocks on its last close; until then they count.
  it('an unlinked file that is still open keeps counting against the quota until closed', () => {
    const h = mem({ memFs: { maxBytes: 1024 } });
    const a = open(h, 'a', { oflags: OFLAGS.CREAT });
    expect(h.write(a, 'x'.repeat(1000))).toBe(ERRNO.SUCCESS);
    expect(sys(h).path_unlink_file(3, ...str(h, 'a'))).toBe(ERRNO.SUCCESS);
    // The 1000 bytes are still held (and readable) through fd a.
    expect(pread(h, a, 4, 996n)).toEqual([ERRNO.SUCCESS, 'xxxx']);
    const b = open(h, 'b', { oflags: OFLAGS.CREAT });
    expect(h.write(b, 'y'.repeat(1000))).toBe(ERRNO.NOSPC);
    expect(sys(h).fd_close(a)).toBe(ERRNO.SUCCESS);
    expect(h.write(b, 'y'.repeat(1000))).toBe(ERRNO.SUCCESS);
  });

  it('names and symlink targets count; renames and links charge the name they add, and nothing drifts', () => {
    const h = mem({ memFs: { maxBytes: 2048 } });
    const mkdir = (p: string): number => sys(h).path_create_directory(3, ...str(h, p));
    const rename = (a: string, b: string): number => sys(h).path_rename(3, ...str(h, a), 3, ...str(h, b));
    const symlink = (target: string, p: string): number => sys(h).path_symlink(...str(h, target), 3, ...str(h, p));
    // 12 bytes of seed, four 250-byte names, a link "l" to 200 bytes, a link "k" to 800: 2014.
    for (const c of 'abcd') expect(mkdir(c.repeat(250))).toBe(ERRNO.SUCCESS);
    expect(symlink('t'.repeat(200), 'l')).toBe(ERRNO.SUCCESS);
    expect(symlink('t'.repeat(800), 'k')).toBe(ERRNO.SUCCESS);
    expect(symlink('t'.repeat(100), 'j')).toBe(ERRNO.NOSPC);
    // 34 bytes left: renaming "l" to a 36-byte name needs 35.
    expect(rename('l', 'm'.repeat(36))).toBe(ERRNO.NOSPC);
    for (let i = 0; i < 50; i++) {
      expect(rename('l', 'm')).toBe(ERRNO.SUCCESS);
      expect(rename('m', 'l')).toBe(ERRNO.SUCCESS);
    }
    expect(sys(h).path_link(3, 0, ...str(h, 'l'), 3, ...str(h, 'm'.repeat(35)))).toBe(ERRNO.NOSPC);
    expect(sys(h).path_unlink_file(3, ...str(h, 'l'))).toBe(ERRNO.SUCCESS);
    // The link's name and target are back: 235 bytes left.
    expect(mkdir('e'.repeat(235))).toBe(ERRNO.SUCCESS);
    expect(mkdir('f')).toBe(ERRNO.NOSPC);
  });

  it('paths in a tree are at most 1024 bytes and targets 1024: ENAMETOOLONG, also for a rename that carries a subtree too deep', () => {
    const h = mem();
    const mkdir = (p: string): number => sys(h).path_create_directory(3, ...str(h, p));
    const rename = (a: string, b: string): number => sys(h).path_rename(3, ...str(h, a), 3, ...str(h, b));
    // The preopen's tree root is /m: "/x" paths start at 2 bytes. 4 levels of 250 bytes: 1004.
    const n = 'n'.repeat(250);
    expect(mkdir(n)).toBe(ERRNO.SUCCESS);
    expect(mkdir(`${n}/${n}`)).toBe(ERRNO.SUCCESS);
    expect(mkdir(`${n}/${n}/${n}`)).toBe(ERRNO.SUCCESS);
    expect(mkdir(`${n}/${n}/${n}/${n}`)).toBe(ERRNO.SUCCESS);
    expect(mkdir(`${n}/${n}/${n}/${n}/${'x'.repeat(19)}`)).toBe(ERRNO.SUCCESS); // 1024 bytes
    expect(mkdir(`${n}/${n}/${n}/${n}/${'x'.repeat(20)}`)).toBe(ERRNO.NAMETOOLONG);
    expect(sys(h).path_symlink(...str(h, 't'.repeat(1025)), 3, ...str(h, 'l'))).toBe(ERRNO.NAMETOOLONG);
    expect(sys(h).path_symlink(...str(h, 't'.repeat(1024)), 3, ...str(h, 'l'))).toBe(ERRNO.SUCCESS);
    // Moving the subtree one level down would make its deepest path 1024 + 2 bytes.
    expect(mkdir('s')).toBe(ERRNO.SUCCESS);
    expect(rename(n, `s/${n}`)).toBe(ERRNO.NAMETOOLONG);
    expect(mkdir(`${n}/${n}/${n}/${n}/${'x'.repeat(19)}`)).toBe(ERRNO.EXIST); // still where it was
    // Moving it to a shorter name makes room below it.
    expect(rename(n, 'o')).toBe(ERRNO.SUCCESS);
    expect(mkdir(`o/${n}/${n}/${n}/${'x'.repeat(19)}/${'y'.repeat(200)}`)).toBe(ERRNO.SUCCESS);
    expect(rename('o', `s/${'p'.repeat(200)}`)).toBe(ERRNO.NAMETOOLONG);
    expect(rename('o', 's/p')).toBe(ERRNO.SUCCESS);
  });

  it('bytes written to an unlinked open file are returned to the quota when it is closed', () => {
    const h = mem({ memFs: { maxBytes: 1024 } });
    const g = open(h, 'g', { oflags: OFLAGS.CREAT });
    expect(sys(h).path_unlink_file(3, ...str(h, 'g'))).toBe(ERRNO.SUCCESS);
    expect(h.write(g, 'y'.repeat(1000))).toBe(ERRNO.SUCCESS);
    expect(sys(h).fd_close(g)).toBe(ERRNO.SUCCESS);
    const k = open(h, 'k', { oflags: OFLAGS.CREAT });
    expect(h.write(k, 'z'.repeat(1000))).toBe(ERRNO.SUCCESS);
  });
});

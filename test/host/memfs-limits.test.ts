/**
 * In-memory trees under hostile guests (issue 18, items 6 and 7): metadata (names, link targets,
 * inodes, depth) is bounded like bytes, the guest gets an errno and the run ends `exited`, blamed
 * on the guest; the worker's heap and the process's memory hold. This file has its own host: a
 * failure here may kill workers.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHost, type Host } from '../../src/host/host.js';
import { ERRNO } from '../../src/wasi/constants.js';
import { MEM_DEFAULT_INODES, MEM_PATH_MAX } from '../../src/wasi/fs/memfs.js';
import { wat } from '../helpers/wat.js';

const IMPORTS = `
  (import "wasi_snapshot_preview1" "path_open" (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_create_directory" (func $mkdir (param i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_symlink" (func $symlink (param i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_pwrite" (func $pwrite (param i32 i32 i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_filestat_set_size" (func $setsize (param i32 i64) (result i32)))
  (import "wasi_snapshot_preview1" "fd_close" (func $close (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))`;

// Memory layout: 0x100 out-fd, 0x110 iovec, 0x1000 path buffer (prefix, then 10 digits), 0x4000 a
// symlink target, 0x10000 data to write.
const HELPERS = `
  ;; Writes i as 10 zero-padded digits at $at.
  (func $digits (param $i i32) (param $at i32)
    (local $k i32)
    (local.set $k (i32.const 9))
    (loop $l
      (i32.store8 (i32.add (local.get $at) (local.get $k)) (i32.add (i32.const 48) (i32.rem_u (local.get $i) (i32.const 10))))
      (local.set $i (i32.div_u (local.get $i) (i32.const 10)))
      (br_if $l (i32.ge_s (local.tee $k (i32.sub (local.get $k) (i32.const 1))) (i32.const 0)))))
  ;; Exits with errno when it is not 0.
  (func $check (param $e i32) (if (local.get $e) (then (call $exit (local.get $e)))))`;

/** A guest that runs `body` for i = 0, 1, … until a call fails, then exits with its errno. */
const forever = (setup: string, body: string, pages = 2): Uint8Array => wat(`(module ${IMPORTS}
  (memory (export "memory") ${pages}) ${HELPERS}
  (func (export "_start") (local $i i32) (local $fd i32)
    ${setup}
    (loop $l ${body} (local.set $i (i32.add (local.get $i) (i32.const 1))) (br $l))))`);

/** The path buffer at 0x1000 holds `prefix` then 10 digits of i: makes and returns its length. */
const named = (prefix: string): { setup: string; len: number } => ({
  setup: `(memory.fill (i32.const 0x1000) (i32.const 110) (i32.const ${prefix.length}))`,
  len: prefix.length + 10,
});
const digitsAt = (prefixLen: number) => `(call $digits (local.get $i) (i32.const ${0x1000 + prefixLen}))`;
const openFile = (len: number) => `(call $check (call $open (i32.const 3) (i32.const 0) (i32.const 0x1000) (i32.const ${len}) (i32.const 1) (i64.const 0x0fffffff) (i64.const 0x0fffffff) (i32.const 0) (i32.const 0x100)))
  (call $check (call $close (i32.load (i32.const 0x100))))`;

const emptyFiles = (() => {
  const n = named('f');
  return forever(n.setup, `${digitsAt(1)} ${openFile(n.len)}`);
})();

// 4,000-byte targets: longer than an in-memory target may be.
const symlinks = (targetBytes: number) => {
  const n = named('l');
  return forever(`${n.setup} (memory.fill (i32.const 0x4000) (i32.const 120) (i32.const ${targetBytes}))`,
    `${digitsAt(1)} (call $check (call $symlink (i32.const 0x4000) (i32.const ${targetBytes}) (i32.const 3) (i32.const 0x1000) (i32.const ${n.len})))`);
};

// Directories with 250-byte names.
const longNamedDirs = (() => {
  const n = named('d'.repeat(240));
  return forever(n.setup, `${digitsAt(240)} (call $check (call $mkdir (i32.const 3) (i32.const 0x1000) (i32.const ${n.len})))`);
})();

// A chain of directories, each made and entered through its own descriptor (rights: mkdir and
// open): no path argument is ever long, but the tree gets as deep as the guest likes.
const chain = forever(`(i32.store8 (i32.const 0x1000) (i32.const 97)) (local.set $fd (i32.const 3))`, `
  (call $check (call $mkdir (local.get $fd) (i32.const 0x1000) (i32.const 1)))
  (call $check (call $open (local.get $fd) (i32.const 0) (i32.const 0x1000) (i32.const 1) (i32.const 2) (i64.const 0x2200) (i64.const 0x2200) (i32.const 0) (i32.const 0x100)))
  (if (i32.ne (local.get $fd) (i32.const 3)) (then (drop (call $close (local.get $fd)))))
  (local.set $fd (i32.load (i32.const 0x100)))`);

// Four directories with 250-byte names, then as many files below them as the tree takes: every
// collected path is ~1,020 bytes, the longest the tree allows.
const deepFiles = (() => {
  const dir = 'p'.repeat(250);
  const levels = [1, 2, 3, 4].map((k) => Array(k).fill(dir).join('/'));
  const prefix = `${levels[3]}/`;
  const setup = `(memory.fill (i32.const 0x1000) (i32.const 112) (i32.const ${prefix.length}))
    ${[1, 2, 3].map((k) => `(i32.store8 (i32.const ${0x1000 + 251 * k - 1}) (i32.const 47))`).join(' ')}
    (i32.store8 (i32.const ${0x1000 + prefix.length - 1}) (i32.const 47))
    ${levels.map((l) => `(call $check (call $mkdir (i32.const 3) (i32.const 0x1000) (i32.const ${l.length})))`).join('\n')}`;
  return forever(setup, `${digitsAt(prefix.length)} ${openFile(prefix.length + 10)}`);
})();

// `count` files, each grown to 15 MiB by one byte written at its end, then truncated to 0 and closed.
const growAndTruncate = (count: number) => {
  const n = named('g');
  return forever(`${n.setup} (i32.store (i32.const 0x110) (i32.const 0x10000)) (i32.store (i32.const 0x114) (i32.const 1))`, `
    (if (i32.eq (local.get $i) (i32.const ${count})) (then (call $exit (i32.const 0))))
    ${digitsAt(1)}
    (call $check (call $open (i32.const 3) (i32.const 0) (i32.const 0x1000) (i32.const ${n.len}) (i32.const 1) (i64.const 0x0fffffff) (i64.const 0x0fffffff) (i32.const 0) (i32.const 0x100)))
    (local.set $fd (i32.load (i32.const 0x100)))
    (call $check (call $pwrite (local.get $fd) (i32.const 0x110) (i32.const 1) (i64.const ${(15 << 20) - 1}) (i32.const 0x120)))
    (call $check (call $setsize (local.get $fd) (i64.const 0)))
    (call $check (call $close (local.get $fd)))`);
};

let host: Host;
beforeAll(async () => { host = await createHost({ workers: 1 }); });
afterAll(async () => { await host.close(); });

const DATA = [{ guest: '/data' }];

describe('metadata is bounded: the guest gets an errno and the run ends exited, blamed on the guest', () => {
  it(`filling the inode quota with empty files: ENOSPC at ${MEM_DEFAULT_INODES} inodes`, async () => {
    const r = await host.run({ module: emptyFiles, dirs: DATA });
    expect(r).toMatchObject({ status: 'exited', blame: 'guest', exitCode: ERRNO.NOSPC });
    // The root and /data are inodes too.
    expect(Object.keys(r.files)).toHaveLength(MEM_DEFAULT_INODES - 2);
  });

  it('symlink targets count: 4,000-byte targets are ENAMETOOLONG, 1,000-byte ones run into the quota', async () => {
    const long = await host.run({ module: symlinks(4000), dirs: DATA });
    expect(long).toMatchObject({ status: 'exited', blame: 'guest', exitCode: ERRNO.NAMETOOLONG });
    const r = await host.run({ module: symlinks(1000), dirs: DATA, limits: { filesBytes: 1 << 20 } });
    expect(r).toMatchObject({ status: 'exited', blame: 'guest', exitCode: ERRNO.NOSPC });
  });

  it('names count: directories with 250-byte names run into the quota', async () => {
    const r = await host.run({ module: longNamedDirs, dirs: DATA, limits: { filesBytes: 1 << 20 } });
    expect(r).toMatchObject({ status: 'exited', blame: 'guest', exitCode: ERRNO.NOSPC });
  });

  it(`a chain of nested directories ends at ${MEM_PATH_MAX} bytes of path with ENAMETOOLONG, and the tree is collected`, async () => {
    const r = await host.run({ module: chain, dirs: DATA, files: { '/data/top.txt': 'x' } });
    expect(r).toMatchObject({ status: 'exited', blame: 'guest', exitCode: ERRNO.NAMETOOLONG });
    expect(Object.keys(r.files)).toEqual(['/data/top.txt']);
  });

  it('the default quotas hold in the worker\'s heap: every inode a file with a ~1 KiB path, all collected', async () => {
    const r = await host.run({ module: deepFiles, dirs: DATA });
    expect(r).toMatchObject({ status: 'exited', blame: 'guest', exitCode: ERRNO.NOSPC });
    const paths = Object.keys(r.files);
    expect(paths.length).toBe(MEM_DEFAULT_INODES - 6);
    for (const p of paths) expect(Buffer.byteLength(p)).toBeLessThanOrEqual(MEM_PATH_MAX);
    expect(Math.min(...paths.map((p) => p.length))).toBeGreaterThan(1000);
    // The same worker runs the next guest.
    expect(host.stats().spawned).toBe(1);
  });

  it('a caller\'s files deeper than the tree allows are a TypeError naming the limit, before any run', async () => {
    const deep = '/data' + '/a'.repeat(40_000);
    await expect(host.run({ module: emptyFiles, files: { [deep]: 'x' } })).rejects.toThrow(/at most 1024 bytes: use a shallower path/);
    expect(host.stats().spawned).toBe(1);
  });
});

describe('truncated files give their memory back', () => {
  it('24 files grown to 15 MiB and truncated to 0 under a 16 MiB quota: the process grows by about the quota, not 360 MiB', async () => {
    const limits = { filesBytes: 16 << 20, wallMs: 30_000 };
    // A first run warms the worker up (code, heap), so that what follows is the files' memory.
    expect(await host.run({ module: growAndTruncate(1), dirs: DATA, limits })).toMatchObject({ status: 'exited', exitCode: 0 });
    const rss0 = process.memoryUsage.rss();
    let peak = rss0;
    const sampler = setInterval(() => { peak = Math.max(peak, process.memoryUsage.rss()); }, 2);
    try {
      const r = await host.run({ module: growAndTruncate(24), dirs: DATA, limits });
      expect(r).toMatchObject({ status: 'exited', blame: 'guest', exitCode: 0 });
      expect(Object.values(r.files).map((f) => f.length)).toEqual(Array(24).fill(0));
    } finally {
      clearInterval(sampler);
    }
    peak = Math.max(peak, process.memoryUsage.rss());
    // Generous: the quota, the worker's own churn (GC timing on a busy machine: up to ~110 MiB seen)
    // and the results; the old code touched 15 MiB per file, 360 MiB in all.
    expect(peak - rss0).toBeLessThan(160 << 20);
  }, 90_000);
});

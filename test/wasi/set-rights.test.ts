/**
 * How rights change over a descriptor's life: fd_fdstat_set_rights only drops, path_open derives
 * rights from the directory's inheriting set and the file type, fd_renumber moves rights with the
 * entry, read-only grants, and init-only grants revoked by cap_enter.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ERRNO, FILETYPE, LOOKUPFLAGS, OFLAGS } from '../../src/wasi/constants.js';
import type { Preview1Name } from '../../src/wasi/preview1.js';
import { READ_ONLY_MASK, R, RIGHTS_ALL, RIGHTS_TABLE, TYPE_RIGHTS } from '../../src/wasi/rights.js';
import type { Preopen, WasiOptions } from '../../src/wasi/wasi.js';
import { harness, type Harness } from '../helpers/harness.js';

type Sys = Record<Preview1Name, (...a: any[]) => number>;
const sys = (h: Harness): Sys => h.call as unknown as Sys;

interface Capsicum { cap_enter(): number; cap_getmode(ptr: number): number }
const capsicum = (h: Harness): Capsicum => h.wasi.getImportObject()['capsicum'] as unknown as Capsicum;

const tmpDirs: string[] = [];
const opened: Harness[] = [];
afterEach(() => {
  for (const h of opened.splice(0)) h.wasi.context.fds.closeAll();
  for (const d of tmpDirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

function make(options: WasiOptions): Harness {
  const h = harness(options);
  opened.push(h);
  return h;
}

const memOpts = (extra: { readonly?: boolean } = {}): WasiOptions =>
  ({ preopens: [{ guest: '/m', memory: { 'f.txt': 'data', sub: {} }, ...extra }] });

function hostOpts(extra: { readonly?: boolean } = {}): WasiOptions {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'capsa-setrights-'));
  tmpDirs.push(d);
  fs.writeFileSync(path.join(d, 'f.txt'), 'data');
  fs.mkdirSync(path.join(d, 'sub'));
  return { preopens: [{ guest: '/h', host: d, ...extra }] };
}

const MOUNTS: [string, (extra?: { readonly?: boolean }) => WasiOptions][] = [['memfs', memOpts], ['hostfs', hostOpts]];

function fdstat(h: Harness, fd: number): { filetype: number; flags: number; base: bigint; inheriting: bigint } {
  const [errno, st] = h.fdstat(fd);
  expect(errno).toBe(ERRNO.SUCCESS);
  return st;
}

function pathOpen(h: Harness, dirfd: number, p: string, oflags: number, base: bigint, inheriting: bigint, fdflags = 0): [number, number] {
  const s = h.put(p);
  const out = h.alloc(4);
  const errno = sys(h).path_open(dirfd, LOOKUPFLAGS.SYMLINK_FOLLOW, s.ptr, s.len, oflags, base, inheriting, fdflags, out);
  return [errno, h.u32(out)];
}

function openFile(h: Harness): number {
  const [errno, fd] = h.open(3, 'f.txt');
  expect(errno).toBe(ERRNO.SUCCESS);
  return fd;
}

function prestatGet(h: Harness, fd: number): number {
  return sys(h).fd_prestat_get(fd, h.alloc(8));
}

describe('fd_fdstat_set_rights only drops rights', () => {
  it('dropping a right takes effect at once, on base and on inheriting', () => {
    const h = make(memOpts());
    const fd = openFile(h);
    const st = fdstat(h, fd);
    expect(st.base & R.fd_write).toBe(R.fd_write);
    expect(sys(h).fd_fdstat_set_rights(fd, st.base & ~R.fd_write, 0n)).toBe(ERRNO.SUCCESS);
    expect(fdstat(h, fd).base).toBe(st.base & ~R.fd_write);
    expect(h.write(fd, 'x')).toBe(ERRNO.NOTCAPABLE);
    expect(h.read(fd)).toEqual([ERRNO.SUCCESS, 'data']);

    const dir = fdstat(h, 3);
    expect(sys(h).fd_fdstat_set_rights(3, dir.base, dir.inheriting & ~R.fd_write)).toBe(ERRNO.SUCCESS);
    expect(fdstat(h, 3)).toMatchObject({ base: dir.base, inheriting: dir.inheriting & ~R.fd_write });
    // Files opened through the directory now cannot get FD_WRITE.
    expect(pathOpen(h, 3, 'f.txt', 0, R.fd_write, 0n)[0]).toBe(ERRNO.NOTCAPABLE);
    const f2 = openFile(h);
    expect(fdstat(h, f2).base & R.fd_write).toBe(0n);
  });

  it('setting the same rights again is allowed and changes nothing', () => {
    const h = make(memOpts());
    const st = fdstat(h, 3);
    expect(sys(h).fd_fdstat_set_rights(3, st.base, st.inheriting)).toBe(ERRNO.SUCCESS);
    expect(fdstat(h, 3)).toEqual(st);
  });

  it('widening base → ENOTCAPABLE and the rights are unchanged', () => {
    const h = make(memOpts());
    const fd = openFile(h);
    const full = fdstat(h, fd);
    const limited = R.fd_read | R.fd_seek;
    expect(sys(h).fd_fdstat_set_rights(fd, limited, 0n)).toBe(ERRNO.SUCCESS);
    expect(sys(h).fd_fdstat_set_rights(fd, limited | R.fd_write, 0n)).toBe(ERRNO.NOTCAPABLE);
    expect(fdstat(h, fd)).toMatchObject({ base: limited, inheriting: 0n });
    expect(h.write(fd, 'x')).toBe(ERRNO.NOTCAPABLE);
    // Also refused: going back to the full set the fd had at open.
    expect(sys(h).fd_fdstat_set_rights(fd, full.base, 0n)).toBe(ERRNO.NOTCAPABLE);
    expect(fdstat(h, fd).base).toBe(limited);
  });

  it('widening inheriting → ENOTCAPABLE and the rights are unchanged', () => {
    const h = make(memOpts());
    const st = fdstat(h, 3);
    expect(sys(h).fd_fdstat_set_rights(3, st.base, st.inheriting & ~R.fd_read)).toBe(ERRNO.SUCCESS);
    expect(sys(h).fd_fdstat_set_rights(3, st.base, st.inheriting)).toBe(ERRNO.NOTCAPABLE);
    expect(fdstat(h, 3)).toMatchObject({ base: st.base, inheriting: st.inheriting & ~R.fd_read });
    // A regular file has no inheriting rights at all; asking for any is a widening.
    const fd = openFile(h);
    expect(fdstat(h, fd).inheriting).toBe(0n);
    expect(sys(h).fd_fdstat_set_rights(fd, fdstat(h, fd).base, R.fd_read)).toBe(ERRNO.NOTCAPABLE);
  });

  it('a call that drops one set but widens the other is refused as a whole', () => {
    const h = make(memOpts());
    const st = fdstat(h, 3);
    expect(sys(h).fd_fdstat_set_rights(3, st.base, st.inheriting & ~R.fd_tell)).toBe(ERRNO.SUCCESS);
    // Drops FD_READDIR from base but re-adds FD_TELL to inheriting.
    expect(sys(h).fd_fdstat_set_rights(3, st.base & ~R.fd_readdir, st.inheriting)).toBe(ERRNO.NOTCAPABLE);
    expect(fdstat(h, 3)).toMatchObject({ base: st.base, inheriting: st.inheriting & ~R.fd_tell });
  });

  it('undefined bits (30..63) and all-ones count as widening', () => {
    const h = make(memOpts());
    const st = fdstat(h, 3);
    expect(st.base & ~RIGHTS_ALL).toBe(0n);
    expect(sys(h).fd_fdstat_set_rights(3, st.base | (1n << 40n), st.inheriting)).toBe(ERRNO.NOTCAPABLE);
    expect(sys(h).fd_fdstat_set_rights(3, st.base, st.inheriting | (1n << 63n))).toBe(ERRNO.NOTCAPABLE);
    // -1 as an i64 is all 64 bits.
    expect(sys(h).fd_fdstat_set_rights(3, -1n, -1n)).toBe(ERRNO.NOTCAPABLE);
    expect(fdstat(h, 3)).toEqual(st);
  });

  it('once dropped, no right can be added back, one at a time or all at once', () => {
    const h = make(memOpts());
    const fd = openFile(h);
    const st = fdstat(h, fd);
    expect(sys(h).fd_fdstat_set_rights(fd, 0n, 0n)).toBe(ERRNO.SUCCESS);
    const held = RIGHTS_TABLE.filter((r) => (st.base & r.bit) !== 0n);
    expect(held.length).toBeGreaterThan(5);
    for (const r of held) expect(sys(h).fd_fdstat_set_rights(fd, r.bit, 0n), r.wasi).toBe(ERRNO.NOTCAPABLE);
    expect(sys(h).fd_fdstat_set_rights(fd, st.base, st.inheriting)).toBe(ERRNO.NOTCAPABLE);
    expect(fdstat(h, fd)).toMatchObject({ base: 0n, inheriting: 0n });
    expect(h.read(fd)[0]).toBe(ERRNO.NOTCAPABLE);
  });

  it('on stdout: dropping FD_WRITE stops writes for good', () => {
    const chunks: string[] = [];
    const h = make({ stdout: (c) => chunks.push(Buffer.from(c).toString()) });
    expect(h.write(1, 'a')).toBe(ERRNO.SUCCESS);
    const st = fdstat(h, 1);
    expect(sys(h).fd_fdstat_set_rights(1, st.base & ~R.fd_write, 0n)).toBe(ERRNO.SUCCESS);
    expect(h.write(1, 'b')).toBe(ERRNO.NOTCAPABLE);
    expect(sys(h).fd_fdstat_set_rights(1, st.base, 0n)).toBe(ERRNO.NOTCAPABLE);
    expect(h.write(1, 'c')).toBe(ERRNO.NOTCAPABLE);
    expect(chunks.join('')).toBe('a');
  });

  it('a closed fd → EBADF', () => {
    const h = make(memOpts());
    expect(sys(h).fd_fdstat_set_rights(42, 0n, 0n)).toBe(ERRNO.BADF);
  });
});

describe('path_open rights', () => {
  for (const [name, opts] of MOUNTS) {
    describe(name, () => {
      it('requested rights beyond the directory\'s inheriting rights → ENOTCAPABLE and no fd is created', () => {
        const h = make(opts());
        const dir = fdstat(h, 3);
        expect(dir.inheriting & R.sock_accept).toBe(0n);
        const n = h.wasi.context.fds.size;
        expect(pathOpen(h, 3, 'f.txt', 0, R.fd_read | R.sock_accept, 0n)[0]).toBe(ERRNO.NOTCAPABLE);
        expect(pathOpen(h, 3, 'f.txt', 0, R.fd_read, R.sock_shutdown)[0]).toBe(ERRNO.NOTCAPABLE);
        expect(pathOpen(h, 3, 'f.txt', 0, RIGHTS_ALL, 0n)[0]).toBe(ERRNO.NOTCAPABLE);
        expect(pathOpen(h, 3, 'f.txt', 0, R.fd_read | (1n << 33n), 0n)[0]).toBe(ERRNO.NOTCAPABLE);
        expect(pathOpen(h, 3, 'sub', OFLAGS.DIRECTORY, 0n, dir.inheriting | R.sock_accept)[0]).toBe(ERRNO.NOTCAPABLE);
        expect(h.wasi.context.fds.size).toBe(n);
        // The same request within the inheriting set works.
        expect(pathOpen(h, 3, 'f.txt', 0, R.fd_read, 0n)[0]).toBe(ERRNO.SUCCESS);
      });

      it('rights that do not apply to a regular file are silently dropped', () => {
        const h = make(opts());
        const dir = fdstat(h, 3);
        // Ask for everything the directory can pass on: path_* and fd_readdir included.
        const [errno, fd] = pathOpen(h, 3, 'f.txt', 0, dir.inheriting, dir.inheriting);
        expect(errno).toBe(ERRNO.SUCCESS);
        const st = fdstat(h, fd);
        expect(st.filetype).toBe(FILETYPE.REGULAR_FILE);
        for (const r of [R.path_open, R.path_create_file, R.path_create_directory, R.path_unlink_file, R.fd_readdir, R.path_filestat_get]) {
          expect(dir.inheriting & r).toBe(r);
          expect(st.base & r).toBe(0n);
        }
        expect(st.base).toBe(dir.inheriting & TYPE_RIGHTS.regularFile.base);
        expect(st.base & (R.fd_read | R.fd_write | R.fd_seek)).toBe(R.fd_read | R.fd_write | R.fd_seek);
        expect(st.inheriting).toBe(0n);
      });

      it('a directory opened asking for FD_SEEK/FD_TELL gets neither', () => {
        const h = make(opts());
        const asked = TYPE_RIGHTS.directory.base | R.fd_seek | R.fd_tell;
        const [errno, fd] = pathOpen(h, 3, 'sub', OFLAGS.DIRECTORY, asked, TYPE_RIGHTS.directory.inheriting);
        expect(errno).toBe(ERRNO.SUCCESS);
        const st = fdstat(h, fd);
        expect(st.filetype).toBe(FILETYPE.DIRECTORY);
        expect(st.base & (R.fd_seek | R.fd_tell)).toBe(0n);
        expect(st.base).toBe(TYPE_RIGHTS.directory.base);
        expect(st.inheriting).toBe(TYPE_RIGHTS.directory.inheriting);
        expect(sys(h).fd_seek(fd, 0n, 0, h.alloc(8))).toBe(ERRNO.NOTCAPABLE);
      });

      it('a directory asking for FD_READ keeps it only as an inheritable right', () => {
        const h = make(opts());
        const [errno, fd] = pathOpen(h, 3, 'sub', OFLAGS.DIRECTORY, R.fd_read | R.fd_readdir, R.fd_read);
        expect(errno).toBe(ERRNO.SUCCESS);
        expect(fdstat(h, fd)).toMatchObject({ base: R.fd_readdir, inheriting: R.fd_read });
      });

      it('a directory opened with FD_WRITE → EISDIR (with or without O_DIRECTORY), no fd created', () => {
        const h = make(opts());
        const n = h.wasi.context.fds.size;
        expect(pathOpen(h, 3, 'sub', OFLAGS.DIRECTORY, R.fd_read | R.fd_write, 0n)[0]).toBe(ERRNO.ISDIR);
        expect(pathOpen(h, 3, 'sub', 0, R.fd_write, 0n)[0]).toBe(ERRNO.ISDIR);
        expect(pathOpen(h, 3, '.', OFLAGS.DIRECTORY, R.fd_read | R.fd_write, 0n)[0]).toBe(ERRNO.ISDIR);
        expect(h.wasi.context.fds.size).toBe(n);
        // The same open without FD_WRITE works.
        expect(pathOpen(h, 3, 'sub', OFLAGS.DIRECTORY, R.fd_read, 0n)[0]).toBe(ERRNO.SUCCESS);
      });

      it('re-opening "." with the preopen\'s own rights gives the same rights (base ⊆ inheriting)', () => {
        const h = make(opts());
        const dir = fdstat(h, 3);
        expect(dir.base & ~dir.inheriting).toBe(0n);
        const [errno, fd] = pathOpen(h, 3, '.', OFLAGS.DIRECTORY, dir.base, dir.inheriting);
        expect(errno).toBe(ERRNO.SUCCESS);
        expect(fdstat(h, fd)).toMatchObject({ filetype: FILETYPE.DIRECTORY, base: dir.base, inheriting: dir.inheriting });
      });
    });
  }
});

describe('fd_renumber moves rights with the entry', () => {
  it('renumbering a limited fd over a preopen: the slot gets the limited rights and is no preopen', () => {
    const h = make(memOpts());
    expect(prestatGet(h, 3)).toBe(ERRNO.SUCCESS);
    const fd = openFile(h);
    expect(fd).toBe(4);
    expect(sys(h).fd_fdstat_set_rights(fd, R.fd_read, 0n)).toBe(ERRNO.SUCCESS);
    expect(sys(h).fd_renumber(fd, 3)).toBe(ERRNO.SUCCESS);
    expect(fdstat(h, 3)).toMatchObject({ filetype: FILETYPE.REGULAR_FILE, base: R.fd_read, inheriting: 0n });
    expect(prestatGet(h, 3)).toBe(ERRNO.BADF);
    expect(sys(h).fd_prestat_dir_name(3, h.alloc(16), 16)).toBe(ERRNO.BADF);
    expect(h.fdstat(4)[0]).toBe(ERRNO.BADF);
    expect(h.read(3)).toEqual([ERRNO.SUCCESS, 'data']);
    expect(h.write(3, 'x')).toBe(ERRNO.NOTCAPABLE);
    expect(pathOpen(h, 3, 'f.txt', 0, 0n, 0n)[0]).toBe(ERRNO.NOTCAPABLE);
    expect(sys(h).fd_fdstat_set_rights(3, R.fd_read | R.fd_write, 0n)).toBe(ERRNO.NOTCAPABLE);
  });

  it('renumbering a preopen moves its name and rights', () => {
    const h = make(memOpts());
    const dir = fdstat(h, 3);
    const fd = openFile(h);
    expect(sys(h).fd_renumber(3, fd)).toBe(ERRNO.SUCCESS);
    expect(fdstat(h, fd)).toMatchObject({ filetype: FILETYPE.DIRECTORY, base: dir.base, inheriting: dir.inheriting });
    const buf = h.alloc(8);
    expect(sys(h).fd_prestat_get(fd, buf)).toBe(ERRNO.SUCCESS);
    expect(h.u32(buf + 4)).toBe(2);
    const name = h.alloc(2);
    expect(sys(h).fd_prestat_dir_name(fd, name, 2)).toBe(ERRNO.SUCCESS);
    expect(h.text(name, 2)).toBe('/m');
    expect(h.fdstat(3)[0]).toBe(ERRNO.BADF);
  });

  it('renumbering onto a closed fd → EBADF and the source keeps its slot and rights', () => {
    const h = make(memOpts());
    const fd = openFile(h);
    expect(sys(h).fd_fdstat_set_rights(fd, R.fd_read, 0n)).toBe(ERRNO.SUCCESS);
    const n = h.wasi.context.fds.size;
    expect(sys(h).fd_renumber(fd, 9)).toBe(ERRNO.BADF);
    expect(sys(h).fd_renumber(9, fd)).toBe(ERRNO.BADF);
    expect(h.fdstat(9)[0]).toBe(ERRNO.BADF);
    expect(fdstat(h, fd)).toMatchObject({ base: R.fd_read, filetype: FILETYPE.REGULAR_FILE });
    expect(h.wasi.context.fds.size).toBe(n);
  });

  it('renumbering an fd onto itself changes nothing', () => {
    const h = make(memOpts());
    const st = fdstat(h, 3);
    expect(sys(h).fd_renumber(3, 3)).toBe(ERRNO.SUCCESS);
    expect(fdstat(h, 3)).toEqual(st);
    expect(prestatGet(h, 3)).toBe(ERRNO.SUCCESS);
  });
});

describe('read-only preopens', () => {
  const writeRights = [R.fd_write, R.fd_datasync, R.fd_allocate, R.fd_filestat_set_size, R.fd_filestat_set_times,
    R.path_create_file, R.path_create_directory, R.path_unlink_file, R.path_remove_directory, R.path_rename_source,
    R.path_rename_target, R.path_link_source, R.path_link_target, R.path_symlink, R.path_filestat_set_size,
    R.path_filestat_set_times];

  for (const [name, opts] of MOUNTS) {
    describe(name, () => {
      it('hold no right that writes or changes the namespace, in base or inheriting', () => {
        const h = make(opts({ readonly: true }));
        const st = fdstat(h, 3);
        for (const r of writeRights) {
          expect(st.base & r).toBe(0n);
          expect(st.inheriting & r).toBe(0n);
        }
        expect(st.base).toBe(TYPE_RIGHTS.directory.base & READ_ONLY_MASK);
        expect(st.base & (R.path_open | R.fd_readdir | R.path_filestat_get)).toBe(R.path_open | R.fd_readdir | R.path_filestat_get);
        expect(st.inheriting & (R.fd_read | R.fd_seek)).toBe(R.fd_read | R.fd_seek);
      });

      it('O_CREAT and O_TRUNC → ENOTCAPABLE and nothing changes', () => {
        const h = make(opts({ readonly: true }));
        expect(pathOpen(h, 3, 'new.txt', OFLAGS.CREAT, R.fd_read, 0n)[0]).toBe(ERRNO.NOTCAPABLE);
        expect(pathOpen(h, 3, 'f.txt', OFLAGS.TRUNC, R.fd_read, 0n)[0]).toBe(ERRNO.NOTCAPABLE);
        const p = h.put('new.txt');
        expect(sys(h).path_filestat_get(3, 0, p.ptr, p.len, h.alloc(64))).toBe(ERRNO.NOENT);
        const [, fd] = h.open(3, 'f.txt');
        expect(h.read(fd)).toEqual([ERRNO.SUCCESS, 'data']);
      });

      it('a file opened through it has no FD_WRITE; fd_write → ENOTCAPABLE; asking for FD_WRITE → ENOTCAPABLE', () => {
        const h = make(opts({ readonly: true }));
        const [errno, fd] = h.open(3, 'f.txt');
        expect(errno).toBe(ERRNO.SUCCESS);
        const st = fdstat(h, fd);
        expect(st.base & R.fd_write).toBe(0n);
        expect(st.base & R.fd_read).toBe(R.fd_read);
        expect(h.write(fd, 'XX')).toBe(ERRNO.NOTCAPABLE);
        expect(sys(h).fd_filestat_set_size(fd, 0n)).toBe(ERRNO.NOTCAPABLE);
        expect(pathOpen(h, 3, 'f.txt', 0, R.fd_read | R.fd_write, 0n)[0]).toBe(ERRNO.NOTCAPABLE);
        expect(h.read(fd)).toEqual([ERRNO.SUCCESS, 'data']);
      });

      it('a subdirectory opened through it is read-only too', () => {
        const h = make(opts({ readonly: true }));
        // Asking for a directory's full rights exceeds what the grant can pass on.
        expect(pathOpen(h, 3, 'sub', OFLAGS.DIRECTORY, TYPE_RIGHTS.directory.base, TYPE_RIGHTS.directory.inheriting)[0])
          .toBe(ERRNO.NOTCAPABLE);
        // Asking for everything it can pass on (as wasi-libc does) gives a read-only directory.
        const [errno, sub] = h.open(3, 'sub', { oflags: OFLAGS.DIRECTORY, base: fdstat(h, 3).inheriting & ~R.fd_write });
        expect(errno).toBe(ERRNO.SUCCESS);
        const st = fdstat(h, sub);
        for (const r of writeRights) {
          expect(st.base & r).toBe(0n);
          expect(st.inheriting & r).toBe(0n);
        }
        expect(pathOpen(h, sub, 'x.txt', OFLAGS.CREAT, R.fd_read, 0n)[0]).toBe(ERRNO.NOTCAPABLE);
        const p = h.put('d');
        expect(sys(h).path_create_directory(sub, p.ptr, p.len)).toBe(ERRNO.NOTCAPABLE);
      });

      it('namespace changes → ENOTCAPABLE', () => {
        const h = make(opts({ readonly: true }));
        const f = h.put('f.txt');
        const sub = h.put('sub');
        const nw = h.put('n');
        expect(sys(h).path_create_directory(3, nw.ptr, nw.len)).toBe(ERRNO.NOTCAPABLE);
        expect(sys(h).path_unlink_file(3, f.ptr, f.len)).toBe(ERRNO.NOTCAPABLE);
        expect(sys(h).path_remove_directory(3, sub.ptr, sub.len)).toBe(ERRNO.NOTCAPABLE);
        expect(sys(h).path_rename(3, f.ptr, f.len, 3, nw.ptr, nw.len)).toBe(ERRNO.NOTCAPABLE);
        expect(sys(h).path_link(3, 0, f.ptr, f.len, 3, nw.ptr, nw.len)).toBe(ERRNO.NOTCAPABLE);
        expect(sys(h).path_symlink(f.ptr, f.len, 3, nw.ptr, nw.len)).toBe(ERRNO.NOTCAPABLE);
        expect(sys(h).path_filestat_set_times(3, 0, f.ptr, f.len, 0n, 0n, 0)).toBe(ERRNO.NOTCAPABLE);
        const buf = h.alloc(64);
        expect(sys(h).path_filestat_get(3, 0, f.ptr, f.len, buf)).toBe(ERRNO.SUCCESS);
        expect(h.u64(buf + 32)).toBe(4n);
      });
    });
  }

  it('hostfs: the host file is untouched after refused writes', () => {
    const opts = hostOpts({ readonly: true });
    const hostDir = (opts.preopens as readonly Preopen[])[0]!.host!;
    const h = make(opts);
    const [, fd] = h.open(3, 'f.txt');
    expect(h.write(fd, 'XX')).toBe(ERRNO.NOTCAPABLE);
    expect(pathOpen(h, 3, 'f.txt', OFLAGS.TRUNC, R.fd_read, 0n)[0]).toBe(ERRNO.NOTCAPABLE);
    expect(fs.readFileSync(path.join(hostDir, 'f.txt'), 'utf8')).toBe('data');
    expect(fs.readdirSync(hostDir).sort()).toEqual(['f.txt', 'sub']);
  });
});

describe('init-only grants and cap_enter', () => {
  const opts = (): WasiOptions => ({
    preopens: [
      { guest: '/init', memory: { 'conf.txt': 'cfg' }, initOnly: true },
      { guest: '/data', memory: { 'd.txt': 'dd' } },
    ],
  });
  const mode = (h: Harness): number => {
    const p = h.alloc(4);
    new DataView(h.memory.buffer).setUint32(p, 0xdead, true);
    expect(capsicum(h).cap_getmode(p)).toBe(ERRNO.SUCCESS);
    return h.u32(p);
  };

  it('cap_enter closes init-only grants and sets capability mode', () => {
    const h = make(opts());
    expect(mode(h)).toBe(0);
    expect(h.wasi.context.inCapabilityMode).toBe(false);
    expect(prestatGet(h, 3)).toBe(ERRNO.SUCCESS);
    expect(prestatGet(h, 4)).toBe(ERRNO.SUCCESS);
    expect(capsicum(h).cap_enter()).toBe(ERRNO.SUCCESS);
    expect(mode(h)).toBe(1);
    expect(h.fdstat(3)[0]).toBe(ERRNO.BADF);
    expect(prestatGet(h, 3)).toBe(ERRNO.BADF);
    expect(pathOpen(h, 3, 'conf.txt', 0, R.fd_read, 0n)[0]).toBe(ERRNO.BADF);
    expect(prestatGet(h, 4)).toBe(ERRNO.SUCCESS);
    // The other grant still works (and the freed slot 3 is reused for what it opens).
    expect(h.open(4, 'd.txt')).toEqual([ERRNO.SUCCESS, 3]);
    expect(h.read(3)).toEqual([ERRNO.SUCCESS, 'dd']);
  });

  it('entering twice is a no-op', () => {
    const h = make(opts());
    let hooks = 0;
    h.wasi.context.onCapEnter(() => { hooks++; });
    expect(capsicum(h).cap_enter()).toBe(ERRNO.SUCCESS);
    const [, fd] = h.open(4, 'd.txt');
    const n = h.wasi.context.fds.size;
    const st = fdstat(h, 4);
    expect(capsicum(h).cap_enter()).toBe(ERRNO.SUCCESS);
    expect(mode(h)).toBe(1);
    expect(hooks).toBe(1);
    expect(h.wasi.context.fds.size).toBe(n);
    expect(fdstat(h, 4)).toEqual(st);
    expect(h.read(fd)).toEqual([ERRNO.SUCCESS, 'dd']);
  });

  it('a grant without initOnly survives cap_enter; files opened through an init-only grant stay open', () => {
    const h = make(opts());
    const [errno, conf] = h.open(3, 'conf.txt');
    expect(errno).toBe(ERRNO.SUCCESS);
    expect(capsicum(h).cap_enter()).toBe(ERRNO.SUCCESS);
    expect(h.fdstat(3)[0]).toBe(ERRNO.BADF);
    expect(h.read(conf)).toEqual([ERRNO.SUCCESS, 'cfg']);
    expect(fdstat(h, 4).filetype).toBe(FILETYPE.DIRECTORY);
  });

  it('the init-only mark travels with fd_renumber', () => {
    const h = make(opts());
    const [, conf] = h.open(4, 'd.txt');
    // Move the init-only grant to another number: it is still revoked there.
    expect(sys(h).fd_renumber(3, conf)).toBe(ERRNO.SUCCESS);
    expect(prestatGet(h, conf)).toBe(ERRNO.SUCCESS);
    // And a plain fd moved into slot 3 is not revoked.
    const [, d] = h.open(4, 'd.txt');
    expect(d).toBe(3);
    const [, d2] = h.open(4, 'd.txt');
    expect(sys(h).fd_renumber(d2, 3)).toBe(ERRNO.SUCCESS);
    expect(capsicum(h).cap_enter()).toBe(ERRNO.SUCCESS);
    expect(h.fdstat(conf)[0]).toBe(ERRNO.BADF);
    expect(h.read(3)).toEqual([ERRNO.SUCCESS, 'dd']);
    expect(prestatGet(h, 4)).toBe(ERRNO.SUCCESS);
  });
});

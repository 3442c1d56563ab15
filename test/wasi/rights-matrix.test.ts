/**
 * The rights matrix: for every call that needs a right on a descriptor (research/wasi.md §1.4),
 * one row per (call, right). Each row shows that
 *   - the fd holding exactly the rights the call needs is enough (the call succeeds), and
 *   - dropping that one right (and only it) from an fd holding everything makes the call
 *     ENOTCAPABLE, with no effect on the tree.
 * The matrix runs on an in-memory preopen and on a host mount in a temp dir.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ERRNO, EVENTTYPE, FDFLAGS, FILETYPE, FSTFLAGS, LOOKUPFLAGS, OFLAGS, WHENCE } from '../../src/wasi/constants.js';
import type { FsDir, FsFile } from '../../src/wasi/fs/types.js';
import { DirHandle } from '../../src/wasi/handles.js';
import type { Preview1Name } from '../../src/wasi/preview1.js';
import { R, RIGHTS_TABLE, TYPE_RIGHTS } from '../../src/wasi/rights.js';
import { harness, type Harness } from '../helpers/harness.js';
import { createProcessCell, exitStatus, PROC_ENDED, PROC_PID, PROC_STATE, PROC_STATUS, type Spawner } from '../../src/wasi/procdesc.js';

type Sys = Record<Preview1Name, (...a: any[]) => number>;
const sys = (h: Harness): Sys => h.call as unknown as Sys;

const rightName = (bit: bigint): string => RIGHTS_TABLE.find((r) => r.bit === bit)?.wasi ?? `bit ${bit}`;

// ---------------------------------------------------------------------------------------------
// Mounts: the same tree (f.txt = "data", sub/) in memory and on the host.

const tmpDirs: string[] = [];
const opened: Harness[] = [];

afterEach(() => {
  for (const h of opened.splice(0)) h.wasi.context.fds.closeAll();
  for (const d of tmpDirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

function mkTmp(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'capsa-rights-'));
  tmpDirs.push(d);
  return d;
}

interface Env {
  h: Harness;
  /** The preopen's tree, captured before any right is dropped, to observe side effects. */
  root: FsDir;
}

interface Mount {
  name: string;
  make(): Env;
}

function env(h: Harness): Env {
  opened.push(h);
  const e = h.wasi.context.fds.peek(3);
  if (!e || !(e.handle instanceof DirHandle)) throw new Error('fd 3 is not the preopen');
  return { h, root: e.handle.dir };
}

const MOUNTS: Mount[] = [
  {
    name: 'memfs',
    make: () => env(harness({ preopens: [{ guest: '/m', memory: { 'f.txt': 'data', sub: {} } }] })),
  },
  {
    name: 'hostfs',
    make: () => {
      const dir = mkTmp();
      fs.writeFileSync(path.join(dir, 'f.txt'), 'data');
      fs.mkdirSync(path.join(dir, 'sub'));
      return env(harness({ preopens: [{ guest: '/h', host: dir }] }));
    },
  },
];

/** A listing of the tree (names, types, sizes, link counts, mtimes, file contents) to compare. */
function snapshot(root: FsDir): string[] {
  const out: string[] = [];
  const walk = (d: FsDir, prefix: string): void => {
    for (const e of d.list().sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const n = d.lookup(e.name);
      if (!n) continue;
      const st = n.stat();
      let line = `${prefix}${e.name} type=${st.filetype} nlink=${st.nlink} mtim=${st.mtim}`;
      if (st.filetype === FILETYPE.REGULAR_FILE) {
        const io = (n as FsFile).open({ read: true, write: false, truncate: false, append: false });
        const buf = new Uint8Array(Number(st.size));
        io.pread(buf, 0);
        io.close();
        line += ` size=${st.size} data=${Buffer.from(buf).toString('latin1')}`;
      }
      out.push(line);
      if (st.filetype === FILETYPE.DIRECTORY) walk(n as FsDir, `${prefix}${e.name}/`);
    }
  };
  walk(root, '');
  return out;
}

// ---------------------------------------------------------------------------------------------
// Small call helpers.

function fdstat(h: Harness, fd: number): { base: bigint; inheriting: bigint; filetype: number } {
  const [errno, st] = h.fdstat(fd);
  expect(errno).toBe(ERRNO.SUCCESS);
  return st;
}

function setRights(h: Harness, fd: number, base: bigint, inheriting: bigint): void {
  expect(sys(h).fd_fdstat_set_rights(fd, base, inheriting)).toBe(ERRNO.SUCCESS);
  const st = fdstat(h, fd);
  expect(st.base).toBe(base);
  expect(st.inheriting).toBe(inheriting);
}

/** Opens f.txt through the preopen with every right it can inherit (read + write). */
function openFile(h: Harness): number {
  const [errno, fd] = h.open(3, 'f.txt');
  expect(errno).toBe(ERRNO.SUCCESS);
  return fd;
}

/** Opens sub/ as a directory with a directory's full rights. */
function openSub(h: Harness): number {
  const [errno, fd] = h.open(3, 'sub', {
    oflags: OFLAGS.DIRECTORY, base: TYPE_RIGHTS.directory.base, inheriting: TYPE_RIGHTS.directory.inheriting,
  });
  expect(errno).toBe(ERRNO.SUCCESS);
  return fd;
}

/** One fd_read / fd_write subscription; returns the call's errno or, when it succeeded, the event's error. */
function pollFd(h: Harness, fd: number, type: number): number {
  const sub = h.alloc(48);
  const ev = h.alloc(32);
  const n = h.alloc(4);
  const dv = new DataView(h.memory.buffer);
  dv.setBigUint64(sub, 0xfeedn, true);
  dv.setUint8(sub + 8, type);
  dv.setUint32(sub + 16, fd, true);
  const rc = sys(h).poll_oneoff(sub, ev, 1, n);
  if (rc !== ERRNO.SUCCESS) return 1000 + rc;
  expect(h.u32(n)).toBe(1);
  const dv2 = new DataView(h.memory.buffer);
  expect(dv2.getBigUint64(ev, true)).toBe(0xfeedn);
  expect(dv2.getUint8(ev + 10)).toBe(type);
  return dv2.getUint16(ev + 8, true);
}

function pathOpen(h: Harness, dirfd: number, p: string, oflags: number, base: bigint, inheriting: bigint, fdflags = 0): number {
  const s = h.put(p);
  const out = h.alloc(4);
  return sys(h).path_open(dirfd, LOOKUPFLAGS.SYMLINK_FOLLOW, s.ptr, s.len, oflags, base, inheriting, fdflags, out);
}

function symlink(h: Harness, fd: number, target: string, name: string): number {
  const t = h.put(target);
  const n = h.put(name);
  return sys(h).path_symlink(t.ptr, t.len, fd, n.ptr, n.len);
}

// ---------------------------------------------------------------------------------------------
// The cases. Roles name the descriptors a call uses; `needs` lists, per role, the rights it needs.

type Fds = Record<string, number>;

interface Case {
  call: string;
  needs: Record<string, bigint[]>;
  /** Opens the descriptors (with full rights) and prepares the tree. */
  setup(h: Harness): Fds;
  /** Makes the call; returns its errno (for poll_oneoff, the event's error). */
  run(h: Harness, fds: Fds): number;
  /** Optional check of the call's effect after it succeeded. */
  after?(h: Harness, fds: Fds, root: FsDir): void;
}

const file = (h: Harness): Fds => ({ file: openFile(h) });
/** Drops FD_SEEK, which implies FD_TELL (witx), so that FD_TELL is tested on its own. */
const dropSeek = (h: Harness, fd: number): void => {
  const [, st] = h.fdstat(fd);
  expect(sys(h).fd_fdstat_set_rights(fd, st.base & ~R.fd_seek, st.inheriting)).toBe(ERRNO.SUCCESS);
};
const dir = (): Fds => ({ dir: 3 });

// capsa's own calls (the `capsicum` module): pipes and process descriptors.
const caps = (h: Harness) => h.wasi.getImportObject()['capsicum'] as Record<string, (...a: number[]) => number>;
/** A spawner whose children have already exited with status 3, as pid 42. */
const endedChild: Spawner = {
  spawn: () => {
    const c = createProcessCell();
    c[PROC_PID] = 42; c[PROC_STATUS] = exitStatus(3); c[PROC_STATE] = PROC_ENDED;
    return c;
  },
  kill: () => {},
};
const pdspawn = (h: Harness, modfd: number): number => {
  const out = h.alloc(8);
  const rc = caps(h).pdspawn!(modfd, 0, 0, 0, 0, 0, out, out + 4);
  return rc === ERRNO.SUCCESS ? h.u32(out) : -rc;
};
const proc = (h: Harness): Fds => {
  h.wasi.context.spawner = endedChild;
  const pd = pdspawn(h, openFile(h));
  expect(pd).toBeGreaterThan(0);
  return { pd };
};
/** A pipe holding one byte, so that a read does not block. */
const pipe = (h: Harness): Fds => {
  const out = h.alloc(8);
  expect(caps(h).pipe!(out)).toBe(ERRNO.SUCCESS);
  const fds = { r: h.u32(out), w: h.u32(out + 4) };
  expect(h.write(fds.w, 'x')).toBe(ERRNO.SUCCESS);
  return fds;
};
const forModfd = (h: Harness): Fds => { h.wasi.context.spawner = endedChild; return file(h); };

const CASES: Case[] = [
  {
    call: 'fd_advise', needs: { file: [R.fd_advise] }, setup: file,
    run: (h, f) => sys(h).fd_advise(f.file, 0n, 4n, 0),
  },
  {
    call: 'fd_allocate', needs: { file: [R.fd_allocate] }, setup: file,
    run: (h, f) => sys(h).fd_allocate(f.file, 0n, 16n),
    after: (_h, _f, root) => expect(root.lookup('f.txt')!.stat().size).toBe(16n),
  },
  {
    call: 'fd_datasync', needs: { file: [R.fd_datasync] }, setup: file,
    run: (h, f) => sys(h).fd_datasync(f.file),
  },
  {
    call: 'fd_sync', needs: { file: [R.fd_sync] }, setup: file,
    run: (h, f) => sys(h).fd_sync(f.file),
  },
  {
    call: 'fd_fdstat_set_flags', needs: { file: [R.fd_fdstat_set_flags] }, setup: file,
    run: (h, f) => sys(h).fd_fdstat_set_flags(f.file, FDFLAGS.APPEND),
    after: (h, f) => expect(h.fdstat(f.file!)[1].flags & FDFLAGS.APPEND).toBe(FDFLAGS.APPEND),
  },
  {
    call: 'fd_filestat_get', needs: { file: [R.fd_filestat_get] }, setup: file,
    run: (h, f) => {
      const buf = h.alloc(64);
      const rc = sys(h).fd_filestat_get(f.file, buf);
      if (rc === 0) expect(h.u64(buf + 32)).toBe(4n);
      return rc;
    },
  },
  {
    call: 'fd_filestat_set_size', needs: { file: [R.fd_filestat_set_size] }, setup: file,
    run: (h, f) => sys(h).fd_filestat_set_size(f.file, 2n),
    after: (_h, _f, root) => expect(root.lookup('f.txt')!.stat().size).toBe(2n),
  },
  {
    call: 'fd_filestat_set_times', needs: { file: [R.fd_filestat_set_times] }, setup: file,
    run: (h, f) => sys(h).fd_filestat_set_times(f.file, 1_000_000_000_000_000_000n, 1_000_000_000_000_000_000n, FSTFLAGS.ATIM | FSTFLAGS.MTIM),
    after: (_h, _f, root) => expect(root.lookup('f.txt')!.stat().mtim).toBe(1_000_000_000_000_000_000n),
  },
  {
    call: 'fd_read', needs: { file: [R.fd_read] }, setup: file,
    run: (h, f) => {
      const [rc, text] = h.read(f.file!);
      if (rc === 0) expect(text).toBe('data');
      return rc;
    },
  },
  {
    call: 'fd_write', needs: { file: [R.fd_write] }, setup: file,
    run: (h, f) => h.write(f.file!, 'DA'),
    after: (_h, _f, root) => expect(snapshot(root).find((l) => l.startsWith('f.txt'))).toMatch(/data=DAta$/),
  },
  {
    call: 'fd_pread', needs: { file: [R.fd_read, R.fd_seek] }, setup: file,
    run: (h, f) => {
      const buf = h.alloc(8);
      const n = h.alloc(4);
      const rc = sys(h).fd_pread(f.file, h.iovecs([{ ptr: buf, len: 8 }]), 1, 1n, n);
      if (rc === 0) expect(h.text(buf, h.u32(n))).toBe('ata');
      return rc;
    },
  },
  {
    call: 'fd_pwrite', needs: { file: [R.fd_write, R.fd_seek] }, setup: file,
    run: (h, f) => sys(h).fd_pwrite(f.file, h.iovecs([h.put('XY')]), 1, 2n, h.alloc(4)),
    after: (_h, _f, root) => expect(snapshot(root).find((l) => l.startsWith('f.txt'))).toMatch(/data=daXY$/),
  },
  {
    call: 'fd_seek(2, SET)', needs: { file: [R.fd_seek] }, setup: file,
    run: (h, f) => {
      const out = h.alloc(8);
      const rc = sys(h).fd_seek(f.file, 2n, WHENCE.SET, out);
      if (rc === 0) expect(h.u64(out)).toBe(2n);
      return rc;
    },
  },
  {
    call: 'fd_seek(1, CUR)', needs: { file: [R.fd_seek] }, setup: file,
    run: (h, f) => {
      const out = h.alloc(8);
      const rc = sys(h).fd_seek(f.file, 1n, WHENCE.CUR, out);
      if (rc === 0) expect(h.u64(out)).toBe(1n);
      return rc;
    },
  },
  {
    call: 'fd_seek(0, END)', needs: { file: [R.fd_seek] }, setup: file,
    run: (h, f) => {
      const out = h.alloc(8);
      const rc = sys(h).fd_seek(f.file, 0n, WHENCE.END, out);
      if (rc === 0) expect(h.u64(out)).toBe(4n);
      return rc;
    },
  },
  {
    // Without FD_SEEK (which implies FD_TELL), FD_TELL alone must allow this.
    call: 'fd_seek(0, CUR) (tell-only)', needs: { file: [R.fd_tell] },
    setup: (h) => {
      const fd = openFile(h);
      expect(sys(h).fd_seek(fd, 3n, WHENCE.SET, h.alloc(8))).toBe(ERRNO.SUCCESS);
      dropSeek(h, fd);
      return { file: fd };
    },
    run: (h, f) => {
      const out = h.alloc(8);
      const rc = sys(h).fd_seek(f.file, 0n, WHENCE.CUR, out);
      if (rc === 0) expect(h.u64(out)).toBe(3n);
      return rc;
    },
  },
  {
    call: 'fd_tell', needs: { file: [R.fd_tell] },
    setup: (h) => { const fd = openFile(h); dropSeek(h, fd); return { file: fd }; },
    run: (h, f) => sys(h).fd_tell(f.file, h.alloc(8)),
  },
  {
    call: 'fd_readdir', needs: { dir: [R.fd_readdir] }, setup: dir,
    run: (h, f) => {
      const used = h.alloc(4);
      const rc = sys(h).fd_readdir(f.dir, h.alloc(512), 512, 0n, used);
      if (rc === 0) expect(h.u32(used)).toBeGreaterThan(24 * 4);
      return rc;
    },
  },
  {
    call: 'path_open', needs: { dir: [R.path_open] }, setup: dir,
    run: (h, f) => pathOpen(h, f.dir!, 'f.txt', 0, R.fd_read, 0n),
  },
  {
    call: 'path_open O_CREAT', needs: { dir: [R.path_open, R.path_create_file] }, setup: dir,
    run: (h, f) => pathOpen(h, f.dir!, 'new.txt', OFLAGS.CREAT, R.fd_read | R.fd_write, 0n),
    after: (_h, _f, root) => expect(root.lookup('new.txt')?.filetype).toBe(FILETYPE.REGULAR_FILE),
  },
  {
    call: 'path_open O_TRUNC', needs: { dir: [R.path_open, R.path_filestat_set_size] }, setup: dir,
    run: (h, f) => pathOpen(h, f.dir!, 'f.txt', OFLAGS.TRUNC, R.fd_write, 0n),
    after: (_h, _f, root) => expect(root.lookup('f.txt')!.stat().size).toBe(0n),
  },
  {
    call: 'path_open O_CREAT|O_TRUNC', needs: { dir: [R.path_open, R.path_create_file, R.path_filestat_set_size] }, setup: dir,
    run: (h, f) => pathOpen(h, f.dir!, 'f.txt', OFLAGS.CREAT | OFLAGS.TRUNC, R.fd_write, 0n),
    after: (_h, _f, root) => expect(root.lookup('f.txt')!.stat().size).toBe(0n),
  },
  {
    call: 'path_create_directory', needs: { dir: [R.path_create_directory] }, setup: dir,
    run: (h, f) => { const p = h.put('newdir'); return sys(h).path_create_directory(f.dir, p.ptr, p.len); },
    after: (_h, _f, root) => expect(root.lookup('newdir')?.filetype).toBe(FILETYPE.DIRECTORY),
  },
  {
    call: 'path_filestat_get', needs: { dir: [R.path_filestat_get] }, setup: dir,
    run: (h, f) => {
      const p = h.put('f.txt');
      const buf = h.alloc(64);
      const rc = sys(h).path_filestat_get(f.dir, LOOKUPFLAGS.SYMLINK_FOLLOW, p.ptr, p.len, buf);
      if (rc === 0) expect(h.u64(buf + 32)).toBe(4n);
      return rc;
    },
  },
  {
    call: 'path_filestat_set_times', needs: { dir: [R.path_filestat_set_times] }, setup: dir,
    run: (h, f) => {
      const p = h.put('f.txt');
      return sys(h).path_filestat_set_times(f.dir, LOOKUPFLAGS.SYMLINK_FOLLOW, p.ptr, p.len,
        1_000_000_000_000_000_000n, 1_000_000_000_000_000_000n, FSTFLAGS.ATIM | FSTFLAGS.MTIM);
    },
    after: (_h, _f, root) => expect(root.lookup('f.txt')!.stat().mtim).toBe(1_000_000_000_000_000_000n),
  },
  {
    call: 'path_link', needs: { old: [R.path_link_source], new: [R.path_link_target] },
    setup: (h) => ({ old: 3, new: openSub(h) }),
    run: (h, f) => {
      const a = h.put('f.txt');
      const b = h.put('hard.txt');
      return sys(h).path_link(f.old, 0, a.ptr, a.len, f.new, b.ptr, b.len);
    },
    after: (_h, _f, root) => expect(root.lookup('f.txt')!.stat().nlink).toBe(2n),
  },
  {
    call: 'path_rename', needs: { old: [R.path_rename_source], new: [R.path_rename_target] },
    setup: (h) => ({ old: 3, new: openSub(h) }),
    run: (h, f) => {
      const a = h.put('f.txt');
      const b = h.put('moved.txt');
      return sys(h).path_rename(f.old, a.ptr, a.len, f.new, b.ptr, b.len);
    },
    after: (_h, _f, root) => {
      expect(root.lookup('f.txt')).toBeUndefined();
      expect((root.lookup('sub') as FsDir).lookup('moved.txt')?.filetype).toBe(FILETYPE.REGULAR_FILE);
    },
  },
  {
    call: 'path_readlink', needs: { dir: [R.path_readlink] },
    setup: (h) => {
      expect(symlink(h, 3, 'f.txt', 'ln')).toBe(ERRNO.SUCCESS);
      return { dir: 3 };
    },
    run: (h, f) => {
      const p = h.put('ln');
      const buf = h.alloc(32);
      const used = h.alloc(4);
      const rc = sys(h).path_readlink(f.dir, p.ptr, p.len, buf, 32, used);
      if (rc === 0) expect(h.text(buf, h.u32(used))).toBe('f.txt');
      return rc;
    },
  },
  {
    call: 'path_symlink', needs: { dir: [R.path_symlink] }, setup: dir,
    run: (h, f) => symlink(h, f.dir!, 'f.txt', 'ln'),
    after: (_h, _f, root) => expect(root.lookup('ln')?.filetype).toBe(FILETYPE.SYMBOLIC_LINK),
  },
  {
    call: 'path_remove_directory', needs: { dir: [R.path_remove_directory] }, setup: dir,
    run: (h, f) => { const p = h.put('sub'); return sys(h).path_remove_directory(f.dir, p.ptr, p.len); },
    after: (_h, _f, root) => expect(root.lookup('sub')).toBeUndefined(),
  },
  {
    call: 'path_unlink_file', needs: { dir: [R.path_unlink_file] }, setup: dir,
    run: (h, f) => { const p = h.put('f.txt'); return sys(h).path_unlink_file(f.dir, p.ptr, p.len); },
    after: (_h, _f, root) => expect(root.lookup('f.txt')).toBeUndefined(),
  },
  {
    call: 'poll_oneoff fd_read', needs: { file: [R.fd_read, R.poll_fd_readwrite] }, setup: file,
    run: (h, f) => pollFd(h, f.file!, EVENTTYPE.FD_READ),
  },
  {
    call: 'poll_oneoff fd_write', needs: { file: [R.fd_write, R.poll_fd_readwrite] }, setup: file,
    run: (h, f) => pollFd(h, f.file!, EVENTTYPE.FD_WRITE),
  },
  {
    call: 'pdspawn', needs: { file: [R.capsa_fexecve] }, setup: forModfd,
    run: (h, f) => { const pd = pdspawn(h, f.file!); return pd < 0 ? -pd : ERRNO.SUCCESS; },
  },
  {
    call: 'pdwait', needs: { pd: [R.capsa_pdwait] }, setup: proc,
    run: (h, f) => {
      const st = h.alloc(4);
      const rc = caps(h).pdwait!(f.pd!, st, 0);
      if (rc === ERRNO.SUCCESS) expect(h.u32(st)).toBe(exitStatus(3));
      return rc;
    },
  },
  {
    call: 'pdkill', needs: { pd: [R.capsa_pdkill] }, setup: proc,
    run: (h, f) => caps(h).pdkill!(f.pd!, 15),
  },
  {
    call: 'pdgetpid', needs: { pd: [R.capsa_pdgetpid] }, setup: proc,
    run: (h, f) => {
      const out = h.alloc(4);
      const rc = caps(h).pdgetpid!(f.pd!, out);
      if (rc === ERRNO.SUCCESS) expect(h.u32(out)).toBe(42);
      return rc;
    },
  },
  {
    call: 'poll_oneoff fd_read (process descriptor)', needs: { pd: [R.poll_fd_readwrite] }, setup: proc,
    run: (h, f) => pollFd(h, f.pd!, EVENTTYPE.FD_READ),
  },
  {
    call: 'fd_read (pipe)', needs: { r: [R.fd_read] }, setup: pipe,
    run: (h, f) => h.read(f.r!)[0],
  },
  {
    call: 'fd_write (pipe)', needs: { w: [R.fd_write] }, setup: pipe,
    run: (h, f) => h.write(f.w!, 'y'),
  },
  {
    call: 'poll_oneoff fd_read (pipe)', needs: { r: [R.fd_read, R.poll_fd_readwrite] }, setup: pipe,
    run: (h, f) => pollFd(h, f.r!, EVENTTYPE.FD_READ),
  },
  {
    call: 'poll_oneoff fd_write (pipe)', needs: { w: [R.fd_write, R.poll_fd_readwrite] }, setup: pipe,
    run: (h, f) => pollFd(h, f.w!, EVENTTYPE.FD_WRITE),
  },
];

interface Row { c: Case; role: string; right: bigint; label: string }

const ROWS: Row[] = CASES.flatMap((c) => Object.entries(c.needs).flatMap(([role, rights]) =>
  rights.map((right) => ({ c, role, right, label: `${c.call}: ${role} fd without ${rightName(right)}` }))));

describe('rights matrix', () => {
  it('covers every row of research/wasi.md §1.4 that names a right on an fd', () => {
    const calls = new Set(CASES.map((c) => c.call.split(/[ (]/)[0]));
    for (const name of ['fd_advise', 'fd_allocate', 'fd_datasync', 'fd_sync', 'fd_fdstat_set_flags', 'fd_filestat_get',
      'fd_filestat_set_size', 'fd_filestat_set_times', 'fd_read', 'fd_write', 'fd_pread', 'fd_pwrite', 'fd_seek', 'fd_tell',
      'fd_readdir', 'path_open', 'path_create_directory', 'path_filestat_get', 'path_filestat_set_times', 'path_link',
      'path_rename', 'path_readlink', 'path_symlink', 'path_remove_directory', 'path_unlink_file', 'poll_oneoff',
      'pdspawn', 'pdwait', 'pdkill', 'pdgetpid']) {
      expect(calls.has(name), name).toBe(true);
    }
    expect(ROWS.length).toBe(54);
  });

  for (const mount of MOUNTS) {
    describe(mount.name, () => {
      describe.each(CASES.map((c) => [c.call, c] as const))('%s', (_name, c) => {
        it('succeeds when each fd holds exactly the rights the call needs', () => {
          const { h, root } = mount.make();
          const fds = c.setup(h);
          for (const [role, rights] of Object.entries(c.needs)) {
            const fd = fds[role]!;
            const needed = rights.reduce((m, r) => m | r, 0n);
            const st = fdstat(h, fd);
            expect(st.base & needed, `setup: ${role} fd holds the needed rights`).toBe(needed);
            setRights(h, fd, needed, st.inheriting);
          }
          expect(c.run(h, fds)).toBe(ERRNO.SUCCESS);
          c.after?.(h, fds, root);
        });
      });

      it.each(ROWS.map((r) => [r.label, r] as const))('%s → ENOTCAPABLE', (_label, { c, role, right }) => {
        const { h, root } = mount.make();
        const fds = c.setup(h);
        const fd = fds[role]!;
        const st = fdstat(h, fd);
        expect(st.base & right, `setup: ${role} fd holds ${rightName(right)}`).toBe(right);
        setRights(h, fd, st.base & ~right, st.inheriting);
        const before = snapshot(root);
        expect(c.run(h, fds)).toBe(ERRNO.NOTCAPABLE);
        expect(snapshot(root)).toEqual(before);
      });
    });
  }
});

describe('fd_seek implies fd_tell (witx; Capsicum CAP_SEEK ⊇ CAP_SEEK_TELL)', () => {
  it('fd_tell and fd_seek(0, CUR) work with FD_SEEK alone, and fail with neither', () => {
    const h = harness({ preopens: [{ guest: '/m', memory: { 'f.txt': 'data' } }] });
    const fd = openFile(h);
    const [, st] = h.fdstat(fd);
    expect(sys(h).fd_fdstat_set_rights(fd, st.base & ~R.fd_tell, 0n)).toBe(ERRNO.SUCCESS);
    expect(sys(h).fd_tell(fd, h.alloc(8))).toBe(ERRNO.SUCCESS);
    expect(sys(h).fd_seek(fd, 0n, WHENCE.CUR, h.alloc(8))).toBe(ERRNO.SUCCESS);
    expect(sys(h).fd_fdstat_set_rights(fd, st.base & ~(R.fd_tell | R.fd_seek), 0n)).toBe(ERRNO.SUCCESS);
    expect(sys(h).fd_tell(fd, h.alloc(8))).toBe(ERRNO.NOTCAPABLE);
    expect(sys(h).fd_seek(fd, 0n, WHENCE.CUR, h.alloc(8))).toBe(ERRNO.NOTCAPABLE);
  });
});

describe('path_link and path_rename check each right on its own fd', () => {
  for (const mount of MOUNTS) {
    it(`${mount.name}: source rights on the new dir and target rights on the old dir are not enough`, () => {
      const { h, root } = mount.make();
      const sub = openSub(h);
      const inh3 = fdstat(h, 3).inheriting;
      const inhSub = fdstat(h, sub).inheriting;
      // Old dir (3) gets the *target* rights, new dir (sub) the *source* rights: the wrong way round.
      setRights(h, 3, R.path_link_target | R.path_rename_target, inh3);
      setRights(h, sub, R.path_link_source | R.path_rename_source, inhSub);
      const before = snapshot(root);
      const a = h.put('f.txt');
      const b = h.put('x.txt');
      expect(sys(h).path_link(3, 0, a.ptr, a.len, sub, b.ptr, b.len)).toBe(ERRNO.NOTCAPABLE);
      expect(sys(h).path_rename(3, a.ptr, a.len, sub, b.ptr, b.len)).toBe(ERRNO.NOTCAPABLE);
      expect(snapshot(root)).toEqual(before);
    });
  }
});

describe('path_open: base | inheriting must lie within the directory\'s inheriting rights', () => {
  const fileRights = RIGHTS_TABLE.filter((r) => (TYPE_RIGHTS.regularFile.base & r.bit) !== 0n);
  const dirOnly = RIGHTS_TABLE.filter((r) => (TYPE_RIGHTS.directory.base & r.bit) !== 0n);

  for (const mount of MOUNTS) {
    describe(mount.name, () => {
      it.each(fileRights.map((r) => [r.wasi, r.bit] as const))('requested base %s: granted when inheritable, ENOTCAPABLE when not', (_n, bit) => {
        const a = mount.make();
        const out = a.h.alloc(4);
        const p = a.h.put('f.txt');
        expect(sys(a.h).path_open(3, 0, p.ptr, p.len, 0, bit, 0n, 0, out)).toBe(ERRNO.SUCCESS);
        expect(fdstat(a.h, a.h.u32(out)).base).toBe(bit);

        const b = mount.make();
        const st = fdstat(b.h, 3);
        setRights(b.h, 3, st.base, st.inheriting & ~bit);
        const before = b.h.wasi.context.fds.size;
        expect(pathOpen(b.h, 3, 'f.txt', 0, bit, 0n)).toBe(ERRNO.NOTCAPABLE);
        expect(b.h.wasi.context.fds.size).toBe(before);
      });

      it.each(dirOnly.map((r) => [r.wasi, r.bit] as const))('requested inheriting %s: granted when inheritable, ENOTCAPABLE when not', (_n, bit) => {
        const a = mount.make();
        const out = a.h.alloc(4);
        const p = a.h.put('sub');
        expect(sys(a.h).path_open(3, 0, p.ptr, p.len, OFLAGS.DIRECTORY, 0n, bit, 0, out)).toBe(ERRNO.SUCCESS);
        expect(fdstat(a.h, a.h.u32(out)).inheriting).toBe(bit);

        const b = mount.make();
        const st = fdstat(b.h, 3);
        setRights(b.h, 3, st.base, st.inheriting & ~bit);
        expect(pathOpen(b.h, 3, 'sub', OFLAGS.DIRECTORY, 0n, bit)).toBe(ERRNO.NOTCAPABLE);
      });

      it('the check uses the directory\'s inheriting set, not its base', () => {
        const { h } = mount.make();
        const st = fdstat(h, 3);
        expect(st.base & R.path_open).toBe(R.path_open);
        setRights(h, 3, st.base, st.inheriting & ~R.path_open);
        // path_open is still in the dir's base (the lookup is allowed) but cannot be passed on.
        expect(pathOpen(h, 3, 'sub', OFLAGS.DIRECTORY, R.path_open, 0n)).toBe(ERRNO.NOTCAPABLE);
        expect(pathOpen(h, 3, 'sub', OFLAGS.DIRECTORY, R.fd_readdir, 0n)).toBe(ERRNO.SUCCESS);
      });

      it.each([
        ['DSYNC', FDFLAGS.DSYNC, R.fd_datasync],
        ['RSYNC', FDFLAGS.RSYNC, R.fd_sync],
        ['SYNC', FDFLAGS.SYNC, R.fd_sync],
      ] as const)('fdflags %s needs %s inheritable', (_n, flag, bit) => {
        const a = mount.make();
        expect(pathOpen(a.h, 3, 'f.txt', 0, R.fd_read, 0n, flag)).toBe(ERRNO.SUCCESS);

        const b = mount.make();
        const st = fdstat(b.h, 3);
        setRights(b.h, 3, st.base, st.inheriting & ~bit);
        expect(pathOpen(b.h, 3, 'f.txt', 0, R.fd_read, 0n, flag)).toBe(ERRNO.NOTCAPABLE);
        expect(pathOpen(b.h, 3, 'f.txt', 0, R.fd_read, 0n, 0)).toBe(ERRNO.SUCCESS);
      });
    });
  }
});

describe('ENOTCAPABLE comes before any other error', () => {
  for (const mount of MOUNTS) {
    describe(mount.name, () => {
      it('fd_seek and fd_tell on stdout (no seek rights) → ENOTCAPABLE, not ESPIPE', () => {
        const { h } = mount.make();
        expect(fdstat(h, 1).base & (R.fd_seek | R.fd_tell)).toBe(0n);
        expect(sys(h).fd_seek(1, 5n, WHENCE.SET, h.alloc(8))).toBe(ERRNO.NOTCAPABLE);
        expect(sys(h).fd_seek(1, 0n, WHENCE.CUR, h.alloc(8))).toBe(ERRNO.NOTCAPABLE);
        expect(sys(h).fd_tell(1, h.alloc(8))).toBe(ERRNO.NOTCAPABLE);
        expect(sys(h).fd_pwrite(1, h.iovecs([h.put('x')]), 1, 0n, h.alloc(4))).toBe(ERRNO.NOTCAPABLE);
      });

      it('path_open of a missing file via a dir lacking PATH_OPEN → ENOTCAPABLE, not ENOENT', () => {
        const { h } = mount.make();
        expect(pathOpen(h, 3, 'missing.txt', 0, R.fd_read, 0n)).toBe(ERRNO.NOENT);
        const st = fdstat(h, 3);
        setRights(h, 3, st.base & ~R.path_open, st.inheriting);
        expect(pathOpen(h, 3, 'missing.txt', 0, R.fd_read, 0n)).toBe(ERRNO.NOTCAPABLE);
      });

      it('path_open O_CREAT|O_EXCL of an existing file without PATH_CREATE_FILE → ENOTCAPABLE, not EEXIST', () => {
        const { h } = mount.make();
        expect(pathOpen(h, 3, 'f.txt', OFLAGS.CREAT | OFLAGS.EXCL, R.fd_read, 0n)).toBe(ERRNO.EXIST);
        const st = fdstat(h, 3);
        setRights(h, 3, st.base & ~R.path_create_file, st.inheriting);
        expect(pathOpen(h, 3, 'f.txt', OFLAGS.CREAT | OFLAGS.EXCL, R.fd_read, 0n)).toBe(ERRNO.NOTCAPABLE);
      });

      it('path_open with rights beyond the inheriting set of a missing file → ENOTCAPABLE, not ENOENT', () => {
        const { h } = mount.make();
        const st = fdstat(h, 3);
        setRights(h, 3, st.base, st.inheriting & ~R.fd_write);
        expect(pathOpen(h, 3, 'missing.txt', 0, R.fd_write, 0n)).toBe(ERRNO.NOTCAPABLE);
      });

      it('fd_read / fd_write on the preopen directory → ENOTCAPABLE, not EISDIR', () => {
        const { h } = mount.make();
        expect(fdstat(h, 3).base & (R.fd_read | R.fd_write)).toBe(0n);
        expect(h.read(3)[0]).toBe(ERRNO.NOTCAPABLE);
        expect(h.write(3, 'x')).toBe(ERRNO.NOTCAPABLE);
      });

      it('fd_write on stdin and fd_read on stdout → ENOTCAPABLE, not EBADF', () => {
        const { h } = mount.make();
        expect(h.write(0, 'x')).toBe(ERRNO.NOTCAPABLE);
        expect(h.read(1)[0]).toBe(ERRNO.NOTCAPABLE);
      });

      it('fd_readdir on a regular file → ENOTCAPABLE, not ENOTDIR', () => {
        const { h } = mount.make();
        const fd = openFile(h);
        expect(sys(h).fd_readdir(fd, h.alloc(64), 64, 0n, h.alloc(4))).toBe(ERRNO.NOTCAPABLE);
      });

      it('path_* on a regular file fd → ENOTCAPABLE, not ENOTDIR', () => {
        const { h } = mount.make();
        const fd = openFile(h);
        const p = h.put('x');
        expect(sys(h).path_create_directory(fd, p.ptr, p.len)).toBe(ERRNO.NOTCAPABLE);
        expect(pathOpen(h, fd, 'x', 0, 0n, 0n)).toBe(ERRNO.NOTCAPABLE);
      });

      it('path_unlink_file / path_remove_directory / path_create_directory without the right report 76 before ENOENT/EEXIST', () => {
        const { h } = mount.make();
        const st = fdstat(h, 3);
        setRights(h, 3, st.base & ~(R.path_unlink_file | R.path_remove_directory | R.path_create_directory), st.inheriting);
        const missing = h.put('missing');
        const sub = h.put('sub');
        expect(sys(h).path_unlink_file(3, missing.ptr, missing.len)).toBe(ERRNO.NOTCAPABLE);
        expect(sys(h).path_remove_directory(3, missing.ptr, missing.len)).toBe(ERRNO.NOTCAPABLE);
        expect(sys(h).path_create_directory(3, sub.ptr, sub.len)).toBe(ERRNO.NOTCAPABLE);
      });

      it('fd_filestat_set_times with invalid fstflags and no right → ENOTCAPABLE, not EINVAL', () => {
        const { h } = mount.make();
        const fd = openFile(h);
        const bad = FSTFLAGS.ATIM | FSTFLAGS.ATIM_NOW;
        expect(sys(h).fd_filestat_set_times(fd, 0n, 0n, bad)).toBe(ERRNO.INVAL);
        const st = fdstat(h, fd);
        setRights(h, fd, st.base & ~R.fd_filestat_set_times, st.inheriting);
        expect(sys(h).fd_filestat_set_times(fd, 0n, 0n, bad)).toBe(ERRNO.NOTCAPABLE);
      });

      it('a closed fd is EBADF, whatever rights the call needs', () => {
        const { h } = mount.make();
        expect(h.read(77)[0]).toBe(ERRNO.BADF);
        expect(sys(h).fd_seek(77, 0n, WHENCE.SET, h.alloc(8))).toBe(ERRNO.BADF);
        expect(pathOpen(h, 77, 'f.txt', 0, 0n, 0n)).toBe(ERRNO.BADF);
      });
    });
  }
});

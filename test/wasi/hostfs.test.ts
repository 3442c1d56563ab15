/**
 * Host-mount security: what a guest can and cannot do to the host tree behind a preopen.
 *
 * Each test builds BASE/mnt (the mount) next to BASE/outside (holding secret.txt), so every escape
 * has a real target, and every refusal is checked on the host disk as well as by its errno.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describe, it, expect, beforeEach, afterEach } from 'vitest';
import { ERRNO, FILETYPE, FSTFLAGS, LOOKUPFLAGS, OFLAGS } from '../../src/wasi/constants.js';
import { WasiError } from '../../src/wasi/errors.js';
import { createHostMount } from '../../src/wasi/fs/hostfs.js';
import type { FileIO, FsDir, FsFile, OpenMode } from '../../src/wasi/fs/types.js';
import { R, TYPE_RIGHTS } from '../../src/wasi/rights.js';
import { harness, type Harness } from '../helpers/harness.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const SECRET = 'SECRET host data\n';
const FOLLOW = LOOKUPFLAGS.SYMLINK_FOLLOW;
const DIR_OPTS = { oflags: OFLAGS.DIRECTORY, base: TYPE_RIGHTS.directory.base, inheriting: TYPE_RIGHTS.directory.inheriting };
const READ: OpenMode = { read: true, write: false, truncate: false, append: false };
const WRITE: OpenMode = { read: false, write: true, truncate: false, append: false };

let base: string;
let mnt: string;
let outside: string;

beforeEach(() => {
  base = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'capsa-hostfs-')));
  mnt = path.join(base, 'mnt');
  outside = path.join(base, 'outside');
  fs.mkdirSync(path.join(mnt, 'sub'), { recursive: true });
  fs.writeFileSync(path.join(mnt, 'file.txt'), 'inside\n');
  fs.writeFileSync(path.join(mnt, 'sub', 'file.txt'), 'inside sub\n');
  fs.mkdirSync(path.join(outside, 'dir'), { recursive: true });
  fs.writeFileSync(path.join(outside, 'secret.txt'), SECRET);
});

afterEach(() => {
  fs.rmSync(base, { recursive: true, force: true });
});

/** A snapshot of everything outside the mount, to show that nothing there changed. */
function outsideState(): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      const st = fs.lstatSync(p, { bigint: true });
      if (e.isDirectory()) { out[path.relative(base, p) + '/'] = `dir mtime=${st.mtimeNs}`; walk(p); }
      else out[path.relative(base, p)] = `${fs.readFileSync(p, 'utf8')} mtime=${st.mtimeNs} nlink=${st.nlink}`;
    }
  };
  walk(outside);
  // The parent of the mount too: nothing may appear next to it.
  out['(base)'] = fs.readdirSync(base).sort().join(',');
  return out;
}

function errnoOf(fn: () => unknown): number {
  try {
    fn();
    return ERRNO.SUCCESS;
  } catch (e) {
    if (e instanceof WasiError) return e.errno;
    throw e;
  }
}

function mountHarness(opts: { readonly?: boolean } = {}): Harness {
  return harness({ preopens: [{ guest: '/mnt', host: mnt, readonly: opts.readonly ?? false }] });
}

function stat(h: Harness, fd: number, p: string, flags: number) {
  const s = h.put(p);
  const buf = h.alloc(64);
  const errno = h.call.path_filestat_get!(fd, flags, s.ptr, s.len, buf);
  return { errno, filetype: h.bytes(buf + 16, 1)[0]!, size: h.u64(buf + 32), atim: h.u64(buf + 40), mtim: h.u64(buf + 48) };
}

function fdStat(h: Harness, fd: number) {
  const buf = h.alloc(64);
  const errno = h.call.fd_filestat_get!(fd, buf);
  return { errno, filetype: h.bytes(buf + 16, 1)[0]!, atim: h.u64(buf + 40), mtim: h.u64(buf + 48) };
}

function symlink(h: Harness, fd: number, target: string, p: string): number {
  const t = h.put(target);
  const l = h.put(p);
  return h.call.path_symlink!(t.ptr, t.len, fd, l.ptr, l.len);
}

function pathCall(h: Harness, name: string, fd: number, p: string): number {
  const s = h.put(p);
  return h.call[name]!(fd, s.ptr, s.len);
}

function twoPaths(h: Harness, name: 'path_rename', fd1: number, p1: string, fd2: number, p2: string): number {
  const a = h.put(p1);
  const b = h.put(p2);
  return h.call[name]!(fd1, a.ptr, a.len, fd2, b.ptr, b.len);
}

function link(h: Harness, fd1: number, flags: number, p1: string, fd2: number, p2: string): number {
  const a = h.put(p1);
  const b = h.put(p2);
  return h.call.path_link!(fd1, flags, a.ptr, a.len, fd2, b.ptr, b.len);
}

function readdirNames(h: Harness, fd: number): string[] {
  const buf = h.alloc(4096);
  const used = h.alloc(4);
  expect(h.call.fd_readdir!(fd, buf, 4096, 0n, used)).toBe(ERRNO.SUCCESS);
  const bytes = h.bytes(buf, h.u32(used));
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const names: string[] = [];
  for (let off = 0; off + 24 <= bytes.length;) {
    const len = dv.getUint32(off + 16, true);
    names.push(Buffer.from(bytes.subarray(off + 24, off + 24 + len)).toString());
    off += 24 + len;
  }
  return names;
}

describe('a host symlink inside the mount that points outside is never followed', () => {
  /** [link under mnt, target]; all of them lead out of the mount when the kernel follows them. */
  const OUT_LINKS = (): [string, string][] => [
    ['out-rel', '../outside/secret.txt'],
    ['out-abs', path.join(outside, 'secret.txt')],
    ['sub/out-up', '../../outside/secret.txt'],
    ['in-abs', path.join(mnt, 'file.txt')], // absolute, even though it points back inside
  ];
  const OUT_DIRS = (): [string, string][] => [
    ['out-dir', '../outside'],
    ['out-dir-abs', outside],
    ['sub/out-dir-up', '../../outside'],
  ];

  let h: Harness;
  beforeEach(() => {
    for (const [l, t] of [...OUT_LINKS(), ...OUT_DIRS()]) fs.symlinkSync(t, path.join(mnt, l));
    fs.symlinkSync('sub/file.txt', path.join(mnt, 'in-rel'));
    fs.symlinkSync('sub', path.join(mnt, 'in-dir'));
    h = mountHarness();
  });

  it('the fixtures do lead outside when the host kernel follows them', () => {
    expect(fs.readFileSync(path.join(mnt, 'out-rel'), 'utf8')).toBe(SECRET);
    expect(fs.readFileSync(path.join(mnt, 'out-abs'), 'utf8')).toBe(SECRET);
    expect(fs.readFileSync(path.join(mnt, 'sub', 'out-up'), 'utf8')).toBe(SECRET);
    expect(fs.readFileSync(path.join(mnt, 'out-dir', 'secret.txt'), 'utf8')).toBe(SECRET);
    expect(fs.readFileSync(path.join(mnt, 'sub', 'out-dir-up', 'secret.txt'), 'utf8')).toBe(SECRET);
  });

  it('contained host symlinks are followed (control)', () => {
    const [e1, fd1] = h.open(3, 'in-rel', { base: R.fd_read });
    expect(e1).toBe(ERRNO.SUCCESS);
    expect(h.read(fd1)).toEqual([ERRNO.SUCCESS, 'inside sub\n']);
    const [e2, fd2] = h.open(3, 'in-dir/file.txt', { base: R.fd_read });
    expect(e2).toBe(ERRNO.SUCCESS);
    expect(h.read(fd2)).toEqual([ERRNO.SUCCESS, 'inside sub\n']);
  });

  it('path_open with SYMLINK_FOLLOW is ENOTCAPABLE for each link, and reads nothing', () => {
    for (const [l] of OUT_LINKS()) {
      const [errno] = h.open(3, l, { base: R.fd_read, follow: true });
      expect(errno, l).toBe(ERRNO.NOTCAPABLE);
    }
  });

  it('path_filestat_get with SYMLINK_FOLLOW is ENOTCAPABLE; without, it describes the link only', () => {
    const secretSize = BigInt(SECRET.length);
    for (const [l, target] of [...OUT_LINKS(), ...OUT_DIRS()]) {
      expect(stat(h, 3, l, FOLLOW).errno, l).toBe(ERRNO.NOTCAPABLE);
      const lst = stat(h, 3, l, 0);
      expect(lst.errno, l).toBe(ERRNO.SUCCESS);
      expect(lst.filetype, l).toBe(FILETYPE.SYMBOLIC_LINK);
      expect(lst.size, l).toBe(BigInt(Buffer.byteLength(target)));
      expect(lst.size, l).not.toBe(secretSize);
    }
  });

  it('a link as an intermediate directory component is ENOTCAPABLE, for every call', () => {
    for (const [d] of OUT_DIRS()) {
      const p = `${d}/secret.txt`;
      expect(h.open(3, p, { base: R.fd_read, follow: true })[0], p).toBe(ERRNO.NOTCAPABLE);
      expect(h.open(3, p, { base: R.fd_read, follow: false })[0], p).toBe(ERRNO.NOTCAPABLE);
      expect(h.open(3, `${d}/`, DIR_OPTS)[0], p).toBe(ERRNO.NOTCAPABLE);
      expect(stat(h, 3, p, 0).errno, p).toBe(ERRNO.NOTCAPABLE);
      expect(h.open(3, `${d}/created.txt`, { oflags: OFLAGS.CREAT, base: R.fd_write })[0], p).toBe(ERRNO.NOTCAPABLE);
      expect(pathCall(h, 'path_create_directory', 3, `${d}/newdir`), p).toBe(ERRNO.NOTCAPABLE);
      expect(pathCall(h, 'path_unlink_file', 3, p), p).toBe(ERRNO.NOTCAPABLE);
      expect(symlink(h, 3, 'x', `${d}/newlink`), p).toBe(ERRNO.NOTCAPABLE);
      expect(twoPaths(h, 'path_rename', 3, p, 3, 'stolen'), p).toBe(ERRNO.NOTCAPABLE);
      expect(link(h, 3, 0, p, 3, 'stolen'), p).toBe(ERRNO.NOTCAPABLE);
    }
    expect(fs.existsSync(path.join(mnt, 'stolen'))).toBe(false);
    expect(fs.readdirSync(outside).sort()).toEqual(['dir', 'secret.txt']);
    expect(fs.readFileSync(path.join(outside, 'secret.txt'), 'utf8')).toBe(SECRET);
  });

  it('writes through a followed link are refused and the target is untouched', () => {
    const before = outsideState();
    const trunc = { oflags: OFLAGS.CREAT | OFLAGS.TRUNC, base: R.fd_write | R.fd_read, follow: true };
    expect(h.open(3, 'out-rel', trunc)[0]).toBe(ERRNO.NOTCAPABLE);
    expect(h.open(3, 'out-abs', trunc)[0]).toBe(ERRNO.NOTCAPABLE);
    // Not following: the link itself is there, so O_CREAT neither follows nor replaces it.
    expect(h.open(3, 'out-rel', { ...trunc, follow: false })[0]).toBe(ERRNO.LOOP);
    const t = h.put('out-rel');
    expect(h.call.path_filestat_set_times!(3, FOLLOW, t.ptr, t.len, 1n, 1n, FSTFLAGS.ATIM | FSTFLAGS.MTIM)).toBe(ERRNO.NOTCAPABLE);
    expect(link(h, 3, FOLLOW, 'out-rel', 3, 'stolen')).toBe(ERRNO.NOTCAPABLE);
    expect(fs.existsSync(path.join(mnt, 'stolen'))).toBe(false);
    expect(outsideState()).toEqual(before);
  });

  it('unlink and rename act on the link itself, never on its target', () => {
    const before = outsideState();
    expect(twoPaths(h, 'path_rename', 3, 'out-dir', 3, 'moved')).toBe(ERRNO.SUCCESS);
    expect(fs.readlinkSync(path.join(mnt, 'moved'))).toBe('../outside');
    expect(pathCall(h, 'path_unlink_file', 3, 'out-rel')).toBe(ERRNO.SUCCESS);
    expect(pathCall(h, 'path_unlink_file', 3, 'moved')).toBe(ERRNO.SUCCESS);
    expect(fs.existsSync(path.join(mnt, 'out-rel'))).toBe(false);
    expect(outsideState()).toEqual(before);
  });
});

describe('path_symlink on a host mount', () => {
  let h: Harness;
  beforeEach(() => { h = mountHarness(); });

  it.each([
    ['absolute target', '/etc/passwd', 'abs'],
    ['absolute target pointing inside the mount', '', 'abs-in'],
    ['../../x from the root', '../../x', 'up2'],
    ['../x from the root', '../x', 'up1'],
    ['.. from the root', '..', 'dotdot'],
    ['sub/../../x from the root', 'sub/../../x', 'subup2'],
    ['../../x from sub', '../../x', 'sub/up2'],
    ['../../outside/secret.txt from sub', '../../outside/secret.txt', 'sub/secret'],
  ])('%s is ENOTCAPABLE and nothing is created on disk', (_what, target, p) => {
    const t = target === '' ? path.join(mnt, 'file.txt') : target;
    expect(symlink(h, 3, t, p)).toBe(ERRNO.NOTCAPABLE);
    expect(fs.lstatSync(path.join(mnt, p), { throwIfNoEntry: false })).toBeUndefined();
  });

  it('the same refusals hold through a directory fd opened beneath the preopen', () => {
    const [e, sub] = h.open(3, 'sub', DIR_OPTS);
    expect(e).toBe(ERRNO.SUCCESS);
    expect(symlink(h, sub, '../../x', 'up2')).toBe(ERRNO.NOTCAPABLE);
    expect(symlink(h, sub, '/etc/passwd', 'abs')).toBe(ERRNO.NOTCAPABLE);
    expect(fs.readdirSync(path.join(mnt, 'sub'))).toEqual(['file.txt']);
  });

  it('contained targets are created: "sub/x", and "../x" from inside a subdirectory', () => {
    expect(symlink(h, 3, 'sub/file.txt', 'down')).toBe(ERRNO.SUCCESS);
    expect(fs.readlinkSync(path.join(mnt, 'down'))).toBe('sub/file.txt');
    expect(symlink(h, 3, '../file.txt', 'sub/up')).toBe(ERRNO.SUCCESS);
    expect(fs.readlinkSync(path.join(mnt, 'sub', 'up'))).toBe('../file.txt');
    const [e, sub] = h.open(3, 'sub', DIR_OPTS);
    expect(e).toBe(ERRNO.SUCCESS);
    expect(symlink(h, sub, '../file.txt', 'up-via-fd')).toBe(ERRNO.SUCCESS);
    expect(fs.readlinkSync(path.join(mnt, 'sub', 'up-via-fd'))).toBe('../file.txt');
    expect(symlink(h, 3, 'sub/..', 'self')).toBe(ERRNO.SUCCESS);
    expect(symlink(h, 3, 'not-there-yet', 'dangling')).toBe(ERRNO.SUCCESS);
    // And the guest can use them.
    const [e2, fd] = h.open(3, 'sub/up', { base: R.fd_read });
    expect(e2).toBe(ERRNO.SUCCESS);
    expect(h.read(fd)).toEqual([ERRNO.SUCCESS, 'inside\n']);
    const [e3, fd3] = h.open(3, 'self/down', { base: R.fd_read });
    expect(e3).toBe(ERRNO.SUCCESS);
    expect(h.read(fd3)).toEqual([ERRNO.SUCCESS, 'inside sub\n']);
  });
});

/**
 * docs/security.md rule 5: no link a guest makes resolves outside the mount. A target is followed
 * from where the link will live, through the links already there, so a chain of links that each
 * look contained cannot add up to an escape.
 */
describe('links a guest makes on a host mount resolve inside it (rule 5)', () => {
  let h: Harness;
  beforeEach(() => {
    h = mountHarness();
    fs.mkdirSync(path.join(mnt, 'dd1', 'dd2'), { recursive: true });
    // dd1/dd2/l -> ../.. is the mount's root: contained, and accepted.
    expect(symlink(h, 3, '../..', 'dd1/dd2/l')).toBe(ERRNO.SUCCESS);
    expect(fs.realpathSync(path.join(mnt, 'dd1', 'dd2', 'l'))).toBe(mnt);
  });
  /** Where a name under the mount leads when the host kernel follows it, or undefined. */
  const hostTarget = (name: string) => (fs.existsSync(path.join(mnt, name)) ? fs.realpathSync(path.join(mnt, name)) : undefined);

  it('path_symlink through an existing link: "dd1/dd2/l/../.." is ENOTCAPABLE and nothing is made', () => {
    expect(symlink(h, 3, 'dd1/dd2/l/../..', 'x')).toBe(ERRNO.NOTCAPABLE);
    expect(fs.lstatSync(path.join(mnt, 'x'), { throwIfNoEntry: false })).toBeUndefined();
    // Through a missing directory too: it may be made later, so it counts as one.
    expect(symlink(h, 3, 'dd1/dd2/l/later/../..', 'x2')).toBe(ERRNO.NOTCAPABLE);
    expect(symlink(h, 3, 'dd1/dd2/l/file.txt/../..', 'x3')).toBe(ERRNO.NOTCAPABLE);
    // From a directory fd below the root, measured from where it really is.
    const [e, dd2] = h.open(3, 'dd1/dd2', DIR_OPTS);
    expect(e).toBe(ERRNO.SUCCESS);
    expect(symlink(h, dd2, 'l/..', 'x4')).toBe(ERRNO.NOTCAPABLE);
    expect(fs.readdirSync(path.join(mnt, 'dd1', 'dd2'))).toEqual(['l']);
  });

  it('path_link of a symlink whose target leaves the mount from the new place is ENOTCAPABLE', () => {
    expect(link(h, 3, 0, 'dd1/dd2/l', 3, 'y')).toBe(ERRNO.NOTCAPABLE);
    expect(hostTarget('y')).toBeUndefined();
    expect(fs.lstatSync(path.join(mnt, 'y'), { throwIfNoEntry: false })).toBeUndefined();
    expect(fs.lstatSync(path.join(mnt, 'dd1', 'dd2', 'l')).nlink).toBe(1);
    // Nor may a guest copy a link the host made that leaves the mount, even beside it.
    fs.symlinkSync('../outside', path.join(mnt, 'out'));
    expect(link(h, 3, 0, 'out', 3, 'out2')).toBe(ERRNO.NOTCAPABLE);
  });

  it('path_rename of such a symlink to a shallower directory is ENOTCAPABLE and leaves it where it was', () => {
    expect(twoPaths(h, 'path_rename', 3, 'dd1/dd2/l', 3, 'moved')).toBe(ERRNO.NOTCAPABLE);
    expect(twoPaths(h, 'path_rename', 3, 'dd1/dd2/l', 3, 'dd1/moved')).toBe(ERRNO.NOTCAPABLE);
    expect(hostTarget('dd1/dd2/l')).toBe(mnt);
    expect(fs.readdirSync(mnt).sort()).toEqual(['dd1', 'file.txt', 'sub']);
  });

  it('control: links that stay inside are made, as wasi-testsuite makes them', () => {
    // Hard links to a contained symlink, a dangling one and a loop (wasi-testsuite path_link).
    expect(link(h, 3, 0, 'dd1/dd2/l', 3, 'dd1/dd2/l2')).toBe(ERRNO.SUCCESS);
    expect(hostTarget('dd1/dd2/l2')).toBe(mnt);
    expect(symlink(h, 3, 'target', 'dangling')).toBe(ERRNO.SUCCESS);
    expect(link(h, 3, 0, 'dangling', 3, 'dangling2')).toBe(ERRNO.SUCCESS);
    expect(symlink(h, 3, 'loop', 'loop')).toBe(ERRNO.SUCCESS);
    expect(link(h, 3, 0, 'loop', 3, 'loop2')).toBe(ERRNO.SUCCESS);
    // Through the link and back down, and a symlink moved to where it still resolves inside.
    expect(symlink(h, 3, 'dd1/dd2/l/sub/file.txt', 'via')).toBe(ERRNO.SUCCESS);
    expect(fs.readFileSync(path.join(mnt, 'via'), 'utf8')).toBe('inside sub\n');
    expect(symlink(h, 3, '../file.txt', 'sub/up')).toBe(ERRNO.SUCCESS);
    expect(twoPaths(h, 'path_rename', 3, 'sub/up', 3, 'dd1/up')).toBe(ERRNO.SUCCESS);
    expect(fs.readFileSync(path.join(mnt, 'dd1', 'up'), 'utf8')).toBe('inside\n');
    // A host-made link that leaves the mount may still be renamed in place (it resolves as before).
    fs.symlinkSync('../outside', path.join(mnt, 'out'));
    expect(twoPaths(h, 'path_rename', 3, 'out', 3, 'out2')).toBe(ERRNO.SUCCESS);
  });
});

describe('the mount is the directory that was opened', () => {
  it('replacing the mounted path by a symlink after mounting changes nothing for the guest', () => {
    const h = mountHarness();
    fs.renameSync(mnt, path.join(base, 'mnt-was'));
    fs.symlinkSync('outside', mnt);
    const [e, fd] = h.open(3, 'file.txt', { base: R.fd_read });
    expect(e).toBe(ERRNO.SUCCESS);
    expect(h.read(fd)).toEqual([ERRNO.SUCCESS, 'inside\n']);
    expect(h.open(3, 'secret.txt', { base: R.fd_read })[0]).toBe(ERRNO.NOENT);
    expect(pathCall(h, 'path_create_directory', 3, 'made')).toBe(ERRNO.SUCCESS);
    expect(fs.existsSync(path.join(base, 'mnt-was', 'made'))).toBe(true);
    expect(fs.existsSync(path.join(outside, 'made'))).toBe(false);
  });

  it('a path of /proc/self/fd/N mounts the directory behind descriptor N', () => {
    const fd = fs.openSync(mnt, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
    try {
      const m = createHostMount({ root: `/proc/self/fd/${fd}` });
      fs.renameSync(mnt, path.join(base, 'mnt-was'));
      fs.symlinkSync('outside', mnt);
      expect(m.lookup('file.txt')?.filetype).toBe(FILETYPE.REGULAR_FILE);
      expect(m.lookup('secret.txt')).toBeUndefined();
    } finally {
      fs.closeSync(fd);
    }
  });
});

describe('a read-only mount', () => {
  const snapshot = () => {
    const out: Record<string, string> = {};
    const walk = (d: string) => {
      for (const e of fs.readdirSync(d, { withFileTypes: true })) {
        const p = path.join(d, e.name);
        const st = fs.lstatSync(p, { bigint: true });
        out[path.relative(mnt, p)] = e.isFile() ? `${fs.readFileSync(p, 'utf8')}|${st.mtimeNs}|${st.ctimeNs}|${st.size}` : `${e.isDirectory() ? 'dir' : 'link'}|${st.mtimeNs}`;
        if (e.isDirectory()) walk(p);
      }
    };
    walk(mnt);
    return out;
  };

  it('readonly: true drops the write rights of the preopen (ENOTCAPABLE) and the disk is unchanged', () => {
    fs.symlinkSync('file.txt', path.join(mnt, 'ln'));
    const before = snapshot();
    const h = mountHarness({ readonly: true });
    const [, st] = h.fdstat(3);
    expect(st.base & (R.path_create_file | R.path_create_directory | R.path_unlink_file | R.path_symlink)).toBe(0n);
    expect(st.inheriting & (R.fd_write | R.fd_filestat_set_size)).toBe(0n);
    expect(h.open(3, 'new.txt', { oflags: OFLAGS.CREAT, base: R.fd_write, inheriting: 0n })[0]).toBe(ERRNO.NOTCAPABLE);
    expect(h.open(3, 'file.txt', { base: R.fd_write, inheriting: 0n })[0]).toBe(ERRNO.NOTCAPABLE);
    expect(h.open(3, 'file.txt', { oflags: OFLAGS.TRUNC, base: R.fd_read, inheriting: 0n })[0]).toBe(ERRNO.NOTCAPABLE);
    expect(pathCall(h, 'path_create_directory', 3, 'd')).toBe(ERRNO.NOTCAPABLE);
    expect(pathCall(h, 'path_unlink_file', 3, 'file.txt')).toBe(ERRNO.NOTCAPABLE);
    expect(pathCall(h, 'path_remove_directory', 3, 'sub')).toBe(ERRNO.NOTCAPABLE);
    expect(symlink(h, 3, 'file.txt', 'l2')).toBe(ERRNO.NOTCAPABLE);
    expect(twoPaths(h, 'path_rename', 3, 'file.txt', 3, 'moved')).toBe(ERRNO.NOTCAPABLE);
    expect(link(h, 3, 0, 'file.txt', 3, 'hard')).toBe(ERRNO.NOTCAPABLE);
    const t = h.put('file.txt');
    expect(h.call.path_filestat_set_times!(3, 0, t.ptr, t.len, 0n, 0n, FSTFLAGS.MTIM_NOW)).toBe(ERRNO.NOTCAPABLE);
    // Reading still works.
    const [e, fd] = h.open(3, 'file.txt', { base: R.fd_read, inheriting: 0n });
    expect(e).toBe(ERRNO.SUCCESS);
    expect(h.read(fd)).toEqual([ERRNO.SUCCESS, 'inside\n']);
    expect(snapshot()).toEqual(before);
  });

  it('EROFS backstop in the hostfs API: every change is refused even with no rights check in front', () => {
    fs.mkdirSync(path.join(mnt, 'empty'));
    fs.symlinkSync('file.txt', path.join(mnt, 'ln'));
    const before = snapshot();
    const m = createHostMount({ root: mnt, readonly: true });
    const file = m.lookup('file.txt') as FsFile;
    const sub = m.lookup('sub') as FsDir;
    const ln = m.lookup('ln')!;
    expect(file.filetype).toBe(FILETYPE.REGULAR_FILE);
    const errs: Record<string, number> = {
      createFile: errnoOf(() => m.createFile('new.txt', WRITE)),
      mkdir: errnoOf(() => m.mkdir('d')),
      symlink: errnoOf(() => m.symlink('l2', 'file.txt')),
      unlink: errnoOf(() => m.unlink('file.txt')),
      'unlink link': errnoOf(() => m.unlink('ln')),
      rmdir: errnoOf(() => m.rmdir('empty')),
      rename: errnoOf(() => m.rename('file.txt', sub, 'moved')),
      link: errnoOf(() => m.link('file.txt', sub, 'hard')),
      'dir setTimes': errnoOf(() => sub.setTimes({ mtim: 1n })),
      'file setTimes': errnoOf(() => file.setTimes({ atim: 1n, mtim: 1n })),
      'link setTimes': errnoOf(() => ln.setTimes({ mtim: 1n })),
      'open write': errnoOf(() => file.open(WRITE).close()),
      'open read+write': errnoOf(() => file.open({ ...READ, write: true }).close()),
      'open truncate': errnoOf(() => file.open({ ...READ, truncate: true }).close()),
      'open append': errnoOf(() => file.open({ ...WRITE, append: true }).close()),
    };
    for (const [what, errno] of Object.entries(errs)) expect(errno, what).toBe(ERRNO.ROFS);

    // A file opened for reading cannot be changed through its FileIO either.
    const io: FileIO = file.open(READ);
    try {
      expect(errnoOf(() => io.truncate(0)), 'truncate').toBe(ERRNO.ROFS);
      expect(errnoOf(() => io.setTimes({ mtim: 1n })), 'FileIO setTimes').toBe(ERRNO.ROFS);
      // The host fd is O_RDONLY: a write is refused by the host kernel too.
      expect(errnoOf(() => io.pwrite(new Uint8Array([120]), 0)), 'pwrite').toBe(ERRNO.BADF);
      const buf = new Uint8Array(64);
      expect(io.pread(buf, 0)).toBe(7);
    } finally {
      io.close();
    }
    expect(snapshot()).toEqual(before);
  });

  it('EROFS backstop end to end: a read-only mount behind a preopen with full rights', () => {
    const before = snapshot();
    // The rights table is fully open here; only the mount's own check stands in the way.
    const h = harness({ preopens: [{ guest: '/mnt', memory: createHostMount({ root: mnt, readonly: true }) }] });
    const [, st] = h.fdstat(3);
    expect(st.base & R.path_create_file).toBe(R.path_create_file);
    expect(st.inheriting & R.fd_write).toBe(R.fd_write);
    expect(h.open(3, 'new.txt', { oflags: OFLAGS.CREAT, base: R.fd_write })[0]).toBe(ERRNO.ROFS);
    expect(h.open(3, 'file.txt', { base: R.fd_write | R.fd_read })[0]).toBe(ERRNO.ROFS);
    expect(h.open(3, 'file.txt', { oflags: OFLAGS.TRUNC, base: R.fd_read })[0]).toBe(ERRNO.ROFS);
    expect(pathCall(h, 'path_create_directory', 3, 'd')).toBe(ERRNO.ROFS);
    expect(pathCall(h, 'path_unlink_file', 3, 'file.txt')).toBe(ERRNO.ROFS);
    expect(symlink(h, 3, 'file.txt', 'l2')).toBe(ERRNO.ROFS);
    expect(twoPaths(h, 'path_rename', 3, 'file.txt', 3, 'moved')).toBe(ERRNO.ROFS);
    const t = h.put('file.txt');
    expect(h.call.path_filestat_set_times!(3, 0, t.ptr, t.len, 0n, 5n, FSTFLAGS.MTIM)).toBe(ERRNO.ROFS);
    // A file opened for reading with every file right: the changes stop at the mount.
    const [e] = h.open(3, 'file.txt', { base: R.fd_read | R.fd_filestat_set_size | R.fd_filestat_set_times | R.fd_allocate });
    expect(e).toBe(ERRNO.ROFS); // fd_filestat_set_size/fd_allocate ask for a writable open
    const [e2, fd2] = h.open(3, 'file.txt', { base: R.fd_read | R.fd_filestat_set_times });
    expect(e2).toBe(ERRNO.SUCCESS);
    expect(h.call.fd_filestat_set_times!(fd2, 0n, 5n, FSTFLAGS.MTIM)).toBe(ERRNO.ROFS);
    expect(snapshot()).toEqual(before);
  });
});

/**
 * FIFO scenarios run in a child process: were capsa ever to open a FIFO without O_NONBLOCK, the
 * open would block the whole host thread, and only a separate process can be killed to report it.
 */
describe.runIf(fs.existsSync('/usr/bin/mkfifo') || fs.existsSync('/bin/mkfifo'))('a FIFO inside the mount', () => {
  function runChild(script: string): Record<string, number | string> {
    const file = path.join(base, 'fifo-child.ts');
    fs.writeFileSync(file, script);
    const r = spawnSync(process.execPath, ['--import', 'tsx', file], { cwd: REPO, encoding: 'utf8', timeout: 20_000, killSignal: 'SIGKILL' });
    if (r.status !== 0) throw new Error(`child ${r.signal === 'SIGKILL' ? 'hung and was killed' : `exited ${r.status}`}: ${r.stderr}`);
    return JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, number | string>;
  }
  const imports = `
    import { harness } from ${JSON.stringify(pathToFileURL(path.join(REPO, 'test/helpers/harness.ts')).href)};
    import { createHostMount } from ${JSON.stringify(pathToFileURL(path.join(REPO, 'src/wasi/fs/hostfs.ts')).href)};
    import { execFileSync } from 'node:child_process';
    import fs from 'node:fs';
    const mnt = ${JSON.stringify('MNT')};
  `;

  it('path_open on a FIFO fails cleanly, whatever the access, and never blocks the host', () => {
    execFileSync('mkfifo', [path.join(mnt, 'fifo')]);
    fs.symlinkSync('fifo', path.join(mnt, 'fifo-link'));
    const out = runChild(imports.replace('MNT', mnt) + `
      const h = harness({ preopens: [{ guest: '/mnt', host: mnt }] });
      const r = {};
      r.read = h.open(3, 'fifo', { base: 2n, inheriting: 0n })[0];
      r.write = h.open(3, 'fifo', { base: 64n, inheriting: 0n })[0];
      r.readwrite = h.open(3, 'fifo', { base: 66n, inheriting: 0n })[0];
      r.creat = h.open(3, 'fifo', { oflags: 1, base: 66n, inheriting: 0n })[0];
      r.trunc = h.open(3, 'fifo', { oflags: 8, base: 66n, inheriting: 0n })[0];
      r.viaLink = h.open(3, 'fifo-link', { base: 2n, inheriting: 0n })[0];
      r.directory = h.open(3, 'fifo', { oflags: 2, base: 0n, inheriting: 0n })[0];
      const p = h.put('fifo'); const buf = h.alloc(64);
      r.stat = h.call.path_filestat_get(3, 0, p.ptr, p.len, buf);
      r.statType = h.bytes(buf + 16, 1)[0];
      r.done = 'yes';
      console.log(JSON.stringify(r));
    `);
    expect(out['done']).toBe('yes');
    for (const k of ['read', 'write', 'readwrite', 'creat', 'trunc', 'viaLink']) {
      expect([ERRNO.NOTSUP, ERRNO.ACCES, ERRNO.NXIO], k).toContain(out[k]);
    }
    expect(out['directory']).toBe(ERRNO.NOTDIR);
    expect(out['stat']).toBe(ERRNO.SUCCESS);
    expect(out['statType']).not.toBe(FILETYPE.REGULAR_FILE);
    expect(out['statType']).not.toBe(FILETYPE.DIRECTORY);
    expect(fs.lstatSync(path.join(mnt, 'fifo')).isFIFO()).toBe(true);
  });

  it('a file swapped for a FIFO after lookup is refused at open without blocking (O_NONBLOCK + regular-file check)', () => {
    const out = runChild(imports.replace('MNT', mnt) + `
      const m = createHostMount({ root: mnt });
      const node = m.lookup('file.txt');
      const r = { filetype: node.filetype };
      fs.unlinkSync(mnt + '/file.txt');
      execFileSync('mkfifo', [mnt + '/file.txt']);
      const errnoOf = (fn) => { try { fn(); return 0; } catch (e) { return e.errno ?? String(e); } };
      r.read = errnoOf(() => node.open({ read: true, write: false, truncate: false, append: false }).close());
      r.write = errnoOf(() => node.open({ read: false, write: true, truncate: false, append: false }).close());
      r.readwrite = errnoOf(() => node.open({ read: true, write: true, truncate: false, append: false }).close());
      r.done = 'yes';
      console.log(JSON.stringify(r));
    `);
    expect(out['done']).toBe('yes');
    expect(out['filetype']).toBe(FILETYPE.REGULAR_FILE);
    for (const k of ['read', 'write', 'readwrite']) expect([ERRNO.ACCES, ERRNO.NXIO], k).toContain(out[k]);
  });
});

describe('a file replaced by a symlink', () => {
  it('a final-component symlink with follow=false is ELOOP, with follow it opens its (contained) target', () => {
    fs.symlinkSync('file.txt', path.join(mnt, 'ln'));
    const h = mountHarness();
    expect(h.open(3, 'ln', { base: R.fd_read, follow: false })[0]).toBe(ERRNO.LOOP);
    expect(h.open(3, 'ln', { base: R.fd_read, oflags: OFLAGS.CREAT, follow: false })[0]).toBe(ERRNO.LOOP);
    const [e, fd] = h.open(3, 'ln', { base: R.fd_read, follow: true });
    expect(e).toBe(ERRNO.SUCCESS);
    expect(h.read(fd)).toEqual([ERRNO.SUCCESS, 'inside\n']);
  });

  it('a symlink swapped in between lookup and open is refused (O_NOFOLLOW on the last component)', () => {
    const m = createHostMount({ root: mnt });
    const node = m.lookup('file.txt') as FsFile;
    const node2 = m.lookup('file.txt') as FsFile;
    expect(node.filetype).toBe(FILETYPE.REGULAR_FILE);
    fs.unlinkSync(path.join(mnt, 'file.txt'));
    fs.symlinkSync(path.join(outside, 'secret.txt'), path.join(mnt, 'file.txt'));
    expect(errnoOf(() => node.open(READ).close())).toBe(ERRNO.LOOP);
    // Even a swap to a contained target is refused: the open is of what was looked up, or nothing.
    fs.unlinkSync(path.join(mnt, 'file.txt'));
    fs.symlinkSync('sub/file.txt', path.join(mnt, 'file.txt'));
    expect(errnoOf(() => node2.open(READ).close())).toBe(ERRNO.LOOP);
    expect(fs.readFileSync(path.join(outside, 'secret.txt'), 'utf8')).toBe(SECRET);
  });
});

/**
 * HostDir keeps a host *path* (hostfs.ts `hostPath`), which the host kernel re-resolves, following
 * symlinks, on every later call; and HostDir.symlink checks a new link's target lexically against
 * that stale path. A guest with an ordinary read-write mount can make the lexical path of a held
 * directory fd deeper than its physical one (replace a directory on the way with a link to "."), have
 * the lexical check pass a "../../outside" link, and then swap a held directory fd's path onto it.
 */
describe('a held directory fd whose host path is re-pointed', () => {
  /** Guest-only steps: rw mount, dirs p/q/e; returns the fds Q (p/q) and E (p/q/e). */
  function deepen(h: Harness): { Q: number; E: number } {
    fs.mkdirSync(path.join(mnt, 'p', 'q', 'e'), { recursive: true });
    const [eq, Q] = h.open(3, 'p/q', DIR_OPTS);
    const [ee, E] = h.open(Q, 'e', DIR_OPTS);
    expect([eq, ee]).toEqual([ERRNO.SUCCESS, ERRNO.SUCCESS]);
    // Move q up to the root, and put a link to "." where p was: Q's path "p/q" still works on the
    // host (p/q = ./q) but is now one level deeper, lexically, than q really is.
    expect(twoPaths(h, 'path_rename', 3, 'p/q', 3, 'q')).toBe(ERRNO.SUCCESS);
    expect(pathCall(h, 'path_remove_directory', 3, 'p')).toBe(ERRNO.SUCCESS);
    expect(symlink(h, 3, '.', 'p')).toBe(ERRNO.SUCCESS);
    return { Q, E };
  }

  /** Every symlink under the mount whose host resolution leaves it. */
  function escapingLinks(): string[] {
    const out: string[] = [];
    const walk = (d: string) => {
      for (const e of fs.readdirSync(d, { withFileTypes: true })) {
        const p = path.join(d, e.name);
        if (e.isSymbolicLink()) {
          const t = path.resolve(d, fs.readlinkSync(p));
          if (t !== mnt && !t.startsWith(mnt + '/')) out.push(`${path.relative(mnt, p)} -> ${fs.readlinkSync(p)}`);
        } else if (e.isDirectory()) walk(p);
      }
    };
    walk(mnt);
    return out;
  }

  // A held directory fd stays the directory it opened (capsa reaches it through its descriptor),
  // so a guest that renames and re-links the path it walked cannot plant a link leaving the mount.
  it('path_symlink cannot be tricked into creating a host link that leaves the mount', () => {
    const h = mountHarness();
    const { Q } = deepen(h);
    expect(escapingLinks()).toEqual([]);
    expect(twoPaths(h, 'path_rename', Q, 'e', Q, 'e_old')).toBe(ERRNO.SUCCESS);
    expect(symlink(h, Q, '../../outside', 'e')).toBe(ERRNO.NOTCAPABLE);
    expect(escapingLinks()).toEqual([]);
  });

  // The consequence, set up by the host for determinism (the test above shows the guest can do it
  // alone): E's host path mnt/p/q/e now resolves to BASE/outside.
  function repointE(): { h: Harness; E: number } {
    const h = mountHarness();
    const { E } = deepen(h);
    fs.renameSync(path.join(mnt, 'q', 'e'), path.join(mnt, 'q', 'e_old'));
    fs.symlinkSync('../../outside', path.join(mnt, 'q', 'e'));
    return { h, E };
  }

  // Whatever the path E was opened by now names, E is the directory it opened: every call through it
  // acts on that directory (inside the mount, now called e_old) and never on BASE/outside.
  it.each([
    ['path_filestat_get leaks metadata', (h: Harness, E: number) => stat(h, E, 'secret.txt', 0).errno],
    ['fd_readdir lists the outside directory', (h: Harness, E: number) => (readdirNames(h, E).includes('secret.txt') ? ERRNO.SUCCESS : ERRNO.NOTCAPABLE)],
    ['path_create_directory creates outside', (h: Harness, E: number) => pathCall(h, 'path_create_directory', E, 'planted')],
    ['path_unlink_file deletes outside', (h: Harness, E: number) => pathCall(h, 'path_unlink_file', E, 'secret.txt')],
    ['path_rename pulls an outside file in', (h: Harness, E: number) => twoPaths(h, 'path_rename', E, 'secret.txt', 3, 'stolen')],
    ['path_link pulls an outside file in', (h: Harness, E: number) => link(h, E, 0, 'secret.txt', 3, 'stolen')],
    ['path_filestat_set_times changes outside', (h: Harness, E: number) => {
      const p = h.put('secret.txt');
      return h.call.path_filestat_set_times!(E, 0, p.ptr, p.len, 0n, 12345n, FSTFLAGS.MTIM);
    }],
  ])('%s', (_what, op) => {
    const before = outsideState();
    const { h, E } = repointE();
    const after = outsideState(); // the swap itself touched only the mount
    expect(after).toEqual(before);
    op(h, E);
    expect(outsideState()).toEqual(before);
    expect(fs.existsSync(path.join(mnt, 'stolen'))).toBe(false);
  });

  it('calls through a re-pointed directory fd act on the directory it opened', () => {
    const { h, E } = repointE();
    expect(pathCall(h, 'path_create_directory', E, 'planted')).toBe(ERRNO.SUCCESS);
    expect(fs.statSync(path.join(mnt, 'q', 'e_old', 'planted')).isDirectory()).toBe(true);
    expect(stat(h, E, 'secret.txt', 0).errno).toBe(ERRNO.NOENT);
  });

  // The two above combined, by the guest alone, on an ordinary read-write mount.
  it('end to end: a guest alone cannot read a file outside its mount', () => {
    const h = mountHarness();
    const { Q, E } = deepen(h);
    twoPaths(h, 'path_rename', Q, 'e', Q, 'e_old');
    symlink(h, Q, '../../outside', 'e');
    link(h, E, 0, 'secret.txt', 3, 'stolen');
    const [errno, fd] = h.open(3, 'stolen', { base: R.fd_read });
    const text = errno === ERRNO.SUCCESS ? h.read(fd)[1] : '';
    expect(text).not.toBe(SECRET);
    expect(fs.existsSync(path.join(mnt, 'stolen'))).toBe(false);
  });

  it('control: without the swap the same calls stay inside (E is the real p/q/e)', () => {
    const h = mountHarness();
    fs.mkdirSync(path.join(mnt, 'p', 'q', 'e'), { recursive: true });
    const [, E] = h.open(3, 'p/q/e', DIR_OPTS);
    expect(pathCall(h, 'path_create_directory', E, 'planted')).toBe(ERRNO.SUCCESS);
    expect(fs.statSync(path.join(mnt, 'p', 'q', 'e', 'planted')).isDirectory()).toBe(true);
    expect(stat(h, E, 'secret.txt', 0).errno).toBe(ERRNO.NOENT);
  });
});

describe('timestamps on a host mount', () => {
  it('mtim set to stat.mtim - 100ns reads back exactly, and the untouched atim stays exact', () => {
    const h = mountHarness();
    const [e, fd] = h.open(3, 'file.txt', { base: R.fd_filestat_get | R.fd_filestat_set_times });
    expect(e).toBe(ERRNO.SUCCESS);
    const st = fdStat(h, fd);
    expect(st.errno).toBe(ERRNO.SUCCESS);
    const want = st.mtim - 100n;
    expect(h.call.fd_filestat_set_times!(fd, 0n, want, FSTFLAGS.MTIM)).toBe(ERRNO.SUCCESS);
    const after = fdStat(h, fd);
    expect(after.mtim).toBe(want);
    expect(after.atim).toBe(st.atim);
    const viaPath = stat(h, 3, 'file.txt', 0);
    expect(viaPath.mtim).toBe(want);
    expect(viaPath.atim).toBe(st.atim);
    // The host really moved, not just a cache: libuv keeps microseconds (it truncates the rest)
    // of a double, so the host is within 2 µs of the exact value.
    const host = fs.statSync(path.join(mnt, 'file.txt'), { bigint: true });
    const diff = host.mtimeNs - want;
    expect(diff < 2000n && diff > -2000n).toBe(true);
  });

  it('arbitrary ns values set through path_filestat_set_times read back exactly (file and directory)', () => {
    const h = mountHarness();
    const atim = 1_234_567_890_123_456_789n;
    const mtim = 1_700_000_000_987_654_321n;
    for (const p of ['file.txt', 'sub']) {
      const s = h.put(p);
      expect(h.call.path_filestat_set_times!(3, 0, s.ptr, s.len, atim, mtim, FSTFLAGS.ATIM | FSTFLAGS.MTIM), p).toBe(ERRNO.SUCCESS);
      const st = stat(h, 3, p, 0);
      expect({ atim: st.atim, mtim: st.mtim }, p).toEqual({ atim, mtim });
    }
    const [, fd] = h.open(3, 'file.txt', { base: R.fd_filestat_get });
    const st = fdStat(h, fd);
    expect({ atim: st.atim, mtim: st.mtim }).toEqual({ atim, mtim });
    // Setting only atim keeps the exact mtim.
    const s = h.put('file.txt');
    expect(h.call.path_filestat_set_times!(3, 0, s.ptr, s.len, atim + 7n, 0n, FSTFLAGS.ATIM)).toBe(ERRNO.SUCCESS);
    const st2 = stat(h, 3, 'file.txt', 0);
    expect({ atim: st2.atim, mtim: st2.mtim }).toEqual({ atim: atim + 7n, mtim });
  });
});

describe('host descriptors', () => {
  it('lookups through nested directories close every descriptor they open', () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'capsa-fds-'));
    try {
      fs.mkdirSync(path.join(root, 'a', 'b', 'c'), { recursive: true });
      fs.writeFileSync(path.join(root, 'a', 'b', 'c', 'f'), 'x');
      const h = harness({ preopens: [{ guest: '/h', host: root }] });
      const open = () => fs.readdirSync('/proc/self/fd').length;
      const [e0, fd0] = h.open(3, 'a/b/c/f', { base: R.fd_read });
      expect(e0).toBe(ERRNO.SUCCESS);
      h.call.fd_close!(fd0);
      const before = open();
      for (let i = 0; i < 200; i++) {
        const [e, fd] = h.open(3, 'a/b/../b/c/f', { base: R.fd_read });
        expect(e).toBe(ERRNO.SUCCESS);
        expect(h.call.fd_close!(fd)).toBe(ERRNO.SUCCESS);
        const p = h.put('a/b/c/missing');
        expect(h.call.path_filestat_get!(3, 1, p.ptr, p.len, h.alloc(64))).toBe(ERRNO.NOENT);
      }
      // A directory held by a descriptor keeps one; closing the descriptor gives it back.
      const [ed, dfd] = h.open(3, 'a/b', { base: R.fd_readdir, inheriting: 0n });
      expect(ed).toBe(ERRNO.SUCCESS);
      expect(open()).toBe(before + 1);
      h.call.fd_close!(dfd);
      expect(open()).toBe(before);
      // The mount's root holds one too, for as long as a descriptor into the mount is open.
      const [es, sub] = h.open(3, 'a', { base: R.fd_readdir, inheriting: 0n });
      expect(es).toBe(ERRNO.SUCCESS);
      expect(h.call.fd_close!(3)).toBe(ERRNO.SUCCESS);
      expect(open()).toBe(before + 1);
      h.call.fd_close!(sub);
      expect(open()).toBe(before - 1);
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  });
});

import fs from 'node:fs';
import path from 'node:path';
import { ERRNO, FILETYPE } from '../constants.js';
import { fail, WasiError } from '../errors.js';
import { checkBeneath } from './resolve.js';
import type { DirEntry, FileIO, FsDir, FsFile, FsNode, FsSymlink, OpenMode, Stat, TimesUpdate } from './types.js';

const { O_RDONLY, O_WRONLY, O_RDWR, O_NOFOLLOW, O_NONBLOCK, O_TRUNC, O_CREAT, O_EXCL, O_DIRECTORY } = fs.constants;
// Linux's /proc/self/fd/N names the directory behind fd N whatever its path is now: Node's
// stand-in for openat(2). Elsewhere directories are reached by path (see docs/security.md), and
// so under a runtime that refuses /proc/self/fd (Deno's permission model throws on any access).
const PROC_FD = (() => {
  try {
    return process.platform === 'linux' && fs.existsSync('/proc/self/fd') ? '/proc/self/fd/' : undefined;
  } catch {
    return undefined;
  }
})();

/** Options for a host directory mount. */
export interface HostMountOptions {
  /** The host directory. It must exist and be a directory. */
  root: string;
  /** Refuse every change to the host tree, whatever the descriptor rights say. */
  readonly?: boolean;
}

/**
 * Node sets file times through doubles (libuv's uv_fs_utime), which lose the last few hundred
 * nanoseconds. The mount remembers the exact times a guest set and reports them for as long as the
 * host still holds the rounded value it stored, so a guest reads back what it wrote.
 */
class TimeOverlay {
  private readonly exact = new Map<string, { atim?: [bigint, bigint]; mtim?: [bigint, bigint] }>();
  /** `before` is what the guest saw; a time it did not set must also read back unchanged. */
  record(before: Stat, t: TimesUpdate, after: fs.BigIntStats): void {
    const key = `${before.dev}:${before.ino}`;
    this.exact.delete(key);
    this.exact.set(key, { atim: [t.atim ?? before.atim, after.atimeNs], mtim: [t.mtim ?? before.mtim, after.mtimeNs] });
    if (this.exact.size > 4096) this.exact.delete(this.exact.keys().next().value!);
  }
  apply(st: Stat): Stat {
    const e = this.exact.get(`${st.dev}:${st.ino}`);
    if (e?.atim && e.atim[1] === st.atim) st.atim = e.atim[0];
    if (e?.mtim && e.mtim[1] === st.mtim) st.mtim = e.mtim[0];
    return st;
  }
}

/**
 * One mount. Its root is held by a descriptor opened once, when it was mounted (on Linux), so the
 * mount stays the directory that was opened whatever its path names later; the descriptor is
 * closed when the last guest descriptor into the mount is.
 */
class HostMount {
  readonly times = new TimeOverlay();
  root!: HostDir;
  private holders = 0;
  constructor(readonly readonly: boolean) {}
  stat(s: fs.BigIntStats): Stat {
    return this.times.apply(toStat(s));
  }
  /** Throws EROFS for a read-only mount; rights normally stop the call first, this is the backstop. */
  writable(): void {
    if (this.readonly) fail(ERRNO.ROFS, 'the mount is read-only');
  }
  hold(): void {
    this.holders++;
  }
  release(): void {
    if (this.holders > 0 && --this.holders === 0) this.root.closeRoot();
  }
  /**
   * Refuses (ENOTCAPABLE) a symlink to `target` in `dir` that would resolve outside the mount
   * (docs/security.md, rule 5): the target is followed from where `dir` really is, below the root,
   * through the links already there, by the lookup that guest paths take.
   */
  checkLinkTarget(dir: HostDir, target: string, what: string): void {
    if (target.charCodeAt(0) === 47 /* / */) fail(ERRNO.NOTCAPABLE, `${what} ${target} is absolute`);
    const below = path.relative(this.root.realPath(), dir.realPath());
    if (below.split(path.sep)[0] === '..' || path.isAbsolute(below)) fail(ERRNO.NOTCAPABLE, `${what}: its directory is no longer inside the mount`);
    try {
      checkBeneath(this.root, below === '' ? target : `${below}/${target}`);
    } catch (e) {
      throw new WasiError(ERRNO.NOTCAPABLE, `${what} ${target} would resolve outside the mount (${(e as Error).message})`);
    }
  }
}

function toStat(s: fs.BigIntStats): Stat {
  return {
    dev: s.dev, ino: s.ino, filetype: filetypeOf(s), nlink: s.nlink, size: s.size,
    atim: s.atimeNs, mtim: s.mtimeNs, ctim: s.ctimeNs,
  };
}

function filetypeOf(s: fs.BigIntStats | fs.Stats | fs.Dirent): number {
  if (s.isFile()) return FILETYPE.REGULAR_FILE;
  if (s.isDirectory()) return FILETYPE.DIRECTORY;
  if (s.isSymbolicLink()) return FILETYPE.SYMBOLIC_LINK;
  if (s.isCharacterDevice()) return FILETYPE.CHARACTER_DEVICE;
  if (s.isBlockDevice()) return FILETYPE.BLOCK_DEVICE;
  if (s.isSocket()) return FILETYPE.SOCKET_STREAM;
  return FILETYPE.UNKNOWN;
}

/**
 * Converts a Node fs error into the WASI errno with the same name. Anything else (Node's ERR_*
 * argument errors, a TypeError) is a capsa bug, not an errno: it is rethrown for the host-error path.
 */
export function fsErrno(e: unknown): WasiError {
  if (e instanceof WasiError) return e;
  const code = (e as NodeJS.ErrnoException)?.code;
  if (typeof code !== 'string' || code.startsWith('ERR_')) throw e;
  const errno = code ? (ERRNO as Record<string, number>)[code.slice(1)] : undefined;
  return new WasiError(errno ?? ERRNO.IO, (e as Error)?.message);
}

function host<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    throw fsErrno(e);
  }
}

function timeArg(ns: bigint): number {
  return Number(ns) / 1e9;
}

abstract class HostNode implements FsNode {
  abstract readonly filetype: number;
  constructor(readonly mount: HostMount, readonly hostPath: string) {}
  stat(): Stat {
    return this.mount.stat(host(() => fs.lstatSync(this.hostPath, { bigint: true })));
  }
  setTimes(t: TimesUpdate): void {
    this.mount.writable();
    const s = this.stat();
    host(() => fs.lutimesSync(this.hostPath, timeArg(t.atim ?? s.atim), timeArg(t.mtim ?? s.mtim)));
    this.mount.times.record(s, t, host(() => fs.lstatSync(this.hostPath, { bigint: true })));
  }
}

class HostSymlink extends HostNode implements FsSymlink {
  readonly filetype = FILETYPE.SYMBOLIC_LINK;
  readlink(): string {
    return host(() => fs.readlinkSync(this.hostPath));
  }
}

class HostOther extends HostNode {
  constructor(mount: HostMount, hostPath: string, readonly filetype: number) { super(mount, hostPath); }
}

class HostFile extends HostNode implements FsFile {
  readonly filetype = FILETYPE.REGULAR_FILE;
  open(mode: OpenMode): FileIO {
    return openHostFile(this, mode, 0)!;
  }
}

function accessFlags(mode: OpenMode): number {
  return mode.write ? (mode.read ? O_RDWR : O_WRONLY) : O_RDONLY;
}

/**
 * Opens a file of the mount by its anchored path (see HostDir.base): the last component is opened
 * with O_NOFOLLOW (a symlink swapped in after the lookup is refused) and O_NONBLOCK (a FIFO cannot
 * hang the host), and the result must be a regular file.
 * `optional`: return undefined instead of failing when the name is not a regular file.
 */
function openHostFile(file: HostFile, mode: OpenMode, extra: number, optional = false): FileIO | undefined {
  if (mode.write || mode.truncate) file.mount.writable();
  // Never O_APPEND on the host: Linux then ignores pwrite offsets, and WASI lets a guest turn
  // append mode off again with fd_fdstat_set_flags. Appends are positioned writes at the end.
  const flags = accessFlags(mode) | (mode.truncate ? O_TRUNC : 0) | O_NOFOLLOW | O_NONBLOCK | extra;
  let fd: number;
  try {
    fd = fs.openSync(file.hostPath, flags, 0o644);
  } catch (e) {
    if (optional) return undefined;
    throw fsErrno(e);
  }
  let isFile: boolean;
  try {
    isFile = fs.fstatSync(fd).isFile();
  } catch (e) {
    fs.closeSync(fd);
    throw fsErrno(e);
  }
  if (!isFile) {
    fs.closeSync(fd);
    if (optional) return undefined;
    fail(ERRNO.ACCES, 'not a regular file');
  }
  return new HostFileIO(file, fd);
}

class HostFileIO implements FileIO {
  private closed = false;
  constructor(readonly node: HostFile, private readonly fd: number) {}
  pread(buf: Uint8Array, pos: number): number {
    try {
      return fs.readSync(this.fd, buf, 0, buf.length, pos);
    } catch (e) {
      throw fsErrno(e);
    }
  }
  pwrite(buf: Uint8Array, pos: number): number {
    try {
      return fs.writeSync(this.fd, buf, 0, buf.length, pos);
    } catch (e) {
      throw fsErrno(e);
    }
  }
  append(buf: Uint8Array): number {
    const end = this.size();
    return end + this.pwrite(buf, end);
  }
  size(): number {
    return host(() => fs.fstatSync(this.fd)).size;
  }
  truncate(size: number): void {
    this.node.mount.writable();
    host(() => fs.ftruncateSync(this.fd, size));
  }
  stat(): Stat {
    return this.node.mount.stat(host(() => fs.fstatSync(this.fd, { bigint: true })));
  }
  setTimes(t: TimesUpdate): void {
    this.node.mount.writable();
    const s = this.stat();
    host(() => fs.futimesSync(this.fd, timeArg(t.atim ?? s.atim), timeArg(t.mtim ?? s.mtim)));
    this.node.mount.times.record(s, t, host(() => fs.fstatSync(this.fd, { bigint: true })));
  }
  sync(): void {
    host(() => fs.fsyncSync(this.fd));
  }
  close(): void {
    if (this.closed) return;
    this.closed = true;
    fs.closeSync(this.fd);
  }
}

/**
 * A directory of the mount. The root holds the descriptor opened at mount time. Every other
 * directory holds an open descriptor once used, and its entries are reached through
 * /proc/self/fd/N/NAME: the kernel follows no symlink and no renamed path on the way, so a
 * directory the guest holds stays the directory it opened, as with openat(2).
 */
export class HostDir extends HostNode implements FsDir {
  readonly filetype = FILETYPE.DIRECTORY;
  private fd: number | undefined;
  private holders = 0;
  private closed = false;

  constructor(mount: HostMount, hostPath: string, private readonly parent?: HostDir, private readonly name?: string, rootFd?: number) {
    super(mount, hostPath);
    this.fd = rootFd;
  }
  get fsid(): object { return this.mount; }

  /** The path prefix under which the kernel finds this directory's entries. */
  base(): string {
    if (PROC_FD === undefined) return this.hostPath;
    if (this.parent === undefined) {
      // The root is never reopened by its path: that path may name another directory by now.
      if (this.closed) fail(ERRNO.BADF, 'the mount has been closed');
      return PROC_FD + this.fd;
    }
    if (this.fd === undefined) {
      const at = this.parent.base() + '/' + this.name!;
      this.fd = host(() => fs.openSync(at, O_RDONLY | O_DIRECTORY | O_NOFOLLOW));
    }
    return PROC_FD + this.fd;
  }
  /** Where the directory really is now (its descriptor's path), not the path walked to reach it. */
  realPath(): string {
    return PROC_FD === undefined ? this.hostPath : host(() => fs.readlinkSync(this.base()));
  }
  /** A descriptor refers to this directory: keep it (and the mount's root) open until release(). */
  hold(): void {
    this.holders++;
    this.mount.hold();
    this.base();
  }
  release(): void {
    if (this.holders > 0) {
      this.holders--;
      this.mount.release();
    }
    this.dispose();
  }
  /** The lookup that reached this directory is over: close it unless a descriptor holds it. */
  dispose(): void {
    if (this.parent !== undefined && this.holders === 0 && this.fd !== undefined) {
      fs.closeSync(this.fd);
      this.fd = undefined;
    }
  }
  /** The last descriptor into the mount is closed: so is the root's. */
  closeRoot(): void {
    if (this.fd !== undefined && !this.closed) fs.closeSync(this.fd);
    this.closed = true;
    this.fd = undefined;
  }

  override stat(): Stat {
    const b = this.base();
    return this.mount.stat(host(() => (this.fd !== undefined ? fs.fstatSync(this.fd, { bigint: true }) : fs.lstatSync(b, { bigint: true }))));
  }
  override setTimes(t: TimesUpdate): void {
    this.mount.writable();
    const s = this.stat();
    const b = this.base();
    host(() => fs.utimesSync(b, timeArg(t.atim ?? s.atim), timeArg(t.mtim ?? s.mtim)));
    this.mount.times.record(s, t, host(() => fs.statSync(b, { bigint: true })));
  }

  private child(name: string): string {
    return this.base() + '/' + name;
  }
  lookup(name: string): FsNode | undefined {
    const p = this.child(name);
    const s = host(() => fs.lstatSync(p, { throwIfNoEntry: false }));
    if (s === undefined) return undefined;
    if (s.isFile()) return new HostFile(this.mount, p);
    if (s.isDirectory()) return new HostDir(this.mount, this.hostPath + '/' + name, this, name);
    if (s.isSymbolicLink()) return new HostSymlink(this.mount, p);
    return new HostOther(this.mount, p, filetypeOf(s));
  }
  list(): DirEntry[] {
    const b = this.base();
    const entries = host(() => fs.readdirSync(b, { withFileTypes: true }));
    return entries.map((d) => {
      const s = host(() => fs.lstatSync(b + '/' + d.name, { bigint: true, throwIfNoEntry: false }));
      return { name: d.name, ino: s?.ino ?? 0n, filetype: filetypeOf(d) };
    });
  }
  createFile(name: string, mode: OpenMode): FileIO {
    this.mount.writable();
    return openHostFile(new HostFile(this.mount, this.child(name)), { ...mode, write: true }, O_CREAT | O_EXCL)!;
  }
  openFile(name: string, mode: OpenMode): FileIO | undefined {
    // Open and fstat in place of lstat, open and fstat: one system call fewer on the common path.
    return openHostFile(new HostFile(this.mount, this.child(name)), mode, 0, true);
  }
  mkdir(name: string): void {
    this.mount.writable();
    host(() => fs.mkdirSync(this.child(name)));
  }
  symlink(name: string, target: string): void {
    this.mount.writable();
    this.mount.checkLinkTarget(this, target, 'symlink target');
    host(() => fs.symlinkSync(target, this.child(name)));
  }
  /** The target of `name` when it is a symlink (it is about to be given a new place), else undefined. */
  private linkTarget(name: string): string | undefined {
    const p = this.child(name);
    return host(() => fs.lstatSync(p)).isSymbolicLink() ? host(() => fs.readlinkSync(p)) : undefined;
  }
  unlink(name: string): void {
    this.mount.writable();
    const p = this.child(name);
    const s = host(() => fs.lstatSync(p));
    if (s.isDirectory()) fail(ERRNO.ISDIR, `${name} is a directory`);
    host(() => fs.unlinkSync(p));
  }
  rmdir(name: string): void {
    this.mount.writable();
    host(() => fs.rmdirSync(this.child(name)));
  }
  rename(name: string, to: FsDir, toName: string): void {
    this.mount.writable();
    if (!(to instanceof HostDir) || to.mount !== this.mount) fail(ERRNO.XDEV);
    // A symlink moved to another directory is a link made there: its target is checked from its
    // new place. Renamed in place, it resolves as before.
    const target = this.linkTarget(name);
    if (target !== undefined && to.realPath() !== this.realPath()) this.mount.checkLinkTarget(to, target, `${name} is a symlink to`);
    host(() => fs.renameSync(this.child(name), to.child(toName)));
  }
  link(name: string, to: FsDir, toName: string): void {
    this.mount.writable();
    if (!(to instanceof HostDir) || to.mount !== this.mount) fail(ERRNO.XDEV);
    // A hard link to a symlink is a second symlink, at the new place: checked as one. The new
    // entry is checked again once made, in case the name was swapped between the two steps.
    const target = this.linkTarget(name);
    if (target !== undefined) this.mount.checkLinkTarget(to, target, `${name} is a symlink to`);
    const made = to.child(toName);
    host(() => fs.linkSync(this.child(name), made));
    const now = to.linkTarget(toName);
    if (now === undefined || now === target) return;
    try {
      this.mount.checkLinkTarget(to, now, `${name} is a symlink to`);
    } catch (e) {
      host(() => fs.unlinkSync(made));
      throw e;
    }
  }
}

/** A path naming descriptor `fd` that no rename or link can re-point, or undefined where there is none. */
export function descriptorPath(fd: number): string | undefined {
  return PROC_FD === undefined ? undefined : PROC_FD + fd;
}

/** openNoLinks met a symlink: `at` is its host path, `target` what it points to. */
export class SymlinkOnPath extends Error {
  constructor(readonly at: string, readonly target: string) {
    super(`${at} is a symbolic link (-> ${target})`);
  }
}

/**
 * Opens `names` below the host directory `from` one component at a time, each through the
 * descriptor of the one before (O_NOFOLLOW), so that no symlink is followed on the way and what
 * is opened is where the walk went; `from` itself is the caller's trusted path. Every component
 * but the last must be a directory; the last may be a regular file when `fileOk`. Returns the
 * descriptor (O_RDONLY). Throws SymlinkOnPath for a link, a Node error otherwise.
 */
export function openNoLinks(from: string, names: readonly string[], fileOk: boolean): number {
  let fd = fs.openSync(from, O_RDONLY | O_DIRECTORY);
  let at = from;
  try {
    names.forEach((name, i) => {
      if (name === '' || name === '.' || name === '..' || name.includes('/')) throw new Error(`${JSON.stringify(name)} is not a name`);
      const last = i === names.length - 1;
      const next = (PROC_FD === undefined ? at : PROC_FD + fd) + '/' + name;
      at = path.join(at, name);
      let opened: number;
      try {
        opened = fs.openSync(next, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | (last && fileOk ? 0 : O_DIRECTORY));
      } catch (e) {
        const st = fs.lstatSync(next, { throwIfNoEntry: false });
        if (st?.isSymbolicLink()) throw new SymlinkOnPath(at, fs.readlinkSync(next));
        throw e;
      }
      fs.closeSync(fd);
      fd = opened;
    });
    const st = fs.fstatSync(fd);
    if (!st.isDirectory() && !st.isFile()) throw Object.assign(new Error(`${at} is neither a regular file nor a directory`), { code: 'EINVAL' });
    return fd;
  } catch (e) {
    fs.closeSync(fd);
    throw e;
  }
}

/**
 * Mounts a host directory: opens it once and holds that descriptor, so what was opened is what the
 * guest gets (a path of /proc/self/fd/N, a descriptor the caller holds, mounts that directory).
 * Throws a plain Error (for the operator) when it is unusable.
 */
export function createHostMount(options: HostMountOptions): HostDir {
  let fd: number;
  try {
    fd = fs.openSync(options.root, O_RDONLY | O_DIRECTORY);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new Error(`Cannot mount ${options.root}: ${code === 'ENOENT' ? 'it does not exist' : code === 'ENOTDIR' ? 'it is not a directory' : (e as Error).message}`);
  }
  const mount = new HostMount(options.readonly ?? false);
  if (PROC_FD === undefined) {
    // No descriptor-relative paths: the root is reached by its real path (docs/security.md).
    fs.closeSync(fd);
    mount.root = new HostDir(mount, fs.realpathSync(options.root));
  } else {
    mount.root = new HostDir(mount, fs.readlinkSync(PROC_FD + fd), undefined, undefined, fd);
  }
  return mount.root;
}

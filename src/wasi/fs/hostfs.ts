import fs from 'node:fs';
import path from 'node:path';
import { ERRNO, FILETYPE } from '../constants.js';
import { fail, WasiError } from '../errors.js';
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

/** One mount: the real path of its root, fixed when it was mounted. */
class HostMount {
  readonly times = new TimeOverlay();
  constructor(readonly realRoot: string, readonly readonly: boolean) {}
  stat(s: fs.BigIntStats): Stat {
    return this.times.apply(toStat(s));
  }
  /** Throws EROFS for a read-only mount; rights normally stop the call first, this is the backstop. */
  writable(): void {
    if (this.readonly) fail(ERRNO.ROFS, 'the mount is read-only');
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

/** Converts a Node fs error into the WASI errno with the same name. */
export function fsErrno(e: unknown): WasiError {
  if (e instanceof WasiError) return e;
  const code = (e as NodeJS.ErrnoException)?.code;
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
 * A directory of the mount. The root is reached by its real path, fixed at mount time and outside
 * the guest's reach. Every other directory holds an open descriptor once used, and its entries are
 * reached through /proc/self/fd/N/NAME: the kernel follows no symlink and no renamed path on the
 * way, so a directory the guest holds stays the directory it opened, as with openat(2).
 */
export class HostDir extends HostNode implements FsDir {
  readonly filetype = FILETYPE.DIRECTORY;
  private fd: number | undefined;
  private holders = 0;

  constructor(mount: HostMount, hostPath: string, private readonly parent?: HostDir, private readonly name?: string) {
    super(mount, hostPath);
  }
  get fsid(): object { return this.mount; }

  /** The path prefix under which the kernel finds this directory's entries. */
  base(): string {
    const parent = this.parent;
    if (parent === undefined || PROC_FD === undefined) return this.hostPath;
    if (this.fd === undefined) {
      const at = parent.base() + '/' + this.name!;
      this.fd = host(() => fs.openSync(at, O_RDONLY | O_DIRECTORY | O_NOFOLLOW));
    }
    return PROC_FD + this.fd;
  }
  /** A descriptor refers to this directory: keep it open until release(). */
  hold(): void {
    this.holders++;
    this.base();
  }
  release(): void {
    if (this.holders > 0) this.holders--;
    this.dispose();
  }
  /** The lookup that reached this directory is over: close it unless a descriptor holds it. */
  dispose(): void {
    if (this.holders === 0 && this.fd !== undefined) {
      fs.closeSync(this.fd);
      this.fd = undefined;
    }
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
    // A link that points outside the mount is useless to the guest (lookups refuse it) and a trap
    // for host tools that later follow it, so it is never created. Where the directory really is
    // comes from its descriptor, not from the path the guest walked to reach it.
    const real = this.parent === undefined || PROC_FD === undefined ? this.hostPath : host(() => fs.readlinkSync(this.base()));
    const linkDir = path.relative(this.mount.realRoot, real);
    if (path.isAbsolute(target) || linkDir.split(path.sep)[0] === '..'
      || path.normalize(path.join(linkDir, target)).split(path.sep)[0] === '..') {
      fail(ERRNO.NOTCAPABLE, `symlink target ${target} would point outside the mount`);
    }
    host(() => fs.symlinkSync(target, this.child(name)));
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
    host(() => fs.renameSync(this.child(name), to.child(toName)));
  }
  link(name: string, to: FsDir, toName: string): void {
    this.mount.writable();
    if (!(to instanceof HostDir) || to.mount !== this.mount) fail(ERRNO.XDEV);
    host(() => fs.linkSync(this.child(name), to.child(toName)));
  }
}

/** Mounts a host directory; throws a plain Error (for the operator) when it is unusable. */
export function createHostMount(options: HostMountOptions): HostDir {
  let real: string;
  try {
    real = fs.realpathSync(options.root);
  } catch {
    throw new Error(`Cannot mount ${options.root}: it does not exist`);
  }
  if (!fs.statSync(real).isDirectory()) throw new Error(`Cannot mount ${options.root}: it is not a directory`);
  return new HostDir(new HostMount(real, options.readonly ?? false), real);
}

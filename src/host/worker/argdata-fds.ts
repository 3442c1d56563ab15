/** Turns a run's argdata tree into bytes: !file nodes are opened into the guest's fd table. */
import fs from 'node:fs';
import path from 'node:path';
import { encodeArgdata, type ArgdataValue } from '../../wasi/argdata.js';
import { createHostMount } from '../../wasi/fs/hostfs.js';
import type { WasiContext } from '../../wasi/context.js';
import { ERRNO, FILETYPE } from '../../wasi/constants.js';
import { WasiError } from '../../wasi/errors.js';
import { disposeResolved, resolve } from '../../wasi/fs/resolve.js';
import type { FsDir, FsFile, FsSymlink, Stat } from '../../wasi/fs/types.js';
import { DirHandle, FileHandle } from '../../wasi/handles.js';
import { formatRights, R, TYPE_RIGHTS } from '../../wasi/rights.js';
import type { ArgNode } from '../grants.js';

const READ = R.fd_read | R.fd_readdir;
const WRITE = R.fd_datasync | R.fd_write | R.fd_allocate | R.fd_filestat_set_size;

/** A preopened directory of the guest that contains `path`, and the rest of the path below it. */
function preopenOf(ctx: WasiContext, path: string): { fd: number; rest: string } | undefined {
  let best: { fd: number; rest: string; len: number } | undefined;
  for (const [fd, e] of ctx.fds.entries()) {
    const p = e.preopen;
    if (p === undefined || !(e.handle instanceof DirHandle)) continue;
    const prefix = p === '/' ? '/' : p + '/';
    if (path.startsWith(prefix) && (!best || p.length > best.len)) best = { fd, rest: path.slice(prefix.length), len: p.length };
  }
  return best;
}

/**
 * A cloudabi-run `!file`: a host file or directory, opened like a mount (O_NOFOLLOW, confined
 * lookups below a directory) and masked to what its kind can hold. The path comes from the host:
 * after a policy check, a held descriptor's /proc/self/fd/N (a directory), or that followed by
 * the file's name, so it is followed as given (applyPolicy walked it without links).
 */
function openHostPath(ctx: WasiContext, node: Extract<ArgNode, { type: 'file' }>): number {
  let st: fs.Stats;
  try {
    st = fs.statSync(node.path);
  } catch (e) {
    throw new Error(`argdata: cannot open ${node.path}: ${(e as Error).message}`);
  }
  if (st.isDirectory()) {
    const t = TYPE_RIGHTS.directory;
    return ctx.fds.insert({ handle: new DirHandle(createHostMount({ root: node.path })), base: node.rights.base & t.base, inheriting: node.rights.inheriting & t.inheriting, fdflags: 0 });
  }
  if (!st.isFile()) throw new Error(`argdata: ${node.path} is neither a regular file nor a directory`);
  const base = node.rights.base & TYPE_RIGHTS.regularFile.base;
  ctx.fds.ensureRoom();
  const dir = createHostMount({ root: path.dirname(node.path) });
  // Held only while the file is opened: the mount's root descriptor is closed with the release.
  dir.hold();
  try {
    const io = dir.openFile(path.basename(node.path), { read: (base & READ) !== 0n, write: (base & WRITE) !== 0n, truncate: false, append: false });
    if (!io) throw new Error(`argdata: ${node.path} is not a regular file`);
    return ctx.fds.insert({ handle: new FileHandle(io, false), base, inheriting: 0n, fdflags: 0 });
  } finally {
    dir.release();
  }
}

/**
 * Opens a file of the guest's own filesystem by guest path into its fd table, with `rights`
 * (which must lie within what the containing preopen passes on). Used for argdata's !file and
 * Casper's fileargs; throws an Error saying what is wrong.
 */
export function openGuestFile(ctx: WasiContext, guestPath: string, rights: bigint, what: string): number {
  const where = preopenOf(ctx, guestPath);
  if (!where || where.rest === '') throw new WasiError(ERRNO.NOTCAPABLE, `${what}: ${guestPath} is not inside a granted directory`);
  const entry = ctx.fds.peek(where.fd)!;
  const base = rights & TYPE_RIGHTS.regularFile.base;
  // A file reached through a directory holds at most what the directory passes on.
  const excess = base & ~entry.inheriting;
  if (excess) throw new WasiError(ERRNO.NOTCAPABLE, `${what}: ${guestPath} asks for ${formatRights(excess)}, which ${entry.preopen} does not pass on`);
  // EMFILE before the open: a file opened for a full table would never be closed.
  ctx.fds.ensureRoom();
  const r = resolve((entry.handle as DirHandle).dir, where.rest, true);
  try {
    if (!r.node) throw new WasiError(ERRNO.NOENT, `${what}: ${guestPath} does not exist`);
    if (r.node.filetype !== FILETYPE.REGULAR_FILE) throw new WasiError(ERRNO.ISDIR, `${what}: ${guestPath} is not a regular file`);
    const io = (r.node as FsFile).open({ read: (base & READ) !== 0n, write: (base & WRITE) !== 0n, truncate: false, append: false });
    return ctx.fds.insert({ handle: new FileHandle(io, false), base, inheriting: 0n, fdflags: 0 });
  } finally {
    disposeResolved(r);
  }
}

function openFile(ctx: WasiContext, node: Extract<ArgNode, { type: 'file' }>): number {
  return node.host ? openHostPath(ctx, node) : openGuestFile(ctx, node.path, node.rights.base, 'argdata');
}

/** Installs slot `slot` of the run's net memory as a socket descriptor with these rights. */
export type SocketInstaller = (slot: number, base: bigint, inheriting: bigint) => number;

function walk(ctx: WasiContext, n: ArgNode, sockets: SocketInstaller | undefined): ArgdataValue {
  switch (n.type) {
    case 'file': return { type: 'fd', fd: openFile(ctx, n) };
    case 'fd':
      if (!ctx.fds.peek(n.fd)) throw new Error(`argdata: fd ${n.fd} is not a descriptor the guest is granted`);
      return n;
    case 'socket': throw new Error('argdata: a socket node reached the worker unopened (capsa bug)');
    case 'netslot':
      if (!sockets) throw new Error(`argdata: the run has no sockets for slot ${n.slot}`);
      return { type: 'fd', fd: sockets(n.slot, n.rights?.base ?? 0n, n.rights?.inheriting ?? 0n) };
    case 'seq': return { type: 'seq', items: n.items.map((i) => walk(ctx, i, sockets)) };
    case 'map': return { type: 'map', entries: n.entries.map(([k, v]) => [walk(ctx, k, sockets), walk(ctx, v, sockets)]) };
    default: return n;
  }
}

/** Opens the tree's files (in tree order, after the preopens) and installs the encoded tree. */
export function installArgdata(ctx: WasiContext, tree: ArgNode, sockets?: SocketInstaller): void {
  ctx.argdata = encodeArgdata(walk(ctx, tree, sockets));
}

/** lstat of a guest path (no final symlink followed), for Casper's fileargs; a WasiError's errno on failure. */
export function lstatGuest(ctx: WasiContext, guestPath: string): Stat {
  const where = preopenOf(ctx, guestPath);
  if (!where) throw new WasiError(ERRNO.NOTCAPABLE, `${guestPath} is not inside a granted directory`);
  const dir = (ctx.fds.peek(where.fd)!.handle as DirHandle).dir;
  if (where.rest === '') return dir.stat();
  const r = resolve(dir, where.rest, false);
  try {
    if (!r.node) throw new WasiError(ERRNO.NOENT, `${guestPath} does not exist`);
    return r.node.stat();
  } finally {
    disposeResolved(r);
  }
}

/**
 * realpath(3) of a guest path: symlinks and ".." resolved the way lookups resolve them (never
 * above the preopen), as the absolute guest path. A WasiError's errno on failure.
 */
export function realpathGuest(ctx: WasiContext, guestPath: string): string {
  const where = preopenOf(ctx, guestPath);
  if (!where) throw new WasiError(ERRNO.NOTCAPABLE, `${guestPath} is not inside a granted directory`);
  const root = ctx.fds.peek(where.fd)!;
  const names: string[] = [];
  const dirs: FsDir[] = [(root.handle as DirHandle).dir];
  let parts = where.rest.split('/');
  let links = 0;
  try {
    for (let i = 0; i < parts.length; i++) {
      const name = parts[i]!;
      if (name === '' || name === '.') continue;
      if (name === '..') {
        if (names.length === 0) throw new WasiError(ERRNO.NOTCAPABLE, `${guestPath} leaves its directory`);
        names.pop();
        dirs.pop()?.dispose?.();
        continue;
      }
      const node = dirs[dirs.length - 1]!.lookup(name);
      if (!node) throw new WasiError(ERRNO.NOENT, `${guestPath} does not exist`);
      if (node.filetype === FILETYPE.SYMBOLIC_LINK) {
        if (++links > 40) throw new WasiError(ERRNO.LOOP, 'too many symlinks');
        const target = (node as FsSymlink).readlink();
        if (target.startsWith('/')) throw new WasiError(ERRNO.NOTCAPABLE, `symlink to ${target} is absolute`);
        parts = [...target.split('/'), ...parts.slice(i + 1)];
        i = -1;
        continue;
      }
      names.push(name);
      if (node.filetype === FILETYPE.DIRECTORY) dirs.push(node as FsDir);
      else if (parts.slice(i + 1).some((p) => p !== '' && p !== '.')) throw new WasiError(ERRNO.NOTDIR, `${name} is not a directory`);
    }
  } finally {
    for (const d of dirs.slice(1)) d.dispose?.();
  }
  const base = root.preopen === '/' ? '' : root.preopen!;
  return names.length ? `${base}/${names.join('/')}` : (root.preopen ?? '/');
}

import { ERRNO, FDFLAGS, FILETYPE, LIMITS, LOOKUPFLAGS, OFLAGS } from '../constants.js';
import { fail } from '../errors.js';
import { typeRights, type WasiContext } from '../context.js';
import type { FdEntry } from '../fdtable.js';
import { disposeResolved, resolve, type Resolved } from '../fs/resolve.js';
import type { FsDir, FsFile, OpenMode } from '../fs/types.js';
import { DirHandle, FileHandle, type Handle } from '../handles.js';
import { formatRights, R } from '../rights.js';
import { timesUpdate, writeFilestat } from './fd.js';

const READ_RIGHTS = R.fd_read | R.fd_readdir;
const WRITE_RIGHTS = R.fd_datasync | R.fd_write | R.fd_allocate | R.fd_filestat_set_size;

/** A single path component that needs no resolution: no "/", not "." or "..". */
function isPlainName(path: string): boolean {
  return path.length <= 255 && path !== '.' && path !== '..' && !path.includes('/') && !path.includes('\0');
}

/** path_open's general case: what a finished lookup names, opened as oflags and rights say. */
function openByLookup(r: Resolved, path: string, oflags: number, base: bigint, mode: OpenMode): Handle {
  if (r.node === undefined) {
    if (!(oflags & OFLAGS.CREAT)) fail(ERRNO.NOENT, `${path} does not exist`);
    if (oflags & OFLAGS.DIRECTORY) fail(ERRNO.INVAL, 'O_CREAT with O_DIRECTORY');
    if (r.mustBeDir) fail(ERRNO.ISDIR, `${path} names a directory`);
    return new FileHandle(r.dir.createFile(r.name, mode), mode.append);
  }
  const node = r.node;
  if ((oflags & OFLAGS.CREAT) && (oflags & OFLAGS.EXCL)) fail(ERRNO.EXIST, `${path} exists`);
  if (node.filetype === FILETYPE.SYMBOLIC_LINK) fail(ERRNO.LOOP, `${path} is a symlink and the lookup does not follow it`);
  if (node.filetype === FILETYPE.DIRECTORY) {
    if (mode.write || mode.truncate || (base & R.fd_write)) fail(ERRNO.ISDIR, `${path} is a directory`);
    return new DirHandle(node as FsDir);
  }
  if (oflags & OFLAGS.DIRECTORY) fail(ERRNO.NOTDIR, `${path} is not a directory`);
  if (node.filetype !== FILETYPE.REGULAR_FILE) fail(ERRNO.NOTSUP, `${path} is neither a file nor a directory`);
  return new FileHandle((node as FsFile).open(mode), mode.append);
}

/** The path_* calls: every lookup starts at a directory fd and stays beneath it. */
export function pathCalls(ctx: WasiContext) {
  const { mem, fds } = ctx;

  const readPath = (ptr: number, len: number): string => {
    if ((len >>> 0) > LIMITS.path) fail(ERRNO.NAMETOOLONG, `path of ${len >>> 0} bytes exceeds ${LIMITS.path}`);
    const path = mem.sync().string(ptr, len);
    // No POSIX path holds a NUL; a symlink target is never resolved, so it is checked here for all.
    if (path.includes('\0')) fail(ERRNO.INVAL, 'path contains a NUL byte');
    return path;
  };

  /** The directory behind `fd`, which must hold `needed`. */
  const dirOf = (fd: number, needed: bigint, call: string, path: string, auditAllowed = true): { entry: FdEntry; dir: FsDir } => {
    const entry = fds.get(fd, needed, call, path, auditAllowed);
    if (!(entry.handle instanceof DirHandle)) return fail(ERRNO.NOTDIR, `fd ${fd} is not a directory`);
    return { entry, dir: entry.handle.dir };
  };

  // Lookups of the current call; what they reached is disposed when the call ends (endLookups).
  const reached: Resolved[] = [];
  const endLookups = (): void => {
    while (reached.length) disposeResolved(reached.pop()!);
  };

  /** Runs a lookup, recording an escape attempt as a denied decision. */
  const lookup = (call: string, fd: number, dir: FsDir, path: string, follow: boolean, literalLast = false) => {
    try {
      const r = resolve(dir, path, follow, literalLast);
      reached.push(r);
      return r;
    } catch (e) {
      if ((e as { errno?: number }).errno === ERRNO.NOTCAPABLE) {
        fds.deny({ call, fd, path, rightsNeeded: 0n, rightsHeld: 0n, errno: ERRNO.NOTCAPABLE, message: `Cannot ${call} ${path}: ${(e as Error).message}` });
      }
      throw e;
    }
  };

  return {
    path_open(dirfd: number, dirflags: number, pathPtr: number, pathLen: number, oflags: number,
      rightsBase: bigint, rightsInheriting: bigint, fdflags: number, fdOut: number): number {
      const path = readPath(pathPtr, pathLen);
      mem.check(fdOut >>> 0, 4);
      if (oflags & ~(OFLAGS.CREAT | OFLAGS.DIRECTORY | OFLAGS.EXCL | OFLAGS.TRUNC)) fail(ERRNO.INVAL, `unknown oflags ${oflags}`);
      if (fdflags & ~(FDFLAGS.APPEND | FDFLAGS.DSYNC | FDFLAGS.NONBLOCK | FDFLAGS.RSYNC | FDFLAGS.SYNC)) fail(ERRNO.INVAL, `unknown fdflags ${fdflags}`);
      let needed = R.path_open;
      if (oflags & OFLAGS.CREAT) needed |= R.path_create_file;
      if (oflags & OFLAGS.TRUNC) needed |= R.path_filestat_set_size;
      // Recorded once the open is done, with the descriptor it made (what `capsa learn` follows).
      const { entry, dir } = dirOf(dirfd, needed, 'path_open', path, false);

      // wasmtime PR #618's rule: the new fd's rights must lie within the directory's inheriting rights.
      const base = BigInt.asUintN(64, rightsBase);
      const inheriting = BigInt.asUintN(64, rightsInheriting);
      let wanted = base | inheriting;
      if (fdflags & FDFLAGS.DSYNC) wanted |= R.fd_datasync;
      if (fdflags & (FDFLAGS.RSYNC | FDFLAGS.SYNC)) wanted |= R.fd_sync;
      if (wanted & ~entry.inheriting) {
        fds.deny({
          call: 'path_open', fd: dirfd, path, rightsNeeded: wanted, rightsHeld: entry.inheriting, errno: ERRNO.NOTCAPABLE,
          message: `Cannot open ${path}: ${formatRights(wanted & ~entry.inheriting)} not inheritable from fd ${dirfd} (inheritable: ${formatRights(entry.inheriting)})`,
        });
      }

      const mode: OpenMode = {
        read: (base & READ_RIGHTS) !== 0n,
        write: (base & WRITE_RIGHTS) !== 0n,
        truncate: (oflags & OFLAGS.TRUNC) !== 0,
        append: (fdflags & FDFLAGS.APPEND) !== 0,
      };
      let opened: { fd: number; rights: bigint } | undefined;
      try {
        // EMFILE before the open, so that a refused open has created or truncated nothing.
        fds.ensureRoom();
        // A plain name of an existing regular file opens in one step where lookups are costly.
        const io = dir.openFile !== undefined && isPlainName(path) && !(oflags & (OFLAGS.EXCL | OFLAGS.DIRECTORY))
          ? dir.openFile(path, mode) : undefined;
        const handle = io !== undefined ? new FileHandle(io, mode.append)
          : openByLookup(lookup('path_open', dirfd, dir, path, (dirflags & LOOKUPFLAGS.SYMLINK_FOLLOW) !== 0), path, oflags, base, mode);
        const max = typeRights(handle.filetype);
        let fd: number;
        try {
          fd = fds.insert({ handle, base: base & max.base, inheriting: inheriting & max.inheriting, fdflags: fdflags & ~FDFLAGS.APPEND });
        } catch (e) {
          handle.close();
          throw e;
        }
        mem.setU32(fdOut, fd);
        opened = { fd, rights: wanted };
        return ERRNO.SUCCESS;
      } finally {
        endLookups();
        fds.allowed({ call: 'path_open', fd: dirfd, path, rightsNeeded: needed, rightsHeld: entry.base, errno: 0, opened });
      }
    },

    path_filestat_get(fd: number, flags: number, pathPtr: number, pathLen: number, buf: number): number {
      const path = readPath(pathPtr, pathLen);
      mem.check(buf >>> 0, 64);
      const { dir } = dirOf(fd, R.path_filestat_get, 'path_filestat_get', path);
      try {
        const r = lookup('path_filestat_get', fd, dir, path, (flags & LOOKUPFLAGS.SYMLINK_FOLLOW) !== 0);
        if (r.node === undefined) fail(ERRNO.NOENT, `${path} does not exist`);
        writeFilestat(mem, buf, r.node.stat());
        return ERRNO.SUCCESS;
      } finally {
        endLookups();
      }
    },

    path_filestat_set_times(fd: number, flags: number, pathPtr: number, pathLen: number, atim: bigint, mtim: bigint, fst: number): number {
      const path = readPath(pathPtr, pathLen);
      const { dir } = dirOf(fd, R.path_filestat_set_times, 'path_filestat_set_times', path);
      const t = timesUpdate(atim, mtim, fst);
      try {
        const r = lookup('path_filestat_set_times', fd, dir, path, (flags & LOOKUPFLAGS.SYMLINK_FOLLOW) !== 0);
        if (r.node === undefined) fail(ERRNO.NOENT, `${path} does not exist`);
        r.node.setTimes(t);
        return ERRNO.SUCCESS;
      } finally {
        endLookups();
      }
    },

    path_create_directory(fd: number, pathPtr: number, pathLen: number): number {
      const path = readPath(pathPtr, pathLen);
      const { dir } = dirOf(fd, R.path_create_directory, 'path_create_directory', path);
      try {
        const r = lookup('path_create_directory', fd, dir, path, false, true);
        if (r.node !== undefined) fail(ERRNO.EXIST, `${path} exists`);
        r.dir.mkdir(r.name);
        return ERRNO.SUCCESS;
      } finally {
        endLookups();
      }
    },

    path_remove_directory(fd: number, pathPtr: number, pathLen: number): number {
      const path = readPath(pathPtr, pathLen);
      const { dir } = dirOf(fd, R.path_remove_directory, 'path_remove_directory', path);
      try {
        const r = lookup('path_remove_directory', fd, dir, path, false, true);
        if (r.node === undefined) fail(ERRNO.NOENT, `${path} does not exist`);
        if (r.name === '.') fail(ERRNO.INVAL, 'cannot remove "."');
        if (r.node.filetype !== FILETYPE.DIRECTORY) fail(ERRNO.NOTDIR, `${path} is not a directory`);
        r.dir.rmdir(r.name);
        return ERRNO.SUCCESS;
      } finally {
        endLookups();
      }
    },

    path_unlink_file(fd: number, pathPtr: number, pathLen: number): number {
      const path = readPath(pathPtr, pathLen);
      const { dir } = dirOf(fd, R.path_unlink_file, 'path_unlink_file', path);
      try {
        const r = lookup('path_unlink_file', fd, dir, path, false, true);
        if (r.node === undefined) fail(ERRNO.NOENT, `${path} does not exist`);
        if (r.node.filetype === FILETYPE.DIRECTORY) fail(ERRNO.ISDIR, `${path} is a directory`);
        if (r.mustBeDir) fail(ERRNO.NOTDIR, `${path} is not a directory`);
        r.dir.unlink(r.name);
        return ERRNO.SUCCESS;
      } finally {
        endLookups();
      }
    },

    path_readlink(fd: number, pathPtr: number, pathLen: number, buf: number, bufLen: number, bufused: number): number {
      const path = readPath(pathPtr, pathLen);
      mem.check(bufused >>> 0, 4);
      const out = mem.bytes(buf, bufLen);
      const { dir } = dirOf(fd, R.path_readlink, 'path_readlink', path);
      try {
        const r = lookup('path_readlink', fd, dir, path, false, true);
        if (r.node === undefined) fail(ERRNO.NOENT, `${path} does not exist`);
        if (r.node.filetype !== FILETYPE.SYMBOLIC_LINK) fail(ERRNO.INVAL, `${path} is not a symlink`);
        const target = Buffer.from((r.node as unknown as { readlink(): string }).readlink());
        const n = Math.min(target.length, out.length);
        out.set(target.subarray(0, n));
        mem.setU32(bufused, n);
        return ERRNO.SUCCESS;
      } finally {
        endLookups();
      }
    },

    path_symlink(oldPtr: number, oldLen: number, fd: number, newPtr: number, newLen: number): number {
      const target = readPath(oldPtr, oldLen);
      const path = readPath(newPtr, newLen);
      const { dir } = dirOf(fd, R.path_symlink, 'path_symlink', path);
      try {
        const r = lookup('path_symlink', fd, dir, path, false, true);
        if (r.node !== undefined) fail(ERRNO.EXIST, `${path} exists`);
        if (r.mustBeDir) fail(ERRNO.NOENT, `${path} ends in "/"`);
        if (target.length === 0) fail(ERRNO.NOENT, 'empty symlink target');
        r.dir.symlink(r.name, target);
        return ERRNO.SUCCESS;
      } finally {
        endLookups();
      }
    },

    path_link(oldFd: number, oldFlags: number, oldPtr: number, oldLen: number, newFd: number, newPtr: number, newLen: number): number {
      const oldPath = readPath(oldPtr, oldLen);
      const newPath = readPath(newPtr, newLen);
      const src = dirOf(oldFd, R.path_link_source, 'path_link', oldPath);
      const dst = dirOf(newFd, R.path_link_target, 'path_link', newPath);
      try {
        const from = lookup('path_link', oldFd, src.dir, oldPath, (oldFlags & LOOKUPFLAGS.SYMLINK_FOLLOW) !== 0, (oldFlags & LOOKUPFLAGS.SYMLINK_FOLLOW) === 0);
        if (from.node === undefined) fail(ERRNO.NOENT, `${oldPath} does not exist`);
        if (from.node.filetype === FILETYPE.DIRECTORY) fail(ERRNO.PERM, `${oldPath} is a directory`);
        if (from.mustBeDir) fail(ERRNO.NOTDIR, `${oldPath} is not a directory`);
        const to = lookup('path_link', newFd, dst.dir, newPath, false, true);
        if (to.node !== undefined) fail(ERRNO.EXIST, `${newPath} exists`);
        if (to.mustBeDir) fail(ERRNO.NOENT, `${newPath} ends in "/"`);
        from.dir.link(from.name, to.dir, to.name);
        return ERRNO.SUCCESS;
      } finally {
        endLookups();
      }
    },

    path_rename(oldFd: number, oldPtr: number, oldLen: number, newFd: number, newPtr: number, newLen: number): number {
      const oldPath = readPath(oldPtr, oldLen);
      const newPath = readPath(newPtr, newLen);
      const src = dirOf(oldFd, R.path_rename_source, 'path_rename', oldPath);
      const dst = dirOf(newFd, R.path_rename_target, 'path_rename', newPath);
      try {
        const from = lookup('path_rename', oldFd, src.dir, oldPath, false, true);
        if (from.node === undefined) fail(ERRNO.NOENT, `${oldPath} does not exist`);
        const to = lookup('path_rename', newFd, dst.dir, newPath, false, true);
        if (from.name === '.' || to.name === '.') fail(ERRNO.BUSY, 'cannot rename "."');
        const isDir = from.node.filetype === FILETYPE.DIRECTORY;
        if ((from.mustBeDir || to.mustBeDir) && !isDir) fail(ERRNO.NOTDIR, `${oldPath} is not a directory`);
        if (to.node !== undefined && to.mustBeDir && to.node.filetype !== FILETYPE.DIRECTORY) fail(ERRNO.NOTDIR);
        from.dir.rename(from.name, to.dir, to.name);
        return ERRNO.SUCCESS;
      } finally {
        endLookups();
      }
    },
  };
}


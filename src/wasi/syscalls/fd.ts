import { ADVICE_MAX, ERRNO, FDFLAGS, FILETYPE, FSTFLAGS, LIMITS, WHENCE } from '../constants.js';
import { fail } from '../errors.js';
import type { WasiContext } from '../context.js';
import type { Stat, TimesUpdate } from '../fs/types.js';
import { DirHandle, FileHandle } from '../handles.js';
import type { GuestMemory } from '../memory.js';
import { R } from '../rights.js';
import { realtimeNs } from '../clock.js';

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** Writes a 64-byte filestat. */
export function writeFilestat(mem: GuestMemory, ptr: number, s: Stat): void {
  mem.check(ptr >>> 0, 64);
  mem.setU64(ptr, s.dev);
  mem.setU64(ptr + 8, s.ino);
  mem.setU8(ptr + 16, s.filetype);
  mem.setU64(ptr + 24, s.nlink);
  mem.setU64(ptr + 32, s.size);
  mem.setU64(ptr + 40, s.atim);
  mem.setU64(ptr + 48, s.mtim);
  mem.setU64(ptr + 56, s.ctim);
}

/** Validates fstflags and turns them into the times to set. */
export function timesUpdate(atim: bigint, mtim: bigint, flags: number): TimesUpdate {
  const A = FSTFLAGS.ATIM, AN = FSTFLAGS.ATIM_NOW, M = FSTFLAGS.MTIM, MN = FSTFLAGS.MTIM_NOW;
  if (flags & ~(A | AN | M | MN)) fail(ERRNO.INVAL, `unknown fstflags ${flags}`);
  if ((flags & A && flags & AN) || (flags & M && flags & MN)) fail(ERRNO.INVAL, 'a time cannot be both given and "now"');
  const now = flags & (AN | MN) ? realtimeNs() : 0n;
  return {
    atim: flags & AN ? now : flags & A ? BigInt.asUintN(64, atim) : undefined,
    mtim: flags & MN ? now : flags & M ? BigInt.asUintN(64, mtim) : undefined,
  };
}

/** Converts a guest u64 offset or size to a safe JS number. */
export function u64ToNumber(v: bigint, errno: number = ERRNO.INVAL): number {
  const u = BigInt.asUintN(64, v);
  if (u > MAX_SAFE) fail(errno, `${u} is too large`);
  return Number(u);
}

/** The fd_* calls. */
export function fdCalls(ctx: WasiContext) {
  const { mem, fds } = ctx;
  // witx: "fd_seek … implies fd_tell", as Capsicum's CAP_SEEK contains CAP_SEEK_TELL.
  const tellRight = (fd: number): bigint => ((fds.peek(fd)?.base ?? 0n) & R.fd_seek ? R.fd_seek : R.fd_tell);
  const listings = new WeakMap<DirHandle, { name: string; ino: bigint; filetype: number }[]>();

  return {
    fd_read(fd: number, iovs: number, iovsLen: number, nread: number): number {
      mem.sync().check(nread >>> 0, 4);
      const e = fds.get(fd, R.fd_read, 'fd_read');
      const n = e.handle.read(mem.iovecs(iovs, iovsLen, LIMITS.iovs));
      mem.setU32(nread, n);
      return ERRNO.SUCCESS;
    },
    fd_write(fd: number, iovs: number, iovsLen: number, nwritten: number): number {
      mem.sync().check(nwritten >>> 0, 4);
      const e = fds.get(fd, R.fd_write, 'fd_write');
      const n = e.handle.write(mem.iovecs(iovs, iovsLen, LIMITS.iovs));
      mem.setU32(nwritten, n);
      return ERRNO.SUCCESS;
    },
    fd_pread(fd: number, iovs: number, iovsLen: number, offset: bigint, nread: number): number {
      mem.sync().check(nread >>> 0, 4);
      const e = fds.get(fd, R.fd_read | R.fd_seek, 'fd_pread');
      const n = e.handle.pread(mem.iovecs(iovs, iovsLen, LIMITS.iovs), u64ToNumber(offset));
      mem.setU32(nread, n);
      return ERRNO.SUCCESS;
    },
    fd_pwrite(fd: number, iovs: number, iovsLen: number, offset: bigint, nwritten: number): number {
      mem.sync().check(nwritten >>> 0, 4);
      const e = fds.get(fd, R.fd_write | R.fd_seek, 'fd_pwrite');
      const n = e.handle.pwrite(mem.iovecs(iovs, iovsLen, LIMITS.iovs), u64ToNumber(offset, ERRNO.FBIG));
      mem.setU32(nwritten, n);
      return ERRNO.SUCCESS;
    },
    fd_seek(fd: number, offset: bigint, whence: number, out: number): number {
      mem.sync().check(out >>> 0, 8);
      // Capsicum's CAP_SEEK_TELL alone allows lseek(fd, 0, SEEK_CUR).
      const tellOnly = offset === 0n && whence === WHENCE.CUR;
      const e = fds.get(fd, tellOnly ? tellRight(fd) : R.fd_seek, 'fd_seek');
      mem.setU64(out, e.handle.seek(BigInt.asIntN(64, offset), whence));
      return ERRNO.SUCCESS;
    },
    fd_tell(fd: number, out: number): number {
      mem.sync().check(out >>> 0, 8);
      mem.setU64(out, fds.get(fd, tellRight(fd), 'fd_tell').handle.tell());
      return ERRNO.SUCCESS;
    },
    fd_close(fd: number): number {
      fds.close(fd);
      return ERRNO.SUCCESS;
    },
    fd_renumber(from: number, to: number): number {
      fds.renumber(from, to);
      return ERRNO.SUCCESS;
    },
    fd_fdstat_get(fd: number, buf: number): number {
      mem.sync().check(buf >>> 0, 24);
      const e = fds.peek(fd) ?? fail(ERRNO.BADF, `fd ${fd} is not open`);
      const flags = e.fdflags | (e.handle instanceof FileHandle && e.handle.append ? FDFLAGS.APPEND : 0);
      mem.setU8(buf, e.handle.filetype);
      mem.setU8(buf + 1, 0);
      mem.setU16(buf + 2, flags);
      mem.setU32(buf + 4, 0);
      mem.setU64(buf + 8, e.base);
      mem.setU64(buf + 16, e.inheriting);
      return ERRNO.SUCCESS;
    },
    fd_fdstat_set_flags(fd: number, flags: number): number {
      const e = fds.get(fd, R.fd_fdstat_set_flags, 'fd_fdstat_set_flags');
      if (flags & ~(FDFLAGS.APPEND | FDFLAGS.DSYNC | FDFLAGS.NONBLOCK | FDFLAGS.RSYNC | FDFLAGS.SYNC)) fail(ERRNO.INVAL);
      // Synchronous-I/O flags cannot be changed after open on Linux either.
      if ((flags ^ e.fdflags) & (FDFLAGS.DSYNC | FDFLAGS.RSYNC | FDFLAGS.SYNC)) fail(ERRNO.NOTSUP, 'sync flags are fixed at open');
      if (e.handle instanceof FileHandle) e.handle.append = (flags & FDFLAGS.APPEND) !== 0;
      e.handle.nonblocking = (flags & FDFLAGS.NONBLOCK) !== 0;
      e.fdflags = flags & ~FDFLAGS.APPEND;
      return ERRNO.SUCCESS;
    },
    fd_fdstat_set_rights(fd: number, base: bigint, inheriting: bigint): number {
      const e = fds.peek(fd) ?? fail(ERRNO.BADF, `fd ${fd} is not open`);
      base = BigInt.asUintN(64, base);
      inheriting = BigInt.asUintN(64, inheriting);
      const widened = (base & ~e.base) | (inheriting & ~e.inheriting);
      if (widened !== 0n) {
        fds.deny({
          call: 'fd_fdstat_set_rights', fd, rightsNeeded: base | inheriting, rightsHeld: e.base | e.inheriting,
          errno: ERRNO.NOTCAPABLE, message: `Cannot widen the rights of fd ${fd}: rights only shrink (cap_rights_limit)`,
        });
      }
      e.base = base;
      e.inheriting = inheriting;
      return ERRNO.SUCCESS;
    },
    fd_filestat_get(fd: number, buf: number): number {
      mem.sync().check(buf >>> 0, 64);
      writeFilestat(mem, buf, fds.get(fd, R.fd_filestat_get, 'fd_filestat_get').handle.stat());
      return ERRNO.SUCCESS;
    },
    fd_filestat_set_size(fd: number, size: bigint): number {
      const e = fds.get(fd, R.fd_filestat_set_size, 'fd_filestat_set_size');
      e.handle.setSize(u64ToNumber(size, ERRNO.FBIG));
      return ERRNO.SUCCESS;
    },
    fd_filestat_set_times(fd: number, atim: bigint, mtim: bigint, flags: number): number {
      const e = fds.get(fd, R.fd_filestat_set_times, 'fd_filestat_set_times');
      e.handle.setTimes(timesUpdate(atim, mtim, flags));
      return ERRNO.SUCCESS;
    },
    fd_advise(fd: number, offset: bigint, len: bigint, advice: number): number {
      const e = fds.get(fd, R.fd_advise, 'fd_advise');
      if (advice < 0 || advice > ADVICE_MAX) fail(ERRNO.INVAL, `advice ${advice} is unknown`);
      u64ToNumber(offset); u64ToNumber(len);
      if (e.handle.filetype === FILETYPE.DIRECTORY) fail(ERRNO.BADF);
      return ERRNO.SUCCESS;
    },
    fd_allocate(fd: number, offset: bigint, len: bigint): number {
      const e = fds.get(fd, R.fd_allocate, 'fd_allocate');
      const o = u64ToNumber(offset), l = u64ToNumber(len);
      if (o + l > Number.MAX_SAFE_INTEGER) fail(ERRNO.FBIG);
      e.handle.allocate(o, l);
      return ERRNO.SUCCESS;
    },
    fd_datasync(fd: number): number {
      fds.get(fd, R.fd_datasync, 'fd_datasync').handle.sync();
      return ERRNO.SUCCESS;
    },
    fd_sync(fd: number): number {
      fds.get(fd, R.fd_sync, 'fd_sync').handle.sync();
      return ERRNO.SUCCESS;
    },
    fd_prestat_get(fd: number, buf: number): number {
      mem.sync().check(buf >>> 0, 8);
      const e = fds.peek(fd) ?? fail(ERRNO.BADF, `fd ${fd} is not open`);
      if (e.preopen === undefined) fail(ERRNO.BADF, `fd ${fd} is not a preopened directory`);
      mem.setU32(buf, 0);
      mem.setU32(buf + 4, Buffer.byteLength(e.preopen));
      return ERRNO.SUCCESS;
    },
    fd_prestat_dir_name(fd: number, ptr: number, len: number): number {
      mem.sync();
      const e = fds.peek(fd) ?? fail(ERRNO.BADF, `fd ${fd} is not open`);
      if (e.preopen === undefined) fail(ERRNO.BADF, `fd ${fd} is not a preopened directory`);
      const name = Buffer.from(e.preopen);
      if ((len >>> 0) < name.length) fail(ERRNO.NAMETOOLONG, `buffer of ${len >>> 0} bytes is too small for ${name.length}`);
      mem.bytes(ptr, name.length).set(name);
      return ERRNO.SUCCESS;
    },
    fd_readdir(fd: number, buf: number, bufLen: number, cookie: bigint, bufused: number): number {
      mem.sync().check(bufused >>> 0, 4);
      const out = mem.bytes(buf, bufLen);
      const e = fds.get(fd, R.fd_readdir, 'fd_readdir');
      const h = e.handle;
      if (!(h instanceof DirHandle)) return fail(ERRNO.NOTDIR);
      // A listing is taken at cookie 0 and reused while the guest pages through it.
      let list = listings.get(h);
      const start = u64ToNumber(cookie);
      if (start === 0 || list === undefined) {
        const self = h.dir.stat();
        list = [{ name: '.', ino: self.ino, filetype: FILETYPE.DIRECTORY }, { name: '..', ino: self.ino, filetype: FILETYPE.DIRECTORY }, ...h.dir.list()];
        listings.set(h, list);
      }
      const dirent = new Uint8Array(24);
      const dv = new DataView(dirent.buffer);
      let used = 0;
      for (let i = start; i < list.length && used < out.length; i++) {
        const d = list[i]!;
        const name = Buffer.from(d.name);
        dv.setBigUint64(0, BigInt(i + 1), true);
        dv.setBigUint64(8, d.ino, true);
        dv.setUint32(16, name.length, true);
        dv.setUint8(20, d.filetype);
        for (const part of [dirent, name]) {
          const n = Math.min(part.length, out.length - used);
          out.set(part.subarray(0, n), used);
          used += n;
        }
      }
      mem.setU32(bufused, used);
      return ERRNO.SUCCESS;
    },
  };
}

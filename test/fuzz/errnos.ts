/**
 * The errnos each import may return, which the fuzzer checks every result against.
 *
 * Where this comes from. The witx (wasi_snapshot_preview1.witx, branch wasi-0.1) gives every call
 * the same result type, `(expected … (error $errno))`, and lists no errors per call; the docs
 * (preview1/docs.md) describe each call as "Note: This is similar to `X` in POSIX". So each row
 * below is the error list of the POSIX/Linux function named in its comment (the man page's
 * ERRORS section), narrowed to what can happen without signals or networks, plus what WASI and
 * capsa add to every call of a kind (docs/abi.md, /work/shared/research/wasi.md §1.4-1.6):
 *
 *  - EFAULT for a guest pointer outside linear memory (POSIX's "bad address"; the wasm ABI's
 *    pointers are offsets into memory, so every pointer argument can be out of range);
 *  - EBADF and ENOTCAPABLE for every descriptor argument (witx: "notcapable: Extension:
 *    Capabilities insufficient"; research §1.4 lists the right each call needs);
 *  - for path arguments: EILSEQ for a path that is not UTF-8 (witx strings are UTF-8),
 *    ENAMETOOLONG, EINVAL for a NUL byte, ELOOP, and ENOTCAPABLE for an escape (research §1.6,
 *    capsicum-casper.md §1.6);
 *  - ENOSPC and EDQUOT where a call can allocate: capsa's in-memory quotas (docs/security.md);
 *  - ECAPMODE (94, capsa's extension, FreeBSD's value) only for casper.init.
 *
 * EIO is allowed where POSIX lists it, but a host exception turned into EIO is reported as a
 * failure separately (the onHostError hook), so EIO cannot hide a bug.
 */
import { ERRNO } from '../../src/wasi/constants.js';

type Name = keyof typeof ERRNO;
const set = (...names: Name[]): ReadonlySet<number> => new Set(names.map((n) => ERRNO[n]));

const FD: Name[] = ['SUCCESS', 'BADF', 'NOTCAPABLE', 'FAULT'];
const PATH: Name[] = [...FD, 'ACCES', 'ILSEQ', 'INVAL', 'IO', 'LOOP', 'NAMETOOLONG', 'NOENT', 'NOTDIR', 'PERM'];
const WRITE_FS: Name[] = ['ROFS', 'NOSPC', 'DQUOT', 'EXIST', 'MLINK'];

/** Allowed errnos per import, keyed "module.name" (preview1 calls by their bare name). */
export const ALLOWED_ERRNOS: Readonly<Record<string, ReadonlySet<number>>> = {
  // getargs/environ: only the buffers can be wrong.
  args_get: set('SUCCESS', 'FAULT'),
  args_sizes_get: set('SUCCESS', 'FAULT'),
  environ_get: set('SUCCESS', 'FAULT'),
  environ_sizes_get: set('SUCCESS', 'FAULT'),
  // clock_getres(2), clock_gettime(2): EINVAL for an unknown clock, EFAULT.
  clock_res_get: set('SUCCESS', 'INVAL', 'FAULT'),
  clock_time_get: set('SUCCESS', 'INVAL', 'FAULT'),
  // posix_fadvise(2): EBADF, EINVAL, ESPIPE.
  fd_advise: set(...FD, 'INVAL', 'SPIPE'),
  // posix_fallocate(2): EBADF, EFBIG, EINVAL, EIO, ENODEV, ENOSPC, ESPIPE, EOPNOTSUPP.
  fd_allocate: set(...FD, 'FBIG', 'INVAL', 'IO', 'NODEV', 'NOSPC', 'DQUOT', 'SPIPE', 'NOTSUP', 'ROFS', 'PERM'),
  // close(2): EBADF, EIO.
  fd_close: set('SUCCESS', 'BADF', 'IO'),
  // fdatasync(2), fsync(2): EBADF, EIO, EINVAL, EROFS, ENOSPC, EDQUOT.
  fd_datasync: set(...FD, 'IO', 'INVAL', 'ROFS', 'NOSPC', 'DQUOT'),
  fd_sync: set(...FD, 'IO', 'INVAL', 'ROFS', 'NOSPC', 'DQUOT'),
  // fcntl(F_GETFL): EBADF, EFAULT for the fdstat buffer.
  fd_fdstat_get: set('SUCCESS', 'BADF', 'FAULT'),
  // fcntl(F_SETFL): EBADF, EINVAL; ENOTSUP for sync flags Linux cannot change after open.
  fd_fdstat_set_flags: set(...FD, 'INVAL', 'NOTSUP'),
  // cap_rights_limit(2) / witx: ENOTCAPABLE when widening, EBADF.
  fd_fdstat_set_rights: set('SUCCESS', 'BADF', 'NOTCAPABLE', 'INVAL'),
  // fstat(2): EBADF, EFAULT, EIO, EOVERFLOW.
  fd_filestat_get: set(...FD, 'IO', 'OVERFLOW'),
  // ftruncate(2): EBADF, EFBIG, EINVAL, EIO, EPERM, EROFS; ENOSPC/EDQUOT from quotas.
  fd_filestat_set_size: set(...FD, 'FBIG', 'INVAL', 'IO', 'PERM', 'ACCES', 'ROFS', 'NOSPC', 'DQUOT'),
  // futimens(2): EBADF, EACCES, EINVAL, EPERM, EROFS, EIO; ENOTSUP for kinds without times.
  fd_filestat_set_times: set(...FD, 'ACCES', 'INVAL', 'PERM', 'ROFS', 'IO', 'NOTSUP'),
  // preadv(2): EBADF, EFAULT, EINVAL, EIO, EISDIR, ESPIPE, EOVERFLOW, EAGAIN, ENXIO.
  fd_pread: set(...FD, 'INVAL', 'IO', 'ISDIR', 'SPIPE', 'OVERFLOW', 'AGAIN', 'NXIO'),
  // WASI's own: EBADF for a descriptor that is no preopen, EFAULT.
  fd_prestat_get: set('SUCCESS', 'BADF', 'FAULT'),
  // …and ENAMETOOLONG for a buffer too small (wasmtime's and capsa's choice).
  fd_prestat_dir_name: set('SUCCESS', 'BADF', 'FAULT', 'NAMETOOLONG'),
  // pwritev(2): EBADF, EFAULT, EFBIG, EINVAL, EIO, ENOSPC, EDQUOT, ESPIPE, EPIPE, EAGAIN, EPERM; EROFS.
  fd_pwrite: set(...FD, 'FBIG', 'INVAL', 'IO', 'NOSPC', 'DQUOT', 'SPIPE', 'PIPE', 'AGAIN', 'PERM', 'ROFS', 'ISDIR', 'NXIO'),
  // readv(2): EBADF, EFAULT, EINVAL, EIO, EISDIR, EAGAIN.
  fd_read: set(...FD, 'INVAL', 'IO', 'ISDIR', 'AGAIN', 'OVERFLOW', 'NXIO'),
  // getdents(2): EBADF, EFAULT, EINVAL, ENOENT (directory removed), ENOTDIR; EIO, EOVERFLOW.
  fd_readdir: set(...FD, 'INVAL', 'NOENT', 'NOTDIR', 'IO', 'OVERFLOW'),
  // dup2(2): EBADF (WASI: the target must be open too).
  fd_renumber: set('SUCCESS', 'BADF'),
  // lseek(2): EBADF, EINVAL, EOVERFLOW, ESPIPE; EISDIR (wasi-testsuite directory_seek accepts it).
  fd_seek: set(...FD, 'INVAL', 'OVERFLOW', 'SPIPE', 'ISDIR'),
  fd_tell: set(...FD, 'INVAL', 'OVERFLOW', 'SPIPE', 'ISDIR'),
  // writev(2): EBADF, EFAULT, EFBIG, EINVAL, EIO, ENOSPC, EDQUOT, EPIPE, EAGAIN, EPERM; EISDIR, EROFS.
  fd_write: set(...FD, 'FBIG', 'INVAL', 'IO', 'NOSPC', 'DQUOT', 'PIPE', 'AGAIN', 'PERM', 'ISDIR', 'ROFS', 'NXIO'),
  // mkdirat(2).
  path_create_directory: set(...PATH, ...WRITE_FS),
  // fstatat(2).
  path_filestat_get: set(...PATH, 'OVERFLOW'),
  // utimensat(2).
  path_filestat_set_times: set(...PATH, 'ROFS'),
  // linkat(2): also EXDEV.
  path_link: set(...PATH, ...WRITE_FS, 'XDEV'),
  // openat(2).
  path_open: set(...PATH, ...WRITE_FS, 'FBIG', 'ISDIR', 'MFILE', 'NFILE', 'NXIO', 'OVERFLOW', 'TXTBSY', 'NOTSUP', 'AGAIN', 'NOMEM'),
  // readlinkat(2).
  path_readlink: set(...PATH),
  // unlinkat(AT_REMOVEDIR) / rmdir(2): EBUSY, ENOTEMPTY (or EEXIST), EINVAL for ".".
  path_remove_directory: set(...PATH, 'BUSY', 'NOTEMPTY', 'EXIST', 'ROFS'),
  // renameat(2).
  path_rename: set(...PATH, ...WRITE_FS, 'BUSY', 'ISDIR', 'NOTEMPTY', 'XDEV'),
  // symlinkat(2).
  path_symlink: set(...PATH, ...WRITE_FS),
  // unlinkat(2): EBUSY, EISDIR.
  path_unlink_file: set(...PATH, 'BUSY', 'ISDIR', 'ROFS'),
  // poll(2)/ppoll: EFAULT, EINVAL, ENOMEM; WASI: EINVAL for no subscriptions. ENOTSUP for what
  // the host cannot wait on.
  poll_oneoff: set('SUCCESS', 'FAULT', 'INVAL', 'NOMEM', 'NOTSUP'),
  // raise(3): EINVAL for a bad signal; ENOSYS where signals do not exist.
  proc_raise: set('SUCCESS', 'INVAL', 'NOSYS', 'NOTSUP'),
  // sched_yield(2) cannot fail.
  sched_yield: set('SUCCESS'),
  // getrandom(2): EFAULT; EIO.
  random_get: set('SUCCESS', 'FAULT', 'IO'),
  // accept(2), recv(2), send(2), shutdown(2): EBADF, ENOTSOCK, EINVAL, ENOTCONN, EOPNOTSUPP, EAGAIN, EFAULT.
  sock_accept: set(...FD, 'NOTSOCK', 'INVAL', 'NOTSUP', 'AGAIN'),
  sock_recv: set(...FD, 'NOTSOCK', 'INVAL', 'NOTCONN', 'NOTSUP', 'AGAIN'),
  sock_send: set(...FD, 'NOTSOCK', 'INVAL', 'NOTCONN', 'NOTSUP', 'AGAIN', 'PIPE'),
  sock_shutdown: set(...FD, 'NOTSOCK', 'INVAL', 'NOTCONN', 'NOTSUP'),
  // cap_enter(2) cannot fail here; cap_getmode(2): EFAULT.
  'capsicum.cap_enter': set('SUCCESS'),
  'capsicum.cap_getmode': set('SUCCESS', 'FAULT'),
  // docs/abi.md: EFAULT for a pointer (and the whole length) outside memory.
  'argdata.argdata_size': set('SUCCESS', 'FAULT'),
  'argdata.argdata_get': set('SUCCESS', 'FAULT'),
  // docs/abi.md `casper`: cap_init is ECAPMODE in capability mode, EMFILE when the table is full;
  // ETIMEDOUT/EIO when the broker does not answer.
  'casper.init': set('SUCCESS', 'FAULT', 'CAPMODE', 'MFILE', 'IO', 'TIMEDOUT'),
  // xfer: EBADF, ENOTSOCK, EINVAL (malformed nvlist), ENOTCAPABLE, EFAULT; EMFILE when a reply's
  // descriptors do not fit; EIO/ETIMEDOUT from the bridge.
  'casper.xfer': set(...FD, 'NOTSOCK', 'INVAL', 'MFILE', 'IO', 'TIMEDOUT', 'MSGSIZE', 'NOBUFS', 'NOMEM'),
  // recv: ENOBUFS for a short buffer, EINVAL when no reply waits.
  'casper.recv': set(...FD, 'NOTSOCK', 'INVAL', 'NOBUFS'),
};

/** Errors an fd_read/fd_write subscription of poll_oneoff may report in its event. */
export const POLL_EVENT_ERRNOS: ReadonlySet<number> = set('SUCCESS', 'BADF', 'NOTCAPABLE', 'INVAL', 'NOTSUP', 'IO');

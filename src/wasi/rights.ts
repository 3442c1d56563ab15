/**
 * The one rights table: each WASI preview1 right bit next to the Capsicum name capsa gives it.
 *
 * FreeBSD's cap_rights_t has ~60 rights; WASI preview1 has 30 bits. Where a FreeBSD right maps onto
 * exactly one WASI bit it keeps its FreeBSD name. Where FreeBSD has one right for what WASI splits
 * (fsync/fdatasync, unlink of files/directories, lseek/tell, ftruncate/O_TRUNC) or has no right at
 * all (readdir, readlinkat, posix_fadvise), capsa names the bit itself and marks it `origin: 'capsa'`.
 * FreeBSD's composite rights (CAP_SEEK, CAP_PREAD, CAP_UNLINKAT, …) are unions of these bits, listed
 * in COMPOSITE_RIGHTS, so a FreeBSD program's cap_rights_init(&r, CAP_PREAD) means what it meant.
 */

export interface RightInfo {
  /** Bit index in the WASI `rights` u64. */
  readonly index: number;
  /** The mask as a BigInt, as it crosses the wasm boundary. */
  readonly bit: bigint;
  /** WASI preview1 spelling (typenames.witx). */
  readonly wasi: string;
  /** Capsicum spelling. */
  readonly cap: string;
  /** Whether the Capsicum name is FreeBSD's own or capsa's name for a bit FreeBSD lacks. */
  readonly origin: 'freebsd' | 'capsa';
  /** What the right allows, for `capsa manifest check` and docs. */
  readonly allows: string;
}

const row = (index: number, wasi: string, cap: string, origin: 'freebsd' | 'capsa', allows: string): RightInfo =>
  ({ index, bit: 1n << BigInt(index), wasi, cap, origin, allows });

/** The 30 WASI preview1 rights and capsa's 4 process rights (bits 30-33), in bit order. */
export const RIGHTS_TABLE: readonly RightInfo[] = [
  row(0, 'fd_datasync', 'CAP_FDATASYNC', 'capsa', 'fd_datasync; path_open with fdflags dsync'),
  row(1, 'fd_read', 'CAP_READ', 'freebsd', 'fd_read, sock_recv; with CAP_SEEK_SET also fd_pread'),
  row(2, 'fd_seek', 'CAP_SEEK_SET', 'capsa', 'fd_seek (FreeBSD folds this into CAP_SEEK)'),
  row(3, 'fd_fdstat_set_flags', 'CAP_FCNTL', 'freebsd', 'fd_fdstat_set_flags (fcntl F_SETFL)'),
  row(4, 'fd_sync', 'CAP_FSYNC', 'freebsd', 'fd_sync; path_open with fdflags rsync/sync'),
  row(5, 'fd_tell', 'CAP_SEEK_TELL', 'freebsd', 'fd_tell, fd_seek(0, cur)'),
  row(6, 'fd_write', 'CAP_WRITE', 'freebsd', 'fd_write, sock_send; with CAP_SEEK_SET also fd_pwrite'),
  row(7, 'fd_advise', 'CAP_FADVISE', 'capsa', 'fd_advise (posix_fadvise)'),
  row(8, 'fd_allocate', 'CAP_FALLOCATE', 'capsa', 'fd_allocate (posix_fallocate)'),
  row(9, 'path_create_directory', 'CAP_MKDIRAT', 'freebsd', 'path_create_directory (mkdirat)'),
  row(10, 'path_create_file', 'CAP_CREATE', 'freebsd', 'path_open with O_CREAT'),
  row(11, 'path_link_source', 'CAP_LINKAT_SOURCE', 'freebsd', 'path_link, on the source directory'),
  row(12, 'path_link_target', 'CAP_LINKAT_TARGET', 'freebsd', 'path_link, on the target directory'),
  row(13, 'path_open', 'CAP_LOOKUP', 'freebsd', 'path_open: looking names up beneath this directory'),
  row(14, 'fd_readdir', 'CAP_READDIR', 'capsa', 'fd_readdir (FreeBSD uses CAP_READ for getdents)'),
  row(15, 'path_readlink', 'CAP_READLINKAT', 'capsa', 'path_readlink (readlinkat)'),
  row(16, 'path_rename_source', 'CAP_RENAMEAT_SOURCE', 'freebsd', 'path_rename, on the source directory'),
  row(17, 'path_rename_target', 'CAP_RENAMEAT_TARGET', 'freebsd', 'path_rename, on the target directory'),
  row(18, 'path_filestat_get', 'CAP_FSTATAT', 'freebsd', 'path_filestat_get (fstatat, faccessat)'),
  row(19, 'path_filestat_set_size', 'CAP_FTRUNCATEAT', 'capsa', 'path_open with O_TRUNC (FreeBSD folds this into CAP_FTRUNCATE)'),
  row(20, 'path_filestat_set_times', 'CAP_FUTIMESAT', 'freebsd', 'path_filestat_set_times (utimensat)'),
  row(21, 'fd_filestat_get', 'CAP_FSTAT', 'freebsd', 'fd_filestat_get (fstat)'),
  row(22, 'fd_filestat_set_size', 'CAP_FTRUNCATE', 'freebsd', 'fd_filestat_set_size (ftruncate)'),
  row(23, 'fd_filestat_set_times', 'CAP_FUTIMES', 'freebsd', 'fd_filestat_set_times (futimens)'),
  row(24, 'path_symlink', 'CAP_SYMLINKAT', 'freebsd', 'path_symlink (symlinkat)'),
  row(25, 'path_remove_directory', 'CAP_RMDIRAT', 'capsa', 'path_remove_directory (unlinkat AT_REMOVEDIR)'),
  row(26, 'path_unlink_file', 'CAP_UNLINKFILEAT', 'capsa', 'path_unlink_file (unlinkat)'),
  row(27, 'poll_fd_readwrite', 'CAP_EVENT', 'freebsd', 'poll_oneoff fd_read/fd_write subscriptions'),
  row(28, 'sock_shutdown', 'CAP_SHUTDOWN', 'freebsd', 'sock_shutdown'),
  row(29, 'sock_accept', 'CAP_ACCEPT', 'freebsd', 'sock_accept'),
  // Bits WASI leaves undefined, for FreeBSD rights of calls capsa adds in its `capsicum` module.
  row(30, 'capsa_fexecve', 'CAP_FEXECVE', 'freebsd', 'capsicum.pdspawn: start a child from this module file (fexecve)'),
  row(31, 'capsa_pdgetpid', 'CAP_PDGETPID', 'freebsd', 'capsicum.pdgetpid on a process descriptor'),
  row(32, 'capsa_pdwait', 'CAP_PDWAIT', 'freebsd', 'capsicum.pdwait on a process descriptor'),
  row(33, 'capsa_pdkill', 'CAP_PDKILL', 'freebsd', 'capsicum.pdkill on a process descriptor'),
];

/** Rights masks by WASI name, e.g. `R.fd_read`. */
export const R = Object.fromEntries(RIGHTS_TABLE.map((r) => [r.wasi, r.bit])) as Readonly<Record<string, bigint>> & {
  readonly fd_datasync: bigint; readonly fd_read: bigint; readonly fd_seek: bigint; readonly fd_fdstat_set_flags: bigint;
  readonly fd_sync: bigint; readonly fd_tell: bigint; readonly fd_write: bigint; readonly fd_advise: bigint;
  readonly fd_allocate: bigint; readonly path_create_directory: bigint; readonly path_create_file: bigint;
  readonly path_link_source: bigint; readonly path_link_target: bigint; readonly path_open: bigint;
  readonly fd_readdir: bigint; readonly path_readlink: bigint; readonly path_rename_source: bigint;
  readonly path_rename_target: bigint; readonly path_filestat_get: bigint; readonly path_filestat_set_size: bigint;
  readonly path_filestat_set_times: bigint; readonly fd_filestat_get: bigint; readonly fd_filestat_set_size: bigint;
  readonly fd_filestat_set_times: bigint; readonly path_symlink: bigint; readonly path_remove_directory: bigint;
  readonly path_unlink_file: bigint; readonly poll_fd_readwrite: bigint; readonly sock_shutdown: bigint;
  readonly sock_accept: bigint; readonly capsa_fexecve: bigint; readonly capsa_pdgetpid: bigint;
  readonly capsa_pdwait: bigint; readonly capsa_pdkill: bigint;
};

/** Every defined right. Bits 34..63 are undefined and never granted. */
export const RIGHTS_ALL = RIGHTS_TABLE.reduce((m, r) => m | r.bit, 0n);

const or = (...names: string[]): bigint => names.reduce((m, n) => {
  const r = RIGHTS_TABLE.find((x) => x.wasi === n || x.cap === n);
  if (!r) throw new Error(`unknown right ${n}`);
  return m | r.bit;
}, 0n);

/**
 * FreeBSD's composite rights as unions of the bits above. The *AT rights include CAP_LOOKUP as
 * FreeBSD's CAPRIGHT encoding does.
 */
export const COMPOSITE_RIGHTS: Readonly<Record<string, bigint>> = {
  CAP_SEEK: or('CAP_SEEK_SET', 'CAP_SEEK_TELL'),
  CAP_PREAD: or('CAP_SEEK_SET', 'CAP_SEEK_TELL', 'CAP_READ'),
  CAP_PWRITE: or('CAP_SEEK_SET', 'CAP_SEEK_TELL', 'CAP_WRITE'),
  CAP_UNLINKAT: or('CAP_RMDIRAT', 'CAP_UNLINKFILEAT', 'CAP_LOOKUP'),
  CAP_RECV: or('CAP_READ'),
  CAP_SEND: or('CAP_WRITE'),
  CAP_SOCK_CLIENT: or('CAP_READ', 'CAP_WRITE', 'CAP_SHUTDOWN'),
  CAP_SOCK_SERVER: or('CAP_READ', 'CAP_WRITE', 'CAP_SHUTDOWN', 'CAP_ACCEPT'),
  CAP_POLL_EVENT: or('CAP_EVENT'),
  CAP_ALL: RIGHTS_ALL,
};

// Types, per uvwasi's wasi_rights.h: the most a descriptor of each type can hold.
const REGULAR_FILE_BASE = or('fd_datasync', 'fd_read', 'fd_seek', 'fd_fdstat_set_flags', 'fd_sync', 'fd_tell', 'fd_write',
  'fd_advise', 'fd_allocate', 'fd_filestat_get', 'fd_filestat_set_size', 'fd_filestat_set_times', 'poll_fd_readwrite',
  'CAP_FEXECVE');
const DIRECTORY_BASE = or('fd_fdstat_set_flags', 'fd_sync', 'fd_advise', 'path_create_directory', 'path_create_file',
  'path_link_source', 'path_link_target', 'path_open', 'fd_readdir', 'path_readlink', 'path_rename_source',
  'path_rename_target', 'path_filestat_get', 'path_filestat_set_size', 'path_filestat_set_times', 'fd_filestat_get',
  'fd_filestat_set_times', 'path_symlink', 'path_unlink_file', 'path_remove_directory', 'poll_fd_readwrite');
const TTY_BASE = or('fd_read', 'fd_fdstat_set_flags', 'fd_write', 'fd_filestat_get', 'poll_fd_readwrite');
const PIPE_BASE = or('fd_read', 'fd_write', 'fd_fdstat_set_flags', 'fd_filestat_get', 'poll_fd_readwrite');
const PROCESS_BASE = or('CAP_PDGETPID', 'CAP_PDWAIT', 'CAP_PDKILL', 'poll_fd_readwrite', 'fd_filestat_get');
const SOCKET_BASE = or('fd_read', 'fd_fdstat_set_flags', 'fd_write', 'fd_filestat_get', 'poll_fd_readwrite', 'sock_shutdown', 'sock_accept');

/** The widest rights a descriptor of a given kind may carry; path_open masks requests with these. */
export const TYPE_RIGHTS = {
  regularFile: { base: REGULAR_FILE_BASE, inheriting: 0n },
  directory: { base: DIRECTORY_BASE, inheriting: DIRECTORY_BASE | REGULAR_FILE_BASE },
  characterDevice: { base: TTY_BASE, inheriting: 0n },
  socket: { base: SOCKET_BASE, inheriting: RIGHTS_ALL },
  /** pipe(): the read end drops CAP_WRITE, the write end CAP_READ. */
  pipe: { base: PIPE_BASE, inheriting: 0n },
  /** A process descriptor from pdspawn. */
  process: { base: PROCESS_BASE, inheriting: 0n },
} as const;

/** Rights a read-only grant keeps: everything that neither writes data nor changes the namespace. */
export const READ_ONLY_MASK = RIGHTS_ALL & ~or('fd_datasync', 'fd_write', 'fd_allocate', 'path_create_directory',
  'path_create_file', 'path_link_source', 'path_link_target', 'path_rename_source', 'path_rename_target',
  'path_filestat_set_size', 'path_filestat_set_times', 'fd_filestat_set_size', 'fd_filestat_set_times', 'path_symlink',
  'path_remove_directory', 'path_unlink_file');

const BY_NAME = new Map<string, bigint>();
for (const r of RIGHTS_TABLE) {
  BY_NAME.set(r.cap, r.bit);
  BY_NAME.set(r.wasi, r.bit);
}
for (const [name, mask] of Object.entries(COMPOSITE_RIGHTS)) BY_NAME.set(name, mask);

/** Looks a right up by its Capsicum or WASI name; undefined when the name is unknown. */
export function rightByName(name: string): bigint | undefined {
  return BY_NAME.get(name);
}

/** All names a manifest may use for rights (Capsicum single and composite names, WASI names). */
export function rightNames(): string[] {
  return [...BY_NAME.keys()];
}

/** Capsicum names of the single bits in `mask`, in bit order (no composites, so nothing is hidden). */
export function capNames(mask: bigint): string[] {
  const out: string[] = [];
  for (const r of RIGHTS_TABLE) if (mask & r.bit) out.push(r.cap);
  return out;
}

/** Formats a rights mask for people: "CAP_READ, CAP_SEEK_TELL" or "none". */
export function formatRights(mask: bigint): string {
  const names = capNames(mask);
  return names.length ? names.join(', ') : 'none';
}

/** The message an operator or audit reader sees when a descriptor lacks rights. */
export function missingRightsMessage(what: string, fd: number, needed: bigint, held: bigint): string {
  return `${what}: ${formatRights(needed & ~held)} missing on fd ${fd} (granted: ${formatRights(held)})`;
}

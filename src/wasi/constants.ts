/** WASI preview1 constants (typenames.witx), by their spec names. */

export const ERRNO = {
  SUCCESS: 0, '2BIG': 1, ACCES: 2, ADDRINUSE: 3, ADDRNOTAVAIL: 4, AFNOSUPPORT: 5, AGAIN: 6, ALREADY: 7,
  BADF: 8, BADMSG: 9, BUSY: 10, CANCELED: 11, CHILD: 12, CONNABORTED: 13, CONNREFUSED: 14, CONNRESET: 15,
  DEADLK: 16, DESTADDRREQ: 17, DOM: 18, DQUOT: 19, EXIST: 20, FAULT: 21, FBIG: 22, HOSTUNREACH: 23, IDRM: 24,
  ILSEQ: 25, INPROGRESS: 26, INTR: 27, INVAL: 28, IO: 29, ISCONN: 30, ISDIR: 31, LOOP: 32, MFILE: 33, MLINK: 34,
  MSGSIZE: 35, MULTIHOP: 36, NAMETOOLONG: 37, NETDOWN: 38, NETRESET: 39, NETUNREACH: 40, NFILE: 41, NOBUFS: 42,
  NODEV: 43, NOENT: 44, NOEXEC: 45, NOLCK: 46, NOLINK: 47, NOMEM: 48, NOMSG: 49, NOPROTOOPT: 50, NOSPC: 51,
  NOSYS: 52, NOTCONN: 53, NOTDIR: 54, NOTEMPTY: 55, NOTRECOVERABLE: 56, NOTSOCK: 57, NOTSUP: 58, NOTTY: 59,
  NXIO: 60, OVERFLOW: 61, OWNERDEAD: 62, PERM: 63, PIPE: 64, PROTO: 65, PROTONOSUPPORT: 66, PROTOTYPE: 67,
  RANGE: 68, ROFS: 69, SPIPE: 70, SRCH: 71, STALE: 72, TIMEDOUT: 73, TXTBSY: 74, XDEV: 75, NOTCAPABLE: 76,
  /** capsa's extension, FreeBSD's value: the call is not permitted in capability mode. */
  CAPMODE: 94,
} as const;

const ERRNO_NAMES = new Map<number, string>(Object.entries(ERRNO).map(([k, v]) => [v, `E${k}`]));

/** "ENOTCAPABLE" for 76, for messages and audit records. */
export function errnoName(errno: number): string {
  return ERRNO_NAMES.get(errno) ?? `errno ${errno}`;
}

export const FILETYPE = {
  UNKNOWN: 0, BLOCK_DEVICE: 1, CHARACTER_DEVICE: 2, DIRECTORY: 3, REGULAR_FILE: 4, SOCKET_DGRAM: 5,
  SOCKET_STREAM: 6, SYMBOLIC_LINK: 7,
} as const;

export const FDFLAGS = { APPEND: 0x1, DSYNC: 0x2, NONBLOCK: 0x4, RSYNC: 0x8, SYNC: 0x10 } as const;
export const OFLAGS = { CREAT: 0x1, DIRECTORY: 0x2, EXCL: 0x4, TRUNC: 0x8 } as const;
export const LOOKUPFLAGS = { SYMLINK_FOLLOW: 0x1 } as const;
export const FSTFLAGS = { ATIM: 0x1, ATIM_NOW: 0x2, MTIM: 0x4, MTIM_NOW: 0x8 } as const;
export const WHENCE = { SET: 0, CUR: 1, END: 2 } as const;
export const CLOCKID = { REALTIME: 0, MONOTONIC: 1, PROCESS_CPUTIME_ID: 2, THREAD_CPUTIME_ID: 3 } as const;
export const EVENTTYPE = { CLOCK: 0, FD_READ: 1, FD_WRITE: 2 } as const;
export const SUBCLOCKFLAGS = { ABSTIME: 0x1 } as const;
export const SDFLAGS = { RD: 0x1, WR: 0x2 } as const;
export const PREOPENTYPE = { DIR: 0 } as const;
export const ADVICE_MAX = 5;

/** Caps on what a guest may ask for in one call, so a hostile length cannot make the host work forever. */
export const LIMITS = {
  /** iovec entries per fd_read/fd_write call (POSIX IOV_MAX). */
  iovs: 1024,
  /** Bytes in one path argument (PATH_MAX). */
  path: 4096,
  /** Symlinks expanded in one lookup before ELOOP (Linux's MAXSYMLINKS). */
  symlinks: 40,
  /** Subscriptions in one poll_oneoff. */
  subscriptions: 4096,
} as const;

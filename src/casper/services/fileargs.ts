/**
 * system.fileargs: FreeBSD's cap_fileargs (lib/libcasper/services/cap_fileargs/cap_fileargs.c)
 * over the guest's OWN filesystem: the files are opened, stat'ed and resolved as the guest would
 * (against its preopened directories), never on the host's.
 *
 * Limits, set by the guest's fileargs_init/fileargs_cinit (fileargs_create_limit), once:
 *   NV_FLAG_NO_UNIQUE { flags: number        open(2) flags, wasi-libc's O_* values
 *                                              (O_RDONLY 0x04000000, O_WRONLY 0x10000000,
 *                                              O_CREAT 0x1000, O_TRUNC 0x8000, …), passed through
 *                       operations: number   FA_OPEN 1 | FA_LSTAT 2 | FA_REALPATH 4
 *                       [cap_rights: binary] cap_rights_t (16 bytes: word 0 = WASI rights bits,
 *                                              word 1 = 0), applied to every opened fd
 *                       [mode: number]       required when flags has O_CREAT
 *                       <name>: null, …      the only names the channel will open/stat/resolve }
 * - limit(old, new): any second limit_set is ENOTCAPABLE (fileargs_limit); a pair of another
 *   type or name, bits outside FA_*, a cap_rights of another size or with undefined bits, or
 *   O_CREAT without mode: EINVAL. Without limits every command is ENOTCAPABLE.
 *
 * Requests (fileargs_fetch), with their replies:
 *   { cmd: "open", name }     → { cmd: "open", fd: descriptor }
 *       The open itself happens in the guest's worker: ctx.openInGuest({ path: name, flags,
 *       mode, rights }) returns an index, which goes in the descriptor pair "fd" for the broker
 *       to patch with the fd it installs (already limited to `rights`).
 *   { cmd: "lstat", name }    → { cmd: "lstat", stat: binary[144] }
 *       wasi-libc's struct stat for wasm32 (see STAT_LAYOUT), filled as wasi-libc's own
 *       fstatat() fills it from a WASI filestat: st_mode holds only the S_IF* type bits.
 *       Needs ctx.lstatInGuest (below).
 *   { cmd: "realpath", name } → { realpath: string }
 *       Needs ctx.realpathInGuest (below).
 * Errors: ENOTCAPABLE when there are no limits, the operation is not in "operations", "name" is
 * missing, or the name was not given at init; EINVAL for an unknown cmd; ENOTSUP when the broker
 * gives no way into the guest's filesystem; else the errno the guest's own call would get.
 *
 * ServiceContext methods this service needs (src/casper/service.ts), for the broker's author:
 *   openInGuest({ path, flags, mode, rights }): number            (existing)
 *   lstatInGuest(path): Promise<GuestFilestat>                     (added: WASI filestat of
 *       path_filestat_get WITHOUT symlink-follow; reject with CasperError(errno))
 *   realpathInGuest(path): Promise<string>                         (added: the absolute guest
 *       path; reject with CasperError(errno))
 *
 * Manifest grant: {} only (the guest sets the limits, once; until it does, nothing is allowed).
 *
 * Deviations from FreeBSD, on purpose:
 * - no prefetch cache: replies always carry cmd "open"/"lstat", never "cache" with up to 128
 *   pre-opened descriptors (FreeBSD's client handles both; pre-opening would put descriptors in
 *   the guest's table it never asked for);
 * - the limit nvlist is validated (FreeBSD ignores stray pairs and aborts on a missing mode);
 * - without cap_rights the fd gets every right its directory lets it inherit (FreeBSD: no
 *   cap_rights_limit at all), which is the same thing.
 */
import { NvList } from '../nvlist.js';
import { CasperError, GuestOpNeeded, type CasperService, type GuestFilestat, type ServiceContext } from '../service.js';
import { ERRNO, FILETYPE } from '../../wasi/constants.js';
import { RIGHTS_ALL } from '../../wasi/rights.js';
import { checkKeys, errnoOf } from './common.js';

export const FA = { OPEN: 1, LSTAT: 2, REALPATH: 4 } as const;

/** wasi-libc's O_CREAT (__WASI_OFLAGS_CREAT << 12). */
export const WASI_LIBC_O_CREAT = 0x1000;

/** sizeof(cap_rights_t) with CAP_RIGHTS_VERSION 0: two u64 words. */
export const CAP_RIGHTS_SIZE = 16;

/** wasi-libc's struct stat on wasm32 (clang --target=wasm32-wasi, offsetof/sizeof). */
export const STAT_LAYOUT = {
  size: 144, st_dev: 0, st_ino: 8, st_nlink: 16, st_mode: 24, st_uid: 28, st_gid: 32, st_rdev: 40,
  st_size: 48, st_blksize: 56, st_blocks: 64, st_atim: 72, st_mtim: 88, st_ctim: 104,
} as const;

/** wasi-libc's S_IF* bits. It has no FIFOs: S_IFIFO is S_IFSOCK. */
export const S_IF = { BLK: 0o060000, CHR: 0o020000, DIR: 0o040000, REG: 0o100000, LNK: 0o120000, SOCK: 0o140000 } as const;

/** Packs a WASI filestat as wasi-libc's struct stat (to_public_stat in wasi-libc). */
export function packStat(st: GuestFilestat): Uint8Array {
  const b = new Uint8Array(STAT_LAYOUT.size);
  const dv = new DataView(b.buffer);
  dv.setBigUint64(STAT_LAYOUT.st_dev, BigInt.asUintN(64, st.dev), true);
  dv.setBigUint64(STAT_LAYOUT.st_ino, BigInt.asUintN(64, st.ino), true);
  dv.setBigUint64(STAT_LAYOUT.st_nlink, BigInt.asUintN(64, st.nlink), true);
  const mode = {
    [FILETYPE.BLOCK_DEVICE]: S_IF.BLK, [FILETYPE.CHARACTER_DEVICE]: S_IF.CHR, [FILETYPE.DIRECTORY]: S_IF.DIR,
    [FILETYPE.REGULAR_FILE]: S_IF.REG, [FILETYPE.SOCKET_DGRAM]: S_IF.SOCK, [FILETYPE.SOCKET_STREAM]: S_IF.SOCK,
    [FILETYPE.SYMBOLIC_LINK]: S_IF.LNK,
  }[st.filetype] ?? 0;
  dv.setUint32(STAT_LAYOUT.st_mode, mode, true);
  dv.setBigInt64(STAT_LAYOUT.st_size, BigInt.asIntN(64, st.size), true);
  const time = (off: number, ns: bigint): void => {
    const t = BigInt.asUintN(64, ns);
    dv.setBigInt64(off, t / 1_000_000_000n, true);
    dv.setInt32(off + 8, Number(t % 1_000_000_000n), true);
  };
  time(STAT_LAYOUT.st_atim, st.atim);
  time(STAT_LAYOUT.st_mtim, st.mtim);
  time(STAT_LAYOUT.st_ctim, st.ctim);
  return b;
}

function limit(oldLimits: NvList | null, newLimits: NvList): number {
  if (oldLimits !== null) return ERRNO.NOTCAPABLE;
  if (newLimits.error) return ERRNO.INVAL;
  for (const [name, v] of newLimits.pairs) {
    if (v.type === 'null') continue;
    if ((name === 'flags' || name === 'operations' || name === 'mode') && v.type === 'number') continue;
    if (name === 'cap_rights' && v.type === 'binary') {
      if (v.value.length !== CAP_RIGHTS_SIZE) return ERRNO.INVAL;
      const dv = new DataView(v.value.buffer, v.value.byteOffset, v.value.byteLength);
      if ((dv.getBigUint64(0, true) & ~RIGHTS_ALL) !== 0n || dv.getBigUint64(8, true) !== 0n) return ERRNO.INVAL;
      continue;
    }
    return ERRNO.INVAL;
  }
  const ops = newLimits.getNumber('operations') ?? 0n;
  if ((ops & ~BigInt(FA.OPEN | FA.LSTAT | FA.REALPATH)) !== 0n) return ERRNO.INVAL;
  const flags = newLimits.getNumber('flags') ?? 0n;
  if ((flags & BigInt(WASI_LIBC_O_CREAT)) !== 0n && newLimits.getNumber('mode') === undefined) return ERRNO.INVAL;
  return 0;
}

/** fileargs_allowed, and the checks before it; returns the name. */
function allowedName(limits: NvList | null, request: NvList, op: number): string {
  if (limits === null) throw new CasperError(ERRNO.NOTCAPABLE, 'fileargs has no limits yet: call fileargs_init first');
  const ops = Number(BigInt.asUintN(32, limits.getNumber('operations') ?? 0n));
  if ((ops & op) === 0) throw new CasperError(ERRNO.NOTCAPABLE, 'operation not allowed by fileargs_init');
  const name = request.getString('name');
  if (name === undefined || !limits.exists(name, 'null')) throw new CasperError(ERRNO.NOTCAPABLE, `${name ?? '(no name)'} was not given to fileargs_init`);
  return name;
}

async function command(cmd: string, limits: NvList | null, request: NvList, ctx: ServiceContext): Promise<NvList> {
  if (cmd === 'open') {
    const path = allowedName(limits, request, FA.OPEN);
    if (!ctx.openInGuest) throw new CasperError(ERRNO.NOTSUP, 'no guest filesystem to open in');
    const flags = Number(BigInt.asUintN(32, limits!.getNumber('flags') ?? 0n));
    const mode = flags & WASI_LIBC_O_CREAT ? Number(BigInt.asUintN(32, limits!.getNumber('mode') ?? 0n)) : 0;
    const bin = limits!.getBinary('cap_rights');
    const rights = bin ? new DataView(bin.buffer, bin.byteOffset, bin.byteLength).getBigUint64(0, true) : RIGHTS_ALL;
    let index: number;
    try {
      index = await ctx.openInGuest({ path, flags, mode, rights });
    } catch (e) {
      throw new CasperError(errnoOf(e), `open ${path}`);
    }
    return new NvList().addString('cmd', 'open').addDescriptor('fd', index);
  }
  if (cmd === 'lstat') {
    const path = allowedName(limits, request, FA.LSTAT);
    if (!ctx.lstatInGuest) throw new CasperError(ERRNO.NOTSUP, 'no guest filesystem to stat in');
    let st: GuestFilestat;
    try {
      st = await ctx.lstatInGuest(path);
    } catch (e) {
      if (e instanceof GuestOpNeeded) throw e;
      throw new CasperError(errnoOf(e), `lstat ${path}`);
    }
    return new NvList().addString('cmd', 'lstat').addBinary('stat', packStat(st));
  }
  if (cmd === 'realpath') {
    const path = allowedName(limits, request, FA.REALPATH);
    if (!ctx.realpathInGuest) throw new CasperError(ERRNO.NOTSUP, 'no guest filesystem to resolve in');
    let resolved: string;
    try {
      resolved = await ctx.realpathInGuest(path);
    } catch (e) {
      if (e instanceof GuestOpNeeded) throw e;
      throw new CasperError(errnoOf(e), `realpath ${path}`);
    }
    return new NvList().addString('realpath', resolved);
  }
  throw new CasperError(ERRNO.INVAL, `unknown command ${cmd}`);
}

export const service: CasperService = {
  name: 'system.fileargs',
  limit,
  command,
  fromManifest(grant) {
    checkKeys('system.fileargs', grant, [], 'the guest sets fileargs limits itself, once, with fileargs_init');
    return null;
  },
};

export default service;

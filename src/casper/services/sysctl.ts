/**
 * system.sysctl: FreeBSD's cap_sysctl (lib/libcasper/services/cap_sysctl/cap_sysctl.c, the 2018
 * interface) over a virtual, per-sandbox sysctl tree. Nothing of the host is read.
 *
 * Requests, exactly as cap_sysctl.c's client (do_sysctl) sends them:
 *   { cmd: "sysctlbyname", name: string, operation: number, [justsize: null | oldlen: number], [newp: binary] }
 *   { cmd: "sysctl",       mib: binary (int32 LE array), operation, [justsize | oldlen], [newp] }
 *   { cmd: "sysctlnametomib", name: string, operation: 0, size: number (capacity, in ints) }
 *   operation = CAP_SYSCTL_READ (1) when the caller passed oldlenp, | CAP_SYSCTL_WRITE (2) when newp.
 * Replies:
 *   read with "justsize": { oldlen: number }     the size a read needs
 *   read with "oldlen":   { oldp: binary }       the value (its length is the new *oldlenp)
 *   write only:           {}
 *   sysctlnametomib:      { mib: binary }        int32 LE array
 * Errors: ENOTCAPABLE outside the limits; EINVAL for a malformed request (no/two ids, bad
 * operation, WRITE without newp, READ without justsize/oldlen, oldlen 0, a MIB shorter than 2 or
 * longer than 24); ENOENT for an unknown name or MIB; EISDIR for reading or writing a node;
 * ENOMEM when oldlen (or nametomib's size) is too small; EPERM for writing a read-only leaf;
 * EINVAL for a write of the wrong size (ints: fewer than 4 bytes; strings: maxlen or longer).
 *
 * Limits (sysctl_limit): an NV_FLAG_NO_UNIQUE nvlist of pairs named "limit", each an nvlist
 *   { name?: string, mib?: binary (int32 LE array), operation: number }
 * with at least one of name/mib and operation ⊆ READ|WRITE|RECURSIVE (0x4) holding READ or WRITE;
 * anything else is EINVAL. Every new entry must be allowed by the old limits (sysctl_allowed),
 * else ENOTCAPABLE. An empty set allows nothing. A request by name matches only entries with a
 * name, a request by MIB only entries with a MIB; RECURSIVE matches the name and "name.*" (whole
 * components), or any MIB the entry's MIB is a prefix of. sysctlnametomib is allowed when the name
 * matches a name entry, whatever its operation. cap_sysctl_limit_name() on the client records
 * the MIB too (it asks this service for it), so a name grant also allows its MIB.
 *
 * Manifest grant: { names: { "kern.ostype": read, hw: "read+recursive" }, mibs: { "6.3": read } }
 * (operations: read, write, rdwr/read+write, each optionally +recursive; names must exist in the
 * tree and get their MIB recorded too); {} = no limits.
 *
 * Operator config (ctx.config): { hostname?, domainname?, ncpu?, physmem?, osrelease? }.
 *
 * The tree (stable MIBs, FreeBSD's numbers where FreeBSD has fixed ones; long/u_long are 4 bytes
 * because guests are wasm32, ILP32):
 *   kern 1: ostype 1 "capsa", osrelease 2, osrevision 3 (int), version 4, argmax 8 (int),
 *     hostname 10 (string, writable, per sandbox), domainname 22 (string, writable, per sandbox),
 *     osreldate 24 (int), iov_max 35 (int), arandom 37 (opaque: min(oldlen, 256) random bytes),
 *     sync_on_panic 256 (int, writable, inert)
 *   debug 5: minidump 256 (int, writable, inert)
 *   hw 6: machine 1 "wasm32", model 2 "WebAssembly", ncpu 3 (int), byteorder 4 (int 1234),
 *     physmem 5 (u_long), usermem 6 (u_long), pagesize 7 (int 65536), floatingpoint 10 (int 1),
 *     machine_arch 11 "wasm32", realmem 12 (u_long)
 *   kern.sync_on_panic and debug.minidump are there so FreeBSD's sysctl_test.c runs unchanged:
 *   two writable ints under two different top-level nodes.
 *
 * Deviations from FreeBSD, on purpose:
 * - a limit entry with both a name and a MIB must have a MIB the old limits allow by MIB, or the
 *   MIB this tree gives that name; FreeBSD checks only the name of such an entry, so a client
 *   could smuggle any MIB in beside an allowed name;
 * - a malformed request is EINVAL where FreeBSD's service aborts (a missing "name" for
 *   sysctlbyname, a missing "size" for sysctlnametomib);
 * - a too-small oldlen is ENOMEM with no data (FreeBSD's service also drops the partial data).
 */
import { randomFillSync } from 'node:crypto';
import { NV_FLAG, NvList } from '../nvlist.js';
import { CasperError, type CasperService, type ServiceContext } from '../service.js';
import { ERRNO } from '../../wasi/constants.js';
import { GrantError, checkKeys, isRecord } from './common.js';

export const CAP_SYSCTL = { READ: 0x1, WRITE: 0x2, RDWR: 0x3, RECURSIVE: 0x4 } as const;

/** CTL_MAXNAME. */
export const CTL_MAXNAME = 24;

type Kind = 'node' | 'int' | 'ulong' | 'string' | 'arandom';

interface Values {
  hostname: string;
  domainname: string;
  ncpu: number;
  physmem: number;
  osrelease: string;
}

interface Oid {
  name: string;
  mib: number[];
  kind: Kind;
  /** Writable leaves keep their value in ctx.sandboxState; `initial` is the first value. */
  writable?: boolean;
  /** Strings: the longest value, NUL included (MAXHOSTNAMELEN = 256). */
  maxlen?: number;
  value?: (v: Values) => string | number;
}

const OIDS: Oid[] = [
  { name: 'kern', mib: [1], kind: 'node' },
  { name: 'kern.ostype', mib: [1, 1], kind: 'string', value: () => 'capsa' },
  { name: 'kern.osrelease', mib: [1, 2], kind: 'string', value: (v) => v.osrelease },
  { name: 'kern.osrevision', mib: [1, 3], kind: 'int', value: () => 199506 },
  { name: 'kern.version', mib: [1, 4], kind: 'string', value: (v) => `capsa ${v.osrelease} (wasm32)\n` },
  { name: 'kern.argmax', mib: [1, 8], kind: 'int', value: () => 262144 },
  { name: 'kern.hostname', mib: [1, 10], kind: 'string', writable: true, maxlen: 256, value: (v) => v.hostname },
  { name: 'kern.domainname', mib: [1, 22], kind: 'string', writable: true, maxlen: 256, value: (v) => v.domainname },
  { name: 'kern.osreldate', mib: [1, 24], kind: 'int', value: () => 1 },
  { name: 'kern.iov_max', mib: [1, 35], kind: 'int', value: () => 1024 },
  { name: 'kern.arandom', mib: [1, 37], kind: 'arandom' },
  { name: 'kern.sync_on_panic', mib: [1, 256], kind: 'int', writable: true, value: () => 0 },
  { name: 'debug', mib: [5], kind: 'node' },
  { name: 'debug.minidump', mib: [5, 256], kind: 'int', writable: true, value: () => 1 },
  { name: 'hw', mib: [6], kind: 'node' },
  { name: 'hw.machine', mib: [6, 1], kind: 'string', value: () => 'wasm32' },
  { name: 'hw.model', mib: [6, 2], kind: 'string', value: () => 'WebAssembly' },
  { name: 'hw.ncpu', mib: [6, 3], kind: 'int', value: (v) => v.ncpu },
  { name: 'hw.byteorder', mib: [6, 4], kind: 'int', value: () => 1234 },
  { name: 'hw.physmem', mib: [6, 5], kind: 'ulong', value: (v) => v.physmem },
  { name: 'hw.usermem', mib: [6, 6], kind: 'ulong', value: (v) => v.physmem },
  { name: 'hw.pagesize', mib: [6, 7], kind: 'int', value: () => 65536 },
  { name: 'hw.floatingpoint', mib: [6, 10], kind: 'int', value: () => 1 },
  { name: 'hw.machine_arch', mib: [6, 11], kind: 'string', value: () => 'wasm32' },
  { name: 'hw.realmem', mib: [6, 12], kind: 'ulong', value: (v) => v.physmem },
];

const BY_NAME = new Map(OIDS.map((o) => [o.name, o]));
const BY_MIB = new Map(OIDS.map((o) => [o.mib.join('.'), o]));

/** The MIB of a name in the virtual tree, or undefined (for tests and the broker). */
export function sysctlNameToMib(name: string): number[] | undefined {
  return BY_NAME.get(name)?.mib.slice();
}

/** Every name of the virtual tree, in MIB order (for docs and `capsa manifest` hints). */
export function sysctlNames(): string[] {
  return OIDS.map((o) => o.name);
}

function values(config: unknown): Values {
  const c = isRecord(config) ? config : {};
  const str = (k: string, d: string): string => (typeof c[k] === 'string' ? c[k] as string : d);
  const int = (k: string, d: number, max: number): number => {
    const v = c[k];
    return typeof v === 'number' && Number.isInteger(v) && v >= 0 ? Math.min(v, max) : d;
  };
  return {
    hostname: str('hostname', 'capsa'),
    domainname: str('domainname', ''),
    ncpu: int('ncpu', 1, 0x7fffffff),
    physmem: int('physmem', 64 * 1024 * 1024, 0xffffffff),
    osrelease: str('osrelease', '0.1.0'),
  };
}

const overlayKey = (o: Oid): string => `sysctl:${o.name}`;

/** The current bytes of a leaf (strings without their NUL). */
function current(o: Oid, ctx: ServiceContext): Uint8Array {
  const stored = ctx.sandboxState.get(overlayKey(o));
  if (stored instanceof Uint8Array) return stored;
  const v = o.value?.(values(ctx.config)) ?? 0;
  if (o.kind === 'string') return new TextEncoder().encode(String(v));
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, Number(v) >>> 0, true);
  return b;
}

function decodeMib(bytes: Uint8Array): number[] | undefined {
  if (bytes.length % 4 !== 0) return undefined;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: number[] = [];
  for (let i = 0; i < bytes.length; i += 4) out.push(dv.getInt32(i, true));
  return out;
}

function encodeMib(mib: number[]): Uint8Array {
  const b = new Uint8Array(mib.length * 4);
  const dv = new DataView(b.buffer);
  mib.forEach((m, i) => dv.setInt32(i * 4, m, true));
  return b;
}

/**
 * sysctl_valid: `limit` entries may hold both a name and a MIB and the RECURSIVE flag and nothing
 * else; requests hold exactly one id and only READ/WRITE (and may hold other pairs).
 */
function valid(nvl: NvList, limit: boolean): number {
  if (nvl.error) return ERRNO.INVAL;
  let hasName = false;
  let hasMib = false;
  let hasOp = false;
  for (const [name, v] of nvl.pairs) {
    if ((name === 'name' && v.type === 'string') || (name === 'mib' && v.type === 'binary')) {
      if (v.type === 'binary' && v.value.length % 4 !== 0) return ERRNO.INVAL;
      const isMib = name === 'mib';
      if ((isMib ? hasMib : hasName) || (!limit && (hasName || hasMib))) return ERRNO.INVAL;
      if (isMib) hasMib = true; else hasName = true;
    } else if (name === 'operation') {
      if (v.type !== 'number') return ERRNO.INVAL;
      const mask = BigInt(limit ? CAP_SYSCTL.RDWR | CAP_SYSCTL.RECURSIVE : CAP_SYSCTL.RDWR);
      if ((v.value & ~mask) !== 0n || (v.value & BigInt(CAP_SYSCTL.RDWR)) === 0n) return ERRNO.INVAL;
      if (hasOp) return ERRNO.INVAL;
      hasOp = true;
    } else if (limit) {
      return ERRNO.INVAL;
    }
  }
  return hasOp && (hasName || hasMib) ? 0 : ERRNO.INVAL;
}

interface Req { name?: string; mib?: number[]; op: number }

/** sysctl_allowed. */
function allowed(limits: NvList | null, req: Req): boolean {
  if (limits === null) return true;
  for (const [, v] of limits.pairs) {
    if (v.type !== 'nvlist') continue;
    const l = v.value;
    const op = Number(l.getNumber('operation') ?? 0n);
    if ((req.op & op) !== req.op) continue;
    const recursive = (op & CAP_SYSCTL.RECURSIVE) !== 0;
    if (req.name !== undefined) {
      const lname = l.getString('name');
      if (lname === undefined) continue;
      if (!recursive) {
        if (lname !== req.name) continue;
      } else {
        if (!req.name.startsWith(lname)) continue;
        const next = req.name.charAt(lname.length);
        if (next !== '.' && next !== '') continue;
      }
    } else if (req.mib !== undefined) {
      const lbin = l.getBinary('mib');
      const lmib = lbin ? decodeMib(lbin) : undefined;
      if (lmib === undefined) continue;
      if (lmib.length > req.mib.length || (!recursive && lmib.length < req.mib.length)) continue;
      if (!lmib.every((m, i) => m === req.mib![i])) continue;
    } else {
      continue;
    }
    return true;
  }
  return false;
}

function limit(oldLimits: NvList | null, newLimits: NvList): number {
  for (const [name, v] of newLimits.pairs) {
    if (name !== 'limit' || v.type !== 'nvlist') return ERRNO.INVAL;
    const entry = v.value;
    const err = valid(entry, true);
    if (err !== 0) return err;
    const op = Number(entry.getNumber('operation')!);
    const lname = entry.getString('name');
    const lbin = entry.getBinary('mib');
    const lmib = lbin ? decodeMib(lbin)! : undefined;
    if (lname !== undefined) {
      if (!allowed(oldLimits, { name: lname, op })) return ERRNO.NOTCAPABLE;
      // Deviation: the MIB beside an allowed name must be allowed by MIB, or be that name's MIB.
      if (lmib !== undefined && oldLimits !== null && !allowed(oldLimits, { mib: lmib, op })) {
        const own = BY_NAME.get(lname)?.mib;
        if (!own || own.length !== lmib.length || !own.every((m, i) => m === lmib[i])) return ERRNO.NOTCAPABLE;
      }
    } else if (!allowed(oldLimits, { mib: lmib!, op })) {
      return ERRNO.NOTCAPABLE;
    }
  }
  return 0;
}

function nametomib(limits: NvList | null, request: NvList): NvList {
  const name = request.getString('name');
  if (name === undefined) throw new CasperError(ERRNO.INVAL, 'missing string "name"');
  if (!allowed(limits, { name, op: Number(BigInt.asUintN(32, request.getNumber('operation') ?? 0n)) })) {
    throw new CasperError(ERRNO.NOTCAPABLE, `${name} is outside this channel's limits`);
  }
  const size = request.getNumber('size');
  if (size === undefined) throw new CasperError(ERRNO.INVAL, 'missing number "size"');
  const oid = BY_NAME.get(name);
  if (!oid) throw new CasperError(ERRNO.NOENT, `no sysctl ${name}`);
  if (BigInt(oid.mib.length) > size) throw new CasperError(ERRNO.NOMEM, `${name} needs ${oid.mib.length} ints`);
  return new NvList().addBinary('mib', encodeMib(oid.mib));
}

function command(cmd: string, limits: NvList | null, request: NvList, ctx: ServiceContext): NvList {
  if (cmd === 'sysctlnametomib') return nametomib(limits, request);
  if (cmd !== 'sysctlbyname' && cmd !== 'sysctl') throw new CasperError(ERRNO.INVAL, `unknown command ${cmd}`);
  const err = valid(request, false);
  if (err !== 0) throw new CasperError(err, 'malformed sysctl request');
  const op = Number(request.getNumber('operation')!);
  let req: Req;
  if (cmd === 'sysctlbyname') {
    const name = request.getString('name');
    if (name === undefined) throw new CasperError(ERRNO.INVAL, 'sysctlbyname needs a "name"');
    req = { name, op };
  } else {
    const bin = request.getBinary('mib');
    if (bin === undefined) throw new CasperError(ERRNO.INVAL, 'sysctl needs a "mib"');
    req = { mib: decodeMib(bin)!, op };
  }
  if (!allowed(limits, req)) throw new CasperError(ERRNO.NOTCAPABLE, `${req.name ?? req.mib!.join('.')} is outside this channel's limits`);

  let newp: Uint8Array | undefined;
  if (op & CAP_SYSCTL.WRITE) {
    newp = request.getBinary('newp');
    if (newp === undefined) throw new CasperError(ERRNO.INVAL, 'a write needs "newp"');
  }
  let justsize = false;
  let oldlen = 0n;
  if (op & CAP_SYSCTL.READ) {
    if (request.exists('justsize', 'null')) {
      justsize = true;
    } else {
      const n = request.getNumber('oldlen');
      if (n === undefined || n === 0n) throw new CasperError(ERRNO.INVAL, 'a read needs "justsize" or a non-zero "oldlen"');
      oldlen = n;
    }
  }

  let oid: Oid | undefined;
  if (req.name !== undefined) {
    oid = BY_NAME.get(req.name);
  } else {
    if (req.mib!.length < 2 || req.mib!.length > CTL_MAXNAME) throw new CasperError(ERRNO.INVAL, 'a MIB has 2 to 24 components');
    oid = BY_MIB.get(req.mib!.join('.'));
  }
  if (!oid) throw new CasperError(ERRNO.NOENT, `no sysctl ${req.name ?? req.mib!.join('.')}`);
  if (oid.kind === 'node') throw new CasperError(ERRNO.ISDIR, `${oid.name} is a node`);

  const reply = new NvList();
  // Read first, then write: a handler does SYSCTL_OUT before SYSCTL_IN.
  if (op & CAP_SYSCTL.READ) {
    let value: Uint8Array;
    if (oid.kind === 'arandom') {
      value = new Uint8Array(justsize ? 256 : Math.min(Number(oldlen > 256n ? 256n : oldlen), 256));
      if (!justsize) randomFillSync(value);
    } else {
      const cur = current(oid, ctx);
      if (oid.kind === 'string') {
        value = new Uint8Array(cur.length + 1);
        value.set(cur);
      } else {
        value = cur;
      }
    }
    if (justsize) {
      reply.addNumber('oldlen', value.length);
    } else {
      if (oldlen < BigInt(value.length)) throw new CasperError(ERRNO.NOMEM, `${oid.name} needs ${value.length} bytes`);
      reply.addBinary('oldp', value.slice());
    }
  }
  if (newp !== undefined) {
    if (!oid.writable) throw new CasperError(ERRNO.PERM, `${oid.name} is read-only`);
    if (oid.kind === 'string') {
      if (newp.length >= (oid.maxlen ?? 256)) throw new CasperError(ERRNO.INVAL, `${oid.name} is at most ${(oid.maxlen ?? 256) - 1} bytes`);
      const nul = newp.indexOf(0);
      ctx.sandboxState.set(overlayKey(oid), newp.slice(0, nul < 0 ? newp.length : nul));
    } else {
      if (newp.length < 4) throw new CasperError(ERRNO.INVAL, `${oid.name} takes a 4-byte int`);
      ctx.sandboxState.set(overlayKey(oid), newp.slice(0, 4));
    }
  }
  return reply;
}

const OP_WORDS: Record<string, number> = {
  read: CAP_SYSCTL.READ, write: CAP_SYSCTL.WRITE, rdwr: CAP_SYSCTL.RDWR, recursive: CAP_SYSCTL.RECURSIVE,
};

function operation(path: string, v: unknown): number {
  const words = Array.isArray(v) ? v : typeof v === 'string' ? v.split(/[+,\s|]+/).filter(Boolean) : null;
  if (!words || words.length === 0) throw new GrantError('system.sysctl', `${path}: an operation is read, write, rdwr or read+write, optionally +recursive`);
  let op = 0;
  for (const w of words) {
    const bit = typeof w === 'string' ? OP_WORDS[w.toLowerCase()] : undefined;
    if (bit === undefined) throw new GrantError('system.sysctl', `${path}: unknown operation ${JSON.stringify(w)}; operations are read, write, rdwr, recursive`);
    op |= bit;
  }
  if ((op & CAP_SYSCTL.RDWR) === 0) throw new GrantError('system.sysctl', `${path}: recursive alone grants nothing; add read or write`);
  return op;
}

function fromManifest(grant: Record<string, unknown>): NvList | null {
  checkKeys('system.sysctl', grant, ['names', 'mibs']);
  if (Object.keys(grant).length === 0) return null;
  const limits = new NvList(NV_FLAG.NO_UNIQUE);
  for (const key of ['names', 'mibs'] as const) {
    if (!(key in grant)) continue;
    const map = grant[key];
    if (!isRecord(map)) throw new GrantError('system.sysctl', `${key} is a mapping of ${key === 'names' ? 'sysctl names' : 'dotted MIBs'} to operations, e.g. { ${key === 'names' ? 'kern.ostype' : '"6.3"'}: read }`);
    for (const [id, opv] of Object.entries(map)) {
      const op = operation(`${key}.${id}`, opv);
      const entry = new NvList();
      if (key === 'names') {
        const oid = BY_NAME.get(id);
        if (!oid) {
          const near = OIDS.map((o) => o.name).filter((n) => n.startsWith(id.split('.')[0] ?? '')).slice(0, 6);
          throw new GrantError('system.sysctl', `unknown sysctl "${id}"${near.length ? `; known under that node: ${near.join(', ')}` : `; top-level nodes are kern, debug, hw`}`);
        }
        entry.addString('name', id);
        entry.addBinary('mib', encodeMib(oid.mib));
      } else {
        if (!/^-?\d+(\.-?\d+)*$/.test(id)) throw new GrantError('system.sysctl', `mibs: "${id}" is not a dotted MIB such as "6.3"`);
        const mib = id.split('.').map(Number);
        if (mib.length > CTL_MAXNAME || mib.some((m) => m < -0x80000000 || m > 0x7fffffff)) throw new GrantError('system.sysctl', `mibs: "${id}" is not a valid MIB`);
        entry.addBinary('mib', encodeMib(mib));
      }
      entry.addNumber('operation', op);
      limits.addNvlist('limit', entry);
    }
  }
  return limits;
}

export const service: CasperService = {
  name: 'system.sysctl',
  limit,
  command,
  fromManifest,
};

export default service;

/**
 * system.net: FreeBSD's cap_net (lib/libcasper/services/cap_net/cap_net.c): name resolution and
 * the connections a sandboxed program still needs, under limits that only narrow. The host opens
 * the connection (or the listener) and hands the guest a socket descriptor, as libcasper passes
 * descriptors; a name or address outside the limits is refused before anything is sent.
 *
 * Numbers, sockaddrs and netdb values are wasi-libc's and FreeBSD's netdb.h, as in system.dns
 * (./dns.ts): AF_INET 1, AF_INET6 2; sockaddr_in 16 bytes, sockaddr_in6 32 bytes.
 *
 * Requests and replies (cap_net.c's client, except that no socket travels with the request:
 * a WASI guest cannot make one, so the service makes it):
 *   { cmd: "connect", saddr: binary (sockaddr) }  → { s: descriptor }  a connected stream socket
 *       (CAP_RECV, CAP_SEND, CAP_SHUTDOWN, CAP_EVENT…)
 *   { cmd: "bind", saddr: binary }                → { s: descriptor }  a listening socket
 *       (CAP_ACCEPT, CAP_EVENT…; what it accepts gets the stream rights): WASI preview1 has no
 *       listen(2), so bind also listens
 *   { cmd: "getaddrinfo" | "getnameinfo" | "gethostbyname" | "gethostbyaddr", … }  exactly
 *       system.dns's requests and replies, answered by the same resolver
 * A refusal answers ENOTCAPABLE (76), from every command, as FreeBSD's service does (the SDK's
 * cap_getaddrinfo turns it into EAI_SYSTEM with errno ENOTCAPABLE); a failed connect or bind
 * answers its errno (ECONNREFUSED, EADDRINUSE…); a malformed sockaddr EINVAL.
 *
 * Limits (net_limit):
 *   mode: number        CAPNET_* bits (CAPNET below); required in every limit_set, ⊆ the old mode
 *   connect: { sockaddr: NO_UNIQUE { NAME: binary, … }, the addresses connect may reach
 *              hosts: NO_UNIQUE { name: port, … } }     capsa's addition: an address that
 *                                                        name2addr resolved from `name` on this
 *                                                        channel, at that port ("" any port)
 *   bind:    { sockaddr: NO_UNIQUE { NAME: binary, … } }
 *   name2addr: { family: number_array, hosts: NO_UNIQUE { host: servname, … } }
 *                (host "*" any host, servname "" any service)
 *   addr2name: { family: number_array, sockaddr: NO_UNIQUE { NAME: binary, … } }
 * The sockaddr lists' pair names do not matter (FreeBSD's client uses "", which capsa's libnv
 * refuses: the SDK uses "sockaddr"), and FreeBSD's "any host" "" is "*" here, for the same reason.
 * - absent (no limits at all, or a category missing) = everything, FreeBSD's "absent = all";
 * - every new mode bit, sockaddr, family and host must be allowed by the old limits, and a
 *   category the old limits have must be in the new ones: else ENOTCAPABLE;
 * - a pair of another type, an unknown category, a malformed sockaddr or mode bits outside
 *   CAPNET_*: EINVAL (FreeBSD: NO_RECOVERY, or ignored).
 * With CAPNET_CONNECTDNS, connect may also reach any address that getaddrinfo (at its port) or
 * gethostbyname (at any port) returned on this channel; cloned channels start with none.
 *
 * Manifest grant (every key optional; {} = no limits):
 *   mode: [connect, name2addr, addr2name, bind, connectdns, deprecated_name2addr, deprecated_addr2name]
 *         (absent: every mode the other keys need none of, i.e. all)
 *   connect: ["127.0.0.1:5432", "[::1]:80", "api.example.org:443"]   (a name goes in "hosts")
 *   bind: ["127.0.0.1:8080"]
 *   name2addr: { hosts: { api.example.org: "443" }, family: [inet, inet6] }
 *   addr2name: { family: [inet], addresses: ["192.0.2.1:0"] }
 *
 * Operator config (ctx.config): system.dns's ({ servers, timeout, tries }).
 *
 * Deviations from FreeBSD, on purpose:
 * - connect and bind make the socket (no descriptor "s" in the request), and bind listens;
 * - sockaddrs compare by family, address, port and scope, not byte for byte (padding and
 *   sin6_flowinfo do not count);
 * - gethostbyaddr compares its address with addr2name's sockaddrs, port aside (FreeBSD compares
 *   the bare address with whole sockaddrs, which never match);
 * - host names compare case-insensitively, without a trailing dot;
 * - the CONNECTDNS cache is per channel, not per service process.
 */
import { NvList, NV_FLAG, type NvValue } from '../nvlist.js';
import { CasperError, type CasperService, type NetDecision, type ServiceContext } from '../service.js';
import { ERRNO } from '../../wasi/constants.js';
import dns, { AF, SOCKADDR_IN6_SIZE, SOCKADDR_IN_SIZE, familyOf, formatIPv4, formatIPv6, normalizeHost, parseIPv4, parseIPv6, sockaddr } from './dns.js';
import { GrantError, asInt, checkKeys, errnoOf, isRecord, listOf } from './common.js';
import { isIP } from 'node:net';

/** cap_net.h's modes. */
export const CAPNET = {
  ADDR2NAME: 0x01, NAME2ADDR: 0x02, DEPRECATED_ADDR2NAME: 0x04, DEPRECATED_NAME2ADDR: 0x08,
  CONNECT: 0x10, BIND: 0x20, CONNECTDNS: 0x40,
} as const;
const CAPNET_MASK = 0x7f;
const CATEGORIES = ['connect', 'bind', 'name2addr', 'addr2name'] as const;
type Category = typeof CATEGORIES[number];

// ---------------------------------------------------------------------------------------------
// Sockaddrs

/** A sockaddr as the limits compare it. */
export interface Sockaddr { family: number; addr: Uint8Array; port: number; scope: number }

/** A wasi-libc sockaddr_in/sockaddr_in6, or undefined when it is neither. */
export function readSockaddr(b: Uint8Array): Sockaddr | undefined {
  if (b.length < 2) return undefined;
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const family = dv.getUint16(0, true);
  if (family === AF.INET && b.length === SOCKADDR_IN_SIZE) return { family, port: dv.getUint16(2, false), addr: b.slice(4, 8), scope: 0 };
  if (family === AF.INET6 && b.length === SOCKADDR_IN6_SIZE) return { family, port: dv.getUint16(2, false), addr: b.slice(8, 24), scope: dv.getUint32(24, true) };
  return undefined;
}

const ipText = (sa: Sockaddr): string => (sa.family === AF.INET ? formatIPv4(sa.addr) : formatIPv6(sa.addr));

/** "127.0.0.1:80", "[::1]:80": how messages and the audit trail name an address. */
export function sockaddrText(sa: Sockaddr): string {
  return sa.family === AF.INET ? `${ipText(sa)}:${sa.port}` : `[${ipText(sa)}]:${sa.port}`;
}

function sameAddress(a: Sockaddr, b: Sockaddr): boolean {
  return a.family === b.family && a.scope === b.scope && a.addr.length === b.addr.length && a.addr.every((x, i) => x === b.addr[i]);
}
const sameSockaddr = (a: Sockaddr, b: Sockaddr): boolean => sameAddress(a, b) && a.port === b.port;

/** Parses "1.2.3.4:80" or "[::1]:80" (a literal address and a port) into a sockaddr's bytes. */
export function sockaddrOf(spec: string): Uint8Array | undefined {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(spec) ?? /^([^:[\]]+):(\d+)$/.exec(spec);
  if (!m || Number(m[2]) > 65535) return undefined;
  const v = isIP(m[1]!);
  if (v === 4 && !spec.startsWith('[')) return sockaddr(AF.INET, parseIPv4(m[1]!), Number(m[2]));
  if (v === 6 && spec.startsWith('[')) return sockaddr(AF.INET6, parseIPv6(m[1]!), Number(m[2]));
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Limits

const category = (limits: NvList | null, c: Category): NvList | null => limits?.getNvlist(c) ?? null;

function allowedMode(limits: NvList | null, mode: number): boolean {
  if (limits === null) return true;
  const m = limits.getNumber('mode');
  return m !== undefined && (Number(m & BigInt(CAPNET_MASK)) & mode) === mode;
}

function sockaddrsOf(list: NvList | undefined): Sockaddr[] {
  return (list?.pairs ?? []).flatMap(([, v]) => (v.type === 'binary' ? [readSockaddr(v.value)].filter((x): x is Sockaddr => x !== undefined) : []));
}

/** net_allowed_bsaddr: no sockaddr list allows every address. */
function allowedSockaddr(func: NvList | null, sa: Sockaddr, match = sameSockaddr): boolean {
  const list = func?.getNvlist('sockaddr');
  return list === undefined || sockaddrsOf(list).some((x) => match(x, sa));
}

function allowedFamily(func: NvList | null, family: number): boolean {
  const f = func?.get('family', 'number_array');
  return f === undefined || f.value.some((x) => x === BigInt(family));
}

const hostKey = (h: string): string => normalizeHost(h) ?? h.toLowerCase();

/** net_allowed_hosts: { host: serv } pairs, host "*" and serv "" matching anything. No hosts list allows every name. */
function allowedHostServ(func: NvList | null, host: string, serv: string): boolean {
  const hosts = func?.getNvlist('hosts');
  if (hosts === undefined) return true;
  const h = hostKey(host);
  return hosts.pairs.some(([n, v]) => v.type === 'string' && (n === '*' || hostKey(n) === h) && (v.value === '' || v.value === serv));
}

/** Whether a connect limit restricts anything: FreeBSD's "no sockaddr = all", with capsa's hosts. */
const connectRestricts = (func: NvList | null): boolean => func !== null && (func.exists('sockaddr') || func.exists('hosts'));

function checkSockaddrList(v: NvValue, allowed: (sa: Sockaddr) => boolean): number {
  if (v.type !== 'nvlist') return ERRNO.INVAL;
  for (const [, x] of v.value.pairs) {
    const sa = x.type === 'binary' ? readSockaddr(x.value) : undefined;
    if (!sa) return ERRNO.INVAL;
    if (!allowed(sa)) return ERRNO.NOTCAPABLE;
  }
  return 0;
}

function checkFamilies(v: NvValue, old: NvList | null): number {
  if (v.type !== 'number_array') return ERRNO.INVAL;
  return v.value.every((f) => allowedFamily(old, asInt(f))) ? 0 : ERRNO.NOTCAPABLE;
}

function checkHosts(v: NvValue, allowed: (host: string, serv: string) => boolean): number {
  if (v.type !== 'nvlist') return ERRNO.INVAL;
  for (const [name, x] of v.value.pairs) {
    if (x.type !== 'string') return ERRNO.INVAL;
    if (!allowed(name, x.value)) return ERRNO.NOTCAPABLE;
  }
  return 0;
}

/** The verify_*_newlimits of one category: 0, ENOTCAPABLE (wider) or EINVAL (malformed). */
function checkCategory(c: Category, old: NvList | null, next: NvList): number {
  for (const [key, v] of next.pairs) {
    let e: number;
    if (key === 'sockaddr' && c !== 'name2addr') {
      e = c === 'connect'
        ? checkSockaddrList(v, (sa) => !connectRestricts(old) || sockaddrsOf(old!.getNvlist('sockaddr')).some((x) => sameSockaddr(x, sa)))
        : checkSockaddrList(v, (sa) => allowedSockaddr(old, sa));
    } else if (key === 'family' && (c === 'name2addr' || c === 'addr2name')) {
      e = checkFamilies(v, old);
    } else if (key === 'hosts' && c === 'name2addr') {
      e = checkHosts(v, (h, s) => allowedHostServ(old, h, s));
    } else if (key === 'hosts' && c === 'connect') {
      e = checkHosts(v, (h, s) => !connectRestricts(old) || (old!.exists('hosts') && allowedHostServ(old, h, s)));
    } else {
      e = ERRNO.INVAL;
    }
    if (e !== 0) return e;
  }
  return 0;
}

/** net_limit: the new limits must lie within the old ones. */
function limit(oldLimits: NvList | null, newLimits: NvList): number {
  if (newLimits.error) return ERRNO.INVAL;
  let hasMode = false;
  const seen = new Set<string>();
  for (const [name, v] of newLimits.pairs) {
    if (seen.has(name)) return ERRNO.INVAL;
    seen.add(name);
    if (name === 'mode') {
      if (v.type !== 'number' || (v.value & ~BigInt(CAPNET_MASK)) !== 0n) return ERRNO.INVAL;
      if (!allowedMode(oldLimits, Number(v.value))) return ERRNO.NOTCAPABLE;
      hasMode = true;
      continue;
    }
    if (!(CATEGORIES as readonly string[]).includes(name) || v.type !== 'nvlist') return ERRNO.INVAL;
    const e = checkCategory(name as Category, category(oldLimits, name as Category), v.value);
    if (e !== 0) return e;
  }
  // FreeBSD: the mode is required on every call.
  if (!hasMode) return ERRNO.NOTCAPABLE;
  if (oldLimits !== null && CATEGORIES.some((c) => oldLimits.exists(c) && !seen.has(c))) return ERRNO.NOTCAPABLE;
  return 0;
}

// ---------------------------------------------------------------------------------------------
// Commands

/** What name2addr returned on a channel: for CONNECTDNS and for connect's named hosts. */
interface Resolved { host: string; sa: Sockaddr; anyPort: boolean }
const RESOLVED = 'resolved';
/** Most addresses a channel remembers; the oldest go first. */
const MAX_RESOLVED = 1024;

function resolvedOf(ctx: ServiceContext): Resolved[] {
  let r = ctx.channelState.get(RESOLVED) as Resolved[] | undefined;
  if (!r) ctx.channelState.set(RESOLVED, r = []);
  return r;
}

function remember(ctx: ServiceContext, entries: Resolved[]): void {
  const r = resolvedOf(ctx);
  for (const e of entries) {
    if (!r.some((x) => x.host === e.host && x.anyPort === e.anyPort && sameSockaddr(x.sa, e.sa))) r.push(e);
  }
  if (r.length > MAX_RESOLVED) r.splice(0, r.length - MAX_RESOLVED);
}

/** Refuses a call: audited, answered ENOTCAPABLE. */
function refuse(ctx: ServiceContext, call: string, address: string, why: string): never {
  const message = `system.net refused ${call} ${address}: ${why}`;
  ctx.audit?.({ call: `cap_${call}`, address, errno: ERRNO.NOTCAPABLE, message });
  throw new CasperError(ERRNO.NOTCAPABLE, message);
}

function requestSockaddr(req: NvList, call: string): Sockaddr {
  const b = req.getBinary('saddr');
  const sa = b ? readSockaddr(b) : undefined;
  if (!sa) throw new CasperError(ERRNO.INVAL, `${call}: "saddr" is not a sockaddr_in (16 bytes) or sockaddr_in6 (32 bytes)`);
  return sa;
}

/** Whether connect may reach `sa`, and if not, why. */
function connectRefusal(limits: NvList | null, sa: Sockaddr, ctx: ServiceContext): string | undefined {
  const conn = allowedMode(limits, CAPNET.CONNECT);
  const conndns = allowedMode(limits, CAPNET.CONNECTDNS);
  if (!conn && !conndns) return 'neither CAPNET_CONNECT nor CAPNET_CONNECTDNS is in this channel\'s mode';
  const func = category(limits, 'connect');
  const resolved = resolvedOf(ctx);
  if (conn) {
    if (!connectRestricts(func)) return undefined;
    if (sockaddrsOf(func!.getNvlist('sockaddr')).some((x) => sameSockaddr(x, sa))) return undefined;
    const hosts = func!.getNvlist('hosts');
    if (hosts && resolved.some((r) => sameAddress(r.sa, sa) && allowedHostServ(func, r.host, String(sa.port)))) return undefined;
  }
  if (conndns && resolved.some((r) => (r.anyPort ? sameAddress(r.sa, sa) : sameSockaddr(r.sa, sa)))) return undefined;
  return conn ? 'not in this channel\'s connect limits' : 'not an address name2addr returned on this channel (CAPNET_CONNECTDNS)';
}

async function connect(limits: NvList | null, req: NvList, ctx: ServiceContext): Promise<NvList> {
  const sa = requestSockaddr(req, 'connect');
  const address = sockaddrText(sa);
  const why = connectRefusal(limits, sa, ctx);
  if (why !== undefined) refuse(ctx, 'connect', address, why);
  return open(ctx, 'connect', sa, ctx.connectSocket);
}

async function bind(limits: NvList | null, req: NvList, ctx: ServiceContext): Promise<NvList> {
  const sa = requestSockaddr(req, 'bind');
  const address = sockaddrText(sa);
  if (!allowedMode(limits, CAPNET.BIND)) refuse(ctx, 'bind', address, 'CAPNET_BIND is not in this channel\'s mode');
  if (!allowedSockaddr(category(limits, 'bind'), sa)) refuse(ctx, 'bind', address, 'not in this channel\'s bind limits');
  return open(ctx, 'bind', sa, ctx.bindSocket);
}

async function open(ctx: ServiceContext, call: string, sa: Sockaddr, how: ServiceContext['connectSocket']): Promise<NvList> {
  const address = sockaddrText(sa);
  if (!how) throw new CasperError(ERRNO.NOTSUP, `${call} ${address}: this run cannot hold sockets (its host gave the broker none)`);
  let index: number;
  try {
    index = await how({ host: ipText(sa), port: sa.port });
  } catch (e) {
    const errno = errnoOf(e);
    const d: NetDecision = { call: `cap_${call}`, address, errno, message: `system.net ${call} ${address} failed: ${(e as Error)?.message ?? String(e)}` };
    ctx.audit?.(d);
    throw new CasperError(errno, d.message);
  }
  ctx.audit?.({ call: `cap_${call}`, address, errno: 0, message: `system.net ${call} ${address}` });
  return new NvList().addDescriptor('s', index);
}

/** The resolver's commands, under system.net's own checks, answered by system.dns's code. */
async function lookup(cmd: string, limits: NvList | null, req: NvList, ctx: ServiceContext): Promise<NvList> {
  const deprecated = cmd === 'gethostbyname' || cmd === 'gethostbyaddr';
  const forward = cmd === 'gethostbyname' || cmd === 'getaddrinfo';
  const mode = forward ? (deprecated ? CAPNET.DEPRECATED_NAME2ADDR : CAPNET.NAME2ADDR) : (deprecated ? CAPNET.DEPRECATED_ADDR2NAME : CAPNET.ADDR2NAME);
  const modeName = Object.entries(CAPNET).find(([, v]) => v === mode)![0];
  const func = category(limits, forward ? 'name2addr' : 'addr2name');
  let what: string;
  if (cmd === 'getaddrinfo') {
    const host = req.getString('hostname');
    const serv = req.getString('servname');
    what = `${host ?? ''}${serv !== undefined ? `:${serv}` : ''}`;
    if (!allowedMode(limits, mode)) refuse(ctx, cmd, what, `CAPNET_${modeName} is not in this channel's mode`);
    const family = req.exists('hints.ai_flags', 'number') ? asInt(req.getNumber('hints.ai_family') ?? 0n) : AF.UNSPEC;
    if (!allowedFamily(func, family)) refuse(ctx, cmd, what, `family ${family} is not in this channel's name2addr families`);
    if (!allowedHostServ(func, host ?? '', serv ?? '')) refuse(ctx, cmd, what, 'not in this channel\'s name2addr hosts');
  } else if (cmd === 'gethostbyname') {
    what = req.getString('name') ?? '';
    if (!allowedMode(limits, mode)) refuse(ctx, cmd, what, `CAPNET_${modeName} is not in this channel's mode`);
    const family = asInt(req.getNumber('family') ?? 0n);
    if (!allowedFamily(func, family)) refuse(ctx, cmd, what, `family ${family} is not in this channel's name2addr families`);
    if (!allowedHostServ(func, what, '')) refuse(ctx, cmd, what, 'not in this channel\'s name2addr hosts');
  } else if (cmd === 'getnameinfo') {
    const b = req.getBinary('sa');
    const sa = b ? readSockaddr(b) : undefined;
    what = sa ? sockaddrText(sa) : '(no address)';
    if (!allowedMode(limits, mode)) refuse(ctx, cmd, what, `CAPNET_${modeName} is not in this channel's mode`);
    if (sa && !allowedSockaddr(func, sa)) refuse(ctx, cmd, what, 'not in this channel\'s addr2name addresses');
    if (sa && !allowedFamily(func, sa.family)) refuse(ctx, cmd, what, `family ${sa.family} is not in this channel's addr2name families`);
  } else {
    const addr = req.getBinary('addr');
    const family = asInt(req.getNumber('family') ?? 0n);
    what = addr?.length === 4 ? formatIPv4(addr) : addr?.length === 16 ? formatIPv6(addr) : '(no address)';
    if (!allowedMode(limits, mode)) refuse(ctx, cmd, what, `CAPNET_${modeName} is not in this channel's mode`);
    if (!allowedFamily(func, family)) refuse(ctx, cmd, what, `family ${family} is not in this channel's addr2name families`);
    if (addr && (addr.length === 4 || addr.length === 16)) {
      const sa: Sockaddr = { family: addr.length === 4 ? AF.INET : AF.INET6, addr, port: 0, scope: 0 };
      if (!allowedSockaddr(func, sa, sameAddress)) refuse(ctx, cmd, what, 'not in this channel\'s addr2name addresses');
    }
  }
  const reply = await dns.command(cmd, null, req, ctx);
  if (forward) {
    const host = cmd === 'getaddrinfo' ? req.getString('hostname') : req.getString('name');
    if (host !== undefined) remember(ctx, resolvedIn(reply, hostKey(host), cmd === 'gethostbyname'));
  }
  return reply;
}

/** The addresses of a getaddrinfo reply (each at its port) or a hostent (at any port). */
function resolvedIn(reply: NvList, host: string, hostent: boolean): Resolved[] {
  if (hostent) {
    const family = asInt(reply.getNumber('addrtype') ?? 0n);
    return reply.pairs.flatMap(([n, v]) => (n.startsWith('addr') && v.type === 'binary'
      ? [{ host, anyPort: true, sa: { family, addr: v.value.slice(), port: 0, scope: 0 } }] : []));
  }
  return reply.pairs.flatMap(([n, v]) => {
    if (!n.startsWith('res') || v.type !== 'nvlist') return [];
    const b = v.value.getBinary('ai_addr');
    const sa = b ? readSockaddr(b) : undefined;
    return sa ? [{ host, anyPort: false, sa }] : [];
  });
}

async function command(cmd: string, limits: NvList | null, request: NvList, ctx: ServiceContext): Promise<NvList> {
  switch (cmd) {
    case 'connect': return connect(limits, request, ctx);
    case 'bind': return bind(limits, request, ctx);
    case 'getaddrinfo': case 'getnameinfo': case 'gethostbyname': case 'gethostbyaddr':
      return lookup(cmd, limits, request, ctx);
    default: throw new CasperError(ERRNO.INVAL, `unknown command ${cmd}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Manifest

const S = 'system.net';
const MODE_WORDS: Record<string, number> = Object.fromEntries(Object.entries(CAPNET).flatMap(([k, v]) => [[k.toLowerCase(), v], [`capnet_${k.toLowerCase()}`, v]]));

function families(key: string, v: unknown): NvValue {
  const items = listOf(S, key, v).map((f) => {
    const n = familyOf(f);
    if (n === undefined) throw new GrantError(S, `${key}: unknown family ${JSON.stringify(f)}; families are inet and inet6`);
    return BigInt(n);
  });
  return { type: 'number_array', value: items };
}

function sockaddrList(key: string, v: unknown, named?: NvList): NvList {
  const list = new NvList(NV_FLAG.NO_UNIQUE);
  for (const a of listOf(S, key, v)) {
    const spec = String(a);
    const b = sockaddrOf(spec);
    if (b) { list.addBinary('sockaddr', b); continue; }
    const m = /^([^:[\]]+):(\d+|\*)$/.exec(spec);
    const host = m ? normalizeHost(m[1]!) : undefined;
    if (named && m && host !== undefined && (m[2] === '*' || Number(m[2]) <= 65535)) {
      named.addString(host, m[2] === '*' ? '' : m[2]!);
      continue;
    }
    throw new GrantError(S, `${key}: ${JSON.stringify(a)} is not an address; use "127.0.0.1:5432" or "[::1]:80"${named ? ', or "api.example.org:443" for a name resolved through this channel' : ''}`);
  }
  return list;
}

function fromManifest(grant: Record<string, unknown>): NvList | null {
  checkKeys(S, grant, ['mode', ...CATEGORIES]);
  if (Object.keys(grant).length === 0) return null;
  const limits = new NvList();
  let mode = CAPNET_MASK;
  if ('mode' in grant) {
    mode = 0;
    for (const m of listOf(S, 'mode', grant.mode)) {
      const bit = typeof m === 'string' ? MODE_WORDS[m.toLowerCase()] : undefined;
      if (bit === undefined) throw new GrantError(S, `mode: unknown mode ${JSON.stringify(m)}; modes are ${Object.keys(CAPNET).map((k) => k.toLowerCase()).join(', ')}`);
      mode |= bit;
    }
  }
  limits.addNumber('mode', mode);
  for (const c of ['connect', 'bind'] as const) {
    if (!(c in grant)) continue;
    const named = c === 'connect' ? new NvList(NV_FLAG.NO_UNIQUE) : undefined;
    const sas = sockaddrList(c, grant[c], named);
    const l = new NvList();
    // Both lists, even an empty one: a connect limit with names only must not read as "any address".
    l.addNvlist('sockaddr', sas);
    if (named && !named.empty) l.addNvlist('hosts', named);
    limits.addNvlist(c, l);
  }
  if ('name2addr' in grant) {
    const g = grant.name2addr;
    if (!isRecord(g)) throw new GrantError(S, 'name2addr is { hosts: { NAME: PORT }, family: [inet, inet6] }');
    checkKeys(S, g, ['hosts', 'family']);
    const l = new NvList();
    if ('family' in g) l.add('family', families('name2addr.family', g.family));
    if ('hosts' in g) {
      if (!isRecord(g.hosts)) throw new GrantError(S, 'name2addr.hosts maps names to services, e.g. { api.example.org: "443" } ("" for any service)');
      const hosts = new NvList(NV_FLAG.NO_UNIQUE);
      for (const [h, serv] of Object.entries(g.hosts)) {
        const host = h === '*' ? '*' : normalizeHost(h);
        if (host === undefined) throw new GrantError(S, `name2addr.hosts: ${JSON.stringify(h)} is not a host name`);
        hosts.addString(host, serv === null || serv === '*' ? '' : String(serv));
      }
      l.addNvlist('hosts', hosts);
    }
    limits.addNvlist('name2addr', l);
  }
  if ('addr2name' in grant) {
    const g = grant.addr2name;
    if (!isRecord(g)) throw new GrantError(S, 'addr2name is { family: [inet, inet6], addresses: ["192.0.2.1:0"] }');
    checkKeys(S, g, ['family', 'addresses']);
    const l = new NvList();
    if ('family' in g) l.add('family', families('addr2name.family', g.family));
    if ('addresses' in g) l.addNvlist('sockaddr', sockaddrList('addr2name.addresses', g.addresses));
    limits.addNvlist('addr2name', l);
  }
  return limits;
}

/**
 * The addresses a grant lets the guest reach or listen on, as the policy's `net` rules spell
 * them ("127.0.0.1:5432", "api.example.org:443", "*" for any): what checkPolicy holds against
 * the tenant's net.connect and net.bind. Undefined lists mean the mode is not granted.
 */
export function grantAddresses(grant: Record<string, unknown>): { connect: string[]; bind: string[] } {
  const limits = fromManifest(grant);
  const out = { connect: [] as string[], bind: [] as string[] };
  // A `hosts` list names NAME: SERVICE ("" for any name or any service).
  const named = (hosts: NvList): string[] => hosts.pairs.map(([h, v]) => `${h || '*'}:${v.type === 'string' && v.value ? v.value : '*'}`);
  const list = (c: 'connect' | 'bind'): string[] => {
    const func = category(limits, c);
    if (c === 'connect' ? !connectRestricts(func) : func?.getNvlist('sockaddr') === undefined) return ['*'];
    const hosts = c === 'connect' ? func!.getNvlist('hosts') : undefined;
    return [...sockaddrsOf(func!.getNvlist('sockaddr')).map(sockaddrText), ...(hosts ? named(hosts) : [])];
  };
  if (allowedMode(limits, CAPNET.CONNECT)) out.connect.push(...list('connect'));
  if (allowedMode(limits, CAPNET.CONNECTDNS)) {
    // Whatever name2addr returns: the names it may resolve, at their services.
    const hosts = category(limits, 'name2addr')?.getNvlist('hosts');
    out.connect.push(...(hosts ? named(hosts) : ['*']));
  }
  if (allowedMode(limits, CAPNET.BIND)) out.bind.push(...list('bind'));
  return out;
}

export const service: CasperService = {
  name: S,
  limit,
  command,
  fromManifest,
};

export default service;

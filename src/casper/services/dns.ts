/**
 * system.dns: FreeBSD's cap_dns (lib/libcasper/services/cap_dns/cap_dns.c) on a real resolver
 * (node:dns Resolver; the operator picks the servers), plus a host-name allowlist FreeBSD lacks,
 * against DNS exfiltration.
 *
 * Numbers as the guest sees them. Guests are built against wasi-libc, whose <sys/socket.h> says
 * AF_UNSPEC 0, AF_INET 1, AF_INET6 2 (FreeBSD: 2 and 28; musl/Linux: 2 and 10) and SOCK_DGRAM 5,
 * SOCK_STREAM 6 (WASI filetypes), so "family", "hints.ai_family", "ai_family", the limits'
 * "family%u" and the sockaddrs' sa_family all use wasi-libc's values (AF below). wasi-libc (for
 * wasm32-wasi preview1) ships no <netdb.h>; the SDK's netdb.h must use FreeBSD's values, which
 * this service speaks: h_errno (HERR), EAI_* (EAI), AI_* (AI), NI_* (NI), exported below.
 * Sockaddrs are wasi-libc's layouts: sockaddr_in 16 bytes { u16 family (LE), u16 port (BE),
 * u8[4] addr, 8 bytes 0 }, sockaddr_in6 32 bytes { u16 family, u16 port (BE), u32 flowinfo,
 * u8[16] addr, u32 scope_id (LE), 4 bytes 0 }.
 *
 * Requests and replies, exactly as cap_dns.c's client sends and reads them:
 *   { cmd: "gethostbyname", family: number, name: string }    (gethostbyname = …2 with AF_INET)
 *   { cmd: "gethostbyaddr", addr: binary (4 or 16 bytes), family: number }
 *     → hostent: { name: string, addrtype: number, length: number,
 *                  "alias0".. : string, naliases: number, "addr0".. : binary[length], naddrs: number }
 *   { cmd: "getaddrinfo", [hostname: string], [servname: string],
 *     [hints.ai_flags, hints.ai_family, hints.ai_socktype, hints.ai_protocol: number] }
 *     → { "res0": { ai_flags, ai_family, ai_socktype, ai_protocol: number, ai_addr: binary
 *                   (sockaddr), [ai_canonname: string] }, "res1": …, … }
 *   { cmd: "getnameinfo", hostlen: number, servlen: number, sa: binary (sockaddr), flags: number }
 *     → { [host: string (when hostlen > 0)], [serv: string (when servlen > 0)] }
 * The reply's "error" (set by the broker from CasperError) is h_errno for gethostby* and the
 * EAI_* value for getaddrinfo/getnameinfo, as cap_dns.c returns them; 0 is success.
 *
 * Limits (dns_limit), flat keys, matched by prefix:
 *   "type%u":   string NAME2ADDR | ADDR2NAME (legacy NAME | ADDR accepted: FreeBSD's old names)
 *   "family%u": number AF_INET | AF_INET6 (wasi-libc values)
 *   "host%u":   string, capsa's addition: "*" (any name), "*.example.org" (any name ending in
 *               ".example.org", at any depth, not "example.org" itself) or an exact name;
 *               case-insensitive, a trailing dot ignored
 * - absent category = everything; a new limit without a category the old one has: ENOTCAPABLE;
 * - every new type/family/host must be allowed by the old limits: ENOTCAPABLE (a new pattern
 *   must lie inside an old one: "*.a.example.org" and "x.example.org" inside "*.example.org");
 * - a string key not starting "type"/"host", a number key not starting "family", another type,
 *   an unknown type name or a malformed host pattern: EINVAL.
 * Calls outside the limits answer NO_RECOVERY (3), also from getaddrinfo/getnameinfo (where 3
 * reads as EAI_BADFLAGS), as FreeBSD does; with any family limit, AF_UNSPEC (getaddrinfo without
 * hints or with ai_family 0) is refused. Host limits apply to every name the service would send
 * to the resolver: forward lookups check the name, reverse lookups (gethostbyaddr, getnameinfo
 * without NI_NUMERICHOST) check the PTR name ("4.3.2.1.in-addr.arpa", "….ip6.arpa"), so an
 * operator allows reverse lookups with e.g. "*.in-addr.arpa"; a CNAME's target is a name the
 * service would query, so it must be allowed too. A refused name is never queried.
 * Numeric addresses (and getaddrinfo without a hostname) need no query and pass host limits.
 *
 * Manifest grant: { types: [NAME2ADDR, ADDR2NAME], families: [AF_INET, AF_INET6],
 * hosts: ["*.example.org", "api.example.net"] }, each optional (absent = all; an empty list is
 * refused, since FreeBSD's flat keys cannot say "none"); {} = no limits.
 *
 * Operator config (ctx.config): { servers?: ["127.0.0.1:5353", …], timeout?: ms per try (1000),
 * tries?: number (2) }; without servers, the host's resolv.conf servers.
 *
 * Deviations from FreeBSD, on purpose:
 * - the host allowlist (above);
 * - malformed requests (a missing "family", "name", "addr", "sa"…) answer NO_RECOVERY / EAI_FAIL
 *   where FreeBSD's service aborts; an unsupported family or address length in gethostby*
 *   answers NO_RECOVERY where FreeBSD answers NETDB_INTERNAL (-1) and an errno the client never
 *   sees;
 * - no search domains and no /etc/hosts: a name is queried exactly as given;
 * - getaddrinfo returns IPv4 before IPv6, and for ai_socktype 0 one SOCK_STREAM/IPPROTO_TCP and
 *   one SOCK_DGRAM/IPPROTO_UDP entry per address (no SCTP, no raw); service names come from a
 *   small built-in table (SERVICES_TABLE), not /etc/services;
 * - CNAMEs are followed one CNAME query at a time, before addresses are asked for the canonical
 *   name (node's resolver hides the chain in an answer), so that host limits apply to every name
 *   of the chain before it is queried; a chain leaving them, looping or longer than
 *   MAX_CNAME_CHAIN answers NO_RECOVERY. h_name/ai_canonname are the canonical name.
 */
import { Resolver } from 'node:dns/promises';
import { isIP } from 'node:net';
import { NvList } from '../nvlist.js';
import { CasperError, type CasperService, type ServiceContext } from '../service.js';
import { ERRNO } from '../../wasi/constants.js';
import { GrantError, asInt, checkKeys, isRecord, listOf, prefixed } from './common.js';

/** Address families as wasi-libc defines them (<__header_sys_socket.h>). */
export const AF = { UNSPEC: 0, INET: 1, INET6: 2 } as const;
/** Socket types as wasi-libc defines them (WASI filetypes). */
export const SOCK = { DGRAM: 5, STREAM: 6 } as const;
export const IPPROTO = { TCP: 6, UDP: 17 } as const;
/** FreeBSD's <netdb.h> values. */
export const HERR = { HOST_NOT_FOUND: 1, TRY_AGAIN: 2, NO_RECOVERY: 3, NO_DATA: 4 } as const;
export const EAI = {
  AGAIN: 2, BADFLAGS: 3, FAIL: 4, FAMILY: 5, MEMORY: 6, NONAME: 8, SERVICE: 9, SOCKTYPE: 10,
  SYSTEM: 11, BADHINTS: 12, PROTOCOL: 13, OVERFLOW: 14,
} as const;
export const AI = {
  PASSIVE: 0x1, CANONNAME: 0x2, NUMERICHOST: 0x4, NUMERICSERV: 0x8, ALL: 0x100, V4MAPPED_CFG: 0x200,
  ADDRCONFIG: 0x400, V4MAPPED: 0x800,
} as const;
const AI_MASK = AI.PASSIVE | AI.CANONNAME | AI.NUMERICHOST | AI.NUMERICSERV | AI.ADDRCONFIG | AI.ALL | AI.V4MAPPED;
export const NI = { NOFQDN: 0x1, NUMERICHOST: 0x2, NAMEREQD: 0x4, NUMERICSERV: 0x8, DGRAM: 0x10, NUMERICSCOPE: 0x20 } as const;

/** sizeof(struct sockaddr_in) and sizeof(struct sockaddr_in6) in wasi-libc. */
export const SOCKADDR_IN_SIZE = 16;
export const SOCKADDR_IN6_SIZE = 32;

/** Service names getaddrinfo/getnameinfo know (tcp and udp alike). */
export const SERVICES_TABLE: Readonly<Record<string, number>> = {
  echo: 7, discard: 9, daytime: 13, 'ftp-data': 20, ftp: 21, ssh: 22, telnet: 23, smtp: 25, time: 37,
  domain: 53, gopher: 70, finger: 79, http: 80, www: 80, kerberos: 88, pop3: 110, sunrpc: 111,
  nntp: 119, ntp: 123, imap: 143, snmp: 161, ldap: 389, https: 443, submission: 587, ldaps: 636,
  imaps: 993, pop3s: 995, mysql: 3306, postgresql: 5432,
};

const NO_RECOVERY = (what: string): CasperError => new CasperError(HERR.NO_RECOVERY, what);
/** A call outside the channel's limits: NO_RECOVERY (3) as FreeBSD answers, marked as a refusal (the SDK sets errno ENOTCAPABLE). */
const REFUSED = (what: string): CasperError => new CasperError(HERR.NO_RECOVERY, what, true);

// ---------------------------------------------------------------------------------------------
// Names and patterns

/** A host name as the service queries it: lower case, no trailing dot; undefined if malformed. */
export function normalizeHost(name: string): string | undefined {
  let n = name.toLowerCase();
  if (n.endsWith('.')) n = n.slice(0, -1);
  if (n.length === 0 || n.length > 253) return undefined;
  for (const label of n.split('.')) {
    if (label.length === 0 || label.length > 63 || !/^[a-z0-9_-]+$/.test(label)) return undefined;
  }
  return n;
}

/** A host pattern in normal form, or undefined: "*", "*.<name>" or "<name>". */
export function normalizePattern(p: string): string | undefined {
  if (p === '*') return '*';
  if (p.startsWith('*.')) {
    const rest = normalizeHost(p.slice(2));
    return rest === undefined ? undefined : `*.${rest}`;
  }
  return normalizeHost(p);
}

/** Whether a normalized host matches a normalized pattern. */
export function patternMatches(pattern: string, host: string): boolean {
  if (pattern === '*') return true;
  if (pattern.startsWith('*.')) return host.endsWith(pattern.slice(1));
  return host === pattern;
}

/** Whether every name `inner` matches is matched by `outer` (both normalized). */
export function patternWithin(inner: string, outer: string): boolean {
  if (outer === '*') return true;
  if (inner === '*') return false;
  if (inner.startsWith('*.')) {
    if (!outer.startsWith('*.')) return false;
    const i = inner.slice(2);
    const o = outer.slice(2);
    return i === o || i.endsWith(`.${o}`);
  }
  return patternMatches(outer, inner);
}

// ---------------------------------------------------------------------------------------------
// Limits

function hostPatterns(limits: NvList | null): string[] | undefined {
  if (limits === null) return undefined;
  const hosts = prefixed(limits, 'host');
  if (hosts.length === 0) return undefined;
  return hosts.flatMap((h) => (h.value.type === 'string' ? [normalizePattern(h.value.value) ?? ''] : [])).filter(Boolean);
}

/** dns_allowed_type. */
function allowedType(limits: NvList | null, type: string): boolean {
  if (limits === null) return true;
  const types = prefixed(limits, 'type');
  if (types.length === 0) return true;
  return types.some((t) => t.value.type === 'string' && t.value.value === type);
}

/** dns_allowed_family: with any family entry, AF_UNSPEC matches none. */
function allowedFamily(limits: NvList | null, family: number): boolean {
  if (limits === null) return true;
  const fams = prefixed(limits, 'family');
  if (fams.length === 0) return true;
  if (family === AF.UNSPEC) return false;
  return fams.some((f) => f.value.type === 'number' && f.value.value === BigInt.asUintN(64, BigInt(family)));
}

/** The host allowlist: no host entries allow every name. */
function allowedHost(limits: NvList | null, host: string): boolean {
  const patterns = hostPatterns(limits);
  return patterns === undefined || patterns.some((p) => patternMatches(p, host));
}

const TYPES = ['ADDR2NAME', 'NAME2ADDR', 'ADDR', 'NAME'];

/**
 * patternWithin(p, o) for some o of `patterns`, in time linear in p's labels rather than in the
 * number of patterns: a new list is checked against an old one of thousands of entries, both the
 * guest's, on the host thread.
 */
function withinAny(patterns: string[]): (p: string) => boolean {
  if (patterns.includes('*')) return () => true;
  const names = new Set(patterns.filter((o) => !o.startsWith('*.')));
  const domains = new Set(patterns.filter((o) => o.startsWith('*.')).map((o) => o.slice(2)));
  // "a.b.c", "b.c", "c": the domains a name lies in (from `from` labels down).
  const inDomain = (name: string, from: number): boolean => {
    const labels = name.split('.');
    for (let i = from; i < labels.length; i++) if (domains.has(labels.slice(i).join('.'))) return true;
    return false;
  };
  return (p) => (p === '*' ? false : p.startsWith('*.') ? inDomain(p.slice(2), 0) : names.has(p) || inDomain(p, 1));
}

function limit(oldLimits: NvList | null, newLimits: NvList): number {
  let hasType = false;
  let hasFamily = false;
  let hasHost = false;
  const oldPatterns = hostPatterns(oldLimits);
  const within = oldPatterns && withinAny(oldPatterns);
  // The old list's types and families, read once (a new list may name thousands).
  const typeOk = new Map(TYPES.map((t) => [t, allowedType(oldLimits, t)]));
  const oldFamilies = oldLimits ? prefixed(oldLimits, 'family') : [];
  const familyOk = oldFamilies.length ? new Set(oldFamilies.flatMap((f) => (f.value.type === 'number' ? [f.value.value] : []))) : undefined;
  for (const [name, v] of newLimits.pairs) {
    if (v.type === 'string') {
      if (name.startsWith('type')) {
        if (!TYPES.includes(v.value)) return ERRNO.INVAL;
        if (!typeOk.get(v.value)) return ERRNO.NOTCAPABLE;
        hasType = true;
      } else if (name.startsWith('host')) {
        const p = normalizePattern(v.value);
        if (p === undefined) return ERRNO.INVAL;
        if (within && !within(p)) return ERRNO.NOTCAPABLE;
        hasHost = true;
      } else {
        return ERRNO.INVAL;
      }
    } else if (v.type === 'number') {
      if (!name.startsWith('family')) return ERRNO.INVAL;
      // dns_allowed_family, against the old list read once: with any family entry, AF_UNSPEC matches none.
      const family = asInt(v.value);
      if (familyOk && (family === AF.UNSPEC || !familyOk.has(BigInt.asUintN(64, BigInt(family))))) return ERRNO.NOTCAPABLE;
      hasFamily = true;
    } else {
      return ERRNO.INVAL;
    }
  }
  // Absent means "all": a new limit may not drop a category the old one has.
  const has = (prefix: string): boolean => oldLimits !== null && prefixed(oldLimits, prefix).length > 0;
  if (!hasType && has('type')) return ERRNO.NOTCAPABLE;
  if (!hasFamily && has('family')) return ERRNO.NOTCAPABLE;
  if (!hasHost && has('host')) return ERRNO.NOTCAPABLE;
  return 0;
}

// ---------------------------------------------------------------------------------------------
// Addresses

/** inet_pton(AF_INET) of a dotted quad (already known to be one). */
export function parseIPv4(s: string): Uint8Array {
  return Uint8Array.from(s.split('.').map(Number));
}

/** inet_pton(AF_INET6) of an IPv6 address (already known to be one; a %scope is dropped). */
export function parseIPv6(s: string): Uint8Array {
  const out = new Uint8Array(16);
  let str = s.split('%')[0]!;
  let tail: number[] = [];
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(str);
  if (v4) {
    const b = parseIPv4(v4[1]!);
    tail = [(b[0]! << 8) | b[1]!, (b[2]! << 8) | b[3]!];
    str = str.slice(0, -v4[1]!.length);
    if (str.endsWith(':') && !str.endsWith('::')) str = str.slice(0, -1);
  }
  const [head, rest] = str.includes('::') ? str.split('::') as [string, string] : [str, undefined];
  const hs = head ? head.split(':').map((h) => parseInt(h, 16)) : [];
  const rs = rest !== undefined && rest !== '' ? rest.split(':').map((h) => parseInt(h, 16)) : [];
  const groups = [...hs, ...new Array(8 - hs.length - rs.length - tail.length).fill(0), ...rs, ...tail];
  groups.forEach((g, i) => { out[2 * i] = g >> 8; out[2 * i + 1] = g & 0xff; });
  return out;
}

/** inet_ntop(AF_INET). */
export function formatIPv4(b: Uint8Array): string {
  return Array.from(b.subarray(0, 4)).join('.');
}

/** inet_ntop(AF_INET6): RFC 5952 form, "::ffff:a.b.c.d" for IPv4-mapped addresses. */
export function formatIPv6(b: Uint8Array): string {
  const g: number[] = [];
  for (let i = 0; i < 8; i++) g.push((b[2 * i]! << 8) | b[2 * i + 1]!);
  if (g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff) return `::ffff:${formatIPv4(b.subarray(12))}`;
  let bestAt = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (g[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) { bestAt = i; bestLen = j - i; }
    i = j;
  }
  const hex = g.map((x) => x.toString(16));
  if (bestAt < 0) return hex.join(':');
  return `${hex.slice(0, bestAt).join(':')}::${hex.slice(bestAt + bestLen).join(':')}`;
}

function ptrName(family: number, addr: Uint8Array): string {
  if (family === AF.INET) return `${Array.from(addr).reverse().join('.')}.in-addr.arpa`;
  const nibbles: string[] = [];
  for (const byte of addr) nibbles.push((byte >> 4).toString(16), (byte & 0xf).toString(16));
  return `${nibbles.reverse().join('.')}.ip6.arpa`;
}

/** A wasi-libc sockaddr_in or sockaddr_in6 (layouts above). */
export function sockaddr(family: number, addr: Uint8Array, port: number, scope = 0): Uint8Array {
  const b = new Uint8Array(family === AF.INET ? SOCKADDR_IN_SIZE : SOCKADDR_IN6_SIZE);
  const dv = new DataView(b.buffer);
  dv.setUint16(0, family, true);
  dv.setUint16(2, port, false);
  if (family === AF.INET) b.set(addr, 4);
  else { b.set(addr, 8); dv.setUint32(24, scope, true); }
  return b;
}

// ---------------------------------------------------------------------------------------------
// The resolver

interface DnsConfig { servers?: string[]; timeout?: number; tries?: number }

const resolvers = new WeakMap<object, Resolver>();
let defaultResolver: Resolver | undefined;

function resolverFor(config: unknown): Resolver {
  const c: DnsConfig = isRecord(config) ? config as DnsConfig : {};
  if (isRecord(config)) {
    const hit = resolvers.get(config);
    if (hit) return hit;
  } else if (defaultResolver) {
    return defaultResolver;
  }
  const timeout = typeof c.timeout === 'number' && c.timeout > 0 ? c.timeout : 1000;
  const tries = typeof c.tries === 'number' && c.tries > 0 ? Math.floor(c.tries) : 2;
  const r = new Resolver({ timeout, tries });
  if (Array.isArray(c.servers) && c.servers.length > 0) r.setServers(c.servers.map(String));
  if (isRecord(config)) resolvers.set(config, r);
  else defaultResolver = r;
  return r;
}

type Failure = 'notfound' | 'nodata' | 'again' | 'fail';

function classify(e: unknown): Failure {
  const code = isRecord(e) && typeof e.code === 'string' ? e.code : '';
  if (code === 'ENOTFOUND' || code === 'EBADNAME' || code === 'ENONAME') return 'notfound';
  if (code === 'ENODATA') return 'nodata';
  if (['ETIMEOUT', 'ECONNREFUSED', 'ESERVFAIL', 'EREFUSED', 'ECANCELLED', 'EDESTRUCTION', 'EAGAIN'].includes(code)) return 'again';
  return 'fail';
}

const HERR_OF: Record<Failure, number> = { notfound: HERR.HOST_NOT_FOUND, nodata: HERR.NO_DATA, again: HERR.TRY_AGAIN, fail: HERR.NO_RECOVERY };
const EAI_OF: Record<Failure, number> = { notfound: EAI.NONAME, nodata: EAI.NONAME, again: EAI.AGAIN, fail: EAI.FAIL };

async function lookup(r: Resolver, family: number, host: string): Promise<Uint8Array[]> {
  const list = family === AF.INET ? await r.resolve4(host) : await r.resolve6(host);
  return list.map((a) => (family === AF.INET ? parseIPv4(a) : parseIPv6(a)));
}

/** CNAMEs followed from one name before the lookup gives up (NO_RECOVERY). */
export const MAX_CNAME_CHAIN = 8;

/** A lookup that failed at the resolver; callers map it to h_errno or EAI_*. */
class LookupFailure extends Error {
  constructor(readonly failure: Failure, message: string) { super(message); }
}

/**
 * The canonical name of `host` and the aliases leading to it, followed one CNAME query at a time,
 * so that every name is checked against the host limits before it is asked: a chain that leaves
 * them, loops or is longer than MAX_CNAME_CHAIN is refused (NO_RECOVERY) without a query for the
 * name outside. Addresses are then asked for the canonical name only.
 */
async function followCnames(r: Resolver, limits: NvList | null, host: string): Promise<{ canon: string; aliases: string[] }> {
  const aliases: string[] = [];
  let cur = host;
  for (;;) {
    let targets: string[];
    try {
      targets = await r.resolveCname(cur);
    } catch (e) {
      const why = classify(e);
      if (why === 'nodata') return { canon: cur, aliases };
      throw new LookupFailure(why, `${cur}: ${String(e)}`);
    }
    const next = targets[0] === undefined ? undefined : normalizeHost(targets[0]);
    if (next === undefined) throw new LookupFailure('notfound', `${cur} is an alias of a malformed name`);
    if (!allowedHost(limits, next)) throw REFUSED(`${cur} is an alias of ${next}, which is outside this channel's host limits`);
    if (next === cur || aliases.includes(next)) throw NO_RECOVERY(`the CNAMEs of ${host} loop at ${next}`);
    if (aliases.length >= MAX_CNAME_CHAIN) throw NO_RECOVERY(`${host} leads through more than ${MAX_CNAME_CHAIN} CNAMEs`);
    aliases.push(cur);
    cur = next;
  }
}

function hostent(out: NvList, name: string, family: number, aliases: string[], addrs: Uint8Array[]): NvList {
  out.addString('name', name);
  out.addNumber('addrtype', family);
  out.addNumber('length', family === AF.INET ? 4 : 16);
  aliases.forEach((a, i) => out.addString(`alias${i}`, a));
  out.addNumber('naliases', aliases.length);
  addrs.forEach((a, i) => out.addBinary(`addr${i}`, a));
  out.addNumber('naddrs', addrs.length);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Commands

const nameTypeAllowed = (l: NvList | null): boolean => allowedType(l, 'NAME2ADDR') || allowedType(l, 'NAME');
const addrTypeAllowed = (l: NvList | null): boolean => allowedType(l, 'ADDR2NAME') || allowedType(l, 'ADDR');

async function gethostbyname(limits: NvList | null, req: NvList, ctx: ServiceContext): Promise<NvList> {
  if (!nameTypeAllowed(limits)) throw REFUSED('NAME2ADDR is outside this channel\'s limits');
  const f = req.getNumber('family');
  if (f === undefined) throw NO_RECOVERY('missing "family"');
  const family = asInt(f);
  if (!allowedFamily(limits, family)) throw REFUSED(`family ${family} is outside this channel's limits`);
  const name = req.getString('name');
  if (name === undefined) throw NO_RECOVERY('missing "name"');
  if (family !== AF.INET && family !== AF.INET6) throw NO_RECOVERY(`family ${family} is not AF_INET (1) or AF_INET6 (2)`);
  const ip = isIP(name);
  if (ip !== 0) {
    if ((ip === 4) !== (family === AF.INET)) throw new CasperError(HERR.HOST_NOT_FOUND, `${name} is not an address of family ${family}`);
    return hostent(new NvList(), name, family, [], [family === AF.INET ? parseIPv4(name) : parseIPv6(name)]);
  }
  const host = normalizeHost(name);
  if (host === undefined) throw new CasperError(HERR.HOST_NOT_FOUND, `${JSON.stringify(name)} is not a host name`);
  if (!allowedHost(limits, host)) throw REFUSED(`${host} is outside this channel's host limits`);
  const r = resolverFor(ctx.config);
  let addrs: Uint8Array[];
  let chain: { canon: string; aliases: string[] };
  try {
    chain = await followCnames(r, limits, host);
    addrs = await lookup(r, family, chain.canon);
  } catch (e) {
    if (e instanceof CasperError) throw e;
    const why = e instanceof LookupFailure ? e.failure : classify(e);
    throw new CasperError(HERR_OF[why], `${host}: ${(e as Error).message ?? String(e)}`);
  }
  if (addrs.length === 0) throw new CasperError(HERR.NO_DATA, `${host} has no address`);
  return hostent(new NvList(), chain.canon, family, chain.aliases, addrs);
}

async function gethostbyaddr(limits: NvList | null, req: NvList, ctx: ServiceContext): Promise<NvList> {
  if (!addrTypeAllowed(limits)) throw REFUSED('ADDR2NAME is outside this channel\'s limits');
  const f = req.getNumber('family');
  if (f === undefined) throw NO_RECOVERY('missing "family"');
  const family = asInt(f);
  if (!allowedFamily(limits, family)) throw REFUSED(`family ${family} is outside this channel's limits`);
  const addr = req.getBinary('addr');
  if (addr === undefined) throw NO_RECOVERY('missing "addr"');
  if (!((family === AF.INET && addr.length === 4) || (family === AF.INET6 && addr.length === 16))) {
    throw NO_RECOVERY(`an address of family ${family} is not ${addr.length} bytes`);
  }
  const ptr = ptrName(family, addr);
  if (!allowedHost(limits, ptr)) throw REFUSED(`${ptr} is outside this channel's host limits`);
  const text = family === AF.INET ? formatIPv4(addr) : formatIPv6(addr);
  let names: string[];
  try {
    names = await resolverFor(ctx.config).reverse(text);
  } catch (e) {
    const why = classify(e);
    throw new CasperError(why === 'nodata' ? HERR.HOST_NOT_FOUND : HERR_OF[why], `${ptr}: ${String(e)}`);
  }
  const clean = names.map((n) => (n.endsWith('.') ? n.slice(0, -1) : n)).filter(Boolean);
  if (clean.length === 0) throw new CasperError(HERR.HOST_NOT_FOUND, `${ptr} has no name`);
  return hostent(new NvList(), clean[0]!, family, clean.slice(1), [addr.slice()]);
}

function parsePort(serv: string, flags: number): number {
  if (/^\d+$/.test(serv)) {
    const p = Number(serv);
    if (p > 65535) throw new CasperError(EAI.SERVICE, `port ${serv} is out of range`);
    return p;
  }
  if (flags & AI.NUMERICSERV) throw new CasperError(EAI.NONAME, `${serv} is not numeric`);
  const p = SERVICES_TABLE[serv.toLowerCase()];
  if (p === undefined) throw new CasperError(EAI.SERVICE, `unknown service ${serv}`);
  return p;
}

interface Hints { flags: number; family: number; socktype: number; protocol: number }

function combos(h: Hints): [number, number][] {
  const all: [number, number][] = [[SOCK.STREAM, IPPROTO.TCP], [SOCK.DGRAM, IPPROTO.UDP]];
  if (h.socktype !== 0 && h.socktype !== SOCK.STREAM && h.socktype !== SOCK.DGRAM) throw new CasperError(EAI.SOCKTYPE, `socktype ${h.socktype}`);
  if (h.protocol !== 0 && h.protocol !== IPPROTO.TCP && h.protocol !== IPPROTO.UDP) throw new CasperError(EAI.BADHINTS, `protocol ${h.protocol}`);
  const out = all.filter(([s, p]) => (h.socktype === 0 || h.socktype === s) && (h.protocol === 0 || h.protocol === p));
  if (out.length === 0) throw new CasperError(EAI.BADHINTS, `socktype ${h.socktype} with protocol ${h.protocol}`);
  return out;
}

async function getaddrinfo(limits: NvList | null, req: NvList, ctx: ServiceContext): Promise<NvList> {
  if (!nameTypeAllowed(limits)) throw REFUSED('NAME2ADDR is outside this channel\'s limits');
  const hostname = req.getString('hostname');
  const servname = req.getString('servname');
  const withHints = req.exists('hints.ai_flags', 'number');
  const num = (k: string): number => asInt(req.getNumber(k) ?? 0n);
  const h: Hints = withHints
    ? { flags: num('hints.ai_flags'), family: num('hints.ai_family'), socktype: num('hints.ai_socktype'), protocol: num('hints.ai_protocol') }
    : { flags: 0, family: AF.UNSPEC, socktype: 0, protocol: 0 };
  if (!allowedFamily(limits, h.family)) throw REFUSED(`family ${h.family} is outside this channel's limits`);

  if (h.flags & ~AI_MASK) throw new CasperError(EAI.BADFLAGS, `flags 0x${h.flags.toString(16)}`);
  if (hostname === undefined && servname === undefined) throw new CasperError(EAI.NONAME, 'neither hostname nor servname');
  if (h.family !== AF.UNSPEC && h.family !== AF.INET && h.family !== AF.INET6) throw new CasperError(EAI.FAMILY, `family ${h.family}`);
  if (hostname === undefined && h.flags & AI.CANONNAME) throw new CasperError(EAI.BADFLAGS, 'AI_CANONNAME without a hostname');
  const kinds = combos(h);
  const port = servname === undefined ? 0 : parsePort(servname, h.flags);
  const families = h.family === AF.UNSPEC ? [AF.INET, AF.INET6] : [h.family];

  let addrs: { family: number; addr: Uint8Array }[] = [];
  let canon: string | undefined;
  if (hostname === undefined) {
    const passive = (h.flags & AI.PASSIVE) !== 0;
    for (const fam of families) {
      addrs.push({ family: fam, addr: fam === AF.INET ? Uint8Array.of(...(passive ? [0, 0, 0, 0] : [127, 0, 0, 1])) : parseIPv6(passive ? '::' : '::1') });
    }
  } else if (isIP(hostname) !== 0) {
    const fam = isIP(hostname) === 4 ? AF.INET : AF.INET6;
    if (families.includes(fam)) addrs.push({ family: fam, addr: fam === AF.INET ? parseIPv4(hostname) : parseIPv6(hostname) });
    else if (fam === AF.INET && h.flags & AI.V4MAPPED) addrs.push({ family: AF.INET6, addr: parseIPv6(`::ffff:${hostname}`) });
    else throw new CasperError(EAI.NONAME, `${hostname} is not of family ${h.family}`);
    canon = hostname;
  } else {
    if (h.flags & AI.NUMERICHOST) throw new CasperError(EAI.NONAME, `${hostname} is not numeric`);
    const host = normalizeHost(hostname);
    if (host === undefined) throw new CasperError(EAI.NONAME, `${JSON.stringify(hostname)} is not a host name`);
    if (!allowedHost(limits, host)) throw REFUSED(`${host} is outside this channel's host limits`);
    const r = resolverFor(ctx.config);
    let chain: { canon: string; aliases: string[] };
    try {
      chain = await followCnames(r, limits, host);
    } catch (e) {
      if (e instanceof LookupFailure) throw new CasperError(EAI_OF[e.failure], e.message);
      throw e;
    }
    const mapped = h.family === AF.INET6 && (h.flags & AI.V4MAPPED) !== 0;
    const queries = mapped ? [AF.INET6, AF.INET] : families;
    const settled = await Promise.allSettled(queries.map((fam) => lookup(r, fam, chain.canon)));
    const failures: Failure[] = [];
    settled.forEach((s, i) => {
      const fam = queries[i]!;
      if (s.status === 'rejected') { failures.push(classify(s.reason)); return; }
      for (const a of s.value) {
        if (mapped && fam === AF.INET) addrs.push({ family: AF.INET6, addr: parseIPv6(`::ffff:${formatIPv4(a)}`) });
        else addrs.push({ family: fam, addr: a });
      }
    });
    if (mapped && !(h.flags & AI.ALL) && addrs.some((a) => !isMapped(a.addr))) addrs = addrs.filter((a) => !isMapped(a.addr));
    if (addrs.length === 0) {
      const why: Failure = failures.includes('again') ? 'again' : failures.includes('fail') ? 'fail' : 'notfound';
      throw new CasperError(EAI_OF[why], `${host} has no address`);
    }
    canon = chain.canon;
  }

  const out = new NvList();
  let n = 0;
  for (const a of addrs) {
    for (const [socktype, protocol] of kinds) {
      const ai = new NvList();
      ai.addNumber('ai_flags', h.flags);
      ai.addNumber('ai_family', a.family);
      ai.addNumber('ai_socktype', socktype);
      ai.addNumber('ai_protocol', protocol);
      ai.addBinary('ai_addr', sockaddr(a.family, a.addr, port));
      if (n === 0 && h.flags & AI.CANONNAME && canon !== undefined) ai.addString('ai_canonname', canon);
      out.addNvlist(`res${n++}`, ai);
    }
  }
  return out;
}

function isMapped(a: Uint8Array): boolean {
  return a.length === 16 && a.subarray(0, 10).every((x) => x === 0) && a[10] === 0xff && a[11] === 0xff;
}

async function getnameinfo(limits: NvList | null, req: NvList, ctx: ServiceContext): Promise<NvList> {
  if (!addrTypeAllowed(limits)) throw REFUSED('ADDR2NAME is outside this channel\'s limits');
  const hostlen = req.getNumber('hostlen') ?? 0n;
  const servlen = req.getNumber('servlen') ?? 0n;
  const sa = req.getBinary('sa');
  if (sa === undefined || sa.length > 48 || sa.length < 2) throw new CasperError(EAI.FAIL, 'missing or oversized "sa"');
  const dv = new DataView(sa.buffer, sa.byteOffset, sa.byteLength);
  const family = dv.getUint16(0, true);
  if (!((family === AF.INET && sa.length === SOCKADDR_IN_SIZE) || (family === AF.INET6 && sa.length === SOCKADDR_IN6_SIZE))) {
    throw new CasperError(EAI.FAIL, `a sockaddr of family ${family} is not ${sa.length} bytes`);
  }
  if (!allowedFamily(limits, family)) throw REFUSED(`family ${family} is outside this channel's limits`);
  const flags = asInt(req.getNumber('flags') ?? 0n);
  if (hostlen === 0n && servlen === 0n) throw new CasperError(EAI.NONAME, 'neither host nor serv asked for');
  const port = dv.getUint16(2, false);
  const addr = family === AF.INET ? sa.slice(4, 8) : sa.slice(8, 24);
  const scope = family === AF.INET6 ? dv.getUint32(24, true) : 0;

  const out = new NvList();
  if (hostlen > 0n) {
    const numeric = (family === AF.INET ? formatIPv4(addr) : formatIPv6(addr)) + (scope ? `%${scope}` : '');
    let host = numeric;
    if (!(flags & NI.NUMERICHOST)) {
      const ptr = ptrName(family, addr);
      if (!allowedHost(limits, ptr)) throw REFUSED(`${ptr} is outside this channel's host limits`);
      let names: string[] = [];
      let failure: Failure | undefined;
      try {
        names = await resolverFor(ctx.config).reverse(family === AF.INET ? formatIPv4(addr) : formatIPv6(addr));
      } catch (e) {
        failure = classify(e);
      }
      const name = names[0]?.replace(/\.$/, '');
      if (name) host = flags & NI.NOFQDN ? name.split('.')[0]! : name;
      else if (flags & NI.NAMEREQD) throw new CasperError(failure === 'again' ? EAI.AGAIN : EAI.NONAME, `${ptr} has no name`);
    }
    if (BigInt(Buffer.byteLength(host) + 1) > hostlen) throw new CasperError(EAI.OVERFLOW, `host needs ${Buffer.byteLength(host) + 1} bytes`);
    out.addString('host', host);
  }
  if (servlen > 0n) {
    let serv = String(port);
    if (!(flags & NI.NUMERICSERV)) {
      const name = Object.entries(SERVICES_TABLE).find(([, p]) => p === port)?.[0];
      if (name !== undefined) serv = name;
    }
    if (BigInt(serv.length + 1) > servlen) throw new CasperError(EAI.OVERFLOW, `serv needs ${serv.length + 1} bytes`);
    out.addString('serv', serv);
  }
  return out;
}

async function command(cmd: string, limits: NvList | null, request: NvList, ctx: ServiceContext): Promise<NvList> {
  switch (cmd) {
    case 'gethostbyname': return gethostbyname(limits, request, ctx);
    case 'gethostbyaddr': return gethostbyaddr(limits, request, ctx);
    case 'getnameinfo': return getnameinfo(limits, request, ctx);
    case 'getaddrinfo': return getaddrinfo(limits, request, ctx);
    default: throw NO_RECOVERY(`unknown command ${cmd}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Manifest

const FAMILY_WORDS: Record<string, number> = {
  af_inet: AF.INET, inet: AF.INET, ipv4: AF.INET, af_inet6: AF.INET6, inet6: AF.INET6, ipv6: AF.INET6,
};

/** A grant's address family (AF_INET or AF_INET6, as a number or a word such as "inet6"); undefined for anything else. */
export function familyOf(f: unknown): number | undefined {
  if (typeof f === 'number') return f === AF.INET || f === AF.INET6 ? f : undefined;
  return typeof f === 'string' ? FAMILY_WORDS[f.toLowerCase()] : undefined;
}

function fromManifest(grant: Record<string, unknown>): NvList | null {
  const S = 'system.dns';
  checkKeys(S, grant, ['types', 'families', 'hosts']);
  if (Object.keys(grant).length === 0) return null;
  const limits = new NvList();
  const nonEmpty = (key: string): unknown[] => {
    const items = listOf(S, key, grant[key]);
    if (items.length === 0) throw new GrantError(S, `${key}: [] would allow every ${key === 'hosts' ? 'name' : key.slice(0, -1)} (FreeBSD's absent = all); list some, or leave ${key} out`);
    return items;
  };
  if ('types' in grant) {
    nonEmpty('types').forEach((t, i) => {
      const u = typeof t === 'string' ? t.toUpperCase() : '';
      if (u !== 'NAME2ADDR' && u !== 'ADDR2NAME') throw new GrantError(S, `unknown type ${JSON.stringify(t)}; types are NAME2ADDR, ADDR2NAME`);
      limits.addString(`type${i}`, u);
    });
  }
  if ('families' in grant) {
    nonEmpty('families').forEach((f, i) => {
      const v = familyOf(f);
      if (v === undefined) throw new GrantError(S, `unknown family ${JSON.stringify(f)}; families are AF_INET (1) and AF_INET6 (2), wasi-libc's values`);
      limits.addNumber(`family${i}`, v);
    });
  }
  if ('hosts' in grant) {
    nonEmpty('hosts').forEach((h, i) => {
      const p = typeof h === 'string' ? normalizePattern(h) : undefined;
      if (p === undefined) throw new GrantError(S, `${JSON.stringify(h)} is not a host pattern; use "*", "*.example.org" or "www.example.org"`);
      limits.addString(`host${i}`, p);
    });
  }
  return limits;
}

export const service: CasperService = {
  name: 'system.dns',
  limit,
  command,
  fromManifest,
};

export default service;

/**
 * system.dns against a real DNS server on loopback (dns2, random port): FreeBSD's
 * cap_dns/tests/dns_test.c as a table (which of the eight lookups succeed under which type and
 * family limits, widening refused with ENOTCAPABLE), then capsa's host allowlist (never a query
 * for a refused name), the wire shapes cap_dns.c's client reads, and the manifest grant.
 * Requests are built exactly as cap_dns.c's client builds them.
 */
import dns2 from 'dns2';
import fc from 'fast-check';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { NvList } from '../../../src/casper/nvlist.js';
import { CasperError, type CasperService } from '../../../src/casper/service.js';
import dnsService, {
  AF, AI, EAI, HERR, IPPROTO, MAX_CNAME_CHAIN, NI, SOCK, normalizePattern, patternMatches, patternWithin,
} from '../../../src/casper/services/dns.js';
import { GrantError } from '../../../src/casper/services/common.js';
import { ERRNO } from '../../../src/wasi/constants.js';

const { Packet } = dns2;

// ---------------------------------------------------------------------------------------------
// A loopback zone

interface Rec { A?: string[]; AAAA?: string[]; CNAME?: string; PTR?: string[] }
const ZONE: Record<string, Rec> = {
  'example.com': { A: ['192.0.2.10'], AAAA: ['2001:db8::10'] },
  'freebsd.org': { A: ['192.0.2.20'], AAAA: ['2001:db8::20'] },
  'www.example.org': { A: ['192.0.2.30'], AAAA: ['2001:db8::30'] },
  'alias.example.org': { CNAME: 'www.example.org' },
  'v4only.example.org': { A: ['192.0.2.40'] },
  '8.8.8.8.in-addr.arpa': { PTR: ['dns.google'] },
  '30.2.0.192.in-addr.arpa': { PTR: ['www.example.org'] },
  [`8.8.8.8.${'0.'.repeat(16)}0.6.8.4.0.6.8.4.1.0.0.2.ip6.arpa`]: { PTR: ['dns.google'] },
  // CNAME chains for the host allowlist: one that leaves "*.allowed.test", one inside it, a loop,
  // and one longer than MAX_CNAME_CHAIN.
  'cname.allowed.test': { CNAME: 'target.outside.test' },
  'target.outside.test': { A: ['192.0.2.66'], AAAA: ['2001:db8::66'] },
  'twice.allowed.test': { CNAME: 'inside.allowed.test' },
  'inside.allowed.test': { CNAME: 'www.allowed.test' },
  'www.allowed.test': { A: ['192.0.2.50'], AAAA: ['2001:db8::50'] },
  'loop1.allowed.test': { CNAME: 'loop2.allowed.test' },
  'loop2.allowed.test': { CNAME: 'loop1.allowed.test' },
  ...Object.fromEntries(Array.from({ length: 12 }, (_, i) => [`c${i}.allowed.test`, { CNAME: `c${i + 1}.allowed.test` }])),
  'c12.allowed.test': { A: ['192.0.2.51'] },
};

const queries: string[] = [];
let server: ReturnType<typeof dns2.createServer>;
let config: { servers: string[]; timeout: number; tries: number };

beforeAll(async () => {
  server = dns2.createServer({
    udp: true,
    handle: (request, send) => {
      const response = Packet.createResponseFromRequest(request);
      const q = request.questions[0]!;
      const name = q.name.toLowerCase();
      queries.push(name);
      const push = (owner: string, type: number, data: Record<string, unknown>): void => {
        response.answers.push({ name: owner, type, class: Packet.CLASS.IN, ttl: 60, ...data } as never);
      };
      let rec = ZONE[name];
      let owner = name;
      if (rec === undefined) {
        response.header.rcode = 3; // NXDOMAIN
      } else {
        if (rec.CNAME && q.type !== Packet.TYPE.CNAME) {
          push(owner, Packet.TYPE.CNAME, { domain: rec.CNAME });
          owner = rec.CNAME;
          rec = ZONE[owner] ?? {};
        }
        if (q.type === Packet.TYPE.A) for (const a of rec.A ?? []) push(owner, Packet.TYPE.A, { address: a });
        if (q.type === Packet.TYPE.AAAA) for (const a of rec.AAAA ?? []) push(owner, Packet.TYPE.AAAA, { address: a });
        if (q.type === Packet.TYPE.CNAME && rec.CNAME) push(owner, Packet.TYPE.CNAME, { domain: rec.CNAME });
        if (q.type === Packet.TYPE.PTR) for (const d of rec.PTR ?? []) push(owner, Packet.TYPE.PTR, { domain: d });
      }
      send(response);
    },
  });
  const addr = await server.listen({ udp: { port: 0, address: '127.0.0.1' } });
  config = { servers: [`127.0.0.1:${addr.udp!.port}`], timeout: 2000, tries: 2 };
});

afterAll(async () => { await server.close(); });
beforeEach(() => { queries.length = 0; });

// ---------------------------------------------------------------------------------------------
// A channel, as the broker keeps it, and cap_dns.c's client

class Chan {
  state = new Map<string, unknown>();
  constructor(readonly svc: CasperService, public limits: NvList | null = null, readonly cfg: unknown = undefined) {}
  limitGet(): NvList | null { return this.limits?.clone() ?? null; }
  limitSet(l: NvList): number {
    const e = this.svc.limit ? this.svc.limit(this.limits, l) : ERRNO.NOTSUP;
    if (e === 0) this.limits = l.clone();
    return e;
  }
  async xfer(req: NvList): Promise<{ error: number; reply: NvList }> {
    const cmd = req.getString('cmd')!;
    try {
      const reply = await this.svc.command(cmd, this.limits, req, { channelState: this.state, sandboxState: new Map(), config: this.cfg });
      return { error: 0, reply };
    } catch (e) {
      if (e instanceof CasperError) return { error: e.errno, reply: new NvList() };
      throw e;
    }
  }
}

const open = (limits: NvList | null = null): Chan => new Chan(dnsService, limits, config);

interface Hostent { h_name: string; h_addrtype: number; h_length: number; h_aliases: string[]; h_addr_list: Uint8Array[] }
interface Addrinfo { ai_flags: number; ai_family: number; ai_socktype: number; ai_protocol: number; ai_addr: Uint8Array; ai_canonname?: string }

/** hostent_unpack. */
function hostentUnpack(nvl: NvList): Hostent {
  const naliases = Number(nvl.getNumber('naliases'));
  const naddrs = Number(nvl.getNumber('naddrs'));
  return {
    h_name: nvl.getString('name')!,
    h_addrtype: Number(nvl.getNumber('addrtype')),
    h_length: Number(nvl.getNumber('length')),
    h_aliases: Array.from({ length: naliases }, (_, i) => nvl.getString(`alias${i}`)!),
    h_addr_list: Array.from({ length: naddrs }, (_, i) => nvl.getBinary(`addr${i}`)!),
  };
}

let h_errno = 0;

/** cap_gethostbyname2. */
async function capGethostbyname2(chan: Chan, name: string, type: number): Promise<Hostent | null> {
  const nvl = new NvList().addString('cmd', 'gethostbyname').addNumber('family', type).addString('name', name);
  const { error, reply } = await chan.xfer(nvl);
  if (error !== 0) { h_errno = error; return null; }
  return hostentUnpack(reply);
}
const capGethostbyname = (chan: Chan, name: string): Promise<Hostent | null> => capGethostbyname2(chan, name, AF.INET);

/** cap_gethostbyaddr. */
async function capGethostbyaddr(chan: Chan, addr: Uint8Array, type: number): Promise<Hostent | null> {
  const nvl = new NvList().addString('cmd', 'gethostbyaddr').addBinary('addr', addr).addNumber('family', type);
  const { error, reply } = await chan.xfer(nvl);
  if (error !== 0) { h_errno = error; return null; }
  return hostentUnpack(reply);
}

interface Hints { ai_flags: number; ai_family: number; ai_socktype: number; ai_protocol: number }

/** cap_getaddrinfo. */
async function capGetaddrinfo(chan: Chan, hostname: string | null, servname: string | null, hints: Hints | null): Promise<{ error: number; res: Addrinfo[] }> {
  const nvl = new NvList().addString('cmd', 'getaddrinfo');
  if (hostname !== null) nvl.addString('hostname', hostname);
  if (servname !== null) nvl.addString('servname', servname);
  if (hints !== null) {
    nvl.addNumber('hints.ai_flags', hints.ai_flags).addNumber('hints.ai_family', hints.ai_family)
      .addNumber('hints.ai_socktype', hints.ai_socktype).addNumber('hints.ai_protocol', hints.ai_protocol);
  }
  const { error, reply } = await chan.xfer(nvl);
  if (error !== 0) return { error, res: [] };
  const res: Addrinfo[] = [];
  for (let i = 0; ; i++) {
    const ai = reply.getNvlist(`res${i}`);
    if (!ai) break;
    const canon = ai.getString('ai_canonname');
    res.push({
      ai_flags: Number(ai.getNumber('ai_flags')), ai_family: Number(ai.getNumber('ai_family')),
      ai_socktype: Number(ai.getNumber('ai_socktype')), ai_protocol: Number(ai.getNumber('ai_protocol')),
      ai_addr: ai.getBinary('ai_addr')!, ...(canon === undefined ? {} : { ai_canonname: canon }),
    });
  }
  return { error: 0, res };
}

/** cap_getnameinfo. */
async function capGetnameinfo(chan: Chan, sa: Uint8Array, hostlen: number, servlen: number, flags: number): Promise<{ error: number; host?: string; serv?: string }> {
  const nvl = new NvList().addString('cmd', 'getnameinfo').addNumber('hostlen', hostlen).addNumber('servlen', servlen)
    .addBinary('sa', sa).addNumber('flags', flags);
  const { error, reply } = await chan.xfer(nvl);
  if (error !== 0) return { error };
  const host = reply.getString('host');
  const serv = reply.getString('serv');
  return { error: 0, ...(host === undefined ? {} : { host }), ...(serv === undefined ? {} : { serv }) };
}

/** limit_remove + the "type%u"/"family%u" loop of cap_dns_type_limit / cap_dns_family_limit. */
function setPrefixed(chan: Chan, prefix: string, add: (l: NvList, i: number) => void, n: number): number {
  let limits = chan.limitGet();
  if (limits === null) limits = new NvList();
  else for (const [name] of [...limits.pairs]) if (name.startsWith(prefix)) limits.remove(name);
  for (let i = 0; i < n; i++) add(limits, i);
  return chan.limitSet(limits);
}
const capDnsTypeLimit = (chan: Chan, types: string[]): number => setPrefixed(chan, 'type', (l, i) => l.addString(`type${i}`, types[i]!), types.length);
const capDnsFamilyLimit = (chan: Chan, fams: number[]): number => setPrefixed(chan, 'family', (l, i) => l.addNumber(`family${i}`, fams[i]!), fams.length);
const capDnsHostLimit = (chan: Chan, hosts: string[]): number => setPrefixed(chan, 'host', (l, i) => l.addString(`host${i}`, hosts[i]!), hosts.length);

const v4 = (s: string): Uint8Array => Uint8Array.from(s.split('.').map(Number));
function v6(s: string): Uint8Array {
  const [head, tail] = s.split('::') as [string, string | undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = [...h, ...Array(8 - h.length - t.length).fill('0'), ...t].map((g) => parseInt(g, 16));
  return Uint8Array.from(groups.flatMap((g) => [g >> 8, g & 0xff]));
}
function sockaddrIn(addr: Uint8Array, port: number): Uint8Array {
  const b = new Uint8Array(16);
  const dv = new DataView(b.buffer);
  dv.setUint16(0, AF.INET, true);
  dv.setUint16(2, port, false);
  b.set(addr, 4);
  return b;
}
function sockaddrIn6(addr: Uint8Array, port: number, scope = 0): Uint8Array {
  const b = new Uint8Array(32);
  const dv = new DataView(b.buffer);
  dv.setUint16(0, AF.INET6, true);
  dv.setUint16(2, port, false);
  b.set(addr, 8);
  dv.setUint32(24, scope, true);
  return b;
}

// ---------------------------------------------------------------------------------------------
// dns_test.c

const GETHOSTBYNAME = 0x01;
const GETHOSTBYNAME2_AF_INET = 0x02;
const GETHOSTBYNAME2_AF_INET6 = 0x04;
const GETHOSTBYADDR_AF_INET = 0x08;
const GETHOSTBYADDR_AF_INET6 = 0x10;
const GETADDRINFO_AF_UNSPEC = 0x20;
const GETADDRINFO_AF_INET = 0x40;
const GETADDRINFO_AF_INET6 = 0x80;
const ALL = 0xff;

const eq = (a: Uint8Array, b: Uint8Array): boolean => a.length === b.length && a.every((x, i) => x === b[i]);

/** What the system resolver answers in dns_test.c, from the zone above. */
function hostentIs(h: Hostent | null, name: string, family: number, addrs: Uint8Array[]): boolean {
  return h !== null && h.h_name === name && h.h_addrtype === family && h.h_length === (family === AF.INET ? 4 : 16)
    && h.h_addr_list.length === addrs.length && addrs.every((a) => h.h_addr_list.some((b) => eq(a, b)));
}

/** runtest: which of the eight lookups give the expected answer. */
async function runtest(chan: Chan): Promise<number> {
  let result = 0;
  if (hostentIs(await capGethostbyname(chan, 'example.com'), 'example.com', AF.INET, [v4('192.0.2.10')])) result |= GETHOSTBYNAME;
  if (hostentIs(await capGethostbyname2(chan, 'example.com', AF.INET), 'example.com', AF.INET, [v4('192.0.2.10')])) result |= GETHOSTBYNAME2_AF_INET;
  if (hostentIs(await capGethostbyname2(chan, 'example.com', AF.INET6), 'example.com', AF.INET6, [v6('2001:db8::10')])) result |= GETHOSTBYNAME2_AF_INET6;

  const hints: Hints = { ai_flags: 0, ai_family: AF.UNSPEC, ai_socktype: 0, ai_protocol: 0 };
  const want4 = sockaddrIn(v4('192.0.2.20'), 25);
  const want6 = sockaddrIn6(v6('2001:db8::20'), 25);
  let r = await capGetaddrinfo(chan, 'freebsd.org', '25', hints);
  if (r.error === 0 && r.res.some((a) => eq(a.ai_addr, want4)) && r.res.some((a) => eq(a.ai_addr, want6))) result |= GETADDRINFO_AF_UNSPEC;
  r = await capGetaddrinfo(chan, 'freebsd.org', '25', { ...hints, ai_family: AF.INET });
  if (r.error === 0 && r.res.length > 0 && r.res.every((a) => eq(a.ai_addr, want4))) result |= GETADDRINFO_AF_INET;
  r = await capGetaddrinfo(chan, 'freebsd.org', '25', { ...hints, ai_family: AF.INET6 });
  if (r.error === 0 && r.res.length > 0 && r.res.every((a) => eq(a.ai_addr, want6))) result |= GETADDRINFO_AF_INET6;

  if (hostentIs(await capGethostbyaddr(chan, v4('8.8.8.8'), AF.INET), 'dns.google', AF.INET, [v4('8.8.8.8')])) result |= GETHOSTBYADDR_AF_INET;
  if (hostentIs(await capGethostbyaddr(chan, v6('2001:4860:4860::8888'), AF.INET6), 'dns.google', AF.INET6, [v6('2001:4860:4860::8888')])) result |= GETHOSTBYADDR_AF_INET6;
  return result;
}

type Step = ['type', string[], number] | ['family', number[], number];
const N2A = 'NAME2ADDR';
const A2N = 'ADDR2NAME';
const { INET, INET6 } = AF;
const NOTCAP = ERRNO.NOTCAPABLE;

/** Every ATF test case of dns_test.c: its limit calls (with the errno each must give) and result. */
const DNS_TEST: { name: string; steps: Step[]; expected: number }[] = [
  { name: 'dns_no_limits', steps: [], expected: ALL },
  {
    name: 'dns_all_limits',
    steps: [['type', [N2A, A2N], 0], ['family', [INET, INET6], 0], ['family', [], NOTCAP], ['type', [], NOTCAP]],
    expected: ALL & ~GETADDRINFO_AF_UNSPEC,
  },
  {
    name: 'dns_name_limit',
    steps: [['type', [N2A], 0], ['type', [N2A, A2N], NOTCAP], ['type', [A2N], NOTCAP], ['family', [INET, INET6], 0]],
    expected: GETHOSTBYNAME | GETHOSTBYNAME2_AF_INET | GETHOSTBYNAME2_AF_INET6 | GETADDRINFO_AF_INET | GETADDRINFO_AF_INET6,
  },
  {
    name: 'dns_addr_limit',
    steps: [['type', [A2N], 0], ['type', [A2N, N2A], NOTCAP], ['type', [N2A], NOTCAP], ['family', [INET, INET6], 0]],
    expected: GETHOSTBYADDR_AF_INET | GETHOSTBYADDR_AF_INET6,
  },
  {
    name: 'dns_inet_limit',
    steps: [['type', [N2A, A2N], 0], ['family', [INET], 0], ['family', [INET, INET6], NOTCAP], ['family', [INET6], NOTCAP]],
    expected: GETHOSTBYNAME | GETHOSTBYNAME2_AF_INET | GETHOSTBYADDR_AF_INET | GETADDRINFO_AF_INET,
  },
  {
    name: 'dns_inet6_limit',
    steps: [['type', [N2A, A2N], 0], ['family', [INET6], 0], ['family', [INET6, INET], NOTCAP], ['family', [INET], NOTCAP]],
    expected: GETHOSTBYNAME2_AF_INET6 | GETHOSTBYADDR_AF_INET6 | GETADDRINFO_AF_INET6,
  },
  {
    name: 'dns_name_inet_limit',
    steps: [
      ['type', [N2A, A2N], 0], ['family', [INET, INET6], 0], ['type', [N2A], 0], ['type', [N2A, A2N], NOTCAP],
      ['type', [A2N], NOTCAP], ['family', [INET], 0], ['family', [INET, INET6], NOTCAP], ['family', [INET6], NOTCAP],
    ],
    expected: GETHOSTBYNAME | GETHOSTBYNAME2_AF_INET | GETADDRINFO_AF_INET,
  },
  {
    name: 'dns_name_inet6_limit',
    steps: [
      ['type', [N2A, A2N], 0], ['family', [INET6, INET], 0], ['type', [N2A], 0], ['type', [N2A, A2N], NOTCAP],
      ['type', [A2N], NOTCAP], ['family', [INET6], 0], ['family', [INET6, INET], NOTCAP], ['family', [INET], NOTCAP],
    ],
    expected: GETHOSTBYNAME2_AF_INET6 | GETADDRINFO_AF_INET6,
  },
  {
    name: 'dns_addr_inet_limit',
    steps: [
      ['type', [N2A, A2N], 0], ['family', [INET, INET6], 0], ['type', [A2N], 0], ['type', [A2N, N2A], NOTCAP],
      ['type', [N2A], NOTCAP], ['family', [INET], 0], ['family', [INET, INET6], NOTCAP], ['family', [INET6], NOTCAP],
    ],
    expected: GETHOSTBYADDR_AF_INET,
  },
  {
    name: 'dns_addr_inet6_limit',
    steps: [
      ['type', [N2A, A2N], 0], ['family', [INET6, INET], 0], ['type', [A2N], 0], ['type', [A2N, N2A], NOTCAP],
      ['type', [N2A], NOTCAP], ['family', [INET6], 0], ['family', [INET6, INET], NOTCAP], ['family', [INET], NOTCAP],
    ],
    expected: GETHOSTBYADDR_AF_INET6,
  },
];

describe('dns_test.c', () => {
  it.each(DNS_TEST)('$name', async ({ steps, expected }) => {
    const chan = open();
    for (const [kind, list, errno] of steps) {
      const got = kind === 'type' ? capDnsTypeLimit(chan, list as string[]) : capDnsFamilyLimit(chan, list as number[]);
      expect({ kind, list, errno: got }).toEqual({ kind, list, errno });
    }
    expect((await runtest(chan)).toString(16)).toBe(expected.toString(16));
  });

  it('refused calls answer NO_RECOVERY (3), from getaddrinfo too', async () => {
    const chan = open();
    expect(capDnsTypeLimit(chan, [A2N])).toBe(0);
    h_errno = 0;
    expect(await capGethostbyname(chan, 'example.com')).toBeNull();
    expect(h_errno).toBe(HERR.NO_RECOVERY);
    expect((await capGetaddrinfo(chan, 'example.com', null, null)).error).toBe(3);
    expect(queries).toEqual([]);
  });

  it('with a family limit, getaddrinfo without hints (AF_UNSPEC) is refused', async () => {
    const chan = open();
    expect(capDnsFamilyLimit(chan, [INET])).toBe(0);
    expect((await capGetaddrinfo(chan, 'example.com', null, null)).error).toBe(HERR.NO_RECOVERY);
    expect((await capGetaddrinfo(chan, 'example.com', null, { ai_flags: 0, ai_family: INET, ai_socktype: 0, ai_protocol: 0 })).error).toBe(0);
  });

  it('a family limit of AF_UNSPEC itself allows nothing, and cannot be reached by narrowing', async () => {
    const chan = open();
    expect(capDnsFamilyLimit(chan, [AF.UNSPEC])).toBe(0);
    const hints = { ai_flags: 0, ai_family: AF.UNSPEC, ai_socktype: 0, ai_protocol: 0 };
    expect((await capGetaddrinfo(chan, 'example.com', null, hints)).error).toBe(HERR.NO_RECOVERY);
    expect((await capGetaddrinfo(chan, 'example.com', null, null)).error).toBe(HERR.NO_RECOVERY);
    const narrowed = open();
    expect(capDnsFamilyLimit(narrowed, [INET])).toBe(0);
    expect(capDnsFamilyLimit(narrowed, [AF.UNSPEC])).toBe(NOTCAP);
  });

  it('accepts the legacy type names NAME and ADDR', async () => {
    const chan = open();
    expect(capDnsTypeLimit(chan, ['NAME'])).toBe(0);
    expect(await capGethostbyname(chan, 'example.com')).not.toBeNull();
    expect(await capGethostbyaddr(chan, v4('8.8.8.8'), INET)).toBeNull();
    expect(capDnsTypeLimit(chan, ['NAME2ADDR'])).toBe(NOTCAP); // "NAME2ADDR" is not "NAME"
  });

  it.each([
    ['an unknown type', (l: NvList) => l.addString('type0', 'BOTH')],
    ['a string key that is not type/host', (l: NvList) => l.addString('family0', 'INET')],
    ['a number key that is not family', (l: NvList) => l.addNumber('type0', 1)],
    ['a bool', (l: NvList) => l.addBool('family0', true)],
    ['a malformed host pattern', (l: NvList) => l.addString('host0', 'a..b')],
    ['a wildcard in the middle', (l: NvList) => l.addString('host0', 'a.*.org')],
  ])('refuses %s with EINVAL', (_, build) => {
    expect(open().limitSet(build(new NvList()))).toBe(ERRNO.INVAL);
  });
});

// ---------------------------------------------------------------------------------------------
// The host allowlist

describe('host allowlist', () => {
  it('answers only names the patterns allow, and never queries the others', async () => {
    const chan = open(dnsService.fromManifest!({ hosts: ['*.example.org'] }));
    const h = await capGethostbyname(chan, 'www.example.org');
    expect(h?.h_addr_list).toEqual([v4('192.0.2.30')]);
    queries.length = 0;
    h_errno = 0;
    expect(await capGethostbyname(chan, 'secret-data.evil.example')).toBeNull();
    expect(h_errno).toBe(HERR.NO_RECOVERY);
    expect(await capGethostbyname(chan, 'example.org')).toBeNull(); // "*.x" is not "x"
    expect(await capGethostbyname(chan, 'evilexample.org')).toBeNull();
    expect((await capGetaddrinfo(chan, 'example.com', '80', null)).error).toBe(HERR.NO_RECOVERY);
    expect(queries).toEqual([]);
  });

  it('matches case-insensitively, ignores a trailing dot, and queries the normalized name', async () => {
    const chan = open(dnsService.fromManifest!({ hosts: ['www.example.org'] }));
    const h = await capGethostbyname(chan, 'WWW.Example.ORG.');
    expect(h?.h_name).toBe('www.example.org');
    expect(queries.every((q) => q === 'www.example.org')).toBe(true);
  });

  it('checks reverse lookups by their PTR name, before querying', async () => {
    const chan = open(dnsService.fromManifest!({ hosts: ['*.example.org'] }));
    expect(await capGethostbyaddr(chan, v4('192.0.2.30'), INET)).toBeNull();
    expect(h_errno).toBe(HERR.NO_RECOVERY);
    const ni = await capGetnameinfo(chan, sockaddrIn(v4('192.0.2.30'), 80), 1025, 32, 0);
    expect(ni.error).toBe(HERR.NO_RECOVERY);
    expect(queries).toEqual([]);
    // A numeric answer needs no query, so it is allowed.
    expect(await capGetnameinfo(chan, sockaddrIn(v4('192.0.2.30'), 80), 1025, 32, NI.NUMERICHOST | NI.NUMERICSERV))
      .toEqual({ error: 0, host: '192.0.2.30', serv: '80' });
    // An operator allows reverse lookups by naming the arpa zone.
    const rev = open(dnsService.fromManifest!({ hosts: ['*.example.org', '*.in-addr.arpa'] }));
    expect((await capGethostbyaddr(rev, v4('192.0.2.30'), INET))?.h_name).toBe('www.example.org');
    expect(await capGethostbyaddr(rev, v6('2001:4860:4860::8888'), INET6)).toBeNull();
  });

  it('checks every name of a CNAME chain before it is queried: a chain that leaves the allowlist is refused', async () => {
    const chan = open(dnsService.fromManifest!({ hosts: ['*.allowed.test'] }));
    h_errno = 0;
    expect(await capGethostbyname(chan, 'cname.allowed.test')).toBeNull();
    expect(h_errno).toBe(HERR.NO_RECOVERY);
    expect(await capGethostbyname2(chan, 'cname.allowed.test', INET6)).toBeNull();
    for (const ai_flags of [AI.CANONNAME, 0]) {
      const r = await capGetaddrinfo(chan, 'cname.allowed.test', '80', { ai_flags, ai_family: INET, ai_socktype: SOCK.STREAM, ai_protocol: 0 });
      expect(r).toEqual({ error: HERR.NO_RECOVERY, res: [] });
    }
    expect(queries.length).toBeGreaterThan(0);
    expect(queries.filter((q) => !q.endsWith('.allowed.test'))).toEqual([]);
  });

  it('follows a chain inside the allowlist, one name at a time', async () => {
    const chan = open(dnsService.fromManifest!({ hosts: ['*.allowed.test'] }));
    expect(await capGethostbyname(chan, 'twice.allowed.test')).toEqual({
      h_name: 'www.allowed.test', h_addrtype: INET, h_length: 4, h_aliases: ['twice.allowed.test', 'inside.allowed.test'], h_addr_list: [v4('192.0.2.50')],
    });
    expect(queries).toEqual(['twice.allowed.test', 'inside.allowed.test', 'www.allowed.test', 'www.allowed.test']);
    const r = await capGetaddrinfo(chan, 'twice.allowed.test', null, { ai_flags: AI.CANONNAME, ai_family: INET6, ai_socktype: SOCK.STREAM, ai_protocol: 0 });
    expect(r.res).toEqual([{ ai_flags: AI.CANONNAME, ai_family: INET6, ai_socktype: SOCK.STREAM, ai_protocol: IPPROTO.TCP, ai_addr: sockaddrIn6(v6('2001:db8::50'), 0), ai_canonname: 'www.allowed.test' }]);
  });

  it(`a CNAME loop, or a chain longer than ${MAX_CNAME_CHAIN}, is NO_RECOVERY after a bounded number of queries`, async () => {
    for (const name of ['loop1.allowed.test', 'c0.allowed.test']) {
      queries.length = 0;
      h_errno = 0;
      expect(await capGethostbyname(open(), name)).toBeNull();
      expect(h_errno).toBe(HERR.NO_RECOVERY);
      expect(queries.length).toBeLessThanOrEqual(MAX_CNAME_CHAIN + 1);
    }
    // Within the bound, a chain resolves.
    expect((await capGethostbyname(open(), `c${12 - MAX_CNAME_CHAIN}.allowed.test`))?.h_addr_list).toEqual([v4('192.0.2.51')]);
  });

  it('lets numeric hosts through without a query', async () => {
    const chan = open(dnsService.fromManifest!({ hosts: ['*.example.org'] }));
    expect((await capGethostbyname(chan, '192.0.2.99'))?.h_addr_list).toEqual([v4('192.0.2.99')]);
    const r = await capGetaddrinfo(chan, '2001:db8::99', '443', { ai_flags: 0, ai_family: AF.UNSPEC, ai_socktype: SOCK.STREAM, ai_protocol: 0 });
    expect(r.res.map((a) => a.ai_addr)).toEqual([sockaddrIn6(v6('2001:db8::99'), 443)]);
    expect(queries).toEqual([]);
  });

  it.each<[string[], string[], number]>([
    [['*.example.org'], ['www.example.org'], 0],
    [['*.example.org'], ['*.a.example.org'], 0],
    [['*.example.org'], ['*.example.org', 'x.y.example.org'], 0],
    [['*.example.org'], ['*.EXAMPLE.org.'], 0],
    [['*.example.org'], ['example.org'], NOTCAP],
    [['*.example.org'], ['*.org'], NOTCAP],
    [['*.example.org'], ['*'], NOTCAP],
    [['*.example.org'], ['www.example.org', 'example.com'], NOTCAP],
    [['*.example.org'], [], NOTCAP], // dropping the category widens to "all"
    [['www.example.org'], ['*.example.org'], NOTCAP],
    [['www.example.org'], ['www.example.org'], 0],
    [['*'], ['anything.at.all', '*.net'], 0],
  ])('narrowing %j to %j gives %i', (old, next, errno) => {
    const chan = open();
    expect(capDnsHostLimit(chan, old)).toBe(0);
    expect(capDnsHostLimit(chan, next)).toBe(errno);
  });

  it('keeps the host category when type or family limits change (as cap_dns_*_limit rebuild them)', () => {
    const chan = open(dnsService.fromManifest!({ hosts: ['*.example.org'] }));
    expect(capDnsTypeLimit(chan, [N2A])).toBe(0);
    expect(capDnsFamilyLimit(chan, [INET])).toBe(0);
    expect(chan.limits!.getString('host0')).toBe('*.example.org');
  });

  it('pattern containment is sound: a host a narrower pattern matches, the wider one matches', () => {
    const label = fc.constantFrom('a', 'b', 'example', 'org', 'x-1');
    const name = fc.array(label, { minLength: 1, maxLength: 4 }).map((l) => l.join('.'));
    const pattern = fc.oneof(name, name.map((n) => `*.${n}`), fc.constant('*'));
    fc.assert(fc.property(pattern, pattern, name, (inner, outer, host) => {
      const i = normalizePattern(inner)!;
      const o = normalizePattern(outer)!;
      if (patternWithin(i, o) && patternMatches(i, host)) return patternMatches(o, host);
      return true;
    }), { numRuns: 2000 });
  });
});

// ---------------------------------------------------------------------------------------------
// The replies cap_dns.c's client reads

describe('wire shapes', () => {
  it('gethostbyname follows a CNAME: h_name is the canonical name, the alias in h_aliases', async () => {
    const h = await capGethostbyname(open(), 'alias.example.org');
    expect(h).toEqual({ h_name: 'www.example.org', h_addrtype: INET, h_length: 4, h_aliases: ['alias.example.org'], h_addr_list: [v4('192.0.2.30')] });
  });

  it('hostent pairs come in hostent_pack order', async () => {
    const chan = open();
    const { reply } = await chan.xfer(new NvList().addString('cmd', 'gethostbyname').addNumber('family', INET6).addString('name', 'example.com'));
    expect(reply.pairs.map(([n]) => n)).toEqual(['name', 'addrtype', 'length', 'naliases', 'addr0', 'naddrs']);
    expect(reply.getBinary('addr0')).toEqual(v6('2001:db8::10'));
  });

  it.each([
    ['NXDOMAIN', 'nope.example.org', INET, HERR.HOST_NOT_FOUND],
    ['no AAAA record', 'v4only.example.org', INET6, HERR.NO_DATA],
    ['a malformed name', 'bad..name', INET, HERR.HOST_NOT_FOUND],
    ['an unsupported family', 'example.com', 7, HERR.NO_RECOVERY],
    ['an IPv4 literal asked as AF_INET6', '192.0.2.1', INET6, HERR.HOST_NOT_FOUND],
  ])('gethostbyname2: %s → h_errno %i', async (_, name, family, herr) => {
    h_errno = 0;
    expect(await capGethostbyname2(open(), name, family)).toBeNull();
    expect(h_errno).toBe(herr);
  });

  it('gethostbyaddr: an address of the wrong length, or without PTR', async () => {
    expect(await capGethostbyaddr(open(), v4('8.8.8.8').subarray(0, 3), INET)).toBeNull();
    expect(h_errno).toBe(HERR.NO_RECOVERY);
    expect(await capGethostbyaddr(open(), v4('192.0.2.99'), INET)).toBeNull();
    expect(h_errno).toBe(HERR.HOST_NOT_FOUND);
  });

  it('getaddrinfo: res%u nvlists with wasi-libc sockaddrs, a TCP and a UDP entry per address, IPv4 first', async () => {
    const { error, res } = await capGetaddrinfo(open(), 'freebsd.org', 'smtp', { ai_flags: AI.CANONNAME, ai_family: AF.UNSPEC, ai_socktype: 0, ai_protocol: 0 });
    expect(error).toBe(0);
    expect(res).toEqual([
      { ai_flags: AI.CANONNAME, ai_family: INET, ai_socktype: SOCK.STREAM, ai_protocol: IPPROTO.TCP, ai_addr: sockaddrIn(v4('192.0.2.20'), 25), ai_canonname: 'freebsd.org' },
      { ai_flags: AI.CANONNAME, ai_family: INET, ai_socktype: SOCK.DGRAM, ai_protocol: IPPROTO.UDP, ai_addr: sockaddrIn(v4('192.0.2.20'), 25) },
      { ai_flags: AI.CANONNAME, ai_family: INET6, ai_socktype: SOCK.STREAM, ai_protocol: IPPROTO.TCP, ai_addr: sockaddrIn6(v6('2001:db8::20'), 25) },
      { ai_flags: AI.CANONNAME, ai_family: INET6, ai_socktype: SOCK.DGRAM, ai_protocol: IPPROTO.UDP, ai_addr: sockaddrIn6(v6('2001:db8::20'), 25) },
    ]);
    // The raw bytes of sockaddr_in: family 1 (LE), port 25 (BE), address, zero padding.
    expect(Array.from(res[0]!.ai_addr)).toEqual([1, 0, 0, 25, 192, 0, 2, 20, 0, 0, 0, 0, 0, 0, 0, 0]);
  });

  it('getaddrinfo: AI_CANONNAME follows CNAMEs; no hostname gives loopback or, with AI_PASSIVE, the wildcard', async () => {
    const c = await capGetaddrinfo(open(), 'alias.example.org', null, { ai_flags: AI.CANONNAME, ai_family: INET, ai_socktype: SOCK.STREAM, ai_protocol: 0 });
    expect(c.res[0]?.ai_canonname).toBe('www.example.org');
    const lo = await capGetaddrinfo(open(), null, '8080', { ai_flags: 0, ai_family: AF.UNSPEC, ai_socktype: SOCK.STREAM, ai_protocol: 0 });
    expect(lo.res.map((a) => a.ai_addr)).toEqual([sockaddrIn(v4('127.0.0.1'), 8080), sockaddrIn6(v6('::1'), 8080)]);
    const any = await capGetaddrinfo(open(), null, '8080', { ai_flags: AI.PASSIVE, ai_family: INET, ai_socktype: SOCK.DGRAM, ai_protocol: 0 });
    expect(any.res).toEqual([{ ai_flags: AI.PASSIVE, ai_family: INET, ai_socktype: SOCK.DGRAM, ai_protocol: IPPROTO.UDP, ai_addr: sockaddrIn(v4('0.0.0.0'), 8080) }]);
    // One CNAME query per name of the chain, then the address of the canonical name.
    expect(queries).toEqual(['alias.example.org', 'www.example.org', 'www.example.org']);
  });

  it('getaddrinfo: AI_V4MAPPED maps A records when there is no AAAA', async () => {
    const r = await capGetaddrinfo(open(), 'v4only.example.org', '80', { ai_flags: AI.V4MAPPED, ai_family: INET6, ai_socktype: SOCK.STREAM, ai_protocol: 0 });
    expect(r.res.map((a) => a.ai_addr)).toEqual([sockaddrIn6(v6('::ffff:c000:228'), 80)]);
  });

  const H = (over: Partial<Hints>): Hints => ({ ai_flags: 0, ai_family: AF.UNSPEC, ai_socktype: 0, ai_protocol: 0, ...over });
  it.each<[string, string | null, string | null, Hints | null, number]>([
    ['no hostname and no servname', null, null, null, EAI.NONAME],
    ['NXDOMAIN', 'nope.example.org', null, null, EAI.NONAME],
    ['an unknown family', 'example.com', null, H({ ai_family: 28 }), EAI.FAMILY],
    ['an unknown socktype', 'example.com', null, H({ ai_socktype: 1 }), EAI.SOCKTYPE],
    ['SOCK_DGRAM with IPPROTO_TCP', 'example.com', null, H({ ai_socktype: SOCK.DGRAM, ai_protocol: IPPROTO.TCP }), EAI.BADHINTS],
    ['an unknown flag', 'example.com', null, H({ ai_flags: 0x1000 }), EAI.BADFLAGS],
    ['AI_CANONNAME without a hostname', null, '80', H({ ai_flags: AI.CANONNAME }), EAI.BADFLAGS],
    ['AI_NUMERICHOST with a name', 'example.com', null, H({ ai_flags: AI.NUMERICHOST }), EAI.NONAME],
    ['AI_NUMERICSERV with a name', 'example.com', 'http', H({ ai_flags: AI.NUMERICSERV }), EAI.NONAME],
    ['an unknown service', 'example.com', 'no-such-service', null, EAI.SERVICE],
    ['a port out of range', 'example.com', '65536', null, EAI.SERVICE],
    ['an IPv4 literal under AF_INET6', '192.0.2.1', null, H({ ai_family: INET6 }), EAI.NONAME],
  ])('getaddrinfo: %s → EAI %i', async (_, host, serv, hints, eai) => {
    expect((await capGetaddrinfo(open(), host, serv, hints)).error).toBe(eai);
  });

  it('getnameinfo: names, services, flags and buffer sizes', async () => {
    const chan = open();
    const sa = sockaddrIn(v4('8.8.8.8'), 53);
    expect(await capGetnameinfo(chan, sa, 1025, 32, 0)).toEqual({ error: 0, host: 'dns.google', serv: 'domain' });
    expect(await capGetnameinfo(chan, sa, 1025, 0, NI.NOFQDN)).toEqual({ error: 0, host: 'dns' });
    expect(await capGetnameinfo(chan, sa, 0, 32, NI.NUMERICSERV)).toEqual({ error: 0, serv: '53' });
    expect(await capGetnameinfo(chan, sockaddrIn6(v6('2001:4860:4860::8888'), 443), 1025, 32, 0)).toEqual({ error: 0, host: 'dns.google', serv: 'https' });
    expect(await capGetnameinfo(chan, sockaddrIn6(v6('fe80::1'), 0, 3), 1025, 0, NI.NUMERICHOST)).toEqual({ error: 0, host: 'fe80::1%3' });
    const unknown = sockaddrIn(v4('192.0.2.99'), 0);
    expect(await capGetnameinfo(chan, unknown, 1025, 0, 0)).toEqual({ error: 0, host: '192.0.2.99' });
    expect((await capGetnameinfo(chan, unknown, 1025, 0, NI.NAMEREQD)).error).toBe(EAI.NONAME);
    expect((await capGetnameinfo(chan, sa, 10, 0, 0)).error).toBe(EAI.OVERFLOW); // "dns.google" + NUL is 11
    expect((await capGetnameinfo(chan, sa, 11, 0, 0)).host).toBe('dns.google');
    expect((await capGetnameinfo(chan, sa, 0, 0, 0)).error).toBe(EAI.NONAME);
  });

  it('getnameinfo: a sockaddr of the wrong size or family is EAI_FAIL; a refused family NO_RECOVERY', async () => {
    expect((await capGetnameinfo(open(), sockaddrIn(v4('8.8.8.8'), 53).subarray(0, 8), 1025, 0, 0)).error).toBe(EAI.FAIL);
    const freebsdLayout = Uint8Array.of(16, 2, 0, 53, 8, 8, 8, 8, 0, 0, 0, 0, 0, 0, 0, 0); // sin_len, sin_family=AF_INET(2)
    expect((await capGetnameinfo(open(), freebsdLayout, 1025, 0, 0)).error).toBe(EAI.FAIL);
    const chan = open();
    expect(capDnsFamilyLimit(chan, [INET6])).toBe(0);
    expect((await capGetnameinfo(chan, sockaddrIn(v4('8.8.8.8'), 53), 1025, 0, NI.NUMERICHOST)).error).toBe(HERR.NO_RECOVERY);
  });

  it('an unknown command is NO_RECOVERY', async () => {
    expect((await open().xfer(new NvList().addString('cmd', 'gethostent'))).error).toBe(HERR.NO_RECOVERY);
  });

  it('a resolver that refuses or does not answer gives TRY_AGAIN / EAI_AGAIN', async () => {
    const dead = new Chan(dnsService, null, { servers: ['127.0.0.1:9'], timeout: 200, tries: 1 });
    h_errno = 0;
    expect(await capGethostbyname(dead, 'example.com')).toBeNull();
    expect(h_errno).toBe(HERR.TRY_AGAIN);
    expect((await capGetaddrinfo(dead, 'example.com', null, null)).error).toBe(EAI.AGAIN);
  });
});

// ---------------------------------------------------------------------------------------------
// Manifest grants

describe('fromManifest', () => {
  it('maps types, families and hosts to flat keys', () => {
    const l = dnsService.fromManifest!({ types: ['NAME2ADDR', 'addr2name'], families: ['AF_INET', 'inet6'], hosts: ['*.Example.org', 'api.example.net.'] })!;
    expect(l.pairs.map(([n, v]) => [n, v.type === 'number' ? Number(v.value) : (v as { value: unknown }).value])).toEqual([
      ['type0', 'NAME2ADDR'], ['type1', 'ADDR2NAME'], ['family0', AF.INET], ['family1', AF.INET6],
      ['host0', '*.example.org'], ['host1', 'api.example.net'],
    ]);
    expect(dnsService.limit!(null, l)).toBe(0);
  });

  it('{} is no limits', () => {
    expect(dnsService.fromManifest!({})).toBeNull();
  });

  it.each([
    [{ type: ['NAME2ADDR'] }, /unknown key "type"/],
    [{ types: [] }, /allow every type/],
    [{ types: ['BOTH'] }, /unknown type/],
    [{ families: ['AF_UNIX'] }, /unknown family/],
    [{ families: [28] }, /wasi-libc/],
    [{ hosts: ['exa mple.org'] }, /not a host pattern/],
    [{ hosts: [] }, /allow every name/],
  ])('refuses %j', (grant, message) => {
    expect(() => dnsService.fromManifest!(grant)).toThrow(GrantError);
    expect(() => dnsService.fromManifest!(grant)).toThrow(message);
  });
});

/**
 * system.net (FreeBSD's cap_net) through the broker, with the run's sockets played by a provider
 * that really connects on loopback: limits that only narrow (mode, bind/connect addresses,
 * name2addr hosts and families, addr2name), a clone that cannot widen, a refused address never
 * reaching the server, CONNECTDNS and named connect targets, the audit trail, the manifest grant.
 */
import net from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Broker, type DescriptorGrant } from '../../../src/casper/broker.js';
import { NvList, NV_FLAG } from '../../../src/casper/nvlist.js';
import type { NetDecision, SocketProvider } from '../../../src/casper/service.js';
import { SERVICES } from '../../../src/casper/services/index.js';
import { AF, SOCK } from '../../../src/casper/services/dns.js';
import netService, { CAPNET, grantAddresses, readSockaddr, sockaddrOf, sockaddrText } from '../../../src/casper/services/net.js';
import { GrantError } from '../../../src/casper/services/common.js';
import { ERRNO } from '../../../src/wasi/constants.js';
import { startDnsServer, type DnsFixture } from '../../helpers/dns.js';

// ---------------------------------------------------------------------------------------------
// A loopback server that counts the connections it sees, and the run's sockets

let server: net.Server;
let port: number;
let seen = 0;
let dnsFixture: DnsFixture;

beforeAll(async () => {
  server = net.createServer((s) => { seen++; s.on('error', () => {}); s.end('hello\n'); });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as net.AddressInfo).port;
  dnsFixture = await startDnsServer({ forward: true });
});
afterAll(async () => {
  await new Promise<void>((r) => server.close(() => r()));
  await dnsFixture.close();
});

/** The run's sockets: real connections on loopback, slots counted from 100. */
class Sockets implements SocketProvider {
  opened = new Map<number, net.Socket | net.Server>();
  released: number[] = [];
  attempts: string[] = [];
  private next = 100;
  async connect(to: { host: string; port: number }): Promise<number> {
    this.attempts.push(`${to.host}:${to.port}`);
    const s = await new Promise<net.Socket>((resolve, reject) => {
      const c = net.connect(to.port, to.host);
      c.once('connect', () => { c.on('error', () => {}); resolve(c); });
      c.once('error', (e) => reject(Object.assign(e, { errno: (e as NodeJS.ErrnoException).code === 'ECONNREFUSED' ? ERRNO.CONNREFUSED : ERRNO.IO })));
    });
    this.opened.set(this.next, s);
    return this.next++;
  }
  async listen(at: { host: string; port: number }): Promise<number> {
    this.attempts.push(`listen ${at.host}:${at.port}`);
    const srv = net.createServer();
    await new Promise<void>((r) => srv.listen(at.port, at.host, r));
    this.opened.set(this.next, srv);
    return this.next++;
  }
  release(slot: number): void {
    this.released.push(slot);
    const s = this.opened.get(slot);
    if (s instanceof net.Socket) s.destroy(); else s?.close();
    this.opened.delete(slot);
  }
  closeAll(): void { for (const slot of [...this.opened.keys()]) this.release(slot); }
}

let sockets: Sockets;
let decisions: NetDecision[];
afterEach(() => sockets?.closeAll());

// ---------------------------------------------------------------------------------------------
// cap_net.c's client, over the broker

const req = (cmd: string, f?: (l: NvList) => void): NvList => { const l = new NvList().addString('cmd', cmd); f?.(l); return l; };

async function xfer(b: Broker, ch: number, r: NvList): Promise<{ error: number; reply: NvList; descriptors: DescriptorGrant[] }> {
  const a = await b.xfer(ch, r);
  return { error: a.errno, reply: a.reply, descriptors: a.descriptors };
}

async function serviceOpen(b: Broker, name: string): Promise<number> {
  const core = b.openCore();
  const a = await b.xfer(core, req('open', (l) => l.addString('service', name)));
  expect(a.errno).toBe(0);
  const d = a.descriptors[0]!;
  if (d.kind !== 'channel') throw new Error('not a channel');
  return d.id;
}

const sa = (spec: string): Uint8Array => sockaddrOf(spec)!;

/** cap_net_limit_init … cap_net_limit, as the SDK packs it. */
class Limit {
  private cats: Record<string, NvList> = {};
  constructor(private readonly mode: number) {}
  private cat(name: string): NvList { return this.cats[name] ??= new NvList(); }
  private sockaddr(c: string, spec: string): this {
    const cat = this.cat(c);
    let list = cat.getNvlist('sockaddr');
    if (!list) { list = new NvList(NV_FLAG.NO_UNIQUE); cat.addNvlist('sockaddr', list); }
    list.addBinary('sockaddr', sa(spec));
    return this;
  }
  connect(spec: string): this { return this.sockaddr('connect', spec); }
  bind(spec: string): this { return this.sockaddr('bind', spec); }
  addr2name(spec: string): this { return this.sockaddr('addr2name', spec); }
  name2addr(host: string, serv: string): this {
    const cat = this.cat('name2addr');
    let hosts = cat.getNvlist('hosts');
    if (!hosts) { hosts = new NvList(NV_FLAG.NO_UNIQUE); cat.addNvlist('hosts', hosts); }
    hosts.addString(host, serv);
    return this;
  }
  family(c: 'name2addr' | 'addr2name', ...f: number[]): this {
    this.cat(c).add('family', { type: 'number_array', value: f.map(BigInt) });
    return this;
  }
  build(): NvList {
    const l = new NvList().addNumber('mode', this.mode);
    for (const [k, v] of Object.entries(this.cats)) l.addNvlist(k, v.clone());
    return l;
  }
}

const limitSet = async (b: Broker, ch: number, l: Limit | NvList): Promise<number> =>
  (await b.xfer(ch, req('limit_set', (r) => r.addNvlist('limits', l instanceof Limit ? l.build() : l)))).errno;
const connect = (b: Broker, ch: number, spec: string) => xfer(b, ch, req('connect', (l) => l.addBinary('saddr', sa(spec))));
const getaddrinfo = (b: Broker, ch: number, host: string, serv: string, family: number = AF.INET) =>
  xfer(b, ch, req('getaddrinfo', (l) => {
    l.addString('hostname', host).addString('servname', serv);
    l.addNumber('hints.ai_flags', 0).addNumber('hints.ai_family', family).addNumber('hints.ai_socktype', SOCK.STREAM).addNumber('hints.ai_protocol', 0);
  }));

function fresh(grant: Record<string, unknown> = {}): Promise<{ b: Broker; ch: number }> {
  sockets = new Sockets();
  decisions = [];
  const b = new Broker({
    grants: { 'system.net': grant }, services: SERVICES, sockets, audit: (d) => decisions.push(d),
    config: { 'system.net': { servers: [`127.0.0.1:${dnsFixture.port}`], timeout: 2000, tries: 1 } },
  });
  return serviceOpen(b, 'system.net').then((ch) => ({ b, ch }));
}

// ---------------------------------------------------------------------------------------------

describe('connect', () => {
  it('hands the guest a connected socket descriptor for an allowed address', async () => {
    const { b, ch } = await fresh();
    expect(await limitSet(b, ch, new Limit(CAPNET.CONNECT).connect(`127.0.0.1:${port}`))).toBe(0);
    const before = seen;
    const r = await connect(b, ch, `127.0.0.1:${port}`);
    expect(r.error).toBe(0);
    expect(r.reply.get('s', 'descriptor')?.value).toBe(0);
    expect(r.descriptors).toEqual([{ kind: 'socket', slot: 100, listening: false }]);
    await expect.poll(() => seen).toBe(before + 1);
    expect(decisions.at(-1)).toMatchObject({ call: 'cap_connect', address: `127.0.0.1:${port}`, errno: 0 });
  });

  it('refuses an address outside the limits before any packet leaves: the server sees no connection', async () => {
    const { b, ch } = await fresh();
    // Allowed: another port of the same host. Asked: the server's.
    expect(await limitSet(b, ch, new Limit(CAPNET.CONNECT).connect('127.0.0.1:1'))).toBe(0);
    const before = seen;
    const r = await connect(b, ch, `127.0.0.1:${port}`);
    expect(r.error).toBe(ERRNO.NOTCAPABLE);
    expect(r.descriptors).toEqual([]);
    expect(sockets.attempts).toEqual([]);
    // A connection that had gone out would be counted with the allowed one made after it.
    const { b: b2, ch: ch2 } = await fresh();
    expect((await connect(b2, ch2, `127.0.0.1:${port}`)).error).toBe(0);
    await expect.poll(() => seen).toBe(before + 1);
    await new Promise<void>((r) => setImmediate(r));
    expect(seen).toBe(before + 1);
  });

  it('audits a refusal with the address and the limit that refused it', async () => {
    const { b, ch } = await fresh();
    expect(await limitSet(b, ch, new Limit(CAPNET.NAME2ADDR))).toBe(0);
    expect((await connect(b, ch, '10.0.0.1:80')).error).toBe(ERRNO.NOTCAPABLE);
    expect(decisions).toEqual([expect.objectContaining({
      call: 'cap_connect', address: '10.0.0.1:80', errno: ERRNO.NOTCAPABLE,
      message: expect.stringContaining('CAPNET_CONNECT'),
    })]);
  });

  it('a failed connect answers its errno and hands out nothing', async () => {
    const { b, ch } = await fresh();
    const closed = net.createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const dead = (closed.address() as net.AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    const r = await connect(b, ch, `127.0.0.1:${dead}`);
    expect(r.error).toBe(ERRNO.CONNREFUSED);
    expect(r.descriptors).toEqual([]);
    expect(decisions.at(-1)).toMatchObject({ errno: ERRNO.CONNREFUSED });
  });

  it('a malformed sockaddr is EINVAL', async () => {
    const { b, ch } = await fresh();
    expect((await xfer(b, ch, req('connect', (l) => l.addBinary('saddr', new Uint8Array(7))))).error).toBe(ERRNO.INVAL);
    expect((await xfer(b, ch, req('connect'))).error).toBe(ERRNO.INVAL);
  });

  it('without a socket provider (a broker its host gave none) connect is ENOTSUP', async () => {
    const b = new Broker({ grants: { 'system.net': {} }, services: SERVICES });
    const ch = await serviceOpen(b, 'system.net');
    expect((await connect(b, ch, `127.0.0.1:${port}`)).error).toBe(ERRNO.NOTSUP);
  });

  it('CONNECTDNS allows exactly the addresses getaddrinfo returned on this channel, at their port', async () => {
    const { b, ch } = await fresh();
    expect(await limitSet(b, ch, new Limit(CAPNET.CONNECTDNS | CAPNET.NAME2ADDR))).toBe(0);
    expect((await connect(b, ch, '192.0.2.30:80')).error).toBe(ERRNO.NOTCAPABLE);
    const r = await getaddrinfo(b, ch, 'www.example.org', '80');
    expect(r.error).toBe(0);
    const ai = readSockaddr(r.reply.getNvlist('res0')!.getBinary('ai_addr')!)!;
    expect(sockaddrText(ai)).toBe('192.0.2.30:80');
    // 192.0.2.30 is TEST-NET: allowed now, and the connect is attempted (it then fails or hangs:
    // the provider is asked, which is what this checks); another port is still refused.
    expect((await connect(b, ch, '192.0.2.30:81')).error).toBe(ERRNO.NOTCAPABLE);
    expect(sockets.attempts).toEqual([]);
  });

  it('a named connect target allows the addresses name2addr resolved from that name, at that port', async () => {
    const { b, ch } = await fresh({ mode: ['connect', 'name2addr'], connect: ['www.example.org:443'], name2addr: { hosts: { 'www.example.org': '' } } });
    expect((await connect(b, ch, '192.0.2.30:443')).error).toBe(ERRNO.NOTCAPABLE); // not resolved yet
    expect((await getaddrinfo(b, ch, 'www.example.org', '443')).error).toBe(0);
    expect((await connect(b, ch, '192.0.2.30:80')).error).toBe(ERRNO.NOTCAPABLE); // another port
    expect(sockets.attempts).toEqual([]);
    // A clone starts with nothing resolved.
    const clone = await b.xfer(ch, req('clone'));
    const cid = (clone.descriptors[0] as { id: number }).id;
    expect((await connect(b, cid, '192.0.2.30:443')).error).toBe(ERRNO.NOTCAPABLE);
  });
});

describe('bind', () => {
  it('hands the guest a listening socket for an allowed address, and refuses others', async () => {
    const probe = net.createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const free = (probe.address() as net.AddressInfo).port;
    await new Promise<void>((r) => probe.close(() => r()));
    const { b, ch } = await fresh({ mode: ['bind'], bind: [`127.0.0.1:${free}`] });
    expect((await xfer(b, ch, req('bind', (l) => l.addBinary('saddr', sa(`127.0.0.1:${free + 1}`))))).error).toBe(ERRNO.NOTCAPABLE);
    const r = await xfer(b, ch, req('bind', (l) => l.addBinary('saddr', sa(`127.0.0.1:${free}`))));
    expect(r.error).toBe(0);
    expect(r.descriptors).toEqual([{ kind: 'socket', slot: 100, listening: true }]);
    expect((await connect(b, ch, `127.0.0.1:${port}`)).error).toBe(ERRNO.NOTCAPABLE); // no CONNECT in the mode
  });
});

describe('name resolution', () => {
  it('getaddrinfo outside the name2addr hosts is refused without a query', async () => {
    const { b, ch } = await fresh();
    expect(await limitSet(b, ch, new Limit(CAPNET.NAME2ADDR).name2addr('www.example.org', '443').family('name2addr', AF.INET))).toBe(0);
    dnsFixture.queries.length = 0;
    expect((await getaddrinfo(b, ch, 'other.example.org', '443')).error).toBe(ERRNO.NOTCAPABLE);
    expect((await getaddrinfo(b, ch, 'www.example.org', '80')).error).toBe(ERRNO.NOTCAPABLE);
    expect((await getaddrinfo(b, ch, 'www.example.org', '443', AF.INET6)).error).toBe(ERRNO.NOTCAPABLE);
    expect(dnsFixture.queries).toEqual([]);
    expect((await getaddrinfo(b, ch, 'www.example.org', '443')).error).toBe(0);
    expect(dnsFixture.queries).toContain('www.example.org');
  });

  it('getnameinfo and gethostbyaddr need their modes and addresses', async () => {
    const { b, ch } = await fresh();
    expect(await limitSet(b, ch, new Limit(CAPNET.ADDR2NAME).addr2name('192.0.2.30:0'))).toBe(0);
    const gni = (spec: string) => xfer(b, ch, req('getnameinfo', (l) => l.addNumber('hostlen', 256).addNumber('servlen', 0).addBinary('sa', sa(spec)).addNumber('flags', 0)));
    expect((await gni('192.0.2.31:0')).error).toBe(ERRNO.NOTCAPABLE);
    const ok = await gni('192.0.2.30:0');
    expect(ok.error).toBe(0);
    expect(ok.reply.getString('host')).toBe('www.example.org');
    const ghba = await xfer(b, ch, req('gethostbyaddr', (l) => l.addBinary('addr', Uint8Array.of(192, 0, 2, 30)).addNumber('family', AF.INET)));
    expect(ghba.error).toBe(ERRNO.NOTCAPABLE); // DEPRECATED_ADDR2NAME is not in the mode
  });
});

describe('limits only narrow', () => {
  const l = () => new Limit(CAPNET.CONNECT | CAPNET.NAME2ADDR).connect('127.0.0.1:80').name2addr('www.example.org', '443').family('name2addr', AF.INET);

  it.each([
    ['a mode bit the old limits lack', new Limit(CAPNET.CONNECT | CAPNET.BIND).connect('127.0.0.1:80').name2addr('www.example.org', '443').family('name2addr', AF.INET)],
    ['another connect address', new Limit(CAPNET.CONNECT | CAPNET.NAME2ADDR).connect('127.0.0.1:81').name2addr('www.example.org', '443').family('name2addr', AF.INET)],
    ['another host', new Limit(CAPNET.CONNECT | CAPNET.NAME2ADDR).connect('127.0.0.1:80').name2addr('evil.example.org', '443').family('name2addr', AF.INET)],
    ['another service of the host', new Limit(CAPNET.CONNECT | CAPNET.NAME2ADDR).connect('127.0.0.1:80').name2addr('www.example.org', '').family('name2addr', AF.INET)],
    ['another family', new Limit(CAPNET.CONNECT | CAPNET.NAME2ADDR).connect('127.0.0.1:80').name2addr('www.example.org', '443').family('name2addr', AF.INET, AF.INET6)],
    ['a category left out (absent = all)', new Limit(CAPNET.CONNECT | CAPNET.NAME2ADDR).name2addr('www.example.org', '443').family('name2addr', AF.INET)],
  ])('widening by %s is ENOTCAPABLE, on the channel and on a clone', async (_what, wider) => {
    const { b, ch } = await fresh();
    expect(await limitSet(b, ch, l())).toBe(0);
    expect(await limitSet(b, ch, wider)).toBe(ERRNO.NOTCAPABLE);
    const clone = await b.xfer(ch, req('clone'));
    expect(clone.errno).toBe(0);
    const cid = (clone.descriptors[0] as { id: number }).id;
    expect(await limitSet(b, cid, wider)).toBe(ERRNO.NOTCAPABLE);
    // And the limits held are still the narrow ones.
    expect((await connect(b, cid, '127.0.0.1:81')).error).toBe(ERRNO.NOTCAPABLE);
  });

  it('the manifest grant is the outermost limit: a guest cannot widen past it', async () => {
    const { b, ch } = await fresh({ mode: ['connect'], connect: ['127.0.0.1:80'] });
    expect(await limitSet(b, ch, new Limit(CAPNET.CONNECT).connect('127.0.0.1:80'))).toBe(0);
    const { b: b2, ch: ch2 } = await fresh({ mode: ['connect'], connect: ['127.0.0.1:80'] });
    expect(await limitSet(b2, ch2, new Limit(CAPNET.CONNECT).connect(`127.0.0.1:${port}`))).toBe(ERRNO.NOTCAPABLE);
    expect(await limitSet(b2, ch2, new Limit(CAPNET.CONNECT | CAPNET.CONNECTDNS).connect('127.0.0.1:80'))).toBe(ERRNO.NOTCAPABLE);
    expect((await connect(b2, ch2, `127.0.0.1:${port}`)).error).toBe(ERRNO.NOTCAPABLE);
    expect(sockets.attempts).toEqual([]);
  });

  it('narrowing is accepted; the mode is required on every call; malformed limits are EINVAL', async () => {
    const { b, ch } = await fresh();
    expect(await limitSet(b, ch, l())).toBe(0);
    expect(await limitSet(b, ch, new Limit(CAPNET.CONNECT).connect('127.0.0.1:80').name2addr('www.example.org', '443').family('name2addr', AF.INET))).toBe(0);
    const noMode = new NvList();
    expect(await limitSet(b, ch, noMode)).toBe(ERRNO.NOTCAPABLE);
    expect(await limitSet(b, ch, new NvList().addNumber('mode', 0x80))).toBe(ERRNO.INVAL);
    expect(await limitSet(b, ch, new NvList().addNumber('mode', CAPNET.CONNECT).addString('connect', 'x'))).toBe(ERRNO.INVAL);
  });
});

describe('manifest grant', () => {
  const issue = {
    mode: ['connect', 'name2addr'],
    connect: ['api.example.org:443', '127.0.0.1:5432'],
    name2addr: { hosts: { 'api.example.org': '443' }, family: ['inet', 'inet6'] },
  };

  it('reads the issue example into FreeBSD limits', () => {
    const l = netService.fromManifest!(issue)!;
    expect(Number(l.getNumber('mode'))).toBe(CAPNET.CONNECT | CAPNET.NAME2ADDR);
    const c = l.getNvlist('connect')!;
    expect(c.getNvlist('sockaddr')!.pairs.map(([, v]) => sockaddrText(readSockaddr((v as { value: Uint8Array }).value)!))).toEqual(['127.0.0.1:5432']);
    expect(c.getNvlist('hosts')!.pairs).toEqual([['api.example.org', { type: 'string', value: '443' }]]);
    expect(l.getNvlist('name2addr')!.get('family', 'number_array')!.value).toEqual([1n, 2n]);
    expect(grantAddresses(issue)).toEqual({ connect: ['127.0.0.1:5432', 'api.example.org:443'], bind: [] });
  });

  it('{} is no limits; connect with no list reaches anything', () => {
    expect(netService.fromManifest!({})).toBeNull();
    expect(grantAddresses({})).toEqual({ connect: ['*', '*'], bind: ['*'] });
    expect(grantAddresses({ mode: ['connect'] })).toEqual({ connect: ['*'], bind: [] });
  });

  it.each([
    [{ mode: ['connnect'] }, /unknown mode "connnect"/],
    [{ connect: ['127.0.0.1'] }, /not an address/],
    [{ name2addr: { hosts: ['x'] } }, /name2addr.hosts maps names/],
    [{ name2addr: { family: ['ipx'] } }, /unknown family "ipx"/],
    [{ listen: [] }, /unknown key "listen"/],
  ])('refuses %j', (grant, msg) => {
    expect(() => netService.fromManifest!(grant as Record<string, unknown>)).toThrow(GrantError);
    expect(() => netService.fromManifest!(grant as Record<string, unknown>)).toThrow(msg);
  });
});

// Casper end to end: the C example guests and hand-made nvlists against the real broker and
// services, through createHost, with a DNS server on loopback.
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NvList } from '../../src/casper/nvlist.js';
import { packNvlist, unpackNvlist } from '../../src/casper/nvlist-codec.js';
import { createHost, type Host } from '../../src/host/host.js';
import { ERRNO } from '../../src/wasi/constants.js';
import { startDnsServer, type DnsFixture } from '../helpers/dns.js';
import { wat } from '../helpers/wat.js';

const guest = (name: string) => fs.readFileSync(new URL(`../../guests/build/${name}.wasm`, import.meta.url));
const text = (b: Uint8Array) => new TextDecoder().decode(b);

let dns: DnsFixture;
let host: Host;
let queries: string[];

beforeAll(async () => {
  dns = await startDnsServer({ forward: true });
  queries = dns.queries;
  const addr = { udp: { port: dns.port } };
  host = await createHost({ workers: 1, casperConfig: { 'system.dns': { servers: [`127.0.0.1:${addr.udp!.port}`], timeout: 2000, tries: 2 } } });
});
afterAll(async () => {
  await host.close();
  await dns.close();
});

describe('the example guests', () => {
  it('the talk\'s reverse-lookup program: ADDR2NAME works, NAME2ADDR was limited away', async () => {
    const r = await host.run({
      module: guest('revlookup'), args: ['192.0.2.30'],
      casper: { 'system.dns': { types: ['ADDR2NAME', 'NAME2ADDR'], families: ['AF_INET', 'AF_INET6'] } },
      audit: 'all',
    });
    expect(r.status).toBe('exited');
    expect(text(r.stdout)).toContain('www.example.org');
    expect(text(r.stdout) + text(r.stderr)).toMatch(/gethostbyname.*refused/i);
    // The refused forward lookup never reached the DNS server.
    expect(queries).not.toContain('example.org');
    const calls = r.audit.events.filter((e) => e.call.startsWith('system.dns.'));
    expect(calls.map((e) => e.call)).toEqual(expect.arrayContaining(['system.dns.gethostbyaddr']));
  });

  it('a refusal by the limits reads as one (errno ENOTCAPABLE beside NO_RECOVERY); a lookup that fails does not', async () => {
    const dnsGrant = (hosts?: string[]) => ({ 'system.dns': { types: ['ADDR2NAME', 'NAME2ADDR'], families: ['AF_INET', 'AF_INET6'], ...(hosts ? { hosts } : {}) } });
    const refusedForward = (name: string) => `gethostbyname(${name}): refused: h_errno=3 (Unknown server error), errno=76 (Capabilities insufficient)\n`;
    // The README's grant: the PTR name is allowed, revlookup's own type limit refuses the forward lookup.
    const ok = await host.run({ module: guest('revlookup'), args: ['192.0.2.30'], casper: dnsGrant(['*.in-addr.arpa', '*.ip6.arpa', '*.example.org']) });
    expect(text(ok.stdout)).toBe(`192.0.2.30: www.example.org\n${refusedForward('www.example.org')}`);
    expect(ok.exitCode).toBe(0);
    // The host allowlist without *.in-addr.arpa refuses the reverse lookup itself, before any query.
    const before = queries.length;
    const denied = await host.run({ module: guest('revlookup'), args: ['192.0.2.30'], casper: dnsGrant(['*.example.org']) });
    expect(text(denied.stdout)).toBe(`192.0.2.30: reverse lookup refused: h_errno=3 (Unknown server error)\n${refusedForward('localhost')}`);
    expect(queries.slice(before)).toEqual([]);
    // An address the server does not know: a failure, not a refusal.
    const unknown = await host.run({ module: guest('revlookup'), args: ['192.0.2.31'], casper: dnsGrant() });
    expect(text(unknown.stdout)).toBe(`192.0.2.31: reverse lookup failed: h_errno=1 (Unknown host)\n${refusedForward('localhost')}`);
    expect(unknown.exitCode).toBe(1);
  });

  it('id with system.pwd and system.grp, from the operator\'s virtual database', async () => {
    const r = await host.run({ module: guest('id'), args: ['root'], casper: { 'system.pwd': {}, 'system.grp': {} } });
    expect(text(r.stdout)).toBe('uid=0(root) gid=0(wheel) groups=0(wheel),5(operator)\n');
  });

  it('sysctl reads the virtual tree', async () => {
    const r = await host.run({ module: guest('sysctl'), args: ['kern.ostype', 'hw.machine'], casper: { 'system.sysctl': {} } });
    expect(text(r.stdout)).toBe('kern.ostype: capsa\nhw.machine: wasm32\n');
  });

  it('uniq reads its input through system.fileargs', async () => {
    const r = await host.run({
      module: guest('uniq_fileargs'), args: ['/data/in.txt'], files: { '/data/in.txt': 'b\nb\na\n' }, casper: { 'system.fileargs': {} },
    });
    expect(text(r.stdout)).toBe('b\na\n');
  });

  it('a service the manifest does not grant cannot be opened', async () => {
    const r = await host.run({ module: guest('id'), args: ['root'], casper: { 'system.grp': {} } });
    expect(r.exitCode).not.toBe(0);
    expect(text(r.stderr)).toMatch(/system\.pwd: Capabilities insufficient/);
  });
});

// A guest that sends nvlists of the test's making: for each [fd, ptr, len] it calls casper.xfer,
// then casper.recv, and reports (xfer errno, reply bytes) to the host function env.report.
function rawGuest(messages: { fd: number; bytes: Uint8Array }[], enterFirst = false): Uint8Array {
  let data = '';
  let off = 4096;
  const table: number[] = [];
  for (const m of messages) {
    table.push(m.fd, off, m.bytes.length);
    data += `(data (i32.const ${off}) "${[...m.bytes].map((b) => '\\' + b.toString(16).padStart(2, '0')).join('')}")`;
    off += m.bytes.length + 8;
  }
  const tbl = table.map((v, i) => `(i32.store (i32.const ${1024 + i * 4}) (i32.const ${v}))`).join('\n');
  return wat(`(module
    (import "casper" "init" (func $init (param i32) (result i32)))
    (import "casper" "xfer" (func $xfer (param i32 i32 i32 i32) (result i32)))
    (import "casper" "recv" (func $recv (param i32 i32 i32) (result i32)))
    (import "capsicum" "cap_enter" (func $enter (result i32)))
    (import "env" "report" (func $report (param i32 i32 i32)))
    (memory (export "memory") 4)
    ${data}
    (func (export "_start") (local $i i32) (local $e i32)
      ${enterFirst ? '(drop (call $enter))' : ''}
      (call $report (call $init (i32.const 0)) (i32.const 0) (i32.const 0))
      ${tbl}
      (block $done (loop $next
        (br_if $done (i32.ge_u (local.get $i) (i32.const ${messages.length})))
        (local.set $e (call $xfer
          (i32.load (i32.add (i32.const 1024) (i32.mul (local.get $i) (i32.const 12))))
          (i32.load (i32.add (i32.const 1028) (i32.mul (local.get $i) (i32.const 12))))
          (i32.load (i32.add (i32.const 1032) (i32.mul (local.get $i) (i32.const 12))))
          (i32.const 16)))
        (if (i32.eqz (local.get $e)) (then
          (drop (call $recv (i32.load (i32.add (i32.const 1024) (i32.mul (local.get $i) (i32.const 12)))) (i32.const 65536) (i32.load (i32.const 16))))))
        (call $report (local.get $e) (i32.const 65536) (select (i32.load (i32.const 16)) (i32.const 0) (i32.eqz (local.get $e))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))))`);
}

const nv = (f: (l: NvList) => void) => { const l = new NvList(); f(l); return packNvlist(l); };

async function rawRun(messages: { fd: number; bytes: Uint8Array }[], casper: Record<string, Record<string, unknown>>, enterFirst = false) {
  const reports: { errno: number; reply?: NvList }[] = [];
  const r = await host.run({
    module: rawGuest(messages, enterFirst), casper,
    functions: { env: { report: async (ctx, e, ptr, len) => {
      reports.push({ errno: Number(e), ...(Number(len) ? { reply: unpackNvlist(await ctx.read(Number(ptr), Number(len))) } : {}) });
    } } },
  });
  expect(r.status).toBe('exited');
  return reports;
}

describe('a guest that crafts its own nvlists cannot exceed its manifest', () => {
  const open = (service: string) => nv((l) => l.addString('cmd', 'open').addString('service', service));

  it('opening a service the manifest does not grant: ENOTCAPABLE', async () => {
    const [init, reply] = await rawRun([{ fd: 3, bytes: open('system.pwd') }], { 'system.random': {} });
    expect(init!.errno).toBe(0);
    expect(reply!.reply!.getNumber('error')).toBe(BigInt(ERRNO.NOTCAPABLE));
  });

  it('widening the core channel or a service\'s limits: ENOTCAPABLE', async () => {
    const widenCore = nv((l) => l.addString('cmd', 'limit_set').addNvlist('limits', new NvList().addNull('system.random').addNull('system.pwd')));
    const types = new NvList().addString('type0', 'ADDR2NAME').addString('type1', 'NAME2ADDR');
    const widenDns = nv((l) => l.addString('cmd', 'limit_set').addNvlist('limits', types));
    const reports = await rawRun([{ fd: 3, bytes: widenCore }, { fd: 3, bytes: open('system.dns') }, { fd: 4, bytes: widenDns }],
      { 'system.random': {}, 'system.dns': { types: ['ADDR2NAME'] } });
    expect(reports[1]!.reply!.getNumber('error')).toBe(BigInt(ERRNO.NOTCAPABLE));
    expect(reports[2]!.reply!.getNumber('error')).toBe(0n);
    expect(reports[3]!.reply!.getNumber('error')).toBe(BigInt(ERRNO.NOTCAPABLE));
  });

  it('a malformed nvlist is EINVAL for the guest, and the channel still works', async () => {
    const reports = await rawRun([{ fd: 3, bytes: new Uint8Array([0x6c, 0, 0, 1, 2, 3]) }, { fd: 3, bytes: open('system.random') }], { 'system.random': {} });
    expect(reports[1]!.errno).toBe(ERRNO.INVAL);
    expect(reports[2]!.reply!.getNumber('error')).toBe(0n);
  });

  it('a request on a descriptor that is not a channel: ENOTSOCK; on a closed one: EBADF', async () => {
    const reports = await rawRun([{ fd: 1, bytes: open('system.random') }, { fd: 9, bytes: open('system.random') }], { 'system.random': {} });
    expect(reports[1]!.errno).toBe(ERRNO.NOTSOCK);
    expect(reports[2]!.errno).toBe(ERRNO.BADF);
  });

  it('cap_init after cap_enter: ECAPMODE', async () => {
    const [init] = await rawRun([], { 'system.random': {} }, true);
    expect(init!.errno).toBe(ERRNO.CAPMODE);
  });
});

describe('manifests', () => {
  it('a Casper grant the service cannot read is refused when the manifest is checked', async () => {
    const { parseManifest } = await import('../../src/manifest/parse.js');
    const { checkCasperGrants } = await import('../../src/manifest/policy.js');
    expect(() => checkCasperGrants(parseManifest('casper:\n  system.dns: { types: [SIDEWAYS] }\n', 'm.yaml'), 'm.yaml')).toThrow(/casper\.system\.dns: .*SIDEWAYS/);
    expect(() => checkCasperGrants(parseManifest('casper:\n  system.dns: { types: [ADDR2NAME] }\n', 'm.yaml'), 'm.yaml')).not.toThrow();
  });
});

describe('fileargs over the guest\'s own filesystem', () => {
  it('lstat and realpath are answered from the guest\'s tree, for the names given at init only', async () => {
    const FA_LSTAT = 2, FA_REALPATH = 4;
    const open = nv((l) => l.addString('cmd', 'open').addString('service', 'system.fileargs'));
    const limits = new NvList(2).addNumber('flags', 0).addNumber('operations', FA_LSTAT | FA_REALPATH)
      .addNull('/data/sub/../in.txt').addNull('/data/link');
    const init = nv((l) => l.addString('cmd', 'limit_set').addNvlist('limits', limits));
    const lstat = (name: string) => nv((l) => l.addString('cmd', 'lstat').addString('name', name));
    const realpath = (name: string) => nv((l) => l.addString('cmd', 'realpath').addString('name', name));
    const reports = await rawRunWith([
      { fd: 4, bytes: open }, { fd: 5, bytes: init }, { fd: 5, bytes: lstat('/data/sub/../in.txt') },
      { fd: 5, bytes: realpath('/data/sub/../in.txt') }, { fd: 5, bytes: lstat('/data/other.txt') },
    ], { 'system.fileargs': {} }, { '/data/in.txt': 'hello', '/data/sub/x': '', '/data/other.txt': 'no' });
    expect(reports[1]!.reply!.getNumber('error')).toBe(0n);
    expect(reports[2]!.reply!.getNumber('error')).toBe(0n);
    const st = reports[3]!.reply!;
    expect(st.getNumber('error')).toBe(0n);
    expect(st.getBinary('stat')!.length).toBeGreaterThan(0);
    expect(reports[4]!.reply!.getString('realpath')).toBe('/data/in.txt');
    expect(reports[5]!.reply!.getNumber('error')).toBe(BigInt(ERRNO.NOTCAPABLE));
  });
});

async function rawRunWith(messages: { fd: number; bytes: Uint8Array }[], casper: Record<string, Record<string, unknown>>, files: Record<string, string>) {
  const reports: { errno: number; reply?: NvList }[] = [];
  const r = await host.run({
    module: rawGuest(messages), casper, files,
    functions: { env: { report: async (ctx, e, ptr, len) => {
      reports.push({ errno: Number(e), ...(Number(len) ? { reply: unpackNvlist(await ctx.read(Number(ptr), Number(len))) } : {}) });
    } } },
  });
  expect(r.status).toBe('exited');
  return reports;
}

describe('policies and the audit level', () => {
  it('a policy limiting sysctl names cannot be widened by a manifest listing others', async () => {
    const { parseManifest } = await import('../../src/manifest/parse.js');
    const { applyPolicy, parsePolicy } = await import('../../src/manifest/policy.js');
    const { DEFAULT_LIMITS } = await import('../../src/host/limits.js');
    const policy = parsePolicy('casper:\n  system.sysctl: { names: { kern.ostype: read } }\n  system.dns: { families: [AF_INET] }\n');
    const m = (yaml: string) => parseManifest(yaml, 'm.yaml');
    expect(() => applyPolicy(m('casper:\n  system.sysctl: { names: { kern.ostype: read, kern.hostname: rdwr } }\n'), policy, DEFAULT_LIMITS)).toThrow(/system\.sysctl\.names\.kern\.hostname: not allowed by the policy/);
    expect(() => applyPolicy(m('casper:\n  system.sysctl: { names: { kern.ostype: rdwr } }\n'), policy, DEFAULT_LIMITS)).toThrow(/not allowed by the policy|wider than the policy/);
    expect(applyPolicy(m('casper:\n  system.sysctl: { names: { kern.ostype: read } }\n'), policy, DEFAULT_LIMITS).casper['system.sysctl']).toEqual({ names: { 'kern.ostype': 'read' } });
    // Compared by meaning: inet is AF_INET's other name.
    expect(() => applyPolicy(m('casper:\n  system.dns: { families: [AF_INET, AF_INET6] }\n'), policy, DEFAULT_LIMITS)).toThrow(/not allowed by the policy|wider than the policy/);
  });

  it('fileargs_open of a missing file answers ENOENT, and --audit denied records only refusals', async () => {
    const r = await host.run({
      module: guest('uniq_fileargs'), args: ['/data/missing.txt'], files: { '/data/in.txt': 'x\n' }, casper: { 'system.fileargs': {} }, audit: 'denied',
    });
    expect(r.exitCode).not.toBe(0);
    expect(text(r.stderr)).toMatch(/No such file or directory/);
    expect(r.audit.events.every((e) => e.decision === 'denied')).toBe(true);
    expect(r.audit.events.some((e) => e.call === 'system.fileargs.open' && e.errno === ERRNO.NOENT)).toBe(true);
  });
});

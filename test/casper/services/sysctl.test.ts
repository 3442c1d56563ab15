/**
 * system.sysctl: FreeBSD's cap_sysctl/tests/sysctl_test.c (the 2018 interface) as tables over the
 * virtual tree, whose kern.sync_on_panic and debug.minidump stand in for the two writable ints
 * the FreeBSD test uses. Requests and limits are built as cap_sysctl.c's client builds them:
 * cap_sysctl_limit_name() asks the channel for the MIB and records it beside the name.
 */
import { describe, expect, it } from 'vitest';
import { NV_FLAG, NvList } from '../../../src/casper/nvlist.js';
import { CasperError, type CasperService } from '../../../src/casper/service.js';
import sysctlService, { CAP_SYSCTL, sysctlNameToMib, sysctlNames } from '../../../src/casper/services/sysctl.js';
import { GrantError } from '../../../src/casper/services/common.js';
import { ERRNO } from '../../../src/wasi/constants.js';

class Chan {
  state = new Map<string, unknown>();
  constructor(readonly svc: CasperService, public limits: NvList | null = null, readonly sandbox = new Map<string, unknown>(), readonly cfg: unknown = null) {}
  clone(): Chan { return new Chan(this.svc, this.limits?.clone() ?? null, this.sandbox, this.cfg); }
  limitSet(l: NvList): number {
    const e = this.svc.limit ? this.svc.limit(this.limits, l) : ERRNO.NOTSUP;
    if (e === 0) this.limits = l.clone();
    return e;
  }
  xfer(req: NvList): { error: number; reply: NvList } {
    try {
      const reply = this.svc.command(req.getString('cmd')!, this.limits, req, { channelState: this.state, sandboxState: this.sandbox, config: this.cfg });
      if (reply instanceof Promise) throw new Error('sysctl answers synchronously');
      return { error: 0, reply };
    } catch (e) {
      if (e instanceof CasperError) return { error: e.errno, reply: new NvList() };
      throw e;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// cap_sysctl.c's client

const { READ, WRITE, RDWR, RECURSIVE } = CAP_SYSCTL;
const mibBytes = (mib: number[]): Uint8Array => {
  const b = new Uint8Array(mib.length * 4);
  mib.forEach((m, i) => new DataView(b.buffer).setInt32(i * 4, m, true));
  return b;
};
const int = (v: number): Uint8Array => mibBytes([v]);
const readInt = (b: Uint8Array): number => new DataView(b.buffer, b.byteOffset).getInt32(0, true);

/** The outcome of do_sysctl: 0 or -1 with errno, and what came back in oldp / *oldlenp. */
interface Out { ret: 0 | -1; errno: number; oldp?: Uint8Array; oldlen?: number }

/**
 * do_sysctl. `old`: a buffer size (oldp and oldlenp), 'size' (oldp NULL, oldlenp set) or null
 * (neither). `newp`: the new value or null.
 */
function doSysctl(chan: Chan, nvl: NvList, old: number | 'size' | null, newp: Uint8Array | null): Out {
  let operation = 0;
  if (old !== null) operation |= READ;
  if (newp !== null) operation |= WRITE;
  nvl.addNumber('operation', operation);
  if (old === 'size') nvl.addNull('justsize');
  else if (old !== null) nvl.addNumber('oldlen', old);
  if (newp !== null) nvl.addBinary('newp', newp);
  const { error, reply } = chan.xfer(nvl);
  if (error !== 0) return { ret: -1, errno: error };
  if (old === 'size') return { ret: 0, errno: 0, oldlen: Number(reply.getNumber('oldlen')) };
  if (old !== null) {
    const oldp = reply.getBinary('oldp')!;
    return { ret: 0, errno: 0, oldp, oldlen: oldp.length };
  }
  return { ret: 0, errno: 0 };
}
const capSysctlbyname = (chan: Chan, name: string, old: number | 'size' | null, newp: Uint8Array | null): Out =>
  doSysctl(chan, new NvList().addString('cmd', 'sysctlbyname').addString('name', name), old, newp);
const capSysctl = (chan: Chan, mib: number[], old: number | 'size' | null, newp: Uint8Array | null): Out =>
  doSysctl(chan, new NvList().addString('cmd', 'sysctl').addBinary('mib', mibBytes(mib)), old, newp);

/** cap_sysctlnametomib. */
function capSysctlnametomib(chan: Chan, name: string, size: number): { ret: 0 | -1; errno: number; mib?: number[] } {
  const req = new NvList().addString('cmd', 'sysctlnametomib').addString('name', name).addNumber('operation', 0).addNumber('size', size);
  const { error, reply } = chan.xfer(req);
  if (error !== 0) return { ret: -1, errno: error };
  const b = reply.getBinary('mib')!;
  return { ret: 0, errno: 0, mib: Array.from({ length: b.length / 4 }, (_, i) => new DataView(b.buffer, b.byteOffset).getInt32(i * 4, true)) };
}

/** cap_sysctl_limit_init / _name / _mib / cap_sysctl_limit. */
class Limit {
  readonly nv = new NvList(NV_FLAG.NO_UNIQUE);
  constructor(readonly chan: Chan) {}
  name(name: string, flags: number): this {
    const lnv = new NvList().addString('name', name).addNumber('operation', flags);
    const r = capSysctlnametomib(this.chan, name, 24);
    if (r.ret === 0) lnv.addBinary('mib', mibBytes(r.mib!));
    this.nv.addNvlist('limit', lnv);
    return this;
  }
  mib(mib: number[], flags: number): this {
    this.nv.addNvlist('limit', new NvList().addBinary('mib', mibBytes(mib)).addNumber('operation', flags));
    return this;
  }
  apply(): number { return this.chan.limitSet(this.nv); }
}

// ---------------------------------------------------------------------------------------------
// sysctl_test.c

const SYSCTL0_PARENT = 'kern', SYSCTL0_NAME = 'kern.sync_on_panic';
const SYSCTL1_PARENT = 'debug', SYSCTL1_NAME = 'debug.minidump';
const SYSCTL0_READ0 = 0x1, SYSCTL0_READ1 = 0x2, SYSCTL0_READ2 = 0x4, SYSCTL0_WRITE = 0x8, SYSCTL0_READ_WRITE = 0x10;
const SYSCTL1_READ0 = 0x20, SYSCTL1_READ1 = 0x40, SYSCTL1_READ2 = 0x80, SYSCTL1_WRITE = 0x100, SYSCTL1_READ_WRITE = 0x200;
const S0 = SYSCTL0_READ0 | SYSCTL0_READ1 | SYSCTL0_READ2 | SYSCTL0_WRITE | SYSCTL0_READ_WRITE;
const S1 = SYSCTL1_READ0 | SYSCTL1_READ1 | SYSCTL1_READ2 | SYSCTL1_WRITE | SYSCTL1_READ_WRITE;

/** checkcaps, with its ATF_REQUIREs on the MIB calls. */
function checkcaps(c: Chan): number {
  let result = 0;
  const mib0 = sysctlNameToMib(SYSCTL0_NAME)!;
  const mib1 = sysctlNameToMib(SYSCTL1_NAME)!;
  const requireMib = (r: Out, allowed: boolean): void => {
    if (allowed) expect(r.ret).toBe(0);
    else expect(r).toMatchObject({ ret: -1, errno: ERRNO.NOTCAPABLE });
  };

  let r = capSysctlbyname(c, SYSCTL0_NAME, 4, null);
  if (r.ret === 0 && r.oldlen === 4) result |= SYSCTL0_READ0;
  requireMib(capSysctl(c, mib0, 4, null), (result & SYSCTL0_READ0) !== 0);

  if (capSysctlbyname(c, SYSCTL0_NAME, null, int(123)).ret === 0) result |= SYSCTL0_WRITE;
  if (result & SYSCTL0_WRITE) {
    r = capSysctlbyname(c, SYSCTL0_NAME, 4, null);
    if (r.ret === 0 && r.oldlen === 4 && readInt(r.oldp!) === 123) result |= SYSCTL0_READ1;
  }
  requireMib(capSysctl(c, mib0, null, int(123)), (result & SYSCTL0_WRITE) !== 0);

  r = capSysctlbyname(c, SYSCTL0_NAME, 4, int(4567));
  if (r.ret === 0 && r.oldlen === 4 && readInt(r.oldp!) === 123) result |= SYSCTL0_READ_WRITE;
  if (result & SYSCTL0_READ_WRITE) {
    r = capSysctlbyname(c, SYSCTL0_NAME, 4, null);
    if (r.ret === 0 && r.oldlen === 4 && readInt(r.oldp!) === 4567) result |= SYSCTL0_READ2;
  }

  r = capSysctlbyname(c, SYSCTL1_NAME, 4, null);
  if (r.ret === 0 && r.oldlen === 4) result |= SYSCTL1_READ0;
  requireMib(capSysctl(c, mib1, 4, null), (result & SYSCTL1_READ0) !== 0);

  if (capSysctlbyname(c, SYSCTL1_NAME, null, int(506)).ret === 0) result |= SYSCTL1_WRITE;
  if (result & SYSCTL1_WRITE) {
    expect(capSysctl(c, mib1, null, int(506)).ret).toBe(0);
    r = capSysctlbyname(c, SYSCTL1_NAME, 4, null);
    if (r.ret === 0 && r.oldlen === 4 && readInt(r.oldp!) === 506) result |= SYSCTL1_READ1;
  }
  requireMib(capSysctl(c, mib1, null, int(506)), (result & SYSCTL1_WRITE) !== 0);

  r = capSysctlbyname(c, SYSCTL1_NAME, 4, int(7008));
  if (r.ret === 0 && r.oldlen === 4 && readInt(r.oldp!) === 506) result |= SYSCTL1_READ_WRITE;
  if (result & SYSCTL1_READ_WRITE) {
    r = capSysctlbyname(c, SYSCTL1_NAME, 4, null);
    if (r.ret === 0 && r.oldlen === 4 && readInt(r.oldp!) === 7008) result |= SYSCTL1_READ2;
  }
  return result;
}

type E = [string, number];
const P0 = (f: number): E => [SYSCTL0_PARENT, f];
const N0 = (f: number): E => [SYSCTL0_NAME, f];
const P1 = (f: number): E => [SYSCTL1_PARENT, f];
const N1 = (f: number): E => [SYSCTL1_NAME, f];
const RR = READ | RECURSIVE, WR = WRITE | RECURSIVE, RWR = RDWR | RECURSIVE;

function limit(c: Chan, entries: E[]): number {
  const l = new Limit(c);
  for (const [n, f] of entries) l.name(n, f);
  return l.apply();
}

/** The blocks of cap_sysctl__operation and cap_sysctl__names after the first: allow, widenings refused, result. */
const BLOCKS: { test: string; allow: E[]; denied: E[][]; expected: number }[] = [
  // cap_sysctl__operation
  { test: 'operation', allow: [N0(RWR), N1(RWR)], denied: [[P0(RWR), P1(RWR)], [P0(RDWR), P1(RDWR)], [P0(READ), P1(WRITE)], [P0(READ)]], expected: S0 | S1 },
  { test: 'operation', allow: [P0(RDWR), P1(RDWR)], denied: [[P0(RWR), P1(RWR)], [P0(RR), P1(WR)], [P0(RR)]], expected: 0 },
  { test: 'operation', allow: [N0(RDWR), N1(RDWR)], denied: [[P0(RWR), P1(RWR)], [P0(RR), P1(WR)], [P1(WR)]], expected: S0 | S1 },
  { test: 'operation', allow: [P0(RDWR), P1(RWR)], denied: [[P0(RWR), P1(RWR)], [P0(RWR)], [P0(RR)], [N0(RR)]], expected: S1 },
  { test: 'operation', allow: [N0(RDWR), N1(RWR)], denied: [[N0(RWR), N1(RWR)], [N0(RWR)], [N0(WR)]], expected: S0 | S1 },
  {
    test: 'operation', allow: [P0(RR), P1(RR)],
    denied: [[P0(RWR), P1(RWR)], [P0(WR), P1(WR)], [P0(RDWR), P1(RDWR)], [P0(WRITE), P1(WRITE)], [P0(RWR)], [P1(WR)], [P1(RDWR)], [P0(WRITE)]],
    expected: SYSCTL0_READ0 | SYSCTL1_READ0,
  },
  {
    test: 'operation', allow: [N0(RR), N1(RR)],
    denied: [[N0(RWR), N1(RWR)], [N0(WR), N1(WR)], [N0(RDWR), N1(RDWR)], [N0(WRITE), N1(WRITE)], [N0(RWR)], [N1(WR)], [N1(RDWR)], [N0(WRITE)]],
    expected: SYSCTL0_READ0 | SYSCTL1_READ0,
  },
  {
    test: 'operation', allow: [P0(READ), P1(READ)],
    denied: [[P0(RR), P1(RR)], [P0(WR), P1(WR)], [P0(RWR), P1(RWR)], [P0(RDWR), P1(RDWR)], [P0(WRITE), P1(WRITE)], [P0(RR)], [P1(WR)], [P0(RWR)], [P1(RDWR)], [P0(WRITE)]],
    expected: 0,
  },
  {
    test: 'operation', allow: [N0(READ), N1(READ)],
    denied: [[N0(RR), N1(RR)], [N0(WR), N1(WR)], [N0(RWR), N1(RWR)], [N0(RDWR), N1(RDWR)], [N0(WRITE), N1(WRITE)], [N0(RR)], [N1(WR)], [N0(RWR)], [N1(RDWR)], [N0(WRITE)]],
    expected: SYSCTL0_READ0 | SYSCTL1_READ0,
  },
  { test: 'operation', allow: [P0(READ), P1(RR)], denied: [[P0(RR), P1(READ)]], expected: SYSCTL1_READ0 },
  { test: 'operation', allow: [N0(READ), N1(RR)], denied: [[N0(RR), N1(READ)]], expected: SYSCTL0_READ0 | SYSCTL1_READ0 },
  {
    test: 'operation', allow: [P0(WR), P1(WR)],
    denied: [[P0(RWR), P1(RWR)], [P0(RR), P1(RR)], [P0(RDWR), P1(RDWR)], [P0(READ), P1(READ)], [P0(RWR)], [P1(RR)], [P1(RDWR)], [P0(READ)]],
    expected: SYSCTL0_WRITE | SYSCTL1_WRITE,
  },
  {
    test: 'operation', allow: [N0(WR), N1(WR)],
    denied: [[N0(RWR), N1(RWR)], [N0(RR), N1(RR)], [N0(RDWR), N1(RDWR)], [N0(READ), N1(READ)], [N0(RWR)], [N1(RR)], [N1(RDWR)], [N0(READ)]],
    expected: SYSCTL0_WRITE | SYSCTL1_WRITE,
  },
  {
    test: 'operation', allow: [P0(WRITE), P1(WRITE)],
    denied: [[P0(WR), P1(WR)], [P0(RR), P1(RR)], [P0(RWR), P1(RWR)], [P0(RDWR), P1(RDWR)], [P0(READ), P1(READ)], [P0(WR)], [P1(RR)], [P0(RWR)], [P1(RDWR)], [P0(READ)]],
    expected: 0,
  },
  {
    test: 'operation', allow: [N0(WRITE), N1(WRITE)],
    denied: [[N0(WR), N1(WR)], [N0(RR), N1(RR)], [N0(RWR), N1(RWR)], [N0(RDWR), N1(RDWR)], [N0(READ), N1(READ)], [N0(WR)], [N1(RR)], [N0(RWR)], [N1(RDWR)], [N0(READ)]],
    expected: SYSCTL0_WRITE | SYSCTL1_WRITE,
  },
  { test: 'operation', allow: [P0(WRITE), P1(WR)], denied: [[P0(WR), P1(WRITE)]], expected: SYSCTL1_WRITE },
  { test: 'operation', allow: [N0(WRITE), N1(WR)], denied: [[N0(WR), N1(WRITE)]], expected: SYSCTL0_WRITE | SYSCTL1_WRITE },
  { test: 'operation', allow: [P0(RR), P1(WR)], denied: [], expected: SYSCTL0_READ0 | SYSCTL1_WRITE },
  { test: 'operation', allow: [N0(RR), N1(WR)], denied: [], expected: SYSCTL0_READ0 | SYSCTL1_WRITE },
  { test: 'operation', allow: [P0(READ), P1(WRITE)], denied: [], expected: 0 },
  { test: 'operation', allow: [N0(READ), N1(WRITE)], denied: [], expected: SYSCTL0_READ0 | SYSCTL1_WRITE },
  { test: 'operation', allow: [P0(READ), P1(WR)], denied: [], expected: SYSCTL1_WRITE },
  { test: 'operation', allow: [N0(READ), N1(WR)], denied: [], expected: SYSCTL0_READ0 | SYSCTL1_WRITE },
  // cap_sysctl__names
  { test: 'names', allow: [P0(RR)], denied: [[P0(RR), P1(RR)], [P1(RR)], [P0(READ), P1(READ)], [P1(READ)]], expected: SYSCTL0_READ0 },
  { test: 'names', allow: [N1(RR)], denied: [[N0(RR), N1(RR)], [N0(RR)], [N0(READ), N1(READ)], [N0(READ)]], expected: SYSCTL1_READ0 },
  { test: 'names', allow: [P0(WR)], denied: [[P0(WR), P1(WR)], [P1(WR)], [P0(WRITE), P1(WRITE)], [P1(WRITE)]], expected: SYSCTL0_WRITE },
  { test: 'names', allow: [N1(WR)], denied: [[N0(WR), N1(WR)], [N0(WR)], [N0(WRITE), N1(WRITE)], [N0(WRITE)]], expected: SYSCTL1_WRITE },
  { test: 'names', allow: [P0(RWR)], denied: [[P0(RWR), P1(RWR)], [P1(RWR)], [P0(READ), P1(READ)], [P1(READ)]], expected: S0 },
  { test: 'names', allow: [N1(RWR)], denied: [[N0(RWR), N1(RWR)], [N0(RWR)], [N0(READ), N1(READ)], [N0(READ)]], expected: S1 },
  { test: 'names', allow: [P0(READ)], denied: [[P0(READ), P1(READ)], [P1(READ)]], expected: 0 },
  { test: 'names', allow: [N1(READ)], denied: [[N0(READ), N1(READ)], [N0(READ)]], expected: SYSCTL1_READ0 },
  { test: 'names', allow: [P0(WRITE)], denied: [[P0(WRITE), P1(WRITE)], [P1(WRITE)]], expected: 0 },
  { test: 'names', allow: [N1(WRITE)], denied: [[N0(WRITE), N1(WRITE)], [N0(WRITE)]], expected: SYSCTL1_WRITE },
  { test: 'names', allow: [P0(RDWR)], denied: [[P0(RDWR), P1(RDWR)], [P1(RDWR)]], expected: 0 },
  { test: 'names', allow: [N1(RDWR)], denied: [[N0(RDWR), N1(RDWR)], [N0(RDWR)]], expected: S1 },
];

const flagName = (f: number): string => [f & READ ? 'READ' : '', f & WRITE ? 'WRITE' : '', f & RECURSIVE ? 'RECURSIVE' : ''].filter(Boolean).join('|');

describe('sysctl_test.c', () => {
  it('cap_sysctl__no_limits', () => {
    expect(checkcaps(new Chan(sysctlService))).toBe(S0 | S1);
  });

  it('cap_sysctl__operation, first block: successive narrowings', () => {
    const orig = new Chan(sysctlService);
    const c = orig.clone();
    expect(limit(c, [P0(RWR), P1(RWR)])).toBe(0);
    expect(limit(c, [P0(RWR), P1(RWR), ['foo.bar', RWR]])).toBe(ERRNO.NOTCAPABLE);
    expect(limit(c, [['foo.bar', RWR]])).toBe(ERRNO.NOTCAPABLE);
    expect(checkcaps(c)).toBe(S0 | S1);
    expect(limit(c, [N0(RWR), N1(RWR)])).toBe(0);
    expect(checkcaps(c)).toBe(S0 | S1);
    expect(limit(c, [N0(RR), N1(WR)])).toBe(0);
    expect(checkcaps(c)).toBe(SYSCTL0_READ0 | SYSCTL1_WRITE);
    expect(limit(c, [N0(READ), N1(WRITE)])).toBe(0);
    expect(checkcaps(c)).toBe(SYSCTL0_READ0 | SYSCTL1_WRITE);
    expect(limit(c, [N0(READ)])).toBe(0);
    expect(checkcaps(c)).toBe(SYSCTL0_READ0);
  });

  const orig = new Chan(sysctlService);
  it.each(BLOCKS.map((b) => ({ ...b, title: b.allow.map(([n, f]) => `${n}/${flagName(f)}`).join(', ') })))('cap_sysctl__$test: allow $title', ({ allow, denied, expected }) => {
    const c = orig.clone();
    expect(limit(c, allow)).toBe(0);
    for (const d of denied) expect({ d, errno: limit(c, d) }).toEqual({ d, errno: ERRNO.NOTCAPABLE });
    expect(checkcaps(c).toString(16)).toBe(expected.toString(16));
  });

  it('cap_sysctl__recursive_limits: whole components only, and RECURSIVE is needed', () => {
    const mib = sysctlNameToMib(SYSCTL0_NAME)!;
    const ker = orig.clone();
    expect(limit(ker, [['ker', RWR]])).toBe(0);
    expect(capSysctlbyname(ker, SYSCTL0_NAME, null, int(420))).toMatchObject({ ret: -1, errno: ERRNO.NOTCAPABLE });
    expect(capSysctl(ker, mib, null, int(420))).toMatchObject({ ret: -1, errno: ERRNO.NOTCAPABLE });
    const kern = orig.clone();
    expect(limit(kern, [['kern', RDWR]])).toBe(0);
    expect(capSysctlbyname(kern, SYSCTL0_NAME, null, int(420))).toMatchObject({ ret: -1, errno: ERRNO.NOTCAPABLE });
    expect(capSysctl(kern, mib, null, int(420))).toMatchObject({ ret: -1, errno: ERRNO.NOTCAPABLE });
  });

  it('cap_sysctl__just_size', () => {
    const c = new Chan(sysctlService);
    expect(capSysctlbyname(c, SYSCTL0_NAME, 'size', null)).toEqual({ ret: 0, errno: 0, oldlen: 4 });
    expect(capSysctl(c, sysctlNameToMib(SYSCTL0_NAME)!, 'size', null)).toEqual({ ret: 0, errno: 0, oldlen: 4 });
  });
});

// ---------------------------------------------------------------------------------------------
// The virtual tree

const str = (o: Out): string => new TextDecoder().decode(o.oldp!.subarray(0, o.oldp!.length - 1));

describe('the virtual tree', () => {
  it('answers the values a wasm32 guest expects', () => {
    const c = new Chan(sysctlService, null, new Map(), { ncpu: 4, physmem: 256 * 1024 * 1024 });
    expect(str(capSysctlbyname(c, 'kern.ostype', 64, null))).toBe('capsa');
    expect(capSysctlbyname(c, 'kern.ostype', 64, null).oldp!.at(-1)).toBe(0); // NUL included
    expect(str(capSysctlbyname(c, 'hw.machine', 64, null))).toBe('wasm32');
    expect(str(capSysctlbyname(c, 'hw.machine_arch', 64, null))).toBe('wasm32');
    expect(readInt(capSysctlbyname(c, 'hw.pagesize', 4, null).oldp!)).toBe(65536);
    expect(readInt(capSysctlbyname(c, 'hw.ncpu', 4, null).oldp!)).toBe(4);
    expect(capSysctlbyname(c, 'hw.physmem', 'size', null).oldlen).toBe(4); // u_long on ILP32
    expect(readInt(capSysctl(c, [6, 5], 4, null).oldp!)).toBe(256 * 1024 * 1024);
    expect(readInt(capSysctl(c, [6, 7], 8, null).oldp!)).toBe(65536);
    expect(str(capSysctl(c, [1, 1], 64, null))).toBe('capsa');
  });

  it('keeps kern.hostname per sandbox: another channel of the sandbox sees a write, another sandbox does not', () => {
    const a = new Chan(sysctlService, null, new Map(), { hostname: 'box' });
    expect(str(capSysctlbyname(a, 'kern.hostname', 256, null))).toBe('box');
    expect(capSysctlbyname(a, 'kern.hostname', null, new TextEncoder().encode('renamed')).ret).toBe(0);
    expect(str(capSysctlbyname(a.clone(), 'kern.hostname', 256, null))).toBe('renamed');
    expect(str(capSysctl(a, [1, 10], 256, null))).toBe('renamed');
    const b = new Chan(sysctlService, null, new Map(), { hostname: 'box' });
    expect(str(capSysctlbyname(b, 'kern.hostname', 256, null))).toBe('box');
    // A value that carries its NUL is cut there; 256 bytes or more is EINVAL (MAXHOSTNAMELEN).
    expect(capSysctlbyname(a, 'kern.hostname', null, Uint8Array.of(0x61, 0x62, 0, 0x63)).ret).toBe(0);
    expect(str(capSysctlbyname(a, 'kern.hostname', 256, null))).toBe('ab');
    expect(capSysctlbyname(a, 'kern.hostname', null, new Uint8Array(256).fill(0x61)).errno).toBe(ERRNO.INVAL);
    expect(capSysctlbyname(a, 'kern.hostname', null, new Uint8Array(255).fill(0x61)).ret).toBe(0);
  });

  it('kern.arandom gives min(oldlen, 256) fresh random bytes', () => {
    const c = new Chan(sysctlService);
    const x = capSysctlbyname(c, 'kern.arandom', 32, null).oldp!;
    const y = capSysctlbyname(c, 'kern.arandom', 32, null).oldp!;
    expect(x.length).toBe(32);
    expect(Buffer.from(x).equals(Buffer.from(y))).toBe(false);
    expect(capSysctlbyname(c, 'kern.arandom', 4096, null).oldlen).toBe(256);
    expect(capSysctl(c, [1, 37], 'size', null).oldlen).toBe(256);
  });

  it.each<[string, () => Out, number]>([
    ['an unknown name', () => capSysctlbyname(new Chan(sysctlService), 'kern.nope', 4, null), ERRNO.NOENT],
    ['a name below a leaf', () => capSysctlbyname(new Chan(sysctlService), 'kern.ostype.x', 4, null), ERRNO.NOENT],
    ['an unknown MIB', () => capSysctl(new Chan(sysctlService), [6, 99], 4, null), ERRNO.NOENT],
    ['reading a node', () => capSysctlbyname(new Chan(sysctlService), 'hw', 64, null), ERRNO.ISDIR],
    ['a MIB of one component', () => capSysctl(new Chan(sysctlService), [6], 64, null), ERRNO.INVAL],
    ['a MIB of 25 components', () => capSysctl(new Chan(sysctlService), new Array(25).fill(1), 64, null), ERRNO.INVAL],
    ['writing a read-only leaf', () => capSysctlbyname(new Chan(sysctlService), 'hw.ncpu', null, int(64)), ERRNO.PERM],
    ['writing an int with 2 bytes', () => capSysctlbyname(new Chan(sysctlService), SYSCTL0_NAME, null, Uint8Array.of(1, 0)), ERRNO.INVAL],
    ['an oldlen too small', () => capSysctlbyname(new Chan(sysctlService), 'kern.ostype', 3, null), ERRNO.NOMEM],
  ])('%s', (_, call, errno) => {
    expect(call()).toMatchObject({ ret: -1, errno });
  });

  it.each<[string, NvList, number]>([
    ['an unknown cmd', new NvList().addString('cmd', 'sysctlall'), ERRNO.INVAL],
    ['no operation', new NvList().addString('cmd', 'sysctlbyname').addString('name', 'kern.ostype').addNumber('oldlen', 8), ERRNO.INVAL],
    ['operation 0', new NvList().addString('cmd', 'sysctlbyname').addString('name', 'kern.ostype').addNumber('operation', 0), ERRNO.INVAL],
    ['RECURSIVE in a request', new NvList().addString('cmd', 'sysctlbyname').addString('name', 'kern.ostype').addNumber('operation', READ | RECURSIVE).addNumber('oldlen', 8), ERRNO.INVAL],
    ['both name and mib', new NvList().addString('cmd', 'sysctl').addString('name', 'kern.ostype').addBinary('mib', mibBytes([1, 1])).addNumber('operation', READ).addNumber('oldlen', 8), ERRNO.INVAL],
    ['a mib of 5 bytes', new NvList().addString('cmd', 'sysctl').addBinary('mib', new Uint8Array(5)).addNumber('operation', READ).addNumber('oldlen', 8), ERRNO.INVAL],
    ['sysctlbyname with a mib', new NvList().addString('cmd', 'sysctlbyname').addBinary('mib', mibBytes([1, 1])).addNumber('operation', READ).addNumber('oldlen', 8), ERRNO.INVAL],
    ['a read without oldlen', new NvList().addString('cmd', 'sysctlbyname').addString('name', 'kern.ostype').addNumber('operation', READ), ERRNO.INVAL],
    ['a read with oldlen 0', new NvList().addString('cmd', 'sysctlbyname').addString('name', 'kern.ostype').addNumber('operation', READ).addNumber('oldlen', 0), ERRNO.INVAL],
    ['a write without newp', new NvList().addString('cmd', 'sysctlbyname').addString('name', 'kern.hostname').addNumber('operation', WRITE), ERRNO.INVAL],
    ['nametomib without size', new NvList().addString('cmd', 'sysctlnametomib').addString('name', 'kern.ostype').addNumber('operation', 0), ERRNO.INVAL],
  ])('a malformed request: %s', (_, req, errno) => {
    expect(new Chan(sysctlService).xfer(req).error).toBe(errno);
  });

  it('sysctlnametomib: allowed for any name entry whatever its operation; ENOMEM when size is too small', () => {
    const c = new Chan(sysctlService);
    expect(capSysctlnametomib(c, 'hw.pagesize', 24)).toEqual({ ret: 0, errno: 0, mib: [6, 7] });
    expect(capSysctlnametomib(c, 'hw', 24).mib).toEqual([6]);
    expect(capSysctlnametomib(c, 'hw.pagesize', 1)).toMatchObject({ ret: -1, errno: ERRNO.NOMEM });
    expect(capSysctlnametomib(c, 'hw.nope', 24)).toMatchObject({ ret: -1, errno: ERRNO.NOENT });
    expect(new Limit(c).name('hw.pagesize', WRITE).apply()).toBe(0);
    expect(capSysctlnametomib(c, 'hw.pagesize', 24).mib).toEqual([6, 7]);
    expect(capSysctlnametomib(c, 'hw.ncpu', 24)).toMatchObject({ ret: -1, errno: ERRNO.NOTCAPABLE });
  });

  it('every name has a unique MIB that maps back to it', () => {
    const seen = new Set<string>();
    for (const n of sysctlNames()) {
      const mib = sysctlNameToMib(n)!;
      expect(seen.has(mib.join('.'))).toBe(false);
      seen.add(mib.join('.'));
      expect(capSysctlnametomib(new Chan(sysctlService), n, 24).mib).toEqual(mib);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Limits

describe('sysctl_limit', () => {
  it('an empty limit set allows nothing', () => {
    const c = new Chan(sysctlService);
    expect(c.limitSet(new NvList(NV_FLAG.NO_UNIQUE))).toBe(0);
    expect(capSysctlbyname(c, 'kern.ostype', 64, null).errno).toBe(ERRNO.NOTCAPABLE);
    expect(capSysctlnametomib(c, 'kern.ostype', 24).errno).toBe(ERRNO.NOTCAPABLE);
    expect(new Limit(c).name('kern.ostype', READ).apply()).toBe(ERRNO.NOTCAPABLE);
  });

  it('a request by name matches name entries only, by MIB MIB entries only', () => {
    const byMib = new Chan(sysctlService);
    expect(new Limit(byMib).mib([6, 7], READ).apply()).toBe(0);
    expect(capSysctl(byMib, [6, 7], 4, null).ret).toBe(0);
    expect(capSysctlbyname(byMib, 'hw.pagesize', 4, null).errno).toBe(ERRNO.NOTCAPABLE);
    const byName = new Chan(sysctlService);
    expect(byName.limitSet(new NvList(NV_FLAG.NO_UNIQUE).addNvlist('limit', new NvList().addString('name', 'hw.pagesize').addNumber('operation', READ)))).toBe(0);
    expect(capSysctlbyname(byName, 'hw.pagesize', 4, null).ret).toBe(0);
    expect(capSysctl(byName, [6, 7], 4, null).errno).toBe(ERRNO.NOTCAPABLE);
  });

  it('a recursive MIB entry matches the MIBs it prefixes', () => {
    const c = new Chan(sysctlService);
    expect(new Limit(c).mib([6], READ | RECURSIVE).apply()).toBe(0);
    expect(capSysctl(c, [6, 3], 4, null).ret).toBe(0);
    expect(capSysctl(c, [1, 1], 8, null).errno).toBe(ERRNO.NOTCAPABLE);
    expect(new Limit(c).mib([6, 3], READ).apply()).toBe(0);
    expect(new Limit(c).mib([6], READ).apply()).toBe(ERRNO.NOTCAPABLE);
  });

  it('refuses a MIB smuggled in beside an allowed name (FreeBSD checks only the name)', () => {
    const c = new Chan(sysctlService);
    expect(new Limit(c).name('kern.ostype', READ).apply()).toBe(0);
    const smuggle = new NvList(NV_FLAG.NO_UNIQUE).addNvlist('limit', new NvList().addString('name', 'kern.ostype').addBinary('mib', mibBytes([1, 10])).addNumber('operation', READ));
    expect(c.limitSet(smuggle)).toBe(ERRNO.NOTCAPABLE);
    expect(capSysctl(c, [1, 10], 256, null).errno).toBe(ERRNO.NOTCAPABLE);
    const honest = new NvList(NV_FLAG.NO_UNIQUE).addNvlist('limit', new NvList().addString('name', 'kern.ostype').addBinary('mib', mibBytes([1, 1])).addNumber('operation', READ));
    expect(c.limitSet(honest)).toBe(0);
  });

  it.each<[string, NvList]>([
    ['a pair not named "limit"', new NvList().addNvlist('limits', new NvList().addString('name', 'hw').addNumber('operation', READ))],
    ['a "limit" that is not an nvlist', new NvList().addString('limit', 'hw')],
    ['an entry without an id', new NvList().addNvlist('limit', new NvList().addNumber('operation', READ))],
    ['an entry without an operation', new NvList().addNvlist('limit', new NvList().addString('name', 'hw'))],
    ['RECURSIVE alone', new NvList().addNvlist('limit', new NvList().addString('name', 'hw').addNumber('operation', RECURSIVE))],
    ['an unknown operation bit', new NvList().addNvlist('limit', new NvList().addString('name', 'hw').addNumber('operation', READ | 8))],
    ['an extra pair', new NvList().addNvlist('limit', new NvList().addString('name', 'hw').addNumber('operation', READ).addBool('x', true))],
    ['a mib of 6 bytes', new NvList().addNvlist('limit', new NvList().addBinary('mib', new Uint8Array(6)).addNumber('operation', READ))],
    ['a name of the wrong type', new NvList().addNvlist('limit', new NvList().addNumber('name', 6).addNumber('operation', READ))],
  ])('%s is EINVAL', (_, l) => {
    expect(sysctlService.limit!(null, l)).toBe(ERRNO.INVAL);
  });
});

describe('fromManifest', () => {
  it('maps names (with their MIBs) and mibs to limit entries', () => {
    const l = sysctlService.fromManifest!({ names: { 'kern.ostype': 'read', hw: 'read+recursive' }, mibs: { '1.10': ['read', 'write'] } })!;
    expect(l.flags & NV_FLAG.NO_UNIQUE).toBeTruthy();
    expect(l.pairs.map(([n]) => n)).toEqual(['limit', 'limit', 'limit']);
    expect(sysctlService.limit!(null, l)).toBe(0);
    const c = new Chan(sysctlService, l);
    expect(str(capSysctlbyname(c, 'kern.ostype', 64, null))).toBe('capsa');
    expect(str(capSysctl(c, [1, 1], 64, null))).toBe('capsa');
    expect(readInt(capSysctlbyname(c, 'hw.ncpu', 4, null).oldp!)).toBe(1);
    expect(capSysctlbyname(c, 'kern.osrelease', 64, null).errno).toBe(ERRNO.NOTCAPABLE);
    expect(capSysctlbyname(c, 'kern.hostname', 64, null).errno).toBe(ERRNO.NOTCAPABLE);
    expect(capSysctl(c, [1, 10], null, new TextEncoder().encode('x')).ret).toBe(0);
    expect(new Limit(c).name('hw.ncpu', READ).name('kern.ostype', READ).apply()).toBe(0);
    expect(new Limit(c).name('hw.ncpu', WRITE).apply()).toBe(ERRNO.NOTCAPABLE);
  });

  it('{} is no limits; { names: {} } allows nothing', () => {
    expect(sysctlService.fromManifest!({})).toBeNull();
    expect(sysctlService.fromManifest!({ names: {} })!.empty).toBe(true);
  });

  it.each([
    [{ name: {} }, /unknown key "name"/],
    [{ names: ['kern.ostype'] }, /mapping/],
    [{ names: { 'kern.ostpye': 'read' } }, /unknown sysctl "kern.ostpye".*kern.ostype/],
    [{ names: { 'kern.ostype': 'recursive' } }, /recursive alone/],
    [{ names: { 'kern.ostype': 'execute' } }, /unknown operation/],
    [{ mibs: { 'hw.ncpu': 'read' } }, /not a dotted MIB/],
  ])('refuses %j', (grant, message) => {
    expect(() => sysctlService.fromManifest!(grant as Record<string, unknown>)).toThrow(GrantError);
    expect(() => sysctlService.fromManifest!(grant as Record<string, unknown>)).toThrow(message);
  });
});

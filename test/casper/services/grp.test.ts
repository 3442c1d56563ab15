/**
 * system.grp: FreeBSD's cap_grp/tests/grp_test.c as tables, over FreeBSD's stock etc/group as
 * the virtual database. The "system" side is a reference model of getgrent(3) on the same
 * database; the cap side builds requests exactly as cap_grp.c's client does (including its
 * "gid%u" keys for group names).
 */
import { describe, expect, it } from 'vitest';
import { NvList } from '../../../src/casper/nvlist.js';
import { CasperError, type CasperService } from '../../../src/casper/service.js';
import grpService, { DEFAULT_GROUPS, type GroupEntry } from '../../../src/casper/services/grp.js';
import { GrantError } from '../../../src/casper/services/common.js';
import { ERRNO } from '../../../src/wasi/constants.js';

const G = (gr_name: string, gr_gid: number, gr_mem: string[] = []): GroupEntry => ({ gr_name, gr_passwd: '*', gr_gid, gr_mem });

/** FreeBSD's etc/group. */
const FREEBSD_GROUPS: GroupEntry[] = [
  G('wheel', 0, ['root']), G('daemon', 1), G('kmem', 2), G('sys', 3), G('tty', 4), G('operator', 5, ['root']),
  G('mail', 6), G('bin', 7), G('news', 8), G('man', 9), G('games', 13), G('ftp', 14), G('staff', 20),
  G('sshd', 22), G('proxy', 62, ['authpf']), G('authpf', 63, ['proxy']), G('www', 80), G('nogroup', 65533), G('nobody', 65534),
];
const CONFIG = { groups: FREEBSD_GROUPS };

class Chan {
  state = new Map<string, unknown>();
  constructor(readonly svc: CasperService, public limits: NvList | null = null, readonly cfg: unknown = CONFIG) {}
  clone(): Chan { return new Chan(this.svc, this.limits?.clone() ?? null, this.cfg); }
  limitGet(): NvList | null { return this.limits?.clone() ?? null; }
  limitSet(l: NvList): number {
    const e = this.svc.limit ? this.svc.limit(this.limits, l) : ERRNO.NOTSUP;
    if (e === 0) this.limits = l.clone();
    return e;
  }
  xfer(req: NvList): { error: number; reply: NvList } {
    try {
      const reply = this.svc.command(req.getString('cmd')!, this.limits, req, { channelState: this.state, sandboxState: new Map(), config: this.cfg });
      if (reply instanceof Promise) throw new Error('grp answers synchronously');
      return { error: 0, reply };
    } catch (e) {
      if (e instanceof CasperError) return { error: e.errno, reply: new NvList() };
      throw e;
    }
  }
}

// cap_grp.c's client
let errno = 0;

/** group_unpack (with group_unpack_members). */
function groupUnpack(nvl: NvList): GroupEntry {
  const nmem = nvl.getNumber('gr_nmem');
  return {
    gr_name: nvl.getString('gr_name')!, gr_passwd: nvl.getString('gr_passwd')!,
    gr_gid: Number(BigInt.asUintN(32, nvl.getNumber('gr_gid')!)),
    gr_mem: nmem === undefined ? [] : Array.from({ length: Number(nmem) }, (_, i) => nvl.getString(`gr_mem[${i}]`)!),
  };
}

/** cap_getgrcommon_r. */
function capGetgrcommon(chan: Chan, cmd: string, name: string | null, gid: number): GroupEntry | null {
  const nvl = new NvList().addString('cmd', cmd);
  if (cmd.startsWith('getgrnam')) nvl.addString('name', name!);
  else if (cmd.startsWith('getgrgid')) nvl.addNumber('gid', gid);
  const { error, reply } = chan.xfer(nvl);
  if (error !== 0) { errno = error; return null; }
  if (!reply.exists('gr_name', 'string')) return null;
  return groupUnpack(reply);
}
const capGetgrent = (c: Chan): GroupEntry | null => capGetgrcommon(c, 'getgrent', null, 0);
const capGetgrentR = (c: Chan): GroupEntry | null => capGetgrcommon(c, 'getgrent_r', null, 0);
const capGetgrnam = (c: Chan, n: string): GroupEntry | null => capGetgrcommon(c, 'getgrnam', n, 0);
const capGetgrnamR = (c: Chan, n: string): GroupEntry | null => capGetgrcommon(c, 'getgrnam_r', n, 0);
const capGetgrgid = (c: Chan, g: number): GroupEntry | null => capGetgrcommon(c, 'getgrgid', null, g);
const capGetgrgidR = (c: Chan, g: number): GroupEntry | null => capGetgrcommon(c, 'getgrgid_r', null, g);
/** cap_setgrent: 1 on success. */
const capSetgrent = (c: Chan): number => (c.xfer(new NvList().addString('cmd', 'setgrent')).error === 0 ? 1 : 0);

function setCategory(chan: Chan, cat: string, sub: NvList): number {
  let limits = chan.limitGet();
  if (limits === null) limits = new NvList();
  else limits.remove(cat, 'nvlist');
  limits.addNvlist(cat, sub);
  return chan.limitSet(limits);
}
const limitCmds = (c: Chan, cmds: string[]): number => setCategory(c, 'cmds', cmds.reduce((l, x) => l.addNull(x), new NvList()));
const limitFields = (c: Chan, f: string[]): number => setCategory(c, 'fields', f.reduce((l, x) => l.addNull(x), new NvList()));
/** cap_grp_limit_groups, with FreeBSD's "gid%u" keys for names too. */
function limitGroups(c: Chan, names: string[], gids: number[]): number {
  const groups = new NvList(0x02 /* NV_FLAG_NO_UNIQUE: names and gids may share a key */);
  gids.forEach((g, i) => groups.addNumber(`gid${i}`, g));
  names.forEach((n, i) => groups.addString(`gid${i}`, n));
  return setCategory(c, 'groups', groups);
}

// The "system" side
let sysCursor = 0;
const sys = {
  setgrent: (): void => { sysCursor = 0; },
  getgrent: (): GroupEntry | null => FREEBSD_GROUPS[sysCursor++] ?? null,
  getgrnam: (n: string): GroupEntry | null => FREEBSD_GROUPS.find((g) => g.gr_name === n) ?? null,
  getgrgid: (id: number): GroupEntry | null => FREEBSD_GROUPS.find((g) => g.gr_gid === id) ?? null,
};

/** group_compare. */
function same(a: GroupEntry | null, b: GroupEntry | null): boolean {
  if (a === null && b === null) return true;
  if (a === null || b === null) return false;
  return a.gr_name === b.gr_name && a.gr_passwd === b.gr_passwd && a.gr_gid === b.gr_gid && a.gr_mem.every((m) => b.gr_mem.includes(m));
}

const GETGRENT0 = 0x1, GETGRENT1 = 0x2, GETGRENT2 = 0x4, GETGRENT = 0x7;
const GETGRENT_R0 = 0x8, GETGRENT_R1 = 0x10, GETGRENT_R2 = 0x20, GETGRENT_R = 0x38;
const GETGRNAM = 0x40, GETGRNAM_R = 0x80, GETGRGID = 0x100, GETGRGID_R = 0x200, SETGRENT = 0x400;
const GID_WHEEL = 0, GID_OPERATOR = 5;

/** runtest_cmds. */
function runtestCmds(c: Chan): number {
  let result = 0;
  sys.setgrent();
  if (capSetgrent(c) === 1) result |= SETGRENT;
  if (same(sys.getgrent(), capGetgrent(c))) {
    result |= GETGRENT0;
    if (same(sys.getgrent(), capGetgrent(c))) result |= GETGRENT1;
  }
  if (same(sys.getgrent(), capGetgrentR(c))) {
    result |= GETGRENT_R0;
    if (same(sys.getgrent(), capGetgrentR(c))) result |= GETGRENT_R1;
  }
  sys.setgrent();
  if (capSetgrent(c) === 1) result |= SETGRENT;
  if (same(sys.getgrent(), capGetgrentR(c))) result |= GETGRENT_R2;
  if (same(sys.getgrent(), capGetgrent(c))) result |= GETGRENT2;
  if (same(sys.getgrnam('wheel'), capGetgrnam(c, 'wheel')) && same(sys.getgrnam('operator'), capGetgrnam(c, 'operator'))) result |= GETGRNAM;
  if (same(sys.getgrnam('wheel'), capGetgrnamR(c, 'wheel')) && same(sys.getgrnam('operator'), capGetgrnamR(c, 'operator'))) result |= GETGRNAM_R;
  if (same(sys.getgrgid(GID_WHEEL), capGetgrgid(c, GID_WHEEL)) && same(sys.getgrgid(GID_OPERATOR), capGetgrgid(c, GID_OPERATOR))) result |= GETGRGID;
  if (same(sys.getgrgid(GID_WHEEL), capGetgrgidR(c, GID_WHEEL)) && same(sys.getgrgid(GID_OPERATOR), capGetgrgidR(c, GID_OPERATOR))) result |= GETGRGID_R;
  return result;
}

const ALL_CMDS = ['setgrent', 'getgrent', 'getgrent_r', 'getgrnam', 'getgrnam_r', 'getgrgid', 'getgrgid_r'];
const ALL_FIELDS = ['gr_name', 'gr_passwd', 'gr_gid', 'gr_mem'];
const NAMES = ['wheel', 'daemon', 'kmem', 'sys', 'operator'];
const GIDS = [0, 1, 2, 3, 5];
const ALL_RESULTS = SETGRENT | GETGRENT | GETGRENT_R | GETGRNAM | GETGRNAM_R | GETGRGID | GETGRGID_R;

/**
 * test_cmds: the cmd left out, whether the block also limits fields to all four (grp_test.c does in
 * some blocks and not in others; it cannot change the result), and what runtest_cmds gives.
 */
const CMD_CASES: { without: string | null; fields: boolean; expected: number }[] = [
  { without: null, fields: true, expected: ALL_RESULTS },
  { without: 'setgrent', fields: false, expected: GETGRENT0 | GETGRENT1 | GETGRENT_R0 | GETGRENT_R1 | GETGRNAM | GETGRNAM_R | GETGRGID | GETGRGID_R },
  { without: 'getgrent', fields: true, expected: SETGRENT | GETGRENT_R2 | GETGRNAM | GETGRNAM_R | GETGRGID | GETGRGID_R },
  { without: 'getgrent_r', fields: false, expected: SETGRENT | GETGRENT0 | GETGRENT1 | GETGRNAM | GETGRNAM_R | GETGRGID | GETGRGID_R },
  { without: 'getgrnam', fields: true, expected: SETGRENT | GETGRENT | GETGRENT_R | GETGRNAM_R | GETGRGID | GETGRGID_R },
  { without: 'getgrnam_r', fields: false, expected: SETGRENT | GETGRENT | GETGRENT_R | GETGRNAM | GETGRGID | GETGRGID_R },
  { without: 'getgrgid', fields: true, expected: SETGRENT | GETGRENT | GETGRENT_R | GETGRNAM | GETGRNAM_R | GETGRGID_R },
  { without: 'getgrgid_r', fields: false, expected: SETGRENT | GETGRENT | GETGRENT_R | GETGRNAM | GETGRNAM_R | GETGRGID },
];

describe('grp_test.c: test_cmds', () => {
  const orig = new Chan(grpService);

  it('no limits', () => {
    expect(runtestCmds(orig)).toBe(ALL_RESULTS);
  });

  for (const { without, fields, expected } of CMD_CASES) {
    for (const by of ['names', 'gids'] as const) {
      it(`allow all cmds ${without ? `but ${without}` : ''}, groups by ${by}`, () => {
        const c = orig.clone();
        expect(limitCmds(c, ALL_CMDS.filter((x) => x !== without))).toBe(0);
        if (without !== null) {
          expect(limitCmds(c, ALL_CMDS)).toBe(ERRNO.NOTCAPABLE);
          expect(limitCmds(c, [without])).toBe(ERRNO.NOTCAPABLE);
        }
        if (fields) expect(limitFields(c, ALL_FIELDS)).toBe(0);
        expect(by === 'names' ? limitGroups(c, NAMES, []) : limitGroups(c, [], GIDS)).toBe(0);
        expect(runtestCmds(c).toString(16)).toBe(expected.toString(16));
      });
    }
  }
});

const GR_NAME = 0x1, GR_PASSWD = 0x2, GR_GID = 0x4, GR_MEM = 0x8;
const GRF: Record<string, number> = { gr_name: GR_NAME, gr_passwd: GR_PASSWD, gr_gid: GR_GID, gr_mem: GR_MEM };

/** group_fields. */
function groupFields(g: GroupEntry | null): number {
  if (g === null) return -1;
  let r = 0;
  if (g.gr_name) r |= GR_NAME;
  if (g.gr_passwd) r |= GR_PASSWD;
  if (g.gr_gid !== 0xffffffff) r |= GR_GID;
  if (g.gr_mem.length > 0) r |= GR_MEM;
  return r;
}

/** runtest_fields: every lookup of wheel shows exactly the expected fields. */
function runtestFields(c: Chan, expected: number): boolean {
  capSetgrent(c);
  if (groupFields(capGetgrent(c)) !== expected) return false;
  capSetgrent(c);
  if (groupFields(capGetgrentR(c)) !== expected) return false;
  return [capGetgrnam(c, 'wheel'), capGetgrnamR(c, 'wheel'), capGetgrgid(c, GID_WHEEL), capGetgrgidR(c, GID_WHEEL)].every((g) => groupFields(g) === expected);
}

/** test_fields: allowed fields, and the single field the second widening attempt asks for. */
const FIELD_CASES: [string[], string | null][] = [
  [['gr_passwd', 'gr_gid', 'gr_mem'], null],
  [['gr_name', 'gr_gid', 'gr_mem'], 'gr_passwd'],
  [['gr_name', 'gr_passwd', 'gr_mem'], 'gr_gid'],
  [['gr_name', 'gr_passwd', 'gr_gid'], 'gr_mem'],
  [['gr_name', 'gr_passwd'], 'gr_gid'],
  [['gr_name', 'gr_gid'], 'gr_mem'],
  [['gr_name', 'gr_mem'], 'gr_passwd'],
  [['gr_passwd', 'gr_gid'], 'gr_mem'],
  [['gr_passwd', 'gr_mem'], 'gr_gid'],
  [['gr_gid', 'gr_mem'], 'gr_passwd'],
];

describe('grp_test.c: test_fields', () => {
  const orig = new Chan(grpService);
  it('no limits, and all four fields', () => {
    expect(runtestFields(orig, GR_NAME | GR_PASSWD | GR_GID | GR_MEM)).toBe(true);
    const c = orig.clone();
    expect(limitFields(c, ALL_FIELDS)).toBe(0);
    expect(runtestFields(c, GR_NAME | GR_PASSWD | GR_GID | GR_MEM)).toBe(true);
  });
  it.each(FIELD_CASES)('fields %j', (fields, extra) => {
    const c = orig.clone();
    expect(limitFields(c, fields)).toBe(0);
    expect(limitFields(c, ALL_FIELDS)).toBe(ERRNO.NOTCAPABLE);
    if (extra) expect(limitFields(c, [extra])).toBe(ERRNO.NOTCAPABLE);
    expect(runtestFields(c, fields.reduce((a, f) => a | GRF[f]!, 0))).toBe(true);
  });
});

/** runtest_groups. */
function runtestGroups(c: Chan, names: string[], gids: number[]): boolean {
  for (const get of [capGetgrent, capGetgrentR]) {
    capSetgrent(c);
    let got = 0;
    for (let g = get(c); g !== null; g = get(c)) {
      got++;
      if (!names.some((n, i) => n === g!.gr_name && gids[i] === g!.gr_gid)) return false;
    }
    if (got !== names.length) return false;
  }
  return names.every((n) => capGetgrnam(c, n) && capGetgrnamR(c, n)) && gids.every((g) => capGetgrgid(c, g) && capGetgrgidR(c, g));
}

const GROUP_CASES: { names?: string[]; gids?: number[]; extra?: string | number; seen: [string, number][] }[] = [
  { names: ['wheel', 'daemon', 'kmem', 'sys', 'tty'], seen: [['wheel', 0], ['daemon', 1], ['kmem', 2], ['sys', 3], ['tty', 4]] },
  { names: ['kmem', 'sys', 'tty'], extra: 'daemon', seen: [['kmem', 2], ['sys', 3], ['tty', 4]] },
  { names: ['wheel', 'kmem', 'tty'], extra: 'daemon', seen: [['wheel', 0], ['kmem', 2], ['tty', 4]] },
  { gids: [2, 3, 4], extra: 0, seen: [['kmem', 2], ['sys', 3], ['tty', 4]] },
  { gids: [0, 2, 4], extra: 1, seen: [['wheel', 0], ['kmem', 2], ['tty', 4]] },
  { names: ['kmem'], extra: 'daemon', seen: [['kmem', 2]] },
  { names: ['wheel', 'tty'], extra: 'daemon', seen: [['wheel', 0], ['tty', 4]] },
  { gids: [2], extra: 1, seen: [['kmem', 2]] },
  { gids: [0, 4], extra: 1, seen: [['wheel', 0], ['tty', 4]] },
];

describe('grp_test.c: test_groups', () => {
  const orig = new Chan(grpService);
  it.each(GROUP_CASES.map((c) => ({ ...c, title: c.names ? `names ${c.names.join(', ')}` : `gids ${c.gids!.join(', ')}` })))('$title', ({ names, gids, extra, seen }) => {
    const c = orig.clone();
    expect(limitGroups(c, names ?? [], gids ?? [])).toBe(0);
    if (extra !== undefined) {
      const wider = typeof extra === 'string' ? [limitGroups(c, [...names!, extra], []), limitGroups(c, [extra], [])] : [limitGroups(c, [], [...gids!, extra]), limitGroups(c, [], [extra])];
      expect(wider).toEqual([ERRNO.NOTCAPABLE, ERRNO.NOTCAPABLE]);
    }
    expect(runtestGroups(c, seen.map(([n]) => n), seen.map(([, g]) => g))).toBe(true);
  });
});

describe('grp service', () => {
  it('packs members as gr_mem[%u] and gr_nmem, and leaves them out when hidden or empty', () => {
    const c = new Chan(grpService);
    const { reply } = c.xfer(new NvList().addString('cmd', 'getgrnam').addString('name', 'proxy'));
    expect(reply.pairs.map(([n]) => n)).toEqual(['gr_name', 'gr_passwd', 'gr_gid', 'gr_mem[0]', 'gr_nmem']);
    expect(reply.getString('gr_mem[0]')).toBe('authpf');
    expect(c.xfer(new NvList().addString('cmd', 'getgrnam').addString('name', 'daemon')).reply.exists('gr_nmem')).toBe(false);
    expect(limitFields(c, ['gr_name'])).toBe(0);
    const hidden = c.xfer(new NvList().addString('cmd', 'getgrgid').addNumber('gid', 0)).reply;
    expect(hidden.pairs.map(([n, v]) => [n, v.type === 'number' ? v.value : (v as { value: unknown }).value])).toEqual([['gr_name', 'wheel'], ['gr_passwd', ''], ['gr_gid', 2n ** 64n - 1n]]);
  });

  it('setgroupent needs stayopen; endgrent rewinds; unknown cmds are EINVAL, refused ones ENOTCAPABLE', () => {
    const c = new Chan(grpService);
    expect(c.xfer(new NvList().addString('cmd', 'setgroupent')).error).toBe(ERRNO.INVAL);
    expect(capGetgrent(c)?.gr_name).toBe('wheel');
    expect(c.xfer(new NvList().addString('cmd', 'setgroupent').addBool('stayopen', true)).error).toBe(0);
    expect(capGetgrent(c)?.gr_name).toBe('wheel');
    c.xfer(new NvList().addString('cmd', 'endgrent'));
    expect(capGetgrentR(c)?.gr_name).toBe('wheel');
    expect(c.xfer(new NvList().addString('cmd', 'getgrall')).error).toBe(ERRNO.INVAL);
    expect(c.xfer(new NvList().addString('cmd', 'getgrgid')).error).toBe(ERRNO.INVAL);
    expect(limitCmds(c, ['getgrnam'])).toBe(0);
    errno = 0;
    expect(capGetgrgid(c, 0)).toBeNull();
    expect(errno).toBe(ERRNO.NOTCAPABLE);
  });

  it('limit rules: categories cannot be dropped, entries must be numbers or strings', () => {
    const withGroups = new NvList().addNvlist('groups', new NvList().addString('name0', 'wheel'));
    expect(grpService.limit!(withGroups, new NvList())).toBe(ERRNO.NOTCAPABLE);
    expect(grpService.limit!(null, new NvList().addNvlist('groups', new NvList().addNull('wheel')))).toBe(ERRNO.INVAL);
    expect(grpService.limit!(null, new NvList().addNvlist('users', new NvList()))).toBe(ERRNO.INVAL);
    // wheel's gid, but the old limits list wheel by name only: as grp_allowed_group, refused.
    expect(grpService.limit!(withGroups, new NvList().addNvlist('groups', new NvList().addNumber('gid0', 0)))).toBe(ERRNO.NOTCAPABLE);
    expect(grpService.limit!(withGroups, new NvList().addNvlist('groups', new NvList().addString('gid0', 'wheel')))).toBe(0);
  });

  it('serves the default database when none is configured', () => {
    const c = new Chan(grpService, null, null);
    const seen: string[] = [];
    for (let g = capGetgrent(c); g; g = capGetgrent(c)) seen.push(g.gr_name);
    expect(seen).toEqual(DEFAULT_GROUPS.map((g) => g.gr_name));
  });

  it('fromManifest maps cmds, fields and groups', () => {
    const l = grpService.fromManifest!({ cmds: ['getgrnam'], fields: ['gr_name', 'gr_gid'], groups: ['wheel', 80] })!;
    expect(l.getNvlist('groups')!.pairs).toEqual([['name0', { type: 'string', value: 'wheel' }], ['gid0', { type: 'number', value: 80n }]]);
    const c = new Chan(grpService, l);
    expect(capGetgrnam(c, 'www')).toEqual({ gr_name: 'www', gr_passwd: '', gr_gid: 80, gr_mem: [] });
    expect(capGetgrnam(c, 'kmem')).toBeNull();
    expect(grpService.fromManifest!({})).toBeNull();
    expect(() => grpService.fromManifest!({ users: ['root'] })).toThrow(GrantError);
    expect(() => grpService.fromManifest!({ fields: ['gr_members'] })).toThrow(/unknown field/);
  });
});

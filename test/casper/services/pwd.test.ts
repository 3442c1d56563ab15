/**
 * system.pwd: FreeBSD's cap_pwd/tests/pwd_test.c as tables. Its "system" side (getpwent(3) on
 * the host) is a reference model over the same virtual database, unlimited; the cap side builds
 * requests exactly as cap_pwd.c's client does. The database is FreeBSD's stock master.passwd
 * (the test depends on its order: root, toor, daemon, operator, bin, tty, kmem, …).
 */
import { describe, expect, it } from 'vitest';
import { NvList } from '../../../src/casper/nvlist.js';
import { CasperError, type CasperService } from '../../../src/casper/service.js';
import pwdService, { DEFAULT_USERS, PWF, type PasswdEntry } from '../../../src/casper/services/pwd.js';
import { GrantError } from '../../../src/casper/services/common.js';
import { ERRNO } from '../../../src/wasi/constants.js';

const U = (pw_name: string, pw_uid: number, pw_gid: number, pw_gecos: string, pw_dir: string, pw_shell = '/usr/sbin/nologin', pw_passwd = '*', pw_class = ''): PasswdEntry =>
  ({ pw_name, pw_passwd, pw_uid, pw_gid, pw_change: 0, pw_class, pw_gecos, pw_dir, pw_shell, pw_expire: 0 });

/** FreeBSD's etc/master.passwd. */
const FREEBSD_USERS: PasswdEntry[] = [
  U('root', 0, 0, 'Charlie &', '/root', '/bin/csh', ''),
  U('toor', 0, 0, 'Bourne-again Superuser', '/root', '', '*'),
  U('daemon', 1, 1, 'Owner of many system processes', '/root'),
  U('operator', 2, 5, 'System &', '/'),
  U('bin', 3, 7, 'Binaries Commands and Source', '/'),
  U('tty', 4, 65533, 'Tty Sandbox', '/'),
  U('kmem', 5, 65533, 'KMem Sandbox', '/'),
  U('games', 7, 13, 'Games pseudo-user', '/'),
  U('news', 8, 8, 'News Subsystem', '/'),
  U('man', 9, 9, 'Mister Man Pages', '/usr/share/man'),
  U('sshd', 22, 22, 'Secure Shell Daemon', '/var/empty'),
  U('www', 80, 80, 'World Wide Web Owner', '/nonexistent'),
  U('nobody', 65534, 65534, 'Unprivileged user', '/nonexistent'),
];
const CONFIG = { users: FREEBSD_USERS };

// ---------------------------------------------------------------------------------------------
// A channel, as the broker keeps it

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
      if (reply instanceof Promise) throw new Error('pwd answers synchronously');
      return { error: 0, reply };
    } catch (e) {
      if (e instanceof CasperError) return { error: e.errno, reply: new NvList() };
      throw e;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// cap_pwd.c's client

interface Passwd extends PasswdEntry { pw_fields: number }
let errno = 0;

/** passwd_unpack. */
function passwdUnpack(nvl: NvList): Passwd {
  const n = (k: string): number => Number(BigInt.asUintN(32, nvl.getNumber(k)!));
  const t = (k: string): number => Number(BigInt.asIntN(64, nvl.getNumber(k)!));
  return {
    pw_name: nvl.getString('pw_name')!, pw_uid: n('pw_uid'), pw_gid: n('pw_gid'), pw_change: t('pw_change'),
    pw_passwd: nvl.getString('pw_passwd')!, pw_class: nvl.getString('pw_class')!, pw_gecos: nvl.getString('pw_gecos')!,
    pw_dir: nvl.getString('pw_dir')!, pw_shell: nvl.getString('pw_shell')!, pw_expire: t('pw_expire'),
    pw_fields: Number(nvl.getNumber('pw_fields')),
  };
}

/** cap_getpwcommon_r. */
function capGetpwcommon(chan: Chan, cmd: string, login: string | null, uid: number): Passwd | null {
  const nvl = new NvList().addString('cmd', cmd);
  if (cmd.startsWith('getpwnam')) nvl.addString('name', login!);
  else if (cmd.startsWith('getpwuid')) nvl.addNumber('uid', uid);
  const { error, reply } = chan.xfer(nvl);
  if (error !== 0) { errno = error; return null; }
  if (!reply.exists('pw_name', 'string')) return null;
  return passwdUnpack(reply);
}
const capGetpwent = (c: Chan): Passwd | null => capGetpwcommon(c, 'getpwent', null, 0);
const capGetpwentR = (c: Chan): Passwd | null => capGetpwcommon(c, 'getpwent_r', null, 0);
const capGetpwnam = (c: Chan, n: string): Passwd | null => capGetpwcommon(c, 'getpwnam', n, 0);
const capGetpwnamR = (c: Chan, n: string): Passwd | null => capGetpwcommon(c, 'getpwnam_r', n, 0);
const capGetpwuid = (c: Chan, u: number): Passwd | null => capGetpwcommon(c, 'getpwuid', null, u);
const capGetpwuidR = (c: Chan, u: number): Passwd | null => capGetpwcommon(c, 'getpwuid_r', null, u);
const capSetpwent = (c: Chan): void => { c.xfer(new NvList().addString('cmd', 'setpwent')); };

function setCategory(chan: Chan, cat: string, sub: NvList): number {
  let limits = chan.limitGet();
  if (limits === null) limits = new NvList();
  else limits.remove(cat, 'nvlist');
  limits.addNvlist(cat, sub);
  return chan.limitSet(limits);
}
/** cap_pwd_limit_cmds / cap_pwd_limit_fields / cap_pwd_limit_users. */
const limitCmds = (c: Chan, cmds: string[]): number => setCategory(c, 'cmds', cmds.reduce((l, x) => l.addNull(x), new NvList()));
const limitFields = (c: Chan, f: string[]): number => setCategory(c, 'fields', f.reduce((l, x) => l.addNull(x), new NvList()));
function limitUsers(c: Chan, names: string[], uids: number[]): number {
  const users = new NvList();
  uids.forEach((u, i) => users.addNumber(`uid${i}`, u));
  names.forEach((n, i) => users.addString(`name${i}`, n));
  return setCategory(c, 'users', users);
}

// ---------------------------------------------------------------------------------------------
// The "system" side: getpwent(3) and friends on the same database, no limits

function fieldsOf(u: PasswdEntry): number {
  let f = PWF.FILES | PWF.UID | PWF.GID | PWF.CHANGE | PWF.EXPIRE;
  if (u.pw_name) f |= PWF.NAME;
  if (u.pw_passwd) f |= PWF.PASSWD;
  if (u.pw_class) f |= PWF.CLASS;
  if (u.pw_gecos) f |= PWF.GECOS;
  if (u.pw_dir) f |= PWF.DIR;
  if (u.pw_shell) f |= PWF.SHELL;
  return f;
}
const sysCopy = (u: PasswdEntry | undefined): Passwd | null => (u ? { ...u, pw_fields: fieldsOf(u) } : null);
let sysCursor = 0;
const sys = {
  setpwent: (): void => { sysCursor = 0; },
  getpwent: (): Passwd | null => sysCopy(FREEBSD_USERS[sysCursor++]),
  getpwnam: (n: string): Passwd | null => sysCopy(FREEBSD_USERS.find((u) => u.pw_name === n)),
  getpwuid: (id: number): Passwd | null => sysCopy(FREEBSD_USERS.find((u) => u.pw_uid === id)),
};

/** passwd_compare. */
function same(a: Passwd | null, b: Passwd | null): boolean {
  if (a === null && b === null) return true;
  if (a === null || b === null) return false;
  return (Object.keys(a) as (keyof Passwd)[]).every((k) => a[k] === b[k]);
}

// ---------------------------------------------------------------------------------------------
// pwd_test.c: test_cmds

const GETPWENT0 = 0x0001, GETPWENT1 = 0x0002, GETPWENT2 = 0x0004, GETPWENT = 0x7;
const GETPWENT_R0 = 0x0008, GETPWENT_R1 = 0x0010, GETPWENT_R2 = 0x0020, GETPWENT_R = 0x38;
const GETPWNAM = 0x0040, GETPWNAM_R = 0x0080, GETPWUID = 0x0100, GETPWUID_R = 0x0200;
const UID_ROOT = 0, UID_OPERATOR = 2;

/** runtest_cmds. */
function runtestCmds(c: Chan): number {
  let result = 0;
  sys.setpwent(); capSetpwent(c);
  if (same(sys.getpwent(), capGetpwent(c))) {
    result |= GETPWENT0;
    if (same(sys.getpwent(), capGetpwent(c))) result |= GETPWENT1;
  }
  if (same(sys.getpwent(), capGetpwentR(c))) {
    result |= GETPWENT_R0;
    if (same(sys.getpwent(), capGetpwentR(c))) result |= GETPWENT_R1;
  }
  sys.setpwent(); capSetpwent(c);
  if (same(sys.getpwent(), capGetpwentR(c))) result |= GETPWENT_R2;
  if (same(sys.getpwent(), capGetpwent(c))) result |= GETPWENT2;
  if (same(sys.getpwnam('root'), capGetpwnam(c, 'root')) && same(sys.getpwnam('operator'), capGetpwnam(c, 'operator'))) result |= GETPWNAM;
  if (same(sys.getpwnam('root'), capGetpwnamR(c, 'root')) && same(sys.getpwnam('operator'), capGetpwnamR(c, 'operator'))) result |= GETPWNAM_R;
  if (same(sys.getpwuid(UID_ROOT), capGetpwuid(c, UID_ROOT)) && same(sys.getpwuid(UID_OPERATOR), capGetpwuid(c, UID_OPERATOR))) result |= GETPWUID;
  if (same(sys.getpwuid(UID_ROOT), capGetpwuidR(c, UID_ROOT)) && same(sys.getpwuid(UID_OPERATOR), capGetpwuidR(c, UID_OPERATOR))) result |= GETPWUID_R;
  return result;
}

const ALL_CMDS = ['setpwent', 'getpwent', 'getpwent_r', 'getpwnam', 'getpwnam_r', 'getpwuid', 'getpwuid_r'];
const ALL_FIELDS = ['pw_name', 'pw_passwd', 'pw_uid', 'pw_gid', 'pw_change', 'pw_class', 'pw_gecos', 'pw_dir', 'pw_shell', 'pw_expire'];
const NAMES = ['root', 'toor', 'daemon', 'operator', 'bin', 'kmem'];
const UIDS = [0, 1, 2, 3, 5];
const ALL_RESULTS = GETPWENT | GETPWENT_R | GETPWNAM | GETPWNAM_R | GETPWUID | GETPWUID_R;

/** The blocks of test_cmds: the cmd left out, and what runtest_cmds then gives. */
const CMD_CASES: { without: string | null; expected: number }[] = [
  { without: null, expected: ALL_RESULTS },
  { without: 'setpwent', expected: GETPWENT0 | GETPWENT1 | GETPWENT_R0 | GETPWENT_R1 | GETPWNAM | GETPWNAM_R | GETPWUID | GETPWUID_R },
  { without: 'getpwent', expected: GETPWENT_R2 | GETPWNAM | GETPWNAM_R | GETPWUID | GETPWUID_R },
  { without: 'getpwent_r', expected: GETPWENT0 | GETPWENT1 | GETPWNAM | GETPWNAM_R | GETPWUID | GETPWUID_R },
  { without: 'getpwnam', expected: GETPWENT | GETPWENT_R | GETPWNAM_R | GETPWUID | GETPWUID_R },
  { without: 'getpwnam_r', expected: GETPWENT | GETPWENT_R | GETPWNAM | GETPWUID | GETPWUID_R },
  { without: 'getpwuid', expected: GETPWENT | GETPWENT_R | GETPWNAM | GETPWNAM_R | GETPWUID_R },
  { without: 'getpwuid_r', expected: GETPWENT | GETPWENT_R | GETPWNAM | GETPWNAM_R | GETPWUID },
];

describe('pwd_test.c: test_cmds', () => {
  const orig = new Chan(pwdService);

  it('no limits', () => {
    expect(runtestCmds(orig)).toBe(ALL_RESULTS);
  });

  for (const { without, expected } of CMD_CASES) {
    for (const by of ['names', 'uids'] as const) {
      it(`allow all cmds ${without ? `but ${without}` : ''}, users by ${by}`, () => {
        const c = orig.clone();
        if (without === 'setpwent') capSetpwent(c);
        const cmds = ALL_CMDS.filter((x) => x !== without);
        expect(limitCmds(c, cmds)).toBe(0);
        if (without !== null) {
          expect(limitCmds(c, ALL_CMDS)).toBe(ERRNO.NOTCAPABLE);
          expect(limitCmds(c, [without])).toBe(ERRNO.NOTCAPABLE);
        }
        expect(limitFields(c, ALL_FIELDS)).toBe(0);
        expect(by === 'names' ? limitUsers(c, NAMES, []) : limitUsers(c, [], UIDS)).toBe(0);
        expect(runtestCmds(c).toString(16)).toBe(expected.toString(16));
      });
    }
  }

  it('a refused cmd sets errno to ENOTCAPABLE; a refused user is "not found", errno untouched', () => {
    const c = orig.clone();
    expect(limitCmds(c, ['getpwnam'])).toBe(0);
    expect(limitUsers(c, ['root'], [])).toBe(0);
    errno = 0;
    expect(capGetpwuid(c, 0)).toBeNull();
    expect(errno).toBe(ERRNO.NOTCAPABLE);
    errno = 0;
    expect(capGetpwnam(c, 'daemon')).toBeNull();
    expect(errno).toBe(0);
    expect(capGetpwnam(c, 'root')?.pw_uid).toBe(0);
  });
});

// ---------------------------------------------------------------------------------------------
// pwd_test.c: test_fields

/** passwd_fields. */
function passwdFields(p: Passwd | null): number {
  if (p === null) return 0;
  let r = 0;
  if (p.pw_name) r |= PWF.NAME;
  if (p.pw_passwd || p.pw_fields & PWF.PASSWD) r |= PWF.PASSWD;
  if (p.pw_uid !== 0xffffffff) r |= PWF.UID;
  if (p.pw_gid !== 0xffffffff) r |= PWF.GID;
  if (p.pw_change !== 0 || p.pw_fields & PWF.CHANGE) r |= PWF.CHANGE;
  if (p.pw_class || p.pw_fields & PWF.CLASS) r |= PWF.CLASS;
  if (p.pw_gecos || p.pw_fields & PWF.GECOS) r |= PWF.GECOS;
  if (p.pw_dir || p.pw_fields & PWF.DIR) r |= PWF.DIR;
  if (p.pw_shell || p.pw_fields & PWF.SHELL) r |= PWF.SHELL;
  if (p.pw_expire !== 0 || p.pw_fields & PWF.EXPIRE) r |= PWF.EXPIRE;
  return r;
}

/** runtest_fields. */
function runtestFields(c: Chan, expected: number): boolean {
  const ok = (p: Passwd | null): boolean => p !== null && (passwdFields(p) & ~expected) === 0;
  capSetpwent(c);
  if (!ok(capGetpwent(c))) return false;
  capSetpwent(c);
  if (!ok(capGetpwentR(c))) return false;
  return ok(capGetpwnam(c, 'root')) && ok(capGetpwnamR(c, 'root')) && ok(capGetpwuid(c, UID_ROOT)) && ok(capGetpwuidR(c, UID_ROOT));
}

const F: Record<string, number> = {
  pw_name: PWF.NAME, pw_passwd: PWF.PASSWD, pw_uid: PWF.UID, pw_gid: PWF.GID, pw_change: PWF.CHANGE,
  pw_class: PWF.CLASS, pw_gecos: PWF.GECOS, pw_dir: PWF.DIR, pw_shell: PWF.SHELL, pw_expire: PWF.EXPIRE,
};

/** The blocks of test_fields: the allowed fields, and a field the widening attempts add. */
const FIELD_CASES: [string[], string][] = [
  [['pw_name', 'pw_passwd', 'pw_uid', 'pw_gid', 'pw_change'], 'pw_class'],
  [['pw_class', 'pw_gecos', 'pw_dir', 'pw_shell', 'pw_expire'], 'pw_uid'],
  [['pw_name', 'pw_uid', 'pw_change', 'pw_gecos', 'pw_shell'], 'pw_class'],
  [['pw_passwd', 'pw_gid', 'pw_class', 'pw_dir', 'pw_expire'], 'pw_uid'],
  [['pw_uid', 'pw_class', 'pw_shell'], 'pw_change'],
  [['pw_change'], 'pw_uid'],
];

describe('pwd_test.c: test_fields', () => {
  const orig = new Chan(pwdService);
  const all = Object.values(F).reduce((a, b) => a | b, 0);

  it('no limits, and all ten fields', () => {
    expect(runtestFields(orig, all)).toBe(true);
    const c = orig.clone();
    expect(limitFields(c, ALL_FIELDS)).toBe(0);
    expect(runtestFields(c, all)).toBe(true);
  });

  it.each(FIELD_CASES)('fields %j (adding %s is ENOTCAPABLE)', (fields, extra) => {
    const c = orig.clone();
    expect(limitFields(c, fields)).toBe(0);
    expect(limitFields(c, [...fields, extra])).toBe(ERRNO.NOTCAPABLE);
    expect(limitFields(c, [extra])).toBe(ERRNO.NOTCAPABLE);
    const expected = fields.reduce((a, f) => a | F[f]!, 0);
    expect(runtestFields(c, expected)).toBe(true);
    // Exactly: blanked values and cleared pw_fields bits for every other field.
    const root = capGetpwnam(c, 'root')!;
    expect(passwdFields(root) & ~expected).toBe(0);
    if (!fields.includes('pw_uid')) expect(root.pw_uid).toBe(0xffffffff);
    if (!fields.includes('pw_dir')) expect(root.pw_dir).toBe('');
    expect(root.pw_fields & all & ~expected).toBe(0);
  });

  it('blanks pw_uid as (uint64_t)-1 on the wire, as cap_pwd.c does', () => {
    const c = orig.clone();
    expect(limitFields(c, ['pw_name'])).toBe(0);
    const { reply } = c.xfer(new NvList().addString('cmd', 'getpwnam').addString('name', 'root'));
    expect(reply.getNumber('pw_uid')).toBe(2n ** 64n - 1n);
    expect(reply.pairs.map(([n]) => n)).toEqual(['pw_name', 'pw_uid', 'pw_gid', 'pw_change', 'pw_passwd', 'pw_class', 'pw_gecos', 'pw_dir', 'pw_shell', 'pw_expire', 'pw_fields']);
  });
});

// ---------------------------------------------------------------------------------------------
// pwd_test.c: test_users

/** runtest_users. */
function runtestUsers(c: Chan, names: string[], uids: number[]): boolean {
  for (const get of [capGetpwent, capGetpwentR]) {
    capSetpwent(c);
    let got = 0;
    for (let p = get(c); p !== null; p = get(c)) {
      got++;
      if (!names.some((n, i) => n === p!.pw_name && uids[i] === p!.pw_uid)) return false;
    }
    if (got !== names.length) return false;
  }
  return names.every((n) => capGetpwnam(c, n) && capGetpwnamR(c, n)) && uids.every((u) => capGetpwuid(c, u) && capGetpwuidR(c, u));
}

/** The blocks of test_users: limit by names or uids, the widening attempt, and the users seen. */
const USER_CASES: { names?: string[]; uids?: number[]; extra?: string | number; seen: [string, number][] }[] = [
  { names: ['root', 'toor', 'daemon', 'operator', 'bin', 'tty'], seen: [['root', 0], ['toor', 0], ['daemon', 1], ['operator', 2], ['bin', 3], ['tty', 4]] },
  { names: ['daemon', 'operator', 'bin'], extra: 'tty', seen: [['daemon', 1], ['operator', 2], ['bin', 3]] },
  { names: ['daemon', 'bin', 'tty'], extra: 'operator', seen: [['daemon', 1], ['bin', 3], ['tty', 4]] },
  { uids: [1, 2, 3], extra: 4, seen: [['daemon', 1], ['operator', 2], ['bin', 3]] },
  { uids: [1, 3, 4], extra: 5, seen: [['daemon', 1], ['bin', 3], ['tty', 4]] },
  { names: ['bin'], extra: 'operator', seen: [['bin', 3]] },
  { names: ['daemon', 'tty'], extra: 'operator', seen: [['daemon', 1], ['tty', 4]] },
  { uids: [3], extra: 4, seen: [['bin', 3]] },
  { uids: [1, 4], extra: 3, seen: [['daemon', 1], ['tty', 4]] },
];

describe('pwd_test.c: test_users', () => {
  const orig = new Chan(pwdService);
  it.each(USER_CASES.map((c) => ({ ...c, title: c.names ? `names ${c.names.join(', ')}` : `uids ${c.uids!.join(', ')}` })))('$title', ({ names, uids, extra, seen }) => {
    const c = orig.clone();
    expect(limitUsers(c, names ?? [], uids ?? [])).toBe(0);
    if (extra !== undefined) {
      const wider = typeof extra === 'string' ? [limitUsers(c, [...names!, extra], []), limitUsers(c, [extra], [])] : [limitUsers(c, [], [...uids!, extra]), limitUsers(c, [], [extra])];
      expect(wider).toEqual([ERRNO.NOTCAPABLE, ERRNO.NOTCAPABLE]);
    }
    expect(runtestUsers(c, seen.map(([n]) => n), seen.map(([, u]) => u))).toBe(true);
  });
});

// ---------------------------------------------------------------------------------------------
// The limit function's other rules, the commands' errors, the database, the manifest

describe('pwd_limit', () => {
  it.each([
    ['dropping cmds', ['cmds'], ['fields'], ERRNO.NOTCAPABLE],
    ['dropping fields', ['fields'], ['cmds'], ERRNO.NOTCAPABLE],
    ['dropping users', ['users'], ['cmds'], ERRNO.NOTCAPABLE],
    ['keeping all', ['cmds', 'fields', 'users'], ['cmds', 'fields', 'users'], 0],
  ])('%s', (_, before, after, errno) => {
    const mk = (cats: string[]): NvList => {
      const l = new NvList();
      for (const c of cats) l.addNvlist(c, c === 'users' ? new NvList().addString('name0', 'root') : new NvList().addNull(c === 'cmds' ? 'getpwnam' : 'pw_name'));
      return l;
    };
    expect(pwdService.limit!(mk(before), mk(after))).toBe(errno);
  });

  it.each([
    ['a top-level pair that is not an nvlist', new NvList().addNull('cmds')],
    ['an unknown category', new NvList().addNvlist('groups', new NvList())],
    ['a cmd that is not NULL', new NvList().addNvlist('cmds', new NvList().addBool('getpwnam', true))],
    ['a field that is not NULL', new NvList().addNvlist('fields', new NvList().addString('pw_name', 'x'))],
    ['a user that is neither number nor string', new NvList().addNvlist('users', new NvList().addBool('uid0', true))],
  ])('%s is EINVAL', (_, l) => {
    expect(pwdService.limit!(null, l)).toBe(ERRNO.INVAL);
  });

  it('an empty category allows nothing (unlike dns, where absent and empty agree)', () => {
    const c = new Chan(pwdService);
    expect(limitCmds(c, [])).toBe(0);
    for (const cmd of ALL_CMDS) expect(c.xfer(new NvList().addString('cmd', cmd)).error).toBe(ERRNO.NOTCAPABLE);
    const u = new Chan(pwdService);
    expect(limitUsers(u, [], [])).toBe(0);
    capSetpwent(u);
    expect(capGetpwent(u)).toBeNull();
    expect(capGetpwnam(u, 'root')).toBeNull();
  });

  it('a user is allowed by its name or its uid', () => {
    const c = new Chan(pwdService);
    expect(limitUsers(c, ['toor'], [])).toBe(0);
    expect(capGetpwuid(c, 0)).toBeNull(); // uid 0 is root first, and root is not listed
    expect(capGetpwnam(c, 'toor')?.pw_uid).toBe(0);
    expect(limitUsers(c, [], [0])).toBe(ERRNO.NOTCAPABLE); // uid 0 would also allow root
  });
});

describe('commands', () => {
  it.each([
    ['an unknown cmd', new NvList().addString('cmd', 'getpwall'), ERRNO.INVAL],
    ['getpwnam without name', new NvList().addString('cmd', 'getpwnam'), ERRNO.INVAL],
    ['getpwuid without uid', new NvList().addString('cmd', 'getpwuid_r'), ERRNO.INVAL],
    ['setpassent without stayopen', new NvList().addString('cmd', 'setpassent'), ERRNO.INVAL],
    ['setpassent', new NvList().addString('cmd', 'setpassent').addBool('stayopen', true), 0],
    ['endpwent', new NvList().addString('cmd', 'endpwent'), 0],
  ])('%s → %i', (_, req, errno) => {
    expect(new Chan(pwdService).xfer(req).error).toBe(errno);
  });

  it('a cmd outside "cmds" is ENOTCAPABLE before it is found unknown', () => {
    const c = new Chan(pwdService);
    expect(limitCmds(c, ['getpwnam'])).toBe(0);
    expect(c.xfer(new NvList().addString('cmd', 'getpwall')).error).toBe(ERRNO.NOTCAPABLE);
  });

  it('getpwent walks to the end and stays there; setpassent and endpwent rewind; clones start fresh', () => {
    const c = new Chan(pwdService);
    const seen: string[] = [];
    for (let p = capGetpwent(c); p; p = capGetpwent(c)) seen.push(p.pw_name);
    expect(seen).toEqual(FREEBSD_USERS.map((u) => u.pw_name));
    expect(capGetpwent(c)).toBeNull();
    c.xfer(new NvList().addString('cmd', 'setpassent').addBool('stayopen', false));
    expect(capGetpwent(c)?.pw_name).toBe('root');
    expect(capGetpwent(c.clone())?.pw_name).toBe('root');
    c.xfer(new NvList().addString('cmd', 'endpwent'));
    expect(capGetpwent(c)?.pw_name).toBe('root');
  });

  it('serves the default database when the operator configures none', () => {
    const c = new Chan(pwdService, null, null);
    const seen: string[] = [];
    for (let p = capGetpwent(c); p; p = capGetpwent(c)) seen.push(p.pw_name);
    expect(seen).toEqual(DEFAULT_USERS.map((u) => u.pw_name));
    expect(capGetpwuid(c, 65534)?.pw_name).toBe('nobody');
  });

  it('reads the operator database, never the host\'s', () => {
    const c = new Chan(pwdService, null, { users: [{ pw_name: 'app', pw_uid: 1000, pw_gid: 1000, pw_dir: '/home/app', pw_shell: '/bin/sh' }, { pw_uid: 5 }] });
    expect(capGetpwnam(c, 'app')).toMatchObject({ pw_name: 'app', pw_uid: 1000, pw_dir: '/home/app', pw_passwd: '', pw_class: '' });
    expect(capGetpwnam(c, 'root')).toBeNull();
    capSetpwent(c);
    expect(capGetpwent(c)?.pw_name).toBe('app');
    expect(capGetpwent(c)).toBeNull();
  });
});

describe('fromManifest', () => {
  it('maps cmds, fields and users (names or uids) to nested limits', () => {
    const l = pwdService.fromManifest!({ cmds: ['getpwnam', 'getpwuid'], fields: ['pw_name', 'pw_uid', 'pw_dir'], users: ['root', 'www', 1000] })!;
    expect(l.getNvlist('cmds')!.pairs.map(([n]) => n)).toEqual(['getpwnam', 'getpwuid']);
    expect(l.getNvlist('fields')!.pairs.map(([n]) => n)).toEqual(['pw_name', 'pw_uid', 'pw_dir']);
    expect(l.getNvlist('users')!.pairs).toEqual([['name0', { type: 'string', value: 'root' }], ['name1', { type: 'string', value: 'www' }], ['uid0', { type: 'number', value: 1000n }]]);
    const c = new Chan(pwdService, l);
    expect(capGetpwnam(c, 'www')).toMatchObject({ pw_name: 'www', pw_uid: 80, pw_dir: '/nonexistent', pw_shell: '' });
    expect(capGetpwnam(c, 'daemon')).toBeNull();
    expect(c.xfer(new NvList().addString('cmd', 'getpwent')).error).toBe(ERRNO.NOTCAPABLE);
    expect(limitCmds(c, ['getpwent'])).toBe(ERRNO.NOTCAPABLE);
  });

  it('{} is no limits', () => {
    expect(pwdService.fromManifest!({})).toBeNull();
  });

  it.each([
    [{ cmd: ['getpwnam'] }, /unknown key "cmd"/],
    [{ cmds: ['getpwnom'] }, /unknown command "getpwnom"/],
    [{ fields: ['pw_home'] }, /unknown field "pw_home"/],
    [{ users: [-1] }, /names or uids/],
    [{ users: { root: true } }, /is a list/],
  ])('refuses %j', (grant, message) => {
    expect(() => pwdService.fromManifest!(grant as Record<string, unknown>)).toThrow(GrantError);
    expect(() => pwdService.fromManifest!(grant as Record<string, unknown>)).toThrow(message);
  });
});

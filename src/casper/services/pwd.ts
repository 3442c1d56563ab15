/**
 * system.pwd: FreeBSD's cap_pwd (lib/libcasper/services/cap_pwd/cap_pwd.c) over a virtual
 * passwd database. The host's /etc/passwd is never read.
 *
 * Requests, exactly as cap_pwd.c's client sends them:
 *   { cmd: "getpwent" | "getpwent_r" }
 *   { cmd: "getpwnam" | "getpwnam_r", name: string }
 *   { cmd: "getpwuid" | "getpwuid_r", uid: number }
 *   { cmd: "setpassent", stayopen: bool }
 *   { cmd: "setpwent" | "endpwent" }
 * Reply of the four lookups, when an allowed entry was found (else an empty reply = not found):
 *   { pw_name: string, pw_uid: number, pw_gid: number, pw_change: number, pw_passwd: string,
 *     pw_class: string, pw_gecos: string, pw_dir: string, pw_shell: string, pw_expire: number,
 *     pw_fields: number }
 *   A field outside the "fields" limit is sent blanked: "" for strings, (uint64_t)-1 for
 *   pw_uid/pw_gid, 0 for pw_change/pw_expire, and its _PWF_* bit cleared in pw_fields.
 *   pw_fields: _PWF_NAME 0x1, _PWF_PASSWD 0x2, _PWF_UID 0x4, _PWF_GID 0x8, _PWF_CHANGE 0x10,
 *   _PWF_CLASS 0x20, _PWF_GECOS 0x40, _PWF_DIR 0x80, _PWF_SHELL 0x100, _PWF_EXPIRE 0x200, plus
 *   _PWF_FILES 0x1000 (string bits only for non-empty strings, as __pw_scan sets them).
 * Reply of setpassent/setpwent/endpwent: empty. All three rewind this channel's getpwent cursor.
 * Errors: ENOTCAPABLE for a cmd outside the "cmds" limit; EINVAL for an unknown cmd or a
 * missing argument.
 *
 * Limits: see getent.ts ({ cmds, fields, users }); users are uid numbers or name strings.
 * Manifest grant: { cmds: [getpwnam, …], fields: [pw_name, …], users: [root, 1000, …] };
 * {} = no limits.
 *
 * Operator config (ctx.config): { users: [{ pw_name, pw_passwd, pw_uid, pw_gid, pw_change,
 * pw_class, pw_gecos, pw_dir, pw_shell, pw_expire }] }, in getpwent order; absent → DEFAULT_USERS.
 *
 * Deviations from FreeBSD, on purpose: a missing request argument is EINVAL (FreeBSD's service
 * aborts); the getpwent cursor is per channel (FreeBSD's is per service process, which is per
 * channel too, but a cap_clone shares it); setpassent always succeeds.
 */
import type { NvList } from '../nvlist.js';
import type { CasperService } from '../service.js';
import { cfgInt, cfgString, configList, getentCommand, getentFromManifest, getentLimit, type GetentSpec } from './getent.js';

export interface PasswdEntry {
  pw_name: string;
  pw_passwd: string;
  pw_uid: number;
  pw_gid: number;
  pw_change: number;
  pw_class: string;
  pw_gecos: string;
  pw_dir: string;
  pw_shell: string;
  pw_expire: number;
}

/** The database when the operator configures none: FreeBSD's first accounts, and nobody. */
export const DEFAULT_USERS: readonly PasswdEntry[] = [
  user('root', 0, 0, 'Charlie &', '/root', '/bin/sh'),
  user('daemon', 1, 1, 'Owner of many system processes', '/root', '/usr/sbin/nologin'),
  user('operator', 2, 5, 'System &', '/', '/usr/sbin/nologin'),
  user('bin', 3, 7, 'Binaries Commands and Source', '/', '/usr/sbin/nologin'),
  user('nobody', 65534, 65534, 'Unprivileged user', '/nonexistent', '/usr/sbin/nologin'),
];

function user(name: string, uid: number, gid: number, gecos: string, dir: string, shell: string): PasswdEntry {
  return { pw_name: name, pw_passwd: '*', pw_uid: uid, pw_gid: gid, pw_change: 0, pw_class: '', pw_gecos: gecos, pw_dir: dir, pw_shell: shell, pw_expire: 0 };
}

export const PWF = {
  NAME: 0x1, PASSWD: 0x2, UID: 0x4, GID: 0x8, CHANGE: 0x10, CLASS: 0x20, GECOS: 0x40, DIR: 0x80,
  SHELL: 0x100, EXPIRE: 0x200, FILES: 0x1000,
} as const;

export const PWD_CMDS = ['getpwent', 'getpwent_r', 'getpwnam', 'getpwnam_r', 'getpwuid', 'getpwuid_r', 'setpassent', 'setpwent', 'endpwent'] as const;
export const PWD_FIELDS = ['pw_name', 'pw_passwd', 'pw_uid', 'pw_gid', 'pw_change', 'pw_class', 'pw_gecos', 'pw_dir', 'pw_shell', 'pw_expire'] as const;

type Row = PasswdEntry & { name: string; id: number };

const parsed = new WeakMap<object, Row[]>();
const defaultRows: Row[] = DEFAULT_USERS.map((u) => ({ ...u, name: u.pw_name, id: u.pw_uid }));

function database(config: unknown): Row[] {
  if (typeof config === 'object' && config !== null) {
    const hit = parsed.get(config);
    if (hit) return hit;
  }
  const list = configList(config, 'users');
  if (!list) return defaultRows;
  const rows = list.filter((r) => typeof r.pw_name === 'string' && r.pw_name !== '').map((r): Row => {
    const u: PasswdEntry = {
      pw_name: cfgString(r, 'pw_name'), pw_passwd: cfgString(r, 'pw_passwd'),
      pw_uid: cfgInt(r, 'pw_uid', 65534) >>> 0, pw_gid: cfgInt(r, 'pw_gid', 65534) >>> 0,
      pw_change: cfgInt(r, 'pw_change', 0), pw_class: cfgString(r, 'pw_class'), pw_gecos: cfgString(r, 'pw_gecos'),
      pw_dir: cfgString(r, 'pw_dir'), pw_shell: cfgString(r, 'pw_shell'), pw_expire: cfgInt(r, 'pw_expire', 0),
    };
    return { ...u, name: u.pw_name, id: u.pw_uid };
  });
  parsed.set(config as object, rows);
  return rows;
}

function pack(u: Row, allowed: (f: string) => boolean, out: NvList): void {
  let fields = PWF.FILES | PWF.UID | PWF.GID | PWF.CHANGE | PWF.EXPIRE;
  if (u.pw_name) fields |= PWF.NAME;
  if (u.pw_passwd) fields |= PWF.PASSWD;
  if (u.pw_class) fields |= PWF.CLASS;
  if (u.pw_gecos) fields |= PWF.GECOS;
  if (u.pw_dir) fields |= PWF.DIR;
  if (u.pw_shell) fields |= PWF.SHELL;
  const str = (f: keyof PasswdEntry, bit: number, v: string): void => {
    if (allowed(f)) out.addString(f, v);
    else { out.addString(f, ''); fields &= ~bit; }
  };
  const num = (f: keyof PasswdEntry, bit: number, v: number, blank: number): void => {
    if (allowed(f)) out.addNumber(f, v);
    else { out.addNumber(f, blank); fields &= ~bit; }
  };
  // cap_pwd.c's order.
  str('pw_name', PWF.NAME, u.pw_name);
  num('pw_uid', PWF.UID, u.pw_uid, -1);
  num('pw_gid', PWF.GID, u.pw_gid, -1);
  num('pw_change', PWF.CHANGE, u.pw_change, 0);
  str('pw_passwd', PWF.PASSWD, u.pw_passwd);
  str('pw_class', PWF.CLASS, u.pw_class);
  str('pw_gecos', PWF.GECOS, u.pw_gecos);
  str('pw_dir', PWF.DIR, u.pw_dir);
  str('pw_shell', PWF.SHELL, u.pw_shell);
  num('pw_expire', PWF.EXPIRE, u.pw_expire, 0);
  out.addNumber('pw_fields', fields);
}

export const PWD_SPEC: GetentSpec<Row> = {
  service: 'system.pwd',
  entities: 'users',
  idKey: 'uid',
  cmds: PWD_CMDS,
  fields: PWD_FIELDS,
  entCmds: ['getpwent', 'getpwent_r'],
  byNameCmds: ['getpwnam', 'getpwnam_r'],
  byIdCmds: ['getpwuid', 'getpwuid_r'],
  rewindCmds: ['setpwent', 'endpwent'],
  stayopenCmd: 'setpassent',
  database,
  pack,
};

export const service: CasperService = {
  name: 'system.pwd',
  limit: (oldLimits, newLimits) => getentLimit('users', oldLimits, newLimits),
  command: (cmd, limits, request, ctx) => getentCommand(PWD_SPEC, cmd, limits, request, ctx),
  fromManifest: (grant) => getentFromManifest(PWD_SPEC, grant),
};

export default service;

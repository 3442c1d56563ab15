/**
 * system.grp: FreeBSD's cap_grp (lib/libcasper/services/cap_grp/cap_grp.c) over a virtual group
 * database. The host's /etc/group is never read.
 *
 * Requests, exactly as cap_grp.c's client sends them:
 *   { cmd: "getgrent" | "getgrent_r" }
 *   { cmd: "getgrnam" | "getgrnam_r", name: string }
 *   { cmd: "getgrgid" | "getgrgid_r", gid: number }
 *   { cmd: "setgroupent", stayopen: bool }
 *   { cmd: "setgrent" | "endgrent" }
 * Reply of the lookups, when an allowed entry was found (else an empty reply = not found):
 *   { gr_name: string, gr_passwd: string, gr_gid: number,
 *     "gr_mem[0]": string, …, "gr_mem[N-1]": string, gr_nmem: number }
 *   A field outside the "fields" limit is blanked: "" for gr_name/gr_passwd, (uint64_t)-1 for
 *   gr_gid; gr_mem/gr_nmem are left out when gr_mem is not allowed or the group has no members.
 * Reply of setgroupent/setgrent/endgrent: empty; all three rewind this channel's cursor.
 * Errors: ENOTCAPABLE for a cmd outside the "cmds" limit; EINVAL for an unknown cmd or a
 * missing argument.
 *
 * Limits: see getent.ts ({ cmds, fields: gr_name|gr_passwd|gr_gid|gr_mem, groups }); groups are
 * gid numbers or name strings. FreeBSD's cap_grp_limit_groups keys names "gid%u" too (which can
 * collide with the gids' keys); the service ignores key names, so both spellings work, and
 * fromManifest uses "gid%u" for gids and "name%u" for names.
 * Manifest grant: { cmds: [getgrnam, …], fields: [gr_name, …], groups: [wheel, 0, …] };
 * {} = no limits.
 *
 * Operator config (ctx.config): { groups: [{ gr_name, gr_passwd, gr_gid, gr_mem: [names] }] },
 * in getgrent order; absent → DEFAULT_GROUPS.
 *
 * Deviations from FreeBSD, on purpose: as pwd.ts (EINVAL for missing arguments, per-channel
 * cursor, setgroupent/setgrent always succeed).
 */
import type { NvList } from '../nvlist.js';
import type { CasperService } from '../service.js';
import { isRecord } from './common.js';
import { cfgInt, cfgString, configList, getentCommand, getentFromManifest, getentLimit, type GetentSpec } from './getent.js';

export interface GroupEntry {
  gr_name: string;
  gr_passwd: string;
  gr_gid: number;
  gr_mem: string[];
}

/** The database when the operator configures none: FreeBSD's first groups, and nobody. */
export const DEFAULT_GROUPS: readonly GroupEntry[] = [
  { gr_name: 'wheel', gr_passwd: '*', gr_gid: 0, gr_mem: ['root'] },
  { gr_name: 'daemon', gr_passwd: '*', gr_gid: 1, gr_mem: [] },
  { gr_name: 'kmem', gr_passwd: '*', gr_gid: 2, gr_mem: [] },
  { gr_name: 'sys', gr_passwd: '*', gr_gid: 3, gr_mem: [] },
  { gr_name: 'tty', gr_passwd: '*', gr_gid: 4, gr_mem: [] },
  { gr_name: 'operator', gr_passwd: '*', gr_gid: 5, gr_mem: ['root'] },
  { gr_name: 'nogroup', gr_passwd: '*', gr_gid: 65533, gr_mem: [] },
  { gr_name: 'nobody', gr_passwd: '*', gr_gid: 65534, gr_mem: [] },
];

export const GRP_CMDS = ['getgrent', 'getgrent_r', 'getgrnam', 'getgrnam_r', 'getgrgid', 'getgrgid_r', 'setgroupent', 'setgrent', 'endgrent'] as const;
export const GRP_FIELDS = ['gr_name', 'gr_passwd', 'gr_gid', 'gr_mem'] as const;

type Row = GroupEntry & { name: string; id: number };

const parsed = new WeakMap<object, Row[]>();
const defaultRows: Row[] = DEFAULT_GROUPS.map((g) => ({ ...g, gr_mem: [...g.gr_mem], name: g.gr_name, id: g.gr_gid }));

function database(config: unknown): Row[] {
  if (typeof config === 'object' && config !== null) {
    const hit = parsed.get(config);
    if (hit) return hit;
  }
  const list = configList(config, 'groups');
  if (!list) return defaultRows;
  const rows = list.filter((r) => typeof r.gr_name === 'string' && r.gr_name !== '').map((r): Row => {
    const mem = Array.isArray(r.gr_mem) ? r.gr_mem.filter((m): m is string => typeof m === 'string' && m !== '') : [];
    const g: GroupEntry = { gr_name: cfgString(r, 'gr_name'), gr_passwd: cfgString(r, 'gr_passwd'), gr_gid: cfgInt(r, 'gr_gid', 65534) >>> 0, gr_mem: mem };
    return { ...g, name: g.gr_name, id: g.gr_gid };
  });
  if (isRecord(config)) parsed.set(config, rows);
  return rows;
}

function pack(g: Row, allowed: (f: string) => boolean, out: NvList): void {
  out.addString('gr_name', allowed('gr_name') ? g.gr_name : '');
  out.addString('gr_passwd', allowed('gr_passwd') ? g.gr_passwd : '');
  out.addNumber('gr_gid', allowed('gr_gid') ? g.gr_gid : -1);
  if (allowed('gr_mem') && g.gr_mem.length > 0) {
    g.gr_mem.forEach((m, i) => out.addString(`gr_mem[${i}]`, m));
    out.addNumber('gr_nmem', g.gr_mem.length);
  }
}

export const GRP_SPEC: GetentSpec<Row> = {
  service: 'system.grp',
  entities: 'groups',
  idKey: 'gid',
  cmds: GRP_CMDS,
  fields: GRP_FIELDS,
  entCmds: ['getgrent', 'getgrent_r'],
  byNameCmds: ['getgrnam', 'getgrnam_r'],
  byIdCmds: ['getgrgid', 'getgrgid_r'],
  rewindCmds: ['setgrent', 'endgrent'],
  stayopenCmd: 'setgroupent',
  database,
  pack,
};

export const service: CasperService = {
  name: 'system.grp',
  limit: (oldLimits, newLimits) => getentLimit('groups', oldLimits, newLimits),
  command: (cmd, limits, request, ctx) => getentCommand(GRP_SPEC, cmd, limits, request, ctx),
  fromManifest: (grant) => getentFromManifest(GRP_SPEC, grant),
};

export default service;

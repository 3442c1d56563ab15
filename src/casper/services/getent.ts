/**
 * The engine system.pwd and system.grp share: FreeBSD's cap_pwd.c and cap_grp.c are the same
 * service twice (commands, fields and entries limited by nested nvlists), so this file holds the
 * limit rules and the command loop once, and pwd.ts / grp.ts supply the database and the packing.
 *
 * Limits (both services), as pwd_limit/grp_limit:
 *   { cmds:   { <cmd>: null, ... },            allowed commands
 *     fields: { <field>: null, ... },          fields sent in clear (others blanked)
 *     users | groups: { <any key>: number (uid/gid) | string (name), ... } }
 * - a category the old limits have must be in the new ones (else ENOTCAPABLE);
 * - each new cmd/field/entry must be allowed by the old limits (else ENOTCAPABLE);
 * - a top-level pair that is not one of the three nvlists, or a cmd/field that is not NULL, or an
 *   entry that is neither number nor string: EINVAL;
 * - an absent category allows everything; an EMPTY category allows nothing.
 * The key names inside users/groups carry no meaning (FreeBSD's clients use "uid%u"/"name%u" and
 * "gid%u"); the value's type says whether it is an id or a name. An entry is allowed when its
 * name OR its id is listed.
 *
 * Commands: a cmd outside "cmds" → ENOTCAPABLE (checked first, even for unknown cmds); unknown
 * cmd → EINVAL. A lookup whose entry is not allowed (or absent) answers an empty reply: the
 * client reads "not found" (NULL, errno untouched). The enumeration cursor (…ent) is per channel
 * (ctx.channelState) and skips entries that are not allowed.
 */
import { NvList } from '../nvlist.js';
import { CasperError, type ServiceContext } from '../service.js';
import { ERRNO } from '../../wasi/constants.js';
import { asUint, GrantError, checkKeys, isRecord, listOf, nullSet } from './common.js';

/** One database entry as the engine sees it. */
export interface Entry {
  name: string;
  id: number;
}

/** What pwd.ts and grp.ts plug in. */
export interface GetentSpec<E extends Entry> {
  service: string;
  /** "users" or "groups". */
  entities: 'users' | 'groups';
  /** Key of a numeric entry in the limits the manifest makes: "uid" / "gid". */
  idKey: 'uid' | 'gid';
  /** Every command the service knows. */
  cmds: readonly string[];
  /** Every field a limit may name. */
  fields: readonly string[];
  /** The enumeration commands (getpwent, getpwent_r). */
  entCmds: readonly string[];
  /** Lookups by name (getpwnam, getpwnam_r) and by id (getpwuid, getpwuid_r). */
  byNameCmds: readonly string[];
  byIdCmds: readonly string[];
  /** Rewind commands without arguments (setpwent, endpwent) and the stayopen one (setpassent). */
  rewindCmds: readonly string[];
  stayopenCmd: string;
  /** The database the operator configured (or the default one). */
  database(config: unknown): readonly E[];
  /** Adds the entry's fields to the reply, blanking those `allowedField` refuses. */
  pack(entry: E, allowedField: (field: string) => boolean, out: NvList): void;
}

function category(limits: NvList | null, name: string): NvList | undefined {
  return limits?.getNvlist(name);
}

/** pwd_allowed_cmd: no limits, or no "cmds" category, allows every command. */
export function allowedCmd(limits: NvList | null, cmd: string): boolean {
  const c = category(limits, 'cmds');
  return c === undefined || c.exists(cmd, 'null');
}

/** pwd_allowed_field. */
export function allowedField(limits: NvList | null, field: string): boolean {
  const c = category(limits, 'fields');
  return c === undefined || c.exists(field, 'null');
}

/** pwd_allowed_user: `id` -1 and `name` null stand for "not given". */
export function allowedEntity(limits: NvList | null, entities: string, name: string | null, id: number): boolean {
  const c = category(limits, entities);
  if (c === undefined) return true;
  for (const [, v] of c.pairs) {
    if (v.type === 'number' && id !== -1 && v.value === BigInt(id)) return true;
    if (v.type === 'string' && name !== null && v.value === name) return true;
  }
  return false;
}

/** The limit function both services share (pwd_limit / grp_limit). */
export function getentLimit(entities: string, oldLimits: NvList | null, newLimits: NvList): number {
  for (const cat of ['cmds', 'fields', entities]) {
    if (oldLimits?.exists(cat, 'nvlist') && !newLimits.exists(cat, 'nvlist')) return ERRNO.NOTCAPABLE;
  }
  for (const [name, v] of newLimits.pairs) {
    if (v.type !== 'nvlist') return ERRNO.INVAL;
    const sub = v.value;
    if (name === 'cmds' || name === 'fields') {
      for (const [n, x] of sub.pairs) {
        if (x.type !== 'null') return ERRNO.INVAL;
        if (!(name === 'cmds' ? allowedCmd(oldLimits, n) : allowedField(oldLimits, n))) return ERRNO.NOTCAPABLE;
      }
    } else if (name === entities) {
      for (const [, x] of sub.pairs) {
        let allowed: boolean;
        if (x.type === 'number') allowed = allowedEntity(oldLimits, entities, null, asUint(x.value));
        else if (x.type === 'string') allowed = allowedEntity(oldLimits, entities, x.value, -1);
        else return ERRNO.INVAL;
        if (!allowed) return ERRNO.NOTCAPABLE;
      }
    } else {
      return ERRNO.INVAL;
    }
  }
  return 0;
}

/** Runs one command of a getent service. */
export function getentCommand<E extends Entry>(
  spec: GetentSpec<E>, cmd: string, limits: NvList | null, request: NvList, ctx: ServiceContext,
): NvList {
  if (!allowedCmd(limits, cmd)) throw new CasperError(ERRNO.NOTCAPABLE, `${cmd} is not allowed on this channel`);
  const db = spec.database(ctx.config);
  const out = new NvList();
  const cursorKey = `${spec.service}.cursor`;
  const pack = (e: E | undefined): boolean => {
    if (e === undefined) return true; // end of the database, or not found: an empty reply
    if (!allowedEntity(limits, spec.entities, e.name, e.id)) return false;
    spec.pack(e, (f) => allowedField(limits, f), out);
    return true;
  };

  if (spec.entCmds.includes(cmd)) {
    let i = typeof ctx.channelState.get(cursorKey) === 'number' ? ctx.channelState.get(cursorKey) as number : 0;
    for (;;) {
      const e = db[i];
      if (e !== undefined) i++;
      if (pack(e)) break;
    }
    ctx.channelState.set(cursorKey, i);
  } else if (spec.byNameCmds.includes(cmd)) {
    const name = request.getString('name');
    if (name === undefined) throw new CasperError(ERRNO.INVAL, 'missing string "name"');
    pack(db.find((e) => e.name === name));
  } else if (spec.byIdCmds.includes(cmd)) {
    const id = request.getNumber(spec.idKey);
    if (id === undefined) throw new CasperError(ERRNO.INVAL, `missing number "${spec.idKey}"`);
    const want = asUint(id);
    pack(db.find((e) => e.id === want));
  } else if (spec.rewindCmds.includes(cmd)) {
    ctx.channelState.set(cursorKey, 0);
  } else if (cmd === spec.stayopenCmd) {
    if (request.getBool('stayopen') === undefined) throw new CasperError(ERRNO.INVAL, 'missing bool "stayopen"');
    ctx.channelState.set(cursorKey, 0);
  } else {
    throw new CasperError(ERRNO.INVAL, `unknown command ${cmd}`);
  }
  return out;
}

/** The manifest grant of a getent service: { cmds: [...], fields: [...], users|groups: [...] }. */
export function getentFromManifest(spec: GetentSpec<Entry>, grant: Record<string, unknown>): NvList | null {
  checkKeys(spec.service, grant, ['cmds', 'fields', spec.entities]);
  if (Object.keys(grant).length === 0) return null;
  const limits = new NvList();
  const words = (key: 'cmds' | 'fields', known: readonly string[]): void => {
    if (!(key in grant)) return;
    const items = listOf(spec.service, key, grant[key]);
    for (const w of items) {
      if (typeof w !== 'string' || !known.includes(w)) {
        throw new GrantError(spec.service, `unknown ${key === 'cmds' ? 'command' : 'field'} ${JSON.stringify(w)} in ${key}; ${key} are ${known.join(', ')}`);
      }
    }
    limits.addNvlist(key, nullSet(items as string[]));
  };
  words('cmds', spec.cmds);
  words('fields', spec.fields);
  if (spec.entities in grant) {
    const items = listOf(spec.service, spec.entities, grant[spec.entities]);
    const sub = new NvList();
    let nNames = 0;
    let nIds = 0;
    for (const w of items) {
      if (typeof w === 'number' && Number.isInteger(w) && w >= 0 && w <= 0xfffffffe) {
        sub.addNumber(`${spec.idKey}${nIds++}`, w);
      } else if (typeof w === 'string' && w.length > 0 && !w.includes('\0')) {
        sub.addString(`name${nNames++}`, w);
      } else {
        throw new GrantError(spec.service, `${spec.entities} lists names or ${spec.idKey}s (integers 0..4294967294), not ${JSON.stringify(w)}`);
      }
    }
    limits.addNvlist(spec.entities, sub);
  }
  return limits;
}

/** Reads a list of records from operator config; `undefined` when the key is absent or malformed. */
export function configList(config: unknown, key: string): Record<string, unknown>[] | undefined {
  if (!isRecord(config) || !Array.isArray(config[key])) return undefined;
  return (config[key] as unknown[]).filter(isRecord);
}

/** A config field as a string ('' when absent). */
export function cfgString(r: Record<string, unknown>, key: string): string {
  const v = r[key];
  return typeof v === 'string' ? v : typeof v === 'number' ? String(v) : '';
}

/** A config field as a number (`dflt` when absent or not a finite integer). */
export function cfgInt(r: Record<string, unknown>, key: string, dflt: number): number {
  const v = r[key];
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^-?\d+$/.test(v) ? Number(v) : NaN;
  return Number.isSafeInteger(n) ? n : dflt;
}

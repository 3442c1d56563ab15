/**
 * Helpers shared by the Casper services: errors for manifest grants, reading operator config,
 * and the small nvlist idioms libcasper's services use (prefix keys, NULL-pair sets).
 */
import { NvList } from '../nvlist.js';
import { CasperError } from '../service.js';
import { ERRNO } from '../../wasi/constants.js';

/**
 * A manifest grant that does not describe valid limits. `fromManifest` throws it; the message
 * says what to change (the manifest reader reports it at the grant's path).
 */
export class GrantError extends Error {
  constructor(readonly service: string, message: string) {
    super(`${service}: ${message}`);
    this.name = 'GrantError';
  }
}

/** A plain object (YAML mapping), not an array or null. */
export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Refuses keys of a grant other than `allowed` (`none` explains an empty `allowed`). */
export function checkKeys(service: string, grant: Record<string, unknown>, allowed: readonly string[], none = 'this service takes no limits'): void {
  for (const k of Object.keys(grant)) {
    if (!allowed.includes(k)) {
      throw new GrantError(service, allowed.length
        ? `unknown key "${k}"; a grant may have ${allowed.join(', ')}`
        : `unknown key "${k}"; ${none}, grant it as {}`);
    }
  }
}

/** A grant value that must be a list (a single scalar is taken as a one-item list). */
export function listOf(service: string, key: string, v: unknown): unknown[] {
  if (Array.isArray(v)) return v;
  if (typeof v === 'string' || typeof v === 'number') return [v];
  throw new GrantError(service, `${key} is a list, e.g. ${key}: [a, b]`);
}

/** A set of NULL pairs (pwd/grp "cmds" and "fields", fileargs names). */
export function nullSet(names: Iterable<string>): NvList {
  const l = new NvList();
  for (const n of names) if (!l.exists(n)) l.addNull(n);
  return l;
}

/** The values of the pairs whose names start with `prefix` (dns "type%u", "family%u"). */
export function prefixed(list: NvList, prefix: string): { name: string; value: NvList['pairs'][number][1] }[] {
  return list.pairs.filter(([n]) => n.startsWith(prefix)).map(([name, value]) => ({ name, value }));
}

/** A u64 from the wire as a C `int` (two's complement of the low 32 bits). */
export function asInt(v: bigint): number {
  return Number(BigInt.asIntN(32, v));
}

/** A u64 from the wire as a C `unsigned int`. */
export function asUint(v: bigint): number {
  return Number(BigInt.asUintN(32, v));
}

/** The errno of anything a ctx callback threw: CasperError's, an `errno` number property, else EIO. */
export function errnoOf(e: unknown): number {
  if (e instanceof CasperError) return e.errno;
  if (isRecord(e) && typeof e.errno === 'number' && e.errno > 0) return e.errno;
  return ERRNO.IO;
}

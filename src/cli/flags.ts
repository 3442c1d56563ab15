/** The run flags (--dir, --env, limits) and the manifest they stand for. */
import path from 'node:path';
import type { Limits } from '../host/limits.js';
import { expandRights } from '../manifest/vocabulary.js';
import type { DirEntryGrant, Manifest, SocketGrant } from '../manifest/types.js';
import { parseSocketAddress } from '../host/net/address.js';
import { parseBytes, parseDuration } from '../host/units.js';
import { TYPE_RIGHTS } from '../wasi/rights.js';

/** A command-line mistake: printed with the usage, exit status 2. */
export class UsageError extends Error {}

/** Parses "HOST::GUEST[:ro]" (or "HOST") into a host, a guest path and a read-only flag. */
export function parseDir(spec: string): { host: string; guest: string; readonly: boolean } {
  let host = spec, guest = spec, readonly = false;
  const sep = spec.indexOf('::');
  if (sep >= 0) {
    host = spec.slice(0, sep);
    guest = spec.slice(sep + 2);
  }
  if (guest.endsWith(':ro')) { guest = guest.slice(0, -3); readonly = true; } else if (guest.endsWith(':rw')) guest = guest.slice(0, -3);
  if (sep < 0) host = guest;
  if (!host || !guest) throw new UsageError(`--dir ${spec}: expected HOST::GUEST[:ro], e.g. --dir ./data::/data:ro`);
  if (!guest.startsWith('/')) guest = '/' + guest.replace(/^\.\//, '');
  return { host, guest, readonly };
}

/** Parses KEY=VALUE items. */
export function parseEnv(items: string[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const item of items) {
    const eq = item.indexOf('=');
    if (eq <= 0) throw new UsageError(`--env ${item}: expected KEY=VALUE`);
    env[item.slice(0, eq)] = item.slice(eq + 1);
  }
  return env;
}

/** The rights a --dir grants: everything a directory can hold, or rpath for :ro. */
export function dirGrant(d: { host: string; guest: string; readonly: boolean }): DirEntryGrant {
  const names = d.readonly ? ['rpath'] : ['CAP_ALL'];
  const mask = expandRights(names).rights;
  // Relative to where the command runs, even when a manifest elsewhere is given too.
  return {
    guest: d.guest, source: { kind: 'host', path: path.resolve(d.host) }, initOnly: false,
    rights: { base: mask & TYPE_RIGHTS.directory.base, inheriting: mask & TYPE_RIGHTS.directory.inheriting, names },
  };
}

/** The values of the limit flags. */
export interface LimitFlags { timeout?: string | undefined; cpu?: string | undefined; memory?: string | undefined; 'output-limit'?: string | undefined }

/** Parses --timeout, --cpu, --memory and --output-limit. */
export function parseLimitFlags(v: LimitFlags): Partial<Limits> {
  try {
    const out: Partial<Limits> = {};
    if (v.timeout !== undefined) out.wallMs = parseDuration(v.timeout, '--timeout');
    if (v.cpu !== undefined) out.cpuMs = parseDuration(v.cpu, '--cpu');
    if (v.memory !== undefined) out.memoryBytes = parseBytes(v.memory, '--memory');
    if (v['output-limit'] !== undefined) out.outputBytes = parseBytes(v['output-limit'], '--output-limit');
    return out;
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

/** Parses --listen ADDR (TCP host:port, [v6]:port, or a UNIX path) into a socket grant. */
export function parseListen(spec: string): SocketGrant {
  try {
    const a = parseSocketAddress(spec);
    return { bind: a.kind === 'unix' ? path.resolve(a.path) : spec, type: 'stream' };
  } catch (e) {
    throw new UsageError(`--listen ${spec}: ${(e as Error).message}`);
  }
}

/** Adds what the flags say to a manifest (flags win), as `capsa manifest from-flags` prints it. */
export function applyFlags(m: Manifest, f: { module?: string | undefined; args?: string[] | undefined; dirs: string[]; env: string[]; limits: Partial<Limits>; listen?: string[] | undefined }): Manifest {
  const out: Manifest = { ...m, env: { ...m.env, ...parseEnv(f.env) }, limits: { ...m.limits, ...f.limits }, dirs: [...m.dirs] };
  // Listening sockets come after the manifest's own, as descriptors after the directories.
  if (f.listen?.length) out.sockets = [...(m.sockets ?? []), ...f.listen.map(parseListen)];
  for (const d of f.dirs.map(parseDir)) {
    out.dirs = out.dirs.filter((x) => x.guest !== d.guest);
    out.dirs.push(dirGrant(d));
  }
  if (f.module !== undefined) out.module = f.module;
  if (f.args !== undefined && f.args.length) out.args = f.args;
  return out;
}

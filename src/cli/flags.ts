/** The run flags (--dir, --env, limits) and the manifest they stand for. */
import fs from 'node:fs';
import path from 'node:path';
import type { Limits } from '../host/limits.js';
import { expandRights } from '../manifest/vocabulary.js';
import type { DirEntryGrant, Manifest, SocketGrant } from '../manifest/types.js';
import { parseSocketAddress } from '../host/net/address.js';
import { parseBytes, parseDuration } from '../host/units.js';
import { TYPE_RIGHTS } from '../wasi/rights.js';

/** A command-line mistake: printed with the usage, exit status 2. */
export class UsageError extends Error {}

/** A file or module named on the command line that cannot be read or used: exit status 1. */
export class InputError extends Error {}

/** The options of a command, as node:util's parseArgs takes them. */
export type OptionSpec = Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean; default?: string[] | boolean }>;

/**
 * Splits a run's command line the way wasmtime does: capsa's options come before the module,
 * and everything after the module is the guest's ("capsa run m.wasm --exit=3" passes --exit=3 on).
 * The documented form "m.wasm --dir X -- ARGS" keeps working: when every token between the
 * module and a "--" is one of capsa's options, those are capsa's and what follows "--" the guest's.
 * Returns the tokens for parseArgs: capsa's options, then "--", the module and the guest's args.
 */
export function splitGuestArgv(argv: string[], options: OptionSpec): string[] {
  const byShort = new Map(Object.entries(options).filter(([, o]) => o.short).map(([n, o]) => [o.short!, n]));
  /** How many tokens the option at argv[i] takes (1 or 2), or 0 when it is not one of ours. */
  const optionAt = (i: number): number => {
    const t = argv[i]!;
    const name = t.startsWith('--') ? t.slice(2).split('=')[0]! : t.length === 2 ? byShort.get(t[1]!) : undefined;
    const o = name === undefined ? undefined : options[name];
    if (!o) return 0;
    return o.type === 'string' && !t.includes('=') ? 2 : 1;
  };
  const ours: string[] = [];
  let i = 0;
  while (i < argv.length) {
    const t = argv[i]!;
    if (t === '--') return [...ours, ...argv.slice(i)];
    if (!t.startsWith('-') || t === '-') break;
    // Not ours: left for parseArgs to name as unknown.
    const n = Math.max(1, optionAt(i));
    ours.push(...argv.slice(i, i + n));
    i += n;
  }
  if (i >= argv.length) return ours;
  const module = argv[i]!;
  const rest = argv.slice(i + 1);
  const dash = rest.indexOf('--');
  if (dash >= 0) {
    const between: string[] = [];
    let j = 0;
    while (j < dash) {
      const n = optionAt(i + 1 + j);
      if (n === 0 || j + n > dash) break;
      between.push(...rest.slice(j, j + n));
      j += n;
    }
    if (j === dash) return [...ours, ...between, '--', module, ...rest.slice(dash + 1)];
  }
  return [...ours, '--', module, ...rest];
}

/**
 * Parses "HOST::GUEST[:ro]" (or "HOST", mounted at the same path) strictly: GUEST is absolute
 * without "..", and ":ro" (lower case, once) is the only mode. Anything else is a UsageError
 * that says what to write.
 */
export function parseDir(spec: string): { host: string; guest: string; readonly: boolean } {
  const bad = (why: string) => new UsageError(`--dir ${spec}: ${why}; write HOST::GUEST or HOST::GUEST:ro, e.g. --dir ./data::/data:ro`);
  const sep = spec.indexOf('::');
  let host = sep >= 0 ? spec.slice(0, sep) : spec;
  let guest = sep >= 0 ? spec.slice(sep + 2) : undefined;
  let readonly = false;
  let rest = guest ?? host;
  if (rest.endsWith(':ro')) { rest = rest.slice(0, -3); readonly = true; }
  else if (/:ro$/i.test(rest)) throw bad(`the mode is written ":ro", in lower case`);
  if (guest === undefined) host = rest; else guest = rest;
  if (host === '') throw bad('HOST is missing');
  if (guest === '') throw bad(spec.endsWith('::ro') ? 'GUEST is missing ("::ro" is not a mode: the mode follows GUEST, as in ::/data:ro)' : 'GUEST is missing');
  if (guest !== undefined && guest.includes(':')) throw bad(`the guest path ${JSON.stringify(guest)} has a ":"; the only mode is ":ro", at the end`);
  if (guest === undefined) guest = '/' + host.split('/').filter((p) => p !== '' && p !== '.').join('/');
  else if (!guest.startsWith('/')) throw bad(`the guest path ${JSON.stringify(guest)} is relative; it must be absolute, like /data`);
  if (guest.split('/').includes('..')) throw bad(`the guest path ${JSON.stringify(guest)} contains ".."`);
  return { host, guest: '/' + guest.split('/').filter((p) => p !== '' && p !== '.').join('/'), readonly };
}

/** Why a host directory cannot be mounted ("does not exist", "is not a directory"), or undefined. */
export function hostDirProblem(p: string): string | undefined {
  let st: fs.Stats;
  try {
    st = fs.statSync(p);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ENOENT' ? `${p} does not exist` : `${p} cannot be used: ${(e as Error).message}`;
  }
  return st.isDirectory() ? undefined : `${p} is not a directory`;
}

/** Parses KEY=VALUE items; a bare KEY takes the host's value (wasmtime's --env KEY), or is left out when the host has none. */
export function parseEnv(items: string[], host: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const env: Record<string, string> = {};
  for (const item of items) {
    const eq = item.indexOf('=');
    if (eq === 0 || item === '') throw new UsageError(`--env ${item}: expected KEY=VALUE, or KEY to pass on the host's value`);
    if (eq < 0) {
      const v = host[item];
      if (v !== undefined) env[item] = v;
      continue;
    }
    env[item.slice(0, eq)] = item.slice(eq + 1);
  }
  return env;
}

/** The rights a --dir grants: everything a directory can hold, or rpath (and a read-only mount) for :ro. */
export function dirGrant(d: { host: string; guest: string; readonly: boolean }): DirEntryGrant {
  const names = d.readonly ? ['rpath'] : ['CAP_ALL'];
  const mask = expandRights(names).rights;
  // Relative to where the command runs, even when a manifest elsewhere is given too.
  return {
    guest: d.guest, host: path.resolve(d.host), initOnly: false, readonly: d.readonly,
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

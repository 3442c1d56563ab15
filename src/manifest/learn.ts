/**
 * `capsa learn`: the least manifest a program needs, from the audit of a run (audit: all). Each
 * directory gets the rights its descriptor and the files opened through it used (pledge promises
 * where they cover exactly, Capsicum names otherwise); Casper services only those used, narrowed
 * where the service's commands say how; limits from the observed usage with a stated margin.
 * `capsa manifest diff` uses the same reading of an audit to list what a manifest grants unused.
 */
import type * as YAML from 'yaml';
import { yaml } from './yaml.js';
import type { AuditEvent, RunResult, Usage } from '../host/result.js';
import { formatBytes, formatDuration } from '../host/units.js';
import { capNames, rightByName, TYPE_RIGHTS } from '../wasi/rights.js';
import { manifestToYaml } from './describe.js';
import type { CasperGrants, DirEntryGrant, Manifest } from './types.js';
import { PROMISES } from './vocabulary.js';
import { writesNothing } from './parse.js';

/** What the audit says each grant was used for. */
export interface Usages {
  /** Per granted directory (manifest order): rights used on it and on what was opened through it. */
  dirs: { base: bigint; inheriting: bigint; files: Set<string>; calls: number }[];
  /** Casper services by name: the commands that succeeded. */
  casper: Map<string, Set<string>>;
  /** Refused decisions, as the audit has them. */
  denied: AuditEvent[];
  /** The highest descriptor number seen. */
  maxFd: number;
}

const mask = (names: readonly string[] | undefined): bigint => (names ?? []).reduce((m, n) => m | (rightByName(n) ?? 0n), 0n);
const isCasper = (call: string) => call.startsWith('system.') || call.startsWith('core.');

/**
 * Reads audit events (in order) against the manifest that was run: directory fds are 3.. in
 * manifest order; path_open's openedFd ties each new descriptor to the directory it came from.
 */
export function usagesOf(m: Manifest, events: readonly AuditEvent[]): Usages {
  const u: Usages = { dirs: m.dirs.map(() => ({ base: 0n, inheriting: 0n, files: new Set<string>(), calls: 0 })), casper: new Map(), denied: [], maxFd: 2 };
  // Where each open descriptor came from: its directory's index, and the guest path for files.
  const start = () => new Map<number, { dir: number; path?: string }>(m.dirs.map((_, i) => [3 + i, { dir: i }]));
  let origin = start();
  for (const e of events) {
    // Audits of several runs, one after another: each starts with the directories again.
    if (e.seq === 0) origin = start();
    u.maxFd = Math.max(u.maxFd, e.fd, e.openedFd ?? 0);
    if (e.decision === 'denied') { u.denied.push(e); continue; }
    if (isCasper(e.call)) {
      const [service, cmd] = [e.call.slice(0, e.call.lastIndexOf('.')), e.call.slice(e.call.lastIndexOf('.') + 1)];
      if (!service.startsWith('core.') && e.errno === 0) {
        if (!u.casper.has(service)) u.casper.set(service, new Set());
        u.casper.get(service)!.add(cmd);
      }
      continue;
    }
    const o = origin.get(e.fd);
    if (!o) continue;
    const d = u.dirs[o.dir]!;
    d.calls++;
    // A right used on the directory's own fd is its base; on anything opened through it, inherited.
    if (o.path === undefined) d.base |= mask(e.rightsNeeded);
    else d.inheriting |= mask(e.rightsNeeded);
    if (e.call === 'path_open' && e.openedFd !== undefined) {
      const at = `${o.path ?? m.dirs[o.dir]!.guest}/${e.path ?? ''}`.replace(/\/+/g, '/').replace(/\/\.$/, '');
      d.files.add(at);
      origin.set(e.openedFd, { dir: o.dir, path: at });
    }
  }
  return u;
}

/** Rights as a manifest writes them: promises that lie wholly inside `rights`, then Capsicum names for the rest. */
export function rightsWords(rights: bigint): string[] {
  const words: string[] = [];
  let rest = rights;
  for (const p of ['rpath', 'wpath', 'cpath', 'fattr']) {
    const r = PROMISES[p]!.rights & (TYPE_RIGHTS.directory.base | TYPE_RIGHTS.directory.inheriting);
    if (r !== 0n && (r & ~rights) === 0n) { words.push(p); rest &= ~r; }
  }
  return [...words, ...capNames(rest)];
}

/** How each Casper service's grant narrows to the commands used: the one place a service plugs in. */
const NARROW: Record<string, (grant: Record<string, unknown>, cmds: Set<string>) => Record<string, unknown>> = {
  'system.dns': (grant, cmds) => {
    const types = new Set<string>();
    for (const c of cmds) {
      if (c === 'gethostbyname' || c === 'getaddrinfo') types.add('NAME2ADDR');
      if (c === 'gethostbyaddr' || c === 'getnameinfo') types.add('ADDR2NAME');
    }
    const given = Array.isArray(grant['types']) ? (grant['types'] as string[]).map((t) => t.toUpperCase()) : undefined;
    const kept = [...types].filter((t) => !given || given.includes(t));
    return kept.length ? { ...grant, types: kept } : grant;
  },
};

/** Margins applied to observed usage (capped at the limits the run had), stated in the learned manifest's comments. */
export const LEARN_MARGIN = { time: 4, minTimeMs: 2000, memory: 2, output: 2, minOutputBytes: 64 << 10, fds: 2, minFds: 16 } as const;

/** What a run observed, besides its audit. */
export interface Observed {
  usage: Usage;
  outputBytes: number;
  exitCode?: number | undefined;
}

/** What a run observed, from its result: the larger of its two outputs. */
export function observedOf(r: RunResult): Observed {
  return { usage: r.usage, outputBytes: Math.max(r.stdout.length, r.stderr.length), exitCode: r.exitCode };
}

/**
 * Widens usages by what a run under a learned manifest was refused for want of a right the
 * original grant held: a program that asks path_open for fixed rights (rather than for what the
 * directory passes on, as wasi-libc does) needs them inheritable. Returns whether anything was added.
 */
export function widenByRefusals(given: Manifest, u: Usages, refused: readonly AuditEvent[]): boolean {
  let added = false;
  for (const e of refused) {
    const i = e.fd - 3;
    const d = given.dirs[i];
    if (!d || e.errno !== 76) continue;
    const want = mask(e.rightsNeeded) & (d.rights.base | d.rights.inheriting);
    const used = u.dirs[i]!;
    if (want & ~(used.base | used.inheriting)) { used.inheriting |= want; added = true; }
  }
  return added;
}

/** The least manifest for `given` (the effective manifest that was run) from what the run used. */
export function learnManifest(given: Manifest, u: Usages, seen: Observed): Manifest {
  const dirs: DirEntryGrant[] = [];
  given.dirs.forEach((d, i) => {
    const used = u.dirs[i]!;
    const all = (used.base | used.inheriting) & (d.rights.base | d.rights.inheriting);
    if (all === 0n) return;
    const names = rightsWords(all);
    const rights = { base: all & TYPE_RIGHTS.directory.base, inheriting: all & TYPE_RIGHTS.directory.inheriting, names };
    dirs.push({ ...d, rights, readonly: writesNothing(rights) });
  });
  const casper: CasperGrants = {};
  for (const [service, cmds] of u.casper) {
    const grant = given.casper[service];
    if (grant === undefined) continue;
    casper[service] = NARROW[service]?.(grant, cmds) ?? grant;
  }
  const round = (n: number, step: number) => Math.ceil(n / step) * step;
  // Never above what the run was given: the margin must not carry the manifest over a policy's maxima.
  const atMost = (n: number, given: number | undefined) => (given === undefined ? n : Math.min(n, given));
  const g = given.limits;
  const wall = atMost(Math.max(LEARN_MARGIN.minTimeMs, round(seen.usage.wallMs * LEARN_MARGIN.time, 100)), g.wallMs);
  const cpu = atMost(Math.max(LEARN_MARGIN.minTimeMs, round(seen.usage.cpuMs * LEARN_MARGIN.time, 100)), g.cpuMs);
  return {
    ...(given.module !== undefined ? { module: given.module } : {}),
    args: given.args, env: given.env, ...(given.argdata ? { argdata: given.argdata } : {}),
    dirs,
    limits: {
      wallMs: wall, cpuMs: cpu,
      memoryBytes: atMost(round(Math.max(seen.usage.peakMemoryBytes, 65536) * LEARN_MARGIN.memory, 1 << 20), g.memoryBytes),
      outputBytes: atMost(Math.max(LEARN_MARGIN.minOutputBytes, round(seen.outputBytes * LEARN_MARGIN.output, 1024)), g.outputBytes),
      fds: atMost(Math.max(LEARN_MARGIN.minFds, (u.maxFd + 1) * LEARN_MARGIN.fds), g.fds),
    },
    casper,
    ...(given.stdio ? { stdio: given.stdio } : {}),
  };
}

/** The learned manifest as YAML, with comments saying why each grant is there. */
export function learnedYaml(learned: Manifest, given: Manifest, u: Usages, seen: Observed, what: string): string {
  // Read back, so that every part is a node a comment can be put on.
  const doc = yaml().parseDocument(manifestToYaml(learned));
  const root = doc.contents as YAML.YAMLMap;
  doc.commentBefore = ` Learned by capsa learn from ${what} (exit ${seen.exitCode ?? '?'}): only what the run used is granted.`
    + `\n Re-run with: capsa run --manifest FILE; compare with: capsa manifest diff FILE --audit run.jsonl`;
  const dirs = root.get('dirs') as YAML.YAMLSeq | undefined;
  let j = 0;
  given.dirs.forEach((d, i) => {
    const used = u.dirs[i]!;
    if ((used.base | used.inheriting) === 0n) return;
    const node = dirs?.items[j++] as YAML.YAMLMap | undefined;
    if (!node) return;
    const files = [...used.files];
    node.commentBefore = ` ${d.guest}: ${used.calls} calls used ${learned.dirs[j - 1]!.rights.names.join(', ')}`
      + (files.length === 1 ? `; only ${files[0]} was opened` : files.length ? `; ${files.length} files opened` : '');
  });
  const dropped = given.dirs.filter((_, i) => (u.dirs[i]!.base | u.dirs[i]!.inheriting) === 0n).map((d) => d.guest);
  if (dropped.length && dirs) dirs.comment = ` not granted (unused): ${dropped.join(', ')}`;
  const limits = root.get('limits') as YAML.YAMLMap | undefined;
  if (limits) {
    limits.commentBefore = ` observed: wall ${formatDuration(Math.round(seen.usage.wallMs))}, cpu ${formatDuration(Math.round(seen.usage.cpuMs))}, peak memory ${formatBytes(seen.usage.peakMemoryBytes)}, `
      + `output ${formatBytes(seen.outputBytes)}, highest fd ${u.maxFd}\n margin: time x${LEARN_MARGIN.time} (at least ${formatDuration(LEARN_MARGIN.minTimeMs)}), memory and output x${LEARN_MARGIN.memory}, fds x${LEARN_MARGIN.fds} (at least ${LEARN_MARGIN.minFds}); never above the limits the run had`;
  }
  const casper = root.get('casper') as YAML.YAMLMap | undefined;
  for (const pair of casper?.items ?? []) {
    const name = String((pair.key as YAML.Scalar).value ?? pair.key);
    const node = pair.key as YAML.Scalar;
    if (yaml().isScalar(node)) node.commentBefore = ` ${name}: used ${[...u.casper.get(name) ?? []].join(', ')}`;
  }
  const unusedServices = Object.keys(given.casper).filter((s) => !u.casper.has(s));
  if (unusedServices.length) root.comment = ` Casper services not granted (unused): ${unusedServices.join(', ')}`;
  const out = doc.toString();
  return out.endsWith('\n') ? out : `${out}\n`;
}

/** What a manifest grants that the audits never used, and what they were refused. */
export function grantDiff(m: Manifest, u: Usages): string[] {
  const lines: string[] = [];
  m.dirs.forEach((d, i) => {
    const used = u.dirs[i]!;
    const unused = (d.rights.base & ~used.base & ~used.inheriting) | (d.rights.inheriting & ~used.inheriting & ~used.base);
    if ((used.base | used.inheriting) === 0n) lines.push(`- dirs[${i}] ${d.guest}: never used`);
    else if (unused) lines.push(`- dirs[${i}] ${d.guest}: unused ${capNames(unused).join(', ')}`);
  });
  for (const s of Object.keys(m.casper)) if (!u.casper.has(s)) lines.push(`- casper.${s}: never used`);
  for (const e of u.denied) lines.push(`! refused: ${e.call}${e.path ? ` ${e.path}` : ''} on fd ${e.fd}: ${e.message ?? `errno ${e.errno}`}`);
  return lines;
}

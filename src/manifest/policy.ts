/**
 * The operator's policy: the most any manifest may be granted. A manifest is checked against it
 * as a whole; one that asks for more is refused with every excess named, never silently narrowed.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Node as YamlNode } from 'yaml';
import { isMap, isScalar, isSeq } from './yaml.js';
import { DEFAULT_MAX_LIMITS, ENGINE_MAX_LIMITS, type Limits } from '../host/limits.js';
import { formatBytes, formatDuration } from '../host/units.js';
import { formatRights, RIGHTS_ALL, TYPE_RIGHTS } from '../wasi/rights.js';
import { descriptorPath, openNoLinks, SymlinkOnPath } from '../wasi/fs/hostfs.js';
import { CASPER_SERVICES, DEFAULT_PARSE_LIMITS, guestPath, LIMIT_KEYS, readCasper, readLimits, readRights, readYaml, type Reader } from './parse.js';
import { readCasperGrant, SERVICES } from '../casper/services/index.js';
import { grantAddresses } from '../casper/services/net.js';
import { didYouMean } from './suggest.js';
import { ManifestError, type ArgNode, type CasperGrants, type Manifest, type Problem, type RightsGrant, type SocketGrant } from './types.js';

/** One kind of directory the operator allows: a source (memory, or host paths under a prefix) and the most rights. */
export interface DirRule {
  source: { kind: 'memory' } | { kind: 'host'; under: string };
  /** When set, the guest path must be this or below it. */
  guest?: string;
  rights: RightsGrant;
}

/** The operator's maxima. */
export interface Policy {
  limits: Limits;
  dirs: DirRule[];
  /** Services a guest may open, each with the widest limits it may hold. */
  casper: CasperGrants;
  /** Whether argdata may open files (they must still lie inside granted directories). */
  argdataFiles: boolean;
  /** Addresses the guest's sockets may bind and connect to (`net: { bind: [...], connect: [...] }`); none by default. */
  net: NetRule;
}

/** Socket addresses a policy allows: "host:port" (port `*` for any, `0` for an ephemeral one) or a UNIX path prefix ending in "/". */
export interface NetRule { bind: string[]; connect: string[] }

/** Everything is allowed: the policy of a user running their own guest with the CLI. */
export const OPEN_POLICY: Policy = {
  // No hidden ceilings: the CLI's user is the operator; only the engine's own bounds remain.
  limits: { ...ENGINE_MAX_LIMITS },
  dirs: [
    { source: { kind: 'memory' }, rights: { base: RIGHTS_ALL, inheriting: RIGHTS_ALL, names: ['CAP_ALL'] } },
    { source: { kind: 'host', under: '/' }, rights: { base: RIGHTS_ALL, inheriting: RIGHTS_ALL, names: ['CAP_ALL'] } },
  ],
  casper: Object.fromEntries(CASPER_SERVICES.map((s) => [s, {}])),
  argdataFiles: true,
  // The user's own machine: listen and connect anywhere, as the user could.
  net: { bind: ['*'], connect: ['*'] },
};

/** A multi-tenant default: in-memory directories only, no host paths, no Casper services. */
export const SERVICE_POLICY: Policy = {
  limits: { ...DEFAULT_MAX_LIMITS },
  dirs: [{ source: { kind: 'memory' }, rights: { base: RIGHTS_ALL, inheriting: RIGHTS_ALL, names: ['CAP_ALL'] } }],
  casper: {},
  argdataFiles: true,
  net: { bind: [], connect: [] },
};

const POLICY_KEYS = ['limits', 'dirs', 'casper', 'argdata', 'net'];

/** How a manifest spells each limit. */
const MANIFEST_KEY = Object.fromEntries(Object.entries(LIMIT_KEYS).map(([k, v]) => [v.field, k])) as Record<keyof Limits, string>;

const fmtLimit = (f: keyof Limits, v: number) => (f.endsWith('Ms') ? formatDuration(v) : f.endsWith('Bytes') ? formatBytes(v) : String(v));

/** Reads a policy file (same vocabulary and YAML reader as manifests); host sources resolve against `baseDir`. */
export function parsePolicy(source: string, file = 'policy.yaml', baseDir = process.cwd()): Policy {
  const { value, problems } = readYaml(source, 'policy', DEFAULT_PARSE_LIMITS, undefined, (r, root) => readPolicy(r, root, baseDir));
  if (problems.length) throw new ManifestError(file, problems);
  return value!;
}

function readPolicy(r: Reader, root: YamlNode | null, baseDir: string): Policy {
  const policy: Policy = { limits: { ...DEFAULT_MAX_LIMITS }, dirs: [], casper: {}, argdataFiles: true, net: { bind: [], connect: [] } };
  if (root === null || (isScalar(root) && root.value === null)) return policy;
  if (!isMap(root)) { r.problem(root, '', 'a policy is a mapping of limits, dirs, casper, argdata, net'); return policy; }
  for (const pair of root.items) {
    const key = r.string(pair.key, '', 'a key');
    const v = r.deref(pair.value, key ?? '');
    if (key === 'limits') Object.assign(policy.limits, readLimits(r, v, 'limits is a mapping of maxima, e.g. { wall: 10s, memory: 256MiB }'));
    else if (key === 'dirs') {
      if (!isSeq(v)) { r.problem(v, 'dirs', 'dirs is a list of { source: memory | HOST_PREFIX, guest?, rights }'); continue; }
      v.items.forEach((node, i) => {
        const item = r.deref(node, `dirs[${i}]`);
        if (!isMap(item)) { r.problem(item, `dirs[${i}]`, 'a rule is { source, rights }'); return; }
        const rights = readRights(r, item.get('rights', true) as YamlNode | null, `dirs[${i}].rights`, 'directory');
        const src = r.deref(item.get('source', true), `dirs[${i}].source`);
        if (!isScalar(src) || typeof src.value !== 'string') { r.problem(item, `dirs[${i}].source`, 'source is memory or a host directory'); return; }
        for (const p of item.items) {
          const k = r.string(p.key, `dirs[${i}]`, 'a key');
          if (k !== undefined && !['source', 'guest', 'rights'].includes(k)) r.problem(item, `dirs[${i}].${k}`, `unknown key "${k}"${didYouMean(k, ['source', 'guest', 'rights'])}`);
        }
        const rule: DirRule = { source: src.value === 'memory' ? { kind: 'memory' } : { kind: 'host', under: path.resolve(baseDir, src.value) }, rights };
        if (item.has('guest')) { const g = guestPath(r, item.get('guest', true), `dirs[${i}].guest`); if (g !== undefined) rule.guest = g; }
        policy.dirs.push(rule);
      });
    } else if (key === 'casper') Object.assign(policy.casper, readCasper(r, v));
    else if (key === 'net') {
      if (!isMap(v)) { r.problem(v, 'net', 'net is { bind: [ADDRESS…], connect: [ADDRESS…] }, e.g. { bind: ["127.0.0.1:*"] }'); continue; }
      for (const np of v.items) {
        const k = r.string(np.key, 'net', 'a key');
        if (k !== 'bind' && k !== 'connect') { r.problem(np.key, `net.${k}`, `unknown key "${k}"${didYouMean(k ?? '', ['bind', 'connect'])}; net has bind and connect`); continue; }
        const list = (r.deref(np.value, `net.${k}`) as YamlNode | null)?.toJSON?.();
        if (!Array.isArray(list) || list.some((x) => typeof x !== 'string')) { r.problem(np.value, `net.${k}`, `net.${k} is a list of addresses, e.g. ["127.0.0.1:*", "/run/capsa/"]`); continue; }
        policy.net[k] = list as string[];
      }
    }
    else if (key === 'argdata') {
      const files = isMap(v) ? r.deref(v.get('files', true), 'argdata.files') : undefined;
      if (!isScalar(files) || typeof files.value !== 'boolean') r.problem(v, 'argdata', 'argdata is { files: true | false }');
      else policy.argdataFiles = files.value;
    } else if (key !== undefined) {
      r.problem(pair.key, key, `unknown key "${key}"${didYouMean(key, POLICY_KEYS)}; a policy has ${POLICY_KEYS.join(', ')}`);
    }
  }
  return policy;
}

/** Reads a policy file from disk. */
export function loadPolicy(file: string): Policy {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new PolicyFileError(`Cannot read ${file}: ${(e as Error).message}`);
  }
  return parsePolicy(text, file, path.dirname(path.resolve(file)));
}

/** A policy file that cannot be read. */
export class PolicyFileError extends Error {}

function fileNodes(n: ArgNode | undefined, out: Extract<ArgNode, { type: 'file' }>[] = []): Extract<ArgNode, { type: 'file' }>[] {
  if (n?.type === 'file') out.push(n);
  else if (n?.type === 'seq') n.items.forEach((i) => fileNodes(i, out));
  else if (n?.type === 'map') n.entries.forEach(([k, v]) => { fileNodes(k, out); fileNodes(v, out); });
  return out;
}

function socketNodes(n: ArgNode | undefined, out: SocketGrant[] = []): SocketGrant[] {
  if (!n) return out;
  if (n.type === 'socket') out.push(n.socket);
  else if (n.type === 'seq') for (const i of n.items) socketNodes(i, out);
  else if (n.type === 'map') for (const [k, v] of n.entries) { socketNodes(k, out); socketNodes(v, out); }
  return out;
}

/** Whether a policy pattern ("*", "127.0.0.1:*", "[::1]:8080", "/run/capsa/") allows an address. */
export function addressAllowed(address: string, pattern: string): boolean {
  if (pattern === '*') return true;
  if (address.startsWith('/')) return pattern.endsWith('/') ? address.startsWith(pattern) && !address.slice(pattern.length).split('/').includes('..') : address === pattern;
  const a = address.lastIndexOf(':'), p = pattern.lastIndexOf(':');
  if (a < 0 || p < 0) return false;
  return address.slice(0, a) === pattern.slice(0, p) && (pattern.slice(p + 1) === '*' || pattern.slice(p + 1) === address.slice(a + 1));
}

function fdNodes(n: ArgNode | undefined, out: number[] = []): number[] {
  if (n?.type === 'fd') out.push(n.fd);
  else if (n?.type === 'seq') n.items.forEach((i) => fdNodes(i, out));
  else if (n?.type === 'map') n.entries.forEach(([k, v]) => { fdNodes(k, out); fdNodes(v, out); });
  return out;
}

/** The tree with host !file paths replaced (argdata files held for a run). */
function withPaths(n: ArgNode, paths: Map<string, string>): ArgNode {
  if (n.type === 'file') return n.host && paths.has(n.path) ? { ...n, path: paths.get(n.path)! } : n;
  if (n.type === 'seq') return { ...n, items: n.items.map((i) => withPaths(i, paths)) };
  if (n.type === 'map') return { ...n, entries: n.entries.map(([k, v]) => [withPaths(k, paths), withPaths(v, paths)]) };
  return n;
}

function within(child: string, parent: string): boolean {
  return child === parent || child.startsWith(parent.endsWith('/') ? parent : parent + '/');
}

/**
 * Host paths a policy check opened, kept open for a run: the run is given paths that name these
 * descriptors (/proc/self/fd/N), so it mounts what was checked and never resolves the path again.
 */
export class HeldPaths {
  private readonly fds: number[] = [];
  /** Holds `fd` until close() and returns the path that names it (the real path where none can). */
  keep(fd: number, real: string): string {
    const p = descriptorPath(fd);
    if (p === undefined) { fs.closeSync(fd); return real; }
    this.fds.push(fd);
    return p;
  }
  /** The run is over: lets the descriptors go. */
  close(): void {
    for (const fd of this.fds.splice(0)) fs.closeSync(fd);
  }
}

const allowedSources = (policy: Policy) => policy.dirs.map((r) => (r.source.kind === 'memory' ? 'memory' : r.source.under)).join(', ') || 'none';

const realpathOr = (p: string) => { try { return fs.realpathSync(p); } catch { return p; } };

/**
 * Where host path `p` (absolute, normalised) may be used under the policy, judged by where it
 * really is: it is opened one component at a time below the deepest rule that contains it,
 * following no symlink the policy does not name (a rule's own path may hold links: the operator
 * wrote it), and its real path must lie within the rule's. A rule for "/" allows every real path,
 * so links are followed there. Returns the rules that allow it and the path to give the run (the
 * real path; with `held`, the held descriptor's), or a problem. A path that does not exist is left
 * to whoever uses it, unless it must be held.
 */
function checkHostPath(p: string, policy: Policy, held: HeldPaths | undefined, fileOk: boolean, what: string): { rules: DirRule[]; path: string; isDir: boolean } | { problem: string } {
  const hostRules = policy.dirs.filter((r): r is DirRule & { source: { kind: 'host'; under: string } } => r.source.kind === 'host');
  const allowed = allowedSources(policy);
  const candidates = hostRules.filter((r) => within(p, r.source.under));
  if (candidates.length === 0) {
    const real = realpathOr(p);
    if (hostRules.some((r) => within(real, realpathOr(r.source.under)))) {
      return { problem: `${what} ${p} is not allowed by the policy: it leads to ${real} through a symbolic link, which the policy does not name (allowed sources: ${allowed}); give the real path` };
    }
    return { problem: `${what} ${p} is not allowed by the policy (allowed sources: ${allowed})` };
  }
  const from = candidates.some((r) => r.source.under === '/') ? '/' : candidates.reduce((a, b) => (b.source.under.length > a.source.under.length ? b : a)).source.under;
  let fd: number;
  try {
    fd = from === '/' ? fs.openSync(p, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK) : openNoLinks(from, path.relative(from, p).split(path.sep).filter((n) => n !== ''), fileOk);
  } catch (e) {
    if (e instanceof SymlinkOnPath) {
      return { problem: `${what} ${p} is not allowed by the policy: ${e.at} is a symbolic link (-> ${e.target}), and the policy follows no link below ${from}; give the real path of the directory, or remove the link` };
    }
    if ((e as NodeJS.ErrnoException).code === 'ENOENT' && held === undefined) return { rules: candidates, path: p, isDir: false };
    return { problem: `${what} ${p} cannot be opened: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'it does not exist' : (e as Error).message}` };
  }
  let real: string, isDir: boolean;
  try {
    isDir = fs.fstatSync(fd).isDirectory();
    if (!fileOk && !isDir) throw new Error('it is not a directory');
    real = descriptorPath(fd) === undefined ? fs.realpathSync(p) : fs.readlinkSync(descriptorPath(fd)!);
  } catch (e) {
    fs.closeSync(fd);
    return { problem: `${what} ${p} cannot be used: ${(e as Error).message}` };
  }
  const rules = candidates.filter((r) => within(real, realpathOr(r.source.under)));
  if (rules.length === 0) {
    fs.closeSync(fd);
    return { problem: `${what} ${p} is not allowed by the policy: it is really ${real} (allowed sources: ${allowed})` };
  }
  if (held) return { rules, path: held.keep(fd, real), isDir };
  fs.closeSync(fd);
  return { rules, path: real, isDir };
}

function excess(asked: RightsGrant, allowed: RightsGrant): string | undefined {
  const extra = (asked.base & ~allowed.base) | (asked.inheriting & ~allowed.inheriting);
  return extra ? formatRights(extra) : undefined;
}

/** Whether every list and value of `asked` lies within `allowed` (Casper limits: narrower is fine). */
function subsetProblems(asked: unknown, allowed: unknown, p: string, out: string[], depth = 0): void {
  // A category the policy leaves out of a service's limits is not limited; below that level, a
  // key the policy does not list (a sysctl name, say) is not allowed.
  if (allowed === undefined) {
    if (depth > 1) out.push(`${p}: not allowed by the policy`);
    return;
  }
  if (Array.isArray(asked) && Array.isArray(allowed)) {
    const extra = asked.filter((x) => !allowed.some((y) => JSON.stringify(y) === JSON.stringify(x)));
    if (extra.length) out.push(`${p}: ${extra.map((x) => JSON.stringify(x)).join(', ')} not allowed by the policy (allowed: ${allowed.map((x) => JSON.stringify(x)).join(', ')})`);
  } else if (asked && allowed && typeof asked === 'object' && typeof allowed === 'object') {
    for (const [k, v] of Object.entries(asked)) subsetProblems(v, (allowed as Record<string, unknown>)[k], `${p}.${k}`, out, depth + 1);
  } else if (JSON.stringify(asked) !== JSON.stringify(allowed)) {
    out.push(`${p}: ${JSON.stringify(asked)} not allowed by the policy (allowed: ${JSON.stringify(allowed)})`);
  }
}

/**
 * Whether a service's manifest grant lies within the policy's, as the service itself judges
 * narrowing (its limit(old, new)), so that "AF_INET" and "inet", or "x.example.org" inside
 * "*.example.org", compare by meaning; undefined when either grant is not the service's to read.
 */
function serviceNarrows(service: string, asked: Record<string, unknown>, allowed: Record<string, unknown>): boolean | undefined {
  const s = SERVICES[service];
  if (!s?.fromManifest || !s.limit) return undefined;
  try {
    const old = readCasperGrant(service, allowed);
    const next = readCasperGrant(service, { ...allowed, ...asked });
    return next === null || s.limit(old, next) === 0;
  } catch {
    return undefined;
  }
}

/**
 * The effective grant: the manifest, checked against the policy, with limits it leaves out taken
 * from the defaults (lowered to the policy's maxima). Throws a ManifestError naming every excess.
 * Host sources resolve against `baseDir` (the manifest's folder) and are judged by their real
 * paths; the effective manifest names them by real path, or, given `held` (a run about to start),
 * by paths of descriptors held open there, so the run gets what was checked.
 */
export function applyPolicy(m: Manifest, policy: Policy, defaults: Limits, file = 'manifest.yaml', baseDir = process.cwd(), held?: HeldPaths): Manifest & { limits: Limits } {
  const { effective, problems } = checkPolicy(m, policy, defaults, baseDir, held);
  if (problems.length) throw new ManifestError(file, problems.map((p) => ({ line: 0, col: 0, path: '', message: p.message })));
  return effective;
}

/** A problem found after reading: its message, and the key path whose place it is reported at. */
export interface PlacedProblem { at: string; message: string }

/**
 * applyPolicy without throwing: the effective manifest and every excess, each with the key path of
 * what asked for it (limits.wall, dirs[1], argdata, casper.system.dns).
 */
export function checkPolicy(m: Manifest, policy: Policy, defaults: Limits, baseDir = process.cwd(), held?: HeldPaths): { effective: Manifest & { limits: Limits }; problems: PlacedProblem[] } {
  const problems: PlacedProblem[] = [];
  const add = (at: string, message: string) => problems.push({ at, message });
  const limits = {} as Limits;
  for (const f of Object.keys(defaults) as (keyof Limits)[]) {
    const asked = m.limits[f];
    const max = policy.limits[f];
    if (asked !== undefined && asked > max) add(`limits.${MANIFEST_KEY[f]}`, `limits.${MANIFEST_KEY[f]}: ${fmtLimit(f, asked)} exceeds the policy's maximum ${fmtLimit(f, max)}`);
    limits[f] = asked ?? Math.min(defaults[f], max);
  }
  const dirs = m.dirs.map((d, i) => {
    const where = `dirs[${i}] (${d.guest})`;
    let host = d.host;
    let sourceRules = policy.dirs.filter((r) => r.source.kind === 'memory');
    if (d.host !== undefined) {
      const checked = checkHostPath(path.resolve(baseDir, d.host), policy, held, false, `${where}: source`);
      if ('problem' in checked) { add(`dirs[${i}]`, checked.problem); return d; }
      host = checked.path;
      sourceRules = checked.rules;
    }
    const rules = sourceRules.filter((r) => r.guest === undefined || within(d.guest, r.guest));
    if (rules.length === 0) {
      add(`dirs[${i}]`, `${where}: source ${d.host === undefined ? 'memory' : path.resolve(baseDir, d.host)} is not allowed by the policy (allowed sources: ${allowedSources(policy)})`);
    } else if (rules.every((r) => excess(d.rights, r.rights) !== undefined)) {
      const best = rules[0]!;
      add(`dirs[${i}]`, `${where}: ${excess(d.rights, best.rights)} exceed the policy (allowed: ${best.rights.names.join(', ')})`);
    }
    return host === undefined ? d : { ...d, host };
  });
  const argFiles = fileNodes(m.argdata);
  if (argFiles.length && !policy.argdataFiles) add('argdata', 'argdata: !file is not allowed by the policy');
  // A host path is judged where it really is. For a run, a directory is held itself, and a file
  // by its directory: the run opens the file's name there without following a link.
  const hostPaths = new Map<string, string>();
  for (const f of argFiles.filter((x) => x.host)) {
    const checked = checkHostPath(f.path, policy, undefined, true, 'argdata: host path');
    if ('problem' in checked) { add('argdata', checked.problem); continue; }
    const rule = checked.rules[0]!;
    if ((f.rights.base & ~rule.rights.inheriting & ~rule.rights.base) !== 0n) {
      add('argdata', `argdata: ${f.path} asks for ${formatRights(f.rights.base & ~rule.rights.inheriting & ~rule.rights.base)}, beyond the policy`);
    }
    if (held && !hostPaths.has(f.path)) {
      const kept = checkHostPath(checked.isDir ? f.path : path.dirname(f.path), policy, held, false, 'argdata: host path');
      if ('problem' in kept) add('argdata', kept.problem);
      else hostPaths.set(f.path, checked.isDir ? kept.path : `${kept.path}/${path.basename(f.path)}`);
    }
  }
  // The manifest must be consistent with itself: a file lies in a granted directory and asks for
  // no more than that directory passes on; a numbered fd is one the guest is granted.
  for (const f of argFiles.filter((x) => !x.host)) {
    const dir = m.dirs.filter((d) => f.path.startsWith(d.guest === '/' ? '/' : d.guest + '/')).sort((a, b) => b.guest.length - a.guest.length)[0];
    if (!dir) { add('argdata', `argdata: !file ${f.path} is not inside a granted directory (granted: ${m.dirs.map((d) => d.guest).join(', ') || 'none'})`); continue; }
    const extra = f.rights.base & ~dir.rights.inheriting;
    if (extra) add('argdata', `argdata: !file ${f.path} asks for ${formatRights(extra)}, which ${dir.guest} does not pass on (add them to its rights)`);
  }
  for (const fd of fdNodes(m.argdata)) {
    if (fd >= 3 + m.dirs.length + (m.sockets?.length ?? 0)) {
      const dirs = m.dirs.length === 0 ? 'no directory is granted' : m.dirs.length === 1 ? 'fd 3 is the directory' : `3-${2 + m.dirs.length} are the directories`;
      add('argdata', `argdata: !fd ${fd} is not granted; fds 0-2 are stdio and ${dirs}`);
    }
  }
  // Sockets: each address must match one of the policy's (none by default).
  const sockets = [...(m.sockets ?? []).map((g, i) => ({ g, where: `sockets[${i}]` })), ...socketNodes(m.argdata).map((g) => ({ g, where: 'argdata' }))];
  for (const { g, where } of sockets) {
    const which = g.bind !== undefined ? 'bind' : 'connect';
    const addr = (g.bind ?? g.connect)!;
    const allowed = policy.net[which];
    if (!allowed.some((pattern) => addressAllowed(addr, pattern))) {
      add(where, `${where}: !socket { ${which}: ${addr} } is not allowed by the policy (net.${which} allows: ${allowed.join(', ') || 'none'})`);
    }
  }
  // A service's effective limits: the manifest's, and the policy's for every key it leaves out.
  const casper: CasperGrants = {};
  for (const [service, lim] of Object.entries(m.casper)) {
    const allowed = policy.casper[service];
    const at = `casper.${service}`;
    if (allowed === undefined) {
      add(at, `${at}: the policy does not allow this service`);
      if (service === 'system.net') netExcess(lim, policy, (m) => add(at, m));
      continue;
    }
    // The service's own judgement when it can read both grants; the text otherwise.
    const narrows = serviceNarrows(service, lim, allowed);
    if (narrows !== true) {
      // The text names the excess best; the service's verdict catches what the text cannot see.
      const found: string[] = [];
      subsetProblems(lim, allowed, `casper.${service}`, found);
      if (found.length === 0 && narrows === false) found.push(`casper.${service}: ${JSON.stringify(lim)} is wider than the policy allows (${JSON.stringify(allowed)})`);
      for (const f of found) add(at, f);
    }
    casper[service] = { ...allowed, ...lim };
    // Outgoing connections (and listeners) follow the policy's net rules, as !socket's do.
    if (service === 'system.net') netExcess(casper[service]!, policy, (m) => add(at, m));
  }
  const argdata = hostPaths.size && m.argdata ? withPaths(m.argdata, hostPaths) : m.argdata;
  return { effective: { ...m, dirs, limits, casper, ...(argdata ? { argdata } : {}) }, problems };
}

/**
 * The addresses a system.net grant reaches beyond the policy's net rules, one message each
 * (nothing for a grant the service cannot read: that is reported as such).
 */
function netExcess(grant: Record<string, unknown>, policy: Policy, add: (message: string) => void): void {
  let reach: { connect: string[]; bind: string[] };
  try {
    reach = grantAddresses(grant);
  } catch {
    return;
  }
  for (const which of ['connect', 'bind'] as const) {
    const rules = policy.net[which];
    for (const addr of new Set(reach[which])) {
      if (rules.some((pattern) => addressAllowed(addr, pattern))) continue;
      const what = addr === '*'
        ? `${which} to any address (list the addresses in ${which}${which === 'connect' ? ', give name2addr hosts to connectdns, or leave connectdns out of mode' : ''})`
        : `${which} to ${addr}`;
      add(`casper.system.net: ${what} is not allowed by the policy (net.${which} allows: ${rules.join(', ') || 'none'})`);
    }
  }
}

/** Why a service cannot read a manifest's grant (its own reader's words), or undefined when it can. */
export function grantProblem(service: string, grant: Record<string, unknown>): string | undefined {
  try {
    readCasperGrant(service, grant);
    return undefined;
  } catch (e) {
    return (e as Error).message.replace(`${service}: `, '');
  }
}

/**
 * Checks that each Casper grant of a manifest means something to its service (the service's own
 * reader says what is wrong); throws a ManifestError listing every problem.
 */
export function checkCasperGrants(m: Manifest, file = 'manifest.yaml'): void {
  const problems: Problem[] = [];
  for (const [service, grant] of Object.entries(m.casper)) {
    const p = grantProblem(service, grant);
    if (p !== undefined) problems.push({ line: 0, col: 0, path: '', message: `casper.${service}: ${p}` });
  }
  if (problems.length) throw new ManifestError(file, problems);
}

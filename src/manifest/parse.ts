/**
 * Reads a manifest: YAML with CloudABI's tags, checked strictly, every problem reported at once
 * with its line and column. YAML bombs (aliases, depth, size) are refused before they expand.
 */
import nodePath from 'node:path';
import type { Document, LineCounter, Node as YamlNode } from 'yaml';
import { isAlias, isMap, isScalar, isSeq, yaml } from './yaml.js';
import { LIMIT_FIELDS, type Limits } from '../host/limits.js';
import { parseBytes, parseDuration } from '../host/units.js';
import { didYouMean, yamlMessage } from './suggest.js';
import type { ArgNode, CasperGrants, DirEntryGrant, Manifest, Problem, RightsGrant } from './types.js';
import { ManifestError } from './types.js';
import { expandRights, PROMISES } from './vocabulary.js';
import { SERVICES } from '../casper/services/index.js';
import { READ_ONLY_MASK, TYPE_RIGHTS } from '../wasi/rights.js';
import type { SocketGrant } from '../host/grants.js';
import { parseSocketAddress } from '../host/net/address.js';

/** Caps on what a manifest may make the parser do. */
export interface ParseLimits {
  maxBytes: number;
  maxAliases: number;
  maxDepth: number;
  maxNodes: number;
}

export const DEFAULT_PARSE_LIMITS: ParseLimits = { maxBytes: 1 << 20, maxAliases: 100, maxDepth: 64, maxNodes: 100_000 };

/** The Casper services a manifest may name: those capsa offers (src/casper/services/index.ts). */
export const CASPER_SERVICES: readonly string[] = Object.keys(SERVICES);

const CLOUDABI = 'tag:nuxi.nl,2015:cloudabi/';
const TOP_KEYS = ['module', 'args', 'env', 'argdata', 'dirs', 'sockets', 'limits', 'casper', 'pledge'];
const DIR_KEYS = ['guest', 'source', 'rights', 'init_only'];
/** How manifests and policies spell each limit, and how its value is written. */
export const LIMIT_KEYS: Record<string, { field: keyof Limits; kind: 'duration' | 'bytes' | 'count' }> = {
  wall: { field: 'wallMs', kind: 'duration' },
  cpu: { field: 'cpuMs', kind: 'duration' },
  memory: { field: 'memoryBytes', kind: 'bytes' },
  output: { field: 'outputBytes', kind: 'bytes' },
  fds: { field: 'fds', kind: 'count' },
  files: { field: 'filesBytes', kind: 'bytes' },
};

/** Walks a YAML document, collecting problems with their positions and counting nodes and aliases. */
export class Reader {
  readonly problems: Problem[] = [];
  /** Positions of key paths, by mark(). */
  readonly places: Record<string, { line: number; col: number }> = {};
  private aliases = 0;
  private nodes = 0;
  /** Set for cloudabi-run documents: !file paths are host paths relative to it. */
  constructor(readonly doc: Document, readonly lc: LineCounter, readonly limits: ParseLimits, readonly hostBase?: string) {}

  /** Where `node` starts, as 1-based line and column ({0, 0} when it has no place). */
  pos(node: unknown): { line: number; col: number } {
    const offset = (node as YamlNode | undefined | null)?.range?.[0];
    return offset === undefined ? { line: 0, col: 0 } : this.lc.linePos(offset);
  }

  problem(node: unknown, path: string, message: string): void {
    this.problems.push({ ...this.pos(node), path, message });
  }

  /** Remembers where the value at key path `path` is, for problems found after reading (policy excesses). */
  mark(node: unknown, path: string): void {
    const n = isAlias(node) ? node : (node as YamlNode | null);
    if (n) this.places[path] = this.pos(n);
  }

  /** Follows an alias, counting them so that a billion laughs stops at the hundredth. */
  deref(node: unknown, path: string): YamlNode | null {
    if (++this.nodes > this.limits.maxNodes) throw new Bomb(`the manifest expands to more than ${this.limits.maxNodes} nodes`);
    if (isAlias(node)) {
      if (++this.aliases > this.limits.maxAliases) throw new Bomb(`more than ${this.limits.maxAliases} aliases; write the values out`);
      const target = node.resolve(this.doc);
      if (!target) { this.problem(node, path, `alias *${node.source} refers to nothing`); return null; }
      return target as YamlNode;
    }
    return (node ?? null) as YamlNode | null;
  }

  /** A plain string scalar, or undefined after a problem. */
  string(node: unknown, path: string, what: string): string | undefined {
    const n = this.deref(node, path);
    if (isScalar(n) && n.value !== null && typeof n.value !== 'object') return String(n.value);
    this.problem(n, path, `${what} must be a string`);
    return undefined;
  }
}

class Bomb extends Error {}

/**
 * The deepest nesting of flow collections, counted on yaml's lexer tokens (the lexer is iterative;
 * it is the parser that recurses), so quotes, comments and block scalars are read as YAML reads them.
 */
export function flowDepth(text: string): number {
  let depth = 0, max = 0;
  for (const token of new (yaml().Lexer)().lex(text)) {
    if (token === '[' || token === '{') max = Math.max(max, ++depth);
    else if ((token === ']' || token === '}') && depth > 0) depth--;
  }
  return max;
}

/**
 * The one safe YAML reader of manifests, argdata documents and policies: parses `source` and runs
 * `read` over its root, returning what it read (undefined when the text is not YAML, too large, too
 * deep or a bomb) with every problem. The size and depth caps apply before parsing, the alias and
 * node caps during reading.
 */
export function readYaml<T>(source: string, what: string, limits: ParseLimits, hostBase: string | undefined,
  read: (r: Reader, root: YamlNode | null) => T): { value: T | undefined; problems: Problem[]; places: Reader['places'] } {
  const bytes = Buffer.byteLength(source, 'utf8');
  const fatal = (message: string) => ({ value: undefined, problems: [{ line: 0, col: 0, path: '', message }], places: {} });
  if (bytes > limits.maxBytes) return fatal(`the ${what} is ${bytes} bytes; the limit is ${limits.maxBytes}`);
  // The YAML parser descends recursively: thousands of nested brackets would overflow its stack
  // (and can abort the process), so nesting is measured on the text before it parses anything.
  if (flowDepth(source) > limits.maxDepth) return fatal(`the ${what} is nested deeper than ${limits.maxDepth} levels`);
  const lc = new (yaml().LineCounter)();
  const doc = yaml().parseDocument(source, { lineCounter: lc, uniqueKeys: true, intAsBigInt: true, prettyErrors: true });
  const r = new Reader(doc, lc, limits, hostBase);
  for (const e of doc.errors) {
    const pos = e.linePos?.[0] ?? { line: 0, col: 0 };
    r.problems.push({ line: pos.line, col: pos.col, path: '', message: yamlMessage(e.message) });
  }
  if (r.problems.length) return { value: undefined, problems: r.problems, places: {} };
  try {
    return { value: read(r, doc.contents as YamlNode | null), problems: r.problems, places: r.places };
  } catch (e) {
    if (!(e instanceof Bomb)) throw e;
    return fatal(e.message);
  }
}

/** readYaml, throwing a ManifestError listing every problem when there is any. */
function readDocument<T>(source: string, file: string, limits: ParseLimits, hostBase: string | undefined,
  read: (r: Reader, root: YamlNode | null) => T): T {
  const { value, problems } = readYaml(source, hostBase === undefined ? 'manifest' : 'document', limits, hostBase, read);
  if (problems.length) throw new ManifestError(file, problems);
  return value as T;
}

/**
 * Reads a manifest without throwing: what could be read (an empty manifest when the text is not
 * YAML), every problem, and where each key path is, so later checks can place their problems.
 */
export function readManifest(source: string, limits: ParseLimits = DEFAULT_PARSE_LIMITS): { manifest: Manifest; problems: Problem[]; places: Reader['places'] } {
  // No text (a run from flags alone) is the empty manifest, without loading the YAML library.
  if (source === '') return { manifest: emptyManifest(), problems: [], places: {} };
  const { value, problems, places } = readYaml(source, 'manifest', limits, undefined, readTop);
  return { manifest: value ?? emptyManifest(), problems, places };
}

/** Parses and validates a manifest; throws ManifestError listing every problem. */
export function parseManifest(source: string, file = 'manifest.yaml', limits: ParseLimits = DEFAULT_PARSE_LIMITS): Manifest {
  return readDocument(source, file, limits, undefined, readTop);
}

/**
 * Reads a cloudabi-run document: the whole YAML document is the argdata tree, and `!file` names a
 * host file or directory (relative to `baseDir`), as `cloudabi-run prog < config.yaml` reads it.
 */
export function parseArgdataDocument(source: string, file = 'argdata.yaml', baseDir = process.cwd(), limits: ParseLimits = DEFAULT_PARSE_LIMITS): ArgNode {
  return readDocument(source, file, limits, baseDir, (r, root) => readArg(r, root, '', 0));
}

function emptyManifest(): Manifest {
  return { args: [], env: {}, dirs: [], limits: {}, casper: {} };
}

function readTop(r: Reader, root: YamlNode | null): Manifest {
  const m = emptyManifest();
  if (root === null || (isScalar(root) && root.value === null)) return m;
  if (!isMap(root)) { r.problem(root, '', 'a manifest is a mapping of keys such as module, args, dirs, limits'); return m; }
  for (const pair of root.items) {
    const key = r.string(pair.key, '', 'a key');
    if (key === undefined) continue;
    const value = pair.value as YamlNode | null;
    r.mark(value, key);
    switch (key) {
      case 'module': { const v = r.string(value, 'module', 'module'); if (v !== undefined) m.module = v; break; }
      case 'args': m.args = readArgs(r, value); break;
      case 'env': m.env = readEnv(r, value); break;
      case 'argdata': m.argdata = readArg(r, value, 'argdata', 0); break;
      case 'dirs': m.dirs = readDirs(r, value); break;
      case 'sockets': {
        // Preopened socket descriptors, after the directories: a list of !socket (the tag may be left out).
        const n = r.deref(value, 'sockets');
        if (!isSeq(n)) { r.problem(n, 'sockets', 'sockets is a list of !socket { bind: host:port }'); break; }
        m.sockets = n.items.flatMap((item, i) => readSocket(r, r.deref(item, `sockets[${i}]`), `sockets[${i}]`) ?? []);
        break;
      }
      case 'limits': m.limits = readLimits(r, value); break;
      case 'casper': mergeCasper(m.casper, readCasper(r, value)); break;
      case 'pledge': {
        const words = readWords(r, value, 'pledge');
        const ex = expandRights(words);
        for (const u of ex.unknown) r.problem(value, 'pledge', u);
        m.stdio = { base: ex.rights & TYPE_RIGHTS.characterDevice.base, inheriting: 0n, names: words };
        for (const s of ex.casper) m.casper[s] ??= {};
        break;
      }
      default: r.problem(pair.key as YamlNode, key, `unknown key "${key}"${didYouMean(key, TOP_KEYS)}; a manifest may have ${TOP_KEYS.join(', ')}`);
    }
  }
  return m;
}

function mergeCasper(into: CasperGrants, from: CasperGrants): void {
  for (const [k, v] of Object.entries(from)) into[k] = { ...into[k], ...v };
}

function readArgs(r: Reader, node: YamlNode | null): string[] {
  const n = r.deref(node, 'args');
  if (!isSeq(n)) { r.problem(n, 'args', 'args must be a list of strings, e.g. [--verbose, /in/file]'); return []; }
  const out: string[] = [];
  n.items.forEach((item, i) => {
    const s = r.string(item, `args[${i}]`, 'an argument');
    if (s !== undefined) out.push(s);
  });
  return out;
}

function readEnv(r: Reader, node: YamlNode | null): Record<string, string> {
  const n = r.deref(node, 'env');
  const out: Record<string, string> = {};
  if (!isMap(n)) { r.problem(n, 'env', 'env must be a mapping of names to values, e.g. { LANG: C }'); return out; }
  for (const pair of n.items) {
    const k = r.string(pair.key, 'env', 'a variable name');
    if (k === undefined) continue;
    if (k === '' || k.includes('=') || k.includes('\0')) { r.problem(pair.key as YamlNode, `env.${k}`, 'a variable name must be non-empty, without "=" or NUL'); continue; }
    const v = r.string(pair.value, `env.${k}`, 'a variable value');
    if (v !== undefined) {
      if (v.includes('\0')) r.problem(pair.value as YamlNode, `env.${k}`, 'a value must not contain NUL');
      else out[k] = v;
    }
  }
  return out;
}

/** A list of rights words, or one word. */
export function readWords(r: Reader, node: YamlNode | null, path: string): string[] {
  const n = r.deref(node, path);
  if (isScalar(n) && typeof n.value === 'string') return [n.value];
  if (isSeq(n)) {
    const out: string[] = [];
    n.items.forEach((item, i) => { const s = r.string(item, `${path}[${i}]`, 'a right'); if (s !== undefined) out.push(s); });
    return out;
  }
  r.problem(n, path, 'rights are a name or a list of names, e.g. rpath or [CAP_READ, CAP_SEEK]');
  return [];
}

/**
 * Rights for a descriptor of the given kind: the named set, limited to what the kind can hold
 * (`any`: a host path whose kind is only known when it is opened, which masks them then).
 */
export function readRights(r: Reader, node: YamlNode | null, path: string, kind: 'directory' | 'regularFile' | 'any'): RightsGrant {
  const words = readWords(r, node, path);
  const ex = expandRights(words);
  for (const u of ex.unknown) r.problem(node, path, u);
  if (ex.casper.length) r.problem(node, path, `${words.filter((w) => PROMISES[w]?.casper).join(', ')} grant Casper services; put them under pledge or casper, not on a descriptor`);
  if (kind === 'any') return { base: ex.rights, inheriting: ex.rights, names: words };
  const t = TYPE_RIGHTS[kind];
  return { base: ex.rights & t.base, inheriting: ex.rights & t.inheriting, names: words };
}

/** A guest path: absolute, without "..", normalised; undefined after a problem. */
export function guestPath(r: Reader, node: unknown, path: string): string | undefined {
  const s = r.string(node, path, 'a guest path');
  if (s === undefined) return undefined;
  const parts = s.split('/').filter((p) => p !== '' && p !== '.');
  if (!s.startsWith('/') || parts.includes('..')) {
    r.problem(r.deref(node, path), path, `guest path ${JSON.stringify(s)} must be absolute and must not contain "..", e.g. /data`);
    return undefined;
  }
  return '/' + parts.join('/');
}

/** Whether a grant holds no right that writes or changes the namespace: its mount is then read-only too. */
export function writesNothing(r: { base: bigint; inheriting: bigint }): boolean {
  return ((r.base | r.inheriting) & ~READ_ONLY_MASK) === 0n;
}

function readDirs(r: Reader, node: YamlNode | null): DirEntryGrant[] {
  const n = r.deref(node, 'dirs');
  if (!isSeq(n)) { r.problem(n, 'dirs', 'dirs must be a list of { guest, source, rights }'); return []; }
  const out: DirEntryGrant[] = [];
  const seen = new Set<string>();
  n.items.forEach((item, i) => {
    const path = `dirs[${i}]`;
    r.mark(item, path);
    const d = r.deref(item, path);
    if (!isMap(d)) { r.problem(d, path, 'a directory grant is { guest: /data, source: ./data, rights: rpath }'); return; }
    let guest: string | undefined, source: { host?: string } | undefined, rights: RightsGrant | undefined, initOnly = false;
    for (const pair of d.items) {
      const key = r.string(pair.key, path, 'a key');
      const value = pair.value as YamlNode | null;
      if (key === 'guest') guest = guestPath(r, value, `${path}.guest`);
      else if (key === 'source') {
        const s = r.string(value, `${path}.source`, 'source');
        if (s !== undefined) source = s === 'memory' ? {} : { host: s };
      } else if (key === 'rights') rights = readRights(r, value, `${path}.rights`, 'directory');
      else if (key === 'init_only') {
        const v = r.deref(value, `${path}.init_only`);
        if (isScalar(v) && typeof v.value === 'boolean') initOnly = v.value;
        else r.problem(v, `${path}.init_only`, 'init_only must be true or false');
      } else if (key !== undefined) r.problem(pair.key as YamlNode, `${path}.${key}`, `unknown key "${key}"${didYouMean(key, DIR_KEYS)}; a directory grant has ${DIR_KEYS.join(', ')}`);
    }
    if (guest === undefined && !d.has('guest')) r.problem(d, path, 'missing guest: where the guest sees the directory, e.g. guest: /data');
    if (source === undefined && !d.has('source')) r.problem(d, path, 'missing source: a host directory (./data) or memory');
    if (rights === undefined && !d.has('rights')) r.problem(d, path, 'missing rights, e.g. rights: rpath or rights: [rpath, wpath, cpath]');
    if (guest && seen.has(guest)) r.problem(d, `${path}.guest`, `${guest} is granted twice`);
    if (guest && source && rights) { seen.add(guest); out.push({ guest, ...source, rights, initOnly, readonly: writesNothing(rights) }); }
  });
  return out;
}

/** Reads `limits` (of a manifest, or a policy's maxima). */
export function readLimits(r: Reader, node: YamlNode | null, what = 'limits is a mapping, e.g. { wall: 2s, memory: 64MiB }'): Partial<Limits> {
  const n = r.deref(node, 'limits');
  const out: Partial<Limits> = {};
  if (!isMap(n)) { r.problem(n, 'limits', what); return out; }
  for (const pair of n.items) {
    const key = r.string(pair.key, 'limits', 'a key');
    if (key === undefined) continue;
    const spec = LIMIT_KEYS[key];
    const path = `limits.${key}`;
    r.mark(pair.value, path);
    if (!spec) { r.problem(pair.key as YamlNode, path, `unknown limit "${key}"${didYouMean(key, Object.keys(LIMIT_KEYS))}; limits are ${Object.keys(LIMIT_KEYS).join(', ')}`); continue; }
    const v = r.deref(pair.value, path);
    const raw = isScalar(v) ? v.value : undefined;
    const value = typeof raw === 'bigint' ? Number(raw) : raw;
    try {
      if (typeof value !== 'number' && typeof value !== 'string') throw new RangeError(`must be a number or a ${spec.kind === 'duration' ? 'duration, e.g. 2s' : spec.kind === 'bytes' ? 'size, e.g. 64MiB' : 'count'}`);
      const parsed = spec.kind === 'duration' ? parseDuration(value, key) : spec.kind === 'bytes' ? parseBytes(value, key) : Number(value);
      if (!Number.isInteger(parsed) || parsed <= 0) throw new RangeError(`${key} must be a positive whole number`);
      out[spec.field] = parsed;
    } catch (e) {
      r.problem(v, path, (e as Error).message);
    }
  }
  return out;
}

/** Reads `casper` (of a manifest, or a policy's widest grants): each service's grant as plain data. */
export function readCasper(r: Reader, node: YamlNode | null): CasperGrants {
  const n = r.deref(node, 'casper');
  const out: CasperGrants = {};
  if (isScalar(n) && n.value === null) return out;
  if (!isMap(n)) { r.problem(n, 'casper', 'casper is a mapping of services to their widest limits, e.g. { system.random: {} }'); return out; }
  for (const pair of n.items) {
    const name = r.string(pair.key, 'casper', 'a service name');
    if (name === undefined) continue;
    r.mark(pair.value ?? pair.key, `casper.${name}`);
    if (!CASPER_SERVICES.includes(name)) {
      r.problem(pair.key as YamlNode, `casper.${name}`, `unknown service "${name}"${didYouMean(name, CASPER_SERVICES)}; services are ${CASPER_SERVICES.join(', ')}`);
      continue;
    }
    const v = r.deref(pair.value, `casper.${name}`);
    if (v === null || (isScalar(v) && v.value === null)) { out[name] = {}; continue; }
    if (!isMap(v)) { r.problem(v, `casper.${name}`, 'a service grant is a mapping of limits, or {} for the service\'s defaults'); continue; }
    out[name] = plain(r, v, `casper.${name}`) as Record<string, unknown>;
  }
  return out;
}

/** A YAML value as plain data, following (and counting) aliases like the rest of the reader. */
function plain(r: Reader, node: unknown, path: string, depth = 0): unknown {
  if (depth >= r.limits.maxDepth) throw new Bomb(`${path} is nested deeper than ${r.limits.maxDepth} levels`);
  const n = r.deref(node, path);
  if (isMap(n)) {
    const out: Record<string, unknown> = {};
    for (const pair of n.items) out[String(plain(r, pair.key, path, depth + 1))] = plain(r, pair.value, path, depth + 1);
    return out;
  }
  if (isSeq(n)) return n.items.map((i) => plain(r, i, path, depth + 1));
  const v = isScalar(n) ? n.value : null;
  return typeof v === 'bigint' ? Number(v) : v;
}

const STDIO: Record<string, number> = { stdin: 0, stdout: 1, stderr: 2 };

function tagOf(n: YamlNode): string | undefined {
  const t = n.tag;
  if (t === undefined) return undefined;
  if (t.startsWith(CLOUDABI)) return '!' + t.slice(CLOUDABI.length);
  if (t.startsWith('tag:yaml.org,2002:')) return '!!' + t.slice('tag:yaml.org,2002:'.length);
  return t;
}

/** One argdata node; CloudABI's tags become descriptors, plain YAML becomes argdata values. */
/** cloudabi-run's `!socket { bind | connect, type }`: one address, "host:port", "[v6]:port" or a UNIX path. */
function readSocket(r: Reader, n: YamlNode | null, path: string): SocketGrant | undefined {
  if (!isMap(n)) { r.problem(n, path, '!socket takes { bind: host:port, type: stream } or { connect: host:port }'); return undefined; }
  for (const pair of n.items) {
    const key = r.string(pair.key, path, 'a key');
    if (key !== undefined && !['bind', 'connect', 'type'].includes(key)) {
      r.problem(pair.key as YamlNode, path ? `${path}.${key}` : key, `unknown key "${key}"${didYouMean(key, ['bind', 'connect', 'type'])}; !socket has bind or connect, and type`);
    }
  }
  const bind = n.get('bind'), connect = n.get('connect'), type = n.get('type') ?? 'stream';
  if ((bind === undefined) === (connect === undefined)) { r.problem(n, path, '!socket takes bind: host:port or connect: host:port'); return undefined; }
  if (!['stream', 'dgram'].includes(String(type))) { r.problem(n, `${path}.type`, '!socket type is stream or dgram'); return undefined; }
  const which = bind !== undefined ? 'bind' : 'connect';
  try {
    const a = parseSocketAddress(String(bind ?? connect));
    if (type === 'dgram' && a.kind === 'unix') throw new TypeError('a dgram socket is UDP: HOST:PORT or [IPV6]:PORT, not a UNIX path');
  } catch (e) {
    r.problem(n, `${path}.${which}`, (e as Error).message);
    return undefined;
  }
  return { [which]: String(bind ?? connect), type: type === 'dgram' ? 'dgram' : 'stream' };
}

function readArg(r: Reader, node: unknown, path: string, depth: number): ArgNode {
  const n = r.deref(node, path);
  // Containers count, the root being level 1, as argdata's own encoder counts them.
  if ((isMap(n) || isSeq(n)) && depth >= r.limits.maxDepth) throw new Bomb(`argdata is nested deeper than ${r.limits.maxDepth} levels`);
  if (n === null) return { type: 'null' };
  const tag = tagOf(n);
  if (tag === '!fd') {
    const v = isScalar(n) ? n.value : undefined;
    // A custom tag leaves its scalar unresolved, so a number arrives as text.
    const text = String(v);
    const fd = text in STDIO ? STDIO[text]! : /^\d{1,4}$/.test(text) && Number(text) < 1024 ? Number(text) : undefined;
    if (fd === undefined) { r.problem(n, path, '!fd takes stdin, stdout, stderr or a descriptor number the host grants'); return { type: 'null' }; }
    return { type: 'fd', fd };
  }
  if (tag === '!file') {
    if (!isMap(n)) { r.problem(n, path, '!file takes { path: /in/file, rights: [CAP_READ] }'); return { type: 'null' }; }
    let p: string | undefined;
    // Default: read-only, as cloudabi-run opens !file with O_RDONLY.
    const rpath = expandRights(['rpath']).rights;
    let rights: RightsGrant = r.hostBase === undefined
      ? { base: TYPE_RIGHTS.regularFile.base & rpath, inheriting: 0n, names: ['rpath'] }
      : { base: rpath, inheriting: rpath, names: ['rpath'] };
    for (const pair of n.items) {
      const key = r.string(pair.key, path, 'a key');
      if (key === 'path') {
        if (r.hostBase === undefined) p = guestPath(r, pair.value, `${path}.path`);
        else { const s = r.string(pair.value, `${path}.path`, 'a path'); if (s !== undefined) p = nodePath.resolve(r.hostBase, s); }
      } else if (key === 'rights') rights = readRights(r, pair.value as YamlNode | null, `${path}.rights`, r.hostBase === undefined ? 'regularFile' : 'any');
      else if (key !== undefined) r.problem(pair.key as YamlNode, `${path}.${key}`, `unknown key "${key}"${didYouMean(key, ['path', 'rights'])}; !file has path and rights`);
    }
    if (p === undefined) { if (!n.has('path')) r.problem(n, path, '!file needs a path: the guest path of the file, inside a granted directory'); return { type: 'null' }; }
    return r.hostBase === undefined ? { type: 'file', path: p, rights } : { type: 'file', path: p, rights, host: true };
  }
  if (tag === '!socket') {
    const socket = readSocket(r, n, path);
    return socket ? { type: 'socket', socket } : { type: 'null' };
  }
  if (isMap(n)) {
    if (tag !== undefined && tag !== '!!map') r.problem(n, path, `unknown tag ${tag} on a mapping`);
    const entries: [ArgNode, ArgNode][] = [];
    for (const pair of n.items) {
      const at = (name: string) => (path ? `${path}.${name}` : name);
      const k = readArg(r, pair.key, at('<key>'), depth + 1);
      entries.push([k, readArg(r, pair.value, at(k.type === 'str' ? k.value : '?'), depth + 1)]);
    }
    return { type: 'map', entries };
  }
  if (isSeq(n)) {
    if (tag !== undefined && tag !== '!!seq') r.problem(n, path, `unknown tag ${tag} on a list`);
    return { type: 'seq', items: n.items.map((it, i) => readArg(r, it, `${path}[${i}]`, depth + 1)) };
  }
  if (!isScalar(n)) { r.problem(n, path, 'unexpected node'); return { type: 'null' }; }
  const v = n.value;
  switch (tag) {
    case undefined: break;
    case '!!str': return { type: 'str', value: String(n.source ?? v) };
    case '!!int': {
      if (typeof v === 'bigint') return { type: 'int', value: v };
      r.problem(n, path, `!!int needs a whole number, not ${JSON.stringify(String(v))}`);
      return { type: 'null' };
    }
    case '!!float': {
      const f = typeof v === 'bigint' ? Number(v) : typeof v === 'number' ? v : Number(v);
      if (Number.isNaN(f) && typeof v !== 'number') { r.problem(n, path, `!!float needs a number, not ${JSON.stringify(String(v))}`); return { type: 'null' }; }
      return { type: 'float', value: f };
    }
    case '!!bool': {
      if (typeof v === 'boolean') return { type: 'bool', value: v };
      r.problem(n, path, '!!bool needs true or false');
      return { type: 'null' };
    }
    case '!!null': return { type: 'null' };
    case '!!binary': {
      const text = String(n.source ?? v).replace(/\s+/g, '');
      if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text)) { r.problem(n, path, '!!binary needs base64 text'); return { type: 'null' }; }
      return { type: 'binary', value: new Uint8Array(Buffer.from(text, 'base64')) };
    }
    case '!!timestamp': {
      const text = String(n.source ?? v);
      // Date.parse keeps milliseconds; the fraction's digits past them are kept by hand (ns).
      const frac = /\.(\d+)/.exec(text)?.[1] ?? '';
      const ms = Date.parse(text.replace(/\.(\d{3})\d*/, '.$1'));
      if (Number.isNaN(ms)) { r.problem(n, path, '!!timestamp needs an ISO 8601 date, e.g. 2016-06-10T12:00:00Z'); return { type: 'null' }; }
      const subMs = BigInt((frac.slice(3) + '000000').slice(0, 6));
      return { type: 'timestamp', value: BigInt(ms) * 1_000_000n + subMs };
    }
    default:
      r.problem(n, path, `unknown tag ${tag}; argdata knows !fd, !file, !socket, !!int, !!str, !!bool, !!float, !!binary, !!timestamp`);
      return { type: 'null' };
  }
  if (v === null) return { type: 'null' };
  if (typeof v === 'boolean') return { type: 'bool', value: v };
  if (typeof v === 'bigint') return { type: 'int', value: v };
  if (typeof v === 'number') return { type: 'float', value: v };
  return { type: 'str', value: String(v) };
}

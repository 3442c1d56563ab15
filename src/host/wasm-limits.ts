/**
 * Memory and table caps, enforced by rewriting the module's declared maxima before compilation.
 *
 * Engines honour a declared maximum exactly (memory.grow and table.grow return -1 past it), so
 * lowering the maxima in the binary caps a guest without a custom allocator or engine flags. Only
 * the limits inside the import, table and memory sections are touched; everything else, custom
 * sections included, is copied byte for byte. The input is untrusted: every read is bounds-checked
 * and anything this parser does not understand is refused rather than guessed at, because a memory
 * or table the parser skipped over would be a memory or table left uncapped.
 */

import { formatBytes } from './units.js';

const PAGE = 65536;
/** The largest page count a 32-bit memory may declare. */
const MAX_PAGES_32 = 65536;
const U32_MAX = 0xffff_ffff;

/**
 * Memories and tables a module may declare. 100 memories is V8's own limit; it bounds the work
 * this parser spends on a hostile module that declares millions of two-byte memories. V8 accepts
 * 100,000 tables, but instantiating them is one call that termination cannot interrupt (100,000
 * empty tables took 1.9 s and 30 MiB of the worker's heap); programs use one or two.
 */
const MAX_MEMORIES = 100;
const MAX_TABLES = 100;

const SECTION_IMPORT = 2;
const SECTION_TABLE = 4;
const SECTION_MEMORY = 5;
const SECTION_ELEMENT = 9;

/** Caps applied to every memory and table a module declares or imports. */
export interface ModuleCaps {
  /** Bytes each memory may grow to; rounded down to whole 64 KiB pages. */
  memoryBytes: number;
  /** Elements all the module's tables together may grow to (the sum of their maxima). */
  tableElements: number;
  /**
   * The engine holds every memory at memoryBytes (V8's process-wide --wasm-max-mem-pages, which
   * module-cache.ts sets): a module's own memory is then checked against the cap but not
   * rewritten, so the module is not copied. Shared and imported memories are rewritten still.
   */
  memoryByEngine?: boolean;
}

/** Why a module cannot run under the given caps; thrown instead of any parser or engine error. */
export class ModuleLimitError extends Error {
  override readonly name = 'ModuleLimitError';
  constructor(
    readonly code: 'memory_limit' | 'table_limit' | 'invalid_module',
    message: string,
  ) {
    super(message);
  }
}

/** One memory or table of a module, in index order (imports first, as the engine numbers them). */
export interface MemorySummary { min: number; max?: number; shared: boolean; imported: boolean }
/** One table of a module, in index order (imports first). */
export interface TableSummary { min: number; max?: number; imported: boolean }

/** The memories and tables a module declares, for messages and tests; throws ModuleLimitError if malformed. */
export function moduleSummary(bytes: Uint8Array): { memories: MemorySummary[]; tables: TableSummary[] } {
  const { sites } = parse(bytes);
  const memories: MemorySummary[] = [];
  const tables: TableSummary[] = [];
  for (const s of sites) {
    const base = s.max === undefined ? { min: s.min } : { min: s.min, max: s.max };
    if (s.kind === 'memory') memories.push({ ...base, shared: (s.flags & 0x02) !== 0, imported: s.imported });
    else tables.push({ ...base, imported: s.imported });
  }
  return { memories, tables };
}

/**
 * Returns `bytes` with memories and tables that cannot grow past `caps`: a rewritten copy, or `bytes`
 * itself when no cap changes it (copying a large module costs as much as reading it); throws ModuleLimitError.
 */
export function capModule(bytes: Uint8Array, caps: ModuleCaps): Uint8Array<ArrayBuffer> {
  const memCap = capPages(caps.memoryBytes);
  const tableCap = capElements(caps.tableElements);
  const { sections, sites, elements } = parse(bytes);
  if (elements > tableCap) {
    throw new ModuleLimitError('table_limit',
      `Cannot run the module: its element segments hold ${elements} entries in total, ${elements - tableCap} above the ${tableCap}-element limit on all tables together (limits.tableElements)`);
  }

  // Decide every rewrite first so that an over-limit memory is reported before any copying.
  const tableMax = tableMaxima(sites.filter((s) => s.kind === 'table'), tableCap);
  const rewrites = new Map<number, { site: LimitsSite; limits: Uint8Array }[]>(); // section index -> rewrites
  for (const s of sites) {
    if (s.kind === 'memory' && s.min > memCap) throw overLimit(s, caps);
    if (s.kind === 'memory' && caps.memoryByEngine && !s.imported && (s.flags & 0x02) === 0) continue;
    const max = s.kind === 'memory' ? Math.min(s.max ?? memCap, memCap) : tableMax.get(s)!;
    if (max === s.max) continue;
    let list = rewrites.get(s.section);
    if (list === undefined) rewrites.set(s.section, (list = []));
    list.push({ site: s, limits: encodeLimits(s.flags | 0x01, s.min, max) });
  }
  if (rewrites.size === 0) return bytes.buffer instanceof ArrayBuffer ? bytes as Uint8Array<ArrayBuffer> : bytes.slice();

  const out = new ByteSink();
  out.push(bytes.subarray(0, 8));
  sections.forEach((sec, i) => {
    const own = rewrites.get(i);
    if (own === undefined) {
      out.push(bytes.subarray(sec.start, sec.end));
      return;
    }
    const payload = new ByteSink();
    let at = sec.payloadStart;
    for (const { site, limits } of own) {
      payload.push(bytes.subarray(at, site.start));
      payload.push(limits);
      at = site.end;
    }
    payload.push(bytes.subarray(at, sec.end));
    const body = payload.finish();
    out.push(Uint8Array.of(sec.id));
    out.push(encodeU32(body.length));
    out.push(body);
  });
  return out.finish();
}

// ---------------------------------------------------------------------------------------------
// Parsing

interface Section { id: number; start: number; payloadStart: number; end: number }

/** A limits encoding inside the binary: [start, end) covers the flags byte through the last LEB. */
interface LimitsSite {
  /** Index into the section list; sites are in file order. */
  section: number;
  kind: 'memory' | 'table';
  index: number;
  imported: boolean;
  flags: number;
  min: number;
  max: number | undefined;
  start: number;
  end: number;
}

function invalid(message: string): ModuleLimitError {
  return new ModuleLimitError('invalid_module', `Cannot run the module: ${message}`);
}

/** A bounds-checked cursor; every failure is an invalid_module error naming the offset. */
class Reader {
  constructor(readonly bytes: Uint8Array, public pos: number, readonly end: number) {}

  byte(what: string): number {
    if (this.pos >= this.end) throw invalid(`it is truncated (${what} at byte ${this.pos} is missing)`);
    return this.bytes[this.pos++]!;
  }

  u32(what: string): number {
    const at = this.pos;
    let result = 0;
    let scale = 1;
    for (let i = 0; i < 5; i++) {
      const b = this.byte(what);
      if (i === 4 && b > 0x0f) {
        if (b & 0x80) break;
        throw invalid(`${what} at byte ${at} is above 2^32-1, not a valid 32-bit LEB128 number`);
      }
      result += (b & 0x7f) * scale;
      if ((b & 0x80) === 0) return result;
      scale *= 128;
    }
    throw invalid(`${what} at byte ${at} is longer than the 5 bytes a 32-bit LEB128 number may take`);
  }

  /** Skips a signed LEB128 of at most 33 bits (a heap type); only its length matters here. */
  s33(what: string): void {
    const at = this.pos;
    for (let i = 0; i < 5; i++) {
      if ((this.byte(what) & 0x80) === 0) return;
    }
    throw invalid(`${what} at byte ${at} is longer than the 5 bytes a 33-bit LEB128 number may take`);
  }

  skip(n: number, what: string): void {
    if (n > this.end - this.pos) throw invalid(`it is truncated (${what} at byte ${this.pos} runs past its end)`);
    this.pos += n;
  }
}

function hex(b: number): string {
  return `0x${b.toString(16).padStart(2, '0')}`;
}

function parse(bytes: Uint8Array): { sections: Section[]; sites: LimitsSite[]; elements: number } {
  if (!(bytes instanceof Uint8Array)) throw invalid('it is not a byte array');
  if (bytes.length < 8) throw invalid(`it is ${bytes.length} bytes long, too short to be a WebAssembly module`);
  if (bytes[0] !== 0x00 || bytes[1] !== 0x61 || bytes[2] !== 0x73 || bytes[3] !== 0x6d) {
    throw invalid('it does not start with the WebAssembly magic number (\\0asm)');
  }
  const version = [bytes[4]!, bytes[5]!, bytes[6]!, bytes[7]!];
  if (version[0] !== 1 || version[1] !== 0 || version[2] !== 0 || version[3] !== 0) {
    const what = version[2] === 1 && version[3] === 0 ? 'a component, not a core module' : 'an unsupported binary version';
    throw invalid(`it is ${what} (version bytes ${version.map(hex).join(' ')})`);
  }

  const sections: Section[] = [];
  const sites: LimitsSite[] = [];
  const counts = { memory: 0, table: 0 };
  let elements = 0;
  const r = new Reader(bytes, 8, bytes.length);
  while (r.pos < r.end) {
    const start = r.pos;
    const id = r.byte('section id');
    const size = r.u32(`the size of section ${id}`);
    const payloadStart = r.pos;
    if (size > r.end - payloadStart) {
      throw invalid(`section ${id} at byte ${start} claims ${size} bytes but only ${r.end - payloadStart} remain`);
    }
    const end = payloadStart + size;
    sections.push({ id, start, payloadStart, end });
    r.pos = end;
    if (id !== SECTION_IMPORT && id !== SECTION_TABLE && id !== SECTION_MEMORY && id !== SECTION_ELEMENT) continue;

    const p = new Reader(bytes, payloadStart, end);
    if (id === SECTION_ELEMENT) {
      elements += countElements(p);
      if (p.pos !== end) throw invalid(`section ${id} at byte ${start} has ${end - p.pos} unexpected bytes at its end`);
      continue;
    }
    const before = sites.length;
    if (id === SECTION_IMPORT) parseImports(p, sites, counts);
    else if (id === SECTION_TABLE) parseTables(p, sites, counts);
    else parseMemories(p, sites, counts);
    for (let i = before; i < sites.length; i++) sites[i]!.section = sections.length - 1;
    if (p.pos !== end) throw invalid(`section ${id} at byte ${start} has ${end - p.pos} unexpected bytes at its end`);
  }
  return { sections, sites, elements };
}

/** A value type of a function signature, by its text-format name. */
export type ValType = 'i32' | 'i64' | 'f32' | 'f64' | 'v128' | 'ref';

const VALTYPES: Record<number, ValType> = { 0x7f: 'i32', 0x7e: 'i64', 0x7d: 'f32', 0x7c: 'f64', 0x7b: 'v128' };

function readValType(r: Reader): ValType {
  const b = r.bytes[r.pos];
  if (b !== undefined && VALTYPES[b] && r.pos < r.end) { r.pos++; return VALTYPES[b]!; }
  skipRefType(r);
  return 'ref';
}

/**
 * The signature of the function a module exports as `name` (what `--invoke` converts its
 * arguments by: JS cannot ask a function for its type), or undefined when no function has that name.
 */
export function exportSignature(bytes: Uint8Array, name: string): { params: ValType[]; results: ValType[] } | undefined {
  const { sections } = parse(bytes);
  const types: { params: ValType[]; results: ValType[] }[] = [];
  const funcTypes: number[] = [];
  const decoder = new TextDecoder();
  for (const sec of sections) {
    const r = new Reader(bytes, sec.payloadStart, sec.end);
    if (sec.id === 1) {
      const n = r.u32('the type count');
      for (let i = 0; i < n; i++) {
        // A GC module's rec and sub types are not plain signatures: --invoke does not go there.
        if (r.byte('a type form') !== 0x60) return undefined;
        const params = Array.from({ length: r.u32('a parameter count') }, () => readValType(r));
        const results = Array.from({ length: r.u32('a result count') }, () => readValType(r));
        types.push({ params, results });
      }
    } else if (sec.id === SECTION_IMPORT) {
      const n = r.u32('the import count');
      for (let i = 0; i < n; i++) {
        r.skip(r.u32('an import module name length'), 'an import module name');
        r.skip(r.u32('an import field name length'), 'an import field name');
        const kind = r.byte('an import kind');
        if (kind === 0x00) funcTypes.push(r.u32('a function import type index'));
        else if (kind === 0x01) { skipRefType(r); readLimits(r, 'table', 0, true); }
        else if (kind === 0x02) readLimits(r, 'memory', 0, true);
        else if (kind === 0x03) { readValType(r); r.byte('a global import mutability'); }
        else if (kind === 0x04) { r.byte('a tag import attribute'); r.u32('a tag import type index'); }
        else throw invalid(`import ${i} has unknown kind ${hex(kind)}`);
      }
    } else if (sec.id === 3) {
      const n = r.u32('the function count');
      for (let i = 0; i < n; i++) funcTypes.push(r.u32('a function type index'));
    } else if (sec.id === 7) {
      const n = r.u32('the export count');
      for (let i = 0; i < n; i++) {
        const len = r.u32('an export name length');
        const at = r.pos;
        r.skip(len, 'an export name');
        const kind = r.byte('an export kind');
        const index = r.u32('an export index');
        if (kind === 0x00 && decoder.decode(bytes.subarray(at, at + len)) === name) {
          const t = funcTypes[index];
          return t === undefined ? undefined : types[t];
        }
      }
    }
  }
  return undefined;
}

/** An import or export kind, as WebAssembly.Module.imports() and exports() name it. */
export type ExternKind = 'function' | 'table' | 'memory' | 'global' | 'tag';
const KINDS: readonly ExternKind[] = ['function', 'table', 'memory', 'global', 'tag'];

/** What a module imports and exports, and its custom sections' names: what the service checks before it runs it. */
export interface ModuleInterface {
  imports: { module: string; name: string; kind: ExternKind }[];
  exports: { name: string; kind: ExternKind }[];
  customSections: string[];
}

/** The sections a core module may have (0 custom, 1 type … 12 data count, 13 tag). */
const LAST_SECTION = 13;
const utf8 = new TextDecoder('utf-8', { fatal: true });
const SECTION_FUNCTION = 3;
const SECTION_EXPORT = 7;
const SECTION_CODE = 10;

/**
 * The module's imports, exports and custom section names, read from its bytes by this bounded
 * reader instead of by compiling them: the API process must never hand a tenant's bytes to V8's
 * compiler (executors compile them, in their sandbox). Checks the framing the engine would refuse
 * first (header, section ids and sizes, each known section at most once, UTF-8 names, distinct
 * export names, as many function bodies as functions); code bodies are left to the executor's
 * compiler. Throws ModuleLimitError('invalid_module') naming the offset of the first fault.
 */
export function moduleInterface(bytes: Uint8Array): ModuleInterface {
  const { sections } = parse(bytes);
  const out: ModuleInterface = { imports: [], exports: [], customSections: [] };
  const name = (r: Reader, what: string): string => {
    const len = r.u32(`${what} length`);
    const at = r.pos;
    r.skip(len, what);
    try {
      return utf8.decode(bytes.subarray(at, at + len));
    } catch {
      throw invalid(`${what} at byte ${at} is not valid UTF-8`);
    }
  };
  const kind = (r: Reader, what: string): ExternKind => {
    const at = r.pos;
    const k = r.byte(what);
    const known = KINDS[k];
    if (known === undefined) throw invalid(`${what} at byte ${at} is ${hex(k)}, not a known kind`);
    return known;
  };
  const seen = new Set<number>();
  let functions = 0;
  let bodies = 0;
  for (const sec of sections) {
    const r = new Reader(bytes, sec.payloadStart, sec.end);
    if (sec.id > LAST_SECTION) throw invalid(`section ${sec.id} at byte ${sec.start} is not a known section`);
    if (sec.id === 0) { out.customSections.push(name(r, 'a custom section name')); continue; }
    if (seen.has(sec.id)) throw invalid(`section ${sec.id} at byte ${sec.start} appears twice`);
    seen.add(sec.id);
    if (sec.id === SECTION_IMPORT) {
      const n = r.u32('the import count');
      for (let i = 0; i < n; i++) {
        const module = name(r, `import ${i}'s module name`);
        const field = name(r, `import ${i}'s field name`);
        const k = kind(r, `import ${i}'s kind`);
        // The descriptor itself was checked by parse() (parseImports); only its length matters here.
        if (k === 'function') r.u32('a function import type index');
        else if (k === 'table') { skipRefType(r); readLimits(r, 'table', 0, true); }
        else if (k === 'memory') readLimits(r, 'memory', 0, true);
        else if (k === 'global') { skipValType(r); r.byte('a global import mutability'); }
        else { r.byte('a tag import attribute'); r.u32('a tag import type index'); }
        out.imports.push({ module, name: field, kind: k });
      }
    } else if (sec.id === SECTION_EXPORT) {
      const n = r.u32('the export count');
      const names = new Set<string>();
      for (let i = 0; i < n; i++) {
        const at = r.pos;
        const e = name(r, `export ${i}'s name`);
        if (names.has(e)) throw invalid(`export ${i} at byte ${at} repeats the name ${JSON.stringify(e)}`);
        names.add(e);
        const k = kind(r, `export ${i}'s kind`);
        r.u32(`export ${i}'s index`);
        out.exports.push({ name: e, kind: k });
      }
    } else if (sec.id === SECTION_FUNCTION) {
      functions = r.u32('the function count');
      continue;
    } else if (sec.id === SECTION_CODE) {
      bodies = r.u32('the function body count');
      continue;
    } else continue;
    if (r.pos !== sec.end) throw invalid(`section ${sec.id} at byte ${sec.start} has ${sec.end - r.pos} unexpected bytes at its end`);
  }
  if (functions !== bodies) throw invalid(`it declares ${functions} function${functions === 1 ? '' : 's'} but has ${bodies} function bod${bodies === 1 ? 'y' : 'ies'}`);
  return out;
}

type Counts = { memory: number; table: number };

function parseImports(r: Reader, sites: LimitsSite[], counts: Counts): void {
  const n = r.u32('the import count');
  for (let i = 0; i < n; i++) {
    r.skip(r.u32('an import module name length'), 'an import module name');
    r.skip(r.u32('an import field name length'), 'an import field name');
    const kind = r.byte('an import kind');
    switch (kind) {
      case 0x00: r.u32('a function import type index'); break;
      case 0x01: skipRefType(r); sites.push(readLimits(r, 'table', counts.table++, true)); break;
      case 0x02: sites.push(readLimits(r, 'memory', counts.memory++, true)); break;
      case 0x03: skipValType(r); r.byte('a global import mutability'); break;
      case 0x04: r.byte('a tag import attribute'); r.u32('a tag import type index'); break;
      default: throw invalid(`import ${i} has unknown kind ${hex(kind)}`);
    }
  }
}

function parseTables(r: Reader, sites: LimitsSite[], counts: Counts): void {
  const n = r.u32('the table count');
  for (let i = 0; i < n; i++) {
    if (r.bytes[r.pos] === 0x40 && r.pos < r.end) {
      throw invalid(`table ${counts.table} uses the table-with-initializer encoding (0x40), which capsa does not support`);
    }
    skipRefType(r);
    sites.push(readLimits(r, 'table', counts.table++, false));
  }
}

function parseMemories(r: Reader, sites: LimitsSite[], counts: Counts): void {
  const n = r.u32('the memory count');
  for (let i = 0; i < n; i++) sites.push(readLimits(r, 'memory', counts.memory++, false));
}

function readLimits(r: Reader, kind: 'memory' | 'table', index: number, imported: boolean): LimitsSite {
  const most = kind === 'memory' ? MAX_MEMORIES : MAX_TABLES;
  if (index >= most) throw invalid(`it declares more than ${most} ${kind === 'memory' ? 'memories' : 'tables'}, the most capsa accepts`);
  const start = r.pos;
  const flags = r.byte(`the limits of ${kind} ${index}`);
  if (flags & 0x04) throw invalid(`${kind} ${index} is 64-bit (limits flags ${hex(flags)}), which capsa does not support`);
  if (kind === 'table' && flags & 0x02) throw invalid(`table ${index} is shared (limits flags ${hex(flags)}), which capsa does not support`);
  if (flags > 0x03) throw invalid(`${kind} ${index} has unknown limits flags ${hex(flags)}`);
  if (flags === 0x02) throw invalid(`memory ${index} is shared but declares no maximum`);
  const min = r.u32(`the minimum of ${kind} ${index}`);
  const max = flags & 0x01 ? r.u32(`the maximum of ${kind} ${index}`) : undefined;
  return { section: -1, kind, index, imported, flags, min, max, start, end: r.pos };
}

/**
 * The entries of all element segments. V8 builds a passive segment's entries in the worker's heap
 * the first time table.init reads it, all at once: one table.init from a 5,000,000-entry segment
 * (5 MB of module) took 2.1 s and 39 MiB, so segments count against the table limit too.
 */
function countElements(r: Reader): number {
  let total = 0;
  const n = r.u32('the element segment count');
  for (let i = 0; i < n; i++) {
    const flags = r.u32(`the flags of element segment ${i}`);
    if (flags > 7) throw invalid(`element segment ${i} has unknown flags ${flags}`);
    if (flags === 2 || flags === 6) r.u32(`the table of element segment ${i}`);
    if ((flags & 0x01) === 0) skipConstExpr(r, `the offset of element segment ${i}`);
    const expressions = (flags & 0x04) !== 0;
    if (flags & 0x03) {
      if (expressions) skipRefType(r);
      else r.byte(`the element kind of element segment ${i}`);
    }
    const count = r.u32(`the entry count of element segment ${i}`);
    for (let j = 0; j < count; j++) {
      if (expressions) skipConstExpr(r, `entry ${j} of element segment ${i}`);
      else r.u32(`entry ${j} of element segment ${i}`);
    }
    total += count;
  }
  return total;
}

/** Skips a constant expression of the kinds an offset or element may hold, through its end (0x0b). */
function skipConstExpr(r: Reader, what: string): void {
  for (;;) {
    const op = r.byte(what);
    switch (op) {
      case 0x0b: return;
      case 0x41: r.s33(what); break; // i32.const (a 32-bit signed LEB fits the 33-bit bound)
      case 0x23: case 0xd2: r.u32(what); break; // global.get, ref.func
      case 0xd0: r.s33(what); break; // ref.null heaptype
      case 0x6a: case 0x6b: case 0x6c: break; // i32.add, i32.sub, i32.mul (extended constant expressions)
      default: throw invalid(`${what} uses opcode ${hex(op)}, which capsa does not accept in a constant expression`);
    }
  }
}

/** Reference types: the abstract one-byte forms, or (ref null? heaptype) with a signed LEB heap type. */
function skipRefType(r: Reader): void {
  const b = r.byte('a reference type');
  if (b === 0x63 || b === 0x64) return r.s33('a heap type');
  if (b >= 0x69 && b <= 0x74) return;
  throw invalid(`byte ${r.pos - 1} is ${hex(b)}, not a reference type`);
}

function skipValType(r: Reader): void {
  const b = r.bytes[r.pos];
  if (b !== undefined && r.pos < r.end && b >= 0x7b && b <= 0x7f) {
    r.pos++;
    return;
  }
  skipRefType(r);
}

// ---------------------------------------------------------------------------------------------
// Caps and encoding

/** The pages a memory may have under a cap of `memoryBytes` (whole 64 KiB pages, at most 4 GiB). */
export function capPages(memoryBytes: number): number {
  if (!(memoryBytes >= 0) || !Number.isFinite(memoryBytes)) {
    throw new RangeError(`memoryBytes must be a non-negative finite number, not ${memoryBytes}`);
  }
  // A 32-bit memory cannot declare more than 4 GiB; a larger cap is no cap.
  return Math.min(Math.floor(memoryBytes / PAGE), MAX_PAGES_32);
}

function capElements(tableElements: number): number {
  if (!Number.isInteger(tableElements) || tableElements < 0) {
    throw new RangeError(`tableElements must be a non-negative integer, not ${tableElements}`);
  }
  return Math.min(tableElements, U32_MAX);
}

function overLimit(s: LimitsSite, caps: ModuleCaps): ModuleLimitError {
  const whose = `its ${s.imported ? 'imported ' : ''}${s.kind} ${s.index}`;
  const pages = `${s.min} page${s.min === 1 ? '' : 's'}`;
  return new ModuleLimitError('memory_limit',
    `Cannot run the module: ${whose} starts at ${pages} (${formatBytes(s.min * PAGE)}), above the ${formatBytes(caps.memoryBytes)} limit`);
}

/**
 * The maximum each table gets so that all of them together stay within `cap` elements.
 *
 * Table elements live in the worker's JS heap (about 16 bytes each for funcref, and each table
 * costs V8 time per element to create, fill or copy in one uninterruptible call), so the cap is
 * on the total: 50 tables of 100,000 elements exhausted a 64 MiB worker heap. Minima above the
 * total are refused; the room left above the minima is shared fairly (max-min) among the tables
 * that may grow, so no table is lowered below what it declared unless the total requires it.
 */
function tableMaxima(tables: LimitsSite[], cap: number): Map<LimitsSite, number> {
  const minimum = tables.reduce((n, t) => n + t.min, 0);
  if (minimum > cap) {
    const what = tables.length === 1
      ? `its ${tables[0]!.imported ? 'imported ' : ''}table ${tables[0]!.index} starts at ${minimum} elements`
      : `its ${tables.length} tables start at ${minimum} elements in total`;
    throw new ModuleLimitError('table_limit',
      `Cannot run the module: ${what}, ${minimum - cap} above the ${cap}-element limit on all tables together (limits.tableElements)`);
  }
  const out = new Map<LimitsSite, number>();
  let room = cap - minimum;
  const byWant = [...tables].sort((a, b) => want(a) - want(b));
  byWant.forEach((t, i) => {
    const grant = Math.min(want(t), Math.floor(room / (byWant.length - i)));
    room -= grant;
    // A maximum below the minimum is kept as it is, for the engine to refuse.
    out.set(t, t.max !== undefined && t.max < t.min ? t.max : t.min + grant);
  });
  return out;
}

/** How many elements a table may grow by as declared. */
function want(t: LimitsSite): number {
  return t.max === undefined ? Infinity : Math.max(0, t.max - t.min);
}

function encodeU32(n: number): Uint8Array {
  const out: number[] = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return Uint8Array.from(out);
}

function encodeLimits(flags: number, min: number, max: number): Uint8Array {
  const a = encodeU32(min);
  const b = encodeU32(max);
  const out = new Uint8Array(1 + a.length + b.length);
  out[0] = flags;
  out.set(a, 1);
  out.set(b, 1 + a.length);
  return out;
}

class ByteSink {
  private parts: Uint8Array[] = [];
  private length = 0;

  push(part: Uint8Array): void {
    this.parts.push(part);
    this.length += part.length;
  }

  finish(): Uint8Array<ArrayBuffer> {
    const out = new Uint8Array(this.length);
    let at = 0;
    for (const p of this.parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }
}

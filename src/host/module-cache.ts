/**
 * Compiled modules, identified by the sha256 of the bytes the tenant uploaded.
 *
 * The compiled module depends on the caps (capModule rewrites the binary), so one id can have
 * several compiled variants. The original bytes are kept so that a variant for new caps can be
 * compiled later without the tenant uploading again. Accounting is deliberately simple and
 * predictable: an id costs its original size once for the bytes plus once per compiled variant
 * (engines do not report compiled code size). Eviction is least-recently-used over ids.
 *
 * A cache of 0 bytes keeps nothing: each add compiles, and the id is hashed only if it is read.
 * A one-shot run (the CLI's) never reads it: hashing flite's 21 MB took longer than running it.
 */
import { createHash } from 'node:crypto';
import v8 from 'node:v8';
import { formatBytes } from './units.js';
import { capModule, capPages, ModuleLimitError, moduleInterface, type ModuleCaps, type ModuleInterface } from './wasm-limits.js';

/** A module compiled (or, in a cache that does not compile, checked) under one set of caps. */
export interface CachedModule {
  /** "sha256:<hex>" of the original (uncapped) bytes. */
  id: string;
  /** Length of the original bytes. */
  size: number;
  /** The compiled module; undefined in a cache made with `compile: false` (executors compile it). */
  module: WebAssembly.Module | undefined;
  imports: ModuleInterface['imports'];
  exports: ModuleInterface['exports'];
  /** It carries DWARF line information (a .debug_line custom section): traps get file:line. */
  debugLines: boolean;
}

/** The compiled module of an entry of a compiling cache (the executors', the workers'). */
export function compiledModule(m: CachedModule): WebAssembly.Module {
  if (!m.module) throw new Error(`module ${m.id} was not compiled: its cache only reads modules (process isolation)`);
  return m.module;
}

/** Thrown when one module cannot fit in the cache even with everything else evicted. */
export class ModuleTooLargeError extends Error {
  override readonly name = 'ModuleTooLargeError';
  readonly code = 'module_too_large';
  constructor(readonly size: number, readonly limit: number) {
    super(`Cannot run the module: it is ${formatBytes(size)}, and caching it takes ${formatBytes(2 * size)} `
      + `(its bytes plus one compiled copy), above the ${formatBytes(limit)} module cache limit`);
  }
}

interface Entry {
  id: string;
  original: Uint8Array<ArrayBuffer>;
  /** Compiled variants by caps key, least recently used first. */
  variants: Map<string, CachedModule>;
}

/** The id capsa gives a module: stable across uploads, so clients can refer to modules by content. */
export function moduleId(bytes: Uint8Array): string {
  return 'sha256:' + createHash('sha256').update(bytes).digest('hex');
}

/** Caps that lead to the same rewritten binary share one key, so they share one compiled module. */
function capsKey(caps: ModuleCaps): string {
  return `${Math.min(Math.floor(caps.memoryBytes / 65536), 65536)}p/${caps.tableElements}e${caps.memoryByEngine ? '/engine' : ''}`;
}

/** An LRU cache of compiled modules bounded by bytes, so repeated runs skip hashing-then-compiling. */
export class ModuleCache {
  readonly maxBytes: number;
  /**
   * false: modules are capped and read by capsa's bounded section reader (wasm-limits.ts), never
   * compiled, so untrusted bytes never reach this process's V8 compiler. The engine under process
   * isolation keeps such a cache: its executors compile.
   */
  readonly compile: boolean;
  /** Least recently used first; a get or add moves an entry to the end. */
  private readonly entries = new Map<string, Entry>();
  private total = 0;

  constructor(opts: { maxBytes: number; compile?: boolean }) {
    if (!(opts.maxBytes >= 0) || !Number.isFinite(opts.maxBytes)) {
      throw new RangeError(`maxBytes must be a non-negative finite number, not ${opts.maxBytes}`);
    }
    this.maxBytes = opts.maxBytes;
    this.compile = opts.compile ?? true;
  }

  /** Number of distinct modules (ids) held. */
  get size(): number {
    return this.entries.size;
  }

  /** Bytes charged against maxBytes: each original once plus once per compiled variant. */
  get bytes(): number {
    return this.total;
  }

  /** Whether the original bytes of `id` are held, i.e. whether get(id, caps) can succeed for any caps. */
  has(id: string): boolean {
    return this.entries.has(id);
  }

  /** The original bytes of `id` (not a copy: do not change them), or undefined if not held. */
  original(id: string): Uint8Array | undefined {
    return this.entries.get(id)?.original;
  }

  /** Forgets a module and all its compiled variants; returns whether it was held. */
  delete(id: string): boolean {
    const e = this.entries.get(id);
    if (e === undefined) return false;
    this.entries.delete(id);
    this.total -= e.original.length * (1 + e.variants.size);
    return true;
  }

  /** Caps and compiles `bytes` (or returns the cached compilation); throws ModuleLimitError or ModuleTooLargeError. */
  add(bytes: Uint8Array, caps: ModuleCaps): CachedModule {
    if (this.maxBytes === 0) {
      // Not copied (a copy of a large module costs as much as reading it): the id, if it is read,
      // is hashed from the caller's bytes as they are then.
      let id: string | undefined;
      return prepare(() => (id ??= moduleId(bytes)), bytes, caps, this.compile);
    }
    if (2 * bytes.length > this.maxBytes) throw new ModuleTooLargeError(bytes.length, this.maxBytes);
    const id = moduleId(bytes);
    const existing = this.entries.get(id);
    if (existing !== undefined) return this.variant(existing, caps);
    // Copy: the caller may reuse its buffer, and later recompilations must see these bytes.
    const original = bytes.slice();
    const compiled = prepare(id, original, caps, this.compile);
    const entry: Entry = { id, original, variants: new Map([[capsKey(caps), compiled]]) };
    this.entries.set(id, entry);
    this.total += 2 * original.length;
    this.evict(entry);
    return compiled;
  }

  /** The module `id` compiled under `caps`, compiling it from the held bytes if needed; undefined if unknown. */
  get(id: string, caps: ModuleCaps): CachedModule | undefined {
    const entry = this.entries.get(id);
    return entry === undefined ? undefined : this.variant(entry, caps);
  }

  private variant(entry: Entry, caps: ModuleCaps): CachedModule {
    this.entries.delete(entry.id);
    this.entries.set(entry.id, entry);
    const key = capsKey(caps);
    const hit = entry.variants.get(key);
    if (hit !== undefined) {
      entry.variants.delete(key);
      entry.variants.set(key, hit);
      return hit;
    }
    const compiled = prepare(entry.id, entry.original, caps, this.compile);
    entry.variants.set(key, compiled);
    this.total += entry.original.length;
    this.evict(entry);
    return compiled;
  }

  /** Evicts least recently used ids, then `keep`'s own oldest variants, until within budget. */
  private evict(keep: Entry): void {
    for (const e of this.entries.values()) {
      if (this.total <= this.maxBytes) return;
      if (e !== keep) this.delete(e.id);
    }
    // Only `keep` is left; its newest variant plus its bytes always fit (checked in add).
    for (const key of keep.variants.keys()) {
      if (this.total <= this.maxBytes || keep.variants.size <= 1) return;
      keep.variants.delete(key);
      this.total -= keep.original.length;
    }
  }
}

let engineConfigured = false;

/**
 * Makes every loop of guest code check for termination on each iteration.
 *
 * Under V8's dynamic tiering (Node's default), a Liftoff-compiled loop notices a termination
 * request only when the function's tiering budget (about 1.8 MB of executed code) runs out. A
 * loop whose iterations are each slow (a 64 MiB memory.fill, a memory.grow that sets off a full
 * GC) then ignores worker.terminate() for minutes: measured on Node 20, a memory.fill loop was
 * still running 20 s after terminate(), while with dynamic tiering off it stopped within 0.3 s.
 * The flag is read when a module is compiled, and every module a worker runs is compiled here.
 * It is process-wide: other WebAssembly in this process tiers up eagerly too, which costs
 * background compilation, not correctness.
 */
function configureEngine(): void {
  if (engineConfigured) return;
  // The price, measured on one-shot runs: every function a guest calls is also compiled by the
  // optimizing tier at once, on V8's background threads (hello.wasm: ~100 ms of CPU at load 20
  // where node:wasi spends ~3; functions still compile on first call, V8's default).
  v8.setFlagsFromString('--no-wasm-dynamic-tiering');
  engineConfigured = true;
}

/** The page limit --wasm-max-mem-pages was set to (once per process), or undefined. */
let engineMemoryPages: number | undefined;

/**
 * Whether the engine can hold this module's memory at caps.memoryBytes: the first module that asks
 * sets V8's process-wide page limit to its cap, and only modules with that same cap rely on it
 * afterwards (a later, larger cap would loosen the first); the others are rewritten as usual. The
 * limit also holds any other memory in the process, which is why only a process that runs one
 * guest asks for it (HostOptions.memoryCapByEngine).
 */
function engineHoldsMemory(caps: ModuleCaps): boolean {
  if (!caps.memoryByEngine) return false;
  const pages = capPages(caps.memoryBytes);
  if (engineMemoryPages === undefined) {
    v8.setFlagsFromString(`--wasm-max-mem-pages=${pages}`);
    engineMemoryPages = pages;
  }
  return engineMemoryPages === pages;
}

function prepare(id: string | (() => string), bytes: Uint8Array, caps: ModuleCaps, compile: boolean): CachedModule {
  let fields: Omit<CachedModule, 'id'>;
  if (!compile) {
    // A process that does not compile sets no engine flag: the memory cap is always rewritten here.
    const iface = moduleInterface(capModule(bytes, { memoryBytes: caps.memoryBytes, tableElements: caps.tableElements }));
    fields = { size: bytes.length, module: undefined, imports: iface.imports, exports: iface.exports, debugLines: iface.customSections.includes('.debug_line') };
  } else {
    const byEngine = engineHoldsMemory(caps);
    const capped = capModule(bytes, { memoryBytes: caps.memoryBytes, tableElements: caps.tableElements, ...(byEngine ? { memoryByEngine: true } : {}) });
    configureEngine();
    let module: WebAssembly.Module;
    try {
      module = new WebAssembly.Module(capped);
    } catch (e) {
      const reason = e instanceof Error ? e.message.replace(/^WebAssembly\.Module\(\): /, '') : String(e);
      throw new ModuleLimitError('invalid_module', `Cannot run the module: it is not valid WebAssembly (${reason})`);
    }
    fields = {
      size: bytes.length, module, imports: WebAssembly.Module.imports(module), exports: WebAssembly.Module.exports(module),
      debugLines: WebAssembly.Module.customSections(module, '.debug_line').length > 0,
    };
  }
  return typeof id === 'string' ? { id, ...fields } : Object.defineProperty(fields, 'id', { get: id, enumerable: true }) as CachedModule;
}

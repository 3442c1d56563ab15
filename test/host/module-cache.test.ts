import { createHash } from 'node:crypto';
import wabtInit from 'wabt';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';

// Counts sha256 computations, to show a cache of 0 bytes hashes only when the id is read.
const hashing = vi.hoisted(() => ({ count: 0 }));
vi.mock('node:crypto', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:crypto')>();
  return { ...actual, createHash: (...args: Parameters<typeof actual.createHash>) => { hashing.count++; return actual.createHash(...args); } };
});
import { ModuleCache, moduleId, ModuleTooLargeError } from '../../src/host/module-cache.js';
import { ModuleLimitError, moduleSummary, type ModuleCaps } from '../../src/host/wasm-limits.js';

const PAGE = 65536;
const small: ModuleCaps = { memoryBytes: 2 * PAGE, tableElements: 10 };
const large: ModuleCaps = { memoryBytes: 64 * PAGE, tableElements: 1000 };

let wabt: Awaited<ReturnType<typeof wabtInit>>;
beforeAll(async () => {
  wabt = await wabtInit();
});
afterEach(() => {
  vi.restoreAllMocks();
});

function wat(src: string): Uint8Array<ArrayBuffer> {
  const mod = wabt.parseWat('m.wat', src, {});
  try {
    return Uint8Array.from(mod.toBinary({}).buffer);
  } finally {
    mod.destroy();
  }
}

/** A distinct valid module per `n`, all of the same size (the export name differs in one digit). */
function moduleN(n: number): Uint8Array<ArrayBuffer> {
  return wat(`(module (memory 1) (func (export "f${n % 10}") (result i32) (i32.const ${n % 10}) (memory.grow)))`);
}

function grow(m: WebAssembly.Module | undefined, n: number): number {
  const exports = new WebAssembly.Instance(m!).exports as Record<string, (n: number) => number>;
  const f = Object.values(exports)[0]!;
  return f(n);
}

describe('ModuleCache', () => {
  it('identifies a module by the sha256 of its original bytes', () => {
    const bytes = moduleN(1);
    const cache = new ModuleCache({ maxBytes: 1 << 20 });
    const m = cache.add(bytes, small);
    const hex = createHash('sha256').update(bytes).digest('hex');
    expect(m.id).toBe(`sha256:${hex}`);
    expect(moduleId(bytes)).toBe(m.id);
    expect(m.size).toBe(bytes.length);
    expect(m.exports).toEqual([{ name: 'f1', kind: 'function' }]);
    expect(m.imports).toEqual([]);
    expect(cache.has(m.id)).toBe(true);
  });

  it('compiles the same bytes once per caps', () => {
    const spy = vi.spyOn(WebAssembly, 'Module');
    const cache = new ModuleCache({ maxBytes: 1 << 20 });
    const a = cache.add(moduleN(1), small);
    const b = cache.add(moduleN(1), small); // a fresh but identical buffer
    const c = cache.get(a.id, small);
    expect(b).toBe(a);
    expect(c).toBe(a);
    expect(spy).toHaveBeenCalledTimes(1);
    // Caps in the same whole page produce the same binary, so they share the compilation.
    expect(cache.get(a.id, { ...small, memoryBytes: small.memoryBytes + 100 })).toBe(a);
    expect(spy).toHaveBeenCalledTimes(1);
  });

  it('compiles a separate module for different caps, from the kept original bytes', () => {
    const cache = new ModuleCache({ maxBytes: 1 << 20 });
    const bytes = moduleN(2);
    const a = cache.add(bytes, small);
    bytes.fill(0); // the cache must have copied them
    const b = cache.get(a.id, large)!;
    expect(b).toBeDefined();
    expect(b.module).not.toBe(a.module);
    expect(b.id).toBe(a.id);
    expect(grow(a.module, 2)).toBe(-1); // 1 + 2 pages > 2
    expect(grow(b.module, 2)).toBe(1);
    expect(cache.size).toBe(1);
    expect(cache.bytes).toBe(3 * a.size); // original + two compiled variants
  });

  it('returns undefined for unknown ids', () => {
    const cache = new ModuleCache({ maxBytes: 1 << 20 });
    expect(cache.get('sha256:00', small)).toBeUndefined();
    expect(cache.has('sha256:00')).toBe(false);
  });

  it('evicts the least recently used module when over budget', () => {
    const size = moduleN(0).length;
    const cache = new ModuleCache({ maxBytes: 4 * size + 1 }); // two modules, one variant each
    const a = cache.add(moduleN(1), small);
    const b = cache.add(moduleN(2), small);
    expect(cache.bytes).toBe(4 * size);
    cache.get(a.id, small); // a is now more recent than b
    const c = cache.add(moduleN(3), small);
    expect(cache.has(a.id)).toBe(true);
    expect(cache.has(b.id)).toBe(false);
    expect(cache.has(c.id)).toBe(true);
    expect(cache.get(b.id, small)).toBeUndefined();
    expect(cache.size).toBe(2);
    expect(cache.bytes).toBe(4 * size);
  });

  it('evicts other modules to make room for a new variant, then the oldest variants of the same module', () => {
    const size = moduleN(0).length;
    const cache = new ModuleCache({ maxBytes: 3 * size });
    const a = cache.add(moduleN(1), small);
    const b = cache.add(moduleN(2), small);
    expect(cache.has(a.id)).toBe(false); // 4 * size does not fit
    const bLarge = cache.get(b.id, large)!;
    expect(cache.bytes).toBe(3 * size);
    const third = cache.get(b.id, { memoryBytes: 5 * PAGE, tableElements: 5 })!;
    expect(cache.bytes).toBe(3 * size); // the small variant went
    expect(cache.get(b.id, large)).toBe(bLarge);
    expect(cache.get(b.id, { memoryBytes: 5 * PAGE, tableElements: 5 })).toBe(third);
  });

  it('refuses a module that cannot fit even alone', () => {
    const bytes = moduleN(1);
    const cache = new ModuleCache({ maxBytes: 2 * bytes.length - 1 });
    expect(() => cache.add(bytes, small)).toThrow(ModuleTooLargeError);
    try {
      cache.add(bytes, small);
    } catch (e) {
      expect((e as ModuleTooLargeError).code).toBe('module_too_large');
      expect((e as Error).message).toMatch(/^Cannot run the module: it is \d+ B, and caching it takes \d+ B \(its bytes plus one compiled copy\), above the \d+ B module cache limit$/);
    }
    expect(cache.size).toBe(0);
    expect(cache.bytes).toBe(0);
    expect(new ModuleCache({ maxBytes: 2 * bytes.length }).add(bytes, small).size).toBe(bytes.length);
  });

  it('reports the engine\'s reason for a module that does not compile', () => {
    const bytes = wat('(module (func (result i32) (i64.const 0)))');
    const cache = new ModuleCache({ maxBytes: 1 << 20 });
    let err: unknown;
    try {
      cache.add(bytes, small);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ModuleLimitError);
    expect((err as ModuleLimitError).code).toBe('invalid_module');
    // The engine's wording differs between V8 versions; its reason names both types.
    expect((err as ModuleLimitError).message).toMatch(/^Cannot run the module: it is not valid WebAssembly \(.*i32.*i64.*\)$/);
    expect((err as ModuleLimitError).message).not.toContain('WebAssembly.Module()');
    expect(cache.size).toBe(0);
  });

  it('reports malformed bytes as invalid_module before the engine sees them', () => {
    const cache = new ModuleCache({ maxBytes: 1 << 20 });
    expect(() => cache.add(Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8]), small)).toThrow(/magic number/);
  });

  it('propagates limit errors and caches nothing for them', () => {
    const bytes = wat('(module (memory 10))');
    const cache = new ModuleCache({ maxBytes: 1 << 20 });
    expect(() => cache.add(bytes, small)).toThrow(expect.objectContaining({ code: 'memory_limit' }));
    expect(cache.size).toBe(0);
    const ok = cache.add(bytes, large);
    expect(moduleSummary(bytes).memories[0]).toEqual({ min: 10, shared: false, imported: false });
    expect(() => cache.get(ok.id, small)).toThrow(expect.objectContaining({ code: 'memory_limit' }));
    expect(cache.bytes).toBe(2 * bytes.length);
  });

  it('deletes a module with all its variants', () => {
    const cache = new ModuleCache({ maxBytes: 1 << 20 });
    const a = cache.add(moduleN(1), small);
    cache.get(a.id, large);
    expect(cache.delete(a.id)).toBe(true);
    expect(cache.delete(a.id)).toBe(false);
    expect(cache.has(a.id)).toBe(false);
    expect(cache.size).toBe(0);
    expect(cache.bytes).toBe(0);
  });

  it('with maxBytes 0 keeps nothing and hashes a module only when its id is read', () => {
    const cache = new ModuleCache({ maxBytes: 0 });
    const bytes = wat('(module (memory 1))');
    const before = hashing.count;
    const m = cache.add(bytes, small);
    expect(hashing.count).toBe(before);
    expect(moduleSummary(bytes).memories[0]).toMatchObject({ min: 1 });
    expect(WebAssembly.Module.exports(m.module!)).toEqual([]);
    expect(cache.size).toBe(0);
    expect(cache.bytes).toBe(0);
    expect(m.id).toBe(moduleId(bytes));
    expect(hashing.count).toBe(before + 2); // the id, then moduleId above
    expect(m.id).toBe(moduleId(bytes));
    expect(hashing.count).toBe(before + 3); // the id is hashed once
  });

  it('with maxBytes 0 still caps and refuses what it cannot run', () => {
    const cache = new ModuleCache({ maxBytes: 0 });
    // moduleN(2) grows its one page by 2: past the 2-page cap, within the 64-page one.
    expect(grow(cache.add(moduleN(2), small).module, 0)).toBe(-1);
    expect(grow(cache.add(moduleN(2), large).module, 0)).toBe(1);
    expect(() => cache.add(Uint8Array.of(0, 97, 115, 109, 1, 0, 0, 0, 99), small)).toThrow(ModuleLimitError);
  });
});

import fc from 'fast-check';
import wabtInit from 'wabt';
import { beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { capModule, ModuleLimitError, moduleInterface, moduleSummary, type ModuleCaps } from '../../src/host/wasm-limits.js';

const MiB = 1 << 20;
const PAGE = 65536;
const HEADER = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];

let wabt: Awaited<ReturnType<typeof wabtInit>>;
beforeAll(async () => {
  wabt = await wabtInit();
});

/** Assembles WAT with the features capsa's tests need (threads for shared memory, exceptions for tags). */
function wat(src: string): Uint8Array<ArrayBuffer> {
  const mod = wabt.parseWat('m.wat', src, { threads: true, exceptions: true, reference_types: true, bulk_memory: true });
  try {
    return Uint8Array.from(mod.toBinary({}).buffer);
  } finally {
    mod.destroy();
  }
}

function bin(...bytes: number[]): Uint8Array<ArrayBuffer> {
  return Uint8Array.from([...HEADER, ...bytes]);
}

function leb(n: number): number[] {
  const out: number[] = [];
  do {
    out.push((n % 128) | (n >= 128 ? 0x80 : 0));
    n = Math.floor(n / 128);
  } while (n > 0);
  return out;
}

function caps(memoryBytes: number, tableElements = 1000): ModuleCaps {
  return { memoryBytes, tableElements };
}

/** The ModuleLimitError `fn` throws; fails the test on any other outcome. */
function limitError(fn: () => unknown): ModuleLimitError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(ModuleLimitError);
    return e as ModuleLimitError;
  }
  throw new Error('expected a ModuleLimitError');
}

function instantiate(bytes: Uint8Array<ArrayBuffer>, imports: WebAssembly.Imports = {}): WebAssembly.Exports {
  return new WebAssembly.Instance(new WebAssembly.Module(bytes), imports).exports;
}

describe('capModule: byte-level fixture', () => {
  it('adds a maximum of 2 pages to a min-only memory, re-encoding the section size', () => {
    const input = bin(0x05, 0x03, 0x01, 0x00, 0x01); // memory section: 1 memory, flags 0, min 1
    const output = capModule(input, caps(2 * PAGE));
    expect([...output]).toEqual([...HEADER, 0x05, 0x04, 0x01, 0x01, 0x01, 0x02]);
    expect(WebAssembly.validate(input)).toBe(true);
    expect(WebAssembly.validate(output)).toBe(true);
  });

  it('rounds the memory cap down to whole pages', () => {
    const output = capModule(bin(0x05, 0x03, 0x01, 0x00, 0x01), caps(3 * PAGE - 1));
    expect(moduleSummary(output).memories).toEqual([{ min: 1, max: 2, shared: false, imported: false }]);
  });

  it('returns an already-capped module itself, unchanged', () => {
    const input = bin(0x05, 0x04, 0x01, 0x01, 0x01, 0x02);
    const output = capModule(input, caps(4 * PAGE));
    expect(output).toBe(input);
    expect([...output]).toEqual([...input]);
  });

  it('copies custom and unrelated sections byte for byte, and does not touch non-canonical LEBs elsewhere', () => {
    const custom = [0x00, 0x06, 0x03, 0x61, 0x62, 0x63, 0xde, 0xad]; // custom "abc" with payload dead
    const types = [0x01, 0x84, 0x80, 0x80, 0x80, 0x00, 0x01, 0x60, 0x00, 0x00]; // size 4 as a 5-byte LEB
    const input = bin(...custom, ...types, 0x05, 0x03, 0x01, 0x00, 0x00, ...custom);
    const output = capModule(input, caps(PAGE));
    expect([...output]).toEqual([...HEADER, ...custom, ...types, 0x05, 0x04, 0x01, 0x01, 0x00, 0x01, ...custom]);
    expect(WebAssembly.validate(output)).toBe(true);
  });
});

describe('capModule: memories', () => {
  it('gives a memory without a maximum the cap as its maximum', () => {
    const out = capModule(wat('(module (memory 1))'), caps(64 * MiB));
    expect(moduleSummary(out).memories).toEqual([{ min: 1, max: 1024, shared: false, imported: false }]);
    expect(WebAssembly.validate(out)).toBe(true);
  });

  it('lowers a maximum above the cap and keeps one below it', () => {
    const above = capModule(wat('(module (memory 1 4096))'), caps(64 * MiB));
    expect(moduleSummary(above).memories[0]).toMatchObject({ min: 1, max: 1024 });
    const belowInput = wat('(module (memory 1 16))');
    const below = capModule(belowInput, caps(64 * MiB));
    expect(moduleSummary(below).memories[0]).toMatchObject({ min: 1, max: 16 });
    expect([...below]).toEqual([...belowInput]);
  });

  it('returns the bytes themselves, not a copy, when no cap changes them', () => {
    const input = wat('(module (memory 1 16) (table 2 4 funcref))');
    expect(capModule(input, { memoryBytes: 64 * MiB, tableElements: 10 })).toBe(input);
    // A change is a new buffer: the caller's bytes are never written.
    const changed = capModule(input, { memoryBytes: 8 * PAGE, tableElements: 10 });
    expect(changed).not.toBe(input);
    expect(moduleSummary(input).memories[0]).toMatchObject({ max: 16 });
  });

  it('refuses a memory whose minimum is above the cap, saying how big it is', () => {
    const e = limitError(() => capModule(wat('(module (memory 2048))'), caps(64 * MiB)));
    expect(e.code).toBe('memory_limit');
    expect(e.message).toBe('Cannot run the module: its memory 0 starts at 2048 pages (128 MiB), above the 64 MiB limit');
  });

  it('allows a minimum exactly at the cap', () => {
    const out = capModule(wat('(module (memory 1024))'), caps(64 * MiB));
    expect(moduleSummary(out).memories[0]).toMatchObject({ min: 1024, max: 1024 });
  });

  it('caps an imported memory, and the engine then rejects a host memory that could grow past it', () => {
    const src = `(module
      (import "env" "f" (func (param i32) (result i32)))
      (import "env" "g" (global (mut i32)))
      (import "env" "memory" (memory 1)))`;
    const out = capModule(wat(src), caps(2 * PAGE));
    expect(moduleSummary(out).memories).toEqual([{ min: 1, max: 2, shared: false, imported: true }]);
    const env = (memory: WebAssembly.Memory) => ({
      env: { f: (x: number) => x, g: new WebAssembly.Global({ value: 'i32', mutable: true }, 0), memory },
    });
    expect(() => instantiate(out, env(new WebAssembly.Memory({ initial: 1 })))).toThrow(WebAssembly.LinkError);
    expect(() => instantiate(out, env(new WebAssembly.Memory({ initial: 1, maximum: 3 })))).toThrow(WebAssembly.LinkError);
    expect(() => instantiate(out, env(new WebAssembly.Memory({ initial: 1, maximum: 2 })))).not.toThrow();
  });

  it('numbers memories with imports first in error messages', () => {
    const e = limitError(() => capModule(wat('(module (import "env" "m" (memory 40)))'), caps(2 * MiB)));
    expect(e.message).toBe('Cannot run the module: its imported memory 0 starts at 40 pages (2.5 MiB), above the 2 MiB limit');
  });

  it('keeps the shared bit on shared memories', () => {
    const input = wat('(module (memory 1 100 shared))');
    expect(moduleSummary(input).memories[0]).toEqual({ min: 1, max: 100, shared: true, imported: false });
    const out = capModule(input, caps(4 * PAGE));
    expect(moduleSummary(out).memories[0]).toEqual({ min: 1, max: 4, shared: true, imported: false });
    expect(WebAssembly.validate(out)).toBe(true);
    expect(() => instantiate(out)).not.toThrow();
  });

  it('caps a shared imported memory', () => {
    const out = capModule(wat('(module (import "env" "m" (memory 1 65536 shared)))'), caps(8 * PAGE));
    expect(moduleSummary(out).memories[0]).toEqual({ min: 1, max: 8, shared: true, imported: true });
    const ok = new WebAssembly.Memory({ initial: 1, maximum: 8, shared: true });
    expect(() => instantiate(out, { env: { m: ok } })).not.toThrow();
  });

  it('makes memory.grow past the cap return -1', () => {
    const src = `(module (memory 1)
      (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0)))
      (func (export "pages") (result i32) (memory.size)))`;
    const uncapped = instantiate(wat(src)) as { grow(n: number): number };
    expect(uncapped.grow(3)).toBe(1);

    const capped = instantiate(capModule(wat(src), caps(2 * PAGE))) as { grow(n: number): number; pages(): number };
    expect(capped.grow(2)).toBe(-1);
    expect(capped.grow(1)).toBe(1);
    expect(capped.pages()).toBe(2);
    expect(capped.grow(1)).toBe(-1);
    expect(capped.grow(0)).toBe(2);
  });

  it('with memoryByEngine, leaves a module\'s own memory to the engine: no copy, the cap still checked', () => {
    const input = wat('(module (memory 1) (memory 2 4096))');
    const byEngine = { memoryBytes: 64 * MiB, tableElements: 10, memoryByEngine: true };
    expect(capModule(input, byEngine)).toBe(input);
    const e = limitError(() => capModule(wat('(module (memory 2048))'), byEngine));
    expect(e.message).toBe('Cannot run the module: its memory 0 starts at 2048 pages (128 MiB), above the 64 MiB limit');
    // Shared and imported memories, and tables, are rewritten as before.
    expect(moduleSummary(capModule(wat('(module (memory 1 100 shared))'), { ...byEngine, memoryBytes: 4 * PAGE })).memories[0]).toMatchObject({ max: 4 });
    expect(moduleSummary(capModule(wat('(module (import "env" "m" (memory 1)))'), { ...byEngine, memoryBytes: 4 * PAGE })).memories[0]).toMatchObject({ max: 4 });
    expect(moduleSummary(capModule(wat('(module (memory 1) (table 1 funcref))'), byEngine)).tables[0]).toMatchObject({ max: 10 });
  });

  it('caps at 65536 pages, the most a 32-bit memory may declare, when the cap is larger', () => {
    const out = capModule(wat('(module (memory 0))'), caps(2 ** 40));
    expect(moduleSummary(out).memories[0]).toMatchObject({ max: 65536 });
    expect(WebAssembly.validate(out)).toBe(true);
  });

  it('caps a zero-byte limit at zero pages', () => {
    const out = capModule(wat('(module (memory 0))'), caps(0));
    expect(moduleSummary(out).memories[0]).toMatchObject({ min: 0, max: 0 });
    expect(limitError(() => capModule(wat('(module (memory 1))'), caps(PAGE - 1))).code).toBe('memory_limit');
  });

  it('caps every memory section even when a hostile module repeats it', () => {
    const mem = [0x05, 0x03, 0x01, 0x00, 0x00];
    const out = capModule(bin(...mem, ...mem), caps(PAGE));
    expect(moduleSummary(out).memories.map((m) => m.max)).toEqual([1, 1]);
  });
});

describe('capModule: tables', () => {
  it('caps tables without a maximum and lowers maxima above the cap, sharing the cap among them', () => {
    // 50 elements in all; 3 are taken by the minima and the other 47 shared as evenly as they divide.
    const out = capModule(wat('(module (table 1 funcref) (table 2 100000 externref))'), caps(PAGE, 50));
    expect(moduleSummary(out).tables).toEqual([
      { min: 1, max: 25, imported: false },
      { min: 2, max: 25, imported: false },
    ]);
    expect(WebAssembly.validate(out)).toBe(true);
  });

  it('refuses a table whose minimum is above the cap', () => {
    const e = limitError(() => capModule(wat('(module (table 20000 funcref))'), caps(PAGE, 10000)));
    expect(e.code).toBe('table_limit');
    expect(e.message).toBe('Cannot run the module: its table 0 starts at 20000 elements, 10000 above the 10000-element limit on all tables together (limits.tableElements)');
  });

  it('caps imported tables, skipping function, global and tag imports before them', () => {
    const src = `(module
      (type $t (func (param i32)))
      (import "env" "f" (func (type $t)))
      (import "env" "g" (global f64))
      (import "env" "e" (tag (type $t)))
      (import "env" "t" (table 3 externref))
      (import "env" "m" (memory 0 9))
      (table 1 funcref))`;
    const input = wat(src);
    const out = capModule(input, caps(4 * PAGE, 10));
    expect(moduleSummary(out)).toEqual({
      memories: [{ min: 0, max: 4, shared: false, imported: true }],
      tables: [{ min: 3, max: 6, imported: true }, { min: 1, max: 4, imported: false }],
    });
    expect(WebAssembly.validate(out)).toBe(WebAssembly.validate(input));
  });

  it('caps the elements of all tables together: 50 tables of 100,000 are refused, saying by how much', () => {
    const e = limitError(() => capModule(wat(`(module ${'(table 100000 funcref)'.repeat(50)})`), caps(PAGE, 100_000)));
    expect(e.code).toBe('table_limit');
    expect(e.message).toBe('Cannot run the module: its 50 tables start at 5000000 elements in total, 4900000 above the 100000-element limit on all tables together (limits.tableElements)');
    // The same total in one table is refused the same way; at the limit, it runs.
    expect(limitError(() => capModule(wat('(module (table 100001 funcref))'), caps(PAGE, 100_000))).code).toBe('table_limit');
    expect(moduleSummary(capModule(wat(`(module ${'(table 2000 funcref)'.repeat(50)})`), caps(PAGE, 100_000))).tables
      .every((t) => t.min === 2000 && t.max === 2000)).toBe(true);
  });

  it('shares the room above the minima fairly: a table declaring little keeps its maximum', () => {
    const out = capModule(wat('(module (table 0 10 funcref) (table 0 externref) (table 5 funcref))'), caps(PAGE, 100));
    // 95 to share: the first wants 10 and gets it; the other two split the remaining 85.
    expect(moduleSummary(out).tables.map((t) => t.max)).toEqual([10, 42, 48]);
    expect(WebAssembly.validate(out)).toBe(true);
  });

  it('keeps a maximum below the minimum as it is, for the engine to refuse', () => {
    const input = Uint8Array.from([...HEADER, 0x04, 0x05, 0x01, 0x70, 0x01, 0x05, 0x02]); // table min 5 max 2
    expect(WebAssembly.validate(input)).toBe(false);
    expect(WebAssembly.validate(capModule(input, caps(PAGE, 100)))).toBe(false);
  });

  it('counts element segment entries against the same limit, in all eight segment encodings', () => {
    const src = (n: number) => `(module (table $t 10 funcref) (func $f)
      (elem (i32.const 0) ${'$f '.repeat(n)})
      (elem func ${'$f '.repeat(n)})
      (elem (table $t) (i32.const 0) func ${'$f '.repeat(n)})
      (elem declare func $f)
      (elem (i32.const 0) funcref ${'(ref.func $f) '.repeat(n)})
      (elem funcref ${'(ref.null func) '.repeat(n)})
      (elem (table $t) (offset (i32.const 1)) funcref ${'(item (ref.func $f)) '.repeat(n)})
      (elem declare funcref (ref.func $f)))`;
    const input = wat(src(2)); // 6 segments of 2 entries and 2 declarative ones of 1: 14
    expect(WebAssembly.validate(input)).toBe(true);
    expect(WebAssembly.validate(capModule(input, caps(PAGE, 14)))).toBe(true);
    expect(limitError(() => capModule(input, caps(PAGE, 13))).message).toContain('its element segments hold 14 entries in total, 1 above');
  });

  it('refuses element segments holding more entries than the table limit, before the engine builds them', () => {
    // One table.init from a passive segment makes V8 build all its entries at once in the worker's heap.
    const n = 3000;
    const e = limitError(() => capModule(wat(`(module (table 1 funcref) (func $f) (elem func ${'$f '.repeat(n)}))`), caps(PAGE, 1000)));
    expect(e.code).toBe('table_limit');
    expect(e.message).toBe('Cannot run the module: its element segments hold 3000 entries in total, 2000 above the 1000-element limit on all tables together (limits.tableElements)');
  });

  it('refuses more than 100 tables, even empty ones', () => {
    expect(limitError(() => capModule(wat(`(module ${'(table 0 funcref)'.repeat(101)})`), caps(PAGE))).message)
      .toBe('Cannot run the module: it declares more than 100 tables, the most capsa accepts');
    expect(() => capModule(wat(`(module ${'(table 0 funcref)'.repeat(100)})`), caps(PAGE))).not.toThrow();
  });

  it('makes table.grow past the cap return -1', () => {
    const src = `(module (table 1 externref)
      (func (export "grow") (param i32) (result i32) (table.grow (ref.null extern) (local.get 0))))`;
    const t = instantiate(capModule(wat(src), caps(PAGE, 4))) as { grow(n: number): number };
    expect(t.grow(4)).toBe(-1);
    expect(t.grow(3)).toBe(1);
    expect(t.grow(1)).toBe(-1);
  });

  it('re-encodes a section whose size LEB grows from one byte to two', () => {
    const tables = Array.from({ length: 40 }, () => '(table 0 funcref)').join(' ');
    const input = wat(`(module ${tables})`);
    const sizeAt = input.indexOf(0x04, 8) + 1;
    expect(input[sizeAt]).toBeLessThan(0x80); // one-byte section size before
    const out = capModule(input, caps(PAGE, 40 * 100000)); // 100000 each needs a 3-byte LEB: 40 * 6 + 1 > 127
    expect(out[sizeAt]! & 0x80).toBe(0x80);
    expect(WebAssembly.validate(out)).toBe(true);
    const summary = moduleSummary(out).tables;
    expect(summary).toHaveLength(40);
    expect(summary.every((t) => t.min === 0 && t.max === 100000)).toBe(true);
  });

  it('re-encodes an import section that grows past 127 bytes, keeping later sections intact', () => {
    const funcs = Array.from({ length: 12 }, (_, i) => `(import "wasi_snapshot_preview1" "f${i}" (func))`).join(' ');
    const src = `(module ${funcs} (import "env" "memory" (memory 1))
      (func (export "pages") (result i32) (memory.size)))`;
    const input = wat(src);
    const out = capModule(input, caps(1024 * MiB)); // 16384 pages: a 3-byte LEB
    expect(out.length).toBeGreaterThan(input.length);
    expect(WebAssembly.validate(out)).toBe(true);
    expect(moduleSummary(out).memories[0]).toEqual({ min: 1, max: 16384, shared: false, imported: true });
    const imports = WebAssembly.Module.imports(new WebAssembly.Module(out));
    expect(imports).toHaveLength(13);
  });

  it('reads (ref null? heaptype) table types with a LEB heap type', () => {
    // table section: 1 table, (ref null func) = 0x63 0x70, flags 0, min 1
    const out = capModule(bin(0x04, 0x05, 0x01, 0x63, 0x70, 0x00, 0x01), caps(PAGE, 7));
    expect(moduleSummary(out).tables).toEqual([{ min: 1, max: 7, imported: false }]);
    // type index heap type as a multi-byte LEB
    const out2 = capModule(bin(0x04, 0x06, 0x01, 0x64, 0x81, 0x01, 0x00, 0x01), caps(PAGE, 7));
    expect([...out2.subarray(8)]).toEqual([0x04, 0x07, 0x01, 0x64, 0x81, 0x01, 0x01, 0x01, 0x07]);
  });
});

describe('capModule: malformed and unsupported input', () => {
  const cases: [string, Uint8Array<ArrayBuffer>, RegExp][] = [
    ['empty input', new Uint8Array(), /0 bytes long/],
    ['bad magic', Uint8Array.from([0x00, 0x61, 0x73, 0x6e, 1, 0, 0, 0]), /magic number/],
    ['another version', Uint8Array.from([0x00, 0x61, 0x73, 0x6d, 2, 0, 0, 0]), /unsupported binary version/],
    ['a component', Uint8Array.from([0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00]), /component/],
    ['a truncated section header', bin(0x05), /truncated \(the size of section 5/],
    ['a section past the end', bin(0x05, 0x10, 0x01), /claims 16 bytes but only 1 remain/],
    ['an overlong LEB', bin(0x05, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00), /longer than the 5 bytes/],
    ['a LEB above 2^32', bin(0x05, 0xff, 0xff, 0xff, 0xff, 0x1f), /not a valid 32-bit LEB128/],
    ['a truncated memory', bin(0x05, 0x02, 0x01, 0x01), /truncated \(the minimum of memory 0/],
    ['a count that overruns its section', bin(0x05, 0x03, 0x02, 0x00, 0x00), /truncated \(the limits of memory 1/],
    ['trailing bytes in a section', bin(0x05, 0x04, 0x01, 0x00, 0x00, 0x00), /1 unexpected bytes at its end/],
    ['a 64-bit memory', bin(0x05, 0x03, 0x01, 0x04, 0x00), /memory 0 is 64-bit/],
    ['a 64-bit table', bin(0x04, 0x04, 0x01, 0x70, 0x04, 0x00), /table 0 is 64-bit/],
    ['a custom page size', bin(0x05, 0x04, 0x01, 0x08, 0x00, 0x10), /unknown limits flags 0x08/],
    ['a shared table', bin(0x04, 0x05, 0x01, 0x70, 0x03, 0x00, 0x01), /table 0 is shared/],
    ['a shared memory without maximum', bin(0x05, 0x03, 0x01, 0x02, 0x01), /shared but declares no maximum/],
    ['a table with an initializer', bin(0x04, 0x08, 0x01, 0x40, 0x00, 0x70, 0x00, 0x01, 0xd0, 0x70), /table-with-initializer/],
    ['a bad reference type', bin(0x04, 0x04, 0x01, 0x7f, 0x00, 0x01), /0x7f, not a reference type/],
    ['an unknown import kind', bin(0x02, 0x05, 0x01, 0x00, 0x00, 0x05, 0x00), /import 0 has unknown kind 0x05/],
    ['an import name past its section', bin(0x02, 0x03, 0x01, 0x09, 0x61), /import module name at byte 12 runs past/],
    ['a huge import count in a tiny section', bin(0x02, 0x05, 0xff, 0xff, 0xff, 0xff, 0x0f), /truncated/],
  ];
  it.each(cases)('refuses %s as invalid_module', (_name, bytes, message) => {
    const e = limitError(() => capModule(bytes, caps(PAGE)));
    expect(e.code).toBe('invalid_module');
    expect(e.message).toMatch(/^Cannot run the module: /);
    expect(e.message).toMatch(message);
    expect(limitError(() => moduleSummary(bytes)).code).toBe('invalid_module');
  });

  it('refuses a module declaring more memories or tables than the engine allows, without building them all', () => {
    /**
     * A section that declares a million entries but holds only `held` of them: a parser that read
     * them all before judging the count would say "truncated", not "more than".
     */
    const huge = (id: number, entry: number[], held: number) => {
      const body = [...leb(1_000_000), ...new Array<number[]>(held).fill(entry).flat()];
      return Uint8Array.from([...HEADER, id, ...leb(body.length), ...body]);
    };
    expect(limitError(() => capModule(huge(0x05, [0x00, 0x00], 101), caps(PAGE))).message).toMatch(/more than 100 memories/);
    expect(limitError(() => capModule(huge(0x04, [0x70, 0x00, 0x00], 101), caps(PAGE))).message).toMatch(/more than 100 tables/);
  });

  it('refuses a value that is not a Uint8Array without a TypeError', () => {
    expect(limitError(() => capModule('nope' as unknown as Uint8Array, caps(PAGE))).code).toBe('invalid_module');
  });

  it('treats nonsense caps as a host bug (RangeError)', () => {
    const m = bin(0x05, 0x03, 0x01, 0x00, 0x01);
    expect(() => capModule(m, caps(-1))).toThrow(RangeError);
    expect(() => capModule(m, caps(Number.NaN))).toThrow(RangeError);
    expect(() => capModule(m, caps(PAGE, 1.5))).toThrow(RangeError);
  });
});

describe('capModule: fuzzing', () => {
  let seeds: Uint8Array<ArrayBuffer>[];
  beforeAll(() => {
    seeds = [
      wat(`(module
        (type $t (func (param i32)))
        (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
        (import "env" "g" (global (mut i32)))
        (import "env" "e" (tag (type $t)))
        (import "env" "t" (table 1 funcref))
        (import "env" "m" (memory 1 100))
        (table 2 10 externref)
        (global $x (mut i32) (i32.const 0))
        (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0)))
        (data (i32.const 0) "hello"))`),
      wat('(module (memory 3 5 shared) (func (export "f") (result i32) (i32.atomic.load (i32.const 0))))'),
      wat(`(module (table 4 funcref) (elem (i32.const 0) $f) (func $f) (memory (export "memory") 2))`),
      bin(0x00, 0x03, 0x01, 0x61, 0x00, 0x05, 0x03, 0x01, 0x00, 0x01),
    ];
    for (const s of seeds) expect(WebAssembly.validate(s)).toBe(true);
  });

  const capsArb = fc.record({
    memoryBytes: fc.oneof(fc.integer({ min: 0, max: 2 ** 33 }), fc.constantFrom(0, PAGE, 64 * MiB, 2 ** 32)),
    tableElements: fc.oneof(fc.integer({ min: 0, max: 2 ** 32 - 1 }), fc.integer({ min: 0, max: 20 })),
  });

  /** Refusals of encodings newer engines may accept (memory64 shipped after Node 20). */
  const DELIBERATE = /64-bit|table-with-initializer|is shared|limits flags|component|version/;

  /** The contract under hostile input: a result or a ModuleLimitError, and a valid result stays valid. */
  function check(input: Uint8Array<ArrayBuffer>, c: ModuleCaps): void {
    let out: Uint8Array<ArrayBuffer>;
    try {
      out = capModule(input, c);
    } catch (e) {
      if (!(e instanceof ModuleLimitError)) throw e;
      // The parser must not refuse what the engine accepts, apart from features capsa refuses on purpose.
      if (e.code === 'invalid_module' && !DELIBERATE.test(e.message)) expect(WebAssembly.validate(input)).toBe(false);
      return;
    }
    const summary = moduleSummary(out);
    const capPages = Math.min(Math.floor(c.memoryBytes / PAGE), 65536);
    for (const m of summary.memories) expect(m.max).toBeLessThanOrEqual(capPages);
    for (const t of summary.tables) expect(t.max).toBeLessThanOrEqual(c.tableElements);
    if (WebAssembly.validate(input)) {
      expect(WebAssembly.validate(out)).toBe(true);
      expect(summary.tables.reduce((n, t) => n + t.max!, 0)).toBeLessThanOrEqual(c.tableElements);
    }
  }

  it('survives random byte mutations and truncations of valid modules', () => {
    const mutation = fc.record({
      seed: fc.nat(),
      edits: fc.array(fc.record({ at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }), op: fc.constantFrom('set', 'insert', 'delete') }), { maxLength: 6 }),
      truncate: fc.option(fc.nat(), { nil: undefined }),
    });
    fc.assert(
      fc.property(mutation, capsArb, ({ seed, edits, truncate }, c) => {
        const bytes = [...seeds[seed % seeds.length]!];
        for (const { at, byte, op } of edits) {
          const i = at % (bytes.length + 1);
          if (op === 'set' && i < bytes.length) bytes[i] = byte;
          else if (op === 'insert') bytes.splice(i, 0, byte);
          else bytes.splice(i, 1);
        }
        const input = Uint8Array.from(truncate === undefined ? bytes : bytes.slice(0, truncate % (bytes.length + 1)));
        check(input, c);
      }),
      { numRuns: 3000 },
    );
  });

  it('survives arbitrary bytes after a valid header', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), capsArb, (tail, c) => check(bin(...tail), c)),
      { numRuns: 3000 },
    );
  });

  it('produces a valid module for every valid module and caps', () => {
    const limits = (max: number) =>
      fc.integer({ min: 0, max }).chain((min) =>
        fc.record({ min: fc.constant(min), max: fc.option(fc.integer({ min, max }), { nil: undefined }) }));
    const moduleArb = fc.record({
      memory: fc.option(fc.record({ limits: limits(70000), shared: fc.boolean(), imported: fc.boolean() }), { nil: undefined }),
      tables: fc.array(fc.record({ limits: limits(2 ** 20), imported: fc.boolean(), ref: fc.constantFrom('funcref', 'externref') }), { maxLength: 3 }),
    });
    fc.assert(
      fc.property(moduleArb, capsArb, (m, c) => {
        const lim = (l: { min: number; max: number | undefined }) => `${l.min}${l.max === undefined ? '' : ` ${l.max}`}`;
        const parts: string[] = [];
        for (const t of m.tables.filter((t) => t.imported)) parts.push(`(import "env" "t" (table ${lim(t.limits)} ${t.ref}))`);
        if (m.memory !== undefined) {
          const mem = `${lim(m.memory.limits)}${m.memory.shared ? ' shared' : ''}`;
          parts.push(m.memory.imported ? `(import "env" "m" (memory ${mem}))` : `(memory ${mem})`);
        }
        for (const t of m.tables.filter((t) => !t.imported)) parts.push(`(table ${lim(t.limits)} ${t.ref})`);
        const input = wat(`(module ${parts.join(' ')})`);
        const valid = WebAssembly.validate(input);
        let out: Uint8Array<ArrayBuffer>;
        try {
          out = capModule(input, c);
        } catch (e) {
          if (!(e instanceof ModuleLimitError)) throw e;
          if (e.code === 'invalid_module') {
            // Only the engine-invalid "shared without maximum" is refused from a well-formed module.
            expect(valid).toBe(false);
            return;
          }
          const mins = [...(m.memory ? [m.memory.limits.min * PAGE > c.memoryBytes || m.memory.limits.min > 65536] : []),
            m.tables.reduce((n, t) => n + t.limits.min, 0) > c.tableElements];
          expect(mins).toContain(true);
          return;
        }
        if (valid) expect(WebAssembly.validate(out)).toBe(true);
        const before = moduleSummary(input);
        const after = moduleSummary(out);
        expect(after.memories.map((x) => x.min)).toEqual(before.memories.map((x) => x.min));
        expect(after.tables.map((x) => x.min)).toEqual(before.tables.map((x) => x.min));
        expect(after.memories.map((x) => x.shared)).toEqual(before.memories.map((x) => x.shared));
      }),
      { numRuns: 400 },
    );
  });
});

describe('moduleInterface: imports and exports without compiling', () => {
  const HELLO = new Uint8Array(readFileSync(new URL('../../guests/build/hello.wasm', import.meta.url)));
  let seeds: Uint8Array<ArrayBuffer>[];
  beforeAll(() => {
    seeds = [
      wat(`(module
        (type $t (func (param i32)))
        (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
        (import "env" "g" (global (mut i32)))
        (import "env" "e" (tag (type $t)))
        (import "env" "t" (table 1 funcref))
        (import "env" "m" (memory 1 100))
        (import "\\c3\\a9" "\\c3\\bc" (func))
        (table $tt (export "tab") 2 10 externref)
        (global $x (export "glob") (mut i32) (i32.const 0))
        (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0)))
        (func (export "") (export "second name") (param i32))
        (export "mem" (memory 0))
        (data (i32.const 0) "hello"))`),
      wat('(module (memory (export "memory") 3 5 shared) (func (export "f") (result i32) (i32.atomic.load (i32.const 0))))'),
      HELLO,
    ];
    for (const s of seeds) expect(WebAssembly.validate(s)).toBe(true);
  });

  /** What V8 says, in the reader's shape. */
  const engine = (bytes: Uint8Array<ArrayBuffer>) => {
    const m = new WebAssembly.Module(bytes);
    return {
      imports: WebAssembly.Module.imports(m).map(({ module, name, kind }) => ({ module, name, kind })),
      exports: WebAssembly.Module.exports(m).map(({ name, kind }) => ({ name, kind })),
    };
  };

  it('lists what the engine lists, for every kind and for a real guest', () => {
    for (const s of seeds) {
      const i = moduleInterface(s);
      expect({ imports: i.imports, exports: i.exports }).toEqual(engine(s));
    }
    expect(moduleInterface(seeds[0]!).imports.map((i) => i.kind)).toEqual(['function', 'global', 'tag', 'table', 'memory', 'function']);
  });

  it('names custom sections', () => {
    // A custom section "x" of two bytes after the header.
    expect(moduleInterface(bin(0x00, 0x03, 0x01, 0x78, 0xaa)).customSections).toEqual(['x']);
  });

  const refused = (bytes: Uint8Array<ArrayBuffer>, message: RegExp) => {
    expect(WebAssembly.validate(bytes)).toBe(false);
    let err: unknown;
    try { moduleInterface(bytes); } catch (e) { err = e; }
    expect(err).toBeInstanceOf(ModuleLimitError);
    expect((err as ModuleLimitError).code).toBe('invalid_module');
    expect((err as Error).message).toMatch(message);
  };

  it('refuses what the engine refuses in the sections it reads, naming the fault', () => {
    // Two exports named "a" (a type, a function, its export twice, an empty body).
    refused(bin(0x01, 0x04, 0x01, 0x60, 0x00, 0x00, 0x03, 0x02, 0x01, 0x00, 0x07, 0x09, 0x02, 0x01, 0x61, 0x00, 0x00, 0x01, 0x61, 0x00, 0x00,
      0x0a, 0x04, 0x01, 0x02, 0x00, 0x0b), /export 1 at byte \d+ repeats the name "a"/);
    // An import whose module name is not UTF-8.
    refused(bin(0x02, 0x08, 0x01, 0x01, 0xff, 0x01, 0x61, 0x02, 0x00, 0x01), /import 0's module name at byte \d+ is not valid UTF-8/);
    // A function without a body.
    refused(bin(0x01, 0x04, 0x01, 0x60, 0x00, 0x00, 0x03, 0x02, 0x01, 0x00), /declares 1 function but has 0 function bodies/);
    // The memory section twice; a section id the format does not have.
    refused(bin(0x05, 0x03, 0x01, 0x00, 0x01, 0x05, 0x03, 0x01, 0x00, 0x01), /section 5 at byte 13 appears twice/);
    refused(bin(0x2a, 0x00), /section 42 at byte 8 is not a known section/);
    // An export of kind 7.
    refused(bin(0x07, 0x04, 0x01, 0x00, 0x07, 0x00), /export 0's kind at byte \d+ is 0x07, not a known kind/);
    // Truncated: the import count promises an entry that is not there.
    refused(bin(0x02, 0x01, 0x01), /truncated/);
  });

  it('under random mutations: a ModuleLimitError, or exactly what the engine lists', () => {
    fc.assert(
      fc.property(fc.nat(), fc.array(fc.record({ at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }), op: fc.constantFrom('set', 'insert', 'delete') }), { maxLength: 6 }),
        (seed, edits) => {
          const bytes = [...seeds[seed % seeds.length]!];
          for (const { at, byte, op } of edits) {
            const i = at % (bytes.length + 1);
            if (op === 'set' && i < bytes.length) bytes[i] = byte;
            else if (op === 'insert') bytes.splice(i, 0, byte);
            else bytes.splice(i, 1);
          }
          const input = Uint8Array.from(bytes);
          let got;
          try {
            got = moduleInterface(input);
          } catch (e) {
            if (!(e instanceof ModuleLimitError)) throw e;
            // Refused: the engine refuses it too, unless it uses a feature capsa refuses on purpose.
            if (!/64-bit|table-with-initializer|is shared|limits flags|component|version/.test(e.message)) expect(WebAssembly.validate(input)).toBe(false);
            return;
          }
          if (WebAssembly.validate(input)) expect({ imports: got.imports, exports: got.exports }).toEqual(engine(input));
        }),
      { numRuns: 500 },
    );
  });
});

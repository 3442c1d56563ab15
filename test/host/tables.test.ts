/**
 * Tables are capped in total: their elements live in the worker's JS heap, and 50 tables of
 * 100,000 elements (each within the old per-table cap) exhausted it and ended host_error.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHost, type Host } from '../../src/host/host.js';
import { DEFAULT_LIMITS, DEFAULT_MAX_LIMITS } from '../../src/host/limits.js';
import { wat } from '../helpers/wat.js';

const EXIT = '(import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))';

/** A LEB128 unsigned number. */
const leb = (n: number): number[] => {
  const out: number[] = [];
  do { out.push((n & 0x7f) | (n > 0x7f ? 0x80 : 0)); n >>>= 7; } while (n > 0);
  return out;
};

/** A command whose _start copies one entry from a passive segment of `n` references to function 0 (1 byte each). */
function tableInitFromHugeSegment(n: number): Uint8Array<ArrayBuffer> {
  const section = (id: number, body: number[]) => [id, ...leb(body.length), ...body];
  const str = (t: string) => { const b = [...new TextEncoder().encode(t)]; return [b.length, ...b]; };
  const start = [0x41, 0, 0x41, 0, 0x41, 1, 0xfc, 12, 0, 0, 0x0b]; // table.init 0 0 (0, 0, 1)
  const head = [0x00, 0x61, 0x73, 0x6d, 1, 0, 0, 0,
    ...section(1, [1, 0x60, 0, 0]), ...section(3, [1, 0]), ...section(4, [1, 0x70, 0x00, 1]), ...section(5, [1, 0x00, 1]),
    ...section(7, [2, ...str('_start'), 0x00, 0, ...str('memory'), 0x02, 0])];
  const segment = [1, 0x01, 0x00, ...leb(n)]; // one passive segment of function indices
  const tail = section(10, [1, 1 + start.length, 0, ...start]);
  const out = new Uint8Array(head.length + 1 + leb(segment.length + n).length + segment.length + n + tail.length);
  out.set([...head, 9, ...leb(segment.length + n), ...segment]);
  out.set(tail, out.length - tail.length);
  return out; // the n entries between are zero bytes: function 0
}

/** A command module with `tables` and a _start running `body`. */
const withTables = (tables: string, body = '') =>
  wat(`(module ${EXIT} ${tables} (memory (export "memory") 1) (func (export "_start") ${body}))`);

let host: Host;
beforeAll(async () => { host = await createHost({ workers: 1 }); });
afterAll(async () => { await host.close(); });

describe('the table limit is on all tables together', () => {
  it('50 tables of 100,000 elements are refused as invalid_module, blaming the guest, before any worker runs', async () => {
    const spawned = host.stats().spawned;
    const r = await host.run({ module: withTables('(table 100000 funcref)'.repeat(50)) });
    expect(r).toMatchObject({ status: 'invalid_module', blame: 'guest' });
    expect(r.message).toBe('Cannot run the module: its 50 tables start at 5000000 elements in total, 4900000 above the 100000-element limit on all tables together (limits.tableElements)');
    expect(host.stats().spawned).toBe(spawned);
  });

  it('a 2,000,000-entry element segment (2 MB of module) is refused before table.init can build it in the worker', async () => {
    const module = tableInitFromHugeSegment(2_000_000);
    expect(WebAssembly.validate(module)).toBe(true);
    const r = await host.run({ module });
    expect(r).toMatchObject({ status: 'invalid_module', blame: 'guest' });
    expect(r.message).toContain('its element segments hold 2000000 entries in total, 1900000 above the 100000-element limit');
    // Within the limit the same guest runs.
    expect(await host.run({ module: tableInitFromHugeSegment(1000) })).toMatchObject({ status: 'exited', exitCode: 0 });
  });

  it('externref tables count the same', async () => {
    const r = await host.run({ module: withTables('(table 60000 externref) (table 60000 funcref)') });
    expect(r).toMatchObject({ status: 'invalid_module', blame: 'guest' });
    expect(r.message).toContain('its 2 tables start at 120000 elements in total, 20000 above');
  });

  it('tables within the total run, and table.grow stops at the share each was given', async () => {
    // Two growable tables share the 100,000 elements: 50,000 each.
    const grow = '(if (i32.ne (table.grow $b (ref.null extern) (i32.const 50001)) (i32.const -1)) (then (call $exit (i32.const 2))))'
      + '(if (i32.eq (table.grow $b (ref.null extern) (i32.const 49999)) (i32.const -1)) (then (call $exit (i32.const 3))))'
      + '(if (i32.ne (table.grow $a (ref.null func) (i32.const 50000)) (i32.const -1)) (then (call $exit (i32.const 4))))'
      + '(call $exit (i32.const 0))';
    const r = await host.run({ module: withTables('(table $a 1 funcref) (table $b 1 externref)', grow) });
    expect(r).toMatchObject({ status: 'exited', exitCode: 0 });
  });

  it('the largest tables the maximum limit allows fit in a worker: created, grown and filled', async () => {
    const n = DEFAULT_MAX_LIMITS.tableElements;
    const body = `(drop (table.grow $t (ref.null func) (i32.const ${n / 2})))`
      + `(table.fill $t (i32.const 0) (ref.null func) (i32.const ${n}))`
      + `(table.copy $t $t (i32.const 1) (i32.const 0) (i32.const ${n - 1}))`;
    const r = await host.run({ module: withTables(`(table $t ${n / 2} funcref)`, body), limits: { tableElements: n } });
    expect(r).toMatchObject({ status: 'exited', exitCode: 0 });
    // And the default limit still refuses it.
    expect(DEFAULT_LIMITS.tableElements).toBeLessThan(n);
    expect((await host.run({ module: withTables(`(table $t ${n / 2} funcref)`) })).status).toBe('invalid_module');
  });
});

describe('a worker heap exhausted by what the module declares', () => {
  it('is blamed on the guest (memory_limit), when an operator allows more table elements than a worker can hold', async () => {
    // An operator raised the maximum to 10,000,000 elements; 50 tables of 100,000 are then
    // allowed, and their creation exhausts the worker's 64 MiB heap. The host is not at fault.
    const big = await createHost({ workers: 1, limits: { max: { tableElements: 10_000_000 } } });
    try {
      const r = await big.run({ module: withTables('(table 100000 funcref)'.repeat(50)), limits: { tableElements: 5_000_000 } });
      expect(r).toMatchObject({ status: 'memory_limit', blame: 'guest' });
      expect(r.message).toBe("the worker's 64 MiB heap ran out while the module was instantiated (its tables, element segments and start function)");
      // The worker was replaced; the next run is unaffected.
      expect(await big.run({ module: withTables('(table 1 funcref)', '(call $exit (i32.const 0))') })).toMatchObject({ status: 'exited', exitCode: 0 });
    } finally {
      await big.close();
    }
  });
});

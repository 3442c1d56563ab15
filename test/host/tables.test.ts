/**
 * Tables are capped in total: their elements live in the worker's JS heap, and 50 tables of
 * 100,000 elements (each within the old per-table cap) exhausted it and ended host_error.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHost, type Host } from '../../src/host/host.js';
import { DEFAULT_LIMITS, DEFAULT_MAX_LIMITS } from '../../src/host/limits.js';
import { wat } from '../helpers/wat.js';

const EXIT = '(import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))';

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

/**
 * Trap backtraces name the source position of each frame when the module has DWARF line
 * information (issue 15): the line-table reader (src/host/dwarf-lines.ts) on a clang -g guest, and
 * modules whose table is missing, damaged or truncated, which give frames without lines, never an
 * error or a hang.
 */
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHost, type Host } from '../../src/host/host.js';
import { lineTable } from '../../src/host/dwarf-lines.js';

const guest = (name: string) => new Uint8Array(fs.readFileSync(new URL(`../../guests/build/${name}.wasm`, import.meta.url)));
const DEBUG = guest('trap_debug');

/** `bytes` with a custom section `name` holding `payload` appended. */
function withCustom(bytes: Uint8Array, name: string, payload: Uint8Array): Uint8Array {
  const leb = (n: number) => { const out: number[] = []; do { let b = n & 0x7f; n >>>= 7; if (n) b |= 0x80; out.push(b); } while (n); return out; };
  const nameBytes = new TextEncoder().encode(name);
  const body = [...leb(nameBytes.length), ...nameBytes, ...payload];
  return new Uint8Array([...bytes, 0, ...leb(body.length), ...body]);
}

/** The module without its .debug_line section's contents: the same size, all 0xff. */
function damaged(bytes: Uint8Array): Uint8Array {
  const out = bytes.slice();
  const at = Buffer.from(out).indexOf('.debug_line');
  out.fill(0xff, at + '.debug_line'.length, at + '.debug_line'.length + 64);
  return out;
}

let host: Host;
beforeAll(async () => { host = await createHost({ workers: 1 }); });
afterAll(async () => { await host.close(); });

describe('DWARF line information in trap backtraces', () => {
  it('host.run: each frame of the clang -g guest has its file, line and column', async () => {
    const r = await host.run({ module: DEBUG });
    expect(r.status).toBe('trapped');
    expect(r.trap?.kind).toBe('integer_divide_by_zero');
    const frames = r.trap!.frames!.map(({ name, file, line, column }) => ({ name, file, line, column }));
    expect(frames.slice(0, 3)).toEqual([
      { name: 'divide', file: 'src/trap_debug.c', line: 15, column: 12 },
      { name: 'compute', file: 'src/trap_debug.c', line: 22, column: 10 },
      { name: 'main', file: 'src/trap_debug.c', line: 29, column: 17 },
    ]);
  });

  it('a module without DWARF keeps its frames as they were (names only)', async () => {
    const plain = (await host.run({ module: withCustom(guest('hello'), 'x', new Uint8Array(1)), args: ['--exit=1'] }));
    expect(plain.status).toBe('exited');
    expect(lineTable(guest('hello'))).toBeUndefined();
  });

  it('a damaged, truncated or empty .debug_line gives no lines, never an error or a hang', async () => {
    const r = await host.run({ module: damaged(DEBUG) });
    expect(r.status).toBe('trapped');
    expect(r.trap!.frames!.length).toBeGreaterThan(2);
    expect(r.trap!.frames!.every((f) => f.file === undefined)).toBe(true);
    for (const payload of [new Uint8Array(0), new Uint8Array([1, 2, 3]), new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff]),
      // A unit claiming 8 bytes, version 4, then extended opcodes of length 0 forever.
      new Uint8Array([8, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0])]) {
      const lookup = lineTable(withCustom(guest('hello'), '.debug_line', payload));
      expect(lookup === undefined || lookup(0x100) === undefined).toBe(true);
    }
  });
});

import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { COMPOSITE_RIGHTS, RIGHTS_TABLE } from '../../src/wasi/rights.js';

// The C SDK restates the rights table; this keeps the two from drifting apart.
const header = fs.readFileSync(new URL('../../guests/sdk/include/sys/capsicum.h', import.meta.url), 'utf8');
const defined = new Map<string, bigint>();
for (const m of header.matchAll(/^#define\s+(CAP_[A-Z0-9_]+)\s+\(\(uint64_t\)(0x[0-9a-fA-F]+)ULL\)/gm)) {
  defined.set(m[1]!, BigInt(m[2]!));
}

describe('guests/sdk/include/sys/capsicum.h', () => {
  it.each(RIGHTS_TABLE.map((r) => [r.cap, r.bit] as const))('defines %s as in src/wasi/rights.ts', (name, bit) => {
    expect(defined.get(name)).toBe(bit);
  });
  it.each(Object.entries(COMPOSITE_RIGHTS))('defines composite %s as in src/wasi/rights.ts', (name, mask) => {
    expect(defined.get(name)).toBe(mask);
  });
  it('defines no CAP_ right that rights.ts does not know', () => {
    const known = new Set([...RIGHTS_TABLE.map((r) => r.cap), ...Object.keys(COMPOSITE_RIGHTS)]);
    expect([...defined.keys()].filter((n) => !known.has(n))).toEqual([]);
  });
});

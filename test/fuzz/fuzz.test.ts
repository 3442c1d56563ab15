/**
 * The small version of `npm run fuzz`: 20,000 calls on the fuzzer's own worlds. The seed is
 * FUZZ_SEED when set, else a fixed one, so CI is reproducible and anyone can try other seeds;
 * a failure message carries the replay command.
 */
import { describe, expect, it } from 'vitest';
import { describeFailure, drive } from './driver.js';
import { FUZZ_IMPORTS } from './core.js';

const seed = process.env['FUZZ_SEED'] !== undefined ? Number(process.env['FUZZ_SEED']) : 20261203;
const count = 20_000;

describe('the fuzzer', () => {
  it(`calls every import ${count} times (seed ${seed}) with no host exception, no hang and only allowed errnos`, async () => {
    console.log(`fuzz: seed ${seed}, ${count} calls`);
    const report = await drive({ seed, count });
    expect(report.failures.map(describeFailure).join('\n\n')).toBe('');
    expect(report.calls).toBe(count);
    // Every import was called.
    expect(Object.keys(report.perImport).sort()).toEqual([...FUZZ_IMPORTS].sort());
  }, 180_000);
});

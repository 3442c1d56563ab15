/**
 * The soak (bench/soak.js, `npm run soak`) in small: a few seconds of the service under load while
 * guest workers are killed. The script checks that every accepted run ended exactly once, that no
 * answer was an error other than 429/503 and that the RSS came back near its baseline; it exits 1
 * and lists the problems otherwise.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const ROOT = path.join(import.meta.dirname, '../..');

describe('soak', () => {
  it('runs end exactly once while workers are killed; only 201/429/503 answers; the RSS returns', async () => {
    const { stdout } = await promisify(execFile)(process.execPath,
      ['--expose-gc', '--import', 'tsx', 'bench/soak.js', '--seconds', '4', '--warmup', '1', '--kill-every', '600', '--json'],
      { cwd: ROOT, timeout: 240_000 }).catch((e: { stdout?: string; stderr?: string; message: string }) => {
      throw new Error(`bench/soak.js failed: ${e.stdout || ''}${e.stderr || e.message}`);
    });
    const figures = JSON.parse(stdout.trim().split('\n').at(-1)!);
    expect(figures.problems).toEqual([]);
    expect(figures.kills).toBeGreaterThan(0);
    expect(figures.runs).toBeGreaterThan(0);
    expect(figures.errors).toBe(0);
    expect(figures.hostErrors).toBeLessThanOrEqual(figures.kills);
    expect(figures.rssAfterMb).toBeLessThanOrEqual(figures.rssBoundMb);
  }, 300_000);
});

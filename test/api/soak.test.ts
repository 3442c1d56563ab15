/**
 * The soak (bench/soak.js, `npm run soak`) in small: a few seconds of the service under load while
 * guest workers are killed, then as many with its guests in executor processes killed with SIGKILL. The script checks that every accepted run ended exactly once, that no
 * answer was an error other than 429/503 and that the RSS came back near its baseline; it exits 1
 * and lists the problems otherwise.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const ROOT = path.join(import.meta.dirname, '../..');

describe('soak', () => {
  it('runs end exactly once while workers, then executors, are killed; only 201/429/503 answers; the RSS returns', async () => {
    const { stdout } = await promisify(execFile)(process.execPath,
      ['--expose-gc', '--import', 'tsx', 'bench/soak.js', '--seconds', '4', '--warmup', '1', '--kill-every', '600', '--isolation', 'both', '--json'],
      { cwd: ROOT, timeout: 240_000 }).catch((e: { stdout?: string; stderr?: string; message: string }) => {
      throw new Error(`bench/soak.js failed: ${e.stdout || ''}${e.stderr || e.message}`);
    });
    const modes = stdout.trim().split('\n').map((line) => JSON.parse(line));
    expect(modes.map((f) => f.isolation)).toEqual(['thread', 'process']);
    for (const figures of modes) {
      expect(figures.problems).toEqual([]);
      expect(figures.kills).toBeGreaterThan(0);
      expect(figures.runs).toBeGreaterThan(0);
      expect(figures.errors).toBe(0);
      expect(figures.hostErrors).toBeLessThanOrEqual(figures.kills);
      expect(figures.rssAfterMb).toBeLessThanOrEqual(figures.rssBoundMb);
    }
    // Each killed executor was replaced.
    expect(modes[1].executorsStarted).toBeGreaterThan(modes[1].kills);
  }, 300_000);
});

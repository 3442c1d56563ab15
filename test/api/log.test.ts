/** The service's log: many lines per write on the API thread, nothing lost at exit. */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { describe, expect, it, vi } from 'vitest';
import { logDestination } from '../../src/api/log.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const turn = () => new Promise<void>((r) => setImmediate(r));

describe('the service log', () => {
  it('holds lines logged over several turns and writes them together', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'capsa-log-'));
    const file = path.join(dir, 'log');
    const fd = fs.openSync(file, 'w');
    try {
      const dest = logDestination(fd);
      const log = pino({ base: null }, dest);
      for (let i = 0; i < 10; i++) { log.info({ i }, 'line'); await turn(); }
      expect(fs.readFileSync(file, 'utf8')).toBe('');
      log.flush();
      await vi.waitFor(() => expect(fs.readFileSync(file, 'utf8').trim().split('\n')).toHaveLength(10));
      dest.end();
    } finally {
      fs.closeSync(fd);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('loses no line when the process exits right after logging', () => {
    const script = `
      const { createLogger } = await import(${JSON.stringify(`${ROOT}src/api/log.ts`)});
      const log = createLogger({ level: 'info' });
      for (let i = 0; i < 2000; i++) log.info({ i, key: 'secret' }, 'line');
      process.exit(0);`;
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: ROOT, encoding: 'utf8', maxBuffer: 64 << 20 });
    expect(r.status, r.stderr).toBe(0);
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { i: number; key: string });
    expect(lines.map((l) => l.i)).toEqual(Array.from({ length: 2000 }, (_, i) => i));
    expect(lines.every((l) => l.key === '[redacted]')).toBe(true);
  });
});

// What an engine killed with kill -9 leaves behind (its executors' code bundle under the temp dir,
// when it ran from the sources) is removed by the next engine; what a live engine uses is not.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect, it } from 'vitest';
import { createHost } from '../../src/host/host.js';

it('a new engine removes the executor bundles of engines that are gone, and keeps those of live ones', async () => {
  const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
  const stale = path.join(os.tmpdir(), `capsa-executor-${dead}-stale`);
  const live = path.join(os.tmpdir(), `capsa-executor-1-live`); // pid 1 is alive
  for (const d of [stale, live]) { fs.mkdirSync(d, { recursive: true }); fs.writeFileSync(path.join(d, 'executor-main.js'), ''); }
  try {
    const host = await createHost({ isolation: 'process', workers: 1, executors: { count: 1 } });
    await host.close();
    expect(fs.existsSync(stale)).toBe(false);
    expect(fs.existsSync(live)).toBe(true);
  } finally {
    fs.rmSync(stale, { recursive: true, force: true });
    fs.rmSync(live, { recursive: true, force: true });
  }
}, 60_000);

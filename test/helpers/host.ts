import { expect, vi } from 'vitest';
import type { Host } from '../../src/host/host.js';
import type { Pool } from '../../src/host/pool.js';

/**
 * vi.waitFor's options for waiting on a state: its default (1 s) is shorter than a worker takes to
 * boot on a loaded machine. The bound only turns a state that never comes into a failure.
 */
export const STATE_WAIT = { timeout: 20_000, interval: 10 } as const;

/**
 * Ends whatever a test left running or queued on a shared host, and waits until the host is idle:
 * a failed test must not leave a 10 s sleeper that the next test's counts then trip over. Busy
 * workers are terminated (their runs end host_error and the pool replaces them), the existing
 * handle a test has for that.
 */
export async function endLeftoverRuns(host: Host): Promise<void> {
  await vi.waitFor(async () => {
    for (const w of (host.pool as Pool).busyWorkers()) await w.terminate();
    expect(host.stats()).toMatchObject({ busy: 0, queued: 0 });
  }, STATE_WAIT);
}

/**
 * A guest worker started before the pool exists (the CLI starts one before loading the rest of
 * capsa) is adopted by the first pool that wants a worker of its heap size, once, and runs guests.
 */
import fs from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { createHost, type Host } from '../../src/host/host.js';
import { Pool } from '../../src/host/pool.js';
import { DEFAULT_WORKER_HEAP_MB, prestartGuestWorker, takePrestartedWorker } from '../../src/host/worker-launch.js';

const HELLO = fs.readFileSync(new URL('../../guests/build/hello.wasm', import.meta.url));
let host: Host | undefined;
let pool: Pool | undefined;
afterEach(async () => {
  await host?.close();
  await pool?.close();
  host = pool = undefined;
  const left = takePrestartedWorker(DEFAULT_WORKER_HEAP_MB);
  await left?.worker.terminate();
});

describe('prestarted guest worker', () => {
  it('is adopted by the next host, which runs guests on it and starts no other worker', async () => {
    prestartGuestWorker();
    host = await createHost({ workers: 1 });
    expect(takePrestartedWorker(DEFAULT_WORKER_HEAP_MB)).toBeUndefined();
    const r = await host.run({ module: HELLO, args: ['early'] });
    expect(r.status).toBe('exited');
    expect(r.text()).toBe('hello early\n');
    expect(host.stats().spawned).toBe(1);
  });

  it('is not adopted by a pool whose workers have another heap cap, and is handed out once', async () => {
    prestartGuestWorker();
    pool = new Pool({ size: 1, workerHeapMb: DEFAULT_WORKER_HEAP_MB / 2 });
    await pool.start();
    const early = takePrestartedWorker(DEFAULT_WORKER_HEAP_MB);
    expect(early).toBeDefined();
    expect(takePrestartedWorker(DEFAULT_WORKER_HEAP_MB)).toBeUndefined();
    // It was started all the same: it says ready with its thread id, and ends when told to.
    await early!.ready;
    await early!.worker.terminate();
  });
});

/** The queue both pools share (QueuedPool): the same bound, cancel before start, and close, on threads and in executors. */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createHost, type Host } from '../../src/host/host.js';
import { QueueFullError } from '../../src/host/job-queue.js';
import { command } from '../helpers/wat.js';

const spin = command('(loop $l (br $l))');

describe.each(['thread', 'process'] as const)('the run queue, isolation %s', (isolation) => {
  let host: Host;
  beforeAll(async () => { host = await createHost({ isolation, workers: 1, maxQueue: 1, executors: { count: 1 } }); });
  afterAll(async () => { await host.close(); });

  it('takes one run beyond its workers and refuses the next; a queued run cancelled ends before it started', async () => {
    const running = new AbortController();
    const first = host.run({ module: spin, signal: running.signal, limits: { wallMs: 60_000, cpuMs: 60_000 } });
    await vi.waitFor(() => expect(host.stats().busy).toBe(1), { timeout: 20_000 });
    const waiting = new AbortController();
    const second = host.run({ module: spin, signal: waiting.signal });
    await vi.waitFor(() => expect(host.stats().queued).toBe(1));
    await expect(host.run({ module: spin })).rejects.toBeInstanceOf(QueueFullError);
    waiting.abort();
    expect(await second).toMatchObject({ status: 'cancelled', blame: 'host', message: 'the run was cancelled before it started' });
    expect(host.stats().queued).toBe(0);
    running.abort();
    expect(await first).toMatchObject({ status: 'cancelled', message: 'the run was cancelled' });
  });

  it('a run whose signal is aborted before it is submitted never starts', async () => {
    const ac = new AbortController();
    ac.abort();
    expect(await host.run({ module: spin, signal: ac.signal })).toMatchObject({ status: 'cancelled', message: 'the run was cancelled before it started' });
    expect(host.stats()).toMatchObject({ busy: 0, queued: 0 });
  });
});

/**
 * Leases between nodes, in one process: two schedulers ("nodes") on one SQLite store with short
 * leases. A node that stops renewing has its runs recovered by the other under the restart rule; a
 * run cancelled through another node is stopped by the node running it when it renews its lease;
 * a run queued through one node wakes the other (watchQueue), with no submit on it.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { STATE_WAIT } from '../helpers/host.js';
import { createApp } from '../../src/api/app.js';
import { createLogger } from '../../src/api/log.js';
import { createScheduler, type Scheduler } from '../../src/api/scheduler.js';
import { createSqliteStore } from '../../src/api/store/sqlite.js';
import { encodeRequest } from '../../src/api/runs/record.js';
import { newRunId } from '../../src/api/store/ids.js';
import type { Store } from '../../src/api/store/types.js';
import type { Host } from '../../src/host/host.js';
import { call, json, slowGuest, testHost, tickerGuest } from './helpers.js';

const logger = createLogger({ level: 'silent' });
let dir: string;
let store: Store;
let hosts: Host[] = [];
let schedulers: Scheduler[] = [];

beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'capsa-leases-'));
  store = createSqliteStore({ dir });
});

afterEach(async () => {
  for (const s of schedulers) await s.stop(0);
  for (const h of hosts) await h.close();
  schedulers = [];
  hosts = [];
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

async function node(nodeId: string, leaseMs = 600) {
  const host = await testHost({ workers: 2 });
  hosts.push(host);
  const scheduler = createScheduler({ store, host, logger, nodeId, leaseMs });
  schedulers.push(scheduler);
  await scheduler.start();
  return { host, scheduler, app: createApp({ store, host, scheduler, logger }) };
}

async function queued(bytes: Uint8Array, manifest = '') {
  const t = await store.createTenant(`t-${Math.random()}`);
  const key = (await store.createKey(t.id)).key;
  const mod = (await store.putModule(t.id, bytes, ['wasi_snapshot_preview1.clock_time_get'])).record;
  const run = await store.createRun({ id: newRunId(), tenantId: t.id, moduleId: mod.id, request: encodeRequest(manifest, {}), createdAt: Date.now() });
  return { tenant: t, key, run };
}

describe('leases between nodes', () => {
  it('a node that stops renewing (dead) has its run recovered by another node, retried there once', async () => {
    const { tenant, run } = await queued(slowGuest(50));
    // The dead node claimed it and then never renewed.
    expect(await store.claimRuns({ node: 'dead', max: 1, leaseMs: 300, concurrentRuns: 8 })).toMatchObject([{ id: run.id, attempts: 1 }]);
    await node('alive');
    await vi.waitFor(async () => expect((await store.getRun(tenant.id, run.id))?.state).toBe('exited'), STATE_WAIT);
    expect(await store.getRun(tenant.id, run.id)).toMatchObject({ attempts: 2, nodeId: 'alive' });
    const events = await store.events(run.id, 0);
    expect(events.filter((e) => e.type === 'exit')).toHaveLength(1);
    expect(events.find((e) => e.type === 'status' && e.attempt === 1 && /dead\) stopped renewing its lease/.test(e.data))).toBeDefined();
  });

  it('a run cancelled through another node is stopped by the node running it, and ends once', async () => {
    const a = await node('a');
    const b = await node('b');
    const { tenant, key, run } = await queued(tickerGuest(200, 100), 'limits: { wall: 60s, cpu: 60s }');
    a.scheduler.submit(tenant.id, run.id);
    await vi.waitFor(async () => expect(await store.getRun(tenant.id, run.id)).toMatchObject({ state: 'running' }), STATE_WAIT);
    const runner = (await store.getRun(tenant.id, run.id))!.nodeId === 'a' ? a : b;
    const other = runner === a ? b : a;
    const r = await json(await call(other.app, 'DELETE', `/v1/runs/${run.id}`, { key }));
    expect(r.status).toBe('cancelled');
    // The runner learns it at its next renewal and stops the guest: its workers go idle.
    await vi.waitFor(() => expect(runner.host.stats().busy).toBe(0), STATE_WAIT);
    expect(runner.scheduler.stats().running).toBe(0);
    const events = await store.events(run.id, 0);
    expect(events.filter((e) => e.type === 'exit')).toHaveLength(1);
    expect(await store.getRun(tenant.id, run.id)).toMatchObject({ state: 'cancelled', attempts: 1 });
  });

  it('a run queued through one node wakes an idle other node (no submit there)', async () => {
    const b = await node('b');
    const { tenant, run } = await queued(slowGuest(5));
    await vi.waitFor(async () => expect((await store.getRun(tenant.id, run.id))?.state).toBe('exited'), STATE_WAIT);
    expect(await store.getRun(tenant.id, run.id)).toMatchObject({ nodeId: 'b', attempts: 1 });
    expect(b.scheduler.nodeId).toBe('b');
  });
});

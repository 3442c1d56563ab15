/**
 * What the scheduler and POST /v1/runs read from the store per run: a run that ends on this node
 * is not read back when its own exit event is heard (that read, and the abort after it, cost the
 * API thread on every run), and a waiting POST reads its run once, for its answer (it listens for
 * the end before the run exists, so it need not read whether the run ended before it listened). A
 * cancel from elsewhere still stops a running guest: test/api/leases.test.ts; a wait still ends
 * when the end was missed (resync, recheck): test/api/postgres-events.test.ts.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { createApp } from '../../src/api/app.js';
import { createLogger } from '../../src/api/log.js';
import { createScheduler, type Scheduler } from '../../src/api/scheduler.js';
import { encodeRequest } from '../../src/api/runs/record.js';
import { newRunId } from '../../src/api/store/ids.js';
import { createSqliteStore } from '../../src/api/store/sqlite.js';
import type { RunRecord, Store } from '../../src/api/store/types.js';
import type { Host } from '../../src/host/host.js';
import { call, HELLO, testHost } from './helpers.js';

let dir: string;
let store: Store;
let host: Host;
let scheduler: Scheduler;
const reads: string[] = [];
const ended: RunRecord[] = [];

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'capsa-sched-reads-'));
  const real = createSqliteStore({ dir });
  store = { ...real, getRun: (tenantId, id) => { reads.push(id); return real.getRun(tenantId, id); } };
  host = await testHost({ workers: 1 });
  scheduler = createScheduler({ store, host, logger: createLogger({ level: 'silent' }), onFinish: (r) => { ended.push(r); } });
  await scheduler.start();
});

afterAll(async () => {
  await scheduler.stop(0);
  await scheduler.events.close();
  await host.close();
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

it('reads no run back after it ended here', async () => {
  const t = await store.createTenant('reads');
  const mod = (await store.putModule(t.id, HELLO, [])).record;
  const ids: string[] = [];
  for (let i = 0; i < 3; i++) {
    const run = await scheduler.create({ id: newRunId(), tenantId: t.id, moduleId: mod.id, request: encodeRequest('args: [x]\n', {}), createdAt: Date.now() }, t);
    ids.push(run.id);
  }
  await vi.waitFor(() => expect(ended.map((r) => r.id).sort()).toEqual([...ids].sort()), { timeout: 20_000 });
  await scheduler.events.flush();
  const readBack = reads.filter((id) => ids.includes(id));
  for (const id of ids) expect((await store.getRun(t.id, id))?.state).toBe('exited');
  expect(readBack).toEqual([]);
});

it('POST /v1/runs with wait reads its run once, for the answer', async () => {
  const app = createApp({ store, host, scheduler, logger: createLogger({ level: 'silent' }) });
  const t = await store.createTenant('reads-http');
  const key = (await store.createKey(t.id)).key;
  const mod = (await store.putModule(t.id, HELLO, [])).record;
  reads.length = 0;
  const r = await call(app, 'POST', '/v1/runs', { key, json: { module: mod.id, manifest: 'args: [world]\n', wait: 20 } });
  const v = await r.json() as { id: string; status: string; stdout: string };
  expect(v).toMatchObject({ status: 'exited', stdout: 'hello world\n' });
  expect(reads.filter((id) => id === v.id)).toEqual([v.id]);
  // A run that fails admission leaves no listener behind: an unknown module is a 4xx, and the next wait works.
  const bad = await call(app, 'POST', '/v1/runs', { key, json: { module: 'sha256:' + '0'.repeat(64), wait: 5 } });
  expect(bad.status).toBeGreaterThanOrEqual(400);
  expect(bad.status).toBeLessThan(500);
  const again = await call(app, 'POST', '/v1/runs', { key, json: { module: mod.id, manifest: 'args: [again]\n', wait: 20 } });
  expect(await again.json()).toMatchObject({ status: 'exited', stdout: 'hello again\n' });
});

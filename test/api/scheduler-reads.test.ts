/**
 * What the scheduler reads from the store per run: a run that ends on this node is not read back
 * when its own exit event is heard (that read, and the abort after it, cost the API thread on
 * every run). A cancel from elsewhere still stops a running guest: test/api/leases.test.ts.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { createLogger } from '../../src/api/log.js';
import { createScheduler, type Scheduler } from '../../src/api/scheduler.js';
import { encodeRequest } from '../../src/api/runs/record.js';
import { newRunId } from '../../src/api/store/ids.js';
import { createSqliteStore } from '../../src/api/store/sqlite.js';
import type { RunRecord, Store } from '../../src/api/store/types.js';
import type { Host } from '../../src/host/host.js';
import { HELLO, testHost } from './helpers.js';

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

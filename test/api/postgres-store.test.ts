/**
 * What only the PostgreSQL store has: migrations under a lock (nodes starting at once), concurrent
 * appends to one run's events from two connections (two nodes) keeping seq unique and dense, and
 * the queue's NOTIFY reaching another node's LISTEN.
 */
import { describe, it, expect, beforeAll, vi } from 'vitest';
import { STATE_WAIT } from '../helpers/host.js';
import pg from 'pg';
import { createPostgresStore, LISTENER_NAME, migratePostgres } from '../../src/api/store/postgres.js';
import { PG_MIGRATIONS } from '../../src/api/store/pg-migrations.js';
import { newRunId } from '../../src/api/store/ids.js';
import { freshDatabase } from '../helpers/pg.js';

let url: string;
beforeAll(async () => { url = await freshDatabase(); });

describe('PostgreSQL store', () => {
  it('migrations run once whoever starts first: five at once end at the same version', async () => {
    const results = await Promise.all(Array.from({ length: 5 }, () => migratePostgres(url)));
    expect(results.filter((r) => r.from === 0)).toHaveLength(1);
    expect(results.every((r) => r.to === PG_MIGRATIONS.length)).toBe(true);
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    const v = (await c.query('SELECT version FROM capsa_schema')).rows;
    await c.end();
    expect(v).toEqual([{ version: PG_MIGRATIONS.length }]);
  });

  it('refuses a database from a newer build', async () => {
    const other = await freshDatabase();
    await migratePostgres(other);
    const c = new pg.Client({ connectionString: other });
    await c.connect();
    await c.query('UPDATE capsa_schema SET version = 999');
    await c.end();
    await expect(createPostgresStore({ url: other })).rejects.toThrow(/version 999, newer than this build knows/);
  });

  it('a run queued through one node wakes the queue watchers of another (NOTIFY capsa_queue), after the commit', async () => {
    const [s1, s2] = [await createPostgresStore({ url, poolSize: 2 }), await createPostgresStore({ url, poolSize: 2 })];
    let heard = 0;
    const watch = await s2.watchQueue(() => { heard++; });
    try {
      const t = await s1.createTenant('wake');
      const mod = (await s1.putModule(t.id, new Uint8Array([0, 0x61, 0x73, 0x6d, 8]), [])).record;
      const run = await s1.createRun({ id: newRunId(), tenantId: t.id, moduleId: mod.id, request: '{}', createdAt: Date.now() });
      await vi.waitFor(() => expect(heard).toBe(1), STATE_WAIT);
      // So is a requeue by the restart rule; a refused createRun (rolled back) is not heard.
      expect(await s1.startRun(run.id, Date.now(), 'n1')).toBe(true);
      expect(await s1.requeueRun(run.id, 1)).toMatchObject({ state: 'queued', attempts: 1 });
      await vi.waitFor(() => expect(heard).toBe(2), STATE_WAIT);
      await expect(s1.createRun({ id: newRunId(), tenantId: t.id, moduleId: mod.id, request: '{}', createdAt: Date.now() }, { queuedRuns: 1, cpuMs: 1e9, since: 0 }))
        .rejects.toMatchObject({ code: 'quota', quota: 'queuedRuns' });
      const last = await s1.createRun({ id: newRunId(), tenantId: t.id, moduleId: mod.id, request: '{}', createdAt: Date.now() });
      await vi.waitFor(() => expect(heard).toBe(3), STATE_WAIT);
      expect(last.state).toBe('queued');
    } finally {
      await watch.close();
      await s1.close();
      await s2.close();
    }
  });

  it('two connections appending to one run at once get unique, dense seqs', async () => {
    const [s1, s2] = [await createPostgresStore({ url, poolSize: 4 }), await createPostgresStore({ url, poolSize: 4 })];
    try {
      const t = await s1.createTenant('events');
      const mod = (await s1.putModule(t.id, new Uint8Array([0, 0x61, 0x73, 0x6d, 9]), [])).record;
      const run = await s1.createRun({ id: newRunId(), tenantId: t.id, moduleId: mod.id, request: '{}', createdAt: Date.now() });
      const appends = Array.from({ length: 40 }, (_, i) => (i % 2 ? s1 : s2).appendEvent(run.id, 'stdout', JSON.stringify({ i })));
      const seqs = (await Promise.all(appends)).map((e) => e.seq).sort((x, y) => x - y);
      expect(seqs).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
      expect((await s2.events(run.id, 0)).map((e) => e.seq)).toEqual(seqs);
    } finally {
      await s1.close();
      await s2.close();
    }
  });
});

describe('LISTEN across nodes', () => {
  it('a listener whose connection is cut is told to resync, and hears the appends after it reconnects', async () => {
    const s = await createPostgresStore({ url, poolSize: 2 });
    const heard: unknown[] = [];
    const watch = await s.watchEvents((n) => heard.push(n));
    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    try {
      const t = await s.createTenant('resync');
      const mod = (await s.putModule(t.id, new Uint8Array([0, 0x61, 0x73, 0x6d, 7]), [])).record;
      const run = await s.createRun({ id: newRunId(), tenantId: t.id, moduleId: mod.id, request: '{}', createdAt: Date.now() });
      const cut = await admin.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()`, [LISTENER_NAME]);
      expect(cut.rowCount).toBe(1);
      await vi.waitFor(() => expect(heard).toContain('resync'), { timeout: 20_000 });
      await s.appendEvent(run.id, 'status', '{}');
      await vi.waitFor(() => expect(heard.at(-1)).toEqual({ runId: run.id, seq: 1, type: 'status' }), { timeout: 10_000 });
    } finally {
      await admin.end();
      await watch.close();
      await s.close();
    }
  });
});

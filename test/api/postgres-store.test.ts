/**
 * What only the PostgreSQL store has: migrations under a lock (nodes starting at once), the serve
 * lock (one serving node per database until the queue lives there), and concurrent appends to one
 * run's events from two connections (two nodes) keeping seq unique and dense.
 */
import { describe, it, expect, beforeAll, vi } from 'vitest';
import pg from 'pg';
import { createPostgresStore, LISTENER_NAME, migratePostgres, serveLock } from '../../src/api/store/postgres.js';
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

  it('one serving node per database: a second serve lock is refused until the first is released', async () => {
    const a = await serveLock(url);
    expect(typeof a).not.toBe('string');
    expect(await serveLock(url)).toMatch(/another capsa serve is using this database/);
    await (a as { release(): Promise<void> }).release();
    const b = await serveLock(url);
    expect(typeof b).not.toBe('string');
    await (b as { release(): Promise<void> }).release();
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

/**
 * The store conformance suite: tenants and keys, tenant isolation (BOLA), content-addressed
 * modules, keyset pagination, the run lifecycle with its restart rule, run events, durability.
 * The 'default' vitest project runs it on the SQLite store (a temp data dir), the 'postgres'
 * project on the PostgreSQL one (a database of this file's own, emptied before each test).
 * Tests of SQLite's files and pragmas run on SQLite only (`onSqlite`). Under Deno (test/deno.test.ts
 * runs this file there) the SQLite store is on node:sqlite, else on better-sqlite3.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { describe, it, expect, beforeAll, beforeEach, afterEach, vi } from 'vitest';
import { STATE_WAIT } from '../helpers/host.js';
import pg from 'pg';
import { createSqliteStore, INTERRUPTED_RESULT, MAX_PAGE } from '../../src/api/store/sqlite.js';
import { openSqlite, type SqliteDriverName } from '../../src/api/store/sqlite-driver.js';
import { createPostgresStore } from '../../src/api/store/postgres.js';
import { freshDatabase, testStoreKind, truncateAll } from '../helpers/pg.js';
import { StoreError, type ClaimOptions, type DeliveryRecord, type RunEventRecord, type RunRecord, type Store } from '../../src/api/store/types.js';
import { newRunId } from '../../src/api/store/ids.js';
import { MIGRATIONS } from '../../src/api/store/migrations.js';
import { DAY_MS, utcDayStart } from '../../src/api/store/rows.js';
import { PG_MIGRATIONS } from '../../src/api/store/pg-migrations.js';

let dir: string;
let clock: number;
const open: Store[] = [];

const kind = testStoreKind();
/** SQLite's own files and pragmas: what only that store has. */
const onSqlite = kind === 'sqlite';
/** The driver the SQLite store runs on here: Deno loads only node:sqlite. */
const driver: SqliteDriverName = (process.versions as Record<string, string | undefined>)['deno'] ? 'node:sqlite' : 'better-sqlite3';
/** A connection of the test's own to the store's database file, on the same driver. */
const rawDb = (o: { readonly?: boolean } = {}) => openSqlite(path.join(dir, 'capsa.db'), { driver, ...o });
let pgUrl = '';

/** A store (on `dir`, or this file's database) whose clock the test moves (`clock`). */
async function openStore(): Promise<Store> {
  const s = onSqlite ? createSqliteStore({ dir, now: () => clock, driver }) : await createPostgresStore({ url: pgUrl, now: () => clock, poolSize: 3 });
  open.push(s);
  return s;
}

beforeAll(async () => {
  if (onSqlite) return;
  pgUrl = await freshDatabase();
  await (await createPostgresStore({ url: pgUrl })).close();
});

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const bytesOf = (text: string) => new Uint8Array(Buffer.from(`\0asm${text}`));
const moduleFile = (hex: string) => path.join(dir, 'modules', 'sha256', hex);

async function newRun(s: Store, tenantId: string, moduleId: string, createdAt = clock): Promise<RunRecord> {
  return s.createRun({ id: newRunId(), tenantId, moduleId, request: JSON.stringify({ stdin: '' }), createdAt });
}

async function storeError(fn: () => Promise<unknown>): Promise<StoreError> {
  try {
    await fn();
  } catch (e) {
    expect(e).toBeInstanceOf(StoreError);
    return e as StoreError;
  }
  throw new Error('expected a StoreError');
}

beforeEach(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'capsa-store-'));
  clock = 1_750_000_000_000;
  if (!onSqlite) await truncateAll(pgUrl);
});

afterEach(async () => {
  for (const s of open.splice(0)) await s.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe.runIf(onSqlite)('schema (SQLite: its file, pragmas and migrations)', () => {
  it('creates capsa.db with the schema version, WAL mode and the tables', async () => {
    const s = await openStore();
    await s.createTenant('acme');
    expect(fs.existsSync(path.join(dir, 'capsa.db'))).toBe(true);
    expect(fs.existsSync(path.join(dir, 'capsa.db-wal'))).toBe(true);
    expect(fs.existsSync(path.join(dir, 'capsa.db-shm'))).toBe(true);
    expect(fs.statSync(path.join(dir, 'modules', 'sha256')).isDirectory()).toBe(true);

    const raw = rawDb({ readonly: true });
    try {
      expect(raw.pragma('journal_mode')).toBe('wal');
      expect(raw.pragma('user_version')).toBe(MIGRATIONS.length);
      const tables = raw.prepare<[], { name: string }>(`SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name`).all().map((r) => r.name);
      expect(tables).toEqual(['api_keys', 'modules', 'run_events', 'runs', 'tenant_cpu_days', 'tenants', 'webhook_deliveries']);
      const indexes = raw.prepare<[], { name: string }>(`SELECT name FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_%'`).all().map((r) => r.name);
      expect(indexes).toEqual(expect.arrayContaining(['runs_tenant_created', 'runs_state_created']));
    } finally {
      await raw.close();
    }
  });

  it('migrations are idempotent: opening again (or twice at once) keeps the data and the version', async () => {
    const a = await openStore();
    const t = await a.createTenant('acme');
    const b = await openStore(); // a second connection while the first is open
    expect(await b.getTenant(t.id)).toEqual(t);
    await a.close();
    await b.close();
    const c = await openStore();
    expect(await c.listTenants()).toEqual([t]);
    await c.close();
    const raw = rawDb({ readonly: true });
    expect(raw.pragma('user_version')).toBe(MIGRATIONS.length);
    await raw.close();
  });

  it('refuses a database from a newer build', async () => {
    await (await openStore()).close();
    const raw = rawDb();
    raw.exec(`PRAGMA user_version = ${MIGRATIONS.length + 1}`);
    await raw.close();
    expect(() => createSqliteStore({ dir, driver })).toThrow(/newer than this build/);
  });

  it('close is idempotent and later calls throw', async () => {
    const s = await openStore();
    await s.close();
    await s.close();
    await expect(s.listTenants()).rejects.toThrow();
  });
});

describe('tenants and keys', () => {
  it('creates, finds and lists tenants; names are unique', async () => {
    const s = await openStore();
    const a = await s.createTenant('acme');
    clock += 1;
    const b = await s.createTenant('globex');
    expect(a.id).toMatch(/^ten_[A-Za-z0-9_-]{22}$/);
    expect(a).toEqual({ id: a.id, name: 'acme', createdAt: 1_750_000_000_000, policy: null, quotas: {} });
    expect(await s.getTenant(a.id)).toEqual(a);
    expect(await s.findTenantByName('globex')).toEqual(b);
    expect(await s.findTenantByName('nope')).toBeUndefined();
    expect(await s.getTenant('ten_nope')).toBeUndefined();
    expect(await s.listTenants()).toEqual([a, b]);
    expect((await storeError(() => s.createTenant('acme'))).code).toBe('conflict');
  });

  it('sets and clears a policy', async () => {
    const s = await openStore();
    const t = await s.createTenant('acme');
    await s.setPolicy(t.id, 'limits:\n  wallMs: 1000\n');
    expect((await s.getTenant(t.id))?.policy).toBe('limits:\n  wallMs: 1000\n');
    await s.setPolicy(t.id, null);
    expect((await s.getTenant(t.id))?.policy).toBeNull();
    expect((await storeError(() => s.setPolicy('ten_nope', null))).code).toBe('not_found');
  });

  it('sets and clears quotas; authenticate answers them with the tenant', async () => {
    const s = await openStore();
    const t = await s.createTenant('acme');
    const { key } = await s.createKey(t.id);
    await s.setQuotas(t.id, { concurrentRuns: 2, retainSeconds: 3600 });
    expect((await s.getTenant(t.id))?.quotas).toEqual({ concurrentRuns: 2, retainSeconds: 3600 });
    expect((await s.authenticate(key))?.quotas).toEqual({ concurrentRuns: 2, retainSeconds: 3600 });
    expect((await s.listTenants())[0]?.quotas).toEqual({ concurrentRuns: 2, retainSeconds: 3600 });
    await s.setQuotas(t.id, {});
    expect((await s.getTenant(t.id))?.quotas).toEqual({});
    expect((await storeError(() => s.setQuotas('ten_nope', {}))).code).toBe('not_found');
  });

  it('makes a webhook secret on first use, keeps it, rotates it on demand, and never shows it in a tenant', async () => {
    const s = await openStore();
    const [a, b] = [await s.createTenant('a'), await s.createTenant('b')];
    const first = await s.webhookSecret(a.id);
    expect(first).toMatch(/^whsec_[A-Za-z0-9_-]{43}$/);
    expect(await s.webhookSecret(a.id)).toBe(first);
    expect(await s.webhookSecret(b.id)).not.toBe(first);
    const rotated = await s.webhookSecret(a.id, true);
    expect(rotated).not.toBe(first);
    expect(await s.webhookSecret(a.id)).toBe(rotated);
    expect(JSON.stringify(await s.getTenant(a.id))).not.toContain('whsec_');
    expect((await storeError(() => s.webhookSecret('ten_nope'))).code).toBe('not_found');
  });

  it('makes a key shown once, keeps only its hash, authenticates it, and a revoked key fails', async () => {
    const s = await openStore();
    const t = await s.createTenant('acme');
    const { key, record } = await s.createKey(t.id);
    expect(key).toMatch(/^capsa_[A-Za-z0-9_-]{43}$/);
    expect(record).toEqual({ id: record.id, tenantId: t.id, createdAt: clock, revokedAt: null });
    expect(record.id).toMatch(/^key_[A-Za-z0-9_-]{22}$/);
    expect(await s.authenticate(key)).toEqual(t);

    // Only sha256(key) is stored.
    await s.close();
    const hashed = [{ key_hash: createHash('sha256').update(key).digest('hex') }];
    if (onSqlite) {
      const raw = rawDb({ readonly: true });
      const rows = raw.prepare<[], { key_hash: string }>('SELECT key_hash FROM api_keys').all();
      raw.close();
      expect(rows).toEqual(hashed);
      const db = fs.readFileSync(path.join(dir, 'capsa.db'));
      expect(db.includes(Buffer.from(key.slice(6)))).toBe(false);
    } else {
      const c = new pg.Client({ connectionString: pgUrl });
      await c.connect();
      const rows = (await c.query('SELECT key_hash FROM api_keys')).rows;
      const any = (await c.query(`SELECT count(*)::int AS n FROM api_keys WHERE position($1 in key_hash) > 0`, [key.slice(6)])).rows[0];
      await c.end();
      expect(rows).toEqual(hashed);
      expect(any).toEqual({ n: 0 });
    }

    const s2 = await openStore();
    clock += 1;
    const second = await s2.createKey(t.id);
    expect((await s2.listKeys(t.id)).map((k) => k.id)).toEqual([record.id, second.record.id]);
    clock += 5;
    expect(await s2.revokeKey(t.id, record.id)).toBe(true);
    expect(await s2.authenticate(key)).toBeUndefined();
    expect(await s2.authenticate(second.key)).toEqual(t);
    // Revoking again is idempotent and keeps the first time.
    clock += 5;
    expect(await s2.revokeKey(t.id, record.id)).toBe(true);
    expect((await s2.listKeys(t.id))[0]?.revokedAt).toBe(clock - 5);
    expect(await s2.revokeKey(t.id, 'key_nope')).toBe(false);
    expect((await storeError(() => s2.createKey('ten_nope'))).code).toBe('not_found');
  });

  it('authenticate rejects anything but the exact key (constant-time compare of the hashes)', async () => {
    const s = await openStore();
    const t = await s.createTenant('acme');
    const { key } = await s.createKey(t.id);
    const last = key.at(-1) === 'A' ? 'B' : 'A';
    const wrong = [
      '', 'capsa_', key.slice(0, -1), key + 'A', key.slice(0, -1) + last, key.toUpperCase() === key ? key.toLowerCase() : key.toUpperCase(),
      ' ' + key, key + '\n', key.replace('capsa_', 'capsb_'), key.slice(6), 'capsa_' + 'x'.repeat(43), `capsa_${'é'.repeat(43)}`,
      'capsa_' + 'A'.repeat(10_000), createHash('sha256').update(key).digest('hex'),
    ];
    for (const w of wrong) expect(await s.authenticate(w), JSON.stringify(w.slice(0, 60))).toBeUndefined();
    expect(await s.authenticate(key)).toEqual(t);
    // A second tenant's key authenticates as that tenant, never the first.
    const u = await s.createTenant('globex');
    const k2 = (await s.createKey(u.id)).key;
    expect((await s.authenticate(k2))?.id).toBe(u.id);
  });
});

describe('tenant isolation (BOLA): another tenant\'s ids are "not found"', () => {
  it('every tenant-scoped read, write and count', async () => {
    const s = await openStore();
    const a = await s.createTenant('a');
    const b = await s.createTenant('b');
    const aKey = await s.createKey(a.id);
    const mod = (await s.putModule(a.id, bytesOf('only-a'), ['wasi_snapshot_preview1.fd_write'])).record;
    const run = await newRun(s, a.id, mod.id);
    expect(await s.startRun(run.id, clock)).toBe(true);
    expect(await s.finishRun(run.id, 'exited', '{}', clock, 70)).toBe(true);
    const queued = await newRun(s, a.id, mod.id);

    expect(await s.getModule(b.id, mod.id)).toBeUndefined();
    expect(await s.moduleBytes(b.id, mod.id)).toBeUndefined();
    expect((await s.listModules(b.id, { limit: 100 })).items).toEqual([]);
    expect(await s.moduleStorage(b.id)).toBe(0);
    expect(await s.deleteModule(b.id, mod.id)).toBe(false);
    expect(await s.getModule(a.id, mod.id)).toEqual(mod);

    expect(await s.getRun(b.id, run.id)).toBeUndefined();
    expect(await s.getRun(b.id, queued.id)).toBeUndefined();
    expect((await s.listRuns(b.id, { limit: 100 })).items).toEqual([]);
    expect((await s.listRuns(b.id, { limit: 100, state: 'queued' })).items).toEqual([]);
    expect(await s.countRuns(b.id, 'queued')).toBe(0);
    expect(await s.cpuUsedSince(b.id, 0)).toBe(0);

    expect(await s.listKeys(b.id)).toEqual([]);
    expect(await s.revokeKey(b.id, aKey.record.id)).toBe(false);
    expect((await s.authenticate(aKey.key))?.id).toBe(a.id);

    // A run may not name a module its tenant lacks, even by the right hash.
    expect((await storeError(() => newRun(s, b.id, mod.id))).code).toBe('not_found');
    // A cursor made from a's listing leaks nothing of a's into b's.
    const aPage = await s.listRuns(a.id, { limit: 1 });
    expect(aPage.next).toBeDefined();
    expect((await s.listRuns(b.id, { limit: 100, cursor: aPage.next! })).items).toEqual([]);

    // And a's view is intact.
    expect((await s.getRun(a.id, run.id))?.state).toBe('exited');
    expect(await s.countRuns(a.id, 'queued')).toBe(1);
    expect(await s.cpuUsedSince(a.id, 0)).toBe(70);
    expect(await s.moduleStorage(a.id)).toBe(mod.size);
  });
});

describe('modules', () => {
  it('putModule is idempotent and stores the bytes content-addressed, atomically', async () => {
    const s = await openStore();
    const t = await s.createTenant('acme');
    const bytes = bytesOf('hello');
    const first = await s.putModule(t.id, bytes, ['wasi_snapshot_preview1.fd_write', 'wasi_snapshot_preview1.proc_exit']);
    expect(first.created).toBe(true);
    expect(first.record).toEqual({
      id: `sha256:${sha(bytes)}`, tenantId: t.id, size: bytes.byteLength,
      imports: ['wasi_snapshot_preview1.fd_write', 'wasi_snapshot_preview1.proc_exit'], createdAt: clock,
    });
    if (onSqlite) {
      expect(new Uint8Array(fs.readFileSync(moduleFile(sha(bytes))))).toEqual(bytes);
      expect(fs.readdirSync(path.join(dir, 'modules', 'sha256'))).toEqual([sha(bytes)]); // no temp files left
    }

    clock += 1000;
    const again = await s.putModule(t.id, bytes, ['wasi_snapshot_preview1.fd_write', 'wasi_snapshot_preview1.proc_exit']);
    expect(again).toEqual({ record: first.record, created: false });
    expect(await s.getModule(t.id, first.record.id)).toEqual(first.record);
    expect(await s.moduleBytes(t.id, first.record.id)).toEqual(bytes);
    expect(await s.moduleStorage(t.id)).toBe(bytes.byteLength);

    const other = (await s.putModule(t.id, bytesOf('other!'), [])).record;
    expect(await s.moduleStorage(t.id)).toBe(bytes.byteLength + other.size);
    expect(await s.getModule(t.id, 'sha256:' + '0'.repeat(64))).toBeUndefined();
    expect(await s.getModule(t.id, '../../capsa.db')).toBeUndefined();
    expect(await s.moduleBytes(t.id, '../../capsa.db')).toBeUndefined();
    expect((await storeError(() => s.putModule('ten_nope', bytesOf('x'), []))).code).toBe('not_found');
    if (onSqlite) expect(fs.existsSync(moduleFile(sha(bytesOf('x'))))).toBe(false);
  });

  it('bytes are shared between tenants and go with their last reference', async () => {
    const s = await openStore();
    const [a, b] = [await s.createTenant('a'), await s.createTenant('b')];
    const bytes = bytesOf('shared');
    const id = (await s.putModule(a.id, bytes, [])).record.id;
    await s.putModule(b.id, bytes, []);
    expect(await s.deleteModule(a.id, id)).toBe(true);
    expect(await s.moduleBytes(a.id, id)).toBeUndefined();
    expect(await s.moduleBytes(b.id, id)).toEqual(bytes);
    expect(await s.deleteModule(b.id, id)).toBe(true);
    expect(await s.deleteModule(b.id, id)).toBe(false);
    // Uploaded again after the last reference went: stored anew.
    await s.putModule(a.id, bytes, []);
    expect(await s.moduleBytes(a.id, id)).toEqual(bytes);
  });

  it.runIf(onSqlite)('a file shared between tenants stays until its last reference is deleted', async () => {
    const s = await openStore();
    const a = await s.createTenant('a');
    const b = await s.createTenant('b');
    const bytes = bytesOf('shared');
    const ra = await s.putModule(a.id, bytes, []);
    const rb = await s.putModule(b.id, bytes, []);
    expect(rb.created).toBe(true); // a new record for b, the same file
    expect(rb.record.id).toBe(ra.record.id);
    expect(fs.readdirSync(path.join(dir, 'modules', 'sha256'))).toEqual([sha(bytes)]);

    expect(await s.deleteModule(a.id, ra.record.id)).toBe(true);
    expect(await s.deleteModule(a.id, ra.record.id)).toBe(false);
    expect(await s.getModule(a.id, ra.record.id)).toBeUndefined();
    expect(fs.existsSync(moduleFile(sha(bytes)))).toBe(true);
    expect(await s.moduleBytes(b.id, rb.record.id)).toEqual(bytes);

    expect(await s.deleteModule(b.id, rb.record.id)).toBe(true);
    expect(fs.existsSync(moduleFile(sha(bytes)))).toBe(false);
    expect(await s.moduleStorage(b.id)).toBe(0);

    // Uploading again after the file is gone writes it again.
    await s.putModule(a.id, bytes, []);
    expect(await s.moduleBytes(a.id, ra.record.id)).toEqual(bytes);
  });

  it.runIf(onSqlite)('repairs a missing or torn file on put, and sweeps orphans and temp files at open', async () => {
    const s = await openStore();
    const t = await s.createTenant('acme');
    const bytes = bytesOf('repair');
    const { record } = await s.putModule(t.id, bytes, []);
    fs.writeFileSync(moduleFile(sha(bytes)), 'torn');
    await s.putModule(t.id, bytes, []);
    expect(await s.moduleBytes(t.id, record.id)).toEqual(bytes);
    fs.unlinkSync(moduleFile(sha(bytes)));
    await expect(s.moduleBytes(t.id, record.id)).rejects.toThrow(/ENOENT/); // damage is a host error, not "not found"
    await s.putModule(t.id, bytes, []);
    expect(await s.moduleBytes(t.id, record.id)).toEqual(bytes);
    await s.close();

    const orphan = 'f'.repeat(64);
    fs.writeFileSync(moduleFile(orphan), 'left by a crash');
    fs.writeFileSync(moduleFile(`${sha(bytes)}.tmp-abcdef`), 'half');
    const s2 = await openStore();
    expect(fs.readdirSync(path.join(dir, 'modules', 'sha256'))).toEqual([sha(bytes)]);
    expect(await s2.moduleBytes(t.id, record.id)).toEqual(bytes);
  });

  it('rejects imports that are not strings', async () => {
    const s = await openStore();
    const t = await s.createTenant('acme');
    expect((await storeError(() => s.putModule(t.id, bytesOf('i'), [1] as unknown as string[]))).code).toBe('invalid');
  });
});

describe('pagination', () => {
  it('walks modules newest first across pages with ties, no duplicates or misses, even with inserts meanwhile', async () => {
    const s = await openStore();
    const t = await s.createTenant('acme');
    const ids: string[] = [];
    for (let i = 0; i < 57; i++) {
      if (i % 3 === 0) clock += 1; // three modules share each created_at
      ids.push((await s.putModule(t.id, bytesOf(`m${i}`), [])).record.id);
    }
    const seen: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const page = await s.listModules(t.id, cursor === undefined ? { limit: 10 } : { limit: 10, cursor });
      pages += 1;
      expect(page.items.length).toBeLessThanOrEqual(10);
      seen.push(...page.items.map((m) => m.id));
      if (pages === 2) {
        clock += 1;
        await s.putModule(t.id, bytesOf('newer, after the walk started'), []); // must not appear
      }
      cursor = page.next;
    } while (cursor !== undefined);
    expect(pages).toBe(6);
    expect(new Set(seen).size).toBe(seen.length);
    expect(new Set(seen)).toEqual(new Set(ids));
    // Newest first: createdAt never increases along the walk.
    const created: number[] = [];
    for (const id of seen) created.push((await s.getModule(t.id, id))!.createdAt);
    expect(created).toEqual([...created].sort((x, y) => y - x));
  });

  it('walks runs, with and without a state filter, and caps the limit at 100', async () => {
    const s = await openStore();
    const t = await s.createTenant('acme');
    const mod = (await s.putModule(t.id, bytesOf('r'), [])).record;
    const all: RunRecord[] = [];
    for (let i = 0; i < 230; i++) all.push(await newRun(s, t.id, mod.id, clock + Math.floor(i / 7)));
    const finished = new Set<string>();
    for (const r of all.filter((_, i) => i % 4 === 0)) {
      await s.startRun(r.id, clock);
      await s.finishRun(r.id, 'exited', '{}', clock, 1);
      finished.add(r.id);
    }

    const walk = async (state?: 'queued' | 'exited', limit = 1000) => {
      const out: string[] = [];
      let cursor: string | undefined;
      let pages = 0;
      for (;;) {
        const o: { state?: 'queued' | 'exited'; cursor?: string; limit: number } = { limit };
        if (state) o.state = state;
        if (cursor) o.cursor = cursor;
        const page = await s.listRuns(t.id, o);
        expect(page.items.length).toBeLessThanOrEqual(MAX_PAGE);
        out.push(...page.items.map((r) => r.id));
        pages += 1;
        if (page.next === undefined) return { out, pages };
        cursor = page.next;
      }
    };
    const everything = await walk();
    expect(everything.pages).toBe(3); // 100 + 100 + 30
    expect(everything.out).toEqual([...all].sort((x, y) => y.createdAt - x.createdAt || (y.id < x.id ? -1 : 1)).map((r) => r.id));
    const exited = await walk('exited', 7);
    expect(new Set(exited.out)).toEqual(finished);
    expect(exited.out.length).toBe(finished.size);
    const queued = await walk('queued', 50);
    expect(queued.out.length + exited.out.length).toBe(230);
    expect(queued.out.some((id) => finished.has(id))).toBe(false);

    // A limit below 1 still returns a page; a full last page has no `next`.
    expect((await s.listRuns(t.id, { limit: 0 })).items).toHaveLength(1);
    expect((await s.listRuns(t.id, { limit: 230 })).items).toHaveLength(100);
    expect((await s.listModules(t.id, { limit: 1 })).next).toBeUndefined();
  });

  it('rejects a cursor it did not issue', async () => {
    const s = await openStore();
    const t = await s.createTenant('acme');
    for (const bad of ['', 'not base64!', Buffer.from('{"a":1}').toString('base64url'), Buffer.from('[1]').toString('base64url'),
      Buffer.from('["x","y"]').toString('base64url'), 'A'.repeat(600)]) {
      expect((await storeError(() => s.listRuns(t.id, { limit: 10, cursor: bad }))).code).toBe('invalid');
      expect((await storeError(() => s.listModules(t.id, { limit: 10, cursor: bad }))).code).toBe('invalid');
    }
  });
});

describe('runs', () => {
  it('queued → running → terminal; a second start is refused; the first terminal state wins', async () => {
    const s = await openStore();
    const t = await s.createTenant('acme');
    const mod = (await s.putModule(t.id, bytesOf('run'), [])).record;
    const run = await newRun(s, t.id, mod.id);
    expect(run).toMatchObject({ state: 'queued', result: null, startedAt: null, finishedAt: null, attempts: 0, cpuMs: 0 });
    expect(run.id).toMatch(/^run_[A-Za-z0-9_-]{22}$/);
    expect(await s.getRun(t.id, run.id)).toEqual(run);
    expect(await s.countRuns(t.id, 'queued')).toBe(1);
    expect((await s.runsInState('queued')).map((r) => r.id)).toEqual([run.id]);

    expect(await s.startRun(run.id, clock + 1)).toBe(true);
    expect(await s.startRun(run.id, clock + 2)).toBe(false); // the race: only one worker gets it
    expect(await s.getRun(t.id, run.id)).toMatchObject({ state: 'running', startedAt: clock + 1, attempts: 1 });
    expect(await s.countRuns(t.id, 'queued')).toBe(0);
    expect(await s.countRuns(t.id, 'running')).toBe(1);

    expect(await s.finishRun(run.id, 'exited', '{"exitCode":0}', clock + 9, 42.4)).toBe(true);
    expect(await s.finishRun(run.id, 'cancelled', '{}', clock + 10, 0)).toBe(false);
    expect(await s.getRun(t.id, run.id)).toMatchObject({ state: 'exited', result: '{"exitCode":0}', finishedAt: clock + 9, cpuMs: 42, attempts: 1 });
    expect(await s.startRun(run.id, clock + 11)).toBe(false);

    // Cancelled while queued: never starts.
    const c = await newRun(s, t.id, mod.id);
    expect(await s.finishRun(c.id, 'cancelled', '{}', clock, 0)).toBe(true);
    expect(await s.startRun(c.id, clock)).toBe(false);
    expect((await s.getRun(t.id, c.id))?.attempts).toBe(0);

    expect((await storeError(() => s.finishRun(c.id, 'running', '{}', clock, 0))).code).toBe('invalid');
    expect(await s.startRun('run_nope', clock)).toBe(false);
    expect(await s.finishRun('run_nope', 'exited', '{}', clock, 0)).toBe(false);
    expect((await storeError(() => s.createRun({ id: run.id, tenantId: t.id, moduleId: mod.id, request: '{}', createdAt: clock }))).code).toBe('conflict');
  });

  it('requeue rule: a run cut off once is queued again; cut off twice it ends interrupted (blame host)', async () => {
    const s = await openStore();
    const t = await s.createTenant('acme');
    const mod = (await s.putModule(t.id, bytesOf('rq'), [])).record;
    const run = await newRun(s, t.id, mod.id);

    await s.requeueRun(run.id); // queued: untouched
    expect(await s.getRun(t.id, run.id)).toMatchObject({ state: 'queued', attempts: 0 });

    expect(await s.startRun(run.id, clock + 1)).toBe(true);
    await s.requeueRun(run.id);
    expect(await s.getRun(t.id, run.id)).toMatchObject({ state: 'queued', attempts: 1, startedAt: null, result: null, finishedAt: null });

    expect(await s.startRun(run.id, clock + 2)).toBe(true);
    expect((await s.getRun(t.id, run.id))?.attempts).toBe(2);
    clock += 50;
    await s.requeueRun(run.id);
    const ended = (await s.getRun(t.id, run.id))!;
    expect(ended).toMatchObject({ state: 'interrupted', attempts: 2, finishedAt: clock });
    expect(JSON.parse(ended.result!)).toEqual({
      status: 'interrupted', blame: 'host', message: 'the server stopped while the run was running; it was retried once',
    });
    expect(ended.result).toBe(INTERRUPTED_RESULT);

    await s.requeueRun(run.id); // terminal: untouched
    expect(await s.getRun(t.id, run.id)).toEqual(ended);
    expect(await s.startRun(run.id, clock)).toBe(false);
  });

  it('runsInState is oldest first across tenants', async () => {
    const s = await openStore();
    const a = await s.createTenant('a');
    const b = await s.createTenant('b');
    const ma = (await s.putModule(a.id, bytesOf('a'), [])).record;
    const mb = (await s.putModule(b.id, bytesOf('b'), [])).record;
    const r1 = await newRun(s, b.id, mb.id, clock + 1);
    const r2 = await newRun(s, a.id, ma.id, clock + 2);
    const r3 = await newRun(s, b.id, mb.id, clock + 3);
    const r0 = await newRun(s, a.id, ma.id, clock);
    expect((await s.runsInState('queued')).map((r) => r.id)).toEqual([r0.id, r1.id, r2.id, r3.id]);
    await s.startRun(r2.id, clock);
    expect((await s.runsInState('running')).map((r) => r.id)).toEqual([r2.id]);
    expect((await s.runsInState('queued')).map((r) => r.id)).toEqual([r0.id, r1.id, r3.id]);
  });

  it('cpuUsedSince reads per-day counters: the CPU of runs finished on each UTC day, charged once by the finishRun that ended the run', async () => {
    const s = await openStore();
    const [t, other] = [await s.createTenant('acme'), await s.createTenant('other')];
    const mod = (await s.putModule(t.id, bytesOf('cpu'), [])).record;
    const otherMod = (await s.putModule(other.id, bytesOf('cpu'), [])).record;
    const day = 1_750_032_000_000;
    expect(utcDayStart(day)).toBe(day);
    const fin = async (at: number, cpu: number, tenantId = t.id, moduleId = mod.id) => {
      const r = await newRun(s, tenantId, moduleId, at - 10);
      await s.startRun(r.id, at - 5);
      expect(await s.finishRun(r.id, 'exited', '{}', at, cpu)).toBe(true);
      return r;
    };
    await fin(day - 1, 1000); // yesterday's last millisecond
    await fin(day, 250);
    const late = await fin(day + 3_600_000, 125);
    await fin(day + 5, 40, other.id, otherMod.id);
    // Ends that lose add nothing: a second end of an ended run, another attempt's end.
    expect(await s.finishRun(late.id, 'cancelled', '{}', day + 3_600_001, 500)).toBe(false);
    const raced = await newRun(s, t.id, mod.id, day);
    await s.startRun(raced.id, day);
    expect(await s.finishRun(raced.id, 'exited', '{}', day + 10, 700, 2)).toBe(false);
    const running = await newRun(s, t.id, mod.id, day);
    await s.startRun(running.id, day); // not finished: counts nothing yet
    // The counters are the store's own: pruning every ended run leaves them as they were.
    clock = day + 3_600_002;
    await s.pruneTenant(t.id, day + DAY_MS, 100);
    await s.pruneTenant(other.id, day + DAY_MS, 100);
    expect((await s.listRuns(t.id, { limit: 100 })).items.map((r) => r.state).sort()).toEqual(['running', 'running']);
    expect(await s.cpuUsedSince(t.id, day)).toBe(375);
    expect(await s.cpuUsedSince(t.id, day - DAY_MS)).toBe(1375);
    expect(await s.cpuUsedSince(t.id, day + DAY_MS)).toBe(0);
    expect(await s.cpuUsedSince(other.id, day)).toBe(40);
    // The raced run's real end (its own attempt) is charged.
    expect(await s.finishRun(raced.id, 'exited', '{}', day + 20, 7, 1)).toBe(true);
    expect(await s.cpuUsedSince(t.id, day)).toBe(382);
    // A time inside a day is refused, not rounded: the counters cannot say what ran after it.
    expect(await storeError(() => s.cpuUsedSince(t.id, day + 3_600_001))).toMatchObject({ code: 'invalid', message: expect.stringMatching(/UTC day start.*use 1750032000000/) });
  });

  it('pruneTenant drops CPU counters older than a few days, never today\'s', async () => {
    const s = await openStore();
    const t = await s.createTenant('acme');
    const mod = (await s.putModule(t.id, bytesOf('cpu'), [])).record;
    const day = 1_750_032_000_000;
    for (const [i, at] of [day - 5 * DAY_MS, day - 2 * DAY_MS, day - DAY_MS, day].entries()) {
      const r = await newRun(s, t.id, mod.id, at);
      await s.finishRun(r.id, 'exited', '{}', at + 1, 10 ** i);
    }
    expect(await s.cpuUsedSince(t.id, 0)).toBe(1111);
    clock = day + 1000;
    expect(await s.pruneTenant(t.id, 0, 10)).toEqual({ runs: 0, modules: 0 });
    // Kept: today and the two days before (their runs untouched: retention is another matter).
    expect(await s.cpuUsedSince(t.id, 0)).toBe(1110);
    expect(await s.cpuUsedSince(t.id, day)).toBe(1000);
  });
});

describe('the queue: claims, leases, quotas', () => {
  const claim = (s: Store, max: number, o: Partial<ClaimOptions> = {}) =>
    s.claimRuns({ node: 'n1', max, leaseMs: 1000, concurrentRuns: 100, ...o });
  /** Tenants named by letter, each with its module; `runs(t, n)` queues n runs of it, a ms apart. */
  async function tenants(s: Store, names: string[]) {
    const out = new Map<string, { id: string; mod: string }>();
    for (const n of names) {
      const t = await s.createTenant(n);
      out.set(n, { id: t.id, mod: (await s.putModule(t.id, bytesOf(n), [])).record.id });
    }
    return out;
  }

  it('claims in the fair order: the tenant served longest ago gives its oldest run, one a turn', async () => {
    const s = await openStore();
    const ts = await tenants(s, ['A', 'B', 'C']);
    const name = new Map([...ts].map(([n, t]) => [t.id, n]));
    const ids = new Map<string, string>();
    let at = clock;
    for (const [n, k] of [['A', 3], ['B', 1], ['C', 2]] as const) {
      for (let i = 0; i < k; i++) ids.set((await newRun(s, ts.get(n)!.id, ts.get(n)!.mod, ++at)).id, `${n}${i}`);
    }
    const order: string[] = [];
    for (let i = 0; i < 6; i++) {
      const [r] = await claim(s, 1);
      expect(r).toMatchObject({ state: 'running', attempts: 1, startedAt: clock, nodeId: 'n1' });
      expect(name.get(r!.tenantId)).toBe(ids.get(r!.id)![0]);
      order.push(ids.get(r!.id)!);
    }
    expect(order).toEqual(['A0', 'B0', 'C0', 'A1', 'C1', 'A2']);
    expect(await claim(s, 5)).toEqual([]);
    expect(await s.getRun(ts.get('A')!.id, [...ids].find(([, v]) => v === 'A2')![0])).toMatchObject({ state: 'running', nodeId: 'n1' });

    // A tenant that queues later is not behind those served meanwhile; nor is one served before.
    const d = (await tenants(s, ['D'])).get('D')!;
    await newRun(s, ts.get('A')!.id, ts.get('A')!.mod);
    await newRun(s, d.id, d.mod);
    await newRun(s, ts.get('B')!.id, ts.get('B')!.mod);
    expect((await claim(s, 3)).map((r) => name.get(r.tenantId) ?? 'D')).toEqual(['D', 'B', 'A']);
  });

  it('a tenant at its concurrent-runs bound is skipped until one of its runs ends; max bounds a claim', async () => {
    const s = await openStore();
    const ts = await tenants(s, ['A', 'B']);
    const a = ts.get('A')!;
    const b = ts.get('B')!;
    for (let i = 0; i < 5; i++) await newRun(s, a.id, a.mod, clock + i);
    await newRun(s, b.id, b.mod, clock + 9);
    const first = await claim(s, 10, { concurrentRuns: 2 });
    expect(first.map((r) => r.tenantId).sort()).toEqual([a.id, a.id, b.id].sort());
    expect(await claim(s, 10, { concurrentRuns: 2 })).toEqual([]);
    expect(await s.countRuns(a.id, 'running')).toBe(2);
    const aRun = first.find((r) => r.tenantId === a.id)!;
    expect(await s.finishRun(aRun.id, 'exited', '{}', clock, 1, 1)).toBe(true);
    const next = await claim(s, 10, { concurrentRuns: 2 });
    expect(next.map((r) => r.tenantId)).toEqual([a.id]);
    expect(await claim(s, 0)).toEqual([]);
    expect(await claim(s, 1)).toHaveLength(1);
  });

  it('each tenant\'s own concurrentRuns quota bounds its claims, over the service-wide one; a changed quota holds at the next claim', async () => {
    const [s1, s2] = [await openStore(), await openStore()];
    const ts = await tenants(s1, ['A', 'B', 'C']);
    const [a, b, c] = ['A', 'B', 'C'].map((n) => ts.get(n)!);
    await s1.setQuotas(a!.id, { concurrentRuns: 1 });
    await s1.setQuotas(b!.id, { concurrentRuns: 3, queuedRuns: 50 });
    // C has none of its own: the service's 2 holds for it.
    for (const [i, t] of [a, b, c].entries()) for (let k = 0; k < 6; k++) await newRun(s1, t!.id, t!.mod, clock + i * 10 + k);
    const running = async () => Promise.all([a, b, c].map((t) => s1.countRuns(t!.id, 'running')));
    // Two claimers at once (two connections, as two nodes), each asking for more than the bounds allow.
    const got = (await Promise.all(Array.from({ length: 6 }, (_, i) => claim(i % 2 ? s1 : s2, 4, { node: i % 2 ? 'n1' : 'n2', concurrentRuns: 2 })))).flat();
    expect(new Set(got.map((r) => r.id)).size).toBe(got.length);
    expect(await running()).toEqual([1, 3, 2]);
    expect(await claim(s2, 10, { concurrentRuns: 2 })).toEqual([]);
    // A larger service-wide bound does not lift a tenant's own lower one (A), but lifts C's.
    expect((await claim(s1, 10, { concurrentRuns: 4 })).map((r) => r.tenantId).sort()).toEqual([c!.id, c!.id].sort());
    expect(await running()).toEqual([1, 3, 4]);
    // A raised quota holds at the next claim; an ended run frees a place under B's own bound.
    await s1.setQuotas(a!.id, { concurrentRuns: 2 });
    const bRun = got.find((r) => r.tenantId === b!.id)!;
    expect(await s1.finishRun(bRun.id, 'exited', '{}', clock, 1, 1)).toBe(true);
    expect((await claim(s2, 10, { concurrentRuns: 2 })).map((r) => r.tenantId).sort()).toEqual([a!.id, b!.id].sort());
    expect(await running()).toEqual([2, 3, 4]);
  });

  it('two claimers at once (two connections, as two nodes) never pass a tenant\'s bound, and claim each run once', async () => {
    const [s1, s2] = [await openStore(), await openStore()];
    const ts = await tenants(s1, ['A', 'B', 'C']);
    const total = 36;
    for (let i = 0; i < total; i++) {
      const t = [...ts.values()][i % 3]!;
      await newRun(s1, t.id, t.mod, clock + i);
    }
    const claimed = new Map<string, string>();
    for (let round = 0; claimed.size < total; round++) {
      expect(round).toBeLessThan(total);
      // Each node asks for more than the bound allows, many times over, at once.
      const got = (await Promise.all(Array.from({ length: 8 }, (_, i) => claim(i % 2 ? s1 : s2, 4, { node: i % 2 ? 'n1' : 'n2', concurrentRuns: 2 })))).flat();
      for (const r of got) {
        expect(claimed.has(r.id)).toBe(false);
        claimed.set(r.id, r.nodeId!);
      }
      for (const t of ts.values()) expect(await s1.countRuns(t.id, 'running')).toBeLessThanOrEqual(2);
      // Every tenant with queued runs got its two: nothing was left unclaimed that the bound allowed.
      for (const t of ts.values()) {
        if (await s1.countRuns(t.id, 'queued')) expect(await s1.countRuns(t.id, 'running')).toBe(2);
      }
      for (const r of got) expect(await s2.finishRun(r.id, 'exited', '{}', clock, 0, r.attempts)).toBe(true);
    }
    expect(claimed.size).toBe(total);
  });

  it('leases: renewed by their node and attempt only; an expired one is recovered once by the restart rule; a late end of a lost attempt is refused', async () => {
    const s = await openStore();
    const a = (await tenants(s, ['A'])).get('A')!;
    const r1 = await newRun(s, a.id, a.mod, clock);
    const r2 = await newRun(s, a.id, a.mod, clock + 1);
    const [c1, c2] = await claim(s, 2, { leaseMs: 1000 });
    expect([c1!.id, c2!.id]).toEqual([r1.id, r2.id]);
    expect(await s.renewLeases('n1', [{ id: r1.id, attempt: 1 }, { id: r2.id, attempt: 1 }], 1000, clock + 900)).toEqual([r1.id, r2.id]);
    expect(await s.renewLeases('n2', [{ id: r1.id, attempt: 1 }], 1000, clock + 900)).toEqual([]);
    expect(await s.renewLeases('n1', [{ id: r1.id, attempt: 2 }], 1000, clock + 900)).toEqual([]);
    // r1's lease runs to clock+1900 and r2's, renewed again, further; at clock+1950 only r1's expired.
    expect(await s.renewLeases('n1', [{ id: r2.id, attempt: 1 }], 1000, clock + 1500)).toEqual([r2.id]);
    expect(await s.expireLeases(clock + 1899)).toEqual([]);
    const expired = await s.expireLeases(clock + 1950);
    expect(expired).toMatchObject([{ id: r1.id, state: 'queued', attempts: 1, startedAt: null }]);
    expect(await s.expireLeases(clock + 1950)).toEqual([]);
    // The node that lost r1 no longer holds it: no renewal, no end, no requeue.
    expect(await s.renewLeases('n1', [{ id: r1.id, attempt: 1 }], 1000, clock + 1960)).toEqual([]);
    expect(await s.finishRun(r1.id, 'exited', '{}', clock + 1960, 5, 1)).toBe(false);
    // Another node claims the retry; the first node's late end of attempt 1 still cannot end it.
    clock += 2000;
    const [retry] = await claim(s, 1, { node: 'n2' });
    expect(retry).toMatchObject({ id: r1.id, attempts: 2, nodeId: 'n2' });
    expect(await s.finishRun(r1.id, 'exited', '{}', clock + 1, 5, 1)).toBe(false);
    expect(await s.requeueRun(r1.id, 1)).toBeUndefined();
    expect(await s.getRun(a.id, r1.id)).toMatchObject({ state: 'running', attempts: 2 });
    // The retry's lease expires too: it ends interrupted, blame host.
    clock += 10_000;
    const ended = await s.expireLeases(clock);
    expect(ended.map((r) => [r.id, r.state])).toEqual([[r1.id, 'interrupted'], [r2.id, 'queued']]);
    expect(ended[0]!.result).toBe(INTERRUPTED_RESULT);
    expect(await s.finishRun(r1.id, 'exited', '{}', clock, 5, 2)).toBe(false);
    // A run started without a lease (startRun) counts as expired.
    const [again] = await claim(s, 1);
    expect(again!.id).toBe(r2.id);
    expect(await s.finishRun(r2.id, 'exited', '{}', clock, 5, 2)).toBe(true);
    const r3 = await newRun(s, a.id, a.mod);
    expect(await s.startRun(r3.id, clock, 'tool')).toBe(true);
    expect((await s.expireLeases(clock)).map((r) => r.id)).toEqual([r3.id]);
  });

  it('createRun checks the queued-runs and CPU quotas in its transaction: a refusal stores nothing', async () => {
    const s = await openStore();
    const ts = await tenants(s, ['A', 'B']);
    const a = ts.get('A')!;
    const b = ts.get('B')!;
    const quota = { queuedRuns: 2, cpuMs: 100, since: utcDayStart(clock) };
    const make = (t: { id: string; mod: string }, q = quota) => s.createRun({ id: newRunId(), tenantId: t.id, moduleId: t.mod, request: '{}', createdAt: clock }, q);
    await make(a);
    const second = await make(a);
    const refused = await storeError(() => make(a));
    expect(refused).toMatchObject({ code: 'quota', quota: 'queuedRuns', limit: 2, used: 2 });
    expect(await s.countRuns(a.id, 'queued')).toBe(2);
    await make(b);
    // CPU: runs finished today count; below the quota a run is taken, once they reach it, refused.
    expect(await s.startRun(second.id, clock, 'n1')).toBe(true);
    expect(await s.finishRun(second.id, 'exited', '{}', clock, 99, 1)).toBe(true);
    const third = await make(a);
    expect(await s.finishRun(third.id, 'cancelled', '{}', clock, 1)).toBe(true);
    expect(await storeError(() => make(a))).toMatchObject({ code: 'quota', quota: 'cpuMs', limit: 100, used: 100 });
    // Another tenant's day is its own; tomorrow starts from zero.
    expect(await make(b, { ...quota, queuedRuns: 5 })).toMatchObject({ state: 'queued' });
    expect(await make(a, { ...quota, since: quota.since + DAY_MS })).toMatchObject({ state: 'queued' });
    expect(await s.countRuns(a.id, 'queued')).toBe(2);
    // Run retention shorter than a day does not give the CPU back.
    clock += 1000;
    await s.pruneTenant(a.id, clock, 100);
    expect(await s.getRun(a.id, second.id)).toBeUndefined();
    expect(await storeError(() => make(a, { ...quota, queuedRuns: 9 }))).toMatchObject({ code: 'quota', quota: 'cpuMs', limit: 100, used: 100 });
    // The quota's day must be a UTC day start.
    expect(await storeError(() => make(a, { ...quota, since: clock }))).toMatchObject({ code: 'invalid' });
  });

  it('two nodes creating runs at once never pass the queued-runs quota', async () => {
    const [s1, s2] = [await openStore(), await openStore()];
    const a = (await tenants(s1, ['A'])).get('A')!;
    const quota = { queuedRuns: 5, cpuMs: 1e9, since: 0 };
    const tries = await Promise.allSettled(Array.from({ length: 20 }, (_, i) => (i % 2 ? s1 : s2).createRun({ id: newRunId(), tenantId: a.id, moduleId: a.mod, request: '{}', createdAt: clock }, quota)));
    expect(tries.filter((t) => t.status === 'fulfilled')).toHaveLength(5);
    for (const t of tries) if (t.status === 'rejected') expect(t.reason).toMatchObject({ code: 'quota', quota: 'queuedRuns' });
    expect(await s1.countRuns(a.id, 'queued')).toBe(5);
  });

  it('runCounts counts the queue of all tenants; watchQueue hears createRun and requeues', async () => {
    const s = await openStore();
    const ts = await tenants(s, ['A', 'B']);
    let heard = 0;
    const w = await s.watchQueue(() => { heard++; });
    for (const t of ts.values()) await newRun(s, t.id, t.mod);
    await newRun(s, ts.get('A')!.id, ts.get('A')!.mod);
    await vi.waitFor(() => expect(heard).toBeGreaterThanOrEqual(3), STATE_WAIT);
    expect(await s.runCounts()).toEqual({ queued: 3, running: 0, tenantsWaiting: 2 });
    const [r] = await claim(s, 1);
    expect(await s.runCounts()).toEqual({ queued: 2, running: 1, tenantsWaiting: r!.tenantId === ts.get('A')!.id ? 2 : 1 });
    const before = heard;
    expect(await s.requeueRun(r!.id, 1)).toMatchObject({ state: 'queued' });
    await vi.waitFor(() => expect(heard).toBeGreaterThan(before), STATE_WAIT);
    await w.close();
  });
});

describe('events', () => {
  it('numbers events per run from 1 and resumes after a seq', async () => {
    const s = await openStore();
    const t = await s.createTenant('acme');
    const mod = (await s.putModule(t.id, bytesOf('ev'), [])).record;
    const r1 = await newRun(s, t.id, mod.id);
    const r2 = await newRun(s, t.id, mod.id);
    const e1 = await s.appendEvent(r1.id, 'status', '{"state":"running"}');
    expect(e1).toEqual({ runId: r1.id, seq: 1, type: 'status', data: '{"state":"running"}', at: clock, attempt: 0 });
    clock += 1;
    await s.appendEvent(r1.id, 'stdout', '"aGk="');
    expect((await s.appendEvent(r2.id, 'status', '{}')).seq).toBe(1);
    await s.appendEvent(r1.id, 'audit', '{}');
    const exit = await s.appendEvent(r1.id, 'exit', '{"state":"exited"}');
    expect(exit.seq).toBe(4);

    expect((await s.events(r1.id, 0)).map((e) => [e.seq, e.type])).toEqual([[1, 'status'], [2, 'stdout'], [3, 'audit'], [4, 'exit']]);
    expect((await s.events(r1.id, 2)).map((e) => e.seq)).toEqual([3, 4]);
    expect(await s.events(r1.id, 4)).toEqual([]);
    expect(await s.events(r2.id, 0)).toHaveLength(1);
    expect(await s.events('run_nope', 0)).toEqual([]);
    expect((await storeError(() => s.appendEvent('run_nope', 'status', '{}'))).code).toBe('not_found');
    expect((await storeError(() => s.appendEvent(r1.id, 'bogus' as 'status', '{}'))).code).toBe('invalid');
  });

  it('stamps each event with the attempt the run is on', async () => {
    const s = await openStore();
    const t = await s.createTenant('acme');
    const run = await newRun(s, t.id, (await s.putModule(t.id, bytesOf('att'), [])).record.id);
    const attempts = async () => (await s.events(run.id, 0)).map((e) => [e.type, e.attempt]);
    await s.appendEvent(run.id, 'status', '{}');
    await s.startRun(run.id, clock);
    await s.appendEvent(run.id, 'stdout', '{}');
    await s.requeueRun(run.id);
    await s.appendEvent(run.id, 'status', '{}');
    await s.startRun(run.id, clock);
    expect((await s.appendEvent(run.id, 'attempt', '{}')).attempt).toBe(2);
    await s.appendEvent(run.id, 'stdout', '{}');
    expect(await attempts()).toEqual([['status', 0], ['stdout', 1], ['status', 1], ['attempt', 2], ['stdout', 2]]);
  });

  it('announces every append to its watchers (on PostgreSQL, those of every connection to the database) until they close', async () => {
    const s = await openStore();
    // PostgreSQL: another node's store on the same database hears it; SQLite: the one process's store.
    const other = onSqlite ? s : await openStore();
    const t = await s.createTenant('acme');
    const run = await newRun(s, t.id, (await s.putModule(t.id, bytesOf('watch'), [])).record.id);
    const heard: unknown[] = [];
    const watch = await other.watchEvents((n) => heard.push(n));
    await s.appendEvent(run.id, 'status', '{}');
    await s.appendEvent(run.id, 'stdout', '{"data":"x"}');
    await s.appendEvent(run.id, 'exit', '{}');
    await vi.waitFor(() => expect(heard).toEqual([
      { runId: run.id, seq: 1, type: 'status' }, { runId: run.id, seq: 2, type: 'stdout' }, { runId: run.id, seq: 3, type: 'exit' },
    ]), { timeout: 10_000 });
    await watch.close();
    await s.appendEvent(run.id, 'audit', '{}');
    // A later watcher on the same store hears the next append, the closed one never does.
    const later: unknown[] = [];
    const watch2 = await other.watchEvents((n) => later.push(n));
    await s.appendEvent(run.id, 'audit', '{}');
    await vi.waitFor(() => expect(later).toEqual([{ runId: run.id, seq: 5, type: 'audit' }]), { timeout: 10_000 });
    expect(heard).toHaveLength(3);
    await watch2.close();
    // A failed append (an unknown run) announces nothing.
    const none: unknown[] = [];
    const watch3 = await other.watchEvents((n) => none.push(n));
    await expect(s.appendEvent('run_nope', 'status', '{}')).rejects.toThrow();
    await s.appendEvent(run.id, 'exit', '{}');
    await vi.waitFor(() => expect(none).toEqual([{ runId: run.id, seq: 6, type: 'exit' }]), { timeout: 10_000 });
    await watch3.close();
  });

  it.runIf(onSqlite)('migration 2 gives the events of an older database their attempts', async () => {
    const raw = rawDb();
    raw.exec(MIGRATIONS[0]!);
    raw.exec('PRAGMA user_version = 1');
    raw.prepare(`INSERT INTO tenants (id, name, created_at) VALUES ('ten_1', 'old', 0)`).run();
    raw.prepare(`INSERT INTO runs (id, tenant_id, module_id, state, request, created_at, attempts) VALUES ('run_1', 'ten_1', 'sha256:00', 'exited', '{}', 0, 2)`).run();
    const add = raw.prepare('INSERT INTO run_events (run_id, seq, type, data, at) VALUES (?, ?, ?, ?, 0)');
    const old = [['status', '{"state":"running","attempt":1}'], ['stdout', '{"data":"a"}'], ['status', '{"state":"queued"}'],
      ['status', '{"state":"running","attempt":2}'], ['stdout', '{"data":"a"}'], ['exit', '{"state":"exited"}']] as const;
    old.forEach(([type, data], i) => add.run('run_1', i + 1, type, data));
    await raw.close();
    const s = await openStore();
    expect((await s.events('run_1', 0)).map((e) => e.attempt)).toEqual([1, 1, 1, 2, 2, 2]);
  });
});

describe('the CPU counters of an older database (the migration backfills them)', () => {
  it('an upgrade mid-day keeps the day\'s CPU: today\'s and yesterday\'s runs are summed into the counters', async () => {
    // The backfill reads the database's clock: runs are placed around the real today.
    const today = utcDayStart(Date.now());
    const rows = [['run_1', today + 1, 300], ['run_2', today + 2, 45], ['run_3', today - 1, 20], ['run_4', today - 3 * DAY_MS, 9], ['run_5', null, 0]] as const;
    const insert = `INSERT INTO runs (id, tenant_id, module_id, state, request, created_at, finished_at, cpu_ms) VALUES `;
    if (onSqlite) {
      const raw = rawDb();
      for (const m of MIGRATIONS.slice(0, 5)) raw.exec(m);
      raw.exec('PRAGMA user_version = 5');
      raw.prepare(`INSERT INTO tenants (id, name, created_at) VALUES ('ten_1', 'old', 0)`).run();
      const add = raw.prepare(`${insert} (?, 'ten_1', 'sha256:00', ?, '{}', 0, ?, ?)`);
      for (const [id, at, cpu] of rows) add.run(id, at === null ? 'queued' : 'exited', at, cpu);
      await raw.close();
    } else {
      const c = new pg.Client({ connectionString: pgUrl });
      await c.connect();
      try {
        await c.query('DROP SCHEMA public CASCADE; CREATE SCHEMA public');
        await c.query('CREATE TABLE capsa_schema (version INTEGER NOT NULL)');
        for (const m of PG_MIGRATIONS.slice(0, 4)) await c.query(m);
        await c.query('INSERT INTO capsa_schema (version) VALUES (4)');
        await c.query(`INSERT INTO tenants (id, name, created_at) VALUES ('ten_1', 'old', 0)`);
        for (const [id, at, cpu] of rows) await c.query(`${insert} ($1, 'ten_1', 'sha256:00', $2, '{}', 0, $3, $4)`, [id, at === null ? 'queued' : 'exited', at, cpu]);
      } finally {
        await c.end();
      }
    }
    const s = await openStore();
    // The counters stand on their own: without the runs, the day's CPU is still there.
    clock = today + DAY_MS;
    expect(await s.pruneTenant('ten_1', today + DAY_MS, 100)).toEqual({ runs: 4, modules: 0 });
    expect(await s.cpuUsedSince('ten_1', today)).toBe(345);
    expect(await s.cpuUsedSince('ten_1', 0)).toBe(365);
  });
});

describe('a change of state and its events are one transaction', () => {
  const ev = (type: RunEventRecord['type'], data: unknown) => ({ type, data: JSON.stringify(data) });
  const exitWrites = (state: string, over: Partial<DeliveryRecord> & { runId: string; tenantId: string }) => ({
    events: [ev('status', { state }), ev('exit', { state })],
    delivery: { id: `whd_${state}`, url: 'https://hooks.example/x', state: 'pending' as const, attempts: 0, lastStatus: null, lastError: null, nextAt: clock, createdAt: clock, updatedAt: clock, ...over },
  });
  const kinds = async (s: Store, runId: string) => (await s.events(runId, 0)).map((e) => [e.type, e.attempt]);

  it('finishRun stores its status and exit events and its delivery once it returns true; a finishRun that loses writes nothing', async () => {
    const s = await openStore();
    const t = await s.createTenant('acme');
    const mod = (await s.putModule(t.id, bytesOf('fin'), [])).record;
    const run = await newRun(s, t.id, mod.id);
    const [claimed] = await s.claimRuns({ node: 'n1', max: 1, leaseMs: 1000, concurrentRuns: 9, events: (r) => [ev('status', { state: 'running', attempt: r.attempts })] });
    expect(claimed!.attempts).toBe(1);
    await s.appendEvent(run.id, 'stdout', '"aGk="');
    // Another attempt's end loses (the guard), a cancel's wins, the run's own end then loses: only the winner wrote.
    expect(await s.finishRun(run.id, 'exited', '{}', clock, 1, 2, exitWrites('exited', { runId: run.id, tenantId: t.id }))).toBe(false);
    expect(await s.finishRun(run.id, 'cancelled', '{}', clock, 0, undefined, exitWrites('cancelled', { runId: run.id, tenantId: t.id }))).toBe(true);
    expect(await kinds(s, run.id)).toEqual([['status', 1], ['stdout', 1], ['status', 1], ['exit', 1]]);
    expect(await s.finishRun(run.id, 'exited', '{}', clock, 1, 1, exitWrites('exited', { runId: run.id, tenantId: t.id }))).toBe(false);
    expect((await s.events(run.id, 0)).filter((e) => e.type === 'exit').map((e) => JSON.parse(e.data).state)).toEqual(['cancelled']);
    expect((await s.listDeliveries(run.id)).map((d) => d.id)).toEqual(['whd_cancelled']);
    // A write that fails (an event type the store does not know) rolls the end back.
    const other = await newRun(s, t.id, mod.id);
    await expect(s.finishRun(other.id, 'exited', '{}', clock, 0, undefined, { events: [ev('bogus' as 'exit', {})] })).rejects.toThrow();
    expect(await s.getRun(t.id, other.id)).toMatchObject({ state: 'queued' });
    expect(await s.events(other.id, 0)).toEqual([]);
  });

  it('two nodes ending one run at once, while its output is appended: one end, one exit event, every append kept', async () => {
    const [s1, s2] = [await openStore(), await openStore()];
    const t = await s1.createTenant('acme');
    const mod = (await s1.putModule(t.id, bytesOf('race'), [])).record;
    for (let i = 0; i < 8; i++) {
      const run = await newRun(s1, t.id, mod.id);
      expect(await s1.startRun(run.id, clock, 'n1')).toBe(true);
      const [won1, won2] = await Promise.all([
        s1.finishRun(run.id, 'exited', '{}', clock, 1, 1, exitWrites('exited', { id: `whd_x${i}`, runId: run.id, tenantId: t.id })),
        s2.finishRun(run.id, 'cancelled', '{}', clock, 0, undefined, exitWrites('cancelled', { id: `whd_c${i}`, runId: run.id, tenantId: t.id })),
        ...Array.from({ length: 6 }, () => s2.appendEvent(run.id, 'stdout', '"eA=="')),
      ]);
      expect([won1, won2].filter(Boolean)).toHaveLength(1);
      const events = await s1.events(run.id, 0);
      expect(events.map((e) => e.seq)).toEqual(events.map((_, k) => k + 1));
      expect(events.filter((e) => e.type === 'stdout')).toHaveLength(6);
      expect(events.filter((e) => e.type === 'exit')).toHaveLength(1);
      expect(await s1.listDeliveries(run.id)).toHaveLength(1);
    }
  });

  it('a claim stores each run\'s first events on its new attempt; they are announced', async () => {
    const s = await openStore();
    const t = await s.createTenant('acme');
    const run = await newRun(s, t.id, (await s.putModule(t.id, bytesOf('claimev'), [])).record.id);
    const heard: unknown[] = [];
    const w = await s.watchEvents((n) => heard.push(n));
    await s.claimRuns({ node: 'n1', max: 1, leaseMs: 1000, concurrentRuns: 9, events: () => [ev('status', { state: 'running' })] });
    await s.requeueRun(run.id, 1);
    await s.claimRuns({ node: 'n2', max: 1, leaseMs: 1000, concurrentRuns: 9, events: (r) => [ev('attempt', { attempt: r.attempts }), ev('status', { state: 'running' })] });
    expect(await kinds(s, run.id)).toEqual([['status', 1], ['attempt', 2], ['status', 2]]);
    await vi.waitFor(() => expect(heard).toEqual([1, 2, 3].map((seq, i) => ({ runId: run.id, seq, type: ['status', 'attempt', 'status'][i] }))), STATE_WAIT);
    await w.close();
  });

  it('a requeue\'s status event belongs to the attempt cut off: stored before the queue\'s watchers hear of the retry', async () => {
    // PostgreSQL: another node's store hears the NOTIFY; SQLite: the one process's store hears its own requeue.
    const s1 = await openStore();
    const s2 = onSqlite ? s1 : await openStore();
    const t = await s1.createTenant('acme');
    const run = await newRun(s1, t.id, (await s1.putModule(t.id, bytesOf('rqev'), [])).record.id);
    await s1.claimRuns({ node: 'n1', max: 1, leaseMs: 1000, concurrentRuns: 9 });
    // Another node claims the retry the moment it hears of it, as a scheduler does.
    const retried: RunRecord[] = [];
    const w = await s2.watchQueue(() => { void s2.claimRuns({ node: 'n2', max: 1, leaseMs: 1000, concurrentRuns: 9 }).then((r) => retried.push(...r)); });
    const after = await s1.requeueRun(run.id, 1, (r) => ({ events: [ev('status', { state: r.state, message: 'cut off' })] }));
    expect(after).toMatchObject({ state: 'queued', attempts: 1 });
    await vi.waitFor(() => expect(retried.map((r) => r.attempts)).toEqual([2]), STATE_WAIT);
    expect(await kinds(s1, run.id)).toEqual([['status', 1]]);
    // Cut off again (its lease expired): it ends interrupted, the end's events and delivery on attempt 2.
    clock += 5000;
    const ended = await s1.expireLeases(clock, (r) => exitWrites(r.state, { runId: r.id, tenantId: t.id }));
    expect(ended.map((r) => r.state)).toEqual(['interrupted']);
    expect(await kinds(s1, run.id)).toEqual([['status', 1], ['status', 2], ['exit', 2]]);
    expect((await s1.listDeliveries(run.id)).map((d) => d.id)).toEqual(['whd_interrupted']);
    // A requeue that changes nothing writes nothing.
    expect(await s1.requeueRun(run.id, 2, () => ({ events: [ev('status', {})] }))).toBeUndefined();
    expect(await s1.events(run.id, 3)).toEqual([]);
    await w.close();
  });
});

describe('retention', () => {
  it('prunes ended runs older than the cut with their events and deliveries, in batches; never queued, running or recent ones', async () => {
    const s = await openStore();
    const [t, other] = [await s.createTenant('acme'), await s.createTenant('other')];
    const mod = (await s.putModule(t.id, bytesOf('keep'), [])).record;
    const otherMod = (await s.putModule(other.id, bytesOf('keep'), [])).record;
    const ended = async (tenantId: string, moduleId: string, at: number) => {
      const r = await newRun(s, tenantId, moduleId, at);
      await s.startRun(r.id, at);
      await s.finishRun(r.id, 'exited', '{}', at + 1, 0);
      await s.appendEvent(r.id, 'exit', '{}');
      return r;
    };
    const old = [await ended(t.id, mod.id, 100), await ended(t.id, mod.id, 200), await ended(t.id, mod.id, 300)];
    await s.putDelivery({ id: 'whd_1', runId: old[0]!.id, tenantId: t.id, url: 'http://x/', state: 'delivered', attempts: 1, lastStatus: 200, lastError: null, nextAt: null, createdAt: 1, updatedAt: 1 });
    const recent = await ended(t.id, mod.id, 5000);
    const queued = await newRun(s, t.id, mod.id, 50);
    const running = await newRun(s, t.id, mod.id, 60);
    await s.startRun(running.id, 60);
    const othersOld = await ended(other.id, otherMod.id, 100);

    expect(await s.pruneTenant(t.id, 1000, 2)).toEqual({ runs: 2, modules: 0 });
    expect(await s.getRun(t.id, old[0]!.id)).toBeUndefined();
    expect(await s.getRun(t.id, old[1]!.id)).toBeUndefined();
    expect(await s.events(old[0]!.id, 0)).toEqual([]);
    expect(await s.listDeliveries(old[0]!.id)).toEqual([]);
    expect(await s.pruneTenant(t.id, 1000, 2)).toEqual({ runs: 1, modules: 0 });
    expect(await s.pruneTenant(t.id, 1000, 2)).toEqual({ runs: 0, modules: 0 });
    // What stays: the recent run, the queued and running ones (however old), another tenant's.
    for (const r of [recent, queued, running]) expect(await s.getRun(t.id, r.id)).toBeDefined();
    expect(await s.getRun(other.id, othersOld.id)).toBeDefined();
    expect(await s.events(recent.id, 0)).toHaveLength(1);
    expect(await s.getModule(t.id, mod.id)).toBeDefined();
  });

  it('prunes modules no run references, uploaded before the cut; shared bytes stay for the other tenant', async () => {
    const s = await openStore();
    const [t, other] = [await s.createTenant('acme'), await s.createTenant('other')];
    clock = 100;
    const unused = (await s.putModule(t.id, bytesOf('unused'), [])).record;
    const shared = (await s.putModule(t.id, bytesOf('shared'), [])).record;
    await s.putModule(other.id, bytesOf('shared'), []);
    const used = (await s.putModule(t.id, bytesOf('used'), [])).record;
    const r = await newRun(s, t.id, used.id, 100);
    await s.finishRun(r.id, 'cancelled', '{}', 4000, 0);
    clock = 3000;
    const fresh = (await s.putModule(t.id, bytesOf('fresh'), [])).record;
    expect(await s.pruneTenant(t.id, 1000, 10)).toEqual({ runs: 0, modules: 2 });
    expect(await s.getModule(t.id, unused.id)).toBeUndefined();
    expect(await s.getModule(t.id, shared.id)).toBeUndefined();
    expect(await s.moduleBytes(other.id, shared.id)).toEqual(bytesOf('shared'));
    expect(await s.getModule(t.id, used.id)).toBeDefined();
    expect(await s.getModule(t.id, fresh.id)).toBeDefined();
    if (onSqlite) {
      expect(fs.existsSync(moduleFile(sha(bytesOf('unused'))))).toBe(false);
      expect(fs.existsSync(moduleFile(sha(bytesOf('shared'))))).toBe(true);
    }
    // Once its run is pruned, the module it used goes too (in the same call: runs first), and the
    // one uploaded since, now before the cut.
    expect(await s.pruneTenant(t.id, 5000, 10)).toEqual({ runs: 1, modules: 2 });
    expect(await s.getModule(t.id, used.id)).toBeUndefined();
    expect(await s.getModule(t.id, fresh.id)).toBeUndefined();
  });
});

describe('webhook deliveries', () => {
  const delivery = (runId: string, tenantId: string, over: Partial<DeliveryRecord> = {}): DeliveryRecord => (
    { id: 'whd_a', runId, tenantId, url: 'https://hooks.example/x', state: 'pending', attempts: 0, lastStatus: null, lastError: null, nextAt: 50, createdAt: 10, updatedAt: 10, ...over });

  it('inserts and updates a delivery by id and lists a run\'s', async () => {
    const s = await openStore();
    const t = await s.createTenant('acme');
    const mod = (await s.putModule(t.id, bytesOf('wh'), [])).record;
    const [r1, r2] = [await newRun(s, t.id, mod.id), await newRun(s, t.id, mod.id)];
    const d = delivery(r1.id, t.id);
    await s.putDelivery(d);
    await s.putDelivery({ ...d, id: 'whd_b', runId: r2.id, nextAt: 20, createdAt: 11 });
    await s.putDelivery({ ...d, state: 'delivered', attempts: 2, lastStatus: 204, nextAt: null, updatedAt: 30 });
    expect(await s.listDeliveries(r1.id)).toEqual([{ ...d, state: 'delivered', attempts: 2, lastStatus: 204, nextAt: null, updatedAt: 30 }]);
    expect((await s.listDeliveries(r2.id)).map((x) => x.id)).toEqual(['whd_b']);
    expect(await s.listDeliveries('run_nope')).toEqual([]);
    expect((await storeError(() => s.putDelivery({ ...d, id: 'whd_c', runId: 'run_nope' }))).code).toBe('not_found');
  });

  it('claims due pending deliveries soonest first, one node at a time, each claim an attempt; settles only the attempt a node still holds', async () => {
    const [s1, s2] = [await openStore(), await openStore()];
    const t = await s1.createTenant('acme');
    const mod = (await s1.putModule(t.id, bytesOf('whc'), [])).record;
    const run = await newRun(s1, t.id, mod.id);
    await s1.putDelivery(delivery(run.id, t.id, { id: 'whd_late', nextAt: 60 }));
    await s1.putDelivery(delivery(run.id, t.id, { id: 'whd_soon', nextAt: 20 }));
    await s1.putDelivery(delivery(run.id, t.id, { id: 'whd_future', nextAt: 5000 }));
    await s1.putDelivery(delivery(run.id, t.id, { id: 'whd_done', state: 'delivered', nextAt: null }));
    expect(await s1.claimDeliveries('n1', 0, 1000, 100)).toEqual([]);
    const got = await s1.claimDeliveries('n1', 10, 1000, 100);
    expect(got.map((d) => [d.id, d.attempts])).toEqual([['whd_soon', 1], ['whd_late', 1]]);
    // Held: nobody else claims them until the lease ends (at 1100), nor does the holder twice.
    expect(await s2.claimDeliveries('n2', 10, 1000, 1100)).toEqual([]);
    expect(await s1.claimDeliveries('n1', 10, 1000, 500)).toEqual([]);
    // The holder records its attempt: a retry due at 3000, the claim let go.
    const soon = got[0]!;
    expect(await s2.settleDelivery('n2', { ...soon, state: 'delivered' })).toBe(false);
    expect(await s1.settleDelivery('n1', { ...soon, lastStatus: 500, lastError: 'answered 500', nextAt: 3000, updatedAt: 200 })).toBe(true);
    expect(await s1.settleDelivery('n1', { ...soon, state: 'delivered' })).toBe(false);
    expect((await s1.listDeliveries(run.id)).find((d) => d.id === 'whd_soon')).toMatchObject({ state: 'pending', attempts: 1, lastStatus: 500, nextAt: 3000, updatedAt: 200 });
    // n1 dies holding whd_late: once its lease ended, n2 claims it (attempt 2); n1's late record is refused.
    const late = await s2.claimDeliveries('n2', 10, 1000, 1101);
    expect(late.map((d) => [d.id, d.attempts])).toEqual([['whd_late', 2]]);
    expect(await s1.settleDelivery('n1', { ...got[1]!, state: 'delivered' })).toBe(false);
    expect(await s2.settleDelivery('n2', { ...late[0]!, state: 'delivered', lastStatus: 204, nextAt: null })).toBe(true);
    // The retry comes due at 3000; whd_future later; a delivered one never again.
    expect((await s2.claimDeliveries('n2', 10, 1000, 2999)).map((d) => d.id)).toEqual([]);
    expect((await s2.claimDeliveries('n2', 10, 1000, 6000)).map((d) => [d.id, d.attempts])).toEqual([['whd_soon', 2], ['whd_future', 1]]);
  });

  it('two nodes claiming at once never hold one delivery both', async () => {
    const [s1, s2] = [await openStore(), await openStore()];
    const t = await s1.createTenant('acme');
    const mod = (await s1.putModule(t.id, bytesOf('whr'), [])).record;
    const run = await newRun(s1, t.id, mod.id);
    for (let i = 0; i < 30; i++) await s1.putDelivery(delivery(run.id, t.id, { id: `whd_${i}`, nextAt: i }));
    const got = (await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 ? s1 : s2).claimDeliveries(`n${i}`, 4, 1000, 100)))).flat();
    expect(got).toHaveLength(30);
    expect(new Set(got.map((d) => d.id)).size).toBe(30);
    expect(got.every((d) => d.attempts === 1)).toBe(true);
  });
});

describe('nodes', () => {
  it('a started run records the node that started it; a retry records its own', async () => {
    const s = await openStore();
    const t = await s.createTenant('acme');
    const run = await newRun(s, t.id, (await s.putModule(t.id, bytesOf('node'), [])).record.id);
    expect(run.nodeId).toBeNull();
    expect((await s.getRun(t.id, run.id))?.nodeId).toBeNull();
    expect(await s.startRun(run.id, clock, 'node-a')).toBe(true);
    expect((await s.getRun(t.id, run.id))?.nodeId).toBe('node-a');
    await s.requeueRun(run.id);
    expect(await s.startRun(run.id, clock, 'node-b')).toBe(true);
    expect(await s.getRun(t.id, run.id)).toMatchObject({ nodeId: 'node-b', attempts: 2 });
    expect((await s.listRuns(t.id, { limit: 10 })).items[0]?.nodeId).toBe('node-b');
  });

  it('runCounts counts queued and running runs across all tenants; ping answers', async () => {
    const s = await openStore();
    await s.ping();
    expect(await s.runCounts()).toEqual({ queued: 0, running: 0, tenantsWaiting: 0 });
    const a = await s.createTenant('a');
    const b = await s.createTenant('b');
    const ma = (await s.putModule(a.id, bytesOf('ca'), [])).record.id;
    const mb = (await s.putModule(b.id, bytesOf('cb'), [])).record.id;
    const runs = [await newRun(s, a.id, ma), await newRun(s, a.id, ma), await newRun(s, b.id, mb), await newRun(s, b.id, mb)];
    await s.startRun(runs[0]!.id, clock);
    await s.startRun(runs[2]!.id, clock);
    await s.startRun(runs[3]!.id, clock);
    await s.finishRun(runs[3]!.id, 'exited', '{}', clock, 0);
    expect(await s.runCounts()).toEqual({ queued: 1, running: 2, tenantsWaiting: 1 });
  });

  it('ping rejects once the store is closed', async () => {
    const s = await openStore();
    await s.close();
    await expect(s.ping()).rejects.toThrow();
  });
});

describe('durability', () => {
  it('a reopened store has everything the closed one wrote', async () => {
    const s = await openStore();
    const t = await s.createTenant('acme');
    await s.setPolicy(t.id, 'limits: {}\n');
    const { key, record: keyRec } = await s.createKey(t.id);
    const revoked = await s.createKey(t.id);
    await s.revokeKey(t.id, revoked.record.id);
    const bytes = bytesOf('durable');
    const mod = (await s.putModule(t.id, bytes, ['env.f'])).record;
    const done = await newRun(s, t.id, mod.id);
    await s.startRun(done.id, clock);
    await s.finishRun(done.id, 'trapped', '{"trap":"unreachable"}', clock + 3, 12);
    const running = await newRun(s, t.id, mod.id, clock + 1);
    await s.startRun(running.id, clock + 2);
    await s.appendEvent(done.id, 'status', '{}');
    await s.appendEvent(done.id, 'exit', '{}');
    const before = {
      tenant: await s.getTenant(t.id), keys: await s.listKeys(t.id), module: await s.getModule(t.id, mod.id),
      runs: await s.listRuns(t.id, { limit: 100 }), events: await s.events(done.id, 0),
    };
    await s.close();

    const s2 = await openStore();
    expect(await s2.getTenant(t.id)).toEqual(before.tenant);
    expect(await s2.listKeys(t.id)).toEqual(before.keys);
    expect((await s2.authenticate(key))?.id).toBe(t.id);
    expect(await s2.authenticate(revoked.key)).toBeUndefined();
    expect(keyRec.revokedAt).toBeNull();
    expect(await s2.getModule(t.id, mod.id)).toEqual(before.module);
    expect(await s2.moduleBytes(t.id, mod.id)).toEqual(bytes);
    expect(await s2.listRuns(t.id, { limit: 100 })).toEqual(before.runs);
    expect(await s2.events(done.id, 0)).toEqual(before.events);
    // Restart recovery sees the run left running, and event numbering continues.
    expect((await s2.runsInState('running')).map((r) => r.id)).toEqual([running.id]);
    expect((await s2.appendEvent(done.id, 'audit', '{}')).seq).toBe(3);
  });
});

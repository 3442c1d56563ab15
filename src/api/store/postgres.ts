/**
 * The PostgreSQL store (driver `pg`): the same Store contract as the SQLite one, for a cluster of
 * capsa servers sharing one database. Module bytes live in the database (`module_blobs`, by
 * sha256, shared between tenants), so every node can load every module.
 *
 * Every statement that must see a consistent state runs in one transaction on one pooled client;
 * the rest are single statements (atomic on their own). Integers are BIGINT, read back as numbers
 * (milliseconds and counts stay far below 2^53).
 */
import { timingSafeEqual } from 'node:crypto';
import pg from 'pg';
import type { ApiKeyRecord, DeliveryRecord, EventDraft, ModuleRecord, Page, RunEventRecord, RunRecord, StateWrites, Store, Tenant } from './types.js';
import { QuotaError, StoreError } from './errors.js';
import { KEY_PREFIX, hashApiKey, moduleIdOf, newApiKey, newId, newWebhookSecret } from './ids.js';
import { PG_MIGRATIONS } from './pg-migrations.js';
import {
  CPU_DAYS_KEPT, DAY_MS, EVENT_TYPES, INTERRUPTED_RESULT, MAX_KEY_LENGTH, TERMINAL, TERMINAL_SQL, authTenant, checkImports, decodeCursor, deliveryValues, newQueuedRun, pageSize, parseNotice, quotasText,
  checkDayStart, toDelivery, toEvent, toKey, toModule, toPage, toRun, toTenant, utcDayStart,
  type AuthRow, type DeliveryRow, type EventRow, type KeyRow, type ModuleRow, type RunRow, type TenantRow,
} from './rows.js';

export interface PostgresStoreOptions {
  /** postgres://user:pass@host:port/db */
  url: string;
  /** The clock for the times the store stamps itself; tests pin it. */
  now?: () => number;
  /** Connections in the pool (default 10). */
  poolSize?: number;
  /** Apply missing migrations at open (default true; `capsa migrate` does it explicitly). */
  migrate?: boolean;
}

/** BIGINT (int8) and NUMERIC sums as JS numbers rather than strings. */
const TYPES = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') => {
    if (oid === 20 || oid === 1700) return (v: string) => Number(v);
    return pg.types.getTypeParser(oid, format);
  }) as typeof pg.types.getTypeParser,
};

/** The key of the advisory lock that serialises migrations across nodes starting at once. */
const MIGRATION_LOCK = 0x63617073; // "caps"

/** A tenant's CPU ms on the UTC days from $2 on ($1: the tenant): the per-day counters, a few rows. */
const CPU_USED_SQL = 'SELECT coalesce(sum(cpu_ms), 0) AS n FROM tenant_cpu_days WHERE tenant_id = $1 AND day >= $2';

const code = (e: unknown): string | undefined => (e as { code?: string })?.code;
const UNIQUE = '23505';
const FOREIGN_KEY = '23503';

/** Applies the migrations the database lacks, under an advisory lock; returns [from, to] versions. */
export async function migratePostgres(pool: pg.Pool | string): Promise<{ from: number; to: number }> {
  const own = typeof pool === 'string' ? new pg.Pool({ connectionString: pool, max: 1, types: TYPES }) : undefined;
  const client = await (own ?? (pool as pg.Pool)).connect();
  try {
    await client.query('BEGIN');
    await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
    await client.query('CREATE TABLE IF NOT EXISTS capsa_schema (version INTEGER NOT NULL)');
    const r = await client.query<{ version: number }>('SELECT version FROM capsa_schema');
    const from = r.rows[0]?.version ?? 0;
    if (from > PG_MIGRATIONS.length) {
      throw new Error(`the database has capsa schema version ${from}, newer than this build knows (${PG_MIGRATIONS.length})`);
    }
    for (let v = from; v < PG_MIGRATIONS.length; v++) await client.query(PG_MIGRATIONS[v]!);
    if (r.rows.length === 0) await client.query('INSERT INTO capsa_schema (version) VALUES ($1)', [PG_MIGRATIONS.length]);
    else if (from !== PG_MIGRATIONS.length) await client.query('UPDATE capsa_schema SET version = $1', [PG_MIGRATIONS.length]);
    await client.query('COMMIT');
    return { from, to: PG_MIGRATIONS.length };
  } catch (e) {
    await client.query('ROLLBACK').catch(() => {});
    throw e;
  } finally {
    client.release();
    await own?.end();
  }
}

/** Connects (and migrates unless told not to) the store at `opts.url`. */
export async function createPostgresStore(opts: PostgresStoreOptions): Promise<Store & { pool: pg.Pool }> {
  const now = opts.now ?? Date.now;
  const pool = new pg.Pool({ connectionString: opts.url, max: opts.poolSize ?? 10, types: TYPES });
  // An idle client's error (the server restarted) must not crash the process; the next query reconnects.
  pool.on('error', () => {});
  try {
    if (opts.migrate !== false) await migratePostgres(pool);
    else await pool.query('SELECT 1');
  } catch (e) {
    await pool.end();
    throw e;
  }
  let closed = false;

  const q = async <R extends pg.QueryResultRow>(text: string, values: unknown[] = []): Promise<pg.QueryResult<R>> => {
    if (closed) throw new Error('the store is closed');
    return pool.query<R>(text, values);
  };
  const one = async <R extends pg.QueryResultRow>(text: string, values: unknown[] = []): Promise<R | undefined> => (await q<R>(text, values)).rows[0];

  /** A page of `table`'s rows with the given column values, newest first, after the cursor (listModules, listRuns). */
  const page = async <R extends RunRow | ModuleRow, T>(table: 'runs' | 'modules', equal: Record<string, unknown>,
    o: { cursor?: string; limit: number }, map: (r: R) => T): Promise<Page<T>> => {
    const size = pageSize(o.limit);
    const c = o.cursor === undefined ? undefined : decodeCursor(o.cursor);
    const where: string[] = [];
    const args: unknown[] = [];
    for (const [column, v] of Object.entries(equal)) { args.push(v); where.push(`${column} = $${args.length}`); }
    if (c) { args.push(c.createdAt, c.id); where.push(`(created_at, id) < ($${args.length - 1}, $${args.length})`); }
    args.push(size + 1);
    const rows = (await q<R>(`SELECT * FROM ${table} WHERE ${where.join(' AND ')} ORDER BY created_at DESC, id DESC LIMIT $${args.length}`, args)).rows;
    return toPage(rows, size, map);
  };

  /** Runs `fn` in a transaction on one client; rolls back on a throw. */
  const tx = async <T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T> => {
    if (closed) throw new Error('the store is closed');
    const c = await pool.connect();
    try {
      await c.query('BEGIN');
      const out = await fn(c);
      await c.query('COMMIT');
      return out;
    } catch (e) {
      await c.query('ROLLBACK').catch(() => {});
      throw e;
    } finally {
      c.release();
    }
  };

  /**
   * `tx` for a change of a run's state that appends events: a concurrent appendEvent of the same run
   * (another node's output or cancel) may take the seq first, which fails the whole transaction on
   * run_events' key; it is then made again from the start (nothing of it was committed).
   */
  const runTx = async <T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T> => {
    for (let tries = 0; ; tries++) {
      try {
        return await tx(fn);
      } catch (e) {
        if (code(e) === UNIQUE && (e as { constraint?: string }).constraint === 'run_events_pkey' && tries < 20) continue;
        throw e;
      }
    }
  };

  /**
   * Appends `events` to the run's attempt in progress in one statement of the caller's transaction,
   * after its earlier ones, each NOTIFYing capsa_events (delivered at commit, never if rolled back).
   */
  const insertEvents = async (c: pg.PoolClient, runId: string, events: EventDraft[]): Promise<void> => {
    if (!events.length) return;
    for (const e of events) if (!EVENT_TYPES.has(e.type)) throw new StoreError('invalid', `unknown event type ${String(e.type)}`);
    await c.query(
      `WITH ev AS (
         INSERT INTO run_events (run_id, seq, type, data, at, attempt)
         SELECT $1, coalesce((SELECT max(seq) FROM run_events WHERE run_id = $1), 0) + d.n, d.type, d.data, $4,
                coalesce((SELECT attempts FROM runs WHERE id = $1), 0)
         FROM unnest($2::text[], $3::text[]) WITH ORDINALITY AS d(type, data, n)
         RETURNING seq, type)
       SELECT pg_notify('${EVENTS_CHANNEL}', $1 || ':' || seq || ':' || type) FROM ev`,
      [runId, events.map((e) => e.type), events.map((e) => e.data), now()]);
  };

  /** Inserts or replaces a delivery (by id), on `c` or the pool. */
  const upsertDelivery = async (d: DeliveryRecord, c?: pg.PoolClient): Promise<void> => {
    const text = `INSERT INTO webhook_deliveries (id, run_id, tenant_id, url, state, attempts, last_status, last_error, next_at, created_at, updated_at)
                  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                  ON CONFLICT (id) DO UPDATE SET state = EXCLUDED.state, attempts = EXCLUDED.attempts, last_status = EXCLUDED.last_status,
                    last_error = EXCLUDED.last_error, next_at = EXCLUDED.next_at, updated_at = EXCLUDED.updated_at`;
    try {
      await (c ? c.query(text, deliveryValues(d)) : q(text, deliveryValues(d)));
    } catch (e) {
      if (code(e) === FOREIGN_KEY) throw new StoreError('not_found', 'unknown run');
      throw e;
    }
  };

  /** What a run's change of state writes with it (StateWrites), in the caller's transaction. */
  const applyWrites = async (c: pg.PoolClient, runId: string, w: StateWrites | undefined): Promise<void> => {
    await insertEvents(c, runId, w?.events ?? []);
    if (w?.delivery) await upsertDelivery(w.delivery, c);
  };

  /** The restart rule's UPDATE (see the SQLite store): retried once, else interrupted, blame host. */
  const RESTART_RULE = `state = CASE WHEN attempts < 2 THEN 'queued' ELSE 'interrupted' END,
             started_at = CASE WHEN attempts < 2 THEN NULL ELSE started_at END,
             result = CASE WHEN attempts < 2 THEN result ELSE $2 END,
             finished_at = CASE WHEN attempts < 2 THEN finished_at ELSE $3 END,
             lease_until = NULL`;

  const NO_HASH = Buffer.alloc(32);

  const store: Store & { pool: pg.Pool } = {
    pool,
    async createTenant(name) {
      const t: Tenant = { id: newId('ten'), name, createdAt: now(), policy: null, quotas: {} };
      try {
        await q('INSERT INTO tenants (id, name, created_at, policy) VALUES ($1, $2, $3, NULL)', [t.id, t.name, t.createdAt]);
      } catch (e) {
        if (code(e) === UNIQUE) throw new StoreError('conflict', `a tenant named ${JSON.stringify(name)} exists`);
        throw e;
      }
      return t;
    },
    async getTenant(id) {
      const r = await one<TenantRow>('SELECT * FROM tenants WHERE id = $1', [id]);
      return r && toTenant(r);
    },
    async findTenantByName(name) {
      const r = await one<TenantRow>('SELECT * FROM tenants WHERE name = $1', [name]);
      return r && toTenant(r);
    },
    async listTenants() {
      return (await q<TenantRow>('SELECT * FROM tenants ORDER BY created_at, id')).rows.map(toTenant);
    },
    async setPolicy(tenantId, policy) {
      if ((await q('UPDATE tenants SET policy = $1 WHERE id = $2', [policy, tenantId])).rowCount !== 1) throw new StoreError('not_found', 'unknown tenant');
    },
    async setQuotas(tenantId, quotas) {
      if ((await q('UPDATE tenants SET quotas = $1 WHERE id = $2', [quotasText(quotas), tenantId])).rowCount !== 1) throw new StoreError('not_found', 'unknown tenant');
    },
    async webhookSecret(tenantId, rotate = false) {
      // One statement: two nodes making the first secret at once agree on the one that was stored.
      const r = await one<{ webhook_secret: string }>(
        `UPDATE tenants SET webhook_secret = CASE WHEN webhook_secret IS NULL OR $2 THEN $3 ELSE webhook_secret END
         WHERE id = $1 RETURNING webhook_secret`, [tenantId, rotate, newWebhookSecret()]);
      if (!r) throw new StoreError('not_found', 'unknown tenant');
      return r.webhook_secret;
    },

    async createKey(tenantId) {
      const key = newApiKey();
      const record: ApiKeyRecord = { id: newId('key'), tenantId, createdAt: now(), revokedAt: null };
      try {
        await q('INSERT INTO api_keys (id, tenant_id, key_hash, created_at) VALUES ($1, $2, $3, $4)', [record.id, tenantId, hashApiKey(key), record.createdAt]);
      } catch (e) {
        if (code(e) === FOREIGN_KEY) throw new StoreError('not_found', 'unknown tenant');
        throw e;
      }
      return { key, record };
    },
    async authenticate(key) {
      if (typeof key !== 'string' || key.length > MAX_KEY_LENGTH || !key.startsWith(KEY_PREFIX)) return undefined;
      const presented = Buffer.from(hashApiKey(key), 'hex');
      // As in the SQLite store: looked up by the hash of a 256-bit secret, decided by a constant-time compare.
      const row = await one<AuthRow>(
        `SELECT k.key_hash, k.revoked_at, t.id AS t_id, t.name AS t_name, t.created_at AS t_created_at, t.policy AS t_policy, t.quotas AS t_quotas
         FROM api_keys k JOIN tenants t ON t.id = k.tenant_id WHERE k.key_hash = $1`, [presented.toString('hex')]);
      const stored = row ? Buffer.from(row.key_hash, 'hex') : NO_HASH;
      const same = stored.length === presented.length && timingSafeEqual(stored, presented);
      if (!row || !same || row.revoked_at !== null) return undefined;
      return authTenant(row);
    },
    async listKeys(tenantId) {
      return (await q<KeyRow>('SELECT id, tenant_id, created_at, revoked_at FROM api_keys WHERE tenant_id = $1 ORDER BY created_at, id', [tenantId])).rows.map(toKey);
    },
    async revokeKey(tenantId, keyId) {
      // Idempotent, like SQLite's: true when the tenant has the key, revoked now or before.
      const r = await one<{ id: string }>(
        `WITH k AS (SELECT id FROM api_keys WHERE id = $1 AND tenant_id = $2),
              u AS (UPDATE api_keys SET revoked_at = $3 WHERE id = $1 AND tenant_id = $2 AND revoked_at IS NULL)
         SELECT id FROM k`, [keyId, tenantId, now()]);
      return r !== undefined;
    },

    async putModule(tenantId, bytes, imports) {
      const importList = checkImports(imports);
      const id = moduleIdOf(bytes);
      const existing = await one<ModuleRow>('SELECT * FROM modules WHERE tenant_id = $1 AND id = $2', [tenantId, id]);
      if (existing) return { record: toModule(existing), created: false };
      const record: ModuleRecord = { id, tenantId, size: bytes.byteLength, imports: [...importList], createdAt: now() };
      try {
        return await tx(async (c) => {
          // The upsert locks the blob's row, so a concurrent delete of its last reference waits for this commit.
          await c.query(`INSERT INTO module_blobs (id, size, bytes) VALUES ($1, $2, $3)
                         ON CONFLICT (id) DO UPDATE SET size = EXCLUDED.size`, [id, bytes.byteLength, Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)]);
          const ins = await c.query(`INSERT INTO modules (tenant_id, id, size, imports, created_at) VALUES ($1, $2, $3, $4, $5)
                                     ON CONFLICT (tenant_id, id) DO NOTHING`, [tenantId, id, record.size, JSON.stringify(record.imports), record.createdAt]);
          if (ins.rowCount === 1) return { record, created: true };
          // The same tenant uploaded it meanwhile.
          const r = await c.query<ModuleRow>('SELECT * FROM modules WHERE tenant_id = $1 AND id = $2', [tenantId, id]);
          return { record: toModule(r.rows[0]!), created: false };
        });
      } catch (e) {
        if (code(e) === FOREIGN_KEY) throw new StoreError('not_found', 'unknown tenant');
        throw e;
      }
    },
    async getModule(tenantId, id) {
      const r = await one<ModuleRow>('SELECT * FROM modules WHERE tenant_id = $1 AND id = $2', [tenantId, id]);
      return r && toModule(r);
    },
    async listModules(tenantId, o) {
      return page('modules', { tenant_id: tenantId }, o, toModule);
    },
    async deleteModule(tenantId, id) {
      return tx(async (c) => {
        if ((await c.query('DELETE FROM modules WHERE tenant_id = $1 AND id = $2', [tenantId, id])).rowCount !== 1) return false;
        // The last reference takes the bytes with it. A concurrent put of the same bytes holds the
        // blob's row (see putModule); if it won, the foreign key refuses the delete and the bytes stay.
        await c.query('SAVEPOINT blob');
        try {
          await c.query('DELETE FROM module_blobs b WHERE b.id = $1 AND NOT EXISTS (SELECT 1 FROM modules m WHERE m.id = $1)', [id]);
        } catch (e) {
          if (code(e) !== FOREIGN_KEY) throw e;
          await c.query('ROLLBACK TO SAVEPOINT blob');
        }
        return true;
      });
    },
    async moduleBytes(tenantId, id) {
      const r = await one<{ bytes: Buffer }>(
        'SELECT b.bytes FROM modules m JOIN module_blobs b ON b.id = m.id WHERE m.tenant_id = $1 AND m.id = $2', [tenantId, id]);
      return r && new Uint8Array(r.bytes.buffer, r.bytes.byteOffset, r.bytes.byteLength);
    },
    async moduleStorage(tenantId) {
      return (await one<{ n: number }>('SELECT coalesce(sum(size), 0) AS n FROM modules WHERE tenant_id = $1', [tenantId]))?.n ?? 0;
    },

    async createRun(run, quota) {
      try {
        return await tx(async (c) => {
          // The tenant's row lock serialises its createRuns and claims on every node; the counts are
          // read by later statements, whose snapshots see every commit made before the lock was ours.
          if ((await c.query('SELECT 1 FROM tenants WHERE id = $1 FOR UPDATE', [run.tenantId])).rowCount !== 1) throw new StoreError('not_found', 'unknown module');
          if (quota) {
            checkDayStart(quota.since);
            const u = (await c.query<{ waiting: number; cpu: number }>(
              `SELECT (SELECT count(*) FROM runs WHERE tenant_id = $1 AND state = 'queued') AS waiting,
                      (${CPU_USED_SQL}) AS cpu`, [run.tenantId, quota.since])).rows[0]!;
            if (u.waiting + 1 > quota.queuedRuns) throw new QuotaError('queuedRuns', quota.queuedRuns, u.waiting);
            if (u.cpu >= quota.cpuMs) throw new QuotaError('cpuMs', quota.cpuMs, u.cpu);
          }
          // Inserted only if its tenant holds the module; the NOTIFY is delivered at commit.
          const r = await c.query(`INSERT INTO runs (id, tenant_id, module_id, state, request, created_at)
                                   SELECT $1, $2, $3, 'queued', $4, $5 WHERE EXISTS (SELECT 1 FROM modules WHERE tenant_id = $2 AND id = $3)
                                   RETURNING pg_notify('${QUEUE_CHANNEL}', '')`,
          [run.id, run.tenantId, run.moduleId, run.request, run.createdAt]);
          if (r.rowCount !== 1) throw new StoreError('not_found', 'unknown module');
          return newQueuedRun(run);
        });
      } catch (e) {
        if (code(e) === UNIQUE) throw new StoreError('conflict', 'run id exists');
        throw e;
      }
    },
    async getRun(tenantId, id) {
      const r = await one<RunRow>('SELECT * FROM runs WHERE tenant_id = $1 AND id = $2', [tenantId, id]);
      return r && toRun(r);
    },
    async listRuns(tenantId, o) {
      return page('runs', { tenant_id: tenantId, ...(o.state !== undefined ? { state: o.state } : {}) }, o, toRun);
    },
    async startRun(id, at, nodeId) {
      return (await q(`UPDATE runs SET state = 'running', started_at = $1, node_id = $3, lease_until = NULL, attempts = attempts + 1 WHERE id = $2 AND state = 'queued'`,
        [at, id, nodeId ?? null])).rowCount === 1;
    },
    async claimRuns(o) {
      if (o.max <= 0) return [];
      return runTx(async (c) => {
        const out: RunRecord[] = [];
        // Tenants this claim locked and found at their bound (or out of runs another claimer holds).
        const full: string[] = [];
        while (out.length < o.max) {
          // The next tenant in the fair order whose row no other claimer holds. Its running count
          // here is a hint only (this statement's snapshot predates the lock); the exact one follows.
          // `bound`: the tenant's own concurrentRuns quota (setQuotas) over the service's; read from
          // the locked row, so a quota set meanwhile is the one that holds.
          const t = (await c.query<{ id: string; bound: number }>(
            `SELECT t.id, coalesce((t.quotas::json->>'concurrentRuns')::int, $2) AS bound FROM tenants t
             WHERE t.id IN (SELECT tenant_id FROM runs WHERE state = 'queued') AND NOT (t.id = ANY($1::text[]))
               AND (SELECT count(*) FROM runs r WHERE r.tenant_id = t.id AND r.state = 'running')
                   < coalesce((t.quotas::json->>'concurrentRuns')::int, $2)
             ORDER BY t.served_seq, (SELECT min(created_at) FROM runs r WHERE r.tenant_id = t.id AND r.state = 'queued'), t.id LIMIT 1 FOR UPDATE OF t SKIP LOCKED`, [full, o.concurrentRuns])).rows[0];
          if (!t) break;
          const running = (await c.query<{ n: number }>(`SELECT count(*) AS n FROM runs WHERE tenant_id = $1 AND state = 'running'`, [t.id])).rows[0]!.n;
          const at = now();
          const row = running >= t.bound ? undefined : (await c.query<RunRow>(
            `UPDATE runs SET state = 'running', started_at = $2, node_id = $3, lease_until = $4, attempts = attempts + 1
             WHERE id = (SELECT id FROM runs WHERE tenant_id = $1 AND state = 'queued' ORDER BY created_at, id LIMIT 1 FOR UPDATE SKIP LOCKED)
             RETURNING *`, [t.id, at, o.node, at + o.leaseMs])).rows[0];
          if (!row) { full.push(t.id); continue; }
          const run = toRun(row);
          out.push(run);
          await insertEvents(c, run.id, o.events?.(run) ?? []);
          await c.query(`UPDATE tenants SET served_seq = nextval('capsa_served_seq') WHERE id = $1`, [t.id]);
        }
        return out;
      });
    },
    async renewLeases(node, runs, leaseMs, at) {
      if (!runs.length) return [];
      return (await q<{ id: string }>(
        `UPDATE runs SET lease_until = $1 FROM unnest($2::text[], $3::int[]) AS h(id, attempt)
         WHERE runs.id = h.id AND runs.attempts = h.attempt AND runs.node_id = $4 AND runs.state = 'running'
         RETURNING runs.id`, [at + leaseMs, runs.map((r) => r.id), runs.map((r) => r.attempt), node])).rows.map((r) => r.id);
    },
    async expireLeases(at, writes) {
      // A renewal, an end or another node's expiry committed first makes the row fail the WHERE when
      // it is re-checked under its lock, so each expired attempt is recovered once. The rows stay
      // locked until the commit: what `writes` adds (the status events) is stored before any node
      // can claim the retry (the NOTIFY is delivered at the commit).
      return runTx(async (c) => {
        const runs = (await c.query<RunRow>(
          `WITH x AS (
             UPDATE runs SET ${RESTART_RULE}
             WHERE state = 'running' AND coalesce(lease_until, 0) < $1
             RETURNING *)
           SELECT x.*, CASE WHEN x.state = 'queued' THEN pg_notify('${QUEUE_CHANNEL}', '') END AS notified FROM x ORDER BY created_at, id`,
          [at, INTERRUPTED_RESULT, now()])).rows.map(toRun);
        for (const r of runs) await applyWrites(c, r.id, writes?.(r));
        return runs;
      });
    },
    async finishRun(id, state, result, at, cpuMs, attempt, writes) {
      if (!TERMINAL.has(state)) throw new StoreError('invalid', `finishRun: ${state} is not a terminal state`);
      // The row lock the UPDATE takes makes the first terminal state win across nodes; with an
      // attempt, only that attempt while running (a partitioned node's late end cannot end the retry).
      // The end's events and delivery are in its transaction: a loser writes none.
      const cpu = Math.max(0, Math.round(cpuMs));
      return runTx(async (c) => {
        const won = (await c.query(`UPDATE runs SET state = $1, result = $2, finished_at = $3, cpu_ms = $4, lease_until = NULL
                         WHERE id = $5 AND state IN ('queued', 'running') AND ($6::int IS NULL OR (attempts = $6 AND state = 'running'))`,
        [state, result, at, cpu, id, attempt ?? null])).rowCount === 1;
        if (!won) return false;
        // Only the call that ended the run charges its CPU, to the UTC day it ended on; the
        // counter row's lock orders the tenant's finishes, not the tenant row (no foreign key).
        if (cpu > 0) {
          await c.query(`INSERT INTO tenant_cpu_days (tenant_id, day, cpu_ms) SELECT tenant_id, $1, $2 FROM runs WHERE id = $3
                         ON CONFLICT (tenant_id, day) DO UPDATE SET cpu_ms = tenant_cpu_days.cpu_ms + EXCLUDED.cpu_ms`, [utcDayStart(at), cpu, id]);
        }
        await applyWrites(c, id, writes);
        return won;
      });
    },
    async requeueRun(id, attempt, writes) {
      // The row lock makes two nodes recovering the same run act on it once; `writes` is stored
      // before the commit, so its events belong to the attempt that was cut off.
      return runTx(async (c) => {
        const r = (await c.query<RunRow>(`UPDATE runs SET ${RESTART_RULE}
                 WHERE id = $1 AND state = 'running' AND ($4::int IS NULL OR attempts = $4)
                 RETURNING *, CASE WHEN state = 'queued' THEN pg_notify('${QUEUE_CHANNEL}', '') END AS notified`, [id, INTERRUPTED_RESULT, now(), attempt ?? null])).rows[0];
        if (!r) return undefined;
        const after = toRun(r);
        await applyWrites(c, id, writes?.(after));
        return after;
      });
    },
    async runsInState(state) {
      return (await q<RunRow>('SELECT * FROM runs WHERE state = $1 ORDER BY created_at, id', [state])).rows.map(toRun);
    },
    async countRuns(tenantId, state) {
      return (await one<{ n: number }>('SELECT count(*) AS n FROM runs WHERE tenant_id = $1 AND state = $2', [tenantId, state]))?.n ?? 0;
    },
    async runCounts() {
      const r = await one<{ queued: number; running: number; tenants: number }>(
        `SELECT count(*) FILTER (WHERE state = 'queued') AS queued, count(*) FILTER (WHERE state = 'running') AS running,
                count(DISTINCT tenant_id) FILTER (WHERE state = 'queued') AS tenants
         FROM runs WHERE state IN ('queued', 'running')`);
      return { queued: r?.queued ?? 0, running: r?.running ?? 0, tenantsWaiting: r?.tenants ?? 0 };
    },
    async watchQueue(listener) {
      if (closed) throw new Error('the store is closed');
      return listen(opts.url, QUEUE_CHANNEL, listener, listener);
    },
    async cpuUsedSince(tenantId, since) {
      checkDayStart(since);
      return (await one<{ n: number }>(CPU_USED_SQL, [tenantId, since]))?.n ?? 0;
    },

    async appendEvent(runId, type, data) {
      if (!EVENT_TYPES.has(type)) throw new StoreError('invalid', `unknown event type ${String(type)}`);
      // Two nodes may append to one run at once (a cancel and the run's own output): the loser of
      // the primary key retries with the next seq. The NOTIFY is part of the insert's transaction:
      // every node's listeners hear of the event once it is committed, and never of one rolled back.
      for (let tries = 0; ; tries++) {
        const at = now();
        try {
          const r = await one<{ seq: number; attempt: number }>(
            `WITH ev AS (
               INSERT INTO run_events (run_id, seq, type, data, at, attempt)
               SELECT $1, coalesce((SELECT max(seq) FROM run_events WHERE run_id = $1), 0) + 1, $2, $3, $4,
                      coalesce((SELECT attempts FROM runs WHERE id = $1), 0)
               RETURNING seq, attempt)
             SELECT seq, attempt, pg_notify('${EVENTS_CHANNEL}', $1 || ':' || seq || ':' || $2) FROM ev`, [runId, type, data, at]);
          if (!r) throw new Error('appendEvent: no row inserted');
          return { runId, seq: r.seq, type, data, at, attempt: r.attempt } satisfies RunEventRecord;
        } catch (e) {
          if (code(e) === FOREIGN_KEY) throw new StoreError('not_found', 'unknown run');
          if (code(e) === UNIQUE && tries < 20) continue;
          throw e;
        }
      }
    },
    async events(runId, afterSeq) {
      return (await q<EventRow>('SELECT * FROM run_events WHERE run_id = $1 AND seq > $2 ORDER BY seq', [runId, afterSeq])).rows.map(toEvent);
    },

    async watchEvents(watcher) {
      if (closed) throw new Error('the store is closed');
      return listen(opts.url, EVENTS_CHANNEL, (payload) => {
        const n = parseNotice(payload);
        if (n) watcher(n);
      }, () => watcher('resync'));
    },
    async ping() {
      await q('SELECT 1');
    },
    async pruneTenant(tenantId, before, limit) {
      const n = Math.max(1, Math.floor(limit));
      return tx(async (c) => {
        // Events and deliveries go with their run (ON DELETE CASCADE).
        const runs = (await c.query(
          `DELETE FROM runs WHERE id IN (SELECT id FROM runs WHERE tenant_id = $1 AND state IN (${TERMINAL_SQL}) AND finished_at < $2
           ORDER BY finished_at LIMIT $3)`, [tenantId, before, n])).rowCount ?? 0;
        // CPU counters of days no quota reads any more (a few rows: not counted, not batched).
        await c.query('DELETE FROM tenant_cpu_days WHERE tenant_id = $1 AND day < $2', [tenantId, utcDayStart(now()) - (CPU_DAYS_KEPT - 1) * DAY_MS]);
        // A run submitted for one of these modules in this very instant may still be created; it then
        // ends invalid_module ("deleted before the run started"), as after a DELETE /v1/modules.
        const gone = (await c.query<{ id: string }>(
          `DELETE FROM modules WHERE tenant_id = $1 AND id IN (
             SELECT m.id FROM modules m WHERE m.tenant_id = $1 AND m.created_at < $2
             AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.tenant_id = m.tenant_id AND r.module_id = m.id)
             ORDER BY m.created_at LIMIT $3)
           RETURNING id`, [tenantId, before, n])).rows;
        for (const { id } of gone) {
          await c.query('SAVEPOINT blob');
          try {
            await c.query('DELETE FROM module_blobs b WHERE b.id = $1 AND NOT EXISTS (SELECT 1 FROM modules m WHERE m.id = $1)', [id]);
          } catch (e) {
            if (code(e) !== FOREIGN_KEY) throw e;
            await c.query('ROLLBACK TO SAVEPOINT blob');
          }
        }
        return { runs, modules: gone.length };
      });
    },
    async putDelivery(d) {
      await upsertDelivery(d);
    },
    async listDeliveries(runId) {
      return (await q<DeliveryRow>('SELECT * FROM webhook_deliveries WHERE run_id = $1 ORDER BY created_at, id', [runId])).rows.map(toDelivery);
    },
    async claimDeliveries(node, max, leaseMs, at) {
      if (max <= 0) return [];
      // The queue's pattern: rows another claimer holds are skipped, not waited for; a row changed
      // by a commit since this statement's snapshot is re-checked under its lock.
      return (await q<DeliveryRow>(
        `UPDATE webhook_deliveries SET node_id = $1, lease_until = $2::bigint + $3::bigint, attempts = attempts + 1
         WHERE id IN (SELECT id FROM webhook_deliveries WHERE state = 'pending' AND next_at <= $2 AND coalesce(lease_until, 0) < $2
                      ORDER BY next_at, id LIMIT $4 FOR UPDATE SKIP LOCKED)
         RETURNING *`, [node, at, leaseMs, Math.floor(max)])).rows.map(toDelivery).sort((a, b) => (a.nextAt ?? 0) - (b.nextAt ?? 0) || (a.id < b.id ? -1 : 1));
    },
    async settleDelivery(node, d) {
      return (await q(
        `UPDATE webhook_deliveries SET state = $1, last_status = $2, last_error = $3, next_at = $4, updated_at = $5, node_id = NULL, lease_until = NULL
         WHERE id = $6 AND node_id = $7 AND attempts = $8 AND state = 'pending'`,
        [d.state, d.lastStatus, d.lastError, d.nextAt, d.updatedAt, d.id, node, d.attempts])).rowCount === 1;
    },

    async close() {
      if (closed) return;
      closed = true;
      await pool.end();
    },
  };
  return store;
}

/** The channel createRun and requeues NOTIFY: nodes with free workers wake and claim. */
export const QUEUE_CHANNEL = 'capsa_queue';

/** The application_name of the LISTEN connections. */
export const LISTENER_NAME = 'capsa-listen';

/** The channel appendEvent NOTIFYs with '<run>:<seq>:<type>' (read back by parseNotice in ./rows.ts). */
export const EVENTS_CHANNEL = 'capsa_events';

/**
 * LISTENs on `channel` on a connection of its own and calls `onPayload` with each notification's
 * payload. A lost connection (the server restarted, a partition) is made again, backing off up to
 * 5 s; then `onResync` is called, since what was notified meanwhile is lost. Resolves once the first
 * LISTEN is in force (rejects when that fails); close() ends it for good.
 */
async function listen(url: string, channel: string, onPayload: (payload: string) => void, onResync: () => void): Promise<{ close(): Promise<void> }> {
  let stopped = false;
  let client: pg.Client | undefined;
  let retry: NodeJS.Timeout | undefined;
  const connect = async (): Promise<pg.Client> => {
    // Named, so that an operator sees each node's listener in pg_stat_activity.
    const c = new pg.Client({ connectionString: url, application_name: LISTENER_NAME });
    c.on('error', () => {});
    c.on('notification', (m) => { if (m.channel === channel && m.payload !== undefined) onPayload(m.payload); });
    try {
      await c.connect();
      await c.query(`LISTEN ${channel}`);
    } catch (e) {
      await c.end().catch(() => {});
      throw e;
    }
    c.once('end', () => { if (!stopped) reconnect(200); });
    return c;
  };
  const reconnect = (ms: number): void => {
    client = undefined;
    retry = setTimeout(() => {
      retry = undefined;
      connect().then(async (c) => {
        if (stopped) { await c.end().catch(() => {}); return; }
        client = c;
        onResync();
      }, () => { if (!stopped) reconnect(Math.min(ms * 2, 5000)); });
    }, ms);
    retry.unref?.();
  };
  client = await connect();
  return {
    async close() {
      stopped = true;
      if (retry) clearTimeout(retry);
      await client?.end().catch(() => {});
    },
  };
}


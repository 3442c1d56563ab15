/**
 * The SQLite store (on better-sqlite3 or node:sqlite, see sqlite-driver.ts): one file `<dir>/capsa.db` in WAL mode, module bytes
 * content-addressed under `<dir>/modules/sha256/<hex>`.
 *
 * One process owns a data dir. Every method is synchronous, so within that process no two store
 * calls interleave; the transactions below are for atomicity against crashes (and against a second
 * connection, which WAL plus busy_timeout tolerate but the module files do not expect).
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { ApiKeyRecord, ClaimOptions, DeliveryRecord, EventNotice, EventWatcher, HeldRun, ModuleRecord, Page, RunEventRecord, RunQuota, RunRecord, RunState, StateWrites, Store, Tenant } from './types.js';
import { QuotaError, StoreError } from './errors.js';
import { KEY_PREFIX, hashApiKey, moduleDigest, moduleIdOf, newApiKey, newId, newWebhookSecret } from './ids.js';
import { MIGRATIONS } from './migrations.js';
import { asyncStore, type SyncStore } from './sync.js';
import { constraintOf, openSqlite, type SqlDatabase, type SqliteDriverName } from './sqlite-driver.js';
import {
  CPU_DAYS_KEPT, DAY_MS, EVENT_TYPES, INTERRUPTED_RESULT, MAX_KEY_LENGTH, TERMINAL, TERMINAL_SQL, authTenant, checkImports, decodeCursor, deliveryValues, newQueuedRun, pageSize, quotasText,
  checkDayStart, toDelivery, toEvent, toKey, toModule, toPage, toRun, toTenant, utcDayStart,
  type AuthRow, type DeliveryRow, type EventRow, type KeyRow, type ModuleRow, type RunRow, type TenantRow,
} from './rows.js';

export { INTERRUPTED_RESULT, MAX_PAGE } from './rows.js';

export interface SqliteStoreOptions {
  /** The data dir; created if missing. */
  dir: string;
  /** The clock for the times the store stamps itself (tenants, keys, modules, events, requeue); tests pin it. */
  now?: () => number;
  /** How long a statement waits for another connection's lock, ms (default 5000). */
  busyTimeoutMs?: number;
  /** The driver (default: better-sqlite3 where it loads, else node:sqlite). */
  driver?: SqliteDriverName;
}

// ---- module files ----

/** Writes `bytes` to `path` so that a reader sees all of it or nothing: temp file, fsync, rename. */
function writeFileAtomic(path: string, bytes: Uint8Array): void {
  const tmp = `${path}.tmp-${randomBytes(6).toString('hex')}`;
  const fd = openSync(tmp, 'wx', 0o644);
  try {
    let off = 0;
    while (off < bytes.byteLength) off += writeSync(fd, bytes, off, bytes.byteLength - off);
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    unlinkQuiet(tmp);
    throw e;
  }
  closeSync(fd);
  try {
    renameSync(tmp, path);
  } catch (e) {
    unlinkQuiet(tmp);
    throw e;
  }
}

function unlinkQuiet(path: string): void {
  try {
    unlinkSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
}

function fileSize(path: string): number | undefined {
  try {
    return statSync(path).size;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

/** Opens (creating and migrating if needed) the store in `dir`. */
export function createSqliteStore(opts: SqliteStoreOptions): Store {
  const now = opts.now ?? Date.now;
  const modulesDir = join(opts.dir, 'modules', 'sha256');
  mkdirSync(modulesDir, { recursive: true });

  const db = openSqlite(join(opts.dir, 'capsa.db'), { driver: opts.driver });
  try {
    db.exec(`PRAGMA busy_timeout = ${Math.max(0, Math.floor(opts.busyTimeoutMs ?? 5000))}`);
    db.exec('PRAGMA journal_mode = WAL');
    db.exec('PRAGMA synchronous = NORMAL');
    db.exec('PRAGMA foreign_keys = ON');
    migrate(db);
  } catch (e) {
    db.close();
    throw e;
  }

  const moduleFile = (id: string): string => {
    const hex = moduleDigest(id);
    if (hex === undefined) throw new StoreError('invalid', 'malformed module id');
    return join(modulesDir, hex);
  };

  const s = {
    insertTenant: db.prepare<[string, string, number], void>('INSERT INTO tenants (id, name, created_at, policy) VALUES (?, ?, ?, NULL)'),
    getTenant: db.prepare<[string], TenantRow>('SELECT * FROM tenants WHERE id = ?'),
    tenantByName: db.prepare<[string], TenantRow>('SELECT * FROM tenants WHERE name = ?'),
    listTenants: db.prepare<[], TenantRow>('SELECT * FROM tenants ORDER BY created_at, id'),
    setPolicy: db.prepare<[string | null, string], void>('UPDATE tenants SET policy = ? WHERE id = ?'),
    setQuotas: db.prepare<[string | null, string], void>('UPDATE tenants SET quotas = ? WHERE id = ?'),
    getSecret: db.prepare<[string], { webhook_secret: string | null }>('SELECT webhook_secret FROM tenants WHERE id = ?'),
    setSecret: db.prepare<[string, string], void>('UPDATE tenants SET webhook_secret = ? WHERE id = ?'),

    insertKey: db.prepare<[string, string, string, number], void>(
      'INSERT INTO api_keys (id, tenant_id, key_hash, created_at) VALUES (?, ?, ?, ?)'),
    keyByHash: db.prepare<[string], AuthRow>(
      `SELECT k.key_hash, k.revoked_at, t.id AS t_id, t.name AS t_name, t.created_at AS t_created_at, t.policy AS t_policy, t.quotas AS t_quotas
       FROM api_keys k JOIN tenants t ON t.id = k.tenant_id WHERE k.key_hash = ?`),
    listKeys: db.prepare<[string], KeyRow>(
      'SELECT id, tenant_id, created_at, revoked_at FROM api_keys WHERE tenant_id = ? ORDER BY created_at, id'),
    getKey: db.prepare<[string, string], KeyRow>(
      'SELECT id, tenant_id, created_at, revoked_at FROM api_keys WHERE id = ? AND tenant_id = ?'),
    revokeKey: db.prepare<[number, string, string], void>(
      'UPDATE api_keys SET revoked_at = ? WHERE id = ? AND tenant_id = ? AND revoked_at IS NULL'),

    getModule: db.prepare<[string, string], ModuleRow>('SELECT * FROM modules WHERE tenant_id = ? AND id = ?'),
    insertModule: db.prepare<[string, string, number, string, number], void>(
      'INSERT INTO modules (tenant_id, id, size, imports, created_at) VALUES (?, ?, ?, ?, ?)'),
    deleteModule: db.prepare<[string, string], void>('DELETE FROM modules WHERE tenant_id = ? AND id = ?'),
    moduleRefs: db.prepare<[string], { n: number }>('SELECT count(*) AS n FROM modules WHERE id = ?'),
    listModules: db.prepare<[string, number], ModuleRow>(
      'SELECT * FROM modules WHERE tenant_id = ? ORDER BY created_at DESC, id DESC LIMIT ?'),
    listModulesAfter: db.prepare<[string, number, string, number], ModuleRow>(
      `SELECT * FROM modules WHERE tenant_id = ? AND (created_at, id) < (?, ?)
       ORDER BY created_at DESC, id DESC LIMIT ?`),
    moduleStorage: db.prepare<[string], { n: number }>('SELECT coalesce(sum(size), 0) AS n FROM modules WHERE tenant_id = ?'),

    insertRun: db.prepare<[string, string, string, string, number], void>(
      `INSERT INTO runs (id, tenant_id, module_id, state, request, created_at) VALUES (?, ?, ?, 'queued', ?, ?)`),
    getRunAny: db.prepare<[string], RunRow>('SELECT * FROM runs WHERE id = ?'),
    getRun: db.prepare<[string, string], RunRow>('SELECT * FROM runs WHERE tenant_id = ? AND id = ?'),
    listRuns: db.prepare<[string, number], RunRow>(
      'SELECT * FROM runs WHERE tenant_id = ? ORDER BY created_at DESC, id DESC LIMIT ?'),
    listRunsAfter: db.prepare<[string, number, string, number], RunRow>(
      `SELECT * FROM runs WHERE tenant_id = ? AND (created_at, id) < (?, ?)
       ORDER BY created_at DESC, id DESC LIMIT ?`),
    listRunsState: db.prepare<[string, string, number], RunRow>(
      'SELECT * FROM runs WHERE tenant_id = ? AND state = ? ORDER BY created_at DESC, id DESC LIMIT ?'),
    listRunsStateAfter: db.prepare<[string, string, number, string, number], RunRow>(
      `SELECT * FROM runs WHERE tenant_id = ? AND state = ? AND (created_at, id) < (?, ?)
       ORDER BY created_at DESC, id DESC LIMIT ?`),
    startRun: db.prepare<[number, string | null, string], void>(
      `UPDATE runs SET state = 'running', started_at = ?, node_id = ?, lease_until = NULL, attempts = attempts + 1 WHERE id = ? AND state = 'queued'`),
    // Unguarded (attempt NULL): a queued or running run ends. Guarded: only that attempt, running.
    finishRun: db.prepare<[string, string, number, number, string, number | null, number | null], void>(
      `UPDATE runs SET state = ?, result = ?, finished_at = ?, cpu_ms = ?, lease_until = NULL
       WHERE id = ? AND state IN ('queued', 'running') AND (? IS NULL OR (attempts = ? AND state = 'running'))`),
    requeue: db.prepare<[string, number | null, number | null], RunRow>(
      `UPDATE runs SET state = 'queued', started_at = NULL, lease_until = NULL
       WHERE id = ? AND state = 'running' AND attempts < 2 AND (? IS NULL OR attempts = ?) RETURNING *`),
    interrupt: db.prepare<[string, number, string, number | null, number | null], RunRow>(
      `UPDATE runs SET state = 'interrupted', result = ?, finished_at = ?, lease_until = NULL
       WHERE id = ? AND state = 'running' AND (? IS NULL OR attempts = ?) RETURNING *`),
    runsInState: db.prepare<[string], RunRow>('SELECT * FROM runs WHERE state = ? ORDER BY created_at, id'),
    countRuns: db.prepare<[string, string], { n: number }>('SELECT count(*) AS n FROM runs WHERE tenant_id = ? AND state = ?'),
    ping: db.prepare<[], { one: number }>('SELECT 1 AS one'),
    runCounts: db.prepare<[], { queued: number; running: number; tenants: number }>(
      `SELECT coalesce(sum(state = 'queued'), 0) AS queued, coalesce(sum(state = 'running'), 0) AS running,
              count(DISTINCT CASE WHEN state = 'queued' THEN tenant_id END) AS tenants
       FROM runs WHERE state IN ('queued', 'running')`),
    // The fair order (see claimRuns): served longest ago first, then the one whose oldest run waited longest.
    // `own`: the tenant's own concurrentRuns quota (setQuotas), null to take the service's.
    claimOrder: db.prepare<[], { id: string; running: number; own: number | null }>(
      `SELECT t.id, (SELECT count(*) FROM runs r WHERE r.tenant_id = t.id AND r.state = 'running') AS running,
              json_extract(t.quotas, '$.concurrentRuns') AS own
       FROM tenants t WHERE t.id IN (SELECT tenant_id FROM runs WHERE state = 'queued')
       ORDER BY t.served_seq, (SELECT min(created_at) FROM runs r WHERE r.tenant_id = t.id AND r.state = 'queued'), t.id`),
    claimOldest: db.prepare<[number, string, number, string], RunRow>(
      `UPDATE runs SET state = 'running', started_at = ?, node_id = ?, lease_until = ?, attempts = attempts + 1
       WHERE rowid = (SELECT rowid FROM runs WHERE tenant_id = ? AND state = 'queued' ORDER BY created_at, rowid LIMIT 1)
       RETURNING *`),
    served: db.prepare<[string], void>('UPDATE tenants SET served_seq = (SELECT max(served_seq) FROM tenants) + 1 WHERE id = ?'),
    renew: db.prepare<[number, string, number, string], void>(
      `UPDATE runs SET lease_until = ? WHERE id = ? AND attempts = ? AND node_id = ? AND state = 'running'`),
    expired: db.prepare<[number], { id: string }>(
      `SELECT id FROM runs WHERE state = 'running' AND coalesce(lease_until, 0) < ? ORDER BY created_at, id`),
    // The per-day counters (migration 6): a few rows per tenant, however many runs finished.
    cpuUsedSince: db.prepare<[string, number], { n: number }>(
      'SELECT coalesce(sum(cpu_ms), 0) AS n FROM tenant_cpu_days WHERE tenant_id = ? AND day >= ?'),
    addCpu: db.prepare<[number, number, string], void>(
      `INSERT INTO tenant_cpu_days (tenant_id, day, cpu_ms) SELECT tenant_id, ?, ? FROM runs WHERE id = ?
       ON CONFLICT (tenant_id, day) DO UPDATE SET cpu_ms = cpu_ms + excluded.cpu_ms`),
    pruneCpuDays: db.prepare<[string, number], void>('DELETE FROM tenant_cpu_days WHERE tenant_id = ? AND day < ?'),

    // The event belongs to the attempt the run is on (runs.attempts, 0 before the first start).
    appendEvent: db.prepare<[string, string, string, number, string, string], { seq: number; attempt: number }>(
      `INSERT INTO run_events (run_id, seq, type, data, at, attempt)
       SELECT ?, coalesce(max(seq), 0) + 1, ?, ?, ?, coalesce((SELECT attempts FROM runs WHERE id = ?), 0)
       FROM run_events WHERE run_id = ?
       RETURNING seq, attempt`),
    events: db.prepare<[string, number], EventRow>('SELECT * FROM run_events WHERE run_id = ? AND seq > ? ORDER BY seq'),

    pruneRuns: db.prepare<[string, number, number], void>(
      `DELETE FROM runs WHERE id IN (SELECT id FROM runs WHERE tenant_id = ? AND state IN (${TERMINAL_SQL}) AND finished_at < ?
       ORDER BY finished_at LIMIT ?)`),
    unreferencedModules: db.prepare<[string, number, number], { id: string }>(
      `SELECT m.id FROM modules m WHERE m.tenant_id = ? AND m.created_at < ?
       AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.tenant_id = m.tenant_id AND r.module_id = m.id)
       ORDER BY m.created_at LIMIT ?`),

    putDelivery: db.prepare<unknown[], void>(
      `INSERT INTO webhook_deliveries (id, run_id, tenant_id, url, state, attempts, last_status, last_error, next_at, created_at, updated_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (id) DO UPDATE SET state = excluded.state, attempts = excluded.attempts, last_status = excluded.last_status,
         last_error = excluded.last_error, next_at = excluded.next_at, updated_at = excluded.updated_at`),
    listDeliveries: db.prepare<[string], DeliveryRow>('SELECT * FROM webhook_deliveries WHERE run_id = ? ORDER BY created_at, id'),
    dueDeliveries: db.prepare<[number, number, number], { id: string }>(
      `SELECT id FROM webhook_deliveries WHERE state = 'pending' AND next_at <= ? AND coalesce(lease_until, 0) < ? ORDER BY next_at, id LIMIT ?`),
    claimDelivery: db.prepare<[string, number, string], DeliveryRow>(
      'UPDATE webhook_deliveries SET node_id = ?, lease_until = ?, attempts = attempts + 1 WHERE id = ? RETURNING *'),
    settleDelivery: db.prepare<[string, number | null, string | null, number | null, number, string, string, number], void>(
      `UPDATE webhook_deliveries SET state = ?, last_status = ?, last_error = ?, next_at = ?, updated_at = ?, node_id = NULL, lease_until = NULL
       WHERE id = ? AND node_id = ? AND attempts = ? AND state = 'pending'`),
  };

  // Files left by a crash: temp files, and files whose last reference was deleted before the unlink.
  sweepModuleFiles(modulesDir, (hex) => (s.moduleRefs.get(`sha256:${hex}`)?.n ?? 0) > 0);

  const createTenant = (name: string): Tenant => {
    const t: Tenant = { id: newId('ten'), name, createdAt: now(), policy: null, quotas: {} };
    try {
      s.insertTenant.run(t.id, t.name, t.createdAt);
    } catch (e) {
      if (constraintOf(e) === 'unique') {
        throw new StoreError('conflict', `a tenant named ${JSON.stringify(name)} exists`);
      }
      throw e;
    }
    return t;
  };

  // A zero hash to compare against when no row matched, so a miss does the same work as a hit.
  const NO_HASH = Buffer.alloc(32);

  const authenticate = (key: string): Tenant | undefined => {
    if (typeof key !== 'string' || key.length > MAX_KEY_LENGTH || !key.startsWith(KEY_PREFIX)) return undefined;
    const presented = Buffer.from(hashApiKey(key), 'hex');
    // The lookup is by the hash of a 256-bit secret, which tells a timing observer nothing about any
    // stored key; the constant-time comparison is the check that decides.
    const row = s.keyByHash.get(presented.toString('hex'));
    const stored = row ? Buffer.from(row.key_hash, 'hex') : NO_HASH;
    const same = stored.length === presented.length && timingSafeEqual(stored, presented);
    if (!row || !same || row.revoked_at !== null) return undefined;
    return authTenant(row);
  };

  const putModule = (tenantId: string, bytes: Uint8Array, imports: string[]): { record: ModuleRecord; created: boolean } => {
    const importList = checkImports(imports);
    const id = moduleIdOf(bytes);
    const path = moduleFile(id);
    // Another tenant's upload may have written the file already; a file of the wrong size is a
    // torn leftover and is replaced (the rename is atomic).
    if (fileSize(path) !== bytes.byteLength) writeFileAtomic(path, bytes);
    const existing = s.getModule.get(tenantId, id);
    if (existing) return { record: toModule(existing), created: false };
    const record: ModuleRecord = { id, tenantId, size: bytes.byteLength, imports: [...importList], createdAt: now() };
    try {
      s.insertModule.run(tenantId, id, record.size, JSON.stringify(record.imports), record.createdAt);
    } catch (e) {
      if ((s.moduleRefs.get(id)?.n ?? 0) === 0) unlinkQuiet(path);
      if (constraintOf(e) === 'foreignkey') throw new StoreError('not_found', 'unknown tenant');
      throw e;
    }
    return { record, created: true };
  };

  const deleteModuleTx = db.transaction((tenantId: string, id: string): { deleted: boolean; orphan: boolean } => {
    if (s.deleteModule.run(tenantId, id).changes !== 1) return { deleted: false, orphan: false };
    return { deleted: true, orphan: (s.moduleRefs.get(id)?.n ?? 0) === 0 };
  });

  /** Retention in one transaction; `orphans` are module files no tenant references any more. */
  const pruneTx = db.transaction((tenantId: string, before: number, limit: number): { runs: number; modules: number; orphans: string[] } => {
    // Events and deliveries go with their run (ON DELETE CASCADE).
    const runs = s.pruneRuns.run(tenantId, before, limit).changes;
    // CPU counters of days no quota reads any more (a few rows: not counted, not batched).
    s.pruneCpuDays.run(tenantId, utcDayStart(now()) - (CPU_DAYS_KEPT - 1) * DAY_MS);
    const orphans: string[] = [];
    let modules = 0;
    for (const { id } of s.unreferencedModules.all(tenantId, before, limit)) {
      const d = deleteModuleTx(tenantId, id);
      if (d.deleted) modules++;
      if (d.orphan) orphans.push(id);
    }
    return { runs, modules, orphans };
  });

  /** Callers of watchQueue: one process per data dir, so its own queueing is all there is to hear. */
  const queueWatchers = new Set<() => void>();
  const queueChanged = (): void => {
    for (const w of queueWatchers) {
      try { w(); } catch { /* a watcher's failure is its own */ }
    }
  };

  const watchers = new Set<EventWatcher>();
  /** Events written by the transaction in progress: announced once it committed, dropped if it rolled back. */
  let unannounced: EventNotice[] = [];
  /** Runs `fn` (a transaction) and then tells the watchers of the events it wrote. */
  const announcing = <T>(fn: () => T): T => {
    let out: T;
    try {
      out = fn();
    } catch (e) {
      unannounced = [];
      throw e;
    }
    const told = unannounced;
    unannounced = [];
    // One process per data dir: its own appends are all there is to announce.
    for (const n of told) {
      for (const w of watchers) {
        try { w(n); } catch { /* a watcher's failure is its own */ }
      }
    }
    return out;
  };

  /** Appends an event to the run's attempt in progress, inside the caller's transaction. */
  const insertEvent = (runId: string, type: RunEventRecord['type'], data: string): RunEventRecord => {
    if (!EVENT_TYPES.has(type)) throw new StoreError('invalid', `unknown event type ${String(type)}`);
    const at = now();
    let row: { seq: number; attempt: number } | undefined;
    try {
      row = s.appendEvent.get(runId, type, data, at, runId, runId);
    } catch (e) {
      if (constraintOf(e) === 'foreignkey') throw new StoreError('not_found', 'unknown run');
      throw e;
    }
    if (!row) throw new Error('appendEvent: no row inserted');
    unannounced.push({ runId, seq: row.seq, type });
    return { runId, seq: row.seq, type, data, at, attempt: row.attempt };
  };

  /** What a run's change of state writes with it (StateWrites), inside the caller's transaction. */
  const applyWrites = (runId: string, w: StateWrites | undefined): void => {
    for (const e of w?.events ?? []) insertEvent(runId, e.type, e.data);
    if (w?.delivery) putDelivery(w.delivery);
  };

  const putDelivery = (d: DeliveryRecord): void => {
    try {
      s.putDelivery.run(...deliveryValues(d));
    } catch (e) {
      if (constraintOf(e) === 'foreignkey') throw new StoreError('not_found', 'unknown run');
      throw e;
    }
  };

  const createRunTx = db.transaction((run: Parameters<Store['createRun']>[0], quota?: RunQuota): RunRecord => {
    // A run may only name a module its own tenant holds (the bytes are shared between tenants).
    if (!s.getModule.get(run.tenantId, run.moduleId)) throw new StoreError('not_found', 'unknown module');
    if (quota) {
      checkDayStart(quota.since);
      const waiting = s.countRuns.get(run.tenantId, 'queued')?.n ?? 0;
      if (waiting + 1 > quota.queuedRuns) throw new QuotaError('queuedRuns', quota.queuedRuns, waiting);
      const cpu = s.cpuUsedSince.get(run.tenantId, quota.since)?.n ?? 0;
      if (cpu >= quota.cpuMs) throw new QuotaError('cpuMs', quota.cpuMs, cpu);
    }
    try {
      s.insertRun.run(run.id, run.tenantId, run.moduleId, run.request, run.createdAt);
    } catch (e) {
      if (constraintOf(e) === 'primarykey') throw new StoreError('conflict', 'run id exists');
      throw e;
    }
    return newQueuedRun(run);
  }, 'immediate');

  // One IMMEDIATE transaction: the writer lock is the tenant row lock of the PostgreSQL store, so
  // the counts read here stay true until the claims are written.
  const claimTx = db.transaction((o: ClaimOptions): RunRecord[] => {
    const out: RunRecord[] = [];
    const order = s.claimOrder.all();
    while (out.length < o.max) {
      const i = order.findIndex((t) => t.running < (t.own ?? o.concurrentRuns));
      if (i < 0) break;
      const t = order[i]!;
      const at = now();
      const row = s.claimOldest.get(at, o.node, at + o.leaseMs, t.id);
      order.splice(i, 1);
      if (!row) continue;
      const run = toRun(row);
      out.push(run);
      applyWrites(run.id, { events: o.events?.(run) ?? [] });
      s.served.run(t.id);
      // Served now: last in the rotation.
      order.push({ ...t, running: t.running + 1 });
    }
    return out;
  }, 'immediate');

  const renewTx = db.transaction((node: string, runs: HeldRun[], leaseMs: number, at: number): string[] =>
    runs.filter((r) => s.renew.run(at + leaseMs, r.id, r.attempt, node).changes === 1).map((r) => r.id));

  const appendEventTx = db.transaction(insertEvent);

  /*
   * The restart rule. `attempts` counts how often a worker started the run. A run found `running`
   * when the server (re)starts was cut off by the server, not by the guest:
   *   - attempts < 2 (it ran once): back to `queued`, so it is retried once;
   *   - attempts >= 2 (the retry was cut off too): `interrupted`, blame host, with INTERRUPTED_RESULT.
   * A run that is not `running` is left alone.
   */
  type Writes = ((after: RunRecord) => StateWrites) | undefined;
  const requeueTx = db.transaction((id: string, attempt: number | undefined, writes: Writes): RunRecord | undefined => {
    const a = attempt ?? null;
    const row = s.requeue.get(id, a, a) ?? s.interrupt.get(INTERRUPTED_RESULT, now(), id, a, a);
    if (!row) return undefined;
    const after = toRun(row);
    // Before the commit, on the attempt that was cut off (the retry's claim comes after).
    applyWrites(id, writes?.(after));
    return after;
  });

  const expireTx = db.transaction((at: number, writes: Writes): RunRecord[] =>
    s.expired.all(at).map((r) => requeueTx(r.id, undefined, writes)).filter((r): r is RunRecord => r !== undefined), 'immediate');

  const finishTx = db.transaction((id: string, state: RunState, result: string, at: number, cpuMs: number, attempt: number | null, writes: StateWrites | undefined): boolean => {
    if (s.finishRun.run(state, result, at, cpuMs, id, attempt, attempt).changes !== 1) return false;
    // Only the call that ended the run charges its CPU, to the UTC day it ended on.
    if (cpuMs > 0) s.addCpu.run(utcDayStart(at), cpuMs, id);
    applyWrites(id, writes);
    return true;
  }, 'immediate');

  const claimDeliveriesTx = db.transaction((node: string, max: number, leaseMs: number, at: number): DeliveryRecord[] =>
    s.dueDeliveries.all(at, at, max).map((d) => toDelivery(s.claimDelivery.get(node, at + leaseMs, d.id)!)), 'immediate');

  const store: SyncStore = {
    createTenant,
    getTenant: (id) => {
      const r = s.getTenant.get(id);
      return r && toTenant(r);
    },
    findTenantByName: (name) => {
      const r = s.tenantByName.get(name);
      return r && toTenant(r);
    },
    listTenants: () => s.listTenants.all().map(toTenant),
    setPolicy: (tenantId, policy) => {
      if (s.setPolicy.run(policy, tenantId).changes !== 1) throw new StoreError('not_found', 'unknown tenant');
    },
    setQuotas: (tenantId, quotas) => {
      if (s.setQuotas.run(quotasText(quotas), tenantId).changes !== 1) throw new StoreError('not_found', 'unknown tenant');
    },
    webhookSecret: (tenantId, rotate = false) => {
      const row = s.getSecret.get(tenantId);
      if (!row) throw new StoreError('not_found', 'unknown tenant');
      if (row.webhook_secret !== null && !rotate) return row.webhook_secret;
      const secret = newWebhookSecret();
      s.setSecret.run(secret, tenantId);
      return secret;
    },

    createKey: (tenantId) => {
      const key = newApiKey();
      const record: ApiKeyRecord = { id: newId('key'), tenantId, createdAt: now(), revokedAt: null };
      try {
        s.insertKey.run(record.id, tenantId, hashApiKey(key), record.createdAt);
      } catch (e) {
        if (constraintOf(e) === 'foreignkey') throw new StoreError('not_found', 'unknown tenant');
        throw e;
      }
      return { key, record };
    },
    authenticate,
    listKeys: (tenantId) => s.listKeys.all(tenantId).map(toKey),
    revokeKey: (tenantId, keyId) => {
      // Idempotent: true when the tenant has the key, revoked now or before (the first time stays).
      if (!s.getKey.get(keyId, tenantId)) return false;
      s.revokeKey.run(now(), keyId, tenantId);
      return true;
    },

    putModule,
    getModule: (tenantId, id) => {
      const r = s.getModule.get(tenantId, id);
      return r && toModule(r);
    },
    listModules: (tenantId, o) => {
      const size = pageSize(o.limit);
      const rows = o.cursor === undefined
        ? s.listModules.all(tenantId, size + 1)
        : (() => {
          const c = decodeCursor(o.cursor);
          return s.listModulesAfter.all(tenantId, c.createdAt, c.id, size + 1);
        })();
      return toPage(rows, size, toModule);
    },
    deleteModule: (tenantId, id) => {
      const { deleted, orphan } = deleteModuleTx(tenantId, id);
      // After the commit: a crash between the two leaves an orphan file, swept at the next open.
      if (orphan) unlinkQuiet(moduleFile(id));
      return deleted;
    },
    moduleBytes: (tenantId, id) => {
      if (!s.getModule.get(tenantId, id)) return undefined;
      // A missing file under a live record is damage to the data dir: that throws (a host error).
      return new Uint8Array(readFileSync(moduleFile(id)));
    },
    moduleStorage: (tenantId) => s.moduleStorage.get(tenantId)?.n ?? 0,

    createRun: (run, quota) => {
      const r = createRunTx(run, quota);
      queueChanged();
      return r;
    },
    getRun: (tenantId, id) => {
      const r = s.getRun.get(tenantId, id);
      return r && toRun(r);
    },
    listRuns: (tenantId, o) => {
      const size = pageSize(o.limit);
      const c = o.cursor === undefined ? undefined : decodeCursor(o.cursor);
      let rows: RunRow[];
      if (o.state === undefined) {
        rows = c ? s.listRunsAfter.all(tenantId, c.createdAt, c.id, size + 1) : s.listRuns.all(tenantId, size + 1);
      } else {
        rows = c
          ? s.listRunsStateAfter.all(tenantId, o.state, c.createdAt, c.id, size + 1)
          : s.listRunsState.all(tenantId, o.state, size + 1);
      }
      return toPage(rows, size, toRun);
    },
    startRun: (id, at, nodeId) => s.startRun.run(at, nodeId ?? null, id).changes === 1,
    claimRuns: (o) => (o.max > 0 ? announcing(() => claimTx(o)) : []),
    renewLeases: (node, runs, leaseMs, at) => (runs.length ? renewTx(node, runs, leaseMs, at) : []),
    expireLeases: (at, writes) => {
      const runs = announcing(() => expireTx(at, writes));
      if (runs.some((r) => r.state === 'queued')) queueChanged();
      return runs;
    },
    finishRun: (id, state, result, at, cpuMs, attempt, writes) => {
      if (!TERMINAL.has(state)) throw new StoreError('invalid', `finishRun: ${state} is not a terminal state`);
      return announcing(() => finishTx(id, state, result, at, Math.max(0, Math.round(cpuMs)), attempt ?? null, writes));
    },
    requeueRun: (id, attempt, writes) => {
      const r = announcing(() => requeueTx(id, attempt, writes));
      if (r?.state === 'queued') queueChanged();
      return r;
    },
    runsInState: (state) => s.runsInState.all(state).map(toRun),
    countRuns: (tenantId, state) => s.countRuns.get(tenantId, state)?.n ?? 0,
    runCounts: () => {
      const r = s.runCounts.get();
      return { queued: r?.queued ?? 0, running: r?.running ?? 0, tenantsWaiting: r?.tenants ?? 0 };
    },
    watchQueue: (listener) => {
      queueWatchers.add(listener);
      return { close: async () => { queueWatchers.delete(listener); } };
    },
    cpuUsedSince: (tenantId, since) => {
      checkDayStart(since);
      return s.cpuUsedSince.get(tenantId, since)?.n ?? 0;
    },

    appendEvent: (runId, type, data) => announcing(() => appendEventTx(runId, type, data)),
    events: (runId, afterSeq) => s.events.all(runId, afterSeq).map(toEvent),
    watchEvents: (watcher) => {
      watchers.add(watcher);
      return { close: async () => { watchers.delete(watcher); } };
    },
    ping: () => {
      s.ping.get();
    },

    pruneTenant: (tenantId, before, limit) => {
      const n = Math.max(1, Math.floor(limit));
      const r = pruneTx(tenantId, before, n);
      // After the commit, as deleteModule does.
      for (const id of r.orphans) unlinkQuiet(moduleFile(id));
      return { runs: r.runs, modules: r.modules };
    },
    putDelivery,
    listDeliveries: (runId) => s.listDeliveries.all(runId).map(toDelivery),
    claimDeliveries: (node, max, leaseMs, at) => (max > 0 ? claimDeliveriesTx(node, Math.floor(max), leaseMs, at) : []),
    settleDelivery: (node, d) => s.settleDelivery.run(d.state, d.lastStatus, d.lastError, d.nextAt, d.updatedAt, d.id, node, d.attempts).changes === 1,

    close: () => {
      db.close();
    },
  };
  return asyncStore(store);
}

/** Applies the migrations the database lacks, all in one IMMEDIATE transaction (so two openers don't race). */
function migrate(db: SqlDatabase): void {
  const apply = db.transaction(() => {
    const current = db.pragma('user_version') as number;
    if (current > MIGRATIONS.length) {
      throw new Error(`capsa.db has schema version ${current}, newer than this build knows (${MIGRATIONS.length})`);
    }
    for (let v = current; v < MIGRATIONS.length; v++) {
      db.exec(MIGRATIONS[v] as string);
    }
    if (current !== MIGRATIONS.length) db.exec(`PRAGMA user_version = ${MIGRATIONS.length}`);
  }, 'immediate');
  apply();
}

/** Removes temp files and files no tenant references; `referenced` gets the hex digest. */
function sweepModuleFiles(dir: string, referenced: (hex: string) => boolean): void {
  for (const name of readdirSync(dir)) {
    if (name.includes('.tmp-') || (/^[0-9a-f]{64}$/.test(name) && !referenced(name))) unlinkQuiet(join(dir, name));
  }
}

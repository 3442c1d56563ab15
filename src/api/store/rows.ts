/**
 * What the SQLite and PostgreSQL stores share: the rows' shapes and their mapping to records, the
 * opaque page cursors, the constants of the Store contract. The SQL itself stays in each store.
 */
import type { ApiKeyRecord, DeliveryRecord, EventNotice, ModuleRecord, Page, RunEventRecord, RunRecord, RunState, Tenant, TenantQuotas } from './types.js';
import { StoreError } from './errors.js';

/** Listings never return more than this many items a page. */
export const MAX_PAGE = 100;

/** The result `requeueRun` records when it gives up on a run. */
export const INTERRUPTED_RESULT = JSON.stringify({
  status: 'interrupted',
  blame: 'host',
  message: 'the server stopped while the run was running; it was retried once',
});

/** The states `finishRun` accepts. */
export const TERMINAL: ReadonlySet<RunState> = new Set<RunState>([
  'exited', 'trapped', 'timeout', 'memory_limit', 'output_limit', 'cancelled', 'invalid_module', 'host_error', 'interrupted',
]);
/** The terminal states as an SQL list (retention: only ended runs are pruned). */
export const TERMINAL_SQL = [...TERMINAL].map((s) => `'${s}'`).join(', ');
export const EVENT_TYPES: ReadonlySet<RunEventRecord['type']> = new Set<RunEventRecord['type']>(['status', 'attempt', 'stdout', 'stderr', 'audit', 'exit']);
/** A UTC day, ms: the CPU quota's unit (tenant_cpu_days counts each tenant's CPU per day). */
export const DAY_MS = 86_400_000;
/** Days of tenant_cpu_days rows pruneTenant keeps (today included); older ones go with retention. */
export const CPU_DAYS_KEPT = 3;
/** The start (ms) of the UTC day holding `t` (epoch time has no leap seconds, so days are DAY_MS long). */
export function utcDayStart(t: number): number {
  return t - (((t % DAY_MS) + DAY_MS) % DAY_MS);
}
/** `cpuUsedSince`'s `since` must be a UTC day start: the counters are per day. */
export function checkDayStart(since: number): void {
  if (!Number.isSafeInteger(since) || utcDayStart(since) !== since) {
    throw new StoreError('invalid', `CPU use is counted per UTC day: since must be a UTC day start (${since} is not; use ${utcDayStart(Math.floor(since) || 0)})`);
  }
}
/** A key longer than this is not one of ours; don't hash megabytes for it. */
export const MAX_KEY_LENGTH = 256;

export interface TenantRow { id: string; name: string; created_at: number; policy: string | null; quotas: string | null }
export interface KeyRow { id: string; tenant_id: string; created_at: number; revoked_at: number | null }
export interface AuthRow { key_hash: string; revoked_at: number | null; t_id: string; t_name: string; t_created_at: number; t_policy: string | null; t_quotas: string | null }
export interface DeliveryRow {
  id: string; run_id: string; tenant_id: string; url: string; state: DeliveryRecord['state']; attempts: number;
  last_status: number | null; last_error: string | null; next_at: number | null; created_at: number; updated_at: number;
}
export interface ModuleRow { tenant_id: string; id: string; size: number; imports: string; created_at: number }
export interface RunRow {
  id: string; tenant_id: string; module_id: string; state: RunState; request: string; result: string | null;
  created_at: number; started_at: number | null; finished_at: number | null; attempts: number; cpu_ms: number; node_id: string | null;
}
export interface EventRow { run_id: string; seq: number; type: RunEventRecord['type']; data: string; at: number; attempt: number }

/** The quotas column (JSON text or NULL) as a record. */
export const toQuotas = (text: string | null): TenantQuotas => (text ? JSON.parse(text) as TenantQuotas : {});
export const toTenant = (r: TenantRow): Tenant => ({ id: r.id, name: r.name, createdAt: r.created_at, policy: r.policy, quotas: toQuotas(r.quotas) });
export const authTenant = (r: AuthRow): Tenant => ({ id: r.t_id, name: r.t_name, createdAt: r.t_created_at, policy: r.t_policy, quotas: toQuotas(r.t_quotas) });
export const toDelivery = (r: DeliveryRow): DeliveryRecord => ({
  id: r.id, runId: r.run_id, tenantId: r.tenant_id, url: r.url, state: r.state, attempts: r.attempts,
  lastStatus: r.last_status, lastError: r.last_error, nextAt: r.next_at, createdAt: r.created_at, updatedAt: r.updated_at,
});
/** A delivery's columns in insert order. */
export const deliveryValues = (d: DeliveryRecord): unknown[] => [d.id, d.runId, d.tenantId, d.url, d.state, d.attempts, d.lastStatus, d.lastError, d.nextAt, d.createdAt, d.updatedAt];
/** The quotas as stored: JSON text, or NULL when the tenant has none of its own. */
export const quotasText = (q: TenantQuotas): string | null => (Object.keys(q).length ? JSON.stringify(q) : null);

export const toKey = (r: KeyRow): ApiKeyRecord => ({ id: r.id, tenantId: r.tenant_id, createdAt: r.created_at, revokedAt: r.revoked_at });
export const toModule = (r: ModuleRow): ModuleRecord => ({
  id: r.id, tenantId: r.tenant_id, size: r.size, imports: JSON.parse(r.imports) as string[], createdAt: r.created_at,
});
export const toRun = (r: RunRow): RunRecord => ({
  id: r.id, tenantId: r.tenant_id, moduleId: r.module_id, state: r.state, request: r.request, result: r.result,
  createdAt: r.created_at, startedAt: r.started_at, finishedAt: r.finished_at, attempts: r.attempts, cpuMs: r.cpu_ms,
  nodeId: r.node_id ?? null,
});
/** A queued run as createRun returns it. */
export const newQueuedRun = (run: { id: string; tenantId: string; moduleId: string; request: string; createdAt: number }): RunRecord => ({
  id: run.id, tenantId: run.tenantId, moduleId: run.moduleId, state: 'queued', request: run.request, result: null,
  createdAt: run.createdAt, startedAt: null, finishedAt: null, attempts: 0, cpuMs: 0, nodeId: null,
});
/** An appended event's NOTIFY payload '<run>:<seq>:<type>' (run ids hold no ':') read back; undefined if it is not one. */
export function parseNotice(payload: string): EventNotice | undefined {
  const m = /^([^:]+):(\d{1,15}):([a-z]+)$/.exec(payload);
  if (!m || !EVENT_TYPES.has(m[3] as RunEventRecord['type'])) return undefined;
  return { runId: m[1]!, seq: Number(m[2]), type: m[3] as RunEventRecord['type'] };
}

export const toEvent = (r: EventRow): RunEventRecord => ({ runId: r.run_id, seq: r.seq, type: r.type, data: r.data, at: r.at, attempt: r.attempt });

// ---- cursors: opaque base64url of [createdAt, id], the last item of the page before ----

export function encodeCursor(createdAt: number, id: string): string {
  return Buffer.from(JSON.stringify([createdAt, id]), 'utf8').toString('base64url');
}

export function decodeCursor(cursor: string): { createdAt: number; id: string } {
  const bad = () => new StoreError('invalid', 'invalid cursor');
  if (cursor.length > 512 || !/^[A-Za-z0-9_-]+$/.test(cursor)) throw bad();
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    throw bad();
  }
  if (!Array.isArray(v) || v.length !== 2) throw bad();
  const [createdAt, id] = v as unknown[];
  if (typeof createdAt !== 'number' || !Number.isSafeInteger(createdAt) || typeof id !== 'string') throw bad();
  return { createdAt, id };
}

/** 1..MAX_PAGE; a limit that is not a number gets the maximum. */
export function pageSize(limit: number): number {
  if (!Number.isFinite(limit)) return MAX_PAGE;
  return Math.min(MAX_PAGE, Math.max(1, Math.floor(limit)));
}

/** `rows` holds up to size + 1 rows; the extra one only says that there is a next page. */
export function toPage<R extends { created_at: number; id: string }, T>(rows: R[], size: number, map: (r: R) => T): Page<T> {
  const more = rows.length > size;
  const kept = more ? rows.slice(0, size) : rows;
  const page: Page<T> = { items: kept.map(map) };
  const last = kept[kept.length - 1];
  if (more && last) page.next = encodeCursor(last.created_at, last.id);
  return page;
}

/** The imports list of a module record, checked. */
export function checkImports(imports: unknown): string[] {
  if (!Array.isArray(imports) || !imports.every((i) => typeof i === 'string')) {
    throw new StoreError('invalid', 'imports must be an array of strings');
  }
  return imports as string[];
}

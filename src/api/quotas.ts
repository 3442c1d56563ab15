/**
 * Quotas: the service's (Quotas, from `capsa serve --quota`) with each tenant's own on top
 * (TenantQuotas, from `capsa tenant set-quota` or PUT /v1/admin/tenants/{id}/quotas). One reader
 * for `NAME=VALUE` assignments serves the serve flags and the tenant command.
 */
import { z } from '@hono/zod-openapi';
import { parseBytes, parseDuration } from '../host/units.js';
import type { Quotas } from './scheduler.js';
import type { Tenant, TenantQuotas } from './store/types.js';
import { utcDayStart } from './store/rows.js';

/** The quotas a tenant may have of its own (the global queue bound is the service's alone). */
export const TENANT_QUOTA_FIELDS = ['concurrentRuns', 'queuedRuns', 'moduleStorageBytes', 'cpuSecondsPerDay', 'retainSeconds'] as const;

const count = (max: number) => z.number().int('must be a whole number').min(0, 'must be 0 or more').max(max, `must be at most ${max}`);

/** A tenant's quotas as the admin API takes them: every field optional, unknown ones refused. */
export const TenantQuotasSchema = z.strictObject({
  concurrentRuns: count(10_000).min(1, 'must be at least 1').optional().openapi({ description: 'Runs executing at once' }),
  queuedRuns: count(10_000_000).optional().openapi({ description: 'Runs waiting; past it POST /v1/runs answers 429' }),
  moduleStorageBytes: count(2 ** 50).optional().openapi({ description: 'Bytes of modules held; past it POST /v1/modules answers 429' }),
  cpuSecondsPerDay: count(86_400 * 10_000).optional().openapi({ description: 'CPU seconds per UTC day; past it POST /v1/runs answers 429 until midnight UTC' }),
  retainSeconds: count(100 * 365 * 86_400).optional().openapi({ description: 'Finished runs (their output and events) and modules no run references are deleted this long after they ended or were uploaded; 0 keeps them' }),
}).openapi('TenantQuotas');

/** The service's quotas with the tenant's own over them. */
export function effectiveQuotas(service: Quotas, tenant: Pick<Tenant, 'quotas'>): Quotas {
  const out = { ...service };
  for (const f of TENANT_QUOTA_FIELDS) {
    const v = tenant.quotas[f];
    if (f !== 'retainSeconds' && typeof v === 'number') out[f] = v;
  }
  return out;
}

/** The tenant's retention in seconds (its own, else the service's); 0: kept forever. */
export function retentionOf(serviceRetainSeconds: number, tenant: Pick<Tenant, 'quotas'>): number {
  return tenant.quotas.retainSeconds ?? serviceRetainSeconds;
}

/** The start (ms) of the UTC day holding `t`: the CPU quota's day, as the scheduler charges it and /v1/limits reports it. */
export function utcMidnight(t: number): number {
  return utcDayStart(t);
}

/** The assignment names (kebab case, as on the command line) and how each value is read. */
const ASSIGNMENTS: Record<string, { field: (typeof TENANT_QUOTA_FIELDS)[number]; read: (v: string, what: string) => number; example: string }> = {
  'concurrent-runs': { field: 'concurrentRuns', read: (v, w) => wholeNumber(v, w), example: 'concurrent-runs=4' },
  'queued-runs': { field: 'queuedRuns', read: (v, w) => wholeNumber(v, w), example: 'queued-runs=1000' },
  'module-storage': { field: 'moduleStorageBytes', read: (v, w) => parseBytes(v, w), example: 'module-storage=64MiB' },
  'cpu-per-day': { field: 'cpuSecondsPerDay', read: (v, w) => Math.round(parseDuration(v, w) / 1000), example: 'cpu-per-day=10m (or 600s)' },
  retain: { field: 'retainSeconds', read: (v, w) => Math.round(parseDuration(v, w) / 1000), example: 'retain=7d (0 keeps forever)' },
};

function wholeNumber(v: string, what: string): number {
  if (!/^\d{1,12}$/.test(v.trim())) throw new RangeError(`${what}: ${JSON.stringify(v)} is not a whole number`);
  return Number(v.trim());
}

/** The help lines naming each assignment. */
export const QUOTA_ASSIGNMENTS_HELP = Object.values(ASSIGNMENTS).map((a) => a.example).join(', ');

/**
 * Reads `NAME=VALUE` assignments (concurrent-runs=4, module-storage=64MiB, cpu-per-day=10m,
 * retain=7d) into quotas; `NAME=default` gives the field back to the service (null here).
 * Throws RangeError naming the assignment that is wrong.
 */
export function parseQuotaAssignments(list: string[]): { [K in keyof TenantQuotas]: number | null } {
  const out: { [K in keyof TenantQuotas]: number | null } = {};
  for (const item of list) {
    const m = /^([a-z-]+)=(.*)$/.exec(item);
    const a = m ? ASSIGNMENTS[m[1]!] : undefined;
    if (!m || !a) throw new RangeError(`${JSON.stringify(item)}: expected NAME=VALUE with NAME one of ${Object.keys(ASSIGNMENTS).join(', ')} (e.g. ${QUOTA_ASSIGNMENTS_HELP})`);
    if (m[2] === 'default') { out[a.field] = null; continue; }
    const v = a.read(m[2]!, m[1]!);
    const r = TenantQuotasSchema.shape[a.field].safeParse(v);
    if (!r.success) throw new RangeError(`${m[1]}=${m[2]}: ${r.error.issues[0]?.message ?? 'out of range'}`);
    out[a.field] = v;
  }
  return out;
}

/** `base` with the assignments applied (null removes a field). */
export function applyQuotas(base: TenantQuotas, changes: { [K in keyof TenantQuotas]: number | null }): TenantQuotas {
  const out: TenantQuotas = { ...base };
  for (const [k, v] of Object.entries(changes) as [keyof TenantQuotas, number | null][]) {
    if (v === null) delete out[k];
    else out[k] = v;
  }
  return out;
}

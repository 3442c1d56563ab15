/** Health, metrics, the tenant's limits, and the API's own description (OpenAPI and an HTML page). */
import type { OpenAPIHono } from '@hono/zod-openapi';
import { z } from '@hono/zod-openapi';
import type { ExecutorInfo } from '../../host/host.js';
import { LIMIT_FIELDS, type Limits } from '../../host/limits.js';
import { formatRights } from '../../wasi/rights.js';
import { defineRoute, jsonContent } from '../http.js';
import { Exposition } from '../metrics.js';
import type { AppEnv, Deps } from '../options.js';
import { tenantPolicy } from '../runs/prepare.js';
import { renderDocs } from './docs.js';
import { retentionOf, utcMidnight } from '../quotas.js';

/** A run's limits, every field. */
export const LimitsSchema = z.object(Object.fromEntries(LIMIT_FIELDS.map((f) => [f, z.number()])) as Record<keyof Limits, z.ZodNumber>);

const EffectiveLimitsSchema = z.object({
  run: z.object({
    defaults: LimitsSchema.openapi({ description: 'What a run gets for each limit its manifest leaves out' }),
    maxima: LimitsSchema.openapi({ description: 'The most a manifest may ask for (422 above)' }),
  }),
  policy: z.object({
    own: z.boolean().openapi({ description: 'Whether the tenant has its own policy (else the service\'s)' }),
    dirs: z.array(z.object({ source: z.string(), guest: z.string().optional(), rights: z.string() })),
    casper: z.record(z.string(), z.unknown()),
    argdataFiles: z.boolean(),
  }),
  quotas: z.object({
    concurrentRuns: z.object({ limit: z.number(), used: z.number() }),
    queuedRuns: z.object({ limit: z.number(), used: z.number() }),
    moduleStorageBytes: z.object({ limit: z.number(), used: z.number() }),
    cpuSecondsPerDay: z.object({ limit: z.number(), used: z.number() }),
  }),
  retention: z.object({
    retainSeconds: z.number().openapi({ description: 'Your finished runs (output, events) and modules no run references are deleted this long after they ended or were uploaded; 0: kept' }),
    own: z.boolean().openapi({ description: 'Whether it is your own (else the service\'s)' }),
  }),
  api: z.object({
    moduleBytes: z.number(), runBodyBytes: z.number(), batchBodyBytes: z.number(),
    stdinBytes: z.number().openapi({ description: 'Largest stdin of a run, decoded' }), filesBytes: z.number().openapi({ description: 'Largest total of a run\'s files, decoded' }),
    waitSeconds: z.number(), batchMax: z.number(), pageMax: z.number(), jsonDepth: z.number(),
  }),
}).openapi('EffectiveLimits');

function executorCounts(list: ExecutorInfo[]): [Record<string, string>, number][] {
  const counts = new Map<string, number>();
  for (const e of list) {
    const key = JSON.stringify({ runtime: e.runtime, layers: e.layers.join(',') });
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return [...counts].map(([k, n]) => [JSON.parse(k) as Record<string, string>, n]);
}

const HealthSchema = z.object({
  status: z.enum(['ok', 'stopping', 'database_unreachable']),
  node: z.string().openapi({ description: 'This node\'s id (`capsa serve --node-id`)' }),
  database: z.enum(['ok', 'unreachable']).openapi({ description: 'Whether the store answered a trivial query just now (within 2 s)' }),
  isolation: z.enum(['thread', 'process']),
  executors: z.array(z.object({
    pid: z.number().optional(), runtime: z.string(), layers: z.array(z.string()), workers: z.number(), busy: z.number(),
    rssBytes: z.number(), startedAt: z.string(),
  })),
}).openapi('Health');

/** How long /healthz waits for the database. */
const PING_MS = 2000;

/** Whether the store answers within PING_MS. */
async function reachable(store: Deps['store']): Promise<'ok' | 'unreachable'> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'unreachable'>((r) => { timer = setTimeout(() => r('unreachable'), PING_MS); });
  try {
    return await Promise.race([store.ping().then(() => 'ok' as const, () => 'unreachable' as const), late]);
  } finally {
    clearTimeout(timer);
  }
}

export function registerSystemRoutes(app: OpenAPIHono<AppEnv>, deps: Deps): void {
  const { store, host, scheduler, limits } = deps;

  defineRoute(app, deps, {
    method: 'get', path: '/', auth: 'none', tags: ['system'],
    summary: 'Redirects to the dashboard at /ui',
    responses: { 302: { description: 'To /ui' } },
  }, (c) => c.redirect('/ui', 302));

  defineRoute(app, deps, {
    method: 'get', path: '/healthz', auth: 'none', tags: ['system'],
    summary: 'Health of this node: 200 while it takes runs, 503 while it stops or cannot reach its database; where guests run, under which layers',
    responses: {
      200: jsonContent(HealthSchema, 'Serving'),
      503: jsonContent(HealthSchema, 'Stopping, or the database does not answer'),
    },
  }, async (c) => {
    const database = await reachable(store);
    const health = { node: scheduler.nodeId, database, isolation: host.isolation, executors: host.executors() };
    if (scheduler.stats().stopping) return c.json({ status: 'stopping' as const, ...health }, 503);
    // A node that cannot reach the database can neither take nor run work: a load balancer should skip it.
    if (database !== 'ok') return c.json({ status: 'database_unreachable' as const, ...health }, 503);
    return c.json({ status: 'ok' as const, ...health }, 200);
  });

  defineRoute(app, deps, {
    method: 'get', path: '/metrics', auth: 'none', tags: ['system'],
    summary: 'Prometheus metrics: this node\'s runs by status, queue, run latency and worker utilisation (labelled with its node id), and the cluster\'s queue',
    responses: { 200: { description: 'Text exposition format 0.0.4', content: { 'text/plain': { schema: { type: 'string' } } } } },
  }, async (c) => {
    const s = scheduler.stats();
    const m = scheduler.metrics();
    const h = host.stats();
    // The whole cluster's queue, from the store (every node answers the same); unknown while it is unreachable.
    const cluster = await store.runCounts().catch(() => undefined);
    const clusterText = new Exposition()
      .metric('capsa_cluster_runs', 'gauge', 'Runs queued and running across all nodes of the database', cluster ? [[{ status: 'queued' }, cluster.queued], [{ status: 'running' }, cluster.running]] : [])
      .metric('capsa_cluster_queue_depth', 'gauge', 'Runs waiting for a worker on any node', cluster ? [[{}, cluster.queued]] : [])
      .toString();
    const text = new Exposition({ node: scheduler.nodeId })
      .metric('capsa_node_info', 'gauge', 'This node (its id in the node label)', [[{}, 1]])
      .metric('capsa_runs_submitted_total', 'counter', 'Runs accepted since the process started', [[{}, m.submitted]])
      .metric('capsa_runs_finished_total', 'counter', 'Runs that ended since the process started, by final status', [...m.finished].map(([k, v]) => [{ status: k }, v]))
      .metric('capsa_runs', 'gauge', 'Runs in the scheduler now, by status', [[{ status: 'queued' }, s.queued], [{ status: 'running' }, s.running]])
      .metric('capsa_queue_depth', 'gauge', 'Runs waiting for a worker', [[{}, s.queued]])
      .metric('capsa_tenants_waiting', 'gauge', 'Tenants with queued runs', [[{}, s.tenantsWaiting]])
      .histogram('capsa_run_duration_seconds', 'Wall time of runs on a worker', m.runSeconds)
      .histogram('capsa_run_queue_seconds', 'Time runs waited from submission to start', m.queueSeconds)
      .metric('capsa_workers', 'gauge', 'Worker threads', [[{}, h.workers]])
      .metric('capsa_workers_busy', 'gauge', 'Workers running a guest now', [[{}, h.busy]])
      .metric('capsa_worker_utilization', 'gauge', 'Busy workers over workers, now', [[{}, h.workers ? h.busy / h.workers : 0]])
      .metric('capsa_worker_busy_seconds_total', 'counter', 'Seconds workers spent on runs (rate / workers = utilisation)', [[{}, m.busyMs / 1000]])
      .metric('capsa_executors', 'gauge', 'Executor processes, by runtime and the layers in force', executorCounts(host.executors()))
      .metric('capsa_executor_busy', 'gauge', 'Runs on each executor now', host.executors().map((e) => [{ pid: String(e.pid) }, e.busy]))
      .metric('capsa_executor_rss_bytes', 'gauge', 'Resident memory of each executor', host.executors().map((e) => [{ pid: String(e.pid) }, e.rssBytes]))
      .metric('capsa_module_cache_modules', 'gauge', 'Compiled modules cached', [[{}, h.cachedModules]])
      .metric('capsa_module_cache_bytes', 'gauge', 'Bytes charged to the module cache', [[{}, h.cacheBytes]])
      .toString();
    return c.body(text + clusterText, 200, { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8' });
  });

  defineRoute(app, deps, {
    method: 'get', path: '/v1/limits', auth: 'tenant', tags: ['system'],
    summary: 'Your effective limits: run defaults and maxima, policy, quotas and their use, API caps',
    responses: { 200: jsonContent(EffectiveLimitsSchema, 'The limits') },
  }, async (c) => {
    const tenant = c.get('tenant');
    const policy = tenantPolicy(deps, tenant);
    const defaults = Object.fromEntries(LIMIT_FIELDS.map((f) => [f, Math.min(limits.runDefaults[f], policy.limits[f])]));
    const q = scheduler.quotasFor(tenant);
    const midnight = utcMidnight(Date.now());
    return c.json({
      run: { defaults, maxima: { ...policy.limits } },
      policy: {
        own: tenant.policy !== null && tenant.policy.trim() !== '',
        dirs: policy.dirs.map((d) => ({
          source: d.source.kind === 'memory' ? 'memory' : d.source.under,
          ...(d.guest !== undefined ? { guest: d.guest } : {}),
          rights: d.rights.names.join(', ') || formatRights(d.rights.base),
        })),
        casper: policy.casper,
        argdataFiles: policy.argdataFiles,
      },
      quotas: {
        concurrentRuns: { limit: q.concurrentRuns, used: await store.countRuns(tenant.id, 'running') },
        queuedRuns: { limit: q.queuedRuns, used: await store.countRuns(tenant.id, 'queued') },
        moduleStorageBytes: { limit: q.moduleStorageBytes, used: await store.moduleStorage(tenant.id) },
        cpuSecondsPerDay: { limit: q.cpuSecondsPerDay, used: await store.cpuUsedSince(tenant.id, midnight) / 1000 },
      },
      retention: { retainSeconds: retentionOf(deps.retainSeconds, tenant), own: tenant.quotas.retainSeconds !== undefined },
      api: {
        moduleBytes: limits.moduleBytes, runBodyBytes: limits.runBodyBytes, batchBodyBytes: limits.batchBodyBytes,
        stdinBytes: limits.stdinBytes, filesBytes: limits.filesBytes,
        waitSeconds: limits.waitSeconds, batchMax: limits.batchMax, pageMax: limits.pageMax, jsonDepth: limits.jsonDepth,
      },
    }, 200);
  });

  const document = () => app.getOpenAPIDocument({
    openapi: '3.0.3',
    info: {
      title: 'capsa', version: '1',
      description: 'Runs untrusted WebAssembly (WASI preview1) guests under a Capsicum rights table, per tenant. Errors are { error: { code, message, details? } }.',
    },
  });
  let cached: ReturnType<typeof document> | undefined;

  defineRoute(app, deps, {
    method: 'get', path: '/openapi.json', auth: 'none', tags: ['system'],
    summary: 'This API as an OpenAPI 3.0 document',
    responses: { 200: { description: 'The document', content: { 'application/json': { schema: { type: 'object' } } } } },
  }, (c) => c.json((cached ??= document()) as object, 200));

  defineRoute(app, deps, {
    method: 'get', path: '/docs', auth: 'none', tags: ['system'],
    summary: 'This API as an HTML page',
    responses: { 200: { description: 'HTML', content: { 'text/html': { schema: { type: 'string' } } } } },
  }, (c) => c.html(renderDocs(cached ??= document())));
}

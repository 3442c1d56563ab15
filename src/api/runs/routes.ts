/** /v1/runs: submit (one or a batch), read, list, cancel, audit trail, and the SSE event stream. */
import type { OpenAPIHono } from '@hono/zod-openapi';
import { z } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { streamSSE } from 'hono/streaming';
import type { RunEventRecord, RunRecord, RunState, Store, Tenant } from '../store/types.js';
import { newRunId } from '../store/ids.js';
import { ApiError, notFound } from '../errors.js';
import { defineRoute, errorResponses, jsonContent, pageQuery, pageSchema, readJson, readJsonValue, readQuery } from '../http.js';
import { runBodyCap, type AppEnv, type Deps } from '../options.js';
import { decodeRequest, encodeRequest, eventJson, isTerminal, runView, withProgress, type RunView } from './record.js';
import { prepareRun, RunBodySchema, type RunBody } from './prepare.js';
import type { AuditEvent } from '../../host/result.js';
import { explainRefusals } from '../../manifest/explain.js';
import { LimitsSchema } from '../system/routes.js';

const STATES = ['queued', 'running', 'exited', 'trapped', 'timeout', 'memory_limit', 'output_limit', 'cancelled', 'invalid_module', 'host_error', 'interrupted'] as const satisfies readonly RunState[];

const text = z.string().nullable();
const encoding = z.enum(['utf8', 'base64']);
const UsageSchema = z.object({ wallMs: z.number(), cpuMs: z.number(), peakMemoryBytes: z.number() });

const ChildSchema = z.object({
  pid: z.number().int(), parentPid: z.number().int(),
  status: z.string().openapi({ description: 'A run status, or killed (by its parent, or because its parent or the run ended)' }),
  exitCode: z.number().int().optional(), signal: z.number().int().optional(), message: z.string().optional(),
  usage: UsageSchema,
}).openapi('ChildStatus');

export const RunSchema = z.object({
  id: z.string().openapi({ example: 'run_9x2…' }),
  module: z.string(),
  status: z.enum(STATES),
  createdAt: z.string(),
  startedAt: z.string().nullable(),
  finishedAt: z.string().nullable(),
  attempts: z.number().int().openapi({ description: 'How many times the run was started: 2 when the service retried it after a crash or a stop' }),
  node: z.string().nullable().openapi({ description: 'The node (`capsa serve --node-id`) that started its latest attempt; null while it has not started' }),
  exitCode: z.number().int().nullable(),
  stdout: text.openapi({ description: 'The output as text when it is valid UTF-8, else base64 (see stdoutEncoding); while running, the output of the current attempt so far; null while queued. A retried run shows its last attempt\'s output only' }),
  stderr: text,
  stdoutEncoding: encoding.optional(),
  stderrEncoding: encoding.optional(),
  blame: z.enum(['guest', 'host']).optional(),
  message: z.string().optional(),
  trap: z.object({ kind: z.string(), message: z.string() }).optional(),
  timeout: z.enum(['wall', 'cpu']).optional(),
  files: z.record(z.string(), z.object({ data: z.string(), encoding })).optional(),
  filesOmitted: z.record(z.string(), z.number()).optional(),
  usage: UsageSchema.optional(),
  audit: z.object({ events: z.number(), dropped: z.number() }).optional(),
  warnings: z.array(z.string()).optional(),
  children: z.array(ChildSchema).optional().openapi({ description: 'The child guests the run started (capsicum.pdspawn), as they ended' }),
  learnedManifest: z.string().optional().openapi({ description: 'With learn: the least manifest (YAML, with comments saying why each grant is there) that grants only what this run used; submit it again as `manifest` (with the same files)' }),
  limits: LimitsSchema.optional().openapi({ description: 'The limits the run has: its manifest\'s, the rest from the defaults under your policy' }),
}).openapi('Run');

const RunSummarySchema = RunSchema.pick({ id: true, module: true, status: true, createdAt: true, startedAt: true, finishedAt: true, attempts: true, node: true, exitCode: true, blame: true }).openapi('RunSummary');

const BatchWait = z.number().min(0).openapi({ description: 'Seconds to wait for every run of the batch to end before answering (lowered to the service\'s cap); an item\'s own `wait` counts for that item' });
const BatchBodySchema = z.union([
  z.array(RunBodySchema),
  z.strictObject({ runs: z.array(RunBodySchema), wait: BatchWait.optional() }),
]).openapi('RunBatch', {
  description: 'An array of run requests (or { runs: [...], wait }), each like POST /v1/runs',
});
const BatchResultSchema = z.object({
  items: z.array(z.object({
    index: z.number().int(),
    status: z.number().int().openapi({ description: 'The status this run alone would have had (201, 4xx, 503)' }),
    run: RunSchema.optional(),
    error: z.object({ code: z.string(), message: z.string(), details: z.unknown().optional() }).optional(),
  })),
}).openapi('RunBatchResult');

/** An idle event stream gets a comment this often (proxies drop silent connections), and re-reads the run. */
const KEEP_ALIVE_MS = 15_000;
/** What a drained stream tells clients to wait before they reconnect (SSE `retry`), ms. */
const DRAIN_RETRY_MS = 500;

const idParam = z.object({ id: z.string().openapi({ param: { name: 'id', in: 'path' }, example: 'run_…' }) });

const summary = (r: RunRecord) => {
  const v = runView(r);
  return { id: v.id, module: v.module, status: v.status, createdAt: v.createdAt, startedAt: v.startedAt, finishedAt: v.finishedAt, attempts: v.attempts, node: v.node, exitCode: v.exitCode, ...(v.blame ? { blame: v.blame } : {}) };
};

/** The run named by the path's `id`, if the calling tenant has it (404 otherwise); logged as the request's run. */
export async function tenantRun(store: Store, c: Context<AppEnv>): Promise<RunRecord> {
  const id = c.req.param('id') ?? '';
  const run = await store.getRun(c.get('tenant').id, id);
  if (!run) throw notFound(`Run ${id}`);
  c.set('runId', run.id);
  return run;
}

export function registerRunRoutes(app: OpenAPIHono<AppEnv>, deps: Deps): void {
  const { store, scheduler, limits } = deps;

  /** Validates, checks quotas, persists and queues one run. Throws ApiError. */
  const createOne = async (tenant: Tenant, body: RunBody, id = newRunId()): Promise<RunRecord> => {
    const prepared = await prepareRun(deps, tenant, body);
    // Persisted (after the quotas admit it) before it is acknowledged, and before any node may start it.
    return scheduler.create({
      id, tenantId: tenant.id, moduleId: prepared.moduleId,
      request: encodeRequest(prepared.manifest, prepared.fields, prepared.learn, prepared.callbackUrl), createdAt: Date.now(),
    }, tenant);
  };

  /** The full view; a running run's output so far included. */
  const fullView = async (r: RunRecord): Promise<RunView> => (r.state === 'running' ? withProgress(runView(r), await store.events(r.id, 0)) : runView(r));

  /** Whether the run has ended, for waits that must not miss an end just before they listen (on any node). */
  const ended = (tenantId: string, id: string) => async (): Promise<boolean> => {
    const r = await store.getRun(tenantId, id);
    return !r || isTerminal(r.state);
  };

  const ownRun = (c: Context<AppEnv>): Promise<RunRecord> => tenantRun(store, c);

  defineRoute(app, deps, {
    method: 'post', path: '/v1/runs', auth: 'tenant', maxBody: runBodyCap(limits), tags: ['runs'],
    summary: 'Start a run',
    description: `Validates the manifest against your policy, persists the run (queued) and queues it. With \`wait\` (seconds, at most ${limits.waitSeconds}) the answer waits for the run to end and shows its result; otherwise, or if it has not ended by then, the run so far.`,
    request: { body: { required: true, content: { 'application/json': { schema: RunBodySchema } } } },
    responses: {
      201: jsonContent(RunSchema, 'The run (finished, when wait was given and it ended in time)'),
      ...errorResponses([400, 'Malformed JSON'], [422, 'Invalid request, manifest or module; over the policy (each problem in details, with line:col for the manifest)'],
        [429, 'A quota is used up (Retry-After)'], [503, 'The global queue is full or the service is stopping (Retry-After)']),
    },
  }, async (c) => {
    const tenant = c.get('tenant');
    const body = await readJson(c, deps, RunBodySchema);
    const wait = Math.min(body.wait ?? 0, limits.waitSeconds);
    // Listening before the run exists, so its end cannot come first and need not be read for.
    const id = newRunId();
    const watch = wait > 0 ? await scheduler.events.follow(id) : undefined;
    let run: RunRecord;
    try {
      run = await createOne(tenant, body, id);
    } catch (e) {
      watch?.close();
      throw e;
    }
    c.set('runId', run.id);
    if (watch) await watch.wait(wait * 1000, ended(tenant.id, run.id));
    c.header('Location', `/v1/runs/${run.id}`);
    return c.json(await fullView(await store.getRun(tenant.id, run.id) ?? run), 201);
  });

  defineRoute(app, deps, {
    method: 'post', path: '/v1/runs:batch', auth: 'tenant', maxBody: limits.batchBodyBytes, tags: ['runs'],
    summary: 'Start several runs',
    description: `Up to ${limits.batchMax} runs, each validated, admitted and queued on its own; the answer has one entry per item, in order, with the status that item alone would have had. With \`wait\` (the batch's, or an item's own; at most ${limits.waitSeconds} s) the answer waits for those runs to end and shows their results. An unknown key, in the batch or in an item, is refused (422 naming it).`,
    request: { body: { required: true, content: { 'application/json': { schema: BatchBodySchema } } } },
    responses: {
      200: jsonContent(BatchResultSchema, 'One result per item'),
      ...errorResponses([400, 'Malformed JSON'], [422, 'Not an array of runs, or too many']),
    },
  }, async (c) => {
    const tenant = c.get('tenant');
    const raw = await readJsonValue(c, deps);
    let items: unknown[] | undefined;
    let batchWait = 0;
    if (Array.isArray(raw)) items = raw;
    else if (raw && typeof raw === 'object' && Array.isArray((raw as { runs?: unknown }).runs)) {
      const o = raw as Record<string, unknown>;
      const unknown = Object.keys(o).filter((k) => k !== 'runs' && k !== 'wait');
      if (unknown.length) {
        throw new ApiError(422, 'invalid_request', `Unknown key${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => JSON.stringify(k)).join(', ')} in the batch; it takes "runs" and "wait"`,
          unknown.map((k) => ({ path: k, message: 'unknown key' })));
      }
      const w = BatchWait.optional().safeParse(o.wait);
      if (!w.success) throw new ApiError(422, 'invalid_request', 'The batch\'s wait is a number of seconds, 0 or more', [{ path: 'wait', message: 'must be a number, 0 or more' }]);
      batchWait = w.data ?? 0;
      items = o.runs as unknown[];
    }
    if (!items) throw new ApiError(422, 'invalid_request', 'A batch is a JSON array of run requests, or { "runs": [...], "wait": seconds }');
    if (items.length === 0) throw new ApiError(422, 'invalid_request', 'The batch is empty');
    if (items.length > limits.batchMax) throw new ApiError(422, 'invalid_request', `The batch has ${items.length} runs; at most ${limits.batchMax} are allowed`);
    // One after another: each item's quota check sees the items before it.
    const out: { index: number; status: number; run?: RunView; error?: object }[] = [];
    const waits: { index: number; run: RunRecord; seconds: number }[] = [];
    for (const [index, item] of items.entries()) {
      out.push(await (async () => { try {
        const r = RunBodySchema.safeParse(item);
        if (!r.success) {
          const details = r.error.issues.map((i) => ({ path: i.path.map(String).join('.'), message: i.message }));
          throw new ApiError(422, 'invalid_request', `Invalid run: ${details.map((d) => (d.path ? `${d.path}: ${d.message}` : d.message)).join('; ')}`, details);
        }
        const run = await createOne(tenant, r.data);
        const seconds = Math.min(Math.max(batchWait, r.data.wait ?? 0), limits.waitSeconds);
        if (seconds > 0) waits.push({ index, run, seconds });
        return { index, status: 201, run: runView(run) };
      } catch (e) {
        if (!(e instanceof ApiError) || e.status >= 500 && e.code === 'internal') throw e;
        return { index, status: e.status, error: { code: e.code, message: e.message, ...(e.details !== undefined ? { details: e.details } : {}) } };
      } })());
    }
    // The waits run side by side, from now: the batch answers once each asked-for run ended or its wait passed.
    await Promise.all(waits.map(async (w) => {
      await scheduler.events.waitFor(w.run.id, w.seconds * 1000, ended(tenant.id, w.run.id));
      out[w.index]!.run = await fullView(await store.getRun(tenant.id, w.run.id) ?? w.run);
    }));
    return c.json({ items: out }, 200);
  });

  const listQuery = pageQuery(deps).extend({ status: z.enum(STATES).optional().openapi({ description: 'Only runs in this state' }) });
  defineRoute(app, deps, {
    method: 'get', path: '/v1/runs', auth: 'tenant', tags: ['runs'],
    summary: 'List your runs, newest first',
    request: { query: listQuery },
    responses: { 200: jsonContent(pageSchema(RunSummarySchema, 'RunPage'), 'A page of runs'), ...errorResponses([422, 'Bad query parameters']) },
  }, async (c) => {
    const q = readQuery(c, listQuery);
    const page = await store.listRuns(c.get('tenant').id, {
      limit: q.limit ?? limits.pageDefault, ...(q.status ? { state: q.status } : {}), ...(q.cursor !== undefined ? { cursor: q.cursor } : {}),
    });
    return c.json({ items: page.items.map(summary), ...(page.next !== undefined ? { next: page.next } : {}) }, 200);
  });

  defineRoute(app, deps, {
    method: 'get', path: '/v1/runs/{id}', auth: 'tenant', tags: ['runs'],
    summary: 'A run: status, exit code, output, usage, timestamps',
    request: { params: idParam },
    responses: { 200: jsonContent(RunSchema, 'The run'), ...errorResponses([404, 'You have no such run']) },
  }, async (c) => c.json(await fullView(await ownRun(c)), 200));

  defineRoute(app, deps, {
    method: 'delete', path: '/v1/runs/{id}', auth: 'tenant', tags: ['runs'],
    summary: 'Cancel a run',
    description: 'A queued run ends `cancelled` at once; a running one is aborted (the answer waits up to 5 s for it to end; 202 if it has not). A run that already ended is a 409.',
    request: { params: idParam },
    responses: {
      200: jsonContent(RunSchema, 'The cancelled run'),
      202: jsonContent(RunSchema, 'Cancellation requested; the run is still stopping'),
      ...errorResponses([404, 'You have no such run'], [409, 'The run already ended']),
    },
  }, async (c) => {
    const run = await ownRun(c);
    const tenant = c.get('tenant');
    const r = await scheduler.cancel(tenant.id, run.id);
    if (!r) throw notFound(`Run ${run.id}`);
    if (r.outcome === 'finished') throw new ApiError(409, 'conflict', `Run ${run.id} already ended (${r.run.state})`);
    if (r.outcome === 'cancelling') await scheduler.events.waitFor(run.id, 5000, ended(tenant.id, run.id));
    const now = await store.getRun(tenant.id, run.id) ?? r.run;
    return c.json(await fullView(now), isTerminal(now.state) ? 200 : 202);
  });

  defineRoute(app, deps, {
    method: 'get', path: '/v1/runs/{id}/audit', auth: 'tenant', tags: ['runs'],
    summary: 'The run\'s capability decisions, one JSON object per line',
    description: 'Each refused decision has `why`: the rights (or Casper service or limit) it lacked, and the manifest line (`grant`, at `line`:`col`, key `path`) that would grant it.',
    request: { params: idParam },
    responses: {
      200: { description: 'Audit events so far (application/x-ndjson)', content: { 'application/x-ndjson': { schema: { type: 'string' } } } },
      ...errorResponses([404, 'You have no such run']),
    },
  }, async (c) => {
    const run = await ownRun(c);
    const audit = (await store.events(run.id, 0)).filter((e) => e.type === 'audit');
    // Each refusal says what was missing and which manifest line would grant it.
    const events = audit.map((e) => JSON.parse(e.data) as AuditEvent);
    let why: ReturnType<typeof explainRefusals> = [];
    try {
      why = explainRefusals(decodeRequest(run.request).manifest, events);
    } catch (e) {
      // The decisions are still worth having without their explanations.
      c.get('log').warn({ err: e, run: run.id }, 'cannot explain the run\'s refusals');
    }
    const lines = audit.map((e, i) => {
      const w = why[i];
      return JSON.stringify({ ...events[i], attempt: e.attempt, ...(w ? { why: w } : {}) }) + '\n';
    }).join('');
    return c.body(lines, 200, { 'Content-Type': 'application/x-ndjson; charset=utf-8' });
  });

  defineRoute(app, deps, {
    method: 'get', path: '/v1/runs/{id}/events', auth: 'tenant', tags: ['runs'],
    summary: 'The run\'s events as Server-Sent Events',
    description: 'Events `status`, `attempt`, `stdout`, `stderr` ({data, encoding}), `audit` and `exit`, each with its sequence number as id and, in its data, '
      + 'the `attempt` it belongs to (0 before the run started). A run the service retried (it was running when the server died, or when a stop outlasted '
      + 'its grace time) has an `attempt` event before its retry\'s events: drop the output you collected from earlier attempts, since the run\'s result '
      + 'holds the last attempt\'s output only. Any node serves any run\'s stream. Reconnect with Last-Event-ID (or ?lastEventId=) to resume, on any node; '
      + 'the stream ends after `exit`, or after a `reconnect` event (with an SSE `retry`) when the node serving it stops: reconnect then.',
    request: {
      params: idParam,
      query: z.object({ lastEventId: z.string().optional() }),
      headers: z.object({ 'last-event-id': z.string().optional() }),
    },
    responses: {
      200: { description: 'An event stream', content: { 'text/event-stream': { schema: { type: 'string' } } } },
      ...errorResponses([404, 'You have no such run']),
    },
  }, async (c) => {
    const run = await ownRun(c);
    const tenantId = c.get('tenant').id;
    const from = c.req.header('last-event-id') ?? c.req.query('lastEventId') ?? '0';
    let last = /^\d{1,15}$/.test(from.trim()) ? Number(from.trim()) : 0;
    return streamSSE(c, async (stream) => {
      // Notices say that the run has events after `last` (stored by any node); the stream reads
      // them from the store, so a notice lost or repeated costs a read, never an event.
      let fresh = true;
      let wake: (() => void) | undefined;
      let closed = false;
      let drained = false;
      const stir = (): void => { fresh = true; wake?.(); };
      stream.onAbort(() => { closed = true; wake?.(); });
      /** Writes an event not yet sent; true after `exit`. */
      const send = async (e: RunEventRecord): Promise<boolean> => {
        if (e.seq <= last) return false;
        await stream.writeSSE({ id: String(e.seq), event: e.type, data: eventJson(e) });
        last = e.seq;
        return e.type === 'exit';
      };
      let unsubscribe: (() => void) | undefined;
      try {
        unsubscribe = await scheduler.events.subscribe(run.id, stir, () => { drained = true; wake?.(); });
        while (!closed) {
          if (drained) {
            // This node stops: what is stored goes out, then the client reconnects (to another
            // node, with Last-Event-ID) at once.
            for (const e of await store.events(run.id, last)) if (await send(e)) return;
            await stream.writeSSE({ event: 'reconnect', data: JSON.stringify({ message: 'This node is stopping; reconnect with Last-Event-ID' }), retry: DRAIN_RETRY_MS });
            return;
          }
          if (fresh) {
            fresh = false;
            for (const e of await store.events(run.id, last)) if (await send(e)) return;
            continue;
          }
          let timer: NodeJS.Timeout | undefined;
          const woke = await new Promise<boolean>((resolve) => {
            wake = () => resolve(true);
            timer = setTimeout(() => resolve(false), KEEP_ALIVE_MS);
          });
          clearTimeout(timer);
          wake = undefined;
          if (woke || closed) continue;
          await stream.write(': keep-alive\n\n');
          // A run that ended without its exit event (its node died in between) ends the stream too.
          const cur = await store.getRun(tenantId, run.id);
          if (!cur || isTerminal(cur.state)) {
            for (const e of await store.events(run.id, last)) if (await send(e)) return;
            return;
          }
          fresh = true;
        }
      } catch (e) {
        // Not streamSSE's own handler: it would send the error's message to the client.
        c.get('log').error({ err: e, run: run.id }, 'event stream failed');
        await stream.writeSSE({ event: 'error', data: JSON.stringify({ message: 'The event stream failed; reconnect with Last-Event-ID' }) }).catch(() => {});
      } finally {
        unsubscribe?.();
      }
    });
  });
}

export type { RunView };

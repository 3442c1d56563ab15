/**
 * The run scheduler: takes persisted runs from the queue and starts them on the host, fairly.
 *
 * - At most `concurrency` runs (default: the host's workers) are in flight, so the host's own FIFO
 *   queue stays empty and the order is decided here: round-robin over the tenants that have
 *   queued runs, one run per turn, skipping a tenant at its concurrent-runs quota. One tenant's
 *   ten thousand queued runs delay another tenant's run by at most one run per worker.
 * - Every change is written to the store before it is announced: the run's state, its output
 *   (coalesced into chunks), audit decisions and its end become events (SSE replays them). Each
 *   event belongs to an attempt (the store stamps it); a retry opens with an `attempt` event.
 * - Restart rule: start() hands every run the store still has `running` (the process died under
 *   it) to store.requeueRun, which queues it again once (a second attempt) or ends it
 *   `interrupted`; then it queues every `queued` run, oldest first. stop() stops taking work,
 *   lets running runs finish until the deadline, then aborts them and requeues them by the same rule.
 */
import type { Logger } from 'pino';
import type { Host, RunEvent } from '../host/host.js';
import { LimitError } from '../host/limits.js';
import type { RunResult } from '../host/result.js';
import { ApiError } from './errors.js';
import { toText } from './encoding.js';
import { defaultLogger } from './log.js';
import { Histogram, LATENCY_BUCKETS } from './metrics.js';
import { decodeRequest, isTerminal, storedResult, syntheticResult, type StoredResult } from './runs/record.js';
import { effectiveQuotas } from './quotas.js';
import type { RunEventRecord, RunRecord, RunState, Store, Tenant } from './store/types.js';

/** Per-tenant quotas, and the global queue bound. */
export interface Quotas {
  /** A tenant's runs executing at once; more wait in the queue (their turn is skipped). */
  concurrentRuns: number;
  /** A tenant's runs waiting; past it POST /v1/runs answers 429. */
  queuedRuns: number;
  /** Bytes of modules a tenant may hold; past it POST /v1/modules answers 429. */
  moduleStorageBytes: number;
  /** CPU seconds a tenant's runs may use per UTC day; past it POST /v1/runs answers 429 until midnight UTC. */
  cpuSecondsPerDay: number;
  /** Runs waiting across all tenants; past it POST /v1/runs answers 503. */
  globalQueuedRuns: number;
}

export const DEFAULT_QUOTAS: Readonly<Quotas> = {
  concurrentRuns: 8,
  queuedRuns: 10_000,
  moduleStorageBytes: 256 << 20,
  cpuSecondsPerDay: 3600,
  globalQueuedRuns: 100_000,
};

export interface SchedulerOptions {
  store: Store;
  host: Host;
  quotas?: Partial<Quotas>;
  /** Runs in flight at once (default: the host's workers). */
  concurrency?: number;
  logger?: Logger;
  /** Milliseconds of clock (tests). */
  now?: () => number;
  /** Called once a run ended (stored and announced): webhooks. */
  onFinish?: (run: RunRecord) => void;
}

export type EventListener = (event: RunEventRecord) => void;

/** Counters for /metrics. */
export interface SchedulerMetrics {
  submitted: number;
  finished: Map<RunState, number>;
  runSeconds: Histogram;
  queueSeconds: Histogram;
  /** Milliseconds workers spent on runs, summed. */
  busyMs: number;
}

export interface Scheduler {
  /** The service's quotas; a tenant's own go over them (quotasFor). */
  readonly quotas: Quotas;
  /** The quotas in force for a tenant: its own over the service's. */
  quotasFor(tenant: Pick<Tenant, 'id' | 'quotas'>): Quotas;
  /** Queues a run the store holds as `queued` (persist first, then submit). */
  submit(tenantId: string, runId: string): void;
  /** Why `count` more runs of the tenant cannot be queued now (429/503), or undefined. */
  admit(tenant: Pick<Tenant, 'id' | 'quotas'>, count?: number): Promise<ApiError | undefined>;
  /**
   * Cancels a run: a queued one ends `cancelled` at once, a running one is aborted (it ends
   * `cancelled` shortly). Undefined when the tenant has no such run.
   */
  cancel(tenantId: string, runId: string): Promise<{ run: RunRecord; outcome: 'cancelled' | 'cancelling' | 'finished' } | undefined>;
  /** Live events of a run, after they are stored; returns the unsubscribe function. */
  onEvent(runId: string, listener: EventListener): () => void;
  /** Resolves when the run ends or after `ms`, whichever is first (check the store first). */
  waitFor(runId: string, ms: number): Promise<void>;
  /** Recovers the store's runs (the restart rule) and starts dispatching. */
  start(): Promise<void>;
  /** Takes no new work; waits for running runs up to `deadlineMs`, then aborts and requeues them. */
  stop(deadlineMs: number): Promise<void>;
  stats(): { queued: number; running: number; concurrency: number; tenantsWaiting: number; stopping: boolean };
  metrics(): SchedulerMetrics;
}

interface InFlight {
  tenantId: string;
  runId: string;
  abort: AbortController;
  /** Set by stop(): the run goes back to the queue instead of ending `cancelled`. */
  requeue: boolean;
  done: Promise<void>;
}

/** Output arrives in small writes; it is stored in chunks of up to this many bytes or this many ms. */
const CHUNK_BYTES = 64 << 10;
const CHUNK_MS = 25;

export function createScheduler(options: SchedulerOptions): Scheduler {
  const { store, host } = options;
  const quotas: Quotas = { ...DEFAULT_QUOTAS, ...options.quotas };
  const log = (options.logger ?? defaultLogger()).child({ component: 'scheduler' });
  const now = options.now ?? Date.now;
  const concurrency = Math.max(1, options.concurrency ?? host.stats().workers);

  /** Queued run ids per tenant, oldest first. */
  const queues = new Map<string, string[]>();
  /** Tenants with queued runs, in turn order. */
  const ring: string[] = [];
  let lastServed: string | undefined;
  /** Every queued run id, so that a run is never queued twice. */
  const queued = new Set<string>();
  const inFlight = new Map<string, InFlight>();
  const runningByTenant = new Map<string, number>();
  /** Each tenant's own quotas as last seen (admit, start): pick() is synchronous. */
  const tenantQuotas = new Map<string, Tenant['quotas']>();
  const quotasFor = (tenant: Pick<Tenant, 'id' | 'quotas'>): Quotas => {
    tenantQuotas.set(tenant.id, tenant.quotas);
    return effectiveQuotas(quotas, tenant);
  };
  const concurrentOf = (tenantId: string): number => tenantQuotas.get(tenantId)?.concurrentRuns ?? quotas.concurrentRuns;
  const listeners = new Map<string, Set<EventListener>>();
  const waiters = new Map<string, Set<() => void>>();
  let started = false;
  let stopping = false;

  const metrics: SchedulerMetrics = {
    submitted: 0, finished: new Map(), runSeconds: new Histogram(LATENCY_BUCKETS), queueSeconds: new Histogram(LATENCY_BUCKETS), busyMs: 0,
  };

  // A run's events are appended one after another (an output flush from a timer must not pass the
  // status before it): each run has a chain of appends, and an event is announced once stored.
  const chains = new Map<string, Promise<unknown>>();
  const emit = (runId: string, type: RunEventRecord['type'], data: unknown): Promise<void> => {
    const text = JSON.stringify(data);
    const next = (chains.get(runId) ?? Promise.resolve()).then(async () => {
      const ev = await store.appendEvent(runId, type, text);
      for (const l of listeners.get(runId) ?? []) {
        try { l(ev); } catch (e) { log.warn({ err: e, run: runId }, 'event listener failed'); }
      }
    });
    const settled = next.catch(() => {});
    chains.set(runId, settled);
    void settled.then(() => { if (chains.get(runId) === settled) chains.delete(runId); });
    return next;
  };

  const wake = (runId: string): void => {
    const ws = waiters.get(runId);
    if (!ws) return;
    waiters.delete(runId);
    for (const w of ws) w();
  };

  const enqueue = (tenantId: string, runId: string): void => {
    if (queued.has(runId)) return;
    let q = queues.get(tenantId);
    if (!q) {
      q = [];
      queues.set(tenantId, q);
      // A tenant joining the rotation goes before the one served last, so it is not served after it again.
      if (ring.length && ring[ring.length - 1] === lastServed) ring.splice(ring.length - 1, 0, tenantId);
      else ring.push(tenantId);
    }
    q.push(runId);
    queued.add(runId);
  };

  const dequeue = (tenantId: string, runId: string): boolean => {
    const q = queues.get(tenantId);
    const i = q?.indexOf(runId) ?? -1;
    if (!q || i < 0) return false;
    q.splice(i, 1);
    queued.delete(runId);
    if (q.length === 0) {
      queues.delete(tenantId);
      const r = ring.indexOf(tenantId);
      if (r >= 0) ring.splice(r, 1);
    }
    return true;
  };

  /** The next run: the first tenant in turn below its concurrency quota gives its oldest run and goes last. */
  const pick = (): { tenantId: string; runId: string } | undefined => {
    for (let tries = ring.length; tries > 0; tries--) {
      const tenantId = ring.shift()!;
      const q = queues.get(tenantId)!;
      if ((runningByTenant.get(tenantId) ?? 0) >= concurrentOf(tenantId)) {
        ring.push(tenantId);
        continue;
      }
      const runId = q.shift()!;
      queued.delete(runId);
      lastServed = tenantId;
      if (q.length) ring.push(tenantId);
      else queues.delete(tenantId);
      return { tenantId, runId };
    }
    return undefined;
  };

  const pump = (): void => {
    while (started && !stopping && inFlight.size < concurrency) {
      const next = pick();
      if (!next) return;
      launch(next.tenantId, next.runId);
    }
  };

  // CPU milliseconds each tenant used today (UTC), read from the store once a day and then kept
  // up to date as runs finish: the quota check is on every request and must not sum the day's runs.
  const cpuToday = new Map<string, { since: number; usedMs: number }>();
  const cpuUsedToday = async (tenantId: string, since: number): Promise<number> => {
    let day = cpuToday.get(tenantId);
    if (!day || day.since !== since) {
      const usedMs = await store.cpuUsedSince(tenantId, since);
      day = cpuToday.get(tenantId);
      if (!day || day.since !== since) cpuToday.set(tenantId, day = { since, usedMs });
    }
    return day.usedMs;
  };

  const finish = async (run: RunRecord, res: StoredResult, cpuMs: number): Promise<void> => {
    const at = now();
    // The first end wins (a cancel racing the run's own exit); only it is announced.
    if (await store.finishRun(run.id, res.status, JSON.stringify(res), at, Math.round(cpuMs)) === false) {
      wake(run.id);
      return;
    }
    const day = cpuToday.get(run.tenantId);
    if (day && at >= day.since) day.usedMs += Math.round(cpuMs);
    metrics.finished.set(res.status, (metrics.finished.get(res.status) ?? 0) + 1);
    void emit(run.id, 'status', { state: res.status, at });
    await emit(run.id, 'exit', {
      state: res.status, blame: res.blame, exitCode: res.exitCode ?? null,
      ...(res.message !== undefined ? { message: res.message } : {}), usage: res.usage,
    });
    log.info({ tenant: run.tenantId, run: run.id, state: res.status, exitCode: res.exitCode, cpuMs: Math.round(cpuMs), wallMs: res.usage.wallMs }, 'run finished');
    wake(run.id);
    options.onFinish?.(run);
  };

  /** Gives a run the store left `running` back to store.requeueRun and announces where it went. */
  const requeue = async (run: RunRecord, why: string, enqueueAgain = true): Promise<void> => {
    await store.requeueRun(run.id);
    const after = await store.getRun(run.tenantId, run.id);
    const state = after?.state ?? 'interrupted';
    void emit(run.id, 'status', { state, at: now(), message: why });
    log.warn({ tenant: run.tenantId, run: run.id, state, attempts: run.attempts }, why);
    if (state === 'queued') {
      if (enqueueAgain && started && !stopping) enqueue(run.tenantId, run.id);
    } else if (isTerminal(state)) {
      metrics.finished.set(state, (metrics.finished.get(state) ?? 0) + 1);
      const res = after?.result ? (JSON.parse(after.result) as Partial<StoredResult>) : {};
      await emit(run.id, 'exit', { state, blame: res.blame ?? 'host', exitCode: null, message: res.message ?? why, usage: res.usage ?? { wallMs: 0, cpuMs: 0, peakMemoryBytes: 0 } });
      wake(run.id);
      options.onFinish?.(run);
    }
  };

  const launch = (tenantId: string, runId: string): void => {
    const entry: InFlight = { tenantId, runId, abort: new AbortController(), requeue: false, done: Promise.resolve() };
    inFlight.set(runId, entry);
    runningByTenant.set(tenantId, (runningByTenant.get(tenantId) ?? 0) + 1);
    entry.done = execute(entry)
      .catch((e: unknown) => { log.error({ err: e, tenant: tenantId, run: runId }, 'scheduler failed on a run'); })
      .finally(() => {
        inFlight.delete(runId);
        const n = (runningByTenant.get(tenantId) ?? 1) - 1;
        if (n > 0) runningByTenant.set(tenantId, n);
        else runningByTenant.delete(tenantId);
        pump();
      });
  };

  const execute = async (entry: InFlight): Promise<void> => {
    const rec = await store.getRun(entry.tenantId, entry.runId);
    if (!rec || rec.state !== 'queued') return;
    const t0 = now();
    if (!await store.startRun(rec.id, t0)) return;
    const run: RunRecord = { ...rec, state: 'running', startedAt: t0, attempts: rec.attempts + 1 };
    metrics.queueSeconds.observe(Math.max(0, t0 - rec.createdAt) / 1000);
    // A retry starts over: its own event tells clients to drop what earlier attempts wrote.
    if (run.attempts > 1) {
      void emit(rec.id, 'attempt', { attempt: run.attempts, at: t0, message: `The run starts over (attempt ${run.attempts}); output of earlier attempts is not part of its result` });
    }
    void emit(rec.id, 'status', { state: 'running', at: t0, attempt: run.attempts });
    log.info({ tenant: rec.tenantId, run: rec.id, module: rec.moduleId, attempt: run.attempts }, 'run started');

    try {
      await runOnHost(entry, rec, run);
    } catch (e) {
      // The store or the scheduler failed (not the guest): end the run rather than leave it running.
      log.error({ err: e, tenant: rec.tenantId, run: rec.id }, 'run failed in the scheduler');
      const cur = await store.getRun(rec.tenantId, rec.id);
      if (cur?.state === 'running') await finish(run, syntheticResult('host_error', 'host', `The service failed to run it: ${(e as Error)?.message ?? String(e)}`), 0);
    }
  };

  const runOnHost = async (entry: InFlight, rec: RunRecord, run: RunRecord): Promise<void> => {
    let fields;
    let learn;
    try {
      ({ fields, learn } = decodeRequest(rec.request));
    } catch (e) {
      await finish(run, syntheticResult('host_error', 'host', `The stored run request cannot be read: ${(e as Error).message}`), 0);
      return;
    }
    // The engine keeps compiled modules by the same sha256 id (a node's local cache); the store's
    // bytes are read only when the engine's cache does not hold it (any more).
    const known = await store.getModule(rec.tenantId, rec.moduleId);
    const bytes = !known ? undefined : host.has(rec.moduleId) ? rec.moduleId : await store.moduleBytes(rec.tenantId, rec.moduleId);
    if (!bytes) {
      await finish(run, syntheticResult('invalid_module', 'guest', `Module ${rec.moduleId} was deleted before the run started`), 0);
      return;
    }

    // Output: a write after a quiet spell is stored (and streamed) alone, at the end of this turn of
    // the event loop (so that a run ending in the same turn stores it before its end); a burst
    // is coalesced for CHUNK_MS, so that a guest writing byte by byte does not make one event per byte.
    type Chunk = { type: 'stdout' | 'stderr'; chunks: Uint8Array[]; bytes: number };
    let first: Chunk | undefined;
    let pending: Chunk | undefined;
    let timer: NodeJS.Timeout | undefined;
    let soon: NodeJS.Immediate | undefined;
    let flushedAt = -Infinity;
    const store1 = (p: Chunk): void => {
      flushedAt = performance.now();
      void emit(rec.id, p.type, toText(p.chunks.length === 1 ? p.chunks[0]! : Buffer.concat(p.chunks)));
    };
    const flushFirst = (): void => {
      if (soon) { clearImmediate(soon); soon = undefined; }
      const p = first;
      first = undefined;
      if (p) store1(p);
    };
    const flush = (): void => {
      flushFirst();
      if (timer) { clearTimeout(timer); timer = undefined; }
      const p = pending;
      pending = undefined;
      if (p) store1(p);
    };
    const output = (type: 'stdout' | 'stderr', data: Uint8Array): void => {
      if (pending && pending.type !== type) flush();
      if (!first && !pending && !timer && performance.now() - flushedAt >= CHUNK_MS) {
        first = { type, chunks: [data], bytes: data.length };
        soon = setImmediate(flushFirst);
        return;
      }
      pending ??= { type, chunks: [], bytes: 0 };
      pending.chunks.push(data);
      pending.bytes += data.length;
      if (pending.bytes >= CHUNK_BYTES) flush();
      else timer ??= setTimeout(flush, CHUNK_MS);
    };

    let result: RunResult | undefined;
    let failure: unknown;
    const t1 = performance.now();
    try {
      const handle = host.start({ ...fields, module: bytes, signal: entry.abort.signal });
      for await (const ev of handle as AsyncIterable<RunEvent>) {
        if (ev.type === 'stdout' || ev.type === 'stderr') output(ev.type, ev.data);
        else if (ev.type === 'audit') { flush(); void emit(rec.id, 'audit', ev.event); } else result = ev.result;
      }
    } catch (e) {
      failure = e;
    } finally {
      metrics.busyMs += performance.now() - t1;
    }
    flush();
    if (entry.requeue) {
      await requeue(run, 'the service stopped while the run was running');
      return;
    }
    if (result) {
      metrics.runSeconds.observe(result.usage.wallMs / 1000);
      await finish(run, storedResult(result, learn), result.usage.cpuMs);
      return;
    }
    // host.start refuses a request only when it is malformed (LimitError: above the host's maxima).
    const guest = failure instanceof LimitError || failure instanceof TypeError;
    await finish(run, syntheticResult('host_error', guest ? 'guest' : 'host', `The host refused the run: ${(failure as Error)?.message ?? String(failure)}`), 0);
  };

  const utcMidnight = (t: number): number => {
    const d = new Date(t);
    return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate());
  };

  return {
    quotas,
    quotasFor,
    submit(tenantId, runId) {
      metrics.submitted++;
      enqueue(tenantId, runId);
      pump();
    },
    async admit(tenant, count = 1) {
      const tenantId = tenant.id;
      const q = quotasFor(tenant);
      if (stopping) return new ApiError(503, 'shutting_down', 'The service is shutting down; retry shortly', undefined, 5);
      if (queued.size + count > quotas.globalQueuedRuns) {
        return new ApiError(503, 'queue_full', `The run queue is full (${quotas.globalQueuedRuns} runs waiting); retry later`, undefined, 5);
      }
      const waiting = await store.countRuns(tenantId, 'queued');
      if (waiting + count > q.queuedRuns) {
        return new ApiError(429, 'quota_exceeded', `You have ${waiting} queued runs; the quota is ${q.queuedRuns}. Wait for some to finish`,
          { quota: 'queuedRuns', limit: q.queuedRuns, used: waiting }, 5);
      }
      const t = now();
      const since = utcMidnight(t);
      const usedMs = await cpuUsedToday(tenantId, since);
      if (usedMs >= q.cpuSecondsPerDay * 1000) {
        return new ApiError(429, 'quota_exceeded', `Your runs used ${Math.round(usedMs / 1000)} CPU seconds today (UTC); the daily quota is ${q.cpuSecondsPerDay}`,
          { quota: 'cpuSecondsPerDay', limit: q.cpuSecondsPerDay, used: usedMs / 1000 }, (since + 86_400_000 - t) / 1000);
      }
      return undefined;
    },
    async cancel(tenantId, runId) {
      const rec = await store.getRun(tenantId, runId);
      if (!rec) return undefined;
      if (rec.state === 'queued') {
        dequeue(tenantId, runId);
        await finish(rec, syntheticResult('cancelled', 'guest', 'Cancelled before it started'), 0);
        return { run: await store.getRun(tenantId, runId) ?? rec, outcome: 'cancelled' };
      }
      if (rec.state === 'running') {
        const entry = inFlight.get(runId);
        if (entry) {
          entry.abort.abort();
          return { run: rec, outcome: 'cancelling' };
        }
        // Left running by a process that died, not yet recovered by start().
        await finish(rec, syntheticResult('cancelled', 'guest', 'Cancelled'), 0);
        return { run: await store.getRun(tenantId, runId) ?? rec, outcome: 'cancelled' };
      }
      return { run: rec, outcome: 'finished' };
    },
    onEvent(runId, listener) {
      let set = listeners.get(runId);
      if (!set) { set = new Set(); listeners.set(runId, set); }
      set.add(listener);
      return () => {
        const s = listeners.get(runId);
        s?.delete(listener);
        if (s && s.size === 0) listeners.delete(runId);
      };
    },
    waitFor(runId, ms) {
      return new Promise<void>((resolve) => {
        let set = waiters.get(runId);
        if (!set) { set = new Set(); waiters.set(runId, set); }
        const done = (): void => { clearTimeout(timer); resolve(); };
        const timer = setTimeout(() => {
          const s = waiters.get(runId);
          s?.delete(done);
          if (s && s.size === 0) waiters.delete(runId);
          resolve();
        }, Math.max(0, ms));
        set.add(done);
      });
    },
    async start() {
      if (started) return;
      started = true;
      stopping = false;
      for (const run of await store.runsInState('running')) await requeue(run, 'the service restarted while the run was running', false);
      for (const run of await store.runsInState('queued')) enqueue(run.tenantId, run.id);
      // Recovered runs start before their tenants next submit: their own concurrency quota holds now.
      for (const tenantId of queues.keys()) {
        const t = await store.getTenant(tenantId);
        if (t) tenantQuotas.set(t.id, t.quotas);
      }
      log.info({ queued: queued.size, concurrency }, 'scheduler started');
      pump();
    },
    async stop(deadlineMs) {
      stopping = true;
      const sleep = (ms: number) => new Promise<void>((r) => { setTimeout(r, Math.max(0, ms)).unref?.(); });
      const all = () => Promise.allSettled([...inFlight.values()].map((e) => e.done)).then(() => undefined);
      if (inFlight.size) await Promise.race([all(), sleep(deadlineMs)]);
      const left = [...inFlight.values()];
      for (const e of left) { e.requeue = true; e.abort.abort(); }
      if (left.length) {
        log.warn({ runs: left.length }, 'stop deadline passed: requeueing running runs');
        await Promise.race([all(), sleep(5000)]);
      }
      queues.clear();
      ring.length = 0;
      queued.clear();
      started = false;
    },
    stats: () => ({ queued: queued.size, running: inFlight.size, concurrency, tenantsWaiting: ring.length, stopping }),
    metrics: () => metrics,
  };
}

/**
 * The run scheduler: claims queued runs from the store and starts them on the host, fairly, with
 * any number of nodes (processes) sharing the store.
 *
 * - The queue is the store's: `claimRuns` hands this node up to its free workers' worth of runs in
 *   the fair order (the tenant served longest ago first, one run a turn, a tenant at its
 *   concurrent-runs quota skipped), counted across all nodes under the tenant's row lock. One
 *   tenant's ten thousand queued runs delay another tenant's run by at most one run per worker.
 *   A node claims when a run is queued here (submit), when the store says runs were queued
 *   elsewhere (watchQueue: PostgreSQL's NOTIFY), when one of its runs ends, and on a slow poll.
 * - Leases: a claimed run is this node's until its lease ends; the node renews its runs' leases
 *   every lease/3 and stops running any it no longer holds (cancelled on another node, or
 *   recovered after a partition). Any node applies the restart rule to runs whose lease expired
 *   (`expireLeases`): retried once, else `interrupted` (blame host). Every end and requeue is
 *   guarded by the attempt, so a run is finished exactly once.
 * - Every change is written to the store before it is announced: the run's state, its output
 *   (coalesced into chunks), audit decisions and its end become events (SSE replays them). Each
 *   event belongs to an attempt (the store stamps it); a retry opens with an `attempt` event. A
 *   change of state and its events are one transaction (the claim and its `running` status; the end,
 *   its `status` and `exit` and its webhook delivery; a requeue and its `status`), so no reader sees
 *   a run ended without its exit event, and a requeue's status belongs to the attempt cut off.
 * - With an exclusive store (`exclusive`: SQLite, one process per data dir) start() recovers every
 *   run left `running` at once instead of waiting for its lease. stop() stops claiming, lets running
 *   runs finish until the deadline, then aborts them and requeues them by the same rule.
 */
import type { Logger } from 'pino';
import type { Host, RunEvent } from '../host/host.js';
import { LimitError } from '../host/limits.js';
import type { RunResult } from '../host/result.js';
import { ApiError } from './errors.js';
import { b64, toText } from './encoding.js';
import { defaultLogger } from './log.js';
import { Histogram, LATENCY_BUCKETS } from './metrics.js';
import { decodeRequest, isTerminal, outputSoFar, storedResult, syntheticResult, type StoredResult } from './runs/record.js';
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { effectiveQuotas, utcMidnight } from './quotas.js';
import { QuotaError, type DeliveryRecord, type EventDraft, type RunEventRecord, type RunRecord, type RunState, type StateWrites, type Store, type Tenant } from './store/types.js';
import { createRunEvents, type RunEvents } from './events.js';

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
  /** Milliseconds of clock (tests); also the clock of leases, which nodes must agree on to well within a lease. */
  now?: () => number;
  /** Called once a run ended (stored and announced): webhooks. */
  onFinish?: (run: RunRecord) => void;
  /** The webhook delivery of a run's end, stored with the end itself (Webhooks.deliveryFor). */
  deliveryFor?: (run: RunRecord) => DeliveryRecord | undefined;
  /** This node's id, kept on the runs it claims (default `<hostname>-<pid>-<random>`). */
  nodeId?: string;
  /** The node's run events (default: a hub on `store`). */
  events?: RunEvents;
  /** How long a claim holds without renewal, ms (default 30 s): a dead node's runs are recovered this long after. */
  leaseMs?: number;
  /** The backstop poll (claims missed wake-ups, expires leases), ms (default 2 s or lease/3, whichever is less). */
  pollMs?: number;
  /** The store is this process's alone (SQLite): start() recovers every `running` run at once. */
  exclusive?: boolean;
}

/** A node id for this process: the host, the pid and a random part (a restarted process is another node). */
export function defaultNodeId(): string {
  return `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
}

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
  quotasFor(tenant: Pick<Tenant, 'quotas'>): Quotas;
  /** This node's id. */
  readonly nodeId: string;
  /** Run events of any node: what `wait` and the event streams follow. */
  readonly events: RunEvents;
  /** Says a run was queued in the store (by createRun): claim now rather than on the next wake-up. */
  submit(tenantId: string, runId: string): void;
  /**
   * Persists a queued run after the quotas admit it (the tenant's own over the service's, read from
   * the store when `tenant` is not given; queued runs and CPU seconds checked by the store
   * under the tenant's lock, the global queue bound from the cluster's count) and claims it if a
   * worker is free. Throws ApiError 429/503 when refused, with nothing stored.
   */
  create(run: Parameters<Store['createRun']>[0], tenant?: Pick<Tenant, 'quotas'>): Promise<RunRecord>;
  /**
   * Cancels a run: a queued one ends `cancelled` at once, a running one is aborted (it ends
   * `cancelled` shortly). Undefined when the tenant has no such run.
   */
  cancel(tenantId: string, runId: string): Promise<{ run: RunRecord; outcome: 'cancelled' | 'cancelling' | 'finished' } | undefined>;
  /** Starts claiming (after recovering every running run when the store is exclusive). */
  start(): Promise<void>;
  /** Takes no new work; waits for running runs up to `deadlineMs`, then aborts and requeues them. */
  stop(deadlineMs: number): Promise<void>;
  stats(): { queued: number; running: number; concurrency: number; tenantsWaiting: number; stopping: boolean };
  metrics(): SchedulerMetrics;
}

interface InFlight {
  run: RunRecord;
  abort: AbortController;
  /** Set by stop(): the run goes back to the queue instead of ending `cancelled`. */
  requeue: boolean;
  /** Set when the lease renewal found the run no longer this attempt's: nothing more is written for it. */
  lost: boolean;
  /** The guest ended here: an exit heard from now on is this node's own (or too late to stop anything). */
  over: boolean;
  done: Promise<void>;
}

/** Output arrives in small writes; it is stored in chunks of up to this many bytes or this many ms. */
const CHUNK_BYTES = 64 << 10;
const CHUNK_MS = 25;

export function createScheduler(options: SchedulerOptions): Scheduler {
  const { store, host } = options;
  const quotas: Quotas = { ...DEFAULT_QUOTAS, ...options.quotas };
  const nodeId = options.nodeId ?? defaultNodeId();
  const log = (options.logger ?? defaultLogger()).child({ component: 'scheduler', node: nodeId });
  const now = options.now ?? Date.now;
  const concurrency = Math.max(1, options.concurrency ?? host.stats().workers);
  const events = options.events ?? createRunEvents({ store, logger: log });
  const leaseMs = Math.max(30, options.leaseMs ?? 30_000);
  const pollMs = Math.max(10, options.pollMs ?? Math.min(2000, leaseMs / 3));

  const inFlight = new Map<string, InFlight>();
  /** The quotas in force for a tenant: its own over the service's. */
  const quotasFor = (tenant: Pick<Tenant, 'quotas'>): Quotas => effectiveQuotas(quotas, tenant);
  let started = false;
  let stopping = false;
  /** A claim is in progress; `again`: something may have been queued meanwhile, claim once more after it. */
  let claiming = false;
  let again = false;
  let timers: NodeJS.Timeout[] = [];
  let watch: { close(): Promise<void> } | undefined;
  /** The cluster's queue as last counted, plus this node's creations and minus its claims since. */
  let depth = { queued: 0, tenantsWaiting: 0 };

  const metrics: SchedulerMetrics = {
    submitted: 0, finished: new Map(), runSeconds: new Histogram(LATENCY_BUCKETS), queueSeconds: new Histogram(LATENCY_BUCKETS), busyMs: 0,
  };

  // Stored in order per run, then announced to every node (events.ts).
  const emit = async (runId: string, type: RunEventRecord['type'], data: unknown): Promise<void> => {
    await events.publish(runId, type, data);
  };

  /** Claims runs for the free workers and launches them; at most one claim at a time. */
  const pump = (): void => {
    if (!started || stopping) return;
    if (claiming) { again = true; return; }
    const free = concurrency - inFlight.size;
    if (free <= 0) return;
    claiming = true;
    again = false;
    store.claimRuns({ node: nodeId, max: free, leaseMs, concurrentRuns: quotas.concurrentRuns, events: startEvents }).then((runs) => {
      depth.queued = Math.max(0, depth.queued - runs.length);
      for (const run of runs) launch(run);
      claiming = false;
      // Claimed all it asked for (more may wait), or told of new runs meanwhile: once more.
      if (again || (runs.length === free && runs.length > 0)) pump();
    }, (e: unknown) => {
      claiming = false;
      log.error({ err: e }, 'cannot claim runs from the store; retrying on the next poll');
    });
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

  const draft = (type: RunEventRecord['type'], data: unknown): EventDraft => ({ type, data: JSON.stringify(data) });

  /** What a claimed run starts with, stored in its claim: a retry's `attempt` event, then its `running` status. */
  const startEvents = (run: RunRecord): EventDraft[] => {
    const at = run.startedAt ?? now();
    return [
      // A retry starts over: its own event tells clients to drop what earlier attempts wrote.
      ...(run.attempts > 1 ? [draft('attempt', { attempt: run.attempts, at, message: `The run starts over (attempt ${run.attempts}); output of earlier attempts is not part of its result` })] : []),
      draft('status', { state: 'running', at, attempt: run.attempts }),
    ];
  };

  /** What a run's end writes with it: its `status` and `exit` events and its webhook delivery. */
  const endWrites = (run: RunRecord, state: RunState, at: number, exit: Record<string, unknown>, message?: string): StateWrites => {
    const delivery = options.deliveryFor?.(run);
    return {
      events: [draft('status', { state, at, ...(message !== undefined ? { message } : {}) }), draft('exit', { state, ...exit })],
      ...(delivery ? { delivery } : {}),
    };
  };

  /** Ends a run; with `attempt`, only that attempt while it runs (this node's claim). */
  const finish = async (run: RunRecord, res: StoredResult, cpuMs: number, attempt?: number): Promise<void> => {
    const at = now();
    // The run's output published so far is stored before its end (the end's events come after it).
    await events.flush(run.id);
    // The first end wins (a cancel racing the run's own exit, on this node or another); only it
    // stores (and so announces) its status and exit events and its delivery.
    const writes = endWrites(run, res.status, at, {
      blame: res.blame, exitCode: res.exitCode ?? null, ...(res.message !== undefined ? { message: res.message } : {}), usage: res.usage,
    });
    if (await store.finishRun(run.id, res.status, JSON.stringify(res), at, Math.round(cpuMs), attempt, writes) === false) return;
    const day = cpuToday.get(run.tenantId);
    if (day && at >= day.since) day.usedMs += Math.round(cpuMs);
    metrics.finished.set(res.status, (metrics.finished.get(res.status) ?? 0) + 1);
    log.info({ tenant: run.tenantId, run: run.id, state: res.status, exitCode: res.exitCode, cpuMs: Math.round(cpuMs), wallMs: res.usage.wallMs }, 'run finished');
    options.onFinish?.(run);
  };

  /**
   * What the restart rule's change writes with it (in the store's transaction, so on the attempt that
   * was cut off): its `status` event saying why, and for a run it ended, the `exit` and the delivery.
   */
  const requeueWrites = (why: string) => (after: RunRecord): StateWrites => {
    const at = now();
    if (!isTerminal(after.state)) return { events: [draft('status', { state: after.state, at, message: why })] };
    const res = after.result ? (JSON.parse(after.result) as Partial<StoredResult>) : {};
    return endWrites(after, after.state, at, { blame: res.blame ?? 'host', exitCode: null, message: res.message ?? why, usage: res.usage ?? { wallMs: 0, cpuMs: 0, peakMemoryBytes: 0 } }, why);
  };

  /** Logs where the restart rule put a run (its events are stored already): back in the queue, or ended `interrupted`. */
  const requeued = (after: RunRecord, why: string): void => {
    log.warn({ tenant: after.tenantId, run: after.id, state: after.state, attempts: after.attempts, node: after.nodeId }, why);
    if (isTerminal(after.state)) {
      metrics.finished.set(after.state, (metrics.finished.get(after.state) ?? 0) + 1);
      options.onFinish?.(after);
    }
  };

  /** Gives a running run back to store.requeueRun (guarded by `attempt` when given) with the status event saying why. */
  const requeue = async (run: RunRecord, why: string, attempt?: number): Promise<void> => {
    await events.flush(run.id);
    const after = await store.requeueRun(run.id, attempt, requeueWrites(why));
    if (after) requeued(after, why);
  };

  /** Any node's duty: the restart rule for runs whose node stopped renewing their lease. */
  const expire = async (): Promise<void> => {
    const why = (r: RunRecord) => `the node running it (${r.nodeId ?? 'unknown'}) stopped renewing its lease`;
    const runs = await store.expireLeases(now(), (r) => requeueWrites(why(r))(r));
    for (const run of runs) requeued(run, why(run));
    if (runs.some((r) => r.state === 'queued')) pump();
  };

  /** Extends this node's leases; a run no longer held (cancelled or recovered elsewhere) is stopped here. */
  const renew = async (): Promise<void> => {
    const held = [...inFlight.values()].filter((e) => !e.lost);
    if (!held.length) return;
    const kept = new Set(await store.renewLeases(nodeId, held.map((e) => ({ id: e.run.id, attempt: e.run.attempts })), leaseMs, now()));
    for (const e of held) {
      if (kept.has(e.run.id) || inFlight.get(e.run.id) !== e) continue;
      e.lost = true;
      e.abort.abort();
      log.warn({ tenant: e.run.tenantId, run: e.run.id, attempt: e.run.attempts }, 'this node no longer holds the run (ended or recovered elsewhere): stopped');
    }
  };

  const launch = (run: RunRecord): void => {
    const entry: InFlight = { run, abort: new AbortController(), requeue: false, lost: false, over: false, done: Promise.resolve() };
    inFlight.set(run.id, entry);
    entry.done = execute(entry)
      .catch((e: unknown) => { log.error({ err: e, tenant: run.tenantId, run: run.id }, 'scheduler failed on a run'); })
      .finally(() => {
        inFlight.delete(run.id);
        pump();
      });
  };

  const execute = async (entry: InFlight): Promise<void> => {
    const run = entry.run;
    const t0 = run.startedAt ?? now();
    // A cancel on another node ends the run in the store and stores its exit: the guest stops here
    // when this node hears it (the lease renewal finds it too, later). The store decides, not the
    // notice: a NOTIFY anyone on the database could send must not end a run.
    const stopIfEnded = (): void => {
      store.getRun(run.tenantId, run.id).then((r) => {
        if (!r || r.state !== 'running' || r.attempts !== run.attempts) entry.abort.abort();
      }, () => {});
    };
    // Not for the run's own exit (the guest already ended): that would cost a read and an abort per run.
    const unfollow = await events.subscribe(run.id, (n) => { if (n !== 'resync' && n.type === 'exit' && !entry.over) stopIfEnded(); })
      .catch((e: unknown) => { log.warn({ err: e, run: run.id }, 'cannot follow the run\'s events: a cancel on another node stops it at the next lease renewal'); return () => {}; });
    metrics.queueSeconds.observe(Math.max(0, t0 - run.createdAt) / 1000);
    // Its `attempt` and `running` status events were stored with the claim (startEvents).
    log.info({ tenant: run.tenantId, run: run.id, module: run.moduleId, attempt: run.attempts }, 'run started');

    try {
      await runOnHost(entry, run);
    } catch (e) {
      // The store or the scheduler failed (not the guest): end the run rather than leave it running.
      log.error({ err: e, tenant: run.tenantId, run: run.id }, 'run failed in the scheduler');
      await finish(run, syntheticResult('host_error', 'host', `The service failed to run it: ${(e as Error)?.message ?? String(e)}`), 0, run.attempts);
    } finally {
      unfollow();
    }
  };

  const runOnHost = async (entry: InFlight, run: RunRecord): Promise<void> => {
    let fields;
    let learn;
    try {
      ({ fields, learn } = decodeRequest(run.request));
    } catch (e) {
      await finish(run, syntheticResult('host_error', 'host', `The stored run request cannot be read: ${(e as Error).message}`), 0, run.attempts);
      return;
    }
    // The engine keeps compiled modules by the same sha256 id (a node's local cache); the store's
    // bytes are read only when the engine's cache does not hold it (any more).
    const known = await store.getModule(run.tenantId, run.moduleId);
    const bytes = !known ? undefined : host.has(run.moduleId) ? run.moduleId : await store.moduleBytes(run.tenantId, run.moduleId);
    if (!bytes) {
      await finish(run, syntheticResult('invalid_module', 'guest', `Module ${run.moduleId} was deleted before the run started`), 0, run.attempts);
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
      // A run this node lost belongs to another attempt now: its output would be stamped with that one.
      if (entry.lost) return;
      void emit(run.id, p.type, toText(p.chunks.length === 1 ? p.chunks[0]! : Buffer.concat(p.chunks)));
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
        else if (ev.type === 'audit') { flush(); void emit(run.id, 'audit', ev.event); } else result = ev.result;
      }
    } catch (e) {
      failure = e;
    } finally {
      metrics.busyMs += performance.now() - t1;
      entry.over = true;
    }
    flush();
    if (entry.lost) return;
    if (entry.requeue) {
      await requeue(run, 'the service stopped while the run was running', run.attempts);
      return;
    }
    if (result) {
      metrics.runSeconds.observe(result.usage.wallMs / 1000);
      await finish(run, storedResult(result, learn), result.usage.cpuMs, run.attempts);
      return;
    }
    // host.start refuses a request only when it is malformed (LimitError: above the host's maxima).
    const guest = failure instanceof LimitError || failure instanceof TypeError;
    await finish(run, syntheticResult('host_error', guest ? 'guest' : 'host', `The host refused the run: ${(failure as Error)?.message ?? String(failure)}`), 0, run.attempts);
  };

  /** Recounts the cluster's queue (metrics, the global bound); errors leave the last count. */
  const recount = async (): Promise<void> => {
    const c = await store.runCounts();
    depth = { queued: c.queued, tenantsWaiting: c.tenantsWaiting };
  };

  /** The backstop: leases renewed and expired, a claim in case a wake-up was missed, the queue recounted. */
  const tick = (what: () => Promise<void>, why: string) => (): void => {
    what().catch((e: unknown) => log.warn({ err: e }, why));
  };

  return {
    quotas,
    quotasFor,
    nodeId,
    events,
    submit(_tenantId, _runId) {
      pump();
    },
    async create(input, tenant) {
      if (stopping) throw new ApiError(503, 'shutting_down', 'The service is shutting down; retry shortly', undefined, 5);
      // The global bound is a safety valve, not a quota: counted across the cluster, but not under a lock.
      if (depth.queued + 1 > quotas.globalQueuedRuns) await recount();
      if (depth.queued + 1 > quotas.globalQueuedRuns) {
        throw new ApiError(503, 'queue_full', `The run queue is full (${quotas.globalQueuedRuns} runs waiting); retry later`, undefined, 5);
      }
      // Read at each creation, so a quota an administrator sets holds at once.
      const own = tenant ?? await store.getTenant(input.tenantId);
      const q = own ? quotasFor(own) : quotas;
      const t = now();
      const since = utcMidnight(t);
      // Read from the day's cache first: a tenant over its CPU budget costs no transaction.
      const usedMs = await cpuUsedToday(input.tenantId, since);
      const cpuLimitMs = q.cpuSecondsPerDay * 1000;
      const cpuRefusal = (used: number) => new ApiError(429, 'quota_exceeded', `Your runs used ${Math.round(used / 1000)} CPU seconds today (UTC); the daily quota is ${q.cpuSecondsPerDay}`,
        { quota: 'cpuSecondsPerDay', limit: q.cpuSecondsPerDay, used: used / 1000 }, (since + 86_400_000 - t) / 1000);
      if (usedMs >= cpuLimitMs) throw cpuRefusal(usedMs);
      let run: RunRecord;
      try {
        run = await store.createRun(input, { queuedRuns: q.queuedRuns, cpuMs: cpuLimitMs, since });
      } catch (e) {
        if (!(e instanceof QuotaError)) throw e;
        if (e.quota === 'cpuMs') {
          const day = cpuToday.get(input.tenantId);
          if (day && day.since === since) day.usedMs = Math.max(day.usedMs, e.used);
          throw cpuRefusal(e.used);
        }
        throw new ApiError(429, 'quota_exceeded', `You have ${e.used} queued runs; the quota is ${q.queuedRuns}. Wait for some to finish`,
          { quota: 'queuedRuns', limit: q.queuedRuns, used: e.used }, 5);
      }
      metrics.submitted++;
      depth.queued++;
      pump();
      return run;
    },
    async cancel(tenantId, runId) {
      const rec = await store.getRun(tenantId, runId);
      if (!rec) return undefined;
      const entry = inFlight.get(runId);
      if (rec.state === 'running' && entry && !entry.lost) {
        entry.abort.abort();
        return { run: rec, outcome: 'cancelling' };
      }
      if (rec.state === 'queued' || rec.state === 'running') {
        // Queued, or running on another node, which stops its guest when it hears the exit event
        // stored here (or finds the run ended when it renews its lease): the first end wins,
        // whoever writes it. A running run's result keeps what it wrote so far.
        const elsewhere = rec.state === 'running' && rec.nodeId !== null && rec.nodeId !== nodeId;
        const out = rec.state === 'running' ? outputSoFar(await store.events(rec.id, 0), rec.attempts) : undefined;
        await finish(rec, {
          ...syntheticResult('cancelled', 'guest', rec.state === 'queued' ? 'Cancelled before it started' : elsewhere ? `Cancelled while it ran on node ${rec.nodeId}` : 'Cancelled'),
          ...(out ? { stdout: b64(out.stdout), stderr: b64(out.stderr) } : {}),
        }, 0);
        return { run: await store.getRun(tenantId, runId) ?? rec, outcome: 'cancelled' };
      }
      return { run: rec, outcome: 'finished' };
    },
    async start() {
      if (started) return;
      started = true;
      stopping = false;
      if (options.exclusive) {
        for (const run of await store.runsInState('running')) await requeue(run, 'the service restarted while the run was running');
      }
      watch = await store.watchQueue(() => { setImmediate(pump); });
      await Promise.all([expire(), recount()]);
      timers = [
        setInterval(tick(renew, 'cannot renew the leases of this node\'s runs'), leaseMs / 3),
        setInterval(tick(async () => { await expire(); await recount(); pump(); }, 'cannot poll the queue'), pollMs),
      ];
      for (const t of timers) t.unref?.();
      log.info({ node: nodeId, queued: depth.queued, concurrency, leaseMs }, 'scheduler started');
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
      for (const t of timers) clearInterval(t);
      timers = [];
      await watch?.close();
      watch = undefined;
      started = false;
    },
    stats: () => ({ queued: depth.queued, running: inFlight.size, concurrency, tenantsWaiting: depth.tenantsWaiting, stopping }),
    metrics: () => metrics,
  };
}

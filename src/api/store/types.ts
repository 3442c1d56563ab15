/**
 * The service's store, small enough that a PostgreSQL implementation can follow the SQLite one.
 * Every read that takes a tenant id answers only that tenant's rows: another tenant's id is
 * "not found", never the row.
 *
 * A caller's mistake (a taken tenant name, a cursor the store did not issue, a run naming a module
 * its tenant lacks) throws a `StoreError` with a `code` to map to 409/400/404; anything else thrown
 * is a host error.
 */
export { QuotaError, StoreError, type StoreErrorCode } from './errors.js';

/** A tenant of the service. */
export interface Tenant {
  id: string;
  name: string;
  createdAt: number;
  /** The tenant's policy (YAML, the manifest vocabulary), or null for the service's default. */
  policy: string | null;
  /** The tenant's own quotas and retention; a field left out takes the service's. */
  quotas: TenantQuotas;
}

/** Per-tenant overrides of the service's quotas (see Quotas in ../scheduler.ts) and of its retention. */
export interface TenantQuotas {
  concurrentRuns?: number;
  queuedRuns?: number;
  moduleStorageBytes?: number;
  cpuSecondsPerDay?: number;
  /** Finished runs (and modules no run references) older than this are pruned; 0 keeps them forever. */
  retainSeconds?: number;
}

/** One webhook delivery of a run's end (`callback_url`), with its attempts so far. */
export interface DeliveryRecord {
  /** "whd_<random>" */
  id: string;
  runId: string;
  tenantId: string;
  url: string;
  /** pending: an attempt is due at nextAt; delivered: a 2xx came back; failed: retries ran out or the target was refused. */
  state: 'pending' | 'delivered' | 'failed';
  attempts: number;
  /** The HTTP status of the last attempt, or null when it got no answer. */
  lastStatus: number | null;
  /** Why the last attempt failed, or null. */
  lastError: string | null;
  nextAt: number | null;
  createdAt: number;
  updatedAt: number;
}

/** An API key; the key itself is shown once, only its hash is stored. */
export interface ApiKeyRecord {
  id: string;
  tenantId: string;
  createdAt: number;
  revokedAt: number | null;
}

/** A module a tenant uploaded, content-addressed. */
export interface ModuleRecord {
  /** "sha256:<hex>" */
  id: string;
  tenantId: string;
  size: number;
  /** "module.name" of each import. */
  imports: string[];
  createdAt: number;
}

/** Where a run is. The terminal states are the engine's RunStatus values plus `interrupted`. */
export type RunState = 'queued' | 'running' | 'exited' | 'trapped' | 'timeout' | 'memory_limit' | 'output_limit'
  | 'cancelled' | 'invalid_module' | 'host_error' | 'interrupted';

/** A run, persisted before it is acknowledged. */
export interface RunRecord {
  /** "run_<random>" */
  id: string;
  tenantId: string;
  moduleId: string;
  state: RunState;
  /** The run request as JSON text (effective manifest, stdin and files base64), what the scheduler needs to start it. */
  request: string;
  /** The engine's result as JSON text (stdout/stderr base64), once the run ended. */
  result: string | null;
  createdAt: number;
  startedAt: number | null;
  finishedAt: number | null;
  /** How many times a worker started it (restarts retry a run at most once). */
  attempts: number;
  /** CPU milliseconds it used, for the per-day quota. */
  cpuMs: number;
  /** The node that started its latest attempt (`capsa serve`'s node id), null before it started. */
  nodeId: string | null;
}

/** The quotas `createRun` checks under the tenant's row lock (two nodes cannot both pass the last slot). */
export interface RunQuota {
  /** The tenant's runs waiting, at most (the new one included). */
  queuedRuns: number;
  /** CPU milliseconds of the tenant's runs finished since `since`; the run is refused once they reach it. */
  cpuMs: number;
  /** A UTC day start (the counters are per day; StoreError 'invalid' otherwise): today's, for the daily quota. */
  since: number;
}

/** What `claimRuns` takes: who claims, how many, for how long, under which per-tenant bound. */
export interface ClaimOptions {
  /** The claiming node's id (kept on the run as `nodeId`). */
  node: string;
  /** Runs to claim at most (the node's free workers). */
  max: number;
  /** The lease: the run is this node's until its start + leaseMs, unless renewed (renewLeases). */
  leaseMs: number;
  /** A tenant's runs running at once across all nodes, at most: the service's bound, for tenants with no concurrentRuns quota of their own (setQuotas). */
  concurrentRuns: number;
  /** The events each claimed run starts with (its `running` status), written in the claim's transaction. */
  events?: (run: RunRecord) => EventDraft[];
}

/** An event a change of a run's state writes in its own transaction (see StateWrites). */
export interface EventDraft {
  type: RunEventRecord['type'];
  /** JSON text. */
  data: string;
}

/**
 * What a run's change of state writes in the same transaction, so that a reader never sees the
 * state without them: its events (appended after the run's earlier ones, stamped with the attempt
 * the run is on, announced like appendEvent's), and, when the run ends, its webhook delivery.
 */
export interface StateWrites {
  events?: EventDraft[];
  /** The delivery of the run's end to its callback_url (pending, due at nextAt; or failed). */
  delivery?: DeliveryRecord;
}

/** One attempt of a run a node holds: the guard of renewals, requeues and ends. */
export interface HeldRun {
  id: string;
  attempt: number;
}

/** One event of a run, for SSE; `seq` orders them and resumes a stream (Last-Event-ID). */
export interface RunEventRecord {
  runId: string;
  seq: number;
  /** `attempt` opens a retry: what earlier attempts wrote is not part of the run's result. */
  type: 'status' | 'attempt' | 'stdout' | 'stderr' | 'audit' | 'exit';
  /** JSON text. */
  data: string;
  at: number;
  /** The attempt of the run it belongs to: the run's `attempts` when it was appended (0 before the first start). */
  attempt: number;
}

/** A stored event as a store announces it: listeners read the event itself with `events()`. */
export interface EventNotice {
  runId: string;
  seq: number;
  type: RunEventRecord['type'];
}

/**
 * Told of each event a store appends; 'resync' when notices may have been lost (the PostgreSQL
 * LISTEN connection dropped and was made again): re-read what you follow.
 */
export type EventWatcher = (notice: EventNotice | 'resync') => void;

/** A page of a listing. */
export interface Page<T> {
  items: T[];
  /**
   * Pass as `cursor` for the next page; absent on the last one. Opaque (keyset on createdAt, id;
   * newest first), so items added meanwhile are neither repeated nor skipped. A cursor the store did
   * not issue throws StoreError 'invalid'. Listings return at most 100 items a page whatever `limit` says.
   */
  next?: string;
}

/**
 * The store's operations, all asynchronous: the SQLite store answers at once (better-sqlite3 is
 * synchronous), the PostgreSQL one over the network. Callers must not assume two calls on one run
 * complete in order unless the second is started after the first resolved.
 */
export interface Store {
  createTenant(name: string): Promise<Tenant>;
  getTenant(id: string): Promise<Tenant | undefined>;
  findTenantByName(name: string): Promise<Tenant | undefined>;
  listTenants(): Promise<Tenant[]>;
  setPolicy(tenantId: string, policy: string | null): Promise<void>;
  /** Replaces the tenant's quotas (an empty object: the service's for all). */
  setQuotas(tenantId: string, quotas: TenantQuotas): Promise<void>;
  /** The tenant's webhook signing secret, made on first use; `rotate` replaces it. Never part of a Tenant. */
  webhookSecret(tenantId: string, rotate?: boolean): Promise<string>;

  /** Makes a key and returns it once (only its hash is kept). */
  createKey(tenantId: string): Promise<{ key: string; record: ApiKeyRecord }>;
  /** The tenant a presented key belongs to, compared in constant time; undefined if unknown or revoked. */
  authenticate(key: string): Promise<Tenant | undefined>;
  listKeys(tenantId: string): Promise<ApiKeyRecord[]>;
  revokeKey(tenantId: string, keyId: string): Promise<boolean>;

  /** Stores a module's bytes under the data dir (by sha256) and its record for the tenant; idempotent. */
  putModule(tenantId: string, bytes: Uint8Array, imports: string[]): Promise<{ record: ModuleRecord; created: boolean }>;
  getModule(tenantId: string, id: string): Promise<ModuleRecord | undefined>;
  listModules(tenantId: string, opts: { cursor?: string; limit: number }): Promise<Page<ModuleRecord>>;
  deleteModule(tenantId: string, id: string): Promise<boolean>;
  /** The bytes of a module the tenant has. */
  moduleBytes(tenantId: string, id: string): Promise<Uint8Array | undefined>;
  /** Bytes of modules the tenant holds, for its storage quota. */
  moduleStorage(tenantId: string): Promise<number>;

  /**
   * Persists a queued run. The caller makes the id (`newRunId()` in ./ids.ts). Throws StoreError
   * 'not_found' unless `run.tenantId` holds `run.moduleId` (module bytes are shared between tenants,
   * so a run must never name a module by hash alone). With `quota`, the checks run in the same
   * transaction under the tenant's row lock and a refusal throws QuotaError (nothing is stored).
   * Wakes the queue's watchers (watchQueue) once committed.
   */
  createRun(run: Omit<RunRecord, 'state' | 'result' | 'startedAt' | 'finishedAt' | 'attempts' | 'cpuMs' | 'nodeId'>, quota?: RunQuota): Promise<RunRecord>;
  getRun(tenantId: string, id: string): Promise<RunRecord | undefined>;
  listRuns(tenantId: string, opts: { state?: RunState; cursor?: string; limit: number }): Promise<Page<RunRecord>>;
  /**
   * Marks one queued run running (attempts + 1) on `nodeId`, outside the queue's order and quota, with
   * no lease (any node's expireLeases recovers it); false when it was not queued. Tools and tests: the
   * scheduler claims with claimRuns.
   */
  startRun(id: string, at: number, nodeId?: string): Promise<boolean>;
  /**
   * Claims up to `max` queued runs for `node`, in one transaction: each time the tenant with queued
   * runs that is below its own concurrentRuns quota (else `concurrentRuns`) and was served longest
   * ago (then the one whose oldest queued run waited longest) gives its oldest queued run, which
   * becomes `running` (attempts + 1) with the node and a lease. The tenant's row lock makes the
   * concurrency bound exact across nodes (every transition to running takes it); on PostgreSQL
   * tenants and runs locked by another claimer are skipped, not waited for. A run's `startedAt` (and
   * its lease's start) is the store's clock once its tenant's count was read, so it is never before
   * the end of a run whose slot it took.
   */
  claimRuns(o: ClaimOptions): Promise<RunRecord[]>;
  /**
   * Extends the leases of the runs `node` holds, each guarded by its attempt; returns the ids still
   * held (a run missing from the answer ended, was cancelled or requeued elsewhere: stop running it).
   */
  renewLeases(node: string, runs: HeldRun[], leaseMs: number, at: number): Promise<string[]>;
  /**
   * Applies the restart rule (requeueRun) to every running run whose lease ended before `at` (a run
   * with no lease counts as expired); returns those runs as they are now (queued, or interrupted).
   * `writes` gives what each one's change writes with it, in the same transaction (requeueRun).
   */
  expireLeases(at: number, writes?: (after: RunRecord) => StateWrites): Promise<RunRecord[]>;
  /**
   * Records the end of a run (terminal state, result JSON, CPU ms) and, in the same transaction,
   * `writes` (its `status` and `exit` events, its webhook delivery): once this resolves true they
   * are stored, and a call that resolves false wrote nothing. Only a queued or running run ends: the
   * first terminal state wins, and the answer says whether this call was it (false when the run had
   * already ended, e.g. a worker's exit racing a cancel, or another attempt holds it).
   */
  finishRun(id: string, state: RunState, result: string, at: number, cpuMs: number, attempt?: number, writes?: StateWrites): Promise<boolean>;
  /**
   * Puts a running run back in the queue (restart rule), or ends it `interrupted`: a run that ran
   * once (attempts < 2) is queued again; one whose retry was cut off too ends `interrupted` (blame
   * host). Runs in other states are left alone, and so is a run on another attempt than `attempt`
   * when given. `writes(after)` is written in the same transaction, so its events belong to the
   * attempt that was cut off (no node can claim the retry before they are stored). Returns the run
   * as it is now when this call changed it.
   */
  requeueRun(id: string, attempt?: number, writes?: (after: RunRecord) => StateWrites): Promise<RunRecord | undefined>;
  /** Runs in a state, oldest first, across tenants (the scheduler and restart recovery). */
  runsInState(state: 'queued' | 'running'): Promise<RunRecord[]>;
  /** Counts of a tenant's runs in a state (quotas). */
  countRuns(tenantId: string, state: 'queued' | 'running'): Promise<number>;
  /** Runs queued and running across all tenants, and tenants with queued runs: the cluster's queue. */
  runCounts(): Promise<{ queued: number; running: number; tenantsWaiting: number }>;
  /**
   * Calls `listener` whenever runs may have been queued (createRun, a requeue) by any process
   * sharing the store, and after a lost notification channel was made again: PostgreSQL LISTENs on
   * `capsa_queue` on a connection of its own; SQLite (one process per data dir) calls it in-process.
   */
  watchQueue(listener: () => void): Promise<{ close(): Promise<void> }>;
  /**
   * CPU milliseconds of the tenant's runs finished on the UTC days from the one starting at `since`
   * (the per-day quota), read from per-day counters that finishRun adds to: `since` must be a UTC day
   * start (StoreError 'invalid' otherwise), and days before the last few go with pruneTenant.
   */
  cpuUsedSince(tenantId: string, since: number): Promise<number>;

  /** Appends an event to the run's attempt in progress (its `attempts`). */
  appendEvent(runId: string, type: RunEventRecord['type'], data: string): Promise<RunEventRecord>;
  /**
   * Events of a run after `afterSeq` (SSE resume), in seq order. Like startRun/finishRun this takes
   * a bare run id: the API must first check the run is the tenant's with getRun(tenantId, id).
   */
  events(runId: string, afterSeq: number): Promise<RunEventRecord[]>;
  /**
   * Calls `watcher` for each event appended from now on by any process sharing the store: on
   * PostgreSQL, appendEvent NOTIFYs `capsa_events` with '<run>:<seq>:<type>' in its own transaction
   * and each call holds one LISTEN connection (made again when lost, then 'resync'); on SQLite (one
   * process per data dir) the store's own appends. Resolves once listening.
   */
  watchEvents(watcher: EventWatcher): Promise<{ close(): Promise<void> }>;

  /** Resolves when the database answers a trivial query (/healthz); rejects when it cannot be reached. */
  ping(): Promise<void>;

  /**
   * Retention: deletes up to `limit` of the tenant's runs that ended before `before` (with their
   * events and webhook deliveries), oldest first, then up to `limit` of its modules uploaded before
   * `before` that none of its runs references (the bytes go with their last reference). Queued and
   * running runs are never touched. Returns how many of each it deleted (fewer than `limit`: done).
   */
  pruneTenant(tenantId: string, before: number, limit: number): Promise<{ runs: number; modules: number }>;

  /** Inserts or replaces a webhook delivery (by id). Throws StoreError 'not_found' for an unknown run. */
  putDelivery(d: DeliveryRecord): Promise<void>;
  /** A run's deliveries, oldest first (the API checks the run is the tenant's first). */
  listDeliveries(runId: string): Promise<DeliveryRecord[]>;
  /**
   * Claims up to `max` pending deliveries due by `at` (soonest first) that no live lease holds, for
   * `node` until `at + leaseMs`: each one's `attempts` grows by one (the attempt the claimer makes).
   * Two nodes never hold one delivery (PostgreSQL: FOR UPDATE SKIP LOCKED; SQLite: one writer); a
   * delivery whose claimer died is claimed again once its lease ended.
   */
  claimDeliveries(node: string, max: number, leaseMs: number, at: number): Promise<DeliveryRecord[]>;
  /**
   * Records the outcome of the attempt `d.attempts` that `node` claimed (state, status, error,
   * nextAt, updatedAt) and lets the claim go; false, recording nothing, when the node no longer holds
   * that attempt (its lease ended and another node claimed the delivery again).
   */
  settleDelivery(node: string, d: DeliveryRecord): Promise<boolean>;

  close(): Promise<void>;
}

import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { AuditEvent } from './result.js';
import { PHASE_INSTANTIATING, type FromWorker, type GuestSpec, type ToWorker, type WorkerData, type WorkerOutcome } from './worker/protocol.js';
import { createRing, RecordKind, RingReader } from './worker/output-ring.js';
import { ThreadClock } from './worker/thread-cpu.js';

// Built code runs the compiled worker; from the sources (tests, tsx) the worker registers tsx first.
const FROM_SOURCE = import.meta.url.endsWith('.ts');
const WORKER_URL = new URL(FROM_SOURCE ? './worker/guest-worker.ts' : './worker/guest-worker.js', import.meta.url);

/** Starts a worker thread on `url` (the guest worker by default), registering tsx first when running from the sources. */
export function newWorker(options: import('node:worker_threads').WorkerOptions, url: URL = WORKER_URL): Worker {
  if (!FROM_SOURCE) return new Worker(url, options);
  // Resolved here, not in the worker: a bare specifier there would resolve from the process's cwd.
  // (require.resolve would pick tsx's CommonJS build, which cannot be imported from a worker.)
  const pkg = createRequire(import.meta.url).resolve('tsx/package.json');
  const tsx = pathToFileURL(path.join(path.dirname(pkg), 'dist/esm/api/index.mjs')).href;
  const boot = `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(url.href)}); })`;
  return new Worker(boot, { ...options, eval: true });
}

/** One run handed to the pool. */
export interface Job {
  module: WebAssembly.Module;
  spec: GuestSpec;
  /** The bridge channel for host functions, if the guest imports any. */
  bridge?: SharedArrayBuffer | undefined;
  signal?: AbortSignal | undefined;
  /** CPU time (ms) the host thread spent on this run's behalf (its Casper requests): counts against its CPU limit. */
  hostCpuMs?: (() => number) | undefined;
  onOutput(fd: 1 | 2, data: Uint8Array): void;
  onAudit(events: AuditEvent[]): void;
  onStart?(): void;
}

/** How the pool finished a job: the worker's own verdict, or the reason the pool stopped it. */
export type JobEnd =
  | { kind: 'done'; outcome: WorkerOutcome; wallMs: number; cpuMs: number }
  | { kind: 'stopped'; reason: 'wall' | 'cpu' | 'cancelled' | 'crashed' | 'module_heap'; message: string; wallMs: number; cpuMs: number };

/** Thrown by submit when the queue is full. */
export class QueueFullError extends Error {
  readonly code = 'queue_full';
  constructor(max: number) {
    super(`Cannot queue the run: ${max} runs are already waiting; retry later or raise the queue bound (maxQueue)`);
  }
}

interface Pending { job: Job; resolve(end: JobEnd): void; onAbort?: () => void }

const decoder = new TextDecoder();

class Slot {
  worker: Worker;
  clock: ThreadClock | undefined;
  isReady = false;
  ready: Promise<void>;
  current: (Pending & { id: number; t0: number; cpu0: bigint | undefined; timer: NodeJS.Timeout }) | undefined;
  /** The worker's run id and phase (see WorkerData.phase). */
  private readonly phase: Int32Array;
  /** The worker's output ring: what its runs wrote, in shared memory that outlives the worker. */
  readonly output: RingReader;
  constructor(readonly pool: Pool) {
    const ring = createRing();
    const phase = new SharedArrayBuffer(8);
    this.phase = new Int32Array(phase);
    const workerData: WorkerData = { ring, phase };
    this.worker = newWorker({
      // Guests' linear memory lies outside the V8 heap; these bound what the worker's own JS may use.
      resourceLimits: { maxOldGenerationSizeMb: pool.options.workerHeapMb, maxYoungGenerationSizeMb: 16, stackSizeMb: 4 },
      stdout: false, stderr: false, workerData,
    });
    this.output = new RingReader(ring);
    this.output.watch(() => this.drain());
    this.worker.unref();
    this.ready = new Promise<void>((resolve, reject) => {
      const onMsg = (m: FromWorker) => {
        if (m.type === 'ready') {
          if (m.tid !== undefined) this.clock = new ThreadClock(m.tid);
          this.isReady = true;
          this.worker.off('error', reject);
          resolve();
          pool.dispatch();
        }
      };
      this.worker.once('message', onMsg);
      this.worker.once('error', reject);
    });
    this.ready.catch(() => {});
    this.worker.on('message', (m: FromWorker) => this.onMessage(m));
    this.worker.on('error', (e) => {
      if ((e as NodeJS.ErrnoException).code === 'ERR_WORKER_OUT_OF_MEMORY' && this.instantiating()) {
        this.pool.stopForModuleHeap(this, pool.options.workerHeapMb);
      } else this.pool.lost(this, `the worker failed: ${e.message}`);
    });
    this.worker.on('exit', (code) => this.pool.lost(this, `the worker exited with code ${code}`));
  }
  cpuNs(): bigint | undefined {
    return this.clock?.ns();
  }
  /** Whether the worker is instantiating the current run's module (its own code has not started). */
  instantiating(): boolean {
    return this.current !== undefined && Atomics.load(this.phase, 0) === this.current.id && Atomics.load(this.phase, 1) === PHASE_INSTANTIATING;
  }
  /** Hands what the worker committed to its ring so far to the current run (in order). */
  drain(): void {
    const job = this.current?.job;
    let audits: AuditEvent[] = [];
    this.output.drain((kind, bytes) => {
      if (!job) return;
      if (kind === RecordKind.audit) { audits.push(JSON.parse(decoder.decode(bytes)) as AuditEvent); return; }
      if (audits.length) { job.onAudit(audits); audits = []; }
      job.onOutput(kind, bytes);
    });
    if (job && audits.length) job.onAudit(audits);
  }
  private onMessage(m: FromWorker): void {
    const cur = this.current;
    if (m.type === 'ready' || !cur || m.id !== cur.id) return;
    // The worker committed everything before it said done.
    this.drain();
    this.pool.finish(this, { kind: 'done', outcome: m.outcome, ...this.pool.usage(this) });
  }
}

/** Options of the worker pool. */
export interface PoolOptions {
  /** Worker threads, each running one guest at a time (default: one per core). */
  size: number;
  /** Runs that may wait for a worker; past it submit throws QueueFullError. */
  maxQueue: number;
  /** Per-worker V8 heap cap in MiB. */
  workerHeapMb: number;
}

/**
 * A pool of pre-warmed guest workers. The main thread only dispatches, watches the clocks and
 * collects; a worker that must be stopped is terminated and replaced, never reused.
 */
export class Pool {
  readonly options: PoolOptions;
  private slots: Slot[] = [];
  private queue: Pending[] = [];
  private nextId = 1;
  private cpuTimer: NodeJS.Timeout | undefined;
  private closed = false;
  /** Workers started over the pool's life, replacements included. */
  spawned = 0;

  constructor(options: Partial<PoolOptions> = {}) {
    this.options = {
      size: options.size ?? Math.max(1, os.availableParallelism?.() ?? os.cpus().length),
      maxQueue: options.maxQueue ?? 1000,
      workerHeapMb: options.workerHeapMb ?? 64,
    };
  }

  /** Starts the workers and waits until each can take a run. */
  async start(): Promise<void> {
    for (let i = 0; i < this.options.size; i++) this.slots.push(this.spawn());
    await Promise.all(this.slots.map((s) => s.ready));
  }

  private spawn(): Slot {
    this.spawned++;
    return new Slot(this);
  }

  /** Queues a job; resolves when it ends, however it ends. */
  submit(job: Job): Promise<JobEnd> {
    if (this.closed) return Promise.reject(new Error('Cannot run: the host is closed'));
    if (this.queue.length >= this.options.maxQueue && !this.slots.some((s) => !s.current)) {
      return Promise.reject(new QueueFullError(this.options.maxQueue));
    }
    return new Promise<JobEnd>((resolve) => {
      const p: Pending = { job, resolve };
      if (job.signal) {
        if (job.signal.aborted) return resolve({ kind: 'stopped', reason: 'cancelled', message: 'the run was cancelled before it started', wallMs: 0, cpuMs: 0 });
        p.onAbort = () => this.cancel(p);
        job.signal.addEventListener('abort', p.onAbort, { once: true });
      }
      this.queue.push(p);
      this.dispatch();
    });
  }

  /** Hands queued runs to idle, ready workers. */
  dispatch(): void {
    for (const slot of this.slots) {
      if (this.queue.length === 0) return;
      if (slot.current || !slot.isReady) continue;
      const p = this.queue.shift()!;
      const id = this.nextId++;
      const limits = p.job.spec.limits;
      const timer = setTimeout(() => this.stop(slot, 'wall', `the run exceeded its wall-clock limit of ${limits.wallMs} ms`), limits.wallMs);
      slot.current = { ...p, id, t0: performance.now(), cpu0: slot.cpuNs(), timer };
      p.job.onStart?.();
      const msg: ToWorker = { type: 'run', id, module: p.job.module, spec: p.job.spec, ...(p.job.bridge ? { bridge: p.job.bridge } : {}) };
      slot.worker.postMessage(msg);
      this.watchCpu();
    }
  }

  // One timer samples every busy worker's thread CPU time while anything runs.
  private watchCpu(): void {
    if (this.cpuTimer) return;
    this.cpuTimer = setInterval(() => {
      let busy = false;
      for (const s of this.slots) {
        const cur = s.current;
        if (!cur) continue;
        busy = true;
        if (this.usage(s).cpuMs > cur.job.spec.limits.cpuMs) {
          this.stop(s, 'cpu', `the run exceeded its CPU limit of ${cur.job.spec.limits.cpuMs} ms`);
        }
      }
      if (!busy) { clearInterval(this.cpuTimer); this.cpuTimer = undefined; }
    }, 10);
    this.cpuTimer.unref();
  }

  /** Wall and CPU time of the slot's current run so far: its worker's, plus the host thread's on its behalf. */
  usage(slot: Slot): { wallMs: number; cpuMs: number } {
    const cur = slot.current;
    if (!cur) return { wallMs: 0, cpuMs: 0 };
    const now = slot.cpuNs();
    const cpuMs = (now !== undefined && cur.cpu0 !== undefined ? Number(now - cur.cpu0) / 1e6 : 0) + (cur.job.hostCpuMs?.() ?? 0);
    return { wallMs: performance.now() - cur.t0, cpuMs };
  }

  /** Ends the slot's current run with `end` and frees the slot. */
  finish(slot: Slot, end: JobEnd): void {
    const cur = slot.current;
    if (!cur) return;
    slot.current = undefined;
    clearTimeout(cur.timer);
    if (cur.onAbort) cur.job.signal?.removeEventListener('abort', cur.onAbort);
    cur.resolve(end);
    this.dispatch();
  }

  /** Terminates the slot's worker to stop its run, and replaces the worker. */
  private stop(slot: Slot, reason: Exclude<JobEnd, { kind: 'done' }>['reason'], message: string): void {
    if (!slot.current) return;
    const usage = this.usage(slot);
    // Every write the guest made before this moment is in the ring, whatever state its thread is in.
    slot.drain();
    this.replace(slot);
    this.finish(slot, { kind: 'stopped', reason, message, ...usage });
  }

  private replace(slot: Slot): void {
    const i = this.slots.indexOf(slot);
    if (i < 0) return;
    slot.worker.removeAllListeners('exit');
    slot.worker.removeAllListeners('error');
    slot.worker.on('error', () => {});
    slot.output.close();
    slot.clock?.close();
    void slot.worker.terminate();
    if (!this.closed) this.slots[i] = this.spawn();
    else this.slots.splice(i, 1);
  }

  /** The worker's heap ran out while it instantiated the module: what the module declares did not fit. */
  stopForModuleHeap(slot: Slot, heapMb: number): void {
    if (!this.slots.includes(slot)) return;
    this.stop(slot, 'module_heap', `the worker's ${heapMb} MiB heap ran out while the module was instantiated (its tables, element segments and start function)`);
  }

  /** A worker died by itself: its run ends blaming the host. */
  lost(slot: Slot, message: string): void {
    if (!this.slots.includes(slot)) return;
    if (slot.current) this.stop(slot, 'crashed', message);
    else this.replace(slot);
  }

  private cancel(p: Pending): void {
    const qi = this.queue.indexOf(p);
    if (qi >= 0) {
      this.queue.splice(qi, 1);
      p.resolve({ kind: 'stopped', reason: 'cancelled', message: 'the run was cancelled before it started', wallMs: 0, cpuMs: 0 });
      return;
    }
    const slot = this.slots.find((s) => s.current?.resolve === p.resolve);
    if (slot) this.stop(slot, 'cancelled', 'the run was cancelled');
  }

  /** Counts for health checks and metrics. */
  stats(): { workers: number; busy: number; queued: number; spawned: number } {
    return { workers: this.slots.length, busy: this.slots.filter((s) => s.current).length, queued: this.queue.length, spawned: this.spawned };
  }

  /** The worker threads running a guest right now (for tests that must kill one). */
  busyWorkers(): Worker[] {
    return this.slots.filter((s) => s.current).map((s) => s.worker);
  }

  /** Cancels queued runs, stops running ones, and ends the workers. */
  async close(): Promise<void> {
    this.closed = true;
    for (const p of this.queue.splice(0)) p.resolve({ kind: 'stopped', reason: 'cancelled', message: 'the host closed', wallMs: 0, cpuMs: 0 });
    for (const s of [...this.slots]) {
      if (s.current) this.stop(s, 'cancelled', 'the host closed');
    }
    const slots = this.slots.splice(0);
    await Promise.all(slots.map((s) => { s.worker.removeAllListeners('exit'); s.output.close(); s.clock?.close(); return s.worker.terminate(); }));
    if (this.cpuTimer) clearInterval(this.cpuTimer);
  }
}

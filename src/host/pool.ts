import os from 'node:os';
import type { Worker } from 'node:worker_threads';
import type { AuditEvent, ChildStatus } from './result.js';
import { PHASE_INSTANTIATING, POOL_TICK_MS, type FromWorker, type GuestSpec, type ToWorker, type WorkerOutcome } from './worker/protocol.js';
import { ERRNO } from '../wasi/constants.js';
import { claimPipeHolder, releasePipeHolder } from '../wasi/pipe.js';
import { exitStatus, PROC_ENDED, PROC_PID, PROC_RUNNING, PROC_STATE, PROC_STATUS, signalStatus, SIGNALS } from '../wasi/procdesc.js';
import { RecordKind, RingReader } from './worker/output-ring.js';
import { ThreadClock } from './worker/thread-cpu.js';
import { DEFAULT_WORKER_HEAP_MB, startGuestWorker, takePrestartedWorker } from './worker-launch.js';
import { QueuedPool, QueueFullError, type Pending as QueuePending } from './job-queue.js';

export { newWorker } from './worker-launch.js';

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
export type JobEnd = (
  | { kind: 'done'; outcome: WorkerOutcome; wallMs: number; cpuMs: number }
  | { kind: 'stopped'; reason: 'wall' | 'cpu' | 'cancelled' | 'crashed' | 'module_heap' | 'invalid_module'; message: string; wallMs: number; cpuMs: number }
) & {
  /** The run's child guests (capsicum.pdspawn), as they ended; `cpuMs` above includes theirs. */
  children?: ChildStatus[];
  childrenDropped?: number;
};

export { QueueFullError };

type Pending = QueuePending<Job>;

/** Statuses of ended children a run keeps for its result. */
const MAX_CHILD_STATUSES = 256;

/** A run and its child guests: they share one Waker cell, the run's limits and its output. */
interface Family {
  waker: Int32Array;
  job: Job;
  t0: number;
  childMemoryBytes: number;
  /** Children started and not yet ended, by pid. */
  live: Map<number, Proc>;
  ended: ChildStatus[];
  dropped: number;
  endedCpuMs: number;
}

/** A child guest. */
interface Proc {
  pid: number;
  parentPid: number;
  depth: number;
  family: Family;
  cell: Int32Array;
  /** Pipes passed to it: their holder slots marked with its pid are released when it ends. */
  pipes: SharedArrayBuffer[];
  slot?: Slot;
  /** The signal that ended it (pdkill, close of its descriptor, its parent's end). */
  signal?: number;
  killMessage?: string;
}

/** Who a running job is: its pid, its family, and for a child its Proc. */
interface RunInfo { pid: number; depth: number; family: Family; child?: Proc | undefined }

const decoder = new TextDecoder();

class Slot {
  worker: Worker;
  clock: ThreadClock | undefined;
  isReady = false;
  ready: Promise<void>;
  current: (Pending & { id: number; t0: number; cpu0: bigint | undefined; timer: NodeJS.Timeout; run: RunInfo }) | undefined;
  /** Held for a child about to start on it: dispatch leaves it alone. */
  reserved = false;
  /** The worker's run id and phase (see WorkerData.phase). */
  private readonly phase: Int32Array;
  /** The worker's output ring: what its runs wrote, in shared memory that outlives the worker. */
  readonly output: RingReader;
  constructor(readonly pool: Pool) {
    const heapMb = pool.options.workerHeapMb;
    const started = takePrestartedWorker(heapMb) ?? startGuestWorker(heapMb);
    this.worker = started.worker;
    this.phase = new Int32Array(started.phase);
    this.output = new RingReader(started.ring);
    this.output.watch(() => this.drain());
    this.ready = started.ready.then((tid) => {
      if (tid !== undefined) this.clock = new ThreadClock(tid);
      this.isReady = true;
      pool.dispatch();
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
  /** Ends the worker, its ring and its clock; nothing it does after this reaches the pool. */
  terminate(): Promise<number> {
    this.worker.removeAllListeners('exit');
    this.worker.removeAllListeners('error');
    this.worker.on('error', () => {});
    this.output.close();
    this.clock?.close();
    return this.worker.terminate();
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
    if (m.type === 'spawn') { this.pool.spawnChild(this, m); return; }
    if (m.type === 'ready' || !cur || m.id !== cur.id) return;
    if (m.type === 'kill') { this.pool.killChild(this, m.pid, m.sig); return; }
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
  /** Child guests (capsicum.pdspawn) a run may have alive at once, all generations together (default 8). */
  maxChildren: number;
  /** Generations below a run: 1 lets its guest start children that cannot start their own (default 4). */
  maxDepth: number;
  /** Workers the pool may start beyond `size` for children, over all runs (default 4 × size + 8). */
  maxChildWorkers: number;
}

/**
 * A pool of pre-warmed guest workers. The main thread only dispatches, watches the clocks and
 * collects; a worker that must be stopped is terminated and replaced, never reused.
 */
export class Pool extends QueuedPool<Job> {
  readonly options: PoolOptions;
  private slots: Slot[] = [];
  private nextId = 1;
  private cpuTimer: NodeJS.Timeout | undefined;
  /** Workers started over the pool's life, replacements included. */
  spawned = 0;

  constructor(options: Partial<PoolOptions> = {}) {
    const maxQueue = options.maxQueue ?? 1000;
    super(maxQueue);
    this.options = {
      size: options.size ?? Math.max(1, os.availableParallelism?.() ?? os.cpus().length),
      maxQueue,
      workerHeapMb: options.workerHeapMb ?? DEFAULT_WORKER_HEAP_MB,
      maxChildren: options.maxChildren ?? 8,
      maxDepth: options.maxDepth ?? 4,
      maxChildWorkers: options.maxChildWorkers ?? 0,
    };
    if (!this.options.maxChildWorkers) this.options.maxChildWorkers = 4 * this.options.size + 8;
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

  protected hasIdle(): boolean {
    return this.slots.some((s) => !s.current);
  }

  protected pending(job: Job, resolve: (end: JobEnd) => void): Pending {
    return { job, resolve };
  }

  /** Hands queued runs to idle, ready workers. */
  dispatch(): void {
    for (const slot of this.slots) {
      if (this.queue.length === 0) return;
      if (slot.current || !slot.isReady || slot.reserved) continue;
      const p = this.queue.shift()!;
      const limits = p.job.spec.limits;
      // Each child may grow to memoryBytes / (2 × maxChildren): children together hold at most half
      // of the run's memory on top of the run's own guest.
      const share = Math.floor(limits.memoryBytes / (2 * this.options.maxChildren) / 65536) * 65536;
      const family: Family = {
        // One cell for the whole run tree: the run's own when the host thread wakes it (stdin, sockets).
        waker: p.job.spec.waker ?? new Int32Array(new SharedArrayBuffer(4)), job: p.job, t0: performance.now(),
        childMemoryBytes: Math.max(65536, share), live: new Map(), ended: [], dropped: 0, endedCpuMs: 0,
      };
      this.runOn(slot, p, { pid: this.nextId++, depth: 0, family });
    }
  }

  /** Starts `p` on the idle `slot` as `run`. */
  private runOn(slot: Slot, p: Pending, run: RunInfo): void {
    const id = run.pid;
    const limits = p.job.spec.limits;
    const timer = setTimeout(() => this.stop(slot, 'wall', `the run exceeded its wall-clock limit of ${limits.wallMs} ms`), limits.wallMs);
    slot.current = { ...p, id, t0: performance.now(), cpu0: slot.cpuNs(), timer, run };
    p.job.onStart?.();
    const proc = { pid: id, waker: run.family.waker, childMemoryBytes: run.family.childMemoryBytes };
    const msg: ToWorker = { type: 'run', id, module: p.job.module, spec: p.job.spec, ...(p.job.bridge ? { bridge: p.job.bridge } : {}), proc };
    slot.worker.postMessage(msg);
    this.watchCpu();
  }

  /**
   * A guest asks for a child (capsicum.pdspawn). The answer goes into the request's process cell at
   * once: a pid, or EAGAIN when the run has as many children (or generations) as it may, or the
   * pool as many extra workers. The child runs on an idle worker, or on one started for it.
   */
  spawnChild(slot: Slot, m: Extract<FromWorker, { type: 'spawn' }>): void {
    const answer = (state: number) => { Atomics.store(m.cell, PROC_STATE, state); Atomics.notify(m.cell, PROC_STATE); };
    const cur = slot.current;
    if (!cur || cur.id !== m.id || this.closed) return answer(-ERRNO.AGAIN);
    const family = cur.run.family;
    const depth = cur.run.depth + 1;
    let target = this.slots.find((s) => !s.current && s.isReady && !s.reserved);
    const extra = this.slots.length - this.options.size;
    if (family.live.size >= this.options.maxChildren || depth > this.options.maxDepth || (!target && extra >= this.options.maxChildWorkers)) {
      return answer(-ERRNO.AGAIN);
    }
    const pid = this.nextId++;
    const proc: Proc = { pid, parentPid: cur.id, depth, family, cell: m.cell, pipes: [] };
    for (const f of m.fds) {
      if (f.kind !== 'pipe') continue;
      if (!claimPipeHolder(f.sab, f.side, pid)) {
        for (const sab of proc.pipes) releasePipeHolder(sab, pid);
        return answer(-ERRNO.MFILE);
      }
      proc.pipes.push(f.sab);
    }
    family.live.set(pid, proc);
    Atomics.store(m.cell, PROC_PID, pid);
    answer(PROC_RUNNING);

    const root = family.job.spec;
    const spec: GuestSpec = {
      args: m.argv, env: {}, stdin: undefined, files: {}, dirs: [], passed: m.fds,
      limits: { ...root.limits, memoryBytes: family.childMemoryBytes, wallMs: Math.max(1, Math.ceil(root.limits.wallMs - (performance.now() - family.t0))) },
      audit: root.audit, auditMax: root.auditMax, functions: [], tty: root.tty, stream: root.stream,
      ...(root.stdoutFd !== undefined ? { stdoutFd: root.stdoutFd } : {}),
      ...(root.stderrFd !== undefined ? { stderrFd: root.stderrFd } : {}),
    };
    const job: Job = {
      module: m.module, spec,
      onOutput: (fd, data) => family.job.onOutput(fd, data),
      onAudit: (events) => family.job.onAudit(events.map((e) => ({ ...e, pid }))),
    };
    if (!target) {
      target = this.spawn();
      this.slots.push(target);
    }
    const t = target;
    t.reserved = true;
    proc.slot = t;
    t.ready.then(() => {
      t.reserved = false;
      if (family.live.get(pid) !== proc || !this.slots.includes(t)) { this.retireIfExtra(t); this.dispatch(); return; }
      this.runOn(t, { job, resolve: (end) => this.childEnded(proc, end) }, { pid, depth, family, child: proc });
    }, (e: unknown) => {
      t.reserved = false;
      this.childEnded(proc, { kind: 'stopped', reason: 'crashed', message: `the child's worker failed to start: ${(e as Error).message}`, wallMs: 0, cpuMs: 0 });
    });
  }

  /** The guest on `slot` signals its child `pid` (pdkill, or it closed the process descriptor). */
  killChild(slot: Slot, pid: number, sig: number): void {
    const cur = slot.current;
    const proc = cur?.run.family.live.get(pid);
    if (!proc || proc.parentPid !== cur!.id) return;
    this.endChild(proc, sig, `killed by its parent (signal ${sig})`);
  }

  /** Ends a child that has not ended by itself. */
  private endChild(proc: Proc, sig: number, message: string): void {
    if (proc.family.live.get(proc.pid) !== proc) return;
    proc.signal ??= sig;
    proc.killMessage ??= message;
    const s = proc.slot;
    if (s?.current?.run.child === proc) this.stop(s, 'cancelled', message);
    else this.childEnded(proc, { kind: 'stopped', reason: 'cancelled', message, wallMs: 0, cpuMs: 0 });
  }

  /** Records how a child ended, tells its parent (cell and Waker), and ends its own children. */
  private childEnded(proc: Proc, end: JobEnd): void {
    const family = proc.family;
    if (family.live.get(proc.pid) !== proc) return;
    family.live.delete(proc.pid);
    const usage = { wallMs: end.wallMs, cpuMs: end.kind === 'done' ? end.outcome.cpuNs / 1e6 : end.cpuMs, peakMemoryBytes: end.kind === 'done' ? end.outcome.peakMemoryBytes : 0 };
    const st: ChildStatus = { pid: proc.pid, parentPid: proc.parentPid, status: 'killed', usage };
    let wait: number;
    if (end.kind === 'done') {
      const o = end.outcome;
      st.status = o.status;
      if (o.exitCode !== undefined) st.exitCode = o.exitCode;
      if (o.message !== undefined) st.message = o.message;
      wait = o.status === 'exited' ? exitStatus(o.exitCode ?? 0) : signalStatus(o.status === 'trapped' ? SIGNALS.SIGILL : SIGNALS.SIGKILL);
    } else if (proc.signal !== undefined) {
      st.signal = proc.signal;
      st.message = proc.killMessage ?? end.message;
      wait = signalStatus(proc.signal);
    } else {
      st.status = end.reason === 'crashed' ? 'host_error' : end.reason === 'module_heap' ? 'memory_limit' : end.reason === 'invalid_module' ? 'invalid_module' : end.reason === 'cancelled' ? 'killed' : 'timeout';
      st.message = end.message;
      wait = signalStatus(SIGNALS.SIGKILL);
    }
    family.endedCpuMs += usage.cpuMs;
    if (family.ended.length < MAX_CHILD_STATUSES) family.ended.push(st);
    else family.dropped++;
    for (const sab of proc.pipes) releasePipeHolder(sab, proc.pid);
    Atomics.store(proc.cell, PROC_STATUS, wait);
    Atomics.store(proc.cell, PROC_STATE, PROC_ENDED);
    Atomics.notify(proc.cell, PROC_STATE);
    // A child outlives nothing: its own children end with it.
    for (const c of [...family.live.values()]) if (c.parentPid === proc.pid) this.endChild(c, SIGNALS.SIGKILL, 'its parent ended');
    Atomics.add(family.waker, 0, 1);
    Atomics.notify(family.waker, 0);
  }

  /** CPU time (ms) of a run's children, ended and running. */
  private childrenCpuMs(family: Family): number {
    let ms = family.endedCpuMs;
    for (const c of family.live.values()) if (c.slot?.current?.run.child === c) ms += this.ownUsage(c.slot).cpuMs;
    return ms;
  }

  /** Stops an idle worker started for a child once the pool has more than `size`. */
  private retireIfExtra(slot: Slot): void {
    if (slot.current || slot.reserved || this.slots.length <= this.options.size) return;
    // Above `size`, replace() removes the worker without starting another.
    this.replace(slot);
  }

  // One timer samples every busy worker's thread CPU time while anything runs, and hands on the
  // output its streaming runs wrote without waking this thread (RingWriter.eagerFrom).
  private watchCpu(): void {
    if (this.cpuTimer) return;
    this.cpuTimer = setInterval(() => {
      let busy = false;
      for (const s of [...this.slots]) {
        const cur = s.current;
        if (!cur) continue;
        busy = true;
        if (cur.job.spec.stream) s.drain();
        // A run's limit covers its children: checked on the run, whose usage includes theirs.
        if (cur.run.child) continue;
        if (this.usage(s).cpuMs > cur.job.spec.limits.cpuMs) {
          this.stop(s, 'cpu', `the run exceeded its CPU limit of ${cur.job.spec.limits.cpuMs} ms`);
        }
      }
      if (!busy) { clearInterval(this.cpuTimer); this.cpuTimer = undefined; }
    }, POOL_TICK_MS);
    this.cpuTimer.unref();
  }

  /** Wall and CPU time of the slot's current run so far: its worker's, the host thread's on its behalf, and its children's. */
  usage(slot: Slot): { wallMs: number; cpuMs: number } {
    const own = this.ownUsage(slot);
    const cur = slot.current;
    if (cur && !cur.run.child) own.cpuMs += this.childrenCpuMs(cur.run.family);
    return own;
  }

  private ownUsage(slot: Slot): { wallMs: number; cpuMs: number } {
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
    if (!cur.run.child) {
      // When the run ends, every child ends: none outlives it.
      const family = cur.run.family;
      for (const c of [...family.live.values()]) this.endChild(c, SIGNALS.SIGKILL, 'the run ended');
      if (family.ended.length) {
        end = { ...end, children: family.ended };
        if (family.dropped) end.childrenDropped = family.dropped;
      }
    }
    this.settle(cur, end);
    this.dispatch();
    this.retireIfExtra(slot);
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
    void slot.terminate();
    // A worker started for a child is not replaced while the pool has more than its size.
    if (!this.closed && this.slots.length <= this.options.size) this.slots[i] = this.spawn();
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

  protected cancelRunning(p: Pending): void {
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
    this.closeQueue();
    for (const s of [...this.slots]) {
      if (s.current) this.stop(s, 'cancelled', 'the host closed');
    }
    const slots = this.slots.splice(0);
    await Promise.all(slots.map((s) => s.terminate()));
    if (this.cpuTimer) clearInterval(this.cpuTimer);
  }
}

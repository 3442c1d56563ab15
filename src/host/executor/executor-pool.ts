/**
 * The engine's side of executor processes: a pool with the worker Pool's submit(Job) shape whose
 * workers live in sandboxed child processes. It queues runs, hands each to an executor with a free
 * worker, sends each module's bytes once per executor, answers the guests' host-function and
 * Casper calls with the engine's handlers, and replaces an executor that dies or stops beating —
 * its runs end `crashed`, exactly once, for the caller's restart rule.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { BridgeCallContext, BridgeHandler } from '../bridge.js';
import type { Job, JobEnd } from '../pool.js';
import { QueuedPool, type Pending } from '../job-queue.js';
import { ERRNO } from '../../wasi/constants.js';
import { DEFAULT_WORKER_HEAP_MB } from '../worker-launch.js';
import type { ModuleCaps } from '../wasm-limits.js';
import type { ExecutorSockets, HandedSocket, NetAnswer, NetLink } from '../net/remote.js';
import { decodeBatch, encodeBatch, type FromExecutor, type ToExecutor, type WireFormat } from './protocol.js';
import { ENGINE_RUNTIME, planExecutor, releaseCgroup, type ExecutorMount, type ExecutorRuntime, type Layer, type SandboxOptions } from './sandbox.js';

export type { ExecutorMount, ExecutorRuntime, Layer };

/** A run for an executor: a Job whose module goes by id (and bytes, the first time), and whose bridge is a handler. */
export interface ExecutorJob extends Omit<Job, 'module' | 'bridge'> {
  moduleId: string;
  /** The module's original bytes; asked for only when the executor does not hold them. */
  bytes(): Uint8Array;
  caps: ModuleCaps;
  /** Answers the guest's host-function and Casper calls, if it makes any. */
  serve?: BridgeHandler | undefined;
  /** The run's sockets, opened here and handed to the executor (src/host/net/remote.ts). */
  sockets?: ExecutorSockets | undefined;
}

/** Options of the executor pool. */
export interface ExecutorPoolOptions {
  /** Executor processes (default: one per core). */
  count?: number;
  /** Worker threads per executor (default 1). */
  workers?: number;
  maxQueue?: number;
  /** The executors' runtime (default: the one this process runs on). */
  runtime?: ExecutorRuntime;
  /** 'strict' refuses to start unless bubblewrap and the permission model are in force. */
  isolation?: 'strict' | 'best-effort';
  /** Turn a layer off (operators debugging a sandbox; tests proving each layer alone). */
  bubblewrap?: boolean;
  permissions?: boolean;
  /** Host directories runs may mount; fixed for the executors' life. */
  mounts?: ExecutorMount[];
  /** Extra flags for the runtime, before the entry script (operator tuning). */
  runtimeFlags?: string[];
  /** V8 heap cap of each executor's own thread in MiB (default 128); workers have their own. */
  heapMb?: number;
  /**
   * What an executor may hold in all, in MiB, as a memory cgroup where this machine lets capsa make
   * one (its layers then list 'cgroup-memory'); 0 for none. Default: its heap, and per worker a
   * worker heap plus the largest guest memory a run may ask for (guestMemoryMb) and slack.
   */
  memoryMb?: number;
  /** The largest linear memory a run may have, MiB (default 1024): sizes the default memoryMb. */
  guestMemoryMb?: number;
  cacheBytes?: number;
  /** How often executors report; one silent for 10 periods (at least 5 s) is killed and replaced (default 500 ms). */
  heartbeatMs?: number;
  denoPath?: string | undefined;
  /** Told about an executor's lines on stderr, its deaths and replacements. */
  onLog?: ((level: 'info' | 'warn', message: string, fields?: Record<string, unknown>) => void) | undefined;
}

/** One executor, as /healthz shows it. */
export interface ExecutorInfo {
  pid: number | undefined;
  runtime: ExecutorRuntime;
  layers: Layer[];
  workers: number;
  busy: number;
  rssBytes: number;
  startedAt: string;
  /** Host directories it may mount (fixed at its start). */
  mounts: ExecutorMount[];
  /** Replaced (the mounts changed): it takes no new runs, and exits once its runs end. */
  draining: boolean;
}

interface Inflight extends Pending<ExecutorJob> {
  /** When it was first sent to an executor. */
  t0: number;
  /** Its sockets went to the executor (they go once, before its first 'run'). */
  socketsSent?: boolean;
}

class Executor {
  child: ChildProcess;
  ready: Promise<void>;
  isReady = false;
  dead = false;
  runs = new Map<number, Inflight>();
  known = new Set<string>();
  lastBeat = performance.now();
  spawned = 0;
  rssBytes = 0;
  readonly startedAt = new Date().toISOString();
  /** Replaced: finishes its runs, takes no new ones, then is ended. */
  draining = false;
  private outbox: ToExecutor[] = [];
  constructor(readonly pool: ExecutorPool, readonly layers: Layer[], readonly mounts: ExecutorMount[], command: string, args: string[], env: Record<string, string>, readonly wire: WireFormat) {
    this.child = spawn(command, args, { env, stdio: ['ignore', 'ignore', 'pipe', 'ipc'], serialization: wire });
    this.child.stderr!.setEncoding('utf8');
    this.child.stderr!.on('data', (s: string) => pool.log('warn', `executor ${this.child.pid}: ${s.trimEnd()}`));
    this.ready = new Promise<void>((resolve, reject) => {
      const early = (code: number | null, signal: string | null) => reject(new Error(`the executor exited before it was ready (${signal ?? `status ${code}`})`));
      this.child.once('exit', early);
      this.child.once('error', reject);
      this.onReady = () => { this.child.off('exit', early); this.child.off('error', reject); this.isReady = true; resolve(); };
    });
    this.ready.catch(() => {});
    this.child.on('message', (data: unknown) => { for (const m of decodeBatch<FromExecutor>(data, wire)) pool.onMessage(this, m); });
    this.child.on('exit', (code, signal) => pool.lost(this, `the executor (pid ${this.child.pid}) ${signal ? `was killed by ${signal}` : `exited with status ${code}`}`));
    this.child.on('error', (e) => pool.lost(this, `the executor failed: ${e.message}`));
  }
  onReady: () => void = () => {};
  send(m: ToExecutor): void {
    if (this.dead) return;
    // One write per turn of the event loop: the runs that requests of one turn start leave together.
    if (this.outbox.length === 0) setImmediate(() => this.flush());
    this.outbox.push(m);
  }
  /**
   * Sends `m` with a descriptor (a socket or a server), after what is queued: a handle travels
   * alone in its message, and Node's channel keeps messages in order behind it. Node closes a
   * socket's copy here once the executor took it; a server's is closed once sent.
   */
  sendHandle(m: ToExecutor, handle: net.Socket | net.Server | dgram.Socket, onSent?: () => void): void {
    const drop = () => { if (handle instanceof net.Socket) handle.destroy(); else handle.close(); };
    if (this.dead || !this.child.connected) { drop(); return; }
    if (this.outbox.length) this.flush();
    this.child.send(encodeBatch([m], this.wire) as string, handle, (e) => {
      // Node closes a socket's copy itself once the executor took it; not a server's or a datagram socket's.
      if (!(handle instanceof net.Socket)) handle.close();
      if (e) { drop(); this.pool.lost(this, `cannot reach the executor: ${e.message}`); } else onSent?.();
    });
  }
  private flush(): void {
    const batch = this.outbox;
    if (batch.length === 0) return;
    this.outbox = [];
    if (this.dead || !this.child.connected) return;
    this.child.send(encodeBatch(batch, this.wire) as string, (e) => { if (e) this.pool.lost(this, `cannot reach the executor: ${e.message}`); });
  }
  workers = 1;
}

/** Executor processes behind the worker Pool's submit(Job) shape. */
export class ExecutorPool extends QueuedPool<ExecutorJob, Inflight> {
  readonly options: Required<Omit<ExecutorPoolOptions, 'onLog' | 'denoPath' | 'guestMemoryMb'>> & Pick<ExecutorPoolOptions, 'onLog' | 'denoPath'>;
  private executors: Executor[] = [];
  /** Replaced executors finishing the runs they hold (setMounts). */
  private draining = new Set<Executor>();
  private nextRun = 1;
  private nextOp = 1;
  private started = false;
  private memOps = new Map<number, { ex: Executor; resolve(d: Uint8Array | undefined): void; reject(e: Error): void }>();
  /** Questions about runs' sockets awaiting the executor's 'netres'. */
  private netOps = new Map<number, { ex: Executor; resolve(a: NetAnswer): void }>();
  private watchdog: NodeJS.Timeout | undefined;
  /** Executors started over the pool's life, replacements included. */
  spawnedExecutors = 0;

  constructor(options: ExecutorPoolOptions = {}) {
    const workers = options.workers ?? 1;
    const heapMb = options.heapMb ?? 128;
    const maxQueue = options.maxQueue ?? 1000;
    super(maxQueue);
    this.options = {
      count: options.count ?? Math.max(1, os.availableParallelism?.() ?? os.cpus().length),
      workers,
      maxQueue,
      runtime: options.runtime ?? ENGINE_RUNTIME,
      isolation: options.isolation ?? 'best-effort',
      bubblewrap: options.bubblewrap ?? true,
      permissions: options.permissions ?? true,
      mounts: options.mounts ?? [],
      runtimeFlags: options.runtimeFlags ?? [],
      heapMb,
      // 32 MiB a worker and 128 for the runtime are slack.
      memoryMb: options.memoryMb ?? heapMb + 128 + workers * (DEFAULT_WORKER_HEAP_MB + (options.guestMemoryMb ?? 1024) + 32),
      cacheBytes: options.cacheBytes ?? 256 << 20,
      heartbeatMs: options.heartbeatMs ?? 500,
      onLog: options.onLog,
      denoPath: options.denoPath,
    };
  }

  /** Logs through onLog, if given. */
  log(level: 'info' | 'warn', message: string, fields?: Record<string, unknown>): void {
    this.options.onLog?.(level, message, fields);
  }

  private sandbox(): SandboxOptions {
    const o = this.options;
    return { runtime: o.runtime, bubblewrap: o.bubblewrap, permissions: o.permissions, strict: o.isolation === 'strict', mounts: o.mounts, runtimeFlags: o.runtimeFlags, heapMb: o.heapMb, memoryMb: o.memoryMb, denoPath: o.denoPath };
  }

  private spawn(): Executor {
    const wire: WireFormat = this.options.runtime === 'deno' ? 'json' : 'advanced';
    const plan = planExecutor(this.sandbox(), { workers: this.options.workers, cacheBytes: this.options.cacheBytes, heartbeatMs: this.options.heartbeatMs, wire });
    for (const w of plan.warnings) this.log('warn', w);
    this.spawnedExecutors++;
    const ex = new Executor(this, plan.layers, this.options.mounts, plan.command, plan.args, plan.env, wire);
    const cgroup = plan.cgroup;
    if (cgroup) {
      ex.child.once('exit', () => releaseCgroup(cgroup));
      ex.child.once('error', () => releaseCgroup(cgroup));
    }
    return ex;
  }

  /**
   * Changes the host directories executors may mount. An executor's grants are fixed when it
   * starts, so every executor is replaced: new runs go to new executors at once, and the old ones
   * finish the runs they hold, take no more, and are then ended. Resolves when the new executors
   * can take runs; a no-op when the set of mounts is the same.
   */
  async setMounts(mounts: ExecutorMount[]): Promise<void> {
    const key = (ms: ExecutorMount[]) => JSON.stringify(ms.map((m) => [path.resolve(m.path), m.write]).sort());
    if (key(mounts) === key(this.options.mounts)) return;
    this.options.mounts = [...mounts];
    if (this.closed || !this.started) return;
    const fresh: Executor[] = [];
    for (let i = 0; i < this.executors.length; i++) {
      const old = this.executors[i]!;
      const next = this.spawn();
      this.executors[i] = next;
      fresh.push(next);
      this.retire(old);
      next.ready.then(() => this.dispatch(), (e: unknown) => this.log('warn', `the replacement executor did not start: ${(e as Error).message}`));
    }
    this.log('info', `the executors' mounts changed (${mounts.map((m) => `${m.path}${m.write ? '' : ' (read-only)'}`).join(', ') || 'none'}): ${fresh.length} executors replaced`);
    await Promise.all(fresh.map((e) => e.ready.catch(() => {})));
  }

  /** Takes an executor out of service: it ends once the runs it holds are over. */
  private retire(ex: Executor): void {
    ex.draining = true;
    this.draining.add(ex);
    this.endIfDrained(ex);
  }

  private endIfDrained(ex: Executor): void {
    if (!ex.draining || ex.runs.size > 0) return;
    this.draining.delete(ex);
    ex.dead = true;
    if (ex.child.exitCode === null && ex.child.signalCode === null) ex.child.kill('SIGKILL');
  }

  /** Starts the executors and waits until each can take runs; throws (strict isolation, no runtime) if they cannot start. */
  async start(): Promise<void> {
    for (let i = 0; i < this.options.count; i++) this.executors.push(this.spawn());
    try {
      await Promise.all(this.executors.map((e) => e.ready));
    } catch (e) {
      await this.close();
      throw e;
    }
    this.started = true;
    const period = this.options.heartbeatMs;
    this.watchdog = setInterval(() => {
      const now = performance.now();
      for (const ex of this.executors) {
        if (ex.isReady && now - ex.lastBeat > Math.max(10 * period, 5000)) {
          this.log('warn', `executor ${ex.child.pid} missed its heartbeats; killing it`);
          ex.child.kill('SIGKILL');
          this.lost(ex, `the executor (pid ${ex.child.pid}) stopped answering`);
        }
      }
    }, period);
    this.watchdog.unref();
  }

  protected hasIdle(): boolean {
    return this.executors.some((e) => e.isReady && e.runs.size < e.workers);
  }

  protected pending(job: ExecutorJob, resolve: (end: JobEnd) => void): Inflight {
    return { job, resolve, t0: 0 };
  }

  dispatch(): void {
    for (const ex of this.executors) {
      while (this.queue.length && ex.isReady && !ex.dead && ex.runs.size < ex.workers) this.send(ex, this.queue.shift()!, this.nextRun++);
      if (!this.queue.length) return;
    }
  }

  private send(ex: Executor, p: Inflight, run: number, withBytes = !ex.known.has(p.job.moduleId)): void {
    p.t0 ||= performance.now();
    ex.runs.set(run, p);
    if (withBytes) ex.known.add(p.job.moduleId);
    p.job.onStart?.();
    const sockets = p.job.sockets;
    if (sockets && !p.socketsSent) {
      p.socketsSent = true;
      ex.send({ t: 'sockets', run, plan: sockets.plan });
      const handles = sockets.take();
      let left = handles.length;
      const sent = () => { if (--left <= 0) sockets.handed(); };
      for (const h of handles) ex.sendHandle({ t: 'socket', run, slot: h.slot, address: h.address, ...(h.handle instanceof dgram.Socket ? { dgram: true } : {}) }, h.handle, sent);
      if (handles.length === 0) sockets.handed();
      sockets.attach(this.netLink(ex, run));
    }
    ex.send({ t: 'run', run, module: p.job.moduleId, ...(withBytes ? { bytes: p.job.bytes() } : {}), caps: p.job.caps, spec: p.job.spec, bridge: p.job.serve !== undefined });
  }

  /** How a run's RemoteNet reaches its sockets in executor `ex`. */
  private netLink(ex: Executor, run: number): NetLink {
    const ask = (send: (op: number) => void) => new Promise<NetAnswer>((resolve) => {
      if (ex.dead) { resolve({ errno: ERRNO.CANCELED, error: 'the executor is gone' }); return; }
      const op = this.nextOp++;
      this.netOps.set(op, { ex, resolve });
      send(op);
    });
    return {
      reserve: (what) => ask((op) => ex.send({ t: 'netop', run, op, do: 'reserve', what })),
      release: (slot) => ex.send({ t: 'netop', run, do: 'release', slot }),
      adopt: (h: HandedSocket) => ask((op) => ex.sendHandle({ t: 'socket', run, slot: h.slot, address: h.address, op }, h.handle)),
    };
  }

  /** One message of an executor. */
  onMessage(ex: Executor, m: FromExecutor): void {
    ex.lastBeat = performance.now();
    switch (m.t) {
      case 'ready': ex.workers = m.workers; ex.onReady(); this.dispatch(); return;
      case 'beat': ex.spawned = m.spawned; ex.rssBytes = m.rssBytes; return;
      case 'out': ex.runs.get(m.run)?.job.onOutput(m.fd, m.data); return;
      case 'audit': ex.runs.get(m.run)?.job.onAudit(m.events); return;
      case 'end': this.finish(ex, m.run, m.end); return;
      case 'missing': {
        const p = ex.runs.get(m.run);
        if (p) this.send(ex, p, m.run, true);
        return;
      }
      case 'call': void this.call(ex, m.run, m.call, m.data); return;
      case 'netres': {
        const op = this.netOps.get(m.op);
        this.netOps.delete(m.op);
        op?.resolve(m);
        return;
      }
      case 'netaudit': ex.runs.get(m.run)?.job.sockets?.audit(m.entry); return;
      case 'memres': {
        const op = this.memOps.get(m.op);
        this.memOps.delete(m.op);
        if (m.error !== undefined) op?.reject(new Error(m.error)); else op?.resolve(m.data);
        return;
      }
    }
  }

  // A guest's host-function or Casper call: the engine's handler runs here; its reach into guest
  // memory goes back to the executor, where the guest waits.
  private async call(ex: Executor, run: number, call: number, data: Uint8Array): Promise<void> {
    const serve = ex.runs.get(run)?.job.serve;
    const mem = (extra: { ptr: number; len?: number; bytes?: Uint8Array }) => new Promise<Uint8Array | undefined>((resolve, reject) => {
      const op = this.nextOp++;
      this.memOps.set(op, { ex, resolve, reject });
      ex.send({ t: 'mem', run, call, op, ...extra });
    });
    const ctx: BridgeCallContext = {
      readMemory: async (ptr, len) => (await mem({ ptr, len })) ?? new Uint8Array(0),
      writeMemory: async (ptr, bytes) => { await mem({ ptr, bytes }); },
    };
    // What the engine spent on the run's requests so far goes with each answer (see 'reply').
    const charged = () => { const ms = ex.runs.get(run)?.job.hostCpuMs?.(); return ms ? { hostCpuMs: ms } : {}; };
    try {
      if (!serve) throw new Error('the run has no bridge');
      const reply = await serve(data, ctx);
      ex.send({ t: 'reply', run, call, data: reply, ...charged() });
    } catch (e) {
      ex.send({ t: 'reply', run, call, error: (e as Error)?.message ?? String(e), ...charged() });
    }
  }

  private finish(ex: Executor, run: number, end: JobEnd): void {
    const p = ex.runs.get(run);
    if (!p) return;
    ex.runs.delete(run);
    this.settle(p, end);
    this.endIfDrained(ex);
    this.dispatch();
  }

  /** An executor died or stopped answering: its runs end `crashed` (once), and a new one takes its place. */
  lost(ex: Executor, message: string): void {
    if (ex.dead) return;
    ex.dead = true;
    const i = this.executors.indexOf(ex);
    // A draining executor's runs end like any other's; it is not replaced (its successor runs).
    if (i < 0 && !this.draining.delete(ex)) return;
    if (!ex.child.killed && ex.child.exitCode === null) ex.child.kill('SIGKILL');
    // Host functions waiting on its guests' memory get an error instead of waiting forever.
    for (const [op, m] of this.memOps) if (m.ex === ex) { this.memOps.delete(op); m.reject(new Error(message)); }
    for (const [op, m] of this.netOps) if (m.ex === ex) { this.netOps.delete(op); m.resolve({ errno: ERRNO.CANCELED, error: message }); }
    for (const run of [...ex.runs.keys()]) {
      const p = ex.runs.get(run)!;
      this.finish(ex, run, { kind: 'stopped', reason: 'crashed', message, wallMs: performance.now() - p.t0, cpuMs: 0 });
    }
    if (this.closed || !this.started || i < 0) return;
    this.log('warn', `${message}; starting a new executor`);
    // One that died before it was ready is retried after a pause, not in a tight loop.
    const delay = ex.isReady ? 0 : 1000;
    setTimeout(() => {
      if (this.closed || this.executors[i] !== ex) return;
      const next = this.spawn();
      this.executors[i] = next;
      next.ready.then(() => this.dispatch(), (e: unknown) => this.log('warn', `the replacement executor did not start: ${(e as Error).message}`));
    }, delay).unref();
  }

  protected cancelRunning(p: Inflight): void {
    for (const ex of [...this.executors, ...this.draining]) {
      for (const [run, q] of ex.runs) if (q === p) ex.send({ t: 'cancel', run });
    }
  }

  /** Counts for health checks and metrics (workers are the executors' threads). */
  stats(): { workers: number; busy: number; queued: number; spawned: number; executors: number } {
    let workers = 0, busy = 0, spawned = 0;
    for (const ex of this.executors) { workers += ex.workers; busy += ex.runs.size; spawned += ex.spawned; }
    for (const ex of this.draining) busy += ex.runs.size;
    return { workers, busy, queued: this.queue.length, spawned, executors: this.executors.length };
  }

  /** The executors now, for /healthz. */
  list(): ExecutorInfo[] {
    return [...this.executors, ...this.draining].map((ex) => ({
      pid: ex.child.pid, runtime: this.options.runtime, layers: ex.layers, workers: ex.workers, busy: ex.runs.size, rssBytes: ex.rssBytes, startedAt: ex.startedAt,
      mounts: ex.mounts, draining: ex.draining,
    }));
  }

  /** Process ids of executors running a guest now (for tests that must kill one). */
  busyPids(): number[] {
    return this.executors.filter((e) => e.runs.size > 0 && e.child.pid !== undefined).map((e) => e.child.pid!);
  }

  /** Cancels queued runs, stops running ones, and ends the executors. */
  async close(): Promise<void> {
    this.closeQueue();
    if (this.watchdog) clearInterval(this.watchdog);
    const all = [...this.executors.splice(0), ...this.draining];
    this.draining.clear();
    await Promise.all(all.map((ex) => {
      for (const run of [...ex.runs.keys()]) this.finish(ex, run, { kind: 'stopped', reason: 'cancelled', message: 'the host closed', wallMs: 0, cpuMs: 0 });
      ex.dead = true;
      if (ex.child.exitCode !== null || ex.child.signalCode !== null) return undefined;
      return new Promise<void>((r) => { ex.child.once('exit', () => r()); ex.child.kill('SIGKILL'); });
    }));
  }
}

/**
 * What runs the guests: the worker Pool's threads in this process, or executor processes. The host
 * talks to either through one submit(job) whose job names its module both ways (compiled, for a
 * thread; by id and bytes, for a process) and whose bridge is a handler.
 */
import { createBridgeChannel } from './bridge.js';
import { ExecutorPool, type ExecutorInfo, type ExecutorJob, type ExecutorMount, type ExecutorPoolOptions } from './executor/executor-pool.js';
import { CASPER_MAX_REQUEST_BYTES } from './casper-wire.js';
import { serveRun } from './functions.js';
import { Pool, type JobEnd, type PoolOptions } from './pool.js';
import type { GuestPool } from './job-queue.js';
import type { GuestSpec } from './worker/protocol.js';
import { createInputRing, inputNeedsPump, startInputPump } from '../wasi/input-pump.js';
import { createOutputRing, outputNeedsPump, startOutputPump } from '../wasi/output-pump.js';
import { Waker } from '../wasi/wake.js';

/** A run for a Runner. */
export interface RunnerJob extends ExecutorJob {
  /** The compiled module, for a thread; undefined under process isolation, where the executor compiles it. */
  module: WebAssembly.Module | undefined;
  /** Told when the bridge breaks (garbage from the worker). */
  onBridgeError(what: string, e: unknown): void;
}

/** Counts of a runner, for health checks and metrics. */
export interface RunnerStats { workers: number; busy: number; queued: number; spawned: number }

/** Runs guests on worker threads or in executor processes. */
export interface Runner {
  readonly isolation: 'thread' | 'process';
  readonly pool: GuestPool;
  start(): Promise<void>;
  submit(job: RunnerJob): Promise<JobEnd>;
  stats(): RunnerStats;
  /** The executor processes (none for threads). */
  executors(): ExecutorInfo[];
  /** Host directories runs may mount: executors are replaced when they change (threads reach the whole host anyway). */
  setMounts(mounts: ExecutorMount[]): Promise<void>;
  close(): Promise<void>;
}

/** Guests on worker threads of this process; a run's bridge is served on this thread. */
export function threadRunner(options: Partial<PoolOptions>): Runner {
  const pool = new Pool(options);
  return {
    isolation: 'thread',
    pool,
    start: () => pool.start(),
    async submit(job) {
      const channel = job.serve ? createBridgeChannel() : undefined;
      const server = channel && job.serve ? serveRun(channel, job.serve, job.onBridgeError, { maxRequestBytes: CASPER_MAX_REQUEST_BYTES }) : undefined;
      const stdio = pumpStdio(job.spec);
      try {
        // Field by field, not spread: a spread would read job.moduleId, which hashes the module.
        const { module, signal, hostCpuMs, onOutput, onAudit, onStart } = job;
        if (!module) throw new TypeError('a thread runner runs compiled modules: the host\'s module cache must compile');
        return await pool.submit({ module, signal, hostCpuMs, onOutput, onAudit, ...(onStart ? { onStart } : {}), spec: stdio.spec, bridge: channel?.sab });
      } finally {
        server?.close();
        for (const p of stdio.pumps) p.stop();
      }
    },
    stats: () => pool.stats(),
    executors: () => [],
    setMounts: async () => {},
    close: () => pool.close(),
  };
}

/**
 * stdin from a host pipe, socket or terminal is read on this thread and handed to the guest
 * through a ring (src/wasi/input-pump.ts), and stdout and stderr to a pipe or terminal are written
 * from one (src/wasi/output-pump.ts): the guest's thread never blocks in read(2) or write(2),
 * where it could not be terminated. Regular files stay with the guest's thread.
 */
function pumpStdio(spec: GuestSpec): { spec: GuestSpec; pumps: { stop(): void }[] } {
  const pumps: { stop(): void }[] = [];
  let out = spec;
  if (typeof spec.stdin === 'number' && inputNeedsPump(spec.stdin)) {
    // The run's cell if it has one already (its sockets'), so one wake reaches the guest.
    const waker = new Waker(spec.waker);
    const ring = createInputRing();
    pumps.push(startInputPump(spec.stdin, ring.pump, () => waker.wake()));
    out = { ...out, stdin: ring, waker: waker.cell };
  }
  for (const [key, fd] of [['stdoutPump', spec.stdoutFd], ['stderrPump', spec.stderrFd]] as const) {
    if (fd === undefined || !outputNeedsPump(fd)) continue;
    const ring = createOutputRing();
    pumps.push(startOutputPump(fd, ring.pump));
    out = { ...out, [key]: ring };
  }
  return { spec: out, pumps };
}

/** Guests in sandboxed executor processes; a run's bridge calls come back here over IPC. */
export function processRunner(options: ExecutorPoolOptions): Runner {
  const pool = new ExecutorPool(options);
  return {
    isolation: 'process',
    pool,
    start: () => pool.start(),
    submit(job) {
      // An executor has descriptors of its own: the caller's fds (the CLI's stdio) mean nothing there.
      if (typeof job.spec.stdin === 'number' || job.spec.stdoutFd !== undefined || job.spec.stderrFd !== undefined) {
        return Promise.reject(new TypeError('Cannot run with stdinFd, stdoutFd or stderrFd under process isolation: pass stdin as bytes and read stdout/stderr from the result'));
      }
      return pool.submit(job);
    },
    stats: () => { const { executors: _, ...s } = pool.stats(); return s; },
    executors: () => pool.list(),
    setMounts: (mounts) => pool.setMounts(mounts),
    close: () => pool.close(),
  };
}

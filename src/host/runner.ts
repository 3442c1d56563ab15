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
import type { GuestSpec } from './worker/protocol.js';
import { createInputRing, inputNeedsPump, startInputPump, type InputPump } from '../wasi/input-pump.js';
import { Waker } from '../wasi/wake.js';

/** A run for a Runner. */
export interface RunnerJob extends ExecutorJob {
  module: WebAssembly.Module;
  /** Told when the bridge breaks (garbage from the worker). */
  onBridgeError(what: string, e: unknown): void;
}

/** Counts of a runner, for health checks and metrics. */
export interface RunnerStats { workers: number; busy: number; queued: number; spawned: number }

/** Runs guests on worker threads or in executor processes. */
export interface Runner {
  readonly isolation: 'thread' | 'process';
  readonly pool: Pool | ExecutorPool;
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
      const stdin = pumpStdin(job.spec);
      try {
        return await pool.submit({ ...job, ...(stdin ? { spec: stdin.spec } : {}), bridge: channel?.sab });
      } finally {
        server?.close();
        stdin?.pump.stop();
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
 * through a ring (src/wasi/input-pump.ts): the guest's thread never blocks in read(2), where it
 * could not be terminated. Regular files stay with the guest's thread, which reads them directly.
 */
function pumpStdin(spec: GuestSpec): { spec: GuestSpec; pump: InputPump } | undefined {
  if (typeof spec.stdin !== 'number' || !inputNeedsPump(spec.stdin)) return undefined;
  const waker = new Waker();
  const ring = createInputRing();
  const pump = startInputPump(spec.stdin, ring.pump, () => waker.wake());
  return { spec: { ...spec, stdin: ring, waker: waker.cell.buffer as SharedArrayBuffer }, pump };
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

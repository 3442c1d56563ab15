/**
 * The queue every pool of the engine shares: worker threads (Pool) and executor processes
 * (ExecutorPool) take runs through the same submit, with the same bound, the same answer to a run
 * cancelled before it starts, and the same bookkeeping of a run's abort signal. A pool says when
 * it has a free worker, hands queued runs out in dispatch(), and stops a running one it is asked
 * to cancel.
 */
import type { JobEnd } from './pool.js';

/** Thrown by submit when the queue is full. */
export class QueueFullError extends Error {
  readonly code = 'queue_full';
  constructor(max: number) {
    super(`Cannot queue the run: ${max} runs are already waiting; retry later or raise the queue bound (maxQueue)`);
  }
}

/** A run the pool has taken: waiting in the queue, then running. */
export interface Pending<J> {
  job: J;
  resolve(end: JobEnd): void;
  /** Listens to the job's signal until the run ends (removed by settle). */
  onAbort?: () => void;
}

const cancelled = (message: string): JobEnd => ({ kind: 'stopped', reason: 'cancelled', message, wallMs: 0, cpuMs: 0 });

/** A pool as its host holds it (`host.pool`), whichever kind runs the guests. */
export interface GuestPool {
  /** Counts for health checks and metrics. */
  stats(): { workers: number; busy: number; queued: number; spawned: number };
  /** Cancels queued runs, stops running ones, and ends the workers. */
  close(): Promise<void>;
}

/** A pool of workers in front of one FIFO queue of runs. */
export abstract class QueuedPool<J extends { signal?: AbortSignal | undefined }, P extends Pending<J> = Pending<J>> implements GuestPool {
  protected queue: P[] = [];
  protected closed = false;

  constructor(protected readonly maxQueue: number) {}

  /** Whether a worker could take a run now (a full queue still takes one then). */
  protected abstract hasIdle(): boolean;
  /** Hands queued runs to free workers. */
  abstract dispatch(): void;
  /** Stops `p`, which a worker is running (its cancel came after it left the queue). */
  protected abstract cancelRunning(p: P): void;
  /** What a queued run is made of (a pool may keep more per run). */
  protected abstract pending(job: J, resolve: (end: JobEnd) => void): P;
  abstract stats(): ReturnType<GuestPool['stats']>;
  abstract close(): Promise<void>;

  /** Queues a job; resolves when it ends, however it ends. */
  submit(job: J): Promise<JobEnd> {
    if (this.closed) return Promise.reject(new Error('Cannot run: the host is closed'));
    if (this.queue.length >= this.maxQueue && !this.hasIdle()) return Promise.reject(new QueueFullError(this.maxQueue));
    return new Promise<JobEnd>((resolve) => {
      const p = this.pending(job, resolve);
      if (job.signal) {
        if (job.signal.aborted) return resolve(cancelled('the run was cancelled before it started'));
        p.onAbort = () => this.cancel(p);
        job.signal.addEventListener('abort', p.onAbort, { once: true });
      }
      this.queue.push(p);
      this.dispatch();
    });
  }

  /** Ends `p` with `end`: its signal is no longer listened to. */
  protected settle(p: P, end: JobEnd): void {
    if (p.onAbort) p.job.signal?.removeEventListener('abort', p.onAbort);
    p.resolve(end);
  }

  private cancel(p: P): void {
    const qi = this.queue.indexOf(p);
    if (qi < 0) { this.cancelRunning(p); return; }
    this.queue.splice(qi, 1);
    this.settle(p, cancelled('the run was cancelled before it started'));
  }

  /** Takes no more runs and ends the queued ones `cancelled`. */
  protected closeQueue(): void {
    this.closed = true;
    for (const p of this.queue.splice(0)) this.settle(p, cancelled('the host closed'));
  }
}

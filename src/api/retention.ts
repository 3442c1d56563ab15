/**
 * Retention: deletes finished runs (their output, events and webhook deliveries) older than the
 * tenant's retention, and the modules no run of the tenant references any more, on a schedule.
 * Each tenant is pruned in small batches (one store transaction each) with a turn of the event
 * loop between them, so requests are served meanwhile; queued and running runs are never touched
 * (the store only deletes runs in a terminal state that ended before the cut).
 */
import type { Logger } from 'pino';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { defaultLogger } from './log.js';
import { retentionOf } from './quotas.js';
import type { Store } from './store/types.js';

export interface RetentionOptions {
  store: Store;
  /** The service's retention in seconds (a tenant's own goes over it); 0 keeps everything. */
  retainSeconds: number;
  /** Between sweeps, ms (default 10 minutes; the first sweep runs at start). */
  intervalMs?: number;
  /** Rows deleted per transaction (default 100). */
  batch?: number;
  now?: () => number;
  logger?: Logger;
}

export interface Retention {
  /** One sweep over every tenant now; resolves with what it deleted. A sweep in progress is joined, not doubled. */
  sweep(): Promise<{ runs: number; modules: number }>;
  /** Sweeps now and then every intervalMs. */
  start(): void;
  /** Stops the schedule and waits for a sweep in progress. */
  stop(): Promise<void>;
}

export const RETENTION_INTERVAL_MS = 10 * 60_000;

/** Makes the retention sweeper (serve starts it). */
export function createRetention(o: RetentionOptions): Retention {
  const now = o.now ?? Date.now;
  const batch = Math.max(1, o.batch ?? 100);
  const log = (o.logger ?? defaultLogger()).child({ component: 'retention' });
  let running: Promise<{ runs: number; modules: number }> | undefined;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;

  const sweepAll = async (): Promise<{ runs: number; modules: number }> => {
    const total = { runs: 0, modules: 0 };
    for (const t of await o.store.listTenants()) {
      const seconds = retentionOf(o.retainSeconds, t);
      if (!(seconds > 0)) continue;
      const before = now() - seconds * 1000;
      for (;;) {
        if (stopped) return total;
        const r = await o.store.pruneTenant(t.id, before, batch);
        total.runs += r.runs;
        total.modules += r.modules;
        if (r.runs < batch && r.modules < batch) break;
        // Let requests in between batches.
        await nextTurn();
      }
    }
    if (total.runs || total.modules) log.info(total, 'retention pruned');
    return total;
  };

  const sweep = (): Promise<{ runs: number; modules: number }> => {
    running ??= sweepAll().finally(() => { running = undefined; });
    return running;
  };

  return {
    sweep,
    start() {
      stopped = false;
      const tick = (): void => {
        sweep().catch((e: unknown) => log.warn({ err: e }, 'retention sweep failed'));
        timer = setTimeout(tick, o.intervalMs ?? RETENTION_INTERVAL_MS);
        timer.unref();
      };
      tick();
    },
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running?.catch(() => {});
    },
  };
}

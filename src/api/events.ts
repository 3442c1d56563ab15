/**
 * Run events across nodes. A node publishes the events of the runs it executes (stored first, then
 * announced) and follows any run's events, whichever node stores them: the store announces every
 * append (PostgreSQL: NOTIFY capsa_events, heard on one LISTEN connection per node; SQLite: the one
 * process's appends), and this hub fans the notices out to the node's subscribers: SSE streams,
 * `wait`, and the scheduler, which aborts a run it executes when another node ended it (a cancel).
 * Subscribers get notices, not events: they read the events they lack from the store, after the
 * last seq they saw, so a notice lost or repeated costs a read and never an event.
 */
import type { Logger } from 'pino';
import { defaultLogger } from './log.js';
import type { EventNotice, RunEventRecord, Store } from './store/types.js';

/** Told of a run's new events (`resync`: some may have been missed, re-read). */
export type NoticeListener = (notice: EventNotice | 'resync') => void;

/** The events of runs, on this node, whichever node stores them. */
export interface RunEvents {
  /** Stores an event of a run (after the run's earlier ones: appends of one run are chained) and announces it. */
  publish(runId: string, type: RunEventRecord['type'], data: unknown): Promise<RunEventRecord>;
  /**
   * Calls `listener` for each event of the run stored from now on, by any node; `onDrain` when this
   * node stops serving streams (drain()). Resolves, with the unsubscribe function, once listening.
   */
  subscribe(runId: string, listener: NoticeListener, onDrain?: () => void): Promise<() => void>;
  /**
   * Resolves when the run's `exit` event is stored (by any node), when `ended()` says it ended
   * (asked once listening, so an end just before is not missed, and now and then as a backstop),
   * or after `ms`, whichever is first.
   */
  waitFor(runId: string, ms: number, ended?: () => Promise<boolean>): Promise<void>;
  /**
   * Listens for the run's `exit` from now on, before the run is even stored (POST /v1/runs follows
   * the id it is about to create): its wait() then needs no first `ended()` read, since no event
   * of the run can precede the listening. `close()` stops listening without waiting.
   */
  follow(runId: string): Promise<ExitWatch>;
  /**
   * Resolves once every event published so far (of `runId` only, when given) is stored (or failed):
   * a change of the run's state that writes events itself (the store's finishRun) comes after them.
   */
  flush(runId?: string): Promise<void>;
  /** Tells every subscriber, now and later, that this node stops serving (SSE clients reconnect elsewhere). */
  drain(): void;
  /** Stops listening. */
  close(): Promise<void>;
}

/** A run's exit being listened for (RunEvents.follow). */
export interface ExitWatch {
  /** Resolves at the exit (heard since follow()), when `ended()` says so (on a resync, every few seconds, and at once with `askNow`), or after `ms`; then stops listening. */
  wait(ms: number, ended?: () => Promise<boolean>, askNow?: boolean): Promise<void>;
  close(): void;
}

export interface RunEventsOptions {
  store: Store;
  logger?: Logger;
}

interface Sub { listener: NoticeListener; onDrain: (() => void) | undefined }

/** How often waitFor asks `ended()` again, in case a notice was lost. */
const WAIT_RECHECK_MS = 5000;

/** The hub of one node (one per store and process). */
export function createRunEvents(options: RunEventsOptions): RunEvents {
  const { store } = options;
  const log = (options.logger ?? defaultLogger()).child({ component: 'events' });
  const subs = new Map<string, Set<Sub>>();
  /** The highest seq announced per followed run: the same event heard twice (our append, then its NOTIFY) is told once. */
  const told = new Map<string, number>();
  let watching: Promise<{ close(): Promise<void> }> | undefined;
  let draining = false;
  let closed = false;

  const tell = (sub: Sub, n: EventNotice | 'resync'): void => {
    try { sub.listener(n); } catch (e) { log.warn({ err: e }, 'event listener failed'); }
  };

  const onNotice = (n: EventNotice | 'resync'): void => {
    if (n === 'resync') {
      for (const set of subs.values()) for (const sub of set) tell(sub, n);
      return;
    }
    const set = subs.get(n.runId);
    if (!set) return;
    if ((told.get(n.runId) ?? 0) >= n.seq) return;
    told.set(n.runId, n.seq);
    for (const sub of [...set]) tell(sub, n);
  };

  const listening = async (): Promise<void> => {
    if (closed) throw new Error('the event hub is closed');
    watching ??= store.watchEvents(onNotice).catch((e: unknown) => { watching = undefined; throw e; });
    await watching;
  };

  // A run's events are appended one after another (an output flush from a timer must not pass the
  // status before it): each run has a chain of appends, and an event is announced once stored.
  const chains = new Map<string, Promise<unknown>>();

  const hub: RunEvents = {
    publish(runId, type, data) {
      const text = JSON.stringify(data);
      const next = (chains.get(runId) ?? Promise.resolve()).then(async () => {
        const ev = await store.appendEvent(runId, type, text);
        // Our own subscribers hear at once, not after the database's round trip.
        onNotice({ runId, seq: ev.seq, type });
        return ev;
      });
      const settled = next.catch(() => {});
      chains.set(runId, settled);
      void settled.then(() => { if (chains.get(runId) === settled) chains.delete(runId); });
      return next;
    },
    async subscribe(runId, listener, onDrain) {
      const sub: Sub = { listener, onDrain };
      let set = subs.get(runId);
      if (!set) { set = new Set(); subs.set(runId, set); }
      set.add(sub);
      const unsubscribe = (): void => {
        const s = subs.get(runId);
        s?.delete(sub);
        if (s && s.size === 0) { subs.delete(runId); told.delete(runId); }
      };
      try {
        await listening();
      } catch (e) {
        unsubscribe();
        throw e;
      }
      if (draining) onDrain?.();
      return unsubscribe;
    },
    async waitFor(runId, ms, ended) {
      await (await hub.follow(runId)).wait(ms, ended, true);
    },
    async follow(runId) {
      let exited = false;
      let done: (() => void) | undefined;
      let resync: (() => void) | undefined;
      const unsubscribe = await hub.subscribe(runId, (n) => {
        if (n === 'resync') resync?.();
        else if (n.type === 'exit') { exited = true; done?.(); }
      });
      return {
        async wait(ms, ended, askNow = false) {
          let deadline: NodeJS.Timeout | undefined;
          let recheck: NodeJS.Timeout | undefined;
          try {
            if (exited) return;
            await new Promise<void>((resolve) => {
              done = resolve;
              deadline = setTimeout(resolve, Math.max(0, ms));
              if (!ended) return;
              const ask = (): void => { ended().then((yes) => { if (yes) resolve(); }, () => {}); };
              resync = ask;
              if (askNow) ask();
              recheck = setInterval(ask, WAIT_RECHECK_MS);
            });
          } finally {
            clearTimeout(deadline);
            if (recheck) clearInterval(recheck);
            unsubscribe();
          }
        },
        close: unsubscribe,
      };
    },
    async flush(runId) {
      if (runId !== undefined) await chains.get(runId);
      else await Promise.all([...chains.values()]);
    },
    drain() {
      if (draining) return;
      draining = true;
      for (const set of subs.values()) for (const sub of set) sub.onDrain?.();
    },
    async close() {
      if (closed) return;
      closed = true;
      const w = watching;
      watching = undefined;
      await (await w?.catch(() => undefined))?.close();
    },
  };
  return hub;
}

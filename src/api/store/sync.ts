/**
 * A Store over synchronous operations (better-sqlite3, the tests' in-memory store): each call runs
 * at once and its answer, or what it throws, becomes a settled promise.
 */
import type { Store } from './types.js';

/** The Store with every answer synchronous. */
export type SyncStore = { [K in keyof Store]: (...a: Parameters<Store[K]>) => Awaited<ReturnType<Store[K]>> };

/** Wraps a synchronous store as the (asynchronous) Store; extra members of `sync` are copied as they are. */
export function asyncStore<S extends SyncStore>(sync: S): Store & Omit<S, keyof Store> {
  const out: Record<string, unknown> = { ...sync };
  for (const [name, fn] of Object.entries(sync) as [string, unknown][]) {
    if (typeof fn !== 'function' || name === 'snapshot') continue;
    out[name] = (...a: unknown[]): Promise<unknown> => {
      try {
        return Promise.resolve((fn as (...x: unknown[]) => unknown)(...a));
      } catch (e) {
        return Promise.reject(e);
      }
    };
  }
  return out as Store & Omit<S, keyof Store>;
}

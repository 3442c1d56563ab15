import { hrtime } from 'node:process';

// Wall time with nanosecond steps: anchor Date.now() once, then advance it by the monotonic clock.
const hrBase = hrtime.bigint();
const wallBase = BigInt(Date.now()) * 1_000_000n;

/** Nanoseconds since the Unix epoch. */
export function realtimeNs(): bigint {
  return wallBase + (hrtime.bigint() - hrBase);
}

/** Nanoseconds on a monotonic clock with an arbitrary origin. */
export function monotonicNs(): bigint {
  return hrtime.bigint();
}

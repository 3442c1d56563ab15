/**
 * What `npm run fuzz` (test/fuzz) found, one focused case each, beside the behaviour that was
 * already right.
 */
import { describe, expect, it } from 'vitest';
import { CLOCKID, ERRNO, EVENTTYPE, SUBCLOCKFLAGS } from '../../src/wasi/constants.js';
import { harness, type Harness } from '../helpers/harness.js';

/** poll_oneoff on clock subscriptions [clock, timeout, flags]; returns [errno, events as {userdata, error}]. */
function poll(h: Harness, subs: [number, bigint, number][]): [number, { userdata: bigint; error: number }[]] {
  const inPtr = h.alloc(subs.length * 48);
  const dv = new DataView(h.memory.buffer);
  subs.forEach(([clock, timeout, flags], i) => {
    const o = inPtr + i * 48;
    dv.setBigUint64(o, BigInt(i + 1), true);
    dv.setUint8(o + 8, EVENTTYPE.CLOCK);
    dv.setUint32(o + 16, clock, true);
    dv.setBigUint64(o + 24, timeout, true);
    dv.setUint16(o + 40, flags, true);
  });
  const out = h.alloc(subs.length * 32);
  const n = h.alloc(4);
  const errno = h.call.poll_oneoff!(inPtr, out, subs.length, n);
  const events = Array.from({ length: errno === 0 ? h.u32(n) : 0 }, (_, i) => ({
    userdata: h.u64(out + i * 32), error: new DataView(h.memory.buffer).getUint16(out + i * 32 + 8, true),
  }));
  return [errno, events];
}

describe('poll_oneoff on a CPU-time clock', () => {
  // Found by the fuzzer (a hang): the guest's CPU time does not pass while it sleeps in poll, so a
  // relative CPU-time timeout used to sleep until other threads had burnt that much CPU.
  it.each([CLOCKID.PROCESS_CPUTIME_ID, CLOCKID.THREAD_CPUTIME_ID])('clock %i: a deadline not reached yet is EINVAL at once, not a sleep', (clock) => {
    const h = harness();
    expect(poll(h, [[clock, 1_000n, 0]])).toEqual([0, [{ userdata: 1n, error: ERRNO.INVAL }]]);
    expect(poll(h, [[clock, 3_600_000_000_000n, 0]])).toEqual([0, [{ userdata: 1n, error: ERRNO.INVAL }]]);
  });

  it('a CPU-time deadline already passed fires, and wall clocks still sleep and fire', () => {
    const h = harness();
    expect(poll(h, [[CLOCKID.PROCESS_CPUTIME_ID, 0n, 0]])).toEqual([0, [{ userdata: 1n, error: 0 }]]);
    expect(poll(h, [[CLOCKID.THREAD_CPUTIME_ID, 1n, SUBCLOCKFLAGS.ABSTIME]])).toEqual([0, [{ userdata: 1n, error: 0 }]]);
    expect(poll(h, [[CLOCKID.MONOTONIC, 1_000n, 0]])).toEqual([0, [{ userdata: 1n, error: 0 }]]);
    // Mixed: the CPU clock's error comes back at once beside nothing else waiting.
    const [errno, events] = poll(h, [[CLOCKID.MONOTONIC, 1_000n, 0], [CLOCKID.THREAD_CPUTIME_ID, 10n ** 12n, 0]]);
    expect(errno).toBe(0);
    expect(events).toContainEqual({ userdata: 2n, error: ERRNO.INVAL });
  });
});

/**
 * What `npm run fuzz` (test/fuzz) found, one focused case each, beside the behaviour that was
 * already right.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CLOCKID, ERRNO, EVENTTYPE, SUBCLOCKFLAGS } from '../../src/wasi/constants.js';
import { fsErrno } from '../../src/wasi/fs/hostfs.js';
import { toErrno } from '../../src/wasi/preview1.js';
import { harness, type Harness } from '../helpers/harness.js';

const dirs: string[] = [];
afterEach(() => { for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true }); });

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

describe('a NUL byte in a path argument', () => {
  // Found by the fuzzer: a symlink target is never resolved, so its NUL went through: the host
  // mount answered EIO (Node refused the string) and the memory tree stored a target no POSIX
  // path can hold.
  it('is EINVAL for a symlink target, on a host mount and in memory, and nothing is created', () => {
    const host = fs.mkdtempSync(path.join(os.tmpdir(), 'capsa-nul-'));
    dirs.push(host);
    const hostErrors: unknown[] = [];
    const h = harness({ preopens: [{ guest: '/h', host }, { guest: '/m', memory: true }], onHostError: (_c, e) => hostErrors.push(e) });
    const target = h.put('a\0b'), name = h.put('x');
    for (const fd of [3, 4]) {
      expect(h.call.path_symlink!(target.ptr, target.len, fd, name.ptr, name.len)).toBe(ERRNO.INVAL);
      const stat = h.alloc(64);
      expect(h.call.path_filestat_get!(fd, 0, name.ptr, name.len, stat)).toBe(ERRNO.NOENT);
    }
    expect(fs.readdirSync(host)).toEqual([]);
    expect(hostErrors).toEqual([]);
    // The same target without the NUL is a symlink like any other.
    const ok = h.put('ab');
    expect(h.call.path_symlink!(ok.ptr, ok.len, 3, name.ptr, name.len)).toBe(0);
    expect(fs.readlinkSync(path.join(host, 'x'))).toBe('ab');
  });
});

describe('errors that are not the OS\'s answer', () => {
  // Found by the fuzzer: Node's own ERR_* codes start with "E" too, so they were taken for errnos
  // and became a silent EIO; they are capsa bugs and must reach the host-error handler.
  const nodeArgError = Object.assign(new TypeError('The argument must be a string without null bytes'), { code: 'ERR_INVALID_ARG_VALUE' });
  const systemError = Object.assign(new Error('ENOENT: no such file'), { code: 'ENOENT' });

  it('an ERR_* error is a host error (EIO, reported); a system error keeps its errno, unreported', () => {
    const seen: string[] = [];
    expect(toErrno('fd_write', nodeArgError, (call) => seen.push(call))).toBe(ERRNO.IO);
    expect(seen).toEqual(['fd_write']);
    expect(toErrno('fd_write', systemError, (call) => seen.push(`again ${call}`))).toBe(ERRNO.NOENT);
    expect(seen).toEqual(['fd_write']);
  });

  it('fsErrno converts system errors and lets anything else through', () => {
    expect(fsErrno(systemError).errno).toBe(ERRNO.NOENT);
    expect(fsErrno(Object.assign(new Error('odd'), { code: 'EUCLEAN' })).errno).toBe(ERRNO.IO);
    expect(() => fsErrno(nodeArgError)).toThrow(nodeArgError);
    expect(() => fsErrno(new RangeError('a bug'))).toThrow(RangeError);
  });
});

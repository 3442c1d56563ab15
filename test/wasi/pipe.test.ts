/**
 * pipe() and process descriptors at the WASI layer: POSIX EOF and EPIPE, non-blocking ends, rights
 * that only shrink, and poll_oneoff over pipes, process descriptors and clocks together.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { CLOCKID, ERRNO, EVENTTYPE, FDFLAGS } from '../../src/wasi/constants.js';
import { claimPipeHolder, createPipeBuffer, PIPE_CAPACITY, PipeHandle, releasePipeHolder } from '../../src/wasi/pipe.js';
import { createProcessCell, exitStatus, PROC_ENDED, PROC_PID, PROC_RUNNING, PROC_STATE, PROC_STATUS, type Spawner } from '../../src/wasi/procdesc.js';
import { R } from '../../src/wasi/rights.js';
import { harness, type Harness } from '../helpers/harness.js';

const opened: Harness[] = [];
afterEach(() => { for (const h of opened.splice(0)) h.wasi.context.fds.closeAll(); });

function make(): Harness {
  const h = harness();
  opened.push(h);
  return h;
}
const caps = (h: Harness) => h.wasi.getImportObject()['capsicum'] as Record<string, (...a: number[]) => number>;
function pipe(h: Harness): { r: number; w: number } {
  const out = h.alloc(8);
  expect(caps(h).pipe!(out)).toBe(ERRNO.SUCCESS);
  return { r: h.u32(out), w: h.u32(out + 4) };
}

interface Sub { type: number; fd?: number; ms?: number; userdata: bigint }
/** poll_oneoff over `subs`; returns the userdata and error of each event. */
function poll(h: Harness, subs: Sub[]): { userdata: bigint; error: number }[] {
  const inPtr = h.alloc(48 * subs.length);
  const outPtr = h.alloc(32 * subs.length);
  const n = h.alloc(4);
  const dv = new DataView(h.memory.buffer);
  subs.forEach((s, i) => {
    const p = inPtr + i * 48;
    dv.setBigUint64(p, s.userdata, true);
    dv.setUint8(p + 8, s.type);
    if (s.type === EVENTTYPE.CLOCK) {
      dv.setUint32(p + 16, CLOCKID.MONOTONIC, true);
      dv.setBigUint64(p + 24, BigInt(s.ms!) * 1_000_000n, true);
    } else dv.setUint32(p + 16, s.fd!, true);
  });
  expect(h.call.poll_oneoff!(inPtr, outPtr, subs.length, n)).toBe(ERRNO.SUCCESS);
  const out: { userdata: bigint; error: number }[] = [];
  const dv2 = new DataView(h.memory.buffer);
  for (let i = 0; i < h.u32(n); i++) out.push({ userdata: dv2.getBigUint64(outPtr + i * 32, true), error: dv2.getUint16(outPtr + i * 32 + 8, true) });
  return out;
}

describe('pipe()', () => {
  it('carries bytes from the write end to the read end, in order', () => {
    const h = make();
    const p = pipe(h);
    expect(h.write(p.w, 'hello ')).toBe(ERRNO.SUCCESS);
    expect(h.write(p.w, 'world')).toBe(ERRNO.SUCCESS);
    expect(h.read(p.r, 100)).toEqual([ERRNO.SUCCESS, 'hello world']);
  });

  it('reads EOF (0 bytes) once it is empty and the last write end is closed', () => {
    const h = make();
    const p = pipe(h);
    expect(h.write(p.w, 'tail')).toBe(ERRNO.SUCCESS);
    expect(h.call.fd_close!(p.w)).toBe(ERRNO.SUCCESS);
    expect(h.read(p.r, 100)).toEqual([ERRNO.SUCCESS, 'tail']);
    expect(h.read(p.r, 100)).toEqual([ERRNO.SUCCESS, '']);
  });

  it('a write with no read end left is EPIPE, and writes nothing', () => {
    const h = make();
    const p = pipe(h);
    expect(h.call.fd_close!(p.r)).toBe(ERRNO.SUCCESS);
    expect(h.write(p.w, 'lost')).toBe(ERRNO.PIPE);
  });

  it('an end held by another guest keeps the pipe open until that guest is released', () => {
    const h = make();
    const p = pipe(h);
    const sab = (h.wasi.context.fds.peek(p.w)!.handle as PipeHandle).sab;
    // A child (pid 7) holds the write end; the parent closes its own.
    expect(claimPipeHolder(sab, 'write', 7)).toBe(true);
    expect(h.call.fd_close!(p.w)).toBe(ERRNO.SUCCESS);
    expect(h.call.fd_fdstat_set_flags!(p.r, FDFLAGS.NONBLOCK)).toBe(ERRNO.SUCCESS);
    expect(h.read(p.r)[0]).toBe(ERRNO.AGAIN);
    // The host ends the child: its slot is released, and the reader sees EOF.
    expect(releasePipeHolder(sab, 7)).toBe(1);
    expect(releasePipeHolder(sab, 7)).toBe(0);
    expect(h.read(p.r)).toEqual([ERRNO.SUCCESS, '']);
  });

  it('non-blocking ends: EAGAIN on an empty pipe, a short write then EAGAIN on a full one', () => {
    const h = make();
    const p = pipe(h);
    expect(h.call.fd_fdstat_set_flags!(p.r, FDFLAGS.NONBLOCK)).toBe(ERRNO.SUCCESS);
    expect(h.call.fd_fdstat_set_flags!(p.w, FDFLAGS.NONBLOCK)).toBe(ERRNO.SUCCESS);
    expect(h.read(p.r)[0]).toBe(ERRNO.AGAIN);
    const big = new Uint8Array(PIPE_CAPACITY + 100);
    const handle = h.wasi.context.fds.peek(p.w)!.handle as PipeHandle;
    expect(handle.write([big])).toBe(PIPE_CAPACITY);
    expect(h.write(p.w, 'x')).toBe(ERRNO.AGAIN);
  });

  it('the read end cannot write, the write end cannot read, and neither can gain the right', () => {
    const h = make();
    const p = pipe(h);
    expect(h.write(p.r, 'x')).toBe(ERRNO.NOTCAPABLE);
    expect(h.read(p.w)[0]).toBe(ERRNO.NOTCAPABLE);
    const [, st] = h.fdstat(p.w);
    expect(st.base & R.fd_read).toBe(0n);
    expect(h.call.fd_fdstat_set_rights!(p.w, st.base | R.fd_read, 0n)).toBe(ERRNO.NOTCAPABLE);
    expect(h.call.fd_seek!(p.r, 0n, 0, h.alloc(8))).toBe(ERRNO.NOTCAPABLE);
  });

  it('is refused with EMFILE when the descriptor table has room for one end only', () => {
    const h = harness({ maxFds: 4 });
    opened.push(h);
    expect(caps(h).pipe!(h.alloc(8))).toBe(ERRNO.MFILE);
    expect(h.wasi.context.fds.size).toBe(3);
  });
});

describe('poll_oneoff over pipes, process descriptors and clocks', () => {
  function withChild(h: Harness): { pd: number; cell: Int32Array; kills: number[] } {
    const cell = createProcessCell();
    const kills: number[] = [];
    const spawner: Spawner = {
      spawn: () => { cell[PROC_PID] = 9; cell[PROC_STATE] = PROC_RUNNING; return cell; },
      kill: (_pid, sig) => kills.push(sig),
    };
    h.wasi.context.spawner = spawner;
    // The module file: any regular file held with CAP_FEXECVE.
    const [rc, fd] = h.open(3, 'm.wasm');
    expect(rc).toBe(ERRNO.SUCCESS);
    const out = h.alloc(8);
    expect(caps(h).pdspawn!(fd, 0, 0, 0, 0, 0, out, out + 4)).toBe(ERRNO.SUCCESS);
    return { pd: h.u32(out), cell, kills };
  }

  it('a clock ends the wait while neither the pipe nor the child is ready; then each becomes ready in turn', () => {
    const h = harness({ preopens: [{ guest: '/m', memory: { 'm.wasm': 'x' } }] });
    opened.push(h);
    const p = pipe(h);
    const { pd, cell } = withChild(h);
    const subs: Sub[] = [
      { type: EVENTTYPE.FD_READ, fd: p.r, userdata: 1n },
      { type: EVENTTYPE.FD_READ, fd: pd, userdata: 2n },
      { type: EVENTTYPE.CLOCK, ms: 20, userdata: 3n },
    ];
    expect(poll(h, subs)).toEqual([{ userdata: 3n, error: 0 }]);
    expect(h.write(p.w, 'x')).toBe(ERRNO.SUCCESS);
    expect(poll(h, subs)).toEqual([{ userdata: 1n, error: 0 }]);
    expect(h.read(p.r)[1]).toBe('x');
    // The host ends the child and wakes the run's Waker.
    cell[PROC_STATUS] = exitStatus(5);
    Atomics.store(cell, PROC_STATE, PROC_ENDED);
    h.wasi.context.waker.wake();
    expect(poll(h, subs)).toEqual([{ userdata: 2n, error: 0 }]);
    const st = h.alloc(4);
    expect(caps(h).pdwait!(pd, st, 0)).toBe(ERRNO.SUCCESS);
    expect(h.u32(st)).toBe(exitStatus(5));
  });

  it('a process descriptor without CAP_EVENT is an ENOTCAPABLE event; pdwait WNOHANG is EAGAIN while the child runs', () => {
    const h = harness({ preopens: [{ guest: '/m', memory: { 'm.wasm': 'x' } }] });
    opened.push(h);
    const { pd } = withChild(h);
    expect(caps(h).pdwait!(pd, h.alloc(4), 1)).toBe(ERRNO.AGAIN);
    expect(caps(h).pdwait!(pd, h.alloc(4), 2)).toBe(ERRNO.INVAL);
    const [, st] = h.fdstat(pd);
    expect(h.call.fd_fdstat_set_rights!(pd, st.base & ~R.poll_fd_readwrite, 0n)).toBe(ERRNO.SUCCESS);
    expect(poll(h, [{ type: EVENTTYPE.FD_READ, fd: pd, userdata: 4n }])).toEqual([{ userdata: 4n, error: ERRNO.NOTCAPABLE }]);
  });

  it('closing the descriptor of a running child kills it (SIGKILL); pdkill sends the signal asked for', () => {
    const h = harness({ preopens: [{ guest: '/m', memory: { 'm.wasm': 'x' } }] });
    opened.push(h);
    const { pd, kills } = withChild(h);
    expect(caps(h).pdkill!(pd, 0)).toBe(ERRNO.INVAL);
    expect(caps(h).pdkill!(pd, 15)).toBe(ERRNO.SUCCESS);
    expect(h.call.fd_close!(pd)).toBe(ERRNO.SUCCESS);
    expect(kills).toEqual([15, 9]);
  });

  it('pdspawn without a host to start children is ENOSYS; a module fd that is a pipe is EACCES', () => {
    const h = harness({ preopens: [{ guest: '/m', memory: { 'm.wasm': 'x' } }] });
    opened.push(h);
    const [, fd] = h.open(3, 'm.wasm');
    const out = h.alloc(8);
    expect(caps(h).pdspawn!(fd, 0, 0, 0, 0, 0, out, out + 4)).toBe(ERRNO.NOSYS);
    h.wasi.context.spawner = { spawn: () => { throw new Error('not reached'); }, kill: () => {} };
    const p = pipe(h);
    // A pipe holds no CAP_FEXECVE: ENOTCAPABLE before anything else.
    expect(caps(h).pdspawn!(p.r, 0, 0, 0, 0, 0, out, out + 4)).toBe(ERRNO.NOTCAPABLE);
  });
});

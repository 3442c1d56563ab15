import { randomFillSync } from 'node:crypto';
import { cpuUsage } from 'node:process';
import { CLOCKID, ERRNO } from '../constants.js';
import { fail, ProcExit } from '../errors.js';
import { monotonicNs, realtimeNs } from '../clock.js';
import type { StringList, WasiContext } from '../context.js';

/** Nanoseconds on `id`'s clock; EINVAL for an unknown clock. */
export function clockNow(id: number): bigint {
  switch (id) {
    case CLOCKID.REALTIME: return realtimeNs();
    case CLOCKID.MONOTONIC: return monotonicNs();
    case CLOCKID.PROCESS_CPUTIME_ID:
    case CLOCKID.THREAD_CPUTIME_ID: {
      const u = cpuUsage();
      return BigInt(u.user + u.system) * 1000n;
    }
    default: return fail(ERRNO.INVAL, `clock ${id} does not exist`);
  }
}

/** args_*, environ_*, clock_*, random_get, proc_*, sched_yield. */
export function envCalls(ctx: WasiContext) {
  const { mem } = ctx;

  const sizes = (list: StringList, countPtr: number, sizePtr: number): number => {
    mem.sync().check(countPtr >>> 0, 4);
    mem.setU32(sizePtr, list.bytes.length);
    mem.setU32(countPtr, list.count);
    return ERRNO.SUCCESS;
  };
  const get = (list: StringList, ptrsPtr: number, bufPtr: number): number => {
    mem.sync();
    ptrsPtr >>>= 0; bufPtr >>>= 0;
    mem.check(ptrsPtr, list.count * 4);
    mem.bytes(bufPtr, list.bytes.length).set(list.bytes);
    list.offsets.forEach((off, i) => mem.setU32(ptrsPtr + i * 4, bufPtr + off));
    return ERRNO.SUCCESS;
  };

  return {
    args_sizes_get: (countPtr: number, sizePtr: number) => sizes(ctx.args, countPtr, sizePtr),
    args_get: (argv: number, buf: number) => get(ctx.args, argv, buf),
    environ_sizes_get: (countPtr: number, sizePtr: number) => sizes(ctx.env, countPtr, sizePtr),
    environ_get: (environ: number, buf: number) => get(ctx.env, environ, buf),

    clock_res_get(id: number, out: number): number {
      clockNow(id);
      const res = id === CLOCKID.REALTIME || id === CLOCKID.MONOTONIC ? 1n : 1000n;
      mem.sync().setU64(out, res);
      return ERRNO.SUCCESS;
    },
    clock_time_get(id: number, _precision: bigint, out: number): number {
      mem.sync().setU64(out, clockNow(id));
      return ERRNO.SUCCESS;
    },
    random_get(buf: number, len: number): number {
      randomFillSync(mem.sync().bytes(buf, len));
      return ERRNO.SUCCESS;
    },
    proc_exit(code: number): never {
      throw new ProcExit(code >>> 0);
    },
    proc_raise(_sig: number): number {
      return ERRNO.NOSYS;
    },
    sched_yield(): number {
      return ERRNO.SUCCESS;
    },
  };
}

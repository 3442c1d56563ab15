import { ERRNO } from './constants.js';
import { RunTermination, WasiError } from './errors.js';
import type { WasiContext } from './context.js';
import { fsErrno } from './fs/hostfs.js';
import { envCalls } from './syscalls/env.js';
import { fdCalls } from './syscalls/fd.js';
import { pathCalls } from './syscalls/path.js';
import { pollCalls } from './syscalls/poll.js';

/** The 46 function names of wasi_snapshot_preview1, in witx order. */
export const PREVIEW1_FUNCTIONS = [
  'args_get', 'args_sizes_get', 'environ_get', 'environ_sizes_get', 'clock_res_get', 'clock_time_get',
  'fd_advise', 'fd_allocate', 'fd_close', 'fd_datasync', 'fd_fdstat_get', 'fd_fdstat_set_flags',
  'fd_fdstat_set_rights', 'fd_filestat_get', 'fd_filestat_set_size', 'fd_filestat_set_times', 'fd_pread',
  'fd_prestat_get', 'fd_prestat_dir_name', 'fd_pwrite', 'fd_read', 'fd_readdir', 'fd_renumber', 'fd_seek',
  'fd_sync', 'fd_tell', 'fd_write', 'path_create_directory', 'path_filestat_get', 'path_filestat_set_times',
  'path_link', 'path_open', 'path_readlink', 'path_remove_directory', 'path_rename', 'path_symlink',
  'path_unlink_file', 'poll_oneoff', 'proc_exit', 'proc_raise', 'sched_yield', 'random_get', 'sock_accept',
  'sock_recv', 'sock_send', 'sock_shutdown',
] as const;

export type Preview1Name = (typeof PREVIEW1_FUNCTIONS)[number];
type Syscall = (...args: never[]) => number;

/** Called when a syscall fails because of the host, not the guest (a bug or an I/O error). */
export type HostErrorHandler = (call: string, error: unknown) => void;

/**
 * Turns anything thrown below the import boundary into an errno. Only a RunTermination (proc_exit,
 * a limit) unwinds the guest;
 * everything else becomes a number the guest can handle, so no guest input can throw into the host.
 */
export function toErrno(call: string, e: unknown, onHostError?: HostErrorHandler): number {
  if (e instanceof WasiError) return e.errno;
  if (e instanceof RunTermination) throw e;
  // A system error is the OS's answer; Node's own ERR_* codes (an argument it refused) are capsa's bugs.
  const code = (e as NodeJS.ErrnoException)?.code;
  if (typeof code === 'string' && code.startsWith('E') && !code.startsWith('ERR_')) return fsErrno(e).errno;
  onHostError?.(call, e);
  return ERRNO.IO;
}

/** Wraps a syscall so that it returns an errno instead of throwing; arity-specific for speed. */
export function guard<F extends Syscall>(call: string, fn: F, onHostError?: HostErrorHandler): F {
  const f = fn as unknown as (...a: unknown[]) => number;
  const fail = (e: unknown) => toErrno(call, e, onHostError);
  let g: (...a: never[]) => number;
  switch (f.length) {
    case 0: g = () => { try { return f(); } catch (e) { return fail(e); } }; break;
    case 1: g = (a: never) => { try { return f(a); } catch (e) { return fail(e); } }; break;
    case 2: g = (a: never, b: never) => { try { return f(a, b); } catch (e) { return fail(e); } }; break;
    case 3: g = (a: never, b: never, c: never) => { try { return f(a, b, c); } catch (e) { return fail(e); } }; break;
    case 4: g = (a: never, b: never, c: never, d: never) => { try { return f(a, b, c, d); } catch (e) { return fail(e); } }; break;
    case 5: g = (a: never, b: never, c: never, d: never, e5: never) => { try { return f(a, b, c, d, e5); } catch (e) { return fail(e); } }; break;
    default: g = (...a: never[]) => { try { return f(...a); } catch (e) { return fail(e); } };
  }
  return g as F;
}

/** Builds the wasi_snapshot_preview1 import object for one guest. */
export function createPreview1(ctx: WasiContext, onHostError?: HostErrorHandler): Record<Preview1Name, Syscall> {
  const raw: Record<string, Syscall> = { ...envCalls(ctx), ...fdCalls(ctx), ...pathCalls(ctx), ...pollCalls(ctx) };
  const out = {} as Record<Preview1Name, Syscall>;
  for (const name of PREVIEW1_FUNCTIONS) {
    const fn = raw[name];
    if (fn === undefined) throw new Error(`capsa bug: ${name} has no implementation`);
    out[name] = guard(name, fn, onHostError);
  }
  return out;
}

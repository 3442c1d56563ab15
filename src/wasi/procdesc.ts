/**
 * Process descriptors (FreeBSD's pdfork(2) family): a descriptor for a child guest that the parent
 * waits on, polls, kills, and whose close ends the child. The child runs on another worker; what
 * the parent's thread sees of it is one shared cell the host writes when the child ends, and the
 * family's Waker, which the host wakes at the same moment.
 */
import { ERRNO, FILETYPE } from './constants.js';
import { fail } from './errors.js';
import type { FdEntry } from './fdtable.js';
import { Handle } from './handles.js';
import type { Stat } from './fs/types.js';
import { R } from './rights.js';
import type { Waker } from './wake.js';

/** Cell layout: [STATE, PID, STATUS]. */
export const PROC_STATE = 0;
export const PROC_PID = 1;
export const PROC_STATUS = 2;
/** STATE values; a negative STATE is the errno of a spawn the host refused. */
export const PROC_STARTING = 0;
export const PROC_RUNNING = 1;
export const PROC_ENDED = 2;

/** A new process cell, shared by the parent's worker and the host. */
export function createProcessCell(): Int32Array {
  return new Int32Array(new SharedArrayBuffer(16));
}

/** Signals a guest may send with pdkill; every one of them ends the child (guests have no handlers). */
export const SIGNALS = { SIGHUP: 1, SIGINT: 2, SIGILL: 4, SIGABRT: 6, SIGKILL: 9, SIGTERM: 15 } as const;

/** The wait(2) status of a child that exited with `code`. */
export function exitStatus(code: number): number {
  return (code & 0xff) << 8;
}

/** The wait(2) status of a child ended by signal `sig`. */
export function signalStatus(sig: number): number {
  return sig & 0x7f;
}

/** What a guest asks the host to start. */
export interface SpawnRequest {
  /** Reads the module's bytes, through a descriptor holding CAP_FEXECVE (only once the host may start a child). */
  module: () => Uint8Array;
  argv: string[];
  /** The parent's descriptors to pass, in order: the child's fds 0, 1, …; rights as the parent holds them. */
  fds: FdEntry[];
}

/** Starts child guests for a context; the host provides it (src/host/worker/spawner.ts). */
export interface Spawner {
  /** Starts a child; returns its process cell once the host has a pid for it (STATE is then RUNNING or ENDED). Throws WasiError. */
  spawn(request: SpawnRequest): Int32Array;
  /** Delivers `sig` to the child `pid` (any signal ends it). */
  kill(pid: number, sig: number): void;
}

/** A process descriptor. */
export class ProcessHandle extends Handle {
  readonly filetype = FILETYPE.UNKNOWN;
  constructor(readonly cell: Int32Array, private readonly spawner: Spawner, private readonly waker: Waker) { super(); }

  get pid(): number {
    return Atomics.load(this.cell, PROC_PID);
  }
  get ended(): boolean {
    return Atomics.load(this.cell, PROC_STATE) === PROC_ENDED;
  }

  /** The child's wait status; blocks until it ends unless `nohang` (then EAGAIN while it runs). */
  wait(nohang: boolean): number {
    for (;;) {
      const seq = this.waker.seq;
      if (this.ended) return Atomics.load(this.cell, PROC_STATUS);
      if (nohang) return fail(ERRNO.AGAIN, 'the child is still running');
      this.waker.sleep(seq, Infinity);
    }
  }

  kill(sig: number): void {
    if (!this.ended) this.spawner.kill(this.pid, sig);
  }

  override read(): number { return fail(ERRNO.BADF, 'a process descriptor cannot be read'); }
  override write(): number { return fail(ERRNO.BADF, 'a process descriptor cannot be written'); }
  override readReady(): boolean { return this.ended; }
  override writeReady(): boolean { return false; }
  override pollRights(): bigint { return R.poll_fd_readwrite; }
  override stat(): Stat {
    return { dev: 0n, ino: BigInt(this.pid), nlink: 1n, size: 0n, atim: 0n, mtim: 0n, ctim: 0n, filetype: this.filetype };
  }
  /** Closing the (only) descriptor of a running child ends it, as FreeBSD's procdesc does without PD_DAEMON. */
  override close(): void {
    this.kill(SIGNALS.SIGKILL);
  }
}

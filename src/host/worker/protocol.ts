import type { Limits } from '../limits.js';
import type { TrapFrame, TrapKind } from '../trap.js';
import type { ArgNode, DirGrant } from '../grants.js';
import type { NetSpec } from '../net/owner.js';
import type { PumpedInput } from '../../wasi/input-pump.js';
import type { PumpedOutput } from '../../wasi/output-pump.js';

export type { DirGrant };

/** Everything a worker needs to run one guest, as plain data that crosses postMessage. */
export interface GuestSpec {
  args: string[];
  env: Record<string, string>;
  /** Bytes, a host fd read by the guest's thread (a regular file), or a ring the host pumps a pipe into. */
  stdin: Uint8Array | number | PumpedInput | undefined;
  /**
   * The cell of the run's Waker (src/wasi/wake.ts), when another thread must wake the guest: the
   * host thread pumping stdin, or serving its sockets (then it is the net memory's cell). One cell
   * per run, whatever wakes it; the run's children sleep on it too (the pool's run tree).
   */
  waker?: Int32Array | undefined;
  /** In-memory files by guest path; each top-level directory becomes a preopen. */
  files: Record<string, string | Uint8Array>;
  dirs: DirGrant[];
  /** The CloudABI argdata tree the guest reads through the argdata imports. */
  argdata?: ArgNode | undefined;
  /** The run's sockets, owned by the host thread (src/host/net). */
  net?: NetSpec | undefined;
  /** Rights of fds 0-2, when narrowed (pledge's stdio). */
  stdioRights?: bigint | undefined;
  limits: Limits;
  audit: 'off' | 'denied' | 'all';
  auditMax: number;
  /**
   * The operator's configuration of the Casper services the guest's worker answers itself
   * (src/casper/services/in-worker.ts), by service name; absent, every Casper request crosses to
   * the broker on the host thread.
   */
  casperInWorker?: Record<string, unknown> | undefined;
  /** Host functions the guest imports: served on the host thread through the bridge. */
  functions: { module: string; name: string }[];
  tty: boolean;
  /** Hand output to the host as it is written (streaming; see STREAM_QUIET_MS) rather than when the output ring fills or the run ends. */
  stream: boolean;
  /** Write stdout/stderr straight to these host fds (the CLI), instead of posting them. */
  stdoutFd?: number;
  stderrFd?: number;
  /** Call this export with these arguments (converted by `params`) instead of _start. */
  invoke?: { name: string; args: string[]; params: ('i32' | 'i64' | 'f32' | 'f64')[] };
  /** Rings the host thread writes to stdoutFd and stderrFd, when those are pipes or terminals. */
  stdoutPump?: PumpedOutput | undefined;
  stderrPump?: PumpedOutput | undefined;
  /** A child guest's descriptors, passed by its parent: it starts with exactly these (fds 0…n-1), no stdio, no preopens. */
  passed?: PassedFd[] | undefined;
}

/** A descriptor crossing from a parent guest to its child (./spawner.ts), with the rights the parent held. */
export type PassedFd = { base: bigint; inheriting: bigint; fdflags: number } & (
  | { kind: 'pipe'; sab: SharedArrayBuffer; side: 'read' | 'write' }
  /** The run's stdout or stderr. */
  | { kind: 'output'; fd: 1 | 2 }
  /** A read-only regular file, as a copy of its bytes and the parent's offset. */
  | { kind: 'file'; bytes: Uint8Array; offset: number });

/** Who a run is in its run tree: its pid, the tree's shared Waker cell, and what a child of it may have. */
export interface ProcessInfo {
  pid: number;
  /** The Int32 cell every guest of the tree sleeps on (src/wasi/wake.ts), a view into shared memory. */
  waker: Int32Array;
  /** The memory cap a child module is compiled with. */
  childMemoryBytes: number;
}

/** host → worker */
export type ToWorker =
  | { type: 'run'; id: number; module: WebAssembly.Module; spec: GuestSpec; bridge?: SharedArrayBuffer; proc?: ProcessInfo };

/** What the worker decided about a run; the host adds usage and output. */
export interface WorkerOutcome {
  status: 'exited' | 'trapped' | 'memory_limit' | 'output_limit' | 'host_error';
  exitCode?: number;
  trap?: { kind: TrapKind; message: string; frames?: TrapFrame[] };
  returned?: string[];
  message?: string;
  files: Record<string, Uint8Array>;
  peakMemoryBytes: number;
  cpuNs: number;
  auditDropped: number;
}

/** What a worker starts with. */
export interface WorkerData {
  /** Its slot's output ring (./output-ring.ts): output and audit events go there, not through messages. */
  ring: SharedArrayBuffer;
  /**
   * Two Int32: the id of the run the worker is on and its phase (PHASE_*). Written, never posted:
   * a message per phase would wake the host thread twice more per run for a fact it needs only
   * when the worker dies (did the heap run out while the module was instantiated?).
   */
  phase: SharedArrayBuffer;
}

/** The worker is building what the module declares (tables, element segments, start function). */
export const PHASE_INSTANTIATING = 1;
/** The guest's own code runs. */
export const PHASE_STARTED = 2;

/**
 * A streaming run's writes in its first milliseconds do not wake the host thread: the pool's
 * clock (every POOL_TICK_MS) or the run's end drains them. Most runs are short, and a wake per
 * write plus one for the end cost the host thread a turn of its event loop each.
 */
export const STREAM_QUIET_MS = 5;

/** How often the pool samples its busy workers' CPU clocks and drains their output rings. */
export const POOL_TICK_MS = 10;

/** worker → host */
export type FromWorker =
  | { type: 'ready'; tid: number | undefined }
  /** The guest asks for a child (capsicum.pdspawn); the host answers in `cell` (src/wasi/procdesc.ts). */
  | { type: 'spawn'; id: number; cell: Int32Array; module: WebAssembly.Module; argv: string[]; fds: PassedFd[] }
  /** The guest signals its child `pid` (pdkill, or the close of its process descriptor). */
  | { type: 'kill'; id: number; pid: number; sig: number }
  /** The end of a run; everything it wrote is in the output ring by then. */
  | { type: 'done'; id: number; outcome: WorkerOutcome };

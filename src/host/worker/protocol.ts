import type { Limits } from '../limits.js';
import type { TrapKind } from '../trap.js';
import type { ArgNode } from '../grants.js';
import type { NetSpec } from '../net/owner.js';

/** A directory the guest starts with: a host directory, or an in-memory one (seeded from `files`). */
export interface DirGrant {
  guest: string;
  /** The host directory to mount; omit for an in-memory directory. */
  host?: string;
  /** Drop every right that writes or changes the namespace. */
  readonly?: boolean;
  /** The rights of the directory fd (narrowed further by its type); default: all a directory can hold. */
  rights?: { base: bigint; inheriting: bigint };
  /** Revoked when the guest calls cap_enter(). */
  initOnly?: boolean;
}

/** Everything a worker needs to run one guest, as plain data that crosses postMessage. */
export interface GuestSpec {
  args: string[];
  env: Record<string, string>;
  stdin: Uint8Array | number | undefined;
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
  /** Host functions the guest imports: served on the host thread through the bridge. */
  functions: { module: string; name: string }[];
  tty: boolean;
  /** Wake the host on every write (streaming) rather than when the output ring fills or the run ends. */
  stream: boolean;
  /** Write stdout/stderr straight to these host fds (the CLI), instead of posting them. */
  stdoutFd?: number;
  stderrFd?: number;
}

/** host → worker */
export type ToWorker =
  | { type: 'run'; id: number; module: WebAssembly.Module; spec: GuestSpec; bridge?: SharedArrayBuffer };

/** What the worker decided about a run; the host adds usage and output. */
export interface WorkerOutcome {
  status: 'exited' | 'trapped' | 'memory_limit' | 'output_limit' | 'host_error';
  exitCode?: number;
  trap?: { kind: TrapKind; message: string };
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
}

/** worker → host */
export type FromWorker =
  | { type: 'ready'; tid: number | undefined }
  /** Sent just before the module is instantiated: until the guest's code starts, only what it declares is being built. */
  | { type: 'instantiating'; id: number }
  | { type: 'started'; id: number }
  /** The end of a run; everything it wrote is in the output ring by then. */
  | { type: 'done'; id: number; outcome: WorkerOutcome };

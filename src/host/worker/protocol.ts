import type { Limits } from '../limits.js';
import type { AuditEvent } from '../result.js';
import type { TrapKind } from '../trap.js';

/** A host directory mounted into a run (the CLI's --dir). */
export interface DirGrant {
  guest: string;
  host: string;
  readonly?: boolean;
}

/** Everything a worker needs to run one guest, as plain data that crosses postMessage. */
export interface GuestSpec {
  args: string[];
  env: Record<string, string>;
  stdin: Uint8Array | number | undefined;
  /** In-memory files by guest path; each top-level directory becomes a preopen. */
  files: Record<string, string | Uint8Array>;
  dirs: DirGrant[];
  limits: Limits;
  audit: 'off' | 'denied' | 'all';
  auditMax: number;
  /** Host functions the guest imports: served on the host thread through the bridge. */
  functions: { module: string; name: string }[];
  tty: boolean;
  /** Post output as it comes (streaming) rather than in large batches. */
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

/** worker → host */
export type FromWorker =
  | { type: 'ready'; tid: number | undefined }
  | { type: 'output'; id: number; fd: 1 | 2; data: Uint8Array }
  | { type: 'audit'; id: number; events: AuditEvent[] }
  /** The end of a run, carrying the output and audit events not sent yet (one message, not three). */
  | { type: 'done'; id: number; outcome: WorkerOutcome; stdout?: Uint8Array; stderr?: Uint8Array; audit?: AuditEvent[] };

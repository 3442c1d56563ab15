import type { TrapFrame, TrapKind } from './trap.js';

/** How a run ended. Every run ends with exactly one. */
export type RunStatus = 'exited' | 'trapped' | 'timeout' | 'memory_limit' | 'output_limit' | 'cancelled' | 'invalid_module' | 'host_error';

/** One capability decision, as recorded in a run's audit trail. */
export interface AuditEvent {
  seq: number;
  /** Milliseconds since the run started. */
  t: number;
  call: string;
  fd: number;
  path?: string;
  /** Capsicum names. */
  rightsNeeded: string[];
  rightsHeld: string[];
  decision: 'allowed' | 'denied';
  errno: number;
  message?: string;
  /** path_open: the descriptor it opened, and the rights asked for it (Capsicum names). */
  openedFd?: number;
  rightsRequested?: string[];
  /** The child guest that made the decision (capsicum.pdspawn); absent for the run's own guest. */
  pid?: number;
}

/** How one child guest of a run ended (capsicum.pdspawn). */
export interface ChildStatus {
  pid: number;
  /** The pid of the guest that started it; the run's own guest is the first pid of its tree. */
  parentPid: number;
  /** `killed`: by its parent's pdkill or close, or because its parent or the run ended. */
  status: RunStatus | 'killed';
  exitCode?: number;
  /** For `killed`: the signal. */
  signal?: number;
  message?: string;
  usage: Usage;
}

/** Resources a run used. */
export interface Usage {
  wallMs: number;
  cpuMs: number;
  peakMemoryBytes: number;
}

/** The outcome of a run. */
export interface RunResult {
  status: RunStatus;
  /** Whether the guest or the host is responsible for the way it ended. */
  blame: 'guest' | 'host';
  /** For `exited`. */
  exitCode?: number;
  /** For `trapped`: the kind, the engine's message, and the wasm backtrace, innermost first. */
  trap?: { kind: TrapKind; message: string; frames?: TrapFrame[] };
  /** For a run with `invoke`: what the function returned, as text ("42", "-1", "1.5"). */
  returned?: string[];
  /** For `timeout`: which clock ran out. */
  timeout?: 'wall' | 'cpu';
  /** What happened, in words, for every status but a clean exit. */
  message?: string;
  stdout: Uint8Array;
  stderr: Uint8Array;
  /** The in-memory files after the run, by guest path. */
  files: Record<string, Uint8Array>;
  usage: Usage;
  audit: { events: AuditEvent[]; dropped: number };
  /** The child guests the run started, in the order they ended (at most 256; `childrenDropped` counts the rest). */
  children?: ChildStatus[];
  childrenDropped?: number;
  /** Problems on the host's side that did not end the run, e.g. a host function that threw. */
  warnings?: string[];
}

/** What host.run and host.start give: the result, with `text()` and a readable `JSON.stringify`. */
export interface RunOutput extends RunResult {
  /** stdout (or stderr) as UTF-8 text, like Extism's `output.text()`. */
  text(stream?: 'stdout' | 'stderr'): string;
  /** stdout, stderr and files as text (JSON.stringify of the result calls it). */
  toJSON(): Record<string, unknown>;
}

/** Adds the accessors of a result: `text()` (Extism's `output.text()`) and a readable `toJSON()`. */
export function toRunOutput(r: RunResult): RunOutput {
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  Object.defineProperties(r, {
    text: { value: (stream: 'stdout' | 'stderr' = 'stdout') => decode(r[stream]), enumerable: false },
    toJSON: {
      enumerable: false,
      value: () => ({
        ...r,
        stdout: decode(r.stdout), stderr: decode(r.stderr),
        files: Object.fromEntries(Object.entries(r.files).map(([k, v]) => [k, decode(v)])),
      }),
    },
  });
  return r as RunOutput;
}

/**
 * What a run record holds as JSON text: the request the scheduler starts (effective manifest
 * fields, stdin and files), the engine's result, and the view the API answers with.
 */
import type { RunRequest } from '../../host/host.js';
import type { ChildStatus, RunResult, Usage } from '../../host/result.js';
import type { Limits } from '../../host/limits.js';
import { learnedYaml, learnManifest, observedOf, usagesOf } from '../../manifest/learn.js';
import type { Manifest } from '../../manifest/types.js';
import type { RunEventRecord, RunRecord, RunState } from '../store/types.js';
import { TERMINAL } from '../store/rows.js';
import { b64, decodeTagged, encodeTagged, fromB64, iso, toText, type Encoding } from '../encoding.js';

/** Whether a run in this state has ended (the store's list of terminal states). */
export const isTerminal = (s: RunState): boolean => TERMINAL.has(s);

/** The parts of a RunRequest a stored run carries (the module comes from the store, the signal from the scheduler). */
export type StoredRunFields = Omit<RunRequest, 'module' | 'signal' | 'functions' | 'stdinFd' | 'stdoutFd' | 'stderrFd' | 'tty'>;

interface StoredRequest {
  v: 1;
  /** The manifest as the tenant sent it (YAML), for the record. */
  manifest: string;
  run: unknown;
  /** With learn: the effective manifest the learned one is narrowed from. */
  learn?: unknown;
  /** Where the run's end is POSTed (webhooks). */
  callbackUrl?: string;
}

/** A run request as the store keeps it (JSON text); `learn` is the effective manifest of a learning run. */
export function encodeRequest(manifest: string, fields: StoredRunFields, learn?: Manifest, callbackUrl?: string): string {
  const stored: StoredRequest = { v: 1, manifest, run: encodeTagged(fields), ...(learn ? { learn: encodeTagged(learn) } : {}), ...(callbackUrl ? { callbackUrl } : {}) };
  return JSON.stringify(stored);
}

/** The inverse of encodeRequest. */
export function decodeRequest(text: string): { manifest: string; fields: StoredRunFields; learn?: Manifest; callbackUrl?: string } {
  const stored = JSON.parse(text) as StoredRequest;
  if (stored?.v !== 1) throw new TypeError(`unknown run request version ${JSON.stringify(stored?.v)}`);
  return {
    manifest: stored.manifest, fields: decodeTagged(stored.run) as StoredRunFields,
    ...(stored.learn !== undefined ? { learn: decodeTagged(stored.learn) as Manifest } : {}),
    ...(typeof stored.callbackUrl === 'string' ? { callbackUrl: stored.callbackUrl } : {}),
  };
}

/** Most bytes of in-memory files kept with a result; past it the files are listed by size only. */
export const RESULT_FILES_BYTES = 1 << 20;

/** The engine's result as stored: bytes in base64, audit events left to the event log. */
export interface StoredResult {
  status: RunState;
  blame: 'guest' | 'host';
  exitCode?: number;
  trap?: { kind: string; message: string };
  timeout?: 'wall' | 'cpu';
  message?: string;
  stdout: string;
  stderr: string;
  files: Record<string, string>;
  /** Sizes of files not kept, when they were above RESULT_FILES_BYTES together. */
  filesOmitted?: Record<string, number>;
  usage: Usage;
  audit: { events: number; dropped: number };
  warnings?: string[];
  children?: ChildStatus[];
  /** With learn: the least manifest for what the run used (YAML). */
  learnedManifest?: string;
}

/**
 * The engine's result as stored; with `learn` (the effective manifest a learning run had), the
 * least manifest read from its audit, or a warning saying why there is none.
 */
export function storedResult(r: RunResult, learn?: Manifest): StoredResult {
  const total = Object.values(r.files).reduce((n, f) => n + f.length, 0);
  const keep = total <= RESULT_FILES_BYTES;
  const out: StoredResult = {
    status: r.status, blame: r.blame, stdout: b64(r.stdout), stderr: b64(r.stderr),
    files: keep ? Object.fromEntries(Object.entries(r.files).map(([p, f]) => [p, b64(f)])) : {},
    usage: r.usage, audit: { events: r.audit.events.length, dropped: r.audit.dropped },
  };
  if (!keep) out.filesOmitted = Object.fromEntries(Object.entries(r.files).map(([p, f]) => [p, f.length]));
  if (r.exitCode !== undefined) out.exitCode = r.exitCode;
  if (r.trap) out.trap = r.trap;
  if (r.timeout) out.timeout = r.timeout;
  if (r.message !== undefined) out.message = r.message;
  if (r.warnings?.length) out.warnings = r.warnings;
  if (r.children?.length) out.children = r.children;
  if (learn) {
    // A partial audit would learn a manifest that lacks what the dropped decisions used.
    if (r.audit.dropped) out.warnings = [...out.warnings ?? [], `learn: ${r.audit.dropped} audit events were dropped (the service keeps ${r.audit.events.length} a run); no manifest was learned`];
    else {
      const u = usagesOf(learn, r.audit.events);
      const seen = observedOf(r);
      out.learnedManifest = learnedYaml(learnManifest(learn, u, seen), learn, u, seen, `a run of ${learn.module ?? 'the module'}`);
    }
  }
  return out;
}

/** A result for a run that ended without the engine (cancelled while queued, interrupted, refused). */
export function syntheticResult(status: RunState, blame: 'guest' | 'host', message: string): StoredResult {
  return { status, blame, message, stdout: '', stderr: '', files: {}, usage: { wallMs: 0, cpuMs: 0, peakMemoryBytes: 0 }, audit: { events: 0, dropped: 0 } };
}

/** A run as the API shows it. */
export interface RunView {
  id: string;
  module: string;
  status: RunState;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  attempts: number;
  /** The node that started its latest attempt. */
  node: string | null;
  exitCode: number | null;
  stdout: string | null;
  stderr: string | null;
  stdoutEncoding?: Encoding;
  stderrEncoding?: Encoding;
  blame?: 'guest' | 'host';
  message?: string;
  trap?: { kind: string; message: string };
  timeout?: 'wall' | 'cpu';
  files?: Record<string, { data: string; encoding: Encoding }>;
  filesOmitted?: Record<string, number>;
  usage?: Usage;
  audit?: { events: number; dropped: number };
  warnings?: string[];
  children?: ChildStatus[];
  learnedManifest?: string;
  /** The limits the run has (its manifest's, completed from the defaults under the policy). */
  limits?: Partial<Limits>;
}

/** The limits a stored request holds, or undefined when it cannot be read. */
function requestLimits(request: string): Partial<Limits> | undefined {
  try {
    return decodeRequest(request).fields.limits;
  } catch {
    return undefined;
  }
}

export function runView(r: RunRecord): RunView {
  const limits = requestLimits(r.request);
  const view: RunView = {
    id: r.id, module: r.moduleId, status: r.state, createdAt: iso(r.createdAt)!, startedAt: iso(r.startedAt), finishedAt: iso(r.finishedAt),
    attempts: r.attempts, node: r.nodeId, exitCode: null, stdout: null, stderr: null, ...(limits ? { limits } : {}),
  };
  if (r.result === null) return view;
  let res: StoredResult;
  try {
    res = JSON.parse(r.result) as StoredResult;
  } catch {
    return { ...view, message: 'the stored result cannot be read' };
  }
  const out = toText(fromB64(res.stdout ?? ''));
  const err = toText(fromB64(res.stderr ?? ''));
  Object.assign(view, {
    exitCode: res.exitCode ?? null, stdout: out.data, stdoutEncoding: out.encoding, stderr: err.data, stderrEncoding: err.encoding,
    blame: res.blame, usage: res.usage, audit: res.audit,
  });
  if (res.message !== undefined) view.message = res.message;
  if (res.trap) view.trap = res.trap;
  if (res.timeout) view.timeout = res.timeout;
  if (res.files && Object.keys(res.files).length) view.files = Object.fromEntries(Object.entries(res.files).map(([p, f]) => [p, toText(fromB64(f))]));
  if (res.filesOmitted) view.filesOmitted = res.filesOmitted;
  if (res.warnings) view.warnings = res.warnings;
  if (res.children) view.children = res.children;
  if (res.learnedManifest !== undefined) view.learnedManifest = res.learnedManifest;
  return view;
}

/**
 * A running run's output so far, from the stdout/stderr events of its current attempt (each chunk
 * is text or base64), so that polling shows progress; finished runs take theirs from the result.
 */
export function withProgress(view: RunView, events: RunEventRecord[]): RunView {
  const o = outputSoFar(events, view.attempts);
  const out = toText(o.stdout);
  const err = toText(o.stderr);
  return { ...view, stdout: out.data, stdoutEncoding: out.encoding, stderr: err.data, stderrEncoding: err.encoding };
}

/** The bytes an attempt of a run wrote, from its stdout/stderr events (each chunk is text or base64). */
export function outputSoFar(events: RunEventRecord[], attempt: number): { stdout: Buffer; stderr: Buffer } {
  const parts: Record<'stdout' | 'stderr', Uint8Array[]> = { stdout: [], stderr: [] };
  for (const e of events) {
    if ((e.type !== 'stdout' && e.type !== 'stderr') || e.attempt !== attempt) continue;
    const d = JSON.parse(e.data) as { data: string; encoding: Encoding };
    parts[e.type].push(d.encoding === 'base64' ? fromB64(d.data) : new TextEncoder().encode(d.data));
  }
  return { stdout: Buffer.concat(parts.stdout), stderr: Buffer.concat(parts.stderr) };
}

/** An event's JSON as clients get it (SSE, the audit trail): its data with the attempt it belongs to. */
export function eventJson(e: RunEventRecord): string {
  return JSON.stringify({ ...(JSON.parse(e.data) as object), attempt: e.attempt });
}

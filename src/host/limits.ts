import { formatBytes, formatDuration } from './units.js';

/** What one run may use. */
export interface Limits {
  /** Wall-clock time from start to end, in ms. */
  wallMs: number;
  /** CPU time of the guest's thread, in ms. */
  cpuMs: number;
  /** The guest's linear memory may not grow past this. */
  memoryBytes: number;
  /** stdout and stderr each; past it the run ends with output_limit. */
  outputBytes: number;
  /** Open descriptors at once. */
  fds: number;
  /** Bytes the run's in-memory files may hold. */
  filesBytes: number;
  /** Elements in all of the module's tables together (the sum of their maxima). */
  tableElements: number;
}

export const LIMIT_FIELDS = ['wallMs', 'cpuMs', 'memoryBytes', 'outputBytes', 'fds', 'filesBytes', 'tableElements'] as const;

/** What a run gets when it asks for nothing. */
export const DEFAULT_LIMITS: Readonly<Limits> = {
  wallMs: 10_000, cpuMs: 10_000, memoryBytes: 256 << 20, outputBytes: 1 << 20, fds: 64, filesBytes: 64 << 20, tableElements: 100_000,
};

/** The most an operator allows unless configured otherwise. */
export const DEFAULT_MAX_LIMITS: Readonly<Limits> = {
  wallMs: 60_000, cpuMs: 60_000, memoryBytes: 1 << 30, outputBytes: 16 << 20, fds: 1024, filesBytes: 256 << 20, tableElements: 1_000_000,
};

/**
 * The most the engine can enforce: the maxima of someone running their own guest (the CLI without
 * --policy), who is their own operator. Timers hold 2^31-1 ms; wasm32 memory is 4 GiB; V8 caps a
 * table at 10,000,000 elements.
 */
export const ENGINE_MAX_LIMITS: Readonly<Limits> = {
  wallMs: 2 ** 31 - 1, cpuMs: 2 ** 31 - 1, memoryBytes: 4 * 1024 ** 3, outputBytes: Number.MAX_SAFE_INTEGER,
  fds: 1 << 20, filesBytes: Number.MAX_SAFE_INTEGER, tableElements: 10_000_000,
};

/** A request that asks for more than the operator allows, or for nonsense; names every field. */
export class LimitError extends Error {
  constructor(readonly problems: string[]) {
    super(problems.join('; '));
    this.name = 'LimitError';
  }
}

const fmt = (field: keyof Limits, v: number): string =>
  field.endsWith('Ms') ? formatDuration(v) : field.endsWith('Bytes') ? formatBytes(v) : String(v);

/**
 * The effective limits of a run: the request over the defaults, checked against the maxima.
 * A request above a maximum is refused, never silently lowered, as Judge0 answers 422.
 */
export function resolveLimits(requested: Partial<Limits> | undefined, defaults: Limits, max: Limits): Limits {
  const out = { ...defaults };
  const problems: string[] = [];
  for (const [k, v] of Object.entries(requested ?? {})) {
    const field = k as keyof Limits;
    if (!(LIMIT_FIELDS as readonly string[]).includes(k)) {
      problems.push(`limits.${k} is not a limit (known: ${LIMIT_FIELDS.join(', ')})`);
      continue;
    }
    if (v === undefined) continue;
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0 || !Number.isInteger(v)) {
      problems.push(`limits.${k} must be a positive whole number, got ${JSON.stringify(v)}`);
      continue;
    }
    if (v > max[field]) {
      problems.push(`limits.${k} ${fmt(field, v)} exceeds the maximum ${fmt(field, max[field])}; ask for at most ${fmt(field, max[field])}`);
      continue;
    }
    out[field] = v;
  }
  if (problems.length) throw new LimitError(problems);
  return out;
}

/** What a run's sockets may use (src/host/net): apart from Limits, since only runs with sockets have them. */
export interface NetLimits {
  /** Connections (accepted or connected) open at once; past it new ones are refused. */
  connections: number;
  /** Bytes received and sent by the guest together; past it the run ends with output_limit. */
  bytes: number;
  /** Connections that may wait on a listener for sock_accept; past it new ones are refused. */
  backlog: number;
  /** Datagrams received and sent by the guest together; past it the run ends with output_limit. */
  datagrams: number;
}

/** A run's socket limits when it asks for none. */
export const DEFAULT_NET_LIMITS: Readonly<NetLimits> = { connections: 128, bytes: 256 << 20, backlog: 128, datagrams: 1 << 20 };

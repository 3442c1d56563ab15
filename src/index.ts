/** capsa's library entry point. */
export { createHost, type Host, type HostOptions, type RunRequest, type RunEvent, type RunHandle } from './host/host.js';
export type { ExecutorInfo, ExecutorPoolOptions, ExecutorMount, ExecutorRuntime, Layer } from './host/executor/executor-pool.js';
export type { RunResult, RunStatus, AuditEvent, Usage } from './host/result.js';
export { LimitError, DEFAULT_LIMITS, DEFAULT_MAX_LIMITS, type Limits } from './host/limits.js';
export { QueueFullError } from './host/pool.js';
export { ModuleLimitError } from './host/wasm-limits.js';
export { parseBytes, parseDuration } from './host/units.js';
export { createWasi, type Wasi, type WasiOptions, type Preopen } from './wasi/wasi.js';
export { RIGHTS_TABLE, COMPOSITE_RIGHTS, TYPE_RIGHTS, R as RIGHTS, rightByName, formatRights } from './wasi/rights.js';
export { ERRNO, FILETYPE } from './wasi/constants.js';
export type { Auditor, Decision } from './wasi/fdtable.js';

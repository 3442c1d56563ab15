/** capsa's library entry point. */
export { createHost, type Host, type HostOptions, type RunRequest, type RunEvent, type RunHandle } from './host/host.js';
export type { ExecutorInfo, ExecutorPoolOptions, ExecutorMount, ExecutorRuntime, Layer } from './host/executor/executor-pool.js';
export type { RunResult, RunOutput, RunStatus, AuditEvent, Usage } from './host/result.js';
export type { TrapFrame, TrapKind } from './host/trap.js';
export { LimitError, DEFAULT_LIMITS, DEFAULT_MAX_LIMITS, type Limits } from './host/limits.js';
export { QueueFullError } from './host/pool.js';
export { ModuleLimitError } from './host/wasm-limits.js';
export { parseBytes, parseDuration } from './host/units.js';
export { createWasi, WASI, type Wasi, type WasiOptions, type Preopen } from './wasi/wasi.js';
export { RIGHTS_TABLE, COMPOSITE_RIGHTS, TYPE_RIGHTS, R as RIGHTS, rightByName, formatRights } from './wasi/rights.js';
export { ERRNO, FILETYPE } from './wasi/constants.js';
export type { Auditor, Decision } from './wasi/fdtable.js';
// The manifest reader and the policy check, for embedders (thin re-exports under stable names).
export { parseManifest } from './manifest/parse.js';
export { applyPolicy as checkManifest, loadPolicy, parsePolicy, OPEN_POLICY, SERVICE_POLICY, type Policy } from './manifest/policy.js';
export { requestFromManifest } from './manifest/to-request.js';
export { ManifestError, type Manifest } from './manifest/types.js';

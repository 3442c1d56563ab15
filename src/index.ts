/** capsa's library entry point. */
export { createWasi, type Wasi, type WasiOptions, type Preopen } from './wasi/wasi.js';
export { RIGHTS_TABLE, COMPOSITE_RIGHTS, TYPE_RIGHTS, R as RIGHTS, rightByName, formatRights } from './wasi/rights.js';
export { ERRNO, FILETYPE } from './wasi/constants.js';
export type { Auditor, Decision } from './wasi/fdtable.js';

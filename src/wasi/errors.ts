import { errnoName } from './constants.js';

/**
 * A failed system call. Thrown inside src/wasi and turned into the guest's errno at the import
 * boundary; `message` is for operators and the audit trail, never for control flow.
 */
export class WasiError extends Error {
  constructor(readonly errno: number, message?: string) {
    super(message ?? errnoName(errno));
    this.name = 'WasiError';
  }
}

/**
 * Ends the guest's run from inside a call: unwinds through the guest's frames instead of becoming
 * an errno. proc_exit uses it; the host subclasses it for limits enforced inside calls.
 */
export class RunTermination extends Error {}

/** Thrown by proc_exit to unwind the guest; caught by start(). */
export class ProcExit extends RunTermination {
  constructor(readonly code: number) {
    super(`exit ${code}`);
    this.name = 'ProcExit';
  }
}

/** Shorthand for `throw new WasiError(...)` in expression position. */
export function fail(errno: number, message?: string): never {
  throw new WasiError(errno, message);
}

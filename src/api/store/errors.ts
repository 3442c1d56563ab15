/**
 * Errors the store throws for a caller's mistake, so the API can answer 4xx instead of 500.
 * Anything else a store method throws (I/O, a corrupt database) is the host's fault.
 */

/**
 * - `conflict`: a unique value is taken (a tenant name): 409.
 * - `not_found`: a write names a row that does not exist for that tenant (a module a run refers to,
 *   a tenant to set a policy on): 404.
 * - `invalid`: an argument the store cannot use (a cursor it did not issue, a non-terminal state
 *   given to `finishRun`): 400.
 * - `quota`: a quota checked by the store refuses the write (QuotaError): 429.
 */
export type StoreErrorCode = 'conflict' | 'not_found' | 'invalid' | 'quota';

export class StoreError extends Error {
  override readonly name = 'StoreError';
  constructor(readonly code: StoreErrorCode, message: string) {
    super(message);
  }
}

/** createRun refused by a quota: which one, its limit and the use that reached it. */
export class QuotaError extends StoreError {
  constructor(readonly quota: 'queuedRuns' | 'cpuMs', readonly limit: number, readonly used: number) {
    super('quota', `quota ${quota} reached: ${used} of ${limit}`);
  }
}

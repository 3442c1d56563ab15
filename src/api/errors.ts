/**
 * One error shape for every answer that is not a success: `{ error: { code, message, details? } }`.
 * Handlers throw ApiError; anything else becomes a 500 without its message or stack.
 */
import type { Context } from 'hono';
import { HTTPException } from 'hono/http-exception';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { z } from '@hono/zod-openapi';
import type { AppEnv } from './options.js';
import { StoreError } from './store/errors.js';

export type ErrorCode =
  | 'bad_request' | 'malformed_json' | 'unauthorized' | 'not_found' | 'conflict' | 'body_too_large'
  | 'unsupported_media_type' | 'invalid_request' | 'invalid_manifest' | 'policy_violation' | 'invalid_module'
  | 'unknown_imports' | 'unknown_module' | 'invalid_policy' | 'quota_exceeded' | 'queue_full'
  | 'shutting_down' | 'method_not_allowed' | 'internal';

/** An answer with the error shape; `retryAfter` (seconds) becomes the Retry-After header. */
export class ApiError extends Error {
  constructor(
    readonly status: ContentfulStatusCode,
    readonly code: ErrorCode,
    message: string,
    readonly details?: unknown,
    readonly retryAfter?: number,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export const notFound = (what: string): ApiError => new ApiError(404, 'not_found', `${what} not found`);

/** The error body's schema, for the OpenAPI document. */
export const ErrorSchema = z.object({
  error: z.object({
    code: z.string(),
    message: z.string(),
    details: z.unknown().optional(),
  }),
}).openapi('Error');

/** Turns zod's issues into `details` entries naming the field. */
export function zodDetails(error: z.ZodError): { path: string; message: string }[] {
  return error.issues.map((i) => ({
    path: i.path.map((p, n) => (typeof p === 'number' ? `[${p}]` : `${n ? '.' : ''}${String(p)}`)).join(''),
    message: i.message,
  }));
}

/** A 422 that names every field that is wrong. */
export function invalidRequest(error: z.ZodError, what = 'the request'): ApiError {
  const details = zodDetails(error);
  const summary = details.slice(0, 5).map((d) => (d.path ? `${d.path}: ${d.message}` : d.message)).join('; ');
  return new ApiError(422, 'invalid_request', `Invalid ${what}: ${summary}${details.length > 5 ? `; and ${details.length - 5} more` : ''}`, details);
}

/** Writes an error answer. */
export function errorResponse(c: Context<AppEnv>, e: ApiError): Response {
  if (e.retryAfter !== undefined) c.header('Retry-After', String(Math.max(1, Math.ceil(e.retryAfter))));
  if (e.status === 401) c.header('WWW-Authenticate', 'Bearer realm="capsa"');
  const body = { error: { code: e.code, message: e.message, ...(e.details !== undefined ? { details: e.details } : {}) } };
  return c.json(body, e.status);
}

const HTTP_CODES: Partial<Record<number, ErrorCode>> = {
  400: 'bad_request', 401: 'unauthorized', 404: 'not_found', 405: 'method_not_allowed', 409: 'conflict', 413: 'body_too_large',
  415: 'unsupported_media_type', 422: 'invalid_request', 503: 'shutting_down',
};

/** app.onError: ApiError as is, Hono's HTTPException by status, anything else a logged 500. */
export function onError(err: Error, c: Context<AppEnv>): Response {
  if (err instanceof ApiError) return errorResponse(c, err);
  if (err instanceof StoreError) {
    const status = err.code === 'conflict' ? 409 : err.code === 'not_found' ? 404 : 400;
    return errorResponse(c, new ApiError(status, err.code === 'conflict' ? 'conflict' : err.code === 'not_found' ? 'not_found' : 'bad_request', err.message));
  }
  if (err instanceof HTTPException) {
    const status = err.status as ContentfulStatusCode;
    return errorResponse(c, new ApiError(status, HTTP_CODES[status] ?? (status >= 500 ? 'internal' : 'bad_request'), err.message || 'Request refused'));
  }
  const log = c.get('log');
  log?.error({ err }, 'unhandled error');
  return errorResponse(c, new ApiError(500, 'internal', `Internal error; quote request id ${c.get('requestId') ?? '(none)'} when reporting it`));
}

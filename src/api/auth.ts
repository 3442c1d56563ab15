/**
 * Bearer authentication: tenant keys through the store, the admin token from the options.
 * Keys never reach the logs (the access log records the tenant id only).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { MiddlewareHandler } from 'hono';
import { ApiError } from './errors.js';
import type { AppEnv, Deps } from './options.js';

/** The token of an `Authorization: Bearer <token>` header, or undefined. */
export function bearer(header: string | undefined): string | undefined {
  const m = /^Bearer[ \t]+([\x21-\x7e]{1,512})[ \t]*$/i.exec(header ?? '');
  return m?.[1];
}

const digest = (s: string) => createHash('sha256').update(s).digest();

/** Tenant routes: a key the store knows → c.var.tenant; anything else 401. */
export function tenantAuth(deps: Deps): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const token = bearer(c.req.header('authorization'));
    if (token === undefined) throw new ApiError(401, 'unauthorized', 'Send an API key as "Authorization: Bearer <key>"');
    const tenant = await deps.store.authenticate(token);
    if (!tenant) throw new ApiError(401, 'unauthorized', 'The API key is unknown or revoked');
    c.set('tenant', tenant);
    c.set('log', c.get('log').child({ tenant: tenant.id }));
    await next();
  };
}

/** Admin routes: the admin token, compared in constant time; without a configured token they are off. */
export function adminAuth(deps: Deps): MiddlewareHandler<AppEnv> {
  const expected = deps.adminToken ? digest(deps.adminToken) : undefined;
  return async (c, next) => {
    if (!expected) throw new ApiError(401, 'unauthorized', 'The admin API is disabled: the server has no admin token (set CAPSA_ADMIN_TOKEN)');
    const token = bearer(c.req.header('authorization'));
    if (token === undefined || !timingSafeEqual(digest(token), expected)) {
      throw new ApiError(401, 'unauthorized', 'Admin routes need "Authorization: Bearer <admin token>"');
    }
    c.set('log', c.get('log').child({ admin: true }));
    await next();
  };
}

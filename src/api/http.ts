/**
 * Route plumbing shared by the feature folders: each route is documented in the app's OpenAPI
 * registry and registered with its own auth and body limit; bodies and queries are validated here,
 * so every refusal has the service's error shape (zod-openapi's built-in validators answer 415 for
 * `curl -d`'s form content type and use their own error shape).
 */
import type { OpenAPIHono, RouteConfig } from '@hono/zod-openapi';
import { z } from '@hono/zod-openapi';
import type { Context, Handler, MiddlewareHandler } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { ApiError, ErrorSchema, errorResponse, invalidRequest } from './errors.js';
import type { AppEnv, Deps } from './options.js';
import { adminAuth, tenantAuth } from './auth.js';
import { formatBytes } from '../host/units.js';

export type Auth = 'tenant' | 'admin' | 'none';

/** A route: its OpenAPI description, who may call it, and its largest body. */
export type RouteSpec = Omit<RouteConfig, 'middleware' | 'hide'> & { auth: Auth; maxBody?: number };

const errorContent = { 'application/json': { schema: ErrorSchema } };

/** The error answers every route may give, for the document. */
function commonResponses(spec: RouteSpec): RouteConfig['responses'] {
  const out: RouteConfig['responses'] = {};
  if (spec.auth !== 'none') out[401] = { description: 'Missing or unknown bearer token', content: errorContent };
  if (spec.maxBody !== undefined) out[413] = { description: `Body above ${formatBytes(spec.maxBody)}`, content: errorContent };
  return out;
}

/** Documents and registers one route. */
export function defineRoute(app: OpenAPIHono<AppEnv>, deps: Deps, spec: RouteSpec, ...handlers: [...MiddlewareHandler<AppEnv>[], Handler<AppEnv>]): void {
  const { auth, maxBody, ...route } = spec;
  const security = auth === 'tenant' ? [{ Bearer: [] }] : auth === 'admin' ? [{ AdminBearer: [] }] : [];
  app.openAPIRegistry.registerPath({ ...route, security, responses: { ...commonResponses(spec), ...route.responses } });
  const mws: MiddlewareHandler<AppEnv>[] = [];
  if (auth === 'tenant') mws.push(tenantAuth(deps));
  if (auth === 'admin') mws.push(adminAuth(deps));
  if (maxBody !== undefined) {
    mws.push(limitBody(maxBody, (c) => errorResponse(c, new ApiError(413, 'body_too_large', `The body is larger than ${formatBytes(maxBody)}, the limit of ${route.method.toUpperCase()} ${route.path}`))));
  }
  const path = route.path.replaceAll(/\{([^}]+)\}/g, ':$1');
  const on = app.on.bind(app) as unknown as (method: string, path: string, ...h: MiddlewareHandler<AppEnv>[]) => unknown;
  on(route.method.toUpperCase(), path, ...mws, ...(handlers as MiddlewareHandler<AppEnv>[]));
}

/**
 * Hono's bodyLimit, except that a body with a Content-Length is judged by it and left unread:
 * hono's reads `raw.body`, which makes @hono/node-server build a WHATWG Request and stream for
 * every request, where reading the body later (arrayBuffer) goes straight to Node's request
 * (Node's parser holds a body to its Content-Length). Chunked bodies are counted as they come.
 */
function limitBody(maxSize: number, onError: (c: Context<AppEnv>) => Response | Promise<Response>): MiddlewareHandler<AppEnv> {
  const counted = bodyLimit({ maxSize, onError: (c) => onError(c as Context<AppEnv>) });
  return async (c, next) => {
    const length = c.req.header('content-length');
    if (length === undefined || c.req.header('transfer-encoding') !== undefined) return counted(c, next);
    if (parseInt(length, 10) > maxSize) return onError(c);
    await next();
  };
}

/** The deepest nesting of arrays and objects in JSON text, counted without parsing it. */
export function jsonDepth(text: string): number {
  let depth = 0, max = 0, inString = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i);
    if (inString) {
      if (ch === 0x5c) i++;
      else if (ch === 0x22) inString = false;
    } else if (ch === 0x22) inString = true;
    else if (ch === 0x5b || ch === 0x7b) { if (++depth > max) max = depth; } else if (ch === 0x5d || ch === 0x7d) depth--;
  }
  return max;
}

/** Parses JSON text under the depth cap; 400 with the parser's message when it is not JSON. */
export function parseJson(text: string, maxDepth: number): unknown {
  if (text.trim() === '') throw new ApiError(400, 'malformed_json', 'The body is empty; send a JSON document');
  const depth = jsonDepth(text);
  if (depth > maxDepth) throw new ApiError(400, 'malformed_json', `The JSON body is nested ${depth} levels deep; the limit is ${maxDepth}`);
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ApiError(400, 'malformed_json', `The body is not valid JSON: ${(e as Error).message}`);
  }
}

/**
 * Reads a JSON body and checks it against `schema`. The content type may be JSON, absent, or
 * curl -d's form type (the text is still JSON); other types are refused with 415.
 */
export async function readJson<S extends z.ZodType>(c: Context<AppEnv>, deps: Deps, schema: S, what = 'the request body'): Promise<z.output<S>> {
  const raw = await readJsonValue(c, deps);
  const r = schema.safeParse(raw);
  if (!r.success) throw invalidRequest(r.error, what);
  return r.data;
}

/** Reads a JSON body without checking its shape. */
export async function readJsonValue(c: Context<AppEnv>, deps: Deps): Promise<unknown> {
  const type = (c.req.header('content-type') ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== '' && type !== 'application/json' && !type.endsWith('+json') && type !== 'application/x-www-form-urlencoded' && type !== 'text/plain') {
    throw new ApiError(415, 'unsupported_media_type', `Send the body as application/json, not ${type}`);
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(await c.req.arrayBuffer());
  } catch {
    throw new ApiError(400, 'malformed_json', 'The body is not valid UTF-8 text');
  }
  return parseJson(text, deps.limits.jsonDepth);
}

/** Checks the query string against `schema` (422 naming each bad parameter). */
export function readQuery<S extends z.ZodType>(c: Context<AppEnv>, schema: S): z.output<S> {
  const r = schema.safeParse(c.req.query());
  if (!r.success) throw invalidRequest(r.error, 'query parameters');
  return r.data;
}

/** `?limit=&cursor=` of listings. */
export function pageQuery(deps: Deps) {
  return z.object({
    limit: z.coerce.number().int().min(1).max(deps.limits.pageMax).optional()
      .openapi({ description: `Items per page (default ${deps.limits.pageDefault}, at most ${deps.limits.pageMax})` }),
    cursor: z.string().max(512).optional().openapi({ description: 'The `next` of the previous page' }),
  });
}

/** The body of a listing. */
export function pageSchema<T extends z.ZodType>(item: T, name: string) {
  return z.object({ items: z.array(item), next: z.string().optional().openapi({ description: 'Cursor of the next page; absent on the last' }) }).openapi(name);
}

export const errorResponses = (...codes: [number, string][]): RouteConfig['responses'] =>
  Object.fromEntries(codes.map(([code, description]) => [code, { description, content: errorContent }]));

export const jsonContent = <T extends z.ZodType>(schema: T, description: string) => ({ description, content: { 'application/json': { schema } } });

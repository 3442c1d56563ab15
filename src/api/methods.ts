/**
 * What the app answers besides its routes: CORS for the operator's origins (`--cors-origin`),
 * OPTIONS for every known path (a CORS preflight from an allowed origin, else just `Allow`), and
 * 405 with `Allow` for a known path asked with a method it does not have. Paths are read from the
 * app's own route table (app.routes), so routes added later (the UI's) are known too.
 */
import type { Hono, MiddlewareHandler } from 'hono';
import type { AppEnv } from './options.js';

/** Request headers a browser client may send (Authorization: the bearer key). */
const ALLOW_HEADERS = 'Authorization, Content-Type, Last-Event-ID';
/** Response headers a browser client may read. */
const EXPOSE_HEADERS = 'Location, Retry-After, X-Request-Id, WWW-Authenticate';

interface Pattern { re: RegExp; method: string }

/** A Hono path (`/v1/runs/:id`, `/ui/*`) as an anchored regular expression. */
function pathRegExp(path: string): RegExp {
  const parts = path.split('/').map((seg) => {
    if (seg === '*') return '.*';
    if (seg.startsWith(':')) return '[^/]+';
    return seg.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  });
  return new RegExp(`^${parts.join('/')}/?$`);
}

/** The methods the app has for `path` (GET brings HEAD), from its route table; empty when the path is unknown. */
export function methodsOf(app: Hono<AppEnv>, path: string): string[] {
  const table = patterns(app);
  const out = new Set<string>();
  for (const p of table) if (p.re.test(path)) out.add(p.method);
  if (out.has('GET')) out.add('HEAD');
  return [...out];
}

const cache = new WeakMap<object, { n: number; table: Pattern[] }>();
function patterns(app: Hono<AppEnv>): Pattern[] {
  const hit = cache.get(app);
  if (hit && hit.n === app.routes.length) return hit.table;
  // Middleware (app.use) is registered with method ALL: it is not a route.
  const table = app.routes.filter((r) => r.method !== 'ALL').map((r) => ({ re: pathRegExp(r.path), method: r.method.toUpperCase() }));
  cache.set(app, { n: app.routes.length, table });
  return table;
}

/** Origins as given (scheme://host[:port]); `*` allows any. Throws RangeError for anything else. */
export function checkOrigins(origins: string[]): string[] {
  return origins.map((o) => {
    if (o === '*') return o;
    let u: URL;
    try { u = new URL(o); } catch { throw new RangeError(`--cors-origin ${o}: expected an origin like https://app.example.com`); }
    if ((u.protocol !== 'http:' && u.protocol !== 'https:') || u.origin !== o.replace(/\/$/, '')) {
      throw new RangeError(`--cors-origin ${o}: expected an origin like https://app.example.com (scheme, host and port only)`);
    }
    return u.origin;
  });
}

/**
 * CORS and OPTIONS. A request from an allowed origin gets Access-Control-Allow-Origin (that origin)
 * and the exposed headers; a preflight (OPTIONS with Access-Control-Request-Method) for a known path
 * from it gets the path's methods and the headers clients send. Any other origin gets no CORS header
 * at all, so the browser refuses the answer; OPTIONS without CORS is answered 204 with Allow.
 */
export function corsAndOptions(app: Hono<AppEnv>, allowed: string[]): MiddlewareHandler<AppEnv> {
  const any = allowed.includes('*');
  const set = new Set(allowed);
  return async (c, next) => {
    const origin = c.req.header('origin');
    const ok = origin !== undefined && (any || set.has(origin));
    if (allowed.length) c.header('Vary', 'Origin', { append: true });
    if (c.req.method === 'OPTIONS') {
      const methods = methodsOf(app, c.req.path);
      if (methods.length === 0) return next(); // unknown path: the 404
      const allow = [...methods, 'OPTIONS'].join(', ');
      c.header('Allow', allow);
      if (ok && c.req.header('access-control-request-method')) {
        c.header('Access-Control-Allow-Origin', origin);
        c.header('Access-Control-Allow-Methods', allow);
        c.header('Access-Control-Allow-Headers', ALLOW_HEADERS);
        c.header('Access-Control-Max-Age', '600');
      }
      return c.body(null, 204);
    }
    await next();
    if (ok) {
      c.res.headers.set('Access-Control-Allow-Origin', origin);
      c.res.headers.set('Access-Control-Expose-Headers', EXPOSE_HEADERS);
    }
  };
}

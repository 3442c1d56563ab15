/** Structured JSON logs (pino): one line per request, with request id, tenant and run ids. */
import type { MiddlewareHandler } from 'hono';
import { pino, type Logger } from 'pino';
import type { AppEnv } from './options.js';

/** Paths that could carry secrets, removed from every line whatever a caller logs. */
const REDACT = ['key', '*.key', 'secret', '*.secret', 'authorization', '*.authorization', 'headers.authorization', '*.headers.authorization', 'token', '*.token', 'adminToken'];

let shared: Logger | undefined;

/** The process's logger: JSON lines to stdout at CAPSA_LOG_LEVEL (default info). */
export function defaultLogger(): Logger {
  shared ??= createLogger();
  return shared;
}

/** A logger with capsa's redaction; `destination` for tests. */
export function createLogger(options: { level?: string; destination?: NodeJS.WritableStream } = {}): Logger {
  const opts = { level: options.level ?? process.env.CAPSA_LOG_LEVEL ?? 'info', base: { svc: 'capsa' }, redact: { paths: REDACT, censor: '[redacted]' } };
  return options.destination ? pino(opts, options.destination as pino.DestinationStream) : pino(opts);
}

/** Logs each request once it is answered: method, route, status, time; never headers or bodies. */
export function accessLog(root: Logger): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const t0 = performance.now();
    const log = root.child({ req: c.get('requestId') });
    c.set('log', log);
    await next();
    const status = c.res.status;
    const entry: Record<string, unknown> = {
      method: c.req.method, path: c.req.path, status, ms: Math.round((performance.now() - t0) * 10) / 10,
    };
    const tenant = c.get('tenant');
    if (tenant) entry.tenant = tenant.id;
    const run = c.get('runId');
    if (run) entry.run = run;
    if (status >= 500) log.error(entry, 'request');
    else log.info(entry, 'request');
  };
}

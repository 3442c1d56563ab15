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

/** Bytes of log lines held before a write; the rest leave with the next timer tick. */
const LOG_BUFFER_BYTES = 8 << 10;
const LOG_FLUSH_MS = 200;

/**
 * Where the service's lines go: `fd` (stdout), written asynchronously once 8 KiB are waiting or
 * every 200 ms, so that the API thread makes one write per many lines (it logs three per run)
 * instead of one per line; pino writes what is left synchronously when the process exits.
 */
export function logDestination(fd = 1): ReturnType<typeof pino.destination> {
  const dest = pino.destination({ dest: fd, sync: false, minLength: LOG_BUFFER_BYTES });
  const held = dest as unknown as { _len?: number; destroyed?: boolean };
  const timer = setInterval(() => { if (!held.destroyed && (held._len ?? 1) > 0) dest.flush(); }, LOG_FLUSH_MS);
  timer.unref();
  dest.on('close', () => clearInterval(timer));
  return dest;
}

/** A logger with capsa's redaction, writing to logDestination(); `destination` for tests. */
export function createLogger(options: { level?: string; destination?: NodeJS.WritableStream } = {}): Logger {
  const opts = { level: options.level ?? process.env.CAPSA_LOG_LEVEL ?? 'info', base: { svc: 'capsa' }, redact: { paths: REDACT, censor: '[redacted]' } };
  return pino(opts, options.destination ? options.destination as pino.DestinationStream : logDestination());
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

/**
 * `capsa serve`: the multi-tenant REST service on one machine. The store (SQLite in the data
 * directory), the worker pool, the scheduler and the HTTP app, wired together; restart recovery on
 * start, and a graceful stop on SIGTERM/SIGINT that finishes or requeues the running work.
 */
import fs from 'node:fs';
import type http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import { createAdaptorServer } from '@hono/node-server';
import { createApp, DEFAULT_API_LIMITS } from '../api/app.js';
import { defaultLogger } from '../api/log.js';
import { createScheduler, DEFAULT_QUOTAS, defaultNodeId, type Quotas } from '../api/scheduler.js';
import { applyQuotas, parseQuotaAssignments } from '../api/quotas.js';
import { createRetention, RETENTION_INTERVAL_MS } from '../api/retention.js';
import { checkOrigins } from '../api/methods.js';
import { createWebhooks } from '../api/webhooks.js';
import { createSqliteStore } from '../api/store/sqlite.js';
import { NoSqliteDriverError } from '../api/store/sqlite-driver.js';
import { storeUrl } from './store-url.js';
import type { Store } from '../api/store/types.js';
import { createHost, type Host } from '../host/host.js';
import { loadPolicy, SERVICE_POLICY } from '../manifest/policy.js';
import { mountsInForce, syncMounts } from '../api/mounts.js';
import { parseBytes, parseDuration } from '../host/units.js';
import { UsageError } from './flags.js';
import { readCasperConfig } from './run.js';
import { DEFAULT_DATA_DIR } from './tenant.js';

/** How long a stop waits for running guests before putting them back in the queue (--grace). */
export const SHUTDOWN_DEADLINE_MS = 10_000;

export const SERVE_HELP = `Usage: capsa serve [--host 127.0.0.1] [--port 8080] [--data ${DEFAULT_DATA_DIR} | --store postgres://…] [--policy FILE]
                   [--executors N] [--workers N] [--isolation best-effort|strict|none]
                   [--executor-runtime node|deno] [--casper-config FILE] [--grace 10s] [--node-id ID] [--lease 30s]
                   [--quota NAME=VALUE]... [--concurrent-runs N] [--retain 7d] [--cors-origin ORIGIN]...
                   [--max-body SIZE] [--max-stdin SIZE] [--max-files SIZE]
                   [--webhook-allow HOST]... [--webhook-allow-private] [--webhook-timeout 10s]

Runs the capsa REST service: tenants upload modules (POST /v1/modules) and run them
under manifests (POST /v1/runs), each run checked against the tenant's policy, queued,
run in executor processes and kept in the data directory with its output and
events (GET /v1/runs/ID, GET /v1/runs/ID/events as server-sent events).

Tenants and their API keys are made with "capsa tenant" (capsa tenant --help), which
works on the same data directory, also while the server runs. The API is described at
/docs and /openapi.json; /healthz and /metrics need no key.

Options:
  --host ADDRESS    Address to listen on (default 127.0.0.1; 0.0.0.0 for every interface).
  --port PORT       TCP port (default 8080; 0 picks a free one, printed in the log).
  --data DIR        Data directory: the SQLite store and the uploaded modules
                    (default ${DEFAULT_DATA_DIR}; made if missing).
  --store URL       A PostgreSQL database instead (postgres://USER@HOST:PORT/DB; or
                    CAPSA_DATABASE_URL): migrated at start, modules kept in it.
  --policy FILE     The service's default policy: the most a tenant's manifests may be
                    granted unless the tenant has its own (capsa tenant set-policy).
                    Without it: in-memory directories only, no host paths, no Casper services.
  --executors N     Executor processes running guests (default: one per worker).
                    Each runs under bubblewrap (new mount, PID, IPC, UTS and network
                    namespaces; read-only binds of the runtime, capsa's code and the
                    policy's host directories) and its runtime's permission model; it
                    never sees the store, the API keys, the admin token or the network.
  --workers N       Guests running at once: worker threads, shared out among the
                    executors (default: one per core, here ${os.availableParallelism()}).
  --isolation MODE  best-effort (default): start executors with the layers this machine
                    allows, warn in the log about the others (/healthz lists the layers in
                    force). strict: refuse to start unless every layer is in force.
                    none: guests on worker threads inside this process (no executors:
                    for trusted guests and comparisons only).
  --casper-config FILE
                    The operator's configuration of Casper services (YAML), as for
                    capsa run: e.g. "system.net: { servers: [127.0.0.1:5353] }", the DNS
                    servers system.net and system.dns resolve with (docs/casper.md).
  --executor-runtime RUNTIME
                    node: Node's permission model. deno: Deno's (the deno package), which
                    also denies the network without bubblewrap. Default: the runtime
                    capsa itself runs on.
  --grace DURATION  On SIGTERM/SIGINT, how long running guests may take to finish before
                    they are queued again for the next start (default ${SHUTDOWN_DEADLINE_MS / 1000}s).
  --quota NAME=VALUE
                    A quota of every tenant (repeat for several; a tenant's own, set with
                    capsa tenant set-quota, goes over it): concurrent-runs (default
                    ${DEFAULT_QUOTAS.concurrentRuns}), queued-runs (${DEFAULT_QUOTAS.queuedRuns}), module-storage (${DEFAULT_QUOTAS.moduleStorageBytes >> 20}MiB),
                    cpu-per-day (${DEFAULT_QUOTAS.cpuSecondsPerDay / 60}m), retain (as --retain).
  --retain DURATION Deletes finished runs (their output and events) DURATION after they
                    ended, and modules no run references DURATION after their upload
                    (e.g. 7d, 12h); swept every ${RETENTION_INTERVAL_MS / 60_000} minutes in small batches. Queued and
                    running runs are never deleted. Default: keep everything.
  --max-body SIZE   Largest POST /v1/runs JSON body besides stdin and files (default ${DEFAULT_API_LIMITS.runBodyBytes >> 20}MiB).
  --max-stdin SIZE  Largest stdin of a run, decoded (default ${DEFAULT_API_LIMITS.stdinBytes >> 20}MiB); the body may be
                    larger by its base64. Above it: 413 naming stdin.
  --max-files SIZE  Largest total of a run's files, decoded (default ${DEFAULT_API_LIMITS.filesBytes >> 20}MiB); as --max-stdin.
  --webhook-allow HOST
                    Hosts a run's callback_url may name (repeat for more; *.example.com
                    for its subdomains). Without it callback_url is refused. Each delivery
                    resolves the name once, refuses private, loopback and link-local
                    addresses, connects to the address it checked and follows no redirect
                    (docs/webhooks.md).
  --webhook-allow-private
                    Lets callbacks reach private, loopback and link-local addresses (a
                    receiver on the operator's own network). Off by default.
  --webhook-timeout DURATION
                    How long one delivery attempt waits for the receiver's answer (default
                    10s). A node claims each attempt for this long plus 5s: with --store,
                    the attempts of a node that died are made by another one after that.
  --cors-origin ORIGIN
                    Lets web pages from ORIGIN (https://app.example.com; repeat for more;
                    * for any) call the API from a browser: preflights are answered and
                    answers carry Access-Control-Allow-Origin. Other origins get no CORS
                    header. Default: none (the dashboard at /ui is same-origin).
  --concurrent-runs N
                    A tenant's runs running at once, across all the servers of a
                    --store (default ${DEFAULT_QUOTAS.concurrentRuns}); its other runs wait their turn in the queue.
  --node-id ID      This node's id, kept on the runs it runs (default HOST-PID-RANDOM).
  --lease DURATION  With --store: how long a node's claim on a run holds unless renewed
                    (every third of it); a node that dies has its runs recovered by the
                    others this long after (default 30s).
  -h, --help        Show this help.

Environment:
  CAPSA_ADMIN_TOKEN  Bearer token of the admin API (/v1/admin/...); without it that API is off.
  CAPSA_LOG_LEVEL    trace, debug, info (default), warn, error, fatal or silent.

The log is JSON lines (pino) on stdout: a line per request and per run start and end.
The first line is {"msg":"listening","url":"http://127.0.0.1:8080",...}, written at
every level but silent, like the "stopping" and "stopped" lines.

On start, runs that were queued are queued again; a run that was running when the
server died is retried once, or ends "interrupted" (blame host) if it had been retried
already. With --store, any number of servers share the database and its queue: a run
whose server died is recovered that way by another one once its lease expires. SIGTERM or SIGINT stops gracefully: no new connections, running guests get
the --grace time to finish and are queued again otherwise, then the workers and the
store close and the process exits 0. A second signal exits at once (status 1); the
next start recovers as after a crash.

Exit status: 0 after a graceful stop; 1 when the server cannot start (the message
says why); 2 for a usage error.`;

function parsePort(s: string): number {
  const n = Number(s);
  if (!/^\d+$/.test(s) || n > 65535) throw new UsageError(`--port ${s}: expected a TCP port, 0 to 65535`);
  return n;
}

function parseCount(s: string | undefined, flag: string, fallback: number): number {
  if (s === undefined) return fallback;
  const n = Number(s);
  if (!/^\d+$/.test(s) || n < 1 || n > 256) throw new UsageError(`${flag} ${s}: expected a whole number from 1 to 256`);
  return n;
}

/** Runs `capsa serve` until a signal stops it; returns the exit status. */
export async function serve(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: {
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string', default: '8080' },
      data: { type: 'string', default: DEFAULT_DATA_DIR },
      store: { type: 'string' },
      policy: { type: 'string' },
      workers: { type: 'string' },
      executors: { type: 'string' },
      isolation: { type: 'string', default: 'best-effort' },
      'executor-runtime': { type: 'string' },
      'casper-config': { type: 'string' },
      grace: { type: 'string' },
      quota: { type: 'string', multiple: true, default: [] },
      retain: { type: 'string' },
      'cors-origin': { type: 'string', multiple: true, default: [] },
      'max-body': { type: 'string' },
      'webhook-allow': { type: 'string', multiple: true, default: [] },
      'webhook-allow-private': { type: 'boolean', default: false },
      'webhook-timeout': { type: 'string' },
      'max-stdin': { type: 'string' },
      'max-files': { type: 'string' },
      'node-id': { type: 'string' },
      'concurrent-runs': { type: 'string' },
      lease: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    allowPositionals: true,
    strict: true,
  });
  if (values.help) { process.stdout.write(SERVE_HELP + '\n'); return 0; }
  if (positionals.length) throw new UsageError(`serve: unexpected argument ${JSON.stringify(positionals[0])}\n\n${SERVE_HELP}`);
  const port = parsePort(values.port);
  const isolation = values.isolation;
  if (isolation !== 'best-effort' && isolation !== 'strict' && isolation !== 'none') throw new UsageError(`--isolation ${isolation}: expected best-effort, strict or none`);
  const runtime = values['executor-runtime'];
  if (runtime !== undefined && runtime !== 'node' && runtime !== 'deno') throw new UsageError(`--executor-runtime ${runtime}: expected node or deno`);
  // --workers is the number of guests running at once (as with threads); executors share them out.
  const workers = parseCount(values.workers, '--workers', os.availableParallelism());
  const executors = Math.min(workers, parseCount(values.executors, '--executors', workers));
  let graceMs = SHUTDOWN_DEADLINE_MS;
  let leaseMs: number | undefined;
  let webhookTimeoutMs: number | undefined;
  const nodeId = values['node-id'] ?? defaultNodeId();
  if (values['node-id'] !== undefined && !/^[A-Za-z0-9._-]{1,64}$/.test(nodeId)) throw new UsageError(`--node-id ${nodeId}: expected 1 to 64 letters, digits, '.', '_' or '-'`);
  try {
    if (values.grace !== undefined) graceMs = parseDuration(values.grace, '--grace');
    if (values.lease !== undefined) {
      leaseMs = parseDuration(values.lease, '--lease');
      if (leaseMs < 300) throw new Error(`--lease ${values.lease}: at least 300ms (a node renews every third of it)`);
    }
    if (values['webhook-timeout'] !== undefined) {
      webhookTimeoutMs = parseDuration(values['webhook-timeout'], '--webhook-timeout');
      if (webhookTimeoutMs < 100) throw new Error(`--webhook-timeout ${values['webhook-timeout']}: at least 100ms`);
    }
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  let quotas: Partial<Quotas> = {};
  let retainSeconds = 0;
  try {
    const q = parseQuotaAssignments(values.quota);
    if (values.retain !== undefined) q.retainSeconds = Math.round(parseDuration(values.retain, '--retain') / 1000);
    const { retainSeconds: r, ...rest } = applyQuotas({}, q);
    quotas = rest;
    retainSeconds = r ?? 0;
  } catch (e) {
    throw new UsageError(`--quota/--retain: ${(e as Error).message}`);
  }
  // The older spelling of --quota concurrent-runs=N.
  if (values['concurrent-runs'] !== undefined) quotas.concurrentRuns = parseCount(values['concurrent-runs'], '--concurrent-runs', DEFAULT_QUOTAS.concurrentRuns);
  let corsOrigins: string[];
  const sizes: { runBodyBytes?: number; stdinBytes?: number; filesBytes?: number } = {};
  try {
    corsOrigins = checkOrigins(values['cors-origin']);
    for (const [flag, field] of [['max-body', 'runBodyBytes'], ['max-stdin', 'stdinBytes'], ['max-files', 'filesBytes']] as const) {
      const v = values[flag];
      if (v !== undefined) sizes[field] = parseBytes(v, `--${flag}`);
    }
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  // Thrown as PolicyFileError or ManifestError (FILE:LINE:COL), which main prints: exit status 1.
  const policy = values.policy !== undefined ? loadPolicy(values.policy) : undefined;
  const casperConfig = values['casper-config'] !== undefined ? readCasperConfig(values['casper-config']) : {};
  // pino, JSON lines on stdout at CAPSA_LOG_LEVEL (default info); the app and the scheduler log there too.
  const log = defaultLogger().child({ node: nodeId });
  // The lifecycle lines (listening, stopping, stopped) are written whatever CAPSA_LOG_LEVEL says:
  // scripts and supervisors read the URL from the first one.
  const life = log.level === 'silent' ? log : log.child({}, { level: 'info' });

  const url = storeUrl(values.store);
  let lock: { release(): void | Promise<void> };
  let store: Store;
  if (url) {
    try {
      // Loaded on demand: a SQLite server does not load the PostgreSQL driver.
      // Any number of nodes share one database: the queue, its claims and leases are in it.
      const { createPostgresStore } = await import('../api/store/postgres.js');
      lock = { release() {} };
      store = await createPostgresStore({ url });
    } catch (e) {
      process.stderr.write(`capsa: cannot open the PostgreSQL store: ${(e as Error).message}\n`);
      return 1;
    }
  } else {
    try {
      fs.mkdirSync(values.data, { recursive: true });
    } catch (e) {
      process.stderr.write(`capsa: cannot make the data directory ${values.data}: ${(e as Error).message}\n`);
      return 1;
    }
    // One server per data directory: two schedulers would each "recover" the other's running runs.
    const l = lockDataDir(values.data);
    if (typeof l === 'string') {
      process.stderr.write(`capsa: ${l}\n`);
      return 1;
    }
    lock = l;
    try {
      store = createSqliteStore({ dir: values.data });
    } catch (e) {
      l.release();
      if (e instanceof NoSqliteDriverError) throw e;
      process.stderr.write(`capsa: cannot open the store in ${values.data}: ${(e as Error).message}\n`);
      return 1;
    }
  }
  let host: Host;
  try {
    host = await createHost(isolation === 'none' ? { workers, casperConfig } : {
      workers, casperConfig,
      isolation: 'process',
      executors: {
        count: executors, isolation, ...(runtime ? { runtime } : {}), mounts: await mountsInForce(store, policy ?? SERVICE_POLICY),
        onLog: (level, msg) => log[level]({ component: 'executors' }, msg),
      },
    });
  } catch (e) {
    await store.close();
    await lock.release();
    process.stderr.write(`capsa: cannot start the ${isolation === 'none' ? 'worker pool' : 'executors'}: ${(e as Error).message}\n`);
    return 1;
  }
  const webhooks = values['webhook-allow'].length
    ? createWebhooks({
      store, allowHosts: values['webhook-allow'], allowPrivate: values['webhook-allow-private'], logger: log, nodeId,
      ...(webhookTimeoutMs !== undefined ? { timeoutMs: webhookTimeoutMs } : {}),
    })
    : undefined;
  // SQLite: the data dir is this process's alone (lockDataDir), so a run left running died with
  // the last process and is recovered at once; PostgreSQL: when its node's lease expires.
  const scheduler = createScheduler({
    store, host, logger: defaultLogger(), nodeId, exclusive: !url, quotas,
    ...(leaseMs !== undefined ? { leaseMs } : {}),
    ...(webhooks ? { onFinish: (run) => webhooks.onFinish(run), deliveryFor: (run) => webhooks.deliveryFor(run) } : {}),
  });
  const retention = createRetention({ store, retainSeconds, logger: log });
  const adminToken = process.env['CAPSA_ADMIN_TOKEN'] || undefined;
  const app = createApp({
    // createApp and the scheduler name the node on their lines themselves.
    store, host, scheduler, logger: defaultLogger(),
    ...(policy ? { policy } : {}),
    ...(adminToken ? { adminToken } : {}),
    retainSeconds,
    corsOrigins,
    limits: sizes,
    ...(webhooks ? { webhooks } : {}),
  });

  // Plain HTTP/1.1 (no serverOptions given), so node:http's Server.
  const server = createAdaptorServer({ fetch: app.fetch, hostname: values.host }) as http.Server;
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, values.host, () => { server.off('error', reject); resolve(); });
    });
  } catch (e) {
    process.stderr.write(`capsa: cannot listen on ${values.host}:${port}: ${(e as Error).message}\n`);
    await host.close();
    await store.close();
    await lock.release();
    return 1;
  }
  const addr = server.address() as AddressInfo;
  const hostPart = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  life.info({ url: `http://${hostPart}:${addr.port}`, host: addr.address, port: addr.port, store: url ? 'postgres' : values.data, workers, isolation, executors: host.executors().map((e) => ({ pid: e.pid, runtime: e.runtime, layers: e.layers })), pid: process.pid }, 'listening');
  // Supervisors and scripts wait for this line: it leaves now, not with the next batch.
  log.flush();
  // Only once the port is ours: recovery costs a crashed run its one retry, so a server that
  // cannot start must not spend it.
  await scheduler.start();
  // Tenants may have a retention of their own, so the sweeper runs whatever --retain says.
  retention.start();
  // Due deliveries are claimed from now on: those a stop or a dead node left pending too.
  await webhooks?.start();
  // Policies set with \`capsa tenant\` (straight into the store) reach the executors' mounts too.
  const mountSync = setInterval(() => {
    syncMounts({ store, host, policy: policy ?? SERVICE_POLICY }).catch((e: unknown) => log.warn({ err: e }, 'cannot update the executors\' mounts'));
  }, 5000);
  mountSync.unref();

  return new Promise<number>((resolve) => {
    let stopping = false;
    const onSignal = (signal: NodeJS.Signals) => {
      if (stopping) {
        log.warn({ signal }, 'second signal: exiting without waiting');
        process.exit(1);
      }
      stopping = true;
      void shutdown(signal).then(resolve, (e: unknown) => {
        log.error({ err: e }, 'shutdown failed');
        resolve(1);
      });
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);

    const shutdown = async (signal: NodeJS.Signals): Promise<number> => {
      const t0 = Date.now();
      life.info({ signal, graceMs }, 'stopping');
      // No new connections; idle keep-alive ones close now, busy ones after their response.
      const closed = new Promise<void>((r) => server.close(() => r()));
      server.closeIdleConnections();
      // Running guests finish within the deadline or go back to the queue.
      clearInterval(mountSync);
      await retention.stop();
      await scheduler.stop(graceMs);
      await webhooks?.stop();
      // Event streams still open get what is stored, are told to reconnect (elsewhere, with
      // Last-Event-ID) and end.
      await scheduler.events.flush();
      scheduler.events.drain();
      // Answers in progress get a moment more; then what is still open is cut: event streams of
      // runs that went back to the queue (clients resume with Last-Event-ID), waits on such runs.
      await Promise.race([closed, new Promise((r) => setTimeout(r, 1000).unref())]);
      server.closeAllConnections();
      await closed;
      await host.close();
      await scheduler.events.close();
      await store.close();
      await lock.release();
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
      life.info({ ms: Date.now() - t0 }, 'stopped');
      // Nothing should keep the process alive now; if something does, do not hang the supervisor.
      setTimeout(() => process.exit(0), 2000).unref();
      return 0;
    };
  });
}

/**
 * Takes the data directory for this process: `<dir>/serve.pid` made exclusively, holding our pid.
 * A file left by a process that is gone (kill -9, a crash) is taken over. Returns why not, or the lock.
 */
function lockDataDir(dir: string): { release(): void } | string {
  const file = path.join(dir, 'serve.pid');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = fs.openSync(file, 'wx', 0o644);
      fs.writeSync(fd, `${process.pid}\n`);
      fs.closeSync(fd);
      return {
        release() {
          try {
            if (fs.readFileSync(file, 'utf8').trim() === String(process.pid)) fs.unlinkSync(file);
          } catch { /* gone already */ }
        },
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') return `cannot lock the data directory ${dir}: ${(e as Error).message}`;
    }
    let pid = NaN;
    try { pid = Number(fs.readFileSync(file, 'utf8').trim()); } catch { /* removed meanwhile */ }
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && alive(pid)) {
      return `another capsa serve (pid ${pid}) is using the data directory ${dir}; stop it first (or remove ${file} if that process is not capsa)`;
    }
    try { fs.unlinkSync(file); } catch { /* removed meanwhile */ }
  }
  return `cannot lock the data directory ${dir}: ${file} keeps reappearing`;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** A service under test: a real host, a store (SQLite in a temp dir, PostgreSQL in the 'postgres' project, or the in-memory fake), the app. */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { createApp, type AppOptions } from '../../src/api/app.js';
import { createLogger } from '../../src/api/log.js';
import { createScheduler, type Quotas, type Scheduler } from '../../src/api/scheduler.js';
import { createSqliteStore } from '../../src/api/store/sqlite.js';
import { createPostgresStore } from '../../src/api/store/postgres.js';
import { freshDatabase, testStoreKind } from '../helpers/pg.js';
import type { Store } from '../../src/api/store/types.js';
import type { Webhooks } from '../../src/api/webhooks.js';
import { createHost, type Host, type HostOptions } from '../../src/host/host.js';
import { command } from '../helpers/wat.js';
import { createFakeStore } from './fake-store.js';

export const HELLO = new Uint8Array(readFileSync(path.join(import.meta.dirname, '../../guests/build/hello.wasm')));
export const CAT = new Uint8Array(readFileSync(path.join(import.meta.dirname, '../../guests/build/cat.wasm')));
export const ADMIN = 'test-admin-token-0123456789';

const CLOCK = '(import "wasi_snapshot_preview1" "clock_time_get" (func $clock (param i32 i64 i32) (result i32)))';
const WRITE = '(import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))';

/**
 * A guest that spins for `ms` of wall time (monotonic clock), whatever the machine's speed; or, with
 * `clock: 'cpu'`, until `ms` of CPU time were used (the process's CPU clock), however busy the machine.
 */
export function slowGuest(ms: number, clock: 'wall' | 'cpu' = 'wall'): Uint8Array<ArrayBuffer> {
  const id = clock === 'cpu' ? 2 : 1;
  return new Uint8Array(command(`(local $end i64)
    (drop (call $clock (i32.const ${id}) (i64.const 1) (i32.const 0)))
    (local.set $end (i64.add (i64.load (i32.const 0)) (i64.const ${ms * 1_000_000})))
    (loop $l
      (drop (call $clock (i32.const ${id}) (i64.const 1) (i32.const 0)))
      (br_if $l (i64.lt_u (i64.load (i32.const 0)) (local.get $end))))`, CLOCK));
}

/** A guest that writes "tick\n" `n` times, `ms` apart (the first after `delayMs`). */
export function tickerGuest(n: number, ms: number, delayMs = 0): Uint8Array<ArrayBuffer> {
  return new Uint8Array(command(`(local $end i64) (local $k i32)
    (i32.store (i32.const 16) (i32.const 64)) (i32.store (i32.const 20) (i32.const 5))
    (drop (call $clock (i32.const 1) (i64.const 1) (i32.const 0)))
    (local.set $end (i64.add (i64.load (i32.const 0)) (i64.const ${delayMs * 1_000_000})))
    (loop $d
      (drop (call $clock (i32.const 1) (i64.const 1) (i32.const 0)))
      (br_if $d (i64.lt_u (i64.load (i32.const 0)) (local.get $end))))
    (loop $outer
      (drop (call $write (i32.const 1) (i32.const 16) (i32.const 1) (i32.const 24)))
      (drop (call $clock (i32.const 1) (i64.const 1) (i32.const 0)))
      (local.set $end (i64.add (i64.load (i32.const 0)) (i64.const ${ms * 1_000_000})))
      (loop $l
        (drop (call $clock (i32.const 1) (i64.const 1) (i32.const 0)))
        (br_if $l (i64.lt_u (i64.load (i32.const 0)) (local.get $end))))
      (local.set $k (i32.add (local.get $k) (i32.const 1)))
      (br_if $outer (i32.lt_u (local.get $k) (i32.const ${n}))))`,
  `${CLOCK} ${WRITE}`, '(memory (export "memory") 1) (data (i32.const 64) "tick\\n")'));
}

/** A guest whose stdout is not UTF-8 (bytes ff fe 00 41). */
export function binaryGuest(): Uint8Array<ArrayBuffer> {
  return new Uint8Array(command(`(i32.store (i32.const 16) (i32.const 64)) (i32.store (i32.const 20) (i32.const 4))
    (drop (call $write (i32.const 1) (i32.const 16) (i32.const 1) (i32.const 24)))`,
  WRITE, '(memory (export "memory") 1) (data (i32.const 64) "\\ff\\fe\\00\\41")'));
}

/** A module that imports something capsa does not provide. */
export function foreignImportGuest(): Uint8Array<ArrayBuffer> {
  return new Uint8Array(command('(call $x)', '(import "env" "launch_missiles" (func $x)) (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))'));
}

/**
 * A host for service tests: worker threads, or, when CAPSA_TEST_ISOLATION=process (the
 * 'process-executors' project of vitest.config.ts), one executor process holding the same number
 * of worker threads — so the same tests prove the service over both.
 */
export function testHost(options: HostOptions = {}): Promise<Host> {
  if (process.env['CAPSA_TEST_ISOLATION'] !== 'process') return createHost(options);
  return createHost({ ...options, isolation: 'process', executors: { count: 1 } });
}

/** Collects log lines (JSON) written by the service. */
export class LogSink extends Writable {
  readonly lines: string[] = [];
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    this.lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
    cb();
  }
  records(): Record<string, unknown>[] {
    return this.lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  }
}

export interface Service {
  app: ReturnType<typeof createApp>;
  store: Store;
  host: Host;
  scheduler: Scheduler;
  logs: LogSink;
  dir: string;
  /** Makes a tenant through the admin API; returns its id and key. */
  tenant(name?: string): Promise<{ id: string; key: string }>;
  /** Uploads a module; returns its id. */
  upload(key: string, bytes: Uint8Array): Promise<string>;
  close(): Promise<void>;
}

let names = 0;

export interface ServiceOptions {
  store?: 'sqlite' | 'fake';
  quotas?: Partial<Quotas>;
  limits?: AppOptions['limits'];
  /** Do not start the scheduler (runs stay queued). */
  paused?: boolean;
  host?: Host;
  workers?: number;
  /** More options of createApp (CORS origins, retention, webhooks). */
  app?: Partial<AppOptions>;
  /** More options of createScheduler. */
  scheduler?: Partial<Parameters<typeof createScheduler>[0]>;
  /** Webhooks on the service's store (the scheduler stores their deliveries with the runs' ends), started with it. */
  webhooks?: (store: Store) => Webhooks;
  /** A PostgreSQL database to share with other services (nodes of one cluster), instead of a fresh one. */
  databaseUrl?: string;
  /** The node's id (the scheduler's default otherwise). */
  nodeId?: string;
}

export async function startService(o: ServiceOptions = {}): Promise<Service> {
  const dir = mkdtempSync(path.join(tmpdir(), 'capsa-api-'));
  // The 'postgres' vitest project runs the same files on PostgreSQL, a database per service.
  const store = o.store === 'fake' ? createFakeStore()
    : o.databaseUrl !== undefined || testStoreKind() === 'postgres' ? await createPostgresStore({ url: o.databaseUrl ?? await freshDatabase(), poolSize: 4 })
      : createSqliteStore({ dir });
  const ownHost = !o.host;
  const host = o.host ?? await testHost({ workers: o.workers ?? 2 });
  const logs = new LogSink();
  const logger = createLogger({ level: 'info', destination: logs });
  const webhooks = o.webhooks?.(store);
  const scheduler = createScheduler({
    store, host, logger, ...(o.quotas ? { quotas: o.quotas } : {}), ...(o.nodeId !== undefined ? { nodeId: o.nodeId } : {}),
    ...(webhooks ? { onFinish: (r) => webhooks.onFinish(r), deliveryFor: (r) => webhooks.deliveryFor(r) } : {}), ...o.scheduler,
  });
  if (!o.paused) await scheduler.start();
  await webhooks?.start();
  const app = createApp({ store, host, scheduler, adminToken: ADMIN, logger, ...(o.limits ? { limits: o.limits } : {}), ...(webhooks ? { webhooks } : {}), ...o.app });
  const svc: Service = {
    app, store, host, scheduler, logs, dir,
    async tenant(name = `t${++names}-${process.pid}`) {
      const r = await app.request('/v1/admin/tenants', { method: 'POST', headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }, body: JSON.stringify({ name }) });
      if (r.status !== 201) throw new Error(`tenant: ${r.status} ${await r.text()}`);
      const j = await r.json() as { tenant: { id: string }; key: { key: string } };
      return { id: j.tenant.id, key: j.key.key };
    },
    async upload(key, bytes) {
      const r = await app.request('/v1/modules', { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/wasm' }, body: bytes as Uint8Array<ArrayBuffer> });
      if (r.status !== 201 && r.status !== 200) throw new Error(`upload: ${r.status} ${await r.text()}`);
      return (await r.json() as { id: string }).id;
    },
    async close() {
      await scheduler.stop(2000);
      await webhooks?.stop();
      await scheduler.events.close();
      if (ownHost) await host.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return svc;
}

/** app.request with a bearer key and a JSON body. */
export async function call(app: Service['app'], method: string, url: string, opts: { key?: string; json?: unknown; body?: BodyInit; headers?: Record<string, string> } = {}): Promise<Response> {
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.key !== undefined) headers.authorization = `Bearer ${opts.key}`;
  let body = opts.body;
  if (opts.json !== undefined) {
    body = JSON.stringify(opts.json);
    headers['content-type'] ??= 'application/json';
  }
  return app.request(url, { method, headers, ...(body !== undefined ? { body } : {}) });
}

/** The JSON body, typed loosely for assertions. */
export async function json(r: Response): Promise<any> {
  return r.json();
}

/** Polls a run until it ends. */
export async function waitRun(app: Service['app'], key: string, id: string, ms = 20_000): Promise<any> {
  const end = Date.now() + ms;
  for (;;) {
    const r = await json(await call(app, 'GET', `/v1/runs/${id}`, { key }));
    if (!['queued', 'running'].includes(r.status)) return r;
    if (Date.now() > end) throw new Error(`run ${id} still ${r.status}`);
    await new Promise((res) => setTimeout(res, 20));
  }
}

/** Reads an SSE body to its end (or until `until` says stop) into events. */
export async function readSSE(res: Response, until?: (e: { event: string; id: string; data: string }) => boolean): Promise<{ event: string; id: string; data: string }[]> {
  const out: { event: string; id: string; data: string }[] = [];
  const reader = res.body!.getReader();
  const dec = new TextDecoder();
  let buf = '';
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    buf += dec.decode(value, { stream: true });
    let i: number;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      if (block.startsWith(':')) continue;
      const e = { event: 'message', id: '', data: '' };
      const data: string[] = [];
      for (const line of block.split('\n')) {
        const [k, ...rest] = line.split(': ');
        const v = rest.join(': ');
        if (k === 'event') e.event = v;
        else if (k === 'id') e.id = v;
        else if (k === 'data') data.push(v);
      }
      e.data = data.join('\n');
      out.push(e);
      if (until?.(e)) { await reader.cancel(); return out; }
    }
  }
  return out;
}

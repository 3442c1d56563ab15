/** Options and shared types of the REST service. */
import type { Logger } from 'pino';
import type { Host } from '../host/host.js';
import { DEFAULT_LIMITS, type Limits } from '../host/limits.js';
import type { Policy } from '../manifest/policy.js';
import type { Store, Tenant } from './store/types.js';
import type { Scheduler } from './scheduler.js';
import type { Webhooks } from './webhooks.js';

/** What the HTTP layer accepts: body sizes, waits, pages, batches. */
export interface ApiLimits {
  /** Largest module upload (raw or multipart), in bytes. */
  moduleBytes: number;
  /** Largest POST /v1/runs body, in bytes, besides stdin and files (the body may be larger by their base64). */
  runBodyBytes: number;
  /** Largest stdin of a run (stdin or stdinBase64, decoded), in bytes. */
  stdinBytes: number;
  /** Largest total of a run's files (files and filesBase64, decoded), in bytes. */
  filesBytes: number;
  /** Largest POST /v1/runs:batch body, in bytes. */
  batchBodyBytes: number;
  /** Largest admin request body (tenant names, policies), in bytes. */
  adminBodyBytes: number;
  /** Longest `wait` of POST /v1/runs, in seconds; longer asks are lowered to it. */
  waitSeconds: number;
  /** Most runs in one POST /v1/runs:batch. */
  batchMax: number;
  /** Page size when `limit` is not given, and the largest allowed. */
  pageDefault: number;
  pageMax: number;
  /** Deepest nesting of a JSON body (objects and arrays). */
  jsonDepth: number;
  /** What a run gets for each limit its manifest leaves out (lowered to the policy's maxima). */
  runDefaults: Limits;
}

export const DEFAULT_API_LIMITS: Readonly<ApiLimits> = {
  moduleBytes: 16 << 20,
  runBodyBytes: 2 << 20,
  stdinBytes: 1 << 20,
  filesBytes: 4 << 20,
  batchBodyBytes: 8 << 20,
  adminBodyBytes: 256 << 10,
  waitSeconds: 30,
  batchMax: 20,
  pageDefault: 20,
  pageMax: 100,
  jsonDepth: 32,
  runDefaults: { ...DEFAULT_LIMITS },
};

/** Options of createApp. */
export interface AppOptions {
  store: Store;
  host: Host;
  scheduler: Scheduler;
  /** The service's policy for tenants without their own (default SERVICE_POLICY: memory dirs only). */
  policy?: Policy;
  /** The bearer token of /v1/admin/* (the CLI passes CAPSA_ADMIN_TOKEN); without it the admin API answers 401. */
  adminToken?: string;
  /** Structured JSON logs (default: pino at CAPSA_LOG_LEVEL or info, to stdout). */
  logger?: Logger;
  limits?: Partial<Omit<ApiLimits, 'runDefaults'>> & { runDefaults?: Partial<Limits> };
  /** Webhooks (callback_url); without them a callback_url is refused. */
  webhooks?: Webhooks;
  /** Browser origins allowed to call the API (CORS; `--cors-origin`); `*` allows any. Default: none. */
  corsOrigins?: string[];
  /** The service's retention in seconds (`--retain`; a tenant's own goes over it); 0 (default) keeps everything. */
  retainSeconds?: number;
}

/** The largest POST /v1/runs body: the JSON limit plus room for stdin and files in base64. */
export function runBodyCap(l: ApiLimits): number {
  return l.runBodyBytes + Math.ceil((l.stdinBytes + l.filesBytes) * 4 / 3);
}

/** Hono's environment of every route. */
export interface AppEnv {
  Variables: {
    requestId: string;
    tenant: Tenant;
    /** Set by run routes so the access log names the run. */
    runId: string;
    log: Logger;
  };
}

/** What the feature folders receive from createApp. */
export interface Deps {
  store: Store;
  host: Host;
  scheduler: Scheduler;
  policy: Policy;
  adminToken: string | undefined;
  logger: Logger;
  limits: ApiLimits;
  retainSeconds: number;
  webhooks: Webhooks | undefined;
}

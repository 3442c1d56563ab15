/**
 * From a POST /v1/runs body to what the scheduler stores: the manifest is parsed (text as YAML;
 * an object is written out as YAML first, so problems still have line:col), checked against the
 * tenant's policy (or the service's), and turned into run request fields with stdin and files.
 */
import YAML from 'yaml';
import { z } from '@hono/zod-openapi';
import { fileProblems } from '../../host/files.js';
import { effectiveGrants, type EffectiveGrants } from '../../manifest/effective.js';
import { flowDepth } from '../../manifest/parse.js';
import { parsePolicy, type Policy } from '../../manifest/policy.js';
import { ManifestError, type Manifest } from '../../manifest/types.js';
import type { Tenant } from '../store/types.js';
import { ApiError } from '../errors.js';
import { fromB64, isBase64 } from '../encoding.js';
import { formatBytes } from '../../host/units.js';
import type { Deps } from '../options.js';
import type { StoredRunFields } from './record.js';

export const MODULE_ID = /^sha256:[0-9a-f]{64}$/;

export const RunBodySchema = z.strictObject({
  module: z.string().regex(MODULE_ID, 'must be "sha256:" followed by 64 lowercase hex digits').optional()
    .openapi({ description: 'The id of a module you uploaded (POST /v1/modules); or give it as the manifest\'s `module`', example: 'sha256:…' }),
  manifest: z.union([z.string(), z.record(z.string(), z.unknown())]).optional()
    .openapi({ description: 'The manifest: YAML text, or the same as a JSON object (args, env, argdata, dirs, limits, casper, pledge)', example: 'args: [world]\n' }),
  stdin: z.string().optional().openapi({ description: 'Standard input as text' }),
  stdinBase64: z.string().refine(isBase64, 'must be base64').optional().openapi({ description: 'Standard input as base64 (instead of stdin)' }),
  files: z.record(z.string(), z.string()).optional().openapi({ description: 'In-memory files by guest path, as text, e.g. {"/data/in.txt": "hello"}' }),
  filesBase64: z.record(z.string(), z.string().refine(isBase64, 'must be base64')).optional().openapi({ description: 'In-memory files by guest path, as base64' }),
  audit: z.enum(['off', 'denied', 'all']).optional().openapi({ description: 'Which capability decisions to record (default denied)' }),
  learn: z.boolean({ error: 'must be true or false (a JSON boolean, not a string)' }).optional()
    .openapi({ description: 'Run with audit "all" and put in the result (`learnedManifest`) the least manifest that grants only what this run used, as YAML to submit again' }),
  wait: z.number().min(0).optional().openapi({ description: 'Seconds to wait for the run to end before answering (lowered to the service\'s cap)' }),
  callback_url: z.string().max(2048).optional().openapi({
    description: 'POSTed when the run ends (a webhook, signed with your webhook secret; see docs/webhooks.md). Its host must be on the operator\'s allowlist', example: 'https://hooks.example.com/capsa',
  }),
}).openapi('RunRequest');

export type RunBody = z.output<typeof RunBodySchema>;

export interface PreparedRun {
  moduleId: string;
  manifest: string;
  fields: StoredRunFields;
  /** With learn: the effective manifest that runs, which the learned one is narrowed from. */
  learn?: Manifest;
  callbackUrl?: string;
}

const policyCache = new WeakMap<Deps, Map<string, { text: string; policy: Policy }>>();

/**
 * A tenant's policy: its own (host directory rules dropped: tenants get in-memory directories
 * only, whatever a policy says) or the service's.
 */
export function tenantPolicy(deps: Deps, tenant: Tenant): Policy {
  if (tenant.policy === null || tenant.policy.trim() === '') return deps.policy;
  let cache = policyCache.get(deps);
  if (!cache) { cache = new Map(); policyCache.set(deps, cache); }
  const hit = cache.get(tenant.id);
  if (hit && hit.text === tenant.policy) return hit.policy;
  let policy: Policy;
  try {
    const p = parsePolicy(tenant.policy, 'policy');
    policy = { ...p, dirs: p.dirs.filter((d) => d.source.kind === 'memory') };
  } catch (e) {
    throw new ApiError(500, 'internal', `Your tenant's policy cannot be read; ask the operator to set it again (${(e as Error).message.split('\n')[0]})`);
  }
  cache.set(tenant.id, { text: tenant.policy, policy });
  return policy;
}

/** Manifests checked lately, per policy: a client sending the same manifest again costs no YAML parse. */
const checkedCache = new WeakMap<Policy, Map<string, ReturnType<typeof effectiveGrants>>>();
const CHECKED_PER_POLICY = 256;

/**
 * effectiveGrants for the service: the same text under the same policy (and run defaults) has the
 * same answer, kept for the last CHECKED_PER_POLICY texts of each policy. Callers only read what
 * it returns (prepareRun encodes it), so the cached objects are shared. Refusals are not kept.
 */
function checkedManifest(text: string, policy: Policy, defaults: Deps['limits']['runDefaults']): ReturnType<typeof effectiveGrants> {
  let cache = checkedCache.get(policy);
  if (!cache) { cache = new Map(); checkedCache.set(policy, cache); }
  const key = `${JSON.stringify(defaults)}\n${text}`;
  const hit = cache.get(key);
  if (hit) {
    cache.delete(key);
    cache.set(key, hit);
    return hit;
  }
  const grants = effectiveGrants(text, { file: 'manifest', policy, defaults, baseDir: process.cwd() });
  cache.set(key, grants);
  if (cache.size > CHECKED_PER_POLICY) cache.delete(cache.keys().next().value!);
  return grants;
}

/** A ManifestError as a 422 with every problem in details. */
export function manifestProblem(e: ManifestError, code: 'invalid_manifest' | 'policy_violation' | 'invalid_policy', lead: string): ApiError {
  return new ApiError(422, code, `${lead}:\n${e.message}`, e.problems);
}

/** Paths of `files` must be absolute here; the engine's own rules are checked with the limits (fileProblems). */
function checkFiles(files: Record<string, unknown>, field: string): { path: string; message: string }[] {
  return Object.keys(files).filter((p) => !p.startsWith('/'))
    .map((p) => ({ path: `${field}.${p}`, message: 'a file path is absolute, like "/data/in.txt"' }));
}

/**
 * What a manifest's text grants a tenant's run; throws a ManifestError with every problem at once
 * (the manifest's own and its excesses over the policy), each at line:col. POST /v1/runs and the
 * dashboard's check (POST /v1/manifests/check) read manifests through it alone.
 */
export function manifestGrants(deps: Deps, tenant: Tenant, text: string): EffectiveGrants {
  // Nesting is refused before parsing (the reader checks it too; this names the field).
  if (flowDepth(text) > 64) throw new ManifestError('manifest', [{ line: 0, col: 0, path: '', message: 'The manifest is nested deeper than 64 levels' }]);
  return checkedManifest(text, tenantPolicy(deps, tenant), deps.limits.runDefaults);
}

/** stdin and files against the service's limits of their own (not the body's): 413 naming the field and the limit. */
function checkSizes(deps: Deps, stdin: string | Uint8Array | undefined, files: Record<string, string | Uint8Array>, base64: boolean): void {
  const { stdinBytes, filesBytes } = deps.limits;
  const size = (v: string | Uint8Array) => (typeof v === 'string' ? Buffer.byteLength(v, 'utf8') : v.byteLength);
  if (stdin !== undefined && size(stdin) > stdinBytes) {
    throw new ApiError(413, 'body_too_large', `${base64 ? 'stdinBase64' : 'stdin'} is ${formatBytes(size(stdin))}; the service takes at most ${formatBytes(stdinBytes)} of stdin (capsa serve --max-stdin)`,
      [{ path: base64 ? 'stdinBase64' : 'stdin', message: `above ${stdinBytes} bytes` }]);
  }
  const total = Object.values(files).reduce((n, v) => n + size(v), 0);
  if (total > filesBytes) {
    throw new ApiError(413, 'body_too_large', `The files add up to ${formatBytes(total)}; the service takes at most ${formatBytes(filesBytes)} of files a run (capsa serve --max-files)`,
      [{ path: 'files', message: `above ${filesBytes} bytes` }]);
  }
}

/** Validates a run body for a tenant; throws ApiError (404/422) naming what is wrong. */
export async function prepareRun(deps: Deps, tenant: Tenant, body: RunBody): Promise<PreparedRun> {
  if (body.learn && body.audit !== undefined && body.audit !== 'all') {
    throw new ApiError(422, 'invalid_request', `learn records every decision: drop "audit" or set it to "all" (not ${JSON.stringify(body.audit)})`, [{ path: 'audit', message: 'conflicts with learn' }]);
  }
  if (body.callback_url !== undefined) {
    if (!deps.webhooks) throw new ApiError(422, 'invalid_request', 'callback_url cannot be used: this service sends no webhooks (the operator allows no hosts: capsa serve --webhook-allow HOST)', [{ path: 'callback_url', message: 'webhooks are off' }]);
    deps.webhooks.check(body.callback_url);
  }
  if (body.stdin !== undefined && body.stdinBase64 !== undefined) {
    throw new ApiError(422, 'invalid_request', 'Give stdin or stdinBase64, not both', [{ path: 'stdinBase64', message: 'conflicts with stdin' }]);
  }
  const pathProblems = [...checkFiles(body.files ?? {}, 'files'), ...checkFiles(body.filesBase64 ?? {}, 'filesBase64')];
  for (const p of Object.keys(body.files ?? {})) {
    if (body.filesBase64 && Object.hasOwn(body.filesBase64, p)) pathProblems.push({ path: `filesBase64.${p}`, message: 'also given in files' });
  }
  if (pathProblems.length) {
    throw new ApiError(422, 'invalid_request', `Invalid files: ${pathProblems.map((p) => `${p.path}: ${p.message}`).join('; ')}`, pathProblems);
  }

  let text: string;
  if (body.manifest === undefined) text = '';
  else if (typeof body.manifest === 'string') text = body.manifest;
  else text = YAML.stringify(body.manifest, { aliasDuplicateObjects: false });

  let grants;
  try {
    grants = manifestGrants(deps, tenant, text);
  } catch (e) {
    if (!(e instanceof ManifestError)) throw e;
    if (e.problems.every((p) => p.policy)) throw manifestProblem(e, 'policy_violation', 'The manifest asks for more than your policy allows');
    throw manifestProblem(e, 'invalid_manifest', 'The manifest is not valid');
  }
  const { manifest: effective, request } = grants;

  if (effective.module !== undefined && !MODULE_ID.test(effective.module)) {
    throw new ApiError(422, 'invalid_manifest', `The manifest's module must be a module id ("sha256:…"), not ${JSON.stringify(effective.module)}`, [{ line: 0, col: 0, path: 'module', message: 'not a module id' }]);
  }
  if (body.module !== undefined && effective.module !== undefined && body.module !== effective.module) {
    throw new ApiError(422, 'invalid_request', `The body names module ${body.module} and the manifest ${effective.module}; give one`);
  }
  const moduleId = body.module ?? effective.module;
  if (moduleId === undefined) throw new ApiError(422, 'invalid_request', 'Name the module to run: "module": "sha256:…" (upload it with POST /v1/modules)', [{ path: 'module', message: 'required' }]);
  if (!await deps.store.getModule(tenant.id, moduleId)) {
    throw new ApiError(422, 'unknown_module', `You have no module ${moduleId}; upload it with POST /v1/modules first`, [{ path: 'module', message: 'not found' }]);
  }

  // fromEntries defines keys (a "__proto__" path stays a path).
  const files: Record<string, string | Uint8Array> = Object.fromEntries([
    ...Object.entries(body.files ?? {}),
    ...Object.entries(body.filesBase64 ?? {}).map(([p, v]) => [p, fromB64(v)] as const),
  ]);
  // The engine's rules: names, depth, inodes and the files limit, so a tree that cannot be made is a 422.
  const seedProblems = fileProblems(files, effective.limits.filesBytes)
    .map((p) => ({ path: p.path === '' ? 'files' : `${body.filesBase64 && Object.hasOwn(body.filesBase64, p.path) ? 'filesBase64' : 'files'}.${p.path}`, message: p.message }));
  if (seedProblems.length) {
    throw new ApiError(422, 'invalid_request', `Invalid files: ${seedProblems.map((p) => `${p.path}: ${p.message}`).join('; ')}`, seedProblems);
  }
  const stdin = body.stdinBase64 !== undefined ? fromB64(body.stdinBase64) : body.stdin;
  checkSizes(deps, stdin, files, body.stdinBase64 !== undefined);
  const fields: StoredRunFields = {
    ...request,
    ...(stdin !== undefined ? { stdin } : {}),
    ...(Object.keys(files).length ? { files } : {}),
    audit: body.learn ? 'all' : body.audit ?? 'denied',
  };
  // The learned manifest names the module, so that it can be submitted again on its own.
  return {
    moduleId, manifest: text, fields, ...(body.learn ? { learn: { ...effective, module: moduleId } } : {}),
    ...(body.callback_url !== undefined ? { callbackUrl: body.callback_url } : {}),
  };
}

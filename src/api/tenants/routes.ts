/** /v1/admin/tenants: tenants, their API keys (shown once) and policies; admin token only. */
import type { OpenAPIHono } from '@hono/zod-openapi';
import { z } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { flowDepth } from '../../manifest/parse.js';
import { parsePolicy } from '../../manifest/policy.js';
import { ManifestError } from '../../manifest/types.js';
import type { ApiKeyRecord, Tenant, TenantQuotas } from '../store/types.js';
import { iso } from '../encoding.js';
import { ApiError, notFound } from '../errors.js';
import { defineRoute, errorResponses, jsonContent, parseJson, readJson } from '../http.js';
import type { AppEnv, Deps } from '../options.js';
import { manifestProblem } from '../runs/prepare.js';
import { syncMounts } from '../mounts.js';
import { TenantQuotasSchema } from '../quotas.js';

const KeySchema = z.object({ id: z.string(), createdAt: z.string(), revokedAt: z.string().nullable() }).openapi('ApiKey');
const NewKeySchema = z.object({
  id: z.string(), createdAt: z.string(),
  key: z.string().openapi({ description: 'The key itself; shown this once, only its hash is kept' }),
}).openapi('NewApiKey');
const TenantSchema = z.object({
  id: z.string(), name: z.string(), createdAt: z.string(),
  policy: z.string().nullable().openapi({ description: 'The tenant\'s policy (YAML), or null for the service\'s' }),
  quotas: TenantQuotasSchema.openapi({ description: 'The tenant\'s own quotas and retention; a field left out takes the service\'s' }),
  keys: z.array(KeySchema).optional(),
}).openapi('Tenant');

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
const CreateTenantSchema = z.strictObject({
  name: z.string().regex(NAME, 'a name is 1-63 letters, digits, ".", "_" or "-", starting with a letter or digit'),
  policy: z.string().optional().openapi({ description: 'A policy (YAML) for the tenant' }),
}).openapi('CreateTenant');

const tenantView = (t: Tenant, keys?: ApiKeyRecord[]) => ({
  id: t.id, name: t.name, createdAt: iso(t.createdAt)!, policy: t.policy, quotas: t.quotas,
  ...(keys ? { keys: keys.map(keyView) } : {}),
});
const keyView = (k: ApiKeyRecord) => ({ id: k.id, createdAt: iso(k.createdAt)!, revokedAt: iso(k.revokedAt) });

/**
 * Checks a policy for a tenant: it must parse, and may not grant host directories (tenants get
 * in-memory directories only). Returns the text to store, or null for the service's policy.
 */
export function checkTenantPolicy(text: string): string | null {
  if (text.trim() === '') return null;
  if (flowDepth(text) > 64) throw new ApiError(422, 'invalid_policy', 'The policy is nested deeper than 64 levels');
  let policy;
  try {
    policy = parsePolicy(text, 'policy');
  } catch (e) {
    if (e instanceof ManifestError) throw manifestProblem(e, 'invalid_policy', 'The policy is not valid');
    throw e;
  }
  const host = policy.dirs.map((d, i) => ({ d, i })).filter(({ d }) => d.source.kind === 'host');
  if (host.length) {
    throw new ApiError(422, 'invalid_policy', `A tenant's policy may grant in-memory directories only; ${host.map(({ i }) => `dirs[${i}]`).join(', ')} name host directories`,
      host.map(({ i }) => ({ line: 0, col: 0, path: `dirs[${i}].source`, message: 'host directories are not allowed for tenants' })));
  }
  return text;
}

export function registerTenantRoutes(app: OpenAPIHono<AppEnv>, deps: Deps): void {
  const { store, limits } = deps;
  const tenantOr404 = async (c: Context<AppEnv>): Promise<Tenant> => {
    const id = c.req.param('id') ?? '';
    const t = await store.getTenant(id);
    if (!t) throw notFound(`Tenant ${id}`);
    return t;
  };
  const idParam = z.object({ id: z.string().openapi({ param: { name: 'id', in: 'path' } }) });

  defineRoute(app, deps, {
    method: 'post', path: '/v1/admin/tenants', auth: 'admin', maxBody: limits.adminBodyBytes, tags: ['admin'],
    summary: 'Create a tenant and its first API key (shown once)',
    request: { body: { required: true, content: { 'application/json': { schema: CreateTenantSchema } } } },
    responses: {
      201: jsonContent(z.object({ tenant: TenantSchema, key: NewKeySchema }), 'The tenant and its key'),
      ...errorResponses([409, 'A tenant with that name exists'], [422, 'Invalid name or policy']),
    },
  }, async (c) => {
    const body = await readJson(c, deps, CreateTenantSchema);
    const policy = body.policy !== undefined ? checkTenantPolicy(body.policy) : null;
    if (await store.findTenantByName(body.name)) throw new ApiError(409, 'conflict', `A tenant named ${body.name} exists`);
    const tenant = await store.createTenant(body.name);
    if (policy !== null) await store.setPolicy(tenant.id, policy);
    const { key, record } = await store.createKey(tenant.id);
    c.get('log').info({ tenant: tenant.id, keyId: record.id }, 'tenant created');
    // A tenant under the service's policy may bring its host directories into force.
    await syncMounts(deps);
    return c.json({ tenant: tenantView(await store.getTenant(tenant.id) ?? tenant), key: { id: record.id, createdAt: iso(record.createdAt)!, key } }, 201);
  });

  defineRoute(app, deps, {
    method: 'get', path: '/v1/admin/tenants', auth: 'admin', tags: ['admin'],
    summary: 'List tenants with their keys (ids only)',
    responses: { 200: jsonContent(z.object({ items: z.array(TenantSchema) }), 'Every tenant') },
  }, async (c) => {
    const items = [];
    for (const t of await store.listTenants()) items.push(tenantView(t, await store.listKeys(t.id)));
    return c.json({ items }, 200);
  });

  defineRoute(app, deps, {
    method: 'post', path: '/v1/admin/tenants/{id}/keys', auth: 'admin', tags: ['admin'],
    summary: 'Make another API key for a tenant (shown once)',
    request: { params: idParam },
    responses: { 201: jsonContent(NewKeySchema, 'The key'), ...errorResponses([404, 'No such tenant']) },
  }, async (c) => {
    const t = await tenantOr404(c);
    const { key, record } = await store.createKey(t.id);
    c.get('log').info({ tenant: t.id, keyId: record.id }, 'key created');
    return c.json({ id: record.id, createdAt: iso(record.createdAt)!, key }, 201);
  });

  defineRoute(app, deps, {
    method: 'delete', path: '/v1/admin/tenants/{id}/keys/{keyId}', auth: 'admin', tags: ['admin'],
    summary: 'Revoke an API key',
    request: { params: idParam.extend({ keyId: z.string().openapi({ param: { name: 'keyId', in: 'path' } }) }) },
    responses: { 204: { description: 'Revoked' }, ...errorResponses([404, 'No such tenant or key']) },
  }, async (c) => {
    const t = await tenantOr404(c);
    const keyId = c.req.param('keyId') ?? '';
    if (!await store.revokeKey(t.id, keyId)) throw notFound(`Key ${keyId}`);
    c.get('log').info({ tenant: t.id, keyId }, 'key revoked');
    return c.body(null, 204);
  });

  defineRoute(app, deps, {
    method: 'put', path: '/v1/admin/tenants/{id}/policy', auth: 'admin', maxBody: limits.adminBodyBytes, tags: ['admin'],
    summary: 'Set a tenant\'s policy',
    description: 'The body is the policy as YAML (application/yaml or text/plain), or JSON { "policy": "<yaml>" | null }; empty or null returns the tenant to the service\'s policy. Host directories are refused.',
    request: {
      params: idParam,
      body: {
        required: true,
        content: {
          'application/yaml': { schema: { type: 'string' } },
          'application/json': { schema: z.object({ policy: z.string().nullable() }) },
        },
      },
    },
    responses: { 200: jsonContent(TenantSchema, 'The tenant with its policy'), ...errorResponses([404, 'No such tenant'], [422, 'The policy is invalid (each problem with line:col)']) },
  }, async (c) => {
    const t = await tenantOr404(c);
    const type = (c.req.header('content-type') ?? '').split(';')[0]!.trim().toLowerCase();
    let text: string;
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(await c.req.arrayBuffer());
    } catch {
      throw new ApiError(400, 'bad_request', 'The policy is not valid UTF-8 text');
    }
    let policy: string | null;
    if (type === 'application/json' || type.endsWith('+json')) {
      const v = parseJson(text, limits.jsonDepth);
      const r = z.strictObject({ policy: z.string().nullable() }).safeParse(v);
      if (!r.success) throw new ApiError(422, 'invalid_request', 'A JSON body is { "policy": "<yaml>" | null }');
      policy = r.data.policy === null ? null : checkTenantPolicy(r.data.policy);
    } else {
      policy = checkTenantPolicy(text);
    }
    await store.setPolicy(t.id, policy);
    c.get('log').info({ tenant: t.id, policy: policy === null ? 'service' : 'own' }, 'policy set');
    // Executors never hold more than the policies in force allow: replaced if that changed.
    await syncMounts(deps);
    return c.json(tenantView(await store.getTenant(t.id) ?? t), 200);
  });

  defineRoute(app, deps, {
    method: 'put', path: '/v1/admin/tenants/{id}/quotas', auth: 'admin', maxBody: limits.adminBodyBytes, tags: ['admin'],
    summary: 'Set a tenant\'s quotas and retention',
    description: 'The body is the tenant\'s whole set of its own quotas: a field left out takes the service\'s (`{}` gives every one back). '
      + 'They hold at once: a lower concurrentRuns lets running runs finish and starts no more until below it. (Set with capsa tenant set-quota, they hold from the tenant\'s next request.)',
    request: { params: idParam, body: { required: true, content: { 'application/json': { schema: TenantQuotasSchema } } } },
    responses: { 200: jsonContent(TenantSchema, 'The tenant with its quotas'), ...errorResponses([404, 'No such tenant'], [422, 'An unknown or out-of-range quota (each named)']) },
  }, async (c) => {
    const t = await tenantOr404(c);
    const body = await readJson(c, deps, TenantQuotasSchema, 'quotas');
    const quotas: TenantQuotas = Object.fromEntries(Object.entries(body).filter(([, v]) => v !== undefined));
    await store.setQuotas(t.id, quotas);
    c.get('log').info({ tenant: t.id, quotas }, 'quotas set');
    const updated = await store.getTenant(t.id) ?? t;
    // The scheduler holds its runs to the new concurrency at once, not from the tenant's next request.
    deps.scheduler.quotasFor(updated);
    return c.json(tenantView(updated), 200);
  });
}

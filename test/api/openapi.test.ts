/** The OpenAPI document describes every route the app serves, and /docs lists them. */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { call, json, startService, type Service } from './helpers.js';

let svc: Service;
beforeAll(async () => { svc = await startService(); });
afterAll(async () => { await svc.close(); });

/** Every method and path the app routes, in OpenAPI's {param} spelling (middleware excluded). */
function served(): string[] {
  return [...new Set(svc.app.routes
    .filter((r) => r.method !== 'ALL')
    .map((r) => `${r.method} ${r.path.replace(/\/:([^/]+)/g, '/{$1}')}`))].sort();
}

it('lists every route, with its auth and error answers', async () => {
  const r = await call(svc.app, 'GET', '/openapi.json');
  expect(r.status).toBe(200);
  const doc = await json(r);
  expect(doc.openapi).toBe('3.0.3');
  const documented: string[] = [];
  for (const [p, item] of Object.entries(doc.paths as Record<string, Record<string, unknown>>)) {
    for (const m of Object.keys(item)) documented.push(`${m.toUpperCase()} ${p}`);
  }
  expect(documented.sort()).toEqual(served());
  expect(served()).toEqual([
    'DELETE /v1/admin/tenants/{id}/keys/{keyId}', 'DELETE /v1/modules/{id}', 'DELETE /v1/runs/{id}',
    'GET /', 'GET /docs', 'GET /healthz', 'GET /metrics', 'GET /openapi.json', 'GET /ui', 'GET /ui/app.css', 'GET /ui/app.js',
    'GET /v1/admin/tenants', 'GET /v1/limits', 'GET /v1/modules', 'GET /v1/modules/{id}',
    'GET /v1/runs', 'GET /v1/runs/{id}', 'GET /v1/runs/{id}/audit', 'GET /v1/runs/{id}/events', 'GET /v1/runs/{id}/webhooks',
    'GET /v1/webhooks/secret',
    'POST /v1/admin/tenants', 'POST /v1/admin/tenants/{id}/keys', 'POST /v1/manifests/check', 'POST /v1/modules', 'POST /v1/runs', 'POST /v1/runs:batch',
    'POST /v1/webhooks/secret',
    'PUT /v1/admin/tenants/{id}/policy', 'PUT /v1/admin/tenants/{id}/quotas',
  ]);
  expect(doc.components.securitySchemes).toMatchObject({ Bearer: { type: 'http', scheme: 'bearer' }, AdminBearer: { type: 'http', scheme: 'bearer' } });
  const post = doc.paths['/v1/runs'].post;
  expect(post.security).toEqual([{ Bearer: [] }]);
  expect(Object.keys(post.responses)).toEqual(expect.arrayContaining(['201', '400', '401', '413', '422', '429', '503']));
  expect(post.requestBody.content['application/json'].schema.$ref).toBe('#/components/schemas/RunRequest');
  expect(doc.components.schemas.RunRequest.properties).toHaveProperty('manifest');
  expect(doc.components.schemas.Run.properties).toHaveProperty('stdoutEncoding');
  expect(doc.components.schemas.Error.properties.error.properties).toHaveProperty('code');
  expect(doc.paths['/healthz'].get.security).toEqual([]);
  expect(doc.paths['/v1/admin/tenants'].post.security).toEqual([{ AdminBearer: [] }]);
  expect(doc.paths['/v1/runs/{id}'].get.parameters).toEqual([expect.objectContaining({ name: 'id', in: 'path', required: true })]);
  expect(doc.paths['/v1/modules'].post.requestBody.content).toHaveProperty('application/wasm');
});

it('renders /docs as HTML from the document, escaping text', async () => {
  const r = await call(svc.app, 'GET', '/docs');
  expect(r.status).toBe(200);
  expect(r.headers.get('content-type')).toContain('text/html');
  const html = await r.text();
  for (const route of served()) {
    const [method, p] = route.split(' ');
    expect(html).toContain(`<code class="m">${method}</code> <code>${p}</code>`);
  }
  expect(html).not.toContain('<script');
  expect(html).toContain('30 routes');
});

it('types the batch\'s items as run requests, and the results\' output as text with an encoding', async () => {
  const doc = await json(await call(svc.app, 'GET', '/openapi.json'));
  const batch = doc.components.schemas.RunBatch;
  const [arr, obj] = batch.anyOf;
  expect(arr.items.$ref).toBe('#/components/schemas/RunRequest');
  expect(obj.properties.runs.items.$ref).toBe('#/components/schemas/RunRequest');
  expect(obj.properties.wait.type).toBe('number');
  expect(obj.additionalProperties).toBe(false);
  const run = doc.components.schemas.Run;
  expect(run.properties.stdout.type).toBe('string');
  expect(run.properties.stdoutEncoding.enum).toEqual(['utf8', 'base64']);
});

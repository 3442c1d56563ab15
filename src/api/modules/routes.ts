/** /v1/modules: upload (validated, imports checked), list, read, delete; content-addressed and per tenant. */
import type { OpenAPIHono } from '@hono/zod-openapi';
import { z } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { unknownImports, PROVIDED_MODULES } from '../../host/imports.js';
import { moduleId } from '../../host/module-cache.js';
import { formatBytes } from '../../host/units.js';
import { ModuleLimitError, moduleInterface, type ModuleInterface } from '../../host/wasm-limits.js';
import type { ModuleRecord } from '../store/types.js';
import { ApiError, notFound } from '../errors.js';
import { defineRoute, errorResponses, jsonContent, pageQuery, pageSchema, readQuery } from '../http.js';
import type { AppEnv, Deps } from '../options.js';

export const ModuleSchema = z.object({
  id: z.string().openapi({ example: 'sha256:…' }),
  size: z.number().int(),
  imports: z.array(z.string()).openapi({ description: '"module.name" of each import' }),
  createdAt: z.string(),
}).openapi('Module');

const moduleView = (m: ModuleRecord) => ({ id: m.id, size: m.size, imports: m.imports, createdAt: new Date(m.createdAt).toISOString() });

const idParam = z.object({ id: z.string().openapi({ param: { name: 'id', in: 'path' }, example: 'sha256:…' }) });

/** The module's bytes: the raw body, or the multipart field "module". */
async function uploadedBytes(c: Context<AppEnv>, max: number): Promise<Uint8Array<ArrayBuffer>> {
  const type = (c.req.header('content-type') ?? '').split(';')[0]!.trim().toLowerCase();
  let bytes: Uint8Array<ArrayBuffer>;
  if (type === 'multipart/form-data') {
    let form: FormData;
    try {
      form = await c.req.formData();
    } catch (e) {
      throw new ApiError(400, 'bad_request', `The multipart body cannot be read: ${(e as Error).message}`);
    }
    const field = form.get('module');
    if (field === null) throw new ApiError(422, 'invalid_request', 'The multipart body has no field "module"', [{ path: 'module', message: 'required' }]);
    bytes = typeof field === 'string' ? new TextEncoder().encode(field) : new Uint8Array(await field.arrayBuffer());
  } else if (type === 'application/json' || type.endsWith('+json') || type.startsWith('text/')) {
    throw new ApiError(415, 'unsupported_media_type', `Send the module's bytes as application/wasm (or multipart field "module"), not ${type}`);
  } else {
    bytes = new Uint8Array(await c.req.arrayBuffer());
  }
  if (bytes.length === 0) throw new ApiError(400, 'bad_request', 'The body is empty; send the module\'s bytes (curl --data-binary @module.wasm)');
  if (bytes.length > max) throw new ApiError(413, 'body_too_large', `The module is ${formatBytes(bytes.length)}; the limit is ${formatBytes(max)}`);
  return bytes;
}

export function registerModuleRoutes(app: OpenAPIHono<AppEnv>, deps: Deps): void {
  const { store, scheduler, limits } = deps;
  // Multipart framing adds a little to the module's own cap.
  const maxBody = limits.moduleBytes + (64 << 10);

  defineRoute(app, deps, {
    method: 'post', path: '/v1/modules', auth: 'tenant', maxBody, tags: ['modules'],
    summary: 'Upload a module',
    description: `The raw bytes (application/wasm; curl --data-binary) or the multipart field "module", up to ${formatBytes(limits.moduleBytes)}. `
      + `The module must be well-formed WebAssembly (its sections are read here; its code is compiled when it runs, in an executor) and import nothing but what capsa provides (functions of ${PROVIDED_MODULES.join(', ')}). `
      + 'Modules are content-addressed: uploading the same bytes again answers 200 with the same id.',
    request: {
      body: {
        required: true,
        content: {
          'application/wasm': { schema: { type: 'string', format: 'binary' } },
          'multipart/form-data': { schema: { type: 'object', properties: { module: { type: 'string', format: 'binary' } }, required: ['module'] } },
        },
      },
    },
    responses: {
      201: jsonContent(ModuleSchema, 'Stored'),
      200: jsonContent(ModuleSchema, 'You already had this module'),
      ...errorResponses([400, 'Empty or unreadable body'], [415, 'A JSON or text body'],
        [422, 'Not a valid module, or it imports what capsa does not provide (each named)'], [429, 'Your module storage quota is used up']),
    },
  }, async (c) => {
    const tenant = c.get('tenant');
    const bytes = await uploadedBytes(c, limits.moduleBytes);
    // Read by capsa's bounded section reader, never compiled here: the API process does not hand a
    // tenant's bytes to V8's compiler (the executors compile them, in their sandbox).
    let iface: ModuleInterface;
    try {
      iface = moduleInterface(bytes);
    } catch (e) {
      if (e instanceof ModuleLimitError) throw new ApiError(422, 'invalid_module', `Not a valid WebAssembly module: ${e.message.replace(/^Cannot run the module: /, '')}`);
      throw e;
    }
    const unknown = unknownImports(iface.imports);
    if (unknown.length) {
      const list = unknown.slice(0, 20).join(', ') + (unknown.length > 20 ? `, and ${unknown.length - 20} more` : '');
      throw new ApiError(422, 'unknown_imports',
        `The module imports ${list}, which capsa does not provide (capsa provides functions of ${PROVIDED_MODULES.join(', ')})`,
        unknown.map((name) => ({ import: name, message: 'not provided by capsa' })));
    }
    const id = moduleId(bytes);
    if (!await store.getModule(tenant.id, id)) {
      const used = await store.moduleStorage(tenant.id);
      const quota = scheduler.quotasFor(tenant).moduleStorageBytes;
      if (used + bytes.length > quota) {
        // No Retry-After: waiting does not free storage, deleting modules does.
        throw new ApiError(429, 'quota_exceeded', `Your modules take ${formatBytes(used)}; this one (${formatBytes(bytes.length)}) would pass the ${formatBytes(quota)} storage quota. Delete modules you no longer need`,
          { quota: 'moduleStorageBytes', limit: quota, used });
      }
    }
    const imports = iface.imports.map((i) => `${i.module}.${i.name}`);
    const { record, created } = await store.putModule(tenant.id, bytes, imports);
    c.header('Location', `/v1/modules/${record.id}`);
    return c.json(moduleView(record), created ? 201 : 200);
  });

  const listQuery = pageQuery(deps);
  defineRoute(app, deps, {
    method: 'get', path: '/v1/modules', auth: 'tenant', tags: ['modules'],
    summary: 'List your modules',
    request: { query: listQuery },
    responses: { 200: jsonContent(pageSchema(ModuleSchema, 'ModulePage'), 'A page of modules'), ...errorResponses([422, 'Bad query parameters']) },
  }, async (c) => {
    const q = readQuery(c, listQuery);
    const page = await store.listModules(c.get('tenant').id, { limit: q.limit ?? limits.pageDefault, ...(q.cursor !== undefined ? { cursor: q.cursor } : {}) });
    return c.json({ items: page.items.map(moduleView), ...(page.next !== undefined ? { next: page.next } : {}) }, 200);
  });

  defineRoute(app, deps, {
    method: 'get', path: '/v1/modules/{id}', auth: 'tenant', tags: ['modules'],
    summary: 'A module',
    request: { params: idParam },
    responses: { 200: jsonContent(ModuleSchema, 'The module'), ...errorResponses([404, 'You have no such module']) },
  }, async (c) => {
    const id = c.req.param('id') ?? '';
    const m = await store.getModule(c.get('tenant').id, id);
    if (!m) throw notFound(`Module ${id}`);
    return c.json(moduleView(m), 200);
  });

  defineRoute(app, deps, {
    method: 'delete', path: '/v1/modules/{id}', auth: 'tenant', tags: ['modules'],
    summary: 'Delete a module',
    description: 'Queued runs of the module end invalid_module when their turn comes.',
    request: { params: idParam },
    responses: { 204: { description: 'Deleted' }, ...errorResponses([404, 'You have no such module']) },
  }, async (c) => {
    const id = c.req.param('id') ?? '';
    if (!await store.deleteModule(c.get('tenant').id, id)) throw notFound(`Module ${id}`);
    return c.body(null, 204);
  });
}

/** Webhooks for tenants: the deliveries of a run's callback_url, and the signing secret (read, rotate). */
import type { OpenAPIHono } from '@hono/zod-openapi';
import { z } from '@hono/zod-openapi';
import { iso } from '../encoding.js';
import { tenantRun } from '../runs/routes.js';
import { defineRoute, errorResponses, jsonContent } from '../http.js';
import type { AppEnv, Deps } from '../options.js';
import type { DeliveryRecord } from '../store/types.js';

const DeliverySchema = z.object({
  id: z.string(),
  url: z.string(),
  state: z.enum(['pending', 'delivered', 'failed']).openapi({ description: 'pending: an attempt is due at nextAt; delivered: a 2xx came back; failed: the attempts ran out, or the target was refused (SSRF rules)' }),
  attempts: z.number().int(),
  lastStatus: z.number().int().nullable().openapi({ description: 'The HTTP status of the last attempt; null when it got no answer' }),
  lastError: z.string().nullable(),
  nextAt: z.string().nullable(),
  createdAt: z.string(),
  updatedAt: z.string(),
}).openapi('WebhookDelivery');

const SecretSchema = z.object({
  secret: z.string().openapi({ description: 'HMAC-SHA256 key of the Capsa-Signature header (docs/webhooks.md)' }),
}).openapi('WebhookSecret');

const view = (d: DeliveryRecord) => ({
  id: d.id, url: d.url, state: d.state, attempts: d.attempts, lastStatus: d.lastStatus, lastError: d.lastError,
  nextAt: iso(d.nextAt), createdAt: iso(d.createdAt)!, updatedAt: iso(d.updatedAt)!,
});

export function registerWebhookRoutes(app: OpenAPIHono<AppEnv>, deps: Deps): void {
  const { store } = deps;

  defineRoute(app, deps, {
    method: 'get', path: '/v1/runs/{id}/webhooks', auth: 'tenant', tags: ['runs'],
    summary: 'The deliveries of the run\'s callback_url, with each one\'s attempts',
    request: { params: z.object({ id: z.string().openapi({ param: { name: 'id', in: 'path' } }) }) },
    responses: { 200: jsonContent(z.object({ items: z.array(DeliverySchema) }), 'Deliveries, oldest first'), ...errorResponses([404, 'You have no such run']) },
  }, async (c) => {
    const run = await tenantRun(store, c);
    return c.json({ items: (await store.listDeliveries(run.id)).map(view) }, 200);
  });

  defineRoute(app, deps, {
    method: 'get', path: '/v1/webhooks/secret', auth: 'tenant', tags: ['webhooks'],
    summary: 'Your webhook signing secret (made on first use)',
    responses: { 200: jsonContent(SecretSchema, 'The secret') },
  }, async (c) => {
    c.header('Cache-Control', 'no-store');
    return c.json({ secret: await store.webhookSecret(c.get('tenant').id) }, 200);
  });

  defineRoute(app, deps, {
    method: 'post', path: '/v1/webhooks/secret', auth: 'tenant', tags: ['webhooks'],
    summary: 'Replaces your webhook signing secret; deliveries from now on are signed with the new one',
    responses: { 200: jsonContent(SecretSchema, 'The new secret') },
  }, async (c) => {
    c.header('Cache-Control', 'no-store');
    const secret = await store.webhookSecret(c.get('tenant').id, true);
    c.get('log').info({}, 'webhook secret rotated');
    return c.json({ secret }, 200);
  });
}

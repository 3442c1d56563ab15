/**
 * capsa's REST service as a Hono app: createApp wires the store, the host and the scheduler into
 * the routes of each feature folder (modules/, runs/, tenants/, system/). The caller serves it
 * (`capsa serve` with @hono/node-server) and owns the scheduler's start and stop.
 */
import { OpenAPIHono } from '@hono/zod-openapi';
import type { MiddlewareHandler } from 'hono';
import { requestId } from 'hono/request-id';
import { secureHeaders } from 'hono/secure-headers';
import { SERVICE_POLICY } from '../manifest/policy.js';
import { ApiError, errorResponse, onError } from './errors.js';
import { accessLog, defaultLogger } from './log.js';
import { DEFAULT_API_LIMITS, type AppEnv, type AppOptions, type Deps } from './options.js';
import { registerManifestRoutes } from './manifests/routes.js';
import { registerModuleRoutes } from './modules/routes.js';
import { registerRunRoutes } from './runs/routes.js';
import { registerSystemRoutes } from './system/routes.js';
import { registerTenantRoutes } from './tenants/routes.js';
import { registerWebhookRoutes } from './hooks/routes.js';
import { corsAndOptions, methodsOf } from './methods.js';
import { isUiPath, registerUiRoutes, uiHeaders } from './ui/routes.js';

export type { AppOptions, ApiLimits, AppEnv } from './options.js';
export { DEFAULT_API_LIMITS } from './options.js';

export function createApp(options: AppOptions): OpenAPIHono<AppEnv> {
  const { runDefaults, ...rest } = options.limits ?? {};
  const limits = { ...DEFAULT_API_LIMITS, ...rest, runDefaults: { ...DEFAULT_API_LIMITS.runDefaults, ...runDefaults } };
  const deps: Deps = {
    store: options.store,
    host: options.host,
    scheduler: options.scheduler,
    policy: options.policy ?? SERVICE_POLICY,
    adminToken: options.adminToken || undefined,
    // Every line says which node wrote it.
    logger: (options.logger ?? defaultLogger()).child({ node: options.scheduler.nodeId }),
    limits,
    retainSeconds: options.retainSeconds ?? 0,
    webhooks: options.webhooks,
  };

  const app = new OpenAPIHono<AppEnv>();
  app.use('*', requestId());
  app.use('*', accessLog(deps.logger));
  const apiHeaders: MiddlewareHandler<AppEnv> = secureHeaders({
    contentSecurityPolicy: { defaultSrc: ["'none'"], styleSrc: ["'unsafe-inline'"], frameAncestors: ["'none'"] },
    xFrameOptions: 'DENY',
    crossOriginEmbedderPolicy: false,
  });
  app.use('*', (c, next) => (isUiPath(c.req.path) ? uiHeaders : apiHeaders)(c, next));
  app.use('*', corsAndOptions(app, options.corsOrigins ?? []));
  app.onError(onError);
  app.notFound((c) => {
    // A known path asked with another method: 405 naming the ones it has.
    const methods = methodsOf(app, c.req.path);
    if (methods.length) {
      c.header('Allow', [...methods, 'OPTIONS'].join(', '));
      return errorResponse(c, new ApiError(405, 'method_not_allowed', `${c.req.path} does not take ${c.req.method}; it takes ${methods.join(', ')} (see /docs)`));
    }
    return errorResponse(c, new ApiError(404, 'not_found', `No route ${c.req.method} ${c.req.path}; see /docs`));
  });

  app.openAPIRegistry.registerComponent('securitySchemes', 'Bearer', { type: 'http', scheme: 'bearer', description: 'A tenant\'s API key' });
  app.openAPIRegistry.registerComponent('securitySchemes', 'AdminBearer', { type: 'http', scheme: 'bearer', description: 'The service\'s admin token (CAPSA_ADMIN_TOKEN)' });

  registerModuleRoutes(app, deps);
  registerRunRoutes(app, deps);
  registerManifestRoutes(app, deps);
  registerTenantRoutes(app, deps);
  registerSystemRoutes(app, deps);
  registerWebhookRoutes(app, deps);
  registerUiRoutes(app, deps);
  return app;
}

export { createScheduler, DEFAULT_QUOTAS, type Scheduler, type SchedulerOptions, type Quotas } from './scheduler.js';

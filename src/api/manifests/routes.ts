/** POST /v1/manifests/check: a manifest read as POST /v1/runs reads it, for editors that check as you type. */
import type { OpenAPIHono } from '@hono/zod-openapi';
import { z } from '@hono/zod-openapi';
import { ManifestError } from '../../manifest/types.js';
import { defineRoute, errorResponses, jsonContent, readJson } from '../http.js';
import type { AppEnv, Deps } from '../options.js';
import { manifestGrants } from '../runs/prepare.js';
import { LimitsSchema } from '../system/routes.js';

const CheckBodySchema = z.strictObject({
  manifest: z.string().openapi({ description: 'The manifest as YAML text', example: 'args: [world]\n' }),
}).openapi('ManifestCheck');

const ProblemSchema = z.object({
  line: z.number().int().openapi({ description: '1-based; 0 when the problem has no place' }),
  col: z.number().int(),
  path: z.string().openapi({ description: 'The key path, e.g. dirs[0].rights' }),
  message: z.string(),
  policy: z.boolean().optional().openapi({ description: 'Set when your policy refuses it (the manifest itself is well-formed there)' }),
}).openapi('ManifestProblem');

const CheckResultSchema = z.object({
  valid: z.boolean(),
  problems: z.array(ProblemSchema),
  grants: z.object({
    module: z.string().optional(),
    args: z.array(z.string()),
    dirs: z.array(z.object({ guest: z.string(), rights: z.array(z.string()) })),
    limits: LimitsSchema,
    casper: z.array(z.string()),
  }).optional().openapi({ description: 'What the manifest grants a run, when it is valid' }),
}).openapi('ManifestCheckResult');

export function registerManifestRoutes(app: OpenAPIHono<AppEnv>, deps: Deps): void {
  defineRoute(app, deps, {
    method: 'post', path: '/v1/manifests/check', auth: 'tenant', maxBody: deps.limits.runBodyBytes, tags: ['runs'],
    summary: 'Check a manifest against your policy without running it',
    description: 'The same reader and policy check as POST /v1/runs: every problem at once, each at its line and column. A manifest with problems is a 200 with valid: false.',
    request: { body: { required: true, content: { 'application/json': { schema: CheckBodySchema } } } },
    responses: { 200: jsonContent(CheckResultSchema, 'The problems, or what it grants'), ...errorResponses([400, 'Malformed JSON'], [422, 'No manifest text']) },
  }, async (c) => {
    const body = await readJson(c, deps, CheckBodySchema);
    try {
      const { manifest: m } = manifestGrants(deps, c.get('tenant'), body.manifest);
      return c.json({
        valid: true, problems: [],
        grants: {
          ...(m.module !== undefined ? { module: m.module } : {}),
          args: m.args, dirs: m.dirs.map((d) => ({ guest: d.guest, rights: d.rights.names })), limits: m.limits, casper: Object.keys(m.casper),
        },
      }, 200);
    } catch (e) {
      if (!(e instanceof ManifestError)) throw e;
      return c.json({ valid: false, problems: e.problems.map((p) => ({ line: p.line, col: p.col, path: p.path, message: p.message, ...(p.policy ? { policy: true } : {}) })) }, 200);
    }
  });
}

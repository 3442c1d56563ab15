/**
 * The dashboard at /ui: one HTML page, its script and its stylesheet, all from this package (no
 * CDN). The client (src/ui/) is plain TypeScript modules bundled by esbuild: `npm run build` writes
 * dist/ui/app.js and app.css; from the TypeScript sources (a checkout, the tests) they are bundled
 * once per process on first use. The page talks to the public API only, with the key the user
 * pastes (kept in sessionStorage, sent as a header, never in a URL).
 */
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type { OpenAPIHono } from '@hono/zod-openapi';
import type { Handler, MiddlewareHandler } from 'hono';
import { secureHeaders } from 'hono/secure-headers';
import { packageRoot } from '../../host/executor/sandbox.js';
import { ApiError } from '../errors.js';
import { defineRoute } from '../http.js';
import type { AppEnv, Deps } from '../options.js';

const FROM_SOURCE = fileURLToPath(import.meta.url).endsWith('.ts');

/** Whether a request path is the dashboard's (its own, stricter headers). */
export const isUiPath = (p: string): boolean => p === '/ui' || p.startsWith('/ui/');

/**
 * The dashboard's headers: scripts, styles and fetches from this origin only (no inline script or
 * style, no eval), no framing, no referrer (run ids stay on the page).
 */
export const uiHeaders: MiddlewareHandler<AppEnv> = secureHeaders({
  contentSecurityPolicy: {
    defaultSrc: ["'none'"], scriptSrc: ["'self'"], styleSrc: ["'self'"], connectSrc: ["'self'"], imgSrc: ["'self'"],
    formAction: ["'self'"], baseUri: ["'none'"], frameAncestors: ["'none'"],
  },
  xFrameOptions: 'DENY',
  referrerPolicy: 'no-referrer',
  crossOriginEmbedderPolicy: false,
});

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>capsa</title>
<link rel="stylesheet" href="/ui/app.css">
<script type="module" src="/ui/app.js"></script>
</head>
<body>
<a class="skip" href="#main">Skip to content</a>
<header class="top"><a class="brand" href="#/runs">capsa</a><nav id="nav" aria-label="Main"></nav></header>
<main id="main" tabindex="-1"><noscript>The capsa dashboard needs JavaScript; the API is described at <a href="/docs">/docs</a>.</noscript></main>
</body>
</html>
`;

interface Assets { js: string; css: string }
let assets: Promise<Assets> | undefined;

/** The bundle: dist/ui of a built package, else built from src/ui with esbuild (a devDependency). */
async function loadAssets(): Promise<Assets> {
  const root = packageRoot();
  if (!FROM_SOURCE) {
    const dir = path.join(root, 'dist', 'ui');
    return { js: fs.readFileSync(path.join(dir, 'app.js'), 'utf8'), css: fs.readFileSync(path.join(dir, 'app.css'), 'utf8') };
  }
  const esbuild = createRequire(import.meta.url)('esbuild') as typeof import('esbuild');
  const r = await esbuild.build({ ...UI_BUILD, entryPoints: [path.join(root, 'src/ui/main.ts')], outdir: '/ui', write: false });
  const file = (ext: string) => r.outputFiles.find((f) => f.path.endsWith(ext))?.text ?? '';
  return { js: file('.js'), css: file('.css') };
}

/** esbuild's options for the dashboard (also those of `npm run build`, see package.json). */
export const UI_BUILD = { bundle: true, format: 'esm', target: 'es2022', entryNames: 'app', minify: true, logLevel: 'warning' } as const;

export function registerUiRoutes(app: OpenAPIHono<AppEnv>, deps: Deps): void {
  const asset = (kind: keyof Assets, type: string): Handler<AppEnv> => async (c) => {
    try {
      const a = await (assets ??= loadAssets());
      return c.body(a[kind], 200, { 'Content-Type': type, 'Cache-Control': 'no-cache' });
    } catch (e) {
      assets = undefined;
      c.get('log').error({ err: e }, 'the dashboard cannot be loaded');
      throw new ApiError(500, 'internal', 'The dashboard\'s files are missing; run npm run build');
    }
  };
  const file = (p: string, summary: string, type: string) => ({
    method: 'get' as const, path: p, auth: 'none' as const, tags: ['ui'], summary,
    responses: { 200: { description: summary, content: { [type]: { schema: { type: 'string' as const } } } } },
  });
  defineRoute(app, deps, file('/ui', 'The dashboard (sign in with an API key or the admin token)', 'text/html'), (c) => c.html(PAGE, 200, { 'Cache-Control': 'no-cache' }));
  defineRoute(app, deps, file('/ui/app.js', 'The dashboard\'s script', 'text/javascript'), asset('js', 'text/javascript; charset=utf-8'));
  defineRoute(app, deps, file('/ui/app.css', 'The dashboard\'s stylesheet', 'text/css'), asset('css', 'text/css; charset=utf-8'));
}

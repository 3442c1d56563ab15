#!/usr/bin/env node
// Runs the bundled CLI (fastest start-up), else the compiled one. In a checkout that has not been
// built: Deno runs the TypeScript sources itself (deno.json lets their ".js" imports name the ".ts"
// files); Node runs them through tsx.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const candidates = ['../dist/bundle/cli.js', '../dist/cli.js'].map((p) => new URL(p, import.meta.url));
const built = candidates.find((u) => existsSync(fileURLToPath(u)));
if (built) {
  await import(built.href);
} else if (process.versions.deno) {
  await import(new URL('../src/cli.ts', import.meta.url).href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import(new URL('../src/cli.ts', import.meta.url).href);
}

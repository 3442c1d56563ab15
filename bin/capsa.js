#!/usr/bin/env node
// Runs the bundled CLI (fastest start-up), else the compiled one; falls back to the TypeScript
// sources through tsx in a checkout that has not been built.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const candidates = ['../dist/bundle/cli.js', '../dist/cli.js'].map((p) => new URL(p, import.meta.url));
const built = candidates.find((u) => existsSync(fileURLToPath(u)));
if (built) {
  await import(built.href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import(new URL('../src/cli.ts', import.meta.url).href);
}

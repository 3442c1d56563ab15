/**
 * The npm package (issue 15): the tarball holds what users need and nothing else, installing it
 * leaves no build step to the user, and a library user never needs the service's native store
 * driver (better-sqlite3 is optional, loaded only by serve and tenant).
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describe, it, expect, beforeAll, afterAll } from 'vitest';

const REPO = fileURLToPath(new URL('../', import.meta.url));
const pkg = JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8')) as {
  files?: string[]; scripts: Record<string, string>; dependencies: Record<string, string>; optionalDependencies?: Record<string, string>;
};

let tmp: string;
beforeAll(() => { tmp = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'capsa-pkg-'))); });
afterAll(() => { if (tmp) fs.rmSync(tmp, { recursive: true, force: true }); });

describe('the tarball', () => {
  it('npm pack holds the code, the CLI, the guests, the SDK, the docs, the examples, README and LICENSE; no tests, benches or CI', { timeout: 120_000 }, () => {
    const r = spawnSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: REPO, encoding: 'utf8', timeout: 110_000 });
    expect(r.status).toBe(0);
    const files = (JSON.parse(r.stdout) as { files: { path: string }[] }[])[0]!.files.map((f) => f.path);
    for (const f of ['package.json', 'README.md', 'LICENSE', 'bin/capsa.js', 'guests/build/hello.wasm', 'guests/build/libcapsa.a',
      'guests/sdk/include/sys/capsicum.h', 'docs/manifest.md', 'examples/data/notes.txt']) expect(files).toContain(f);
    // dist/ is built by prepack; when this checkout has one, it is in.
    if (fs.existsSync(path.join(REPO, 'dist', 'index.js'))) expect(files).toContain('dist/index.js');
    const stray = files.filter((f) => /^(test|bench|scripts|\.ci|src|node_modules)\//.test(f) || f.startsWith('.') || /(^|\/)vitest\.config|tsconfig/.test(f));
    expect(stray).toEqual([]);
  });

  it('leaves no build step to the installer: no prepare/install script; the build runs at pack time', () => {
    for (const hook of ['prepare', 'preinstall', 'install', 'postinstall']) expect(pkg.scripts[hook]).toBeUndefined();
    expect(pkg.scripts.prepack).toBe('npm run build');
    // In a checkout, npm test builds first (test/host/readme-example.test.ts imports the built package).
    expect(pkg.scripts.pretest).toBe('npm run build');
  });
});

describe('without better-sqlite3 (npm install --omit=optional)', () => {
  // A resolve hook that makes better-sqlite3 missing, as --omit=optional leaves it.
  let hook: string;
  beforeAll(() => {
    const resolver = path.join(tmp, 'no-sqlite-hooks.mjs');
    fs.writeFileSync(resolver, `export async function resolve(spec, ctx, next) {
  if (spec === 'better-sqlite3') throw Object.assign(new Error("Cannot find package 'better-sqlite3' imported from " + ctx.parentURL), { code: 'ERR_MODULE_NOT_FOUND' });
  return next(spec, ctx);
}\n`);
    hook = path.join(tmp, 'no-sqlite.mjs');
    fs.writeFileSync(hook, `import { register } from 'node:module';\nregister(${JSON.stringify(pathToFileURL(resolver).href)});\n`);
  });
  const node = (args: string[]) => spawnSync(process.execPath, ['--no-warnings', '--import', hook, ...args], { cwd: REPO, encoding: 'utf8', input: '', timeout: 60_000 });

  it('is an optional dependency, not a dependency', () => {
    expect(pkg.dependencies['better-sqlite3']).toBeUndefined();
    expect(pkg.optionalDependencies?.['better-sqlite3']).toBeDefined();
  });

  it('capsa run works', { timeout: 90_000 }, () => {
    const r = node([path.join(REPO, 'bin/capsa.js'), 'run', 'guests/build/hello.wasm', 'world']);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('hello world\n');
  });

  it('createHost and host.run work', { timeout: 90_000 }, () => {
    const script = path.join(tmp, 'lib.mjs');
    fs.writeFileSync(script, `import { createHost } from ${JSON.stringify(path.join(REPO, 'src/index.ts'))};
import fs from 'node:fs';
const host = await createHost({ workers: 1 });
const r = await host.run({ module: fs.readFileSync('guests/build/hello.wasm'), args: ['lib'] });
process.stdout.write(r.text());
await host.close();
`);
    const r = node(['--import', 'tsx', script]);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('hello lib\n');
  });

  it('capsa serve and capsa tenant say how to install it, exit 1 (Node 20 has no node:sqlite)', { timeout: 90_000 }, () => {
    for (const args of [['serve', '--port', '0'], ['tenant', 'create', 'acme']]) {
      const r = node([path.join(REPO, 'bin/capsa.js'), ...args, '--data', path.join(tmp, 'data')]);
      expect(r.stderr).toMatch(/^capsa: the service's store needs better-sqlite3 \(an optional dependency: run "npm install better-sqlite3";.* or node:sqlite \(Node 22\.5 or later, or Deno 2\)/);
      expect(r.status).toBe(1);
    }
  });
});

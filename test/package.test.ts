/**
 * The npm package (issue 15): the tarball holds what users need and nothing else, installing it
 * leaves no build step to the user, and a library user never needs the service's native store
 * driver (better-sqlite3 is optional, loaded only by serve and tenant): the packed tarball is
 * installed with --omit=optional in a temporary directory and used there, on Node and on Deno.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
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

const BUILT = fs.existsSync(path.join(REPO, 'dist', 'index.js')) && fs.existsSync(path.join(REPO, 'dist', 'bundle', 'cli.js'));
const DENO = path.join(REPO, 'node_modules', '.bin', 'deno');
if (process.env['CI'] && !BUILT) throw new Error('the package tests need dist/: npm test builds it first (pretest)');

// npm pack needs dist/ (prepack builds it; this test does not, a build takes minutes on a busy
// machine): npm test builds it first, and CI always has it. A checkout without it skips.
describe.skipIf(!BUILT)('the packed tarball, installed with --omit=optional in a clean directory', { timeout: 120_000 }, () => {
  let dir: string;
  const run = (cmd: string, args: string[], timeout = 60_000) => {
    const r = spawnSync(cmd, args, { cwd: dir, encoding: 'utf8', input: '', timeout, env: { ...process.env, NO_COLOR: '1', DENO_NO_UPDATE_CHECK: '1' } });
    if (r.error) throw r.error;
    return r;
  };

  beforeAll(() => {
    dir = path.join(tmp, 'install');
    fs.mkdirSync(dir);
    const packed = spawnSync('npm', ['pack', '--ignore-scripts', '--pack-destination', dir, '--json'], { cwd: REPO, encoding: 'utf8', timeout: 110_000 });
    expect(packed.status, packed.stderr).toBe(0);
    const tarball = path.join(dir, (JSON.parse(packed.stdout) as { filename: string }[])[0]!.filename);
    fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'capsa-user', private: true, type: 'module' }));
    // The registry is reachable; --prefer-offline takes what npm's cache holds already.
    const installed = run('npm', ['install', tarball, '--omit=optional', '--no-audit', '--no-fund', '--prefer-offline'], 170_000);
    expect(installed.status, installed.stderr).toBe(0);
    fs.writeFileSync(path.join(dir, 'lib.mjs'), `import { createHost } from 'capsa';
import fs from 'node:fs';
const host = await createHost({ workers: 1 });
const r = await host.run({ module: fs.readFileSync('node_modules/capsa/guests/build/hello.wasm'), args: ['lib'] });
await host.close();
console.log(JSON.stringify({ text: r.text(), status: r.status }));
`);
  }, 180_000);

  it('holds neither optional dependency: better-sqlite3 (a native build) nor deno', () => {
    expect(pkg.dependencies['better-sqlite3']).toBeUndefined();
    expect(pkg.optionalDependencies?.['better-sqlite3']).toBeDefined();
    expect(fs.existsSync(path.join(dir, 'node_modules', 'capsa', 'package.json'))).toBe(true);
    expect(fs.existsSync(path.join(dir, 'node_modules', 'better-sqlite3'))).toBe(false);
    expect(fs.existsSync(path.join(dir, 'node_modules', 'deno'))).toBe(false);
  });

  it('Node: createHost and host.run, imported by name', () => {
    const r = run(process.execPath, ['lib.mjs']);
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toEqual({ text: 'hello lib\n', status: 'exited' });
  });

  it('Node: npx capsa run', () => {
    const r = run('npx', ['--no-install', 'capsa', 'run', 'node_modules/capsa/guests/build/hello.wasm', 'world', '--exit=3']);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('hello world\n');
    expect(r.status).toBe(3);
  });

  it('Node 20: capsa serve and capsa tenant say how to get a store driver, exit 1', () => {
    for (const args of [['serve', '--port', '0'], ['tenant', 'create', 'acme']]) {
      const r = run('npx', ['--no-install', 'capsa', ...args, '--data', path.join(dir, 'data')]);
      expect(r.stderr).toMatch(/^capsa: the service's store needs better-sqlite3 \(an optional dependency: run "npm install better-sqlite3";.* or node:sqlite \(Node 22\.5 or later, or Deno 2\)/);
      expect(r.status).toBe(1);
    }
  });

  // Deno is the checkout's (the deno npm package); CI has it (npm ci), so there this never skips.
  describe.skipIf(!fs.existsSync(DENO) && !process.env['CI'])('on Deno', () => {
    it('createHost and host.run, imported by name', () => {
      const r = run(DENO, ['run', '-A', 'lib.mjs']);
      expect(r.stderr).toBe('');
      expect(JSON.parse(r.stdout)).toEqual({ text: 'hello lib\n', status: 'exited' });
    });

    it('capsa run, and capsa tenant create on the node:sqlite store', () => {
      const r = run(DENO, ['run', '-A', 'node_modules/capsa/bin/capsa.js', 'run', 'node_modules/capsa/guests/build/hello.wasm', 'deno']);
      expect(r.stderr).toBe('');
      expect(r.stdout).toBe('hello deno\n');
      expect(r.status).toBe(0);
      const t = run(DENO, ['run', '-A', 'node_modules/capsa/bin/capsa.js', 'tenant', 'create', 'acme', '--data', path.join(dir, 'deno-data')]);
      expect(t.stderr).toMatch(/tenant .* \(acme\) created/);
      expect(t.stdout).toMatch(/^\S+\n$/);
      expect(t.status).toBe(0);
      expect(fs.existsSync(path.join(dir, 'deno-data', 'capsa.db'))).toBe(true);
    });
  });
});

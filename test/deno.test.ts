/**
 * capsa on Deno 2 (issue 15): `deno run -A bin/capsa.js` runs the CLI, the library imports and runs
 * under Deno, and `capsa serve` serves with its store on node:sqlite (Deno cannot load
 * better-sqlite3, a legacy native addon), its executors on Deno. The store conformance suite
 * (test/api/store.test.ts) passes on the node:sqlite driver: it runs here under Deno, as vitest
 * itself does (Node 20 has no node:sqlite).
 *
 * Deno is the `deno` npm package's binary (an optional dependency). Without it these tests are
 * skipped on a developer's machine, never in CI (CI is set there): there they fail.
 */
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { api, exitOf, killServers, startServe, type Server } from './helpers/serve.js';
import { createSqliteStore } from '../src/api/store/sqlite.js';
import { NoSqliteDriverError } from '../src/api/store/sqlite-driver.js';

const REPO = fileURLToPath(new URL('../', import.meta.url));
const BIN = path.join(REPO, 'bin', 'capsa.js');
const DENO = path.join(REPO, 'node_modules', '.bin', 'deno');
const HAVE_DENO = fs.existsSync(DENO);
if (!HAVE_DENO && process.env['CI']) throw new Error(`the Deno tests need ${DENO} (the deno npm package, an optional dependency): npm ci installs it`);

let tmp: string;
beforeAll(() => { tmp = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'capsa-deno-'))); });
afterEach(() => { killServers(); });
afterAll(() => { if (tmp) fs.rmSync(tmp, { recursive: true, force: true }); });

/** `deno ARGS` in the checkout (its deno.json lets the sources' ".js" imports name the ".ts" files). */
function deno(args: string[], input = '', timeout = 90_000): SpawnSyncReturns<string> {
  const r = spawnSync(DENO, args, { cwd: REPO, encoding: 'utf8', input, timeout, env: { ...process.env, NO_COLOR: '1', DENO_NO_UPDATE_CHECK: '1' } });
  if (r.error) throw r.error;
  return r;
}
const capsa = (args: string[]) => deno(['run', '-A', BIN, ...args]);

describe.skipIf(!HAVE_DENO)('on Deno 2 (deno run -A)', { timeout: 120_000 }, () => {
  it('deno is Deno 2', () => {
    expect(deno(['--version']).stdout).toMatch(/^deno 2\./);
  });

  it('the CLI runs a guest: its output, its exit status; a missing module is capsa\'s error, exit 1', () => {
    const r = capsa(['run', 'guests/build/hello.wasm', 'world', '--exit=3']);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('hello world\n');
    expect(r.status).toBe(3);
    const missing = capsa(['run', 'guests/build/no-such.wasm']);
    expect(missing.stderr).toMatch(/^capsa: .*no-such\.wasm/);
    expect(missing.status).toBe(1);
  });

  it('the library: createHost and host.run, and createWasi as node:wasi\'s WASI', () => {
    const script = `
import { createHost, createWasi } from './src/index.ts';
import fs from 'node:fs';
const host = await createHost({ workers: 1 });
const r = await host.run({ module: fs.readFileSync('guests/build/hello.wasm'), args: ['lib'] });
await host.close();
const out = [];
const wasi = createWasi({ args: ['hello', 'wasi'], stdout: (b) => { out.push(new TextDecoder().decode(b)); } });
const instance = await WebAssembly.instantiate(new WebAssembly.Module(fs.readFileSync('guests/build/hello.wasm')), wasi.getImportObject());
const code = wasi.start(instance);
console.log(JSON.stringify({ text: r.text(), status: r.status, exitCode: r.exitCode, deno: typeof Deno, wasi: out.join(''), code }));
`;
    const r = deno(['run', '-A', '-'], script);
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toEqual({ text: 'hello lib\n', status: 'exited', exitCode: 0, deno: 'object', wasi: 'hello wasi\n', code: 0 });
  });

  it('capsa serve: tenant create, upload hello over HTTP, run it, read its output; the store is node:sqlite, the executors Deno under their permissions', async () => {
    const data = path.join(tmp, 'serve');
    const created = capsa(['tenant', 'create', 'acme', '--data', data]);
    expect(created.status).toBe(0);
    const key = created.stdout.trim();
    expect(key).toMatch(/^\S+$/);
    const s: Server = await startServe(['--data', data, '--workers', '1', '--executors', '1'], {}, [DENO, 'run', '-A', BIN]);
    try {
      const health = await api(s, 'GET', '/healthz', key);
      expect(health.status).toBe(200);
      const executors = health.body['executors'] as { pid: number; runtime: string; layers: string[] }[];
      expect(executors.map((e) => e.runtime)).toEqual(['deno']);
      expect(executors[0]!.layers).toContain('deno-permission');
      // The permission layer is real: the executor's command line grants reads, never everything
      // (Deno's child_process would put "run -A" after an argument equal to its own path).
      const argv = fs.readFileSync(`/proc/${executors[0]!.pid}/cmdline`, 'utf8').split('\0');
      expect(argv.some((a) => a.startsWith('--allow-read='))).toBe(true);
      expect(argv.filter((a) => a === '-A' || a === '--allow-all')).toEqual([]);

      const mod = await api(s, 'POST', '/v1/modules', key, new Uint8Array(fs.readFileSync(path.join(REPO, 'guests', 'build', 'hello.wasm'))));
      expect(mod.status).toBe(201);
      const run = await api(s, 'POST', '/v1/runs', key, { module: mod.body['id'], manifest: 'args: [deno]\n', stdin: '', wait: 20 }, 30_000);
      expect(run.status).toBe(201);
      expect(run.body).toMatchObject({ status: 'exited', exitCode: 0, stdout: 'hello deno\n' });
      const again = await api(s, 'GET', `/v1/runs/${String(run.body['id'])}`, key);
      expect(again.body).toMatchObject({ status: 'exited', stdout: 'hello deno\n' });
      expect(fs.existsSync(path.join(data, 'capsa.db'))).toBe(true);
    } finally {
      s.proc.kill('SIGTERM');
      expect((await exitOf(s)).code).toBe(0);
    }
  });

  it('the store conformance suite passes on node:sqlite (vitest under Deno)', { timeout: 300_000 }, () => {
    const r = deno(['run', '-A', path.join(REPO, 'node_modules', 'vitest', 'vitest.mjs'), 'run', '--project', 'default', 'test/api/store.test.ts'], '', 280_000);
    const summary = /(\d+) passed, (\d+) failed, (\d+) skipped/.exec(r.stdout);
    expect(summary, r.stdout + r.stderr).not.toBeNull();
    expect({ failed: Number(summary![2]), skipped: Number(summary![3]), status: r.status }).toEqual({ failed: 0, skipped: 0, status: 0 });
    expect(Number(summary![1])).toBeGreaterThan(20);
  });
});

// Node 22.5+ has node:sqlite; CI's Node 20 has not, and there asking for it must say what to install.
const NODE_HAS_SQLITE = (() => {
  try {
    createRequire(import.meta.url)('node:sqlite');
    return true;
  } catch {
    return false;
  }
})();

describe('the SQLite driver on Node', () => {
  it('is better-sqlite3 where it loads', async () => {
    const store = createSqliteStore({ dir: path.join(tmp, 'driver') });
    await store.createTenant('a');
    await store.close();
  });

  it.skipIf(NODE_HAS_SQLITE)('asking for node:sqlite on a Node without it says what to install', () => {
    const open = () => createSqliteStore({ dir: path.join(tmp, 'driver'), driver: 'node:sqlite' });
    expect(open).toThrow(NoSqliteDriverError);
    expect(open).toThrow(/needs better-sqlite3 .*"npm install better-sqlite3".* or node:sqlite \(Node 22\.5 or later, or Deno 2\)/);
  });
});

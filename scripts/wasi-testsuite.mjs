#!/usr/bin/env node
// Runs the public WebAssembly wasi-testsuite (preview1, prebuilt branch prod/testsuite-base) through
// `capsa run`, as a new user would. The suite is not part of this repository: pass the folders that
// hold its .wasm/.json pairs, e.g.
//   node scripts/wasi-testsuite.mjs /path/to/wasi-testsuite/tests/*/testsuite/wasm32-wasip1
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const cli = new URL('../bin/capsa.js', import.meta.url).pathname;
const dirs = process.argv.slice(2);
if (dirs.length === 0) {
  console.error('usage: node scripts/wasi-testsuite.mjs TESTDIR...');
  process.exit(2);
}
let passed = 0, failed = 0;
const failures = [];
for (const dir of dirs) {
  for (const file of fs.readdirSync(dir).filter((f) => f.endsWith('.wasm')).sort()) {
    const name = file.slice(0, -5);
    const specPath = path.join(dir, name + '.json');
    const spec = { args: [], env: {}, exit_code: 0, stdout: '', stderr: '', root: null,
      ...(fs.existsSync(specPath) ? JSON.parse(fs.readFileSync(specPath, 'utf8')) : {}) };
    const argv = [cli, 'run'];
    let work;
    if (spec.root) {
      // Tests change their tree, so each one gets a fresh copy.
      work = fs.mkdtempSync(path.join(os.tmpdir(), 'wts-'));
      fs.cpSync(path.join(dir, spec.root), work, { recursive: true, verbatimSymlinks: true });
      argv.push('--dir', `${work}::/`);
    }
    for (const [k, v] of Object.entries(spec.env)) argv.push('--env', `${k}=${v}`);
    argv.push(path.join(dir, file), '--', ...spec.args);
    const r = spawnSync(process.execPath, argv, { encoding: 'utf8', timeout: 30_000, input: '' });
    if (work) fs.rmSync(work, { recursive: true, force: true });
    const problems = [];
    if (r.status !== spec.exit_code) problems.push(`exit ${r.status} (expected ${spec.exit_code})`);
    if (spec.stdout && r.stdout !== spec.stdout) problems.push(`stdout ${JSON.stringify(r.stdout)}`);
    if (problems.length) {
      failed++;
      failures.push(`${path.basename(path.dirname(path.dirname(dir)))}/${name}: ${problems.join('; ')}\n    ${r.stderr.trim().split('\n').slice(-3).join('\n    ')}`);
    } else {
      passed++;
    }
  }
}
for (const f of failures) console.log('FAIL ' + f);
console.log(`${passed} passed, ${failed} failed`);
process.exitCode = failed ? 1 : 0;

/** `capsa run` with child guests: the privilege-separated grep and the pipeline through the real CLI. */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const BIN = path.join(REPO, 'bin', 'capsa.js');
const BUILD = path.join(REPO, 'guests', 'build');
let tmp: string;

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'capsa-procdesc-'));
  fs.writeFileSync(path.join(tmp, 'f.txt'), 'alpha\nneedle one\nbeta\nthe needle two\n');
});
afterAll(() => { fs.rmSync(tmp, { recursive: true, force: true }); });

const capsa = (args: string[], input = '') => spawnSync(process.execPath, [BIN, ...args], { cwd: tmp, input, encoding: 'utf8', timeout: 90_000 });

it('capsa run privsep_grep: the child matches, the parent prints; the exit status is the child\'s', () => {
  const args = ['run', path.join(BUILD, 'privsep_grep.wasm'), '--timeout', '60s', '--dir', `${BUILD}::/bin`, '--dir', `${tmp}::/data:ro`, '--'];
  const r = capsa([...args, 'needle', '/data/f.txt']);
  expect(r.stderr).toBe('');
  expect(r.stdout).toBe('needle one\nthe needle two\n');
  expect(r.status).toBe(0);
  expect(capsa([...args, 'zebra', '/data/f.txt']).status).toBe(1);
}, 120_000);

it('capsa run pipeline: stdin through cat | uniq | cat', () => {
  const r = capsa(['run', path.join(BUILD, 'pipeline.wasm'), '--timeout', '60s', '--dir', `${BUILD}::/bin`, '--', '/bin', 'cat', '|', 'uniq', '|', 'cat'], 'x\nx\ny\n');
  expect(r.stderr).toBe('');
  expect(r.stdout).toBe('x\ny\n');
  expect(r.status).toBe(0);
}, 120_000);

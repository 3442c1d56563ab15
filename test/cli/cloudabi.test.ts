// The talk's cloudabi-run example (background/bsdcan2016, "cloudabi-run my_prog << EOF"), as written.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const capsa = (args: string[]) => spawnSync(process.execPath, [path.join(REPO, 'bin/capsa.js'), ...args], { encoding: 'utf8', timeout: 20_000 });

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'capsa-talk-'));
  fs.mkdirSync(path.join(dir, 'tmpdir'));
  fs.writeFileSync(path.join(dir, 'talk.yaml'), [
    '%TAG ! tag:nuxi.nl,2015:cloudabi/',
    '---',
    'tmpdir: !file',
    '  path: tmpdir',
    'logfile: !fd stdout',
    'nthreads: !!int 8',
    '',
  ].join('\n'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

it('capsa run --argdata runs the talk\'s cloudabi-run document as written', () => {
  const r = capsa(['run', '--argdata', path.join(dir, 'talk.yaml'), path.join(REPO, 'guests/build/argwalk.wasm')]);
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  // tmpdir is a directory descriptor (fd 3, read-only by default), logfile is stdout, nthreads an int.
  expect(r.stdout).toMatch(/str "tmpdir"\n\s+fd 3 rights 0x[0-9a-f]+\n/);
  expect(r.stdout).toMatch(/str "logfile"\n\s+fd 1 rights/);
  expect(r.stdout).toMatch(/str "nthreads"\n\s+int 8\n/);
});

it('a !file that does not exist, or a broken document, is refused before the guest runs', () => {
  fs.writeFileSync(path.join(dir, 'missing.yaml'), 'a: !file\n  path: nope\n');
  const missing = capsa(['run', '--argdata', path.join(dir, 'missing.yaml'), path.join(REPO, 'guests/build/argwalk.wasm')]);
  expect(missing.status).toBe(1);
  expect(missing.stderr).toMatch(/nope.*does not exist/);
  fs.writeFileSync(path.join(dir, 'bad.yaml'), 'a: !wat 1\n');
  const bad = capsa(['run', '--argdata', path.join(dir, 'bad.yaml'), path.join(REPO, 'guests/build/argwalk.wasm')]);
  expect(bad.status).toBe(1);
  expect(bad.stderr).toMatch(/bad\.yaml:1:\d+: a: unknown tag !wat/);
});

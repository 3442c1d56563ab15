// The manifest of the manifests issue, exactly as written, run with `capsa run --manifest`.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const capsa = (args: string[], cwd: string) =>
  spawnSync(process.execPath, [path.join(REPO, 'bin/capsa.js'), ...args], { cwd, encoding: 'utf8', timeout: 20_000 });

const MANIFEST = `%TAG ! tag:nuxi.nl,2015:cloudabi/
---
module: ./uniq.wasm              # a path (CLI) or sha256:… (service)
args: [/in/words.txt, /out/uniq.txt]
env: { LANG: C }
argdata:                         # delivered to the guest as a CloudABI argdata tree
  input: !file { path: /in/words.txt, rights: [CAP_READ, CAP_FSTAT, CAP_SEEK] }
  logfile: !fd stdout
  nthreads: !!int 8
dirs:
  - { guest: /in,  source: ./in,  rights: rpath }          # pledge-style shorthand
  - { guest: /out, source: ./out, rights: [rpath, wpath, cpath] }
  - { guest: /tmp, source: memory, rights: [CAP_READ, CAP_WRITE, CAP_CREATE, CAP_LOOKUP], init_only: true }
limits: { wall: 2s, cpu: 1s, memory: 64MiB, output: 1MiB, fds: 64 }
casper: {}                        # filled in by the Casper issue
`;

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'capsa-issue-'));
  fs.mkdirSync(path.join(dir, 'in'));
  fs.mkdirSync(path.join(dir, 'out'));
  fs.writeFileSync(path.join(dir, 'in', 'words.txt'), 'apple\napple\npear\nplum\nplum\nplum\n');
  fs.copyFileSync(path.join(REPO, 'guests/build/uniq.wasm'), path.join(dir, 'uniq.wasm'));
  fs.writeFileSync(path.join(dir, 'uniq.yaml'), MANIFEST);
  fs.writeFileSync(path.join(dir, 'policy.yaml'), 'limits: { wall: 1s }\ndirs:\n  - { source: memory, rights: rpath }\n');
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

it('runs with capsa run --manifest, from another directory too', () => {
  const r = capsa(['run', '--manifest', path.join(dir, 'uniq.yaml')], os.tmpdir());
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  expect(fs.readFileSync(path.join(dir, 'out', 'uniq.txt'), 'utf8')).toBe('apple\npear\nplum\n');
});

it('capsa manifest check explains it: every fd, its path, its rights', () => {
  const r = capsa(['manifest', 'check', 'uniq.yaml'], dir);
  expect(r.status).toBe(0);
  expect(r.stdout).toMatch(/^3\s+dir \(.*\/in\)\s+\/in\s+CAP_/m);
  expect(r.stdout).toMatch(/^5\s+dir \(memory\)\s+\/tmp\s+.*\[init-only\]/m);
  expect(r.stdout).toMatch(/^6\s+file \(argdata\)\s+\/in\/words\.txt\s+CAP_READ, CAP_SEEK_SET, CAP_SEEK_TELL, CAP_FSTAT$/m);
  expect(r.stdout).toMatch(/rpath: CAP_READ/);
});

it('a policy it exceeds refuses it, naming every excess', () => {
  const r = capsa(['run', '--manifest', 'uniq.yaml', '--policy', 'policy.yaml'], dir);
  expect(r.status).toBe(1);
  expect(r.stderr).toMatch(/limits\.wall: 2 s exceeds the policy's maximum 1 s/);
  expect(r.stderr).toMatch(/dirs\[0\] \(\/in\): source .*\/in is not allowed by the policy \(allowed sources: memory\)/);
  expect(r.stderr).toMatch(/dirs\[1\] \(\/out\): source .*\/out is not allowed/);
  expect(r.stderr).toMatch(/dirs\[2\] \(\/tmp\): CAP_WRITE, CAP_CREATE exceed the policy \(allowed: rpath\)/);
});

/**
 * Issue 11's full manifest (a `!socket` listener and `casper: system.net`) through the real CLI:
 * `capsa manifest check` accepts it, and refuses it under a policy that allows no network,
 * naming each address; a policy naming exactly those addresses accepts it.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const BIN = path.join(REPO, 'bin', 'capsa.js');

/** The example, as written. */
const EXAMPLE = `%TAG ! tag:nuxi.nl,2015:cloudabi/
---
module: ./httpd.wasm
argdata:
  listener: !socket { bind: 0.0.0.0:12345 }          # as in the talk; also /unix/domain/socket
casper:
  system.net:                                          # outgoing, as FreeBSD's cap_net limits
    mode: [connect, name2addr]
    connect: ["api.example.org:443", "127.0.0.1:5432"]
    name2addr: { hosts: { api.example.org: "443" }, family: [inet, inet6] }
`;

let dir: string;
beforeAll(() => {
  dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'capsa-net-manifest-')));
  fs.copyFileSync(path.join(REPO, 'guests/build/httpd.wasm'), path.join(dir, 'httpd.wasm'));
  fs.writeFileSync(path.join(dir, 'issue.yaml'), EXAMPLE);
  fs.writeFileSync(path.join(dir, 'no-network.yaml'), 'casper: { system.net: {} }\n');
  fs.writeFileSync(path.join(dir, 'exact.yaml'), 'casper: { system.net: {} }\nnet:\n  bind: ["0.0.0.0:12345"]\n  connect: ["127.0.0.1:5432", "api.example.org:443"]\n');
});
afterAll(() => { fs.rmSync(dir, { recursive: true, force: true }); });

const capsa = (...args: string[]) => spawnSync(process.execPath, [BIN, ...args], { cwd: dir, encoding: 'utf8' });

it('passes capsa manifest check', () => {
  const r = capsa('manifest', 'check', 'issue.yaml');
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  expect(r.stdout).toMatch(/^issue\.yaml: ok\n/);
  expect(r.stdout).toMatch(/\n3 +socket \(argdata\) +0\.0\.0\.0:12345 +CAP_FCNTL, CAP_FSTAT, CAP_EVENT, CAP_ACCEPT/);
  expect(r.stdout).toContain('\ncasper: system.net\n');
});

it('is refused by a policy that allows no network, naming the excess', () => {
  const r = capsa('manifest', 'check', 'issue.yaml', '--policy', 'no-network.yaml');
  expect(r.status).toBe(1);
  expect(r.stderr.trim().split('\n')).toEqual([
    'issue.yaml:5:3: argdata: !socket { bind: 0.0.0.0:12345 } is not allowed by the policy (net.bind allows: none)',
    'issue.yaml:8:5: casper.system.net: connect to 127.0.0.1:5432 is not allowed by the policy (net.connect allows: none)',
    'issue.yaml:8:5: casper.system.net: connect to api.example.org:443 is not allowed by the policy (net.connect allows: none)',
  ]);
});

it('is accepted by a policy naming exactly its addresses', () => {
  const r = capsa('manifest', 'check', 'issue.yaml', '--policy', 'exact.yaml');
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
});

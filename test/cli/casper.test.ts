// The Casper issue's example program (guests/src/talk.c, the talk's code as written), run under a
// manifest with `capsa run`, against a DNS server on loopback.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startDnsServer, type DnsFixture } from '../helpers/dns.js';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
let dns: DnsFixture;
let dir: string;
let queries: string[];

// Async, so the DNS server in this process can answer while the CLI runs.
function capsa(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [path.join(REPO, 'bin/capsa.js'), ...args], { cwd: dir });
    let stdout = '', stderr = '';
    p.stdout.on('data', (d) => { stdout += d; });
    p.stderr.on('data', (d) => { stderr += d; });
    p.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

beforeAll(async () => {
  dns = await startDnsServer();
  queries = dns.queries;
  const addr = { udp: { port: dns.port } };
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'capsa-casper-'));
  fs.writeFileSync(path.join(dir, 'casper.yaml'), `system.dns: { servers: ["127.0.0.1:${addr.udp!.port}"] }\n`);
  fs.writeFileSync(path.join(dir, 'talk.yaml'), [
    `module: ${path.join(REPO, 'guests/build/talk.wasm')}`,
    'args: [192.0.2.30]',
    'casper:',
    '  system.dns: { types: [ADDR2NAME, NAME2ADDR], families: [AF_INET, AF_INET6], hosts: ["*.in-addr.arpa", "*.example.org"] }',
    '',
  ].join('\n'));
});
afterAll(async () => {
  await dns.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

it('the talk\'s example runs under a manifest: the reverse lookup works, the forward one is refused', async () => {
  const r = await capsa(['run', '--manifest', 'talk.yaml', '--casper-config', 'casper.yaml', '--audit', 'all']);
  expect(r.status).toBe(0);
  expect(r.stdout).toBe('www.example.org\ngethostbyname: refused\n');
  expect(queries).toContain('30.2.0.192.in-addr.arpa');
  expect(queries).not.toContain('example.org');
  const audit = r.stderr.trim().split('\n').map((l) => JSON.parse(l) as { call: string; decision: string });
  expect(audit).toContainEqual(expect.objectContaining({ call: 'system.dns.gethostbyaddr', decision: 'allowed' }));
  expect(audit).toContainEqual(expect.objectContaining({ call: 'system.dns.gethostbyname', decision: 'denied' }));
});

it('without the grant, the service cannot be opened', async () => {
  fs.writeFileSync(path.join(dir, 'none.yaml'), `module: ${path.join(REPO, 'guests/build/talk.wasm')}\nargs: [192.0.2.30]\n`);
  const r = await capsa(['run', '--manifest', 'none.yaml']);
  expect(r.stdout).toBe('(not found)\ngethostbyname: refused\n');
});

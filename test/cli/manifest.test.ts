/**
 * `capsa manifest check|from-flags` and `capsa run --manifest/--policy`, through the real CLI
 * (bin/capsa.js: dist/ when built) in a child process, in a temp directory.
 */
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_LIMITS } from '../../src/host/limits.js';
import { grantTable } from '../../src/manifest/describe.js';
import { applyPolicy, OPEN_POLICY } from '../../src/manifest/policy.js';
import { manifestOfCommandLine } from '../../src/cli/run.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const BIN = path.join(REPO, 'bin', 'capsa.js');
const GUEST = (name: string) => path.join(REPO, 'guests', 'build', `${name}.wasm`);

/** The issue's example, as written. */
const EXAMPLE = `%TAG ! tag:nuxi.nl,2015:cloudabi/
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

let tmp: string;
beforeAll(() => {
  tmp = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'capsa-manifest-')));
});
afterAll(() => {
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

function capsa(args: string[], cwd = tmp): SpawnSyncReturns<string> {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd, input: '', encoding: 'utf8', timeout: 25_000, maxBuffer: 64 << 20 });
  if (r.error) throw r.error;
  return r;
}

/** A fresh directory under tmp with these files (and empty subdirectories for names ending in /). */
function workdir(name: string, files: Record<string, string> = {}): string {
  const d = fs.mkdtempSync(path.join(tmp, `${name}-`));
  for (const [f, content] of Object.entries(files)) {
    if (f.endsWith('/')) { fs.mkdirSync(path.join(d, f), { recursive: true }); continue; }
    fs.mkdirSync(path.dirname(path.join(d, f)), { recursive: true });
    fs.writeFileSync(path.join(d, f), content);
  }
  return d;
}

describe('capsa manifest check', () => {
  it('the issue\'s example (with ./in and ./out) exits 0 and prints the grants table', () => {
    const d = workdir('example', { 'uniq.yaml': EXAMPLE, 'in/': '', 'out/': '' });
    const r = capsa(['manifest', 'check', 'uniq.yaml'], d);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const lines = r.stdout.split('\n');
    // The "what" column is as wide as its longest entry (the host paths of the temporary directory).
    const w = Math.max(20, `dir (${d}/out)`.length);
    const row = (fd: number, what: string, p: string) => `${String(fd).padEnd(3)} ${what.padEnd(w)} ${p.padEnd(15)} `;
    expect(lines.slice(0, 3)).toEqual(['uniq.yaml: ok', '', `fd  ${'what'.padEnd(w)} ${'path'.padEnd(15)} rights (base / inheriting)`]);
    expect(lines[3]).toBe(row(0, 'stdin', '-') + 'CAP_READ, CAP_FCNTL, CAP_FSTAT, CAP_EVENT');
    expect(lines[4]).toBe(row(1, 'stdout', '-') + 'CAP_FCNTL, CAP_WRITE, CAP_FSTAT, CAP_EVENT');
    expect(lines[6]).toMatch(new RegExp(`^3   dir \\(${d}/in\\) +/in +CAP_FADVISE, CAP_LOOKUP, .* / CAP_READ, CAP_SEEK_SET, `));
    expect(lines[7]).toMatch(new RegExp(`^4   dir \\(${d}/out\\) +/out +.*CAP_CREATE.* / .*CAP_WRITE`));
    expect(lines[8]).toBe(row(5, 'dir (memory)', '/tmp') + 'CAP_CREATE, CAP_LOOKUP / CAP_READ, CAP_WRITE, CAP_CREATE, CAP_LOOKUP  [init-only]');
    expect(lines[9]).toBe(row(6, 'file (argdata)', '/in/words.txt') + 'CAP_READ, CAP_SEEK_SET, CAP_SEEK_TELL, CAP_FSTAT');
    expect(r.stdout).toContain('\nlimits: wall 2 s, cpu 1 s, memory 64 MiB, output 1 MiB, fds 64, files 64 MiB\ncasper: none\n');
    expect(r.stdout).toMatch(/\npromises:\n  rpath: CAP_READ, .* \(look up, read and stat files and directories\)\n  wpath: .*\n  cpath: .*\n$/);
  });

  it('the table is grantTable of the effective manifest', () => {
    const d = workdir('example', { 'uniq.yaml': EXAMPLE });
    const r = capsa(['manifest', 'check', path.join(d, 'uniq.yaml')]);
    expect(r.status).toBe(0);
    const { manifest } = manifestOfCommandLine(['--manifest', path.join(d, 'uniq.yaml')]);
    expect(r.stdout).toBe(`${path.join(d, 'uniq.yaml')}: ok\n\n${grantTable(applyPolicy(manifest, OPEN_POLICY, DEFAULT_LIMITS, 'uniq.yaml', d))}\n`);
  });

  it('a bad manifest exits 1 with every problem as file:line:col, in source order', () => {
    const d = workdir('bad', {
      'bad.yaml': [
        'modul: ./uniq.wasm',
        'args: [a, [b]]',
        'dirs:',
        '  - { guest: data, source: ./d, rights: rpath }',
        '  - { guest: /e, source: ./e, rights: [CAP_RAED] }',
        'limits: { wall: 0, fds: 64MiB }',
      ].join('\n'),
    });
    const r = capsa(['manifest', 'check', 'bad.yaml'], d);
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr.split('\n')).toEqual([
      'bad.yaml:1:1: modul: unknown key "modul" (did you mean "module"?); a manifest may have module, args, env, argdata, dirs, sockets, limits, casper, pledge',
      'bad.yaml:2:11: args[1]: an argument must be a string',
      'bad.yaml:4:14: dirs[0].guest: guest path "data" must be absolute and must not contain "..", e.g. /data',
      'bad.yaml:5:39: dirs[1].rights: unknown right "CAP_RAED" (did you mean "CAP_READ"?); use a Capsicum name such as CAP_READ or a promise such as rpath',
      'bad.yaml:6:17: limits.wall: wall must be a positive whole number',
      'bad.yaml:6:25: limits.fds: fds must be a positive whole number',
      '',
    ]);
  });

  it('a YAML syntax error exits 1 with its line:col', () => {
    const d = workdir('syntax', { 'dup.yaml': 'module: x\nargs: [a]\nmodule: y\n' });
    const r = capsa(['manifest', 'check', 'dup.yaml'], d);
    expect(r.status).toBe(1);
    expect(r.stderr).toBe('dup.yaml:3:1: Map keys must be unique\n');
  });

  it('with --policy that the manifest exceeds: exit 1, every excess named', () => {
    const d = workdir('policy', {
      'uniq.yaml': EXAMPLE, 'in/': '', 'out/': '',
      'policy.yaml': [
        'limits: { wall: 1s, memory: 32MiB }',
        'dirs:',
        '  - { source: ./in, rights: rpath }',
        '  - { source: memory, rights: [CAP_READ, CAP_LOOKUP] }',
        'casper: {}',
        'argdata: { files: false }',
      ].join('\n'),
    });
    const r = capsa(['manifest', 'check', 'uniq.yaml', '--policy', 'policy.yaml'], d);
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr.split('\n')).toEqual([
      "uniq.yaml:14:17: limits.wall: 2 s exceeds the policy's maximum 1 s",
      "uniq.yaml:14:38: limits.memory: 64 MiB exceeds the policy's maximum 32 MiB",
      `uniq.yaml:12:5: dirs[1] (/out): source ${d}/out is not allowed by the policy (allowed sources: ${d}/in, memory)`,
      'uniq.yaml:13:5: dirs[2] (/tmp): CAP_WRITE, CAP_CREATE exceed the policy (allowed: CAP_READ, CAP_LOOKUP)',
      'uniq.yaml:7:3: argdata: !file is not allowed by the policy',
      '',
    ]);
  });

  it('with a --policy the manifest fits: exit 0, "ok under" the policy, limits lowered to its maxima', () => {
    const d = workdir('fits', {
      'm.yaml': 'dirs:\n  - { guest: /in, source: ./in, rights: rpath }\nlimits: { wall: 1s }\n',
      'p.yaml': 'limits: { wall: 5s, cpu: 3s, memory: 128MiB }\ndirs:\n  - { source: ., rights: [rpath, wpath] }\n',
    });
    const r = capsa(['manifest', 'check', 'm.yaml', '--policy', 'p.yaml'], d);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^m\.yaml: ok under p\.yaml\n/);
    expect(r.stdout).toContain('\nlimits: wall 1 s, cpu 3 s, memory 128 MiB, output 1 MiB, fds 64, files 64 MiB\n');
  });

  it('a broken policy file exits 1 with its own file:line:col', () => {
    const d = workdir('badpolicy', { 'm.yaml': '', 'p.yaml': 'limits: { wal: 1s }\ndirz: []\n' });
    const r = capsa(['manifest', 'check', 'm.yaml', '--policy', 'p.yaml'], d);
    expect(r.status).toBe(1);
    expect(r.stderr.split('\n')).toEqual([
      'p.yaml:1:11: limits.wal: unknown limit "wal" (did you mean "wall"?); limits are wall, cpu, memory, output, fds, files',
      'p.yaml:2:1: dirz: unknown key "dirz" (did you mean "dirs"?); a policy has limits, dirs, casper, argdata, net',
      '',
    ]);
  });

  it('a missing policy file is one plain message, not a stack trace', () => {
    const d = workdir('nopolicy', { 'm.yaml': '' });
    const r = capsa(['manifest', 'check', 'm.yaml', '--policy', 'missing.yaml'], d);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^capsa: Cannot read missing\.yaml: ENOENT[^\n]*\n$/);
  });

  it('a missing manifest file exits 1', () => {
    const r = capsa(['manifest', 'check', 'nope.yaml']);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^capsa: Cannot read nope\.yaml: ENOENT/);
  });

  it('the YAML bombs are refused quickly: the billion laughs and a 10 MB manifest', () => {
    const lines = ['argdata:', '  a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'];
    for (let i = 1; i < 10; i++) {
      const n = String.fromCharCode(97 + i), p = String.fromCharCode(96 + i);
      lines.push(`  ${n}: &${n} [${Array(9).fill(`*${p}`).join(', ')}]`);
    }
    const d = workdir('bombs', { 'laughs.yaml': lines.join('\n'), 'big.yaml': `module: x\n# ${'x'.repeat(10 << 20)}\n` });
    const laughs = capsa(['manifest', 'check', 'laughs.yaml'], d);
    expect(laughs.status).toBe(1);
    expect(laughs.stderr).toBe('laughs.yaml:0:0: more than 100 aliases; write the values out\n');
    const big = capsa(['manifest', 'check', 'big.yaml'], d);
    expect(big.status).toBe(1);
    expect(big.stderr).toMatch(/^big\.yaml:0:0: the manifest is 10485773 bytes; the limit is 1048576\n$/);
  });
});

describe('capsa manifest from-flags', () => {
  /**
   * Printed YAML split around its dirs: the text before and after exactly, the entries with their
   * whitespace collapsed (a flow mapping holding a long absolute path is folded across lines).
   */
  function sections(yaml: string): { head: string; dirs: string; tail: string } {
    const m = /^([\s\S]*?)dirs:\n((?:  [^\n]*\n)*)([\s\S]*)$/.exec(yaml);
    if (!m) throw new Error(`no dirs in ${JSON.stringify(yaml)}`);
    return { head: m[1]!, dirs: m[2]!.replace(/\s+/g, ' ').trim(), tail: m[3]! };
  }

  it('prints the manifest the flags stand for; manifest check accepts it with the same grants', () => {
    const d = workdir('flags', { 'X/f': 'from a file\n' });
    const cat = path.relative(d, GUEST('cat'));
    const flags = [cat, '--dir', 'X::/data:ro', '--env', 'A=1', '--timeout', '2s', '--', '/data/f'];
    const r = capsa(['manifest', 'from-flags', ...flags], d);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    // The --dir's host path is resolved against the current directory: X is written as d/X.
    expect(sections(r.stdout)).toEqual({
      head: [`module: ${path.resolve(d, cat)}`, 'args:', '  - /data/f', 'env:', '  A: "1"', ''].join('\n'),
      dirs: `- { guest: /data, source: ${path.join(d, 'X')}, rights: rpath }`,
      tail: 'limits:\n  wall: 2000ms\n',
    });

    // It means the same: the same table, wherever it is saved (the directory's source and the
    // module path are absolute)...
    fs.writeFileSync(path.join(d, 'flags.yaml'), r.stdout);
    fs.mkdirSync(path.join(d, 'elsewhere'));
    fs.writeFileSync(path.join(d, 'elsewhere', 'flags.yaml'), r.stdout);
    const check = capsa(['manifest', 'check', 'elsewhere/flags.yaml'], d);
    expect(check.stderr).toBe('');
    expect(check.status).toBe(0);
    // (In this process the current directory is not d: the same flags with X spelled out.)
    const { manifest } = manifestOfCommandLine(flags.map((f) => (f === 'X::/data:ro' ? `${path.join(d, 'X')}::/data:ro` : f)));
    expect(manifest.dirs[0]!.host).toBe(path.join(d, 'X'));
    expect(check.stdout).toBe(`elsewhere/flags.yaml: ok\n\n${grantTable(applyPolicy(manifest, OPEN_POLICY, DEFAULT_LIMITS, '(flags)', d))}\n`);
    expect(check.stdout).toContain(`3   dir (${d}/X)`);

    // ...and the same run.
    const viaFlags = capsa(['run', ...flags], d);
    const viaManifest = capsa(['run', '--manifest', 'flags.yaml'], d);
    expect(viaFlags.stdout).toBe('from a file\n');
    expect(viaManifest.stderr).toBe('');
    expect(viaManifest.stdout).toBe(viaFlags.stdout);
    expect(viaManifest.status).toBe(0);
  });

  it('with --manifest, the flags add to the manifest and replace a directory at the same guest path', () => {
    const d = workdir('merge', { 'm.yaml': 'env: { LANG: C }\ndirs:\n  - { guest: /data, source: memory, rights: [rpath, wpath] }\n  - { guest: /keep, source: memory, rights: rpath }\n' });
    const r = capsa(['manifest', 'from-flags', '--manifest', 'm.yaml', '--dir', 'h::/data', '--env', 'B=2'], d);
    expect(r.status).toBe(0);
    // The flag's h is resolved against the current directory (here also the manifest's folder).
    expect(sections(r.stdout)).toEqual({
      head: ['args: []', 'env:', '  LANG: C', '  B: "2"', ''].join('\n'),
      dirs: `- { guest: /keep, source: memory, rights: rpath } - { guest: /data, source: ${path.join(d, 'h')}, rights: CAP_ALL }`,
      tail: '',
    });
  });

  it('a bad flag is a usage error (exit 2)', () => {
    const r = capsa(['manifest', 'from-flags', '--env', '=x']);
    expect(r.status).toBe(2);
    expect(r.stderr).toBe("capsa: --env =x: expected KEY=VALUE, or KEY to pass on the host's value\n");
  });
});

describe('capsa run --manifest', () => {
  it('runs cat.wasm on a file in a host directory granted read-only; module and source are relative to the manifest', () => {
    const d = workdir('run', { 'jobs/data/notes.txt': 'line one\nline two\n' });
    const jobs = path.join(d, 'jobs');
    fs.writeFileSync(path.join(jobs, 'cat.yaml'), [
      `module: ${path.relative(jobs, GUEST('cat'))}`,
      'args: [/data/notes.txt]',
      'dirs:',
      '  - { guest: /data, source: ./data, rights: rpath }',
      '',
    ].join('\n'));
    // Run from elsewhere: the paths still resolve against jobs/.
    const r = capsa(['run', '--manifest', path.join(jobs, 'cat.yaml')], tmp);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('line one\nline two\n');
    expect(r.status).toBe(0);
  });

  it('the read-only grant holds: uniq.wasm cannot create its output in a directory granted rpath', () => {
    const d = workdir('ro', { 'in/words.txt': 'a\na\nb\n' });
    fs.writeFileSync(path.join(d, 'm.yaml'), [
      `module: ${GUEST('uniq')}`,
      'args: [/in/words.txt, /in/uniq.txt]',
      'dirs: [{ guest: /in, source: ./in, rights: rpath }]',
      '',
    ].join('\n'));
    const r = capsa(['run', '--manifest', 'm.yaml'], d);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/uniq: \/in\/uniq\.txt: /);
    expect(fs.existsSync(path.join(d, 'in', 'uniq.txt'))).toBe(false);
  });

  it('the issue\'s example runs with guests/build/uniq.wasm', () => {
    const d = workdir('uniq', { 'in/words.txt': 'a\na\nb\nb\nb\na\nc\nc\n', 'out/': '' });
    fs.writeFileSync(path.join(d, 'uniq.yaml'), EXAMPLE.replace('module: ./uniq.wasm', `module: ${path.relative(d, GUEST('uniq'))}`));
    const r = capsa(['run', '--manifest', 'uniq.yaml'], d);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(fs.readFileSync(path.join(d, 'out', 'uniq.txt'), 'utf8')).toBe('a\nb\na\nc\n');
  });

  it('--policy that the manifest exceeds: refused with exit 1 before the guest runs', () => {
    const d = workdir('refused', { 'data/notes.txt': 'secret\n' });
    fs.writeFileSync(path.join(d, 'm.yaml'), [
      `module: ${GUEST('cat')}`,
      'args: [/data/notes.txt]',
      'dirs: [{ guest: /data, source: ./data, rights: [rpath, wpath] }]',
      'limits: { wall: 30s }',
      '',
    ].join('\n'));
    fs.writeFileSync(path.join(d, 'p.yaml'), 'limits: { wall: 5s }\ndirs:\n  - { source: ./data, rights: rpath }\n');
    const r = capsa(['run', '--manifest', 'm.yaml', '--policy', 'p.yaml'], d);
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr.split('\n')).toEqual([
      'capsa: the manifest cannot be used:',
      // Policy excesses are placed where the manifest asks for them.
      "m.yaml:4:17: limits.wall: 30 s exceeds the policy's maximum 5 s",
      'm.yaml:3:8: dirs[0] (/data): CAP_FDATASYNC, CAP_FSYNC, CAP_WRITE, CAP_FALLOCATE, CAP_FTRUNCATEAT, CAP_FTRUNCATE exceed the policy (allowed: rpath)',
      '',
    ]);
    // Within the policy it runs.
    fs.writeFileSync(path.join(d, 'ok.yaml'), `module: ${GUEST('cat')}\nargs: [/data/notes.txt]\ndirs: [{ guest: /data, source: ./data, rights: rpath }]\n`);
    const ok = capsa(['run', '--manifest', 'ok.yaml', '--policy', 'p.yaml'], d);
    expect(ok.stdout).toBe('secret\n');
    expect(ok.status).toBe(0);
  });

  it('a relative --dir given with --manifest is relative to the current directory', () => {
    const d = workdir('dirflag', { 'data/notes.txt': 'the notes\n', 'jobs/': '' });
    fs.writeFileSync(path.join(d, 'jobs', 'm.yaml'), `module: ${GUEST('cat')}\nargs: [/data/notes.txt]\n`);
    const r = capsa(['run', '--manifest', 'jobs/m.yaml', '--dir', './data::/data:ro'], d);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('the notes\n');
  });

  it('a bad manifest: exit 1 with file:line:col, nothing run', () => {
    const d = workdir('badrun', { 'm.yaml': `module: ${GUEST('hello')}\nlimits: { wal: 1s }\n` });
    const r = capsa(['run', '--manifest', 'm.yaml'], d);
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('m.yaml:2:11: limits.wal: unknown limit "wal" (did you mean "wall"?); limits are wall, cpu, memory, output, fds, files\n');
  });
});

describe('usage', () => {
  it('capsa manifest with no arguments prints the usage and exits 2', () => {
    const r = capsa(['manifest']);
    expect(r.status).toBe(2);
    expect(r.stdout).toMatch(/^Usage: capsa manifest check FILE \[--policy FILE\]\n\s+capsa manifest from-flags /);
    expect(r.stdout).toContain('from-flags');
  });

  it('capsa manifest --help exits 0', () => {
    const r = capsa(['manifest', '--help']);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^Usage: capsa manifest check/);
  });

  it('capsa manifest check without a file, or an unknown subcommand, exits 2', () => {
    const none = capsa(['manifest', 'check']);
    expect(none.status).toBe(2);
    expect(none.stderr).toMatch(/^capsa: manifest check: give one manifest file\n\nUsage: /);
    const two = capsa(['manifest', 'check', 'a.yaml', 'b.yaml']);
    expect(two.status).toBe(2);
    const bogus = capsa(['manifest', 'bogus']);
    expect(bogus.status).toBe(2);
    expect(bogus.stderr).toMatch(/^capsa: manifest: unknown subcommand "bogus"/);
  });
});

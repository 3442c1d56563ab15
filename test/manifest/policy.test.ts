/**
 * The operator's policy: parsePolicy's error paths, and applyPolicy, which checks a manifest against
 * the policy's maxima and refuses it with every excess named, never silently narrowing it.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DEFAULT_LIMITS, DEFAULT_MAX_LIMITS, LIMIT_FIELDS, type Limits } from '../../src/host/limits.js';
import { parseManifest } from '../../src/manifest/parse.js';
import { applyPolicy, HeldPaths, OPEN_POLICY, parsePolicy, SERVICE_POLICY, type DirRule, type Policy } from '../../src/manifest/policy.js';
import { ManifestError, type ArgNode, type Manifest, type RightsGrant } from '../../src/manifest/types.js';
import { R, RIGHTS_ALL, TYPE_RIGHTS } from '../../src/wasi/rights.js';
import { FILETYPE } from '../../src/wasi/constants.js';
import { createHostMount } from '../../src/wasi/fs/hostfs.js';

const T = '%TAG ! tag:nuxi.nl,2015:cloudabi/\n---\n';
const USE = 'use a Capsicum name such as CAP_READ or a promise such as rpath';

/** The formatted problem lines of a policy that must be refused. */
function policyProblems(src: string): string[] {
  try {
    parsePolicy(src, 'p.yaml', '/srv');
  } catch (e) {
    if (e instanceof ManifestError) return e.message.split('\n');
    throw e;
  }
  throw new Error(`accepted: ${JSON.stringify(src)}`);
}

/** The formatted refusal lines of a manifest under a policy. */
function refusals(manifest: string, policy: Policy, baseDir = '/srv/jobs'): string[] {
  try {
    applyPolicy(parseManifest(manifest, 'm.yaml'), policy, DEFAULT_LIMITS, 'm.yaml', baseDir);
  } catch (e) {
    if (e instanceof ManifestError) return e.message.split('\n');
    throw e;
  }
  throw new Error(`accepted: ${JSON.stringify(manifest)}`);
}

const effective = (manifest: string, policy: Policy, baseDir = '/srv/jobs') => applyPolicy(parseManifest(manifest, 'm.yaml'), policy, DEFAULT_LIMITS, 'm.yaml', baseDir);

describe('parsePolicy', () => {
  const cases: [string, string, string[]][] = [
    ['limits: a scalar', 'limits: x', ['p.yaml:1:9: limits: limits is a mapping of maxima, e.g. { wall: 10s, memory: 256MiB }']],
    ['an unknown limit', 'limits: { wal: 1s }', ['p.yaml:1:11: limits.wal: unknown limit "wal" (did you mean "wall"?); limits are wall, cpu, memory, output, fds, files']],
    ['a bad duration', 'limits: { wall: soon }', ['p.yaml:1:17: limits.wall: wall: cannot read "soon"; write it like "2s", "500ms" or "1m"']],
    ['a bad size', 'limits: { memory: huge }', ['p.yaml:1:19: limits.memory: memory: cannot read "huge"; write it like "64MiB", "1GiB" or "4096"']],
    ['a limit that is a list', 'limits: { wall: [1] }', ['p.yaml:1:17: limits.wall: must be a number or a duration, e.g. 2s']],
    ['a negative limit', 'limits: { wall: -5 }', ['p.yaml:1:17: limits.wall: wall: -5 is not a non-negative number']],
    ['dirs: a scalar', 'dirs: x', ['p.yaml:1:7: dirs: dirs is a list of { source: memory | HOST_PREFIX, guest?, rights }']],
    ['a rule that is not a mapping', 'dirs: [x]', ['p.yaml:1:8: dirs[0]: a rule is { source, rights }']],
    ['an unknown right in a rule', 'dirs:\n  - { source: memory, rights: [rpth] }', [`p.yaml:2:31: dirs[0].rights: unknown right "rpth" (did you mean "rpath"?); ${USE}`]],
    ['a rule without a source', 'dirs:\n  - { rights: rpath }', ['p.yaml:2:5: dirs[0].source: source is memory or a host directory']],
    ['a rule whose source is a list', 'dirs:\n  - { source: [x], rights: rpath }', ['p.yaml:2:5: dirs[0].source: source is memory or a host directory']],
    ['an unknown key in a rule', 'dirs:\n  - { source: memory, rights: rpath, gust: /x }', ['p.yaml:2:5: dirs[0].gust: unknown key "gust" (did you mean "guest"?)']],
    ['casper: a scalar', 'casper: x', ['p.yaml:1:9: casper: casper is a mapping of services to their widest limits, e.g. { system.random: {} }']],
    ['an unknown service', 'casper: { system.dsn: {} }', ['p.yaml:1:11: casper.system.dsn: unknown service "system.dsn" (did you mean "system.dns"?); services are system.dns, system.pwd, system.grp, system.random, system.sysctl, system.fileargs, system.net']],
    ['argdata without files', 'argdata: x', ['p.yaml:1:10: argdata: argdata is { files: true | false }']],
    ['argdata files: maybe', 'argdata: { files: maybe }', ['p.yaml:1:10: argdata: argdata is { files: true | false }']],
    ['an unknown key', 'foo: 1', ['p.yaml:1:1: foo: unknown key "foo"; a policy has limits, dirs, casper, argdata, net']],
    ['an unknown key with a suggestion', 'argdat: {}', ['p.yaml:1:1: argdat: unknown key "argdat" (did you mean "argdata"?); a policy has limits, dirs, casper, argdata, net']],
    ['a list instead of a mapping', '[1]', ['p.yaml:1:1: a policy is a mapping of limits, dirs, casper, argdata, net']],
    ['several problems at once', 'limits: { wal: 1s }\ndirs: x\ncasper: { system.dsn: {} }\nbogus: 1', [
      'p.yaml:1:11: limits.wal: unknown limit "wal" (did you mean "wall"?); limits are wall, cpu, memory, output, fds, files',
      'p.yaml:2:7: dirs: dirs is a list of { source: memory | HOST_PREFIX, guest?, rights }',
      'p.yaml:3:11: casper.system.dsn: unknown service "system.dsn" (did you mean "system.dns"?); services are system.dns, system.pwd, system.grp, system.random, system.sysctl, system.fileargs, system.net',
      'p.yaml:4:1: bogus: unknown key "bogus"; a policy has limits, dirs, casper, argdata, net',
    ]],
  ];

  it.each(cases)('%s', (_name, src, expected) => {
    expect(policyProblems(src)).toEqual(expected);
  });

  it('YAML errors and duplicate keys carry their line:col', () => {
    expect(policyProblems('limits: { wall: 1s }\nlimits: { wall: 2s }')[0]).toMatch(/^p\.yaml:2:1: Map keys must be unique/);
    expect(policyProblems('limits: [1')[0]).toMatch(/^p\.yaml:1:11: Flow sequence in block collection must be sufficiently indented and end with a \]/);
  });

  it('a maximum of 0 is refused, as in manifests', () => {
    expect(policyProblems('limits: { fds: 0 }')).toEqual(['p.yaml:1:16: limits.fds: fds must be a positive whole number']);
  });

  it('an empty policy is the default maxima, no directories, no services, argdata files allowed', () => {
    expect(parsePolicy('', 'p.yaml', '/srv')).toEqual({ limits: { ...DEFAULT_MAX_LIMITS }, dirs: [], casper: {}, argdataFiles: true, net: { bind: [], connect: [] } });
  });

  it('the happy path: limits, rules (relative sources resolve against baseDir), services, argdata', () => {
    const p = parsePolicy(`limits: { wall: 5s, cpu: 2s, memory: 64MiB, output: 1MiB, fds: 32, files: 1MiB }
dirs:
  - { source: memory, rights: [rpath, wpath, cpath] }
  - { source: ./data, guest: /data, rights: rpath }
  - { source: /srv/out, rights: [CAP_READ, CAP_LOOKUP] }
casper: { system.dns: { families: [inet, inet6] }, system.random: }
argdata: { files: false }`, 'p.yaml', '/srv');
    expect(p.limits).toEqual({ wallMs: 5000, cpuMs: 2000, memoryBytes: 64 << 20, outputBytes: 1 << 20, fds: 32, filesBytes: 1 << 20, tableElements: DEFAULT_MAX_LIMITS.tableElements });
    expect(p.dirs.map((r) => [r.source, r.guest])).toEqual([[{ kind: 'memory' }, undefined], [{ kind: 'host', under: '/srv/data' }, '/data'], [{ kind: 'host', under: '/srv/out' }, undefined]]);
    expect(p.dirs[2]!.rights).toEqual({ base: R.path_open, inheriting: R.path_open | R.fd_read, names: ['CAP_READ', 'CAP_LOOKUP'] });
    expect(p.casper).toEqual({ 'system.dns': { families: ['inet', 'inet6'] }, 'system.random': {} });
    expect(p.argdataFiles).toBe(false);
  });
});

const POLICY = parsePolicy(`limits: { wall: 5s, cpu: 2s, memory: 64MiB, output: 1MiB, fds: 32, files: 1MiB }
dirs:
  - { source: memory, rights: [rpath, wpath, cpath] }
  - { source: ./data, guest: /data, rights: rpath }
  - { source: /srv/out, rights: [rpath, wpath] }
casper: { system.dns: { families: [inet, inet6], types: [name2addr] }, system.random: {} }
argdata: { files: false }`, 'p.yaml', '/srv');

const ALLOWED = 'allowed sources: memory, /srv/data, /srv/out';

describe('applyPolicy: each excess is named', () => {
  it('every limit above its maximum, one message each', () => {
    expect(refusals('limits: { wall: 10s, cpu: 3s, memory: 128MiB, output: 2MiB, fds: 64, files: 2MiB }', POLICY)).toEqual([
      "m.yaml:0:0: limits.wall: 10 s exceeds the policy's maximum 5 s",
      "m.yaml:0:0: limits.cpu: 3 s exceeds the policy's maximum 2 s",
      "m.yaml:0:0: limits.memory: 128 MiB exceeds the policy's maximum 64 MiB",
      "m.yaml:0:0: limits.output: 2 MiB exceeds the policy's maximum 1 MiB",
      "m.yaml:0:0: limits.fds: 64 exceeds the policy's maximum 32",
      "m.yaml:0:0: limits.files: 2 MiB exceeds the policy's maximum 1 MiB",
    ]);
  });

  it('a limit equal to its maximum is fine', () => {
    expect(effective('limits: { wall: 5s, fds: 32 }', POLICY).limits).toMatchObject({ wallMs: 5000, fds: 32 });
  });

  it('limits are named by their manifest keys', () => {
    expect(refusals('limits: { wall: 10s, memory: 128MiB }', POLICY)).toEqual([
      "m.yaml:0:0: limits.wall: 10 s exceeds the policy's maximum 5 s",
      "m.yaml:0:0: limits.memory: 128 MiB exceeds the policy's maximum 64 MiB",
    ]);
  });

  it('a host source outside every allowed prefix, with the allowed list', () => {
    expect(refusals('dirs:\n  - { guest: /etc, source: /etc, rights: rpath }', POLICY))
      .toEqual([`m.yaml:0:0: dirs[0] (/etc): source /etc is not allowed by the policy (${ALLOWED})`]);
    // A prefix is a whole path component: /srv/data2 is not under /srv/data.
    expect(refusals('dirs:\n  - { guest: /data, source: ../data2, rights: rpath }', POLICY))
      .toEqual([`m.yaml:0:0: dirs[0] (/data): source /srv/data2 is not allowed by the policy (${ALLOWED})`]);
    // ../ cannot climb out of an allowed prefix.
    expect(refusals('dirs:\n  - { guest: /data, source: /srv/data/../secret, rights: rpath }', POLICY))
      .toEqual([`m.yaml:0:0: dirs[0] (/data): source /srv/secret is not allowed by the policy (${ALLOWED})`]);
  });

  it('a rule\'s guest path constrains where the directory may appear', () => {
    expect(refusals('dirs:\n  - { guest: /other, source: ../data, rights: rpath }', POLICY))
      .toEqual([`m.yaml:0:0: dirs[0] (/other): source /srv/data is not allowed by the policy (${ALLOWED})`]);
    expect(effective('dirs:\n  - { guest: /data/sub, source: ../data/sub, rights: rpath }', POLICY).dirs[0]!.host).toBe('/srv/data/sub');
  });

  it('rights beyond the matching rule, named by CAP name', () => {
    expect(refusals('dirs:\n  - { guest: /data, source: ../data, rights: [rpath, wpath] }', POLICY))
      .toEqual(['m.yaml:0:0: dirs[0] (/data): CAP_FDATASYNC, CAP_FSYNC, CAP_WRITE, CAP_FALLOCATE, CAP_FTRUNCATEAT, CAP_FTRUNCATE exceed the policy (allowed: rpath)']);
    expect(refusals('dirs:\n  - { guest: /o, source: /srv/out, rights: [rpath, wpath, cpath] }', POLICY))
      .toEqual(['m.yaml:0:0: dirs[0] (/o): CAP_MKDIRAT, CAP_CREATE, CAP_LINKAT_SOURCE, CAP_LINKAT_TARGET, CAP_RENAMEAT_SOURCE, CAP_RENAMEAT_TARGET, CAP_SYMLINKAT, CAP_RMDIRAT, CAP_UNLINKFILEAT exceed the policy (allowed: rpath, wpath)']);
    expect(refusals('dirs:\n  - { guest: /t, source: memory, rights: CAP_ALL }', POLICY))
      .toEqual(['m.yaml:0:0: dirs[0] (/t): CAP_FCNTL, CAP_FUTIMESAT, CAP_FUTIMES, CAP_FEXECVE exceed the policy (allowed: rpath, wpath, cpath)']);
  });

  it('a Casper service the policy does not allow', () => {
    expect(refusals('casper: { system.pwd: {} }', POLICY)).toEqual(['m.yaml:0:0: casper.system.pwd: the policy does not allow this service']);
    expect(refusals('pledge: [stdio, getpw]', POLICY)).toEqual([
      'm.yaml:0:0: casper.system.pwd: the policy does not allow this service',
      'm.yaml:0:0: casper.system.grp: the policy does not allow this service',
    ]);
  });

  it('Casper limit lists that are not a subset of the policy\'s', () => {
    expect(refusals('casper: { system.dns: { families: [inet, unix] } }', POLICY))
      .toEqual(['m.yaml:0:0: casper.system.dns.families: "unix" not allowed by the policy (allowed: "inet", "inet6")']);
    expect(refusals('casper: { system.dns: { families: [inet], types: [addr2name, name2addr] } }', POLICY))
      .toEqual(['m.yaml:0:0: casper.system.dns.types: "addr2name" not allowed by the policy (allowed: "name2addr")']);
    // Judged by the service, not by the text: one family where the policy lists two is narrower.
    expect(effective('casper: { system.dns: { families: inet } }', POLICY).casper['system.dns']).toMatchObject({ families: 'inet' });
    // Within the policy: the manifest's lists are kept, and keys it leaves out take the policy's.
    expect(effective('casper: { system.dns: { families: [inet6] }, system.random: {} }', POLICY).casper)
      .toEqual({ 'system.dns': { families: ['inet6'], types: ['name2addr'] }, 'system.random': {} });
  });

  it('a service granted with {} gets the policy\'s limits (manifest ∩ policy)', () => {
    expect(effective('pledge: [stdio, dns]', POLICY).casper).toEqual({ 'system.dns': { families: ['inet', 'inet6'], types: ['name2addr'] } });
  });

  it('argdata files when the policy forbids them, wherever they are in the tree', () => {
    expect(refusals(`${T}dirs: [{ guest: /data, source: ../data, rights: rpath }]\nargdata: { a: [1, { b: !file { path: /data/x } }] }`, POLICY))
      .toEqual(['m.yaml:0:0: argdata: !file is not allowed by the policy']);
    expect(effective(`${T}argdata: { log: [!fd stdout], n: 3 }`, POLICY).argdata).toMatchObject({ type: 'map' });
  });

  it('an argdata !file outside every granted directory', () => {
    expect(refusals(`${T}argdata: !file { path: /etc/passwd }`, OPEN_POLICY))
      .toEqual(['m.yaml:0:0: argdata: !file /etc/passwd is not inside a granted directory (granted: none)']);
    expect(refusals(`${T}dirs: [{ guest: /in, source: memory, rights: rpath }, { guest: /out, source: memory, rights: rpath }]\nargdata: [!file { path: /inx/a }, !file { path: /in }]`, OPEN_POLICY))
      .toEqual([
        'm.yaml:0:0: argdata: !file /inx/a is not inside a granted directory (granted: /in, /out)',
        'm.yaml:0:0: argdata: !file /in is not inside a granted directory (granted: /in, /out)',
      ]);
  });

  it('an argdata !file with rights its directory does not pass on', () => {
    expect(refusals(`${T}dirs: [{ guest: /in, source: memory, rights: rpath }]\nargdata: !file { path: /in/x, rights: [CAP_READ, CAP_WRITE, CAP_FTRUNCATE] }`, OPEN_POLICY))
      .toEqual(['m.yaml:0:0: argdata: !file /in/x asks for CAP_WRITE, CAP_FTRUNCATE, which /in does not pass on (add them to its rights)']);
    // The innermost granted directory is the one that counts.
    const nested = `${T}dirs:\n  - { guest: /d, source: memory, rights: [rpath, wpath] }\n  - { guest: /d/ro, source: memory, rights: rpath }\n`;
    expect(refusals(`${nested}argdata: !file { path: /d/ro/x, rights: [CAP_WRITE] }`, OPEN_POLICY))
      .toEqual(['m.yaml:0:0: argdata: !file /d/ro/x asks for CAP_WRITE, which /d/ro does not pass on (add them to its rights)']);
    expect(effective(`${nested}argdata: !file { path: /d/x, rights: [CAP_WRITE] }`, OPEN_POLICY).argdata).toMatchObject({ type: 'file', path: '/d/x' });
  });

  it('an argdata !fd beyond stdio and the granted directories', () => {
    expect(refusals(`${T}dirs: [{ guest: /in, source: memory, rights: rpath }]\nargdata: [!fd 3, !fd 4]`, OPEN_POLICY))
      .toEqual(['m.yaml:0:0: argdata: !fd 4 is not granted; fds 0-2 are stdio and fd 3 is the directory']);
    expect(refusals(`${T}dirs: [{ guest: /in, source: memory, rights: rpath }, { guest: /out, source: memory, rights: rpath }]\nargdata: [!fd 4, !fd 5]`, OPEN_POLICY))
      .toEqual(['m.yaml:0:0: argdata: !fd 5 is not granted; fds 0-2 are stdio and 3-4 are the directories']);
    expect(effective(`${T}dirs: [{ guest: /in, source: memory, rights: rpath }]\nargdata: [!fd 0, !fd 3]`, OPEN_POLICY).argdata)
      .toEqual({ type: 'seq', items: [{ type: 'fd', fd: 0 }, { type: 'fd', fd: 3 }] });
  });

  it('an argdata !fd when no directory is granted says so plainly', () => {
    expect(refusals(`${T}argdata: !fd 3`, OPEN_POLICY)).toEqual(['m.yaml:0:0: argdata: !fd 3 is not granted; fds 0-2 are stdio and no directory is granted']);
  });

  it('every excess at once: a manifest with 4 excesses gets 4 messages', () => {
    const m = `limits: { wall: 10s }
dirs:
  - { guest: /etc, source: /etc, rights: rpath }
  - { guest: /t, source: memory, rights: [CAP_ALL] }
casper: { system.pwd: {} }`;
    expect(refusals(m, POLICY)).toEqual([
      "m.yaml:0:0: limits.wall: 10 s exceeds the policy's maximum 5 s",
      `m.yaml:0:0: dirs[0] (/etc): source /etc is not allowed by the policy (${ALLOWED})`,
      'm.yaml:0:0: dirs[1] (/t): CAP_FCNTL, CAP_FUTIMESAT, CAP_FUTIMES, CAP_FEXECVE exceed the policy (allowed: rpath, wpath, cpath)',
      'm.yaml:0:0: casper.system.pwd: the policy does not allow this service',
    ]);
  });

  it('a manifest within the policy is granted exactly what it asked for', () => {
    const src = `${T}dirs:
  - { guest: /data, source: ../data, rights: rpath }
  - { guest: /out, source: /srv/out/run1, rights: [rpath, wpath] }
  - { guest: /tmp, source: memory, rights: [CAP_READ, CAP_WRITE, CAP_CREATE, CAP_LOOKUP], init_only: true }
argdata: { log: !fd stderr }
limits: { wall: 1s, memory: 16MiB }
casper: { system.random: {} }`;
    const m = parseManifest(src);
    const e = applyPolicy(m, POLICY, DEFAULT_LIMITS, 'm.yaml', '/srv/jobs');
    expect(e.dirs.map((d) => d.rights)).toEqual(m.dirs.map((d) => d.rights));
    expect(e.dirs.map((d) => [d.guest, d.host, d.initOnly])).toEqual([
      ['/data', '/srv/data', false], ['/out', '/srv/out/run1', false], ['/tmp', undefined, true],
    ]);
    expect(e.casper).toEqual({ 'system.random': {} });
    expect(e.argdata).toEqual(m.argdata);
    // The manifest itself is left as written.
    expect(m.dirs[0]!.host).toBe('../data');
  });
});

describe('applyPolicy: defaults and sources', () => {
  it('limits the manifest leaves out are the defaults, lowered to the policy\'s maxima', () => {
    expect(effective('', POLICY).limits).toEqual({ wallMs: 5000, cpuMs: 2000, memoryBytes: 64 << 20, outputBytes: 1 << 20, fds: 32, filesBytes: 1 << 20, tableElements: DEFAULT_LIMITS.tableElements });
    expect(effective('limits: { wall: 1s }', POLICY).limits.wallMs).toBe(1000);
    const roomy = parsePolicy('limits: { wall: 1s, memory: 1GiB }', 'p.yaml', '/srv');
    expect(effective('', roomy).limits).toEqual({ ...DEFAULT_LIMITS, wallMs: 1000 });
  });

  it('relative host sources resolve against baseDir, the manifest\'s folder', () => {
    const p = parsePolicy('dirs:\n  - { source: /home/u/jobs, rights: rpath }', 'p.yaml', '/');
    expect(effective('dirs:\n  - { guest: /in, source: ./in, rights: rpath }', p, '/home/u/jobs').dirs[0]!.host).toBe('/home/u/jobs/in');
    expect(effective('dirs:\n  - { guest: /in, source: in/../in/., rights: rpath }', p, '/home/u/jobs').dirs[0]!.host).toBe('/home/u/jobs/in');
    expect(refusals('dirs:\n  - { guest: /in, source: ./in, rights: rpath }', p, '/home/u/other'))
      .toEqual(['m.yaml:0:0: dirs[0] (/in): source /home/u/other/in is not allowed by the policy (allowed sources: /home/u/jobs)']);
  });

  it('SERVICE_POLICY refuses host directories and Casper services, and allows memory', () => {
    expect(refusals('dirs:\n  - { guest: /d, source: ./d, rights: rpath }', SERVICE_POLICY))
      .toEqual(['m.yaml:0:0: dirs[0] (/d): source /srv/jobs/d is not allowed by the policy (allowed sources: memory)']);
    expect(refusals('dirs:\n  - { guest: /d, source: /, rights: rpath }', SERVICE_POLICY))
      .toEqual(['m.yaml:0:0: dirs[0] (/d): source / is not allowed by the policy (allowed sources: memory)']);
    expect(refusals('casper: { system.random: {} }', SERVICE_POLICY)).toEqual(['m.yaml:0:0: casper.system.random: the policy does not allow this service']);
    expect(effective('dirs:\n  - { guest: /d, source: memory, rights: CAP_ALL }', SERVICE_POLICY).dirs).toHaveLength(1);
  });

  it('OPEN_POLICY (the CLI without --policy) takes anything, with no maxima but the engine\'s own', () => {
    const all = `dirs:\n  - { guest: /r, source: /, rights: CAP_ALL }\ncasper: { ${['system.dns', 'system.pwd', 'system.grp', 'system.random', 'system.sysctl', 'system.fileargs'].map((s) => `${s}: {}`).join(', ')} }`;
    expect(Object.keys(effective(all, OPEN_POLICY).casper)).toHaveLength(6);
    expect(effective('limits: { wall: 10m, memory: 2GiB, output: 1GiB }', OPEN_POLICY).limits)
      .toMatchObject({ wallMs: 600_000, memoryBytes: 2 * 1024 ** 3, outputBytes: 1024 ** 3 });
    expect(refusals('limits: { memory: 5GiB }', OPEN_POLICY)).toEqual(["m.yaml:0:0: limits.memory: 5 GiB exceeds the policy's maximum 4 GiB"]);
  });

  it('a policy with no rules allows no directory at all', () => {
    expect(refusals('dirs:\n  - { guest: /d, source: memory, rights: [] }', parsePolicy('', 'p.yaml', '/')))
      .toEqual(['m.yaml:0:0: dirs[0] (/d): source memory is not allowed by the policy (allowed sources: none)']);
  });
});

// ---------------------------------------------------------------------------------------------
// The property: applyPolicy accepts exactly the manifests within the policy, and never narrows.

const WORDS = ['rpath', 'wpath', 'cpath', 'fattr', 'dpath', 'flock', 'stdio', 'CAP_READ', 'CAP_WRITE', 'CAP_LOOKUP', 'CAP_CREATE',
  'CAP_SEEK', 'CAP_FSTAT', 'CAP_FSTATAT', 'CAP_UNLINKAT', 'CAP_FCNTL', 'CAP_FUTIMES', 'CAP_MKDIRAT', 'CAP_ALL', 'fd_readdir', 'path_open'];
/** Manifest sources; the manifest's folder is /srv/allowed/jobs. */
const M_SOURCES = ['memory', '/srv/allowed', '/srv/allowed/sub', 'sub/deeper', '../other', '../../allowedX', '/srv/other/x', '/etc', '/'];
/** Policy sources; the policy's folder is /srv. */
const P_SOURCES = ['memory', '/srv/allowed', './allowed/sub', '/srv/other', '/'];
const GUESTS = ['/data', '/data/sub', '/out', '/tmp', '/x'];
const SERVICES = ['system.dns', 'system.pwd', 'system.grp', 'system.random'];
const FAMILIES = ['inet', 'inet6', 'unix'];
const M_BASE = '/srv/allowed/jobs', P_BASE = '/srv';

const limitsArb = fc.record({
  wall: fc.integer({ min: 1, max: 20 }).map((n) => `${n}s`),
  cpu: fc.integer({ min: 100, max: 20_000 }).map((n) => `${n}ms`),
  memory: fc.integer({ min: 1, max: 512 }).map((n) => `${n}MiB`),
  output: fc.integer({ min: 1, max: 20 }).map((n) => `${n}MiB`),
  fds: fc.integer({ min: 1, max: 200 }).map(String),
  files: fc.integer({ min: 1, max: 300 }).map((n) => `${n}MiB`),
}, { requiredKeys: [] });

const servicesArb = fc.uniqueArray(fc.record({ name: fc.constantFrom(...SERVICES), families: fc.option(fc.subarray(FAMILIES), { nil: undefined }) }), { selector: (s) => s.name, maxLength: 3 });

const manifestArb = fc.record({
  dirs: fc.uniqueArray(fc.record({ guest: fc.constantFrom(...GUESTS), source: fc.constantFrom(...M_SOURCES), words: fc.subarray(WORDS, { maxLength: 4 }) }), { selector: (d) => d.guest, maxLength: 3 }),
  limits: limitsArb,
  casper: servicesArb,
  pledge: fc.option(fc.subarray(['stdio', 'rpath', 'dns', 'getpw'], { minLength: 1 }), { nil: undefined }),
  argdataFile: fc.option(fc.record({ path: fc.constantFrom('/data/in.txt', '/data/sub/x', '/out/y', '/nowhere/z'), words: fc.subarray(['CAP_READ', 'CAP_WRITE', 'CAP_SEEK', 'CAP_FSTAT', 'rpath', 'wpath']) }), { nil: undefined, freq: 2 }),
});

const randomPolicyArb = fc.record({
  dirs: fc.array(fc.record({ source: fc.constantFrom(...P_SOURCES), guest: fc.option(fc.constantFrom('/data', '/out'), { nil: undefined }), words: fc.subarray(WORDS, { maxLength: 6 }) }), { maxLength: 4 }),
  limits: limitsArb,
  casper: servicesArb,
  argdataFiles: fc.option(fc.boolean(), { nil: undefined }),
  // So that enough manifests fit: rules for any host path and for memory with wide (not always
  // complete) rights, and every service the manifest asks for.
  wide: fc.option(fc.subarray(['rpath', 'wpath', 'cpath', 'fattr', 'CAP_FCNTL'], { minLength: 3 }), { nil: undefined }),
  allServices: fc.boolean(),
});

/** Policies most manifests fit, so that acceptance is exercised as much as refusal. */
const generousPolicyArb = fc.record({
  dirs: fc.array(fc.record({ source: fc.constantFrom(...P_SOURCES), guest: fc.option(fc.constantFrom('/data', '/out'), { nil: undefined }), words: fc.subarray(WORDS) }), { maxLength: 2 }),
  limits: fc.constant<Record<string, string>>({ wall: '60s', cpu: '60s', memory: '1GiB', output: '32MiB', fds: '200', files: '512MiB' }),
  // system.dns limited to every family, so that a manifest's {} takes the policy's list.
  casper: fc.constant<{ name: string; families: string[] | undefined }[]>([{ name: 'system.dns', families: FAMILIES }]),
  argdataFiles: fc.constantFrom(undefined, true),
  wide: fc.subarray(['rpath', 'wpath', 'cpath', 'fattr', 'CAP_FCNTL'], { minLength: 4 }),
  allServices: fc.constant(true),
});

const policyArb = fc.oneof(randomPolicyArb, generousPolicyArb);

/** The values an arbitrary generates. */
type Gen<A> = A extends fc.Arbitrary<infer T> ? T : never;

const flow = (o: Record<string, string | undefined>) => `{ ${Object.entries(o).filter(([, v]) => v !== undefined).map(([k, v]) => `${k}: ${v}`).join(', ')} }`;
const list = (xs: readonly string[]) => `[${xs.join(', ')}]`;
const casperYaml = (s: { name: string; families: string[] | undefined }[]) =>
  `{ ${s.map((x) => `${x.name}: ${x.families ? `{ families: ${list(x.families)} }` : '{}'}`).join(', ')} }`;

function manifestYaml(m: Gen<typeof manifestArb>): string {
  const lines = [T.trimEnd()];
  if (m.dirs.length) lines.push('dirs:', ...m.dirs.map((d) => `  - ${flow({ guest: d.guest, source: d.source, rights: list(d.words) })}`));
  lines.push(`limits: ${flow(m.limits)}`, `casper: ${casperYaml(m.casper)}`);
  if (m.pledge) lines.push(`pledge: ${list(m.pledge)}`);
  if (m.argdataFile) lines.push(`argdata: { in: !file { path: ${m.argdataFile.path}, rights: ${list(m.argdataFile.words)} } }`);
  return lines.join('\n') + '\n';
}

function policyYaml(p: Gen<typeof randomPolicyArb>): string {
  const services = p.allServices ? [...p.casper, ...SERVICES.filter((s) => !p.casper.some((c) => c.name === s)).map((name) => ({ name, families: undefined }))] : p.casper;
  const rules = p.wide ? [...p.dirs, { source: '/', guest: undefined, words: p.wide }, { source: 'memory', guest: undefined, words: p.wide }] : p.dirs;
  const lines = [`limits: ${flow(p.limits)}`, `casper: ${casperYaml(services)}`];
  if (rules.length) lines.push('dirs:', ...rules.map((d) => `  - ${flow({ source: d.source, guest: d.guest, rights: list(d.words) })}`));
  if (p.argdataFiles !== undefined) lines.push(`argdata: { files: ${p.argdataFiles} }`);
  return lines.join('\n') + '\n';
}

/** Whether `child` is `parent` or below it, by path components. */
function isWithin(child: string, parent: string): boolean {
  const rel = path.posix.relative(parent, child);
  return rel === '' || (!rel.startsWith('..') && !path.posix.isAbsolute(rel));
}

const subset = (a: RightsGrant, b: RightsGrant) => (a.base & ~b.base) === 0n && (a.inheriting & ~b.inheriting) === 0n;

/** The rules of `policy` that may hold directory `d` of a manifest whose folder is `baseDir`. */
function matchingRules(d: Manifest['dirs'][number], policy: Policy, baseDir: string): DirRule[] {
  const host = d.host !== undefined ? path.posix.resolve(baseDir, d.host) : undefined;
  return policy.dirs.filter((r) => (r.source.kind === 'memory' ? host === undefined : host !== undefined && isWithin(host, r.source.under))
    && (r.guest === undefined || isWithin(d.guest, r.guest)));
}

function fileNodes(n: ArgNode | undefined): Extract<ArgNode, { type: 'file' }>[] {
  if (n?.type === 'file') return [n];
  if (n?.type === 'seq') return n.items.flatMap(fileNodes);
  if (n?.type === 'map') return n.entries.flatMap(([k, v]) => [...fileNodes(k), ...fileNodes(v)]);
  return [];
}

/** Every way `m` exceeds `policy`, worked out independently of applyPolicy: one entry per message expected. */
function excesses(m: Manifest, policy: Policy, baseDir: string): string[] {
  const out: string[] = [];
  for (const f of LIMIT_FIELDS) {
    const asked = m.limits[f];
    if (asked !== undefined && asked > policy.limits[f]) out.push(`limit ${f}`);
  }
  m.dirs.forEach((d, i) => {
    if (!matchingRules(d, policy, baseDir).some((r) => subset(d.rights, r.rights))) out.push(`dir ${i}`);
  });
  const hasFile = JSON.stringify(m.argdata ?? null, (_k, v) => (typeof v === 'bigint' ? String(v) : v)).includes('"type":"file"');
  if (hasFile && !policy.argdataFiles) out.push('argdata file');
  // The manifest's own consistency: a !file lies inside a granted directory (the innermost one
  // counts) and asks for no more than that directory passes on.
  for (const f of fileNodes(m.argdata)) {
    const inside = m.dirs.filter((d) => f.path !== d.guest && isWithin(f.path, d.guest)).sort((a, b) => b.guest.length - a.guest.length)[0];
    if (!inside) out.push(`file ${f.path} outside`);
    else if (f.rights.base & ~inside.rights.inheriting) out.push(`file ${f.path} rights`);
  }
  for (const [service, lim] of Object.entries(m.casper)) {
    const allowed = policy.casper[service];
    if (allowed === undefined) { out.push(`service ${service}`); continue; }
    for (const [k, v] of Object.entries(lim)) {
      const a = allowed[k];
      if (Array.isArray(v) && Array.isArray(a) && v.some((x) => !a.includes(x))) out.push(`service ${service}.${k}`);
    }
  }
  return out;
}

describe('property: the effective grant never exceeds the policy, and nothing is silently narrowed', () => {
  it('random manifests against random policies', () => {
    let accepted = 0, refused = 0, filledIn = 0;
    fc.assert(fc.property(manifestArb, policyArb, (ma, pa) => {
      const m = parseManifest(manifestYaml(ma), 'm.yaml');
      const policy = parsePolicy(policyYaml(pa), 'p.yaml', P_BASE);
      const expected = excesses(m, policy, M_BASE);
      let e: Manifest & { limits: Limits };
      try {
        e = applyPolicy(m, policy, DEFAULT_LIMITS, 'm.yaml', M_BASE);
      } catch (err) {
        if (!(err instanceof ManifestError)) throw err;
        refused++;
        // Refused: exactly when something exceeds the policy, with one message per excess.
        expect(expected).not.toEqual([]);
        expect(err.problems).toHaveLength(expected.length);
        return;
      }
      accepted++;
      expect(expected).toEqual([]);
      // Accepted: every directory fits a rule that matches it, exactly as asked (never narrowed).
      expect(e.dirs).toHaveLength(m.dirs.length);
      e.dirs.forEach((d, i) => {
        expect(d.rights).toEqual(m.dirs[i]!.rights);
        expect(matchingRules(d, policy, '/').some((r) => subset(d.rights, r.rights))).toBe(true);
      });
      // Every limit, asked for or defaulted, is within the maxima; the asked ones are kept.
      for (const f of LIMIT_FIELDS) {
        expect(e.limits[f]).toBeLessThanOrEqual(policy.limits[f]);
        if (m.limits[f] !== undefined) expect(e.limits[f]).toBe(m.limits[f]);
      }
      // Every service asked for, and only those, is one the policy allows. Its limits are the ones
      // asked for, and the policy's for every key the manifest leaves out (manifest ∩ policy), so no
      // list is wider than the policy's.
      expect(Object.keys(e.casper).sort()).toEqual(Object.keys(m.casper).sort());
      for (const [s, lim] of Object.entries(e.casper)) {
        const asked = m.casper[s]!, allowed = policy.casper[s];
        expect(allowed).toBeDefined();
        const keys = [...new Set([...Object.keys(allowed!), ...Object.keys(asked)])].sort();
        expect(Object.keys(lim).sort()).toEqual(keys);
        for (const k of keys) {
          if (!(k in asked)) filledIn++;
          expect(lim[k]).toEqual(k in asked ? asked[k] : allowed![k]);
          const a = allowed![k];
          if (Array.isArray(a)) expect((lim[k] as unknown[]).filter((x) => !a.includes(x))).toEqual([]);
        }
      }
      expect(e.argdata).toEqual(m.argdata);
    }), { numRuns: 400 });
    // Both outcomes were exercised.
    expect(accepted).toBeGreaterThan(40);
    expect(refused).toBeGreaterThan(40);
    expect(filledIn).toBeGreaterThan(10);
  });

  it('random rights masks against random rule masks', () => {
    const mask = (type: { base: bigint; inheriting: bigint }) => fc.record({
      base: fc.bigInt({ min: 0n, max: RIGHTS_ALL }).map((b) => b & type.base),
      inheriting: fc.bigInt({ min: 0n, max: RIGHTS_ALL }).map((b) => b & type.inheriting),
      names: fc.constant<string[]>([]),
    });
    const dir = TYPE_RIGHTS.directory;
    // Rules are random masks, or one of the asked masks widened by a random one (so that some fit).
    const caseArb = fc.array(mask(dir), { minLength: 1, maxLength: 3 }).chain((asked) => fc.tuple(fc.constant(asked), fc.array(fc.oneof(
      mask(dir),
      fc.tuple(fc.constantFrom(...asked), mask(dir)).map(([a, x]) => ({ base: a.base | x.base, inheriting: a.inheriting | x.inheriting, names: [] })),
    ), { maxLength: 3 })));
    fc.assert(fc.property(caseArb, ([asked, rules]) => {
      const m: Manifest = { args: [], env: {}, limits: {}, casper: {}, dirs: asked.map((rights, i) => ({ guest: `/d${i}`, rights, initOnly: false, readonly: false })) };
      const policy: Policy = { ...OPEN_POLICY, dirs: rules.map((rights) => ({ source: { kind: 'memory' }, rights })) };
      const bad = asked.filter((a) => !rules.some((r) => subset(a, r))).length;
      try {
        const e = applyPolicy(m, policy, DEFAULT_LIMITS);
        expect(bad).toBe(0);
        expect(e.dirs.map((d) => d.rights)).toEqual(asked);
      } catch (err) {
        if (!(err instanceof ManifestError)) throw err;
        expect(err.problems).toHaveLength(bad);
      }
    }), { numRuns: 300 });
  });
});

/**
 * Host sources are judged where they really are (issue 18, item 1): no symlink below a rule's
 * directory is followed, real paths are compared, and a run is given the descriptor that was checked.
 */
describe('host paths under a policy, on a real tree', () => {
  let base: string;
  let allowed: string;
  let policy: Policy;
  beforeEach(() => {
    base = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'capsa-policy-real-')));
    allowed = path.join(base, 'allowed');
    fs.mkdirSync(path.join(allowed, 'in', 'deep'), { recursive: true });
    fs.writeFileSync(path.join(allowed, 'ok.txt'), 'fine\n');
    fs.mkdirSync(path.join(base, 'secret', 'sub'), { recursive: true });
    fs.writeFileSync(path.join(base, 'secret', 's.txt'), 'secret\n');
    fs.symlinkSync('../secret', path.join(allowed, 'link'));
    fs.symlinkSync('in', path.join(allowed, 'in-link'));
    fs.symlinkSync('../secret/s.txt', path.join(allowed, 's-link.txt'));
    policy = parsePolicy('dirs:\n  - { source: ./allowed, rights: rpath }\n', 'p.yaml', base);
  });
  afterEach(() => fs.rmSync(base, { recursive: true, force: true }));
  const mount = (source: string) => `dirs:\n  - { guest: /d, source: ${source}, rights: rpath }\n`;
  const argdata = (p: string) => applyPolicy({ args: [], env: {}, dirs: [], limits: {}, casper: {}, argdata: { type: 'file', path: p, rights: { base: R.fd_read, inheriting: 0n, names: [] }, host: true } }, policy, DEFAULT_LIMITS, 'a.yaml', base);
  const argdataRefusal = (p: string) => { try { argdata(p); } catch (e) { if (e instanceof ManifestError) return e.message; throw e; } return 'accepted'; };

  it('a link is refused as the source, on the way to it, with a trailing slash, and even when it stays inside', () => {
    for (const [source, link] of [['./allowed/link', 'link'], ['./allowed/link/', 'link'], ['./allowed/link/sub', 'link'], ['./allowed/in-link', 'in-link'], ['./allowed/in-link/deep', 'in-link']]) {
      expect(refusals(mount(source!), policy, base)).toEqual([`m.yaml:0:0: dirs[0] (/d): source ${path.resolve(base, source!)} is not allowed by the policy: ${allowed}/${link} is a symbolic link (-> ${fs.readlinkSync(path.join(allowed, link!))}), and the policy follows no link below ${allowed}; give the real path of the directory, or remove the link`]);
    }
  });

  it('real paths are compared: a link outside the rule that leads into it is named', () => {
    fs.symlinkSync('allowed', path.join(base, 'alias'));
    expect(refusals(mount('./alias/in'), policy, base)).toEqual([`m.yaml:0:0: dirs[0] (/d): source ${base}/alias/in is not allowed by the policy: it leads to ${allowed}/in through a symbolic link, which the policy does not name (allowed sources: ${allowed}); give the real path`]);
  });

  it('links in the rule\'s own path are the operator\'s: followed', () => {
    fs.symlinkSync('allowed', path.join(base, 'alias'));
    const viaAlias = parsePolicy('dirs:\n  - { source: ./alias, rights: rpath }\n', 'p.yaml', base);
    const e = applyPolicy(parseManifest(mount('./alias/in'), 'm.yaml'), viaAlias, DEFAULT_LIMITS, 'm.yaml', base);
    expect(e.dirs[0]!.host).toBe(`${allowed}/in`);
  });

  it('without a policy (a rule for /), links are followed as before', () => {
    const e = applyPolicy(parseManifest(mount('./allowed/link'), 'm.yaml'), OPEN_POLICY, DEFAULT_LIMITS, 'm.yaml', base);
    expect(e.dirs[0]!.host).toBe(`${base}/secret`);
  });

  it('argdata host files: a link on the way, or as the file, is refused; a plain file is allowed', () => {
    expect(argdataRefusal(`${allowed}/link/s.txt`)).toContain(`argdata: host path ${allowed}/link/s.txt is not allowed by the policy: ${allowed}/link is a symbolic link (-> ../secret)`);
    expect(argdataRefusal(`${allowed}/s-link.txt`)).toContain(`${allowed}/s-link.txt is a symbolic link (-> ../secret/s.txt)`);
    expect(argdataRefusal(`${allowed}/ok.txt`)).toBe('accepted');
  });

  it('held for a run: the run gets /proc/self/fd/N, which stays the directory that was checked', () => {
    const held = new HeldPaths();
    try {
      const e = applyPolicy(parseManifest(mount('./allowed/in'), 'm.yaml'), policy, DEFAULT_LIMITS, 'm.yaml', base, held);
      const source = { path: e.dirs[0]!.host! };
      expect(source.path).toMatch(/^\/proc\/self\/fd\/\d+$/);
      // The checked directory is swapped for a link to the secret before the run mounts it.
      fs.renameSync(path.join(allowed, 'in'), path.join(allowed, 'in-was'));
      fs.symlinkSync('../secret', path.join(allowed, 'in'));
      const m = createHostMount({ root: source.path });
      expect(m.lookup('deep')?.filetype).toBe(FILETYPE.DIRECTORY);
      expect(m.lookup('s.txt')).toBeUndefined();
      // A held file is its directory's descriptor and its name, opened there without following.
      const a = applyPolicy({ args: [], env: {}, dirs: [], limits: {}, casper: {}, argdata: { type: 'file', path: `${allowed}/ok.txt`, rights: { base: R.fd_read, inheriting: 0n, names: [] }, host: true } }, policy, DEFAULT_LIMITS, 'a.yaml', base, held);
      expect((a.argdata as { path: string }).path).toMatch(/^\/proc\/self\/fd\/\d+\/ok\.txt$/);
    } finally {
      held.close();
    }
  });

  it('a missing source is refused when it must be held, and left to the run when only checked', () => {
    expect(effective(mount('./allowed/nope'), policy, base).dirs[0]!.host).toBe(`${allowed}/nope`);
    const held = new HeldPaths();
    try {
      expect(() => applyPolicy(parseManifest(mount('./allowed/nope'), 'm.yaml'), policy, DEFAULT_LIMITS, 'm.yaml', base, held)).toThrow(`dirs[0] (/d): source ${allowed}/nope cannot be opened: it does not exist`);
    } finally {
      held.close();
    }
  });
});

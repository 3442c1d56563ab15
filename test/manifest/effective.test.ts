/**
 * The grant language as one layer: effectiveGrants reports every problem of every kind in one
 * round with its place, policies are read by the same capped reader, --dir is parsed strictly, and
 * a read-only grant reaches the fd table as a read-only mount (the EROFS backstop).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { dirGrant, hostDirProblem, parseDir, UsageError } from '../../src/cli/flags.js';
import { DEFAULT_LIMITS } from '../../src/host/limits.js';
import { effectiveGrants } from '../../src/manifest/effective.js';
import { OPEN_POLICY, parsePolicy } from '../../src/manifest/policy.js';
import { ManifestError } from '../../src/manifest/types.js';
import { DirHandle } from '../../src/wasi/handles.js';
import { createWasi } from '../../src/wasi/wasi.js';
import { ERRNO } from '../../src/wasi/constants.js';
import { RIGHTS_ALL } from '../../src/wasi/rights.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'capsa-effective-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function problems(text: string, policyText = ''): string[] {
  try {
    effectiveGrants(text, { file: 'm.yaml', policy: parsePolicy(policyText, 'p.yaml', '/'), defaults: DEFAULT_LIMITS, baseDir: tmp });
  } catch (e) {
    if (e instanceof ManifestError) return e.message.split('\n');
    throw e;
  }
  throw new Error('accepted');
}

describe('effectiveGrants: every problem in one round, each at file:line:col', () => {
  it('a schema error, a policy excess and an unreadable Casper grant come together', () => {
    const text = [
      'args: [a]',
      'limits: { wall: 30s, memry: 1MiB }',
      'dirs:',
      '  - { guest: /data, source: memory, rights: [rpath, wpath] }',
      'casper:',
      '  system.dns: { types: [SIDEWAYS] }',
      '',
    ].join('\n');
    expect(problems(text, 'limits: { wall: 5s }\ndirs:\n  - { source: memory, rights: rpath }\ncasper: { system.dns: {} }\n')).toEqual([
      'm.yaml:2:22: limits.memry: unknown limit "memry" (did you mean "memory"?); limits are wall, cpu, memory, output, fds, files',
      "m.yaml:2:17: limits.wall: 30 s exceeds the policy's maximum 5 s",
      expect.stringMatching(/^m\.yaml:4:5: dirs\[0\] \(\/data\): CAP_.* exceed the policy \(allowed: rpath\)$/),
      expect.stringMatching(/^m\.yaml:6:15: casper\.system\.dns: .*SIDEWAYS/),
    ]);
  });

  it('the API and the CLI get the same: POST /v1/runs reads with it too (policy problems are marked)', () => {
    try {
      effectiveGrants('limits: { wall: 30s }\n', { file: 'manifest', policy: parsePolicy('limits: { wall: 5s }'), defaults: DEFAULT_LIMITS, baseDir: tmp });
      throw new Error('accepted');
    } catch (e) {
      expect((e as ManifestError).problems).toEqual([{ line: 1, col: 17, path: '', message: "limits.wall: 30 s exceeds the policy's maximum 5 s", policy: true }]);
    }
  });

  it('a policy is read by the manifest reader: an alias bomb and deep nesting are refused', () => {
    const names = Array.from({ length: 120 }, (_, i) => `n${i}: *a`).join(', ');
    expect(() => parsePolicy(`limits: &a { wall: 1s }\ncasper:\n  system.sysctl:\n    names: { ${names} }\n`)).toThrow(/more than 100 aliases/);
    expect(() => parsePolicy(`limits: ${'['.repeat(100)}${']'.repeat(100)}`)).toThrow(/nested deeper than 64 levels/);
  });
});

describe('--dir is parsed strictly', () => {
  it.each([
    ['data::/data:RO', /the mode is written ":ro", in lower case/],
    ['data::ro', /the guest path "ro" is relative/],
    ['data::/data::ro', /has a ":"; the only mode is ":ro"/],
    ['data::data', /the guest path "data" is relative; it must be absolute/],
    ['data::/data/../etc', /contains "\.\."/],
    ['data::/data:rw', /has a ":"/],
    ['::/data', /HOST is missing/],
    ['data::', /GUEST is missing/],
    ['data::ro:ro', /relative/],
  ])('%s is refused', (spec, message) => {
    expect(() => parseDir(spec)).toThrow(UsageError);
    expect(() => parseDir(spec)).toThrow(message);
  });

  it('a host directory that is missing is named as missing, not as "not a directory"', () => {
    expect(hostDirProblem(path.join(tmp, 'nope'))).toBe(`${path.join(tmp, 'nope')} does not exist`);
    fs.writeFileSync(path.join(tmp, 'file'), '');
    expect(hostDirProblem(path.join(tmp, 'file'))).toBe(`${path.join(tmp, 'file')} is not a directory`);
    expect(hostDirProblem(tmp)).toBeUndefined();
  });

  it('the well-formed ones read as they say', () => {
    expect(parseDir('./data::/data:ro')).toEqual({ host: './data', guest: '/data', readonly: true });
    expect(parseDir('/srv/x::/x/./y/')).toEqual({ host: '/srv/x', guest: '/x/y', readonly: false });
    expect(parseDir('/srv/x')).toEqual({ host: '/srv/x', guest: '/srv/x', readonly: false });
  });
});

describe('a read-only grant is a read-only mount: the EROFS backstop beneath the rights check', () => {
  it(':ro on the command line and rights that write nothing in a manifest both reach the fd table as readonly', () => {
    fs.mkdirSync(path.join(tmp, 'ro'), { recursive: true });
    const viaFlag = dirGrant(parseDir(`${tmp}/ro::/data:ro`));
    const viaManifest = effectiveGrants(`dirs:\n  - { guest: /data, source: ${tmp}/ro, rights: [CAP_READ, CAP_LOOKUP] }\n`,
      { file: 'm.yaml', policy: OPEN_POLICY, defaults: DEFAULT_LIMITS, baseDir: tmp }).request.dirs![0]!;
    const writable = dirGrant(parseDir(`${tmp}/ro::/data`));
    for (const grant of [viaFlag, viaManifest]) {
      expect(grant.readonly).toBe(true);
      // The rights check bypassed: the fd's rights widened to everything, the mount itself refuses.
      const wasi = createWasi({ preopens: [{ ...grant, rights: { base: RIGHTS_ALL, inheriting: RIGHTS_ALL } }] });
      const dir = (wasi.context.fds.peek(3)!.handle as DirHandle).dir;
      expect(() => dir.mkdir('made')).toThrow(expect.objectContaining({ errno: ERRNO.ROFS }));
      expect(fs.existsSync(path.join(tmp, 'ro', 'made'))).toBe(false);
    }
    expect(writable.readonly).toBe(false);
    const wasi = createWasi({ preopens: [writable] });
    (wasi.context.fds.peek(3)!.handle as DirHandle).dir.mkdir('made');
    expect(fs.existsSync(path.join(tmp, 'ro', 'made'))).toBe(true);
  });
});

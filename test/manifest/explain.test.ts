/** explainRefusals: each refused decision in the manifest's terms (what was missing, which line grants it). */
import { describe, expect, it } from 'vitest';
import type { AuditEvent } from '../../src/host/result.js';
import { explainRefusals } from '../../src/manifest/explain.js';

let seq = 0;
const ev = (e: Partial<AuditEvent>): AuditEvent => ({ seq: seq++, t: 0, call: 'fd_read', fd: 3, rightsNeeded: [], rightsHeld: [], decision: 'denied', errno: 76, ...e });

const TWO_DIRS = `dirs:
  - { guest: /in, source: memory, rights: rpath }
  - { guest: /out, source: memory, rights: [CAP_LOOKUP, CAP_CREATE] }
`;

describe('explainRefusals', () => {
  it('traces a descriptor to the directory it was opened through (audit: all) and names that entry\'s line', () => {
    seq = 0;
    const events = [
      ev({ call: 'path_open', fd: 4, path: 'x', decision: 'allowed', errno: 0, openedFd: 5 }),
      ev({ call: 'fd_write', fd: 5, rightsNeeded: ['CAP_WRITE'], rightsHeld: ['CAP_READ'] }),
    ];
    const [allowed, refused] = explainRefusals(TWO_DIRS, events);
    expect(allowed).toBeUndefined();
    expect(refused).toMatchObject({ missing: ['CAP_WRITE'], line: 3, col: 5, path: 'dirs[1]', grant: 'rights: [CAP_LOOKUP, CAP_CREATE, CAP_WRITE]' });
    expect(refused!.note).toContain('opened through /out');
  });

  it('does not guess between directories when the audit did not record the open', () => {
    seq = 0;
    const [r] = explainRefusals(TWO_DIRS, [ev({ fd: 7, rightsNeeded: ['CAP_READ'] })]);
    expect(r).toMatchObject({ missing: ['CAP_READ'], path: 'dirs', line: 2 });
    expect(r!.grant).toBeUndefined();
    expect(r!.note).toContain('audit: all');
  });

  it('names the directory\'s own rights for a refusal on its descriptor', () => {
    seq = 0;
    const [r] = explainRefusals(TWO_DIRS, [ev({ call: 'path_create_directory', fd: 3, path: 'd', rightsNeeded: ['CAP_MKDIRAT'], rightsHeld: ['CAP_LOOKUP'] })]);
    expect(r).toMatchObject({ missing: ['CAP_MKDIRAT'], line: 2, path: 'dirs[0]', grant: 'rights: [rpath, CAP_MKDIRAT]' });
    expect(r!.note).toContain('the directory /in (fd 3)');
  });

  it('starts again with each attempt of a retried run', () => {
    seq = 0;
    const first = [ev({ call: 'path_open', fd: 4, decision: 'allowed', errno: 0, openedFd: 5 })];
    seq = 0;
    const second = [ev({ fd: 5, rightsNeeded: ['CAP_WRITE'] })];
    const [, r] = explainRefusals(TWO_DIRS, [...first, ...second]);
    // fd 5 of the second attempt is not the first attempt's /out file.
    expect(r).toMatchObject({ path: 'dirs' });
  });

  it('names a Casper service that is not granted, or one whose grant is too narrow', () => {
    seq = 0;
    const text = 'casper:\n  system.grp: {}\n  system.pwd: { users: [daemon] }\n';
    const [none, missing, narrow] = explainRefusals(text, [
      ev({ call: 'core.casper.open', path: 'core.casper' }),
      ev({ call: 'system.dns.open', path: 'system.dns' }),
      ev({ call: 'system.pwd.limit_set', path: 'system.pwd', fd: 4 }),
    ]);
    expect(none).toMatchObject({ missing: ['a Casper service'], path: 'casper' });
    expect(missing).toMatchObject({ missing: ['system.dns'], path: 'casper', line: 2, grant: 'casper: { system.dns: {} }' });
    expect(narrow).toMatchObject({ missing: ['casper.system.pwd limits'], path: 'casper.system.pwd', line: 3 });
    expect(narrow!.note).toContain('limit_set');
  });

  it('points stdio refusals at pledge, and says when no right was missing', () => {
    seq = 0;
    const [stdio, none] = explainRefusals('pledge: [rpath]\n', [
      ev({ call: 'fd_write', fd: 1, rightsNeeded: ['CAP_WRITE'], rightsHeld: [] }),
      ev({ call: 'path_open', fd: 3, rightsNeeded: ['CAP_LOOKUP'], rightsHeld: ['CAP_LOOKUP'], errno: 44, message: 'No such file' }),
    ]);
    expect(stdio).toMatchObject({ missing: ['CAP_WRITE'], path: 'pledge', line: 1 });
    expect(none).toMatchObject({ missing: [], line: 0, note: 'No such file' });
  });

  it('reads a manifest with problems as far as it can (the run was checked when it was made)', () => {
    seq = 0;
    const [r] = explainRefusals('{{{', [ev({ fd: 3, rightsNeeded: ['CAP_READ'] })]);
    expect(r).toMatchObject({ missing: ['CAP_READ'] });
  });
});

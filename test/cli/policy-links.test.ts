/**
 * Issue 18, item 1: the operator's policy judges host paths where they really are. A manifest (or a
 * cloudabi-run document) that reaches outside the allowed directory through a symlink is refused,
 * naming the link, whether the link was there before or a guest left it behind in an earlier run.
 *
 * Layout (BASE is a fresh temporary directory):
 *   BASE/host/allowed/ok.txt     what the policy allows (rpath, or writable for the first run)
 *   BASE/secret/s.txt            what no run may read
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const SECRET = 'TOP SECRET host data';
const guest = (name: string) => path.join(REPO, 'guests/build', `${name}.wasm`);
const capsa = (args: string[]) =>
  spawnSync(process.execPath, [path.join(REPO, 'bin/capsa.js'), ...args], { cwd: base, encoding: 'utf8', timeout: 30_000 });

let base: string;
let allowed: string;
beforeEach(() => {
  base = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'capsa-policy-links-')));
  allowed = path.join(base, 'host', 'allowed');
  fs.mkdirSync(allowed, { recursive: true });
  fs.writeFileSync(path.join(allowed, 'ok.txt'), 'fine\n');
  fs.mkdirSync(path.join(base, 'secret'));
  fs.writeFileSync(path.join(base, 'secret', 's.txt'), SECRET + '\n');
  fs.writeFileSync(path.join(base, 'p.yaml'), 'dirs:\n  - { source: ./host/allowed, rights: [rpath, wpath, cpath] }\n');
});
afterEach(() => fs.rmSync(base, { recursive: true, force: true }));

/** A manifest mounting `source` (relative to BASE) read-only at /d. */
function manifest(name: string, source: string): string {
  fs.writeFileSync(path.join(base, name), `dirs:\n  - { guest: /d, source: ${source}, rights: rpath }\n`);
  return name;
}

// Each test runs the CLI one to three times; a busy machine needs the room.
describe('a source that is or passes through a symlink below the allowed directory', { timeout: 90_000 }, () => {
  it('control: the allowed directory itself is mounted and read', () => {
    const r = capsa(['run', '--manifest', manifest('m.yaml', './host/allowed'), '--policy', 'p.yaml', guest('cat'), '--', '/d/ok.txt']);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('fine\n');
    expect(r.status).toBe(0);
  });

  it('(a) a link there before the run (allowed/link -> ../../secret) is refused, naming the link', () => {
    fs.symlinkSync('../../secret', path.join(allowed, 'link'));
    const r = capsa(['run', '--manifest', manifest('m.yaml', './host/allowed/link'), '--policy', 'p.yaml', guest('cat'), '--', '/d/s.txt']);
    expect(r.stdout).not.toContain(SECRET);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`dirs[0] (/d): source ${allowed}/link is not allowed by the policy: ${allowed}/link is a symbolic link (-> ../../secret)`);
    expect(r.stderr).toMatch(/give the real path of the directory, or remove the link/);
  });

  it('(b) --argdata !file through the link is refused; a file in the allowed directory is given', () => {
    fs.symlinkSync('../../secret', path.join(allowed, 'link'));
    fs.writeFileSync(path.join(base, 'a.yaml'), 'secret: !file { path: host/allowed/link/s.txt }\n');
    const r = capsa(['run', '--argdata', 'a.yaml', '--policy', 'p.yaml', guest('argwalk')]);
    expect(r.stdout).not.toContain(SECRET);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`argdata: host path ${allowed}/link/s.txt is not allowed by the policy: ${allowed}/link is a symbolic link (-> ../../secret)`);
    // Control.
    fs.writeFileSync(path.join(base, 'a.yaml'), 'ok: !file { path: host/allowed/ok.txt }\ndir: !file { path: host/allowed }\n');
    const ok = capsa(['run', '--argdata', 'a.yaml', '--policy', 'p.yaml', guest('argwalk')]);
    expect(ok.stderr).toBe('');
    expect(ok.status).toBe(0);
    expect(ok.stdout).toMatch(/str "ok"\n\s+fd 3 rights 0x[0-9a-f]+\n\s+> fine\n/);
    expect(ok.stdout).toMatch(/str "dir"\n\s+fd 4 rights/);
  });
});

describe('(c) the two-run attack: a link left by a first run, mounted by a second', { timeout: 90_000 }, () => {
  const escape = () => {
    fs.mkdirSync(path.join(base, 'escape'));
    fs.writeFileSync(path.join(base, 'escape', 's.txt'), SECRET + '\n');
  };

  it('first run: the link cannot be moved or hard-linked to where it leads outside (rule 5)', () => {
    escape();
    fs.writeFileSync(path.join(base, 'w.yaml'), 'dirs:\n  - { guest: /w, source: ./host/allowed, rights: [rpath, wpath, cpath] }\n');
    const r = capsa(['run', '--manifest', 'w.yaml', '--policy', 'p.yaml', guest('fsops'), '--',
      'mkdir', '/w/u', 'mkdir', '/w/u/a', 'mkdir', '/w/u/a/b',
      'symlink', '../../../escape', '/w/u/a/b/l', // inside where it is: u/a/b/../../.. is the mount's root
      'rename', '/w/u/a/b/l', '/w/u/l',
      'link', '/w/u/a/b/l', '/w/u/l2',
    ]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('symlink ../../../escape /w/u/a/b/l: ok\n');
    expect(r.stdout).toMatch(/^rename \/w\/u\/a\/b\/l \/w\/u\/l: errno=76 /m);
    expect(r.stdout).toMatch(/^link \/w\/u\/a\/b\/l \/w\/u\/l2: errno=76 /m);
    expect(fs.readdirSync(path.join(allowed, 'u')).sort()).toEqual(['a']);
  });

  it('second run: a link that leads outside is refused, however it got there', () => {
    escape();
    // A guest may still move a whole directory holding a link (rule 5 checks the links it makes,
    // not every link below a directory it moves): u/a/b/l becomes v/l, which leads to BASE/escape.
    fs.writeFileSync(path.join(base, 'w.yaml'), 'dirs:\n  - { guest: /w, source: ./host/allowed, rights: [rpath, wpath, cpath] }\n');
    const first = capsa(['run', '--manifest', 'w.yaml', '--policy', 'p.yaml', guest('fsops'), '--',
      'mkdir', '/w/u', 'mkdir', '/w/u/a', 'mkdir', '/w/u/a/b', 'symlink', '../../../escape', '/w/u/a/b/l', 'rename', '/w/u/a/b', '/w/v']);
    expect(first.stdout).toContain('rename /w/u/a/b /w/v: ok\n');
    expect(fs.realpathSync(path.join(allowed, 'v', 'l'))).toBe(path.join(base, 'escape'));
    // And a link made outside capsa (or by an older one) where the attack put it.
    fs.symlinkSync('../../../escape', path.join(allowed, 'u', 'l'));
    for (const [source, link] of [['./host/allowed/v/l', 'v/l'], ['./host/allowed/u/l', 'u/l']] as const) {
      const r = capsa(['run', '--manifest', manifest('m.yaml', source), '--policy', 'p.yaml', guest('cat'), '--', '/d/s.txt']);
      expect(r.stdout).not.toContain(SECRET);
      expect(r.status).toBe(1);
      expect(r.stderr).toContain(`${allowed}/${link} is a symbolic link (-> ../../../escape)`);
    }
  });
});

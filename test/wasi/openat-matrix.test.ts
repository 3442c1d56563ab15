/**
 * google/capsicum-test openat.cc `CheckPolicing`, ported to capsa: the symlink / ".." matrix of a
 * strictly-relative lookup (capsicum-casper.md §1.6), run on an in-memory tree and on a host mount,
 * through path_open and path_filestat_get, before and after cap_enter.
 *
 * Layout (TOPDIR is the preopen, fd 3; SUBDIR is opened through it as a second directory fd):
 *
 *   topfile                      subdir/bottomfile
 *   symlink.samedir      -> topfile
 *   symlink.down         -> subdir/bottomfile
 *   subdir/symlink.absolute_in   -> <abs TOPDIR>/topfile
 *   symlink.absolute_out -> /etc/passwd
 *   symlink.relative_in  -> ../<basename TOPDIR>/topfile   (leaves, comes back: still refused)
 *   symlink.relative_out -> ../../etc/passwd
 *   subdir/symlink.up    -> ../topfile
 *   dsymlink.samedir     -> ./            dsymlink.down -> subdir/
 *   subdir/dsymlink.absolute_in -> <abs TOPDIR>/
 *   dsymlink.absolute_out -> /etc/       dsymlink.relative_in -> ../<basename>/
 *   dsymlink.relative_out -> ../../etc/  subdir/dsymlink.up -> ../
 *
 * Every refusal is asserted as exactly ENOTCAPABLE (not ENOENT), and each refused link is shown to
 * exist (path_readlink returns its target) and, on the host, to be a real way out when followed
 * natively, so a refusal cannot pass because a fixture is missing.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { ERRNO, FILETYPE, LIMITS, LOOKUPFLAGS, OFLAGS } from '../../src/wasi/constants.js';
import type { Decision } from '../../src/wasi/fdtable.js';
import { R } from '../../src/wasi/rights.js';
import { harness, type Harness } from '../helpers/harness.js';

const TOP_CONTENT = 'topfile contents\n';
const BOTTOM_CONTENT = 'bottomfile contents, a little longer\n';
const C_CONTENT = 'a/b/c\n';

/** Read-only rights for every open of the matrix (capsicum-test opens with O_RDONLY). */
const RO = R.fd_read | R.fd_seek | R.fd_tell | R.fd_filestat_get | R.fd_readdir | R.path_open | R.path_filestat_get | R.path_readlink;

/** The symlinks of the layout: [path under TOPDIR, target], given TOPDIR's absolute path. */
function layoutLinks(topAbs: string): [string, string][] {
  const base = path.posix.basename(topAbs);
  return [
    ['symlink.samedir', 'topfile'],
    ['symlink.down', 'subdir/bottomfile'],
    ['subdir/symlink.absolute_in', `${topAbs}/topfile`],
    ['symlink.absolute_out', '/etc/passwd'],
    ['symlink.relative_in', `../${base}/topfile`],
    ['symlink.relative_out', '../../etc/passwd'],
    ['subdir/symlink.up', '../topfile'],
    ['dsymlink.samedir', './'],
    ['dsymlink.down', 'subdir/'],
    ['subdir/dsymlink.absolute_in', `${topAbs}/`],
    ['dsymlink.absolute_out', '/etc/'],
    ['dsymlink.relative_in', `../${base}/`],
    ['dsymlink.relative_out', '../../etc/'],
    ['subdir/dsymlink.up', '../'],
    // Beyond capsicum-test: loops and chains for the ELOOP limit.
    ['loop.a', 'loop.b'],
    ['loop.b', 'loop.a'],
    ['loop.self', 'loop.self'],
    ...chain('chain39', 39),
    ...chain('chain40', 40),
    ...chain('chain41', 41),
  ];
}

/** n links: NAME.0 -> NAME.1 -> ... -> NAME.(n-1) -> topfile; opening NAME.0 expands n links. */
function chain(name: string, n: number): [string, string][] {
  const out: [string, string][] = [];
  for (let i = 0; i < n; i++) out.push([`${name}.${i}`, i === n - 1 ? 'topfile' : `${name}.${i + 1}`]);
  return out;
}

interface Fixture {
  h: Harness;
  /** TOPDIR, the preopen. */
  dir: number;
  /** SUBDIR, opened through TOPDIR. */
  sub: number;
  /** TOPDIR's absolute path: the guest path for memfs, the real host path for a host mount. */
  topAbs: string;
  /** Host path of TOPDIR on a host mount. */
  hostTop?: string;
  audit: Decision[];
  cleanup(): void;
}

type Backend = 'memfs' | 'hostfs';
type Mode = 'plain' | 'capability mode';

function openSubdir(h: Harness, dir: number): number {
  const [e, sub] = h.open(dir, 'subdir', { oflags: OFLAGS.DIRECTORY, base: RO, inheriting: RO });
  if (e !== ERRNO.SUCCESS) throw new Error(`fixture: cannot open subdir: errno ${e}`);
  return sub;
}

function capEnter(h: Harness): void {
  const capsicum = h.wasi.getImportObject()['capsicum'] as Record<string, () => number>;
  const rc = capsicum['cap_enter']!();
  if (rc !== ERRNO.SUCCESS) throw new Error(`cap_enter failed: ${rc}`);
}

function makeFixture(backend: Backend, mode: Mode): Fixture {
  const audit: Decision[] = [];
  const auditor = { level: 'denied' as const, record: (d: Decision) => { audit.push(d); } };
  let h: Harness;
  let topAbs: string;
  let hostTop: string | undefined;
  let cleanup = () => {};
  if (backend === 'memfs') {
    topAbs = '/top';
    h = harness({
      preopens: [{ guest: topAbs, memory: { topfile: TOP_CONTENT, subdir: { bottomfile: BOTTOM_CONTENT }, a: { b: { c: C_CONTENT } } } }],
      auditor,
    });
    // memfs creates any target; only following is confined.
    for (const [link, target] of layoutLinks(topAbs)) {
      const t = h.put(target);
      const l = h.put(link);
      const rc = h.call.path_symlink!(t.ptr, t.len, 3, l.ptr, l.len);
      if (rc !== ERRNO.SUCCESS) throw new Error(`fixture: path_symlink ${link} -> ${target}: errno ${rc}`);
    }
  } else {
    // Directly in the temp dir, as capsicum-test's /tmp/cap_topdir: with /tmp as os.tmpdir(),
    // ../../etc/passwd from TOPDIR really is /etc/passwd.
    hostTop = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'capsa-openat-')));
    topAbs = hostTop;
    fs.writeFileSync(path.join(hostTop, 'topfile'), TOP_CONTENT);
    fs.mkdirSync(path.join(hostTop, 'subdir'));
    fs.writeFileSync(path.join(hostTop, 'subdir', 'bottomfile'), BOTTOM_CONTENT);
    fs.mkdirSync(path.join(hostTop, 'a', 'b'), { recursive: true });
    fs.writeFileSync(path.join(hostTop, 'a', 'b', 'c'), C_CONTENT);
    // capsa refuses to create links that leave the mount (path_symlink -> 76), so the host makes them.
    for (const [link, target] of layoutLinks(topAbs)) fs.symlinkSync(target, path.join(hostTop, link));
    h = harness({ preopens: [{ guest: '/top', host: hostTop }], auditor });
    const dirToRemove = hostTop;
    cleanup = () => fs.rmSync(dirToRemove, { recursive: true, force: true });
  }
  if (mode === 'capability mode') capEnter(h);
  const sub = openSubdir(h, 3);
  const fixture: Fixture = { h, dir: 3, sub, topAbs, audit, cleanup };
  if (hostTop !== undefined) fixture.hostTop = hostTop;
  return fixture;
}

type Expect = 'top' | 'bottom' | 'subdir' | 'c' | 'topdir';

/** The identity (ino) and kind of what a case should reach, read without following anything. */
function reference(f: Fixture, what: Expect): { ino: bigint; filetype: number; size: bigint } {
  const p = { top: 'topfile', bottom: 'subdir/bottomfile', subdir: 'subdir', c: 'a/b/c', topdir: '.' }[what];
  const s = statAt(f, f.dir, p, false);
  if (s.errno !== ERRNO.SUCCESS) throw new Error(`reference ${p}: errno ${s.errno}`);
  return s;
}

function statAt(f: Fixture, fd: number, p: string, follow: boolean): { errno: number; ino: bigint; filetype: number; size: bigint } {
  const { h } = f;
  const s = h.put(p);
  const buf = h.alloc(64);
  const errno = h.call.path_filestat_get!(fd, follow ? LOOKUPFLAGS.SYMLINK_FOLLOW : 0, s.ptr, s.len, buf);
  return { errno, ino: h.u64(buf + 8), filetype: h.bytes(buf + 16, 1)[0]!, size: h.u64(buf + 32) };
}

type Op = 'path_open' | 'path_filestat_get';

/** Runs one lookup; on success checks that it reached `what`. Returns the errno. */
function attempt(f: Fixture, op: Op, fd: number, p: string, follow: boolean, what?: Expect): number {
  const { h } = f;
  if (op === 'path_filestat_get') {
    const s = statAt(f, fd, p, follow);
    if (s.errno === ERRNO.SUCCESS && what !== undefined) {
      const ref = reference(f, what);
      expect({ ino: s.ino, filetype: s.filetype }).toEqual({ ino: ref.ino, filetype: ref.filetype });
    }
    return s.errno;
  }
  const [errno, nfd] = h.open(fd, p, { base: RO, inheriting: RO, follow });
  if (errno !== ERRNO.SUCCESS) return errno;
  try {
    if (what !== undefined) {
      const [e, st] = h.fdstat(nfd);
      expect(e).toBe(ERRNO.SUCCESS);
      if (what === 'subdir' || what === 'topdir') {
        expect(st.filetype).toBe(FILETYPE.DIRECTORY);
        const buf = h.alloc(64);
        expect(h.call.fd_filestat_get!(nfd, buf)).toBe(ERRNO.SUCCESS);
        expect(h.u64(buf + 8)).toBe(reference(f, what).ino);
      } else {
        expect(st.filetype).toBe(FILETYPE.REGULAR_FILE);
        const content = { top: TOP_CONTENT, bottom: BOTTOM_CONTENT, c: C_CONTENT }[what];
        expect(h.read(nfd)).toEqual([ERRNO.SUCCESS, content]);
      }
    }
  } finally {
    expect(h.call.fd_close!(nfd)).toBe(ERRNO.SUCCESS);
  }
  return errno;
}

type DirSel = 'dir' | 'sub';
const OK_CASES: [DirSel, string, Expect][] = [
  ['dir', 'topfile', 'top'],
  ['dir', 'subdir/bottomfile', 'bottom'],
  ['sub', 'bottomfile', 'bottom'],
  ['sub', '.', 'subdir'],
  ['dir', 'subdir/../topfile', 'top'],
  ['dir', 'symlink.samedir', 'top'],
  ['dir', 'symlink.down', 'bottom'],
  ['dir', 'dsymlink.samedir/topfile', 'top'],
  ['dir', 'dsymlink.down/bottomfile', 'bottom'],
];

/**
 * Controls beyond capsicum-test's list: the links refused from SUBDIR resolve when the walk came
 * down through subdir first (their ".." returns to a directory this lookup walked), so their
 * refusal from SUBDIR is the ".." rule and nothing else.
 */
const CONTROL_CASES: [DirSel, string, Expect][] = [
  ['dir', 'subdir/symlink.up', 'top'],
  ['dir', 'subdir/dsymlink.up/topfile', 'top'],
  ['dir', 'subdir/dsymlink.up/subdir/bottomfile', 'bottom'],
  ['dir', 'dsymlink.down/symlink.up', 'top'],
  ['dir', 'subdir/../subdir/../topfile', 'top'],
  ['dir', 'a/./b//c', 'c'],
  ['dir', './a/b/../b/c', 'c'],
  ['dir', 'chain39.0', 'top'],
  ['dir', 'chain40.0', 'top'],
  ['dir', '.', 'topdir'],
  ['dir', 'subdir/', 'subdir'],
  ['dir', 'dsymlink.down', 'subdir'],
];

const NOTCAPABLE_CASES: [DirSel, string][] = [
  ['sub', '../topfile'],
  ['sub', '../subdir/bottomfile'],
  ['sub', '..'],
  ['dir', 'subdir/../../etc/passwd'],
  ['dir', 'symlink.absolute_out'],
  ['dir', 'symlink.relative_in'],
  ['dir', 'symlink.relative_out'],
  ['sub', 'symlink.absolute_in'],
  ['sub', 'symlink.up'],
  ['dir', 'dsymlink.absolute_out/passwd'],
  ['dir', 'dsymlink.relative_in/topfile'],
  ['dir', 'dsymlink.relative_out/passwd'],
  ['sub', 'dsymlink.absolute_in/topfile'],
  ['sub', 'dsymlink.up/topfile'],
  ['dir', '/etc/passwd'],
  ['sub', '/etc/passwd'],
  // Beyond capsicum-test: ".." at the preopen root in its other spellings, and an absolute
  // target that points back inside is refused even when reached from TOPDIR.
  ['dir', '..'],
  ['dir', './..'],
  ['dir', 'subdir/../..'],
  ['dir', 'subdir/symlink.absolute_in'],
  ['dir', 'subdir/dsymlink.absolute_in/topfile'],
  ['dir', 'dsymlink.samedir/..'],
  ['dir', '../x'],
];

const BACKENDS: Backend[] = ['memfs', 'hostfs'];
const MODES: Mode[] = ['plain', 'capability mode'];
const OPS: Op[] = ['path_open', 'path_filestat_get'];

describe.each(BACKENDS)('CheckPolicing on %s', (backend) => {
  describe.each(MODES)('%s', (mode) => {
    let f: Fixture;
    beforeAll(() => { f = makeFixture(backend, mode); });
    afterAll(() => f?.cleanup());
    const fdOf = (sel: DirSel) => (sel === 'dir' ? f.dir : f.sub);

    it('every symlink of the layout exists with its exact target (path_readlink)', () => {
      for (const [link, target] of layoutLinks(f.topAbs)) {
        const { h } = f;
        const p = h.put(link);
        const buf = h.alloc(512);
        const used = h.alloc(4);
        expect(h.call.path_readlink!(f.dir, p.ptr, p.len, buf, 512, used), link).toBe(ERRNO.SUCCESS);
        expect(h.text(buf, h.u32(used)), link).toBe(target);
      }
    });

    describe.each(OPS)('%s', (op) => {
      it.each(OK_CASES)('OK: (%s, %j)', (sel, p, what) => {
        expect(attempt(f, op, fdOf(sel), p, true, what)).toBe(ERRNO.SUCCESS);
      });

      it.each(CONTROL_CASES)('OK (control): (%s, %j)', (sel, p, what) => {
        expect(attempt(f, op, fdOf(sel), p, true, what)).toBe(ERRNO.SUCCESS);
      });

      it.each(NOTCAPABLE_CASES)('ENOTCAPABLE: (%s, %j)', (sel, p) => {
        const before = f.audit.length;
        expect(attempt(f, op, fdOf(sel), p, true)).toBe(ERRNO.NOTCAPABLE);
        // Each refused escape is one denied decision in the audit trail, naming the path.
        const recorded = f.audit.slice(before);
        expect(recorded).toHaveLength(1);
        expect(recorded[0]).toMatchObject({ call: op, fd: fdOf(sel), path: p, decision: 'denied', errno: ERRNO.NOTCAPABLE });
      });
    });

    // Without SYMLINK_FOLLOW (O_NOFOLLOW) a final symlink is not opened. FreeBSD says EMLINK here;
    // capsa answers WASI ELOOP (32), as Linux and the other WASI runtimes do.
    it.each([['symlink.samedir'], ['symlink.down']])('O_NOFOLLOW: (dir, %j) -> ELOOP', (p) => {
      expect(attempt(f, 'path_open', f.dir, p, false)).toBe(ERRNO.LOOP);
      // ...and it is the link, not its target, that a no-follow stat sees.
      const s = statAt(f, f.dir, p, false);
      expect(s.errno).toBe(ERRNO.SUCCESS);
      expect(s.filetype).toBe(FILETYPE.SYMBOLIC_LINK);
      expect(statAt(f, f.dir, p, true).filetype).toBe(FILETYPE.REGULAR_FILE);
    });

    it('O_NOFOLLOW only concerns the last component: (dir, "dsymlink.down/bottomfile") opens', () => {
      expect(attempt(f, 'path_open', f.dir, 'dsymlink.down/bottomfile', false, 'bottom')).toBe(ERRNO.SUCCESS);
    });

    it.each(OPS)('%s: a symlink loop is ELOOP', (op) => {
      expect(attempt(f, op, f.dir, 'loop.a', true)).toBe(ERRNO.LOOP);
      expect(attempt(f, op, f.dir, 'loop.self', true)).toBe(ERRNO.LOOP);
      expect(attempt(f, op, f.dir, 'loop.b/x', false)).toBe(ERRNO.LOOP);
    });

    it.each(OPS)(`%s: a chain of 41 links is ELOOP while 39 and 40 resolve (limit ${LIMITS.symlinks})`, (op) => {
      expect(attempt(f, op, f.dir, 'chain39.0', true, 'top')).toBe(ERRNO.SUCCESS);
      expect(attempt(f, op, f.dir, 'chain40.0', true, 'top')).toBe(ERRNO.SUCCESS);
      expect(attempt(f, op, f.dir, 'chain41.0', true)).toBe(ERRNO.LOOP);
      // Entering the same chain one link further along resolves: it is the count, not the chain.
      expect(attempt(f, op, f.dir, 'chain41.1', true, 'top')).toBe(ERRNO.SUCCESS);
    });

    it.each(OPS)('%s: malformed paths', (op) => {
      expect(attempt(f, op, f.dir, 'topfile/.', true), 'file/.').toBe(ERRNO.NOTDIR);
      expect(attempt(f, op, f.dir, 'topfile/', true), 'trailing slash on a file').toBe(ERRNO.NOTDIR);
      expect(attempt(f, op, f.dir, 'symlink.samedir/', true), 'trailing slash on a link to a file').toBe(ERRNO.NOTDIR);
      expect(attempt(f, op, f.dir, 'topfile/x', true), 'file as a directory').toBe(ERRNO.NOTDIR);
      expect(attempt(f, op, f.dir, '', true), 'empty path').toBe(ERRNO.NOENT);
      expect(attempt(f, op, f.dir, 'top\0file', true), 'NUL in the path').toBe(ERRNO.INVAL);
      expect(attempt(f, op, f.dir, 'subdir\0/../../etc/passwd', true), 'NUL before an escape').toBe(ERRNO.INVAL);
      expect(attempt(f, op, f.dir, 'nonexistent', true)).toBe(ERRNO.NOENT);
      expect(attempt(f, op, f.dir, 'nonexistent/topfile', true)).toBe(ERRNO.NOENT);
    });

    it.each(OPS)(`%s: a path of ${LIMITS.path} bytes is looked up, one of ${LIMITS.path + 1} is ENAMETOOLONG`, (op) => {
      const max = './'.repeat(LIMITS.path / 2);
      expect(Buffer.byteLength(max)).toBe(LIMITS.path);
      expect(attempt(f, op, f.dir, max, true, 'topdir')).toBe(ERRNO.SUCCESS);
      expect(attempt(f, op, f.dir, max + '.', true)).toBe(ERRNO.NAMETOOLONG);
      expect(attempt(f, op, f.dir, 'a'.repeat(LIMITS.path + 1), true)).toBe(ERRNO.NAMETOOLONG);
    });
  });
});

describe('host fixtures are real ways out when followed natively', () => {
  // The control for the host rows above: without capsa's resolver these links do leave TOPDIR.
  let f: Fixture;
  beforeAll(() => { f = makeFixture('hostfs', 'plain'); });
  afterAll(() => f?.cleanup());

  it('relative_in, absolute_in and up reach TOPDIR/topfile through the host kernel', () => {
    const top = f.hostTop!;
    expect(fs.readFileSync(path.join(top, 'symlink.relative_in'), 'utf8')).toBe(TOP_CONTENT);
    expect(fs.readFileSync(path.join(top, 'subdir', 'symlink.absolute_in'), 'utf8')).toBe(TOP_CONTENT);
    expect(fs.readFileSync(path.join(top, 'dsymlink.relative_in', 'topfile'), 'utf8')).toBe(TOP_CONTENT);
    expect(fs.realpathSync(path.join(top, 'symlink.relative_in'))).toBe(path.join(top, 'topfile'));
  });

  it.runIf(fs.existsSync('/etc/passwd'))('absolute_out reaches /etc/passwd through the host kernel', () => {
    const top = f.hostTop!;
    expect(fs.realpathSync(path.join(top, 'symlink.absolute_out'))).toBe(fs.realpathSync('/etc/passwd'));
    expect(fs.realpathSync(path.join(top, 'dsymlink.absolute_out', 'passwd'))).toBe(fs.realpathSync('/etc/passwd'));
  });
});

/**
 * Manifests for people: grantRows/grantTable (what `capsa manifest check` prints) and
 * manifestToYaml (what `capsa manifest from-flags` prints), which parseManifest must read back.
 */
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { DEFAULT_LIMITS } from '../../src/host/limits.js';
import { grantRows, grantTable, manifestToYaml } from '../../src/manifest/describe.js';
import { parseManifest } from '../../src/manifest/parse.js';
import { applyPolicy, OPEN_POLICY } from '../../src/manifest/policy.js';
import type { ArgNode, Manifest } from '../../src/manifest/types.js';
import { PROMISES } from '../../src/manifest/vocabulary.js';
import { capNames, COMPOSITE_RIGHTS, R, RIGHTS_TABLE, TYPE_RIGHTS } from '../../src/wasi/rights.js';

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

const T = '%TAG ! tag:nuxi.nl,2015:cloudabi/\n---\n';
const open = (src: string) => applyPolicy(parseManifest(src, 'm.yaml'), OPEN_POLICY, DEFAULT_LIMITS, 'm.yaml', '/w');

const IN_BASE = ['CAP_FADVISE', 'CAP_LOOKUP', 'CAP_READDIR', 'CAP_READLINKAT', 'CAP_FSTATAT', 'CAP_FSTAT', 'CAP_EVENT'];
const RPATH = ['CAP_READ', 'CAP_SEEK_SET', 'CAP_SEEK_TELL', 'CAP_FADVISE', 'CAP_LOOKUP', 'CAP_READDIR', 'CAP_READLINKAT', 'CAP_FSTATAT', 'CAP_FSTAT', 'CAP_EVENT'];
const OUT_BASE = ['CAP_FSYNC', 'CAP_FADVISE', 'CAP_MKDIRAT', 'CAP_CREATE', 'CAP_LINKAT_SOURCE', 'CAP_LINKAT_TARGET', 'CAP_LOOKUP', 'CAP_READDIR',
  'CAP_READLINKAT', 'CAP_RENAMEAT_SOURCE', 'CAP_RENAMEAT_TARGET', 'CAP_FSTATAT', 'CAP_FTRUNCATEAT', 'CAP_FSTAT', 'CAP_SYMLINKAT', 'CAP_RMDIRAT',
  'CAP_UNLINKFILEAT', 'CAP_EVENT'];
const OUT_INHERITING = ['CAP_FDATASYNC', 'CAP_READ', 'CAP_SEEK_SET', 'CAP_FSYNC', 'CAP_SEEK_TELL', 'CAP_WRITE', 'CAP_FADVISE', 'CAP_FALLOCATE',
  'CAP_MKDIRAT', 'CAP_CREATE', 'CAP_LINKAT_SOURCE', 'CAP_LINKAT_TARGET', 'CAP_LOOKUP', 'CAP_READDIR', 'CAP_READLINKAT', 'CAP_RENAMEAT_SOURCE',
  'CAP_RENAMEAT_TARGET', 'CAP_FSTATAT', 'CAP_FTRUNCATEAT', 'CAP_FSTAT', 'CAP_FTRUNCATE', 'CAP_SYMLINKAT', 'CAP_RMDIRAT', 'CAP_UNLINKFILEAT', 'CAP_EVENT'];

describe('grantRows and grantTable', () => {
  it('the example: stdio, the three directories, then the argdata file, in fd order', () => {
    expect(grantRows(open(EXAMPLE))).toEqual([
      { fd: 0, what: 'stdin', path: '', base: ['CAP_READ', 'CAP_FCNTL', 'CAP_FSTAT', 'CAP_EVENT'], inheriting: [] },
      { fd: 1, what: 'stdout', path: '', base: ['CAP_FCNTL', 'CAP_WRITE', 'CAP_FSTAT', 'CAP_EVENT'], inheriting: [] },
      { fd: 2, what: 'stderr', path: '', base: ['CAP_FCNTL', 'CAP_WRITE', 'CAP_FSTAT', 'CAP_EVENT'], inheriting: [] },
      { fd: 3, what: 'dir (/w/in)', path: '/in', base: IN_BASE, inheriting: RPATH },
      { fd: 4, what: 'dir (/w/out)', path: '/out', base: OUT_BASE, inheriting: OUT_INHERITING },
      { fd: 5, what: 'dir (memory)', path: '/tmp', base: ['CAP_CREATE', 'CAP_LOOKUP'], inheriting: ['CAP_READ', 'CAP_WRITE', 'CAP_CREATE', 'CAP_LOOKUP'], note: 'init-only' },
      { fd: 6, what: 'file (argdata)', path: '/in/words.txt', base: ['CAP_READ', 'CAP_SEEK_SET', 'CAP_SEEK_TELL', 'CAP_FSTAT'], inheriting: [] },
    ]);
  });

  it('the example as a table: rows, limits, services and what each promise expanded to', () => {
    expect(grantTable(open(EXAMPLE)).split('\n')).toEqual([
      'fd  what                 path            rights (base / inheriting)',
      '0   stdin                -               CAP_READ, CAP_FCNTL, CAP_FSTAT, CAP_EVENT',
      '1   stdout               -               CAP_FCNTL, CAP_WRITE, CAP_FSTAT, CAP_EVENT',
      '2   stderr               -               CAP_FCNTL, CAP_WRITE, CAP_FSTAT, CAP_EVENT',
      `3   dir (/w/in)          /in             ${IN_BASE.join(', ')} / ${RPATH.join(', ')}`,
      `4   dir (/w/out)         /out            ${OUT_BASE.join(', ')} / ${OUT_INHERITING.join(', ')}`,
      '5   dir (memory)         /tmp            CAP_CREATE, CAP_LOOKUP / CAP_READ, CAP_WRITE, CAP_CREATE, CAP_LOOKUP  [init-only]',
      '6   file (argdata)       /in/words.txt   CAP_READ, CAP_SEEK_SET, CAP_SEEK_TELL, CAP_FSTAT',
      '',
      'limits: wall 2 s, cpu 1 s, memory 64 MiB, output 1 MiB, fds 64, files 64 MiB',
      'casper: none',
      '',
      'promises:',
      `  rpath: ${RPATH.join(', ')} (look up, read and stat files and directories)`,
      '  wpath: CAP_FDATASYNC, CAP_SEEK_SET, CAP_FSYNC, CAP_SEEK_TELL, CAP_WRITE, CAP_FALLOCATE, CAP_LOOKUP, CAP_FTRUNCATEAT, CAP_FTRUNCATE, CAP_EVENT (write and truncate files)',
      '  cpath: CAP_MKDIRAT, CAP_CREATE, CAP_LINKAT_SOURCE, CAP_LINKAT_TARGET, CAP_LOOKUP, CAP_RENAMEAT_SOURCE, CAP_RENAMEAT_TARGET, CAP_SYMLINKAT, CAP_RMDIRAT, CAP_UNLINKFILEAT (create, rename, link and remove files and directories)',
    ]);
  });

  it('the rows list the single Capsicum names of the masks, in bit order', () => {
    const e = open(EXAMPLE);
    const rows = grantRows(e);
    e.dirs.forEach((d, i) => {
      expect(rows[3 + i]!.base).toEqual(capNames(d.rights.base));
      expect(rows[3 + i]!.inheriting).toEqual(capNames(d.rights.inheriting));
    });
  });

  it('columns stay aligned when a host path is longer than its column', () => {
    const long = '/w/a/rather/long/host/directory/name';
    const lines = grantTable(open(`dirs:\n  - { guest: /data/with/a/long/guest/path, source: memory, rights: rpath }\n  - { guest: /d, source: ${long}, rights: rpath }`)).split('\n');
    const rows = lines.slice(0, lines.indexOf(''));
    // Every row's path column and rights column start where the header's do.
    const pathAt = rows[0]!.indexOf('path'), rightsAt = rows[0]!.indexOf('rights');
    for (const row of rows.slice(1)) {
      expect(row[pathAt - 1]).toBe(' ');
      expect(row[pathAt]).not.toBe(' ');
      expect(row[rightsAt - 1]).toBe(' ');
      expect(row.slice(rightsAt)).toMatch(/^CAP_/);
    }
    expect(rows.some((r) => r.includes(`dir (${long})`))).toBe(true);
  });

  it('an empty manifest: stdio only, the default limits, no services, no promises', () => {
    expect(grantTable(open('')).split('\n')).toEqual([
      'fd  what                 path            rights (base / inheriting)',
      '0   stdin                -               CAP_READ, CAP_FCNTL, CAP_FSTAT, CAP_EVENT',
      '1   stdout               -               CAP_FCNTL, CAP_WRITE, CAP_FSTAT, CAP_EVENT',
      '2   stderr               -               CAP_FCNTL, CAP_WRITE, CAP_FSTAT, CAP_EVENT',
      '',
      'limits: wall 10 s, cpu 10 s, memory 256 MiB, output 1 MiB, fds 64, files 64 MiB',
      'casper: none',
    ]);
  });

  it('pledge narrows the stdio rows and its promises are listed, Casper ones by service', () => {
    const e = open('pledge: [rpath, dns, dpath]\ndirs: [{ guest: /a, source: memory, rights: [fattr, CAP_READ] }]');
    const rows = grantRows(e);
    expect(rows.slice(0, 3).map((r) => r.base)).toEqual([
      ['CAP_READ', 'CAP_FSTAT', 'CAP_EVENT'], ['CAP_FSTAT', 'CAP_EVENT'], ['CAP_FSTAT', 'CAP_EVENT'],
    ]);
    const table = grantTable(e).split('\n');
    expect(table).toContain('3   dir (memory)         /a              CAP_FUTIMESAT, CAP_FUTIMES / CAP_READ, CAP_FUTIMESAT, CAP_FUTIMES');
    expect(table).toContain('casper: system.dns');
    expect(table.slice(table.indexOf('promises:'))).toEqual([
      'promises:',
      '  fattr: CAP_FUTIMESAT, CAP_FUTIMES (change file times (WASI has no modes or owners))',
      `  rpath: ${RPATH.join(', ')} (look up, read and stat files and directories)`,
      '  dns: system.dns (the Casper service system.dns)',
      '  dpath: nothing (special files: WASI has no mknod or mkfifo, so nothing)',
    ]);
  });

  it('argdata files anywhere in the tree get the fds after the directories, in tree order', () => {
    const e = open(`${T}dirs: [{ guest: /d, source: memory, rights: [rpath, wpath] }]
argdata: { a: [!file { path: /d/one }, { b: !file { path: /d/two, rights: [CAP_WRITE] } }], c: !fd stderr }`);
    expect(grantRows(e).slice(3)).toEqual([
      { fd: 3, what: 'dir (memory)', path: '/d', base: expect.any(Array), inheriting: expect.any(Array) },
      { fd: 4, what: 'file (argdata)', path: '/d/one', base: capNames(R.fd_read | R.fd_seek | R.fd_tell | R.fd_filestat_get | R.fd_advise | R.poll_fd_readwrite), inheriting: [] },
      { fd: 5, what: 'file (argdata)', path: '/d/two', base: ['CAP_WRITE'], inheriting: [] },
    ]);
  });
});

describe('manifestToYaml: parseManifest reads it back to the same manifest', () => {
  const roundTrip = (m: Manifest) => parseManifest(manifestToYaml(m), 'again.yaml');
  const withArg = (argdata: ArgNode): Manifest => ({ args: [], env: {}, dirs: [], limits: {}, casper: {}, argdata });

  const manifests: [string, string][] = [
    ['the issue\'s example', EXAMPLE],
    ['the empty manifest', ''],
    ['module, args, env', 'module: sha256:0123abcd\nargs: ["--x", "", "a b", "#c", "1", "true", "null"]\nenv: { A: "1", B: "", C: "x y: z", D: "!fd" }'],
    ['directories of every kind', 'dirs:\n  - { guest: /a, source: memory, rights: [], init_only: true }\n  - { guest: /, source: "/srv/my dir", rights: CAP_ALL }\n  - { guest: /c, source: ../c, rights: [path_open, CAP_UNLINKAT, rpath] }'],
    ['every limit', 'limits: { wall: 1.5s, cpu: 1ms, memory: 1KiB, output: 3, fds: 3, files: 7MiB }'],
    ['pledge with Casper services', 'pledge: [stdio, rpath, dns, getpw]\ncasper: { system.dns: { families: [inet] }, system.random: {} }'],
    ['argdata: stdio fds, !fd 3 and files', `${T}dirs: [{ guest: /in, source: memory, rights: rpath }]
argdata:
  fds: [!fd stdin, !fd stdout, !fd stderr, !fd 3]
  f: !file { path: /in/x }
  g: !file { path: /in/y, rights: [CAP_READ, rpath, CAP_SEEK] }`],
    ['argdata: scalars that survive the trip', 'argdata: [~, true, false, 0, -7, 42, 1.5, -2.25, 5e-324, .inf, -.inf, "", hello, "123", "true", "null", "0x10", "a: b", "line1\\nline2"]'],
    ['argdata: nested seqs and maps with keys of any type', 'argdata: { 1: a, true: b, null: c, 1.5: d, s: [[], {}, [1, [2, { x: [y] }]]] }'],
  ];

  it.each(manifests)('%s', (_name, src) => {
    const m = parseManifest(src);
    expect(roundTrip(m)).toEqual(m);
  });

  it('a manifest with descriptors carries the CloudABI %TAG; one without does not', () => {
    expect(manifestToYaml(parseManifest(EXAMPLE))).toMatch(/^%TAG ! tag:nuxi\.nl,2015:cloudabi\/\n---\n/);
    expect(manifestToYaml(parseManifest('args: [a]'))).toBe('args:\n  - a\n');
  });

  it('ints beyond 2^53 (2^63-1, -2^63) keep every digit', () => {
    const m = withArg({ type: 'seq', items: [{ type: 'int', value: 2n ** 63n - 1n }, { type: 'int', value: -(2n ** 63n) }] });
    expect(roundTrip(m)).toEqual(m);
  });

  it('binary values', () => {
    const m = withArg({ type: 'seq', items: [{ type: 'binary', value: new Uint8Array([104, 101, 108, 108, 111]) }, { type: 'binary', value: new Uint8Array(0) }] });
    expect(roundTrip(m)).toEqual(m);
  });

  it('floats with integral values stay floats', () => {
    const m = withArg({ type: 'seq', items: [{ type: 'float', value: 1 }, { type: 'float', value: 1e21 }, { type: 'float', value: -0 }, { type: 'float', value: NaN }] });
    expect(roundTrip(m)).toEqual(m);
  });

  it('timestamps', () => {
    const m = withArg({ type: 'timestamp', value: 1_465_560_000_000_000_000n });
    expect(roundTrip(m)).toEqual(m);
    // To the nanosecond, before 1970 too.
    const ns = withArg({ type: 'seq', items: [1_465_560_000_123_456_789n, -1n, -315_619_199_500_000_000n].map((value) => ({ type: 'timestamp' as const, value })) });
    expect(manifestToYaml(ns)).toContain('!!timestamp 2016-06-10T12:00:00.123456789Z');
    expect(roundTrip(ns)).toEqual(ns);
  });
});

describe('docs/manifest.md agrees with the source', () => {
  const doc = fs.readFileSync(new URL('../../docs/manifest.md', import.meta.url), 'utf8');
  const code = (xs: string[]) => xs.map((x) => `\`${x}\``);

  it('every right, as RIGHTS_TABLE and TYPE_RIGHTS have it', () => {
    for (const r of RIGHTS_TABLE) {
      const dir = TYPE_RIGHTS.directory.base & r.bit ? 'base' : TYPE_RIGHTS.directory.inheriting & r.bit ? 'inh.' : '–';
      const file = TYPE_RIGHTS.regularFile.base & r.bit ? 'yes' : '–';
      expect(doc).toContain(`| ${r.index} | \`${r.wasi}\` | \`${r.cap}\` | ${r.origin} | ${r.allows} | ${dir} | ${file} |`);
    }
  });

  it('every composite right', () => {
    for (const [name, mask] of Object.entries(COMPOSITE_RIGHTS)) {
      expect(doc).toContain(`| \`${name}\` | ${name === 'CAP_ALL' ? `all ${RIGHTS_TABLE.length} rights above` : code(capNames(mask)).join(' + ')} |`);
    }
  });

  it('every pledge promise and its expansion', () => {
    for (const [name, p] of Object.entries(PROMISES)) {
      const to = p.casper ? `Casper ${code(p.casper).join(', ')}` : code(capNames(p.rights)).join(', ') || 'nothing';
      expect(doc).toContain(`| \`${name}\` | ${to} | ${p.note} |`);
    }
  });

  it('the example, as written', () => {
    expect(doc).toContain('```yaml\n' + EXAMPLE + '```');
  });
});

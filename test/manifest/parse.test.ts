/**
 * parseManifest: every problem kind with its exact message and line:col, several problems at once,
 * the issue's CloudABI example, every argdata type, pledge, and the YAML bombs (aliases, size, depth).
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { CASPER_SERVICES, DEFAULT_PARSE_LIMITS, parseArgdataDocument, parseManifest } from '../../src/manifest/parse.js';
import { ManifestError, type ArgNode, type Manifest } from '../../src/manifest/types.js';
import { PROMISES } from '../../src/manifest/vocabulary.js';
import { R, TYPE_RIGHTS } from '../../src/wasi/rights.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));

/** The CloudABI tag handle; documents that start with it have their first key on line 3. */
const T = '%TAG ! tag:nuxi.nl,2015:cloudabi/\n---\n';
const TOP = 'a manifest may have module, args, env, argdata, dirs, sockets, limits, casper, pledge';
const USE = 'use a Capsicum name such as CAP_READ or a promise such as rpath';
const TAGS = 'argdata knows !fd, !file, !socket, !!int, !!str, !!bool, !!float, !!binary, !!timestamp';

/** A union of rights by WASI name. */
const or = (...names: (keyof typeof R)[]): bigint => names.reduce((m, n) => m | R[n]!, 0n);

/** The formatted problem lines ("file:line:col: path: message") of a manifest that must be refused. */
function problems(src: string, file = 'm.yaml'): string[] {
  try {
    parseManifest(src, file);
  } catch (e) {
    if (e instanceof ManifestError) return e.message.split('\n');
    throw e;
  }
  throw new Error(`accepted: ${JSON.stringify(src)}`);
}

function error(src: string): ManifestError {
  try {
    parseManifest(src, 'm.yaml');
  } catch (e) {
    if (e instanceof ManifestError) return e;
    throw e;
  }
  throw new Error('accepted');
}

/** The argdata tree of `argdata: <yaml>`. */
function arg(yaml: string, tagged = false): ArgNode | undefined {
  return parseManifest(`${tagged ? T : ''}argdata: ${yaml}`).argdata;
}

const str = (value: string): ArgNode => ({ type: 'str', value });
const int = (value: bigint): ArgNode => ({ type: 'int', value });

describe('error paths: each with its message and line:col', () => {
  const cases: [string, string, string[]][] = [
    // The top level.
    ['unknown key with a suggestion', 'modul: ./uniq.wasm', [`m.yaml:1:1: modul: unknown key "modul" (did you mean "module"?); ${TOP}`]],
    ['unknown key argdta', 'args: []\nargdta: {}', [`m.yaml:2:1: argdta: unknown key "argdta" (did you mean "argdata"?); ${TOP}`]],
    ['unknown key without a close match', 'colour: red', [`m.yaml:1:1: colour: unknown key "colour"; ${TOP}`]],
    ['a list instead of a mapping', '- a\n- b', ['m.yaml:1:1: a manifest is a mapping of keys such as module, args, dirs, limits']],
    ['a scalar instead of a mapping', 'just words', ['m.yaml:1:1: a manifest is a mapping of keys such as module, args, dirs, limits']],
    ['a key that is not a string', '? [a]\n: b', ['m.yaml:1:3: a key must be a string']],
    ['module: a list', 'module: [a]', ['m.yaml:1:9: module: module must be a string']],
    ['module: a mapping', 'module: { path: x }', ['m.yaml:1:9: module: module must be a string']],
    ['args: a scalar', 'args: x', ['m.yaml:1:7: args: args must be a list of strings, e.g. [--verbose, /in/file]']],
    ['args: a mapping', 'args: { a: b }', ['m.yaml:1:7: args: args must be a list of strings, e.g. [--verbose, /in/file]']],
    ['args: items that are not strings', 'args: [a, [b], {c: d}, ~]', [
      'm.yaml:1:11: args[1]: an argument must be a string',
      'm.yaml:1:16: args[2]: an argument must be a string',
      'm.yaml:1:24: args[3]: an argument must be a string',
    ]],
    ['env: a list', 'env: [A]', ['m.yaml:1:6: env: env must be a mapping of names to values, e.g. { LANG: C }']],
    ['env: a value that is a list', 'env: { A: [1] }', ['m.yaml:1:11: env.A: a variable value must be a string']],
    ['env: a name with =', "env: { 'A=B': x }", ['m.yaml:1:8: env.A=B: a variable name must be non-empty, without "=" or NUL']],
    ['env: an empty name', "env: { '': x }", ['m.yaml:1:8: env.: a variable name must be non-empty, without "=" or NUL']],
    ['env: a value with NUL', 'env: { A: "a\\0b" }', ['m.yaml:1:11: env.A: a value must not contain NUL']],

    // dirs.
    ['dirs: a scalar', 'dirs: x', ['m.yaml:1:7: dirs: dirs must be a list of { guest, source, rights }']],
    ['dirs: an item that is not a mapping', 'dirs: [x]', ['m.yaml:1:8: dirs[0]: a directory grant is { guest: /data, source: ./data, rights: rpath }']],
    ['a relative guest path', 'dirs:\n  - { guest: data, source: ./d, rights: rpath }',
      ['m.yaml:2:14: dirs[0].guest: guest path "data" must be absolute and must not contain "..", e.g. /data']],
    ['a guest path with ..', 'dirs:\n  - { guest: /a/../b, source: ./d, rights: rpath }',
      ['m.yaml:2:14: dirs[0].guest: guest path "/a/../b" must be absolute and must not contain "..", e.g. /data']],
    ['a guest path that is a list', 'dirs:\n  - { guest: [x], source: ./d, rights: rpath }', ['m.yaml:2:14: dirs[0].guest: a guest path must be a string']],
    ['the same guest twice (after normalising /a/ to /a)', 'dirs:\n  - { guest: /a, source: ./d, rights: rpath }\n  - { guest: /a/, source: ./e, rights: rpath }',
      ['m.yaml:3:5: dirs[1].guest: /a is granted twice']],
    ['missing guest', 'dirs:\n  - { source: ./d, rights: rpath }', ['m.yaml:2:5: dirs[0]: missing guest: where the guest sees the directory, e.g. guest: /data']],
    ['missing source', 'dirs:\n  - { guest: /a, rights: rpath }', ['m.yaml:2:5: dirs[0]: missing source: a host directory (./data) or memory']],
    ['missing rights', 'dirs:\n  - { guest: /a, source: ./d }', ['m.yaml:2:5: dirs[0]: missing rights, e.g. rights: rpath or rights: [rpath, wpath, cpath]']],
    ['missing all three', 'dirs:\n  - {}', [
      'm.yaml:2:5: dirs[0]: missing guest: where the guest sees the directory, e.g. guest: /data',
      'm.yaml:2:5: dirs[0]: missing source: a host directory (./data) or memory',
      'm.yaml:2:5: dirs[0]: missing rights, e.g. rights: rpath or rights: [rpath, wpath, cpath]',
    ]],
    ['a source that is a list', 'dirs:\n  - { guest: /a, source: [x], rights: rpath }', ['m.yaml:2:26: dirs[0].source: source must be a string']],
    ['unknown rights, each with a suggestion when one is close', 'dirs:\n  - { guest: /a, source: ./d, rights: [rpth, CAP_RAED, bogus] }', [
      `m.yaml:2:39: dirs[0].rights: unknown right "rpth" (did you mean "rpath"?); ${USE}`,
      `m.yaml:2:39: dirs[0].rights: unknown right "CAP_RAED" (did you mean "CAP_READ"?); ${USE}`,
      `m.yaml:2:39: dirs[0].rights: unknown right "bogus"; ${USE}`,
    ]],
    ['an unknown right given as one word', 'dirs:\n  - { guest: /a, source: ./d, rights: wpth }',
      [`m.yaml:2:39: dirs[0].rights: unknown right "wpth" (did you mean "wpath"?); ${USE}`]],
    ['rights that are a number', 'dirs:\n  - { guest: /a, source: ./d, rights: 5 }',
      ['m.yaml:2:39: dirs[0].rights: rights are a name or a list of names, e.g. rpath or [CAP_READ, CAP_SEEK]']],
    ['a Casper promise on a directory', 'dirs:\n  - { guest: /a, source: ./d, rights: [rpath, dns] }',
      ['m.yaml:2:39: dirs[0].rights: dns grant Casper services; put them under pledge or casper, not on a descriptor']],
    ['init_only that is not a boolean', 'dirs:\n  - { guest: /a, source: ./d, rights: rpath, init_only: yes }',
      ['m.yaml:2:57: dirs[0].init_only: init_only must be true or false']],
    ['an unknown key in a directory grant', 'dirs:\n  - { guest: /a, source: ./d, rights: rpath, inti_only: true }',
      ['m.yaml:2:46: dirs[0].inti_only: unknown key "inti_only" (did you mean "init_only"?); a directory grant has guest, source, rights, init_only']],

    // limits.
    ['limits: a scalar', 'limits: x', ['m.yaml:1:9: limits: limits is a mapping, e.g. { wall: 2s, memory: 64MiB }']],
    ['an unknown limit', 'limits: { wal: 2s }', ['m.yaml:1:11: limits.wal: unknown limit "wal" (did you mean "wall"?); limits are wall, cpu, memory, output, fds, files']],
    ['an unknown limit without a close match', 'limits: { threads: 4 }', ['m.yaml:1:11: limits.threads: unknown limit "threads"; limits are wall, cpu, memory, output, fds, files']],
    ['a bad duration', 'limits: { wall: 2 parsecs }', ['m.yaml:1:17: limits.wall: wall: cannot read "2 parsecs"; write it like "2s", "500ms" or "1m"']],
    ['a bad cpu duration', 'limits: { cpu: fast }', ['m.yaml:1:16: limits.cpu: cpu: cannot read "fast"; write it like "2s", "500ms" or "1m"']],
    ['a bad size', 'limits: { memory: lots }', ['m.yaml:1:19: limits.memory: memory: cannot read "lots"; write it like "64MiB", "1GiB" or "4096"']],
    ['a bad output size', 'limits: { output: 1 parsec }', ['m.yaml:1:19: limits.output: output: cannot read "1 parsec"; write it like "64MiB", "1GiB" or "4096"']],
    ['a limit that is a list', 'limits: { fds: [1] }', ['m.yaml:1:16: limits.fds: must be a number or a count']],
    ['a limit that is a boolean', 'limits: { wall: true }', ['m.yaml:1:17: limits.wall: must be a number or a duration, e.g. 2s']],
    ['wall: 0', 'limits: { wall: 0 }', ['m.yaml:1:17: limits.wall: wall must be a positive whole number']],
    ['wall: 0s', 'limits: { wall: 0s }', ['m.yaml:1:17: limits.wall: wall must be a positive whole number']],
    ['wall: -1', 'limits: { wall: -1 }', ['m.yaml:1:17: limits.wall: wall: -1 is not a non-negative number']],
    ['cpu: 0.1ms (rounds to 0)', 'limits: { cpu: 0.1ms }', ['m.yaml:1:16: limits.cpu: cpu must be a positive whole number']],
    ['memory: 0MiB', 'limits: { memory: 0MiB }', ['m.yaml:1:19: limits.memory: memory must be a positive whole number']],
    ['fds: 0', 'limits: { fds: 0 }', ['m.yaml:1:16: limits.fds: fds must be a positive whole number']],
    ['fds: -1', 'limits: { fds: -1 }', ['m.yaml:1:16: limits.fds: fds must be a positive whole number']],
    ['fds: 1.5', 'limits: { fds: 1.5 }', ['m.yaml:1:16: limits.fds: fds must be a positive whole number']],
    ['fds: 64MiB (fds is a count)', 'limits: { fds: 64MiB }', ['m.yaml:1:16: limits.fds: fds must be a positive whole number']],
    ['files: 0', 'limits: { files: 0 }', ['m.yaml:1:18: limits.files: files must be a positive whole number']],

    // casper and pledge.
    ['casper: a scalar', 'casper: x', ['m.yaml:1:9: casper: casper is a mapping of services to their widest limits, e.g. { system.random: {} }']],
    ['an unknown Casper service', 'casper: { system.dsn: {} }',
      [`m.yaml:1:11: casper.system.dsn: unknown service "system.dsn" (did you mean "system.dns"?); services are ${CASPER_SERVICES.join(', ')}`]],
    ['an unknown Casper service without a close match', 'casper: { network: {} }',
      [`m.yaml:1:11: casper.network: unknown service "network"; services are ${CASPER_SERVICES.join(', ')}`]],
    ['a Casper grant that is not a mapping', 'casper: { system.dns: x }',
      ["m.yaml:1:23: casper.system.dns: a service grant is a mapping of limits, or {} for the service's defaults"]],
    ['an unknown pledge promise', 'pledge: [stdio, stdoi]', [`m.yaml:1:9: pledge: unknown right "stdoi" (did you mean "stdio"?); ${USE}`]],
    ['pledge: a mapping', 'pledge: { a: 1 }', ['m.yaml:1:9: pledge: rights are a name or a list of names, e.g. rpath or [CAP_READ, CAP_SEEK]']],

    // argdata: !fd.
    ['!fd with a misspelt stream', `${T}argdata: !fd stdot`, ['m.yaml:3:14: argdata: !fd takes stdin, stdout, stderr or a descriptor number the host grants']],
    ['!fd -1', `${T}argdata: !fd -1`, ['m.yaml:3:14: argdata: !fd takes stdin, stdout, stderr or a descriptor number the host grants']],
    ['!fd 1024', `${T}argdata: !fd 1024`, ['m.yaml:3:14: argdata: !fd takes stdin, stdout, stderr or a descriptor number the host grants']],
    ['!fd 1.5', `${T}argdata: !fd 1.5`, ['m.yaml:3:14: argdata: !fd takes stdin, stdout, stderr or a descriptor number the host grants']],
    ['!fd on a list', `${T}argdata: !fd [1]`, ['m.yaml:3:14: argdata: !fd takes stdin, stdout, stderr or a descriptor number the host grants']],
    ['!fd deep in the tree', `${T}argdata:\n  log: [ok, !fd stdrr]`,
      ['m.yaml:4:17: argdata.log[1]: !fd takes stdin, stdout, stderr or a descriptor number the host grants']],

    // argdata: !file.
    ['!file on a scalar', `${T}argdata: !file /in/x`, ['m.yaml:3:16: argdata: !file takes { path: /in/file, rights: [CAP_READ] }']],
    ['!file without a path', `${T}argdata: !file { rights: [CAP_READ] }`,
      ['m.yaml:3:16: argdata: !file needs a path: the guest path of the file, inside a granted directory']],
    ['!file with an unknown key', `${T}argdata: !file { path: /in/x, mode: r }`, ['m.yaml:3:31: argdata.mode: unknown key "mode"; !file has path and rights']],
    ['!file with a misspelt rights key', `${T}argdata: !file { path: /in/x, rihgts: [CAP_READ] }`,
      ['m.yaml:3:31: argdata.rihgts: unknown key "rihgts" (did you mean "rights"?); !file has path and rights']],
    ['!file with a relative path', `${T}argdata: !file { path: in/x }`,
      ['m.yaml:3:24: argdata.path: guest path "in/x" must be absolute and must not contain "..", e.g. /data']],
    ['!file with an unknown right', `${T}argdata: !file { path: /in/x, rights: [CAP_REED] }`,
      [`m.yaml:3:39: argdata.rights: unknown right "CAP_REED" (did you mean "CAP_READ"?); ${USE}`]],

    // argdata: !socket, parsed and validated.
    ['!socket without bind or connect', `${T}argdata: !socket { type: stream }`, ['m.yaml:3:18: argdata: !socket takes bind: host:port or connect: host:port']],
    ['!socket with both bind and connect', `${T}argdata: !socket { bind: 'a:1', connect: 'b:2' }`,
      ['m.yaml:3:18: argdata: !socket takes bind: host:port or connect: host:port']],
    ['!socket with a bad type', `${T}argdata: !socket { bind: '127.0.0.1:8080', type: raw }`, ['m.yaml:3:18: argdata.type: !socket type is stream or dgram']],
    ['!socket binding an address without a port', `${T}argdata: !socket { bind: localhost }`,
      ['m.yaml:3:18: argdata.bind: socket address "localhost": expected HOST:PORT, [IPV6]:PORT or an absolute UNIX path, e.g. 127.0.0.1:8080']],
    ['!socket connecting to a port of six digits', `${T}argdata: !socket { connect: '10.0.0.1:123456' }`,
      ['m.yaml:3:18: argdata.connect: socket address "10.0.0.1:123456": expected HOST:PORT, [IPV6]:PORT or an absolute UNIX path, e.g. 127.0.0.1:8080']],
    ['!socket on a scalar', `${T}argdata: !socket 127.0.0.1:80`, ['m.yaml:3:18: argdata: !socket takes { bind: host:port, type: stream } or { connect: host:port }']],
    ['a !socket of type dgram on a UNIX path', `${T}argdata:\n  peer: !socket { connect: /run/x.sock, type: dgram }`,
      ['m.yaml:4:17: argdata.peer.connect: a dgram socket is UDP: HOST:PORT or [IPV6]:PORT, not a UNIX path']],
    ['sockets: a list of !socket', `${T}sockets: [!socket { bind: 'nohost' }]`,
      ['m.yaml:3:19: sockets[0].bind: socket address "nohost": expected HOST:PORT, [IPV6]:PORT or an absolute UNIX path, e.g. 127.0.0.1:8080']],

    // Tags.
    ['an unknown CloudABI tag on a scalar', `${T}argdata: !pipe x`, [`m.yaml:3:16: argdata: unknown tag !pipe; ${TAGS}`]],
    ['an unknown tag on a mapping', `${T}argdata: !pipe { a: 1 }`, ['m.yaml:3:16: argdata: unknown tag !pipe on a mapping']],
    ['an unknown tag on a list', `${T}argdata: !pipe [1]`, ['m.yaml:3:16: argdata: unknown tag !pipe on a list']],
    ['a verbatim foreign tag', 'argdata: !<tag:example.com,2000:x> 1', [`m.yaml:1:36: argdata: unknown tag tag:example.com,2000:x; ${TAGS}`]],
    ['!!seq on a mapping', 'argdata: !!seq { a: 1 }', ['m.yaml:1:16: argdata: unknown tag !!seq on a mapping']],
    ['!!map on a list', 'argdata: !!map [1]', ['m.yaml:1:16: argdata: unknown tag !!map on a list']],
    ['!!int on a list', 'argdata: !!int [1]', ['m.yaml:1:16: argdata: unknown tag !!int on a list']],
    ['!!int with a fraction', 'argdata: !!int 1.5', ['m.yaml:1:16: argdata: !!int needs a whole number, not "1.5"']],
    ['!!int with a word', 'argdata: !!int abc', ['m.yaml:1:16: argdata: !!int needs a whole number, not "abc"']],
    ['!!float with a word', 'argdata: !!float abc', ['m.yaml:1:18: argdata: !!float needs a number, not "abc"']],
    ['!!bool with yes (YAML 1.2 has no yes)', 'argdata: !!bool yes', ['m.yaml:1:17: argdata: !!bool needs true or false']],
    ['!!binary that is not base64', "argdata: !!binary '!!!'", ['m.yaml:1:19: argdata: !!binary needs base64 text']],
    ['an alias to no anchor', 'argdata: *nope', ['m.yaml:1:10: argdata: alias *nope refers to nothing']],
  ];

  it.each(cases)('%s', (_name, src, expected) => {
    expect(problems(src)).toEqual(expected);
  });

  it('an unknown key in a !socket is reported', () => {
    expect(problems(`${T}argdata: !socket { bind: '127.0.0.1:8080', type: stream, backlog: 5 }`))
      .toContainEqual(expect.stringMatching(/^m\.yaml:3:\d+: argdata\.backlog: unknown key "backlog"/));
  });

  it('carries line, col, path and message separately, and the file name as given', () => {
    const e = error('args: []\nlimits: { wal: 2s }');
    expect(e.file).toBe('m.yaml');
    expect(e.problems).toEqual([
      { line: 2, col: 11, path: 'limits.wal', message: 'unknown limit "wal" (did you mean "wall"?); limits are wall, cpu, memory, output, fds, files' },
    ]);
    expect(problems('colour: red', 'jobs/uniq.yaml')).toEqual([`jobs/uniq.yaml:1:1: colour: unknown key "colour"; ${TOP}`]);
  });
});

describe('YAML syntax errors and duplicate keys', () => {
  const syntax: [string, string, string][] = [
    ['an unclosed flow sequence', 'args: [a, b', 'm.yaml:1:12: Flow sequence in block collection must be sufficiently indented and end with a ]'],
    ['a duplicate top-level key', 'module: x\nmodule: y', 'm.yaml:2:1: Map keys must be unique'],
    ['a duplicate key in a flow mapping', 'env: { A: "1", A: "2" }', 'm.yaml:1:16: Map keys must be unique'],
    ['a duplicate key in a directory grant', 'dirs:\n  - { guest: /a, source: ./d, rights: rpath, guest: /b }', 'm.yaml:2:46: Map keys must be unique'],
    ['a tab as indentation', 'args: [a]\n\tenv: {}', 'm.yaml:2:1: Tabs are not allowed as indentation'],
    ['an unterminated string', 'module: "unterminated', 'm.yaml:1:22: Missing closing "quote'],
  ];

  it.each(syntax)('%s is reported at its line:col, with the YAML message', (_name, src, expected) => {
    expect(problems(src)).toEqual([expected]);
  });

  it('a second document is refused', () => {
    expect(problems('module: x\n---\nmodule: y')).toEqual(['m.yaml:2:1: Source contains multiple documents; please use YAML.parseAllDocuments()']);
  });

  it('!!timestamp with text that is no date is refused by YAML, at the value', () => {
    expect(problems('argdata: !!timestamp nope')).toEqual(['m.yaml:1:10: !!timestamp expects a date, starting with yyyy-mm-dd']);
  });
});

describe('several problems at once', () => {
  it('five different mistakes give five messages, in source order', () => {
    const src = [
      'modul: ./uniq.wasm',
      'args: [a, [b]]',
      'dirs:',
      '  - { guest: data, source: ./d, rights: rpath }',
      '  - { guest: /e, source: ./e, rights: [CAP_RAED] }',
      'limits: { wall: 0 }',
    ].join('\n');
    expect(problems(src)).toEqual([
      `m.yaml:1:1: modul: unknown key "modul" (did you mean "module"?); ${TOP}`,
      'm.yaml:2:11: args[1]: an argument must be a string',
      'm.yaml:4:14: dirs[0].guest: guest path "data" must be absolute and must not contain "..", e.g. /data',
      `m.yaml:5:39: dirs[1].rights: unknown right "CAP_RAED" (did you mean "CAP_READ"?); ${USE}`,
      'm.yaml:6:17: limits.wall: wall must be a positive whole number',
    ]);
  });

  it('problems in argdata, dirs and casper of a tagged document are all reported', () => {
    const src = `${T}argdata:\n  a: !fd stdot\n  b: !!int x\ndirs:\n  - { guest: /a, source: memory, rights: rpath, extra: 1 }\ncasper: { system.rnd: {} }`;
    expect(problems(src)).toEqual([
      'm.yaml:4:10: argdata.a: !fd takes stdin, stdout, stderr or a descriptor number the host grants',
      'm.yaml:5:12: argdata.b: !!int needs a whole number, not "x"',
      'm.yaml:7:49: dirs[0].extra: unknown key "extra"; a directory grant has guest, source, rights, init_only',
      `m.yaml:8:11: casper.system.rnd: unknown service "system.rnd" (did you mean "system.dns"?); services are ${CASPER_SERVICES.join(', ')}`,
    ]);
  });
});

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

// rpath, wpath and cpath spelled out bit by bit (PROMISES is checked against these below).
const RPATH = or('path_open', 'fd_read', 'fd_seek', 'fd_tell', 'fd_filestat_get', 'path_filestat_get', 'fd_readdir', 'path_readlink', 'fd_advise', 'poll_fd_readwrite');
const WPATH = or('path_open', 'fd_write', 'fd_seek', 'fd_tell', 'fd_filestat_set_size', 'path_filestat_set_size', 'fd_allocate', 'fd_sync', 'fd_datasync', 'poll_fd_readwrite');
const CPATH = or('path_open', 'path_create_file', 'path_create_directory', 'path_remove_directory', 'path_unlink_file', 'path_rename_source',
  'path_rename_target', 'path_symlink', 'path_link_source', 'path_link_target');

describe('the issue\'s example', () => {
  it('the promises expand as documented', () => {
    expect(PROMISES['rpath']!.rights).toBe(RPATH);
    expect(PROMISES['wpath']!.rights).toBe(WPATH);
    expect(PROMISES['cpath']!.rights).toBe(CPATH);
  });

  it('parses to exactly this manifest', () => {
    const m = parseManifest(EXAMPLE, 'uniq.yaml');
    const expected: Manifest = {
      module: './uniq.wasm',
      args: ['/in/words.txt', '/out/uniq.txt'],
      env: { LANG: 'C' },
      argdata: {
        type: 'map', entries: [
          [str('input'), { type: 'file', path: '/in/words.txt', rights: { base: or('fd_read', 'fd_filestat_get', 'fd_seek', 'fd_tell'), inheriting: 0n, names: ['CAP_READ', 'CAP_FSTAT', 'CAP_SEEK'] } }],
          [str('logfile'), { type: 'fd', fd: 1 }],
          [str('nthreads'), int(8n)],
        ],
      },
      dirs: [
        {
          guest: '/in', host: './in', initOnly: false, readonly: true,
          // A directory holds the lookup side of rpath; reading and seeking are for the files opened through it.
          rights: { base: or('path_open', 'fd_filestat_get', 'path_filestat_get', 'fd_readdir', 'path_readlink', 'fd_advise', 'poll_fd_readwrite'), inheriting: RPATH, names: ['rpath'] },
        },
        {
          guest: '/out', host: './out', initOnly: false, readonly: false,
          rights: {
            base: (RPATH | WPATH | CPATH) & ~or('fd_read', 'fd_seek', 'fd_tell', 'fd_write', 'fd_filestat_set_size', 'fd_allocate', 'fd_datasync'),
            inheriting: RPATH | WPATH | CPATH,
            names: ['rpath', 'wpath', 'cpath'],
          },
        },
        {
          guest: '/tmp', initOnly: true, readonly: false,
          rights: { base: or('path_create_file', 'path_open'), inheriting: or('fd_read', 'fd_write', 'path_create_file', 'path_open'), names: ['CAP_READ', 'CAP_WRITE', 'CAP_CREATE', 'CAP_LOOKUP'] },
        },
      ],
      limits: { wallMs: 2000, cpuMs: 1000, memoryBytes: 64 << 20, outputBytes: 1 << 20, fds: 64 },
      casper: {},
    };
    expect(m).toEqual(expected);
  });

  it('every directory grant fits what a directory can hold', () => {
    for (const d of parseManifest(EXAMPLE).dirs) {
      expect(d.rights.base & ~TYPE_RIGHTS.directory.base).toBe(0n);
      expect(d.rights.inheriting & ~TYPE_RIGHTS.directory.inheriting).toBe(0n);
    }
  });

  it('a !file without rights gets rpath, limited to what a regular file can hold', () => {
    expect(arg('!file { path: /in/x }', true)).toEqual({
      type: 'file', path: '/in/x',
      rights: { base: or('fd_read', 'fd_seek', 'fd_tell', 'fd_filestat_get', 'fd_advise', 'poll_fd_readwrite'), inheriting: 0n, names: ['rpath'] },
    });
    // CAP_LOOKUP means nothing on a file.
    expect(arg('!file { path: /in//./x, rights: [CAP_READ, CAP_LOOKUP] }', true)).toEqual({
      type: 'file', path: '/in/x', rights: { base: R.fd_read, inheriting: 0n, names: ['CAP_READ', 'CAP_LOOKUP'] },
    });
  });
});

describe('argdata values', () => {
  it('every scalar type', () => {
    expect(arg('~')).toEqual({ type: 'null' });
    expect(arg('null')).toEqual({ type: 'null' });
    expect(arg('!!null ~')).toEqual({ type: 'null' });
    expect(arg('true')).toEqual({ type: 'bool', value: true });
    expect(arg('!!bool false')).toEqual({ type: 'bool', value: false });
    expect(arg('42')).toEqual(int(42n));
    expect(arg('!!int 8')).toEqual(int(8n));
    expect(arg('!!int 0x10')).toEqual(int(16n));
    expect(arg('-7')).toEqual(int(-7n));
    expect(arg('1.5')).toEqual({ type: 'float', value: 1.5 });
    expect(arg('!!float 1')).toEqual({ type: 'float', value: 1 });
    expect(arg('!!float 1.5e3')).toEqual({ type: 'float', value: 1500 });
    expect(arg('.inf')).toEqual({ type: 'float', value: Infinity });
    expect(arg('-.inf')).toEqual({ type: 'float', value: -Infinity });
    expect(arg('hello')).toEqual(str('hello'));
    expect(arg('"123"')).toEqual(str('123'));
    expect(arg('!!str 123')).toEqual(str('123'));
    expect(arg('!!str true')).toEqual(str('true'));
    expect(arg('2016-06-10')).toEqual(str('2016-06-10'));
    expect(arg('!!binary aGVsbG8=')).toEqual({ type: 'binary', value: new Uint8Array(Buffer.from('hello')) });
    expect(arg('!!binary |\n  aGVs\n  bG8=')).toEqual({ type: 'binary', value: new Uint8Array(Buffer.from('hello')) });
    expect(arg('!!binary ""')).toEqual({ type: 'binary', value: new Uint8Array(0) });
    expect(arg('!!timestamp 2016-06-10T12:00:00Z')).toEqual({ type: 'timestamp', value: 1_465_560_000_000_000_000n });
  });

  it('ints beyond 2^53 keep every digit: 2^63-1, -2^63 and 2^64', () => {
    expect(arg('9223372036854775807')).toEqual(int(2n ** 63n - 1n));
    expect(arg('!!int 9223372036854775807')).toEqual(int(2n ** 63n - 1n));
    expect(arg('-9223372036854775808')).toEqual(int(-(2n ** 63n)));
    expect(arg('18446744073709551616')).toEqual(int(2n ** 64n));
  });

  it('!!float .nan is a float', () => {
    const n = arg('!!float .nan');
    expect(n?.type).toBe('float');
    expect(Number.isNaN((n as { value: number }).value)).toBe(true);
  });

  it('nested lists and maps, with keys of any type', () => {
    expect(arg('[1, [2, {a: b}], {x: [y]}, [], {}]')).toEqual({
      type: 'seq', items: [
        int(1n),
        { type: 'seq', items: [int(2n), { type: 'map', entries: [[str('a'), str('b')]] }] },
        { type: 'map', entries: [[str('x'), { type: 'seq', items: [str('y')] }]] },
        { type: 'seq', items: [] },
        { type: 'map', entries: [] },
      ],
    });
    expect(arg('{1: a, true: b, null: c, 1.5: d}')).toEqual({
      type: 'map', entries: [[int(1n), str('a')], [{ type: 'bool', value: true }, str('b')], [{ type: 'null' }, str('c')], [{ type: 'float', value: 1.5 }, str('d')]],
    });
  });

  it('the stdio descriptors by name', () => {
    expect(arg('[!fd stdin, !fd stdout, !fd stderr]', true)).toEqual({ type: 'seq', items: [{ type: 'fd', fd: 0 }, { type: 'fd', fd: 1 }, { type: 'fd', fd: 2 }] });
  });

  it('!fd with a number names that descriptor (whether it is granted is applyPolicy\'s question)', () => {
    expect(arg('!fd 3', true)).toEqual({ type: 'fd', fd: 3 });
    expect(arg('[!fd 0, !fd 1023]', true)).toEqual({ type: 'seq', items: [{ type: 'fd', fd: 0 }, { type: 'fd', fd: 1023 }] });
  });

  it('an alias is followed (a few aliases are fine)', () => {
    const m = parseManifest('argdata:\n  a: &x [1, 2]\n  b: *x\nargs: [x]');
    expect(m.argdata).toEqual({ type: 'map', entries: [[str('a'), { type: 'seq', items: [int(1n), int(2n)] }], [str('b'), { type: 'seq', items: [int(1n), int(2n)] }]] });
  });

  it('aliases inside Casper limits are followed', () => {
    const m = parseManifest('casper:\n  system.dns: { families: &f [inet] }\n  system.grp: { families: *f }');
    expect(m.casper).toEqual({ 'system.dns': { families: ['inet'] }, 'system.grp': { families: ['inet'] } });
  });
});

describe('the rest of a manifest', () => {
  it('an empty document, a comment only and `casper:` with nothing are the empty manifest', () => {
    const empty: Manifest = { args: [], env: {}, dirs: [], limits: {}, casper: {} };
    expect(parseManifest('')).toEqual(empty);
    expect(parseManifest('# nothing\n')).toEqual(empty);
    expect(parseManifest('casper:\n')).toEqual(empty);
  });

  it('env values that YAML reads as numbers or booleans are strings', () => {
    expect(parseManifest('env: { A: 1, B: true, C: "" }').env).toEqual({ A: '1', B: 'true', C: '' });
  });

  it('guest paths are normalised; sources are kept as written', () => {
    const m = parseManifest('dirs:\n  - { guest: /data//sub/./, source: ../x, rights: [] }\n  - { guest: /, source: memory, rights: CAP_ALL }');
    expect(m.dirs.map((d) => [d.guest, d.host])).toEqual([['/data/sub', '../x'], ['/', undefined]]);
    expect(m.dirs[0]!.rights).toEqual({ base: 0n, inheriting: 0n, names: [] });
    expect(m.dirs[1]!.rights).toEqual({ base: TYPE_RIGHTS.directory.base, inheriting: TYPE_RIGHTS.directory.inheriting, names: ['CAP_ALL'] });
  });

  it('WASI names and composite Capsicum names are rights words too', () => {
    const m = parseManifest('dirs:\n  - { guest: /a, source: memory, rights: [path_open, CAP_UNLINKAT, fd_read] }');
    expect(m.dirs[0]!.rights.base).toBe(or('path_open', 'path_remove_directory', 'path_unlink_file'));
    expect(m.dirs[0]!.rights.inheriting).toBe(or('path_open', 'path_remove_directory', 'path_unlink_file', 'fd_read'));
  });

  it('limits in every unit', () => {
    expect(parseManifest('limits: { wall: 1.5s, cpu: 500ms, memory: 1GiB, output: 512k, fds: 3, files: 4096 }').limits)
      .toEqual({ wallMs: 1500, cpuMs: 500, memoryBytes: 1 << 30, outputBytes: 512 << 10, fds: 3, filesBytes: 4096 });
    expect(parseManifest('limits: { wall: 1m, memory: 1MB }').limits).toEqual({ wallMs: 60_000, memoryBytes: 1_000_000 });
  });

  it('casper services with {} or limits', () => {
    expect(parseManifest('casper: { system.random: {}, system.dns: { families: [inet] }, system.pwd: }').casper)
      .toEqual({ 'system.random': {}, 'system.dns': { families: ['inet'] }, 'system.pwd': {} });
  });
});

describe('pledge', () => {
  const TTY = or('fd_read', 'fd_write', 'fd_filestat_get', 'poll_fd_readwrite', 'fd_fdstat_set_flags');

  it('pledge: [stdio, rpath, dns] narrows stdio to what stdio and rpath allow a terminal, and grants system.dns', () => {
    const m = parseManifest('pledge: [stdio, rpath, dns]');
    expect(TYPE_RIGHTS.characterDevice.base).toBe(TTY);
    expect(m.stdio).toEqual({ base: TTY, inheriting: 0n, names: ['stdio', 'rpath', 'dns'] });
    expect(m.casper).toEqual({ 'system.dns': {} });
  });

  it('pledge: rpath alone leaves stdio without write or fcntl', () => {
    expect(parseManifest('pledge: rpath').stdio).toEqual({ base: or('fd_read', 'fd_filestat_get', 'poll_fd_readwrite'), inheriting: 0n, names: ['rpath'] });
  });

  it('getpw grants system.pwd and system.grp; explicit casper limits are kept', () => {
    const m = parseManifest('casper: { system.pwd: { users: [root] } }\npledge: [stdio, getpw]');
    expect(m.casper).toEqual({ 'system.pwd': { users: ['root'] }, 'system.grp': {} });
  });
});

describe('cloudabi-run documents (parseArgdataDocument)', () => {
  const RPATH_ALL = or('path_open', 'fd_read', 'fd_seek', 'fd_tell', 'fd_filestat_get', 'path_filestat_get', 'fd_readdir', 'path_readlink', 'fd_advise', 'poll_fd_readwrite');
  const docProblems = (src: string): string[] => {
    try {
      parseArgdataDocument(src, 'doc.yaml', '/base');
    } catch (e) {
      if (e instanceof ManifestError) return e.message.split('\n');
      throw e;
    }
    throw new Error('accepted');
  };

  it('the whole document is the tree; !file names a host path relative to the document, read-only by default', () => {
    expect(parseArgdataDocument(`${T}tmpdir: !file\n  path: tmpdir\nlogfile: !fd stdout\nnthreads: !!int 8\n`, 'talk.yaml', '/base')).toEqual({
      type: 'map', entries: [
        [str('tmpdir'), { type: 'file', path: '/base/tmpdir', rights: { base: RPATH_ALL, inheriting: RPATH_ALL, names: ['rpath'] }, host: true }],
        [str('logfile'), { type: 'fd', fd: 1 }],
        [str('nthreads'), int(8n)],
      ],
    });
    expect(parseArgdataDocument('', 'doc.yaml', '/base')).toEqual({ type: 'null' });
    expect(parseArgdataDocument('hello', 'doc.yaml', '/base')).toEqual(str('hello'));
    expect(parseArgdataDocument(`${T}!file { path: /etc/hosts, rights: [CAP_READ] }`, 'doc.yaml', '/base'))
      .toEqual({ type: 'file', path: '/etc/hosts', rights: { base: R.fd_read, inheriting: R.fd_read, names: ['CAP_READ'] }, host: true });
  });

  it('problems have line:col, and paths start at the key', () => {
    expect(docProblems('a: !wat 1')).toEqual([`doc.yaml:1:9: a: unknown tag !wat; ${TAGS}`]);
    expect(docProblems(`${T}- !file { rights: [] }\n- !file { path: [x] }`)).toEqual([
      'doc.yaml:3:9: [0]: !file needs a path: the guest path of the file, inside a granted directory',
      'doc.yaml:4:17: [1].path: a path must be a string',
    ]);
    expect(docProblems('x: [1')).toEqual(['doc.yaml:1:6: Flow sequence in block collection must be sufficiently indented and end with a ]']);
  });

  it('the same caps: size, aliases, depth', () => {
    expect(() => parseArgdataDocument(`[${'x'.repeat(20)}]`, 'doc.yaml', '/', { ...DEFAULT_PARSE_LIMITS, maxBytes: 20 })).toThrow('doc.yaml:0:0: the document is 22 bytes; the limit is 20');
    expect(() => parseArgdataDocument('[&a 1, *a, *a]', 'doc.yaml', '/', { ...DEFAULT_PARSE_LIMITS, maxAliases: 1 })).toThrow('doc.yaml:0:0: more than 1 aliases; write the values out');
    // Flow brackets are measured on the text before it parses; block nesting by the argdata walker.
    expect(() => parseArgdataDocument(`${'['.repeat(65)}${']'.repeat(65)}`, 'doc.yaml', '/')).toThrow('doc.yaml:0:0: the document is nested deeper than 64 levels');
    expect(parseArgdataDocument(`${'['.repeat(64)}${']'.repeat(64)}`, 'doc.yaml', '/')).toMatchObject({ type: 'seq' });
    const block = `${Array.from({ length: 70 }, (_, i) => `${' '.repeat(i)}k:`).join('\n')} x`;
    expect(() => parseArgdataDocument(block, 'doc.yaml', '/')).toThrow('doc.yaml:0:0: argdata is nested deeper than 64 levels');
  });
});

describe('YAML bombs', () => {
  /** The billion laughs: ten levels of nine aliases each, 10^9 strings if expanded. */
  function laughs(indent: string): string {
    const lines = [`${indent}a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]`];
    for (let i = 1; i < 10; i++) {
      const name = String.fromCharCode(97 + i), prev = String.fromCharCode(96 + i);
      lines.push(`${indent}${name}: &${name} [${Array(9).fill(`*${prev}`).join(', ')}]`);
    }
    return lines.join('\n');
  }

  it('the billion laughs in argdata is refused quickly, by the alias count', () => {
    expect(problems(`argdata:\n${laughs('  ')}`)).toEqual([`m.yaml:0:0: more than ${DEFAULT_PARSE_LIMITS.maxAliases} aliases; write the values out`]);
  });

  it('the billion laughs referenced from another key is refused too', () => {
    expect(problems(`argdata:\n${laughs('  ')}\nargs: *j`)).toEqual(['m.yaml:0:0: more than 100 aliases; write the values out']);
  });

  it('a 10 MB manifest is refused quickly, by its size', () => {
    const big = `module: x\n# ${'x'.repeat(10 * 1024 * 1024)}\n`;
    expect(problems(big)).toEqual([`m.yaml:0:0: the manifest is ${big.length} bytes; the limit is ${DEFAULT_PARSE_LIMITS.maxBytes}`]);
    const list = `args: [${Array(1_000_000).fill('aaaaaaaaa').join(',')}]`;
    expect(problems(list)).toEqual([`m.yaml:0:0: the manifest is ${list.length} bytes; the limit is 1048576`]);
  });

  it('the size cap counts bytes, not characters', () => {
    const src = `module: x\n# ${'字'.repeat(400_000)}\n`;
    expect(Buffer.byteLength(src)).toBeGreaterThan(DEFAULT_PARSE_LIMITS.maxBytes);
    expect(problems(src)[0]).toMatch(/the limit is 1048576$/);
  });

  it('argdata nested beyond the depth cap is refused', () => {
    const deep = (n: number) => `argdata: ${'['.repeat(n)}${']'.repeat(n)}`;
    // Flow nesting is measured on the text, before YAML parses it.
    const flowMsg = `m.yaml:0:0: the manifest is nested deeper than ${DEFAULT_PARSE_LIMITS.maxDepth} levels`;
    expect(problems(deep(DEFAULT_PARSE_LIMITS.maxDepth + 1))).toEqual([flowMsg]);
    expect(problems(deep(100))).toEqual([flowMsg]);
    const flowMap = `argdata: ${'{a: '.repeat(70)}1${'}'.repeat(70)}`;
    expect(problems(flowMap)).toEqual([flowMsg]);
    // Under any key, not only argdata.
    expect(problems(`env: { A: ${'['.repeat(65)}${']'.repeat(65)} }`)).toEqual([flowMsg]);
    // Block nesting, and block and flow nesting together, are counted by the argdata walker.
    const msg = `m.yaml:0:0: argdata is nested deeper than ${DEFAULT_PARSE_LIMITS.maxDepth} levels`;
    const block = `argdata:\n${Array.from({ length: 70 }, (_, i) => `${' '.repeat(i + 2)}k:`).join('\n')} x`;
    expect(problems(block)).toEqual([msg]);
    expect(problems(`argdata:\n  k: ${'['.repeat(64)}${']'.repeat(64)}`)).toEqual([msg]);
    expect(parseManifest(`argdata:\n  k: ${'['.repeat(63)}${']'.repeat(63)}`).argdata?.type).toBe('map');
  });

  it('brackets inside quotes and comments are not nesting', () => {
    const m = parseManifest(`args: ['${'['.repeat(100)}', "${'{'.repeat(100)}"]\n# ${'['.repeat(100)}\nargdata: "${'['.repeat(100)}"`);
    expect(m.args).toEqual(['['.repeat(100), '{'.repeat(100)]);
    expect(m.argdata).toEqual({ type: 'str', value: '['.repeat(100) });
  });

  it('the depth cap counts containers as the argdata encoder does: 64 nested lists parse, 65 are refused', () => {
    const deep = (n: number) => `argdata: ${'['.repeat(n)}${']'.repeat(n)}`;
    expect(parseManifest(deep(64)).argdata?.type).toBe('seq');
    expect(problems(deep(65))).toEqual(['m.yaml:0:0: the manifest is nested deeper than 64 levels']);
  });

  it('a scalar inside 64 nested lists parses (only containers count)', () => {
    expect(parseManifest(`argdata: ${'['.repeat(64)}1${']'.repeat(64)}`).argdata?.type).toBe('seq');
  });

  it('a manifest of more nodes than maxNodes is refused', () => {
    const src = `argdata: [${Array(200).fill('1').join(',')}]`;
    expect(() => parseManifest(src, 'm.yaml', { ...DEFAULT_PARSE_LIMITS, maxNodes: 100 })).toThrow('m.yaml:0:0: the manifest expands to more than 100 nodes');
    expect(parseManifest(src).argdata).toMatchObject({ type: 'seq' });
  });

  it('the caps are parameters: a smaller alias cap and size cap', () => {
    const limits = { ...DEFAULT_PARSE_LIMITS, maxAliases: 1, maxBytes: 64 };
    expect(() => parseManifest('argdata: [&a 1, *a, *a]', 'm.yaml', limits)).toThrow('m.yaml:0:0: more than 1 aliases; write the values out');
    expect(() => parseManifest(`module: ${'x'.repeat(64)}`, 'm.yaml', limits)).toThrow('m.yaml:0:0: the manifest is 72 bytes; the limit is 64');
  });

  it('thousands of nested brackets are refused by the depth cap, and never abort the process', () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'capsa-deep-'));
    try {
      const script = path.join(tmp, 'deep.mts');
      fs.writeFileSync(script, `import { parseManifest } from ${JSON.stringify(path.join(REPO, 'src/manifest/parse.ts'))};
for (const n of [1000, 100000]) {
  try { parseManifest('argdata: ' + '['.repeat(n) + ']'.repeat(n)); console.log('accepted'); }
  catch (e) { console.log(String(e.message).split('\\n')[0]); }
}
`);
      const r = spawnSync(process.execPath, ['--import', 'tsx', script], { cwd: REPO, encoding: 'utf8', timeout: 20_000 });
      expect(r.stdout.trim().split('\n')).toEqual(['manifest.yaml:0:0: the manifest is nested deeper than 64 levels', 'manifest.yaml:0:0: the manifest is nested deeper than 64 levels']);
      expect(r.status).toBe(0);
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });

  // A quote inside plain or block text is text (the lexer knows), so it hides no nesting after it.
  // Run in a child process, as above, so that a stack overflow cannot touch the test runner.
  it('a stray quote in a plain or block scalar does not hide the nesting after it', () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'capsa-deep-'));
    try {
      const script = path.join(tmp, 'quote.mts');
      fs.writeFileSync(script, `import { parseManifest } from ${JSON.stringify(path.join(REPO, 'src/manifest/parse.ts'))};
const deep = 'argdata: ' + '['.repeat(1000) + ']'.repeat(1000);
for (const head of ["env: { A: don 't }\\n", "args:\\n  - |\\n    it 's\\n"]) {
  try { parseManifest('module: x\\n' + head + deep); console.log('accepted'); }
  catch (e) { console.log(String(e.message).split('\\n')[0]); }
}
`);
      const r = spawnSync(process.execPath, ['--import', 'tsx', script], { cwd: REPO, encoding: 'utf8', timeout: 20_000 });
      expect(r.stdout.trim().split('\n')).toEqual(['manifest.yaml:0:0: the manifest is nested deeper than 64 levels', 'manifest.yaml:0:0: the manifest is nested deeper than 64 levels']);
      expect(r.status).toBe(0);
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });
});

/**
 * `capsa run` end to end: the real CLI (bin/capsa.js: dist/ when built, else the sources through
 * tsx) in a child process, with the prebuilt C guests and small WAT modules written to a temp dir.
 */
import { execFileSync, spawn, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { ERRNO, FDFLAGS } from '../../src/wasi/constants.js';
import { harness } from '../helpers/harness.js';
import { wat } from '../helpers/wat.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const BIN = path.join(REPO, 'bin', 'capsa.js');
const GUEST = (name: string) => path.join(REPO, 'guests', 'build', `${name}.wasm`);

let tmp: string;
const wasm: Record<string, string> = {};

/** Modules the C guests cannot express, assembled here. */
const WAT: Record<string, string> = {
  trap: `(module (memory (export "memory") 1)
    (func (export "_start") unreachable))`,
  overflow: `(module (memory (export "memory") 1)
    (func $f (call $f))
    (func (export "_start") (call $f)))`,
  importsNope: `(module
    (import "env" "nope" (func $nope))
    (memory (export "memory") 1)
    (func (export "_start") (call $nope)))`,
  // Prints its environment block ("K=V\\0K=V\\0") to stdout and exits with the variable count.
  env: `(module
    (import "wasi_snapshot_preview1" "environ_sizes_get" (func $sizes (param i32 i32) (result i32)))
    (import "wasi_snapshot_preview1" "environ_get" (func $get (param i32 i32) (result i32)))
    (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
    (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
    (memory (export "memory") 1)
    (func (export "_start")
      (if (call $sizes (i32.const 0x100) (i32.const 0x104)) (then (call $exit (i32.const 200))))
      (if (i32.gt_u (i32.load (i32.const 0x104)) (i32.const 0x8000)) (then (call $exit (i32.const 201))))
      (if (call $get (i32.const 0x400) (i32.const 0x4000)) (then (call $exit (i32.const 202))))
      (i32.store (i32.const 0x108) (i32.const 0x4000))
      (i32.store (i32.const 0x10c) (i32.load (i32.const 0x104)))
      (if (call $write (i32.const 1) (i32.const 0x108) (i32.const 1) (i32.const 0x110)) (then (call $exit (i32.const 203))))
      (call $exit (i32.load (i32.const 0x100)))))`,
};

// proc_exit(code): codes a process status can carry (0..255) and codes it cannot.
const EXIT_CODES = [0, 3, 255, 256, 512, 257, 0xffffffff];
for (const code of EXIT_CODES) {
  WAT[`exit${code}`] = `(module
    (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
    (memory (export "memory") 1)
    (func (export "_start") (call $exit (i32.const ${code | 0}))))`;
}

beforeAll(async () => {
  tmp = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'capsa-cli-')));
  for (const [name, src] of Object.entries(WAT)) {
    wasm[name] = path.join(tmp, `${name}.wasm`);
    fs.writeFileSync(wasm[name]!, wat(src));
  }
  fs.writeFileSync(path.join(tmp, 'not-wasm.wasm'), '#!/bin/sh\necho this is not wasm\n');
});

afterAll(() => {
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

function capsa(args: string[], opts: { cwd?: string; input?: string | Buffer; env?: NodeJS.ProcessEnv } = {}): SpawnSyncReturns<string> {
  const r = spawnSync(process.execPath, [BIN, ...args], {
    cwd: opts.cwd ?? tmp,
    input: opts.input ?? '',
    env: opts.env ?? process.env,
    encoding: 'utf8',
    timeout: 25_000,
    maxBuffer: 64 << 20,
  });
  if (r.error) throw r.error;
  return r;
}

/** A fresh directory under tmp. */
function dir(name: string, files: Record<string, string> = {}): string {
  const d = fs.mkdtempSync(path.join(tmp, `${name}-`));
  for (const [f, content] of Object.entries(files)) fs.writeFileSync(path.join(d, f), content);
  return d;
}

describe('running guests', () => {
  it('hello.wasm -- world prints "hello world" and exits 0', () => {
    const r = capsa(['run', GUEST('hello'), '--', 'world']);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('hello world\n');
    expect(r.status).toBe(0);
  });

  it('hello.wasm -- --exit=7 exits 7 (arguments after -- are the guest\'s, even option-like ones)', () => {
    const r = capsa(['run', GUEST('hello'), '--', '--exit=7']);
    expect(r.stdout).toBe('hello\n');
    expect(r.status).toBe(7);
  });

  it('cat.wasm --dir TMP::/data:ro -- /data/notes.txt prints the file', () => {
    const d = dir('cat', { 'notes.txt': 'line one\nline two\n' });
    const r = capsa(['run', GUEST('cat'), '--dir', `${d}::/data:ro`, '--', '/data/notes.txt']);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('line one\nline two\n');
    expect(r.status).toBe(0);
  });

  it('cat.wasm cannot read a file that was not granted', () => {
    const d = dir('cat', { 'notes.txt': 'x' });
    const r = capsa(['run', GUEST('cat'), '--dir', `${d}::/data:ro`, '--', '/etc/passwd']);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^cat: \/etc\/passwd: /);
    expect(r.status).toBe(1);
  });

  it('uniq.wasm --dir in::/in:ro --dir out::/out writes the deduplicated file', () => {
    const work = dir('uniq');
    fs.mkdirSync(path.join(work, 'in'));
    fs.mkdirSync(path.join(work, 'out'));
    fs.writeFileSync(path.join(work, 'in', 'words.txt'), 'a\na\nb\nb\nb\na\nc\nc\n');
    const r = capsa(['run', GUEST('uniq'), '--dir', 'in::/in:ro', '--dir', 'out::/out', '--', '/in/words.txt', '/out/uniq.txt'], { cwd: work });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(fs.readFileSync(path.join(work, 'out', 'uniq.txt'), 'utf8')).toBe('a\nb\na\nc\n');
    expect(fs.readFileSync(path.join(work, 'in', 'words.txt'), 'utf8')).toBe('a\na\nb\nb\nb\na\nc\nc\n');
  });

  it('uniq.wasm cannot write into the read-only mount', () => {
    const work = dir('uniq');
    fs.mkdirSync(path.join(work, 'in'));
    fs.writeFileSync(path.join(work, 'in', 'words.txt'), 'a\n');
    const r = capsa(['run', GUEST('uniq'), '--dir', 'in::/in:ro', '--', '/in/words.txt', '/in/out.txt'], { cwd: work });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/uniq: \/in\/out\.txt: /);
    expect(fs.existsSync(path.join(work, 'in', 'out.txt'))).toBe(false);
  });
});

/** "NAME: errno=N (...)" / "NAME: ok ..." lines of escape.wasm. */
function parseEscape(stdout: string): Map<string, number | 'ok'> {
  const out = new Map<string, number | 'ok'>();
  for (const line of stdout.split('\n')) {
    if (line === '') continue;
    const m = /^([\w-]+): (?:errno=(\d+)|ok)\b/.exec(line);
    if (!m) throw new Error(`unexpected escape line: ${JSON.stringify(line)}`);
    out.set(m[1]!, m[2] === undefined ? 'ok' : Number(m[2]));
  }
  return out;
}

describe('escape.wasm', () => {
  const REFUSED = ['open-abs', 'open-dotdot', 'open-dotdot2', 'openat-abs', 'openat-dotdot', 'link-out-open', 'write-readonly',
    'create-file', 'widen-limit', 'widen-raw', 'enter-open-abs', 'enter-openat-dotdot', 'renumber-preopen-open',
    'symlink-abs-create', 'symlink-rel-create', 'fstat-limited', 'seek-limited', 'renumber-open-through'];
  const OK = ['preopen-data', 'open-notes', 'getmode-after', 'limit-read', 'read-limited', 'cap_enter', 'enter-open-preopen'];

  let data: string;
  let lines: Map<string, number | 'ok'>;
  let r: SpawnSyncReturns<string>;
  beforeAll(() => {
    data = dir('escape', { 'notes.txt': 'the notes\n' });
    fs.symlinkSync('/etc/passwd', path.join(data, 'link-out'));
    r = capsa(['run', '--dir', `${data}::/data:ro`, GUEST('escape')]);
    lines = parseEscape(r.stdout);
  });

  it('runs to the end and exits 0', () => {
    expect(r.status).toBe(0);
    expect(lines.has('renumber-preopen-open')).toBe(true);
  });

  it.each(REFUSED)('%s: errno=76 (ENOTCAPABLE)', (name) => {
    expect(lines.get(name)).toBe(76);
  });

  it.each(OK)('%s: ok', (name) => {
    expect(lines.get(name)).toBe('ok');
  });

  it('the mount is unchanged on the host: no file, no link, notes.txt intact', () => {
    expect(fs.readdirSync(data).sort()).toEqual(['link-out', 'notes.txt']);
    expect(fs.readFileSync(path.join(data, 'notes.txt'), 'utf8')).toBe('the notes\n');
  });

  it('read-write mount: the guest may write, but still cannot create links that leave the mount', () => {
    const rw = dir('escape-rw', { 'notes.txt': 'the notes\n' });
    const res = capsa(['run', '--dir', `${rw}::/data`, GUEST('escape')]);
    const l = parseEscape(res.stdout);
    expect(res.status).toBe(0);
    expect(l.get('write-readonly')).toBe('ok');
    expect(l.get('create-file')).toBe('ok');
    expect(l.get('symlink-abs-create')).toBe(76);
    expect(l.get('symlink-rel-create')).toBe(76);
    for (const name of ['open-abs', 'open-dotdot', 'open-dotdot2', 'openat-abs', 'openat-dotdot', 'widen-raw', 'enter-open-abs']) {
      expect(l.get(name), name).toBe(76);
    }
    expect(fs.readdirSync(rw).sort()).toEqual(['escape-created', 'notes.txt']);
  });
});

describe('stdin', () => {
  const INPUT = Buffer.alloc(300_000, 'abcdefghij\n');

  it('cat.wasm with no arguments echoes stdin (a file)', () => {
    const file = path.join(tmp, 'stdin.txt');
    fs.writeFileSync(file, INPUT);
    const fd = fs.openSync(file, 'r');
    try {
      const r = spawnSync(process.execPath, [BIN, 'run', GUEST('cat')], { cwd: tmp, stdio: [fd, 'pipe', 'pipe'], timeout: 25_000, maxBuffer: 64 << 20 });
      expect(r.stderr.toString()).toBe('');
      expect(r.status).toBe(0);
      expect(Buffer.compare(r.stdout, INPUT)).toBe(0);
    } finally {
      fs.closeSync(fd);
    }
  });

  it('cat.wasm with no arguments echoes stdin (a shell pipe)', () => {
    const file = path.join(tmp, 'stdin-pipe.txt');
    fs.writeFileSync(file, INPUT);
    const r = spawnSync('sh', ['-c', 'cat "$3" | exec "$0" "$1" run "$2"', process.execPath, BIN, GUEST('cat'), file],
      { cwd: tmp, stdio: ['ignore', 'pipe', 'pipe'], timeout: 25_000, maxBuffer: 64 << 20 });
    expect(r.stderr.toString()).toBe('');
    expect(r.status).toBe(0);
    expect(Buffer.compare(r.stdout, INPUT)).toBe(0);
  });

  it('stdin is streamed: each line comes back while stdin is still open (Node child_process pipe)', async () => {
    const child = spawn(process.execPath, [BIN, 'run', GUEST('cat')], { cwd: tmp, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    const waiters: (() => void)[] = [];
    child.stdout.setEncoding('utf8').on('data', (d: string) => { out += d; waiters.splice(0).forEach((w) => w()); });
    child.stderr.setEncoding('utf8').on('data', (d: string) => { err += d; });
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    const seen = (s: string) => new Promise<void>((resolve, reject) => {
      const check = () => (out.includes(s) ? resolve() : waiters.push(check));
      child.on('close', () => reject(new Error(`exited before printing ${JSON.stringify(s)}; stdout=${JSON.stringify(out)} stderr=${err}`)));
      check();
    });
    const write = (s: string) => new Promise<void>((resolve) => { child.stdin.write(s, () => resolve()); });
    try {
      await write('first line\n');
      await seen('first line\n');
      // The guest is now blocked reading an empty pipe: it must wait, not fail with EAGAIN.
      expect(child.exitCode).toBe(null);
      await write('second line\n');
      await seen('second line\n');
      child.stdin.end('third line\n');
      expect({ code: await exited, out, err }).toEqual({ code: 0, out: 'first line\nsecond line\nthird line\n', err: '' });
    } finally {
      if (child.exitCode === null) child.kill();
    }
  });

  // Found while writing this file and fixed concurrently in src/wasi/handles.ts: InputHandle.read
  // used to turn a host EAGAIN into WASI EAGAIN although the guest's stdin is blocking (fdflags 0).
  // The host fd is often non-blocking: `import { cpuUsage } from 'node:process'`
  // (src/wasi/syscalls/env.ts) makes Node's ESM facade evaluate every getter of `process`, including
  // the lazy `stdin`, which sets O_NONBLOCK on fd 0 when it is a pipe, socket or FIFO.
  it.runIf(fs.existsSync('/usr/bin/mkfifo') || fs.existsSync('/bin/mkfifo'))(
    'a guest read of its (blocking) stdin waits for data when the host fd is non-blocking', async () => {
      const fifo = path.join(tmp, 'nonblocking.fifo');
      execFileSync('mkfifo', [fifo]);
      const r = fs.openSync(fifo, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
      const w = fs.openSync(fifo, fs.constants.O_WRONLY);
      // Another process writes a second from now; until then the FIFO is empty but has a writer.
      const writer = spawn('sh', ['-c', 'sleep 1; printf late'], { stdio: ['ignore', w, 'ignore'] });
      const writerDone = new Promise((resolve) => writer.on('close', resolve));
      fs.closeSync(w);
      try {
        const h = harness({ stdin: r });
        expect(h.fdstat(0)[1].flags & FDFLAGS.NONBLOCK).toBe(0); // the guest was told reads block
        expect(h.read(0, 64)).toEqual([ERRNO.SUCCESS, 'late']);
      } finally {
        fs.closeSync(r);
        writer.kill();
        await writerDone;
      }
    });
});

/**
 * bin/capsa.js runs dist/ when it is built (as here) and otherwise registers tsx and imports
 * src/cli.ts. This runs that second branch directly, so the sources are covered even when dist/ exists.
 */
describe('capsa run from the sources (bin/capsa.js without dist/)', () => {
  function fromSource(args: string[], cwd: string): SpawnSyncReturns<string> {
    const script = path.join(tmp, 'capsa-from-source.mjs');
    // tsx's ESM entry, as bin/capsa.js's `import('tsx/esm/api')` resolves it from inside the repo.
    const tsxPkg = createRequire(path.join(REPO, 'package.json')).resolve('tsx/package.json');
    const entry = (JSON.parse(fs.readFileSync(tsxPkg, 'utf8')) as { exports: Record<string, { import: { default: string } }> }).exports['./esm/api']!.import.default;
    const tsxApi = pathToFileURL(path.join(path.dirname(tsxPkg), entry)).href;
    fs.writeFileSync(script, `const { register } = await import(${JSON.stringify(tsxApi)});\nregister();\n`
      + `await import(${JSON.stringify(pathToFileURL(path.join(REPO, 'src', 'cli.ts')).href)});\n`);
    const r = spawnSync(process.execPath, [script, ...args], { cwd, encoding: 'utf8', timeout: 25_000 });
    if (r.error) throw r.error;
    return r;
  }

  it('works with the repository as the working directory (control)', () => {
    const r = fromSource(['run', GUEST('hello'), '--', 'from', 'source'], REPO);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('hello from source\n');
    expect(r.status).toBe(0);
  });

  // From the sources, the worker's tsx loader is resolved from pool.ts, not from the cwd.
  it('works from any working directory', () => {
    const r = fromSource(['run', GUEST('hello'), '--', 'from', 'source'], tmp);
    expect(r.stdout).toBe('hello from source\n');
    expect(r.status).toBe(0);
  });
});

describe('exit statuses', () => {
  it.each([[0, 0], [3, 3], [255, 255], [256, 1], [512, 1], [257, 1], [0xffffffff, 1]])(
    'proc_exit(%d) exits %d; a code a status cannot carry is named on stderr', (code, status) => {
      const r = capsa(['run', wasm[`exit${code}`]!]);
      expect(r.status).toBe(status);
      if (status === code) expect(r.stderr).toBe('');
      else expect(r.stderr).toContain(`the guest exited with code ${code}, which a process status cannot carry; exiting 1`);
    });
});

describe('failures', () => {
  it('a module that traps exits 134 and stderr names the trap', () => {
    const r = capsa(['run', wasm['trap']!]);
    expect(r.status).toBe(134);
    expect(r.stderr).toMatch(/trap/i);
    expect(r.stderr).toMatch(/unreachable/);
  });

  it('infinite recursion exits 134 with "stack overflow"', () => {
    const r = capsa(['run', wasm['overflow']!]);
    expect(r.status).toBe(134);
    expect(r.stderr).toContain('stack overflow');
  });

  it('a module importing env.nope exits 1 and names env.nope', () => {
    const r = capsa(['run', wasm['importsNope']!]);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('env.nope');
    expect(r.stdout).toBe('');
  });

  // capsa's first CLI said "Cannot compile MODULE: ..."; the worker-based host that replaced it
  // refuses before compiling with "invalid_module: Cannot run the module: ...". Either names the cause.
  it('a file that is not wasm exits 1 with "Cannot compile" (or the host invalid_module refusal)', () => {
    const r = capsa(['run', path.join(tmp, 'not-wasm.wasm')]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/Cannot compile|invalid_module: Cannot run the module: it does not start with the WebAssembly magic number/);
    expect(r.stdout).toBe('');
  });

  it('a module with a valid header but a broken body exits 1 and says it is not valid', () => {
    const bad = path.join(tmp, 'bad-body.wasm');
    // Type section: one () -> () type; code section: one body, but no function section.
    fs.writeFileSync(bad, Buffer.from([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 1, 4, 1, 0x60, 0, 0, 0x0a, 4, 1, 2, 0, 0x0b]));
    const r = capsa(['run', bad]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/Cannot compile|not valid WebAssembly/);
  });

  it('a module that does not exist exits 1 and names it', () => {
    const missing = path.join(tmp, 'no-such-module.wasm');
    const r = capsa(['run', missing]);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(missing);
  });
});

describe('usage', () => {
  it('capsa run --help prints usage including --dir and --env', () => {
    const r = capsa(['run', '--help']);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/Usage: capsa run/);
    expect(r.stdout).toContain('--dir');
    expect(r.stdout).toContain('--env');
  });

  it.each([['::/data'], ['somewhere::'], ['::'], ['::/data:ro']])('bad --dir %j exits 2 with a message', (spec) => {
    const r = capsa(['run', '--dir', spec, GUEST('hello')]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('--dir');
    expect(r.stdout).toBe('');
  });

  it.each([['=value'], ['']])('bad --env %j exits 2 with a message', (item) => {
    const r = capsa(['run', '--env', item, GUEST('hello')]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('--env');
    expect(r.stderr).toContain(item);
    expect(r.stdout).toBe('');
  });

  it('an unknown option exits 2', () => {
    const r = capsa(['run', '--no-such-option', GUEST('hello')]);
    expect(r.status).toBe(2);
    expect(r.stdout).toBe('');
  });

  it('a missing host directory for --dir exits 1 with a message naming it', () => {
    const missing = path.join(tmp, 'does-not-exist');
    const r = capsa(['run', '--dir', `${missing}::/data`, GUEST('hello')]);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(missing);
    expect(r.stdout).toBe('');
  });
});

describe('environment', () => {
  const hostEnv = { ...process.env, CAPSA_HOST_SECRET: 'do-not-leak', HOME: '/home/secret-user' };

  it('host variables are not visible to the guest', () => {
    const r = capsa(['run', wasm['env']!], { env: hostEnv });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toBe('');
  });

  it('only the variables given with --env are, exactly', () => {
    const r = capsa(['run', '--env', 'A=1', '--env', 'B=two=2', '--env', 'EMPTY=', wasm['env']!], { env: hostEnv });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(3);
    expect(r.stdout).toBe('A=1\0B=two=2\0EMPTY=\0');
    expect(r.stdout).not.toContain('do-not-leak');
  });
});

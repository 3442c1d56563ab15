/**
 * The CLI as a wasmtime user expects it (issue 15): arguments after the module are the guest's,
 * --version and --help everywhere, --env NAME, one error style and exit code per kind, the truth
 * about blame and status, trap backtraces, no hidden maxima, --json, --invoke and completion.
 * The real CLI (bin/capsa.js) in a child process.
 */
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { wat } from '../helpers/wat.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const BIN = path.join(REPO, 'bin', 'capsa.js');
const HELLO = path.join(REPO, 'guests', 'build', 'hello.wasm');

const WAT: Record<string, string> = {
  // Prints its environment block to stdout.
  env: `(module
    (import "wasi_snapshot_preview1" "environ_sizes_get" (func $sizes (param i32 i32) (result i32)))
    (import "wasi_snapshot_preview1" "environ_get" (func $get (param i32 i32) (result i32)))
    (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
    (memory (export "memory") 1)
    (func (export "_start")
      (drop (call $sizes (i32.const 0x100) (i32.const 0x104)))
      (drop (call $get (i32.const 0x400) (i32.const 0x4000)))
      (i32.store (i32.const 0x108) (i32.const 0x4000))
      (i32.store (i32.const 0x10c) (i32.load (i32.const 0x104)))
      (drop (call $write (i32.const 1) (i32.const 0x108) (i32.const 1) (i32.const 0x110)))))`,
  reactor: `(module (memory (export "memory") 1)
    (func (export "_initialize"))
    (func (export "add") (param i32 i32) (result i32) (i32.add (local.get 0) (local.get 1)))
    (func (export "twice") (param i64) (result i64) (i64.mul (local.get 0) (i64.const 2))))`,
  empty: '(module)',
  nomemory: '(module (func (export "_start")))',
  trap: `(module (memory (export "memory") 1)
    (func $inner (param i32) unreachable)
    (func $middle (call $inner (i32.const 1)))
    (func (export "_start") (call $middle)))`,
  // Grows its memory until memory.grow fails, then exits 7 (as a program whose malloc failed).
  grow7: `(module
    (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
    (memory (export "memory") 1)
    (func (export "_start")
      (loop $l (if (i32.ne (memory.grow (i32.const 1)) (i32.const -1)) (then (br $l))))
      (call $exit (i32.const 7))))`,
  // Declares a 64 MiB maximum, grows to it if it may, and exits with the pages it has.
  growmax: `(module
    (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
    (memory (export "memory") 1 1024)
    (func (export "_start")
      (loop $l (if (i32.ne (memory.grow (i32.const 1)) (i32.const -1)) (then (br $l))))
      (call $exit (memory.size))))`,
};

let tmp: string;
const wasm: Record<string, string> = {};

beforeAll(() => {
  tmp = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'capsa-first-hour-')));
  for (const [name, src] of Object.entries(WAT)) {
    wasm[name] = path.join(tmp, `${name}.wasm`);
    fs.writeFileSync(wasm[name]!, wat(src, { names: true }));
  }
});

afterAll(() => {
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

function capsa(args: string[], env: NodeJS.ProcessEnv = process.env): SpawnSyncReturns<string> {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd: tmp, input: '', env, encoding: 'utf8', timeout: 60_000 });
  if (r.error) throw r.error;
  return r;
}

describe('everything after the module is the guest\'s', () => {
  it('run hello.wasm --exit=3 passes --exit=3 on, as wasmtime does', () => {
    const r = capsa(['run', HELLO, '--exit=3']);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('hello\n');
    expect(r.status).toBe(3);
  });

  it('options before the module are capsa\'s; a guest argument named like one of them is the guest\'s', () => {
    const r = capsa(['run', '--env', 'A=1', HELLO, 'world', '--env']);
    expect(r.stdout).toBe('hello world --env\n');
    expect(r.status).toBe(0);
  });

  it("-- keeps working, with or without capsa options between the module and it", { timeout: 60_000 }, () => {
    expect(capsa(['run', HELLO, '--', 'world']).stdout).toBe('hello world\n');
    const r = capsa(['run', wasm.env!, '--env', 'A=1', '--', 'x']);
    expect(r.stdout).toBe('A=1\0');
    // Not all capsa options between the module and "--": all of it is the guest's, "--" too.
    expect(capsa(['run', HELLO, '--nope', '--', 'x']).stdout).toBe('hello --nope -- x\n');
  });
});

describe('--version and --help everywhere', () => {
  it('capsa --version prints package.json\'s version', () => {
    const { version } = JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { version: string };
    const r = capsa(['--version']);
    expect(r.stdout).toBe(`capsa ${version}\n`);
    expect(r.status).toBe(0);
  });

  it.each([
    ['run'], ['manifest'], ['manifest', 'check'], ['manifest', 'from-flags'], ['serve'], ['tenant'], ['tenant', 'create'], ['completion'],
  ])('capsa %s --help prints its usage and exits 0', (...cmd) => {
    const r = capsa([...cmd, '--help']);
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/^Usage: capsa /);
    expect(r.status).toBe(0);
  });
});

describe('--env NAME', () => {
  it('passes the host\'s value of NAME, and nothing for a NAME the host does not have', () => {
    const r = capsa(['run', '--env', 'CAPSA_T1', '--env', 'CAPSA_UNSET_T2', '--env', 'B=2', wasm.env!], { ...process.env, CAPSA_T1: 'from host' });
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('CAPSA_T1=from host\0B=2\0');
  });
});

describe('one error style and one exit code per kind', () => {
  it.each([
    ['--manifest', 'nope.yaml'], ['--casper-config', 'nope.yaml'], ['--argdata', 'nope.yaml'], ['--policy', 'nope.yaml'],
  ])('a missing %s file: "capsa: Cannot read …", exit 1', (flag, file) => {
    const r = capsa(['run', flag, file, HELLO]);
    expect(r.stderr).toMatch(/^capsa: Cannot read (the manifest )?nope\.yaml: ENOENT/);
    expect(r.status).toBe(1);
  });

  it('a missing module: "capsa: Cannot read …", exit 1; a usage error: "capsa: …", exit 2', { timeout: 90_000 }, () => {
    const missing = capsa(['run', 'nope.wasm']);
    expect(missing.stderr).toMatch(/^capsa: Cannot read nope\.wasm: ENOENT/);
    expect(missing.status).toBe(1);
    const unknown = capsa(['run', '--nope', HELLO]);
    expect(unknown.stderr).toMatch(/^capsa: Unknown option '--nope'/);
    expect(unknown.status).toBe(2);
    const cmd = capsa(['frobnicate']);
    expect(cmd.stderr).toMatch(/^capsa: unknown command "frobnicate"/);
    expect(cmd.status).toBe(2);
    const env = capsa(['manifest', 'from-flags', '--env', '=x']);
    expect(env.stderr).toMatch(/^capsa: --env =x: expected KEY=VALUE/);
    expect(env.status).toBe(2);
  });

  it('run --help documents every exit status the CLI uses', async () => {
    const help = capsa(['run', '--help']).stdout;
    const { exitStatus } = await import('../../src/cli/run.js');
    const statuses = ['exited', 'trapped', 'timeout', 'memory_limit', 'output_limit', 'cancelled', 'invalid_module', 'host_error'] as const;
    const codes = new Set(statuses.map((status) => exitStatus({ status } as never)).filter((c) => c !== 0));
    for (const code of [...codes, 2]) expect(help).toMatch(new RegExp(`^  ${code} `, 'm'));
  });
});

describe('blame and status tell the truth', () => {
  it.each([
    ['reactor', /it exports no _start function, so it is not a WASI command \(it is a reactor: it exports _initialize\); its exported functions: _initialize, add, twice; call one with invoke/],
    ['empty', /it exports no _start function/],
    ['nomemory', /it exports no memory named "memory"/],
  ])('%s.wasm is invalid_module (the guest\'s), exit 1, not host_error 70', (name, message) => {
    const r = capsa(['run', '--json', wasm[name]!]);
    expect(r.stderr).toMatch(message);
    const json = JSON.parse(r.stderr.trim().split('\n').at(-1)!) as { status: string; blame: string };
    expect(json).toMatchObject({ status: 'invalid_module', blame: 'guest' });
    expect(r.status).toBe(1);
  });

  it('--invoke NAME calls an export with the arguments converted by its types and prints what it returns', () => {
    const add = capsa(['run', '--invoke', 'add', wasm.reactor!, '40', '2']);
    expect(add.stderr).toBe('');
    expect(add.stdout).toBe('42\n');
    expect(add.status).toBe(0);
    expect(capsa(['run', '--invoke', 'twice', wasm.reactor!, '-0x10']).stdout).toBe('-32\n');
  });

  it('--invoke with the wrong arguments or name says what the export takes', () => {
    const wrong = capsa(['run', '--invoke', 'add', wasm.reactor!, '1']);
    expect(wrong.stderr).toMatch(/add takes 2 arguments \(i32, i32\), not 1/);
    expect(wrong.status).toBe(1);
    const nan = capsa(['run', '--invoke', 'add', wasm.reactor!, '1', 'x']);
    expect(nan.stderr).toMatch(/add's parameter 1 is an i32; "x" is not one/);
    expect(capsa(['run', '--invoke', 'nope', wasm.reactor!]).stderr).toMatch(/no function named "nope" to invoke/);
  });

  it('--memory holds a memory whose declared maximum is above it (the engine holds it, the module is not rewritten)', () => {
    expect(capsa(['run', '--memory', '4MiB', wasm.growmax!]).status).toBe(64);
    expect(capsa(['run', '--memory', '2MiB', wasm.growmax!]).status).toBe(32);
  });

  it('a guest that exits 7 after its memory.grow failed exits 7 (the status names the memory limit)', () => {
    const r = capsa(['run', '--memory', '4MiB', '--json', wasm.grow7!]);
    expect(r.status).toBe(7);
    const json = JSON.parse(r.stderr.trim().split('\n').at(-1)!) as { status: string; exitCode: number };
    expect(json).toMatchObject({ status: 'memory_limit', exitCode: 7, processExitStatus: 7 });
  });
});

describe('traps show where', () => {
  it('prints the wasm backtrace with the name section\'s function names', () => {
    const r = capsa(['run', wasm.trap!]);
    expect(r.status).toBe(134);
    expect(r.stderr).toMatch(/^capsa: guest trapped: unreachable \(unreachable\)\nwasm backtrace:\n +0: +0x[\da-f]+ - inner\n +1: +0x[\da-f]+ - middle\n +2: +0x[\da-f]+ - wasm-function\[2\]\n$/);
  });

  it('and each frame\'s file:line:column where the module has DWARF line information (clang -g), as wasmtime does', () => {
    const r = capsa(['run', path.join(REPO, 'guests', 'build', 'trap_debug.wasm')]);
    expect(r.status).toBe(134);
    expect(r.stderr).toMatch(/^capsa: guest trapped: divide by zero \(integer_divide_by_zero\)\nwasm backtrace:\n +0: +0x[\da-f]+ - divide\n {20}at src\/trap_debug\.c:15:12\n +1: +0x[\da-f]+ - compute\n {20}at src\/trap_debug\.c:22:10\n +2: +0x[\da-f]+ - main\n {20}at src\/trap_debug\.c:29:17\n/);
  });
});

describe('no hidden ceilings without --policy', () => {
  it('--timeout 10m --memory 2GiB --output-limit 1GiB run', () => {
    const r = capsa(['run', '--timeout', '10m', '--cpu', '10m', '--memory', '2GiB', '--output-limit', '1GiB', HELLO]);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('hello\n');
    expect(r.status).toBe(0);
  });

  it('a policy still caps them', () => {
    fs.writeFileSync(path.join(tmp, 'small.yaml'), 'limits: { wall: 1m }\n');
    const r = capsa(['run', '--policy', 'small.yaml', '--timeout', '10m', HELLO]);
    expect(r.stderr).toMatch(/limits\.wall: 600 s exceeds the policy's maximum 60 s/);
    expect(r.status).toBe(1);
  });
});

describe('--json', () => {
  it('writes the result as one JSON object on stderr, or to --json-file', () => {
    const r = capsa(['run', '--json', '--audit', 'denied', HELLO, '--exit=5']);
    expect(r.status).toBe(5);
    const json = JSON.parse(r.stderr) as Record<string, unknown>;
    expect(json).toMatchObject({ status: 'exited', exitCode: 5, blame: 'guest', processExitStatus: 5, audit: { events: 0, denied: 0, dropped: 0 } });
    expect(json.usage).toMatchObject({ wallMs: expect.any(Number), cpuMs: expect.any(Number), peakMemoryBytes: expect.any(Number) });
    const f = path.join(tmp, 'result.json');
    const q = capsa(['run', '--json-file', f, HELLO]);
    expect(q.stderr).toBe('');
    expect(JSON.parse(fs.readFileSync(f, 'utf8'))).toMatchObject({ status: 'exited', exitCode: 0 });
  });
});

describe('capsa completion', () => {
  it('prints a bash script that bash accepts and that completes run\'s options', () => {
    const r = capsa(['completion', 'bash']);
    expect(r.status).toBe(0);
    const script = path.join(tmp, 'capsa.bash');
    fs.writeFileSync(script, r.stdout);
    const check = spawnSync('bash', ['-c', `source ${script}; COMP_WORDS=(capsa run --me); COMP_CWORD=2; _capsa; echo "\${COMPREPLY[@]}"`], { encoding: 'utf8' });
    expect(check.stderr).toBe('');
    expect(check.stdout).toBe('--memory\n');
  });

  it('prints zsh and fish scripts', () => {
    const zsh = capsa(['completion', 'zsh']);
    expect(zsh.status).toBe(0);
    expect(zsh.stdout).toContain('compadd -- --manifest');
    const fish = capsa(['completion', 'fish']);
    expect(fish.status).toBe(0);
    expect(fish.stdout).toContain("complete -c capsa -n '__fish_seen_subcommand_from run' -l manifest");
  });

  it('refuses another shell with a usage error', () => {
    const r = capsa(['completion', 'tcsh']);
    expect(r.stderr).toMatch(/^capsa: completion: expected bash, zsh or fish/);
    expect(r.status).toBe(2);
  });
});

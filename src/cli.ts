#!/usr/bin/env node
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { unknownImports, unknownImportsMessage } from './host/imports.js';
import { classifyTrap } from './host/trap.js';
import { createWasi, type Preopen } from './wasi/wasi.js';

const RUN_HELP = `Usage: capsa run MODULE.wasm [options] [--] [ARGS...]

Runs a WebAssembly (WASI preview1) command. The guest gets nothing but what the
options grant: stdio, the directories given with --dir, the variables given with --env.
Every descriptor carries Capsicum rights; lookups stay beneath their directory.

Options:
  --dir HOST::GUEST[:ro]   Mount host directory HOST at guest path GUEST; ":ro" grants
                           read-only rights. "--dir HOST" mounts HOST at the same path.
  --env KEY=VALUE          Set an environment variable (repeatable). No host variable
                           is passed unless named here.
  -h, --help               Show this help.

Exit status: the guest's exit code; 134 when the guest traps (the trap is printed
to stderr); 1 when the module cannot be loaded (the message names the reason, such
as an import capsa does not provide).

Example:
  capsa run guests/build/cat.wasm --dir ./data::/data:ro -- /data/notes.txt`;

const TOP_HELP = `Usage: capsa <command> [options]

Commands:
  run MODULE.wasm   Run a WASI command under a Capsicum rights table

Run "capsa run --help" for the options of run.`;

class UsageError extends Error {}

/** Parses "HOST::GUEST[:ro]" (or "HOST") into a preopen. */
export function parseDir(spec: string): Preopen {
  let host = spec, guest = spec, readonly = false;
  const sep = spec.indexOf('::');
  if (sep >= 0) {
    host = spec.slice(0, sep);
    guest = spec.slice(sep + 2);
  }
  if (guest.endsWith(':ro')) { guest = guest.slice(0, -3); readonly = true; }
  else if (guest.endsWith(':rw')) guest = guest.slice(0, -3);
  if (sep < 0) host = guest;
  if (!host || !guest) throw new UsageError(`--dir ${spec}: expected HOST::GUEST[:ro], e.g. --dir ./data::/data:ro`);
  if (!guest.startsWith('/')) guest = '/' + guest.replace(/^\.\//, '');
  return { host, guest, readonly };
}

function parseEnv(items: string[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const item of items) {
    const eq = item.indexOf('=');
    if (eq <= 0) throw new UsageError(`--env ${item}: expected KEY=VALUE`);
    env[item.slice(0, eq)] = item.slice(eq + 1);
  }
  return env;
}

function run(argv: string[]): number {
  const { values, positionals } = parseArgs({
    args: argv,
    options: {
      dir: { type: 'string', multiple: true, default: [] },
      env: { type: 'string', multiple: true, default: [] },
      help: { type: 'boolean', short: 'h', default: false },
    },
    allowPositionals: true,
    strict: true,
  });
  if (values.help) { process.stdout.write(RUN_HELP + '\n'); return 0; }
  const [modulePath, ...args] = positionals;
  if (!modulePath) throw new UsageError('capsa run: missing MODULE.wasm\n\n' + RUN_HELP);

  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(modulePath);
  } catch (e) {
    process.stderr.write(`capsa: Cannot read ${modulePath}: ${(e as Error).message}\n`);
    return 1;
  }
  let module: WebAssembly.Module;
  try {
    module = new WebAssembly.Module(bytes as Uint8Array<ArrayBuffer>);
  } catch (e) {
    process.stderr.write(`capsa: Cannot compile ${modulePath}: ${(e as Error).message}\n`);
    return 1;
  }
  const unknown = unknownImports(module);
  if (unknown.length) {
    process.stderr.write(`capsa: ${unknownImportsMessage(modulePath, unknown)}\n`);
    return 1;
  }

  let wasi;
  try {
    wasi = createWasi({
      args: [modulePath, ...args],
      env: parseEnv(values.env),
      preopens: values.dir.map(parseDir),
      stdin: 0, stdout: 1, stderr: 2,
      tty: Boolean(process.stdout.isTTY),
      onHostError: (call, err) => process.stderr.write(`capsa: host error in ${call}: ${(err as Error)?.stack ?? err}\n`),
    });
  } catch (e) {
    if (e instanceof UsageError) throw e;
    process.stderr.write(`capsa: ${(e as Error).message}\n`);
    return 1;
  }
  try {
    const instance = new WebAssembly.Instance(module, wasi.getImportObject());
    return wasi.start(instance);
  } catch (e) {
    const trap = classifyTrap(e);
    if (trap) {
      process.stderr.write(`capsa: guest trapped: ${trap.message} (${trap.kind})\n`);
      return 134;
    }
    process.stderr.write(`capsa: ${(e as Error).message}\n`);
    return 1;
  }
}

/** Entry point: dispatches the subcommand and maps usage errors to exit 2. */
export function main(argv: string[]): number {
  const [cmd, ...rest] = argv;
  try {
    if (cmd === 'run') return run(rest);
    if (cmd === undefined || cmd === '--help' || cmd === '-h' || cmd === 'help') {
      process.stdout.write(TOP_HELP + '\n');
      return cmd === undefined ? 2 : 0;
    }
    throw new UsageError(`capsa: unknown command ${JSON.stringify(cmd)}\n\n${TOP_HELP}`);
  } catch (e) {
    if (e instanceof UsageError || (e as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`${(e as Error).message}\n`);
      return 2;
    }
    throw e;
  }
}

process.exitCode = main(process.argv.slice(2));

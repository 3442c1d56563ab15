#!/usr/bin/env node
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { createHost } from './host/host.js';
import { DEFAULT_MAX_LIMITS, type Limits } from './host/limits.js';
import type { RunResult } from './host/result.js';
import { parseBytes, parseDuration } from './host/units.js';
import type { DirGrant } from './host/worker/protocol.js';

const RUN_HELP = `Usage: capsa run MODULE.wasm [options] [--] [ARGS...]

Runs a WebAssembly (WASI preview1) command. The guest gets nothing but what the
options grant: stdio, the directories given with --dir, the variables given with --env.
Every descriptor carries Capsicum rights; lookups stay beneath their directory.

Options:
  --dir HOST::GUEST[:ro]   Mount host directory HOST at guest path GUEST; ":ro" grants
                           read-only rights. "--dir HOST" mounts HOST at the same path.
  --env KEY=VALUE          Set an environment variable (repeatable). No host variable
                           is passed unless named here.
  --timeout DURATION       Wall-clock limit, e.g. 2s, 500ms, 1m (default 10s).
  --cpu DURATION           CPU-time limit of the guest's thread (default 10s).
  --memory SIZE            Most linear memory the guest may grow to, e.g. 64MiB
                           (default 256MiB); memory.grow past it returns -1.
  --output-limit SIZE      Most bytes on stdout and on stderr each (default 1MiB).
  --audit denied|all       Record capability decisions as JSON lines on stderr.
  --audit-file FILE        Write the audit lines to FILE instead.
  -h, --help               Show this help.

Exit status: the guest's exit code; 134 when the guest traps (the trap is printed
to stderr); 124 when it runs out of time; 125 when it hits its memory or output
limit; 1 when the module cannot be loaded (the message names the reason, such as
an import capsa does not provide); 2 for a usage error.

Example:
  capsa run guests/build/cat.wasm --dir ./data::/data:ro -- /data/notes.txt`;

const TOP_HELP = `Usage: capsa <command> [options]

Commands:
  run MODULE.wasm   Run a WASI command under a Capsicum rights table

Run "capsa run --help" for the options of run.`;

class UsageError extends Error {}

/** Parses "HOST::GUEST[:ro]" (or "HOST") into a preopen. */
export function parseDir(spec: string): DirGrant {
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

/** The process exit status for a run's end, documented in --help. */
export function exitStatus(r: RunResult): number {
  switch (r.status) {
    case 'exited': return r.exitCode ?? 0;
    case 'trapped': return 134;
    case 'timeout': return 124;
    case 'memory_limit':
    case 'output_limit': return 125;
    case 'cancelled': return 130;
    case 'invalid_module': return 1;
    case 'host_error': return 70;
  }
}

function optional<T>(v: string | undefined, parse: (s: string) => T): T | undefined {
  return v === undefined ? undefined : parse(v);
}

async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: {
      dir: { type: 'string', multiple: true, default: [] },
      env: { type: 'string', multiple: true, default: [] },
      timeout: { type: 'string' },
      cpu: { type: 'string' },
      memory: { type: 'string' },
      'output-limit': { type: 'string' },
      audit: { type: 'string' },
      'audit-file': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    allowPositionals: true,
    strict: true,
  });
  if (values.help) { process.stdout.write(RUN_HELP + '\n'); return 0; }
  const [modulePath, ...args] = positionals;
  if (!modulePath) throw new UsageError('capsa run: missing MODULE.wasm\n\n' + RUN_HELP);
  const audit = values.audit ?? 'off';
  if (audit !== 'off' && audit !== 'denied' && audit !== 'all') throw new UsageError(`--audit ${audit}: expected denied or all`);

  let limits: Partial<Limits>;
  try {
    limits = Object.fromEntries(Object.entries({
      wallMs: optional(values.timeout, (v) => parseDuration(v, '--timeout')),
      cpuMs: optional(values.cpu, (v) => parseDuration(v, '--cpu')),
      memoryBytes: optional(values.memory, (v) => parseBytes(v, '--memory')),
      outputBytes: optional(values['output-limit'], (v) => parseBytes(v, '--output-limit')),
    }).filter(([, v]) => v !== undefined));
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const dirs = values.dir.map(parseDir);
  const env = parseEnv(values.env);
  // The worker starts while the module is read and compiled. The CLI's maxima are its own flags.
  const hostReady = createHost({ workers: 1, limits: { max: { ...DEFAULT_MAX_LIMITS, ...maxOf(limits) } } });
  const host = await (async () => {
    const problem = checkInputs(modulePath, dirs);
    if (problem === undefined) return hostReady;
    void hostReady.then((h) => h.close());
    process.stderr.write(`capsa: ${problem}\n`);
    return undefined;
  })();
  if (host === undefined) return 1;
  const bytes = fs.readFileSync(modulePath);

  let auditOut: number | undefined;
  if (audit !== 'off') auditOut = values['audit-file'] ? fs.openSync(values['audit-file'], 'w') : 2;
  try {
    const handle = host.start({
      module: bytes, argv0: modulePath, args, env, dirs, limits, audit,
      stdinFd: 0, stdoutFd: 1, stderrFd: 2, tty: Boolean(process.stdout.isTTY),
    });
    for await (const ev of handle) {
      if (ev.type === 'audit' && auditOut !== undefined) fs.writeSync(auditOut, JSON.stringify(ev.event) + '\n');
      if (ev.type === 'result') {
        const r = ev.result;
        if (r.status !== 'exited') process.stderr.write(`capsa: ${describe(r)}\n`);
        return exitStatus(r);
      }
    }
    return 70;
  } finally {
    // Not awaited: the process may exit while the worker thread winds down.
    void host.close();
  }
}

/** Why the module or a mount cannot be used, or undefined when all is well. */
function checkInputs(modulePath: string, dirs: DirGrant[]): string | undefined {
  try {
    if (!fs.statSync(modulePath).isFile()) return `Cannot read ${modulePath}: it is not a file`;
  } catch (e) {
    return `Cannot read ${modulePath}: ${(e as Error).message}`;
  }
  for (const d of dirs) {
    if (!fs.existsSync(d.host) || !fs.statSync(d.host).isDirectory()) return `Cannot mount ${d.host} at ${d.guest}: it is not a directory`;
  }
  return undefined;
}

function maxOf(l: Partial<Limits>): Partial<Limits> {
  return Object.fromEntries(Object.entries(l).map(([k, v]) => [k, Math.max(v, DEFAULT_MAX_LIMITS[k as keyof Limits])]));
}

function describe(r: RunResult): string {
  if (r.status === 'trapped' && r.trap) return `guest trapped: ${r.trap.message} (${r.trap.kind})`;
  return `${r.status}: ${r.message ?? ''}`;
}

/** Entry point: dispatches the subcommand and maps usage errors to exit 2. */
export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  try {
    if (cmd === 'run') return await run(rest);
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

process.exitCode = await main(process.argv.slice(2));

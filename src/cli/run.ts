/** `capsa run`: one guest, under a manifest, flags, or both. */
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { createHost } from '../host/host.js';
import { DEFAULT_LIMITS } from '../host/limits.js';
import { effectiveGrants, manifestOf } from '../manifest/effective.js';
import { parseArgdataDocument } from '../manifest/parse.js';
import { HeldPaths, loadPolicy, OPEN_POLICY } from '../manifest/policy.js';
import { ManifestError, type ArgNode, type Manifest } from '../manifest/types.js';
import { loadYaml, yaml } from '../manifest/yaml.js';
import type { RunResult } from '../host/result.js';
import { formatBacktrace } from '../host/trap.js';
import { applyFlags, hostDirProblem, InputError, parseDir, parseEnv, parseLimitFlags, splitGuestArgv, UsageError, type OptionSpec } from './flags.js';

export const RUN_HELP = `Usage: capsa run [options] MODULE.wasm [ARGS...]
       capsa run MODULE.wasm [options] -- [ARGS...]

Runs a WebAssembly (WASI preview1) command. The guest gets nothing but what is
granted: stdio, the directories given with --dir or the manifest, the variables
given with --env or the manifest. Every descriptor carries Capsicum rights;
lookups stay beneath their directory.

Everything after MODULE.wasm is the guest's, as with wasmtime: "capsa run m.wasm
--exit=3" passes --exit=3 on. Options may also follow the module when a "--" ends
them: "capsa run m.wasm --dir d -- ARGS".

Options:
  --manifest FILE          Take the grants from a YAML manifest (docs/manifest.md);
                           the flags below add to it, and MODULE/ARGS replace its own.
  --policy FILE            Refuse a manifest that asks for more than this policy allows.
                           Without it there are no maxima: you are the operator.
  --casper-config FILE     The operator's configuration of Casper services (YAML), e.g.
                           "system.dns: { servers: [127.0.0.1:5353] }" or a virtual
                           passwd database under system.pwd (docs/casper.md).
  --argdata FILE           A cloudabi-run document: the whole YAML document is the
                           guest's argdata tree, and !file names a host file or
                           directory (relative to FILE), as "cloudabi-run prog < FILE".
  --dir HOST::GUEST[:ro]   Mount host directory HOST at guest path GUEST; ":ro" grants
                           read-only rights (rpath). "--dir HOST" mounts HOST at the same path.
  --listen ADDR            Hand the guest a listening socket on ADDR (127.0.0.1:8080,
                           [::1]:8080, or a UNIX socket path; port 0 picks one and
                           stderr names it), after its directories (repeatable). It
                           holds CAP_ACCEPT and CAP_EVENT; accepted connections
                           CAP_RECV, CAP_SEND, CAP_SHUTDOWN, CAP_EVENT. A server
                           needs a --timeout long enough to serve.
  --env KEY=VALUE          Set an environment variable (repeatable). "--env KEY" passes
                           the host's value of KEY on. No other host variable is passed.
  --timeout DURATION       Wall-clock limit, e.g. 2s, 500ms, 10m (default 10s).
  --cpu DURATION           CPU-time limit of the guest's thread (default 10s).
  --memory SIZE            Most linear memory the guest may grow to, e.g. 64MiB, 2GiB
                           (default 256MiB); memory.grow past it returns -1.
  --output-limit SIZE      Most bytes on stdout and on stderr each (default 1MiB).
  --invoke NAME            Call the exported function NAME with ARGS (numbers) instead
                           of _start, and print what it returns, one value a line.
  --audit denied|all       Record capability decisions as JSON lines on stderr.
  --audit-file FILE        Write the audit lines to FILE instead.
  --json                   At the end, write the run's result (status, exitCode, blame,
                           usage, an audit summary) as one JSON line on stderr.
  --json-file FILE         Write that JSON object to FILE instead.
  -h, --help               Show this help.

Exit status:
  0..255  the guest's exit code (also when it ended near its memory limit)
  1       the guest's code was outside 0..255 (stderr names it: a status keeps 8
          bits, so 256 would read as 0, success; wasmtime exits 1 too); or a file
          named on the command line, the module, the manifest or the policy cannot
          be read or used (invalid_module: not WebAssembly, no _start or no memory
          exported, an import nobody provides)
  2       a usage error: an unknown option, a missing or malformed value
  70      the host failed (host_error, blamed on the host)
  124     the guest ran out of time (wall-clock or CPU)
  125     the guest hit its memory or output limit
  130     the run was cancelled
  134     the guest trapped (the trap and its backtrace are printed to stderr)

Examples:
  capsa run guests/build/hello.wasm world
  capsa run --dir ./data::/data:ro guests/build/cat.wasm /data/notes.txt
  capsa run guests/build/cat.wasm --dir ./data::/data:ro -- /data/notes.txt
  capsa run --manifest uniq.yaml --policy policy.yaml
  capsa run --listen 127.0.0.1:8081 --dir ./site::/site:ro --timeout 1h guests/build/httpd.wasm`;

/**
 * A guest's exit code as a process status: 0..255 as it is; any other code is 1, since the OS
 * keeps only the low 8 bits and 256 or 512 would read as success (wasmtime exits 1 for codes it
 * refuses too). The run's result keeps the guest's own code.
 */
export function processStatus(code: number): number {
  return Number.isInteger(code) && code >= 0 && code <= 255 ? code : 1;
}

/** The process exit status for a run's end, documented in --help. */
export function exitStatus(r: RunResult): number {
  switch (r.status) {
    case 'exited': return processStatus(r.exitCode ?? 0);
    case 'trapped': return 134;
    case 'timeout': return 124;
    // A guest that exited near its memory cap chose its code: that is its status (as the result says).
    case 'memory_limit': return r.exitCode !== undefined ? processStatus(r.exitCode) : 125;
    case 'output_limit': return 125;
    case 'cancelled': return 130;
    case 'invalid_module': return 1;
    case 'host_error': return 70;
  }
}

/**
 * What the command line describes: the manifest's text (--manifest; empty without one), where it is,
 * and the flags as a change to the manifest it holds (module, args, --argdata, --dir, --env, limits).
 */
export function commandLine(argv: string[]): { text: string; file: string; baseDir: string; flags: (m: Manifest) => Manifest; values: ReturnType<typeof parse>['values'] } {
  const { values, positionals } = parse(argv);
  let text = '', file = '(flags)', baseDir = process.cwd();
  if (values.manifest !== undefined) {
    file = values.manifest;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (e) {
      throw new InputError(`Cannot read the manifest ${file}: ${(e as Error).message}`);
    }
    baseDir = path.dirname(path.resolve(file));
  }
  let argdata: ArgNode | undefined;
  if (values.argdata !== undefined) {
    let doc: string;
    try {
      doc = fs.readFileSync(values.argdata, 'utf8');
    } catch (e) {
      throw new InputError(`Cannot read ${values.argdata}: ${(e as Error).message}`);
    }
    argdata = parseArgdataDocument(doc, values.argdata, path.dirname(path.resolve(values.argdata)));
  }
  // Parsed now, so a malformed flag is a usage error whatever the manifest says.
  const [module, ...args] = positionals;
  const limits = parseLimitFlags(values);
  values.dir.forEach(parseDir);
  parseEnv(values.env);
  const dir = baseDir;
  const flags = (read: Manifest): Manifest => {
    const m = { ...read };
    // The manifest's module path is relative to the manifest, like its host directories.
    if (m.module !== undefined && !m.module.startsWith('sha256:')) m.module = path.resolve(dir, m.module);
    if (argdata) {
      if (m.argdata) throw new UsageError('--argdata: the manifest has argdata already; give one or the other');
      m.argdata = argdata;
    }
    return applyFlags(m, { module, args, dirs: values.dir, env: values.env, limits, listen: values.listen });
  };
  return { text, file, baseDir, flags, values };
}

/** The manifest the command line describes: --manifest, with the flags applied (throws its problems). */
export function manifestOfCommandLine(argv: string[]): { manifest: Manifest; file: string; baseDir: string; values: ReturnType<typeof parse>['values'] } {
  const { text, file, baseDir, flags, values } = commandLine(argv);
  return { manifest: manifestOf(text, { file, flags }), file, baseDir, values };
}

/** The options of `capsa run` (and of `capsa manifest from-flags`, which takes the same). */
const RUN_OPTIONS = {
      manifest: { type: 'string' },
      policy: { type: 'string' },
      argdata: { type: 'string' },
      'casper-config': { type: 'string' },
      dir: { type: 'string', multiple: true, default: [] },
      listen: { type: 'string', multiple: true, default: [] },
      env: { type: 'string', multiple: true, default: [] },
      timeout: { type: 'string' },
      cpu: { type: 'string' },
      memory: { type: 'string' },
      'output-limit': { type: 'string' },
      invoke: { type: 'string' },
      audit: { type: 'string' },
      'audit-file': { type: 'string' },
      json: { type: 'boolean', default: false },
      'json-file': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
} as const satisfies OptionSpec;

/** Whether the command line asks for help (before the module: after it, --help is the guest's). */
export function wantsHelp(argv: string[]): boolean {
  return Boolean(parse(argv).values.help);
}

function parse(argv: string[]) {
  return parseArgs({
    args: splitGuestArgv(argv, RUN_OPTIONS),
    options: RUN_OPTIONS,
    allowPositionals: true,
    strict: true,
  });
}

/** Runs `capsa run`; returns the exit status. */
export async function run(argv: string[]): Promise<number> {
  if (wantsHelp(argv)) { process.stdout.write(RUN_HELP + '\n'); return 0; }
  // YAML only when a file asks for it: a run from flags alone reads none (see manifest/yaml.ts).
  const files = parse(argv).values;
  if (files.manifest !== undefined || files.policy !== undefined || files.argdata !== undefined || files['casper-config'] !== undefined) await loadYaml();
  const { text, file, baseDir, flags, values } = commandLine(argv);
  // --audit-file alone records every decision: it is what `capsa manifest diff --audit` reads.
  const audit = values.audit ?? (values['audit-file'] !== undefined ? 'all' : 'off');
  if (audit !== 'off' && audit !== 'denied' && audit !== 'all') throw new UsageError(`--audit ${audit}: expected denied or all`);
  const policy = values.policy !== undefined ? loadPolicy(values.policy) : OPEN_POLICY;
  // The worker starts while the manifest is checked and the module read.
  const casperConfig = values['casper-config'] !== undefined ? readCasperConfig(values['casper-config']) : {};
  // One run, so no module cache: nothing hashes the module (a cache finds modules by their sha256).
  const hostReady = createHost({ workers: 1, cacheBytes: 0, limits: { max: policy.limits }, casperConfig, memoryCapByEngine: true });
  // The host directories and files the policy check opened stay open for the run, which mounts
  // them by descriptor: what was checked is what the guest gets.
  const held = new HeldPaths();
  try {
    const { manifest: effective, request } = effectiveGrants(text, { file, policy, defaults: DEFAULT_LIMITS, baseDir, flags, held });
    const module = effective.module;
    if (module === undefined) {
      void hostReady.then((h) => h.close(), () => undefined);
      throw new UsageError('run: missing MODULE.wasm (or a module: in the manifest)\n\n' + RUN_HELP);
    }
    const problem = checkInputs(module, effective);
    if (problem !== undefined) throw new InputError(problem);
    const host = await hostReady;
    let auditOut: number | undefined;
    if (audit !== 'off') auditOut = values['audit-file'] ? fs.openSync(values['audit-file'], 'w') : 2;
    try {
      const handle = host.start({
        ...request, module: fs.readFileSync(module), argv0: module, audit,
        stdinFd: 0, stdoutFd: 1, stderrFd: 2, tty: Boolean(process.stdout.isTTY),
        ...(values.invoke !== undefined ? { invoke: { name: values.invoke, args: request.args ?? [] } } : {}),
        onListening: (addresses) => { for (const a of addresses) process.stderr.write(`capsa: listening on ${a}\n`); },
      });
      const counts = { events: 0, denied: 0 };
      for await (const ev of handle) {
        if (ev.type === 'audit') {
          counts.events++;
          if (ev.event.decision === 'denied') counts.denied++;
          if (auditOut !== undefined) fs.writeSync(auditOut, JSON.stringify(ev.event) + '\n');
        }
        if (ev.type === 'result') {
          const r = ev.result;
          if (r.returned?.length) fs.writeSync(1, r.returned.join('\n') + '\n');
          if (r.status !== 'exited') process.stderr.write(`capsa: ${describe(r)}\n`);
          const status = exitStatus(r);
          if (r.status === 'exited' && status !== r.exitCode) {
            process.stderr.write(`capsa: the guest exited with code ${r.exitCode}, which a process status cannot carry; exiting ${status}\n`);
          }
          if (values.json || values['json-file'] !== undefined) {
            const line = JSON.stringify(resultSummary(r, counts, status)) + '\n';
            if (values['json-file'] !== undefined) fs.writeFileSync(values['json-file'], line);
            else process.stderr.write(line);
          }
          return status;
        }
      }
      return 70;
    } finally {
      // Not awaited: the process may exit while the worker thread winds down.
      void host.close();
    }
  } catch (e) {
    void hostReady.then((h) => h.close(), () => undefined);
    if (e instanceof ManifestError) {
      process.stderr.write(`capsa: the manifest cannot be used:\n${e.message}\n`);
      return 1;
    }
    // Printed by main, one style for every command.
    throw e;
  } finally {
    held.close();
  }
}

function describe(r: RunResult): string {
  if (r.status === 'trapped' && r.trap) {
    const where = r.trap.frames?.length ? `\n${formatBacktrace(r.trap.frames)}` : '';
    return `guest trapped: ${r.trap.message} (${r.trap.kind})${where}`;
  }
  return `${r.status}: ${r.message ?? ''}`;
}

/** The run's end for scripts (--json): everything but the output, which went to stdout and stderr. */
export function resultSummary(r: RunResult, audit: { events: number; denied: number }, exitStatus: number): Record<string, unknown> {
  const { stdout: _o, stderr: _e, files: _f, audit: a, ...rest } = r;
  return { ...rest, processExitStatus: exitStatus, audit: { ...audit, dropped: a.dropped } };
}

/** The operator's Casper configuration (--casper-config FILE, YAML); an InputError says what is wrong. */
export function readCasperConfig(file: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = yaml().parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new InputError(`Cannot read ${file}: ${(e as Error).message}`);
  }
  if (value === null || value === undefined) return {};
  if (typeof value !== 'object' || Array.isArray(value)) throw new InputError(`${file}: a Casper configuration is a mapping of service names`);
  return value as Record<string, unknown>;
}

function hostFiles(n: ArgNode | undefined): string[] {
  if (n?.type === 'file') return n.host ? [n.path] : [];
  if (n?.type === 'seq') return n.items.flatMap(hostFiles);
  if (n?.type === 'map') return n.entries.flatMap(([k, v]) => [...hostFiles(k), ...hostFiles(v)]);
  return [];
}

/** Why the module or a mount cannot be used, or undefined when all is well. */
function checkInputs(modulePath: string, m: Manifest): string | undefined {
  if (modulePath.startsWith('sha256:')) return `${modulePath}: the CLI runs module files; ids are for the service`;
  try {
    if (!fs.statSync(modulePath).isFile()) return `Cannot read ${modulePath}: it is not a file`;
  } catch (e) {
    return `Cannot read ${modulePath}: ${(e as Error).message}`;
  }
  for (const f of hostFiles(m.argdata)) {
    if (!fs.existsSync(f)) return `Cannot give ${f} to the guest (argdata !file): it does not exist`;
  }
  for (const d of m.dirs) {
    const problem = d.host === undefined ? undefined : hostDirProblem(d.host);
    if (problem !== undefined) return `Cannot mount ${d.host} at ${d.guest}: ${problem}`;
  }
  return undefined;
}

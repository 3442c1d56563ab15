/** `capsa run`: one guest, under a manifest, flags, or both. */
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import YAML from 'yaml';
import { createHost } from '../host/host.js';
import { DEFAULT_LIMITS } from '../host/limits.js';
import { parseArgdataDocument, parseManifest } from '../manifest/parse.js';
import { applyPolicy, checkCasperGrants, HeldPaths, loadPolicy, OPEN_POLICY } from '../manifest/policy.js';
import { requestFromManifest } from '../manifest/to-request.js';
import { ManifestError, type ArgNode, type Manifest } from '../manifest/types.js';
import type { RunResult } from '../host/result.js';
import { applyFlags, parseLimitFlags, UsageError } from './flags.js';

export const RUN_HELP = `Usage: capsa run [MODULE.wasm] [options] [--] [ARGS...]

Runs a WebAssembly (WASI preview1) command. The guest gets nothing but what is
granted: stdio, the directories given with --dir or the manifest, the variables
given with --env or the manifest. Every descriptor carries Capsicum rights;
lookups stay beneath their directory.

Options:
  --manifest FILE          Take the grants from a YAML manifest (docs/manifest.md);
                           the flags below add to it, and MODULE/ARGS replace its own.
  --policy FILE            Refuse a manifest that asks for more than this policy allows.
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

Exit status: the guest's exit code when it is 0..255; 1 for any other code, which
stderr then names (a status keeps 8 bits, so 256 would read as 0, success;
wasmtime exits 1 for the codes it refuses, too); 134 when the guest traps (the
trap is printed to stderr); 124 when it runs out of time; 125 when it hits its
memory or output limit; 1 when the module or the manifest cannot be used (the
message says why); 2 for a usage error.

Examples:
  capsa run guests/build/cat.wasm --dir ./data::/data:ro -- /data/notes.txt
  capsa run --manifest uniq.yaml --policy policy.yaml
  capsa run guests/build/httpd.wasm --listen 127.0.0.1:8081 --dir ./site::/site:ro --timeout 1h`;

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
    case 'memory_limit':
    case 'output_limit': return 125;
    case 'cancelled': return 130;
    case 'invalid_module': return 1;
    case 'host_error': return 70;
  }
}

/** The manifest the command line describes: --manifest, with the flags applied. */
export function manifestOfCommandLine(argv: string[]): { manifest: Manifest; file: string; baseDir: string; values: ReturnType<typeof parse>['values'] } {
  const { values, positionals } = parse(argv);
  let manifest: Manifest = { args: [], env: {}, dirs: [], limits: {}, casper: {} };
  let file = '(flags)', baseDir = process.cwd();
  if (values.manifest !== undefined) {
    file = values.manifest;
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (e) {
      throw new UsageError(`Cannot read the manifest ${file}: ${(e as Error).message}`);
    }
    manifest = parseManifest(text, file);
    baseDir = path.dirname(path.resolve(file));
    // The manifest's module path is relative to the manifest, like its host directories.
    if (manifest.module !== undefined && !manifest.module.startsWith('sha256:')) manifest.module = path.resolve(baseDir, manifest.module);
  }
  if (values.argdata !== undefined) {
    if (manifest.argdata) throw new UsageError('--argdata: the manifest has argdata already; give one or the other');
    let text: string;
    try {
      text = fs.readFileSync(values.argdata, 'utf8');
    } catch (e) {
      throw new UsageError(`Cannot read ${values.argdata}: ${(e as Error).message}`);
    }
    manifest.argdata = parseArgdataDocument(text, values.argdata, path.dirname(path.resolve(values.argdata)));
  }
  const [module, ...args] = positionals;
  manifest = applyFlags(manifest, { module, args, dirs: values.dir, env: values.env, limits: parseLimitFlags(values), listen: values.listen });
  return { manifest, file, baseDir, values };
}

function parse(argv: string[]) {
  return parseArgs({
    args: argv,
    options: {
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
      audit: { type: 'string' },
      'audit-file': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    allowPositionals: true,
    strict: true,
  });
}

/** Runs `capsa run`; returns the exit status. */
export async function run(argv: string[]): Promise<number> {
  const { manifest, file, baseDir, values } = manifestOfCommandLine(argv);
  if (values.help) { process.stdout.write(RUN_HELP + '\n'); return 0; }
  const audit = values.audit ?? 'off';
  if (audit !== 'off' && audit !== 'denied' && audit !== 'all') throw new UsageError(`--audit ${audit}: expected denied or all`);
  if (manifest.module === undefined) throw new UsageError('capsa run: missing MODULE.wasm (or a module: in the manifest)\n\n' + RUN_HELP);
  const policy = values.policy !== undefined ? loadPolicy(values.policy) : OPEN_POLICY;
  // The worker starts while the manifest is checked and the module read.
  const casperConfig = values['casper-config'] !== undefined ? readCasperConfig(values['casper-config']) : {};
  const hostReady = createHost({ workers: 1, limits: { max: policy.limits }, casperConfig });
  // The host directories and files the policy check opened stay open for the run, which mounts
  // them by descriptor: what was checked is what the guest gets.
  const held = new HeldPaths();
  try {
    const effective = applyPolicy(manifest, policy, DEFAULT_LIMITS, file, baseDir, held);
    checkCasperGrants(effective, file);
    const problem = checkInputs(manifest.module, effective);
    if (problem !== undefined) throw new UsageError(problem);
    const host = await hostReady;
    let auditOut: number | undefined;
    if (audit !== 'off') auditOut = values['audit-file'] ? fs.openSync(values['audit-file'], 'w') : 2;
    try {
      const handle = host.start({
        ...requestFromManifest(effective), module: fs.readFileSync(manifest.module), argv0: manifest.module, audit,
        stdinFd: 0, stdoutFd: 1, stderrFd: 2, tty: Boolean(process.stdout.isTTY),
        onListening: (addresses) => { for (const a of addresses) process.stderr.write(`capsa: listening on ${a}\n`); },
      });
      for await (const ev of handle) {
        if (ev.type === 'audit' && auditOut !== undefined) fs.writeSync(auditOut, JSON.stringify(ev.event) + '\n');
        if (ev.type === 'result') {
          const r = ev.result;
          if (r.status !== 'exited') process.stderr.write(`capsa: ${describe(r)}\n`);
          const status = exitStatus(r);
          if (r.status === 'exited' && status !== r.exitCode) {
            process.stderr.write(`capsa: the guest exited with code ${r.exitCode}, which a process status cannot carry; exiting ${status}\n`);
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
    if (e instanceof UsageError) {
      process.stderr.write(`capsa: ${e.message}\n`);
      return 1;
    }
    throw e;
  } finally {
    held.close();
  }
}

function describe(r: RunResult): string {
  if (r.status === 'trapped' && r.trap) return `guest trapped: ${r.trap.message} (${r.trap.kind})`;
  return `${r.status}: ${r.message ?? ''}`;
}

function readCasperConfig(file: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = YAML.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new UsageError(`Cannot read ${file}: ${(e as Error).message}`);
  }
  if (value === null || value === undefined) return {};
  if (typeof value !== 'object' || Array.isArray(value)) throw new UsageError(`${file}: a Casper configuration is a mapping of service names`);
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
    if (d.source.kind !== 'host') continue;
    const p = d.source.path;
    if (!fs.existsSync(p) || !fs.statSync(p).isDirectory()) return `Cannot mount ${p} at ${d.guest}: it is not a directory`;
  }
  return undefined;
}

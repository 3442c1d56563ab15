/** `capsa learn` and `capsa manifest diff`: least-privilege manifests from what a guest really did. */
import fs from 'node:fs';
import path from 'node:path';
import { yaml } from '../manifest/yaml.js';
import { createHost, type RunRequest } from '../host/host.js';
import { DEFAULT_LIMITS } from '../host/limits.js';
import type { AuditEvent, RunResult } from '../host/result.js';
import { effectiveGrants, manifestOf } from '../manifest/effective.js';
import { grantDiff, learnedYaml, learnManifest, observedOf, usagesOf, widenByRefusals } from '../manifest/learn.js';
import { HeldPaths, loadPolicy, OPEN_POLICY } from '../manifest/policy.js';
import type { Manifest } from '../manifest/types.js';
import { UsageError } from './flags.js';
import { commandLine } from './run.js';

export const LEARN_HELP = `Usage: capsa learn [MODULE.wasm] [run options] [--] [ARGS...] > prog.yaml

Runs the guest with the grants given (the same options as "capsa run": --manifest,
--dir, --env, --policy, ...), records every capability decision, and prints the
least manifest that runs it: each directory with exactly the rights used, Casper
services narrowed to the commands used, limits from the observed usage with a
stated margin, and comments saying why each grant is there. The guest's stdin is
empty; its output is compared, not shown. The learned manifest is run once more
to check that it gives the same exit code and output (capsa says so otherwise).
--audit-file FILE keeps the first run's audit (JSON lines, docs/manifest.md).`;

/** Runs the guest once with audit "all", output captured; the audit is kept whole. */
async function runOnce(host: Awaited<ReturnType<typeof createHost>>, req: Omit<RunRequest, 'module'>, module: Uint8Array): Promise<RunResult> {
  return host.run({ ...req, module, audit: 'all', stdin: '' });
}

const sameOutput = (a: RunResult, b: RunResult) => a.status === b.status && a.exitCode === b.exitCode
  && Buffer.from(a.stdout).equals(Buffer.from(b.stdout)) && Buffer.from(a.stderr).equals(Buffer.from(b.stderr));

/**
 * The least manifest for what the command line describes, verified by a second run. Returns the
 * YAML, whether the learned manifest reproduced the run, and the first run.
 */
export async function learn(argv: string[]): Promise<{ yaml: string; reproduced: boolean; first: RunResult; events: AuditEvent[] }> {
  const { text, file, baseDir, flags, values } = commandLine(argv);
  const policy = values.policy !== undefined ? loadPolicy(values.policy) : OPEN_POLICY;
  const held = new HeldPaths();
  const host = await createHost({ workers: 1, limits: { max: policy.limits }, auditMax: 1_000_000, casperConfig: readConfig(values['casper-config']) });
  try {
    const grants = effectiveGrants(text, { file, policy, defaults: DEFAULT_LIMITS, baseDir, flags, held });
    const modulePath = grants.manifest.module;
    if (modulePath === undefined) throw new UsageError('capsa learn: missing MODULE.wasm (or a module: in the manifest)\n\n' + LEARN_HELP);
    const module = fs.readFileSync(modulePath);
    // The learned manifest names host directories as given (absolute), not as the held descriptors.
    const written = manifestOf(text, { file, flags });
    const given: Manifest = { ...grants.manifest, dirs: grants.manifest.dirs.map((d, i) => ({ ...d, ...(d.host !== undefined ? { host: path.resolve(baseDir, written.dirs[i]!.host!) } : {}) })) };
    const first = await runOnce(host, { ...grants.request, argv0: modulePath }, module);
    if (first.audit.dropped) throw new UsageError(`capsa learn: ${first.audit.dropped} audit events were dropped; the run cannot be learned whole`);
    const usages = usagesOf(given, first.audit.events);
    const seen = observedOf(first);
    const what = `a run of ${path.basename(modulePath)}`;
    let yaml = '';
    let reproduced = false;
    // The learned manifest is run again; a right it lacks (a program that asks for fixed rights) is
    // added back from the original grant, and it is run again, a few times at most.
    for (let round = 0; round < 4 && !reproduced; round++) {
      const learned = learnManifest(given, usages, seen);
      yaml = learnedYaml(learned, given, usages, seen, what);
      const again = effectiveGrants(yaml, { file: '(learned)', policy, defaults: DEFAULT_LIMITS, baseDir });
      const second = await runOnce(host, { ...again.request, argv0: modulePath }, module);
      reproduced = sameOutput(first, second);
      if (!reproduced && !widenByRefusals(given, usages, second.audit.events.filter((e) => e.decision === 'denied'))) break;
    }
    return { yaml, reproduced, first, events: first.audit.events };
  } finally {
    held.close();
    void host.close();
  }
}

function readConfig(file: string | undefined): Record<string, unknown> {
  if (file === undefined) return {};
  return (yaml().parse(fs.readFileSync(file, 'utf8')) ?? {}) as Record<string, unknown>;
}

/** Runs `capsa learn`; prints the manifest on stdout; returns the exit status. */
export async function learnCommand(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) { process.stdout.write(LEARN_HELP + '\n'); return 0; }
  const { values } = commandLine(argv);
  const { yaml, reproduced, first, events } = await learn(argv);
  if (values['audit-file'] !== undefined) fs.writeFileSync(values['audit-file'], events.map((e) => JSON.stringify(e) + '\n').join(''));
  process.stdout.write(yaml);
  process.stderr.write(`capsa learn: the guest ${first.status === 'exited' ? `exited ${first.exitCode}` : first.status}; ${events.length} decisions read\n`);
  if (!reproduced) {
    process.stderr.write('capsa learn: the learned manifest does not reproduce the run (different output or exit code); it needs more than the audit shows\n');
    return 1;
  }
  return 0;
}

/** Runs `capsa manifest diff M --audit run.jsonl [--audit more.jsonl]`; returns the exit status. */
export function manifestDiff(argv: string[]): number {
  const files: string[] = [];
  const audits: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--audit') { const f = argv[++i]; if (f === undefined) throw new UsageError('--audit needs a file'); audits.push(f); } else files.push(argv[i]!);
  }
  if (files.length !== 1 || audits.length === 0) throw new UsageError('Usage: capsa manifest diff MANIFEST --audit run.jsonl [--audit more.jsonl]');
  const file = files[0]!;
  const { manifest } = effectiveGrants(fs.readFileSync(file, 'utf8'), { file, policy: OPEN_POLICY, defaults: DEFAULT_LIMITS, baseDir: path.dirname(path.resolve(file)) });
  const events: AuditEvent[] = [];
  for (const a of audits) {
    fs.readFileSync(a, 'utf8').split('\n').forEach((line, n) => {
      if (line.trim() === '') return;
      try { events.push(JSON.parse(line) as AuditEvent); } catch { throw new UsageError(`${a}:${n + 1}: not a JSON audit line`); }
    });
  }
  const lines = grantDiff(manifest, usagesOf(manifest, events));
  process.stdout.write(lines.length ? `${lines.join('\n')}\n` : `${file}: every grant was used, nothing refused\n`);
  return 0;
}

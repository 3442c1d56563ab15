/** `capsa manifest check|from-flags`: what a manifest grants, and the manifest flags stand for. */
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { DEFAULT_LIMITS } from '../host/limits.js';
import { grantTable, manifestToYaml } from '../manifest/describe.js';
import { effectiveGrants } from '../manifest/effective.js';
import { loadPolicy, OPEN_POLICY } from '../manifest/policy.js';
import { ManifestError } from '../manifest/types.js';
import { InputError, UsageError } from './flags.js';
import { manifestDiff } from './learn.js';
import { manifestOfCommandLine, wantsHelp } from './run.js';

export const MANIFEST_HELP = `Usage: capsa manifest check FILE [--policy FILE]
       capsa manifest from-flags [MODULE.wasm] [run flags] [-- ARGS...]
       capsa manifest diff FILE --audit run.jsonl [--audit more.jsonl]

check        Validates FILE and prints the effective grants: each descriptor the guest
             starts with, its path and its rights by Capsicum name, the limits, the Casper
             services, and what each pledge promise expanded to. With --policy, a manifest
             that asks for more than the policy allows is refused with every excess named.
             Every error is printed at once as FILE:LINE:COL: what is wrong.
from-flags   Prints the manifest that "capsa run" flags (--dir, --env, --timeout, ...)
             stand for, with absolute host paths: it means the same wherever it is saved.
diff         Lists what FILE grants that the audited runs (capsa run --audit-file) never
             used, and every decision they were refused.

Options:
  --policy FILE   (check) Refuse what the policy does not allow.
  --audit FILE    (diff) An audit file written by capsa run --audit-file; repeatable.
  -h, --help      Show this help.

Exit status: 0 when the manifest can be used; 1 when it cannot (every problem is
printed as FILE:LINE:COL: what is wrong) or a file cannot be read; 2 for a usage error.`;

/** Runs `capsa manifest ...`; returns the exit status. */
export function manifest(argv: string[]): number {
  const [sub, ...rest] = argv;
  if (sub === 'diff') return manifestDiff(rest);
  if (sub === 'from-flags') {
    if (wantsHelp(rest)) { process.stdout.write(MANIFEST_HELP + '\n'); return 0; }
    const { manifest: m } = manifestOfCommandLine(rest);
    // Absolute, like the directories' sources: the saved manifest means the same wherever it is kept.
    if (m.module !== undefined && !m.module.startsWith('sha256:')) m.module = path.resolve(m.module);
    process.stdout.write(manifestToYaml(m));
    return 0;
  }
  if (sub !== 'check') {
    if (sub === undefined || sub === '--help' || sub === '-h') { process.stdout.write(MANIFEST_HELP + '\n'); return sub === undefined ? 2 : 0; }
    throw new UsageError(`manifest: unknown subcommand ${JSON.stringify(sub)}\n\n${MANIFEST_HELP}`);
  }
  const { values, positionals } = parseArgs({ args: rest, options: { policy: { type: 'string' }, help: { type: 'boolean', short: 'h' } }, allowPositionals: true, strict: true });
  if (values.help) { process.stdout.write(MANIFEST_HELP + '\n'); return 0; }
  const file = positionals[0];
  if (file === undefined || positionals.length > 1) throw new UsageError(`manifest check: give one manifest file\n\n${MANIFEST_HELP}`);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new InputError(`Cannot read ${file}: ${(e as Error).message}`);
  }
  try {
    const policy = values.policy !== undefined ? loadPolicy(values.policy) : OPEN_POLICY;
    const { manifest: effective } = effectiveGrants(text, { file, policy, defaults: DEFAULT_LIMITS, baseDir: path.dirname(path.resolve(file)) });
    process.stdout.write(`${file}: ok${values.policy ? ` under ${values.policy}` : ''}\n\n${grantTable(effective)}\n`);
    return 0;
  } catch (e) {
    if (!(e instanceof ManifestError)) throw e;
    process.stderr.write(`${e.message}\n`);
    return 1;
  }
}

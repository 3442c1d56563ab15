/** The capsa command: dispatches subcommands and turns usage errors into exit status 2. */
import { readFileSync } from 'node:fs';
import { NoSqliteDriverError } from '../api/store/sqlite-driver.js';
import { PolicyFileError } from '../manifest/policy.js';
import { ManifestError } from '../manifest/types.js';
import { InputError, UsageError } from './flags.js';
import { manifest } from './manifest.js';
import { run } from './run.js';
import { loadYaml } from '../manifest/yaml.js';

/** capsa's version, from package.json (read at run time: the bundle and the sources sit at different depths). */
export function version(): string {
  for (const rel of ['../../package.json', '../../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'capsa' && pkg.version) return pkg.version;
    } catch { /* the next candidate */ }
  }
  return 'unknown';
}

const TOP_HELP = `Usage: capsa <command> [options]

Commands:
  run MODULE.wasm [ARGS]  Run a WASI command under a Capsicum rights table
  manifest check FILE     Validate a manifest and print what it grants
  manifest from-flags     Print the manifest that run flags stand for
  manifest diff M --audit run.jsonl
                          What M grants that the audited runs never used
  learn MODULE.wasm       Run a guest and print the least manifest that runs it
  serve                   Run the multi-tenant REST service (--host, --port, --data, --policy, --workers)
  tenant create NAME      Make a tenant of the service; prints its API key
  tenant list|add-key|keys|revoke-key|set-policy
                          Manage the service's tenants, keys and policies
  migrate --store URL     Bring a PostgreSQL database to this build's schema (or CAPSA_DATABASE_URL)
  completion bash|zsh|fish
                          Print a shell completion script ("source <(capsa completion bash)")

Options:
  -h, --help              Show this help ("capsa COMMAND --help" for a command's options)
  -V, --version           Print capsa's version

Exit status (every command):
  0        success (for run: the guest's own exit code; capsa run --help lists the rest)
  1        a file, module, manifest or policy named on the command line cannot be read or used
  2        a usage error: an unknown command or option, a missing or malformed value
  70       capsa itself failed (a bug: please report it)
Errors are printed on stderr as "capsa: what is wrong"; manifest and policy
problems as "FILE:LINE:COL: what is wrong", one a line.`;

/** Runs the command line; returns the exit status. */
export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  try {
    if (cmd === 'run') return await run(rest);
    if (cmd === 'manifest') { await loadYaml(); return manifest(rest); }
    if (cmd === 'learn') { await loadYaml(); return await (await import('./learn.js')).learnCommand(rest); }
    // Loaded on demand: the service's modules (HTTP, SQLite) would slow every `capsa run` down.
    if (cmd === 'serve') return await (await import('./serve.js')).serve(rest);
    if (cmd === 'tenant') return await (await import('./tenant.js')).tenant(rest);
    if (cmd === 'migrate') return await (await import('./migrate.js')).migrate(rest);
    if (cmd === 'completion') return (await import('./completion.js')).completion(rest);
    if (cmd === '--version' || cmd === '-V' || cmd === 'version') {
      process.stdout.write(`capsa ${version()}\n`);
      return 0;
    }
    if (cmd === undefined || cmd === '--help' || cmd === '-h' || cmd === 'help') {
      (cmd === undefined ? process.stderr : process.stdout).write(TOP_HELP + '\n');
      return cmd === undefined ? 2 : 0;
    }
    throw new UsageError(`unknown command ${JSON.stringify(cmd)}\n\n${TOP_HELP}`);
  } catch (e) {
    // No SQLite driver loads here (better-sqlite3 not installed, Node 20): its message says what to install.
    if (e instanceof PolicyFileError || e instanceof InputError || e instanceof NoSqliteDriverError) {
      process.stderr.write(`capsa: ${e.message}\n`);
      return 1;
    }
    if (e instanceof ManifestError) {
      process.stderr.write(`${e.message}\n`);
      return 1;
    }
    if (e instanceof UsageError || (e as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`capsa: ${(e as Error).message}\n`);
      return 2;
    }
    process.stderr.write(`capsa: internal error: ${(e as Error)?.stack ?? String(e)}\n`);
    return 70;
  }
}

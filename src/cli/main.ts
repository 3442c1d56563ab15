/** The capsa command: dispatches subcommands and turns usage errors into exit status 2. */
import { PolicyFileError } from '../manifest/policy.js';
import { ManifestError } from '../manifest/types.js';
import { UsageError } from './flags.js';
import { manifest } from './manifest.js';
import { run } from './run.js';

const TOP_HELP = `Usage: capsa <command> [options]

Commands:
  run MODULE.wasm         Run a WASI command under a Capsicum rights table
  manifest check FILE     Validate a manifest and print what it grants
  manifest from-flags     Print the manifest that run flags stand for
  manifest diff M --audit run.jsonl
                          What M grants that the audited runs never used
  learn MODULE.wasm       Run a guest and print the least manifest that runs it
  serve                   Run the multi-tenant REST service (--host, --port, --data, --policy, --workers)
  tenant create NAME      Make a tenant of the service; prints its API key
  tenant list|add-key|keys|revoke-key|set-policy
  migrate --store URL      Bring a PostgreSQL database to this build's schema (or CAPSA_DATABASE_URL)
                          Manage the service's tenants, keys and policies

Run "capsa COMMAND --help" (run, manifest, serve, tenant) for their options.`;

/** Runs the command line; returns the exit status. */
export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  try {
    if (cmd === 'run') return await run(rest);
    if (cmd === 'manifest') return manifest(rest);
    if (cmd === 'learn') return await (await import('./learn.js')).learnCommand(rest);
    // Loaded on demand: the service's modules (HTTP, SQLite) would slow every `capsa run` down.
    if (cmd === 'serve') return await (await import('./serve.js')).serve(rest);
    if (cmd === 'tenant') return await (await import('./tenant.js')).tenant(rest);
    if (cmd === 'migrate') return await (await import('./migrate.js')).migrate(rest);
    if (cmd === undefined || cmd === '--help' || cmd === '-h' || cmd === 'help') {
      process.stdout.write(TOP_HELP + '\n');
      return cmd === undefined ? 2 : 0;
    }
    throw new UsageError(`capsa: unknown command ${JSON.stringify(cmd)}\n\n${TOP_HELP}`);
  } catch (e) {
    if (e instanceof PolicyFileError) {
      process.stderr.write(`capsa: ${e.message}\n`);
      return 1;
    }
    if (e instanceof ManifestError) {
      process.stderr.write(`${e.message}\n`);
      return 1;
    }
    if (e instanceof UsageError || (e as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`${(e as Error).message}\n`);
      return 2;
    }
    throw e;
  }
}

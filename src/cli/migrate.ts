/** `capsa migrate`: brings a PostgreSQL database to this build's schema (serve also does at start). */
import { parseArgs } from 'node:util';
import { migratePostgres } from '../api/store/postgres.js';
import { UsageError } from './flags.js';
import { storeUrl } from './store-url.js';

export const MIGRATE_HELP = `Usage: capsa migrate [--store postgres://USER@HOST:PORT/DB]

Applies the schema migrations the PostgreSQL database lacks (the URL from --store or
CAPSA_DATABASE_URL), under a lock, so nodes starting at once do not race. Prints the
versions before and after. "capsa serve" does the same at start.`;

/** Runs `capsa migrate`; returns the exit status. */
export async function migrate(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: { store: { type: 'string' }, help: { type: 'boolean', short: 'h', default: false } },
    allowPositionals: true,
    strict: true,
  });
  if (values.help) { process.stdout.write(MIGRATE_HELP + '\n'); return 0; }
  if (positionals.length) throw new UsageError(`capsa migrate: unexpected argument ${JSON.stringify(positionals[0])}\n\n${MIGRATE_HELP}`);
  const url = storeUrl(values.store);
  if (!url) throw new UsageError(`capsa migrate: name the database with --store postgres://… or CAPSA_DATABASE_URL\n\n${MIGRATE_HELP}`);
  try {
    const { from, to } = await migratePostgres(url);
    process.stderr.write(from === to ? `capsa: schema version ${to}, up to date\n` : `capsa: schema migrated from version ${from} to ${to}\n`);
    return 0;
  } catch (e) {
    process.stderr.write(`capsa: cannot migrate: ${(e as Error).message}\n`);
    return 1;
  }
}

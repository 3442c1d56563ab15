/** Which store a command uses: a PostgreSQL URL from --store or CAPSA_DATABASE_URL, else the data dir's SQLite. */
import { UsageError } from './flags.js';

/** The PostgreSQL URL to use, or undefined for SQLite; a --store that is not a postgres:// URL is a usage error. */
export function storeUrl(flag: string | undefined): string | undefined {
  const v = flag ?? (process.env['CAPSA_DATABASE_URL'] || undefined);
  if (v === undefined) return undefined;
  if (!isPostgresUrl(v)) {
    throw new UsageError(`${flag !== undefined ? '--store' : 'CAPSA_DATABASE_URL'} ${JSON.stringify(v.replace(/\/\/[^@/]*@/, '//…@'))}: expected postgres://USER@HOST:PORT/DATABASE`);
  }
  return v;
}

/** Whether `s` names a PostgreSQL store (the `--store` value or CAPSA_DATABASE_URL). */
export function isPostgresUrl(s: string | undefined): boolean {
  return typeof s === 'string' && /^postgres(ql)?:\/\//.test(s);
}

/**
 * globalSetup of the 'postgres' vitest project: a PostgreSQL server for the tests. CI (.ci/run)
 * starts one and sets CAPSA_TEST_DATABASE_URL; otherwise a throw-away cluster is started here with
 * scripts/pg-cluster.sh and stopped at the end. In CI a missing server fails the run: the
 * PostgreSQL tests are never skipped there.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

const script = path.join(import.meta.dirname, '../scripts/pg-cluster.sh');

export default function setup(): (() => void) | undefined {
  if (process.env['CAPSA_TEST_DATABASE_URL']) return undefined;
  const dir = mkdtempSync(path.join(tmpdir(), 'capsa-pg-'));
  try {
    const url = execFileSync('bash', [script, 'start', dir], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 120_000 }).trim();
    process.env['CAPSA_TEST_DATABASE_URL'] = url;
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    const why = `cannot start a PostgreSQL cluster: ${((e as { stderr?: string }).stderr || (e as Error).message).trim()}`;
    if (process.env['CI']) throw new Error(`${why} (CI must run the PostgreSQL tests)`);
    process.env['CAPSA_TEST_PG_UNAVAILABLE'] = why;
    return undefined;
  }
  return () => {
    try {
      execFileSync('bash', [script, 'stop', dir], { stdio: 'ignore', timeout: 60_000 });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
}

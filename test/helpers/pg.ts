/**
 * PostgreSQL for tests. The server's URL comes from CAPSA_TEST_DATABASE_URL: .ci/run starts a
 * throw-away cluster and exports it; without it, test/pg-setup.ts (the 'postgres' project's
 * globalSetup) starts one with scripts/pg-cluster.sh. Each test file gets a database of its own.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';

/** Which store the service tests run on: 'postgres' in the vitest project of that name. */
export function testStoreKind(): 'sqlite' | 'postgres' {
  return process.env['CAPSA_TEST_STORE'] === 'postgres' ? 'postgres' : 'sqlite';
}

/** Makes an empty database on the test server; returns its URL. */
export async function freshDatabase(): Promise<string> {
  // Unset only when no server could be had (never in CI: setup fails there).
  const server = process.env['CAPSA_TEST_DATABASE_URL'];
  if (!server) throw new Error(`no PostgreSQL server for the tests: ${process.env['CAPSA_TEST_PG_UNAVAILABLE'] ?? 'CAPSA_TEST_DATABASE_URL is not set'}`);
  const name = `capsa_test_${randomBytes(6).toString('hex')}`;
  const c = new pg.Client({ connectionString: server });
  await c.connect();
  try {
    await c.query(`CREATE DATABASE ${name}`);
  } finally {
    await c.end();
  }
  const u = new URL(server);
  u.pathname = `/${name}`;
  return u.toString();
}

/** Empties every capsa table of the database (between tests of one file). */
export async function truncateAll(url: string): Promise<void> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    await c.query('TRUNCATE tenants, api_keys, module_blobs, modules, runs, run_events CASCADE');
  } finally {
    await c.end();
  }
}

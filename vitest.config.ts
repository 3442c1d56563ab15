import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // Guests run real work (64 MiB files, traps, child processes); keep slow machines honest.
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
    reporters: ['default', './test/summary-reporter.ts'],
    projects: [
      { extends: true, test: { name: 'default', include: ['test/**/*.test.ts'], exclude: ['test/api/postgres*.test.ts', '**/node_modules/**'] } },
      // The service's isolation, authorization, restart and quota rules hold with guests in
      // executor processes too: the same files, their hosts made by test/api/helpers.ts's testHost.
      {
        extends: true,
        test: {
          name: 'process-executors',
          include: ['test/api/bola.test.ts', 'test/api/restart.test.ts', 'test/api/quotas.test.ts', 'test/api/procdesc.test.ts'],
          env: { CAPSA_TEST_ISOLATION: 'process' },
        },
      },
      // The store conformance suite and the service's authorization and quota rules on PostgreSQL:
      // the same files, on a database of their own (test/helpers/pg.ts). The server is CI's
      // (CAPSA_TEST_DATABASE_URL) or one test/pg-setup.ts starts.
      {
        extends: true,
        test: {
          name: 'postgres',
          include: ['test/api/store.test.ts', 'test/api/bola.test.ts', 'test/api/quotas.test.ts', 'test/api/retention.test.ts', 'test/api/webhooks.test.ts', 'test/api/postgres*.test.ts'],
          env: { CAPSA_TEST_STORE: 'postgres' },
          globalSetup: ['test/pg-setup.ts'],
        },
      },
    ],
  },
});

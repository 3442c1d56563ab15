import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // Guests run real work (64 MiB files, traps, child processes); keep slow machines honest.
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
    reporters: ['default', './test/summary-reporter.ts'],
    projects: [
      { extends: true, test: { name: 'default', include: ['test/**/*.test.ts'] } },
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
    ],
  },
});

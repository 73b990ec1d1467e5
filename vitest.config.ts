import { configDefaults, defineConfig } from 'vitest/config';

/**
 * The rotation suite's core cases run twice: on the Temporal
 * CLI's dev server (SQLite) with everything else, and on the production shape, the Temporal server's four services on Postgres persistence (compose's
 * shape), together with the files that only make sense there: processes sharing a rotation,
 * compose's processes, and the fault suite. test/global-setup.ts starts the project's server.
 */
const PRODUCTION_SHAPE_ONLY = ['test/temporal-server/**/*.test.ts', 'test/faults/**/*.test.ts'];
// The core cases: the SoftHSM scheduled rotation, the controls, the killed worker.
const CORE_ROTATION = [
  'test/rotation/scheduled-softhsm.test.ts',
  'test/rotation/control.test.ts',
  'test/rotation/worker-restart.test.ts',
];

export default defineConfig({
  test: {
    // Real servers: workflows, HSM calls and Postgres round trips take seconds, not milliseconds.
    testTimeout: 120_000,
    hookTimeout: 180_000,
    pool: 'forks',
    // Two cores: two test files at a time keeps the Temporal server and Postgres responsive.
    maxWorkers: 2,
    projects: [
      {
        extends: true,
        test: {
          name: 'dev-server',
          // Each project's own (not the root's, which would start a third server for nothing).
          globalSetup: ['test/global-setup.ts'],
          include: ['test/**/*.test.ts'],
          exclude: [...configDefaults.exclude, ...PRODUCTION_SHAPE_ONLY],
        },
      },
      {
        extends: true,
        test: {
          name: 'temporal-postgres',
          globalSetup: ['test/global-setup.ts'],
          include: [...CORE_ROTATION, ...PRODUCTION_SHAPE_ONLY],
        },
      },
    ],
  },
});

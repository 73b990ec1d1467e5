import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    // Real servers: workflows, HSM calls and Postgres round trips take seconds, not milliseconds.
    testTimeout: 120_000,
    hookTimeout: 180_000,
    pool: 'forks',
    // Two cores: two test files at a time keeps the Temporal server and Postgres responsive.
    maxWorkers: 2,
  },
});

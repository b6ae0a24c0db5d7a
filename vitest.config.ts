import { createRequire } from 'node:module';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  // Node, and so graphql-tools and graphql-http, load graphql's CommonJS build, as the app does in
  // production; Vite would give our sources its ESM build, and graphql refuses types from two copies.
  resolve: { alias: [{ find: /^graphql$/, replacement: createRequire(import.meta.url).resolve('graphql') }] },
  test: {
    include: ['test/**/*.test.ts'],
    // One PostgreSQL and one Temporal dev server for the whole run; files isolate by tenant.
    globalSetup: ['test/support/global-setup.ts'],
    pool: 'forks',
    maxWorkers: 2,
    // Hang detectors, not performance limits: generous, so a loaded machine cannot fail a run.
    testTimeout: 300_000,
    hookTimeout: 300_000,
    reporters: ['default', './test/support/summary-reporter.ts'],
  },
});

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
    testTimeout: 60_000,
    hookTimeout: 180_000,
    reporters: ['default', './test/support/summary-reporter.ts'],
  },
});

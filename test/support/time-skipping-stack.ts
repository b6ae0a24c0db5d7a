import { randomUUID } from 'node:crypto';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import pg from 'pg';
import { inject } from 'vitest';
import { openOrm, type Orm } from '../../db/orm.js';
import type { Config } from '../../platform/config.js';
import { createLogger } from '../../platform/logger.js';
import { startTimeSkippingEnvironment } from '../../scripts/temporal-test-server.js';
import { createWorker, type WorkerHandle } from '../../worker/worker.js';
import { startTestApi, testConfig, type TestApi } from './api.js';
import { installTestRuntime } from './stack.js';

export interface TimeSkippingStack {
  env: TestWorkflowEnvironment;
  api: TestApi;
  /** The worker's configuration (its own task queue, the API as PUBLIC_BASE_URL). */
  config: Config;
  taskQueue: string;
  orm: Orm;
  worker: WorkerHandle;
  db: pg.Client;
  stop(): Promise<void>;
}

/**
 * The API and the real worker on Temporal's time-skipping test server (days of timers pass in
 * seconds while a test awaits a workflow's result), with PostgreSQL. `overrides` reach both;
 * `workerOverrides` the worker alone (e.g. OUTBOX_DISPATCH).
 */
export async function startTimeSkippingStack(name: string, overrides: Record<string, string> = {}, workerOverrides: Record<string, string> = {}): Promise<TimeSkippingStack> {
  installTestRuntime();
  const ts = await startTimeSkippingEnvironment();
  const taskQueue = `${name}-${randomUUID().slice(0, 8)}`;
  const shared = { ...overrides, TEMPORAL_ADDRESS: ts.address, TEMPORAL_TASK_QUEUE: taskQueue };
  const api = await startTestApi(shared);
  const config = testConfig({ ...shared, PUBLIC_BASE_URL: api.url, ...workerOverrides });
  const orm = await openOrm(config.DATABASE_URL!);
  const worker = await createWorker(config, { orm, config, log: createLogger(process.env.TEST_LOG_LEVEL ?? 'silent') }, { connection: ts.env.nativeConnection, taskQueue });
  const running = worker.run();
  const db = new pg.Client({ connectionString: inject('databaseUrl') });
  await db.connect();
  return {
    env: ts.env, api, config, taskQueue, orm, worker, db,
    async stop() {
      await api.close();
      await worker.shutdown();
      await running;
      await ts.stop();
      await orm.close();
      await db.end();
    },
  };
}

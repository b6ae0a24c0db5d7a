import { randomUUID } from 'node:crypto';
import { Client, Connection } from '@temporalio/client';
import { inject } from 'vitest';
import { activityDbTimeouts, openOrm } from '../../db/orm.js';
import { createLogger, type Logger } from '../../platform/logger.js';
import { installTemporalLogging } from '../../worker/main.js';
import { createWorker, type WorkerHandle } from '../../worker/worker.js';
import { startTestApi, testConfig, type TestApi } from './api.js';

let sdkLogsInstalled = false;
/**
 * The SDK's own logs (bundling, worker state, retried activities) follow TEST_LOG_LEVEL too.
 * A file that wants the runtime's metrics exported calls this with `telemetry` before its stack.
 */
export function installTestRuntime(telemetry?: Parameters<typeof installTemporalLogging>[1]) {
  if (sdkLogsInstalled) return;
  sdkLogsInstalled = true;
  installTemporalLogging(createLogger(process.env.TEST_LOG_LEVEL ?? 'silent'), telemetry);
}

export interface TestStack {
  api: TestApi;
  client: Client;
  taskQueue: string;
  close(): Promise<void>;
}

/**
 * The API plus a real worker on a task queue of this file's own, against the suite's Temporal
 * server: workflows started through the API run here, not in another file's worker.
 */
export async function startTestStack(overrides: Record<string, string> = {}, options: { log?: Logger } = {}): Promise<TestStack> {
  const taskQueue = `test-${randomUUID().slice(0, 8)}`;
  const env = { TEMPORAL_TASK_QUEUE: taskQueue, ...overrides };
  const api = await startTestApi(env, { log: options.log });
  // Tracking links in what the worker sends point at this API (its port is known only now).
  const config = testConfig({ PUBLIC_BASE_URL: api.url, ...env });
  const orm = await openOrm(config.DATABASE_URL!, activityDbTimeouts(config));
  const log = options.log ?? createLogger(process.env.TEST_LOG_LEVEL ?? 'silent');
  installTestRuntime();
  const worker: WorkerHandle = await createWorker(config, { orm, config, log });
  const running = worker.run();
  const connection = await Connection.connect({ address: inject('temporalAddress') });
  const client = new Client({ connection });
  return {
    api,
    client,
    taskQueue,
    async close() {
      await api.close();
      await worker.shutdown();
      await running;
      await connection.close();
      await orm.close();
    },
  };
}

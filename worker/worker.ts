import { fileURLToPath } from 'node:url';
import { NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import { createActivities, type ActivityDeps } from '../activities/index.js';
import { temporalAddress, type Config } from '../platform/config.js';

export interface WorkerHandle {
  worker: Worker;
  run(): Promise<void>;
  shutdown(): Promise<void>;
}

export async function createWorker(config: Config, deps: ActivityDeps, overrides: Partial<WorkerOptions> = {}): Promise<WorkerHandle> {
  const connection = await NativeConnection.connect({ address: temporalAddress(config) });
  const worker = await Worker.create({
    connection,
    namespace: config.TEMPORAL_NAMESPACE,
    taskQueue: config.TEMPORAL_TASK_QUEUE,
    workflowsPath: fileURLToPath(new URL('../workflows/index.ts', import.meta.url)),
    activities: createActivities(deps),
    ...overrides,
  });
  let running: Promise<void> | undefined;
  return {
    worker,
    run: () => (running ??= worker.run().finally(() => connection.close())),
    async shutdown() {
      if (worker.getState() === 'RUNNING') worker.shutdown();
      await running;
    },
  };
}

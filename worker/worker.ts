import { fileURLToPath } from 'node:url';
import { NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import { createActivities, type ActivityDeps } from '../activities/index.js';
import { temporalAddress, type Config } from '../platform/config.js';
import { activityOutcomes } from './metrics.js';
import { startOutboxDispatcher, type OutboxDispatcher } from './outbox.js';

export interface WorkerHandle {
  worker: Worker;
  run(): Promise<void>;
  shutdown(): Promise<void>;
}

/** `overrides.connection` (e.g. a test environment's) is used as given and left open. */
export async function createWorker(config: Config, deps: ActivityDeps, overrides: Partial<WorkerOptions> = {}): Promise<WorkerHandle> {
  const own = overrides.connection ? undefined : await NativeConnection.connect({ address: temporalAddress(config) });
  const connection = overrides.connection ?? own!;
  const worker = await Worker.create({
    connection,
    namespace: config.TEMPORAL_NAMESPACE,
    taskQueue: config.TEMPORAL_TASK_QUEUE,
    workflowsPath: fileURLToPath(new URL('../workflows/index.ts', import.meta.url)),
    activities: createActivities(deps),
    interceptors: { activity: [activityOutcomes] },
    // Heartbeats reach the server within a second, and with them pause and cancel reach a sending
    // activity (the SDK's default throttles them to most of the heartbeat timeout).
    maxHeartbeatThrottleInterval: '1 second',
    ...overrides,
  });
  let running: Promise<void> | undefined;
  let outbox: OutboxDispatcher | undefined;
  return {
    worker,
    run: () => {
      if (config.OUTBOX_DISPATCH) outbox ??= startOutboxDispatcher(deps);
      return (running ??= worker.run().finally(async () => {
        await outbox?.stop();
        await own?.close();
      }));
    },
    async shutdown() {
      if (worker.getState() === 'RUNNING') worker.shutdown();
      await running;
    },
  };
}

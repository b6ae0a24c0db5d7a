// `npm run worker`: the Temporal worker alone, against DATABASE_URL and TEMPORAL_ADDRESS.
import { pathToFileURL } from 'node:url';
import { DefaultLogger, Runtime, type LogLevel, type RuntimeOptions } from '@temporalio/worker';
import { activityDbTimeouts, openOrm } from '../db/orm.js';
import { embeddedDatabaseUrl, loadConfig, type Config } from '../platform/config.js';
import { createTemporalClient } from '../platform/temporal.js';
import { createLogger, type Logger } from '../platform/logger.js';
import { tokenKeyWarning } from '../platform/social/token-cipher.js';
import { workerTelemetry } from './metrics.js';
import { requireTokenKeys } from '../platform/jwt-secret.js';
import { exitWithSupervisor, reportReady, runMain } from '../platform/supervision.js';
import { ensurePlatformSchedules, migrateSegmentRefreshSchedules } from './schedules.js';
import { createWorker } from './worker.js';

export interface RunningWorker {
  done: Promise<void>;
  stop(): Promise<void>;
}

export async function startWorker(config: Config, log: Logger = createLogger(config.LOG_LEVEL)): Promise<RunningWorker> {
  const orm = await openOrm(config.DATABASE_URL ?? embeddedDatabaseUrl(config), activityDbTimeouts(config));
  const handle = await createWorker(config, { orm, config, log });
  const client = createTemporalClient(config);
  await ensurePlatformSchedules(client, config);
  const migrated = await migrateSegmentRefreshSchedules(client);
  if (migrated.length) log.info({ schedules: migrated }, 'segment refresh schedules moved to scheduledSegmentRefreshWorkflow');
  await client.connection.close();
  const done = handle.run().finally(() => orm.close());
  log.info({ taskQueue: config.TEMPORAL_TASK_QUEUE }, 'worker polling');
  return { done, stop: () => handle.shutdown() };
}

/**
 * Routes the SDK's own logs (bundler, worker state) into our JSON log at warn and above, and
 * exports the runtime's metrics as `telemetry` says (see worker/metrics.ts). Once per process.
 */
export function installTemporalLogging(log: Logger, telemetry?: RuntimeOptions['telemetryOptions']): void {
  const levels: Record<LogLevel, 'trace' | 'debug' | 'info' | 'warn' | 'error'> = {
    TRACE: 'trace', DEBUG: 'debug', INFO: 'info', WARN: 'warn', ERROR: 'error',
  };
  Runtime.install({
    shutdownSignals: ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR2'],
    logger: new DefaultLogger('WARN', (entry) => log[levels[entry.level]]({ component: 'temporal-sdk', ...entry.meta }, entry.message)),
    telemetryOptions: telemetry,
  });
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  await runMain(async () => {
    const config = loadConfig();
    // Same rule as the API: a deployment configured without token keys must not half-run.
    requireTokenKeys(config);
    const log = createLogger(config.LOG_LEVEL);
    const keyWarning = tokenKeyWarning(config);
    if (keyWarning) log.warn(keyWarning);
    installTemporalLogging(log, workerTelemetry(config));
    const running = await startWorker(config, log);
    // The SDK's worker shuts down gracefully on SIGINT/SIGTERM by itself.
    exitWithSupervisor(log, running.stop);
    reportReady();
    await running.done;
    log.info('worker stopped');
    process.exit(0);
  });
}

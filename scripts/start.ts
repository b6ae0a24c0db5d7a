// `npm start`: the whole platform on embedded defaults: PostgreSQL, migrations, the Temporal dev
// server with its Web UI, the worker and the API. Ctrl-C stops everything in reverse order.
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { startApi } from '../api/server.js';
import { migrate, openOrm } from '../db/orm.js';
import { loadConfig, temporalAddress } from '../platform/config.js';
import { createLogger } from '../platform/logger.js';
import { installTemporalLogging, startWorker } from '../worker/main.js';
import { workerTelemetry } from '../worker/metrics.js';
import { startEmbeddedPostgres } from './embedded-postgres.js';
import { startTemporalDevServer } from './temporal-dev-server.js';

const config = loadConfig();
const log = createLogger(config.LOG_LEVEL);
installTemporalLogging(log, workerTelemetry(config));
const stops: (() => Promise<void>)[] = [];
let stopping = false;

async function shutdown(code: number) {
  if (stopping) return;
  stopping = true;
  log.info('stopping...');
  for (const stop of stops.reverse()) {
    await stop().catch((err) => log.error({ err }, 'error while stopping'));
  }
  process.exit(code);
}
process.once('SIGINT', () => void shutdown(0));
process.once('SIGTERM', () => void shutdown(0));

try {
  mkdirSync(config.CRM_DATA_DIR, { recursive: true });
  let databaseUrl = config.DATABASE_URL;
  if (!databaseUrl) {
    log.info({ port: config.PG_PORT }, 'starting embedded PostgreSQL');
    const pg = await startEmbeddedPostgres({
      dataDir: path.resolve(config.CRM_DATA_DIR, 'pg'),
      port: config.PG_PORT,
      log: (line) => log.debug({ component: 'postgres' }, line),
    });
    stops.push(pg.stop);
    if (pg.dataDir !== path.resolve(config.CRM_DATA_DIR, 'pg')) log.info({ dataDir: pg.dataDir }, 'PostgreSQL data moved where the postgres user can reach it');
    databaseUrl = pg.url;
  }

  const orm = await openOrm(databaseUrl);
  const applied = await migrate(orm);
  await orm.close();
  log.info({ applied }, 'migrations up to date');

  let uiUrl: string | undefined;
  if (!config.TEMPORAL_ADDRESS) {
    log.info({ port: config.TEMPORAL_PORT, uiPort: config.TEMPORAL_UI_PORT }, 'starting Temporal dev server');
    const temporal = await startTemporalDevServer({
      port: config.TEMPORAL_PORT,
      uiPort: config.TEMPORAL_UI_PORT,
      dbFile: path.resolve(config.CRM_DATA_DIR, 'temporal.sqlite'),
      namespace: config.TEMPORAL_NAMESPACE,
      log: (line) => log.debug({ component: 'temporal' }, line),
    });
    stops.push(temporal.stop);
    uiUrl = temporal.uiUrl;
  }

  const effective = { ...config, DATABASE_URL: databaseUrl, TEMPORAL_ADDRESS: temporalAddress(config) };
  const worker = await startWorker(effective, log);
  stops.push(worker.stop);
  const api = await startApi(effective, log);
  stops.push(api.close);

  const lines = [
    '',
    'CRM platform is running',
    `  REST API        ${api.url}/api/v1   (docs: ${api.url}/docs)`,
    `  GraphQL         ${api.url}/graphql`,
    `  Temporal UI     ${uiUrl ?? '(external Temporal at ' + effective.TEMPORAL_ADDRESS + ')'}`,
    `  Health          ${api.url}/readyz`,
    `  Dev token       npm run token -- --tenant demo --scopes crm:read,crm:write,crm:admin,crm:campaigns,crm:social`,
    'Ctrl-C stops everything.',
    '',
  ];
  process.stdout.write(lines.join('\n') + '\n');
  await worker.done;
} catch (err) {
  log.error({ err }, 'failed to start');
  await shutdown(1);
}

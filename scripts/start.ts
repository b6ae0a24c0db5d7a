// `npm start`: the whole platform on embedded defaults: PostgreSQL, migrations, the Temporal dev
// server with its Web UI, a mail catcher with its web UI (unless SMTP_URL points elsewhere), and
// the worker and the API as supervised child processes (restarted
// with backoff when they crash). SIGINT, SIGTERM or SIGHUP stop everything in reverse order; if
// this process is killed outright, the children exit with it (see scripts/supervisor.ts) and the
// next start takes over what is left of the data directory (an orphaned PostgreSQL or Temporal).
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { migrate, openOrm } from '../db/orm.js';
import { loadConfig, temporalAddress } from '../platform/config.js';
import { createLogger } from '../platform/logger.js';
import { startEmbeddedPostgres } from './embedded-postgres.js';
import { startMailCatcher } from './mail-catcher.js';
import { startWatchdog, superviseNode } from './supervisor.js';
import { startTemporalDevServer } from './temporal-dev-server.js';

const config = loadConfig();
const log = createLogger(config.LOG_LEVEL);
const watchdog = startWatchdog(log);
log.info({ watchdog: watchdog.pid }, 'watchdog started');
const stops: (() => Promise<void>)[] = [];
let stopping = false;

// Each stop is bounded (SIGKILL after a grace period); this bounds the whole, should anything
// else hang (a closed terminal, say): on exit the watchdog stops whatever is still running.
const SHUTDOWN_DEADLINE_MS = 120_000;

async function shutdown(code: number) {
  if (stopping) return;
  stopping = true;
  setTimeout(() => process.exit(code || 1), SHUTDOWN_DEADLINE_MS).unref();
  try {
    log.info('stopping...');
    for (const stop of stops.reverse()) {
      await stop().catch((err) => log.error({ err }, 'error while stopping'));
    }
  } finally {
    await watchdog.close();
    process.exit(code);
  }
}
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.once(signal, () => void shutdown(0));

/** PostgreSQL and Temporal: the watchdog owns them from spawn (onSpawn) until they stopped. */
const stopWatched = (pid: number, stop: () => Promise<void>) => stops.push(() => stop().finally(() => watchdog.forget(pid)));

/** A start that fails has stopped its server already: the watchdog must not signal that pid once it is reused. */
async function startWatched<T>(signal: NodeJS.Signals, start: (onSpawn: (pid: number) => void) => Promise<T>): Promise<T> {
  let spawned: number | undefined;
  try {
    return await start((pid) => {
      spawned = pid;
      watchdog.watch(pid, signal);
    });
  } catch (err) {
    if (spawned !== undefined) watchdog.forget(spawned);
    throw err;
  }
}

try {
  const dataDir = path.resolve(config.CRM_DATA_DIR);
  mkdirSync(dataDir, { recursive: true });
  let databaseUrl = config.DATABASE_URL;
  if (!databaseUrl) {
    log.info({ port: config.PG_PORT }, 'starting embedded PostgreSQL');
    // SIGINT: fast shutdown, nothing committed is lost
    const pg = await startWatched('SIGINT', (onSpawn) => startEmbeddedPostgres({
      dataDir: path.join(dataDir, 'pg'),
      port: config.PG_PORT,
      log: (line) => log.debug({ component: 'postgres' }, line),
      notice: (line) => log.warn({ component: 'postgres' }, line),
      onSpawn,
      detached: true, // Ctrl-C reaches us only; we stop it after the API and the worker
    }));
    stopWatched(pg.pid, pg.stop);
    databaseUrl = pg.url;
  }

  const orm = await openOrm(databaseUrl);
  const applied = await migrate(orm);
  await orm.close();
  log.info({ applied }, 'migrations up to date');

  let uiUrl: string | undefined;
  if (!config.TEMPORAL_ADDRESS) {
    log.info({ port: config.TEMPORAL_PORT, uiPort: config.TEMPORAL_UI_PORT }, 'starting Temporal dev server');
    const temporal = await startWatched('SIGTERM', (onSpawn) => startTemporalDevServer({
      port: config.TEMPORAL_PORT,
      uiPort: config.TEMPORAL_UI_PORT,
      dbFile: path.join(dataDir, 'temporal.sqlite'),
      pidFile: path.join(dataDir, 'temporal.pid'),
      namespace: config.TEMPORAL_NAMESPACE,
      log: (line) => log.debug({ component: 'temporal' }, line),
      notice: (line) => log.warn({ component: 'temporal' }, line),
      onSpawn,
      detached: true,
    }));
    if (temporal.pid) stopWatched(temporal.pid, temporal.stop);
    else stops.push(temporal.stop); // the SDK's own server (no Temporal CLI) stops with its handle only
    uiUrl = temporal.uiUrl;
  }

  let mailUrl: string | undefined;
  let smtpUrl = config.SMTP_URL;
  if (!smtpUrl) {
    const mail = await startMailCatcher({
      smtpPort: config.MAILDEV_SMTP_PORT,
      webPort: config.MAILDEV_WEB_PORT,
      mailDir: path.join(dataDir, 'mail'),
      maxEmails: config.MAILDEV_MAX_EMAILS,
    });
    stops.push(mail.stop);
    smtpUrl = mail.smtpUrl;
    mailUrl = mail.webUrl;
    log.info({ smtp: mail.smtpUrl, web: mail.webUrl }, 'mail catcher started');
  }

  const env = { ...process.env, DATABASE_URL: databaseUrl, TEMPORAL_ADDRESS: temporalAddress(config), CRM_DATA_DIR: dataDir, SMTP_URL: smtpUrl };
  const backoff = { initialMs: config.RESTART_BACKOFF_MS, maxMs: config.RESTART_BACKOFF_MAX_MS, resetAfterMs: config.RESTART_BACKOFF_MAX_MS };
  const worker = superviseNode('worker', 'worker/main.ts', env, log, backoff);
  stops.push(worker.stop);
  const api = superviseNode('api', 'api/server.ts', env, log, backoff);
  stops.push(api.stop);
  const [{ url }] = await Promise.all([api.ready, worker.ready]);

  const lines = [
    '',
    'CRM platform is running',
    `  REST API        ${url}/api/v1   (docs: ${url}/docs)`,
    `  GraphQL         ${url}/graphql`,
    `  Temporal UI     ${uiUrl ?? '(external Temporal at ' + temporalAddress(config) + ')'}`,
    `  Mail UI         ${mailUrl ? `${mailUrl}   (every email the platform sends; SMTP ${smtpUrl})` : '(SMTP_URL is set: email goes to that server)'}`,
    `  Health          ${url}/readyz`,
    `  Dev token       npm run token -- --tenant demo --scopes crm:read,crm:write,crm:admin,crm:campaigns,crm:social`,
    'Ctrl-C stops everything.',
    '',
  ];
  process.stdout.write(lines.join('\n') + '\n');
} catch (err) {
  log.error({ err }, 'failed to start');
  await shutdown(1);
}

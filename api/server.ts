// `npm run api`: the HTTP API alone, against DATABASE_URL and TEMPORAL_ADDRESS (production shape).
import '../platform/v8-heap.js'; // first: see there
import { serve, type ServerType } from '@hono/node-server';
import { Server as HttpServer } from 'node:http';
import pg from 'pg';
import type { Options } from '@mikro-orm/postgresql';
import { apiDbTimeouts, openOrm, pgPoolTimeouts } from '../db/orm.js';
import { oldestSmartReevaluationAge, startSmartReevaluationDrainer } from '../domain/segments/reevaluations.js';
import { stateSecretWarning } from '../domain/social/connections.js';
import { createTokenVerifier } from '../platform/auth.js';
import { embeddedDatabaseUrl, loadConfig, type Config } from '../platform/config.js';
import { jwtSecret, requireTokenKeys } from '../platform/jwt-secret.js';
import { createLogger, type Logger } from '../platform/logger.js';
import { tokenKeyWarning } from '../platform/social/token-cipher.js';
import { ApiMetrics } from '../platform/metrics.js';
import { RateLimits } from '../platform/rate-limit.js';
import { exitWithSupervisor, reportReady, runMain } from '../platform/supervision.js';
import { createTemporalClient, createTemporalProbe } from '../platform/temporal.js';
import { createApp } from './app.js';
import { metricsApp } from './metrics.js';
import { pathToFileURL } from 'node:url';

export interface RunningApi {
  url: string;
  metricsUrl: string;
  close(): Promise<void>;
}

async function listen(fetch: (req: Request) => Response | Promise<Response>, port: number, keepAliveTimeoutMs: number) {
  const server: ServerType = await new Promise((resolve) => {
    const s = serve({ fetch, port, hostname: '0.0.0.0' }, () => resolve(s));
  });
  if (server instanceof HttpServer) {
    server.keepAliveTimeout = keepAliveTimeoutMs;
    server.headersTimeout = Math.max(server.headersTimeout, keepAliveTimeoutMs + 1_000);
  }
  const address = server.address();
  return {
    port: typeof address === 'object' && address ? address.port : port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** `orm` adds MikroORM options, e.g. a query hook a test counts statements with. */
export async function startApi(config: Config, log: Logger = createLogger(config.LOG_LEVEL), orm: Partial<Options> = {}): Promise<RunningApi> {
  const databaseUrl = config.DATABASE_URL ?? embeddedDatabaseUrl(config);
  const db = await openOrm(databaseUrl, apiDbTimeouts(config), orm);
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 5, ...pgPoolTimeouts(apiDbTimeouts(config)) });
  const temporal = createTemporalClient(config);
  const metrics = new ApiMetrics();
  metrics.watchPool('orm', await db.em.getConnection().getNativeClient());
  metrics.watchPool('rate_limit', pool);
  const temporalProbe = createTemporalProbe(config);
  const app = createApp({
    config,
    orm: db,
    temporal,
    temporalProbe,
    log,
    metrics,
    rateLimits: new RateLimits(pool, {
      read: config.RATE_LIMIT_READ, write: config.RATE_LIMIT_WRITE, campaign: config.RATE_LIMIT_CAMPAIGN,
      social: config.RATE_LIMIT_SOCIAL, bulk: config.RATE_LIMIT_BULK,
    }, (cls) => metrics.rateLimitRejected(cls)),
    verifyToken: createTokenVerifier({
      secret: jwtSecret(config), jwksUrl: config.JWT_JWKS_URL, issuer: config.JWT_ISSUER, audience: config.JWT_AUDIENCE,
    }),
  });
  const smartReevaluations = startSmartReevaluationDrainer(db, log, config.SMART_REEVALUATION_POLL_MS, {
    tenantPrefix: config.OUTBOX_TENANT_PREFIX,
    report: (outcome, customers) => metrics.smartReevaluations.inc({ outcome }, customers),
  });
  metrics.watchSmartQueue(() => oldestSmartReevaluationAge(db, config.OUTBOX_TENANT_PREFIX));
  const server = await listen(app.fetch, config.PORT, config.HTTP_KEEP_ALIVE_TIMEOUT_MS);
  log.info({ port: server.port }, 'API listening');
  const metricsServer = config.METRICS_PORT === undefined ? undefined : await listen(metricsApp(metrics, config.METRICS_TOKEN).fetch, config.METRICS_PORT, config.HTTP_KEEP_ALIVE_TIMEOUT_MS);
  if (metricsServer) log.info({ port: metricsServer.port }, 'API metrics listening');
  return {
    url: `http://127.0.0.1:${server.port}`,
    metricsUrl: `http://127.0.0.1:${metricsServer?.port ?? server.port}/metrics`,
    async close() {
      await server.close();
      await metricsServer?.close();
      await smartReevaluations.stop();
      await temporalProbe.close();
      await temporal.connection.close();
      await pool.end();
      await db.close();
    },
  };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  await runMain(async () => {
    const config = loadConfig();
    requireTokenKeys(config);
    const log = createLogger(config.LOG_LEVEL);
    // Social platforms are optional: without their keys the API runs, and says so once here.
    for (const warning of [tokenKeyWarning(config), stateSecretWarning(config)]) if (warning) log.warn(warning);
    const api = await startApi(config, log);
    let closing: Promise<void> | undefined;
    const close = () => (closing ??= api.close());
    const shutdown = async (signal: string) => {
      log.info({ signal }, 'API shutting down');
      await close();
      process.exit(0);
    };
    for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.once(signal, () => void shutdown(signal));
    exitWithSupervisor(log, close);
    reportReady({ url: api.url });
  });
}

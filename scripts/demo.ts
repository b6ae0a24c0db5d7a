// `npm run demo [-- --tenant demo-club --members 3000]`: seeds a demo club into the running stack
// (`npm start`, or DATABASE_URL / TEMPORAL_ADDRESS), then prints a token and the URLs to open.
// Safe to run again: the same tenant is topped up, never duplicated.
import { parseArgs } from 'node:util';
import { activityDbTimeouts, openOrm } from '../db/orm.js';
import { signDevToken, SCOPES } from '../platform/auth.js';
import { embeddedDatabaseUrl, loadConfig, temporalAddress } from '../platform/config.js';
import { jwtSecret } from '../platform/jwt-secret.js';
import { createLogger } from '../platform/logger.js';
import { createTemporalClient } from '../platform/temporal.js';
import { seedDemo } from './demo/seed.js';

const { values } = parseArgs({
  options: { tenant: { type: 'string', default: 'demo-club' }, members: { type: 'string', default: '3000' } },
});
const size = Number(values.members);
if (!Number.isInteger(size) || size < 1 || size > 100_000) {
  process.stderr.write('--members: a whole number from 1 to 100000\n');
  process.exit(2);
}

const config = loadConfig();
const log = createLogger(config.LOG_LEVEL === 'info' ? 'warn' : config.LOG_LEVEL);
const temporal = createTemporalClient(config);
const fail = (message: string) => {
  process.stderr.write(`npm run demo: ${message}\n`);
  process.exit(1);
};

// Segments and scores run as workflows: without a worker polling, the seed would wait forever.
const queue = await temporal.workflowService
  .describeTaskQueue({ namespace: config.TEMPORAL_NAMESPACE, taskQueue: { name: config.TEMPORAL_TASK_QUEUE }, taskQueueType: 1 })
  .catch((err: Error) => fail(`cannot reach Temporal at ${temporalAddress(config)} (${err.message}); start the platform first: npm start`));
if (!queue.pollers?.length) fail(`no worker polls the task queue "${config.TEMPORAL_TASK_QUEUE}"; start the platform first: npm start`);

const orm = await openOrm(config.DATABASE_URL ?? embeddedDatabaseUrl(config), activityDbTimeouts(config));
const started = performance.now();
try {
  process.stdout.write(`Seeding tenant "${values.tenant}" with ${size} members...\n`);
  const summary = await seedDemo({ orm, temporal, config, log }, values.tenant, size);
  const secret = jwtSecret(config);
  const token = secret
    ? await signDevToken(secret, { tenantId: values.tenant, scopes: [...SCOPES], sub: 'demo-user', name: 'Demo user' }, '12h')
    : '(JWT_JWKS_URL is set: get a token for this tenant from your identity provider)';
  const api = `http://127.0.0.1:${config.PORT}`;
  const query = `TenantId = "${values.tenant}"`;
  const temporalUi = config.TEMPORAL_ADDRESS
    ? `your Temporal UI, query: ${query}`
    : `http://127.0.0.1:${config.TEMPORAL_UI_PORT}/namespaces/${encodeURIComponent(config.TEMPORAL_NAMESPACE)}/workflows?query=${encodeURIComponent(query)}`;
  const largest = [...summary.segments].sort((a, b) => b.memberCount - a.memberCount)[0];
  const example = [
    `{ segments(tenantId: "${values.tenant}") { name type memberCount }`,
    `  customers(tenantId: "${values.tenant}", ${largest ? `filter: { segmentId: "${largest.id}" }, ` : ''}pagination: { first: 5 }) {`,
    '    totalCount edges { node { fullName engagementScore homeClub { name } activities(first: 3) { edges { node { title occurredAt } } } } } } }',
  ].join('\n');
  process.stdout.write([
    '',
    `Demo club "${summary.tenantId}" ready in ${((performance.now() - started) / 1000).toFixed(1)} s:`,
    `  members         ${summary.members.created} new, ${summary.members.updated} already there`,
    `  activities      ${summary.events.accepted} new, ${summary.events.duplicates} already there`,
    `  notes           ${summary.notesAdded} new`,
    ...summary.segments.map((s) => `  segment         ${s.type.padEnd(8)}${String(s.memberCount).padStart(6)} members  ${s.name}`),
    ...(summary.campaign ? [`  campaign        "${summary.campaign.name}" ${summary.campaign.created ? 'sending now' : 'sent before'} (${api}/api/v1/campaigns/${summary.campaign.id}/stats)`] : []),
    '',
    `Token (12 h, every scope):`,
    token,
    '',
    `  GraphQL explorer  ${api}/graphql?query=${encodeURIComponent(example)}`,
    `                    (Headers tab: {"Authorization": "Bearer <token>"}, then run)`,
    `  REST API docs     ${api}/docs   (Authorize: the token)`,
    `  Temporal UI       ${temporalUi}`,
    ...(config.SMTP_URL ? [] : [`  Mail UI           http://127.0.0.1:${config.MAILDEV_WEB_PORT}   (what the campaign sent)`]),
    `  Metrics           http://127.0.0.1:${config.METRICS_PORT ?? config.PORT}/metrics   (worker: port ${config.WORKER_METRICS_PORT})`,
    '',
  ].join('\n'));
} catch (err) {
  log.error({ err }, 'demo seed failed');
  process.exitCode = 1;
} finally {
  await orm.close();
  await temporal.connection.close();
}

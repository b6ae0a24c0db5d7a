import { z } from 'zod';

const port = (fallback: number) => z.coerce.number().int().min(1).max(65535).default(fallback);
const optional = z.string().trim().min(1).optional();
const positiveInt = (fallback: number) => z.coerce.number().int().positive().default(fallback);

/** An AES-256 key as operators write it (`openssl rand -base64 32`): 32 bytes in base64. */
export const isTokenKey = (text: string) => /^[A-Za-z0-9+/_-]+={0,2}$/.test(text) && Buffer.from(text, 'base64').length === 32;
const TOKEN_KEY_FORMAT = 'must be 32 bytes in base64 (e.g. `openssl rand -base64 32`)';

// Every environment variable the platform's processes read; the README's table lists these and the
// tooling's own (CRM_CACHE_DIR, TEST_LOG_LEVEL, BENCH_*).
const Env = z.object({
  NODE_ENV: z.string().default('development'),
  PORT: z.coerce.number().int().min(0).max(65535).default(3000), // 0: any free port
  // Longer than the idle timeout of clients (undici: 4 s) and load balancers (often 60 s), so the
  // client always drops an idle connection first; a server closing one just as the client reuses
  // it fails that request ("other side closed"). Node's default is 5 s.
  HTTP_KEEP_ALIVE_TIMEOUT_MS: positiveInt(65_000),
  // How far the API's heap may grow past what the last full collection kept, in percent; 0 leaves
  // it to V8. Each full collection pauses every request in flight: 200 gives reads' p99 at 50
  // connections fewer of them than 100 did. 100 was there for an import whose batches reached the
  // old generation (V8 then let the heap reach about 4x); since they die young, 200 grows an
  // import's peak RSS by 7 MiB over its rows, V8's own sizing by 24 (README, fourteenth pass).
  API_HEAP_GROWTH_PERCENT: z.coerce.number().int().min(0).max(300).default(200),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  CRM_DATA_DIR: z.string().default('.data'),
  DATABASE_URL: optional,
  PG_PORT: port(5433),
  TEMPORAL_ADDRESS: optional,
  TEMPORAL_NAMESPACE: z.string().default('default'),
  TEMPORAL_TASK_QUEUE: z.string().default('crm'),
  TEMPORAL_PORT: port(7233),
  TEMPORAL_UI_PORT: port(8233),
  JWT_SECRET: optional,
  JWT_JWKS_URL: z.url().optional(),
  JWT_ISSUER: optional,
  JWT_AUDIENCE: optional,
  DEFAULT_PHONE_REGION: z.string().length(2).default('ZA'),
  MESSAGING_URL: z.url().optional(),
  MESSAGING_API_KEY: optional,
  MESSAGING_TIMEOUT_MS: positiveInt(15_000),
  WORKFLOW_RESULT_WAIT_MS: positiveInt(20_000),
  // Campaign email over SMTP (nodemailer). `npm start` points it at its mail catcher (maildev).
  SMTP_URL: optional,
  EMAIL_FROM: z.string().trim().regex(/@[^@\s>]+/, 'needs an address with a domain, e.g. "Club <no-reply@club.example>"').default('Club CRM <no-reply@crm.localhost>'),
  // Each worker keeps a pool of this many SMTP connections; one SMTP step (connect, greeting,
  // a command's answer) waits at most SMTP_TIMEOUT_MS, then the send is retried.
  SMTP_MAX_CONNECTIONS: positiveInt(5),
  SMTP_TIMEOUT_MS: positiveInt(30_000),
  // `npm start`'s mail catcher (maildev), on 127.0.0.1; 0: any free port. It keeps the newest
  // MAILDEV_MAX_EMAILS in $CRM_DATA_DIR/mail.
  MAILDEV_SMTP_PORT: z.coerce.number().int().min(0).max(65535).default(1025),
  MAILDEV_WEB_PORT: z.coerce.number().int().min(0).max(65535).default(1080),
  MAILDEV_MAX_EMAILS: positiveInt(1000),
  // Message templates (Liquid): the longest field, and each render's time and memory (liquidjs's
  // renderLimit and memoryLimit), so no template can hold a send hostage.
  TEMPLATE_MAX_CHARS: positiveInt(100_000),
  TEMPLATE_RENDER_LIMIT_MS: positiveInt(1_000),
  TEMPLATE_MEMORY_LIMIT: positiveInt(10_000_000),
  // Where tracking links (open pixel, click redirect, unsubscribe) point: the API's public address.
  // Unset: http://localhost:<PORT>.
  PUBLIC_BASE_URL: z.url().optional(),
  // Signs tracking tokens. Unset: derived from JWT_SECRET (a JWKS-only deployment must set it).
  TRACKING_SECRET: z.string().min(32).optional(),
  // HMAC-SHA256 key of POST /api/v1/webhooks/messaging; unset, the webhook answers 503.
  MESSAGING_WEBHOOK_SECRET: z.string().min(16).optional(),
  // How far a webhook signature's timestamp may be from now: an older request is a replay.
  MESSAGING_WEBHOOK_TOLERANCE_SECONDS: positiveInt(300),
  // The send engine: deliveries claimed per activity, sends in flight per activity, and each
  // channel's rate across the platform's workers (messages per second).
  CAMPAIGN_BATCH_SIZE: positiveInt(500),
  // How often each worker looks for committed reactions to start (triggered campaigns).
  OUTBOX_POLL_MS: positiveInt(1_000),
  // How often each API process looks for customers queued for SMART segments by other processes
  // (its own changes wake it at once).
  SMART_REEVALUATION_POLL_MS: positiveInt(1_000),
  // Off: this worker starts no reactions (test files turn it on where they need it).
  OUTBOX_DISPATCH: z.stringbool().default(true),
  // Only the reactions of tenants whose id starts with this (deployments sharing one database:
  // each test file's workers take only that file's tenants). Empty: every tenant's.
  OUTBOX_TENANT_PREFIX: z.string().max(100).default(''),
  CAMPAIGN_SEND_CONCURRENCY: positiveInt(16),
  // How long deliveries a send attempt claimed stay its own without being renewed (it renews every
  // few seconds while it runs): only then may another attempt take them back. A worker that dies
  // mid-send has its batch sent again after this; one cut off from Temporal but alive keeps its
  // rows, so no message goes twice. At least the longest send (SMTP_TIMEOUT_MS, MESSAGING_TIMEOUT_MS)
  // plus 15 s: an attempt stops sending once its last renewal is older than the lease less that.
  CAMPAIGN_CLAIM_LEASE_MS: positiveInt(90_000),
  // Tries per message on temporary failures (a full mailbox), with backoff from 30 s up to an hour.
  CAMPAIGN_MAX_ATTEMPTS: positiveInt(8),
  EMAIL_MAX_PER_SECOND: positiveInt(50),
  SMS_MAX_PER_SECOND: positiveInt(20),
  PUSH_MAX_PER_SECOND: positiveInt(200),
  WHATSAPP_MAX_PER_SECOND: positiveInt(20),
  IN_APP_MAX_PER_SECOND: positiveInt(500),
  RATE_LIMIT_READ: positiveInt(1000),
  RATE_LIMIT_WRITE: positiveInt(100),
  RATE_LIMIT_CAMPAIGN: positiveInt(10),
  RATE_LIMIT_SOCIAL: positiveInt(30),
  RATE_LIMIT_BULK: positiveInt(10),
  // GraphQL request limits, checked before anything executes (README: "GraphQL limits").
  GRAPHQL_MAX_TOKENS: positiveInt(2000),
  GRAPHQL_MAX_DEPTH: positiveInt(12),
  GRAPHQL_MAX_COST: positiveInt(10_000),
  GRAPHQL_LIST_SIZE: positiveInt(25), // items a list without paging arguments answers at most, and costs
  GRAPHQL_COST_PER_POINT: positiveInt(100),
  // Runs of a document's operation through graphql-js before it runs compiled (api/graphql/executor.ts).
  GRAPHQL_COMPILE_AFTER: z.coerce.number().int().min(0).default(10),
  // Steps one journey may have: bounds graph validation, versions, and what Journey.steps costs.
  JOURNEY_MAX_STEPS: positiveInt(50),
  // Social platforms (README: "Social connections"): each platform's app credentials, its
  // authorisation page and its API root (the platform's own paths below it). Tests and
  // `npm run social-fakes` point them at the fake platforms of test/support/social/.
  FACEBOOK_CLIENT_ID: optional,
  FACEBOOK_CLIENT_SECRET: optional,
  FACEBOOK_AUTH_URL: z.url().default('https://www.facebook.com/v21.0/dialog/oauth'),
  FACEBOOK_API_URL: z.url().default('https://graph.facebook.com'),
  // Instagram business accounts connect through the Facebook login (a Meta app of its own, or the same).
  INSTAGRAM_CLIENT_ID: optional,
  INSTAGRAM_CLIENT_SECRET: optional,
  INSTAGRAM_AUTH_URL: z.url().default('https://www.facebook.com/v21.0/dialog/oauth'),
  INSTAGRAM_API_URL: z.url().default('https://graph.facebook.com'),
  TWITTER_CLIENT_ID: optional,
  TWITTER_CLIENT_SECRET: optional,
  TWITTER_AUTH_URL: z.url().default('https://twitter.com/i/oauth2/authorize'),
  TWITTER_API_URL: z.url().default('https://api.x.com'),
  // LinkedIn's token and revocation endpoints sit next to its authorisation page (oauth/v2/accessToken, oauth/v2/revoke).
  LINKEDIN_CLIENT_ID: optional,
  LINKEDIN_CLIENT_SECRET: optional,
  LINKEDIN_AUTH_URL: z.url().default('https://www.linkedin.com/oauth/v2/authorization'),
  LINKEDIN_API_URL: z.url().default('https://api.linkedin.com'),
  TIKTOK_CLIENT_ID: optional,
  TIKTOK_CLIENT_SECRET: optional,
  TIKTOK_AUTH_URL: z.url().default('https://www.tiktok.com/v2/auth/authorize/'),
  TIKTOK_API_URL: z.url().default('https://open.tiktokapis.com'),
  // Each request to a platform waits at most this long; a write without an answer is then an unknown outcome.
  // At most 40 s: a publish makes up to three calls within its activity's 2-minute limit, so a retry
  // (which first asks the platform what the last attempt did) never starts while that call is alive.
  SOCIAL_TIMEOUT_MS: z.coerce.number().int().positive().max(40_000).default(30_000),
  // How long one publish attempt waits for a TikTok video or an Instagram container to be processed
  // (at most until its activity's limit allows). Still processing then: the upload is kept, and the
  // next attempt asks after it again rather than posting it twice.
  SOCIAL_PROCESSING_WAIT_MS: z.coerce.number().int().positive().max(60_000).default(40_000),
  // AES-256-GCM key of the stored OAuth tokens: 32 bytes, base64. Unset outside production: generated
  // into $CRM_DATA_DIR. SOCIAL_TOKEN_KEYS_OLD: earlier keys (comma-separated), still read after a rotation.
  // A malformed key stops the processes at start: every token operation would fail with it.
  SOCIAL_TOKEN_KEY: optional.refine((v) => v === undefined || isTokenKey(v), TOKEN_KEY_FORMAT),
  SOCIAL_TOKEN_KEYS_OLD: optional.refine((v) => v === undefined || v.split(',').map((k) => k.trim()).filter(Boolean).every(isTokenKey), `each (comma-separated) ${TOKEN_KEY_FORMAT}`),
  // Signs the OAuth `state`. Unset: derived from JWT_SECRET (a JWKS-only deployment must set it).
  SOCIAL_STATE_SECRET: z.string().min(32).optional(),
  // The refresh workflow refreshes a token this long before it expires.
  SOCIAL_REFRESH_MARGIN_MS: positiveInt(5 * 60_000),
  // Unset: the API serves /metrics on PORT. Set: only on this port (e.g. reachable by the scraper alone).
  METRICS_PORT: z.coerce.number().int().min(0).max(65535).optional(),
  METRICS_TOKEN: optional, // when set, /metrics takes `Authorization: Bearer <METRICS_TOKEN>`
  WORKER_METRICS_PORT: z.coerce.number().int().min(0).max(65535).default(9464), // 0: no worker metrics endpoint
  // Input bounds: one request must not take the API's memory or the database's time.
  MAX_BODY_BYTES: positiveInt(2 * 1024 * 1024),
  MAX_JSON_DEPTH: positiveInt(32),
  MAX_EVENT_METADATA_BYTES: positiveInt(16 * 1024),
  MAX_IMPORT_BYTES: positiveInt(256 * 1024 * 1024),
  MAX_IMPORT_ROWS: positiveInt(1_000_000),
  MAX_IMPORT_LINE_BYTES: positiveInt(64 * 1024),
  MAX_CRITERIA_NODES: positiveInt(500),
  MAX_CRITERIA_VALUES: positiveInt(1000),
  // Database time limits: API requests answer 503 instead of waiting on a stalled database;
  // activities (set-based statements over a whole tenant) get their own, longer limit.
  DB_STATEMENT_TIMEOUT_MS: positiveInt(10_000),
  DB_ACTIVITY_STATEMENT_TIMEOUT_MS: positiveInt(600_000),
  DB_ACQUIRE_TIMEOUT_MS: positiveInt(5_000),
  // `npm start` restarts a crashed API or worker after RESTART_BACKOFF_MS, doubling per crash up
  // to RESTART_BACKOFF_MAX_MS; a child that ran longer than the maximum starts again from the first.
  RESTART_BACKOFF_MS: positiveInt(1_000),
  RESTART_BACKOFF_MAX_MS: positiveInt(30_000),
});

export type Config = z.infer<typeof Env>;

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  // An empty variable is an unset one (`SMTP_URL=` in a compose file or unit), not an invalid value.
  const parsed = Env.safeParse(Object.fromEntries(Object.entries(env).filter(([, value]) => value !== '')));
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
    throw new Error(`Invalid environment: ${problems}`);
  }
  const longestSend = Math.max(parsed.data.SMTP_TIMEOUT_MS, parsed.data.MESSAGING_TIMEOUT_MS);
  if (parsed.data.CAMPAIGN_CLAIM_LEASE_MS < longestSend + 15_000) {
    throw new Error(`Invalid environment: CAMPAIGN_CLAIM_LEASE_MS: must be at least the longest send (SMTP_TIMEOUT_MS, MESSAGING_TIMEOUT_MS: ${longestSend}) plus 15000`);
  }
  return parsed.data;
}

export function embeddedDatabaseUrl(config: Config): string {
  return `postgres://postgres:postgres@127.0.0.1:${config.PG_PORT}/crm`;
}

export function temporalAddress(config: Config): string {
  return config.TEMPORAL_ADDRESS ?? `127.0.0.1:${config.TEMPORAL_PORT}`;
}

/** The address tracking links point at. */
export function publicBaseUrl(config: Config): string {
  return (config.PUBLIC_BASE_URL ?? `http://localhost:${config.PORT}`).replace(/\/+$/, '');
}

import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { startMessagingServer, type MessagingServer } from '../scripts/messaging-server.js';
import { newTenant, startTestApi, TEST_JWT_SECRET, token, type TestApi } from './support/api.js';
import { spawnWorkerProcess, type WorkerProcess } from './support/processes.js';
import { startSmtpSink, type SmtpSink } from './support/smtp.js';
import { until } from './support/until.js';

// Two worker processes poll one task queue; the one holding a campaign's SENDING rows is killed
// (SIGKILL: no shutdown, no flush) mid-send. The campaign's send activity stops heartbeating, the
// server retries it after the heartbeat timeout (10 s) on the other worker, which takes back the
// rows the dead one had claimed. Recipients are counted where the messages arrive.

const COUNT = 2_000;
// Every 20th customer has not consented: skipped, never sent.
const eligible = (i: number) => i % 20 !== 0;

let api: TestApi;
let smtp: SmtpSink;
let messaging: MessagingServer;
let db: pg.Client;
let workerEnv: Record<string, string>;
const workers: WorkerProcess[] = [];

beforeAll(async () => {
  smtp = await startSmtpSink();
  messaging = await startMessagingServer();
  const taskQueue = `kill-${randomUUID().slice(0, 8)}`;
  const env = {
    TEMPORAL_TASK_QUEUE: taskQueue,
    SMTP_URL: smtp.url,
    MESSAGING_URL: messaging.url,
    MESSAGING_API_KEY: messaging.apiKey,
    // ~10 s of sending for 2,000 recipients: time to kill a worker in the middle.
    SMS_MAX_PER_SECOND: '200',
    EMAIL_MAX_PER_SECOND: '200',
    CAMPAIGN_BATCH_SIZE: '100',
    RATE_LIMIT_CAMPAIGN: '1000',
    // The dead worker's rows are taken back once their claim lease runs out (short sends, a short lease).
    SMTP_TIMEOUT_MS: '3000',
    MESSAGING_TIMEOUT_MS: '2000',
    CAMPAIGN_CLAIM_LEASE_MS: '18000',
  };
  api = await startTestApi(env);
  workerEnv = {
    ...env,
    DATABASE_URL: inject('databaseUrl'),
    TEMPORAL_ADDRESS: inject('temporalAddress'),
    JWT_SECRET: TEST_JWT_SECRET,
    PUBLIC_BASE_URL: api.url,
    OUTBOX_DISPATCH: 'false',
  };
  db = new pg.Client({ connectionString: inject('databaseUrl') });
  await db.connect();
}, 60_000);

afterAll(async () => {
  await Promise.all(workers.map((w) => w.stop()));
  await api?.close();
  await db?.end();
  await messaging?.close();
  await smtp?.close();
});

afterEach(async () => {
  // Each test starts from two live workers.
  for (const w of workers.splice(0)) await w.stop();
});

const call = (method: string, path: string, auth: string, body?: unknown) => api.call(method, `/api/v1${path}`, { auth, body });


/** COUNT GOLD members (written straight to the table: the import is not what is tested) and their segment. */
async function audience(prefix: string) {
  const tenant = newTenant();
  const auth = await token(tenant);
  await db.query(
    `insert into customers (tenant_id, email, first_name, phone_number, membership_tier, email_opt_in, sms_opt_in)
     select $1, $2 || i || '@kill.test', 'First' || i, '+4477' || lpad(i::text, 8, '0'), 'GOLD', i % 20 <> 0, i % 20 <> 0
       from generate_series(0, $3 - 1) i`,
    [tenant, prefix, COUNT],
  );
  const segment = (await call('POST', '/segments', auth, { name: 'Gold', type: 'SMART', criteria: { field: 'membershipTier', op: 'eq', value: 'GOLD' } })).body.data;
  expect(segment.memberCount).toBe(COUNT);
  const { rows } = await db.query<{ id: string; email: string; i: number }>(
    `select id, email, substring(email from '[0-9]+')::int as i from customers where tenant_id = $1`, [tenant],
  );
  const ok = rows.filter((r) => eligible(r.i));
  return { tenant, auth, segmentId: segment.id as string, eligibleIds: new Set(ok.map((r) => r.id)), eligibleEmails: new Set(ok.map((r) => r.email)) };
}

async function startCampaign(a: Awaited<ReturnType<typeof audience>>, channel: 'SMS' | 'EMAIL') {
  const template = (await call('POST', '/templates', a.auth, channel === 'SMS'
    ? { name: 'Tee times', channel: 'SMS', body: 'Hi {{ firstName }}, tee times are open.' }
    : { name: 'Tee times', channel: 'EMAIL', subject: 'Tee times, {{ firstName }}', body: '<p>Hello {{ firstName }}</p>' })).body.data;
  const created = await call('POST', '/campaigns', a.auth, {
    name: `Kill ${channel}`, type: 'ONE_TIME', segmentId: a.segmentId, channels: [channel],
    [channel === 'SMS' ? 'smsTemplateId' : 'emailTemplateId']: template.id,
  });
  expect(created.status).toBe(201);
  const id = created.body.data.id as string;
  expect((await call('POST', `/campaigns/${id}/execute`, a.auth)).status).toBe(200);
  return id;
}

const counts = async (id: string) => (await db.query<{ status: string; n: number }>(
  `select status, count(*)::int as n from campaign_deliveries where campaign_id = $1 group by 1`, [id],
)).rows.reduce<Record<string, number>>((m, r) => ({ ...m, [r.status]: r.n }), {});

/**
 * Waits until the run is well under way, then SIGKILLs the worker process whose pid is in the
 * SENDING rows' claimed_by. Answers the kill's moment, what was SENT then, and the survivor.
 */
async function killTheSender(id: string) {
  const holder = await until('a worker holding SENDING rows after some were sent', async () => {
    const c = await counts(id);
    // Past a quarter, and not on a batch's edge: sends are in flight when the worker dies.
    if ((c.SENT ?? 0) + (c.DELIVERED ?? 0) < COUNT / 4 + 30) return false;
    const { rows } = await db.query<{ claimed_by: string }>(
      `select claimed_by from campaign_deliveries where campaign_id = $1 and status = 'SENDING' and claimed_by is not null limit 1`, [id],
    );
    const pid = Number(/@[^@]+:(\d+)$/.exec(rows[0]?.claimed_by ?? '')?.[1]);
    return workers.find((w) => w.pid === pid);
  });
  holder.child.kill('SIGKILL');
  expect(await holder.exited).toBe('SIGKILL');
  const killedAt = Date.now();
  const atKill = await counts(id);
  const survivor = workers.find((w) => w !== holder)!;
  // An email is DELIVERED once the SMTP server takes it; a text SENT until its receipt.
  return { killed: holder, survivor, killedAt, sentAtKill: (atKill.SENT ?? 0) + (atKill.DELIVERED ?? 0) };
}

async function twoWorkers() {
  workers.push(...(await Promise.all([spawnWorkerProcess(workerEnv), spawnWorkerProcess(workerEnv)])));
}

/** The run's end as seen through the API, and how long after the kill the survivor first sent. */
async function finished(a: { auth: string }, id: string, kill: Awaited<ReturnType<typeof killTheSender>>) {
  const tookOver = await until('the survivor holding the rows', async () => {
    const { rows } = await db.query(
      `select 1 from campaign_deliveries where campaign_id = $1 and claimed_by like $2 limit 1`, [id, `%:${kill.survivor.pid}`],
    );
    return rows.length > 0 && Date.now();
  }).catch(() => null); // a survivor quick enough may have finished before a poll saw its claim
  const done = await until('COMPLETED', async () => {
    const c = (await call('GET', `/campaigns/${id}`, a.auth)).body.data;
    return c.status === 'COMPLETED' && c;
  });
  return { done, recoveredMs: tookOver ? tookOver - kill.killedAt : null, completedMs: Date.now() - kill.killedAt };
}

describe('a worker process killed mid-campaign', () => {
  it('SMS over Messaging: the other worker finishes; every eligible customer gets exactly one message', async () => {
    await twoWorkers();
    const a = await audience('sms');
    const id = await startCampaign(a, 'SMS');
    const kill = await killTheSender(id);
    expect(kill.sentAtKill).toBeLessThan(a.eligibleIds.size);
    const { done, recoveredMs, completedMs } = await finished(a, id, kill);

    expect(done).toMatchObject({ status: 'COMPLETED', targetCount: COUNT, sentCount: a.eligibleIds.size });
    expect(await counts(id)).toEqual({ SENT: a.eligibleIds.size, SKIPPED: COUNT - a.eligibleIds.size });
    // Where the messages arrive: each eligible customer once, nobody else, no key applied twice.
    const mine = messaging.messages.filter((m) => m.message.tenantId === a.tenant);
    expect(new Set(mine.map((m) => m.message.to.customerId))).toEqual(a.eligibleIds);
    for (const customerId of a.eligibleIds) expect(messaging.messageCounts.get(`${customerId}/SMS`)).toBe(1);
    expect(new Set(mine.map((m) => m.key)).size).toBe(mine.length);
    // Every delivery row names the message Messaging applied for its key (nothing sent unrecorded).
    const { rows } = await db.query<{ id: string; provider_message_id: string; attempts: number }>(
      `select id, provider_message_id, attempts from campaign_deliveries where campaign_id = $1 and status = 'SENT'`, [id],
    );
    const applied = new Map(mine.map((m) => [m.key, m.id]));
    expect(rows.filter((r) => applied.get(r.id) !== r.provider_message_id)).toEqual([]);
    // One SENT interaction per delivery, however often it was attempted.
    const { rows: [sent] } = await db.query<{ n: number }>(`select count(*)::int as n from campaign_interactions where campaign_id = $1 and type = 'SENT'`, [id]);
    expect(sent!.n).toBe(a.eligibleIds.size);

    const keys = new Set(rows.map((r) => r.id));
    const resent = messaging.messagesReceived.filter((k) => keys.has(k)).length - rows.length;
    console.info(`[worker-kill SMS] killed pid ${kill.killed.pid} at ${kill.sentAtKill}/${a.eligibleIds.size} sent; survivor claimed rows ${recoveredMs ?? '?'} ms after the kill, `
      + `campaign COMPLETED ${completedMs} ms after it; ${rows.filter((r) => r.attempts > 1).length} deliveries taken back, ${resent} key(s) resent to Messaging (applied once)`);
  }, 240_000);

  it('EMAIL over SMTP: every eligible customer gets the email, and any duplicate carries the same Message-ID', async () => {
    await twoWorkers();
    const a = await audience('mail');
    const id = await startCampaign(a, 'EMAIL');
    const kill = await killTheSender(id);
    expect(kill.sentAtKill).toBeLessThan(a.eligibleIds.size);
    const { done, recoveredMs, completedMs } = await finished(a, id, kill);

    expect(done).toMatchObject({ status: 'COMPLETED', targetCount: COUNT, sentCount: a.eligibleIds.size });
    expect(await counts(id)).toEqual({ DELIVERED: a.eligibleIds.size, SKIPPED: COUNT - a.eligibleIds.size });
    const mails = smtp.mails.filter((m) => /^mail\d+@kill\.test$/.test((m.to as { text: string } | undefined)?.text ?? ''));
    expect(new Set(mails.map((m) => (m.to as { text: string }).text))).toEqual(a.eligibleEmails);
    // SMTP has no idempotency key: what the dead worker sent but had not yet recorded goes again,
    // as the same message (its Message-ID comes from the delivery), so mail clients can fold it.
    const { rows } = await db.query<{ email: string; provider_message_id: string }>(
      `select c.email, d.provider_message_id from campaign_deliveries d join customers c on c.id = d.customer_id
        where d.campaign_id = $1 and d.status = 'DELIVERED'`, [id],
    );
    const messageIdOf = new Map(rows.map((r) => [r.email, r.provider_message_id]));
    expect(mails.filter((m) => m.messageId !== messageIdOf.get((m.to as { text: string }).text))).toEqual([]);
    const duplicates = mails.length - a.eligibleEmails.size;
    expect(duplicates).toBeGreaterThanOrEqual(0);
    console.info(`[worker-kill EMAIL] killed pid ${kill.killed.pid} at ${kill.sentAtKill}/${a.eligibleIds.size} sent; survivor claimed rows ${recoveredMs ?? '?'} ms after the kill, `
      + `campaign COMPLETED ${completedMs} ms after it; ${mails.length} emails for ${a.eligibleEmails.size} recipients: ${duplicates} duplicate(s), each with its original Message-ID`);
  }, 240_000);
});

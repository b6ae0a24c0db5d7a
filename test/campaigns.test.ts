import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startMessagingServer, type MessagingServer } from '../scripts/messaging-server.js';
import { newTenant, token } from './support/api.js';
import { startSmtpSink, type SmtpSink } from './support/smtp.js';
import { startTestStack, type TestStack } from './support/stack.js';
import { until } from './support/until.js';

// Campaigns end to end: the API, a real worker on the suite's Temporal server, PostgreSQL, a real
// SMTP server and the local Messaging server. What a recipient gets is read where it arrives.

let stack: TestStack;
let smtp: SmtpSink;
let messaging: MessagingServer;
let db: pg.Client;

beforeAll(async () => {
  smtp = await startSmtpSink();
  messaging = await startMessagingServer();
  stack = await startTestStack({
    SMTP_URL: smtp.url,
    MESSAGING_URL: messaging.url,
    MESSAGING_API_KEY: messaging.apiKey,
    MESSAGING_TIMEOUT_MS: '2000',
    EMAIL_MAX_PER_SECOND: '60',
    SMS_MAX_PER_SECOND: '200',
    CAMPAIGN_BATCH_SIZE: '50',
    RATE_LIMIT_CAMPAIGN: '1000',
    // TRIGGERED campaigns are tested here: this file's worker starts the reactions.
    OUTBOX_DISPATCH: 'true',
    OUTBOX_POLL_MS: '200',
  });
  db = new pg.Client({ connectionString: inject('databaseUrl') });
  await db.connect();
});
afterAll(async () => {
  await stack?.close();
  await db?.end();
  await messaging?.close();
  await smtp?.close();
});

const call = (method: string, path: string, auth: string, body?: unknown) => stack.api.call(method, `/api/v1${path}`, { auth, body });


interface Audience {
  tenant: string;
  auth: string;
  segmentId: string;
  emailOk: Set<string>;
  smsOk: Set<string>;
}

/**
 * `count` GOLD members of club "Royal Test": some without email consent, some without a phone or
 * SMS consent, one hard-bounced. Returns who may get what.
 */
async function audience(count: number, prefix: string): Promise<Audience> {
  const tenant = newTenant();
  const auth = await token(tenant);
  await db.query(`insert into clubs (tenant_id, id, name, timezone) values ($1, 'club_royal', 'Royal Test', 'Africa/Johannesburg')`, [tenant]);
  const rows = Array.from({ length: count }, (_, i) => ({
    email: `${prefix}${i}@camp.test`,
    firstName: `First${i}`,
    lastName: `Last${i}`,
    membershipTier: 'GOLD',
    homeClubId: 'club_royal',
    emailOptIn: i % 10 !== 0,
    ...(i % 4 !== 0 && { phoneNumber: `+2782${String(1_000_000 + i).slice(-7)}` }),
    smsOptIn: i % 5 !== 0,
  }));
  const imported = await stack.api.call('POST', '/api/v1/customers/import', {
    auth, body: rows.map((r) => JSON.stringify(r)).join('\n'), headers: { 'content-type': 'application/x-ndjson' },
  });
  expect(imported.body.data.created).toBe(count);
  // One hard bounce: no more campaign email to that address.
  await db.query(`update customers set email_bounced_at = now() where tenant_id = $1 and email = $2`, [tenant, `${prefix}1@camp.test`]);
  const segment = (await call('POST', '/segments', auth, { name: 'Gold', type: 'SMART', criteria: { field: 'membershipTier', op: 'eq', value: 'GOLD' } })).body.data;
  expect(segment.memberCount).toBe(count);
  const emailOk = new Set(rows.filter((r, i) => r.emailOptIn && i !== 1).map((r) => r.email));
  const smsOk = new Set(rows.filter((r) => r.phoneNumber && r.smsOptIn).map((r) => r.email));
  return { tenant, auth, segmentId: segment.id, emailOk, smsOk };
}

async function templates(auth: string) {
  const email = (await call('POST', '/templates', auth, {
    name: 'Summer email', channel: 'EMAIL', subject: 'Summer at {{ club.name }}, {{ firstName }}',
    body: '<p>Hello {{ fullName }}</p><p><a href="https://club.test/offer?x=1">See the offer</a></p><p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>',
  })).body.data;
  const sms = (await call('POST', '/templates', auth, { name: 'Summer SMS', channel: 'SMS', body: 'Hi {{ firstName }}, tee times are open at {{ club.name }}.' })).body.data;
  expect(email.id).toBeTruthy();
  expect(sms.id).toBeTruthy();
  return { emailTemplateId: email.id as string, smsTemplateId: sms.id as string };
}

const mailsOf = (domainPrefix: string) => smtp.mails.filter((m) => (m.to as { text: string } | undefined)?.text.startsWith(domainPrefix));
const smsOf = (tenant: string) => messaging.messages.filter((m) => m.message.tenantId === tenant);
const campaignOf = async (auth: string, id: string) => (await call('GET', `/campaigns/${id}`, auth)).body.data;

describe('a ONE_TIME campaign on EMAIL and SMS', () => {
  it('reaches each eligible member once per channel with their own content, and skips the rest', async () => {
    const a = await audience(300, 'one');
    const t = await templates(a.auth);
    const created = await call('POST', '/campaigns', a.auth, { name: 'Summer', type: 'ONE_TIME', segmentId: a.segmentId, channels: ['EMAIL', 'SMS'], ...t });
    expect(created.status).toBe(201);
    expect(created.body.data).toMatchObject({ status: 'DRAFT', segmentName: 'Gold', targetCount: 300, sentCount: 0 });
    const id = created.body.data.id;

    const executed = await call('POST', `/campaigns/${id}/execute`, a.auth);
    expect(executed.status).toBe(200);
    expect(executed.body.data).toMatchObject({ status: 'ACTIVE', startedAt: expect.any(String) });
    // A double click joins the run instead of sending twice.
    expect((await call('POST', `/campaigns/${id}/execute`, a.auth)).status).toBe(200);

    const done = await until('COMPLETED', async () => {
      const c = await campaignOf(a.auth, id);
      return c.status === 'COMPLETED' && c;
    });
    expect(done).toMatchObject({ targetCount: 300, sentCount: a.emailOk.size + a.smsOk.size, completedAt: expect.any(String) });

    const mails = mailsOf('one');
    expect(mails).toHaveLength(a.emailOk.size);
    expect(new Set(mails.map((m) => (m.to as { text: string }).text))).toEqual(a.emailOk);
    const first = mails.find((m) => (m.to as { text: string }).text === 'one2@camp.test')!;
    expect(first.subject).toBe('Summer at Royal Test, First2');
    expect(first.html).toContain('Hello First2 Last2');
    // Links go through the click redirect, an open pixel is added, and one-click unsubscribe is offered.
    expect(first.html).not.toContain('href="https://club.test/offer');
    expect(first.html).toMatch(new RegExp(`${stack.api.url}/t/c/`));
    expect(first.html).toMatch(new RegExp(`${stack.api.url}/t/o/`));
    expect(first.text).toContain('Hello First2 Last2');
    const header = (name: string) => first.headerLines.find((h) => h.key === name)?.line.replace(/\r?\n\s+/g, ' ');
    expect(header('list-unsubscribe-post')).toBe('List-Unsubscribe-Post: List-Unsubscribe=One-Click');
    expect(header('list-unsubscribe')).toMatch(new RegExp(`^List-Unsubscribe: <${stack.api.url}/t/u/[^>]+>$`));
    expect(first.messageId).toMatch(/^<[0-9a-f-]{36}@crm\.localhost>$/);
    expect(new Set(mails.map((m) => m.messageId)).size).toBe(mails.length);

    const sms = smsOf(a.tenant);
    expect(sms).toHaveLength(a.smsOk.size);
    expect(new Set(sms.map((m) => m.message.to.customerId)).size).toBe(a.smsOk.size);
    expect(sms.every((m) => m.key === m.message.metadata.deliveryId && m.message.metadata.campaignId === id)).toBe(true);
    const one = sms.find((m) => m.message.to.phoneNumber === '+27821000002')!;
    expect(one.message.content.body).toBe('Hi First2, tee times are open at Royal Test.');

    // Skipped recipients are counted, with the reason.
    const stats = (await call('GET', `/campaigns/${id}/stats`, a.auth)).body.data;
    expect(stats.byChannel.EMAIL.sent).toBe(a.emailOk.size);
    expect(stats.byChannel.SMS.sent).toBe(a.smsOk.size);
    expect(stats.skipped).toEqual({ BOUNCED: 1, NO_CONSENT: 30 + (300 - 75 - a.smsOk.size), NO_ADDRESS: 75 });
    expect(stats.byChannel.EMAIL.skipped).toBe(31);
    expect(stats.byChannel.SMS.skipped).toBe(300 - a.smsOk.size);

    // What the platform sent is on the timeline, but makes no one "recently active"; opening does.
    const active = async () => (await db.query(`select count(*)::int as n from customers where tenant_id = $1 and last_activity_at is not null`, [a.tenant])).rows[0].n;
    expect(await active()).toBe(0);
    const sentEntry = (await call('GET', `/customers/${sms[0]!.message.to.customerId}/timeline`, a.auth)).body.data;
    expect(sentEntry).toEqual(expect.arrayContaining([expect.objectContaining({ type: 'campaign.sent', title: 'SMS sent: Summer' })]));

    // Opening and clicking show in the stats; the click redirects to the original link.
    const pixel = /src="([^"]*\/t\/o\/[^"]+)"/.exec(first.html as string)![1]!;
    const link = /href="([^"]*\/t\/c\/[^"]+)"/.exec(first.html as string)![1]!;
    expect((await fetch(pixel.replace(/&amp;/g, '&'))).status).toBe(200);
    const click = await fetch(link.replace(/&amp;/g, '&'), { redirect: 'manual' });
    expect(click.status).toBe(302);
    expect(click.headers.get('location')).toBe('https://club.test/offer?x=1');
    const after = await campaignOf(a.auth, id);
    expect(after).toMatchObject({ openedCount: 1, clickedCount: 1 });
    expect(await active()).toBe(1);
    // Every email the SMTP server took counts as delivered (it reports nothing later), so the
    // open rate is opens over those; the texts wait for Messaging's receipts.
    const rates = (await call('GET', `/campaigns/${id}/stats`, a.auth)).body.data;
    expect(rates.byChannel.EMAIL).toMatchObject({ sent: a.emailOk.size, delivered: a.emailOk.size, opened: 1, bounced: 0 });
    expect(rates.deliveredCount).toBe(a.emailOk.size + rates.byChannel.SMS.delivered);
    expect(rates.openRate).toBe(Math.round(10_000 / rates.deliveredCount) / 10_000);
    expect(after.openRate).toBe(rates.openRate);
  });
});

describe('the frequency cap', () => {
  it('one message a day per customer across channels and batches, whichever of their sends goes first', async () => {
    const a = await audience(200, 'cap');
    const t = await templates(a.auth);
    // Two channels through the Messaging service, whose completions are written in groups.
    const created = await call('POST', '/campaigns', a.auth, {
      name: 'Capped', type: 'ONE_TIME', segmentId: a.segmentId, channels: ['SMS', 'WHATSAPP'], frequencyCap: 1, smsTemplateId: t.smsTemplateId,
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const id = created.body.data.id;
    await call('POST', `/campaigns/${id}/execute`, a.auth);
    await until('COMPLETED', async () => (await campaignOf(a.auth, id)).status === 'COMPLETED');

    const got = new Map<string, string[]>();
    for (const m of smsOf(a.tenant)) got.set(m.message.to.customerId, [...(got.get(m.message.to.customerId) ?? []), m.message.channel]);
    // Everyone reachable got exactly one message, on one of the two channels.
    expect(got.size).toBe(a.smsOk.size);
    expect([...got.entries()].filter(([, channels]) => channels.length !== 1)).toEqual([]);
    const stats = (await call('GET', `/campaigns/${id}/stats`, a.auth)).body.data;
    expect(stats.skipped.FREQUENCY_CAP).toBe(a.smsOk.size);
  });
});

describe('pause, resume and cancel while sending', () => {
  it('stops new sends at pause with a true sentCount, and finishes the rest on resume without duplicates', async () => {
    const a = await audience(240, 'pause');
    const t = await templates(a.auth);
    const id = (await call('POST', '/campaigns', a.auth, { name: 'Slow', type: 'ONE_TIME', segmentId: a.segmentId, channels: ['EMAIL'], ...t })).body.data.id;
    await call('POST', `/campaigns/${id}/execute`, a.auth);
    await until('some sent', async () => mailsOf('pause').length >= 20);
    // A double click: one pause pauses, the other is refused by the state machine (not a 500).
    const [one, two] = await Promise.all([call('POST', `/campaigns/${id}/pause`, a.auth), call('POST', `/campaigns/${id}/pause`, a.auth)]);
    expect([one.status, two.status].sort()).toEqual([200, 409]);
    const paused = one.status === 200 ? one : two;
    expect(paused.body.data).toMatchObject({ status: 'PAUSED', pausedAt: expect.any(String) });
    const atPause = paused.body.data.sentCount;
    expect(atPause).toBeGreaterThanOrEqual(20);
    expect(atPause).toBeLessThan(a.emailOk.size);
    // Nothing more goes while paused, and what went is exactly what sentCount says.
    await new Promise((r) => setTimeout(r, 1500));
    expect(mailsOf('pause')).toHaveLength(atPause);
    expect((await campaignOf(a.auth, id)).sentCount).toBe(atPause);
    expect((await call('POST', `/campaigns/${id}/pause`, a.auth)).body.error.code).toBe('INVALID_STATE');

    const resumed = await call('POST', `/campaigns/${id}/resume`, a.auth);
    expect(resumed.body.data).toMatchObject({ status: 'ACTIVE', resumedAt: expect.any(String) });
    await until('COMPLETED', async () => (await campaignOf(a.auth, id)).status === 'COMPLETED');
    const mails = mailsOf('pause');
    expect(mails).toHaveLength(a.emailOk.size);
    expect(new Set(mails.map((m) => (m.to as { text: string }).text)).size).toBe(a.emailOk.size);
  });

  it('a pause that comes before the run begins (right after execute) holds the run before it sends', async () => {
    const a = await audience(30, 'early-pause');
    const t = await templates(a.auth);
    const id = (await call('POST', '/campaigns', a.auth, { name: 'Early', type: 'ONE_TIME', segmentId: a.segmentId, channels: ['EMAIL'], ...t })).body.data.id;
    // Execute's first half: the campaign ACTIVE, its run not started yet. The pause finds no run.
    await db.query(`update campaigns set status = 'ACTIVE' where id = $1`, [id]);
    const paused = await call('POST', `/campaigns/${id}/pause`, a.auth);
    expect(paused.body.data).toMatchObject({ status: 'PAUSED' });
    // Execute's second half, as startOneTimeRun starts it.
    await stack.client.workflow.start('campaignWorkflow', {
      workflowId: `campaign-${id}`, taskQueue: stack.taskQueue, args: [{ tenantId: a.tenant, campaignId: id, kind: 'ONE_TIME', runKey: 'once', startAt: null }],
    });
    await until('the run holds', async () => ((await stack.client.workflow.getHandle(`campaign-${id}`).query('progress')) as { phase: string }).phase === 'paused' || undefined);
    expect(mailsOf('early-pause')).toHaveLength(0);
    expect((await campaignOf(a.auth, id)).status).toBe('PAUSED');
    expect((await call('POST', `/campaigns/${id}/resume`, a.auth)).body.data).toMatchObject({ status: 'ACTIVE' });
    await until('COMPLETED', async () => (await campaignOf(a.auth, id)).status === 'COMPLETED');
    expect(mailsOf('early-pause')).toHaveLength(a.emailOk.size);
  });

  it('cancel stops sending and marks what was not sent as cancelled', async () => {
    const a = await audience(240, 'cancel');
    const t = await templates(a.auth);
    const id = (await call('POST', '/campaigns', a.auth, { name: 'Stop', type: 'ONE_TIME', segmentId: a.segmentId, channels: ['EMAIL'], ...t })).body.data.id;
    await call('POST', `/campaigns/${id}/execute`, a.auth);
    await until('some sent', async () => mailsOf('cancel').length >= 10);
    const cancelled = await call('POST', `/campaigns/${id}/cancel`, a.auth);
    expect(cancelled.body.data).toMatchObject({ status: 'CANCELLED', cancelledAt: expect.any(String) });
    const sent = cancelled.body.data.sentCount;
    await new Promise((r) => setTimeout(r, 1500));
    expect(mailsOf('cancel')).toHaveLength(sent);
    // An email the SMTP server accepted is DELIVERED (SMTP reports nothing later).
    const { rows } = await db.query(`select status, count(*)::int as n from campaign_deliveries where campaign_id = $1 and status in ('DELIVERED', 'CANCELLED') group by 1 order by 1`, [id]);
    expect(rows).toEqual([{ status: 'CANCELLED', n: a.emailOk.size - sent }, { status: 'DELIVERED', n: sent }]);
    for (const action of ['resume', 'pause', 'execute', 'cancel']) {
      const refused = await call('POST', `/campaigns/${id}/${action}`, a.auth);
      expect(refused.status).toBe(409);
      expect(refused.body.error.code).toBe('INVALID_STATE');
    }
  });
});

describe('the state machine', () => {
  it('refuses every transition campaigns-api.md does not list, naming the state and what is allowed', async () => {
    const a = await audience(3, 'state');
    const t = await templates(a.auth);
    const id = (await call('POST', '/campaigns', a.auth, { name: 'States', type: 'ONE_TIME', channels: ['EMAIL', 'SMS'] })).body.data.id;
    for (const action of ['pause', 'resume', 'cancel']) {
      const refused = await call('POST', `/campaigns/${id}/${action}`, a.auth);
      expect(refused.status).toBe(409);
      expect(refused.body.error).toMatchObject({ code: 'INVALID_STATE', message: expect.stringContaining('is DRAFT') });
      expect(refused.body.error.message).toContain('allowed: schedule, execute');
    }
    const future = new Date(Date.now() + 3_600_000).toISOString();
    // Not sendable yet: no segment, then no template for a chosen channel; nothing changes.
    const noSegment = await call('POST', `/campaigns/${id}/schedule`, a.auth, { scheduledAt: future });
    expect(noSegment.body.error).toMatchObject({ code: 'VALIDATION_ERROR', field: 'segmentId' });
    await call('PATCH', `/campaigns/${id}`, a.auth, { segmentId: a.segmentId, emailTemplateId: t.emailTemplateId });
    const noSms = await call('POST', `/campaigns/${id}/schedule`, a.auth, { scheduledAt: future });
    expect(noSms.body.error).toMatchObject({ code: 'VALIDATION_ERROR', field: 'smsTemplateId' });
    // The wrong kind of template for the field.
    expect((await call('PATCH', `/campaigns/${id}`, a.auth, { smsTemplateId: t.emailTemplateId })).body.error).toMatchObject({ code: 'VALIDATION_ERROR', field: 'smsTemplateId' });
    await call('PATCH', `/campaigns/${id}`, a.auth, { smsTemplateId: t.smsTemplateId });
    const past = await call('POST', `/campaigns/${id}/schedule`, a.auth, { scheduledAt: new Date(Date.now() - 60_000).toISOString() });
    expect(past.body.error).toMatchObject({ code: 'VALIDATION_ERROR', field: 'scheduledAt' });
    expect((await campaignOf(a.auth, id)).status).toBe('DRAFT');

    const scheduled = await call('POST', `/campaigns/${id}/schedule`, a.auth, { scheduledAt: future });
    expect(scheduled.body.data).toMatchObject({ status: 'SCHEDULED', scheduledAt: future, targetCount: 3 });
    for (const action of ['execute', 'pause', 'resume']) {
      expect((await call('POST', `/campaigns/${id}/${action}`, a.auth)).body.error?.code).toBe('INVALID_STATE');
    }
    expect((await call('POST', `/campaigns/${id}/schedule`, a.auth, { scheduledAt: future })).body.error?.code).toBe('INVALID_STATE');
    // A double click with two times: the one that scheduled is the one kept. Both read DRAFT, then
    // queue for the campaign's row (held here) in the order sent.
    const twice = (await call('POST', '/campaigns', a.auth, { name: 'Twice', type: 'ONE_TIME', segmentId: a.segmentId, channels: ['EMAIL', 'SMS'], ...t })).body.data.id;
    const [holder, watcher] = [new pg.Client({ connectionString: inject('databaseUrl') }), new pg.Client({ connectionString: inject('databaseUrl') })];
    await Promise.all([holder.connect(), watcher.connect()]);
    try {
      await holder.query('begin');
      await holder.query('select id from campaigns where id = $1 for update', [twice]);
      const [{ pid }] = (await holder.query('select pg_backend_pid() as pid')).rows;
      const waiting = async (n: number) => until(`${n} waiting`, async () => ((await watcher.query(
        `with first as (select pid from pg_stat_activity where $1 = any(pg_blocking_pids(pid)))
         select (select count(*) from first) + (select count(*) from pg_stat_activity a where pg_blocking_pids(a.pid) && array(select pid from first)) as n`,
        [pid],
      )).rows[0].n === String(n) ? true : undefined));
      const [soon, later] = [3_600_000, 7 * 86_400_000].map((ms) => new Date(Date.now() + ms).toISOString());
      const first = call('POST', `/campaigns/${twice}/schedule`, a.auth, { scheduledAt: soon });
      await waiting(1);
      const second = call('POST', `/campaigns/${twice}/schedule`, a.auth, { scheduledAt: later });
      await waiting(2);
      await holder.query('commit');
      const answers = await Promise.all([first, second]);
      expect(answers.map((r) => r.status).sort()).toEqual([200, 409]);
      // The time the scheduling request asked for, not the refused one's.
      const won = answers[0]!.status === 200 ? soon : later;
      expect(answers.find((r) => r.status === 200)!.body.data.scheduledAt).toBe(won);
      expect((await campaignOf(a.auth, twice)).scheduledAt).toBe(won);
    } finally {
      await Promise.all([holder.end(), watcher.end()]);
    }
    await call('POST', `/campaigns/${twice}/cancel`, a.auth);
    // Audience and templates are frozen outside DRAFT; the name is not.
    expect((await call('PATCH', `/campaigns/${id}`, a.auth, { segmentId: a.segmentId })).body.error).toMatchObject({ code: 'INVALID_STATE', field: 'segmentId' });
    expect((await call('PATCH', `/campaigns/${id}`, a.auth, { name: 'Renamed' })).body.data.name).toBe('Renamed');
    const run = await stack.client.workflow.getHandle(`campaign-${id}`).describe();
    expect(run.status.name).toBe('RUNNING');

    // GraphQL moves the same state machine.
    const gql = await stack.api.graphql(a.auth, `mutation { pauseCampaign(id: "${id}") { id status } }`);
    expect(gql.body.errors[0].extensions.code).toBe('INVALID_STATE');
    const cancelled = await stack.api.graphql(a.auth, `mutation { cancelCampaign(id: "${id}") { id status segment { name } } }`);
    expect(cancelled.body.data.cancelCampaign).toEqual({ id, status: 'CANCELLED', segment: { name: 'Gold' } });
    await until('the run ends', async () => (await stack.client.workflow.getHandle(`campaign-${id}`).describe()).status.name === 'COMPLETED');
    expect(smsOf(a.tenant)).toHaveLength(0);
    expect((await stack.api.graphql(a.auth, `mutation { resumeCampaign(id: "${id}") { id } }`)).body.errors[0].extensions.code).toBe('INVALID_STATE');
  });

  it('answers list filters, GraphQL queries and scopes', async () => {
    const a = await audience(2, 'list');
    const t = await templates(a.auth);
    const one = (await call('POST', '/campaigns', a.auth, { name: 'A', type: 'ONE_TIME', segmentId: a.segmentId, channels: ['EMAIL'], ...t })).body.data;
    const rec = (await call('POST', '/campaigns', a.auth, {
      name: 'Weekly', type: 'RECURRING', segmentId: a.segmentId, channels: ['SMS'], ...t, clubId: 'club_royal',
      schedule: { frequency: 'weekly', dayOfWeek: 1, time: '09:00', timezone: 'Africa/Johannesburg' },
    })).body.data;
    expect(rec).toMatchObject({ type: 'RECURRING', timezone: 'Africa/Johannesburg', schedule: { frequency: 'weekly', dayOfWeek: 1 } });
    expect((await call('POST', '/campaigns', a.auth, { name: 'X', type: 'RECURRING', channels: ['SMS'] })).body.error).toMatchObject({ code: 'VALIDATION_ERROR', field: 'schedule' });
    expect((await call('POST', '/campaigns', a.auth, { name: 'X', type: 'TRIGGERED', channels: ['SMS'] })).body.error).toMatchObject({ code: 'VALIDATION_ERROR', field: 'triggerEvent' });
    // Only exact IANA names: others Temporal or PostgreSQL would refuse, or read another way.
    for (const timezone of ['Mars/Olympus', 'america/new_york', 'UTC+5', 'system', 'local']) {
      expect((await call('POST', '/campaigns', a.auth, { name: 'X', type: 'ONE_TIME', channels: ['SMS'], timezone })).body.error, timezone).toMatchObject({ code: 'VALIDATION_ERROR', field: 'timezone' });
    }

    const list = (await call('GET', '/campaigns?type=RECURRING', a.auth)).body;
    expect(list.data.map((c: { id: string }) => c.id)).toEqual([rec.id]);
    expect((await call('GET', '/campaigns?clubId=club_royal', a.auth)).body.data.map((c: { id: string }) => c.id)).toEqual([rec.id]);
    expect((await call('GET', '/campaigns?status=DRAFT&take=1', a.auth)).body.meta).toMatchObject({ total: 2, take: 1, hasMore: true });

    const gql = await stack.api.graphql(a.auth, `{ campaigns(tenantId: "${a.tenant}", filter: { type: ONE_TIME }) { totalCount edges { node { id name status segment { id } openRate } } }
      campaign(id: "${one.id}") { name targetCount channels } campaignStats(id: "${one.id}") { sentCount openRate byChannel } }`);
    expect(gql.body.errors).toBeUndefined();
    expect(gql.body.data.campaigns).toEqual({ totalCount: 1, edges: [{ node: { id: one.id, name: 'A', status: 'DRAFT', segment: { id: a.segmentId }, openRate: null } }] });
    expect(gql.body.data.campaign).toEqual({ name: 'A', targetCount: 2, channels: ['EMAIL'] });
    expect(gql.body.data.campaignStats).toMatchObject({ sentCount: 0, openRate: 0 });

    const reader = await token(a.tenant, ['crm:read']);
    expect((await call('POST', '/campaigns', reader, { name: 'No', type: 'ONE_TIME', channels: ['EMAIL'] })).status).toBe(403);
    expect((await call('POST', `/campaigns/${one.id}/execute`, reader)).status).toBe(403);
    expect((await call('GET', `/campaigns/${one.id}`, reader)).status).toBe(200);
    const other = await token(newTenant());
    expect((await call('GET', `/campaigns/${one.id}`, other)).status).toBe(404);
    expect((await call('POST', `/campaigns/${one.id}/execute`, other)).status).toBe(404);
  });
});

describe('a TRIGGERED campaign', () => {
  it('sends once per matching event, not for resent or unmatched events', async () => {
    const a = await audience(2, 'trig');
    const t = await templates(a.auth);
    const id = (await call('POST', '/campaigns', a.auth, {
      name: 'Upgrade', type: 'TRIGGERED', channels: ['SMS'], smsTemplateId: t.smsTemplateId,
      triggerEvent: 'scl.member.tier.changed', triggerConditions: { reason: 'upgrade' },
    })).body.data.id;
    expect((await call('POST', `/campaigns/${id}/schedule`, a.auth, { scheduledAt: new Date(Date.now() + 60_000).toISOString() })).body.error.field).toBe('type');
    expect((await call('POST', `/campaigns/${id}/execute`, a.auth)).body.data.status).toBe('ACTIVE');
    const member = 'trig1@camp.test'; // has a phone and SMS consent
    const event = (sourceEventId: string, reason: string) => ({
      type: 'scl.member.tier.changed', occurredAt: new Date().toISOString(), customer: { email: member }, category: 'MEMBERSHIP',
      title: 'Tier changed', metadata: { reason, tier: 'PLATINUM' }, sourceService: 'scl', sourceEventId,
    });
    // A campaign triggered by campaign sends would trigger itself on its own: campaign entries trigger nothing.
    const echo = (await call('POST', '/campaigns', a.auth, {
      name: 'Echo', type: 'TRIGGERED', channels: ['SMS'], smsTemplateId: t.smsTemplateId, triggerEvent: 'campaign.sent',
    })).body.data.id;
    await call('POST', `/campaigns/${echo}/execute`, a.auth);
    await call('POST', '/events', a.auth, [event('e1', 'upgrade'), event('e2', 'downgrade')]);
    await call('POST', '/events', a.auth, event('e1', 'upgrade')); // resent
    await until('one SMS', async () => smsOf(a.tenant).length === 1);
    await call('POST', '/events', a.auth, event('e3', 'upgrade'));
    await until('a second SMS', async () => smsOf(a.tenant).length === 2);
    await new Promise((r) => setTimeout(r, 1500));
    expect(smsOf(a.tenant)).toHaveLength(2);
    expect(smsOf(a.tenant).every((m) => m.message.metadata.campaignId === id)).toBe(true);
    expect(smsOf(a.tenant)[0]!.message.content.body).toBe('Hi First1, tee times are open at Royal Test.');

    // Paused, the campaign lets its events pass; resumed, it reacts again.
    await call('POST', `/campaigns/${id}/pause`, a.auth);
    await call('POST', '/events', a.auth, event('e4', 'upgrade'));
    await new Promise((r) => setTimeout(r, 1500));
    expect(smsOf(a.tenant)).toHaveLength(2);
    expect((await campaignOf(a.auth, id))).toMatchObject({ status: 'PAUSED', sentCount: 2 });
  });
});

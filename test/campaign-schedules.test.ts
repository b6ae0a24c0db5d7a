import { ScheduleNotFoundError } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { DateTime } from 'luxon';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMessagingServer, type MessagingServer } from '../scripts/messaging-server.js';
import { startTestStack, type TestStack } from './support/stack.js';
import { startTimeSkippingStack, type TimeSkippingStack } from './support/time-skipping-stack.js';
import { newTenant, token, type TestApi } from './support/api.js';
import { until } from './support/until.js';

// Scheduled campaigns. ONE_TIME on Temporal's time-skipping test server: a campaign months ahead
// waits for its hour, which the server reaches in seconds; each recipient's send is stamped with
// the workflow's clock, so its hour in the recipient's own zone can be checked, across DST changes.
// RECURRING on the suite's dev server (Schedules): its calendar, next times, occurrences, controls.

const ZONES = { london: 'Europe/London', newYork: 'America/New_York', sydney: 'Australia/Sydney' } as const;

let stack: TimeSkippingStack;
let env: TestWorkflowEnvironment;
let messaging: MessagingServer;
let api: TestApi;
let db: pg.Client;

beforeAll(async () => {
  messaging = await startMessagingServer();
  stack = await startTimeSkippingStack('schedules', { MESSAGING_URL: messaging.url, MESSAGING_API_KEY: messaging.apiKey, RATE_LIMIT_CAMPAIGN: '1000' });
  ({ env, api, db } = stack);
}, 240_000);

afterAll(async () => {
  await stack?.stop();
  await messaging?.close();
});

const call = (method: string, path: string, auth: string, body?: unknown) => api.call(method, `/api/v1${path}`, { auth, body });

/** One SMS-consenting member per zone, each of a club in that zone, and a segment of them. */
async function membersAcrossZones(request = call) {
  const tenant = newTenant();
  const auth = await token(tenant);
  const customers: Record<string, { id: string; zone: string }> = {};
  for (const [name, zone] of Object.entries(ZONES)) {
    await db.query(`insert into clubs (tenant_id, id, name, timezone) values ($1, $2, $3, $4)`, [tenant, `club_${name}`, `Club ${name}`, zone]);
    const { rows } = await db.query<{ id: string }>(
      `insert into customers (tenant_id, email, first_name, phone_number, membership_tier, home_club_id, sms_opt_in)
       values ($1, $2, $3, $4, 'GOLD', $5, true) returning id`,
      [tenant, `${name}@zones.test`, name, `+1555${String(Object.keys(customers).length).padStart(7, '0')}`, `club_${name}`],
    );
    customers[name] = { id: rows[0]!.id, zone };
  }
  // STATIC: a SMART segment's refresh is a Schedule, which the time-skipping server does not have.
  const segment = (await request('POST', '/segments', auth, { name: 'Gold', type: 'STATIC', criteria: { field: 'membershipTier', op: 'eq', value: 'GOLD' } })).body.data;
  expect(segment.memberCount).toBe(3);
  const template = (await request('POST', '/templates', auth, { name: 'Morning', channel: 'SMS', body: 'Good morning {{ firstName }}' })).body.data;
  return { tenant, auth, customers, segmentId: segment.id as string, smsTemplateId: template.id as string };
}

// 09:00 in London on the Monday after the clocks go forward there (28 March 2027); New York changed
// two weeks earlier, Sydney changes back a week later: three different offsets from today's.
const NINE_LONDON = DateTime.fromISO('2027-03-29T09:00', { zone: 'Europe/London' });

async function scheduledCampaign(a: Awaited<ReturnType<typeof membersAcrossZones>>, extra: Record<string, unknown> = {}) {
  const created = await call('POST', '/campaigns', a.auth, {
    name: 'Morning', type: 'ONE_TIME', segmentId: a.segmentId, channels: ['SMS'], smsTemplateId: a.smsTemplateId,
    timezone: 'Europe/London', sendInRecipientTimezone: true, ...extra,
  });
  expect(created.status).toBe(201);
  const id = created.body.data.id as string;
  const scheduled = await call('POST', `/campaigns/${id}/schedule`, a.auth, { scheduledAt: NINE_LONDON.toISO() });
  expect(scheduled.body.error).toBeUndefined();
  expect(scheduled.body.data).toMatchObject({ status: 'SCHEDULED', scheduledAt: NINE_LONDON.toUTC().toISO() });
  return id;
}

/** Each recipient's sent_at, as wall-clock time in their own zone. */
async function localSendTimes(campaignId: string, customers: Record<string, { id: string; zone: string }>) {
  const { rows } = await db.query<{ customer_id: string; status: string; sent_at: Date | null }>(
    `select customer_id, status, sent_at from campaign_deliveries where campaign_id = $1`, [campaignId],
  );
  return Object.fromEntries(Object.entries(customers).map(([name, c]) => {
    const row = rows.find((r) => r.customer_id === c.id);
    return [name, row?.sent_at ? DateTime.fromJSDate(row.sent_at, { zone: c.zone }).toFormat('yyyy-MM-dd HH:mm') : row?.status];
  }));
}

describe('ONE_TIME campaigns months ahead, in each recipient\'s time zone (time-skipping server)', () => {
  // The test server has one clock for all its workflows, and it only goes forward: every campaign
  // is scheduled (and one cancelled) before any waiting lets it jump, then all are awaited at once.
  const runs = {} as Record<'plain' | 'quiet' | 'cancelled', { a: Awaited<ReturnType<typeof membersAcrossZones>>; id: string }>;
  let cancelledAnswer: { status: number; body: any };
  beforeAll(async () => {
    for (const [name, extra] of [['plain', {}], ['quiet', { quietHours: { start: '08:30', end: '10:15' } }], ['cancelled', {}]] as const) {
      const a = await membersAcrossZones();
      runs[name] = { a, id: await scheduledCampaign(a, extra) };
    }
    cancelledAnswer = await call('POST', `/campaigns/${runs.cancelled.id}/cancel`, runs.cancelled.a.auth);
    // Waiting on a run through the test environment lets the server skip timers (one wait at a
    // time: each unlocks the clock while it waits, and locks it again after).
    for (const r of Object.values(runs)) await env.client.workflow.getHandle(`campaign-${r.id}`).result();
  }, 120_000);

  it('sends to each recipient at 09:00 in their own zone on the day, whatever DST says there', async () => {
    const { a, id } = runs.plain;
    expect(await localSendTimes(id, a.customers)).toEqual({
      london: '2027-03-29 09:00', newYork: '2027-03-29 09:00', sydney: '2027-03-29 09:00',
    });
    // Three different UTC instants: BST (+1), EDT (-4), AEDT (+11), where today London is on GMT.
    const utc = await db.query<{ sent_at: Date }>(`select sent_at from campaign_deliveries where campaign_id = $1 order by sent_at`, [id]);
    expect(utc.rows.map((r) => DateTime.fromJSDate(r.sent_at, { zone: 'UTC' }).toFormat('MM-dd HH:mm'))).toEqual(['03-28 22:00', '03-29 08:00', '03-29 13:00']);
    expect((await call('GET', `/campaigns/${id}`, a.auth)).body.data).toMatchObject({ status: 'COMPLETED', sentCount: 3 });
    expect(messaging.messages.filter((m) => m.message.tenantId === a.tenant).map((m) => m.message.content.body).sort())
      .toEqual(['Good morning london', 'Good morning newYork', 'Good morning sydney']);
    // The run waited months on the workflow's clock (skipped, not waited).
    const run = await env.client.workflow.getHandle(`campaign-${id}`).describe();
    expect(run.closeTime!.getTime() - run.startTime.getTime()).toBeGreaterThan(90 * 24 * 3600_000);
  });

  it('moves a send that falls in quiet hours to their end, in the recipient\'s zone', async () => {
    const { a, id } = runs.quiet;
    expect(await localSendTimes(id, a.customers)).toEqual({
      london: '2027-03-29 10:15', newYork: '2027-03-29 10:15', sydney: '2027-03-29 10:15',
    });
    expect((await call('GET', `/campaigns/${id}`, a.auth)).body.data).toMatchObject({ status: 'COMPLETED', sentCount: 3 });
  });

  it('sends nothing when cancelled before its hour (the test server takes the cancel update)', async () => {
    const { a, id } = runs.cancelled;
    expect(cancelledAnswer.status).toBe(200);
    expect(cancelledAnswer.body.data).toMatchObject({ status: 'CANCELLED' });
    const { rows } = await db.query(`select status from campaign_deliveries where campaign_id = $1`, [id]);
    expect(rows).toEqual([]);
    expect(messaging.messages.filter((m) => m.message.tenantId === a.tenant)).toEqual([]);
    expect((await call('GET', `/campaigns/${id}`, a.auth)).body.data).toMatchObject({ status: 'CANCELLED', sentCount: 0 });
  });
});

describe('on the dev server (real time; the test server has no Schedules)', () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startTestStack({ MESSAGING_URL: messaging.url, MESSAGING_API_KEY: messaging.apiKey, RATE_LIMIT_CAMPAIGN: '1000' });
  }, 120_000);
  afterAll(async () => {
    await stack?.close();
  });
  const rest = (method: string, path: string, auth: string, body?: unknown) => stack.api.call(method, `/api/v1${path}`, { auth, body });

  it('keeps quiet hours for a recipient whose hour has already passed in their zone (sent now, but not inside quiet hours)', async () => {
    const a = await membersAcrossZones(rest);
    // In two minutes in London: in Sydney (11 hours ahead) that wall-clock time is long past, so
    // Sydney's member is due at once, at Sydney's present hour, which these quiet hours cover.
    const sydneyNow = DateTime.now().setZone(ZONES.sydney);
    const quietHours = { start: sydneyNow.minus({ minutes: 30 }).toFormat('HH:mm'), end: sydneyNow.plus({ minutes: 30 }).toFormat('HH:mm') };
    const scheduledAt = DateTime.now().setZone('Europe/London').plus({ minutes: 2 }).startOf('minute');
    const id = (await rest('POST', '/campaigns', a.auth, {
      name: 'Soon', type: 'ONE_TIME', segmentId: a.segmentId, channels: ['SMS'], smsTemplateId: a.smsTemplateId,
      timezone: 'Europe/London', sendInRecipientTimezone: true, quietHours,
    })).body.data.id as string;
    expect((await rest('POST', `/campaigns/${id}/schedule`, a.auth, { scheduledAt: scheduledAt.toISO() })).body.data).toMatchObject({ status: 'SCHEDULED' });
    const sydney = await until('the snapshot', async () => (await db.query<{ status: string; send_at: Date }>(
      `select status, send_at from campaign_deliveries where campaign_id = $1 and customer_id = $2`, [id, a.customers.sydney!.id],
    )).rows[0]);
    const quietEnd = sydneyNow.plus({ minutes: 30 }).startOf('minute');
    expect(DateTime.fromJSDate(sydney.send_at, { zone: ZONES.sydney }).toISO()).toBe(quietEnd.toISO());
    // Not sent inside the quiet hours: still waiting for their end.
    await new Promise((r) => setTimeout(r, 1500));
    expect((await db.query(`select status from campaign_deliveries where campaign_id = $1 and customer_id = $2`, [id, a.customers.sydney!.id])).rows)
      .toEqual([{ status: 'PENDING' }]);
    expect(messaging.messages.filter((m) => m.message.to.customerId === a.customers.sydney!.id)).toEqual([]);
    expect((await rest('POST', `/campaigns/${id}/cancel`, a.auth)).body.data).toMatchObject({ status: 'CANCELLED' });
  }, 60_000);

  it('runs weekly at 09:00 London across the DST change; trigger sends one occurrence; pause, resume and cancel drive its schedule', async () => {
    const tenant = newTenant();
    const auth = await token(tenant);
    await db.query(
      `insert into customers (tenant_id, email, first_name, phone_number, membership_tier, sms_opt_in)
       select $1, 'weekly' || i || '@zones.test', 'Member' || i, '+4478' || lpad(i::text, 8, '0'), 'GOLD', true from generate_series(1, 5) i`,
      [tenant],
    );
    const segment = (await rest('POST', '/segments', auth, { name: 'Gold', type: 'SMART', criteria: { field: 'membershipTier', op: 'eq', value: 'GOLD' } })).body.data;
    const template = (await rest('POST', '/templates', auth, { name: 'Weekly', channel: 'SMS', body: 'This week at the club, {{ firstName }}' })).body.data;
    const schedule = { frequency: 'weekly', dayOfWeek: 1, time: '09:00', timezone: 'Europe/London' };
    const created = await rest('POST', '/campaigns', auth, {
      name: 'Weekly', type: 'RECURRING', segmentId: segment.id, channels: ['SMS'], smsTemplateId: template.id, schedule,
    });
    expect(created.status).toBe(201);
    const id = created.body.data.id as string;
    // From a week before the clocks go forward in London (Sunday 28 March 2027).
    const startAt = DateTime.fromISO('2027-03-20T00:00', { zone: 'Europe/London' });
    const scheduled = await rest('POST', `/campaigns/${id}/schedule`, auth, { scheduledAt: startAt.toISO() });
    expect(scheduled.body.data).toMatchObject({ status: 'SCHEDULED' });

    const handle = stack.client.schedule.getHandle(`campaign-schedule-${id}`);
    const described = await handle.describe();
    expect(described.spec.calendars).toEqual([expect.objectContaining({
      hour: [{ start: 9, end: 9, step: 1 }], minute: [{ start: 0, end: 0, step: 1 }], dayOfWeek: [{ start: 'MONDAY', end: 'MONDAY', step: 1 }],
    })]);
    expect(described.spec.timezone).toBe('Europe/London');
    expect(described.state.paused).toBe(false);
    const next = described.info.nextActionTimes.slice(0, 3);
    // 09:00 in London each Monday: 09:00 UTC on GMT, 08:00 UTC on BST.
    expect(next.map((t) => DateTime.fromJSDate(t, { zone: 'Europe/London' }).toFormat('ccc yyyy-MM-dd HH:mm'))).toEqual([
      'Mon 2027-03-22 09:00', 'Mon 2027-03-29 09:00', 'Mon 2027-04-05 09:00',
    ]);
    expect(next.map((t) => t.toISOString())).toEqual(['2027-03-22T09:00:00.000Z', '2027-03-29T08:00:00.000Z', '2027-04-05T08:00:00.000Z']);

    // One occurrence now: its own run, which sends to the segment once.
    await handle.trigger();
    const runId = await until('the occurrence\'s run', async () => {
      for await (const run of stack.client.workflow.list({ query: `CampaignId = '${id}' AND WorkflowType = 'campaignWorkflow'` })) return run.workflowId;
      return undefined;
    });
    expect(runId).toMatch(new RegExp(`^campaign-${id}-\\d{8}T\\d{6}Z$`));
    const progress = await stack.client.workflow.getHandle(runId).result();
    expect(progress).toMatchObject({ phase: 'done', targetCount: 5, sent: 5 });
    const sent = messaging.messages.filter((m) => m.message.tenantId === tenant);
    expect(sent).toHaveLength(5);
    expect(new Set(sent.map((m) => m.message.to.phoneNumber)).size).toBe(5);
    const runKey = runId.slice(`campaign-${id}-`.length);
    const { rows } = await db.query(`select distinct run_key, status from campaign_deliveries where campaign_id = $1`, [id]);
    expect(rows).toEqual([{ run_key: runKey, status: 'SENT' }]);
    expect((await rest('GET', `/campaigns/${id}`, auth)).body.data).toMatchObject({ status: 'ACTIVE', sentCount: 5 });

    expect((await rest('POST', `/campaigns/${id}/pause`, auth)).body.data).toMatchObject({ status: 'PAUSED' });
    expect((await handle.describe()).state.paused).toBe(true);
    expect((await rest('POST', `/campaigns/${id}/resume`, auth)).body.data).toMatchObject({ status: 'ACTIVE' });
    expect((await handle.describe()).state.paused).toBe(false);
    expect((await rest('POST', `/campaigns/${id}/cancel`, auth)).body.data).toMatchObject({ status: 'CANCELLED' });
    await expect(handle.describe()).rejects.toBeInstanceOf(ScheduleNotFoundError);
  }, 120_000);
});


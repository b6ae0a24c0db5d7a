import { randomBytes, randomUUID } from 'node:crypto';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { DateTime } from 'luxon';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMessagingServer, type MessagingServer } from '../scripts/messaging-server.js';
import { nextWake } from '../workflows/event-promotion.js';
import { newTenant, token, type TestApi } from './support/api.js';
import { startSmtpSink, type SmtpSink } from './support/smtp.js';
import { startSocialFakes, type SocialFakes } from './support/social/fake-platforms.js';
import { startTimeSkippingStack, type TimeSkippingStack } from './support/time-skipping-stack.js';
import { until } from './support/until.js';

// Event promotions through the public API: upstream systems describe a competition with
// `POST /events`, a promotion announces it and reminds the club's members of it days before, in the
// club's time zone, on Temporal's time-skipping server (months pass in seconds); emails arrive at a
// real SMTP server. Moved and cancelled events, a switched-off promotion, a restarted workflow and
// a double execute, each checked against what was sent.

const ZONE = 'Europe/London';
let stack: TimeSkippingStack;
let env: TestWorkflowEnvironment;
let smtp: SmtpSink;
let messaging: MessagingServer;
let fakes: SocialFakes;
let api: TestApi;
let db: pg.Client;

beforeAll(async () => {
  messaging = await startMessagingServer();
  smtp = await startSmtpSink();
  fakes = await startSocialFakes();
  stack = await startTimeSkippingStack(
    'promotions',
    { ...fakes.env, SOCIAL_TOKEN_KEY: randomBytes(32).toString('base64'), MESSAGING_URL: messaging.url, MESSAGING_API_KEY: messaging.apiKey, SMTP_URL: smtp.url, RATE_LIMIT_WRITE: '100000', RATE_LIMIT_READ: '100000', RATE_LIMIT_CAMPAIGN: '100000' },
    { OUTBOX_DISPATCH: 'true', OUTBOX_POLL_MS: '200' },
  );
  ({ env, api, db } = stack);
}, 240_000);

afterAll(async () => {
  await stack?.stop();
  await smtp?.close();
  await messaging?.close();
  await fakes?.close();
});

type Call = (method: string, path: string, body?: unknown) => Promise<{ status: number; body: any }>;

/** A tenant with a London club, two emailable members in a segment, and an email template using `event`. */
async function club() {
  const tenant = newTenant();
  const auth = await token(tenant);
  const call: Call = (method, path, body) => api.call(method, `/api/v1${path}`, { auth, body });
  const ok = async (method: string, path: string, body?: unknown, status = method === 'POST' ? 201 : 200) => {
    const res = await call(method, path, body);
    expect(res.status, `${method} ${path}: ${JSON.stringify(res.body)}`).toBe(status);
    return res.body.data;
  };
  await db.query('insert into clubs (tenant_id, id, name, timezone) values ($1, $2, $3, $4)', [tenant, 'club_london', 'London Golf', ZONE]);
  const suffix = randomUUID().slice(0, 8);
  const emails = [`ann-${suffix}@promo.test`, `ben-${suffix}@promo.test`];
  for (const [i, email] of emails.entries()) {
    await ok('POST', '/customers', { email, firstName: ['Ann', 'Ben'][i], membershipTier: 'GOLD', homeClubId: 'club_london', emailOptIn: true });
  }
  const segment = await ok('POST', '/segments', { name: 'Gold', type: 'STATIC', criteria: { field: 'membershipTier', op: 'eq', value: 'GOLD' } });
  expect(segment.memberCount).toBe(2);
  const template = await ok('POST', '/templates', {
    name: 'Promo', channel: 'EMAIL', subject: '{{ event.title }}: {{ event.startsAt }}', body: '<p>Hi {{ firstName }}, {{ event.title }} at {{ event.location }}: <a href="{{ event.url }}">enter</a></p>',
  });
  return { tenant, auth, call, ok, emails, segmentId: segment.id as string, emailTemplateId: template.id as string };
}
type Club = Awaited<ReturnType<typeof club>>;

const sourceEvent = (type: string, sourceId: string, occurredAt: string, metadata: Record<string, unknown> = {}) => ({
  type, occurredAt, category: 'GOLF', title: 'Club championship', sourceService: 'competitions', sourceEventId: randomUUID(),
  metadata: { sourceId, clubId: 'club_london', title: 'Club championship', startsAt: '2027-04-03T08:00:00Z', url: 'https://club.example/champs', location: 'North course', ...metadata },
});

const workflow = (promotionId: string) => env.client.workflow.getHandle(`event-promotion-${promotionId}`);

/** The workflow's next wake, once the outbox has handed it the latest change. */
async function wakesAt(promotionId: string, at: DateTime) {
  let seen: unknown;
  await until(`event-promotion-${promotionId} to wake at ${at.toISO()}`, async () => {
    try {
      seen = await workflow(promotionId).query(nextWake);
      return seen === at.toUTC().toISO();
    } catch (err) {
      seen = err; // not started yet
      return false;
    }
  }, 30_000).catch((err) => {
    throw new Error(`${(err as Error).message}; it answers ${String(seen)}`);
  });
}

/** Each send of the promotion: its key, its campaign, and the local minute each delivery went out. */
async function sends(promotionId: string) {
  const { rows } = await db.query<{ key: string; campaign_id: string; recipient_count: number; sent: Date[]; statuses: string[] }>(
    `select s.key, s.campaign_id, s.recipient_count, array_agg(d.sent_at order by d.sent_at) as sent, array_agg(d.status order by d.sent_at) as statuses
       from promotion_sends s left join campaign_deliveries d on d.campaign_id = s.campaign_id
      where s.promotion_id = $1 group by s.key, s.campaign_id, s.recipient_count, s.created_at order by s.created_at`,
    [promotionId],
  );
  return rows.map((r) => ({
    key: r.key.slice(promotionId.length + 1), campaignId: r.campaign_id, recipientCount: r.recipient_count, statuses: r.statuses,
    local: [...new Set(r.sent.map((d) => d && DateTime.fromJSDate(d, { zone: ZONE }).toFormat('yyyy-MM-dd HH:mm')))],
  }));
}

/** Midnight in the club's zone `days` after the server's clock (which skips ahead as workflows are awaited). */
const later = async (days: number) => DateTime.fromMillis(await env.currentTimeMs(), { zone: ZONE }).plus({ days }).startOf('day');

const mailsFor = (c: Club) => smtp.mails.filter((m) => c.emails.includes((m.to as { text: string }).text));

describe('promotion sources: POST /events', () => {
  it('keeps the latest state of each source, whatever order its events arrive in; a cancel holds until a later event opens it again', async () => {
    const c = await club();
    const promotion = await c.ok('POST', '/promotions', { clubId: 'club_london', sourceType: 'COMPETITION', sourceId: 'champs', channels: ['EMAIL'], segmentId: c.segmentId, emailTemplateId: c.emailTemplateId });
    expect(promotion.event).toBeNull();
    const event = async () => (await c.ok('GET', `/promotions/${promotion.id}`)).event;

    const created = sourceEvent('competition.created', 'champs', '2026-11-01T10:00:00Z');
    const older = sourceEvent('competition.updated', 'champs', '2026-10-01T10:00:00Z', { startsAt: '2027-01-01T10:00:00Z' });
    const newer = sourceEvent('competition.updated', 'champs', '2026-11-02T10:00:00Z', { startsAt: '2027-04-10T08:00:00Z', title: 'Champs (moved)' });
    let report = await c.ok('POST', '/events', [created, older, created], 200);
    // No customer: nothing lands on a timeline, no profile is made.
    expect(report.results.map((r: any) => [r.status, r.customerId])).toEqual([['created', undefined], ['superseded', undefined], ['duplicate', undefined]]);
    expect(await event()).toMatchObject({ title: 'Club championship', startsAt: '2027-04-03T08:00:00.000Z', location: 'North course', cancelled: false });
    expect((await db.query('select count(*)::int as n from customers where tenant_id = $1', [c.tenant])).rows[0].n).toBe(2);
    const movedAt = async () => (await db.query(`select starts_at_changed_at as at from promotion_sources where tenant_id = $1 and source_id = 'champs'`, [c.tenant])).rows[0].at;
    expect(await movedAt()).toBeNull();

    report = await c.ok('POST', '/events', newer, 200);
    // When its start moved is kept (a reminder whose time passed before is not sent after the fact).
    expect(await movedAt()).toBeInstanceOf(Date);
    expect(report.results[0].status).toBe('created');
    expect(await event()).toMatchObject({ title: 'Champs (moved)', startsAt: '2027-04-10T08:00:00.000Z', updatedAt: '2026-11-02T10:00:00.000Z' });

    // Cancelled; an update from before the cancel does not open it again, a later one does.
    await c.ok('POST', '/events', sourceEvent('competition.cancelled', 'champs', '2026-11-03T10:00:00Z', { startsAt: '2027-04-10T08:00:00Z' }), 200);
    expect(await event()).toMatchObject({ cancelled: true });
    report = await c.ok('POST', '/events', sourceEvent('competition.updated', 'champs', '2026-11-02T12:00:00Z'), 200);
    expect(report.results[0].status).toBe('superseded');
    expect(await event()).toMatchObject({ cancelled: true });
    await c.ok('POST', '/events', sourceEvent('competition.updated', 'champs', '2026-11-04T10:00:00Z', { startsAt: '2027-05-01T08:00:00Z' }), 200);
    expect(await event()).toMatchObject({ cancelled: false, startsAt: '2027-05-01T08:00:00.000Z' });

    // club_event.* and special_event.* are sources of their own types.
    report = await c.ok('POST', '/events', [
      sourceEvent('club_event.created', 'champs', '2026-11-01T10:00:00Z'), sourceEvent('special_event.created', 'champs', '2026-11-01T10:00:00Z'),
    ], 200);
    expect(report.accepted).toBe(2);
    const { rows } = await db.query('select source_type from promotion_sources where tenant_id = $1 order by source_type', [c.tenant]);
    expect(rows.map((r) => r.source_type)).toEqual(['CLUB_EVENT', 'COMPETITION', 'SPECIAL']);
  });

  it('names the field a source event gets wrong, and still wants a customer on every other event', async () => {
    const c = await club();
    const { startsAt: _, ...noStart } = sourceEvent('competition.created', 'x', '2026-11-01T10:00:00Z').metadata;
    const single = await c.call('POST', '/events', { ...sourceEvent('competition.created', 'x', '2026-11-01T10:00:00Z'), metadata: noStart });
    expect(single.status).toBe(400);
    expect(single.body.error).toMatchObject({ code: 'VALIDATION_ERROR', field: 'metadata.startsAt' });

    const report = await c.ok('POST', '/events', [
      sourceEvent('competition.created', 'x', '2026-11-01T10:00:00Z', { startsAt: 'next tuesday' }),
      sourceEvent('club_event.updated', 'x', '2026-11-01T10:00:00Z', { url: 'ftp://club.example/x' }),
      { ...sourceEvent('competition.created', 'x', '2026-11-01T10:00:00Z'), customer: { email: 'who@promo.test' } },
      sourceEvent('competition.created', 'x', '2026-11-01T10:00:00Z', { sourceType: 'CLUB_EVENT' }),
      sourceEvent('special_event.created', 'x', '2026-11-01T10:00:00Z', { sourceId: '' }),
      { ...sourceEvent('booking.created', 'x', '2026-11-01T10:00:00Z') },
      sourceEvent('competition.created', 'x', '2026-11-01T10:00:00Z'),
    ], 200);
    expect(report.results.map((r: any) => r.error?.field ?? r.status)).toEqual([
      'metadata.startsAt', 'metadata.url', 'customer', 'metadata.sourceType', 'metadata.sourceId', 'customer', 'created',
    ]);
    expect(report.results[2].error.message).toMatch(/describes a club's event, not a customer/);
  });
});

describe('promotions: create, update, list', () => {
  it('checks channels against templates, content and segment, bounds reminder days, and allows one promotion per source', async () => {
    const c = await club();
    const other = await club();
    const sms = await c.ok('POST', '/templates', { name: 'Text', channel: 'SMS', body: '{{ event.title }}' });
    const base = { clubId: 'club_london', sourceType: 'COMPETITION', sourceId: `s-${randomUUID().slice(0, 6)}`, segmentId: c.segmentId };
    const refused = async (body: unknown, status: number, code: string, field: string) => {
      const res = await c.call('POST', '/promotions', body);
      expect([res.status, res.body.error?.code, res.body.error?.field], JSON.stringify(res.body)).toEqual([status, code, field]);
    };
    await refused({ ...base, channels: [] }, 400, 'VALIDATION_ERROR', 'channels');
    await refused({ ...base, channels: ['EMAIL'] }, 400, 'VALIDATION_ERROR', 'emailTemplateId');
    await refused({ ...base, channels: ['EMAIL'], emailTemplateId: sms.id }, 400, 'VALIDATION_ERROR', 'emailTemplateId');
    await refused({ ...base, channels: ['SMS', 'PUSH'], emailTemplateId: c.emailTemplateId }, 400, 'VALIDATION_ERROR', 'smsTemplateId');
    await refused({ ...base, channels: ['SOCIAL'] }, 400, 'VALIDATION_ERROR', 'socialContent');
    await refused({ ...base, channels: ['SOCIAL'], socialContent: '{{ event.title | nosuchfilter }}' }, 400, 'VALIDATION_ERROR', 'socialContent');
    await refused({ ...base, segmentId: undefined, channels: ['EMAIL'], emailTemplateId: c.emailTemplateId }, 400, 'VALIDATION_ERROR', 'segmentId');
    await refused({ ...base, channels: ['EMAIL'], emailTemplateId: c.emailTemplateId, reminderDays: [0] }, 400, 'VALIDATION_ERROR', 'reminderDays.0');
    await refused({ ...base, channels: ['EMAIL'], emailTemplateId: c.emailTemplateId, reminderDays: [1, 2.5] }, 400, 'VALIDATION_ERROR', 'reminderDays.1');
    await refused({ ...base, channels: ['EMAIL'], emailTemplateId: c.emailTemplateId, reminderDays: [91] }, 400, 'VALIDATION_ERROR', 'reminderDays.0');
    await refused({ ...base, channels: ['EMAIL'], emailTemplateId: c.emailTemplateId, announceAt: 'soon' }, 400, 'VALIDATION_ERROR', 'announceAt');
    await refused({ ...base, sourceType: 'MEETUP', channels: ['EMAIL'], emailTemplateId: c.emailTemplateId }, 400, 'VALIDATION_ERROR', 'sourceType');
    // Another tenant's segment or template is not found, as one that does not exist.
    await refused({ ...base, segmentId: other.segmentId, channels: ['EMAIL'], emailTemplateId: c.emailTemplateId }, 404, 'RESOURCE_NOT_FOUND', 'segmentId');
    await refused({ ...base, channels: ['EMAIL'], emailTemplateId: other.emailTemplateId }, 404, 'RESOURCE_NOT_FOUND', 'emailTemplateId');
    expect((await db.query('select count(*)::int as n from event_promotions where tenant_id = $1', [c.tenant])).rows[0].n).toBe(0);

    const made = await c.ok('POST', '/promotions', {
      ...base, channels: ['EMAIL', 'SMS', 'SOCIAL'], emailTemplateId: c.emailTemplateId, smsTemplateId: sms.id, socialContent: 'Enter {{ event.title }}: {{ event.url }}',
      reminderDays: [3, 1, 3, 7], announceAt: '2027-03-01T12:00:00Z',
    });
    expect(made).toMatchObject({ reminderDays: [7, 3, 1], autoPromote: false, isActive: true, announceAt: '2027-03-01T12:00:00.000Z', lastPromotedAt: null, segmentId: c.segmentId });
    const again = await c.call('POST', '/promotions', { ...base, channels: ['SOCIAL'], socialContent: 'x' });
    expect([again.status, again.body.error.code]).toEqual([409, 'CONFLICT']);
    expect(again.body.error.message).toMatch(/a promotion of COMPETITION .* exists already/);

    // Updates are checked against the promotion as it would become.
    const patch = (body: unknown) => c.call('PATCH', `/promotions/${made.id}`, body);
    expect((await patch({ emailTemplateId: null })).body.error).toMatchObject({ code: 'VALIDATION_ERROR', field: 'emailTemplateId' });
    expect((await patch({ segmentId: other.segmentId })).body.error).toMatchObject({ code: 'RESOURCE_NOT_FOUND', field: 'segmentId' });
    expect((await patch({})).body.error).toMatchObject({ code: 'VALIDATION_ERROR' });
    const changed = (await patch({ channels: ['SOCIAL'], emailTemplateId: null, reminderDays: [2], isActive: false })).body.data;
    expect(changed).toMatchObject({ channels: ['SOCIAL'], emailTemplateId: null, reminderDays: [2], isActive: false });

    // Lists by club; GraphQL answers the same promotions, with their segments.
    await c.ok('POST', '/promotions', { ...base, clubId: 'club_paris', sourceId: 'other', channels: ['SOCIAL'], socialContent: 'x' });
    expect((await c.ok('GET', '/promotions?clubId=club_london')).map((p: any) => p.id)).toEqual([made.id]);
    expect((await c.call('GET', '/promotions')).body.meta.total).toBe(2);
    const gql = await api.graphql(c.auth, `query($t: String!) { eventPromotions(tenantId: $t, clubId: "club_london") { id sourceId reminderDays isActive segment { id name } } }`, { t: c.tenant });
    expect(gql.body.errors).toBeUndefined();
    expect(gql.body.data.eventPromotions).toEqual([{ id: made.id, sourceId: base.sourceId, reminderDays: [2], isActive: false, segment: { id: c.segmentId, name: 'Gold' } }]);
    const created = await api.graphql(c.auth, `mutation($input: CreateEventPromotionInput!) { createEventPromotion(input: $input) { id announceAt channels segment { name } } }`, {
      input: { tenantId: c.tenant, clubId: 'club_london', sourceType: 'CLUB_EVENT', sourceId: 'gql', channels: ['EMAIL'], emailTemplateId: c.emailTemplateId, segmentId: c.segmentId, announceAt: '2027-01-01T09:00:00Z' },
    });
    expect(created.body.data.createEventPromotion).toMatchObject({ announceAt: '2027-01-01T09:00:00.000Z', channels: ['EMAIL'], segment: { name: 'Gold' } });
    const bad = await api.graphql(c.auth, `mutation($id: ID!) { updateEventPromotion(id: $id, input: { reminderDays: [-1] }) { id } }`, { id: made.id });
    expect(bad.body.errors[0].extensions).toMatchObject({ code: 'VALIDATION_ERROR', field: 'input.reminderDays.0' });

    // Another tenant's promotion is not found, whatever the operation.
    for (const [method, path] of [['GET', `/promotions/${made.id}`], ['PATCH', `/promotions/${made.id}`], ['POST', `/promotions/${made.id}/execute`]] as const) {
      const res = await other.call(method, path, method === 'PATCH' ? { isActive: true } : undefined);
      expect([method, res.status, res.body.error.code]).toEqual([method, 404, 'RESOURCE_NOT_FOUND']);
    }
    const foreign = await api.graphql(other.auth, `mutation($id: ID!) { executeEventPromotion(id: $id) { campaignId } }`, { id: made.id });
    expect(foreign.body.errors[0].extensions.code).toBe('RESOURCE_NOT_FOUND');
  });
});

describe('automatic promotions on the workflow clock', () => {
  // Saturday 3 April 2027, 09:00 in London (BST, UTC+1); the clocks went forward on 28 March, so
  // the 7-day reminder (27 March, GMT) is at 09:00Z and the 1-day one (2 April, BST) at 08:00Z.
  const STARTS = DateTime.fromISO('2027-04-03T09:00', { zone: ZONE });

  it('announces at announceAt and reminds 7 and 1 days before at the event\'s local time of day, across a DST change, each send once', async () => {
    const c = await club();
    await c.ok('POST', '/events', sourceEvent('competition.created', 'champs', '2026-11-01T10:00:00Z', { startsAt: STARTS.toUTC().toISO() }), 200);
    const promotion = await c.ok('POST', '/promotions', {
      clubId: 'club_london', sourceType: 'COMPETITION', sourceId: 'champs', channels: ['EMAIL'], segmentId: c.segmentId, emailTemplateId: c.emailTemplateId,
      autoPromote: true, announceAt: '2027-03-01T12:00:00Z', reminderDays: [1, 7],
    });
    await wakesAt(promotion.id, DateTime.fromISO('2027-03-01T12:00:00Z'));

    // Past the 7-day reminder; then the workflow is killed and started again (switched on again):
    // what it sent is not sent again.
    await env.sleep(DateTime.fromISO('2027-03-27T12:00:00Z').toMillis() - (await env.currentTimeMs()));
    await until('the 7-day reminder', async () => (await sends(promotion.id)).find((s) => s.key.startsWith('reminder:7') && s.statuses.every((x) => x === 'DELIVERED')));
    await workflow(promotion.id).terminate('test: a lost workflow');
    await c.ok('PATCH', `/promotions/${promotion.id}`, { autoPromote: true });
    await wakesAt(promotion.id, STARTS.minus({ days: 1 }));
    expect(await workflow(promotion.id).result()).toBe('event started');

    const made = await sends(promotion.id);
    expect(made.map(({ key, local, recipientCount }) => ({ key, local, recipientCount }))).toEqual([
      { key: 'announce', local: ['2027-03-01 12:00'], recipientCount: 2 },
      { key: 'reminder:7:2027-04-03', local: ['2027-03-27 09:00'], recipientCount: 2 },
      { key: 'reminder:1:2027-04-03', local: ['2027-04-02 09:00'], recipientCount: 2 },
    ]);
    expect(made.every((s) => s.statuses.length === 2 && s.statuses.every((x) => x === 'DELIVERED'))).toBe(true);
    const mails = await until('six emails', async () => (mailsFor(c).length >= 6 ? mailsFor(c) : undefined));
    expect(mails).toHaveLength(6);
    expect(new Set(mails.map((m) => m.subject))).toEqual(new Set(['Club championship: Saturday 3 April 2027, 09:00']));
    expect(mails.find((m) => (m.to as { text: string }).text === c.emails[0])!.html).toContain('Hi Ann, Club championship at North course');
    const campaign = await c.ok('GET', `/campaigns/${made[1]!.campaignId}`);
    expect(campaign).toMatchObject({ type: 'ONE_TIME', status: 'COMPLETED', clubId: 'club_london', segmentId: c.segmentId, sentCount: 2, name: 'Club championship: reminder, 7 days before' });
    expect((await c.ok('GET', `/promotions/${promotion.id}`)).lastPromotedAt).not.toBeNull();
  }, 180_000);

  it('moves the reminders with a moved event: nothing at the old time, the reminder at the new one', async () => {
    const c = await club();
    const first = (await later(40)).set({ hour: 10 });
    const moved = first.plus({ days: 10 }).set({ hour: 18, minute: 30 });
    await c.ok('POST', '/events', sourceEvent('club_event.created', 'dinner', '2026-11-01T10:00:00Z', { startsAt: first.toUTC().toISO() }), 200);
    const promotion = await c.ok('POST', '/promotions', {
      clubId: 'club_london', sourceType: 'CLUB_EVENT', sourceId: 'dinner', channels: ['EMAIL'], segmentId: c.segmentId, emailTemplateId: c.emailTemplateId,
      autoPromote: true, reminderDays: [2],
    });
    await wakesAt(promotion.id, first.minus({ days: 2 }));
    await c.ok('POST', '/events', sourceEvent('club_event.updated', 'dinner', '2026-11-02T10:00:00Z', { startsAt: moved.toUTC().toISO() }), 200);
    await wakesAt(promotion.id, moved.minus({ days: 2 }));
    expect(await workflow(promotion.id).result()).toBe('event started');
    expect((await sends(promotion.id)).map(({ key, local }) => ({ key, local }))).toEqual([
      { key: `reminder:2:${moved.toISODate()}`, local: [moved.minus({ days: 2 }).toFormat('yyyy-MM-dd HH:mm')] },
    ]);
    const mails = await until('two emails', async () => (mailsFor(c).length >= 2 ? mailsFor(c) : undefined));
    expect(mails.map((m) => m.subject)).toEqual(Array(2).fill(`Club championship: ${moved.toFormat('cccc d LLLL yyyy')}, 18:30`));
  }, 180_000);

  it('stops on a cancelled event, and on a promotion switched off', async () => {
    const c = await club();
    const starts = (await later(30)).set({ hour: 10 });
    for (const id of ['open', 'shut']) {
      await c.ok('POST', '/events', sourceEvent('special_event.created', id, '2026-11-01T10:00:00Z', { startsAt: starts.toUTC().toISO() }), 200);
    }
    const promote = (sourceId: string) => c.ok('POST', '/promotions', {
      clubId: 'club_london', sourceType: 'SPECIAL', sourceId, channels: ['EMAIL'], segmentId: c.segmentId, emailTemplateId: c.emailTemplateId, autoPromote: true, reminderDays: [3],
    });
    const cancelled = await promote('shut');
    const switchedOff = await promote('open');
    await wakesAt(cancelled.id, starts.minus({ days: 3 }));
    await wakesAt(switchedOff.id, starts.minus({ days: 3 }));

    // Both told before anything awaits a result (which lets the server skip to the reminders).
    await c.ok('POST', '/events', sourceEvent('special_event.cancelled', 'shut', '2026-11-02T10:00:00Z', { startsAt: starts.toUTC().toISO() }), 200);
    await c.ok('PATCH', `/promotions/${switchedOff.id}`, { isActive: false });
    for (const id of [cancelled.id, switchedOff.id]) {
      await until(`event-promotion-${id} to end`, async () => (await workflow(id).describe()).status.name === 'COMPLETED');
    }
    expect(await workflow(cancelled.id).result()).toBe('event cancelled');
    expect(await workflow(switchedOff.id).result()).toBe('promotion inactive');
    expect(await sends(cancelled.id)).toEqual([]);
    expect(await sends(switchedOff.id)).toEqual([]);
    // A cancelled event is not promoted by hand either.
    const refused = await c.call('POST', `/promotions/${cancelled.id}/execute`);
    expect([refused.status, refused.body.error.code]).toEqual([409, 'INVALID_STATE']);
    const inactive = await c.call('POST', `/promotions/${switchedOff.id}/execute`);
    expect([inactive.status, inactive.body.error.code]).toEqual([409, 'INVALID_STATE']);
  }, 180_000);
});

describe('executeEventPromotion', () => {
  it('sends now through a ONE_TIME campaign, answers its recipients, and a double click sends once', async () => {
    const c = await club();
    const promotion = await c.ok('POST', '/promotions', {
      clubId: 'club_london', sourceType: 'COMPETITION', sourceId: 'now', channels: ['EMAIL'], segmentId: c.segmentId, emailTemplateId: c.emailTemplateId,
    });
    const early = await c.call('POST', `/promotions/${promotion.id}/execute`);
    expect([early.status, early.body.error.code]).toEqual([409, 'INVALID_STATE']);
    expect(early.body.error.message).toMatch(/no event of COMPETITION now has been received/);
    await c.ok('POST', '/events', sourceEvent('competition.created', 'now', '2026-11-01T10:00:00Z', { title: 'Open day' }), 200);

    const [one, two] = await Promise.all([c.call('POST', `/promotions/${promotion.id}/execute`), c.call('POST', `/promotions/${promotion.id}/execute`)]);
    expect([one.status, two.status]).toEqual([200, 200]);
    expect(one.body.data).toMatchObject({ promotionId: promotion.id, recipientCount: 2 });
    expect(two.body.data).toEqual(one.body.data);
    const campaignId = one.body.data.campaignId;
    await until('the campaign sent', async () => (await c.ok('GET', `/campaigns/${campaignId}`)).status === 'COMPLETED');
    const campaign = await c.ok('GET', `/campaigns/${campaignId}`);
    expect(campaign).toMatchObject({ type: 'ONE_TIME', targetCount: 2, sentCount: 2, name: 'Open day: sent now' });
    const { rows } = await db.query('select status from campaign_deliveries where campaign_id = $1', [campaignId]);
    expect(rows.map((r) => r.status)).toEqual(['DELIVERED', 'DELIVERED']);
    const mails = await until('two emails', async () => (mailsFor(c).length >= 2 ? mailsFor(c) : undefined));
    expect(mails.map((m) => m.subject)).toEqual(['Open day: Saturday 3 April 2027, 09:00', 'Open day: Saturday 3 April 2027, 09:00']);
    expect((await sends(promotion.id)).map((s) => s.key)).toHaveLength(1);
    expect((await c.ok('GET', `/promotions/${promotion.id}`)).lastPromotedAt).toBe(one.body.data.executedAt);

    // Once that run is over, execute sends again; GraphQL answers the same shape.
    const gql = await api.graphql(c.auth, `mutation($id: ID!) { executeEventPromotion(id: $id) { promotionId executedAt recipientCount campaignId } }`, { id: promotion.id });
    expect(gql.body.errors).toBeUndefined();
    expect(gql.body.data.executeEventPromotion).toMatchObject({ promotionId: promotion.id, recipientCount: 2 });
    expect(gql.body.data.executeEventPromotion.campaignId).not.toBe(campaignId);
    expect((await sends(promotion.id)).map((s) => s.key)).toHaveLength(2);
  }, 120_000);

  it('a send held back by a temporary failure stops when its event is cancelled meanwhile: nothing more of it goes out', async () => {
    const c = await club();
    for (const [i, email] of c.emails.entries()) {
      await db.query('update customers set phone_number = $3, sms_opt_in = true where tenant_id = $1 and email = $2', [c.tenant, email, `+4477009000${i + 1}`]);
    }
    const sms = await c.ok('POST', '/templates', { name: 'Promo SMS', channel: 'SMS', body: '{{ event.title }} on {{ event.date }}' });
    const promotion = await c.ok('POST', '/promotions', {
      clubId: 'club_london', sourceType: 'COMPETITION', sourceId: 'held', channels: ['SMS'], segmentId: c.segmentId, smsTemplateId: sms.id,
    });
    await c.ok('POST', '/events', sourceEvent('competition.created', 'held', '2026-11-01T10:00:00Z', { title: 'Fourball' }), 200);
    // The Messaging service is briefly down: both texts wait for a retry (30 s on).
    messaging.failNext({ kind: 'error', status: 503, message: 'busy' }, { kind: 'error', status: 503, message: 'busy' });
    const { campaignId } = await c.ok('POST', `/promotions/${promotion.id}/execute`, undefined, 200);
    await until('both texts held back', async () => (await db.query(
      `select count(*)::int as n from campaign_deliveries where campaign_id = $1 and status = 'PENDING' and attempts = 1 and send_at is not null`, [campaignId],
    )).rows[0].n === 2);
    await c.ok('POST', '/events', sourceEvent('competition.cancelled', 'held', '2026-11-02T10:00:00Z', { title: 'Fourball' }), 200);

    await env.client.workflow.getHandle(`campaign-${campaignId}`).result();
    expect((await c.ok('GET', `/campaigns/${campaignId}`)).status).toBe('CANCELLED');
    const { rows } = await db.query('select status from campaign_deliveries where campaign_id = $1', [campaignId]);
    expect(rows.map((r) => r.status)).toEqual(['CANCELLED', 'CANCELLED']);
    expect(messaging.messages.filter((m) => m.message.tenantId === c.tenant)).toHaveLength(0);
  }, 120_000);

  it('with SOCIAL, posts the rendered content on each active connection of the club, through the campaign\'s run', async () => {
    const c = await club();
    const accounts: Record<string, string> = {};
    for (const platform of ['FACEBOOK', 'LINKEDIN'] as const) {
      const initiated = await c.ok('POST', '/social/connections/initiate', { tenantId: c.tenant, clubId: 'club_london', platform, redirectUri: 'https://club.example/social/callback' }, 200);
      const back = await fakes.authorize(initiated.authUrl);
      accounts[platform] = (await c.ok('POST', '/social/connections/complete', { platform, code: back.code, state: back.state }, 200)).accountId;
    }
    await c.ok('POST', '/events', sourceEvent('club_event.created', 'gala', '2026-11-01T10:00:00Z', { title: 'Gala dinner', url: 'https://club.example/gala' }), 200);
    const promotion = await c.ok('POST', '/promotions', {
      clubId: 'club_london', sourceType: 'CLUB_EVENT', sourceId: 'gala', channels: ['EMAIL', 'SOCIAL'], segmentId: c.segmentId, emailTemplateId: c.emailTemplateId,
      socialContent: '{{ event.title }} on {{ event.date }} at {{ event.time }}',
    });
    const { campaignId, recipientCount } = await c.ok('POST', `/promotions/${promotion.id}/execute`, undefined, 200);
    expect(recipientCount).toBe(2);
    await until('the campaign done', async () => (await c.ok('GET', `/campaigns/${campaignId}`)).status === 'COMPLETED');
    const { rows } = await db.query('select content, link_url, status from social_posts where tenant_id = $1 and campaign_id = $2', [c.tenant, campaignId]);
    expect(rows).toEqual(Array(2).fill({ content: 'Gala dinner on Saturday 3 April 2027 at 09:00', link_url: 'https://club.example/gala', status: 'PUBLISHED' }));
    for (const [platform, accountId] of Object.entries(accounts)) {
      const published = fakes.platforms[platform as 'FACEBOOK'].posts.filter((p) => p.accountId === accountId && p.text.includes('Gala dinner on Saturday 3 April 2027'));
      expect(published, platform).toHaveLength(1);
    }
    expect((await c.ok('GET', `/campaigns/${campaignId}`)).sentCount).toBe(2);
  }, 120_000);
});

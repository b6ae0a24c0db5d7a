import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, inject } from 'vitest';
import { openOrm, type Orm } from '../db/orm.js';
import type { Channel, InteractionType } from '../db/entities/enums.js';
import { recordInteractions } from '../domain/campaigns/interactions.js';
import { applyDeliveryReceipts } from '../domain/campaigns/receipts.js';
import { campaignStats } from '../domain/campaigns/stats.js';
import type { analyticsFoldWorkflow } from '../workflows/analytics-fold.js';
import { newTenant, token, type TestApi } from './support/api.js';
import { seedCampaign, seedCustomer, seedDelivery } from './support/campaign-rows.js';
import { startTestStack, type TestStack } from './support/stack.js';

let stack: TestStack;
let api: TestApi;
let db: pg.Client;
let orm: Orm;
beforeAll(async () => {
  stack = await startTestStack({ RATE_LIMIT_READ: '1000000', RATE_LIMIT_WRITE: '1000000', RATE_LIMIT_BULK: '1000000' });
  api = stack.api;
  orm = await openOrm(inject('databaseUrl'));
  db = new pg.Client({ connectionString: inject('databaseUrl') });
  await db.connect();
});
afterAll(async () => {
  await db?.end();
  await orm?.close();
  await stack?.close();
});

const DAY = 86_400_000;
const ago = (ms: number) => new Date(Date.now() - ms);
const at = (iso: string) => new Date(iso);

async function get(tenant: string, path: string) {
  const res = await api.call('GET', `/api/v1/analytics/${path}`, { auth: await token(tenant) });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body.data;
}

async function customer(tenant: string, set: { status?: string; stage?: string; engagement?: number | null; churn?: number | null }) {
  const { rows } = await db.query<{ id: string }>(
    `insert into customers (tenant_id, email, status, lifecycle_stage, engagement_score, churn_risk_score)
     values ($1, $2, $3, $4, $5, $6) returning id`,
    [tenant, `${randomUUID().slice(0, 8)}@example.com`, set.status ?? 'ACTIVE', set.stage ?? 'MEMBER', set.engagement ?? null, set.churn ?? null],
  );
  return rows[0]!.id;
}

async function activity(tenant: string, customerId: string, occurredAt: Date) {
  await db.query(
    `insert into activities (tenant_id, customer_id, type, category, title, occurred_at) values ($1, $2, 'booking.created', 'BOOKING', 'Booked', $3)`,
    [tenant, customerId, occurredAt],
  );
}

interface Seeded { tenant: string; campaignId: string; customerId: string; deliveryId: string; channel: Channel }

async function delivery(tenant: string, campaignId: string, channel: Channel, status: string, sentAt: Date | null): Promise<Seeded> {
  const customerId = await seedCustomer(db, tenant, { email: `${randomUUID().slice(0, 8)}@example.com` });
  const deliveryId = await seedDelivery(db, tenant, campaignId, customerId, { channel, status, sentAt });
  return { tenant, campaignId, customerId, deliveryId, channel };
}

/** Interactions through the function the tracking endpoints, receipts and conversions use. */
async function interact(d: Seeded, type: InteractionType, occurredAt = new Date(), key = `${type}:${d.deliveryId}:${randomUUID()}`) {
  await orm.em.fork().transactional((tx) => recordInteractions(tx, [{
    tenantId: d.tenant, campaignId: d.campaignId, customerId: d.customerId, deliveryId: d.deliveryId, type, channel: d.channel, occurredAt, key,
  }]));
}

/** Every rollup of a tenant next to a full recount of the rows it stands for. */
async function rollupsAndRecounts(tenant: string) {
  const q = async (sql: string) => (await db.query(sql, [tenant])).rows;
  return {
    customers: [
      await q(`select status, lifecycle_stage, sum(customers)::int as n, sum(engagement_sum)::int as es, sum(engagement_count)::int as ec,
                      sum(churn_risk_sum)::int as cs, sum(churn_risk_count)::int as cc, sum(at_risk)::int as r
                 from analytics_customer_totals where tenant_id = $1 group by 1, 2 having sum(customers) <> 0 order by 1, 2`),
      await q(`select status, lifecycle_stage, count(*)::int as n, coalesce(sum(engagement_score), 0)::int as es, count(engagement_score)::int as ec,
                      coalesce(sum(churn_risk_score), 0)::int as cs, count(churn_risk_score)::int as cc, (count(*) filter (where churn_risk_score >= 70))::int as r
                 from customers where tenant_id = $1 group by 1, 2 order by 1, 2`),
    ],
    activities: [
      await q(`select hour, sum(activities)::int as n from analytics_activity_hours where tenant_id = $1 group by 1 having sum(activities) <> 0 order by 1`),
      await q(`select date_trunc('hour', occurred_at, 'UTC') as hour, count(*)::int as n from activities where tenant_id = $1 group by 1 order by 1`),
    ],
    deliveries: [
      await q(`select hour, campaign_id, channel, sum(sent)::int as sent, sum(delivered)::int as delivered, sum(bounced)::int as bounced,
                      sum(opened)::int as opened, sum(clicked)::int as clicked, sum(converted)::int as converted
                 from analytics_delivery_hours where tenant_id = $1 group by 1, 2, 3
               having sum(sent) <> 0 or sum(opened) <> 0 or sum(clicked) <> 0 or sum(converted) <> 0 order by 1, 2, 3`),
      await q(`select date_trunc('hour', coalesce(d.sent_at, d.created_at), 'UTC') as hour, d.campaign_id, d.channel,
                      (count(*) filter (where d.status in ('SENT', 'DELIVERED', 'BOUNCED')))::int as sent,
                      (count(*) filter (where d.status = 'DELIVERED'))::int as delivered, (count(*) filter (where d.status = 'BOUNCED'))::int as bounced,
                      (count(*) filter (where exists (select 1 from campaign_interactions i where i.delivery_id = d.id and i.type = 'OPENED')))::int as opened,
                      (count(*) filter (where exists (select 1 from campaign_interactions i where i.delivery_id = d.id and i.type = 'CLICKED')))::int as clicked,
                      (count(*) filter (where exists (select 1 from campaign_interactions i where i.delivery_id = d.id and i.type = 'CONVERTED')))::int as converted
                 from campaign_deliveries d where d.tenant_id = $1 group by 1, 2, 3
               having (count(*) filter (where d.status in ('SENT', 'DELIVERED', 'BOUNCED'))) > 0
                   or bool_or(exists (select 1 from campaign_interactions i where i.delivery_id = d.id and i.type in ('OPENED', 'CLICKED', 'CONVERTED')))
                order by 1, 2, 3`),
    ],
  };
}

describe('engagementAnalytics', () => {
  it('counts live customers, their averages, those at risk, per stage, and the activities of the last 30 days', async () => {
    const tenant = newTenant();
    const ann = await customer(tenant, { status: 'ACTIVE', stage: 'MEMBER', engagement: 80, churn: 10 });
    await customer(tenant, { status: 'ACTIVE', stage: 'MEMBER', engagement: 40, churn: 70 });
    await customer(tenant, { status: 'ACTIVE', stage: 'LEAD', engagement: null, churn: null });
    await customer(tenant, { status: 'INACTIVE', stage: 'CHURNED', engagement: 30, churn: 95 });
    // Not live: never counted, whatever their scores.
    await customer(tenant, { status: 'MERGED', stage: 'MEMBER', engagement: 100, churn: 100 });
    await customer(tenant, { status: 'DELETED', stage: 'LEAD', engagement: 0, churn: 90 });

    // In: an hour ago, 29 days ago, 30 days less a minute ago (the part-hour at the window's start).
    for (const when of [ago(3_600_000), ago(29 * DAY), ago(30 * DAY - 60_000)]) await activity(tenant, ann, when);
    // Out: 30 days and a minute ago, 45 days ago, tomorrow.
    for (const when of [ago(30 * DAY + 60_000), ago(45 * DAY), new Date(Date.now() + DAY)]) await activity(tenant, ann, when);
    // Another tenant's customer and activity count nowhere here.
    const other = newTenant();
    await activity(other, await customer(other, { engagement: 1, churn: 99 }), ago(60_000));

    const data = await get(tenant, 'engagement');
    expect(data).toEqual({
      tenantId: tenant,
      totalCustomers: 4,
      activeCustomers: 3,
      averageEngagementScore: 50, // (80 + 40 + 30) / 3
      averageChurnRiskScore: 58.333333333333336, // (10 + 70 + 95) / 3
      atRiskCustomers: 2, // 70 and 95
      byLifecycleStage: { MEMBER: 2, LEAD: 1, CHURNED: 1 },
      activitiesLast30Days: 3,
      generatedAt: expect.any(String),
    });

    const gql = await api.graphql(await token(tenant), `{ engagementAnalytics(tenantId: "${tenant}") { totalCustomers atRiskCustomers byLifecycleStage activitiesLast30Days averageEngagementScore } }`);
    expect(gql.body.data.engagementAnalytics).toEqual({ totalCustomers: 4, atRiskCustomers: 2, byLifecycleStage: { MEMBER: 2, LEAD: 1, CHURNED: 1 }, activitiesLast30Days: 3, averageEngagementScore: 50 });

    // A customer leaving (merged) and one changing stage move the numbers at once.
    await db.query(`update customers set status = 'MERGED' where id = $1`, [ann]);
    expect(await get(tenant, 'engagement')).toMatchObject({ totalCustomers: 3, activeCustomers: 2, averageEngagementScore: 35, byLifecycleStage: { MEMBER: 1, LEAD: 1, CHURNED: 1 } });
  });

  it('answers an empty tenant with zeros and null averages', async () => {
    expect(await get(newTenant(), 'engagement')).toMatchObject({
      totalCustomers: 0, activeCustomers: 0, averageEngagementScore: null, averageChurnRiskScore: null, atRiskCustomers: 0, byLifecycleStage: {}, activitiesLast30Days: 0,
    });
  });
});

describe('campaignAnalytics', () => {
  it('counts like campaign stats: over one campaign it equals campaignStats', async () => {
    const tenant = newTenant();
    const campaignId = await seedCampaign(db, tenant, { channels: ['EMAIL', 'SMS'] });
    const d = [
      await delivery(tenant, campaignId, 'EMAIL', 'DELIVERED', at('2026-11-20T09:10:00Z')),
      await delivery(tenant, campaignId, 'EMAIL', 'DELIVERED', at('2026-11-20T09:50:00Z')),
      await delivery(tenant, campaignId, 'EMAIL', 'BOUNCED', at('2026-11-20T10:05:00Z')),
      await delivery(tenant, campaignId, 'EMAIL', 'SENT', at('2026-11-20T10:06:00Z')),
      await delivery(tenant, campaignId, 'EMAIL', 'FAILED', null),
      await delivery(tenant, campaignId, 'EMAIL', 'SKIPPED', null),
      await delivery(tenant, campaignId, 'SMS', 'DELIVERED', at('2026-11-21T08:00:00Z')),
      await delivery(tenant, campaignId, 'SMS', 'PENDING', null),
    ];
    await interact(d[0]!, 'OPENED');
    await interact(d[0]!, 'OPENED'); // a second open of one delivery is one opened delivery
    await interact(d[1]!, 'OPENED');
    await interact(d[0]!, 'CLICKED');
    await interact(d[0]!, 'CONVERTED');
    await interact(d[6]!, 'CLICKED');
    await interact(d[1]!, 'UNSUBSCRIBED');
    // Another tenant's campaign and messages count nowhere here.
    const other = newTenant();
    await interact(await delivery(other, await seedCampaign(db, other), 'EMAIL', 'DELIVERED', at('2026-11-20T09:10:00Z')), 'OPENED');

    const stats = await campaignStats(orm.em.fork(), tenant, campaignId);
    const data = await get(tenant, 'campaigns');
    expect(data).toEqual({
      tenantId: tenant, startDate: null, endDate: null,
      totalCampaigns: 1, byStatus: { ACTIVE: 1 },
      sentCount: 5, deliveredCount: 3, openedCount: 2, clickedCount: 2, convertedCount: 1,
      deliveryRate: 0.6, openRate: 0.6667, clickRate: 1, conversionRate: 0.5,
      byChannel: {
        EMAIL: { sent: 4, delivered: 2, opened: 2, clicked: 1, bounced: 1 },
        SMS: { sent: 1, delivered: 1, opened: 0, clicked: 1, bounced: 0 },
      },
    });
    for (const k of ['sentCount', 'deliveredCount', 'openedCount', 'clickedCount', 'convertedCount', 'deliveryRate', 'openRate', 'clickRate', 'conversionRate'] as const) {
      expect(data[k], k).toBe(stats[k]);
    }
    for (const [channel, c] of Object.entries(stats.byChannel)) {
      expect(data.byChannel[channel]).toEqual({ sent: c.sent, delivered: c.delivered, opened: c.opened, clicked: c.clicked, bounced: c.bounced });
    }
  });

  it('filters campaigns by createdAt and messages by sentAt, exactly at any instant, and validates the range', async () => {
    const tenant = newTenant();
    const a = await seedCampaign(db, tenant, { channels: ['EMAIL'] });
    const b = await seedCampaign(db, tenant, { channels: ['PUSH'] });
    await db.query(`update campaigns set created_at = '2026-10-01T00:00:00Z', status = 'COMPLETED' where id = $1`, [a]);
    await db.query(`update campaigns set created_at = '2026-11-15T12:00:00Z' where id = $1`, [b]);
    const early = await delivery(tenant, a, 'EMAIL', 'DELIVERED', at('2026-11-01T09:59:59.999Z'));
    const edge = await delivery(tenant, a, 'EMAIL', 'DELIVERED', at('2026-11-01T10:00:00Z'));
    await delivery(tenant, a, 'EMAIL', 'BOUNCED', at('2026-11-01T10:30:00Z'));
    const mid = await delivery(tenant, b, 'PUSH', 'DELIVERED', at('2026-11-10T00:00:00Z'));
    await delivery(tenant, b, 'PUSH', 'SENT', at('2026-11-20T17:45:00Z'));
    await delivery(tenant, b, 'PUSH', 'SENT', at('2026-11-20T17:45:00.001Z'));
    // Opens count with the message, whenever they came.
    await interact(early, 'OPENED', at('2026-11-02T00:00:00Z'));
    await interact(edge, 'OPENED', at('2026-12-01T00:00:00Z'));
    await interact(mid, 'OPENED', at('2026-11-25T00:00:00Z'));
    await interact(mid, 'CLICKED', at('2026-11-25T00:00:01Z'));

    const range = async (start?: string, end?: string) => get(tenant, `campaigns?${new URLSearchParams({ ...(start && { startDate: start }), ...(end && { endDate: end }) })}`);
    // [10:00 on the 1st, 17:45 on the 20th]: part-hours at both ends, whole hours between.
    expect(await range('2026-11-01T10:00:00Z', '2026-11-20T17:45:00Z')).toMatchObject({
      startDate: '2026-11-01T10:00:00.000Z', endDate: '2026-11-20T17:45:00.000Z',
      totalCampaigns: 1, byStatus: { ACTIVE: 1 },
      sentCount: 4, deliveredCount: 2, openedCount: 2, clickedCount: 1, convertedCount: 0,
      byChannel: { EMAIL: { sent: 2, delivered: 1, opened: 1, clicked: 0, bounced: 1 }, PUSH: { sent: 2, delivered: 1, opened: 1, clicked: 1, bounced: 0 } },
    });
    // Within one hour: rows only.
    expect(await range('2026-11-01T09:59:59.999Z', '2026-11-01T10:00:00Z')).toMatchObject({ totalCampaigns: 0, sentCount: 2, openedCount: 2 });
    // One end open.
    expect(await range('2026-11-05T00:00:00+02:00')).toMatchObject({ totalCampaigns: 1, byStatus: { ACTIVE: 1 }, sentCount: 3 });
    expect(await range(undefined, '2026-11-01T10:00:00Z')).toMatchObject({ totalCampaigns: 1, byStatus: { COMPLETED: 1 }, sentCount: 2 });
    expect(await range()).toMatchObject({ totalCampaigns: 2, sentCount: 6, deliveredCount: 3, openedCount: 3, clickedCount: 1 });

    const auth = await token(tenant);
    const reversed = await api.call('GET', '/api/v1/analytics/campaigns?startDate=2026-11-02T00:00:00Z&endDate=2026-11-01T00:00:00Z', { auth });
    expect(reversed.status).toBe(400);
    expect(reversed.body.error).toMatchObject({ code: 'VALIDATION_ERROR', field: 'query.endDate' });
    const garbled = await api.call('GET', '/api/v1/analytics/campaigns?startDate=yesterday', { auth });
    expect(garbled.status).toBe(400);
    expect(garbled.body.error).toMatchObject({ code: 'VALIDATION_ERROR', field: 'query.startDate' });

    const gql = await api.graphql(auth, `query($r: DateRangeInput) { campaignAnalytics(tenantId: "${tenant}", dateRange: $r) { sentCount openedCount startDate byChannel } }`,
      { r: { startDate: '2026-11-01T10:00:00Z', endDate: '2026-11-20T17:45:00Z' } });
    expect(gql.body.data.campaignAnalytics).toMatchObject({ sentCount: 4, openedCount: 2, startDate: '2026-11-01T10:00:00.000Z' });
    const bad = await api.graphql(auth, `query($r: DateRangeInput) { campaignAnalytics(tenantId: "${tenant}", dateRange: $r) { sentCount } }`,
      { r: { startDate: '2026-11-02T00:00:00Z', endDate: '2026-11-01T00:00:00Z' } });
    expect(bad.body.errors[0].extensions.code).toBe('VALIDATION_ERROR');
    expect(bad.body.errors[0].message).toContain('dateRange.endDate');
  });
});

describe('journeyAnalytics', () => {
  it('adds up the totals journeys keep', async () => {
    const tenant = newTenant();
    const journey = async (name: string, status: string, enrolled: number, completed: number, exited: number) => (await db.query<{ id: string }>(
      `insert into journeys (tenant_id, name, status, trigger_type, total_enrolled, total_completed, total_exited) values ($1, $2, $3, 'MANUAL', $4, $5, $6) returning id`,
      [tenant, name, status, enrolled, completed, exited],
    )).rows[0]!.id;
    const welcome = await journey('Welcome', 'ACTIVE', 100, 60, 15);
    const winBack = await journey('Win back', 'PAUSED', 20, 5, 5);
    const draft = await journey('Draft', 'DRAFT', 0, 0, 0);
    expect(await get(tenant, 'journeys')).toEqual({
      tenantId: tenant, totalJourneys: 3, activeJourneys: 1, totalEnrolled: 120, activeEnrollments: 35, totalCompleted: 65, totalExited: 20,
      completionRate: 0.5417, // 65 / 120
      byJourney: {
        [welcome]: { name: 'Welcome', enrolled: 100, active: 25, completed: 60, exited: 15 },
        [winBack]: { name: 'Win back', enrolled: 20, active: 10, completed: 5, exited: 5 },
        [draft]: { name: 'Draft', enrolled: 0, active: 0, completed: 0, exited: 0 },
      },
    });
    expect(await get(newTenant(), 'journeys')).toMatchObject({ totalJourneys: 0, completionRate: 0, byJourney: {} });
  });
});

describe('socialAnalytics', () => {
  it('counts posts by status, sums their metrics per platform, and filters by when they went out', async () => {
    const tenant = newTenant();
    const connection = async (platform: string) => (await db.query<{ id: string }>(
      `insert into social_connections (tenant_id, platform, account_id, account_name) values ($1, $2, $3, 'Club') returning id`, [tenant, platform, randomUUID()],
    )).rows[0]!.id;
    const fb = await connection('FACEBOOK');
    const x = await connection('TWITTER');
    const post = async (connectionId: string, status: string, times: { published?: string; scheduled?: string; created?: string }, m = [0, 0, 0, 0]) => db.query(
      `insert into social_posts (tenant_id, connection_id, content, status, published_at, scheduled_at, created_at, likes, comments, shares, reach)
       values ($1, $2, 'Hi', $3, $4, $5, coalesce($6::timestamptz, now()), $7, $8, $9, $10)`,
      [tenant, connectionId, status, times.published ?? null, times.scheduled ?? null, times.created ?? null, ...m],
    );
    await post(fb, 'PUBLISHED', { published: '2026-11-10T10:00:00Z' }, [10, 2, 3, 100]);
    await post(fb, 'PUBLISHED', { published: '2026-11-20T10:00:00Z', scheduled: '2026-11-01T00:00:00Z' }, [5, 0, 0, 50]);
    await post(x, 'PUBLISHED', { published: '2026-11-12T10:00:00Z' }, [1, 1, 1, 47]);
    await post(fb, 'SCHEDULED', { scheduled: '2026-12-01T09:00:00Z' });
    await post(x, 'FAILED', { scheduled: '2026-11-11T09:00:00Z' });
    await post(x, 'DRAFT', { created: '2026-11-05T09:00:00Z' });

    expect(await get(tenant, 'social')).toEqual({
      tenantId: tenant, startDate: null, endDate: null,
      totalPosts: 6, publishedPosts: 3, scheduledPosts: 1, failedPosts: 1,
      likes: 16, comments: 3, shares: 4, reach: 197,
      engagementRate: 0.1168, // 23 / 197
      byPlatform: {
        FACEBOOK: { posts: 3, likes: 15, comments: 2, shares: 3, reach: 150 },
        TWITTER: { posts: 3, likes: 1, comments: 1, shares: 1, reach: 47 },
      },
    });
    expect(await get(tenant, 'social?startDate=2026-11-06T00:00:00Z&endDate=2026-11-15T00:00:00Z')).toMatchObject({
      totalPosts: 3, publishedPosts: 2, scheduledPosts: 0, failedPosts: 1, likes: 11, reach: 147, engagementRate: 0.1224, // 18 / 147
      byPlatform: { FACEBOOK: { posts: 1, likes: 10, comments: 2, shares: 3, reach: 100 }, TWITTER: { posts: 2, likes: 1, comments: 1, shares: 1, reach: 47 } },
    });
    const res = await api.call('GET', '/api/v1/analytics/social?startDate=2026-11-06T00:00:00Z&endDate=2026-11-05T00:00:00Z', { auth: await token(tenant) });
    expect(res.body.error).toMatchObject({ code: 'VALIDATION_ERROR', field: 'query.endDate' });
    expect(await get(newTenant(), 'social')).toMatchObject({ totalPosts: 0, reach: 0, engagementRate: 0, byPlatform: {} });
  });
});

describe('rollups', () => {
  it('equal a full recount after concurrent creates, events, imports, merges, deletes, scoring, sends, receipts and tracking', async () => {
    const tenant = newTenant();
    const auth = await token(tenant);
    const campaignId = await seedCampaign(db, tenant, { channels: ['EMAIL', 'SMS'] });
    const lanes = 6;
    const perLane = 12;
    const ok = (res: { status: number; body: unknown }) => expect(res.status, JSON.stringify(res.body)).toBeLessThan(300);

    await Promise.all(Array.from({ length: lanes }, async (_, lane) => {
      const ids: string[] = [];
      for (let i = 0; i < perLane; i++) {
        const email = `l${lane}-${i}@example.com`;
        const created = await api.call('POST', '/api/v1/customers', { auth, body: { email, firstName: `L${lane}`, lifecycleStage: i % 2 ? 'LEAD' : 'MEMBER' } });
        ok(created);
        ids.push(created.body.data.id);
        ok(await api.call('POST', '/api/v1/events', {
          auth, body: [0, 1].map((k) => ({
            type: 'booking.created', category: 'BOOKING', title: 'Booked', occurredAt: ago((i * 7 + k) * DAY).toISOString(),
            customer: { email }, sourceService: 'test', sourceEventId: `${lane}-${i}-${k}`,
          })),
        }));
      }
      // An import (the COPY path) of new and existing customers, then merges and deletes.
      const ndjson = [...Array.from({ length: 5 }, (_, i) => ({ email: `imp${lane}-${i}@example.com`, lifecycleStage: 'CUSTOMER' })), { email: `l${lane}-0@example.com`, lifecycleStage: 'ADVOCATE' }]
        .map((r) => JSON.stringify(r)).join('\n');
      ok(await api.call('POST', '/api/v1/customers/import', { auth, body: ndjson, headers: { 'content-type': 'application/x-ndjson' } }));
      ok(await api.call('POST', '/api/v1/customers/merge', { auth, body: { winnerId: ids[0], loserId: ids[1] } }));
      ok(await api.call('PATCH', `/api/v1/customers/${ids[2]}`, { auth, body: { status: 'DELETED' } }));
      ok(await api.call('PATCH', `/api/v1/customers/${ids[3]}`, { auth, body: { status: 'INACTIVE', lifecycleStage: 'CHURNED' } }));
      await db.query(`update customers set engagement_score = (random() * 100)::int, churn_risk_score = (random() * 100)::int where tenant_id = $1 and email like $2`, [tenant, `l${lane}-%`]);

      // Sends, receipts, opens, clicks and conversions on the lane's customers.
      const sent: Seeded[] = [];
      for (const [i, customerId] of ids.slice(4).entries()) {
        const channel: Channel = i % 2 ? 'SMS' : 'EMAIL';
        const deliveryId = await seedDelivery(db, tenant, campaignId, customerId, { channel, status: 'SENDING', sentAt: null, runKey: `lane${lane}` });
        sent.push({ tenant, campaignId, customerId, deliveryId, channel });
      }
      await db.query(`update campaign_deliveries set status = 'SENT', sent_at = now() - ($2 || ' hours')::interval where tenant_id = $1 and run_key = $3`, [tenant, lane, `lane${lane}`]);
      await applyDeliveryReceipts(orm.em.fork(), {
        events: sent.map((d, i) => ({ id: `r-${d.deliveryId}`, type: i % 3 === 0 ? 'BOUNCED' : 'DELIVERED', deliveryId: d.deliveryId, occurredAt: new Date() })),
      });
      await Promise.all(sent.flatMap((d, i) => [
        interact(d, 'OPENED', new Date(), `open:${d.deliveryId}`),
        interact(d, 'OPENED', new Date(), `open:${d.deliveryId}`), // the same open twice at once
        ...(i % 2 ? [interact(d, 'CLICKED'), interact(d, 'CLICKED')] : []),
        ...(i % 4 === 1 ? [interact(d, 'CONVERTED')] : []),
      ]));
      // A hard delete cascades to the customer's activities, deliveries and interactions.
      await db.query('delete from customers where id = $1', [ids[ids.length - 1]]);
    }));
    // A deleted interaction takes its opened flag with it when it was the only one.
    await db.query(`delete from campaign_interactions where tenant_id = $1 and type = 'CLICKED' and delivery_id in (
      select delivery_id from campaign_interactions where tenant_id = $1 and type = 'CLICKED' order by delivery_id limit 2)`, [tenant]);

    const { customers, activities, deliveries } = await rollupsAndRecounts(tenant);
    expect(customers[0]).toEqual(customers[1]);
    expect(activities[0]).toEqual(activities[1]);
    expect(deliveries[0]).toEqual(deliveries[1]);
    // Concurrent transactions added to rows of their own.
    const { rows: [spread] } = await db.query(`select count(distinct writer)::int as n from analytics_activity_hours where tenant_id = $1`, [tenant]);
    expect(spread.n).toBeGreaterThan(1);
    // And the test wrote what it meant to: something of everything.
    expect(customers[1]!.map((r) => r.status)).toEqual(expect.arrayContaining(['ACTIVE', 'INACTIVE', 'MERGED', 'DELETED']));
    expect(deliveries[1]!.reduce((n, r) => n + r.opened, 0)).toBeGreaterThan(0);
    expect(deliveries[1]!.reduce((n, r) => n + r.converted, 0)).toBeGreaterThan(0);

    // The hourly fold (the `analytics-rollup-fold` schedule's workflow, run here directly) leaves
    // one row per key and the same sums, and the reports the same numbers.
    const before = { engagement: await get(tenant, 'engagement'), campaigns: await get(tenant, 'campaigns') };
    const { rows: [unfolded] } = await db.query(`select count(*)::int as n from analytics_activity_hours where tenant_id = $1 and writer <> 0`, [tenant]);
    expect(unfolded.n).toBeGreaterThan(0);
    const run = await stack.client.workflow.execute<typeof analyticsFoldWorkflow>('analyticsFoldWorkflow', {
      workflowId: `analytics-rollup-fold-${randomUUID()}`, taskQueue: stack.taskQueue, args: [],
    });
    expect(run.tenants).toBeGreaterThan(0);
    expect(run.rows).toBeGreaterThanOrEqual(unfolded.n);
    const folded = await rollupsAndRecounts(tenant);
    expect(folded.customers[0]).toEqual(folded.customers[1]);
    expect(folded.activities[0]).toEqual(folded.activities[1]);
    expect(folded.deliveries[0]).toEqual(folded.deliveries[1]);
    const { rows: [left] } = await db.query(`select count(*)::int as n from analytics_activity_hours where tenant_id = $1 and writer <> 0`, [tenant]);
    expect(left.n).toBe(0);
    expect({ ...(await get(tenant, 'engagement')), generatedAt: null }).toEqual({ ...before.engagement, generatedAt: null });
    expect({ ...(await get(tenant, 'campaigns')), generatedAt: null }).toEqual({ ...before.campaigns, generatedAt: null });

    const stats = await campaignStats(orm.em.fork(), tenant, campaignId);
    expect(await get(tenant, 'campaigns')).toMatchObject({
      sentCount: stats.sentCount, deliveredCount: stats.deliveredCount, openedCount: stats.openedCount, clickedCount: stats.clickedCount, convertedCount: stats.convertedCount,
    });
  });
});

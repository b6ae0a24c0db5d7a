import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, inject } from 'vitest';
import { openOrm, type Orm } from '../db/orm.js';
import type { Channel, InteractionType } from '../db/entities/enums.js';
import { recordInteractions } from '../domain/campaigns/interactions.js';
import { campaignCounts, campaignStats, listInteractions } from '../domain/campaigns/stats.js';
import { applyTracking, trackingKey } from '../domain/campaigns/tracking.js';
import { newTenant, startTestApi, testConfig, token, type TestApi } from './support/api.js';
import { seedCampaign, seedCustomer, seedDelivery } from './support/campaign-rows.js';

let api: TestApi;
let db: pg.Client;
let orm: Orm;
beforeAll(async () => {
  api = await startTestApi();
  orm = await openOrm(inject('databaseUrl'));
  db = new pg.Client({ connectionString: inject('databaseUrl') });
  await db.connect();
});
afterAll(async () => {
  await db?.end();
  await orm?.close();
  await api?.close();
});

const em = () => orm.em.fork();
const at = (iso: string) => new Date(iso);

interface Seeded { tenant: string; campaignId: string; customerId: string; deliveryId: string; channel: Channel }

/** Interactions through the same function the tracking endpoints and the send engine use. */
async function interact(d: Seeded, type: InteractionType, occurredAt: Date, key = `${type}:${d.deliveryId}`, metadata: Record<string, unknown> | null = null) {
  return em().transactional((tx) => recordInteractions(tx, [{
    tenantId: d.tenant, campaignId: d.campaignId, customerId: d.customerId, deliveryId: d.deliveryId, type, channel: d.channel, occurredAt, key, metadata,
  }]));
}

async function deliveries(tenant: string, campaignId: string, specs: { channel: Channel; status: string; sentAt?: Date; customerId?: string; runKey?: string; name?: string }[]) {
  const out: Seeded[] = [];
  for (const [i, s] of specs.entries()) {
    const customerId = s.customerId ?? await seedCustomer(db, tenant, { email: `c${i}-${randomUUID().slice(0, 6)}@example.com`, firstName: s.name ?? `C${i}`, lastName: 'Golfer' });
    const deliveryId = await seedDelivery(db, tenant, campaignId, customerId, { channel: s.channel, status: s.status, runKey: s.runKey, ...(s.sentAt && { sentAt: s.sentAt }) });
    out.push({ tenant, campaignId, customerId, deliveryId, channel: s.channel });
  }
  return out;
}

describe('campaign statistics', () => {
  it('counts from rows and computes the rates of campaigns-api.md, per channel and per hour', async () => {
    const tenant = newTenant();
    const campaignId = await seedCampaign(db, tenant, { channels: ['EMAIL', 'SMS'] });
    const email = await deliveries(tenant, campaignId, [
      { channel: 'EMAIL', status: 'DELIVERED', sentAt: at('2026-11-20T09:10:00Z') },
      { channel: 'EMAIL', status: 'DELIVERED', sentAt: at('2026-11-20T09:50:00Z') },
      { channel: 'EMAIL', status: 'DELIVERED', sentAt: at('2026-11-20T10:05:00Z') },
      { channel: 'EMAIL', status: 'DELIVERED', sentAt: at('2026-11-20T10:06:00Z') },
      { channel: 'EMAIL', status: 'DELIVERED', sentAt: at('2026-11-20T10:07:00Z') },
      { channel: 'EMAIL', status: 'BOUNCED', sentAt: at('2026-11-20T10:08:00Z') },
      { channel: 'EMAIL', status: 'SENT', sentAt: at('2026-11-20T10:09:00Z') },
      { channel: 'EMAIL', status: 'FAILED' },
      { channel: 'EMAIL', status: 'SKIPPED' },
    ]);
    // SMS to the first three email recipients (same run: each is one target) and one more.
    const sms = await deliveries(tenant, campaignId, [
      { channel: 'SMS', status: 'DELIVERED', sentAt: at('2026-11-20T09:15:00Z'), customerId: email[0]!.customerId },
      { channel: 'SMS', status: 'DELIVERED', sentAt: at('2026-11-20T09:16:00Z'), customerId: email[1]!.customerId },
      { channel: 'SMS', status: 'FAILED', customerId: email[2]!.customerId },
      { channel: 'SMS', status: 'SENT', sentAt: at('2026-11-20T12:00:00Z') },
    ]);
    // A second run reaching the first customer again is another target.
    await deliveries(tenant, campaignId, [{ channel: 'EMAIL', status: 'PENDING', customerId: email[0]!.customerId, runKey: 'second' }]);

    await interact(email[0]!, 'OPENED', at('2026-11-20T09:20:00Z'));
    await interact(email[0]!, 'OPENED', at('2026-11-20T09:25:00Z'), 'another-key'); // still one opened delivery
    await interact(email[1]!, 'OPENED', at('2026-11-20T10:30:00Z'));
    await interact(email[2]!, 'OPENED', at('2026-11-20T10:40:00Z'));
    await interact(email[0]!, 'CLICKED', at('2026-11-20T09:21:00Z'), `click:${email[0]!.deliveryId}:0`);
    await interact(email[0]!, 'CLICKED', at('2026-11-20T09:22:00Z'), `click:${email[0]!.deliveryId}:1`);
    await interact(email[1]!, 'CLICKED', at('2026-11-20T10:31:00Z'));
    await interact(email[0]!, 'CONVERTED', at('2026-11-20T11:00:00Z'));
    await interact(email[2]!, 'UNSUBSCRIBED', at('2026-11-20T10:41:00Z'));
    await interact(sms[0]!, 'CLICKED', at('2026-11-20T09:30:00Z'));

    const stats = await campaignStats(em(), tenant, campaignId);
    // targets: 9 email recipients + 1 SMS-only + the second run's one = 11; sent: 7 email + 3 SMS.
    expect(stats).toEqual({
      campaignId,
      targetCount: 11, sentCount: 10, deliveredCount: 7, openedCount: 3, clickedCount: 3, convertedCount: 1, unsubscribedCount: 1, bouncedCount: 1,
      deliveryRate: 0.7, // 7/10
      openRate: 0.4286, // 3/7
      clickRate: 1, // 3/3
      conversionRate: 0.3333, // 1/3
      byChannel: {
        EMAIL: { sent: 7, delivered: 5, opened: 3, clicked: 2, bounced: 1, failed: 1, skipped: 1 },
        SMS: { sent: 3, delivered: 2, opened: 0, clicked: 1, bounced: 0, failed: 1, skipped: 0 },
      },
      skipped: {},
      timeline: [
        { hour: '2026-11-20T09:00:00Z', sent: 4, opened: 1 },
        { hour: '2026-11-20T10:00:00Z', sent: 5, opened: 2 },
        { hour: '2026-11-20T12:00:00Z', sent: 1, opened: 0 },
      ],
    });
    expect(stats.sentCount).toBe(stats.byChannel.EMAIL!.sent + stats.byChannel.SMS!.sent);
  });

  it('answers 0 rates when there is nothing to divide by, and 404 for another tenant\'s campaign', async () => {
    const tenant = newTenant();
    const campaignId = await seedCampaign(db, tenant, { channels: ['EMAIL'] });
    expect(await campaignStats(em(), tenant, campaignId)).toEqual({
      campaignId, targetCount: 0, sentCount: 0, deliveredCount: 0, openedCount: 0, clickedCount: 0, convertedCount: 0, unsubscribedCount: 0, bouncedCount: 0,
      deliveryRate: 0, openRate: 0, clickRate: 0, conversionRate: 0,
      byChannel: { EMAIL: { sent: 0, delivered: 0, opened: 0, clicked: 0, bounced: 0, failed: 0, skipped: 0 } },
      skipped: {},
      timeline: [],
    });
    // Sent but nothing delivered yet: the other rates stay 0 rather than NaN.
    await deliveries(tenant, campaignId, [{ channel: 'EMAIL', status: 'SENT', sentAt: at('2026-11-20T09:00:00Z') }]);
    expect(await campaignStats(em(), tenant, campaignId)).toMatchObject({ sentCount: 1, deliveryRate: 0, openRate: 0, clickRate: 0, conversionRate: 0 });

    for (const id of [campaignId, randomUUID(), 'not-a-uuid']) {
      await expect(campaignStats(em(), newTenant(), id)).rejects.toMatchObject({ code: 'RESOURCE_NOT_FOUND' });
      await expect(listInteractions(em(), newTenant(), id, { skip: 0, take: 10 })).rejects.toMatchObject({ code: 'RESOURCE_NOT_FOUND' });
    }
  });

  it('counts many campaigns in one call, zero for those without rows', async () => {
    const tenant = newTenant();
    const a = await seedCampaign(db, tenant);
    const b = await seedCampaign(db, tenant);
    const empty = await seedCampaign(db, tenant);
    const [da] = await deliveries(tenant, a, [{ channel: 'EMAIL', status: 'DELIVERED' }, { channel: 'EMAIL', status: 'SENT' }]);
    await deliveries(tenant, b, [{ channel: 'SMS', status: 'BOUNCED' }]);
    await interact(da!, 'OPENED', new Date());
    const counts = await campaignCounts(em(), tenant, [a, b, empty]);
    expect(counts.get(a)).toMatchObject({ targetCount: 2, sentCount: 2, deliveredCount: 1, openedCount: 1, bouncedCount: 0 });
    expect(counts.get(b)).toMatchObject({ targetCount: 1, sentCount: 1, deliveredCount: 0, openedCount: 0, bouncedCount: 1 });
    expect(counts.get(empty)).toEqual({ targetCount: 0, sentCount: 0, deliveredCount: 0, openedCount: 0, clickedCount: 0, convertedCount: 0, unsubscribedCount: 0, bouncedCount: 0 });
    // Another tenant asking for the same ids sees nothing of them.
    expect((await campaignCounts(em(), newTenant(), [a])).get(a)!.sentCount).toBe(0);
  });
});

describe('campaign interactions list', () => {
  it('lists newest first with the customer\'s email and name, pages with skip/take and filters by type', async () => {
    const tenant = newTenant();
    const campaignId = await seedCampaign(db, tenant);
    const ds = await deliveries(tenant, campaignId, [
      { channel: 'EMAIL', status: 'DELIVERED', name: 'Ann' }, { channel: 'EMAIL', status: 'DELIVERED', name: 'Ben' }, { channel: 'EMAIL', status: 'DELIVERED', name: 'Cat' },
    ]);
    const base = Date.parse('2026-11-20T09:00:00Z');
    for (const [i, d] of ds.entries()) {
      await interact(d, 'OPENED', new Date(base + i * 60_000));
      await interact(d, 'CLICKED', new Date(base + (10 + i) * 60_000), `click:${d.deliveryId}:0`, { linkIndex: 0, linkUrl: 'https://club.example.com/' });
    }
    const all = await listInteractions(em(), tenant, campaignId, { skip: 0, take: 4 });
    expect(all.total).toBe(6);
    expect(all.rows.map((r) => `${r.type} ${r.customerName}`)).toEqual(['CLICKED Cat Golfer', 'CLICKED Ben Golfer', 'CLICKED Ann Golfer', 'OPENED Cat Golfer']);
    const email = (await db.query('select email from customers where id = $1', [ds[2]!.customerId])).rows[0].email;
    expect(all.rows[0]).toEqual({
      id: expect.any(String), customerId: ds[2]!.customerId, customerEmail: email, customerName: 'Cat Golfer',
      type: 'CLICKED', channel: 'EMAIL', occurredAt: new Date(base + 12 * 60_000), metadata: { linkIndex: 0, linkUrl: 'https://club.example.com/' },
    });
    const rest = await listInteractions(em(), tenant, campaignId, { skip: 4, take: 4 });
    expect(rest).toMatchObject({ total: 6 });
    expect(rest.rows.map((r) => `${r.type} ${r.customerName}`)).toEqual(['OPENED Ben Golfer', 'OPENED Ann Golfer']);
    const opened = await listInteractions(em(), tenant, campaignId, { type: 'OPENED', skip: 1, take: 10 });
    expect(opened.total).toBe(3);
    expect(opened.rows.map((r) => r.customerName)).toEqual(['Ben Golfer', 'Ann Golfer']);
    expect((await listInteractions(em(), tenant, campaignId, { type: 'BOUNCED', skip: 0, take: 10 }))).toEqual({ rows: [], total: 0 });
  });
});

describe('conversions', () => {
  it('records CONVERTED once per delivery for an upstream event of the conversion type within 7 days after a click', async () => {
    const tenant = newTenant();
    const auth = await token(tenant);
    const campaignId = await seedCampaign(db, tenant, { conversionEvent: 'booking.created' });
    const [recent, old, none, later] = await deliveries(tenant, campaignId, [
      { channel: 'EMAIL', status: 'DELIVERED' }, { channel: 'EMAIL', status: 'DELIVERED' }, { channel: 'EMAIL', status: 'DELIVERED' }, { channel: 'EMAIL', status: 'DELIVERED' },
    ]);
    const eventAt = Date.parse('2026-11-24T12:00:00Z');
    const day = 86_400_000;
    await interact(recent!, 'CLICKED', new Date(eventAt - 6 * day), `click:${recent!.deliveryId}:0`);
    await interact(old!, 'CLICKED', new Date(eventAt - 7 * day - 60_000), `click:${old!.deliveryId}:0`);
    await interact(later!, 'CLICKED', new Date(eventAt + 60_000), `click:${later!.deliveryId}:0`); // clicked after the event
    const event = (d: Seeded, type: string, n: number) => ({
      type, occurredAt: new Date(eventAt).toISOString(), customer: { id: d.customerId }, createCustomer: false, category: 'BOOKING',
      title: 'Tee time booked', sourceService: 'bookings', sourceEventId: `${d.deliveryId}-${type}-${n}`,
    });
    const res = await api.call('POST', '/api/v1/events', {
      auth,
      body: [event(recent!, 'booking.created', 1), event(recent!, 'booking.created', 2), event(old!, 'booking.created', 1),
        event(none!, 'booking.created', 1), event(later!, 'booking.created', 1), event(recent!, 'booking.cancelled', 1)],
    });
    expect(res.body.data).toMatchObject({ accepted: 6, rejected: 0 });
    await api.call('POST', '/api/v1/events', { auth, body: event(recent!, 'booking.created', 3) });

    const converted = await db.query('select delivery_id, occurred_at, metadata from campaign_interactions where campaign_id = $1 and type = $2', [campaignId, 'CONVERTED']);
    expect(converted.rows).toEqual([{ delivery_id: recent!.deliveryId, occurred_at: new Date(eventAt), metadata: { event: 'booking.created', activityId: expect.any(String) } }]);
    expect((await campaignStats(em(), tenant, campaignId)).convertedCount).toBe(1);
    const timeline = (await api.call('GET', `/api/v1/customers/${recent!.customerId}/timeline?take=50`, { auth })).body.data;
    expect(timeline.filter((a: { type: string }) => a.type === 'campaign.converted')).toEqual([
      expect.objectContaining({ category: 'MARKETING', title: 'Converted after email: Spring Open' }),
    ]);
  });
});

describe('under concurrency', () => {
  it('counts many simultaneous opens and clicks of one delivery once', async () => {
    const tenant = newTenant();
    const campaignId = await seedCampaign(db, tenant);
    const [d] = await deliveries(tenant, campaignId, [{ channel: 'EMAIL', status: 'DELIVERED' }]);
    const html = applyTracking('<a href="https://club.example.com/">book</a>', { baseUrl: api.url, key: trackingKey(testConfig()), deliveryId: d!.deliveryId });
    const click = /href="([^"]+)"/.exec(html)![1]!;
    const pixel = /src="([^"]+)"/.exec(html)![1]!;
    const answers = await Promise.all(Array.from({ length: 40 }, (_, i) => fetch(i % 2 ? click : pixel, { redirect: 'manual' }).then((r) => r.status)));
    expect(answers.sort()).toEqual([...Array(20).fill(200), ...Array(20).fill(302)]);
    const stats = await campaignStats(em(), tenant, campaignId);
    expect(stats).toMatchObject({ openedCount: 1, clickedCount: 1, openRate: 1, clickRate: 1 });
    const rows = await db.query('select type, count(*)::int as n from campaign_interactions where delivery_id = $1 group by type order by type', [d!.deliveryId]);
    expect(rows.rows).toEqual([{ type: 'CLICKED', n: 1 }, { type: 'OPENED', n: 1 }]);
    const activities = await db.query(`select type, count(*)::int as n from activities where customer_id = $1 group by type order by type`, [d!.customerId]);
    expect(activities.rows).toEqual([{ type: 'campaign.clicked', n: 1 }, { type: 'campaign.opened', n: 1 }]);
  });
});

import { createHmac, randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, inject } from 'vitest';
import { newTenant, startTestApi, token, type TestApi } from './support/api.js';
import { seedCampaign, seedCustomer, seedDelivery } from './support/campaign-rows.js';

const SECRET = 'webhook-test-secret-0123456789';
let api: TestApi;
let db: pg.Client;
beforeAll(async () => {
  api = await startTestApi({ MESSAGING_WEBHOOK_SECRET: SECRET });
  db = new pg.Client({ connectionString: inject('databaseUrl') });
  await db.connect();
});
afterAll(async () => {
  await db?.end();
  await api?.close();
});

const signature = (raw: string, t = Math.floor(Date.now() / 1000), secret = SECRET) =>
  `t=${t},v1=${createHmac('sha256', secret).update(`${t}.${raw}`).digest('hex')}`;

/** Posts receipts the way the Messaging service does: the raw JSON, signed. */
function post(body: unknown, opts: { signature?: string | null; raw?: string } = {}) {
  const raw = opts.raw ?? JSON.stringify(body);
  const sig = opts.signature === undefined ? signature(raw) : opts.signature;
  return api.call('POST', '/api/v1/webhooks/messaging', { body: raw, headers: sig === null ? {} : { 'x-messaging-signature': sig } });
}

async function setup(channel = 'EMAIL', status = 'SENT') {
  const tenant = newTenant();
  const customerId = await seedCustomer(db, tenant, { email: `ann-${randomUUID().slice(0, 6)}@example.com`, firstName: 'Ann' });
  const campaignId = await seedCampaign(db, tenant, { name: 'Club Night', channels: [channel] });
  const deliveryId = await seedDelivery(db, tenant, campaignId, customerId, { channel, status, providerMessageId: `msg-${randomUUID()}` });
  return { tenant, customerId, campaignId, deliveryId, auth: await token(tenant) };
}

const delivery = async (id: string) =>
  (await db.query<{ status: string; delivered_at: Date | null; error: string | null; provider_message_id: string }>(
    'select status, delivered_at, error, provider_message_id from campaign_deliveries where id = $1', [id],
  )).rows[0]!;
const interactionTypes = async (deliveryId: string) =>
  (await db.query<{ type: string }>('select type from campaign_interactions where delivery_id = $1 order by occurred_at', [deliveryId])).rows.map((r) => r.type);
const bouncedAt = async (customerId: string) =>
  (await db.query<{ email_bounced_at: Date | null }>('select email_bounced_at from customers where id = $1', [customerId])).rows[0]!.email_bounced_at;

const receipt = (over: Record<string, unknown>) => ({ id: `evt-${randomUUID()}`, type: 'DELIVERED', occurredAt: '2026-11-25T10:00:00Z', ...over });

describe('POST /api/v1/webhooks/messaging', () => {
  it('applies a signed DELIVERED receipt: the delivery, an interaction, a timeline entry', async () => {
    const { deliveryId, customerId, auth } = await setup();
    const d = await delivery(deliveryId);
    const res = await post({ events: [receipt({ deliveryId, providerMessageId: d.provider_message_id })] });
    expect(res.status).toBe(200);
    expect(res.body.data).toEqual({ received: 1, applied: 1, duplicates: 0, ignored: [] });
    expect(await delivery(deliveryId)).toMatchObject({ status: 'DELIVERED', delivered_at: new Date('2026-11-25T10:00:00Z') });
    expect(await interactionTypes(deliveryId)).toEqual(['DELIVERED']);
    const timeline = (await api.call('GET', `/api/v1/customers/${customerId}/timeline`, { auth })).body.data;
    expect(timeline).toEqual([expect.objectContaining({ type: 'campaign.delivered', category: 'COMMUNICATION', title: 'Email delivered: Club Night' })]);
  });

  it('refuses missing, malformed, wrong, stale and body-altered signatures with 401, changing nothing', async () => {
    const { deliveryId } = await setup();
    const raw = JSON.stringify({ events: [receipt({ deliveryId })] });
    const now = Math.floor(Date.now() / 1000);
    const attempts: [string, string | null, string][] = [
      ['missing', null, raw],
      ['malformed', 'sha256=abc', raw],
      ['another secret', signature(raw, now, 'some-other-secret-value'), raw],
      ['stale (replayed after 5 minutes)', signature(raw, now - 301), raw],
      ['from the future', signature(raw, now + 600), raw], // well past the tolerance even if this test runs slowly
      ['body altered after signing', signature(raw), raw.replace('DELIVERED', 'BOUNCED')],
      ['signature without timestamp binding', `t=${now},v1=${createHmac('sha256', SECRET).update(raw).digest('hex')}`, raw],
    ];
    for (const [label, sig, body] of attempts) {
      const res = await post(undefined, { signature: sig, raw: body });
      expect(res.status, label).toBe(401);
      expect(res.body.error.code, label).toBe('UNAUTHENTICATED');
    }
    expect((await delivery(deliveryId)).status).toBe('SENT');
    expect(await interactionTypes(deliveryId)).toEqual([]);
    // Within the tolerance, a signature of a moment ago is good.
    expect((await post(undefined, { signature: signature(raw, now - 240), raw })).status).toBe(200);
  });

  it('ignores a replayed event id, even re-signed', async () => {
    const { deliveryId } = await setup();
    const event = receipt({ deliveryId, type: 'BOUNCED', bounceType: 'soft', reason: 'mailbox full' });
    expect((await post({ events: [event] })).body.data).toMatchObject({ applied: 1, duplicates: 0 });
    const again = await post({ events: [event, event] });
    expect(again.status).toBe(200);
    expect(again.body.data).toEqual({ received: 2, applied: 0, duplicates: 2, ignored: [] });
    expect(await interactionTypes(deliveryId)).toEqual(['BOUNCED']);
  });

  it('flags the customer\'s address on a hard email bounce, not on a soft one or another channel', async () => {
    const hard = await setup();
    const soft = await setup();
    const sms = await setup('SMS');
    const res = await post({
      events: [
        receipt({ deliveryId: hard.deliveryId, type: 'BOUNCED', bounceType: 'hard', reason: '550 no such user', occurredAt: '2026-11-25T11:00:00Z' }),
        receipt({ deliveryId: soft.deliveryId, type: 'BOUNCED', bounceType: 'soft' }),
        receipt({ deliveryId: sms.deliveryId, type: 'BOUNCED', bounceType: 'hard' }),
      ],
    });
    expect(res.body.data).toMatchObject({ received: 3, applied: 3 });
    expect(await bouncedAt(hard.customerId)).toEqual(new Date('2026-11-25T11:00:00Z'));
    expect(await bouncedAt(soft.customerId)).toBeNull();
    expect(await bouncedAt(sms.customerId)).toBeNull();
    for (const s of [hard, soft, sms]) {
      expect((await delivery(s.deliveryId)).status).toBe('BOUNCED');
      expect(await interactionTypes(s.deliveryId)).toEqual(['BOUNCED']);
    }
    expect((await delivery(hard.deliveryId)).error).toBe('550 no such user');
  });

  it('marks FAILED with the reason, and reports unknown or inapplicable receipts as ignored', async () => {
    const { deliveryId } = await setup('SMS');
    const pending = await setup('EMAIL', 'PENDING');
    const other = await setup();
    const missing = randomUUID();
    const res = await post({
      events: [
        receipt({ deliveryId, type: 'FAILED', reason: 'unreachable number' }),
        receipt({ id: 'evt-unknown', deliveryId: missing }),
        receipt({ id: 'evt-not-uuid', deliveryId: 'not-a-uuid' }),
        receipt({ id: 'evt-pending', deliveryId: pending.deliveryId }),
        receipt({ id: 'evt-mismatch', deliveryId: other.deliveryId, providerMessageId: 'someone-else' }),
        receipt({ id: 'evt-after-failed', deliveryId }),
      ],
    });
    expect(res.status).toBe(200);
    expect(res.body.data).toMatchObject({ received: 6, applied: 1, duplicates: 0 });
    expect(res.body.data.ignored.map((i: { id: string }) => i.id)).toEqual(['evt-unknown', 'evt-not-uuid', 'evt-pending', 'evt-mismatch', 'evt-after-failed']);
    expect(res.body.data.ignored[0].reason).toContain(missing);
    expect(await delivery(deliveryId)).toMatchObject({ status: 'FAILED', error: 'unreachable number' });
    expect(await interactionTypes(deliveryId)).toEqual([]);
    expect((await delivery(pending.deliveryId)).status).toBe('PENDING');
    expect((await delivery(other.deliveryId)).status).toBe('SENT');
  });

  it('answers a malformed body (signed) with VALIDATION_ERROR naming the field', async () => {
    const res = await post({ events: [{ id: 'e1', type: 'READ', deliveryId: randomUUID(), occurredAt: 'yesterday' }] });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('VALIDATION_ERROR');
    expect(res.body.error.message).toMatch(/events\.0\.(type|occurredAt)/);
    expect((await post(undefined, { raw: '{"events": [' })).status).toBe(400);
    expect((await post(undefined, { raw: '{"events":[{"id":"a\\u0000b"}]}' })).status).toBe(400);
    // Signed, but not sent as JSON.
    const raw = JSON.stringify({ events: [] });
    const text = await api.call('POST', '/api/v1/webhooks/messaging', { body: raw, headers: { 'content-type': 'text/plain', 'x-messaging-signature': signature(raw) } });
    expect(text.status).toBe(400);
    expect(text.body.error.code).toBe('VALIDATION_ERROR');
  });

  it('answers 503 while MESSAGING_WEBHOOK_SECRET is unset', async () => {
    const unconfigured = await startTestApi();
    try {
      const raw = JSON.stringify({ events: [] });
      const res = await unconfigured.call('POST', '/api/v1/webhooks/messaging', { body: raw, headers: { 'x-messaging-signature': signature(raw) } });
      expect(res.status).toBe(503);
      expect(res.body.error.code).toBe('SERVICE_UNAVAILABLE');
    } finally {
      await unconfigured.close();
    }
  });

  it('a batch reporting a delivery then its bounce keeps when it was delivered; the first provider id it names is checked against the rest', async () => {
    const { tenant, customerId, campaignId } = await setup('EMAIL');
    const deliveryId = await seedDelivery(db, tenant, campaignId, customerId, { channel: 'SMS', status: 'SENT' });
    const res = await post({ events: [
      receipt({ deliveryId, providerMessageId: 'prov-1', occurredAt: '2026-11-25T10:00:00Z' }),
      receipt({ type: 'BOUNCED', bounceType: 'soft', deliveryId, providerMessageId: 'prov-2', occurredAt: '2026-11-25T10:05:00Z' }),
      receipt({ type: 'BOUNCED', bounceType: 'soft', deliveryId, providerMessageId: 'prov-1', occurredAt: '2026-11-25T10:06:00Z' }),
    ] });
    expect(res.body.data).toMatchObject({ received: 3, applied: 2, duplicates: 0 });
    expect(res.body.data.ignored).toEqual([{ id: expect.any(String), reason: `providerMessageId does not match delivery ${deliveryId}` }]);
    expect(await delivery(deliveryId)).toMatchObject({ status: 'BOUNCED', delivered_at: new Date('2026-11-25T10:00:00Z'), provider_message_id: 'prov-1' });
  });

});

import type { EntityManager } from '@mikro-orm/postgresql';
import { z } from 'zod';
import type { Channel, DeliveryStatus } from '../../db/entities/enums.js';
import { pgArray } from '../../db/sql.js';
import { dateRangeMessage, inDateRange } from '../validate.js';
import { isUuid } from '../customers/customers.js';
import { recordInteractions, type InteractionInput } from './interactions.js';

// Delivery receipts from the Messaging service (POST /api/v1/webhooks/messaging, README
// "Messaging webhook"). The signature was checked by the route; the tenant of each receipt is its
// delivery's.

export const MAX_RECEIPTS = 1000;

export const deliveryReceipts = z.object({
  events: z
    .array(
      z.object({
        id: z.string().trim().min(1).max(150),
        type: z.enum(['DELIVERED', 'BOUNCED', 'FAILED']),
        deliveryId: z.string().max(100),
        providerMessageId: z.string().max(500).optional(),
        occurredAt: z.iso.datetime({ offset: true }).transform((s) => new Date(s)).refine(inDateRange, dateRangeMessage),
        bounceType: z.enum(['hard', 'soft']).optional(),
        reason: z.string().max(2000).optional(),
      }),
    )
    .max(MAX_RECEIPTS),
});
export type DeliveryReceipts = z.output<typeof deliveryReceipts>;

export interface ReceiptResult {
  received: number;
  applied: number;
  duplicates: number;
  ignored: { id: string; reason: string }[];
}

// The statuses a receipt may move a delivery from. A receipt can overtake the send's own
// bookkeeping (SENDING); a bounce can follow a delivery report; nothing goes back.
const FROM: Record<'DELIVERED' | 'BOUNCED' | 'FAILED', DeliveryStatus[]> = {
  DELIVERED: ['SENDING', 'SENT'],
  BOUNCED: ['SENDING', 'SENT', 'DELIVERED'],
  FAILED: ['SENDING', 'SENT'],
};

interface Delivery {
  id: string; tenant_id: string; campaign_id: string; customer_id: string; channel: Channel; status: DeliveryStatus; provider_message_id: string | null;
}

export const receiptKey = (eventId: string) => `messaging:${eventId}`;

/**
 * Applies receipts in one transaction, set-based: each delivery's status moves at most along
 * FROM, DELIVERED and BOUNCED are recorded as interactions keyed by the event id (a replayed
 * event is a duplicate), a hard email bounce flags the customer's address.
 */
export async function applyDeliveryReceipts(em: EntityManager, body: DeliveryReceipts): Promise<ReceiptResult> {
  const { events } = body;
  const result: ReceiptResult = { received: events.length, applied: 0, duplicates: 0, ignored: [] };
  if (!events.length) return result;
  return em.transactional(async (tx) => {
    const ids = [...new Set(events.map((e) => e.deliveryId).filter(isUuid))];
    // Locked in id order: concurrent receipts for one delivery take turns, and see each other's keys.
    const deliveries = new Map((await tx.execute<Delivery[]>(
      `select id, tenant_id, campaign_id, customer_id, channel, status, provider_message_id
         from campaign_deliveries where id = any(?::uuid[]) order by id for no key update`,
      [pgArray(ids)],
    )).map((d) => [d.id, d]));
    const seen = new Set((await tx.execute<{ tenant_id: string; external_event_id: string }[]>(
      `select tenant_id, external_event_id from campaign_interactions
        where tenant_id = any((select ?::text[])::text[]) and external_event_id = any(?::text[])`,
      [pgArray([...new Set([...deliveries.values()].map((d) => d.tenant_id))]), pgArray(events.map((e) => receiptKey(e.id)))],
    )).map((r) => `${r.tenant_id}\u0000${r.external_event_id}`));

    // Per delivery, its state after the batch's receipts, in their order.
    const updates = new Map<string, { id: string; status: DeliveryStatus; provider: string | null; deliveredAt: Date | null; error: string | null }>();
    const bounced: { tenantId: string; customerId: string; at: Date }[] = [];
    const interactions: InteractionInput[] = [];
    for (const event of events) {
      const delivery = isUuid(event.deliveryId) ? deliveries.get(event.deliveryId.toLowerCase()) : undefined;
      if (!delivery) {
        result.ignored.push({ id: event.id, reason: `unknown delivery ${event.deliveryId}` });
        continue;
      }
      if (event.providerMessageId && delivery.provider_message_id && event.providerMessageId !== delivery.provider_message_id) {
        result.ignored.push({ id: event.id, reason: `providerMessageId does not match delivery ${delivery.id}` });
        continue;
      }
      const key = `${delivery.tenant_id}\u0000${receiptKey(event.id)}`;
      if (seen.has(key)) {
        result.duplicates++;
        continue;
      }
      if (!FROM[event.type].includes(delivery.status)) {
        result.ignored.push({ id: event.id, reason: `delivery ${delivery.id} is ${delivery.status}` });
        continue;
      }
      seen.add(key);
      delivery.status = event.type;
      // The first provider id a receipt names is the delivery's from then on (later receipts of
      // this batch are checked against it too).
      delivery.provider_message_id ??= event.providerMessageId ?? null;
      result.applied++;
      const before = updates.get(delivery.id);
      updates.set(delivery.id, {
        id: delivery.id, status: event.type, provider: delivery.provider_message_id,
        // A bounce after a delivery report in the same batch keeps the delivery's time.
        deliveredAt: event.type === 'DELIVERED' ? event.occurredAt : before?.deliveredAt ?? null,
        error: event.type === 'DELIVERED' ? before?.error ?? null : event.reason ?? null,
      });
      if (event.type === 'FAILED') continue; // not an interaction: the message never reached anyone
      if (event.type === 'BOUNCED' && event.bounceType === 'hard' && delivery.channel === 'EMAIL') {
        bounced.push({ tenantId: delivery.tenant_id, customerId: delivery.customer_id, at: event.occurredAt });
      }
      interactions.push({
        tenantId: delivery.tenant_id, campaignId: delivery.campaign_id, customerId: delivery.customer_id, deliveryId: delivery.id,
        type: event.type, channel: delivery.channel, occurredAt: event.occurredAt, key: receiptKey(event.id),
        metadata: event.type === 'BOUNCED'
          ? { bounceType: event.bounceType ?? null, reason: event.reason ?? null, providerMessageId: event.providerMessageId ?? null }
          : { providerMessageId: event.providerMessageId ?? null },
      });
    }

    if (updates.size) {
      const rows = [...updates.values()];
      await tx.execute(
        `update campaign_deliveries d
            set status = u.status, delivered_at = coalesce(u.delivered_at, d.delivered_at), error = coalesce(u.error, d.error),
                provider_message_id = coalesce(d.provider_message_id, u.provider), updated_at = now()
           from unnest(?::uuid[], ?::text[], ?::timestamptz[], ?::text[], ?::text[]) as u(id, status, delivered_at, error, provider)
          where d.id = u.id`,
        [
          pgArray(rows.map((u) => u.id)), pgArray(rows.map((u) => u.status)), pgArray(rows.map((u) => u.deliveredAt?.toISOString())),
          pgArray(rows.map((u) => u.error)), pgArray(rows.map((u) => u.provider)),
        ],
      );
    }
    if (bounced.length) {
      // Before the interactions: the reactions they trigger see the flagged address.
      await tx.execute(
        `update customers c set email_bounced_at = coalesce(c.email_bounced_at, b.at), updated_at = now()
           from unnest(?::text[], ?::uuid[], ?::timestamptz[]) as b(tenant_id, customer_id, at)
          where c.tenant_id = b.tenant_id and c.id = b.customer_id`,
        [pgArray(bounced.map((b) => b.tenantId)), pgArray(bounced.map((b) => b.customerId)), pgArray(bounced.map((b) => b.at.toISOString()))],
      );
    }
    await recordInteractions(tx, interactions);
    return result;
  });
}

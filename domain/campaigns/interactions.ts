import type { EntityManager } from '@mikro-orm/postgresql';
import { v7 as uuidv7 } from 'uuid';
import type { ActivityCategory, Channel, InteractionType } from '../../db/entities/enums.js';
import { pgArray } from '../../db/sql.js';
import { appendActivities, type NewActivity } from '../customers/timeline.js';

export interface InteractionInput {
  tenantId: string;
  campaignId: string;
  customerId: string;
  deliveryId: string | null;
  type: InteractionType;
  channel: Channel;
  occurredAt: Date;
  metadata?: Record<string, unknown> | null;
  /** The idempotency key: `open:<deliveryId>`, `click:<deliveryId>:<link>`, a webhook's event id... */
  key: string;
}

/** The `cause` of the timeline entries interactions make: reactions tell them from upstream events. */
export const INTERACTION_CAUSE = 'campaign-interaction';
export const INTERACTION_SOURCE = 'campaigns';

const CATEGORY: Record<InteractionType, ActivityCategory> = {
  SENT: 'COMMUNICATION', DELIVERED: 'COMMUNICATION', BOUNCED: 'COMMUNICATION',
  OPENED: 'MARKETING', CLICKED: 'MARKETING', CONVERTED: 'MARKETING', UNSUBSCRIBED: 'MARKETING',
};
export const CHANNEL_LABEL: Record<Channel, string> = {
  EMAIL: 'Email', SMS: 'SMS', PUSH: 'Push notification', WHATSAPP: 'WhatsApp message', IN_APP: 'In-app message', SOCIAL: 'Social post',
};
const TITLE: Record<InteractionType, (channel: string) => string> = {
  SENT: (c) => `${c} sent`,
  DELIVERED: (c) => `${c} delivered`,
  BOUNCED: (c) => `${c} bounced`,
  OPENED: (c) => `${c} opened`,
  CLICKED: (c) => `${c} link clicked`,
  CONVERTED: (c) => `Converted after ${c.toLowerCase()}`,
  UNSUBSCRIBED: (c) => `Unsubscribed from ${c.toLowerCase()}`,
};

/**
 * Stores each interaction once (by key), set-based (one INSERT for many rows), and puts the new ones
 * on the customers' timelines (activities, category COMMUNICATION for SENT/DELIVERED/BOUNCED,
 * MARKETING for OPENED/CLICKED/CONVERTED/UNSUBSCRIBED, title e.g. 'Email opened: <campaign name>',
 * idempotent via sourceService 'campaigns' + sourceEventId = key) and calls
 * afterActivitiesAppended (domain/reactions.ts) for them. Returns how many were new.
 */
export async function recordInteractions(em: EntityManager, rows: InteractionInput[]): Promise<number> {
  if (!rows.length) return 0;
  const ids = rows.map(() => uuidv7());
  // Concurrent reports of one interaction (a pixel loaded twice at once) meet at the unique key:
  // the second waits for the first and then inserts nothing.
  const inserted = await em.execute<{ id: string }[]>(
    `insert into campaign_interactions (id, tenant_id, campaign_id, customer_id, delivery_id, type, channel, occurred_at, metadata, external_event_id)
     select * from unnest(?::uuid[], ?::text[], ?::uuid[], ?::uuid[], ?::uuid[], ?::text[], ?::text[], ?::timestamptz[], ?::jsonb[], ?::text[])
     on conflict (tenant_id, external_event_id) where external_event_id is not null do nothing
     returning id`,
    [
      ids, rows.map((r) => r.tenantId), rows.map((r) => r.campaignId), rows.map((r) => r.customerId), rows.map((r) => r.deliveryId),
      rows.map((r) => r.type), rows.map((r) => r.channel), rows.map((r) => r.occurredAt.toISOString()),
      rows.map((r) => (r.metadata == null ? null : JSON.stringify(r.metadata))), rows.map((r) => r.key),
    ].map(pgArray),
  );
  const isNew = new Set(inserted.map((r) => r.id));
  const fresh = rows.filter((_, i) => isNew.has(ids[i]!));

  const byTenant = new Map<string, InteractionInput[]>();
  for (const row of fresh) byTenant.set(row.tenantId, [...(byTenant.get(row.tenantId) ?? []), row]);
  for (const [tenantId, items] of byTenant) {
    const campaigns = await em.execute<{ id: string; name: string }[]>(
      'select id, name from campaigns where tenant_id = ? and id = any(?::uuid[])',
      [tenantId, pgArray([...new Set(items.map((r) => r.campaignId))])],
    );
    const names = new Map(campaigns.map((c) => [c.id, c.name]));
    const activities: NewActivity[] = items.map((r) => ({
      customerId: r.customerId,
      type: `campaign.${r.type.toLowerCase()}`,
      category: CATEGORY[r.type],
      title: `${TITLE[r.type](CHANNEL_LABEL[r.channel])}: ${names.get(r.campaignId) ?? 'campaign'}`.slice(0, 500),
      occurredAt: r.occurredAt,
      metadata: { ...r.metadata, campaignId: r.campaignId, deliveryId: r.deliveryId, channel: r.channel },
      sourceService: INTERACTION_SOURCE,
      sourceEventId: r.key,
    }));
    await appendActivities(em, tenantId, activities, INTERACTION_CAUSE);
  }
  return fresh.length;
}

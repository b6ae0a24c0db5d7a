import type { EntityManager } from '@mikro-orm/postgresql';
import type { Channel } from '../../db/entities/enums.js';
import { executeBound, pgArray, sizedStatement } from '../../db/sql.js';
import type { AppendedActivity } from '../reactions.js';
import { recordInteractions } from './interactions.js';

/** How long after a click an event of the campaign's `conversionEvent` type still counts. */
export const CONVERSION_WINDOW = '7 days';

/**
 * Upstream events that convert: an activity whose type is a campaign's `conversionEvent`, for a
 * customer who clicked that campaign's message at most 7 days before it. Each delivery converts
 * once (the first such event), in one statement for the whole batch.
 */
const CONVERTING_CLICKS = sizedStatement(
  `select distinct on (i.delivery_id) i.delivery_id, i.campaign_id, i.customer_id, i.channel, a.occurred_at, a.activity_id, a.type
     from unnest(?::uuid[], ?::uuid[], ?::text[], ?::timestamptz[]) as a(activity_id, customer_id, type, occurred_at)
     join campaigns c on c.tenant_id = ? and c.conversion_event = a.type
     -- The customer's own clicks, a probe whatever the tenant (OFFSET 0): the plan is kept for every tenant.
     cross join lateral (select i.* from campaign_interactions i
                          where i.tenant_id = c.tenant_id and i.customer_id = a.customer_id and i.type = 'CLICKED'
                            and i.campaign_id = c.id and i.delivery_id is not null
                            and i.occurred_at <= a.occurred_at and i.occurred_at >= a.occurred_at - interval '${CONVERSION_WINDOW}' offset 0) i
    order by i.delivery_id, a.occurred_at, a.activity_id`,
);

export async function recordConversions(em: EntityManager, tenantId: string, activities: AppendedActivity[]): Promise<number> {
  if (!activities.length) return 0;
  const rows = await executeBound<{ delivery_id: string; campaign_id: string; customer_id: string; channel: Channel; occurred_at: Date; activity_id: string; type: string }>(
    em,
    CONVERTING_CLICKS(activities.length),
    [
      pgArray(activities.map((a) => a.id)), pgArray(activities.map((a) => a.customerId)), pgArray(activities.map((a) => a.type)),
      pgArray(activities.map((a) => a.occurredAt.toISOString())), tenantId,
    ],
  );
  return recordInteractions(em, rows.map((r) => ({
    tenantId, campaignId: r.campaign_id, customerId: r.customer_id, deliveryId: r.delivery_id, type: 'CONVERTED', channel: r.channel,
    occurredAt: new Date(r.occurred_at), metadata: { event: r.type, activityId: r.activity_id }, key: `convert:${r.delivery_id}`,
  })));
}

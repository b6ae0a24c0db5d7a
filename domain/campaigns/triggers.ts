import type { EntityManager } from '@mikro-orm/postgresql';
import { pgArray } from '../../db/sql.js';

// TRIGGERED campaigns: an activity of the campaign's `triggerEvent` type whose metadata holds every
// field of `triggerConditions` (jsonb containment: equal values) sends the campaign to that customer.
// The hand-off is an outbox row written in the transaction that stored the activity, keyed by
// campaign and activity: the worker's dispatcher (worker/outbox.ts) starts the run
// `campaign-<id>-<activityId>` once it is committed. A resent event is the same activity (events are
// stored once per source id), so it sends nothing twice.

export const CAMPAIGN_TRIGGER = 'campaign-trigger';

export interface CampaignTrigger {
  campaignId: string;
  customerId: string;
  activityId: string;
}

export async function enqueueTriggeredCampaigns(em: EntityManager, tenantId: string, activityIds: string[]): Promise<number> {
  const rows = await em.execute<{ id: string }[]>(
    `insert into reaction_outbox (id, tenant_id, kind, key, payload)
     select gen_random_uuid(), c.tenant_id, ?, c.id || ':' || a.id,
            jsonb_build_object('campaignId', c.id, 'customerId', a.customer_id, 'activityId', a.id)
       from activities a
       join campaigns c on c.tenant_id = a.tenant_id and c.trigger_event = a.type
      where a.tenant_id = ? and a.id = any(?::uuid[]) and c.type = 'TRIGGERED' and c.status = 'ACTIVE'
        and coalesce(a.metadata, '{}'::jsonb) @> coalesce(c.trigger_conditions, '{}'::jsonb)
     on conflict (tenant_id, kind, key) do nothing
     returning id`,
    [CAMPAIGN_TRIGGER, tenantId, pgArray(activityIds)],
  );
  // Wakes listening dispatchers at commit (worker/outbox.ts).
  if (rows.length) await em.execute(`select pg_notify('reaction_outbox', '')`);
  return rows.length;
}

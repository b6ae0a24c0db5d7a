import type { EntityManager } from '@mikro-orm/postgresql';
import { executeBound, pgArray, sizedStatement } from '../../db/sql.js';

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

/**
 * Each appended activity is found by its primary key alone, its tenant checked after: given the
 * tenant in the probe (or joined, filtering the tenant's activities by id), a new tenant whose
 * statistics still took its timeline for a handful of rows was planned as a walk of all its
 * activities, on every event, whether or not it had a triggered campaign (3,680 rows read for one
 * event in the smart-ingest benchmark, and growing with the timeline). LIMIT 1 keeps PostgreSQL
 * from moving the tenant's condition into the probe (domain/journeys/enrollment.ts reads them so too).
 */
const ENQUEUE_TRIGGERED = sizedStatement(
  `insert into reaction_outbox (id, tenant_id, kind, key, payload)
   select gen_random_uuid(), c.tenant_id, ?, c.id || ':' || a.id,
          jsonb_build_object('campaignId', c.id, 'customerId', a.customer_id, 'activityId', a.id)
     from unnest(?::uuid[]) as k(id)
     cross join lateral (select a.tenant_id, a.id, a.customer_id, a.type, a.metadata from activities a where a.id = k.id limit 1) a
     join campaigns c on c.tenant_id = a.tenant_id and c.trigger_event = a.type
    where a.tenant_id = ? and c.type = 'TRIGGERED' and c.status = 'ACTIVE'
      and coalesce(a.metadata, '{}'::jsonb) @> coalesce(c.trigger_conditions, '{}'::jsonb)
   on conflict (tenant_id, kind, key) do nothing
   returning id`,
);

export async function enqueueTriggeredCampaigns(em: EntityManager, tenantId: string, activityIds: string[]): Promise<number> {
  const rows = await executeBound<{ id: string }>(em, ENQUEUE_TRIGGERED(activityIds.length), [CAMPAIGN_TRIGGER, pgArray(activityIds), tenantId]);
  // Wakes listening dispatchers at commit (worker/outbox.ts).
  if (rows.length) await em.execute(`select pg_notify('reaction_outbox', '')`);
  return rows.length;
}

import type { EntityManager } from '@mikro-orm/postgresql';
import { executeBound, namedStatement, pgArray, sizedStatement, TENANT } from '../db/sql.js';
import { enqueueTriggeredCampaigns } from './campaigns/triggers.js';
import { recordConversions } from './campaigns/conversions.js';
import { INTERACTION_CAUSE } from './campaigns/interactions.js';
import { journeysAfterActivities } from './journeys/enrollment.js';
import { signalPromotions } from './promotions/outbox.js';
import type { SourceRef } from './promotions/sources.js';
import { followSmartSegments } from './segments/reevaluations.js';

// The hand-off points from customers to what reacts to them. Every entry point (REST, GraphQL,
// upstream events, imports, merges) goes through these two functions, in its own transaction, so
// none can forget a reaction: SMART segments (a few customers through segment_reevaluations,
// evaluated just after commit), campaign conversions, and triggered campaigns (through
// the outbox, durable and outside the request), and journeys (enrolments, signals and exits, through
// the same outbox). Segment entries and
// exits they cause are recorded in segment_membership_changes.

/** Timeline entries of campaign messages the platform sent, and what became of them. */
export const OUTBOUND_ACTIVITY_TYPES = ['campaign.sent', 'campaign.delivered', 'campaign.bounced'];

export interface AppendedActivity {
  id: string;
  customerId: string;
  type: string;
  category: string;
  occurredAt: Date;
}

export const LOCK_CUSTOMERS = sizedStatement(`select 1 from customers where tenant_id = ${TENANT} and id = any(?::uuid[]) order by id for no key update`);
// Named for an event or a short batch (planning it cost more than running it, on every event). The
// customers are probed by key (`id = any`), so the plan kept is one for every tenant: joined only on
// the newest activities, a plan could hash a tenant's customers.
const FOLLOW_LAST_ACTIVITY = sizedStatement(
  `update customers c set last_activity_at = a.newest, updated_at = now()
     from unnest(?::uuid[], ?::timestamptz[]) as a(customer_id, newest)
    where c.tenant_id = ${TENANT} and c.id = any(?::uuid[]) and c.id = a.customer_id
      and (c.last_activity_at is null or c.last_activity_at < a.newest)`,
);

// What of the tenant's could react to activities: journeys (enrolments listening, EVENT triggers),
// campaigns triggered by an event, campaigns converting on one. Each reaction's statement looks up
// every activity (a batch's 1,000, sent again as arrays); a tenant with none of them skips it.
// Named: it runs on every event.
const REACTORS = namedStatement(
  `select exists (select 1 from journeys where tenant_id = (select ?::text)) as journeys,
          exists (select 1 from campaigns where tenant_id = (select ?::text) and trigger_event is not null) as triggered,
          exists (select 1 from campaigns where tenant_id = (select ?::text) and conversion_event is not null) as converting`,
);

/** After activities land on timelines: `lastActivityAt` follows the newest, then profiles react. */
export async function afterActivitiesAppended(em: EntityManager, tenantId: string, appended: AppendedActivity[], cause: string): Promise<void> {
  // What the platform sent is on the timeline, but it is not something the customer did: it makes
  // no one recently active, moves no segment and scores nothing (activities/scoring.ts).
  const activities = cause === INTERACTION_CAUSE ? appended.filter((a) => !OUTBOUND_ACTIVITY_TYPES.includes(a.type)) : appended;
  if (!activities.length) return;
  // The customers are locked already (appendActivities), in id order: events for one customer
  // take turns, and with the drain of SMART re-evaluations, which locks them too.
  const newest = new Map<string, Date>();
  for (const a of activities) {
    const seen = newest.get(a.customerId);
    if (!seen || seen < a.occurredAt) newest.set(a.customerId, a.occurredAt);
  }
  await executeBound(em, FOLLOW_LAST_ACTIVITY(newest.size), [
    pgArray([...newest.keys()]), pgArray([...newest.values()].map((d) => d.toISOString())), tenantId, pgArray([...newest.keys()]),
  ]);
  await afterCustomersChanged(em, tenantId, activities.map((a) => a.customerId), cause);
  const [reactors] = await executeBound<{ journeys: boolean; triggered: boolean; converting: boolean }>(em, REACTORS, [tenantId, tenantId, tenantId]);
  // Journeys: running enrolments hear the events they wait for (a WAIT untilEvent "campaign.opened"
  // included) and end on exitOn; upstream events, never a campaign's own entries, enrol.
  if (reactors!.journeys) await journeysAfterActivities(em, tenantId, activities.map((a) => a.id), { enrol: cause !== INTERACTION_CAUSE });
  // Upstream events trigger campaigns and convert their clicks; a campaign's own timeline entries
  // (sent, opened, ...) do neither, or a campaign triggered by sends would trigger itself forever.
  if (cause === INTERACTION_CAUSE) return;
  if (reactors!.triggered) await enqueueTriggeredCampaigns(em, tenantId, activities.map((a) => a.id));
  if (reactors!.converting) await recordConversions(em, tenantId, activities);
}

/**
 * After profiles change (created, updated, merged, imported, given activities): every active
 * SMART segment of the tenant re-evaluates those customers, here for many, just after commit for a
 * few (domain/segments/reevaluations.ts).
 */
export async function afterCustomersChanged(em: EntityManager, tenantId: string, customerIds: string[], cause: string): Promise<void> {
  await followSmartSegments(em, tenantId, customerIds, cause);
}

/**
 * After upstream events changed promotion sources (a competition moved, a club event cancelled):
 * the automatic promotions of those sources re-read their plans, through the outbox.
 */
export async function afterPromotionSourcesChanged(em: EntityManager, tenantId: string, sources: SourceRef[]): Promise<void> {
  if (sources.length) await signalPromotions(em, tenantId, { sources });
}

import type { EntityManager } from '@mikro-orm/postgresql';
import { pgArray } from '../db/sql.js';

export interface AppendedActivity {
  id: string;
  customerId: string;
  type: string;
  category: string;
  occurredAt: Date;
}

/**
 * The one hand-off point after activities land on timelines (upstream events, merges, identity
 * conflicts): profiles' `lastActivityAt` follows the newest activity here, and the capabilities
 * that react to events (SMART segment re-evaluation, journey enrolment, triggered campaigns)
 * join here, so no entry point can forget one. Runs in the caller's transaction.
 */
export async function afterActivitiesAppended(em: EntityManager, tenantId: string, activities: AppendedActivity[]): Promise<void> {
  if (!activities.length) return;
  await em.execute(
    `update customers c set last_activity_at = greatest(c.last_activity_at, a.newest), updated_at = now()
       from (select customer_id, max(occurred_at) as newest
               from unnest(?::uuid[], ?::timestamptz[]) as t(customer_id, occurred_at) group by customer_id) a
      where c.tenant_id = ? and c.id = a.customer_id
        and (c.last_activity_at is null or c.last_activity_at < a.newest)`,
    [pgArray(activities.map((a) => a.customerId)), pgArray(activities.map((a) => a.occurredAt.toISOString())), tenantId],
  );
}

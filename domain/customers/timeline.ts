import type { EntityManager } from '@mikro-orm/postgresql';
import { newIds } from '../../db/ids.js';
import { Activity } from '../../db/entities/index.js';
import { executeBound, pgArray, sizedStatement, TENANT, tenantKey } from '../../db/sql.js';
import type { ActivityCategory } from '../../db/entities/enums.js';
import type { ServiceContext } from '../context.js';
import { counted, lazyCount, planPage, toPage, type Connection, type LazyConnection, type Page, type PageArgs } from '../pagination.js';
import { afterActivitiesAppended, type AppendedActivity } from '../reactions.js';
import { validate } from '../validate.js';
import { getCustomer, isUuid } from './customers.js';
import { timelineFilters, type TimelineFilters } from './schemas.js';

export interface NewActivity {
  customerId: string;
  type: string;
  category: ActivityCategory;
  title: string;
  description?: string | null;
  occurredAt: Date;
  metadata?: Record<string, unknown> | null;
  sourceService?: string | null;
  sourceEventId?: string | null;
}

// Named for an event or a short batch: planning it cost more than running it, on every event.
const APPEND_ACTIVITIES = sizedStatement(
  `insert into activities (id, tenant_id, customer_id, type, category, title, description, occurred_at, metadata, source_service, source_event_id)
   select t.id, ?, t.customer_id, t.type, t.category, t.title, t.description, t.occurred_at, t.metadata, t.source_service, t.source_event_id
     from unnest(?::uuid[], ?::uuid[], ?::text[], ?::text[], ?::text[], ?::text[], ?::timestamptz[], ?::jsonb[], ?::text[], ?::text[])
       as t(id, customer_id, type, category, title, description, occurred_at, metadata, source_service, source_event_id)
   on conflict (tenant_id, source_service, source_event_id) where source_service is not null and source_event_id is not null do nothing
   returning id`,
);

// The customers whose timelines grow, locked in id order before anything is written: two batches,
// a batch and a merge, or a batch and the SMART drain holding the same customers wait for each
// other instead of deadlocking. Read under the lock, what became of each since it was resolved
// (before this transaction): merged meanwhile, its activities go to the profile it went into.
const LOCK_TIMELINES = sizedStatement(
  `select id, status, merged_into_id from customers where tenant_id = ${TENANT} and id = any(?::uuid[]) order by id for no key update`,
);
const MAX_MERGE_HOPS = 10;

/** Locks the customers (and those they were merged into); each id's live profile, or null: deleted, or not the tenant's. */
async function lockTimelines(em: EntityManager, tenantId: string, customerIds: string[], followMerges: boolean): Promise<Map<string, string | null>> {
  const rows = new Map<string, { status: string; merged_into_id: string | null }>();
  let wanted = [...new Set(customerIds)];
  for (let hop = 0; wanted.length && hop <= MAX_MERGE_HOPS; hop++) {
    const locked = await executeBound<{ id: string; status: string; merged_into_id: string | null }>(em, LOCK_TIMELINES(wanted.length), [tenantId, pgArray(wanted)]);
    for (const row of locked) rows.set(row.id, row);
    if (!followMerges) break;
    wanted = [...new Set(locked.flatMap((r) => (r.status === 'MERGED' && r.merged_into_id && !rows.has(r.merged_into_id) ? [r.merged_into_id] : [])))];
  }
  const live = (id: string): string | null => {
    for (let at: string | null = id, hop = 0; at && hop <= MAX_MERGE_HOPS; hop++) {
      const row = rows.get(at);
      if (!row) return null;
      if (!followMerges) return at;
      if (row.status === 'MERGED') at = row.merged_into_id;
      else return row.status === 'DELETED' ? null : at;
    }
    return null;
  };
  return new Map(customerIds.map((id) => [id, live(id)]));
}

const compare = (a: string | null | undefined, b: string | null | undefined) => ((a ?? '') < (b ?? '') ? -1 : (a ?? '') > (b ?? '') ? 1 : 0);

/**
 * What became of an item: appended (on the profile it names, or the one that profile was merged
 * into since), `duplicate` (its source event is already stored for the tenant), or `gone` (its
 * profile was deleted).
 */
export type AppendOutcome = AppendedActivity | 'duplicate' | 'gone';

/**
 * Appends activities in one statement. `followMerges: false` writes to the profiles as named, merged
 * or not (a merge's own record on its loser).
 */
export async function appendActivities(
  em: EntityManager, tenantId: string, items: NewActivity[], cause = 'event', { followMerges = true } = {},
): Promise<AppendOutcome[]> {
  if (!items.length) return [];
  const timelines = await lockTimelines(em, tenantId, items.map((i) => i.customerId), followMerges);
  const ids = newIds(items.length);
  // In source-event order (any one order every writer shares): two batches carrying some of the
  // same events then claim them in turn, and one waits for the other; in the order given, each
  // could hold what the other wants (a deadlock). Compared by code unit, not collation: cheaper.
  const byEvent = (a: NewActivity, b: NewActivity) => compare(a.sourceService, b.sourceService) || compare(a.sourceEventId, b.sourceEventId);
  const landing = items.flatMap((item, index) => {
    const customerId = timelines.get(item.customerId);
    return customerId ? [{ ...item, customerId, id: ids[index]! }] : [];
  }).sort(byEvent);
  const rows = landing.length
    ? await executeBound<{ id: string }>(
        em,
        APPEND_ACTIVITIES(landing.length),
        [
          tenantId,
          ...[
            landing.map((i) => i.id),
            landing.map((i) => i.customerId),
            landing.map((i) => i.type),
            landing.map((i) => i.category),
            landing.map((i) => i.title),
            landing.map((i) => i.description ?? null),
            landing.map((i) => i.occurredAt.toISOString()),
            landing.map((i) => (i.metadata == null ? null : JSON.stringify(i.metadata))),
            landing.map((i) => i.sourceService ?? null),
            landing.map((i) => i.sourceEventId ?? null),
          ].map(pgArray),
        ],
      )
    : [];
  const inserted = new Set(rows.map((r) => r.id));
  const outcomes: AppendOutcome[] = items.map((item, index) => {
    const customerId = timelines.get(item.customerId);
    if (!customerId) return 'gone';
    return inserted.has(ids[index]!) ? { id: ids[index]!, customerId, type: item.type, category: item.category, occurredAt: item.occurredAt } : 'duplicate';
  });
  await afterActivitiesAppended(em, tenantId, outcomes.filter((a): a is AppendedActivity => typeof a === 'object'), cause);
  return outcomes;
}

// A cursor's instant is one this API wrote (toISOString of a stored time): anything else (a date
// JavaScript reads and PostgreSQL does not, or out of PostgreSQL's range) is a tampered cursor.
const ISO_INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const isInstant = (at: unknown) => typeof at === 'string' && ISO_INSTANT.test(at) && !at.startsWith('0000') && !Number.isNaN(Date.parse(at)) && new Date(at).toISOString() === at;
const planTimelinePage = (args: PageArgs) =>
  planPage(args, ([at, id, ...rest]) => rest.length === 0 && isInstant(at) && typeof id === 'string' && isUuid(id));
const activityKey = (a: Activity) => [a.occurredAt.toISOString(), a.id];

/** Newest first; cursors over (occurredAt, id); counted only when asked. */
export async function timelineConnection(ctx: ServiceContext, customerId: string, filters: TimelineFilters = {}, args: PageArgs = {}): Promise<LazyConnection<Activity>> {
  const f = validate(timelineFilters, filters, 'filters');
  const customer = await getCustomer(ctx, customerId);
  const plan = planTimelinePage(args);
  const qb = ctx.em.createQueryBuilder(Activity, 'a').where({ tenantId: tenantKey(ctx.tenantId), customer: customer.id });
  if (f.categories?.length) qb.andWhere({ category: { $in: f.categories } });
  if (f.startDate) qb.andWhere({ occurredAt: { $gte: f.startDate } });
  if (f.endDate) qb.andWhere({ occurredAt: { $lte: f.endDate } });
  const all = qb.clone(); // counted without the cursor
  const count = lazyCount(() => all.getCount());
  if (plan.cursor) {
    const [at, id] = plan.cursor as [string, string];
    qb.andWhere(`(a.occurred_at, a.id) ${plan.backwards ? '>' : '<'} (?::timestamptz, ?::uuid)`, [at, id]);
  }
  const dir = plan.backwards ? 'asc' : 'desc';
  const rows = await qb.orderBy({ occurredAt: dir, id: dir }).limit(plan.limit).getResult();
  return { ...toPage(rows, plan, activityKey), get totalCount() { return count(); } };
}

export async function customerTimeline(ctx: ServiceContext, customerId: string, filters: TimelineFilters = {}, args: PageArgs = {}): Promise<Connection<Activity>> {
  return counted(await timelineConnection(ctx, customerId, filters, args));
}

/**
 * One timeline page for each of `customerIds` (the tenant's, already loaded), in one statement:
 * the batched form of `timelineConnection` without filters.
 */
export async function timelinePages(ctx: ServiceContext, customerIds: readonly string[], args: PageArgs): Promise<Map<string, Page<Activity>>> {
  const plan = planTimelinePage(args);
  const dir = plan.backwards ? 'asc' : 'desc';
  const cursor = plan.cursor ? `and (a.occurred_at, a.id) ${plan.backwards ? '>' : '<'} (?::timestamptz, ?::uuid)` : '';
  const rows = await ctx.em.execute<({ owner__id: string } & Record<string, unknown>)[]>(
    `select c.id as owner__id, t.* from unnest(?::uuid[]) as c(id)
       cross join lateral (
         select a.* from activities a where a.tenant_id = ${TENANT} and a.customer_id = c.id ${cursor}
          order by a.occurred_at ${dir}, a.id ${dir} limit ?
       ) t`,
    [pgArray([...customerIds]), ctx.tenantId, ...(plan.cursor ?? []), plan.limit],
  );
  const byCustomer = new Map<string, Activity[]>(customerIds.map((id) => [id, []]));
  for (const { owner__id, ...row } of rows) byCustomer.get(owner__id)!.push(ctx.em.map(Activity, row as never));
  return new Map([...byCustomer].map(([id, activities]) => [id, toPage(activities, plan, activityKey)]));
}

/** Activities per customer, for `totalCount`: one statement for all of `customerIds`. */
export async function activityCounts(ctx: ServiceContext, customerIds: readonly string[]): Promise<Map<string, number>> {
  const rows = await ctx.em.execute<{ customer_id: string; n: number }[]>(
    `select customer_id, count(*)::int as n from activities where tenant_id = ${TENANT} and customer_id = any(?::uuid[]) group by customer_id`,
    [ctx.tenantId, pgArray([...customerIds])],
  );
  const counts = new Map(rows.map((r) => [r.customer_id, r.n]));
  return new Map(customerIds.map((id) => [id, counts.get(id) ?? 0]));
}

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

/**
 * Appends activities in one statement. An activity whose (sourceService, sourceEventId) is already
 * stored for the tenant is skipped: the returned array holds `null` at its index.
 */
export async function appendActivities(em: EntityManager, tenantId: string, items: NewActivity[], cause = 'event'): Promise<(AppendedActivity | null)[]> {
  if (!items.length) return [];
  const ids = newIds(items.length);
  const rows = await executeBound<{ id: string }>(
    em,
    APPEND_ACTIVITIES(items.length),
    [
      tenantId,
      ...[
        ids,
        items.map((i) => i.customerId),
        items.map((i) => i.type),
        items.map((i) => i.category),
        items.map((i) => i.title),
        items.map((i) => i.description ?? null),
        items.map((i) => i.occurredAt.toISOString()),
        items.map((i) => (i.metadata == null ? null : JSON.stringify(i.metadata))),
        items.map((i) => i.sourceService ?? null),
        items.map((i) => i.sourceEventId ?? null),
      ].map(pgArray),
    ],
  );
  const inserted = new Set(rows.map((r) => r.id));
  const appended: (AppendedActivity | null)[] = items.map((item, index) =>
    inserted.has(ids[index]!) ? { id: ids[index]!, customerId: item.customerId, type: item.type, category: item.category, occurredAt: item.occurredAt } : null,
  );
  await afterActivitiesAppended(em, tenantId, appended.filter((a): a is AppendedActivity => a !== null), cause);
  return appended;
}

const planTimelinePage = (args: PageArgs) =>
  planPage(args, ([at, id, ...rest]) => rest.length === 0 && typeof at === 'string' && !Number.isNaN(Date.parse(at)) && typeof id === 'string' && isUuid(id));
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

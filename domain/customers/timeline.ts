import type { EntityManager } from '@mikro-orm/postgresql';
import { v7 as uuidv7 } from 'uuid';
import { Activity } from '../../db/entities/index.js';
import { pgArray } from '../../db/sql.js';
import type { ActivityCategory } from '../../db/entities/enums.js';
import type { ServiceContext } from '../context.js';
import { planPage, toConnection, type Connection, type PageArgs } from '../pagination.js';
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

/**
 * Appends activities in one statement. An activity whose (sourceService, sourceEventId) is already
 * stored for the tenant is skipped: the returned array holds `null` at its index.
 */
export async function appendActivities(em: EntityManager, tenantId: string, items: NewActivity[], cause = 'event'): Promise<(AppendedActivity | null)[]> {
  if (!items.length) return [];
  const ids = items.map(() => uuidv7());
  const rows = await em.execute<{ id: string }[]>(
    `insert into activities (id, tenant_id, customer_id, type, category, title, description, occurred_at, metadata, source_service, source_event_id)
     select t.id, ?, t.customer_id, t.type, t.category, t.title, t.description, t.occurred_at, t.metadata, t.source_service, t.source_event_id
       from unnest(?::uuid[], ?::uuid[], ?::text[], ?::text[], ?::text[], ?::text[], ?::timestamptz[], ?::jsonb[], ?::text[], ?::text[])
         as t(id, customer_id, type, category, title, description, occurred_at, metadata, source_service, source_event_id)
     on conflict (tenant_id, source_service, source_event_id) where source_service is not null and source_event_id is not null do nothing
     returning id`,
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

/** Newest first; cursors over (occurredAt, id). */
export async function customerTimeline(ctx: ServiceContext, customerId: string, filters: TimelineFilters = {}, args: PageArgs = {}): Promise<Connection<Activity>> {
  const f = validate(timelineFilters, filters, 'filters');
  const customer = await getCustomer(ctx, customerId);
  const plan = planPage(
    args,
    ([at, id, ...rest]) => rest.length === 0 && typeof at === 'string' && !Number.isNaN(Date.parse(at)) && typeof id === 'string' && isUuid(id),
  );
  const qb = ctx.em.createQueryBuilder(Activity, 'a').where({ tenantId: ctx.tenantId, customer: customer.id });
  if (f.categories?.length) qb.andWhere({ category: { $in: f.categories } });
  if (f.startDate) qb.andWhere({ occurredAt: { $gte: f.startDate } });
  if (f.endDate) qb.andWhere({ occurredAt: { $lte: f.endDate } });
  const total = await qb.clone().getCount();
  if (plan.cursor) {
    const [at, id] = plan.cursor as [string, string];
    qb.andWhere(`(a.occurred_at, a.id) ${plan.backwards ? '>' : '<'} (?::timestamptz, ?::uuid)`, [at, id]);
  }
  const dir = plan.backwards ? 'asc' : 'desc';
  const rows = await qb.orderBy({ occurredAt: dir, id: dir }).limit(plan.limit).getResult();
  return toConnection(rows, plan, total, (a) => [a.occurredAt.toISOString(), a.id]);
}

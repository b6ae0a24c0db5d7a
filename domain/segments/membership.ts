import type { EntityManager } from '@mikro-orm/postgresql';
import { Segment } from '../../db/entities/index.js';
import { pgArray } from '../../db/sql.js';
import { compileCriteria } from './criteria.js';

export interface RefreshResult {
  segmentId: string;
  previousCount: number;
  newCount: number;
  added: number;
  removed: number;
}

const LIVE = `c.status <> 'MERGED' and c.status <> 'DELETED'`;

/**
 * Brings a segment's stored membership in line with its criteria, entirely inside PostgreSQL in
 * one statement (no customer row comes into Node): members who no longer match leave, new matches
 * enter, and each change is recorded with its cause.
 *
 * A segment's first population records no changes: creating a segment does not "enter" its whole
 * audience (journeys that start on entry react to customers who join later).
 *
 * Runs in the caller's transaction; refreshes of one segment serialise on an advisory lock.
 */
export async function evaluateMembership(em: EntityManager, segment: Pick<Segment, 'id' | 'tenantId' | 'criteria'>, cause: string): Promise<RefreshResult> {
  const { id, tenantId } = segment;
  await em.execute('select pg_advisory_xact_lock(hashtextextended(?, 0))', [`segment:${id}`]);
  const [{ initial }] = (await em.execute<{ initial: boolean }[]>('select last_refreshed_at is null as initial from segments where id = ?', [id])) as [
    { initial: boolean },
  ];

  const criteria = compileCriteria(segment.criteria);
  const record = !initial;

  const [counts] = await em.execute<{ added: number; removed: number }[]>(
    `with target as (
       select c.id from customers c where c.tenant_id = ? and ${LIVE} and ${criteria.sql}
     ), removed as (
       delete from segment_members sm
        where sm.segment_id = ? and not exists (select 1 from target t where t.id = sm.customer_id)
       returning sm.customer_id
     ), added as (
       insert into segment_members (segment_id, customer_id, tenant_id)
       select ?::uuid, t.id, ? from target t
       on conflict (segment_id, customer_id) do nothing
       returning customer_id
     ), changes as (
       insert into segment_membership_changes (tenant_id, segment_id, customer_id, change, cause)
       select ?, ?::uuid, customer_id, 'ENTERED', ? from added where ?::bool
       union all
       select ?, ?::uuid, customer_id, 'EXITED', ? from removed where ?::bool
     )
     select (select count(*) from added)::int as added, (select count(*) from removed)::int as removed`,
    [
      tenantId, ...criteria.params,
      id,
      id, tenantId,
      tenantId, id, cause, record,
      tenantId, id, cause, record,
    ],
  );
  const { added, removed } = counts!;
  const [{ member_count: newCount }] = (await em.execute<{ member_count: number }[]>(
    `update segments set member_count = member_count + ? - ?, last_refreshed_at = now(), updated_at = now()
      where id = ? returning member_count`,
    [added, removed, id],
  )) as [{ member_count: number }];
  return { segmentId: id, previousCount: newCount - added + removed, newCount, added, removed };
}

/**
 * Re-evaluates the given customers against every active SMART segment of the tenant: the
 * real-time path, called from domain/reactions.ts whenever profiles or timelines change. One
 * statement for all segments, so an event costs one round trip however many SMART segments
 * exist. Member counts move by the rows actually inserted and deleted, so they stay exact when
 * this overlaps a full refresh.
 */
export async function reevaluateSmartSegments(em: EntityManager, tenantId: string, customerIds: string[], cause: string): Promise<void> {
  if (!customerIds.length) return;
  const smart = await em.find(Segment, { tenantId, type: 'SMART', isActive: true }, { orderBy: { id: 'asc' } });
  if (!smart.length) return;
  const ids = pgArray([...new Set(customerIds)]);
  const targets: string[] = [];
  const params: unknown[] = [];
  for (const segment of smart) {
    const criteria = compileCriteria(segment.criteria);
    targets.push(`select ?::uuid as segment_id, c.id from customers c where c.tenant_id = ? and ${LIVE} and c.id = any(?::uuid[]) and ${criteria.sql}`);
    params.push(segment.id, tenantId, ids, ...criteria.params);
  }
  await em.execute(
    `with target as (${targets.join(' union all ')}
     ), removed as (
       delete from segment_members sm
        where sm.segment_id = any(?::uuid[]) and sm.customer_id = any(?::uuid[])
          and not exists (select 1 from target t where t.segment_id = sm.segment_id and t.id = sm.customer_id)
       returning sm.segment_id, sm.customer_id
     ), added as (
       insert into segment_members (segment_id, customer_id, tenant_id)
       select t.segment_id, t.id, ? from target t
       on conflict (segment_id, customer_id) do nothing
       returning segment_id, customer_id
     ), changes as (
       insert into segment_membership_changes (tenant_id, segment_id, customer_id, change, cause)
       select ?, segment_id, customer_id, 'ENTERED', ? from added
       union all
       select ?, segment_id, customer_id, 'EXITED', ? from removed
     ), deltas as (
       select segment_id, sum(d)::int as d
         from (select segment_id, 1 as d from added union all select segment_id, -1 from removed) moved
        group by segment_id
     )
     update segments s set member_count = s.member_count + deltas.d, updated_at = now()
       from deltas where s.id = deltas.segment_id and deltas.d <> 0`,
    [...params, pgArray(smart.map((s) => s.id)), ids, tenantId, tenantId, cause, tenantId, cause],
  );
}

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
 * enter, and each change is recorded with its cause. With `customerIds`, only those customers are
 * re-evaluated (SMART segments, after an event or a profile change).
 *
 * A segment's first population records no changes: creating a segment does not "enter" its whole
 * audience (journeys that start on entry react to customers who join later).
 *
 * Runs in the caller's transaction; full refreshes of one segment serialise on an advisory lock.
 */
export async function evaluateMembership(
  em: EntityManager,
  segment: Pick<Segment, 'id' | 'tenantId' | 'criteria'>,
  cause: string,
  customerIds?: string[],
): Promise<RefreshResult> {
  const { id, tenantId } = segment;
  const lockKey = `segment:${id}`;
  if (customerIds) await em.execute('select pg_advisory_xact_lock_shared(hashtextextended(?, 0))', [lockKey]);
  else await em.execute('select pg_advisory_xact_lock(hashtextextended(?, 0))', [lockKey]);
  const [{ initial }] = (await em.execute<{ initial: boolean }[]>('select last_refreshed_at is null as initial from segments where id = ?', [id])) as [
    { initial: boolean },
  ];

  const criteria = compileCriteria(segment.criteria);
  const onlyTarget = customerIds ? ' and c.id = any(?::uuid[])' : '';
  const onlyMembers = customerIds ? ' and sm.customer_id = any(?::uuid[])' : '';
  const ids = customerIds ? [pgArray(customerIds)] : [];
  const record = !initial || Boolean(customerIds);

  const [counts] = await em.execute<{ added: number; removed: number }[]>(
    `with target as (
       select c.id from customers c where c.tenant_id = ? and ${LIVE}${onlyTarget} and ${criteria.sql}
     ), removed as (
       delete from segment_members sm
        where sm.segment_id = ?${onlyMembers} and not exists (select 1 from target t where t.id = sm.customer_id)
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
      tenantId, ...ids, ...criteria.params,
      id, ...ids,
      id, tenantId,
      tenantId, id, cause, record,
      tenantId, id, cause, record,
    ],
  );
  const { added, removed } = counts!;
  const [{ member_count: newCount }] = (await em.execute<{ member_count: number }[]>(
    `update segments set member_count = member_count + ? - ?${customerIds ? '' : ', last_refreshed_at = now()'}, updated_at = now()
      where id = ? returning member_count`,
    [added, removed, id],
  )) as [{ member_count: number }];
  return { segmentId: id, previousCount: newCount - added + removed, newCount, added, removed };
}

/**
 * Re-evaluates the given customers against every active SMART segment of the tenant: the
 * real-time path, called from domain/reactions.ts whenever profiles or timelines change.
 */
export async function reevaluateSmartSegments(em: EntityManager, tenantId: string, customerIds: string[], cause: string): Promise<void> {
  if (!customerIds.length) return;
  const smart = await em.find(Segment, { tenantId, type: 'SMART', isActive: true }, { orderBy: { id: 'asc' } });
  for (const segment of smart) await evaluateMembership(em, segment, cause, [...new Set(customerIds)]);
}

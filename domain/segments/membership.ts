import type { EntityManager } from '@mikro-orm/postgresql';
import { Segment } from '../../db/entities/index.js';
import { LIVE_CUSTOMER, pgArray } from '../../db/sql.js';
import { journeysAfterSegmentEntries } from '../journeys/enrollment.js';
import { compileCriteria } from './criteria.js';

export interface RefreshResult {
  segmentId: string;
  previousCount: number;
  newCount: number;
  added: number;
  removed: number;
}


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
  const [{ initial, empty }] = (await em.execute<{ initial: boolean; empty: boolean }[]>(
    'select last_refreshed_at is null as initial, not exists (select 1 from segment_members where segment_id = ?) as empty from segments where id = ?',
    [id, id],
  )) as [{ initial: boolean; empty: boolean }];
  const criteria = compileCriteria(segment.criteria);
  const target = `select c.id from customers c where c.tenant_id = ? and ${LIVE_CUSTOMER} and ${criteria.sql}`;

  if (initial && empty) {
    // First population: nothing to diff against and nothing to record, so a plain INSERT ... SELECT.
    // The same statement stores the count: its snapshot's members (none, unless some were added
    // since the check above) plus the rows it inserted, folding that snapshot's deltas. A second
    // pass over the new members would only count them again.
    const [row] = await em.execute<{ added: number; member_count: number }[]>(
      `with added as (insert into segment_members (segment_id, customer_id, tenant_id) select ?::uuid, t.id, ? from (${target}) t returning 1
       ), folded as (delete from segment_member_count_deltas where segment_id = ? returning 1)
       update segments set member_count = (select count(*) from segment_members where segment_id = ?) + (select count(*) from added),
              last_refreshed_at = now(), updated_at = now()
        where id = ? returning member_count, (select count(*) from added)::int as added`,
      [id, tenantId, tenantId, ...criteria.params, id, id, id],
    );
    return { segmentId: id, previousCount: row!.member_count - row!.added, newCount: row!.member_count, added: row!.added, removed: 0 };
  }
  const { added, removed } = await diffMembership(em, segment, target, criteria.params, cause, !initial);
  // The exact count replaces the stored one and the real-time deltas it now includes, in one
  // snapshot, so deltas committed meanwhile are neither lost nor counted twice.
  const [{ member_count: newCount }] = (await em.execute<{ member_count: number }[]>(
    `with folded as (delete from segment_member_count_deltas where segment_id = ? returning 1)
     update segments set member_count = (select count(*) from segment_members where segment_id = ?), last_refreshed_at = now(), updated_at = now()
      where id = ? returning member_count`,
    [id, id, id],
  )) as [{ member_count: number }];
  return { segmentId: id, previousCount: newCount - added + removed, newCount, added, removed };
}

async function diffMembership(
  em: EntityManager,
  { id, tenantId }: Pick<Segment, 'id' | 'tenantId'>,
  target: string,
  criteriaParams: unknown[],
  cause: string,
  record: boolean,
): Promise<{ added: number; removed: number }> {

  const [counts] = await em.execute<{ added: number; removed: number; entered: string[] }[]>(
    `with target as (${target}
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
       returning id, change
     )
     select (select count(*) from added)::int as added, (select count(*) from removed)::int as removed,
            (select coalesce(array_agg(id), '{}') from changes where change = 'ENTERED')::text[] as entered`,
    [
      tenantId, ...criteriaParams,
      id,
      id, tenantId,
      tenantId, id, cause, record,
      tenantId, id, cause, record,
    ],
  );
  // Entries enrol in the segment's SEGMENT_ENTRY journeys, in this transaction.
  await journeysAfterSegmentEntries(em, tenantId, counts!.entered);
  return { added: counts!.added, removed: counts!.removed };
}

/**
 * Re-evaluates the given customers against every active SMART segment of the tenant: the
 * real-time path, called from domain/reactions.ts whenever profiles or timelines change. One
 * statement for all segments, so an event costs one round trip however many SMART segments
 * exist; SMART segments that read other SMART segments' membership go in later statements, after
 * those. Count changes go to segment_member_count_deltas (rows, not an update of the segment),
 * so concurrent events never wait on each other; a shared lock per segment keeps them from
 * interleaving with a full refresh.
 */
export async function reevaluateSmartSegments(em: EntityManager, tenantId: string, customerIds: string[], cause: string): Promise<void> {
  if (!customerIds.length) return;
  const smart = await em.find(Segment, { tenantId, type: 'SMART', isActive: true }, { orderBy: { id: 'asc' } });
  if (!smart.length) return;
  await em.execute(
    `select pg_advisory_xact_lock_shared(hashtextextended('segment:' || id, 0)) from unnest(?::uuid[]) as t(id) order by id`,
    [pgArray(smart.map((s) => s.id))],
  );
  const ids = pgArray([...new Set(customerIds)]);
  for (const level of dependencyLevels(smart)) await reevaluate(em, tenantId, level, ids, cause);
}

/** Segments grouped so that each group reads only segments of earlier groups (or non-SMART ones). */
function dependencyLevels(segments: Segment[]): Segment[][] {
  const refs = new Map(segments.map((s) => [s.id, [...compileCriteria(s.criteria).segmentRefs.keys()]]));
  const pending = new Set(segments.map((s) => s.id));
  const levels: Segment[][] = [];
  while (pending.size) {
    const ready = segments.filter((s) => pending.has(s.id) && refs.get(s.id)!.every((r) => !pending.has(r)));
    // Validation refuses cycles; should one slip in, evaluate the rest together rather than loop.
    const level = ready.length ? ready : segments.filter((s) => pending.has(s.id));
    level.forEach((s) => pending.delete(s.id));
    levels.push(level);
  }
  return levels;
}

async function reevaluate(em: EntityManager, tenantId: string, segments: Segment[], ids: string, cause: string): Promise<void> {
  const targets: string[] = [];
  const params: unknown[] = [];
  for (const segment of segments) {
    const criteria = compileCriteria(segment.criteria);
    targets.push(`select ?::uuid as segment_id, c.id from customers c where c.tenant_id = ? and ${LIVE_CUSTOMER} and c.id = any(?::uuid[]) and ${criteria.sql}`);
    params.push(segment.id, tenantId, ids, ...criteria.params);
  }
  const [entered] = await em.execute<{ entered: string[] }[]>(
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
       returning id, change
     ), deltas as (
       select segment_id, sum(d)::int as d
         from (select segment_id, 1 as d from added union all select segment_id, -1 from removed) moved
        group by segment_id
     ), counted as (
       insert into segment_member_count_deltas (segment_id, delta) select segment_id, d from deltas where d <> 0
     )
     select coalesce(array_agg(id), '{}')::text[] as entered from changes where change = 'ENTERED'`,
    [...params, pgArray(segments.map((s) => s.id)), ids, tenantId, tenantId, cause, tenantId, cause],
  );
  // Entries enrol in the segments' SEGMENT_ENTRY journeys, in this transaction.
  await journeysAfterSegmentEntries(em, tenantId, entered!.entered);
}

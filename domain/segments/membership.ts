import type { EntityManager } from '@mikro-orm/postgresql';
import { Segment } from '../../db/entities/index.js';
import { executeBound, LIVE_CUSTOMER, namedStatement, numberedPlaceholders, pgArray, sizedStatement, TENANT } from '../../db/sql.js';
import { AppError } from '../../platform/errors.js';
import { enrollSegmentEntries, journeysAfterSegmentEntries, segmentEntryJourneys, type SegmentEntryJourney } from '../journeys/enrollment.js';
import { compileCriteria, type Compiled } from './criteria.js';
import { addMemberCountDeltas, DROP_FOLDED_DELTAS, foldMemberCountDeltas } from './member-counts.js';

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
       ), folded as (${foldMemberCountDeltas('?::uuid')})
       update segments set member_count = (select count(*) from segment_members where segment_id = ?) + (select count(*) from added),
              last_refreshed_at = now(), updated_at = now()
        where id = ? returning member_count, (select count(*) from added)::int as added`,
      [id, tenantId, tenantId, ...criteria.params(tenantId), id, id, id, id],
    );
    await em.execute(DROP_FOLDED_DELTAS, [id]);
    return { segmentId: id, previousCount: row!.member_count - row!.added, newCount: row!.member_count, added: row!.added, removed: 0 };
  }
  const { added, removed } = await diffMembership(em, segment, target, criteria.params(tenantId), cause, !initial);
  // The exact count replaces the stored one and the real-time deltas it now includes, in one
  // snapshot, so deltas committed meanwhile are neither lost nor counted twice.
  const [{ member_count: newCount }] = (await em.execute<{ member_count: number }[]>(
    `with folded as (${foldMemberCountDeltas('?::uuid')})
     update segments set member_count = (select count(*) from segment_members where segment_id = ?), last_refreshed_at = now(), updated_at = now()
      where id = ? returning member_count`,
    [id, id, id, id],
  )) as [{ member_count: number }];
  await em.execute(DROP_FOLDED_DELTAS, [id]);
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
    // Members who left are found by a subquery of their own, not from the materialised target:
    // right after a large population the members' statistics are stale (about one row), and the
    // planner then checked each member against a scan of the whole target, minutes at 90,000.
    `with target as (${target}
     ), removed as (
       delete from segment_members sm
        where sm.segment_id = ? and not exists (select 1 from (${target}) t where t.id = sm.customer_id)
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
      id, tenantId, ...criteriaParams,
      id, tenantId,
      tenantId, id, cause, record,
      tenantId, id, cause, record,
    ],
  );
  // Entries enrol in the segment's SEGMENT_ENTRY journeys, in this transaction.
  await journeysAfterSegmentEntries(em, tenantId, counts!.entered);
  return { added: counts!.added, removed: counts!.removed };
}

/** A tenant's active SMART segments, compiled: evaluation levels, and the version each was compiled from. */
interface SmartPlan {
  /** `id:md5(criteria)` of each segment, in id order: what the evaluation checks is still current. */
  versions: string[];
  ids: string[];
  levels: Level[];
}

/** Segments evaluated together, and their evaluation statement, built once per plan. */
interface Level {
  ids: string[];
  /** For one customer, and for many: the first is planned once per connection, see evaluationOf. */
  evaluation: { one: string; many: string; params: (versions: string, customers: string) => unknown[] };
}

// Compiled plans by tenant, shared by every request of this process. Never trusted blindly: each
// evaluation statement compares the versions it was compiled from with the segments its own
// snapshot sees, and does nothing when they differ (another instance may have edited them).
const smartPlans = new Map<string, SmartPlan>();
const MAX_CACHED_PLANS = 10_000;
const MAX_STALE_ATTEMPTS = 5;
const MOVES_PER_STATEMENT = 2000;

// The tenant's active SMART segments. The tenant is read through a scalar subquery, so a plan made
// for its value costs what the kept plan does: on statistics that took each tenant for a large
// share of many segments, the kept plan looked dearer than one made for a small tenant, and
// PostgreSQL planned every event's evaluation again (0.6 ms, four times running it).
const SMART_VERSIONS = `select coalesce(array_agg(id::text || ':' || md5(criteria::text) order by id), '{}') as versions
  from segments where tenant_id = (select ?::text) and type = 'SMART' and is_active`;

// Named: a tenant without SMART segments runs it on every event, and planning it cost three times
// running it (its tenant is read as in SMART_VERSIONS, so its plan is kept). So does the segments'
// shared lock, on every event of a tenant with SMART segments.
const SMART_SEGMENTS = namedStatement(
  `select id, criteria, id::text || ':' || md5(criteria::text) as version from segments where tenant_id = (select ?::text) and type = 'SMART' and is_active order by id`,
);
// Each segment's two shared locks: against its refresh ('segment:'), and against its deletion
// ('segment-references:', which the membership tables' checks take too: see
// db/migrations/..._segment_reference_locks.ts).
const LOCK_SEGMENTS_SHARED = sizedStatement(
  `select pg_advisory_xact_lock_shared(hashtextextended('segment:' || id, 0)), pg_advisory_xact_lock_shared(hashtextextended('segment-references:' || id, 0))
     from unnest(?::uuid[]) as t(id) order by id`,
);

/**
 * Takes the shared locks of the segments that `customerIds` belong to now (see LOCK_SEGMENTS_SHARED),
 * for a change that moves those customers' memberships outside a refresh (a merge): a refresh then
 * waits for it, or it for the refresh. Take them before locking the customers, as a refresh takes its
 * own before its writes wait on theirs.
 */
export async function lockSegmentsOf(em: EntityManager, tenantId: string, customerIds: string[]): Promise<void> {
  const rows = await em.execute<{ segment_id: string }[]>(
    `select distinct segment_id from segment_members where tenant_id = ${TENANT} and customer_id = any(?::uuid[])`, [tenantId, pgArray(customerIds)],
  );
  if (rows.length) await executeBound(em, LOCK_SEGMENTS_SHARED(rows.length), [pgArray(rows.map((r) => r.segment_id))]);
}

async function loadSmartPlan(em: EntityManager, tenantId: string): Promise<SmartPlan> {
  const rows = await executeBound<{ id: string; criteria: unknown; version: string }>(em, SMART_SEGMENTS, [tenantId]);
  const compiled = new Map(rows.map((r) => [r.id, compileCriteria(r.criteria)]));
  const plan: SmartPlan = {
    versions: rows.map((r) => r.version),
    ids: rows.map((r) => r.id),
    levels: dependencyLevels(rows.map((r) => ({ id: r.id, refs: [...compiled.get(r.id)!.segmentRefs.keys()] }))).map((ids) => ({
      ids, evaluation: evaluationOf(tenantId, ids.map((id) => compiled.get(id)!), ids),
    })),
  };
  if (smartPlans.size >= MAX_CACHED_PLANS) smartPlans.delete(smartPlans.keys().next().value!);
  smartPlans.set(tenantId, plan);
  return plan;
}

const HAS_SMART_SEGMENTS = namedStatement(
  `select exists (select 1 from segments where tenant_id = (select ?::text) and type = 'SMART' and is_active) as found`,
);

/**
 * Whether the tenant has active SMART segments: yes when this process compiled some (the
 * evaluation checks them again), else a look that compiles nothing, so a change never fails on
 * criteria its evaluation would refuse.
 */
export async function hasSmartSegments(em: EntityManager, tenantId: string): Promise<boolean> {
  if (smartPlans.get(tenantId)?.ids.length) return true;
  return (await executeBound<{ found: boolean }>(em, HAS_SMART_SEGMENTS, [tenantId]))[0]!.found;
}

/**
 * Re-evaluates the given customers against every active SMART segment of the tenant: the
 * real-time path, run by the drainer of segment_reevaluations (./reevaluations.ts) for the
 * customers that profile and timeline changes queued there. One
 * statement for all segments, reading each customer row once, so an event costs one round trip
 * however many SMART segments exist; SMART segments that read other SMART segments' membership go
 * in later statements, after those. Count changes go to segment_member_count_deltas (rows, not an
 * update of the segment), so concurrent events never wait on each other; a shared lock per
 * segment keeps them from interleaving with a full refresh.
 *
 * The compiled criteria are cached per tenant; every statement checks, in its own snapshot, that
 * the active SMART segments and their criteria are still the ones compiled, and when not, the
 * plan is compiled again and the evaluation runs again: an edit committed before the statement
 * is always honoured, on every API instance.
 */
export async function reevaluateSmartSegments(em: EntityManager, tenantId: string, customerIds: string[], cause: string): Promise<void> {
  if (!customerIds.length) return;
  let plan = smartPlans.get(tenantId);
  // No SMART segments last time: looking again costs what checking would.
  if (!plan?.ids.length) plan = await loadSmartPlan(em, tenantId);
  if (!plan.ids.length) return;
  const unique = [...new Set(customerIds)];
  const customers = unique.length === 1 ? { one: true, param: unique[0]! } : { one: false, param: pgArray(unique) };
  const locked = new Set<string>();
  for (let attempt = 1; ; attempt++) {
    const toLock = plan.ids.filter((id) => !locked.has(id));
    if (toLock.length) {
      await executeBound(em, LOCK_SEGMENTS_SHARED(toLock.length), [pgArray(toLock)]);
      toLock.forEach((id) => locked.add(id));
    }
    let current = true;
    for (const level of plan.levels) {
      current = await reevaluate(em, plan.versions, level, customers, cause, tenantId);
      if (!current) break;
    }
    if (current) return;
    if (attempt >= MAX_STALE_ATTEMPTS) throw new AppError('CONFLICT', 'SMART segments kept changing during evaluation; retry');
    plan = await loadSmartPlan(em, tenantId);
    if (!plan.ids.length) return;
  }
}

/** Segment ids grouped so that each group reads only segments of earlier groups (or non-SMART ones). */
function dependencyLevels(segments: { id: string; refs: string[] }[]): string[][] {
  const refs = new Map(segments.map((s) => [s.id, s.refs]));
  const pending = new Set(segments.map((s) => s.id));
  const levels: string[][] = [];
  while (pending.size) {
    const ready = segments.filter((s) => pending.has(s.id) && refs.get(s.id)!.every((r) => !pending.has(r)));
    // Validation refuses cycles; should one slip in, evaluate the rest together rather than loop.
    const level = ready.length ? ready : segments.filter((s) => pending.has(s.id));
    level.forEach((s) => pending.delete(s.id));
    levels.push(level.map((s) => s.id));
  }
  return levels;
}

/**
 * The statement that evaluates one level of SMART segments: for each customer (its row read once),
 * every segment's condition and the memberships it holds, compared into the moves it needs,
 * provided the segments' versions are still the ones compiled. Named: planning it took five times
 * as long as running it, on every event. A single event's form reads one customer id, not an
 * array, so its generic plan is costed for one row as a custom plan would be and PostgreSQL keeps
 * it; costed for an array's default ten, it was replanned every time.
 */
function evaluationOf(tenantId: string, conditions: Compiled[], ids: string[]): Level['evaluation'] {
  // A probe of the customer's activities that several conditions make (the same event, window and
  // values) is computed once per customer, in a lateral subquery, and read by each of them.
  // Counts of the same events that differ only in how far they count (at least 2 bookings, at
  // least 4) share one probe counting as far as the furthest (Probe: short counts only).
  const uses = new Map<string, { n: number; limit?: number }>();
  for (const c of conditions) {
    for (const probe of c.probes(tenantId)) {
      const use = uses.get(probe.key);
      uses.set(probe.key, { n: (use?.n ?? 0) + 1, limit: probe.limit === undefined ? undefined : Math.max(probe.limit, use?.limit ?? 0) });
    }
  }
  const shared = new Map<string, { alias: string; sql: string; params: unknown[] }>();
  const rendered = conditions.map((c) => c.perCustomerWith(tenantId, (probe) => {
    const use = uses.get(probe.key)!;
    if (use.n < 2) return undefined;
    if (!shared.has(probe.key)) {
      const params = use.limit === undefined ? probe.params : [...probe.params.slice(0, -1), use.limit];
      shared.set(probe.key, { alias: `p.p${shared.size}`, sql: probe.sql, params });
    }
    return shared.get(probe.key)!.alias;
  }));
  const probes = [...shared.values()];
  const conditionParams = rendered.flatMap((c) => c.params);
  const probeParams = probes.flatMap((p) => p.params);
  const segmentIds = pgArray(ids);
  // OFFSET 0: the versions are compared once; pulled up, the comparison ran again in the join's filter.
  // The moves are found here too, as signed positions in the level's segment order (+ enters, -
  // leaves), and only customers who move come back: as a row per customer with every segment's
  // condition and membership, a batch of 1,000 sent 200 KB whose arrays Node parsed for longer
  // than PostgreSQL took to evaluate them. A customer's memberships are read whole, whatever the
  // segment, from the index on (tenant, customer, segment) alone; filtered to the level's segments,
  // PostgreSQL searched the primary key once per segment instead.
  const sql = (customers: string) => `select cur.current, e.id, e.moves
       from (select (${SMART_VERSIONS}) = ?::text[] as current offset 0) cur
       left join lateral (
         select x.id, m.moves
           from (select t.id,
                        case when c.id is not null then array[${rendered.map((c) => c.sql).join(', ')}] end as hits,
                        array(select sm.segment_id from segment_members sm where sm.tenant_id = ? and sm.customer_id = t.id) as members
                   from ${customers}
                   left join customers c on c.tenant_id = ${TENANT} and c.id = t.id and ${LIVE_CUSTOMER}${probes.length ? `
                   cross join lateral (select ${probes.map((p, i) => `${p.sql} as p${i}`).join(', ')} offset 0) p` : ''}
                 offset 0) x
           cross join lateral (
             select array_agg(case when s.hit then s.i else -s.i end)::int[] as moves
               from unnest(?::uuid[], x.hits) with ordinality as s(segment_id, hit, i)
              where coalesce(s.hit, false) <> (s.segment_id = any(x.members))) m
          where m.moves is not null
       ) e on cur.current`;
  return {
    one: namedStatement(sql('(select ?::uuid as id) t')),
    // A batch's: planned each time, for its customers.
    many: numberedPlaceholders(sql('unnest(?::uuid[]) as t(id)')),
    params: (versions, customers) => [tenantId, versions, ...conditionParams, tenantId, customers, tenantId, ...probeParams, segmentIds],
  };
}

/**
 * One level of SMART segments for `ids`. One read compares every segment's condition for each
 * customer with the memberships it holds; only when they differ does a second statement move the
 * members and record the changes. A customer no longer live matches nothing and leaves every
 * segment. Returns false, having changed nothing, when the segments' versions are no longer
 * `versions`.
 */
async function reevaluate(
  em: EntityManager, versions: string[], level: Level, customers: { one: boolean; param: string }, cause: string, tenantId: string,
): Promise<boolean> {
  const { one, many, params } = level.evaluation;
  const rows = await executeBound<{ current: boolean; id: string | null; moves: number[] | null }>(
    em, customers.one ? one : many, params(pgArray(versions), customers.param),
  );
  if (!rows[0]!.current) return false;
  const moves: { segmentId: string; customerId: string; d: 1 | -1 }[] = [];
  for (const { id, moves: signed } of rows) {
    if (!id || !signed) continue;
    for (const k of signed) moves.push({ segmentId: level.ids[Math.abs(k) - 1]!, customerId: id, d: k > 0 ? 1 : -1 });
  }
  // In one global order (segment, customer), so two batches moving the same members wait for each
  // other instead of deadlocking on the membership keys.
  moves.sort((a, b) => (a.segmentId === b.segmentId ? compare(a.customerId, b.customerId) : compare(a.segmentId, b.segmentId)));
  // A batch's first events can move many memberships: in slices, so no statement nears the timeout.
  for (let i = 0; i < moves.length; i += MOVES_PER_STATEMENT) await moveMembers(em, tenantId, moves.slice(i, i + MOVES_PER_STATEMENT), cause);
  return true;
}

const compare = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

// A single event's moves were planned in about 2 ms and run in about 1: named when few (see
// namedStatement); a batch's, planned each time for its size. Built on first use: the journeys
// module it reads is not initialised yet when this one loads (they import each other).
const NAMED_MOVES_AT_MOST = 50;
let moveMembersStatement: { named: string; unnamed: string } | undefined;
const MOVE_MEMBERS = (moves: number) => {
  moveMembersStatement ??= { named: namedStatement(moveMembersSql()), unnamed: numberedPlaceholders(moveMembersSql()) };
  return moves <= NAMED_MOVES_AT_MOST ? moveMembersStatement.named : moveMembersStatement.unnamed;
};
const moveMembersSql = () => (
  `with requested as (
     select * from unnest(?::uuid[], ?::uuid[], ?::int[]) as m(segment_id, customer_id, d)
   ), segments_kept as (
     select id from segments where tenant_id = ? and id in (select segment_id from requested)
   ), moves as (
     select r.* from requested r join segments_kept s on s.id = r.segment_id
   ), removed as (
     delete from segment_members sm using moves m
      where m.d = -1 and sm.segment_id = m.segment_id and sm.customer_id = m.customer_id
     returning sm.segment_id, sm.customer_id
   ), added as (
     insert into segment_members (segment_id, customer_id, tenant_id)
     select segment_id, customer_id, ?::text from moves where d = 1
     on conflict (segment_id, customer_id) do nothing
     returning segment_id, customer_id
   ), changes as (
     insert into segment_membership_changes (tenant_id, segment_id, customer_id, change, cause)
     select ?::text, segment_id, customer_id, 'ENTERED', ?::text from added
     union all
     select ?::text, segment_id, customer_id, 'EXITED', ?::text from removed
     returning id, tenant_id, segment_id, customer_id, change
   ), deltas as (
     select segment_id, sum(d)::int as d
       from (select segment_id, 1 as d from added union all select segment_id, -1 from removed) moved
      group by segment_id
   ), counted as (${addMemberCountDeltas('select segment_id, d from deltas')}
   )
   select (select json_agg(e order by e.change_id::bigint) from (${segmentEntryJourneys('changes')}) e) as entries`
);

/**
 * Moves SMART members in and out, recording each change that happened (a row another writer
 * already moved is not recorded twice) and its count delta; entries enrol in the segments'
 * SEGMENT_ENTRY journeys, in this transaction. The caller holds the segments' shared locks, taken
 * in an earlier statement: a segment whose deletion was in flight then was waited for and, gone
 * now, its moves are dropped (its members went with it), rather than failing the event that moved
 * them; a deletion after the locks waits for the transaction.
 */
async function moveMembers(em: EntityManager, tenantId: string, moves: { segmentId: string; customerId: string; d: 1 | -1 }[], cause: string): Promise<void> {
  const [result] = await executeBound<{ entries: SegmentEntryJourney[] | null }>(em, MOVE_MEMBERS(moves.length), [
    pgArray(moves.map((m) => m.segmentId)), pgArray(moves.map((m) => m.customerId)), pgArray(moves.map((m) => m.d)),
    tenantId, tenantId, tenantId, cause, tenantId, cause,
  ]);
  await enrollSegmentEntries(em, tenantId, result!.entries ?? []);
}

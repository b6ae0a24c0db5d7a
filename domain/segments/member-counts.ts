import type { EntityManager } from '@mikro-orm/postgresql';
import { executeBound, pgArray } from '../../db/sql.js';

/**
 * A statement adding `changes` (SQL yielding segment_id, delta) to segments' real-time member
 * counts: each writer, a PostgreSQL backend, keeps one row per segment and adds to it (see
 * db/migrations/..._segment_count_writers.ts). `memberCount` is the stored count plus these rows,
 * which a full refresh folds into it.
 */
export const addMemberCountDeltas = (changes: string) => `
  insert into segment_member_count_deltas as t (segment_id, writer, delta)
  select segment_id, pg_backend_pid(), sum(delta)::int from (${changes}) c(segment_id, delta) group by segment_id having sum(delta) <> 0
  on conflict (segment_id, writer) do update set delta = t.delta + excluded.delta`;

/**
 * A CTE body folding into a count taken in the same snapshot what that snapshot sees of the
 * segment's count changes, and only that: each row loses the value the snapshot read. Deleting the
 * rows instead would take along what a writer added since (a merge or a journey step, which do
 * not wait for a refresh): a row's new version is found and deleted whole.
 */
export const foldMemberCountDeltas = (segmentParam: string) => `
  update segment_member_count_deltas d set delta = d.delta - seen.delta
    from (select writer, delta from segment_member_count_deltas where segment_id = ${segmentParam}) seen
   where d.segment_id = ${segmentParam} and d.writer = seen.writer
  returning 1`;

/** Then the rows left at zero go (a writer adding to one meanwhile is waited for, and keeps it). */
export const DROP_FOLDED_DELTAS = 'delete from segment_member_count_deltas where segment_id = ? and delta = 0';

// Writer 0 is no backend (pids start at 1): the rows of writers gone, folded.
const addFoldedRows = `
  insert into segment_member_count_deltas as t (segment_id, writer, delta)
  select segment_id, 0, sum(delta)::int from moved group by segment_id order by segment_id
  on conflict (segment_id, writer) do update set delta = t.delta + excluded.delta`;

/**
 * Folds the rows of writers other than 0 into writer 0, for up to `limit` segments with such rows
 * after `after` (in id order): pools open new connections all the time, and a segment that no
 * refresh folds (a STATIC one, or a schedule paused) would gather a row per connection that ever
 * wrote to it. Sums are unchanged. Skipped, never waited for: a segment being refreshed or deleted
 * (its shared locks not granted), and a row whose writer's transaction is still open (SKIP LOCKED).
 * Returns the segments looked at, the last of them, and the rows folded.
 */
export async function foldMemberCountRows(em: EntityManager, after: string, limit: number): Promise<{ segments: number; last: string | null; rows: number }> {
  return em.transactional(async (em) => {
    const due = (await em.execute<{ segment_id: string }[]>(
      `select distinct segment_id from segment_member_count_deltas where writer <> 0 and segment_id > ?::uuid order by segment_id limit ?`,
      [after, limit],
    )).map((r) => r.segment_id);
    if (!due.length) return { segments: 0, last: null, rows: 0 };
    // The locks a writer of memberships holds: a refresh (or a deletion) in flight keeps its rows.
    const free = (await executeBound<{ id: string }>(em,
      `select id::text from unnest($1::uuid[]) as t(id)
        where pg_try_advisory_xact_lock_shared(hashtextextended('segment:' || id, 0))
          and pg_try_advisory_xact_lock_shared(hashtextextended('segment-references:' || id, 0))
        order by id`,
      [pgArray(due)],
    )).map((r) => r.id);
    // A later statement, so a later snapshot than the locks: a deletion committed meanwhile took its rows.
    const [moved] = free.length
      ? await executeBound<{ n: number }>(em,
        `with moved as (
           delete from segment_member_count_deltas where ctid in (
             select ctid from segment_member_count_deltas where segment_id = any($1::uuid[]) and writer <> 0 for update skip locked)
           returning segment_id, delta
         ), added as (${addFoldedRows})
         select count(*)::int as n from moved`,
        [pgArray(free)],
      )
      : [{ n: 0 }];
    return { segments: due.length, last: due[due.length - 1]!, rows: moved!.n };
  });
}

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

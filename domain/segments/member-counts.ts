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

import { createHash } from 'node:crypto';
import { ApplicationFailure, Context } from '@temporalio/activity';
import type { EntityManager } from '@mikro-orm/postgresql';
import { Segment } from '../db/entities/index.js';
import { executeBound, LIVE_CUSTOMER, namedStatement } from '../db/sql.js';
import { foldMemberCountRows } from '../domain/segments/member-counts.js';
import { evaluateMembership, type RefreshResult } from '../domain/segments/membership.js';
import { MessagingClient, MessagingError } from '../platform/messaging.js';
import type { ActivityDeps } from './index.js';

export interface SegmentRef {
  tenantId: string;
  segmentId: string;
}

const SYNC_BATCH = 1000;
/** Batches read ahead of the one being posted, each on a connection of its own. */
const READ_AHEAD = 2;
const FIRST_ID = '00000000-0000-0000-0000-000000000000';
/** Segments whose count rows one transaction folds. */
const FOLD_PAGE = 500;
const LAST_ID = 'ffffffff-ffff-ffff-ffff-ffffffffffff';
// What Messaging holds of a member; a change of any of it is sent again.
const FINGERPRINT = `md5(concat_ws('|', c.email, c.phone_number, c.first_name, c.last_name, c.email_opt_in, c.sms_opt_in, c.push_opt_in))`;

/** The ids of a range (start, end] of a sync's table, at most SYNC_BATCH: $1 the segment, $2 and $3 the range. */
const rangeOf = (table: string) =>
  `chunk as (select customer_id from ${table} where segment_id = $1 and customer_id > $2::uuid and customer_id <= $3::uuid order by customer_id limit ${SYNC_BATCH})`;
const chunkFacts = `(select count(*)::int from chunk) as examined, (select customer_id from chunk order by customer_id desc limit 1)::text as last`;
const isMember = `select 1 from segment_members m join customers c on c.tenant_id = m.tenant_id and c.id = m.customer_id
                   where m.segment_id = $1 and m.customer_id = chunk.customer_id and ${LIVE_CUSTOMER}`;

// The batches' reads run a hundred times a sync of 100,000 members: named, so a connection does
// not plan them on every batch (half a millisecond each). Their plans are lookups by key within
// the range, whatever the values.

/** Removals: what Messaging holds of members who are no longer live members. */
const REMOVES = namedStatement(
  `with ${rangeOf('segment_synced_members')},
        gone as (select chunk.customer_id as id from chunk where not exists (${isMember}))
   select ${chunkFacts}, string_agg(id::text, ',' order by id) as ids, json_agg(id order by id)::text as remove from gone`,
);

/**
 * Additions: new members, and members whose fields changed since they were sent (an opt-out,
 * say); `changed` lists those Messaging held before. Each member's JSON is a row's (its column
 * aliases are the keys): json_build_object of sixteen arguments per member was a sixth of the lookup.
 */
const ADDS = namedStatement(
  `with ${rangeOf('segment_members')},
        live as (select c.id, c.email, c.phone_number, c.first_name, c.last_name, c.email_opt_in, c.sms_opt_in, c.push_opt_in, ${FINGERPRINT} as fingerprint
                   from chunk join customers c on c.tenant_id = $4 and c.id = chunk.customer_id where ${LIVE_CUSTOMER}),
        fresh as (select live.*, s.customer_id is not null as held from live left join segment_synced_members s
                          on s.segment_id = $1 and s.customer_id > $2::uuid and s.customer_id <= $3::uuid and s.customer_id = live.id
                   where s.fingerprint is distinct from live.fingerprint)
   select ${chunkFacts}, string_agg(id::text, ',' order by id) as ids, string_agg(fingerprint, ',' order by id) as fingerprints,
          string_agg(id::text, ',' order by id) filter (where held) as changed, json_agg(member order by id)::text as add
     from fresh cross join lateral (select fresh.id as "customerId", fresh.email, fresh.phone_number as "phoneNumber", fresh.first_name as "firstName",
                                           fresh.last_name as "lastName", fresh.email_opt_in as "emailOptIn", fresh.sms_opt_in as "smsOptIn",
                                           fresh.push_opt_in as "pushOptIn") member`,
);

/**
 * Records an acknowledged batch: $3 and $4 its ids and fingerprints, $5 those of them Messaging
 * held before. Planned each time: run as a named statement, it made a sync of 100,000 members
 * on a fresh database up to a third longer.
 */
const RECORD = `with segment as (select id, tenant_id from segments where id = $1 and tenant_id = $2 for key share),
        sent as (select * from unnest(string_to_array($3, ',')::uuid[], string_to_array($4, ',')) as t(id, fingerprint)),
        held as (select unnest(string_to_array(nullif($5, ''), ',')::uuid[]) as id),
        inserted as (
          insert into segment_synced_members (segment_id, customer_id, tenant_id, fingerprint)
          select segment.id, sent.id, segment.tenant_id, sent.fingerprint from segment, sent where sent.id not in (select id from held)),
        updated as (
          update segment_synced_members s set fingerprint = sent.fingerprint, synced_at = now()
            from segment, sent join held on held.id = sent.id
           where s.segment_id = segment.id and s.customer_id = sent.id)
   select (select count(*)::int from segment) as n`;

/**
 * Records a batch sent again after its answer was lost: its ids as held, with their fingerprints,
 * whatever a record of it before may have written.
 */
const RECORD_RESENT = `with segment as (select id, tenant_id from segments where id = $1 and tenant_id = $2 for key share),
        sent as (select * from unnest(string_to_array($3, ',')::uuid[], string_to_array($4, ',')) as t(id, fingerprint))
   insert into segment_synced_members (segment_id, customer_id, tenant_id, fingerprint)
   select segment.id, sent.id, segment.tenant_id, sent.fingerprint from segment, sent
   on conflict (segment_id, customer_id) do update set fingerprint = excluded.fingerprint, synced_at = now()`;

/** A batch whose answer was lost, as it was sent (segments.sync_pending). */
interface PendingBatch {
  phase: 'remove' | 'add';
  messagingSegmentId: string;
  key: string;
  body: string;
  ids: string;
  fingerprints: string;
}

interface SyncCursor {
  phase: 'remove' | 'add';
  /** Last customer id handled in this phase (sent, acknowledged and recorded). */
  after: string;
  batches: number;
}

/** Keeps the activity's heartbeat going while one long statement runs. */
async function heartbeating<T>(work: Promise<T>, details?: unknown): Promise<T> {
  const timer = setInterval(() => Context.current().heartbeat(details), 5_000);
  try {
    return await work;
  } finally {
    clearInterval(timer);
  }
}

async function loadSegment(em: EntityManager, { tenantId, segmentId }: SegmentRef): Promise<Segment> {
  const segment = await em.findOne(Segment, { id: segmentId, tenantId });
  // Deleted while the workflow was queued: nothing to do, and retrying will not change that.
  if (!segment) throw ApplicationFailure.nonRetryable(`segment ${segmentId} no longer exists`, 'SegmentNotFound');
  return segment;
}

/**
 * Where each batch of a table's ordered ids ends, walked through a cursor in a read-only
 * transaction of its own: it moves SYNC_BATCH rows and reads only the id it stops at. A cursor is
 * planned for its first rows, so it walks the ordered index; the same query re-run per chunk after
 * a large refresh was planned from statistics that had not seen the new members, and every chunk
 * sorted the whole rest of the segment. The batches themselves are read by range, so no id
 * crosses the wire twice.
 */
async function openBoundaries(orm: ActivityDeps['orm'], sql: string, params: unknown[]) {
  const em = orm.em.fork();
  await em.begin({ readOnly: true });
  try {
    await em.execute(`declare sync_rows no scroll cursor for ${sql}`, params);
  } catch (err) {
    await em.rollback();
    throw err;
  }
  return {
    /** The last id of the next SYNC_BATCH rows, or LAST_ID once fewer are left. */
    next: async () => {
      await em.execute(`move forward ${SYNC_BATCH - 1} in sync_rows`);
      const [row] = await em.execute<{ customer_id: string }[]>('fetch forward 1 from sync_rows');
      return row?.customer_id ?? LAST_ID;
    },
    close: () => em.rollback(),
  };
}

/**
 * Syncs running at once in one worker process. Each holds a pooled connection for its cursor's
 * transaction for the whole sync, and uses up to READ_AHEAD + 1 more at a time (its lookups and a record), out
 * of the pool's 10 that every activity of the worker shares; the rest wait, heartbeating.
 */
const SYNCS_AT_ONCE = 2;
let syncsRunning = 0;
const syncsWaiting: (() => void)[] = [];
async function syncSlot(): Promise<() => void> {
  if (syncsRunning < SYNCS_AT_ONCE) syncsRunning++;
  else await new Promise<void>((resume) => syncsWaiting.push(resume));
  let released = false;
  return () => {
    if (released) return;
    released = true;
    const next = syncsWaiting.shift();
    if (next) next(); // the slot passes on
    else syncsRunning--;
  };
}

export function segmentActivities({ orm, config }: ActivityDeps) {
  const messaging = () => {
    if (!config.MESSAGING_URL) throw ApplicationFailure.nonRetryable('MESSAGING_URL is not configured', 'MessagingNotConfigured');
    return new MessagingClient({ baseUrl: config.MESSAGING_URL, apiKey: config.MESSAGING_API_KEY, timeoutMs: config.MESSAGING_TIMEOUT_MS });
  };
  const asFailure = (err: unknown) =>
    err instanceof MessagingError && !err.retryable ? ApplicationFailure.nonRetryable(err.message, 'MessagingRejected') : err;

  return {
    /** One transaction: a crash or retry never leaves half a membership. */
    async refreshSegmentMembership(ref: SegmentRef & { cause: string }): Promise<RefreshResult> {
      return orm.em.fork().transactional(async (em) => {
        const segment = await loadSegment(em, ref);
        if (segment.criteria == null) {
          // A STATIC segment without criteria has hand-picked members: a refresh keeps them.
          segment.lastRefreshedAt = new Date();
          await em.flush();
          return { segmentId: segment.id, previousCount: segment.memberCount, newCount: segment.memberCount, added: 0, removed: 0 };
        }
        return heartbeating(evaluateMembership(em, segment, ref.cause));
      }).catch((err: unknown) => {
        // Data and statement errors (SQLSTATE classes 22 and 42) fail the same way on every try.
        const sqlState = String((err as { code?: unknown }).code ?? '');
        if (/^(22|42)/.test(sqlState)) throw ApplicationFailure.nonRetryable((err as Error).message, 'InvalidSegmentQuery');
        throw err;
      });
    },

    /** Folds every segment's count rows into one (domain/segments/member-counts.ts); a retry resumes after the last segment folded. */
    async foldSegmentMemberCounts(): Promise<{ segments: number; rows: number }> {
      const ctx = Context.current();
      const resumed = ctx.info.heartbeatDetails as { after: string; segments: number; rows: number } | undefined;
      let { after, segments, rows } = resumed ?? { after: FIRST_ID, segments: 0, rows: 0 };
      for (;;) {
        const page = await foldMemberCountRows(orm.em.fork(), after, FOLD_PAGE);
        if (!page.last) return { segments, rows };
        segments += page.segments;
        rows += page.rows;
        after = page.last;
        ctx.heartbeat({ after, segments, rows });
      }
    },

    async ensureMessagingSegment(ref: SegmentRef): Promise<string> {
      const em = orm.em.fork();
      const segment = await loadSegment(em, ref);
      try {
        const id = await messaging().ensureSegment(segment);
        if (segment.messagingSegmentId !== id) {
          // A new (or recreated) segment over there holds none of what we sent before.
          await em.execute('delete from segment_synced_members where segment_id = ?', [segment.id]);
          segment.messagingSegmentId = id;
          await em.flush();
        }
        return id;
      } catch (err) {
        throw asFailure(err);
      }
    },

    /**
     * Sends the difference between the segment's members and what Messaging holds, removals
     * first, in batches of at most 1,000, walking customer ids in order. Each acknowledged batch
     * is recorded in segment_synced_members and its last id heartbeated, so a retried activity
     * resumes after the last acknowledged batch. A batch resent after a crash between
     * acknowledgement and record carries the same idempotency key (derived from its content), so
     * Messaging applies it once.
     */
    async syncSegmentMembers(ref: SegmentRef & { messagingSegmentId: string }): Promise<{ syncedCount: number }> {
      const em = orm.em.fork();
      await loadSegment(em, ref);
      const client = messaging();
      const ctx = Context.current();
      const resumed = ctx.info.heartbeatDetails as SyncCursor | undefined;
      const cursor: SyncCursor = resumed ?? { phase: 'remove', after: FIRST_ID, batches: 0 };
      const slot = syncSlot();
      let release: () => void;
      try {
        release = await heartbeating(Promise.race([slot, ctx.cancelled]), cursor);
      } catch (err) {
        void slot.then((granted) => granted()); // cancelled while waiting: hand the slot on when it comes
        throw err;
      }
      try {
        return await sync();
      } finally {
        release();
      }

      async function sync(): Promise<{ syncedCount: number }> {
        // Same run, same batch, same key: a resend is recognised. A later sync (another run) that
        // happens to send the same ids again gets a new key, so it is applied. What an add sends is
        // in the key too: a member changed between a lost answer and the resend is sent again, not
        // taken for the batch already applied.
        const send = async (body: string, ids: string, fingerprints = '') => {
          const key = createHash('sha256').update(`${ref.segmentId}|${run}|${cursor.phase}|${ids}|${fingerprints}`).digest('hex');
          try {
            await client.changeMembersJson(ref.messagingSegmentId, body, key);
          } catch (err) {
            // No answer (or a failing one): Messaging may have applied it. The batch is kept as it
            // was sent, so the retry sends it again with its key and records it, whatever the
            // segment's members did meanwhile (read again, the batch would differ, and a member
            // applied but left since would stay at Messaging unrecorded).
            if (!(err instanceof MessagingError && !err.retryable)) {
              const pending: PendingBatch = { phase: cursor.phase, messagingSegmentId: ref.messagingSegmentId, key, body, ids, fingerprints };
              await em.execute('update segments set sync_pending = ?::jsonb where id = ?', [JSON.stringify(pending), ref.segmentId]).catch(() => undefined);
            }
            throw asFailure(err);
          }
        };
        // The batch an earlier attempt sent without an answer goes first, as it was.
        const [{ sync_pending: pending } = { sync_pending: null }] = await em.execute<{ sync_pending: PendingBatch | null }[]>(
          'select sync_pending from segments where id = ?', [ref.segmentId]);
        if (pending) {
          if (pending.messagingSegmentId === ref.messagingSegmentId) {
            try {
              await client.changeMembersJson(ref.messagingSegmentId, pending.body, pending.key);
            } catch (err) {
              throw asFailure(err);
            }
            if (pending.phase === 'remove') {
              await executeBound(em, `delete from segment_synced_members where segment_id = $1 and customer_id = any(string_to_array($2, ',')::uuid[])`, [ref.segmentId, pending.ids]);
            } else {
              await executeBound(em, RECORD_RESENT, [ref.segmentId, ref.tenantId, pending.ids, pending.fingerprints]);
            }
          }
          await em.execute(`update segments set sync_pending = null where id = ? and sync_pending->>'key' = ?`, [ref.segmentId, pending.key]);
        }
        const run = ctx.info.workflowExecution?.runId ?? ctx.info.activityId;
        const advance = (lastId: string, sent: boolean) => {
          cursor.after = lastId;
          if (sent) cursor.batches++;
          ctx.heartbeat(cursor);
        };

        /**
         * A phase's batches, in id order from the cursor's position: each the rows of one range
         * (start, end] the cursor marks, at most SYNC_BATCH of them, read and diffed by PostgreSQL in
         * one statement that answers the batch as text (ids, fingerprints and the request's JSON), so
         * the worker parses no row. READ_AHEAD ranges are read at once, on their own connections. A
         * range still holding a full batch is read on from its last row (members added to it since
         * the cursor opened).
         */
        const quiet = <T>(p: Promise<T>) => {
          p.catch(() => undefined); // awaited later; not an unhandled rejection meanwhile
          return p;
        };
        type Read<B> = B & { last: string };
        const reader = <B extends { examined: number; last: string | null }>(table: string, lookup: (after: string, end: string) => Promise<B>) => {
          const boundaries = quiet(openBoundaries(orm, `select customer_id from ${table} where segment_id = ? and customer_id > ?::uuid order by customer_id`, [ref.segmentId, cursor.after]));
          const readRange = async (after: string, end: string): Promise<Read<B>[]> => {
            const batches: Read<B>[] = [];
            for (;;) {
              const batch = await lookup(after, end);
              if (batch.examined) batches.push(batch as Read<B>);
              if (batch.examined < SYNC_BATCH || batch.last === end) return batches;
              after = batch.last!;
            }
          };
          const ranges: Promise<Read<B>[]>[] = [];
          let start = cursor.after;
          // One at a time: the cursor's moves are ordered, and each range starts where the last ended.
          let marking: Promise<void> = Promise.resolve();
          const readAhead = () => {
            marking = marking.then(async () => {
              while (ranges.length < READ_AHEAD && start !== LAST_ID) {
                const end = await (await boundaries).next();
                ranges.push(quiet(readRange(start, end)));
                start = end;
              }
            });
            return quiet(marking);
          };
          let current: Read<B>[] = [];
          return {
            async next(): Promise<Read<B> | undefined> {
              while (!current.length) {
                await readAhead();
                const range = ranges.shift();
                if (!range) return undefined;
                void readAhead();
                current = await range;
              }
              return current.shift();
            },
            close: async () => {
              await Promise.allSettled([marking, ...ranges]);
              await (await boundaries).close();
            },
          };
        };
        // Removals first (REMOVES).
        if (cursor.phase === 'remove') {
          const held = reader('segment_synced_members', async (after, end) => {
            const [batch] = await executeBound<{ examined: number; last: string | null; ids: string | null; remove: string | null }>(em, REMOVES, [ref.segmentId, after, end]);
            return batch!;
          });
          try {
            for (;;) {
              const batch = await heartbeating(held.next(), cursor);
              if (!batch) break;
              if (batch.ids) {
                await send(`{"add":[],"remove":${batch.remove}}`, batch.ids);
                await executeBound(em, `delete from segment_synced_members where segment_id = $1 and customer_id = any(string_to_array($2, ',')::uuid[])`, [ref.segmentId, batch.ids]);
              }
              advance(batch.last, batch.ids != null);
            }
          } finally {
            await held.close().catch(() => undefined); // a dead connection's error must not hide the one that ended the loop
          }
          Object.assign(cursor, { phase: 'add', after: FIRST_ID });
        }

        // Additions (ADDS).
        type AddBatch = { examined: number; last: string | null; ids: string | null; fingerprints: string | null; changed: string | null; add: string | null };
        const members = reader('segment_members', async (after, end) => {
          const [batch] = await executeBound<AddBatch>(em, ADDS, [ref.segmentId, after, end, ref.tenantId]);
          return batch!;
        });
        // The segment is locked (key share) once per statement, not per row: a deletion waits for
        // this commit and its cascade removes these rows, or has committed and nothing is written.
        // Members Messaging held before are updated, the others inserted: the batch's read saw which
        // (no other sync of the segment runs; should a row appear meanwhile, the insert fails and
        // the retried activity reads the batch again).
        const record = async (ids: string, fingerprints: string, changed: string | null) => {
          const written = await executeBound<{ n: number }>(em, RECORD, [ref.segmentId, ref.tenantId, ids, fingerprints, changed ?? '']);
          if (!written[0]?.n) throw ApplicationFailure.nonRetryable(`segment ${ref.segmentId} no longer exists`, 'SegmentNotFound');
        };
        // Pipelined: the next batch is read, and the last acknowledged one recorded, while a batch
        // is posted. Posts stay one at a time, in id order. The cursor moves past a batch only once
        // it is recorded, so a batch acknowledged but not recorded is read again after a crash, with
        // the same ids and so the same key.
        let recorded: Promise<void> = Promise.resolve();
        let next = quiet(members.next());
        try {
          for (;;) {
            const batch = await heartbeating(next, cursor);
            if (!batch) break;
            next = quiet(members.next());
            const { ids, fingerprints, changed, add, last } = batch;
            if (ids) {
              await send(`{"add":${add},"remove":[]}`, ids, fingerprints!);
              await recorded;
              recorded = quiet(record(ids, fingerprints!, changed).then(() => advance(last, true)));
            } else {
              await recorded;
              advance(last, false);
            }
          }
        } finally {
          // What was acknowledged is recorded before the activity ends, however it ends.
          await Promise.allSettled([recorded, next]);
          await members.close().catch(() => undefined);
        }
        await recorded;
        const [{ n }] = (await em.execute<{ n: number }[]>('select count(*)::int as n from segment_synced_members where segment_id = ?', [ref.segmentId])) as [{ n: number }];
        await em.execute('update segments set last_synced_at = now(), updated_at = now() where id = ?', [ref.segmentId]);
        return { syncedCount: n };
      }
    },
  };
}

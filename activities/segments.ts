import { createHash } from 'node:crypto';
import { ApplicationFailure, Context } from '@temporalio/activity';
import type { EntityManager } from '@mikro-orm/postgresql';
import { Segment } from '../db/entities/index.js';
import { executeBound, LIVE_CUSTOMER } from '../db/sql.js';
import { evaluateMembership, type RefreshResult } from '../domain/segments/membership.js';
import { MessagingClient, MessagingError, type MessagingMember } from '../platform/messaging.js';
import type { ActivityDeps } from './index.js';

export interface SegmentRef {
  tenantId: string;
  segmentId: string;
}

const SYNC_BATCH = 1000;
// What Messaging holds of a member; a change of any of it is sent again.
const FINGERPRINT = `md5(concat_ws('|', c.email, c.phone_number, c.first_name, c.last_name, c.email_opt_in, c.sms_opt_in, c.push_opt_in))`;

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
 * A query's rows SYNC_BATCH at a time, through a cursor in a read-only transaction of its own. A
 * cursor is planned for its first rows, so it walks the ordered index; the same query re-run per
 * chunk after a large refresh was planned from statistics that had not seen the new members, and
 * every chunk sorted the whole rest of the segment.
 */
async function openCursor<T>(orm: ActivityDeps['orm'], sql: string, params: unknown[]) {
  const em = orm.em.fork();
  await em.begin({ readOnly: true });
  try {
    await em.execute(`declare sync_rows no scroll cursor for ${sql}`, params);
  } catch (err) {
    await em.rollback();
    throw err;
  }
  return {
    next: () => em.execute<T[]>(`fetch forward ${SYNC_BATCH} from sync_rows`),
    close: () => em.rollback(),
  };
}

/**
 * Syncs running at once in one worker process. Each holds a pooled connection for its cursor's
 * transaction for the whole sync, and uses up to three more at a time (two lookups, a record), out
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
      const FIRST = '00000000-0000-0000-0000-000000000000';
      const resumed = ctx.info.heartbeatDetails as SyncCursor | undefined;
      const cursor: SyncCursor = resumed ?? { phase: 'remove', after: FIRST, batches: 0 };
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
        // happens to send the same ids again gets a new key, so it is applied.
        const run = ctx.info.workflowExecution?.runId ?? ctx.info.activityId;
        // What an add sends is in the key too: a member changed between a lost answer and the resend
        // is sent again, not taken for the batch already applied.
        const send = async (ids: string[], add: MessagingMember[], fingerprints: string[] = []) => {
          const key = createHash('sha256').update(`${ref.segmentId}|${run}|${cursor.phase}|${ids.join(',')}|${fingerprints.join(',')}`).digest('hex');
          try {
            await client.changeMembers(ref.messagingSegmentId, { add, remove: cursor.phase === 'remove' ? ids : [] }, key);
          } catch (err) {
            throw asFailure(err);
          }
        };
        const advance = (lastId: string, sent: boolean) => {
          cursor.after = lastId;
          if (sent) cursor.batches++;
          ctx.heartbeat(cursor);
        };

        // Each phase walks one table's ids through a cursor, and looks up what it needs of each chunk
        // by those ids: every statement is an index walk or 1,000 key lookups, whatever the planner
        // believes about a segment that has just been filled.
        // Ids (and md5 fingerprints) travel as one comma-separated parameter, split in SQL: nothing in
        // them needs escaping, and escaping arrays of thousands was most of the worker's CPU.
        const lookups = <R>(sql: string, key: string, ids: string[]) => executeBound<R>(em, sql, [key, ids.join(',')]);

        // Removals: what Messaging holds of members who are no longer live members.
        if (cursor.phase === 'remove') {
          const held = await openCursor<{ customer_id: string }>(orm,
            'select customer_id from segment_synced_members where segment_id = ? and customer_id > ?::uuid order by customer_id',
            [ref.segmentId, cursor.after]);
          try {
            while (cursor.phase === 'remove') {
              const chunk = (await heartbeating(held.next(), cursor)).map((r) => r.customer_id);
              if (!chunk.length) {
                Object.assign(cursor, { phase: 'add', after: FIRST });
                break;
              }
              const kept = new Set((await lookups<{ customer_id: string }>(
                `select m.customer_id from segment_members m join customers c on c.id = m.customer_id
                  where m.segment_id = $1 and m.customer_id = any(string_to_array($2, ',')::uuid[]) and ${LIVE_CUSTOMER}`, ref.segmentId, chunk)).map((r) => r.customer_id));
              const gone = chunk.filter((id) => !kept.has(id));
              if (gone.length) {
                await send(gone, []);
                await lookups(`delete from segment_synced_members where segment_id = $1 and customer_id = any(string_to_array($2, ',')::uuid[])`, ref.segmentId, gone);
              }
              advance(chunk.at(-1)!, gone.length > 0);
            }
          } finally {
            await held.close().catch(() => undefined); // a dead connection's error must not hide the one that ended the loop
          }
        }

        // Additions: new members, and members whose fields changed since they were sent (an
        // opt-out, say).
        const members = await openCursor<{ customer_id: string }>(orm,
          'select customer_id from segment_members where segment_id = ? and customer_id > ?::uuid order by customer_id',
          [ref.segmentId, cursor.after]);
        const readChunk = async () => {
          const chunk = (await members.next()).map((r) => r.customer_id);
          if (!chunk.length) return undefined;
          const [live, synced] = await Promise.all([
            lookups<MessagingMember & { customer_id: string; fingerprint: string }>(
              `select c.id as customer_id, c.email, c.phone_number as "phoneNumber", c.first_name as "firstName", c.last_name as "lastName",
                      c.email_opt_in as "emailOptIn", c.sms_opt_in as "smsOptIn", c.push_opt_in as "pushOptIn", ${FINGERPRINT} as fingerprint
                 from segment_members m join customers c on c.tenant_id = m.tenant_id and c.id = m.customer_id
                where m.segment_id = $1 and m.customer_id = any(string_to_array($2, ',')::uuid[]) and ${LIVE_CUSTOMER} order by c.id`, ref.segmentId, chunk),
            lookups<{ customer_id: string; fingerprint: string }>(`select customer_id, fingerprint from segment_synced_members where segment_id = $1 and customer_id = any(string_to_array($2, ',')::uuid[])`, ref.segmentId, chunk),
          ]);
          const sent = new Map(synced.map((r) => [r.customer_id, r.fingerprint]));
          return { fresh: live.filter((m) => sent.get(m.customer_id) !== m.fingerprint), last: chunk.at(-1)! };
        };
        // The segment is locked (key share) once per statement, not per row: a deletion waits for
        // this commit and its cascade removes these rows, or has committed and nothing is written.
        const record = async (fresh: { customer_id: string; fingerprint: string }[]) => {
          const written = await executeBound<{ n: number }>(em,
            `with segment as (select id, tenant_id from segments where id = $1 and tenant_id = $2 for key share),
                  written as (
                    insert into segment_synced_members (segment_id, customer_id, tenant_id, fingerprint)
                    select segment.id, t.id, segment.tenant_id, t.fingerprint from segment, unnest(string_to_array($3, ',')::uuid[], string_to_array($4, ',')) as t(id, fingerprint)
                    on conflict (segment_id, customer_id) do update set fingerprint = excluded.fingerprint, synced_at = now())
             select (select count(*)::int from segment) as n`,
            [ref.segmentId, ref.tenantId, fresh.map((r) => r.customer_id).join(','), fresh.map((r) => r.fingerprint).join(',')],
          );
          if (!written[0]?.n) throw ApplicationFailure.nonRetryable(`segment ${ref.segmentId} no longer exists`, 'SegmentNotFound');
        };
        // Pipelined: the next batch is read, and the last acknowledged one recorded, while a batch
        // is posted. Posts stay one at a time, in id order. The cursor moves past a batch only once
        // it is recorded, so a batch acknowledged but not recorded is read again after a crash, with
        // the same ids and so the same key.
        const quiet = <T>(p: Promise<T>) => {
          p.catch(() => undefined); // awaited below; not an unhandled rejection while a post is out
          return p;
        };
        let recorded: Promise<void> = Promise.resolve();
        let next = quiet(readChunk());
        try {
          for (;;) {
            const chunk = await heartbeating(next, cursor);
            if (!chunk) break;
            next = quiet(readChunk());
            const { fresh } = chunk;
            if (fresh.length) {
              await send(fresh.map((r) => r.customer_id), fresh.map(({ customer_id, fingerprint: _f, ...m }) => ({ ...m, customerId: customer_id })), fresh.map((r) => r.fingerprint));
              await recorded;
              recorded = quiet(record(fresh).then(() => advance(chunk.last, true)));
            } else {
              await recorded;
              advance(chunk.last, false);
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

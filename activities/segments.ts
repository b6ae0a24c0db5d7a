import { createHash } from 'node:crypto';
import { ApplicationFailure, Context } from '@temporalio/activity';
import type { EntityManager } from '@mikro-orm/postgresql';
import { Segment } from '../db/entities/index.js';
import { LIVE_CUSTOMER, pgArray } from '../db/sql.js';
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
  /** Last customer id handled in this phase (sent and acknowledged, or found in sync). */
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

      // Same run, same batch, same key: a resend is recognised. A later sync (another run) that
      // happens to send the same ids again gets a new key, so it is applied.
      const run = ctx.info.workflowExecution?.runId ?? ctx.info.activityId;
      const send = async (ids: string[], add: MessagingMember[]) => {
        const key = createHash('sha256').update(`${ref.segmentId}|${run}|${cursor.phase}|${ids.join(',')}`).digest('hex');
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

      // Both phases walk the ids in chunks of SYNC_BATCH by key (index range scans, never a scan
      // of the whole segment per batch) and send what each chunk needs.
      while (cursor.phase === 'remove') {
        const chunk = await em.execute<{ customer_id: string; keep: boolean }[]>(
          `select s.customer_id,
                  exists (select 1 from segment_members m join customers c on c.id = m.customer_id
                           where m.segment_id = s.segment_id and m.customer_id = s.customer_id and ${LIVE_CUSTOMER}) as keep
             from segment_synced_members s
            where s.segment_id = ? and s.customer_id > ?::uuid
            order by s.customer_id limit ?`,
          [ref.segmentId, cursor.after, SYNC_BATCH],
        );
        if (!chunk.length) {
          Object.assign(cursor, { phase: 'add', after: FIRST });
          break;
        }
        const gone = chunk.filter((r) => !r.keep).map((r) => r.customer_id);
        if (gone.length) {
          await send(gone, []);
          await em.execute('delete from segment_synced_members where segment_id = ? and customer_id = any(?::uuid[])', [ref.segmentId, pgArray(gone)]);
        }
        advance(chunk.at(-1)!.customer_id, gone.length > 0);
      }
      // New members, and members whose fields changed since they were sent (an opt-out, say). A
      // chunk is the next SYNC_BATCH member ids; the members, their customers and what was sent of
      // them are each read as one index range of the chunk's ids, so a chunk costs its own size.
      // (Joined with only the cursor as bound, the planner merged everything before the cursor on
      // every chunk, and the sync grew with the square of the segment.)
      const readChunk = async (after: string) => {
        const [edge] = await em.execute<{ last: string }[]>(
          `select customer_id as last
             from (select customer_id from segment_members where segment_id = ? and customer_id > ?::uuid order by customer_id limit ?) m
            order by customer_id desc limit 1`,
          [ref.segmentId, after, SYNC_BATCH],
        );
        if (!edge) return undefined;
        const [members, synced] = await Promise.all([
          em.execute<(MessagingMember & { customer_id: string; fingerprint: string })[]>(
            `select c.id as customer_id, c.email, c.phone_number as "phoneNumber", c.first_name as "firstName", c.last_name as "lastName",
                    c.email_opt_in as "emailOptIn", c.sms_opt_in as "smsOptIn", c.push_opt_in as "pushOptIn", ${FINGERPRINT} as fingerprint
               from segment_members m
               join customers c on c.id = m.customer_id and c.id > ?::uuid and c.id <= ?::uuid
              where m.segment_id = ? and m.customer_id > ?::uuid and m.customer_id <= ?::uuid and ${LIVE_CUSTOMER}
              order by m.customer_id`,
            [after, edge.last, ref.segmentId, after, edge.last],
          ),
          em.execute<{ customer_id: string; fingerprint: string }[]>(
            'select customer_id, fingerprint from segment_synced_members where segment_id = ? and customer_id > ?::uuid and customer_id <= ?::uuid',
            [ref.segmentId, after, edge.last],
          ),
        ]);
        const sent = new Map(synced.map((s) => [s.customer_id, s.fingerprint]));
        return { fresh: members.filter((m) => sent.get(m.customer_id) !== m.fingerprint), last: edge.last };
      };
      const record = async (fresh: { customer_id: string; fingerprint: string }[]) => {
        await em.execute(
          `insert into segment_synced_members (segment_id, customer_id, tenant_id, fingerprint)
           select ?::uuid, t.id, ?, t.fingerprint from unnest(?::uuid[], ?::text[]) as t(id, fingerprint)
           on conflict (segment_id, customer_id) do update set fingerprint = excluded.fingerprint, synced_at = now()`,
          [ref.segmentId, ref.tenantId, pgArray(fresh.map((r) => r.customer_id)), pgArray(fresh.map((r) => r.fingerprint))],
        );
      };
      // Pipelined: the next chunk is read, and the last acknowledged batch recorded, while a batch
      // is posted. Posts stay one at a time, in id order. The cursor moves past a batch only once
      // it is recorded, so a batch acknowledged but not recorded is read again after a crash, with
      // the same ids and so the same key.
      const quiet = <T>(p: Promise<T>) => {
        p.catch(() => undefined); // awaited below; not an unhandled rejection while a post is out
        return p;
      };
      let recorded: Promise<void> = Promise.resolve();
      let next = quiet(readChunk(cursor.after));
      try {
        for (;;) {
          const chunk = await next;
          if (!chunk) break;
          next = quiet(readChunk(chunk.last));
          const { fresh } = chunk;
          if (fresh.length) {
            await send(fresh.map((r) => r.customer_id), fresh.map(({ customer_id, fingerprint: _f, ...m }) => ({ ...m, customerId: customer_id })));
            await recorded;
            recorded = quiet(record(fresh).then(() => advance(chunk.last, true)));
          } else {
            await recorded;
            advance(chunk.last, false);
          }
        }
      } finally {
        // What was acknowledged is recorded before the activity ends, however it ends.
        await recorded;
      }
      const [{ n }] = (await em.execute<{ n: number }[]>('select count(*)::int as n from segment_synced_members where segment_id = ?', [ref.segmentId])) as [{ n: number }];
      await em.execute('update segments set last_synced_at = now(), updated_at = now() where id = ?', [ref.segmentId]);
      return { syncedCount: n };
    },
  };
}

import { hostname } from 'node:os';
import { ApplicationFailure, Context } from '@temporalio/activity';
import type { EntityManager } from '@mikro-orm/postgresql';
import { DateTime } from 'luxon';
import type pg from 'pg';
import { Campaign, MessageTemplate } from '../db/entities/index.js';
import type { CampaignStatus, Channel } from '../db/entities/enums.js';
import { pgArray, TENANT } from '../db/sql.js';
import { audienceInsert } from '../domain/campaigns/audience.js';
import { recordInteractions, type InteractionInput } from '../domain/campaigns/interactions.js';
import { canTransition, transition, type CampaignAction } from '../domain/campaigns/state.js';
import { applyTracking, trackingKey, unsubscribeUrl } from '../domain/campaigns/tracking.js';
import { campaignVariables, promotedEventCancelled } from '../domain/promotions/sends.js';
import { compileTemplate, recipientVariables, type RecipientRow, type RenderedMessage } from '../domain/templates/render.js';
import { ChannelError, type OutboundMessage } from '../platform/channels/channel.js';
import { createChannelSenders } from '../platform/channels/index.js';
import { publicBaseUrl } from '../platform/config.js';
import { AppError } from '../platform/errors.js';
import { createSendRate, perSecondLimits } from '../platform/send-rate.js';
import type { ActivityDeps } from './index.js';

interface CampaignRef {
  tenantId: string;
  campaignId: string;
}

interface RunRef extends CampaignRef {
  runKey: string;
}

/**
 * The workflow's clock, as the activity goes on: recipients' hours are judged by the workflow's
 * time (which a time-skipping test server moves ahead of the wall clock), advancing in real time.
 */
function clockFrom(asOf: string | undefined): () => Date {
  const skew = asOf ? Math.max(0, Date.parse(asOf) - Date.now()) : 0;
  return () => new Date(Date.now() + skew);
}

export interface SliceResult {
  sent: number;
  failed: number;
  skipped: number;
  /** Deliveries of the run still without an outcome. */
  pending: number;
  /** Of those, how many may go now (the rest wait for their sendAt). */
  due: number;
  nextSendAt: string | null;
  /** The campaign's state as the slice ended (a RECURRING or TRIGGERED run stops unless ACTIVE). */
  campaignStatus: CampaignStatus;
}

// How long one sendDeliveries activity works before handing back to the workflow (which then
// starts the next): long enough that a million recipients take few activities, short enough that
// progress and history stay fine-grained.
const SLICE_MS = 60_000;
// Completed sends (but emails: see sendOne) are written this often, or sooner once a batch's worth
// is waiting: a worker killed mid-slice resends only what was in flight or finished within this
// window, with the same idempotency key, so the Messaging service drops the copies. Fewer, larger
// writes keep the database's work per message small (each is a transaction of several statements).
const FLUSH_MS = 1_000;

interface Claimed extends RecipientRow {
  delivery_id: string;
  attempts: number;
  channel: Channel;
  email_opt_in: boolean;
  sms_opt_in: boolean;
  push_opt_in: boolean;
  status: string;
  email_bounced_at: Date | null;
  auth_user_id: string | null;
}

/**
 * When the recipient's quiet hours end, if `at` falls inside them (in the first valid zone of
 * `zones`, else UTC); null outside them.
 */
export function quietUntil(quiet: { start: string; end: string }, zones: (string | null | undefined)[], at: Date): Date | null {
  const zone = zones.find((z) => z && DateTime.local().setZone(z).isValid) ?? 'UTC';
  const local = DateTime.fromJSDate(at, { zone });
  const minutes = (hhmm: string) => Number(hhmm.slice(0, 2)) * 60 + Number(hhmm.slice(3, 5));
  const [start, end, now] = [minutes(quiet.start), minutes(quiet.end), local.hour * 60 + local.minute];
  const inside = start <= end ? now >= start && now < end : now >= start || now < end;
  if (!inside) return null;
  let until = local.set({ hour: Math.floor(end / 60), minute: end % 60, second: 0, millisecond: 0 });
  if (until <= local) until = until.plus({ days: 1 });
  return until.toJSDate();
}

/** A claimed delivery's outcome, waiting to be written. */
/**
 * What a completion writes. An email the SMTP server accepted is DELIVERED: SMTP has no later
 * delivery report, and the spec counts an email delivered unless it bounced (a bounce reported
 * later through the Messaging webhook still moves it to BOUNCED).
 */
const writtenStatus = (d: Done): string =>
  d.status === 'DEFERRED' || d.status === 'WAIT' ? 'PENDING' : d.status === 'SENT' && d.row.channel === 'EMAIL' ? 'DELIVERED' : d.status;

interface Done {
  id: string;
  /**
   * DEFERRED: a temporary failure for this recipient; the row goes back to PENDING for later.
   * WAIT: the recipient's quiet hours began since the snapshot; back to PENDING until `until`.
   */
  status: 'SENT' | 'FAILED' | 'SKIPPED' | 'DEFERRED' | 'WAIT';
  until?: Date;
  providerMessageId?: string;
  error?: string;
  skipReason?: string;
  row: Claimed;
  at: Date;
}

/** Why a claimed delivery may not go after all: consent withdrawn or address gone since the snapshot. */
function stillBlocked(r: Claimed): 'NO_CONSENT' | 'NO_ADDRESS' | 'BOUNCED' | 'INACTIVE' | null {
  if (r.status === 'MERGED' || r.status === 'DELETED') return 'INACTIVE';
  switch (r.channel) {
    case 'EMAIL':
      if (!r.email) return 'NO_ADDRESS';
      if (r.email_bounced_at) return 'BOUNCED';
      return r.email_opt_in ? null : 'NO_CONSENT';
    case 'SMS':
    case 'WHATSAPP':
      if (!r.phoneNumber) return 'NO_ADDRESS';
      return r.sms_opt_in ? null : 'NO_CONSENT';
    case 'PUSH':
      return r.push_opt_in ? null : 'NO_CONSENT';
    case 'IN_APP':
      return r.auth_user_id ? null : 'NO_ADDRESS';
    default:
      return 'NO_ADDRESS';
  }
}

/**
 * A pool of `limit` concurrent tasks; `stop()` lets those started finish and starts no more. A task
 * that throws stops the others the same way, and the error is thrown once every lane has stopped:
 * rows still being sent are never put back while a lane sends them.
 */
export async function runPool<T>(items: T[], limit: number, stopped: () => boolean, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failed: { err: unknown } | undefined;
  const lane = async () => {
    while (!stopped() && !failed && next < items.length) {
      try {
        await work(items[next++]!);
      } catch (err) {
        failed ??= { err };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
  if (failed) throw failed.err;
}

export function campaignActivities({ orm, config, log }: ActivityDeps) {
  const channels = createChannelSenders(config);
  const rate = createSendRate(orm.em.getConnection().getNativeClient() as unknown as pg.Pool, perSecondLimits(config));
  const key = trackingKey(config);
  const baseUrl = publicBaseUrl(config);

  const loadCampaign = async (em: EntityManager, ref: CampaignRef) => {
    const campaign = await em.findOne(Campaign, { id: ref.campaignId, tenantId: ref.tenantId });
    // Deleted while a run was queued: nothing to send, and retrying will not change that.
    if (!campaign) throw ApplicationFailure.nonRetryable(`campaign ${ref.campaignId} no longer exists`, 'CampaignNotFound');
    return campaign;
  };

  return {
    /**
     * Moves the campaign through the state machine (domain/campaigns/state.ts). `ifAlready`: the
     * state that counts as done already. `quiet`: answer the state found instead of failing.
     */
    async transitionCampaign(input: CampaignRef & { action: CampaignAction; ifAlready?: CampaignStatus; quiet?: boolean }): Promise<CampaignStatus> {
      const em = orm.em.fork();
      try {
        return await transition(em, input.tenantId, input.campaignId, input.action);
      } catch (err) {
        if (!(err instanceof AppError)) throw err;
        const status = (err.details?.currentStatus as CampaignStatus | undefined) ?? null;
        if (status && (status === input.ifAlready || input.quiet)) return status;
        throw ApplicationFailure.nonRetryable(err.message, err.code, err.details);
      }
    },

    /**
     * The audience at this moment, as delivery rows: one per member and channel, PENDING, or SKIPPED
     * with the reason. One set-based statement (no customer is loaded into the worker); a retry
     * inserts nothing twice (the unique key of campaign, run, customer, channel).
     */
    async snapshotAudience(input: RunRef & { customerId?: string; asOf?: string }): Promise<{ targetCount: number; pending: number; skipped: number }> {
      const em = orm.em.fork();
      const campaign = await loadCampaign(em, input);
      const audience = audienceInsert(campaign, input.runKey, input.customerId ?? null, clockFrom(input.asOf)());
      await em.execute(audience.sql, audience.params);
      const [row] = await em.execute<{ target: number; pending: number; skipped: number }[]>(
        `select count(distinct customer_id)::int as target,
                count(*) filter (where status = 'PENDING')::int as pending,
                count(*) filter (where status = 'SKIPPED')::int as skipped
           from campaign_deliveries where tenant_id = ${TENANT} and campaign_id = ? and run_key = ?`,
        [input.tenantId, input.campaignId, input.runKey],
      );
      log.info({ campaignId: input.campaignId, runKey: input.runKey, ...row }, 'campaign audience snapshot');
      return { targetCount: row!.target, pending: row!.pending, skipped: row!.skipped };
    },

    /**
     * Sends the run's due deliveries for up to SLICE_MS. Each batch is claimed (PENDING → SENDING,
     * naming this activity) before anything is sent, and completed after; rows a dead attempt left
     * SENDING are taken back first, so a killed worker loses no delivery. Cancellation (pause,
     * cancel) stops new sends, lets those in flight finish and puts the rest back to PENDING.
     * `templateIds`: the template per channel, given by the caller (a journey SEND step) instead of
     * the campaign's.
     */
    async sendDeliveries(input: RunRef & { asOf?: string; ownsState?: boolean; templateIds?: Partial<Record<Channel, string>> }): Promise<SliceResult> {
      const ctx = Context.current();
      const now = clockFrom(input.asOf);
      const em = orm.em.fork();
      const campaign = await loadCampaign(em, input);
      // Names the attempt and the worker process holding the rows, for whoever looks at them.
      const claim = `${ctx.info.workflowExecution?.workflowId ?? input.campaignId}/${ctx.info.activityId}#${ctx.info.attempt}@${hostname()}:${process.pid}`;
      const variables = await campaignVariables(em, campaign.tenantId, campaign.id);
      const templates = new Map<Channel, ReturnType<typeof compileTemplate>>();
      const templateFor = async (channel: Channel) => {
        let t = templates.get(channel);
        if (!t) {
          // A journey's SEND step names its own template; a campaign's come from the campaign.
          const id = input.templateIds ? input.templateIds[channel] : channel === 'EMAIL' ? campaign.emailTemplateId : campaign.smsTemplateId;
          const row = id ? await em.findOne(MessageTemplate, { id, tenantId: campaign.tenantId }) : null;
          if (!row) throw new ChannelError(`no ${channel === 'EMAIL' ? 'email' : 'text'} template for ${channel}`, false);
          t = compileTemplate({ channel, subject: row.subject ?? null, body: row.body, textBody: row.textBody ?? null });
          templates.set(channel, t);
        }
        return t;
      };

      const result = { sent: 0, failed: 0, skipped: 0 };
      let cancelled = false;
      ctx.cancellationSignal.addEventListener('abort', () => (cancelled = true), { once: true });
      const heartbeat = setInterval(() => ctx.heartbeat(result), 1_000);
      const started = Date.now();
      let retryLater: Error | undefined;
      // The claim lease (CAMPAIGN_CLAIM_LEASE_MS): every row this attempt holds has been claimed or
      // renewed since `renewedAt` (on this clock, taken before the statement), and another attempt
      // takes a row back only a lease after that. A send starts only while it can end before then.
      const lease = config.CAMPAIGN_CLAIM_LEASE_MS;
      const sendWindow = lease - Math.max(config.SMTP_TIMEOUT_MS, config.MESSAGING_TIMEOUT_MS) - 5_000;
      let renewedAt = Date.now();
      let renewing = false;
      const renew = async () => {
        if (renewing) return;
        renewing = true;
        const at = Date.now();
        try {
          // Rows a completion write holds are skipped (they are leaving SENDING), so the two never deadlock.
          await em.execute(
            `update campaign_deliveries set updated_at = now()
              where id in (select id from campaign_deliveries
                            where campaign_id = ? and run_key = ? and tenant_id = ? and status = 'SENDING' and claimed_by = ?
                            for update skip locked)`,
            [input.campaignId, input.runKey, input.tenantId, claim],
          );
          renewedAt = at;
        } catch (err) {
          log.warn({ campaignId: input.campaignId, err }, 'campaign: the claim lease was not renewed');
        } finally {
          renewing = false;
        }
      };
      const renewer = setInterval(() => void renew(), Math.min(5_000, lease / 6));
      // A RECURRING or TRIGGERED campaign paused or cancelled while this run was starting.
      const halted = input.ownsState === false && campaign.status !== 'ACTIVE';

      // Completions, written in small groups as they come (EMAIL's at once: see sendOne).
      let done: Done[] = [];
      // One write at a time: the timer's and the batch's flushes queue behind each other, and one
      // that failed (its batch put back) does not stop the next.
      let flushing = Promise.resolve();
      const flush = () => (flushing = flushing.catch(() => undefined).then(write));
      const write = async () => {
        if (!done.length) return;
        const batch = done;
        done = [];
        try {
          await em.transactional(async (tx) => {
            // Locked in id order first, as receipts lock them: the two wait for each other rather
            // than deadlock (the UPDATE's own order is whatever its plan gives).
            await tx.execute(`select 1 from campaign_deliveries where tenant_id = ${TENANT} and id = any(?::uuid[]) order by id for no key update`,
              [campaign.tenantId, pgArray(batch.map((d) => d.id))]);
            // A receipt may have moved the row on already (DELIVERED before this write): the send's
            // time and id are still recorded, its status kept.
            const written = await tx.execute<{ id: string; delivered: boolean }[]>(
              `update campaign_deliveries d
                  set status = case when d.status = 'SENDING' then t.status else d.status end,
                      provider_message_id = coalesce(d.provider_message_id, t.provider),
                      error = case when d.status = 'SENDING' then t.error else d.error end,
                      skip_reason = case when d.status = 'SENDING' then t.reason else d.skip_reason end,
                      sent_at = coalesce(d.sent_at, case when t.status in ('SENT', 'DELIVERED') then t.at end),
                      delivered_at = case when d.status = 'SENDING' and t.status = 'DELIVERED' then t.at else d.delivered_at end,
                      claimed_by = null, updated_at = now()
                 from unnest(?::uuid[], ?::text[], ?::text[], ?::text[], ?::text[], ?::timestamptz[]) as t(id, status, provider, error, reason, at)
                where d.tenant_id = ${TENANT} and d.id = t.id and d.id = any(?::uuid[])
                  and (d.status = 'SENDING' or (t.status in ('SENT', 'DELIVERED') and d.status in ('DELIVERED', 'BOUNCED', 'FAILED')))
               returning d.id, (d.status = 'DELIVERED' and d.delivered_at = t.at) as delivered`,
              [
                pgArray(batch.map((d) => d.id)), pgArray(batch.map(writtenStatus)),
                pgArray(batch.map((d) => d.providerMessageId ?? null)), pgArray(batch.map((d) => d.error ?? null)),
                pgArray(batch.map((d) => d.skipReason ?? null)), pgArray(batch.map((d) => d.at.toISOString())),
                // The ids again, as a condition on the key: joined only through unnest, the rows were
                // found by a scan of the tenant's deliveries in those statuses.
                campaign.tenantId, pgArray(batch.map((d) => d.id)),
              ],
            );
            const deferred = batch.filter((d) => d.status === 'DEFERRED');
            if (deferred.length) {
              // Later, with growing backoff; for good after CAMPAIGN_MAX_ATTEMPTS.
              await tx.execute(
                `update campaign_deliveries d
                    set status = case when d.attempts >= ? then 'FAILED' else 'PENDING' end,
                        send_at = t.at + least(interval '1 hour', interval '30 seconds' * power(2, greatest(d.attempts - 1, 0)))
                   from unnest(?::uuid[], ?::timestamptz[]) as t(id, at)
                  where d.tenant_id = ? and d.id = t.id and d.status = 'PENDING'`,
                [config.CAMPAIGN_MAX_ATTEMPTS, pgArray(deferred.map((d) => d.id)), pgArray(deferred.map((d) => d.at.toISOString())), campaign.tenantId],
              );
            }
            const waiting = batch.filter((d) => d.status === 'WAIT');
            if (waiting.length) {
              // Not a try: the claim's count is given back.
              await tx.execute(
                `update campaign_deliveries d set send_at = t.until, attempts = greatest(d.attempts - 1, 0)
                   from unnest(?::uuid[], ?::timestamptz[]) as t(id, until)
                  where d.tenant_id = ? and d.id = t.id and d.status = 'PENDING'`,
                [pgArray(waiting.map((d) => d.id)), pgArray(waiting.map((d) => d.until!.toISOString())), campaign.tenantId],
              );
            }
            // Of the rows this write recorded (one a cancel or a receipt took meanwhile is not), and
            // DELIVERED only where the delivery is this write's (not a receipt's before it).
            const recorded = new Map(written.map((w) => [w.id, w.delivered]));
            const sent: InteractionInput[] = batch.filter((d) => d.status === 'SENT' && recorded.has(d.id)).flatMap((d) => {
              const interaction = {
                tenantId: campaign.tenantId, campaignId: campaign.id, customerId: d.row.id, deliveryId: d.id, channel: d.row.channel,
                occurredAt: d.at, metadata: { providerMessageId: d.providerMessageId, runKey: input.runKey },
              };
              return recorded.get(d.id)
                ? [{ ...interaction, type: 'SENT', key: `sent:${d.id}` }, { ...interaction, type: 'DELIVERED', key: `delivered:${d.id}` }]
                : [{ ...interaction, type: 'SENT', key: `sent:${d.id}` }];
            });
            if (sent.length) await recordInteractions(tx, sent);
          });
        } catch (err) {
          // Nothing of the batch was written: it goes again with the next write (or this attempt's
          // retry takes its rows back, still SENDING).
          done = batch.concat(done);
          throw err;
        }
        for (const d of batch) if (d.status !== 'DEFERRED' && d.status !== 'WAIT') result[d.status === 'SENT' ? 'sent' : d.status === 'FAILED' ? 'failed' : 'skipped']++;
      };
      const flusher = setInterval(() => void flush().catch((err) => (retryLater ??= err as Error)), FLUSH_MS);
      // Retryable failures in a row across recipients: the channel itself is down.
      let failingInARow = 0;

      const sendOne = async (row: Claimed) => {
        const blocked = stillBlocked(row);
        if (blocked) {
          done.push({ id: row.delivery_id, status: 'SKIPPED', skipReason: blocked, row, at: now() });
          return;
        }
        // The snapshot placed each send outside quiet hours; a long campaign may still reach a
        // recipient whose quiet hours have begun since.
        const until = campaign.quietHours && quietUntil(campaign.quietHours, [row.clubTimezone, campaign.timezone], now());
        if (until) {
          done.push({ id: row.delivery_id, status: 'WAIT', until, row, at: now() });
          return;
        }
        let message: OutboundMessage;
        // Loaded outside the render's catch: a database that did not answer is retried, not taken
        // for a template that cannot render (a missing template is a ChannelError, caught there).
        let template: Awaited<ReturnType<typeof templateFor>>;
        try {
          template = await templateFor(row.channel);
        } catch (err) {
          if (!(err instanceof ChannelError)) throw err;
          done.push({ id: row.delivery_id, status: 'FAILED', error: `rendering failed: ${err.message}`, row, at: now() });
          return;
        }
        try {
          const unsubscribe = unsubscribeUrl({ baseUrl, key, deliveryId: row.delivery_id });
          // Each render may take up to its limit on this thread: other activities' heartbeats and
          // connections get the event loop in between.
          await new Promise<void>((resume) => setImmediate(resume));
          const rendered: RenderedMessage = await template.render(recipientVariables(row, unsubscribe, variables));
          message = {
            deliveryId: row.delivery_id, tenantId: campaign.tenantId, campaignId: campaign.id, channel: row.channel,
            to: { customerId: row.id, email: row.email, phoneNumber: row.phoneNumber },
            content: row.channel === 'EMAIL'
              ? { ...rendered, body: applyTracking(rendered.body, { baseUrl, key, deliveryId: row.delivery_id }) }
              : rendered,
            unsubscribeUrl: unsubscribe,
          };
        } catch (err) {
          done.push({ id: row.delivery_id, status: 'FAILED', error: `rendering failed: ${(err as Error).message}`, row, at: now() });
          return;
        }
        await rate.take(row.channel, ctx.cancellationSignal).catch(() => undefined);
        if (cancelled) return; // still SENDING: put back below
        if (Date.now() - renewedAt > sendWindow) {
          // Another attempt may take this row back before the send could end: it is left to that one.
          retryLater ??= new Error('the claim on these deliveries could not be renewed in time');
          return;
        }
        try {
          const receipt = await channels.forChannel(row.channel).send(message);
          failingInARow = 0;
          done.push({ id: row.delivery_id, status: 'SENT', providerMessageId: receipt.providerMessageId, row, at: now() });
          // SMTP has no idempotency key: an email is recorded as sent at once, so a worker killed
          // now resends only what was in flight. The Messaging channel dedupes by key; its
          // completions are written in groups.
          if (row.channel === 'EMAIL') await flush().catch((err) => (retryLater ??= err as Error));
        } catch (err) {
          if (err instanceof ChannelError && !err.retryable) {
            done.push({ id: row.delivery_id, status: 'FAILED', error: err.message, row, at: now() });
            return;
          }
          // A temporary failure for this recipient (a full mailbox, a 5xx for one number): later.
          done.push({ id: row.delivery_id, status: 'DEFERRED', error: (err as Error).message, row, at: now() });
          // Every lane failing: the channel is down. Stop; the activity's retry (with backoff) goes on.
          if (++failingInARow >= Math.max(4, config.CAMPAIGN_SEND_CONCURRENCY)) retryLater ??= err as Error;
        }
      };

      // Claims the next batch: first the rows a dead attempt left SENDING, then due PENDING rows in id
      // order from where the last batch ended, so each claim reads one index range of a batch's size
      // instead of every row still waiting (which made a million-recipient run quadratic). Once the
      // end is reached the scan starts over once, for rows passed over (not yet due, or locked).
      let takingBack = true;
      let after: string | null = null;
      // A promotion's send (its `event` variables) is checked before each batch goes out:
      // cancelled since, nothing more of it goes out.
      const promoted = 'event' in variables;
      let eventCancelled = false;
      const claimNext = async (): Promise<Claimed[]> => {
        for (;;) {
          const which = takingBack
            ? `status = 'SENDING' and claimed_by is distinct from ? and updated_at < now() - ?::interval`
            : `status = 'PENDING' and id > coalesce(?::uuid, '00000000-0000-0000-0000-000000000000') and (send_at is null or send_at <= ?::timestamptz)`;
          const rows = await em.execute<Claimed[]>(
            `with claimed as (
               update campaign_deliveries d set status = 'SENDING', claimed_by = ?, attempts = attempts + 1, updated_at = now()
                where d.id in (
                  select id from campaign_deliveries
                   where campaign_id = ? and run_key = ? and tenant_id = ? and ${which}
                   order by id limit ? for update skip locked)
                returning d.id, d.channel, d.customer_id, d.attempts)
             select cl.id as delivery_id, cl.channel, cl.attempts, c.id, c.email, c.phone_number as "phoneNumber", c.first_name as "firstName",
                    c.last_name as "lastName", c.membership_tier as "membershipTier", c.membership_status as "membershipStatus",
                    c.lifecycle_stage as "lifecycleStage", c.handicap, c.home_club_id as "homeClubId", k.name as "clubName",
                    k.timezone as "clubTimezone", c.email_opt_in, c.sms_opt_in, c.push_opt_in, c.status, c.email_bounced_at, c.auth_user_id
               from claimed cl join customers c on c.tenant_id = ${TENANT} and c.id = cl.customer_id
               left join clubs k on k.tenant_id = c.tenant_id and k.id = c.home_club_id
              order by cl.id`,
            [claim, input.campaignId, input.runKey, input.tenantId, ...(takingBack ? [claim, `${lease} milliseconds`] : [after, now().toISOString()]), config.CAMPAIGN_BATCH_SIZE, input.tenantId],
          );
          if (rows.length) {
            if (!takingBack) after = rows.at(-1)!.delivery_id;
            return rows;
          }
          if (takingBack) takingBack = false;
          else if (after === null) return [];
          else after = null;
        }
      };
      const going = () => !halted && !cancelled && !eventCancelled && !retryLater && Date.now() - started < SLICE_MS;
      // The next batch is claimed while this one is sent, so the senders never wait for the database.
      let next: Promise<Claimed[]> | undefined;
      try {
        if (going()) next = claimNext();
        while (going()) {
          const rows = await next!;
          next = undefined;
          if (!rows.length) break;
          if (going()) next = claimNext();
          if (campaign.frequencyCap) {
            // What this attempt sent is written before the cap counts it: a customer's message on
            // another channel in an earlier batch, still waiting for its group write, counts.
            await flush().catch((err) => (retryLater ??= err as Error));
            if (retryLater) break; // the batch stays SENDING under this attempt's name, taken back by its retry
          }
          if (promoted && await promotedEventCancelled(em, campaign.tenantId, campaign.id)) {
            eventCancelled = true;
            break; // the batch is put back below, and the run marks it CANCELLED
          }
          await capFrequency(em, campaign, rows, done, now());
          const capped = new Set(done.map((d) => d.id));
          const sendable = rows.filter((r) => !capped.has(r.delivery_id));
          await runPool(sendable, config.CAMPAIGN_SEND_CONCURRENCY, () => cancelled || !!retryLater, sendOne);
          if (done.length >= config.CAMPAIGN_BATCH_SIZE) void flush().catch((err) => (retryLater ??= err as Error));
        }
      } finally {
        clearInterval(heartbeat);
        clearInterval(flusher);
        clearInterval(renewer);
        // A batch claimed but not started stays SENDING under this attempt's name: the next slice
        // takes it back first (a cancelled run's is put back below).
        await next?.catch(() => undefined);
        await flush().catch((err) => (retryLater ??= err as Error));
        if (eventCancelled) {
          // The campaign is cancelled as a user's cancel would: its run sees CANCELLED below and
          // marks what was not sent.
          await transition(em, campaign.tenantId, campaign.id, 'cancel').catch((err) => {
            if (!(err instanceof AppError)) throw err; // cancelled or completed already
          });
          log.info({ campaignId: campaign.id }, 'campaign cancelled: its promoted event was cancelled');
        }
        // What this attempt claimed but did not send goes back to the queue at once, for the next
        // slice (or the run's end) rather than a lease later: only its own rows, and none it sent
        // whose completion is still unwritten. Not a try: the claim's count is given back.
        await em.execute(
          `update campaign_deliveries set status = 'PENDING', claimed_by = null, attempts = greatest(attempts - 1, 0), updated_at = now()
            where campaign_id = ? and run_key = ? and tenant_id = ? and status = 'SENDING' and claimed_by = ? and id <> all(?::uuid[])`,
          [input.campaignId, input.runKey, input.tenantId, claim, pgArray(done.map((d) => d.id))],
        ).catch((err) => {
          if (!retryLater && !cancelled) throw err;
        });
      }
      if (retryLater && !cancelled) throw retryLater;
      // Rows another attempt holds (one that died, or lost touch with Temporal but still sends) are
      // due once their lease runs out: the run sleeps until then rather than asking again at once.
      const [left] = await em.execute<{ pending: number; due: number; next: Date | null; held_ms: number | null; status: CampaignStatus }[]>(
        `select count(*)::int as pending,
                count(*) filter (where (status = 'PENDING' and (send_at is null or send_at <= ?::timestamptz))
                                    or (status = 'SENDING' and updated_at < now() - ?::interval))::int as due,
                min(send_at) filter (where status = 'PENDING' and send_at > ?::timestamptz) as next,
                extract(epoch from min(updated_at) filter (where status = 'SENDING') + ?::interval - now()) * 1000 as held_ms,
                (select status from campaigns where tenant_id = ${TENANT} and id = ?) as status
           from campaign_deliveries where campaign_id = ? and run_key = ? and tenant_id = ${TENANT} and status in ('PENDING', 'SENDING')`,
        [now().toISOString(), `${lease} milliseconds`, now().toISOString(), `${lease} milliseconds`, input.tenantId, input.campaignId, input.campaignId, input.runKey, input.tenantId],
      );
      const taken = left!.held_ms === null ? null : now().getTime() + Math.max(0, Number(left!.held_ms));
      const wakes = [left!.next ? new Date(left!.next).getTime() : null, taken].filter((t): t is number => t !== null);
      return {
        ...result, pending: left!.pending, due: left!.due, nextSendAt: wakes.length ? new Date(Math.min(...wakes)).toISOString() : null, campaignStatus: left!.status,
      };
    },

    /** The run's end: a cancelled run's unsent deliveries become CANCELLED; a ONE_TIME campaign completes. */
    async finishRun(input: RunRef & { outcome: 'completed' | 'cancelled'; ownsState: boolean }): Promise<void> {
      const em = orm.em.fork();
      if (input.outcome === 'cancelled') {
        await em.execute(
          `update campaign_deliveries set status = 'CANCELLED', claimed_by = null, updated_at = now()
            where campaign_id = ? and run_key = ? and tenant_id = ? and status in ('PENDING', 'SENDING')`,
          [input.campaignId, input.runKey, input.tenantId],
        );
        return;
      }
      if (!input.ownsState) return;
      const [row] = await em.execute<{ status: CampaignStatus }[]>('select status from campaigns where tenant_id = ? and id = ?', [input.tenantId, input.campaignId]);
      if (row && canTransition(row.status, 'complete')) await transition(em, input.tenantId, input.campaignId, 'complete');
    },
  };
}

/**
 * Frequency cap: a customer who already got `frequencyCap` campaign messages in the last 24 hours
 * (any campaign, any channel) is skipped. Counted per batch in one statement, once the run's
 * earlier sends are written. Two campaigns sending to one customer at the same moment each count
 * the other's messages only once they are written.
 */
async function capFrequency(em: EntityManager, campaign: Campaign, rows: Claimed[], done: Done[], now: Date): Promise<void> {
  if (!campaign.frequencyCap) return;
  const counts = await em.execute<{ customer_id: string; n: number }[]>(
    `select customer_id, count(*)::int as n from campaign_deliveries
      where tenant_id = ${TENANT} and customer_id = any(?::uuid[]) and sent_at > ?::timestamptz - interval '24 hours'
      group by customer_id`,
    [campaign.tenantId, pgArray([...new Set(rows.map((r) => r.id))]), now.toISOString()],
  );
  const used = new Map(counts.map((c) => [c.customer_id, c.n]));
  for (const r of rows) {
    const n = used.get(r.id) ?? 0;
    if (n >= campaign.frequencyCap) done.push({ id: r.delivery_id, status: 'SKIPPED', skipReason: 'FREQUENCY_CAP', row: r, at: now });
    else used.set(r.id, n + 1);
  }
}

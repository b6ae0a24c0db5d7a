import { WorkflowExecutionAlreadyStartedError, type Client } from '@temporalio/client';
import { WorkflowNotFoundError } from '@temporalio/common';
import pg from 'pg';
import type { ActivityDeps } from '../activities/index.js';
import { startTriggeredRun } from '../domain/campaigns/workflows.js';
import { CAMPAIGN_TRIGGER, type CampaignTrigger } from '../domain/campaigns/triggers.js';
import { JOURNEY_ENROLL, JOURNEY_SIGNAL, type JourneySignalPayload } from '../domain/journeys/outbox.js';
import { PROMOTION_SIGNAL, type PromotionSignalPayload } from '../domain/promotions/outbox.js';
import { SOCIAL_TOKEN_REFRESH, startTokenRefresh, type TokenRefreshPayload } from '../domain/social/workflows.js';
import { CustomerId, JourneyId, TenantId } from '../platform/search-attributes.js';
import { createTemporalClient, signalWithStartAgainIfClosed } from '../platform/temporal.js';
import type { JourneyEnrollmentInput, JourneyEvent } from '../workflows/journey.js';

const BATCH = 100;
/** A failed row waits 2^attempts seconds (at most this long) before it is tried again. */
const MAX_BACKOFF_SECONDS = 300;

export interface OutboxDispatcher {
  stop(): Promise<void>;
}

interface Row {
  id: string;
  tenant_id: string;
  kind: string;
  key: string;
  payload: unknown;
}

export interface JourneyEnrollPayload {
  workflowId: string;
  input: JourneyEnrollmentInput;
  event?: JourneyEvent;
}

/**
 * Hands one committed reaction to Temporal. Repeats are harmless: a workflow id that already ran
 * (or runs) is not started twice, and a signal to an enrolment that has finished is dropped.
 */
export async function dispatchRow(client: Client, taskQueue: string, row: Row, startPending: (enrollmentId: string) => Promise<boolean> = async () => false): Promise<void> {
  switch (row.kind) {
    case CAMPAIGN_TRIGGER: {
      const p = row.payload as CampaignTrigger;
      try {
        await startTriggeredRun(client, taskQueue, { tenantId: row.tenant_id, campaignId: p.campaignId, customerId: p.customerId, eventKey: p.activityId });
      } catch (err) {
        if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
      }
      return;
    }
    case JOURNEY_ENROLL: {
      const p = row.payload as JourneyEnrollPayload;
      // The first signal is the event that enrolled the customer, or (API, segment entry) a
      // synthetic `enrolled` one; a second trigger for the same run arrives as a JOURNEY_SIGNAL.
      const event: JourneyEvent = p.event ?? { type: 'enrolled', activityId: p.input.enrollmentId, occurredAt: new Date().toISOString() };
      try {
        // Asked again if the run closed under the signal: the second call answers "already started".
        await signalWithStartAgainIfClosed(() =>
          client.workflow.signalWithStart('journeyEnrollmentWorkflow', {
            workflowId: p.workflowId,
            taskQueue,
            args: [p.input],
            signal: 'event',
            signalArgs: [event],
            // A finished enrolment is never started again.
            workflowIdReusePolicy: 'REJECT_DUPLICATE',
            typedSearchAttributes: [
              { key: TenantId, value: p.input.tenantId },
              { key: JourneyId, value: p.input.journeyId },
              { key: CustomerId, value: p.input.customerId },
            ],
          }),
        );
      } catch (err) {
        if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
      }
      return;
    }
    case JOURNEY_SIGNAL: {
      const p = row.payload as JourneySignalPayload;
      try {
        const handle = client.workflow.getHandle(p.workflowId);
        await (p.arg === undefined ? handle.signal(p.signal) : handle.signal(p.signal, p.arg));
      } catch (err) {
        if (!(err instanceof WorkflowNotFoundError)) throw err;
        // Not started yet (its JOURNEY_ENROLL row waits, or another dispatcher holds it): the
        // signal must not overtake the start, so it waits too. Otherwise the run has finished:
        // nothing left to tell.
        if (await startPending(row.key.split(':')[0]!)) throw new Error(`workflow ${p.workflowId} is not started yet`, { cause: err });
      }
      return;
    }
    case PROMOTION_SIGNAL: {
      // Tells a running promotion workflow to re-read its plan, or starts it (again): one that has
      // ended for good reads that it has nothing to do and ends at once.
      const p = row.payload as PromotionSignalPayload;
      await signalWithStartAgainIfClosed(() =>
        client.workflow.signalWithStart('eventPromotionWorkflow', {
          workflowId: p.workflowId,
          taskQueue,
          args: [p.input],
          signal: 'planChanged',
          typedSearchAttributes: [{ key: TenantId, value: p.input.tenantId }],
        }),
      );
      return;
    }
    case SOCIAL_TOKEN_REFRESH:
      // signalWithStart: a reconnect wakes the running workflow; a finished one starts again.
      await startTokenRefresh(client, taskQueue, row.payload as TokenRefreshPayload);
      return;
    default:
      throw new Error(`reaction outbox: unknown kind ${row.kind}`);
  }
}

/**
 * Relays committed reactions (reaction_outbox) to Temporal, in every worker process: triggered
 * campaign runs, journey enrolments (signalWithStart), journey signals, promotion signals and
 * social token refresh workflows (both signalWithStart). Rows are taken with SKIP LOCKED, so
 * workers share the work, and marked dispatched only once Temporal has them; a crash in between
 * hands the same row over again, which the workflow id makes harmless. A row that fails is logged
 * and tried again later (backing off), without holding up the others. Writers
 * `pg_notify('reaction_outbox')` in their transaction, so a dispatcher listening wakes at commit
 * instead of at its next poll (OUTBOX_POLL_MS).
 */
export function startOutboxDispatcher({ orm, config, log }: ActivityDeps): OutboxDispatcher {
  const client = createTemporalClient(config);
  let stopped = false;
  let wake: (() => void) | undefined;
  let nudged = false;
  const nudge = () => {
    nudged = true;
    wake?.();
  };

  const dispatch = () =>
    orm.em.fork().transactional(async (em) => {
      const rows = await em.execute<Row[]>(
        `select id, tenant_id, kind, key, payload from reaction_outbox
          where dispatched_at is null and (next_attempt_at is null or next_attempt_at <= now())
            and starts_with(tenant_id, ?)
          order by created_at limit ? for update skip locked`,
        [config.OUTBOX_TENANT_PREFIX, BATCH],
      );
      // Rows of one workflow go in order (its start before its signals); workflows in parallel.
      const startPending = async (enrollmentId: string) =>
        (await orm.em.fork().execute<{ n: number }[]>(
          `select count(*)::int as n from reaction_outbox where kind = ? and key = ? and dispatched_at is null`, [JOURNEY_ENROLL, enrollmentId],
        ))[0]!.n > 0;
      const byWorkflow = new Map<string, number[]>();
      rows.forEach((row, i) => {
        const wf = (row.payload as { workflowId?: string }).workflowId ?? row.id;
        byWorkflow.set(wf, [...(byWorkflow.get(wf) ?? []), i]);
      });
      const outcomes: PromiseSettledResult<void>[] = new Array(rows.length);
      await Promise.all([...byWorkflow.values()].map(async (indexes) => {
        for (const i of indexes) {
          try {
            await dispatchRow(client, config.TEMPORAL_TASK_QUEUE, rows[i]!, startPending);
            outcomes[i] = { status: 'fulfilled', value: undefined };
          } catch (reason) {
            outcomes[i] = { status: 'rejected', reason };
          }
        }
      }));
      const done: string[] = [];
      for (const [i, outcome] of outcomes.entries()) {
        const row = rows[i]!;
        if (outcome.status === 'fulfilled') {
          done.push(row.id);
          continue;
        }
        log.warn({ err: outcome.reason, kind: row.kind, key: row.key }, 'reaction outbox: dispatch failed; trying again later');
        await em.execute(
          `update reaction_outbox set attempts = attempts + 1, last_error = ?,
                  next_attempt_at = now() + make_interval(secs => least(power(2, attempts), ?))
            where id = ?`,
          [String((outcome.reason as Error)?.message ?? outcome.reason).slice(0, 2000), MAX_BACKOFF_SECONDS, row.id],
        );
      }
      if (done.length) await em.execute('update reaction_outbox set dispatched_at = now() where id = any(?::uuid[])', [`{${done.join(',')}}`]);
      return rows.length;
    });

  // LISTEN on a connection of its own; without it (or while it reconnects) polling still works.
  let listener: pg.Client | undefined;
  const listen = async () => {
    if (stopped || !config.DATABASE_URL) return;
    const conn = new pg.Client({ connectionString: config.DATABASE_URL });
    conn.on('error', () => undefined);
    conn.on('end', () => {
      if (listener === conn) listener = undefined;
      if (!stopped) setTimeout(() => void listen(), config.OUTBOX_POLL_MS).unref();
    });
    conn.on('notification', nudge);
    try {
      await conn.connect();
      await conn.query('listen reaction_outbox');
      listener = conn;
      nudge(); // what was committed while not listening
      if (stopped) await conn.end();
    } catch (err) {
      log.debug({ err }, 'reaction outbox: LISTEN unavailable; polling');
      await conn.end().catch(() => undefined);
    }
  };
  void listen();

  const loop = (async () => {
    while (!stopped) {
      let full = false;
      nudged = false;
      try {
        full = (await dispatch()) === BATCH;
      } catch (err) {
        log.warn({ err }, 'reaction outbox: dispatch failed; trying again');
      }
      if (!full && !nudged && !stopped) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, config.OUTBOX_POLL_MS);
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        wake = undefined;
      }
    }
  })();

  return {
    async stop() {
      stopped = true;
      wake?.();
      await loop;
      const conn = listener;
      listener = undefined;
      await conn?.end().catch(() => undefined);
      await client.connection.close();
    },
  };
}

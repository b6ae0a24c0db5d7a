import { WorkflowExecutionAlreadyStartedError } from '@temporalio/client';
import type { ActivityDeps } from '../activities/index.js';
import { startTriggeredRun } from '../domain/campaigns/workflows.js';
import { CAMPAIGN_TRIGGER, type CampaignTrigger } from '../domain/campaigns/triggers.js';
import { createTemporalClient } from '../platform/temporal.js';

const BATCH = 100;

export interface OutboxDispatcher {
  stop(): Promise<void>;
}

/**
 * Starts the workflows that committed reactions ask for (reaction_outbox), in every worker process:
 * rows are taken with SKIP LOCKED, so workers share the work, and marked dispatched only once
 * Temporal has the run. A crash between the two starts the same workflow id again, which joins
 * (or, finished, refuses) the first: each reaction runs once.
 */
export function startOutboxDispatcher({ orm, config, log }: ActivityDeps): OutboxDispatcher {
  const client = createTemporalClient(config);
  let stopped = false;
  let wake: (() => void) | undefined;

  const dispatch = () =>
    orm.em.fork().transactional(async (em) => {
      const rows = await em.execute<{ id: string; tenant_id: string; kind: string; key: string; payload: CampaignTrigger }[]>(
        `select id, tenant_id, kind, key, payload from reaction_outbox where dispatched_at is null and kind = ?
          order by created_at limit ? for update skip locked`,
        [CAMPAIGN_TRIGGER, BATCH],
      );
      for (const row of rows) {
        try {
          await startTriggeredRun(client, config.TEMPORAL_TASK_QUEUE, {
            tenantId: row.tenant_id, campaignId: row.payload.campaignId, customerId: row.payload.customerId, eventKey: row.payload.activityId,
          });
        } catch (err) {
          if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
        }
      }
      if (rows.length) await em.execute('update reaction_outbox set dispatched_at = now() where id = any(?::uuid[])', [`{${rows.map((r) => r.id).join(',')}}`]);
      return rows.length;
    });

  const loop = (async () => {
    while (!stopped) {
      let full = false;
      try {
        full = (await dispatch()) === BATCH;
      } catch (err) {
        log.warn({ err }, 'reaction outbox: dispatch failed; trying again');
      }
      if (!full && !stopped) await new Promise<void>((resolve) => { wake = resolve; setTimeout(resolve, config.OUTBOX_POLL_MS); });
    }
  })();

  return {
    async stop() {
      stopped = true;
      wake?.();
      await loop;
      await client.connection.close();
    },
  };
}

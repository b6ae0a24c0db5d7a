import { ScheduleAlreadyRunning, ScheduleOverlapPolicy, type Client } from '@temporalio/client';
import type { Config } from '../platform/config.js';

export const SCORING_SCHEDULE_ID = 'customer-scoring';

/**
 * Platform-wide schedules, created once (idempotently) by the worker at start. Nightly scoring of
 * every tenant at 02:00 UTC; ops can pause it or trigger it from the Temporal UI.
 */
export async function ensurePlatformSchedules(client: Client, config: Config): Promise<void> {
  try {
    await client.schedule.create({
      scheduleId: SCORING_SCHEDULE_ID,
      spec: { calendars: [{ hour: 2, minute: 0 }] },
      action: { type: 'startWorkflow', workflowType: 'scoreAllTenantsWorkflow', workflowId: 'customer-scoring-all', taskQueue: config.TEMPORAL_TASK_QUEUE, args: [{}] },
      policies: { overlap: ScheduleOverlapPolicy.SKIP },
      state: { note: 'Engagement, churn-risk and lifetime-value scores for every tenant, then SMART segments' },
    });
  } catch (err) {
    if (!(err instanceof ScheduleAlreadyRunning)) throw err;
  }
}

import { ScheduleAlreadyRunning, ScheduleNotFoundError, ScheduleOverlapPolicy, type Client } from '@temporalio/client';
import type { Config } from '../platform/config.js';
import type { scheduledSegmentRefreshWorkflow } from '../workflows/segment-refresh.js';

export const SCORING_SCHEDULE_ID = 'customer-scoring';
export const SOCIAL_METRICS_SCHEDULE_ID = 'social-metrics';
export const ANALYTICS_FOLD_SCHEDULE_ID = 'analytics-rollup-fold';
export const SEGMENT_COUNT_FOLD_SCHEDULE_ID = 'segment-count-fold';

/**
 * Platform-wide schedules, created once (idempotently) by the worker at start. Nightly scoring of
 * every tenant at 02:00 UTC; hourly social post metrics; hourly folding of the analytics rollups and
 * of the segments' real-time count rows. Ops can pause them or trigger them from the Temporal UI.
 */
export async function ensurePlatformSchedules(client: Client, config: Config): Promise<void> {
  const schedules: Parameters<Client['schedule']['create']>[0][] = [
    {
      scheduleId: SCORING_SCHEDULE_ID,
      spec: { calendars: [{ hour: 2, minute: 0 }] },
      action: { type: 'startWorkflow', workflowType: 'scoreAllTenantsWorkflow', workflowId: 'customer-scoring-all', taskQueue: config.TEMPORAL_TASK_QUEUE, args: [{}] },
      policies: { overlap: ScheduleOverlapPolicy.SKIP },
      state: { note: 'Engagement, churn-risk and lifetime-value scores for every tenant, then SMART segments' },
    },
    {
      scheduleId: SOCIAL_METRICS_SCHEDULE_ID,
      spec: { intervals: [{ every: '1 hour' }] },
      action: { type: 'startWorkflow', workflowType: 'socialMetricsWorkflow', workflowId: 'social-metrics-all', taskQueue: config.TEMPORAL_TASK_QUEUE, args: [{}] },
      policies: { overlap: ScheduleOverlapPolicy.SKIP },
      state: { note: 'Likes, comments, shares and reach of the social posts published in the last 30 days' },
    },
    {
      scheduleId: ANALYTICS_FOLD_SCHEDULE_ID,
      spec: { intervals: [{ every: '1 hour' }] },
      action: { type: 'startWorkflow', workflowType: 'analyticsFoldWorkflow', workflowId: 'analytics-rollup-fold-all', taskQueue: config.TEMPORAL_TASK_QUEUE, args: [] },
      policies: { overlap: ScheduleOverlapPolicy.SKIP },
      state: { note: 'Folds each tenant\'s analytics rollup rows (one per writing connection) into one per key' },
    },
    {
      scheduleId: SEGMENT_COUNT_FOLD_SCHEDULE_ID,
      spec: { intervals: [{ every: '1 hour' }] },
      action: { type: 'startWorkflow', workflowType: 'segmentCountFoldWorkflow', workflowId: 'segment-count-fold-all', taskQueue: config.TEMPORAL_TASK_QUEUE, args: [] },
      policies: { overlap: ScheduleOverlapPolicy.SKIP },
      state: { note: 'Folds each segment\'s real-time count rows (one per writing connection) into one' },
    },
  ];
  for (const schedule of schedules) {
    try {
      await client.schedule.create(schedule);
    } catch (err) {
      if (!(err instanceof ScheduleAlreadyRunning)) throw err;
    }
  }
}

const SEGMENT_REFRESH_SCHEDULE_PREFIX = 'segment-refresh-schedule-';

/**
 * Segment refresh schedules created before scheduledSegmentRefreshWorkflow started
 * segmentRefreshWorkflow under timestamped ids, which neither join a manual refresh nor stop when
 * the segment is deleted. Moves them to the current action; those already moved are left alone.
 * Returns the ids of the schedules it changed.
 */
export async function migrateSegmentRefreshSchedules(client: Client): Promise<string[]> {
  const migrated: string[] = [];
  for await (const summary of client.schedule.list()) {
    if (!summary.scheduleId.startsWith(SEGMENT_REFRESH_SCHEDULE_PREFIX)) continue;
    if (summary.action?.workflowType !== 'segmentRefreshWorkflow') continue;
    const segmentId = summary.scheduleId.slice(SEGMENT_REFRESH_SCHEDULE_PREFIX.length);
    let changed = false;
    await client.schedule.getHandle(summary.scheduleId).update((previous) => {
      const action = previous.action;
      // The list may lag behind: a schedule it shows in the old shape may have moved already.
      changed = action.type === 'startWorkflow' && action.workflowType === 'segmentRefreshWorkflow';
      if (!changed || action.type !== 'startWorkflow') return previous;
      const [input] = action.args as [{ tenantId: string }];
      return {
        ...previous,
        action: {
          ...action,
          workflowType: 'scheduledSegmentRefreshWorkflow',
          workflowId: summary.scheduleId,
          args: [{ tenantId: input.tenantId, segmentId }] satisfies Parameters<typeof scheduledSegmentRefreshWorkflow>,
        },
      };
    }).catch((err: unknown) => {
      if (!(err instanceof ScheduleNotFoundError)) throw err; // the segment was deleted meanwhile
    });
    if (changed) migrated.push(summary.scheduleId);
  }
  return migrated;
}

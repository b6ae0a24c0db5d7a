import { ScheduleNotFoundError, ScheduleOverlapPolicy, WorkflowFailedError, WorkflowNotFoundError, type WorkflowHandle } from '@temporalio/client';
import type { Segment } from '../../db/entities/index.js';
import { AppError } from '../../platform/errors.js';
import { SegmentId, TenantId } from '../../platform/search-attributes.js';
import { upsertSchedule } from '../../platform/temporal.js';
import type { scheduledSegmentRefreshWorkflow, segmentRefreshWorkflow } from '../../workflows/segment-refresh.js';
import type { segmentSyncWorkflow, SegmentSyncResult } from '../../workflows/segment-sync.js';
import type { ServiceContext } from '../context.js';
import type { RefreshResult } from './membership.js';

// The segment workflows' ids derive from the segment, so a second click joins the run in flight.
const refreshWorkflowId = (segmentId: string) => `segment-refresh-${segmentId}`;
const syncWorkflowId = (segmentId: string) => `segment-sync-${segmentId}`;
const refreshScheduleId = (segmentId: string) => `segment-refresh-schedule-${segmentId}`;

const searchAttributes = (s: Pick<Segment, 'id' | 'tenantId'>) => [
  { key: TenantId, value: s.tenantId },
  { key: SegmentId, value: s.id },
];

/**
 * Waits for a workflow's result on behalf of a request, for at most WORKFLOW_RESULT_WAIT_MS: a run
 * held up by a failing dependency (Messaging down, retried with backoff) goes on durably, but the
 * caller gets an answer instead of a request that never ends, and calling again joins the same run.
 * The workflow's own failure (e.g. the Messaging service's 4xx) becomes a platform error.
 */
async function outcome<T>(ctx: ServiceContext, handle: WorkflowHandle<() => Promise<T>>, what: string): Promise<T> {
  const waited = AbortSignal.timeout(ctx.config.WORKFLOW_RESULT_WAIT_MS);
  try {
    return await ctx.temporal.withAbortSignal(waited, () => handle.result());
  } catch (err) {
    if (waited.aborted) {
      throw new AppError('SERVICE_UNAVAILABLE', `${what} is still running as workflow ${handle.workflowId} and goes on by itself; call again to join it`, {
        retryAfter: Math.max(1, Math.ceil(ctx.config.WORKFLOW_RESULT_WAIT_MS / 1000)), stillRunning: true,
      });
    }
    if (!(err instanceof WorkflowFailedError)) throw err;
    let cause: Error | undefined = err.cause;
    while (cause?.cause) cause = cause.cause as Error;
    throw new AppError('INVALID_STATE', `${what} failed: ${cause?.message ?? err.message}`);
  }
}

/**
 * A save's refresh, run now: one that outlasts WORKFLOW_RESULT_WAIT_MS goes on by itself, and the
 * save stands (the members follow when it ends); any other failure is the caller's to undo.
 */
export async function refreshAfterSave(ctx: ServiceContext, segment: Segment, cause: string): Promise<void> {
  try {
    await runRefresh(ctx, segment, cause);
  } catch (err) {
    if (!(err instanceof AppError && err.details?.stillRunning)) throw err;
  }
}

export async function runRefresh(ctx: ServiceContext, segment: Segment, cause: string): Promise<RefreshResult> {
  // Scheduled refreshes run under the same id (scheduledSegmentRefreshWorkflow), so this joins them too.
  const handle = await ctx.temporal.workflow.start<typeof segmentRefreshWorkflow>('segmentRefreshWorkflow', {
    workflowId: refreshWorkflowId(segment.id),
    taskQueue: ctx.config.TEMPORAL_TASK_QUEUE,
    args: [{ tenantId: segment.tenantId, segmentId: segment.id, cause }],
    workflowIdConflictPolicy: 'USE_EXISTING',
    typedSearchAttributes: searchAttributes(segment),
  });
  return outcome(ctx, handle, `refresh of segment ${segment.id}`);
}

export async function runSync(ctx: ServiceContext, segment: Segment): Promise<SegmentSyncResult> {
  const handle = await ctx.temporal.workflow.start<typeof segmentSyncWorkflow>('segmentSyncWorkflow', {
    workflowId: syncWorkflowId(segment.id),
    taskQueue: ctx.config.TEMPORAL_TASK_QUEUE,
    args: [{ tenantId: segment.tenantId, segmentId: segment.id }],
    workflowIdConflictPolicy: 'USE_EXISTING',
    typedSearchAttributes: searchAttributes(segment),
  });
  return outcome(ctx, handle, `sync of segment ${segment.id} to Messaging`);
}

/**
 * DYNAMIC segments refresh on a Temporal Schedule, paused while the segment is inactive. SMART
 * segments have one too: events keep them current, the schedule catches what time alone changes
 * (criteria such as "active within 30 days").
 */
export async function upsertRefreshSchedule(ctx: ServiceContext, segment: Segment): Promise<void> {
  const spec = { intervals: [{ every: `${segment.refreshIntervalMinutes}m` as const }] };
  const action = {
    type: 'startWorkflow' as const,
    workflowType: 'scheduledSegmentRefreshWorkflow',
    workflowId: refreshScheduleId(segment.id),
    taskQueue: ctx.config.TEMPORAL_TASK_QUEUE,
    args: [{ tenantId: segment.tenantId, segmentId: segment.id }] satisfies Parameters<typeof scheduledSegmentRefreshWorkflow>,
    typedSearchAttributes: searchAttributes(segment),
  };
  // The action too: schedules made before it started scheduledSegmentRefreshWorkflow move over.
  await upsertSchedule(ctx.temporal, {
    scheduleId: refreshScheduleId(segment.id),
    spec,
    action,
    policies: { overlap: ScheduleOverlapPolicy.SKIP },
    state: { paused: !segment.isActive, note: `Refresh of ${segment.type} segment "${segment.name}" (${segment.tenantId})` },
  });
}

/** Removes the schedule and stops runs in flight (a deleted segment has nothing to refresh or sync). */
export async function stopSegmentWork(ctx: ServiceContext, segmentId: string): Promise<void> {
  try {
    await ctx.temporal.schedule.getHandle(refreshScheduleId(segmentId)).delete();
  } catch (err) {
    if (!(err instanceof ScheduleNotFoundError)) throw err;
  }
  for (const id of [refreshWorkflowId(segmentId), syncWorkflowId(segmentId)]) {
    try {
      await ctx.temporal.workflow.getHandle(id).terminate('segment deleted');
    } catch (err) {
      // Not running (or never ran): nothing to stop.
      if (!(err instanceof WorkflowNotFoundError)) throw err;
    }
  }
}

import {
  ActivityFailure, ScheduleNotFoundError, ScheduleOverlapPolicy, WorkflowNotFoundError, WorkflowUpdateFailedError, type Client, type ScheduleSpec,
} from '@temporalio/client';
import { DateTime } from 'luxon';
import type { Campaign } from '../../db/entities/index.js';
import { AppError } from '../../platform/errors.js';
import { CampaignId, TenantId } from '../../platform/search-attributes.js';
import { upsertSchedule } from '../../platform/temporal.js';
import {
  campaignRunId, type cancelCampaignRun, type campaignWorkflow, type CampaignRunInput, type pauseCampaignRun, type recurringCampaignWorkflow,
  type resumeCampaignRun,
} from '../../workflows/campaign.js';
import type { ServiceContext } from '../context.js';
import type { RecurringSchedule } from './schemas.js';

// How the campaign service drives Temporal: the runs (`campaign-<id>`, `campaign-<id>-<runKey>`),
// the RECURRING schedule (`campaign-schedule-<id>`), and the pause/resume/cancel updates.

export const scheduleId = (campaignId: string) => `campaign-schedule-${campaignId}`;

const searchAttributes = (c: Pick<Campaign, 'id' | 'tenantId'>) => [
  { key: TenantId, value: c.tenantId },
  { key: CampaignId, value: c.id },
];

/** Starts (or joins: the id is the campaign's) the ONE_TIME run, which waits for `startAt` if given. */
export async function startOneTimeRun(ctx: ServiceContext, campaign: Campaign, startAt: Date | null): Promise<void> {
  const input: CampaignRunInput = { tenantId: campaign.tenantId, campaignId: campaign.id, kind: 'ONE_TIME', runKey: 'once', startAt: startAt?.toISOString() ?? null };
  await ctx.temporal.workflow.start<typeof campaignWorkflow>('campaignWorkflow', {
    workflowId: campaignRunId(campaign.id, 'once'),
    taskQueue: ctx.config.TEMPORAL_TASK_QUEUE,
    args: [input],
    workflowIdConflictPolicy: 'USE_EXISTING',
    typedSearchAttributes: searchAttributes(campaign),
  });
}

/** A TRIGGERED campaign's run for one event and customer; a resent event joins the run it started. */
export async function startTriggeredRun(client: Client, taskQueue: string, c: { tenantId: string; campaignId: string; customerId: string; eventKey: string }) {
  const input: CampaignRunInput = { tenantId: c.tenantId, campaignId: c.campaignId, kind: 'TRIGGERED', runKey: c.eventKey, customerId: c.customerId };
  await client.workflow.start<typeof campaignWorkflow>('campaignWorkflow', {
    workflowId: campaignRunId(c.campaignId, c.eventKey),
    taskQueue,
    args: [input],
    workflowIdConflictPolicy: 'USE_EXISTING',
    // A finished run is not run again: the same event sends once.
    workflowIdReusePolicy: 'REJECT_DUPLICATE',
    typedSearchAttributes: searchAttributes({ id: c.campaignId, tenantId: c.tenantId }),
  });
}

/**
 * The schedule's calendar in the campaign's zone: Temporal evaluates it in that zone, so 09:00
 * stays 09:00 local across DST changes (a wall-clock time that a change skips runs an hour later).
 */
export function scheduleSpec(s: RecurringSchedule, startAt: Date | null): ScheduleSpec {
  const [hour, minute] = s.time.split(':').map(Number) as [number, number];
  const calendar = {
    hour, minute,
    ...(s.frequency === 'weekly' && { dayOfWeek: (['SUNDAY', 'MONDAY', 'TUESDAY', 'WEDNESDAY', 'THURSDAY', 'FRIDAY', 'SATURDAY'] as const)[s.dayOfWeek ?? 1] }),
    ...(s.frequency === 'monthly' && { dayOfMonth: s.dayOfMonth ?? 1 }),
  };
  return { calendars: [calendar], timezone: s.timezone, ...(startAt && { startAt }) };
}

export async function upsertRecurringSchedule(ctx: ServiceContext, campaign: Campaign, schedule: RecurringSchedule, startAt: Date | null, paused: boolean): Promise<void> {
  const spec = scheduleSpec(schedule, startAt);
  const action = {
    type: 'startWorkflow' as const,
    workflowType: 'recurringCampaignWorkflow',
    workflowId: scheduleId(campaign.id),
    taskQueue: ctx.config.TEMPORAL_TASK_QUEUE,
    args: [{ tenantId: campaign.tenantId, campaignId: campaign.id }] satisfies Parameters<typeof recurringCampaignWorkflow>,
    typedSearchAttributes: searchAttributes(campaign),
  };
  await upsertSchedule(ctx.temporal, {
    scheduleId: scheduleId(campaign.id),
    spec,
    action,
    policies: { overlap: ScheduleOverlapPolicy.ALLOW_ALL, catchupWindow: '1 hour' },
    state: { paused, note: `RECURRING campaign "${campaign.name}" (${campaign.tenantId})` },
  });
}

export async function pauseRecurringSchedule(ctx: ServiceContext, campaignId: string, paused: boolean): Promise<void> {
  const handle = ctx.temporal.schedule.getHandle(scheduleId(campaignId));
  try {
    await (paused ? handle.pause('campaign paused') : handle.unpause('campaign resumed'));
  } catch (err) {
    if (!(err instanceof ScheduleNotFoundError)) throw err;
  }
}

export async function deleteRecurringSchedule(ctx: ServiceContext, campaignId: string): Promise<void> {
  try {
    await ctx.temporal.schedule.getHandle(scheduleId(campaignId)).delete();
  } catch (err) {
    if (!(err instanceof ScheduleNotFoundError)) throw err;
  }
}

/** Triggers one occurrence of the RECURRING schedule now (execute). */
export async function triggerRecurringSchedule(ctx: ServiceContext, campaignId: string): Promise<void> {
  await ctx.temporal.schedule.getHandle(scheduleId(campaignId)).trigger(ScheduleOverlapPolicy.ALLOW_ALL);
}

type RunUpdate = typeof pauseCampaignRun | typeof resumeCampaignRun | typeof cancelCampaignRun;

/**
 * Sends pause/resume/cancel to a run and waits for it: the run stops starting sends, lets those in
 * flight finish and moves the campaign (ONE_TIME), so what the caller reads next is true. A run
 * that has ended answers `false`. The run's refusal (the state machine) is the caller's error.
 */
export async function updateRun(ctx: ServiceContext, workflowId: string, update: RunUpdate): Promise<boolean> {
  // No worker to take the update (all down): the caller hears so instead of waiting with it.
  const waited = AbortSignal.timeout(ctx.config.WORKFLOW_RESULT_WAIT_MS);
  try {
    await ctx.temporal.withAbortSignal(waited, () => ctx.temporal.workflow.getHandle(workflowId).executeUpdate(update));
    return true;
  } catch (err) {
    if (waited.aborted) {
      throw new AppError('SERVICE_UNAVAILABLE', `campaign run ${workflowId} did not take the ${update.name} in time (are workers running?); call again`, {
        retryAfter: Math.max(1, Math.ceil(ctx.config.WORKFLOW_RESULT_WAIT_MS / 1000)),
      });
    }
    if (err instanceof WorkflowNotFoundError) return false;
    if (err instanceof WorkflowUpdateFailedError) {
      // The run answers the state machine's refusal itself; an activity's failure is one level deeper.
      let cause = err.cause as { type?: string; message?: string; details?: unknown[]; cause?: unknown } | undefined;
      if (cause instanceof ActivityFailure) cause = cause.cause as typeof cause;
      if (cause?.type === 'RunEnded') return false;
      if (cause?.type === 'INVALID_STATE') throw new AppError('INVALID_STATE', cause.message ?? err.message, (cause.details?.[0] ?? undefined) as Record<string, unknown> | undefined);
    }
    throw err;
  }
}

/** The runs of a RECURRING or TRIGGERED campaign still going (Temporal's visibility, by CampaignId). */
export async function runningRuns(ctx: ServiceContext, campaignId: string): Promise<string[]> {
  const ids: string[] = [];
  for await (const run of ctx.temporal.workflow.list({
    query: `CampaignId = '${campaignId}' AND WorkflowType = 'campaignWorkflow' AND ExecutionStatus = 'Running'`,
  })) ids.push(run.workflowId);
  return ids;
}

/**
 * When a ONE_TIME run wakes: scheduledAt, or for `sendInRecipientTimezone` the moment scheduledAt's
 * wall-clock time first arrives anywhere (UTC+14), so every zone's recipients can get it on time.
 */
export function runStartAt(campaign: Pick<Campaign, 'scheduledAt' | 'sendInRecipientTimezone' | 'timezone'>): Date | null {
  if (!campaign.scheduledAt) return null;
  if (!campaign.sendInRecipientTimezone) return campaign.scheduledAt;
  const wall = DateTime.fromJSDate(campaign.scheduledAt, { zone: campaign.timezone ?? 'UTC' });
  return wall.setZone('Etc/GMT-14', { keepLocalTime: true }).toJSDate();
}

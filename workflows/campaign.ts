import { defineSearchAttributeKey, SearchAttributeType, WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import {
  ActivityCancellationType, ActivityFailure, allHandlersFinished, ApplicationFailure, CancellationScope, condition, continueAsNew, defineQuery, defineUpdate,
  isCancellation, log, ParentClosePolicy, patched, proxyActivities, setHandler, startChild, workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';
import { CampaignId, TenantId } from '../platform/search-attributes.js';
import { publishSocialPosts } from './social-post.js';

// One run of a campaign: `campaign-<id>` for ONE_TIME, `campaign-<id>-<runKey>` for each RECURRING
// occurrence and each TRIGGERED event. Waits for scheduledAt, snapshots the audience into delivery
// rows, then sends them through activities, a slice at a time, until every delivery has an outcome.
// PostgreSQL holds every delivery's state; the workflow holds only where the run is, so its history
// stays small at any audience size (and continues as new past a few hundred events).

const { transitionCampaign, snapshotAudience, finishRun, prepareCampaignPosts } = proxyActivities<Activities>({
  startToCloseTimeout: '10 minutes',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '1 minute' },
});

const { sendDeliveries } = proxyActivities<Activities>({
  // A slice is bounded by CAMPAIGN_SLICE_MS; a worker that dies mid-slice is noticed within the
  // heartbeat timeout and the slice is retried (elsewhere), taking back the rows it had claimed.
  startToCloseTimeout: '30 minutes',
  heartbeatTimeout: '10 seconds',
  // Pause and cancel let the sends in flight finish before the run moves on.
  cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '1 minute' },
});

export type CampaignRunKind = 'ONE_TIME' | 'RECURRING' | 'TRIGGERED';

export interface CampaignRunInput {
  tenantId: string;
  campaignId: string;
  kind: CampaignRunKind;
  /** `once` for ONE_TIME; the occurrence (RECURRING) or the triggering activity's id (TRIGGERED). */
  runKey: string;
  /** ONE_TIME: when to start (ISO); the run waits for it. */
  startAt?: string | null;
  /** TRIGGERED: the one recipient. */
  customerId?: string;
}

export interface CampaignRunProgress {
  phase: 'waiting' | 'snapshot' | 'sending' | 'paused' | 'done';
  paused: boolean;
  cancelled: boolean;
  targetCount: number;
  sent: number;
  failed: number;
  skipped: number;
  slices: number;
  nextSendAt: string | null;
  /** SOCIAL: the campaign's posts, once published (or failed). */
  socialPosts?: number;
}

export const campaignProgress = defineQuery<CampaignRunProgress>('progress');
export const pauseCampaignRun = defineUpdate<CampaignRunProgress>('pause');
export const resumeCampaignRun = defineUpdate<CampaignRunProgress>('resume');
export const cancelCampaignRun = defineUpdate<CampaignRunProgress>('cancel');

export async function campaignWorkflow(input: CampaignRunInput, carried?: CampaignRunProgress): Promise<CampaignRunProgress> {
  const progress: CampaignRunProgress = carried ?? {
    phase: 'waiting', paused: false, cancelled: false, targetCount: 0, sent: 0, failed: 0, skipped: 0, slices: 0, nextSendAt: null,
  };
  // Only a ONE_TIME run moves its campaign's state; RECURRING and TRIGGERED campaigns are moved by
  // the API (their schedule, their trigger) and their runs only stop or go on.
  const ownsState = input.kind === 'ONE_TIME';
  const ref = { tenantId: input.tenantId, campaignId: input.campaignId };
  // The activity in progress that pause (sending only) or cancel (anything) interrupts.
  let work: { scope: CancellationScope; phase: 'snapshot' | 'sending' } | undefined;

  const stop = async (phases: ('snapshot' | 'sending')[]) => {
    if (work && phases.includes(work.phase)) work.scope.cancel();
    await condition(() => work === undefined || !phases.includes(work.phase));
  };
  const notFinished = () => {
    if (progress.cancelled || progress.phase === 'done') throw ApplicationFailure.nonRetryable('this campaign run has ended', 'RunEnded');
  };
  // The state machine's refusal (INVALID_STATE) is the update's answer, not an activity failure.
  const move = async (action: 'pause' | 'resume' | 'cancel') => {
    if (!ownsState) return;
    try {
      await transitionCampaign({ ...ref, action });
    } catch (err) {
      if (err instanceof ActivityFailure && err.cause instanceof ApplicationFailure) throw err.cause;
      throw err;
    }
  };

  setHandler(campaignProgress, () => progress);
  setHandler(pauseCampaignRun, async () => {
    await move('pause');
    progress.paused = true;
    await stop(['sending']);
    return progress;
  }, { validator: notFinished });
  setHandler(resumeCampaignRun, async () => {
    await move('resume');
    progress.paused = false;
    return progress;
  }, { validator: notFinished });
  setHandler(cancelCampaignRun, async () => {
    await move('cancel');
    progress.cancelled = true;
    await stop(['snapshot', 'sending']);
    await condition(() => progress.phase === 'done');
    return progress;
  }, { validator: notFinished });

  const finish = async () => {
    await finishRun({ ...input, outcome: progress.cancelled ? 'cancelled' : 'completed', ownsState });
    progress.phase = 'done';
    await condition(allHandlersFinished);
    return progress;
  };
  /** Runs an activity that pause or cancel may interrupt; undefined when interrupted. */
  const interruptible = async <T>(phase: 'snapshot' | 'sending', fn: () => Promise<T>): Promise<T | undefined> => {
    const scope = new CancellationScope();
    work = { scope, phase };
    try {
      return await scope.run(fn);
    } catch (err) {
      // Interrupted; or failed for good after pause/cancel asked it to stop (it is not retried then).
      if (isCancellation(err) || progress.paused || progress.cancelled) return undefined;
      throw err;
    } finally {
      work = undefined;
    }
  };

  if (progress.phase === 'waiting') {
    if (input.startAt) {
      const wait = Date.parse(input.startAt) - Date.now();
      if (wait > 0) await condition(() => progress.cancelled, wait);
    }
    if (!progress.cancelled) {
      // Scheduled: SCHEDULED → ACTIVE now; executed: already ACTIVE (the API moved it), or PAUSED
      // already. Anything else (DRAFT: the API gave up on this run; CANCELLED) sends nothing. A run
      // that does not own the state goes only while its campaign is ACTIVE (a paused TRIGGERED
      // campaign lets its events pass).
      const status = await transitionCampaign({ ...ref, action: 'start', ifAlready: 'ACTIVE', quiet: true });
      const goes = ownsState ? status === 'ACTIVE' || status === 'PAUSED' : status === 'ACTIVE';
      if (!goes) progress.cancelled = true;
      // Paused before this run began (the pause found no run to tell): it holds before sending,
      // as a run told to pause does. Runs begun before this change replay as they ran (they sent).
      else if (status === 'PAUSED' && patched('campaign-start-paused')) progress.paused = true;
    }
    if (progress.cancelled) return finish();
    progress.phase = 'snapshot';
  }
  while (progress.phase === 'snapshot') {
    if (progress.cancelled) return finish();
    // SOCIAL: one post per active connection of the club, published before the messages go (so
    // the campaign completes once its posts are PUBLISHED or FAILED too). A rerun finds them made.
    if (progress.socialPosts === undefined && input.kind !== 'TRIGGERED' && patched('campaign-social-posts')) {
      const posts = await prepareCampaignPosts(ref);
      if (posts.length) await Promise.race([publishSocialPosts(input.tenantId, posts), condition(() => progress.cancelled)]);
      progress.socialPosts = posts.length;
      continue;
    }
    const snapshot = await interruptible('snapshot', () =>
      snapshotAudience({ ...ref, runKey: input.runKey, customerId: input.customerId, asOf: new Date().toISOString() }));
    if (!snapshot) continue;
    progress.targetCount = snapshot.targetCount;
    progress.skipped = snapshot.skipped;
    progress.phase = 'sending';
  }

  for (;;) {
    if (progress.cancelled) return finish();
    if (progress.paused) {
      progress.phase = 'paused';
      await condition(() => !progress.paused || progress.cancelled);
      progress.phase = 'sending';
      continue;
    }
    if (workflowInfo().continueAsNewSuggested || workflowInfo().historyLength > 2_000) {
      // Handlers in flight finish first; a cancel among them ends the run instead.
      await condition(() => allHandlersFinished() || progress.cancelled);
      if (!progress.cancelled) await continueAsNew<typeof campaignWorkflow>(input, progress);
      continue;
    }
    const result = await interruptible('sending', () => sendDeliveries({ ...ref, runKey: input.runKey, ownsState, asOf: new Date().toISOString() }));
    if (!result) continue;
    progress.sent += result.sent;
    progress.failed += result.failed;
    progress.skipped += result.skipped;
    progress.nextSendAt = result.nextSendAt;
    progress.slices++;
    // A RECURRING or TRIGGERED campaign paused or cancelled meanwhile (its runs are told too, but
    // Temporal's list of them lags behind a run just started).
    if (result.campaignStatus === 'CANCELLED') progress.cancelled = true;
    else if (!ownsState && result.campaignStatus === 'PAUSED') progress.paused = true;
    else if (result.pending === 0) return finish();
    else if (result.due === 0 && result.nextSendAt) {
      // Everything left waits for its recipient's hour (time zones, quiet hours, a deferred retry).
      await condition(() => progress.paused || progress.cancelled, Math.max(1000, Date.parse(result.nextSendAt) - Date.now()));
    }
  }
}

// Set by a Schedule on the workflows it starts: the occurrence's own time, even when it starts late.
const ScheduledStartTime = defineSearchAttributeKey('TemporalScheduledStartTime', SearchAttributeType.DATETIME);

/** The id of one run of a campaign. */
export const campaignRunId = (campaignId: string, runKey: string) => (runKey === 'once' ? `campaign-${campaignId}` : `campaign-${campaignId}-${runKey}`);

/**
 * Started by the schedule `campaign-schedule-<id>` at each occurrence. A Schedule appends a timestamp
 * to the ids it starts; this starts the occurrence as `campaign-<id>-<occurrence>` instead, so a
 * doubled start of one occurrence joins the first. The run is abandoned, not awaited: it outlives this.
 */
export async function recurringCampaignWorkflow(input: { tenantId: string; campaignId: string }): Promise<'started' | 'joined' | 'skipped'> {
  const ref = { tenantId: input.tenantId, campaignId: input.campaignId };
  // The first occurrence makes a SCHEDULED campaign ACTIVE; a paused or cancelled one sends nothing.
  const status = await transitionCampaign({ ...ref, action: 'start', ifAlready: 'ACTIVE', quiet: true });
  if (status !== 'ACTIVE') return 'skipped';
  const at = workflowInfo().typedSearchAttributes.get(ScheduledStartTime) ?? new Date(workflowInfo().startTime);
  const runKey = at.toISOString().replace(/[-:]|\.\d+/g, '');
  try {
    await startChild(campaignWorkflow, {
      workflowId: campaignRunId(input.campaignId, runKey),
      args: [{ ...ref, kind: 'RECURRING', runKey }],
      parentClosePolicy: ParentClosePolicy.ABANDON,
      typedSearchAttributes: [{ key: TenantId, value: input.tenantId }, { key: CampaignId, value: input.campaignId }],
    });
    return 'started';
  } catch (err) {
    if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
    log.info('this occurrence is already running; joined it', { campaignId: input.campaignId, runKey });
    return 'joined';
  }
}

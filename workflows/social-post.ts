import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import {
  ActivityFailure, ApplicationFailure, condition, continueAsNew, defineSignal, getExternalWorkflowHandle, ParentClosePolicy, proxyActivities, setHandler,
  sleep, startChild, workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';
import type { SocialPostStatus } from '../db/entities/enums.js';
import { TenantId } from '../platform/search-attributes.js';

// `social-post-<postId>`: publishes one post at its scheduledAt, or now when asked. The post's row
// is the truth: the run reads scheduledAt from it each time it is told of a change (a reschedule
// or an edit), and the publish activity reads the content as it claims the post, so what goes out
// is the post as it is then. The run carries ids only: tokens stay in the activities.

const { readSocialPostSchedule, failSocialPost } = proxyActivities<Activities>({
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '1 minute' },
});

const { publishSocialPost } = proxyActivities<Activities>({
  // A platform call is bounded by the client's own timeouts; an answer lost on the way is an
  // unknown outcome, which the next attempt checks before trying again (findPublished).
  startToCloseTimeout: '2 minutes',
  retry: { initialInterval: '5 seconds', backoffCoefficient: 2, maximumInterval: '5 minutes', maximumAttempts: 8 },
});

export interface SocialPostRunInput {
  tenantId: string;
  postId: string;
  /** Publish at once (publishSocialPost, a campaign), whatever scheduledAt says. */
  publishNow?: boolean;
}

export interface SocialPostOutcome {
  status: SocialPostStatus | 'GONE';
  /** RATE_LIMITED rounds waited (each for the platform's Retry-After). */
  rateLimited: number;
}

/** scheduledAt changed, or the content did: read the post again. */
export const socialPostChanged = defineSignal('changed');
/** Publish now. */
export const publishSocialPostNow = defineSignal('publish');

export const socialPostRunId = (postId: string) => `social-post-${postId}`;

// Bounded history: a post rescheduled again and again goes on in a new run past this many rounds.
const ROUNDS_PER_RUN = 200;

export async function socialPostWorkflow(input: SocialPostRunInput): Promise<SocialPostOutcome> {
  let publishNow = input.publishNow === true;
  let changed = false;
  setHandler(socialPostChanged, () => void (changed = true));
  setHandler(publishSocialPostNow, () => void (publishNow = true));
  const ref = { tenantId: input.tenantId, postId: input.postId };
  let rateLimited = 0;

  for (let round = 0; ; round++) {
    if (round >= ROUNDS_PER_RUN || workflowInfo().continueAsNewSuggested) {
      return continueAsNew<typeof socialPostWorkflow>({ ...ref, publishNow });
    }
    let due: string | undefined;
    if (!publishNow) {
      changed = false;
      const plan = await readSocialPostSchedule(ref);
      // PUBLISHING: the API claimed it for a publish whose signal this run has not seen yet, or a
      // publish of an earlier run was cut short; either way it goes now.
      if (plan.status === 'PUBLISHING') publishNow = true;
      else if (plan.status !== 'SCHEDULED' || !plan.scheduledAt) return { status: plan.status, rateLimited };
      else {
        const wait = Date.parse(plan.scheduledAt) - Date.now();
        if (wait > 0 && await condition(() => changed || publishNow, wait)) continue; // re-read, or publish now
        due = publishNow ? undefined : plan.scheduledAt;
      }
    }
    let result;
    try {
      result = await publishSocialPost({ ...ref, asOf: new Date().toISOString(), scheduledAt: due });
    } catch (err) {
      // Attempts spent (the platform kept failing): FAILED with its last word. An attempt whose
      // outcome stays unknown keeps its record, so a later publish checks it first.
      const cause = err instanceof ActivityFailure && err.cause instanceof ApplicationFailure ? err.cause : err;
      const status = await failSocialPost({ ...ref, error: `publishing failed: ${(cause as Error).message}` });
      return { status, rateLimited };
    }
    // Still SCHEDULED: rescheduled as the timer fired; sleep on the new time.
    if (due && result.status === 'SCHEDULED') continue;
    if (result.status !== 'RATE_LIMITED') return { status: result.status, rateLimited };
    // 429: wait what the platform asked, as a durable timer (no activity attempt spent on it).
    rateLimited++;
    publishNow = true;
    await sleep(Math.max(1_000, result.retryAfterMs));
  }
}

/**
 * Publishes posts now from a workflow (a SOCIAL campaign, an event promotion) and waits for each
 * outcome: a child run `social-post-<id>` per post, or, for a post whose run is already going (it
 * was scheduled by hand), a publish signal to that run, whose outcome is then read back.
 */
export async function publishSocialPosts(tenantId: string, postIds: readonly string[]): Promise<Record<string, SocialPostOutcome['status']>> {
  const outcomes = await Promise.all(postIds.map(async (postId): Promise<SocialPostOutcome['status']> => {
    const workflowId = socialPostRunId(postId);
    try {
      const child = await startChild(socialPostWorkflow, {
        workflowId,
        args: [{ tenantId, postId, publishNow: true }],
        // The post goes out even if its caller is cancelled meanwhile: it was claimed already.
        parentClosePolicy: ParentClosePolicy.ABANDON,
        typedSearchAttributes: [{ key: TenantId, value: tenantId }],
      });
      return (await child.result()).status;
    } catch (err) {
      if (!(err instanceof WorkflowExecutionAlreadyStartedError)) return 'FAILED';
    }
    await getExternalWorkflowHandle(workflowId).signal(publishSocialPostNow);
    // Polled with a growing pause: that run may wait out long 429s, and the caller's history must
    // not grow by a read every few seconds meanwhile.
    for (let pause = 5_000; ; pause = Math.min(pause * 2, 300_000)) {
      const { status } = await readSocialPostSchedule({ tenantId, postId });
      if (status !== 'SCHEDULED' && status !== 'DRAFT' && status !== 'PUBLISHING') return status;
      await sleep(pause);
    }
  }));
  return Object.fromEntries(postIds.map((id, i) => [id, outcomes[i]!]));
}

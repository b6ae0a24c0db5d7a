import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import { log, ParentClosePolicy, proxyActivities, startChild } from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';
import type { RefreshResult } from '../domain/segments/membership.js';
import { SegmentId, TenantId } from '../platform/search-attributes.js';

const { refreshSegmentMembership } = proxyActivities<Activities>({
  startToCloseTimeout: '1 hour',
  heartbeatTimeout: '1 minute',
  retry: { initialInterval: '1 second', maximumInterval: '1 minute', maximumAttempts: 10 },
});

export interface SegmentRefreshInput {
  tenantId: string;
  segmentId: string;
  /** Why the refresh runs (`manual`, `schedule`, `created`, `criteria-changed`, `reactivated`): recorded on each membership change. */
  cause: string;
}

/** `segment-refresh-<segmentId>`: recomputes a segment's membership (one transactional activity). */
export async function segmentRefreshWorkflow(input: SegmentRefreshInput): Promise<RefreshResult> {
  return refreshSegmentMembership(input);
}

/**
 * Started by the schedule `segment-refresh-schedule-<segmentId>`. A Schedule appends a timestamp
 * to the workflow ids it starts, so the refresh itself runs as `segment-refresh-<segmentId>`, the
 * id manual refreshes use: whichever starts second joins the first instead of running beside it.
 * The refresh is abandoned, not awaited: it outlives this run, which ends once it started.
 */
export async function scheduledSegmentRefreshWorkflow(input: { tenantId: string; segmentId: string }): Promise<'started' | 'joined'> {
  try {
    await startChild(segmentRefreshWorkflow, {
      workflowId: `segment-refresh-${input.segmentId}`,
      args: [{ ...input, cause: 'schedule' }],
      parentClosePolicy: ParentClosePolicy.ABANDON,
      typedSearchAttributes: [{ key: TenantId, value: input.tenantId }, { key: SegmentId, value: input.segmentId }],
    });
    return 'started';
  } catch (err) {
    if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
    log.info('a refresh of this segment is already running; joined it', { segmentId: input.segmentId });
    return 'joined';
  }
}

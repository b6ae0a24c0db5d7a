import { proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';
import type { RefreshResult } from '../domain/segments/membership.js';

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

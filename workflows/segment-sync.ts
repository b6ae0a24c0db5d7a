import { proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';

const { ensureMessagingSegment, syncSegmentMembers } = proxyActivities<Activities>({
  startToCloseTimeout: '1 hour',
  heartbeatTimeout: '1 minute',
  // 5xx, 429 and timeouts retry with backoff; other 4xx answers fail at once (non-retryable failures).
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '1 minute', maximumAttempts: 10 },
});

export interface SegmentSyncResult {
  messagingSegmentId: string;
  syncedCount: number;
  syncedAt: string;
}

/** `segment-sync-<segmentId>`: makes the Messaging service's copy of a segment match ours. */
export async function segmentSyncWorkflow(input: { tenantId: string; segmentId: string }): Promise<SegmentSyncResult> {
  const messagingSegmentId = await ensureMessagingSegment(input);
  const { syncedCount } = await syncSegmentMembers({ ...input, messagingSegmentId });
  return { messagingSegmentId, syncedCount, syncedAt: new Date().toISOString() };
}

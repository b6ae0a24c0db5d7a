import { proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';

// `segment-count-fold-all`, started hourly by the schedule `segment-count-fold`
// (worker/schedules.ts): folds the real-time count rows of every segment that has several (one per
// connection that wrote to it, domain/segments/member-counts.ts), so a count reads few rows however
// long no refresh ran. One activity, which heartbeats per page of segments and resumes after the
// last one folded: the history stays a few events.

const { foldSegmentMemberCounts } = proxyActivities<Activities>({
  startToCloseTimeout: '50 minutes',
  heartbeatTimeout: '2 minutes',
  retry: { initialInterval: '5 seconds', maximumInterval: '1 minute', maximumAttempts: 5 },
});

export async function segmentCountFoldWorkflow(): Promise<{ segments: number; rows: number }> {
  return foldSegmentMemberCounts();
}

import { proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';

// `analytics-rollup-fold-all`, started hourly by the schedule `analytics-rollup-fold`
// (worker/schedules.ts): folds the analytics rollup rows of every tenant that has unfolded ones
// (domain/analytics/fold.ts), so reads sum few rows per key all day long. One activity, which
// heartbeats per tenant and resumes after the last one folded: the history stays a few events.

const { foldAnalyticsRollups } = proxyActivities<Activities>({
  startToCloseTimeout: '50 minutes',
  heartbeatTimeout: '2 minutes',
  retry: { initialInterval: '5 seconds', maximumInterval: '1 minute', maximumAttempts: 5 },
});

export async function analyticsFoldWorkflow(): Promise<{ tenants: number; rows: number }> {
  return foldAnalyticsRollups();
}

import { continueAsNew, log, proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';

// `social-metrics-all`, started hourly by the schedule `social-metrics` (worker/schedules.ts):
// likes, comments, shares and reach of every post published in the last 30 days, a page of
// connections at a time, each connection in one activity. A connection that keeps failing (a
// revoked app, a platform down) is counted and passed over; the others are read all the same.

const { socialMetricsConnections } = proxyActivities<Activities>({
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '1 second', maximumInterval: '1 minute' },
});

const { refreshSocialMetrics } = proxyActivities<Activities>({
  startToCloseTimeout: '15 minutes',
  heartbeatTimeout: '1 minute',
  retry: { initialInterval: '5 seconds', backoffCoefficient: 2, maximumInterval: '1 minute', maximumAttempts: 3 },
});

export interface SocialMetricsTotals {
  connections: number;
  posts: number;
  failedPosts: number;
  failedConnections: number;
}

export const SOCIAL_METRICS_DAYS = 30;
const PAGE = 50;

export async function socialMetricsWorkflow(input: { after?: string | null; since?: string; totals?: SocialMetricsTotals } = {}): Promise<SocialMetricsTotals> {
  const since = input.since ?? new Date(Date.now() - SOCIAL_METRICS_DAYS * 86_400_000).toISOString();
  const totals: SocialMetricsTotals = input.totals ?? { connections: 0, posts: 0, failedPosts: 0, failedConnections: 0 };
  let after = input.after ?? null;
  for (;;) {
    const page = await socialMetricsConnections({ since, after, limit: PAGE });
    const results = await Promise.allSettled(page.map((c) => refreshSocialMetrics({ ...c, since })));
    results.forEach((r, i) => {
      if (r.status === 'fulfilled') {
        totals.connections++;
        totals.posts += r.value.updated;
        totals.failedPosts += r.value.failed;
      } else {
        totals.failedConnections++;
        log.warn('social metrics: a connection failed; passed over until the next run', { connectionId: page[i]!.connectionId, error: String(r.reason) });
      }
    });
    if (page.length < PAGE) return totals;
    after = page.at(-1)!.connectionId;
    if (workflowInfo().continueAsNewSuggested || workflowInfo().historyLength > 2_000) {
      return continueAsNew<typeof socialMetricsWorkflow>({ after, since, totals });
    }
  }
}

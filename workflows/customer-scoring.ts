import { CancellationScope, continueAsNew, executeChild, isCancellation, log, proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';
import { TenantId } from '../platform/search-attributes.js';

const { listTenants, computeScores, refreshSmartSegments } = proxyActivities<Activities>({
  startToCloseTimeout: '2 hours',
  heartbeatTimeout: '2 minutes',
  retry: { initialInterval: '5 seconds', maximumInterval: '5 minutes', maximumAttempts: 10 },
});

// Tenants scored per run before continuing as new, to keep the history bounded.
const TENANTS_PER_RUN = 100;

/** `customer-scoring-<tenantId>`: recomputes scores, then the tenant's SMART segments. */
export async function customerScoringWorkflow(input: { tenantId: string }): Promise<{ scored: number; smartSegments: number }> {
  const { scored } = await computeScores(input);
  const smartSegments = await refreshSmartSegments(input);
  return { scored, smartSegments };
}

/** Started by the `customer-scoring` schedule: scores every tenant, one child workflow each. */
export async function scoreAllTenantsWorkflow(input: { remaining?: string[] } = {}): Promise<void> {
  const tenants = input.remaining ?? (await listTenants());
  for (const [i, tenantId] of tenants.entries()) {
    if (i === TENANTS_PER_RUN) return continueAsNew<typeof scoreAllTenantsWorkflow>({ remaining: tenants.slice(i) });
    try {
      await executeChild(customerScoringWorkflow, {
        workflowId: `customer-scoring-${tenantId}`,
        args: [{ tenantId }],
        taskQueue: workflowInfo().taskQueue,
        typedSearchAttributes: [{ key: TenantId, value: tenantId }],
      });
    } catch (err) {
      // Cancelling the whole run must stop it, not move on to the next tenant. An operator
      // cancelling one tenant's child is that tenant's failure only: the others go on.
      if (isCancellation(err) && CancellationScope.current().consideredCancelled) throw err;
      // One tenant's failure (or a run of it already going) must not stop the others.
      log.warn('tenant scoring did not complete', { tenantId, error: String(err) });
    }
  }
}

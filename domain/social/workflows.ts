import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import type { Config } from '../../platform/config.js';
import { TenantId } from '../../platform/search-attributes.js';
import { tokenRefreshId, tokensChangedSignal, type socialTokenRefreshWorkflow } from '../../workflows/social-token-refresh.js';

// How the connections service drives the token refresh workflow `social-token-refresh-<connectionId>`.

/**
 * Starts the connection's refresh workflow, or tells the running one its tokens changed (a
 * reconnect) so it computes its next refresh again: one run per connection.
 */
export async function startTokenRefresh(temporal: Client, config: Config, tenantId: string, connectionId: string): Promise<void> {
  await temporal.workflow.signalWithStart<typeof socialTokenRefreshWorkflow>('socialTokenRefreshWorkflow', {
    workflowId: tokenRefreshId(connectionId),
    taskQueue: config.TEMPORAL_TASK_QUEUE,
    args: [{ tenantId, connectionId }],
    signal: tokensChangedSignal,
    signalArgs: [],
    typedSearchAttributes: [{ key: TenantId, value: tenantId }],
  });
}

/** Ends the connection's refresh workflow (disconnected); none running is fine. */
export async function stopTokenRefresh(temporal: Client, connectionId: string): Promise<void> {
  try {
    await temporal.workflow.getHandle(tokenRefreshId(connectionId)).terminate('social account disconnected');
  } catch (err) {
    if (!(err instanceof WorkflowNotFoundError)) throw err;
  }
}

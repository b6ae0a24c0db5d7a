import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import type { EntityManager } from '@mikro-orm/postgresql';
import { TenantId } from '../../platform/search-attributes.js';
import { signalWithStartAgainIfClosed } from '../../platform/temporal.js';
import { tokenRefreshId, tokensChangedSignal, type socialTokenRefreshWorkflow, type TokenRefreshInput } from '../../workflows/social-token-refresh.js';

// How the connections service drives the token refresh workflow `social-token-refresh-<connectionId>`.
// Starting it goes through the reaction outbox (worker/outbox.ts): a row written in the transaction
// that stores the connection, relayed by the workers' dispatcher once committed, so a connection
// is answered (and refreshed later) even while Temporal is unavailable.
//  - SOCIAL_TOKEN_REFRESH, key = `<connectionId>:<stateId>`: one row per completion, since a
//    reconnect must reach a refresh workflow already running.

export const SOCIAL_TOKEN_REFRESH = 'social-token-refresh';

export interface TokenRefreshPayload extends TokenRefreshInput {
  workflowId: string;
}

/** Queues the start (or wake-up) of the connection's refresh workflow, in `em`'s transaction. */
export async function enqueueTokenRefresh(em: EntityManager, tenantId: string, connectionId: string, stateId: string): Promise<void> {
  const payload: TokenRefreshPayload = { workflowId: tokenRefreshId(connectionId), tenantId, connectionId };
  await em.execute(
    `insert into reaction_outbox (id, tenant_id, kind, key, payload) values (gen_random_uuid(), ?, ?, ?, ?::jsonb)
     on conflict (tenant_id, kind, key) do nothing`,
    [tenantId, SOCIAL_TOKEN_REFRESH, `${connectionId}:${stateId}`, JSON.stringify(payload)],
  );
  // Wakes listening dispatchers at commit.
  await em.execute(`select pg_notify('reaction_outbox', '')`);
}

/**
 * Starts the connection's refresh workflow, or tells the running one its tokens changed (a
 * reconnect) so it computes its next refresh again: one run per connection.
 */
export async function startTokenRefresh(temporal: Client, taskQueue: string, { workflowId, tenantId, connectionId }: TokenRefreshPayload): Promise<void> {
  await signalWithStartAgainIfClosed(() =>
    temporal.workflow.signalWithStart<typeof socialTokenRefreshWorkflow>('socialTokenRefreshWorkflow', {
      workflowId,
      taskQueue,
      args: [{ tenantId, connectionId }],
      signal: tokensChangedSignal,
      signalArgs: [],
      typedSearchAttributes: [{ key: TenantId, value: tenantId }],
    }),
  );
}

/** Ends the connection's refresh workflow (disconnected); none running is fine. */
export async function stopTokenRefresh(temporal: Client, connectionId: string): Promise<void> {
  try {
    await temporal.workflow.getHandle(tokenRefreshId(connectionId)).terminate('social account disconnected');
  } catch (err) {
    if (!(err instanceof WorkflowNotFoundError)) throw err;
  }
}

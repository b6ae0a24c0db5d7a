import { condition, continueAsNew, defineSignal, proxyActivities, setHandler } from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';

// `social-token-refresh-<connectionId>`: keeps one connection's access token fresh. Each run asks
// when the token should be refreshed (SOCIAL_REFRESH_MARGIN_MS before it expires), sleeps until
// then, refreshes, and continues as new, so the history stays one cycle long. Only ids pass
// through it; the activities load, decrypt and store the tokens. It ends when the connection needs
// no refresh (its token does not expire, or it has no refresh token) or is no longer active (the
// grant was refused: the connection is marked inactive with the reason).

export interface TokenRefreshInput {
  tenantId: string;
  connectionId: string;
}

export const tokenRefreshId = (connectionId: string) => `social-token-refresh-${connectionId}`;

/** The connection's tokens changed (reconnected): compute the next refresh again. */
export const tokensChangedSignal = defineSignal('tokensChanged');

const { socialTokenRefreshDue, refreshSocialToken } = proxyActivities<Activities>({
  startToCloseTimeout: '2 minutes',
  // A platform that does not answer, or limits the rate, is tried again later; the token is
  // refreshed ahead of its expiry, so there is time.
  retry: { initialInterval: '30 seconds', backoffCoefficient: 2, maximumInterval: '10 minutes' },
});

export async function socialTokenRefreshWorkflow(input: TokenRefreshInput): Promise<void> {
  let changed = false;
  setHandler(tokensChangedSignal, () => {
    changed = true;
  });
  for (;;) {
    changed = false;
    const due = await socialTokenRefreshDue(input);
    if (!due) return;
    // Woken early by a reconnect: the tokens (and their expiry) are new, so ask again.
    if (due.inMs > 0 && (await condition(() => changed, due.inMs))) continue;
    const next = await refreshSocialToken({ ...input, seenExpiry: due.expiry });
    if (!next) return;
    await continueAsNew<typeof socialTokenRefreshWorkflow>(input);
  }
}

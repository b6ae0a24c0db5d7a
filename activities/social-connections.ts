import { ApplicationFailure } from '@temporalio/activity';
import { refreshConnection } from '../domain/social/credentials.js';
import { AppError } from '../platform/errors.js';
import { RateLimitedError, SocialApiError } from '../platform/social/index.js';
import type { TokenRefreshInput } from '../workflows/social-token-refresh.js';
import type { ActivityDeps } from './index.js';

// The token refresh workflow's activities: they take ids, load and decrypt the tokens themselves,
// and answer only times, so no token enters a workflow's history.

export interface RefreshDue {
  /** How long until the refresh (SOCIAL_REFRESH_MARGIN_MS before expiry); 0 when already due. */
  inMs: number;
  /** The expiry it was computed from: the refresh does nothing if another caller changed it meanwhile. */
  expiry: string;
}

export function socialConnectionActivities({ orm, config, log }: ActivityDeps) {
  return {
    /** When the connection's token needs refreshing; null when never (no expiry, no refresh token, inactive, gone). */
    async socialTokenRefreshDue({ tenantId, connectionId }: TokenRefreshInput): Promise<RefreshDue | null> {
      const [row] = await orm.em.fork().execute<{ token_expiry: Date | null }[]>(
        `select token_expiry from social_connections
          where tenant_id = ? and id = ? and is_active and refresh_token_encrypted is not null and token_expiry is not null`,
        [tenantId, connectionId],
      );
      if (!row?.token_expiry) return null;
      const expiry = new Date(row.token_expiry);
      // A duration, not an instant: the workflow sleeps it on its own clock.
      return { inMs: Math.max(0, expiry.getTime() - config.SOCIAL_REFRESH_MARGIN_MS - Date.now()), expiry: expiry.toISOString() };
    },

    /** Refreshes (once, under the row lock) and answers the next refresh; null when the connection is (or went) inactive or is gone. */
    async refreshSocialToken({ tenantId, connectionId, seenExpiry }: TokenRefreshInput & { seenExpiry: string }): Promise<{ expiry: string | null } | null> {
      try {
        const outcome = await refreshConnection(orm.em.fork(), config, tenantId, connectionId, { expiry: new Date(seenExpiry) });
        if (outcome.kind === 'inactive') {
          log.warn({ tenantId, connectionId, reason: outcome.reason }, 'social connection inactive: its grant was refused');
          return null;
        }
        return { expiry: outcome.credentials.expiresAt?.toISOString() ?? null };
      } catch (err) {
        // Disconnected (or gone) meanwhile: nothing to refresh, and retrying would never succeed.
        if (err instanceof AppError && (err.code === 'INVALID_STATE' || err.code === 'RESOURCE_NOT_FOUND')) return null;
        if (err instanceof RateLimitedError) {
          throw ApplicationFailure.create({ message: err.message, type: 'RateLimited', nextRetryDelay: err.retryAfterMs });
        }
        // Never the error object itself: only its message, which carries no token.
        if (err instanceof SocialApiError) throw ApplicationFailure.create({ message: err.message, type: err.name, nonRetryable: false });
        throw err;
      }
    },
  };
}

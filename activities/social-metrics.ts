import { ApplicationFailure, Context } from '@temporalio/activity';
import type { SocialPlatform } from '../db/entities/enums.js';
import { publishCredentials, refreshCredentials, type PublishCredentials } from '../domain/social/credentials.js';
import { RateLimitedError, socialClient, SocialApiError, TokenExpiredError, type PostMetrics } from '../platform/social/index.js';
import type { ActivityDeps } from './index.js';

// The metrics workflow's activities: which connections published in the window, and one
// connection's posts' numbers, a page at a time (the heartbeat carries where it got to, so a retry
// goes on from there).

const POSTS_PAGE = 100;

export function socialMetricsActivities({ orm, config, log }: ActivityDeps) {
  return {
    /** Connections (of every tenant) with posts published since `since`, in id order after `after`. */
    async socialMetricsConnections(input: { since: string; after: string | null; limit: number }): Promise<{ tenantId: string; connectionId: string }[]> {
      const rows = await orm.em.fork().execute<{ tenant_id: string; connection_id: string }[]>(
        `select distinct tenant_id, connection_id from social_posts
          where status = 'PUBLISHED' and platform_post_id is not null and published_at >= ?::timestamptz
            and connection_id > coalesce(?::uuid, '00000000-0000-0000-0000-000000000000')
          order by connection_id limit ?`,
        [input.since, input.after, input.limit]);
      return rows.map((r) => ({ tenantId: r.tenant_id, connectionId: r.connection_id }));
    },

    /**
     * Reads the numbers of the connection's posts published since `since` and stores them. A post
     * the platform refuses (deleted there, say) is counted as failed and passed over; a 429 waits
     * for Retry-After through the activity's retry; an inactive connection fails the activity.
     */
    async refreshSocialMetrics(input: { tenantId: string; connectionId: string; since: string }): Promise<{ updated: number; failed: number }> {
      const ctx = Context.current();
      const em = orm.em.fork();
      let creds: PublishCredentials = await publishCredentials(em, config, input.tenantId, input.connectionId)
        .catch((err: Error) => { throw ApplicationFailure.nonRetryable(err.message, 'ConnectionUnavailable'); });
      let refreshed = false;
      const client = socialClient(config, creds.platform as SocialPlatform);
      const progress = { after: (ctx.info.heartbeatDetails as { after?: string } | undefined)?.after ?? null, updated: 0, failed: 0 };
      for (;;) {
        const posts = await em.execute<{ id: string; platform_post_id: string }[]>(
          `select id, platform_post_id from social_posts
            where tenant_id = ? and connection_id = ? and status = 'PUBLISHED' and platform_post_id is not null and published_at >= ?::timestamptz
              and id > coalesce(?::uuid, '00000000-0000-0000-0000-000000000000')
            order by id limit ?`,
          [input.tenantId, input.connectionId, input.since, progress.after, POSTS_PAGE]);
        for (const post of posts) {
          let metrics: PostMetrics | undefined;
          try {
            try {
              metrics = await client.metrics(creds.accountId, creds.accessToken, post.platform_post_id);
            } catch (err) {
              if (!(err instanceof TokenExpiredError) || refreshed) throw err;
              refreshed = true;
              creds = await refreshCredentials(em, config, input.tenantId, input.connectionId);
              metrics = await client.metrics(creds.accountId, creds.accessToken, post.platform_post_id);
            }
          } catch (err) {
            if (err instanceof RateLimitedError) throw ApplicationFailure.create({ message: err.message, type: 'RateLimited', nextRetryDelay: err.retryAfterMs });
            if (!(err instanceof SocialApiError) || err.retryable || err instanceof TokenExpiredError) throw err;
            progress.failed++;
            log.warn({ tenantId: input.tenantId, postId: post.id, error: err.message }, 'social metrics: the platform refused this post\'s metrics');
          }
          if (metrics) {
            await em.execute(
              `update social_posts set likes = ?, comments = ?, shares = ?, reach = ?, metrics_updated_at = now() where tenant_id = ? and id = ?`,
              [metrics.likes, metrics.comments, metrics.shares, metrics.reach, input.tenantId, post.id]);
            progress.updated++;
          }
          // Per post, not per page: a page of slow answers (each up to SOCIAL_TIMEOUT_MS) outlasts
          // the heartbeat timeout, and a retry would start that page over, never getting past it.
          progress.after = post.id;
          ctx.heartbeat({ after: progress.after });
        }
        ctx.heartbeat({ after: progress.after });
        if (posts.length < POSTS_PAGE) return { updated: progress.updated, failed: progress.failed };
      }
    },
  };
}

import { randomUUID } from 'node:crypto';
import { ApplicationFailure, Context } from '@temporalio/activity';
import type { EntityManager } from '@mikro-orm/postgresql';
import type { SocialPlatform, SocialPostStatus } from '../db/entities/enums.js';
import { createClubPosts } from '../domain/social/club-posts.js';
import { publishCredentials, refreshCredentials, type PublishCredentials } from '../domain/social/credentials.js';
import { composePost, platformFaults } from '../domain/social/validation.js';
import { AppError } from '../platform/errors.js';
import {
  InvalidGrantError, OutcomeUnknownError, RateLimitedError, socialClient, SocialApiError, TokenExpiredError, UploadFailedError, type PublishedPost,
  type PublishProgress,
} from '../platform/social/index.js';
import type { ActivityDeps } from './index.js';

// Publishing a post, at most once. The post is claimed (→ PUBLISHING, its content read in the same
// statement), then each platform call is recorded first (publish_attempt_id, publish_attempt_at)
// in its own committed statement, and cleared when the platform's answer is definite. A recorded
// attempt found by the next try means its answer was lost: the platform is asked what it published
// since (findPublished) before anything is sent again. A platform that names an upload before it is
// public (TikTok, Instagram) has that name recorded with the attempt (publish_handle), and a retry
// asks after that upload (resume) instead.

interface PostRef {
  tenantId: string;
  postId: string;
}

export type PublishOutcome =
  | { status: 'PUBLISHED' | 'FAILED' | 'DRAFT' | 'SCHEDULED' | 'GONE' }
  | { status: 'RATE_LIMITED'; retryAfterMs: number };

interface Claimed {
  connection_id: string;
  content: string;
  media_urls: string[];
  hashtags: string[];
  link_url: string | null;
  publish_attempt_id: string | null;
  publish_attempt_at: Date | null;
  publish_handle: string | null;
}

// The platform's clock and ours may differ a little: an unknown attempt is looked for from this
// much before it was recorded.
const FIND_SLACK_MS = 60_000;

/**
 * Runs `call` with the connection's token; a token refused as expired is refreshed once
 * (refreshCredentials) and the call made again. A second refusal is the caller's.
 */
async function withToken<T>(em: EntityManager, deps: ActivityDeps, ref: PostRef, state: { creds: PublishCredentials; refreshed: boolean },
  call: (creds: PublishCredentials) => Promise<T>): Promise<T> {
  try {
    return await call(state.creds);
  } catch (err) {
    if (!(err instanceof TokenExpiredError) || state.refreshed) throw err;
    state.refreshed = true;
    state.creds = await refreshCredentials(em, deps.config, ref.tenantId, state.creds.connectionId);
    return call(state.creds);
  }
}

export function socialPostActivities(deps: ActivityDeps) {
  const { orm, config, log } = deps;

  const finish = async (em: EntityManager, ref: PostRef, attemptId: string | null, set: { published?: PublishedPost; at?: Date; error?: string }) => {
    const [row] = set.published
      ? await em.execute<{ status: SocialPostStatus }[]>(
        `update social_posts set status = 'PUBLISHED', platform_post_id = ?, platform_url = ?, published_at = ?, error = null,
                publish_attempt_id = null, publish_attempt_at = null, publish_handle = null, updated_at = now()
          where tenant_id = ? and id = ? and status = 'PUBLISHING' and publish_attempt_id is not distinct from ?::uuid returning status`,
        [set.published.platformPostId, set.published.platformUrl, set.at ?? new Date(), ref.tenantId, ref.postId, attemptId])
      // An attempt still recorded is one whose outcome is unknown (definite answers clear theirs at
      // once): it stays, so publishing this post again asks the platform about it first.
      : await em.execute<{ status: SocialPostStatus }[]>(
        `update social_posts set status = 'FAILED', error = ?, updated_at = now()
          where tenant_id = ? and id = ? and status = 'PUBLISHING' returning status`,
        [set.error ?? 'failed', ref.tenantId, ref.postId]);
    if (row) return row.status;
    const [current] = await em.execute<{ status: SocialPostStatus }[]>('select status from social_posts where tenant_id = ? and id = ?', [ref.tenantId, ref.postId]);
    return current?.status ?? 'GONE';
  };

  return {
    /** The post's status and scheduledAt, for its run to sleep on. */
    async readSocialPostSchedule(ref: PostRef): Promise<{ status: SocialPostStatus | 'GONE'; scheduledAt: string | null }> {
      const [row] = await orm.em.fork().execute<{ status: SocialPostStatus; scheduled_at: Date | null }[]>(
        'select status, scheduled_at from social_posts where tenant_id = ? and id = ?', [ref.tenantId, ref.postId]);
      if (!row) return { status: 'GONE', scheduledAt: null };
      return { status: row.status, scheduledAt: row.scheduled_at ? new Date(row.scheduled_at).toISOString() : null };
    },

    /**
     * Publishes the post as it is now (see the top of this file). 429: the answer says how long to
     * wait, and the run waits that long before calling again. Definite refusals: FAILED with the
     * platform's message. No answer: thrown, so the activity's retry checks that attempt first.
     */
    async publishSocialPost(ref: PostRef & { asOf?: string; scheduledAt?: string }): Promise<PublishOutcome> {
      const started = Date.now();
      const em = orm.em.fork();
      // A run woken by its timer (`scheduledAt`: what it slept until, to the millisecond) claims the
      // post only if it is still SCHEDULED for then or earlier: a reschedule committed as the timer
      // fired moves the publish, it does not lose to it. A publish now (or one claimed already) takes it as it is.
      const [post] = await em.execute<Claimed[]>(
        `update social_posts set status = 'PUBLISHING', error = null, updated_at = now()
          where tenant_id = ? and id = ? and (status = 'PUBLISHING'
             or (?::timestamptz is null and status in ('DRAFT', 'SCHEDULED', 'FAILED'))
             or (status = 'SCHEDULED' and scheduled_at < ?::timestamptz + interval '1 millisecond'))
          returning connection_id, content, media_urls, hashtags, link_url, publish_attempt_id, publish_attempt_at, publish_handle`,
        [ref.tenantId, ref.postId, ref.scheduledAt ?? null, ref.scheduledAt ?? null]);
      if (!post) {
        const [row] = await em.execute<{ status: SocialPostStatus }[]>('select status from social_posts where tenant_id = ? and id = ?', [ref.tenantId, ref.postId]);
        return { status: row ? row.status as Exclude<SocialPostStatus, 'PUBLISHING'> : 'GONE' };
      }
      // When it was published, on the run's clock (a time-skipping test server's runs ahead).
      const skew = ref.asOf ? Math.max(0, Date.parse(ref.asOf) - Date.now()) : 0;
      const at = () => new Date(Date.now() + skew);
      const fail = (error: string) => finish(em, ref, null, { error }).then((status) => ({ status }) as PublishOutcome);

      // A campaign's post (one it publishes: SOCIAL among its channels) waiting out a 429 or a
      // retry when the campaign was cancelled is sent no further. An attempt whose outcome is
      // unknown is still looked for first: it may have published already.
      const [campaign] = await em.execute<{ status: string }[]>(
        `select c.status from social_posts p join campaigns c on c.tenant_id = p.tenant_id and c.id = p.campaign_id
          where p.tenant_id = ? and p.id = ? and 'SOCIAL' = any(c.channels)`, [ref.tenantId, ref.postId]);
      const campaignCancelled = campaign?.status === 'CANCELLED';
      const CAMPAIGN_CANCELLED = 'its campaign was cancelled before it was published';
      if (campaignCancelled && !post.publish_attempt_id) return fail(CAMPAIGN_CANCELLED);
      const [connection] = await em.execute<{ platform: SocialPlatform }[]>(
        'select platform from social_connections where tenant_id = ? and id = ?', [ref.tenantId, post.connection_id]);
      if (!connection) return fail('the social connection was removed');
      const parts = { content: post.content, hashtags: post.hashtags, linkUrl: post.link_url, mediaUrls: post.media_urls };
      // The post may have been edited since it was checked; what is sent is checked as it is now.
      const faults = platformFaults(connection.platform, parts, 'post');
      if (faults.length) return fail(faults.map((f) => f.message).join('; '));
      const request = composePost(parts);

      let state: { creds: PublishCredentials; refreshed: boolean };
      try {
        state = { creds: await publishCredentials(em, config, ref.tenantId, post.connection_id), refreshed: false };
      } catch (err) {
        if (err instanceof AppError) return fail(err.message);
        throw err;
      }
      const client = socialClient(config, connection.platform);
      const ctx = Context.current();
      const logged = { tenantId: ref.tenantId, postId: ref.postId, platform: connection.platform, attempt: ctx.info.attempt };

      // An attempt is given until its activity's limit, less a platform call's timeout for the last
      // status poll and one for what follows it (SOCIAL_TIMEOUT_MS): it ends by itself, before a
      // retry can start beside it.
      const waitUntil = Math.min(Date.now() + config.SOCIAL_PROCESSING_WAIT_MS,
        started + ctx.info.startToCloseTimeoutMs - 2 * config.SOCIAL_TIMEOUT_MS - 5_000);
      // Whether the platform holds an upload of the attempt (its handle recorded).
      let holdsUpload = post.publish_handle !== null;
      const progress = (attemptId: string): PublishProgress => ({
        waitUntil,
        accepted: async (handle) => {
          await em.execute('update social_posts set publish_handle = ? where tenant_id = ? and id = ? and publish_attempt_id = ?',
            [handle, ref.tenantId, ref.postId, attemptId]);
          holdsUpload = true;
        },
      });
      /** The platform call of attempt `attemptId`, recorded when its answer is definite. */
      const attempt = async (attemptId: string, call: (c: PublishCredentials) => Promise<PublishedPost>) => {
        try {
          const published = await withToken(em, deps, ref, state, call);
          await em.execute('update social_connections set last_used_at = now() where tenant_id = ? and id = ?', [ref.tenantId, post.connection_id]);
          log.info({ ...logged, platformPostId: published.platformPostId }, 'social post published');
          return { status: await finish(em, ref, attemptId, { published, at: at() }) as 'PUBLISHED' };
        } catch (err) {
          if (err instanceof OutcomeUnknownError || !(err instanceof SocialApiError || err instanceof AppError)) throw err; // attempt kept: checked next time
          // A definite answer: nothing was published by this attempt. Once the platform holds an
          // upload of it, though, only the platform's word that the upload failed says so: a 429, a
          // refused refresh, a status request refused, leave the upload to be asked after again.
          if (!holdsUpload || err instanceof UploadFailedError) {
            await em.execute(`update social_posts set publish_attempt_id = null, publish_attempt_at = null, publish_handle = null
                               where tenant_id = ? and id = ? and publish_attempt_id = ?`, [ref.tenantId, ref.postId, attemptId]);
          }
          throw err;
        }
      };

      try {
        const previous = post.publish_attempt_id;
        if (previous) {
          const since = new Date(new Date(post.publish_attempt_at!).getTime() - FIND_SLACK_MS);
          // The platform named the upload it took: that upload is asked after, never posted again.
          const handle = post.publish_handle;
          if (handle && client.resume && !campaignCancelled) {
            return await attempt(previous, (c) => client.resume!(c.accountId, c.accessToken, { post: request, handle, since }, progress(previous)));
          }
          // An attempt whose answer never came: the platform says whether it published.
          const found = await withToken(em, deps, ref, state, (c) => client.findPublished(c.accountId, c.accessToken, request, since));
          if (found) {
            log.info({ ...logged, platformPostId: found.platformPostId }, 'social post: the attempt whose answer was lost had published it');
            return { status: await finish(em, ref, previous, { published: found, at: at() }) as 'PUBLISHED' };
          }
          // Not published (as far as the platform lists): a cancelled campaign's post goes no further
          // (an upload the platform still processes stays recorded).
          if (campaignCancelled) return fail(CAMPAIGN_CANCELLED);
        }
        // Recorded and committed before the call: if its answer is lost, the next try knows.
        const attemptId = randomUUID();
        const taken = await em.execute(
          `update social_posts set publish_attempt_id = ?, publish_attempt_at = now(), publish_handle = null
            where tenant_id = ? and id = ? and status = 'PUBLISHING' and publish_attempt_id is not distinct from ?::uuid returning id`,
          [attemptId, ref.tenantId, ref.postId, previous]);
        if (!taken.length) throw ApplicationFailure.retryable('another attempt took this post meanwhile', 'AttemptRace');
        holdsUpload = false;
        return await attempt(attemptId, (c) => client.publish(c.accountId, c.accessToken, request, progress(attemptId)));
      } catch (err) {
        if (err instanceof RateLimitedError) {
          log.warn({ ...logged, retryAfterMs: err.retryAfterMs }, 'social post: rate limited; waiting');
          return { status: 'RATE_LIMITED', retryAfterMs: err.retryAfterMs };
        }
        if (err instanceof OutcomeUnknownError) {
          log.warn({ ...logged, error: err.message }, 'social post: no answer; the next attempt checks first');
          throw ApplicationFailure.retryable(err.message, 'OutcomeUnknown');
        }
        if (err instanceof SocialApiError && err.retryable) throw ApplicationFailure.retryable(err.message, 'SocialApiError');
        // Refused for good: a second expired token, a revoked grant (refreshCredentials marks the
        // connection inactive), the platform's own refusal.
        if (err instanceof TokenExpiredError) return fail(`${err.message} (after refreshing the token once)`);
        if (err instanceof InvalidGrantError || err instanceof SocialApiError || err instanceof AppError) return fail(err.message);
        throw err;
      }
    },

    /** The run gave up (attempts spent): FAILED, the attempt's record kept for a later publish to check. */
    async failSocialPost(ref: PostRef & { error: string }): Promise<SocialPostStatus | 'GONE'> {
      return finish(orm.em.fork(), ref, null, { error: ref.error });
    },

    /**
     * A SOCIAL campaign's posts: for each active connection of its club without a post of the
     * campaign, a copy of the campaign's first post (createClubPosts); answers the posts still to
     * publish (neither PUBLISHED nor FAILED).
     */
    async prepareCampaignPosts(ref: { tenantId: string; campaignId: string }): Promise<string[]> {
      const em = orm.em.fork();
      const [source] = await em.execute<{ club_id: string | null; content: string; media_urls: string[]; hashtags: string[]; link_url: string | null }[]>(
        `select c.club_id, p.content, p.media_urls, p.hashtags, p.link_url
           from campaigns c join social_posts p on p.tenant_id = c.tenant_id and p.campaign_id = c.id
          where c.tenant_id = ? and c.id = ? and 'SOCIAL' = any(c.channels) order by p.created_at, p.id limit 1`,
        [ref.tenantId, ref.campaignId]);
      // A post merely attributed to a campaign without SOCIAL is not the campaign's to publish.
      if (!source) return [];
      if (source.club_id) {
        await createClubPosts(em, {
          tenantId: ref.tenantId, clubId: source.club_id, campaignId: ref.campaignId, key: `campaign-${ref.campaignId}`,
          content: source.content, mediaUrls: source.media_urls, hashtags: source.hashtags, linkUrl: source.link_url,
        });
      }
      const rows = await em.execute<{ id: string }[]>(
        `select id from social_posts where tenant_id = ? and campaign_id = ? and status in ('DRAFT', 'SCHEDULED', 'PUBLISHING') order by created_at, id`,
        [ref.tenantId, ref.campaignId]);
      return rows.map((r) => r.id);
    },
  };
}

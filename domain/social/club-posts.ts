import type { EntityManager } from '@mikro-orm/postgresql';
import { v7 as uuidv7 } from 'uuid';
import type { Campaign } from '../../db/entities/index.js';
import type { SocialPlatform } from '../../db/entities/enums.js';
import { pgArray } from '../../db/sql.js';
import { AppError } from '../../platform/errors.js';
import { normaliseHashtags, platformFaults } from './validation.js';

// One post per active social connection of a club, for callers that post "to the club" rather than
// to one account: a SOCIAL campaign (activities/social-posts.ts) and event promotions. Publishing
// is the caller's next step: from a workflow, `publishSocialPosts(tenantId, postIds)` of
// workflows/social-post.ts (child runs `social-post-<id>`, awaited).

export interface ClubPostsInput {
  tenantId: string;
  clubId: string;
  campaignId?: string | null;
  content: string;
  mediaUrls?: readonly string[] | null;
  hashtags?: readonly string[] | null;
  linkUrl?: string | null;
  /** The business key (e.g. `promotion-<id>-announce`): one post per key and connection, ever. */
  key: string;
}

/**
 * Creates, idempotently by `key` and connection (and by campaign and connection when `campaignId`
 * is given), one DRAFT post per active connection of the club, and returns the ids of every post of
 * `key` (those made earlier included), oldest first. A copy the connection's platform would refuse
 * (no video for TikTok, too long for X) is created FAILED with the rule in `error`, so the caller
 * sees it instead of it vanishing. A connection without a post yet that is inactive gets none.
 */
export async function createClubPosts(em: EntityManager, input: ClubPostsInput): Promise<string[]> {
  const hashtags = normaliseHashtags(input.hashtags ?? [], 'hashtags');
  const parts = { content: input.content, hashtags, linkUrl: input.linkUrl ?? null, mediaUrls: input.mediaUrls ?? [] };
  const connections = await em.execute<{ id: string; platform: SocialPlatform }[]>(
    `select c.id, c.platform from social_connections c
      where c.tenant_id = ? and c.club_id = ? and c.is_active
        and not exists (select 1 from social_posts p where p.tenant_id = c.tenant_id and p.connection_id = c.id
                          and (p.source_key = ? or (?::uuid is not null and p.campaign_id = ?::uuid)))
      order by c.created_at, c.id`,
    [input.tenantId, input.clubId, input.key, input.campaignId ?? null, input.campaignId ?? null],
  );
  if (connections.length) {
    const rows = connections.map((c) => {
      const faults = platformFaults(c.platform, parts, 'post');
      return { id: uuidv7(), connectionId: c.id, error: faults.length ? `not publishable on ${c.platform}: ${faults.map((f) => f.message).join('; ')}` : null };
    });
    // A concurrent caller with the same key made some already: theirs stand.
    await em.execute(
      `insert into social_posts (id, tenant_id, connection_id, campaign_id, content, media_urls, hashtags, link_url, status, error, source_key)
       select t.id, ?, t.connection_id, ?::uuid, ?, ?::text[], ?::text[], ?, case when t.error is null then 'DRAFT' else 'FAILED' end, t.error, ?
         from unnest(?::uuid[], ?::uuid[], ?::text[]) as t(id, connection_id, error)
       on conflict do nothing`,
      [
        input.tenantId, input.campaignId ?? null, parts.content, pgArray([...parts.mediaUrls]), pgArray(hashtags), parts.linkUrl, input.key,
        pgArray(rows.map((r) => r.id)), pgArray(rows.map((r) => r.connectionId)), pgArray(rows.map((r) => r.error)),
      ],
    );
  }
  const ids = await em.execute<{ id: string }[]>(
    'select id from social_posts where tenant_id = ? and source_key = ? order by created_at, id',
    [input.tenantId, input.key],
  );
  return ids.map((r) => r.id);
}

/**
 * Before a campaign with SOCIAL is scheduled or executed: its content is its first post (a DRAFT
 * made with createSocialPost and its campaignId), and its club has an active connection to publish
 * to. VALIDATION_ERROR naming `channels` otherwise.
 */
export async function assertSocialCampaign(em: EntityManager, campaign: Campaign): Promise<void> {
  const refuse = (why: string) => {
    throw new AppError('VALIDATION_ERROR', `channels: SOCIAL ${why}`, { field: 'channels' });
  };
  if (campaign.type !== 'ONE_TIME' && campaign.type !== 'RECURRING') refuse(`is for ONE_TIME and RECURRING campaigns, not ${campaign.type}`);
  if (!campaign.clubId) refuse('publishes to the active social connections of the campaign\'s club: set clubId');
  const [row] = await em.execute<{ posts: number; connections: number }[]>(
    `select (select count(*) from social_posts where tenant_id = ? and campaign_id = ?)::int as posts,
            (select count(*) from social_connections where tenant_id = ? and club_id = ? and is_active)::int as connections`,
    [campaign.tenantId, campaign.id, campaign.tenantId, campaign.clubId]);
  if (!row!.posts) refuse('needs the campaign\'s post first: create one with createSocialPost and this campaignId (its content goes to every connection)');
  if (!row!.connections) refuse(`needs an active social connection of club ${campaign.clubId}; it has none`);
}

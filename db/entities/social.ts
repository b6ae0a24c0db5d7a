import { defineEntity, p, type InferEntity } from '@mikro-orm/core';
import { Campaign } from './campaign.js';
import { tenantOwned } from './common.js';
import { SocialPlatform, SocialPostStatus } from './enums.js';

export const SocialConnection = defineEntity({
  name: 'SocialConnection',
  tableName: 'social_connections',
  properties: {
    ...tenantOwned,
    clubId: p.string().length(100).nullable(),
    platform: p.enum(SocialPlatform),
    accountId: p.string().length(200),
    accountName: p.string(),
    accountType: p.string().length(100).nullable(),
    isActive: p.boolean().default(true),
    permissions: p.array<string>().default([]),
    // AES-256-GCM ciphertexts; hidden so that no serialisation can ever return them.
    accessTokenEncrypted: p.text().nullable().hidden(),
    refreshTokenEncrypted: p.text().nullable().hidden(),
    tokenExpiry: p.datetime().nullable(),
    lastUsedAt: p.datetime().nullable(),
    // Why the connection is inactive (a refused refresh, a disconnect); null while active.
    statusReason: p.text().nullable(),
    tokensRefreshedAt: p.datetime().nullable(),
  },
  uniques: [
    { name: 'social_connections_tenant_id_uniq', properties: ['tenantId', 'id'] },
    { name: 'social_connections_account_uniq', properties: ['tenantId', 'platform', 'accountId'] },
  ],
});
export type SocialConnection = InferEntity<typeof SocialConnection>;

// A pending OAuth authorisation: the row behind one signed `state`, deleted (consumed) by the
// completion that uses it. The PKCE code_verifier stays here, encrypted, never in the state.
export const SocialOAuthState = defineEntity({
  name: 'SocialOAuthState',
  tableName: 'social_oauth_states',
  properties: {
    ...tenantOwned,
    clubId: p.string().length(100),
    platform: p.enum(SocialPlatform),
    redirectUri: p.text(),
    codeVerifierEncrypted: p.text().nullable().hidden(),
    expiresAt: p.datetime().index('social_oauth_states_expires_at_idx'),
  },
});
export type SocialOAuthState = InferEntity<typeof SocialOAuthState>;

export const SocialPost = defineEntity({
  name: 'SocialPost',
  tableName: 'social_posts',
  properties: {
    ...tenantOwned,
    connection: () => p.manyToOne(SocialConnection).createForeignKeyConstraint(false),
    campaign: () => p.manyToOne(Campaign).nullable().createForeignKeyConstraint(false),
    content: p.text(),
    mediaUrls: p.array<string>().default([]),
    hashtags: p.array<string>().default([]),
    linkUrl: p.text().nullable(),
    status: p.enum(SocialPostStatus).default('DRAFT'),
    scheduledAt: p.datetime().nullable(),
    publishedAt: p.datetime().nullable(),
    platformPostId: p.string().nullable(),
    platformUrl: p.text().nullable(),
    likes: p.integer().default(0),
    comments: p.integer().default(0),
    shares: p.integer().default(0),
    reach: p.integer().default(0),
    error: p.text().nullable(),
    // The platform call in flight or whose answer was lost (see activities/social-posts.ts).
    publishAttemptId: p.uuid().nullable(),
    publishAttemptAt: p.datetime().nullable(),
    /** The upload the platform named for that attempt (TikTok's publish_id, Instagram's container). */
    publishHandle: p.string().length(200).nullable(),
    /** The business key of posts made by createClubPosts (one per key and connection). */
    sourceKey: p.string().length(200).nullable(),
    metricsUpdatedAt: p.datetime().nullable(),
  },
  indexes: [
    { name: 'social_posts_tenant_status_idx', properties: ['tenantId', 'status', 'scheduledAt'] },
    { name: 'social_posts_published_idx', properties: ['connection', 'publishedAt'], where: `status = 'PUBLISHED'` },
  ],
  uniques: [
    // One post per connection in a campaign, and per business key: reruns create nothing twice.
    { name: 'social_posts_campaign_connection_uniq', properties: ['tenantId', 'campaign', 'connection'], where: 'campaign_id is not null' },
    { name: 'social_posts_source_key_uniq', properties: ['tenantId', 'sourceKey', 'connection'], where: 'source_key is not null' },
  ],
});
export type SocialPost = InferEntity<typeof SocialPost>;

import { UniqueConstraintViolationException } from '@mikro-orm/core';
import { v7 as uuidv7 } from 'uuid';
import { Campaign, SocialConnection, SocialPost } from '../../db/entities/index.js';
import type { SocialPlatform, SocialPostStatus } from '../../db/entities/enums.js';
import { pgArray } from '../../db/sql.js';
import { AppError, notFound } from '../../platform/errors.js';
import { TenantId } from '../../platform/search-attributes.js';
import { signalWithStartAgainIfClosed } from '../../platform/temporal.js';
import {
  publishSocialPostNow, socialPostChanged, socialPostRunId, type socialPostWorkflow, type SocialPostRunInput,
} from '../../workflows/social-post.js';
import type { ServiceContext } from '../context.js';
import { isUuid } from '../customers/customers.js';
import { lazyCount, planPage, toPage, type LazyConnection, type PageArgs } from '../pagination.js';
import { validate } from '../validate.js';
import { assertPostAction, conditionalPostUpdate } from './state.js';
import {
  assertPublishable, createSocialPostInput, normaliseHashtags, scheduleSocialPostInput, updateSocialPostInput, type PostParts,
} from './validation.js';

// Social posts: created and edited (DRAFT, SCHEDULED, FAILED) after the connection's platform
// rules are checked, scheduled (`social-post-<id>` sleeps until scheduledAt), published now.
// Publishing itself is the workflow's activity (activities/social-posts.ts).

const uuidOrThrow = (value: string, field: string) => {
  if (!isUuid(value)) throw new AppError('VALIDATION_ERROR', `${field}: not an id`, { field });
  return value.toLowerCase();
};

export async function getSocialPost(ctx: ServiceContext, id: string): Promise<SocialPost> {
  const post = isUuid(id) ? await ctx.em.findOne(SocialPost, { id: id.toLowerCase(), tenantId: ctx.tenantId }, { populate: ['connection'] }) : null;
  if (!post) throw notFound('social post', id);
  return post;
}

/** The tenant's connection (404 otherwise), active (INVALID_STATE otherwise: it needs reconnecting). */
async function activeConnection(ctx: ServiceContext, id: string, field: string): Promise<SocialConnection> {
  const connection = isUuid(id) ? await ctx.em.findOne(SocialConnection, { id: id.toLowerCase(), tenantId: ctx.tenantId }) : null;
  if (!connection) throw notFound('social connection', id);
  if (!connection.isActive) {
    throw new AppError('INVALID_STATE', `${field}: social connection ${connection.id} (${connection.platform} ${connection.accountName}) is inactive; reconnect it first`, {
      field, currentStatus: 'INACTIVE',
    });
  }
  return connection;
}

async function campaignOf(ctx: ServiceContext, id: string | null | undefined): Promise<Campaign | null> {
  if (!id) return null;
  const campaign = isUuid(id) ? await ctx.em.findOne(Campaign, { id: id.toLowerCase(), tenantId: ctx.tenantId }) : null;
  if (!campaign) throw notFound('campaign', id);
  return campaign;
}

/** An edit of a post whose upload the platform still holds (see updateSocialPost). */
const uploadPending = (id: string, platform: SocialPlatform) => new AppError('INVALID_STATE',
  `social post ${id}: ${platform} still holds an upload of it whose outcome is unknown; publish it again to settle that upload before changing its content`,
  { field: 'input' });

const campaignTaken = (campaignId: string, connectionId: string) =>
  new AppError('CONFLICT', `input.campaignId: campaign ${campaignId} already has a post for connection ${connectionId} (one post per connection in a campaign)`, { field: 'input.campaignId' });

export async function createSocialPost(ctx: ServiceContext, input: unknown): Promise<SocialPost> {
  const data = validate(createSocialPostInput, input, 'input');
  const connection = await activeConnection(ctx, data.connectionId, 'input.connectionId');
  const campaign = await campaignOf(ctx, data.campaignId);
  const parts: PostParts = {
    content: data.content, hashtags: normaliseHashtags(data.hashtags ?? []), linkUrl: data.linkUrl ?? null, mediaUrls: data.mediaUrls ?? [],
  };
  assertPublishable(connection.platform, parts);
  const post = ctx.em.create(SocialPost, {
    id: uuidv7(), tenantId: ctx.tenantId, connection, campaign, content: parts.content, mediaUrls: [...parts.mediaUrls], hashtags: [...parts.hashtags],
    linkUrl: parts.linkUrl, status: 'DRAFT',
  } as never);
  try {
    await ctx.em.persist(post).flush();
  } catch (err) {
    if (err instanceof UniqueConstraintViolationException && campaign) throw campaignTaken(campaign.id, connection.id);
    throw err;
  }
  return post;
}

/** Tells the post's run something changed (or to publish), starting it if none runs. */
async function signalRun(ctx: ServiceContext, postId: string, signal: typeof socialPostChanged | typeof publishSocialPostNow) {
  const input: SocialPostRunInput = { tenantId: ctx.tenantId, postId };
  return signalWithStartAgainIfClosed(() =>
    ctx.temporal.workflow.signalWithStart<typeof socialPostWorkflow, []>('socialPostWorkflow', {
      workflowId: socialPostRunId(postId),
      taskQueue: ctx.config.TEMPORAL_TASK_QUEUE,
      args: [input],
      signal,
      signalArgs: [],
      typedSearchAttributes: [{ key: TenantId, value: ctx.tenantId }],
    }),
  );
}

/** Only while DRAFT, SCHEDULED or FAILED; a SCHEDULED post's run is told, so it publishes the new content. */
export async function updateSocialPost(ctx: ServiceContext, id: string, input: unknown): Promise<SocialPost> {
  const data = validate(updateSocialPostInput, input, 'input');
  const post = await getSocialPost(ctx, id);
  assertPostAction(post.id, post.status, 'update');
  const campaign = data.campaignId === undefined ? undefined : await campaignOf(ctx, data.campaignId);
  const parts: PostParts = {
    content: data.content ?? post.content,
    hashtags: data.hashtags ? normaliseHashtags(data.hashtags) : post.hashtags,
    linkUrl: data.linkUrl === undefined ? (post.linkUrl ?? null) : data.linkUrl,
    mediaUrls: data.mediaUrls ?? post.mediaUrls,
  };
  assertPublishable(post.connection.platform, parts);
  // A platform that holds an upload of this post (a TikTok video, an Instagram container whose
  // outcome is still unknown) publishes what was uploaded: its content stays until that is settled.
  const same = (a: readonly string[], b: readonly string[]) => a.length === b.length && a.every((x, i) => x === b[i]);
  const contentChanged = parts.content !== post.content || !same(parts.hashtags, post.hashtags) || parts.linkUrl !== (post.linkUrl ?? null)
    || !same(parts.mediaUrls, post.mediaUrls);
  if (contentChanged && post.publishHandle) throw uploadPending(post.id, post.connection.platform);
  const campaignId = campaign === undefined ? (post.campaign?.id ?? null) : (campaign?.id ?? null);
  let status: SocialPostStatus;
  try {
    status = await conditionalPostUpdate(ctx.em, ctx.tenantId, post.id, 'update',
      `update social_posts set content = ?, hashtags = ?::text[], link_url = ?, media_urls = ?::text[], campaign_id = ?::uuid, updated_at = now()
        where tenant_id = ? and id = ? and (publish_handle is null or not ?) and status = any(?::text[]) returning status`,
      [parts.content, pgArray([...parts.hashtags]), parts.linkUrl, pgArray([...parts.mediaUrls]), campaignId, ctx.tenantId, post.id, contentChanged]);
  } catch (err) {
    if (err instanceof UniqueConstraintViolationException && campaignId) throw campaignTaken(campaignId, post.connection.id);
    throw err;
  }
  if (status === 'SCHEDULED') await signalRun(ctx, post.id, socialPostChanged);
  return ctx.em.refreshOrFail(post, { populate: ['connection'] } as never);
}

/** DRAFT, SCHEDULED (a reschedule) or FAILED → SCHEDULED at a future `scheduledAt`; the post's run sleeps until then. */
export async function scheduleSocialPost(ctx: ServiceContext, id: string, input: unknown): Promise<SocialPost> {
  const { scheduledAt } = validate(scheduleSocialPostInput, input);
  if (scheduledAt.getTime() <= Date.now()) {
    throw new AppError('VALIDATION_ERROR', 'scheduledAt: must be in the future (publishSocialPost publishes now)', { field: 'scheduledAt' });
  }
  const post = await getSocialPost(ctx, id);
  assertPostAction(post.id, post.status, 'schedule');
  await activeConnection(ctx, post.connection.id, 'connectionId');
  assertPublishable(post.connection.platform, post, 'post');
  const previous = { status: post.status, scheduledAt: post.scheduledAt ?? null };
  await conditionalPostUpdate(ctx.em, ctx.tenantId, post.id, 'schedule',
    `update social_posts set status = 'SCHEDULED', scheduled_at = ?, error = null, updated_at = now()
      where tenant_id = ? and id = ? and status = any(?::text[]) returning status`,
    [scheduledAt, ctx.tenantId, post.id]);
  try {
    await signalRun(ctx, post.id, socialPostChanged);
  } catch (err) {
    // Temporal did not take it: the post is as it was, nothing half-scheduled.
    await ctx.em.execute(`update social_posts set status = ?, scheduled_at = ? where tenant_id = ? and id = ? and status = 'SCHEDULED' and scheduled_at = ?`,
      [previous.status, previous.scheduledAt, ctx.tenantId, post.id, scheduledAt]);
    throw err;
  }
  return ctx.em.refreshOrFail(post, { populate: ['connection'] } as never);
}

/**
 * Publishes now: DRAFT, SCHEDULED or FAILED → PUBLISHING here, then the post's run (signalled, or
 * started) publishes. Answers the post once it is PUBLISHED or FAILED, or still PUBLISHING after
 * WORKFLOW_RESULT_WAIT_MS (it goes on; read it again later). A second call while PUBLISHING joins.
 */
export async function publishSocialPost(ctx: ServiceContext, id: string): Promise<SocialPost> {
  const post = await getSocialPost(ctx, id);
  if (post.status !== 'PUBLISHING') {
    assertPostAction(post.id, post.status, 'publish');
    await activeConnection(ctx, post.connection.id, 'connectionId');
    assertPublishable(post.connection.platform, post, 'post');
    const previous = post.status;
    const attempt = post.publishAttemptId ?? null;
    await conditionalPostUpdate(ctx.em, ctx.tenantId, post.id, 'publish',
      `update social_posts set status = 'PUBLISHING', error = null, updated_at = now()
        where tenant_id = ? and id = ? and status = any(?::text[]) returning status`,
      [ctx.tenantId, post.id]);
    try {
      await signalRun(ctx, post.id, publishSocialPostNow);
    } catch (err) {
      // Back as it was, unless a run took it meanwhile (it recorded an attempt of its own).
      await ctx.em.execute(`update social_posts set status = ? where tenant_id = ? and id = ? and status = 'PUBLISHING' and publish_attempt_id is not distinct from ?::uuid`,
        [previous, ctx.tenantId, post.id, attempt]);
      throw err;
    }
  } else {
    await signalRun(ctx, post.id, publishSocialPostNow);
  }
  const deadline = Date.now() + ctx.config.WORKFLOW_RESULT_WAIT_MS;
  for (;;) {
    const [row] = await ctx.em.execute<{ status: SocialPostStatus }[]>('select status from social_posts where tenant_id = ? and id = ?', [ctx.tenantId, post.id]);
    if (row?.status !== 'PUBLISHING' || Date.now() >= deadline) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  return ctx.em.refreshOrFail(post, { populate: ['connection'] } as never);
}

export interface SocialPostFilter {
  connectionId?: string | null;
  campaignId?: string | null;
  platform?: SocialPlatform | null;
  status?: SocialPostStatus | null;
  scheduledFrom?: Date | string | null;
  scheduledTo?: Date | string | null;
}

const dateOf = (value: Date | string, field: string) => {
  const d = value instanceof Date ? value : new Date(value);
  if (Number.isNaN(d.getTime())) throw new AppError('VALIDATION_ERROR', `${field}: not a date-time`, { field });
  return d;
};

function filterOf(ctx: ServiceContext, f: SocialPostFilter, prefix: string) {
  const scheduled = {
    ...(f.scheduledFrom && { $gte: dateOf(f.scheduledFrom, `${prefix}scheduledFrom`) }),
    ...(f.scheduledTo && { $lte: dateOf(f.scheduledTo, `${prefix}scheduledTo`) }),
  };
  return {
    tenantId: ctx.tenantId,
    ...(f.connectionId && { connection: uuidOrThrow(f.connectionId, `${prefix}connectionId`) }),
    ...(f.campaignId && { campaign: uuidOrThrow(f.campaignId, `${prefix}campaignId`) }),
    ...(f.platform && { connection: { ...(f.connectionId && { id: f.connectionId.toLowerCase() }), platform: f.platform } }),
    ...(f.status && { status: f.status }),
    ...(Object.keys(scheduled).length && { scheduledAt: scheduled }),
  };
}

/** Newest first (ids are UUIDv7), `take` from `skip`, with the total (REST). */
export async function listSocialPostsPage(ctx: ServiceContext, filter: SocialPostFilter, skip: number, take: number) {
  const where = filterOf(ctx, filter, '');
  const [rows, total] = await Promise.all([
    ctx.em.find(SocialPost, where as never, { orderBy: { id: 'desc' }, limit: take, offset: skip, populate: ['connection'] }),
    ctx.em.count(SocialPost, where as never),
  ]);
  return { rows, total };
}

/** A Relay connection, newest first, cut by id (GraphQL). */
export async function socialPostsConnection(ctx: ServiceContext, filter: SocialPostFilter, args: PageArgs): Promise<LazyConnection<SocialPost>> {
  const where = filterOf(ctx, filter, 'filter.');
  const plan = planPage(args, (key) => key.length === 1 && typeof key[0] === 'string' && isUuid(key[0]));
  const count = lazyCount(() => ctx.em.count(SocialPost, where as never));
  const cursor = plan.cursor?.[0] as string | undefined;
  // Newest first: "after" walks to smaller ids; backwards walks to larger ones.
  const idCond = cursor ? { id: plan.backwards ? { $gt: cursor } : { $lt: cursor } } : {};
  const rows = await ctx.em.find(SocialPost, { ...where, ...idCond } as never, {
    orderBy: { id: plan.backwards ? 'asc' : 'desc' }, limit: plan.limit, populate: ['connection'],
  });
  return { ...toPage(rows, plan, (p) => [p.id]), get totalCount() { return count(); } };
}

/** Connections by id, the tenant's only (SocialPost.connection, batched). */
export async function connectionsByIds(ctx: ServiceContext, ids: readonly string[]): Promise<Map<string, SocialConnection>> {
  const rows = await ctx.em.find(SocialConnection, { tenantId: ctx.tenantId, id: { $in: ids.filter(isUuid) } });
  return new Map(rows.map((r) => [r.id, r]));
}

/** The REST body of a post. */
export function socialPostView(p: SocialPost) {
  return {
    id: p.id,
    tenantId: p.tenantId,
    connectionId: p.connection.id,
    platform: p.connection.platform ?? null,
    campaignId: p.campaign?.id ?? null,
    content: p.content,
    mediaUrls: p.mediaUrls,
    hashtags: p.hashtags,
    linkUrl: p.linkUrl ?? null,
    status: p.status,
    scheduledAt: p.scheduledAt ?? null,
    publishedAt: p.publishedAt ?? null,
    platformPostId: p.platformPostId ?? null,
    platformUrl: p.platformUrl ?? null,
    likes: p.likes,
    comments: p.comments,
    shares: p.shares,
    reach: p.reach,
    error: p.error ?? null,
    createdAt: p.createdAt,
    updatedAt: p.updatedAt,
  };
}

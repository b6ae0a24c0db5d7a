import { createRoute, z } from '@hono/zod-openapi';
import { SocialPlatform, SocialPostStatus } from '../../db/entities/enums.js';
import type { SocialPost as SocialPostEntity } from '../../db/entities/index.js';
import {
  createSocialPost, getSocialPost, listSocialPostsPage, publishSocialPost, scheduleSocialPost, socialPostView, updateSocialPost,
} from '../../domain/social/posts.js';
import { createSocialPostInput, scheduleSocialPostInput, updateSocialPostInput } from '../../domain/social/validation.js';
import type { AppDeps } from '../env.js';
import { guard } from '../middleware/guard.js';
import { conflict, documented, errorResponses, IdParam, json, jsonBody, PageQuery, pageMeta, router } from './openapi.js';
import { one, page, serialize } from './schemas.js';

const timestamp = z.iso.datetime({ offset: true });
const uuid = z.string().openapi({ format: 'uuid' });

export const SocialPost = z
  .object({
    id: uuid,
    tenantId: z.string(),
    connectionId: uuid,
    platform: z.enum(SocialPlatform),
    campaignId: uuid.nullable(),
    content: z.string(),
    mediaUrls: z.array(z.string()),
    hashtags: z.array(z.string()).openapi({ description: 'Normalised: no #, unique case-insensitively, in the order given' }),
    linkUrl: z.string().nullable(),
    status: z.enum(SocialPostStatus),
    scheduledAt: timestamp.nullable(),
    publishedAt: timestamp.nullable(),
    platformPostId: z.string().nullable(),
    platformUrl: z.string().nullable(),
    likes: z.number().int(),
    comments: z.number().int(),
    shares: z.number().int(),
    reach: z.number().int(),
    error: z.string().nullable().openapi({ description: 'FAILED: why (the platform\'s own message, or the rule broken)' }),
    createdAt: timestamp,
    updatedAt: timestamp,
  })
  .openapi('SocialPost');

const CreateSocialPost = documented(createSocialPostInput, 'CreateSocialPost');
const UpdateSocialPost = documented(updateSocialPostInput, 'UpdateSocialPost');
const ScheduleSocialPost = documented(scheduleSocialPostInput, 'ScheduleSocialPost');

const RULES = 'Validated for the connection\'s platform before anything is sent (README, "Social posts"): X 280 characters as X counts them (a URL counts 23), at most 4 images; Instagram needs media, caption ≤ 2,200 characters, ≤ 30 hashtags; LinkedIn ≤ 3,000; TikTok needs a video; Facebook ≤ 63,206. The hashtags not in the content and the link are appended to what is published, and counted.';

export function socialPostRoutes(deps: AppDeps) {
  const app = router();
  const tags = ['Social'];
  const invalidState = { 409: conflict[409] };
  const body = (post: SocialPostEntity) => serialize(one(SocialPost), { data: socialPostView(post) });

  app.openapi(
    createRoute({
      method: 'get', path: '/social/posts', operationId: 'socialPosts', tags, middleware: [guard(deps, 'socialPosts')] as const,
      description: 'Newest first. `scheduledFrom`/`scheduledTo` bound scheduledAt (inclusive).',
      request: {
        query: PageQuery.extend({
          connectionId: z.string().optional(), campaignId: z.string().optional(), platform: z.enum(SocialPlatform).optional(),
          status: z.enum(SocialPostStatus).optional(), scheduledFrom: timestamp.optional(), scheduledTo: timestamp.optional(),
        }),
      },
      responses: { 200: json(page(SocialPost)), ...errorResponses },
    }),
    async (c) => {
      const { skip, take, tenantId: _, ...filter } = c.req.valid('query');
      const { rows, total } = await listSocialPostsPage(c.get('ctx'), filter, skip, take);
      return c.json(serialize(page(SocialPost), { data: rows.map(socialPostView), meta: pageMeta(total, skip, take) }), 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'post', path: '/social/posts', operationId: 'createSocialPost', tags, middleware: [guard(deps, 'createSocialPost')] as const,
      description: `Creates a DRAFT post on an active connection of the tenant. ${RULES} With \`campaignId\`: the campaign's post (a SOCIAL campaign copies its first one to every other active connection of its club), one per connection.`,
      request: jsonBody(CreateSocialPost), responses: { 201: json(one(SocialPost), 'Created'), ...invalidState, ...errorResponses },
    }),
    async (c) => {
      const ctx = c.get('ctx');
      return c.json(body(await createSocialPost(ctx, c.req.valid('json'))), 201);
    },
  );

  app.openapi(
    createRoute({
      method: 'get', path: '/social/posts/{id}', operationId: 'socialPost', tags, middleware: [guard(deps, 'socialPost')] as const,
      request: { params: IdParam }, responses: { 200: json(one(SocialPost)), ...errorResponses },
    }),
    async (c) => {
      const ctx = c.get('ctx');
      return c.json(body(await getSocialPost(ctx, c.req.valid('param').id)), 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'patch', path: '/social/posts/{id}', operationId: 'updateSocialPost', tags, middleware: [guard(deps, 'updateSocialPost')] as const,
      description: `Only while DRAFT, SCHEDULED or FAILED (409 INVALID_STATE naming the allowed actions otherwise). ${RULES} A SCHEDULED post publishes the new content at its time.`,
      request: { params: IdParam, ...jsonBody(UpdateSocialPost) }, responses: { 200: json(one(SocialPost)), ...invalidState, ...errorResponses },
    }),
    async (c) => {
      const ctx = c.get('ctx');
      return c.json(body(await updateSocialPost(ctx, c.req.valid('param').id, c.req.valid('json'))), 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'post', path: '/social/posts/{id}/schedule', operationId: 'scheduleSocialPost', tags, middleware: [guard(deps, 'scheduleSocialPost')] as const,
      description: 'DRAFT, SCHEDULED (a reschedule) or FAILED → SCHEDULED at a future `scheduledAt`: the run `social-post-<id>` sleeps until then (a reschedule moves that one run).',
      request: { params: IdParam, ...jsonBody(ScheduleSocialPost) }, responses: { 200: json(one(SocialPost)), ...invalidState, ...errorResponses },
    }),
    async (c) => {
      const ctx = c.get('ctx');
      // Validated already (scheduledAt is a Date now); the service takes the wire form.
      const input = c.req.valid('json') as { scheduledAt?: Date } | undefined;
      const post = await scheduleSocialPost(ctx, c.req.valid('param').id, input && { scheduledAt: input.scheduledAt?.toISOString() ?? input.scheduledAt });
      return c.json(body(post), 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'post', path: '/social/posts/{id}/publish', operationId: 'publishSocialPost', tags, middleware: [guard(deps, 'publishSocialPost')] as const,
      description: 'Publishes now (DRAFT, SCHEDULED or FAILED → PUBLISHING → PUBLISHED or FAILED with `error`). Answers once the outcome is known, or PUBLISHING if it takes longer than WORKFLOW_RESULT_WAIT_MS (it goes on). Never published twice: README, "Social posts".',
      request: { params: IdParam }, responses: { 200: json(one(SocialPost)), ...invalidState, ...errorResponses },
    }),
    async (c) => {
      const ctx = c.get('ctx');
      return c.json(body(await publishSocialPost(ctx, c.req.valid('param').id)), 200);
    },
  );
  return app;
}

import { createRoute, z } from '@hono/zod-openapi';
import { CampaignStatus, Channel, LifecycleStage, SocialPlatform } from '../../db/entities/enums.js';
import { campaignAnalytics, dateRangeOf, engagementAnalytics, journeyAnalytics, socialAnalytics } from '../../domain/analytics/analytics.js';
import type { AppDeps } from '../env.js';
import { guard } from '../middleware/guard.js';
import { errorResponses, json, router } from './openapi.js';
import { one, serialize } from './schemas.js';

// The analytics reports under /api/v1/analytics (graphql-api.md's engagementAnalytics,
// campaignAnalytics, journeyAnalytics, socialAnalytics); what each number means is written in
// domain/analytics/analytics.ts.

const timestamp = z.iso.datetime({ offset: true });
const count = z.number().int();
const perKey = <K extends readonly string[], T extends z.ZodType>(keys: K, value: T) =>
  z.object(Object.fromEntries(keys.map((k) => [k, value.optional()])) as Record<K[number], z.ZodOptional<T>>);

export const EngagementAnalytics = z
  .object({
    tenantId: z.string(),
    totalCustomers: count.openapi({ description: 'Live customers (not MERGED or DELETED)' }),
    activeCustomers: count.openapi({ description: 'Customers whose status is ACTIVE' }),
    averageEngagementScore: z.number().nullable().openapi({ description: 'Over the live customers that have one; null when none has' }),
    averageChurnRiskScore: z.number().nullable().openapi({ description: 'Over the live customers that have one; null when none has' }),
    atRiskCustomers: count.openapi({ description: 'Live customers whose churnRiskScore is 70 or more' }),
    byLifecycleStage: perKey(LifecycleStage, count).openapi({ description: 'Live customers per LifecycleStage, e.g. {"MEMBER": 120}' }),
    activitiesLast30Days: count.openapi({ description: 'Activities that occurred within the 30 days up to now' }),
    generatedAt: timestamp,
  })
  .openapi('EngagementAnalytics');

const channelCounts = z.object({ sent: count, delivered: count, opened: count, clicked: count, bounced: count });
export const CampaignAnalytics = z
  .object({
    tenantId: z.string(),
    startDate: timestamp.nullable(),
    endDate: timestamp.nullable(),
    totalCampaigns: count.openapi({ description: 'Campaigns created within the range' }),
    byStatus: perKey(CampaignStatus, count).openapi({ description: 'Those campaigns per CampaignStatus' }),
    sentCount: count.openapi({ description: 'Messages sent within the range (sentAt), whichever campaign; the rest count among them' }),
    deliveredCount: count,
    openedCount: count,
    clickedCount: count,
    convertedCount: count,
    deliveryRate: z.number().openapi({ description: 'delivered / sent, as campaign stats' }),
    openRate: z.number().openapi({ description: 'opened / delivered' }),
    clickRate: z.number().openapi({ description: 'clicked / opened' }),
    conversionRate: z.number().openapi({ description: 'converted / clicked' }),
    byChannel: perKey(Channel, channelCounts).openapi({ description: 'Per Channel: sent, delivered, opened, clicked, bounced' }),
  })
  .openapi('CampaignAnalytics');

export const JourneyAnalytics = z
  .object({
    tenantId: z.string(),
    totalJourneys: count,
    activeJourneys: count.openapi({ description: 'Journeys whose status is ACTIVE' }),
    totalEnrolled: count,
    activeEnrollments: count.openapi({ description: 'Enrolled − completed − exited' }),
    totalCompleted: count,
    totalExited: count,
    completionRate: z.number().openapi({ description: 'totalCompleted / totalEnrolled (0 when none enrolled)' }),
    byJourney: z
      .record(z.string(), z.object({ name: z.string(), enrolled: count, active: count, completed: count, exited: count }))
      .openapi({ description: 'Per journey id: name, enrolled, active, completed, exited' }),
  })
  .openapi('JourneyAnalytics');

const platformCounts = z.object({ posts: count, likes: count, comments: count, shares: count, reach: count });
export const SocialAnalytics = z
  .object({
    tenantId: z.string(),
    startDate: timestamp.nullable(),
    endDate: timestamp.nullable(),
    totalPosts: count.openapi({ description: 'Posts within the range by publishedAt, else scheduledAt, else createdAt' }),
    publishedPosts: count,
    scheduledPosts: count,
    failedPosts: count,
    likes: count,
    comments: count,
    shares: count,
    reach: count,
    engagementRate: z.number().openapi({ description: '(likes + comments + shares) / reach, 0 when there is no reach' }),
    byPlatform: perKey(SocialPlatform, platformCounts).openapi({ description: 'Per SocialPlatform: posts, likes, comments, shares, reach' }),
  })
  .openapi('SocialAnalytics');

const TenantQuery = z.object({ tenantId: z.string().optional().openapi({ description: 'Optional; must equal the token\'s tenant' }) });
const RangeQuery = TenantQuery.extend({
  startDate: timestamp.optional().openapi({ description: 'Inclusive; ISO 8601 with an offset' }),
  endDate: timestamp.optional().openapi({ description: 'Inclusive; not before startDate' }),
});

export function analyticsRoutes(deps: AppDeps) {
  const app = router();
  const tags = ['Analytics'];

  app.openapi(
    createRoute({
      method: 'get', path: '/analytics/engagement', operationId: 'engagementAnalytics', tags, middleware: [guard(deps, 'engagementAnalytics')] as const,
      request: { query: TenantQuery }, responses: { 200: json(one(EngagementAnalytics)), ...errorResponses },
    }),
    async (c) => c.json(serialize(one(EngagementAnalytics), { data: await engagementAnalytics(c.get('ctx')) }), 200),
  );
  app.openapi(
    createRoute({
      method: 'get', path: '/analytics/campaigns', operationId: 'campaignAnalytics', tags, middleware: [guard(deps, 'campaignAnalytics')] as const,
      description: 'Campaigns created within [startDate, endDate], and the messages sent within it with their opens, clicks and conversions (whenever those came). Both ends optional.',
      request: { query: RangeQuery }, responses: { 200: json(one(CampaignAnalytics)), ...errorResponses },
    }),
    async (c) => {
      const range = dateRangeOf(c.req.valid('query'), 'query');
      return c.json(serialize(one(CampaignAnalytics), { data: await campaignAnalytics(c.get('ctx'), range) }), 200);
    },
  );
  app.openapi(
    createRoute({
      method: 'get', path: '/analytics/journeys', operationId: 'journeyAnalytics', tags, middleware: [guard(deps, 'journeyAnalytics')] as const,
      request: { query: TenantQuery }, responses: { 200: json(one(JourneyAnalytics)), ...errorResponses },
    }),
    async (c) => c.json(serialize(one(JourneyAnalytics), { data: await journeyAnalytics(c.get('ctx')) }), 200),
  );
  app.openapi(
    createRoute({
      method: 'get', path: '/analytics/social', operationId: 'socialAnalytics', tags, middleware: [guard(deps, 'socialAnalytics')] as const,
      description: 'Posts whose publishedAt (else scheduledAt, else createdAt) is within [startDate, endDate]. Both ends optional.',
      request: { query: RangeQuery }, responses: { 200: json(one(SocialAnalytics)), ...errorResponses },
    }),
    async (c) => {
      const range = dateRangeOf(c.req.valid('query'), 'query');
      return c.json(serialize(one(SocialAnalytics), { data: await socialAnalytics(c.get('ctx'), range) }), 200);
    },
  );
  return app;
}

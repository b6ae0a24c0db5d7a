import { campaignAnalytics, dateRangeOf, engagementAnalytics, journeyAnalytics, socialAnalytics } from '../../../domain/analytics/analytics.js';
import type { RootResolver } from '../resolvers.js';

// The analytics reports (graphql-api.md). The tenantId argument is checked against the token by
// the root guard; the reports are always the token's tenant.
export const analyticsOperations = {
  engagementAnalytics: (_args, ctx) => engagementAnalytics(ctx),
  campaignAnalytics: ({ dateRange }, ctx) => campaignAnalytics(ctx, dateRangeOf(dateRange, 'dateRange')),
  journeyAnalytics: (_args, ctx) => journeyAnalytics(ctx),
  socialAnalytics: ({ dateRange }, ctx) => socialAnalytics(ctx, dateRangeOf(dateRange, 'dateRange')),
} satisfies Record<string, RootResolver>;

import type { Campaign } from '../../../db/entities/index.js';
import {
  campaignViews, cancelCampaign, createCampaign, getCampaign, listCampaignsPage, pauseCampaign, resumeCampaign, scheduleCampaign,
  updateCampaign,
} from '../../../domain/campaigns/campaigns.js';
import { campaignStats } from '../../../domain/campaigns/stats.js';
import type { ServiceContext } from '../../../domain/context.js';
import type { GraphQLContext } from '../context.js';
import type { RootResolver } from '../resolvers.js';

/** Campaign views for GraphQL: the REST body plus the segment itself for `Campaign.segment`. */
async function views(ctx: ServiceContext, campaigns: Campaign[]) {
  const list = await campaignViews(ctx, campaigns);
  return list.map((view, i) => ({ ...view, segment: campaigns[i]!.segment ?? null }));
}
const view = async (ctx: ServiceContext, campaign: Promise<Campaign>) => (await views(ctx, [await campaign]))[0];

export const campaignOperations = {
  // The spec gives `campaigns` no paging arguments: it answers the newest GRAPHQL_LIST_SIZE.
  campaigns: async ({ filter }, ctx: GraphQLContext) => {
    const { rows, total } = await listCampaignsPage(ctx, filter ?? {}, 0, ctx.listSize);
    const edges = (await views(ctx, rows)).map((node) => ({ node, cursor: Buffer.from(JSON.stringify([node.id])).toString('base64url') }));
    return {
      edges,
      pageInfo: { hasNextPage: total > rows.length, hasPreviousPage: false, startCursor: edges[0]?.cursor ?? null, endCursor: edges.at(-1)?.cursor ?? null },
      totalCount: total,
    };
  },
  campaign: ({ id }, ctx) => view(ctx, getCampaign(ctx, id)),
  campaignStats: async ({ id }, ctx) => campaignStats(ctx.em, ctx.tenantId, (await getCampaign(ctx, id)).id),
  createCampaign: ({ input }, ctx) => view(ctx, createCampaign(ctx, { ...input })),
  updateCampaign: ({ id, input }, ctx) => view(ctx, updateCampaign(ctx, id, { ...input })),
  scheduleCampaign: ({ id, scheduledAt }, ctx) => view(ctx, scheduleCampaign(ctx, id, { scheduledAt: scheduledAt instanceof Date ? scheduledAt.toISOString() : scheduledAt })),
  pauseCampaign: ({ id }, ctx) => view(ctx, pauseCampaign(ctx, id)),
  resumeCampaign: ({ id }, ctx) => view(ctx, resumeCampaign(ctx, id)),
  cancelCampaign: ({ id }, ctx) => view(ctx, cancelCampaign(ctx, id)),
} satisfies Record<string, RootResolver>;


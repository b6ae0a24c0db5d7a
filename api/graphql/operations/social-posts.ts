import {
  createSocialPost, publishSocialPost, scheduleSocialPost, socialPostsConnection, socialPostView, updateSocialPost,
} from '../../../domain/social/posts.js';
import { MAX_PAGE } from '../../../domain/pagination.js';
import type { GraphQLContext } from '../context.js';
import type { RootResolver } from '../resolvers.js';

// Social posts over GraphQL (graphql-api.md), through the same service as REST. A post's
// connection is batched per request (one statement for a whole page).

type View = ReturnType<typeof socialPostView>;
const view = async (post: Promise<Parameters<typeof socialPostView>[0]>) => socialPostView(await post);

export const socialPostOperations = {
  // The spec gives socialPosts no paging arguments: it answers the newest page (GRAPHQL_LIST_SIZE,
  // at most 100), with totalCount for the rest.
  socialPosts: async ({ filter }, ctx: GraphQLContext) => {
    const page = await socialPostsConnection(ctx, filter ?? {}, { first: Math.min(ctx.listSize, MAX_PAGE) });
    return { ...page, edges: page.edges.map((e) => ({ ...e, node: socialPostView(e.node) })) };
  },
  createSocialPost: ({ input }, ctx) => view(createSocialPost(ctx, { ...input })),
  updateSocialPost: ({ id, input }, ctx) => view(updateSocialPost(ctx, id, { ...input })),
  scheduleSocialPost: ({ id, scheduledAt }, ctx) =>
    view(scheduleSocialPost(ctx, id, { scheduledAt: scheduledAt instanceof Date ? scheduledAt.toISOString() : scheduledAt })),
  publishSocialPost: ({ id }, ctx) => view(publishSocialPost(ctx, id)),
} satisfies Record<string, RootResolver>;

export const socialPostTypeResolvers = {
  SocialPost: {
    connection: (p: View, _: unknown, ctx: GraphQLContext) => ctx.loaders.socialConnection.load(p.connectionId),
  },
};

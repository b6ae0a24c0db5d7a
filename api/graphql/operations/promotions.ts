import type { EventPromotion } from '../../../db/entities/index.js';
import {
  createEventPromotion, eventPromotionView, executeEventPromotion, listEventPromotionsPage, updateEventPromotion,
} from '../../../domain/promotions/promotions.js';
import type { GraphQLContext } from '../context.js';
import type { RootResolver } from '../resolvers.js';

// Event promotions (graphql-api.md). `EventPromotion.segment` is batched through the loaders.

/** The DateTime scalar hands the service a Date; the service takes the wire form, like REST. */
const wire = (input: Record<string, unknown>) => ({
  ...input, ...(input.announceAt instanceof Date && { announceAt: input.announceAt.toISOString() }),
});

const view = (p: EventPromotion) => eventPromotionView(p, undefined);

export const promotionOperations = {
  // The spec gives `eventPromotions` no paging arguments: it answers the newest GRAPHQL_LIST_SIZE.
  eventPromotions: async ({ clubId }, ctx: GraphQLContext) => (await listEventPromotionsPage(ctx, { clubId }, 0, ctx.listSize)).rows.map(view),
  createEventPromotion: async ({ input }, ctx) => view(await createEventPromotion(ctx, wire({ ...input }))),
  updateEventPromotion: async ({ id, input }, ctx) => view(await updateEventPromotion(ctx, id, wire({ ...input }))),
  executeEventPromotion: ({ id }, ctx) => executeEventPromotion(ctx, id),
} satisfies Record<string, RootResolver>;

export const promotionTypeResolvers = {
  EventPromotion: {
    segment: (p: { segmentId: string | null }, _: unknown, ctx: GraphQLContext) => (p.segmentId ? ctx.loaders.segment.load(p.segmentId) : null),
  },
};

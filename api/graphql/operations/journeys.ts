import {
  activateJourney, addJourneyStep, archiveJourney, createJourney, deleteJourneyStep, getJourney, journeyView, listJourneySteps, listJourneysPage,
  pauseJourney, updateJourney, updateJourneyStep,
} from '../../../domain/journeys/journeys.js';
import type { GraphQLContext } from '../context.js';
import type { RootResolver } from '../resolvers.js';

// The journey builder's GraphQL operations (graphql-api.md). Enrolment fields are resolved elsewhere.

type View = ReturnType<typeof journeyView>;
const view = async (journey: Promise<Parameters<typeof journeyView>[0]>) => journeyView(await journey);

export const journeyOperations = {
  // The spec gives `journeys` no paging arguments: it answers the newest GRAPHQL_LIST_SIZE.
  journeys: async ({ status }, ctx: GraphQLContext) => (await listJourneysPage(ctx, { status }, 0, ctx.listSize)).rows.map(journeyView),
  journey: ({ id }, ctx) => view(getJourney(ctx, id)),
  journeySteps: ({ journeyId }, ctx) => listJourneySteps(ctx, journeyId),
  createJourney: ({ input }, ctx) => view(createJourney(ctx, { ...input })),
  updateJourney: ({ id, input }, ctx) => view(updateJourney(ctx, id, { ...input })),
  addJourneyStep: ({ journeyId, input }, ctx) => addJourneyStep(ctx, journeyId, { ...input }),
  updateJourneyStep: ({ journeyId, stepId, input }, ctx) => updateJourneyStep(ctx, journeyId, stepId, { ...input }),
  deleteJourneyStep: ({ journeyId, stepId }, ctx) => deleteJourneyStep(ctx, journeyId, stepId),
  activateJourney: ({ id }, ctx) => view(activateJourney(ctx, id)),
  pauseJourney: ({ id }, ctx) => view(pauseJourney(ctx, id)),
  archiveJourney: ({ id }, ctx) => view(archiveJourney(ctx, id)),
} satisfies Record<string, RootResolver>;

// Journey.steps: the working copy in stepNumber order, one statement for every journey of the answer.
export const journeyTypeResolvers = {
  Journey: {
    steps: (j: View, _: unknown, ctx: GraphQLContext) => ctx.loaders.journeySteps.load(j.id),
  },
};

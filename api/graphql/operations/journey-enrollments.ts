import DataLoader from 'dataloader';
import { Customer, Journey, type JourneyEnrollment, type JourneyEnrollmentStep } from '../../../db/entities/index.js';
import { tenantKey } from '../../../db/sql.js';
import {
  enrollCustomerInJourney, exitCustomerFromJourney, journeyEnrollmentsConnection, stepsOfEnrollments,
} from '../../../domain/journeys/enrollment.js';
import { MAX_PAGE } from '../../../domain/pagination.js';
import type { GraphQLContext } from '../context.js';
import type { Loaders } from '../loaders.js';
import type { RootResolver } from '../resolvers.js';

// Journey enrolments over GraphQL. Reads come from PostgreSQL only; an enrolment's journey,
// customer and step records are batched per request (one statement per field for a whole page).

interface EnrollmentLoaders {
  journey: DataLoader<string, Journey | null>;
  customer: DataLoader<string, Customer | null>;
  steps: DataLoader<string, JourneyEnrollmentStep[]>;
}

// Keyed by the request's loaders: one set per request, gone with it.
const perRequest = new WeakMap<Loaders, EnrollmentLoaders>();
function loaders(ctx: GraphQLContext): EnrollmentLoaders {
  let l = perRequest.get(ctx.loaders);
  if (!l) {
    const byId = <E extends { id: string }>(entity: typeof Journey | typeof Customer) => new DataLoader<string, E | null>(async (ids) => {
      const rows = (await ctx.em.find(entity as never, { tenantId: tenantKey(ctx.tenantId), id: { $in: [...ids] } } as never)) as unknown as E[];
      const found = new Map(rows.map((r) => [r.id, r]));
      return ids.map((id) => found.get(id) ?? null);
    });
    l = {
      journey: byId<Journey>(Journey),
      customer: byId<Customer>(Customer),
      steps: new DataLoader(async (ids) => {
        const found = await stepsOfEnrollments(ctx, ids);
        return ids.map((id) => found.get(id) ?? []);
      }),
    };
    perRequest.set(ctx.loaders, l);
  }
  return l;
}

const refId = (r: unknown) => (typeof r === 'string' ? r : (r as { id: string }).id);

export const journeyEnrollmentOperations = {
  // The spec gives journeyEnrollments no paging arguments: it answers the newest page
  // (GRAPHQL_LIST_SIZE, at most 100), with totalCount for the rest.
  journeyEnrollments: ({ journeyId, status }, ctx: GraphQLContext) =>
    journeyEnrollmentsConnection(ctx, journeyId, status, { first: Math.min(ctx.listSize, MAX_PAGE) }),
  enrollCustomerInJourney: async ({ journeyId, customerId }, ctx) => (await enrollCustomerInJourney(ctx, journeyId, { id: customerId })).enrollment,
  // true: the running enrolment exited; false: the customer had none running.
  exitCustomerFromJourney: ({ journeyId, customerId }, ctx) => exitCustomerFromJourney(ctx, journeyId, customerId),
} satisfies Record<string, RootResolver>;

export const journeyEnrollmentTypeResolvers = {
  JourneyEnrollment: {
    journey: (e: JourneyEnrollment, _: unknown, ctx: GraphQLContext) => loaders(ctx).journey.load(refId(e.journey)),
    customer: (e: JourneyEnrollment, _: unknown, ctx: GraphQLContext) => loaders(ctx).customer.load(refId(e.customer)),
    steps: (e: JourneyEnrollment, _: unknown, ctx: GraphQLContext) => loaders(ctx).steps.load(e.id),
  },
};

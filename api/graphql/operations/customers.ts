import type { GraphQLResolveInfo } from 'graphql';
import type { Customer, Segment } from '../../../db/entities/index.js';
import { createCustomer, customersConnection, fullName, getCustomer, updateCustomer, type CustomerProperty } from '../../../domain/customers/customers.js';
import { mergeCustomers } from '../../../domain/customers/merge.js';
import { addNote, customerNotes, deleteNote, updateNote } from '../../../domain/customers/notes.js';
import { resolveCustomer } from '../../../domain/customers/resolve.js';
import { timelineConnection } from '../../../domain/customers/timeline.js';
import type { PageArgs } from '../../../domain/pagination.js';
import type { GraphQLContext } from '../context.js';
import { selectedFields, selects, type RootResolver } from '../resolvers.js';

// The spec gives customerTimeline no paging arguments: it answers the newest page, and
// Customer.activities(first, after) walks further.
const TIMELINE_PAGE = 100;

// What each resolved field of Customer reads of the customer; every other field reads its own property.
const READS: Record<string, readonly CustomerProperty[]> = {
  __typename: [], fullName: ['firstName', 'lastName'], homeClub: ['homeClubId'], activities: [], notes: [], segments: [], journeyEnrollments: [],
};

/** The customer properties a connection's selected nodes read: a page fetches only those. */
export function nodeProperties(info: GraphQLResolveInfo): CustomerProperty[] {
  return [...selectedFields(info, ['edges', 'node'])].flatMap((field) => READS[field] ?? [field as CustomerProperty]);
}

export const customerOperations = {
  customer: ({ id }, ctx) => getCustomer(ctx, id),
  // A selected totalCount is counted alongside the page rather than after it.
  customers: ({ filter, pagination }, ctx, info) =>
    customersConnection(ctx, filter ?? {}, pagination ?? {}, { countNow: selects(info, 'totalCount'), properties: nodeProperties(info) }),
  // A crm:read token finds profiles; creating one on a miss takes crm:write.
  resolveCustomer: ({ email, phone, authUserId }, ctx) => resolveCustomer(ctx, { email, phone, authUserId }, { write: ctx.principal.scopes.has('crm:write') }),
  customerTimeline: ({ customerId, filters }, ctx) => timelineConnection(ctx, customerId, filters ?? {}, { first: TIMELINE_PAGE }),
  customerNotes: ({ customerId, type }, ctx) => customerNotes(ctx, customerId, type, ctx.listSize),
  createCustomer: ({ input }, ctx) => createCustomer(ctx, { ...input }),
  updateCustomer: ({ id, input }, ctx) => updateCustomer(ctx, id, { ...input }),
  mergeCustomers: ({ winnerId, loserId }, ctx) => mergeCustomers(ctx, winnerId, loserId),
  addNote: ({ customerId, input }, ctx) => addNote(ctx, customerId, { ...input }),
  updateNote: ({ id, input }, ctx) => updateNote(ctx, id, { ...input }),
  deleteNote: ({ id }, ctx) => deleteNote(ctx, id),
} satisfies Record<string, RootResolver>;

// Relationships go through the request's loaders: one statement per field for a whole page.
export const customerTypeResolvers = {
  Customer: {
    fullName: (c: Customer) => fullName(c),
    homeClub: (c: Customer, _: unknown, ctx: GraphQLContext) => (c.homeClubId ? ctx.loaders.club.load(c.homeClubId) : null),
    activities: async (c: Customer, args: PageArgs, ctx: GraphQLContext) => ({
      ...(await ctx.loaders.activities.load({ id: c.id, args: { first: args.first, after: args.after } })),
      get totalCount() { return ctx.loaders.activityCount.load(c.id); },
    }),
    notes: (c: Customer, _: unknown, ctx: GraphQLContext) => ctx.loaders.notes.load(c.id),
    segments: (c: Customer, _: unknown, ctx: GraphQLContext) => ctx.loaders.segments.load(c.id),
    journeyEnrollments: (c: Customer, _: unknown, ctx: GraphQLContext) => ctx.loaders.enrollments.load(c.id),
  },
  Segment: {
    members: async (s: Segment, { pagination }: { pagination?: PageArgs | null }, ctx: GraphQLContext) => ({
      ...(await ctx.loaders.members.load({ id: s.id, args: pagination ?? {} })),
      get totalCount() { return ctx.loaders.memberCount.load(s.id); },
    }),
  },
};

import { Club, JourneyEnrollment, Segment, type Customer } from '../../../db/entities/index.js';
import type { ServiceContext } from '../../../domain/context.js';
import { createCustomer, fullName, getCustomer, listCustomersConnection, updateCustomer } from '../../../domain/customers/customers.js';
import { mergeCustomers } from '../../../domain/customers/merge.js';
import { addNote, customerNotes, deleteNote, updateNote } from '../../../domain/customers/notes.js';
import { resolveCustomer } from '../../../domain/customers/resolve.js';
import { customerTimeline } from '../../../domain/customers/timeline.js';
import type { RootResolver } from '../resolvers.js';

// The spec gives customerTimeline no paging arguments: it answers the newest page, and
// Customer.activities(first, after) walks further.
const TIMELINE_PAGE = 100;

export const customerOperations = {
  customer: ({ id }, ctx) => getCustomer(ctx, id),
  customers: ({ filter, pagination }, ctx) => listCustomersConnection(ctx, filter ?? {}, pagination ?? {}),
  // A crm:read token finds profiles; creating one on a miss takes crm:write.
  resolveCustomer: ({ email, phone, authUserId }, ctx) => resolveCustomer(ctx, { email, phone, authUserId }, { write: ctx.principal.scopes.has('crm:write') }),
  customerTimeline: ({ customerId, filters }, ctx) => customerTimeline(ctx, customerId, filters ?? {}, { first: TIMELINE_PAGE }),
  customerNotes: ({ customerId, type }, ctx) => customerNotes(ctx, customerId, type),
  createCustomer: ({ input }, ctx) => createCustomer(ctx, { ...input }),
  updateCustomer: ({ id, input }, ctx) => updateCustomer(ctx, id, { ...input }),
  mergeCustomers: ({ winnerId, loserId }, ctx) => mergeCustomers(ctx, winnerId, loserId),
  addNote: ({ customerId, input }, ctx) => addNote(ctx, customerId, { ...input }),
  updateNote: ({ id, input }, ctx) => updateNote(ctx, id, { ...input }),
  deleteNote: ({ id }, ctx) => deleteNote(ctx, id),
} satisfies Record<string, RootResolver>;

export const customerTypeResolvers = {
  Customer: {
    fullName: (c: Customer) => fullName(c),
    homeClub: async (c: Customer, _: unknown, ctx: ServiceContext) => {
      if (!c.homeClubId) return null;
      const club = await ctx.em.findOne(Club, { tenantId: ctx.tenantId, id: c.homeClubId });
      return club ?? { id: c.homeClubId, name: null, timezone: null };
    },
    activities: (c: Customer, args: { first?: number; after?: string }, ctx: ServiceContext) => customerTimeline(ctx, c.id, {}, args),
    notes: (c: Customer, _: unknown, ctx: ServiceContext) => customerNotes(ctx, c.id),
    segments: (c: Customer, _: unknown, ctx: ServiceContext) =>
      ctx.em
        .createQueryBuilder(Segment, 's')
        .where({ tenantId: ctx.tenantId })
        .andWhere('exists (select 1 from segment_members sm where sm.segment_id = s.id and sm.customer_id = ?)', [c.id])
        .orderBy({ name: 'asc' })
        .getResult(),
    journeyEnrollments: (c: Customer, _: unknown, ctx: ServiceContext) =>
      ctx.em.find(JourneyEnrollment, { tenantId: ctx.tenantId, customer: c.id }, { populate: ['journey'], orderBy: { enrolledAt: 'desc' } }),
  },
  Segment: {
    members: (s: Segment, { pagination }: { pagination?: object }, ctx: ServiceContext) => listCustomersConnection(ctx, { segmentId: s.id }, pagination ?? {}),
  },
};

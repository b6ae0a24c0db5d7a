import { Club, JourneyEnrollment, SegmentMember, type Segment } from '../../db/entities/index.js';
import type { ServiceContext } from '../context.js';

// Relationships of many customers at once (the tenant's, already loaded), one statement each:
// GraphQL batches `Customer.homeClub`, `segments` and `journeyEnrollments` of a page through these.

/** Clubs by id; an id the CRM has not heard of yet answers a club with only its id. */
export async function clubsByIds(ctx: ServiceContext, ids: readonly string[]): Promise<Map<string, Pick<Club, 'id' | 'name' | 'timezone'>>> {
  const clubs = await ctx.em.find(Club, { tenantId: ctx.tenantId, id: { $in: [...ids] } });
  const byId = new Map<string, Pick<Club, 'id' | 'name' | 'timezone'>>(clubs.map((c) => [c.id, c]));
  for (const id of ids) if (!byId.has(id)) byId.set(id, { id, name: null, timezone: null });
  return byId;
}

/** The segments each customer is a member of, by name. */
export async function segmentsOfCustomers(ctx: ServiceContext, customerIds: readonly string[]): Promise<Map<string, Segment[]>> {
  const memberships = await ctx.em.find(
    SegmentMember,
    { tenantId: ctx.tenantId, customer: { $in: [...customerIds] }, segment: { tenantId: ctx.tenantId } },
    { populate: ['segment'], orderBy: { segment: { name: 'asc', id: 'asc' } } },
  );
  const byCustomer = new Map<string, Segment[]>(customerIds.map((id) => [id, []]));
  for (const m of memberships) byCustomer.get(m.customer.id)?.push(m.segment as Segment);
  return byCustomer;
}

/** Journey enrollments of each customer, newest first. */
export async function enrollmentsOfCustomers(ctx: ServiceContext, customerIds: readonly string[]): Promise<Map<string, JourneyEnrollment[]>> {
  const enrollments = await ctx.em.find(
    JourneyEnrollment,
    { tenantId: ctx.tenantId, customer: { $in: [...customerIds] } },
    { populate: ['journey'], orderBy: { enrolledAt: 'desc' } },
  );
  const byCustomer = new Map<string, JourneyEnrollment[]>(customerIds.map((id) => [id, []]));
  for (const e of enrollments) byCustomer.get(e.customer.id)?.push(e);
  return byCustomer;
}

import { Club, JourneyEnrollment, Segment } from '../../db/entities/index.js';
import { pgArray, TENANT } from '../../db/sql.js';
import type { ServiceContext } from '../context.js';

// Relationships of many customers at once (the tenant's, already loaded), one statement each:
// GraphQL batches `Customer.homeClub`, `segments` and `journeyEnrollments` of a page through these.
// Lists stop at `limit` items a customer in SQL, so a page of customers loads a bounded number of rows.

/** Clubs by id; an id the CRM has not heard of yet answers a club with only its id. */
export async function clubsByIds(ctx: ServiceContext, ids: readonly string[]): Promise<Map<string, Pick<Club, 'id' | 'name' | 'timezone'>>> {
  const clubs = await ctx.em.find(Club, { tenantId: ctx.tenantId, id: { $in: [...ids] } });
  const byId = new Map<string, Pick<Club, 'id' | 'name' | 'timezone'>>(clubs.map((c) => [c.id, c]));
  for (const id of ids) if (!byId.has(id)) byId.set(id, { id, name: null, timezone: null });
  return byId;
}

/** The tenant's segments by id (an id of none answers null): `EventPromotion.segment`. */
export async function segmentsByIds(ctx: ServiceContext, ids: readonly string[]): Promise<Map<string, Segment | null>> {
  const segments = await ctx.em.find(Segment, { tenantId: ctx.tenantId, id: { $in: [...ids] } });
  const byId = new Map<string, Segment | null>(segments.map((s) => [s.id, s]));
  for (const id of ids) if (!byId.has(id)) byId.set(id, null);
  return byId;
}

/** The first `limit` segments each customer is a member of, by name. */
export async function segmentsOfCustomers(ctx: ServiceContext, customerIds: readonly string[], limit: number): Promise<Map<string, Segment[]>> {
  const memberships = await ctx.em.execute<{ customer_id: string; segment_id: string }[]>(
    `select c.id as customer_id, t.id as segment_id from unnest(?::uuid[]) with ordinality as c(id, i)
       cross join lateral (
         select s.id, s.name from segment_members m join segments s on s.id = m.segment_id and s.tenant_id = m.tenant_id
          where m.tenant_id = ${TENANT} and m.customer_id = c.id order by s.name, s.id limit ?
       ) t
      order by c.i, t.name, t.id`,
    [pgArray([...customerIds]), ctx.tenantId, limit],
  );
  const segmentIds = [...new Set(memberships.map((m) => m.segment_id))];
  const segments = segmentIds.length ? await ctx.em.find(Segment, { tenantId: ctx.tenantId, id: { $in: segmentIds } }) : [];
  const byId = new Map(segments.map((s) => [s.id, s]));
  const byCustomer = new Map<string, Segment[]>(customerIds.map((id) => [id, []]));
  for (const m of memberships) byCustomer.get(m.customer_id)!.push(byId.get(m.segment_id)!);
  return byCustomer;
}

/** The `limit` newest journey enrollments of each customer, newest first. */
export async function enrollmentsOfCustomers(ctx: ServiceContext, customerIds: readonly string[], limit: number): Promise<Map<string, JourneyEnrollment[]>> {
  const rows = await ctx.em.execute<({ owner__id: string } & Record<string, unknown>)[]>(
    `select c.id as owner__id, t.* from unnest(?::uuid[]) with ordinality as c(id, i)
       cross join lateral (
         select e.* from journey_enrollments e where e.tenant_id = ? and e.customer_id = c.id
          order by e.enrolled_at desc, e.id desc limit ?
       ) t
      order by c.i, t.enrolled_at desc, t.id desc`,
    [pgArray([...customerIds]), ctx.tenantId, limit],
  );
  const byCustomer = new Map<string, JourneyEnrollment[]>(customerIds.map((id) => [id, []]));
  const enrollments = rows.map(({ owner__id, ...row }) => {
    const enrollment = ctx.em.map(JourneyEnrollment, row as never);
    byCustomer.get(owner__id)!.push(enrollment);
    return enrollment;
  });
  if (enrollments.length) await ctx.em.populate(enrollments, ['journey']);
  return byCustomer;
}

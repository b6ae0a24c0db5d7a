import { Customer } from '../../db/entities/index.js';
import { TENANT } from '../../db/sql.js';
import { AppError } from '../../platform/errors.js';
import type { ServiceContext } from '../context.js';
import { exitCustomersEnrollments, journeysAfterSegmentEntries } from '../journeys/enrollment.js';
import { addMemberCountDeltas } from '../segments/member-counts.js';
import { lockSegmentsOf } from '../segments/membership.js';
import { deadState, getCustomer, isLive } from './customers.js';
import { appendActivities } from './timeline.js';

// Fields the winner takes from the loser when its own are empty. Opt-ins and lifecycle stage are
// never "empty", so the winner's stand.
const MERGEABLE = [
  'email', 'phoneNumber', 'authUserId', 'firstName', 'lastName', 'membershipTier', 'membershipStatus', 'handicap',
  'homeClubId', 'engagementScore', 'churnRiskScore', 'lifetimeValue',
] as const;

export interface MergeResult {
  winner: Customer;
  mergedFields: string[];
}

/**
 * Folds `loserId` into `winnerId` in one transaction: fields, timeline, notes, segment
 * memberships, journey enrollments and campaign history move to the winner; the loser becomes
 * MERGED with a pointer to it; both timelines record the merge.
 */
export async function mergeCustomers(ctx: ServiceContext, winnerId: string, loserId: string): Promise<MergeResult> {
  if (winnerId.toLowerCase() === loserId.toLowerCase()) {
    throw new AppError('VALIDATION_ERROR', 'loserId: a customer cannot be merged into itself', { field: 'loserId' });
  }
  return ctx.em.transactional(async (em) => {
    const scoped = { em, tenantId: ctx.tenantId };
    // Lock both rows in id order so two opposite merges cannot deadlock.
    const [first, second] = [winnerId, loserId].sort();
    for (const id of [first!, second!]) await getCustomer(scoped, id);
    // Their segments first, against refreshes: one diffing meanwhile read the loser as live and
    // put it back (an ENTERED for a merged profile) once the merge had taken it out.
    await lockSegmentsOf(em, ctx.tenantId, [first!, second!]);
    await em.execute('select id from customers where id in (?, ?) for update', [first, second]);
    // Re-read under the row locks: a concurrent merge may have changed either.
    const winner = await em.refreshOrFail(await getCustomer(scoped, winnerId));
    const loser = await em.refreshOrFail(await getCustomer(scoped, loserId));
    for (const [role, c] of [['winnerId', winner], ['loserId', loser]] as const) {
      if (!isLive(c)) throw new AppError('INVALID_STATE', `${role}: customer ${c.id} ${deadState(c)} already`, { field: role });
    }

    const mergedFields = MERGEABLE.filter((f) => winner[f] == null && loser[f] != null);
    const taken = Object.fromEntries(mergedFields.map((f) => [f, loser[f]]));
    // Release the loser's identifiers before the winner takes them (unique among live profiles).
    loser.status = 'MERGED';
    loser.mergedIntoId = winner.id;
    loser.mergedAt = new Date();
    await em.flush();
    em.assign(winner, taken as never);
    if (loser.lastActivityAt && (!winner.lastActivityAt || loser.lastActivityAt > winner.lastActivityAt)) winner.lastActivityAt = loser.lastActivityAt;
    await em.flush();

    const move = async (sql: string) => em.execute(sql, [winner.id, loser.id, ctx.tenantId]);
    await move(`update activities set customer_id = ? where customer_id = ? and tenant_id = ${TENANT}`);
    await move(`update notes set customer_id = ?, updated_at = now() where customer_id = ? and tenant_id = ${TENANT}`);
    // Memberships follow the winner: the loser exits every segment, the winner enters those it
    // was not in, and a segment that had both loses one member. Its segments are locked key-share:
    // one whose deletion is in flight is waited for and then left out (its members went with it);
    // a deletion after this waits for the merge.
    const [{ entered }] = (await em.execute<{ entered: string[] }[]>(
      `with mine as (
         select l.segment_id, exists (select 1 from segment_members w where w.segment_id = l.segment_id and w.customer_id = ?) as both_in
           from segment_members l join segments s on s.id = l.segment_id and s.tenant_id = l.tenant_id
          where l.customer_id = ? and l.tenant_id = ${TENANT}
          order by s.id
            for key share of s
       ), changes as (
         insert into segment_membership_changes (tenant_id, segment_id, customer_id, change, cause)
         select ?, segment_id, ?::uuid, 'EXITED', 'merged' from mine
         union all
         select ?, segment_id, ?::uuid, 'ENTERED', 'merged' from mine where not both_in
         returning id, change
       ), counted as (${addMemberCountDeltas('select segment_id, -1 from mine where both_in')}
       )
       select coalesce(array_agg(id), '{}')::text[] as entered from changes where change = 'ENTERED'`,
      [winner.id, loser.id, ctx.tenantId, ctx.tenantId, loser.id, ctx.tenantId, winner.id],
    )) as [{ entered: string[] }];
    await move(`insert into segment_members (segment_id, customer_id, tenant_id, added_at)
                select segment_id, ?, tenant_id, added_at from segment_members where customer_id = ? and tenant_id = ?
                on conflict do nothing`);
    await em.execute('delete from segment_members where customer_id = ? and tenant_id = ?', [loser.id, ctx.tenantId]);
    // The loser's running enrolments end (EXITED 'merged': exit signals queued, total_exited
    // exact), so no workflow is left running for a profile that is gone. Its enrolment history
    // then moves to the winner, numbered after the winner's own, so re-entry rules see it.
    await exitCustomersEnrollments(em, ctx.tenantId, [loser.id], 'merged');
    await em.execute(
      `update journey_enrollments l set customer_id = ?, updated_at = now(),
              sequence = l.sequence + coalesce((select max(w.sequence) from journey_enrollments w where w.journey_id = l.journey_id and w.customer_id = ?), 0)
        where l.customer_id = ? and l.tenant_id = ?`,
      [winner.id, winner.id, loser.id, ctx.tenantId],
    );
    // Segments the winner entered through the merge enrol it in their SEGMENT_ENTRY journeys.
    await journeysAfterSegmentEntries(em, ctx.tenantId, entered);
    // A delivery the winner already has for the same campaign run and channel stays with the loser.
    await em.execute(
      `update campaign_deliveries d set customer_id = ? where d.customer_id = ? and d.tenant_id = ${TENANT}
          and not exists (select 1 from campaign_deliveries w where w.customer_id = ? and w.campaign_id = d.campaign_id
                            and w.run_key = d.run_key and w.channel = d.channel)`,
      [winner.id, loser.id, ctx.tenantId, winner.id],
    );
    await move('update campaign_interactions set customer_id = ? where customer_id = ? and tenant_id = ?');

    const now = new Date();
    await appendActivities(em, ctx.tenantId, [
      {
        customerId: winner.id, type: 'customer.merged', category: 'SYSTEM', occurredAt: now,
        title: `Merged customer ${loser.id} into this profile`,
        metadata: { loserId: loser.id, mergedFields, mergedBy: ctx.principal.sub },
      },
      {
        customerId: loser.id, type: 'customer.merged_into', category: 'SYSTEM', occurredAt: now,
        title: `Merged into customer ${winner.id}`,
        metadata: { winnerId: winner.id, mergedBy: ctx.principal.sub },
      },
    ], 'merged', { followMerges: false });
    return { winner, mergedFields: [...mergedFields] };
  });
}

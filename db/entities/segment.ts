import { defineEntity, p, type InferEntity } from '@mikro-orm/core';
import { tenantOwned } from './common.js';
import { Customer } from './customer.js';
import { SegmentType } from './enums.js';

export const Segment = defineEntity({
  name: 'Segment',
  tableName: 'segments',
  properties: {
    ...tenantOwned,
    name: p.string(),
    description: p.text().nullable(),
    type: p.enum(SegmentType),
    criteria: p.json<Record<string, unknown>>().nullable(),
    /** A sync batch whose answer was lost, to send again as it was (activities/segments.ts). */
    syncPending: p.json<Record<string, unknown>>().nullable().lazy(),
    isActive: p.boolean().default(true),
    // Exact as of the last full refresh; real-time changes since then are in
    // segment_member_count_deltas (a row per writer), so concurrent events never queue on this row.
    storedMemberCount: p.integer().fieldName('member_count').default(0),
    memberCount: p
      .integer()
      .formula((cols) => `(${cols.storedMemberCount} + coalesce((select sum(d.delta) from segment_member_count_deltas d where d.segment_id = ${cols.id}), 0))::int`),
    // How often the refresh schedule of a DYNAMIC or SMART segment fires.
    refreshIntervalMinutes: p.integer().default(15),
    lastRefreshedAt: p.datetime().nullable(),
    messagingSegmentId: p.string().nullable(),
    lastSyncedAt: p.datetime().nullable(),
  },
  uniques: [
    { name: 'segments_tenant_id_uniq', properties: ['tenantId', 'id'] },
    { name: 'segments_tenant_name_uniq', properties: ['tenantId', 'name'] },
  ],
  indexes: [{ name: 'segments_tenant_type_idx', properties: ['tenantId', 'type', 'isActive'] }],
});
export type Segment = InferEntity<typeof Segment>;

export const SegmentMember = defineEntity({
  name: 'SegmentMember',
  tableName: 'segment_members',
  properties: {
    segment: () => p.manyToOne(Segment).primary().createForeignKeyConstraint(false),
    customer: () => p.manyToOne(Customer).primary().createForeignKeyConstraint(false),
    tenantId: p.string().length(100),
    addedAt: p.datetime().onCreate(() => new Date()).defaultRaw('now()'),
  },
  indexes: [{ name: 'segment_members_customer_idx', properties: ['tenantId', 'customer', 'segment'] }],
});
export type SegmentMember = InferEntity<typeof SegmentMember>;

// Every entry into and exit from a segment, with its cause: the hand-off point for journeys that
// start on segment entry.
export const SegmentMembershipChange = defineEntity({
  name: 'SegmentMembershipChange',
  tableName: 'segment_membership_changes',
  properties: {
    id: p.bigint('number').primary().autoincrement(),
    tenantId: p.string().length(100),
    segment: () => p.manyToOne(Segment).createForeignKeyConstraint(false),
    customer: () => p.manyToOne(Customer).createForeignKeyConstraint(false),
    change: p.enum(['ENTERED', 'EXITED'] as const),
    cause: p.string().length(100),
    occurredAt: p.datetime().onCreate(() => new Date()).defaultRaw('now()'),
  },
  indexes: [{ name: 'segment_changes_segment_idx', properties: ['tenantId', 'segment', 'occurredAt'] }],
});
export type SegmentMembershipChange = InferEntity<typeof SegmentMembershipChange>;

export const SegmentMemberCountDelta = defineEntity({
  name: 'SegmentMemberCountDelta',
  tableName: 'segment_member_count_deltas',
  properties: {
    // Checked per statement by a trigger, as the memberships are (..._segment_reference_locks.ts).
    segment: () => p.manyToOne(Segment).primary().createForeignKeyConstraint(false),
    // The PostgreSQL backend that adds to this row (pg_backend_pid(); see ..._segment_count_writers.ts).
    writer: p.integer().primary(),
    delta: p.integer(),
  },
});
export type SegmentMemberCountDelta = InferEntity<typeof SegmentMemberCountDelta>;

// What the external Messaging service holds for a segment, so that a sync sends only the
// difference since the last one, and a sync resumed after a crash skips what was acknowledged.
export const SegmentSyncedMember = defineEntity({
  name: 'SegmentSyncedMember',
  tableName: 'segment_synced_members',
  properties: {
    segment: () => p.manyToOne(Segment).primary().createForeignKeyConstraint(false),
    customerId: p.uuid().primary(),
    tenantId: p.string().length(100),
    // md5 of the member fields sent: a changed email or opt-in is sent again.
    fingerprint: p.string().length(32),
    syncedAt: p.datetime().onCreate(() => new Date()).defaultRaw('now()'),
  },
});
export type SegmentSyncedMember = InferEntity<typeof SegmentSyncedMember>;

// Customers awaiting re-evaluation against their tenant's SMART segments: written in the
// transaction that changed them (an event, an edit, a merge), taken by the API's drainer
// (domain/segments/reevaluations.ts) after commit. A row per change, not per customer: a change
// committed while a drainer evaluates the customer leaves a row of its own, evaluated next.
export const SegmentReevaluation = defineEntity({
  name: 'SegmentReevaluation',
  tableName: 'segment_reevaluations',
  properties: {
    id: p.bigint('number').primary().autoincrement(),
    tenantId: p.string().length(100),
    customerId: p.uuid(),
    cause: p.string().length(100),
    enqueuedAt: p.datetime().onCreate(() => new Date()).defaultRaw('now()'),
    // A row whose evaluation failed waits (backing off), so it holds up no other.
    attempts: p.integer().default(0),
    nextAttemptAt: p.datetime().nullable(),
  },
});
export type SegmentReevaluation = InferEntity<typeof SegmentReevaluation>;

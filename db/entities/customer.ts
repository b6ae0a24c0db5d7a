import { defineEntity, p, type InferEntity } from '@mikro-orm/core';
import { liveCustomer } from '../sql.js';
import { tenantOwned } from './common.js';
import { ActivityCategory, CustomerStatus, LifecycleStage, NoteType } from './enums.js';

const live = liveCustomer();

export const Customer = defineEntity({
  name: 'Customer',
  tableName: 'customers',
  properties: {
    ...tenantOwned,
    // Normalised on write (lower-case email, E.164 phone): identity resolution matches on equality.
    email: p.string().nullable(),
    phoneNumber: p.string().length(20).nullable(),
    authUserId: p.string().length(100).nullable(),
    firstName: p.string().nullable(),
    lastName: p.string().nullable(),
    status: p.enum(CustomerStatus).default('ACTIVE'),
    lifecycleStage: p.enum(LifecycleStage).default('SUBSCRIBER'),
    membershipTier: p.string().length(100).nullable(),
    membershipStatus: p.string().length(100).nullable(),
    handicap: p.double().nullable(),
    homeClubId: p.string().length(100).nullable(),
    engagementScore: p.integer().nullable(),
    churnRiskScore: p.integer().nullable(),
    lifetimeValue: p.integer().nullable(),
    emailOptIn: p.boolean().default(false),
    smsOptIn: p.boolean().default(false),
    pushOptIn: p.boolean().default(false),
    // A hard bounce: no campaign email goes to this address until it changes.
    emailBouncedAt: p.datetime().nullable(),
    lastActivityAt: p.datetime().nullable(),
    // Set when the profile was merged away; reads of a merged id show where it went.
    mergedIntoId: p.uuid().nullable(),
    mergedAt: p.datetime().nullable(),
  },
  // A live profile owns its identifiers exclusively; merged and deleted ones release them.
  uniques: [
    { name: 'customers_tenant_id_uniq', properties: ['tenantId', 'id'] },
    { name: 'customers_tenant_email_live_uniq', properties: ['tenantId', 'email'], where: `email is not null and ${live}` },
    { name: 'customers_tenant_phone_live_uniq', properties: ['tenantId', 'phoneNumber'], where: `phone_number is not null and ${live}` },
    { name: 'customers_tenant_auth_user_live_uniq', properties: ['tenantId', 'authUserId'], where: `auth_user_id is not null and ${live}` },
  ],
  indexes: [
    // Ids are UUIDv7 (time-ordered), so (tenant, id) serves newest-first keyset pagination; partial
    // on live profiles, which is what lists show, so counting them is an index-only scan.
    { name: 'customers_tenant_live_idx', properties: ['tenantId', 'id'], where: live },
    { name: 'customers_tenant_status_idx', properties: ['tenantId', 'status'] },
    { name: 'customers_tenant_engagement_idx', properties: ['tenantId', 'engagementScore'] },
    { name: 'customers_tenant_churn_risk_idx', properties: ['tenantId', 'churnRiskScore'] },
  ],
});
export type Customer = InferEntity<typeof Customer>;

// The timeline. Upstream events are stored once per (tenant, sourceService, sourceEventId).
export const Activity = defineEntity({
  name: 'Activity',
  tableName: 'activities',
  properties: {
    id: tenantOwned.id,
    tenantId: tenantOwned.tenantId,
    customer: () => p.manyToOne(Customer).createForeignKeyConstraint(false),
    // Free-form, dotted event name from the source system (e.g. `booking.created`): see the
    // `ActivityType` scalar in api/graphql/implied-types.graphql.
    type: p.string().length(200),
    category: p.enum(ActivityCategory),
    title: p.string().length(500),
    description: p.text().nullable(),
    occurredAt: p.datetime(),
    metadata: p.json<Record<string, unknown>>().nullable(),
    sourceService: p.string().length(100).nullable(),
    sourceEventId: p.string().length(200).nullable(),
    createdAt: tenantOwned.createdAt,
  },
  uniques: [
    {
      name: 'activities_source_event_uniq',
      properties: ['tenantId', 'sourceService', 'sourceEventId'],
      where: 'source_service is not null and source_event_id is not null',
    },
  ],
  indexes: [
    { name: 'activities_timeline_idx', properties: ['tenantId', 'customer', 'occurredAt', 'id'] },
    { name: 'activities_tenant_category_idx', properties: ['tenantId', 'category', 'occurredAt'] },
  ],
});
export type Activity = InferEntity<typeof Activity>;

export const Note = defineEntity({
  name: 'Note',
  tableName: 'notes',
  properties: {
    ...tenantOwned,
    customer: () => p.manyToOne(Customer).createForeignKeyConstraint(false),
    content: p.text(),
    type: p.enum(NoteType).default('GENERAL'),
    isPinned: p.boolean().default(false),
    createdBy: p.string().length(200),
    createdByName: p.string().nullable(),
  },
  indexes: [{ name: 'notes_customer_idx', properties: ['tenantId', 'customer', 'isPinned', 'createdAt'] }],
});
export type Note = InferEntity<typeof Note>;

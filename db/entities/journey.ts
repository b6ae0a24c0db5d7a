import { defineEntity, p, type InferEntity } from '@mikro-orm/core';
import { tenantOwned } from './common.js';
import { Customer } from './customer.js';
import { EnrollmentStatus, JourneyStatus, JourneyStepType, StepStatus } from './enums.js';

export const Journey = defineEntity({
  name: 'Journey',
  tableName: 'journeys',
  properties: {
    ...tenantOwned,
    name: p.string(),
    description: p.text().nullable(),
    status: p.enum(JourneyStatus).default('DRAFT'),
    triggerType: p.string().length(100),
    triggerConfig: p.json<Record<string, unknown>>().nullable(),
    allowReentry: p.boolean().default(false),
    timezone: p.string().length(64).nullable(),
    totalEnrolled: p.integer().default(0),
    totalCompleted: p.integer().default(0),
    totalExited: p.integer().default(0),
    activatedAt: p.datetime().nullable(),
    // The published version new enrolments start on (journey_versions); 0 until first activated.
    currentVersion: p.integer().default(0),
    // The JOURNEY campaign whose delivery rows carry this journey's SEND steps (created on activation).
    campaignId: p.uuid().nullable(),
  },
  uniques: [{ name: 'journeys_tenant_id_uniq', properties: ['tenantId', 'id'] }],
  indexes: [{ name: 'journeys_tenant_status_idx', properties: ['tenantId', 'status', 'triggerType'] }],
});
export type Journey = InferEntity<typeof Journey>;

export const JourneyStep = defineEntity({
  name: 'JourneyStep',
  tableName: 'journey_steps',
  properties: {
    ...tenantOwned,
    journey: () => p.manyToOne(Journey).createForeignKeyConstraint(false),
    stepNumber: p.integer(),
    type: p.enum(JourneyStepType),
    name: p.string().nullable(),
    config: p.json<Record<string, unknown>>(),
    nextStepId: p.uuid().nullable(),
    nextStepYesId: p.uuid().nullable(),
    nextStepNoId: p.uuid().nullable(),
  },
  uniques: [
    { name: 'journey_steps_tenant_id_uniq', properties: ['tenantId', 'id'] },
    { name: 'journey_steps_number_uniq', properties: ['journey', 'stepNumber'] },
  ],
});
export type JourneyStep = InferEntity<typeof JourneyStep>;

/**
 * What one activation (or edit of an active journey) published: the trigger and the whole step
 * graph, frozen. An enrolment runs on the version it started on, whatever is edited after.
 */
export const JourneyVersion = defineEntity({
  name: 'JourneyVersion',
  tableName: 'journey_versions',
  properties: {
    id: tenantOwned.id,
    tenantId: tenantOwned.tenantId,
    createdAt: tenantOwned.createdAt,
    journey: () => p.manyToOne(Journey).createForeignKeyConstraint(false),
    version: p.integer(),
    triggerType: p.string().length(100),
    triggerConfig: p.json<Record<string, unknown>>().nullable(),
    allowReentry: p.boolean(),
    timezone: p.string().length(64).nullable(),
    steps: p.json<Record<string, unknown>[]>(),
    // Event types running enrolments of this version listen for (exitOn, WAIT untilEvent).
    eventTypes: p.array<string>().default([]),
  },
  uniques: [
    { name: 'journey_versions_tenant_id_uniq', properties: ['tenantId', 'id'] },
    { name: 'journey_versions_version_uniq', properties: ['journey', 'version'] },
  ],
});
export type JourneyVersion = InferEntity<typeof JourneyVersion>;

export const JourneyEnrollment = defineEntity({
  name: 'JourneyEnrollment',
  tableName: 'journey_enrollments',
  properties: {
    id: tenantOwned.id,
    tenantId: tenantOwned.tenantId,
    journey: () => p.manyToOne(Journey).createForeignKeyConstraint(false),
    customer: () => p.manyToOne(Customer).createForeignKeyConstraint(false),
    status: p.enum(EnrollmentStatus).default('ACTIVE'),
    currentStepNumber: p.integer().nullable(),
    waitingUntil: p.datetime().nullable(),
    enrolledAt: p.datetime().onCreate(() => new Date()).defaultRaw('now()'),
    completedAt: p.datetime().nullable(),
    exitedAt: p.datetime().nullable(),
    workflowId: p.string().nullable(),
    updatedAt: tenantOwned.updatedAt,
    version: p.integer().default(1),
    // The customer's n-th enrolment in this journey (re-entry); part of the workflow id after the first.
    sequence: p.integer().default(1),
    // The upstream event id (`event:<activityId>`), the API's idempotencyKey, or a segment entry.
    idempotencyKey: p.string().length(300).nullable(),
    currentStepId: p.uuid().nullable(),
    exitReason: p.text().nullable(),
  },
  // One live enrollment per customer and journey, whatever the re-entry policy.
  uniques: [
    { name: 'journey_enrollments_tenant_id_uniq', properties: ['tenantId', 'id'] },
    { name: 'journey_enrollments_active_uniq', properties: ['journey', 'customer'], where: `status = 'ACTIVE'` },
    { name: 'journey_enrollments_sequence_uniq', properties: ['journey', 'customer', 'sequence'] },
    { name: 'journey_enrollments_idem_uniq', properties: ['journey', 'idempotencyKey'] },
  ],
  indexes: [
    { name: 'journey_enrollments_journey_idx', properties: ['tenantId', 'journey', 'status'] },
    { name: 'journey_enrollments_customer_idx', properties: ['tenantId', 'customer'] },
  ],
});
export type JourneyEnrollment = InferEntity<typeof JourneyEnrollment>;

export const JourneyEnrollmentStep = defineEntity({
  name: 'JourneyEnrollmentStep',
  tableName: 'journey_enrollment_steps',
  properties: {
    id: tenantOwned.id,
    tenantId: tenantOwned.tenantId,
    enrollment: () => p.manyToOne(JourneyEnrollment).createForeignKeyConstraint(false),
    // No foreign key: the record outlives the step's deletion in a later version, so it keeps
    // what the step was.
    stepId: p.uuid(),
    stepNumber: p.integer().nullable(),
    stepName: p.string().nullable(),
    stepType: p.enum(JourneyStepType).nullable(),
    status: p.enum(StepStatus).default('PENDING'),
    // CONDITION and SPLIT: YES or NO; SEND: the delivery's status.
    outcome: p.string().length(50).nullable(),
    // How often the enrolment reached this step (a loop through a WAIT comes back).
    visits: p.integer().default(0),
    startedAt: p.datetime().nullable(),
    completedAt: p.datetime().nullable(),
    error: p.text().nullable(),
  },
  uniques: [{ name: 'journey_enrollment_steps_uniq', properties: ['enrollment', 'stepId'] }],
});
export type JourneyEnrollmentStep = InferEntity<typeof JourneyEnrollmentStep>;

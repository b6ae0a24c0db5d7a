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
  },
  // One live enrollment per customer and journey, whatever the re-entry policy.
  uniques: [
    { name: 'journey_enrollments_tenant_id_uniq', properties: ['tenantId', 'id'] },
    { name: 'journey_enrollments_active_uniq', properties: ['journey', 'customer'], where: `status = 'ACTIVE'` },
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
    step: () => p.manyToOne(JourneyStep).createForeignKeyConstraint(false),
    status: p.enum(StepStatus).default('PENDING'),
    startedAt: p.datetime().nullable(),
    completedAt: p.datetime().nullable(),
    error: p.text().nullable(),
  },
  uniques: [{ name: 'journey_enrollment_steps_uniq', properties: ['enrollment', 'step'] }],
});
export type JourneyEnrollmentStep = InferEntity<typeof JourneyEnrollmentStep>;

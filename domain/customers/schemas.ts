import { z } from 'zod';
import { ActivityCategory, CustomerStatus, LifecycleStage, NoteType } from '../../db/entities/enums.js';
import { dateRangeMessage, inDateRange, nonEmptyUpdate, optional, schemaPer } from '../validate.js';
import { emailField, phoneField } from './identifiers.js';

const name = z.string().trim().min(1).max(255);
const shortText = z.string().trim().min(1).max(100);

/** Writable profile fields; `null` clears a field on update. GraphQL inputs are a subset. */
export const customerFields = (region: string) =>
  z.object({
    email: emailField.nullish(),
    phoneNumber: phoneField(region).nullish(),
    authUserId: shortText.nullish(),
    firstName: name.nullish(),
    lastName: name.nullish(),
    lifecycleStage: optional(z.enum(LifecycleStage)),
    membershipTier: shortText.nullish(),
    membershipStatus: shortText.nullish(),
    handicap: z.number().min(-10).max(54).nullish(),
    homeClubId: shortText.nullish(),
    emailOptIn: optional(z.boolean()),
    smsOptIn: optional(z.boolean()),
    pushOptIn: optional(z.boolean()),
  });

// A profile is someone: it is known by an identifier or at least a name.
const IDENTIFYING = ['email', 'phoneNumber', 'authUserId', 'firstName', 'lastName'] as const;

export const createCustomerInput = schemaPer((region: string) =>
  customerFields(region)
    .extend({ tenantId: z.string().optional() })
    .strict()
    .refine((v) => IDENTIFYING.some((f) => v[f]), { message: `give at least one of ${IDENTIFYING.join(', ')}` }));
export const updateCustomerInput = schemaPer((region: string) =>
  nonEmptyUpdate(customerFields(region).extend({ status: optional(z.enum(['ACTIVE', 'INACTIVE', 'DELETED'])) }).strict()));

export type CustomerFields = z.infer<ReturnType<typeof customerFields>>;

export const customerFilter = z.object({
  status: optional(z.enum(CustomerStatus)),
  lifecycleStage: optional(z.enum(LifecycleStage)),
  search: optional(z.string().trim().max(200)),
  segmentId: optional(z.string()),
  engagementMin: optional(z.coerce.number().int().min(0).max(100)),
  engagementMax: optional(z.coerce.number().int().min(0).max(100)),
  churnRiskMin: optional(z.coerce.number().int().min(0).max(100)),
  churnRiskMax: optional(z.coerce.number().int().min(0).max(100)),
  emailOptIn: optional(z.boolean()),
});
export type CustomerFilter = z.infer<typeof customerFilter>;

export const timelineFilters = z.object({
  categories: optional(z.array(z.enum(ActivityCategory))),
  startDate: optional(z.coerce.date().refine(inDateRange, dateRangeMessage)),
  endDate: optional(z.coerce.date().refine(inDateRange, dateRangeMessage)),
});
export type TimelineFilters = z.infer<typeof timelineFilters>;

export const noteInput = z.object({
  content: z.string().trim().min(1).max(20_000),
  type: optional(z.enum(NoteType)).transform((t) => t ?? 'GENERAL'),
  isPinned: optional(z.boolean()).transform((p) => p ?? false),
});
export const noteUpdate = nonEmptyUpdate(
  z.object({ content: optional(z.string().trim().min(1).max(20_000)), type: optional(z.enum(NoteType)), isPinned: optional(z.boolean()) }).strict(),
);

export const identifiersInput = schemaPer((region: string) =>
  z
    .object({ email: emailField.nullish(), phone: phoneField(region).nullish(), authUserId: z.string().trim().min(1).max(100).nullish() })
    .refine((v) => v.email || v.phone || v.authUserId, { message: 'give at least one of email, phone, authUserId', path: ['email'] }));
export type Identifiers = z.infer<ReturnType<typeof identifiersInput>>;

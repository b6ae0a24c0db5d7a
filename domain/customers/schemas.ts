import { z } from 'zod';
import { ActivityCategory, CustomerStatus, LifecycleStage, NoteType } from '../../db/entities/enums.js';
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
    lifecycleStage: z.enum(LifecycleStage).optional(),
    membershipTier: shortText.nullish(),
    membershipStatus: shortText.nullish(),
    handicap: z.number().min(-10).max(54).nullish(),
    homeClubId: shortText.nullish(),
    emailOptIn: z.boolean().optional(),
    smsOptIn: z.boolean().optional(),
    pushOptIn: z.boolean().optional(),
  });

export const createCustomerInput = (region: string) => customerFields(region).extend({ tenantId: z.string().optional() }).strict();
export const updateCustomerInput = (region: string) =>
  customerFields(region).extend({ status: z.enum(['ACTIVE', 'INACTIVE', 'DELETED']).optional() }).strict();

export type CustomerFields = z.infer<ReturnType<typeof customerFields>>;
export type UpdateCustomerFields = z.infer<ReturnType<typeof updateCustomerInput>>;

export const customerFilter = z.object({
  status: z.enum(CustomerStatus).optional(),
  lifecycleStage: z.enum(LifecycleStage).optional(),
  search: z.string().trim().max(200).optional(),
  segmentId: z.string().optional(),
  engagementMin: z.coerce.number().int().min(0).max(100).optional(),
  engagementMax: z.coerce.number().int().min(0).max(100).optional(),
  churnRiskMin: z.coerce.number().int().min(0).max(100).optional(),
  churnRiskMax: z.coerce.number().int().min(0).max(100).optional(),
  emailOptIn: z.boolean().optional(),
});
export type CustomerFilter = z.infer<typeof customerFilter>;

export const timelineFilters = z.object({
  categories: z.array(z.enum(ActivityCategory)).optional(),
  startDate: z.coerce.date().optional(),
  endDate: z.coerce.date().optional(),
});
export type TimelineFilters = z.infer<typeof timelineFilters>;

export const noteInput = z.object({
  content: z.string().trim().min(1).max(20_000),
  type: z.enum(NoteType).default('GENERAL'),
  isPinned: z.boolean().default(false),
});
export const noteUpdate = z
  .object({ content: z.string().trim().min(1).max(20_000), type: z.enum(NoteType), isPinned: z.boolean() })
  .partial()
  .strict();

export const identifiersInput = (region: string) =>
  z
    .object({ email: emailField.nullish(), phone: phoneField(region).nullish(), authUserId: z.string().trim().min(1).max(100).nullish() })
    .refine((v) => v.email || v.phone || v.authUserId, { message: 'give at least one of email, phone, authUserId', path: ['email'] });
export type Identifiers = z.infer<ReturnType<typeof identifiersInput>>;

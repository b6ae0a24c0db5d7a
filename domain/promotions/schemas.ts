import { z } from 'zod';
import { Channel, PromotionSourceType } from '../../db/entities/enums.js';
import { dateRangeMessage, inDateRange, nonEmptyUpdate, optional } from '../validate.js';

// Promotion inputs, shared by REST and GraphQL (graphql-api.md's CreateEventPromotionInput and
// implied-types.graphql's UpdateEventPromotionInput).

export const MAX_REMINDER_DAYS = 90;

const channels = z.array(z.enum(Channel)).min(1).max(Channel.length)
  .refine((c) => new Set(c).size === c.length, { message: 'each channel once' });
// Days before the event; the same day twice is one reminder, latest first.
const reminderDays = z.array(z.number().int().min(1).max(MAX_REMINDER_DAYS)).max(10)
  .transform((days) => [...new Set(days)].sort((a, b) => b - a));
const id = z.string().trim().min(1).max(100);
// Kept as written: REST validates the body before the service does (again), as GraphQL's input.
const instant = z.iso.datetime({ offset: true }).refine((s) => inDateRange(new Date(s)), dateRangeMessage);

const optionsShape = {
  announceAt: instant.nullish(),
  segmentId: id.nullish(),
  emailTemplateId: id.nullish(),
  smsTemplateId: id.nullish(),
  socialContent: z.string().trim().min(1).max(5000).nullish(),
};

export const createEventPromotionInput = z.object({
  tenantId: z.string().optional(),
  clubId: z.string().trim().min(1).max(100),
  sourceType: z.enum(PromotionSourceType),
  sourceId: z.string().trim().min(1).max(200),
  autoPromote: optional(z.boolean()),
  channels,
  reminderDays: optional(reminderDays),
  ...optionsShape,
}).strict();

export const updateEventPromotionInput = nonEmptyUpdate(z.object({
  autoPromote: optional(z.boolean()),
  channels: optional(channels),
  reminderDays: optional(reminderDays),
  isActive: optional(z.boolean()),
  ...optionsShape,
}).strict());

export const listEventPromotionsFilter = z.object({ clubId: z.string().trim().min(1).max(100).nullish() });

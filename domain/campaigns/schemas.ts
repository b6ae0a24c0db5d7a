import { DateTime } from 'luxon';
import { z } from 'zod';
import { CampaignType, Channel } from '../../db/entities/enums.js';
import { ACTIVITY_TYPE_PATTERN } from '../../db/entities/enums.js';
import { nonEmptyUpdate, optional } from '../validate.js';

// Campaign inputs, shared by REST and GraphQL (GraphQL's inputs are a subset of these fields).

// IANA names exactly as written (Temporal's schedules and PostgreSQL both read them): luxon alone
// would also take `america/new_york`, `UTC+5` or `system`, which they refuse or read otherwise.
const ZONES = new Set([...Intl.supportedValuesOf('timeZone'), 'UTC']);
export const timeZone = z.string().max(64).refine((zone) => ZONES.has(zone) && DateTime.local().setZone(zone).isValid, {
  message: 'not an IANA time zone (e.g. Africa/Johannesburg)',
});
const clock = z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, 'a time of day as HH:MM (24-hour)');

// campaigns-api.md, "RECURRING": `{frequency, dayOfWeek, time, timezone}`. dayOfWeek: 0 = Sunday … 6 = Saturday.
export const recurringSchedule = z
  .object({
    frequency: z.enum(['daily', 'weekly', 'monthly']),
    dayOfWeek: z.number().int().min(0).max(6).optional(),
    dayOfMonth: z.number().int().min(1).max(31).optional(),
    time: clock,
    timezone: timeZone,
  })
  .strict()
  .refine((s) => s.frequency !== 'weekly' || s.dayOfWeek !== undefined, { message: 'dayOfWeek: required for weekly', path: ['dayOfWeek'] })
  .refine((s) => s.frequency !== 'monthly' || s.dayOfMonth !== undefined, { message: 'dayOfMonth: required for monthly', path: ['dayOfMonth'] });
export type RecurringSchedule = z.output<typeof recurringSchedule>;

// TRIGGERED: metadata fields the event must carry, each equal to the given value.
const triggerConditions = z.record(z.string().min(1).max(100), z.union([z.string().max(500), z.number(), z.boolean(), z.null()]))
  .refine((c) => Object.keys(c).length <= 20, { message: 'at most 20 conditions' });

const eventType = z.string().regex(ACTIVITY_TYPE_PATTERN, 'lower-case words joined by ".", "_" or "-"').max(200);
// SOCIAL publishes the campaign's social posts (one per active connection of its club), not
// messages to recipients (domain/social/club-posts.ts).
const channels = z.array(z.enum(Channel)).min(1).max(6)
  .refine((c) => new Set(c).size === c.length, { message: 'each channel once' });
const id = z.string().trim().min(1).max(100);

const optionsShape = {
  clubId: z.string().trim().min(1).max(100).nullish(),
  description: z.string().max(2000).nullish(),
  segmentId: id.nullish(),
  emailTemplateId: id.nullish(),
  smsTemplateId: id.nullish(),
  timezone: timeZone.nullish(),
  schedule: recurringSchedule.nullish(),
  triggerEvent: eventType.nullish(),
  triggerConditions: triggerConditions.nullish(),
  conversionEvent: eventType.nullish(),
  sendInRecipientTimezone: optional(z.boolean()),
  quietHours: z.object({ start: clock, end: clock }).strict().refine((q) => q.start !== q.end, { message: 'start and end differ' }).nullish(),
  frequencyCap: z.number().int().min(1).max(100).nullish(),
};

export const createCampaignInput = z
  .object({
    tenantId: z.string().optional(),
    name: z.string().trim().min(1).max(200),
    type: z.enum(CampaignType),
    channels,
    ...optionsShape,
  })
  .strict()
  .refine((c) => c.type !== 'RECURRING' || c.schedule, { message: 'schedule: required for RECURRING campaigns', path: ['schedule'] })
  .refine((c) => c.type !== 'TRIGGERED' || c.triggerEvent, { message: 'triggerEvent: required for TRIGGERED campaigns', path: ['triggerEvent'] })
  // Each recipient's wall-clock time of scheduledAt: a ONE_TIME campaign's (a recurring schedule has its own zone).
  .refine((c) => c.type === 'ONE_TIME' || !c.sendInRecipientTimezone, { message: 'sendInRecipientTimezone: for ONE_TIME campaigns', path: ['sendInRecipientTimezone'] });

export const updateCampaignInput = nonEmptyUpdate(
  z.object({ name: optional(z.string().trim().min(1).max(200)), channels: optional(channels), ...optionsShape }).strict(),
);

export const scheduleCampaignInput = z.object({
  scheduledAt: z.iso.datetime({ offset: true }).transform((s) => new Date(s)).nullish(),
}).strict();

// Fields that shape who gets what: frozen once the campaign leaves DRAFT (campaigns-api.md, "Update").
export const DRAFT_ONLY = [
  'segmentId', 'emailTemplateId', 'smsTemplateId', 'channels', 'schedule', 'triggerEvent', 'triggerConditions',
  'sendInRecipientTimezone', 'quietHours', 'frequencyCap', 'timezone',
] as const;

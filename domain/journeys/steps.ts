import { Duration } from 'luxon';
import { z } from 'zod';
import { Channel, JourneyStepType, LifecycleStage } from '../../db/entities/enums.js';
import { timeZone } from '../campaigns/schemas.js';

// The journey language: what each step's `config` and the journey's `triggerConfig` may say.
// Parsed when a step is saved (the error names the field, e.g. `input.config.duration`) and again,
// as a whole graph, when a journey is activated. The workflow (workflows/journey.ts) reads the
// published, already-valid form: the types below.

// Stored lower-case: a SEGMENT_ENTRY trigger's segmentId is compared as text with the entries' ids.
const id = z.uuid().transform((v) => v.toLowerCase());
const eventType = z.string().trim().min(1).max(200);
const isoDuration = z
  .string()
  .max(50)
  .refine((v) => {
    const d = Duration.fromISO(v);
    return d.isValid && d.toMillis() > 0 && d.toMillis() <= 366 * 24 * 3_600_000;
  }, { message: 'an ISO 8601 duration between PT1S and P366D, e.g. "P3D" or "PT12H"' });
const localTime = z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, { message: 'a local time "HH:MM"' });

export const triggerStep = z.object({}).strict();

export const sendStep = z.object({ channel: z.enum(Channel).exclude(['SOCIAL']), templateId: id }).strict();

/**
 * Exactly one of `duration`, `until` or `untilEvent` (with its `timeout`); `atLocalTime` then moves
 * the end to the next such wall-clock time, in the journey's zone or the customer's home club's.
 */
export const waitStep = z
  .object({
    duration: isoDuration.optional(),
    // Years 1 to 9998: PostgreSQL holds the end (waitingUntil), also after atLocalTime moves it a day on.
    until: z.iso.datetime({ offset: true }).refine((v) => {
      const year = new Date(v).getUTCFullYear();
      return year >= 1 && year <= 9998;
    }, { message: 'a date-time between the years 1 and 9998' }).optional(),
    untilEvent: eventType.optional(),
    timeout: isoDuration.optional(),
    atLocalTime: localTime.optional(),
    timezone: z.enum(['journey', 'customer']).optional(),
  })
  .strict()
  .superRefine((v, ctx) => {
    const given = (['duration', 'until', 'untilEvent'] as const).filter((k) => v[k] !== undefined);
    if (given.length !== 1) ctx.addIssue({ code: 'custom', path: [], message: 'give exactly one of duration, until, untilEvent' });
    if (v.untilEvent !== undefined && v.timeout === undefined) ctx.addIssue({ code: 'custom', path: ['timeout'], message: 'untilEvent needs a timeout, e.g. "P7D"' });
    if (v.untilEvent === undefined && v.timeout !== undefined) ctx.addIssue({ code: 'custom', path: ['timeout'], message: 'timeout goes with untilEvent' });
    if (v.timezone !== undefined && v.atLocalTime === undefined) ctx.addIssue({ code: 'custom', path: ['timezone'], message: 'timezone goes with atLocalTime' });
  });

export const conditionStep = z
  .object({ criteria: z.unknown().optional(), inSegment: id.optional() })
  .strict()
  .refine((v) => (v.criteria === undefined) !== (v.inSegment === undefined), { message: 'give exactly one of criteria, inSegment' });

export const splitStep = z.object({ percentYes: z.number().int().min(0).max(100) }).strict();

/** Profile fields an UPDATE step may set (through the customer service, like an API update). */
export const updatableFields = z
  .object({
    lifecycleStage: z.enum(LifecycleStage).optional(),
    membershipTier: z.string().trim().min(1).max(100).nullable().optional(),
    membershipStatus: z.string().trim().min(1).max(100).nullable().optional(),
    emailOptIn: z.boolean().optional(),
    smsOptIn: z.boolean().optional(),
    pushOptIn: z.boolean().optional(),
  })
  .strict()
  .refine((v) => Object.keys(v).length > 0, { message: 'give at least one field to set' });

export const updateStep = z
  .object({ set: updatableFields.optional(), addToSegment: id.optional() })
  .strict()
  .refine((v) => v.set !== undefined || v.addToSegment !== undefined, { message: 'give set, addToSegment, or both' });

export const endStep = z.object({}).strict();

export const STEP_CONFIG = {
  TRIGGER: triggerStep, SEND: sendStep, WAIT: waitStep, CONDITION: conditionStep, SPLIT: splitStep, UPDATE: updateStep, END: endStep,
} as const satisfies Record<JourneyStepType, z.ZodType>;

export type SendConfig = z.output<typeof sendStep>;
export type WaitConfig = z.output<typeof waitStep>;
export type ConditionConfig = z.output<typeof conditionStep>;
export type SplitConfig = z.output<typeof splitStep>;
export type UpdateConfig = z.output<typeof updateStep>;

/** How customers enter, per `triggerType`; `exitOn` ends an enrolment early (EXITED). */
const exitOn = eventType.optional();
export const TRIGGER_CONFIG = {
  EVENT: z.object({ event: eventType, conditions: z.record(z.string(), z.unknown()).optional(), exitOn }).strict(),
  SEGMENT_ENTRY: z.object({ segmentId: id, exitOn }).strict(),
  MANUAL: z.object({ exitOn }).strict(),
} as const;
export type TriggerType = keyof typeof TRIGGER_CONFIG;
export const TRIGGER_TYPES = Object.keys(TRIGGER_CONFIG) as TriggerType[];

export const journeyTimeZone = timeZone;

/** A step as published in a version (journey_versions.steps): what an enrolment runs. */
export interface VersionStep {
  id: string;
  stepNumber: number;
  type: JourneyStepType;
  name: string | null;
  config: Record<string, unknown>;
  nextStepId: string | null;
  nextStepYesId: string | null;
  nextStepNoId: string | null;
}

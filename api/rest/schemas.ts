import { z } from '@hono/zod-openapi';
import {
  ActivityCategory, CampaignStatus, CampaignType, Channel, CustomerStatus, InteractionType, LifecycleStage, NoteType, PromotionSourceType, SegmentType,
} from '../../db/entities/enums.js';
import { TemplateChannel } from '../../domain/templates/templates.js';

// The resources the REST API answers with, field by field. Handlers send every body through
// `serialize`, so the OpenAPI document generated from these schemas is what clients receive.

const timestamp = z.iso.datetime({ offset: true });
const uuid = z.string().openapi({ format: 'uuid' });

export const Customer = z
  .object({
    id: uuid,
    tenantId: z.string(),
    email: z.string().nullable(),
    phoneNumber: z.string().nullable().openapi({ description: 'E.164' }),
    authUserId: z.string().nullable(),
    firstName: z.string().nullable(),
    lastName: z.string().nullable(),
    fullName: z.string().nullable(),
    status: z.enum(CustomerStatus),
    lifecycleStage: z.enum(LifecycleStage),
    membershipTier: z.string().nullable(),
    membershipStatus: z.string().nullable(),
    handicap: z.number().nullable(),
    homeClubId: z.string().nullable(),
    engagementScore: z.number().int().nullable(),
    churnRiskScore: z.number().int().nullable(),
    lifetimeValue: z.number().int().nullable(),
    emailOptIn: z.boolean(),
    smsOptIn: z.boolean(),
    pushOptIn: z.boolean(),
    lastActivityAt: timestamp.nullable(),
    mergedIntoId: uuid.nullable().openapi({ description: 'Set once merged: the profile it went into' }),
    mergedAt: timestamp.nullable(),
    createdAt: timestamp,
    updatedAt: timestamp,
  })
  .openapi('Customer');

export const Note = z
  .object({
    id: uuid,
    customerId: uuid,
    content: z.string(),
    type: z.enum(NoteType),
    isPinned: z.boolean(),
    createdBy: z.string(),
    createdByName: z.string().nullable(),
    createdAt: timestamp,
    updatedAt: timestamp,
  })
  .openapi('Note');

export const Activity = z
  .object({
    id: uuid,
    type: z.string().openapi({ example: 'booking.created' }),
    category: z.enum(ActivityCategory),
    title: z.string(),
    description: z.string().nullable(),
    occurredAt: timestamp,
    metadata: z.record(z.string(), z.unknown()).nullable(),
    sourceService: z.string().nullable(),
    sourceEventId: z.string().nullable(),
  })
  .openapi('Activity');

export const Segment = z
  .object({
    id: uuid,
    tenantId: z.string(),
    name: z.string(),
    description: z.string().nullable(),
    type: z.enum(SegmentType),
    criteria: z.unknown().openapi({ description: 'The criteria tree (README, "Criteria"); null for STATIC segments' }),
    isActive: z.boolean(),
    memberCount: z.number().int(),
    refreshIntervalMinutes: z.number().int(),
    lastRefreshedAt: timestamp.nullable(),
    messagingSegmentId: z.string().nullable(),
    lastSyncedAt: timestamp.nullable(),
    createdAt: timestamp,
    updatedAt: timestamp,
  })
  .openapi('Segment');

const clock = z.string().openapi({ example: '09:00' });

// Counted from deliveries and interactions (README, "Campaigns").
const campaignCounts = {
  targetCount: z.number().int(),
  sentCount: z.number().int(),
  deliveredCount: z.number().int(),
  openedCount: z.number().int(),
  clickedCount: z.number().int(),
  convertedCount: z.number().int(),
  unsubscribedCount: z.number().int(),
  bouncedCount: z.number().int(),
};

export const Campaign = z
  .object({
    id: uuid,
    tenantId: z.string(),
    clubId: z.string().nullable(),
    name: z.string(),
    description: z.string().nullable(),
    type: z.enum(CampaignType),
    status: z.enum(CampaignStatus),
    channels: z.array(z.enum(Channel)),
    segmentId: uuid.nullable(),
    segmentName: z.string().nullable(),
    emailTemplateId: z.string().nullable(),
    smsTemplateId: z.string().nullable().openapi({ description: 'The text template, for SMS, PUSH, WHATSAPP and IN_APP' }),
    scheduledAt: timestamp.nullable(),
    timezone: z.string().nullable(),
    schedule: z
      .object({ frequency: z.enum(['daily', 'weekly', 'monthly']), dayOfWeek: z.number().int().optional(), dayOfMonth: z.number().int().optional(), time: clock, timezone: z.string() })
      .nullable()
      .openapi({ description: 'RECURRING: when each occurrence goes, in `timezone` (dayOfWeek 0 = Sunday)' }),
    triggerEvent: z.string().nullable(),
    triggerConditions: z.record(z.string(), z.unknown()).nullable().openapi({ description: 'TRIGGERED: metadata fields the event must carry, each equal to the value' }),
    conversionEvent: z.string().nullable().openapi({ description: 'An upstream event type that counts as a conversion within 7 days of a click' }),
    sendInRecipientTimezone: z.boolean(),
    quietHours: z.object({ start: clock, end: clock }).nullable(),
    frequencyCap: z.number().int().nullable().openapi({ description: 'At most this many campaign messages per customer per rolling 24 hours' }),
    ...campaignCounts,
    openRate: z.number().nullable(),
    clickRate: z.number().nullable(),
    startedAt: timestamp.nullable(),
    pausedAt: timestamp.nullable(),
    resumedAt: timestamp.nullable(),
    completedAt: timestamp.nullable(),
    cancelledAt: timestamp.nullable(),
    createdBy: z.string().nullable(),
    createdAt: timestamp,
    updatedAt: timestamp,
  })
  .openapi('Campaign');

export const EventPromotion = z
  .object({
    id: uuid,
    tenantId: z.string(),
    clubId: z.string(),
    sourceType: z.enum(PromotionSourceType),
    sourceId: z.string(),
    autoPromote: z.boolean(),
    channels: z.array(z.enum(Channel)),
    announceAt: timestamp.nullable(),
    reminderDays: z.array(z.number().int()).openapi({ description: 'Days before the event, at its local time of day in the club\'s zone' }),
    segmentId: uuid.nullable(),
    emailTemplateId: z.string().nullable(),
    smsTemplateId: z.string().nullable().openapi({ description: 'The text template, for SMS, PUSH, WHATSAPP and IN_APP' }),
    socialContent: z.string().nullable().openapi({ description: 'Liquid, with `event`: the social posts of SOCIAL' }),
    lastPromotedAt: timestamp.nullable(),
    isActive: z.boolean(),
    event: z
      .object({
        title: z.string(), description: z.string().nullable(), clubId: z.string(), startsAt: timestamp, endsAt: timestamp.nullable(), location: z.string().nullable(),
        url: z.string(), imageUrl: z.string().nullable(), cancelled: z.boolean(), updatedAt: timestamp.openapi({ description: 'occurredAt of the event this state comes from' }),
      })
      .nullable()
      .openapi({ description: 'The source as its latest upstream event describes it; null until one arrives' }),
    createdAt: timestamp,
    updatedAt: timestamp,
  })
  .openapi('EventPromotion');

export const ExecutePromotionResult = z
  .object({ promotionId: uuid, executedAt: timestamp, recipientCount: z.number().int(), campaignId: uuid.nullable() })
  .openapi('ExecutePromotionResult');

const channelCounts = z.record(z.string(), z.number().int());

export const CampaignStats = z
  .object({
    campaignId: uuid,
    ...campaignCounts,
    deliveryRate: z.number(),
    openRate: z.number(),
    clickRate: z.number(),
    conversionRate: z.number(),
    byChannel: z.record(z.string(), channelCounts),
    skipped: z.record(z.string(), z.number().int()).openapi({ description: 'Deliveries never sent, by reason: NO_CONSENT, NO_ADDRESS, BOUNCED, INACTIVE, FREQUENCY_CAP' }),
    timeline: z.array(z.object({ hour: timestamp, sent: z.number().int(), opened: z.number().int() })),
  })
  .openapi('CampaignStats');

export const CampaignInteraction = z
  .object({
    id: uuid,
    customerId: uuid,
    customerEmail: z.string().nullable(),
    customerName: z.string().nullable(),
    type: z.enum(InteractionType),
    channel: z.enum(Channel),
    occurredAt: timestamp,
    metadata: z.record(z.string(), z.unknown()).nullable(),
  })
  .openapi('CampaignInteraction');
export const Template = z
  .object({
    id: uuid,
    tenantId: z.string(),
    name: z.string(),
    channel: z.enum(TemplateChannel),
    subject: z.string().nullable(),
    body: z.string().openapi({ description: 'Liquid: the HTML for EMAIL, the message text otherwise' }),
    textBody: z.string().nullable().openapi({ description: 'EMAIL: the plain-text part; null: derived from the rendered HTML' }),
    createdAt: timestamp,
    updatedAt: timestamp,
  })
  .openapi('Template');

export const RenderedMessage = z
  .object({
    subject: z.string().nullable(),
    body: z.string().openapi({ description: 'EMAIL: HTML, variables HTML-escaped' }),
    textBody: z.string().nullable().openapi({ description: 'EMAIL: the plain-text part; null for other channels' }),
  })
  .openapi('RenderedMessage');

export const PageMeta = z
  .object({ total: z.number().int(), skip: z.number().int(), take: z.number().int(), hasMore: z.boolean() })
  .openapi('PageMeta');

export const CursorMeta = z
  .object({
    total: z.number().int(),
    take: z.number().int(),
    hasMore: z.boolean(),
    nextCursor: z.string().nullable().openapi({ description: 'Pass as `after` for the next page' }),
  })
  .openapi('CursorMeta');

export const Resolution = z
  .object({
    profile: Customer,
    resolution: z.object({
      isNew: z.boolean(),
      matchedBy: z.array(z.enum(['authUserId', 'email', 'phone'])),
      confidence: z.number().int().min(0).max(100),
    }),
  })
  .openapi('ResolutionResult');

export const MergeResult = z.object({ winner: Customer, mergedFields: z.array(z.string()) }).openapi('MergeResult');

export const RefreshResult = z
  .object({ segmentId: uuid, previousCount: z.number().int(), newCount: z.number().int(), added: z.number().int(), removed: z.number().int() })
  .openapi('RefreshResult');

export const SyncResult = z
  .object({ messagingSegmentId: z.string(), syncedCount: z.number().int(), syncedAt: timestamp })
  .openapi('SyncResult');

export const ImportReport = z
  .object({
    created: z.number().int(),
    updated: z.number().int(),
    rejected: z.number().int(),
    errors: z.array(z.object({ line: z.number().int(), reason: z.string() })).openapi({ description: 'The first rejections, by line' }),
  })
  .openapi('ImportReport');

export const IngestReport = z
  .object({
    accepted: z.number().int(),
    duplicates: z.number().int(),
    rejected: z.number().int(),
    results: z.array(
      z.object({
        index: z.number().int(),
        status: z.enum(['created', 'duplicate', 'rejected', 'superseded']).openapi({
          description: 'superseded: an event of a promotion source older than the state held (README, "Event promotions")',
        }),
        activityId: uuid.optional(),
        customerId: uuid.optional(),
        error: z.object({ code: z.string(), message: z.string(), field: z.string().optional() }).optional(),
      }),
    ),
  })
  .openapi('IngestReport');

export const Deleted = z.object({ deleted: z.boolean() }).openapi('Deleted');

// Handlers name their envelope on every request. A zod schema compiles its parser on its first
// parse, so each envelope is built once per resource schema: a new one per request made that
// compilation most of a list page's CPU.
function envelope<E extends z.ZodType>(wrap: (schema: z.ZodType) => E) {
  const made = new WeakMap<z.ZodType, E>();
  return (schema: z.ZodType): E => {
    let e = made.get(schema);
    if (!e) made.set(schema, (e = wrap(schema)));
    return e;
  };
}
const oneOf = envelope((schema) => z.object({ data: schema }));
const pageOf = envelope((schema) => z.object({ data: z.array(schema), meta: PageMeta }));
const cursorPageOf = envelope((schema) => z.object({ data: z.array(schema), meta: CursorMeta }));
const listOf = envelope((schema) => z.object({ data: z.array(schema) }));

/** `{data}` of one resource. */
export const one = <T extends z.ZodType>(schema: T) => oneOf(schema) as z.ZodObject<{ data: T }>;
/** `{data: [...], meta}` of a page. */
export const page = <T extends z.ZodType>(schema: T) => pageOf(schema) as z.ZodObject<{ data: z.ZodArray<T>; meta: typeof PageMeta }>;
/** `{data: [...], meta}` of a cursor page. */
export const cursorPage = <T extends z.ZodType>(schema: T) => cursorPageOf(schema) as z.ZodObject<{ data: z.ZodArray<T>; meta: typeof CursorMeta }>;
/** `{data: [...]}` of a whole, unpaged list. */
export const list = <T extends z.ZodType>(schema: T) => listOf(schema) as z.ZodObject<{ data: z.ZodArray<T> }>;

/**
 * The body as it goes on the wire, checked against its documented schema (dates as ISO strings,
 * undocumented fields dropped): the document cannot promise what the API does not send.
 */
export function serialize<T extends z.ZodType>(schema: T, value: unknown): z.output<T> {
  return schema.parse(JSON.parse(JSON.stringify(value)));
}

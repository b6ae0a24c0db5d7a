import { defineEntity, p, type InferEntity } from '@mikro-orm/core';
import { tenantOwned } from './common.js';
import { Customer } from './customer.js';
import { CampaignStatus, CampaignType, Channel, DeliveryStatus, InteractionType, SkipReason } from './enums.js';
import { Segment } from './segment.js';

export const MessageTemplate = defineEntity({
  name: 'MessageTemplate',
  tableName: 'message_templates',
  properties: {
    ...tenantOwned,
    name: p.string(),
    channel: p.enum(Channel),
    subject: p.string().nullable(),
    // Liquid source rendered per recipient: HTML for EMAIL, the message text otherwise.
    body: p.text(),
    // EMAIL only: the plain-text part; derived from `body` when not given.
    textBody: p.text().nullable(),
  },
  uniques: [{ name: 'message_templates_tenant_id_uniq', properties: ['tenantId', 'id'] }],
  indexes: [{ name: 'message_templates_tenant_idx', properties: ['tenantId', 'channel'] }],
});
export type MessageTemplate = InferEntity<typeof MessageTemplate>;

export const Campaign = defineEntity({
  name: 'Campaign',
  tableName: 'campaigns',
  properties: {
    ...tenantOwned,
    clubId: p.string().length(100).nullable(),
    name: p.string(),
    description: p.text().nullable(),
    type: p.enum(CampaignType),
    status: p.enum(CampaignStatus).default('DRAFT'),
    channels: p.array<string>().default([]),
    segment: () => p.manyToOne(Segment).nullable().createForeignKeyConstraint(false),
    emailTemplateId: p.string().length(100).nullable(),
    smsTemplateId: p.string().length(100).nullable(),
    timezone: p.string().length(64).nullable(),
    // RECURRING: {frequency, dayOfWeek, time, timezone}; TRIGGERED: event name and conditions.
    schedule: p.json<Record<string, unknown>>().nullable(),
    triggerEvent: p.string().length(200).nullable(),
    triggerConditions: p.json<Record<string, unknown>>().nullable(),
    scheduledAt: p.datetime().nullable(),
    startedAt: p.datetime().nullable(),
    pausedAt: p.datetime().nullable(),
    completedAt: p.datetime().nullable(),
    cancelledAt: p.datetime().nullable(),
    resumedAt: p.datetime().nullable(),
    // Counts are not kept here: they are counted from campaign_deliveries and campaign_interactions,
    // so concurrent sends and receipts never contend on (or drift from) one row.
    // An upstream event type that counts as a conversion within 7 days of a click.
    conversionEvent: p.string().length(200).nullable(),
    // Beyond the spec: each recipient gets the message at scheduledAt's wall-clock time in their
    // home club's time zone (else the campaign's).
    sendInRecipientTimezone: p.boolean().default(false),
    // {start: "21:00", end: "08:00"} in the recipient's zone: a send due inside waits until `end`.
    quietHours: p.json<{ start: string; end: string }>().nullable(),
    // At most this many campaign messages per customer per rolling 24 hours (all campaigns).
    frequencyCap: p.integer().nullable(),
    createdBy: p.string().length(200).nullable(),
  },
  uniques: [{ name: 'campaigns_tenant_id_uniq', properties: ['tenantId', 'id'] }],
  indexes: [
    { name: 'campaigns_tenant_status_idx', properties: ['tenantId', 'status', 'createdAt'] },
    { name: 'campaigns_tenant_club_idx', properties: ['tenantId', 'clubId'] },
    { name: 'campaigns_tenant_trigger_idx', properties: ['tenantId', 'triggerEvent'] },
    // Every upstream event asks which campaigns it converts for.
    { name: 'campaigns_tenant_conversion_idx', properties: ['tenantId', 'conversionEvent'] },
  ],
});
export type Campaign = InferEntity<typeof Campaign>;

// One message to one customer on one channel in one run of a campaign. The unique key is the
// idempotency key of the send activity: a retried send never reaches a customer twice.
export const CampaignDelivery = defineEntity({
  name: 'CampaignDelivery',
  tableName: 'campaign_deliveries',
  properties: {
    ...tenantOwned,
    campaign: () => p.manyToOne(Campaign).createForeignKeyConstraint(false),
    customer: () => p.manyToOne(Customer).createForeignKeyConstraint(false),
    runKey: p.string().length(100),
    channel: p.enum(Channel),
    status: p.enum(DeliveryStatus).default('PENDING'),
    skipReason: p.enum(SkipReason).nullable(),
    // Not before this instant (recipient time zone, quiet hours); null: as soon as its turn comes.
    sendAt: p.datetime().nullable(),
    // The send activity holding a SENDING row (`<workflowId>/<activityId>`): its retry takes them back.
    claimedBy: p.string().length(300).nullable(),
    attempts: p.integer().default(0),
    providerMessageId: p.string().nullable(),
    error: p.text().nullable(),
    sentAt: p.datetime().nullable(),
    deliveredAt: p.datetime().nullable(),
    // A journey SEND step's message (its campaign is the journey's JOURNEY campaign).
    journeyEnrollmentId: p.uuid().nullable(),
    journeyStepId: p.uuid().nullable(),
    // Its first OPENED, CLICKED and CONVERTED interaction: kept by the analytics migration's trigger
    // on campaign_interactions, so the delivery rollup is a function of delivery rows alone.
    openedAt: p.datetime().nullable(),
    clickedAt: p.datetime().nullable(),
    convertedAt: p.datetime().nullable(),
  },
  uniques: [
    { name: 'campaign_deliveries_tenant_id_uniq', properties: ['tenantId', 'id'] },
    { name: 'campaign_deliveries_idem_uniq', properties: ['campaign', 'runKey', 'customer', 'channel'] },
  ],
  indexes: [
    { name: 'campaign_deliveries_status_idx', properties: ['tenantId', 'campaign', 'status'] },
    // The send loop's claim: a run's pending rows in id order.
    { name: 'campaign_deliveries_claim_idx', properties: ['campaign', 'runKey', 'status', 'id'] },
    // Frequency caps: what a customer was sent in the last day.
    { name: 'campaign_deliveries_customer_sent_idx', properties: ['tenantId', 'customer', 'sentAt'] },
    { name: 'campaign_deliveries_journey_step_idx', properties: ['tenantId', 'journeyStepId'], where: 'journey_step_id is not null' },
    // Analytics: a time window's part-hours, by when each message was sent.
    { name: 'campaign_deliveries_tenant_sent_idx', expression: 'create index "campaign_deliveries_tenant_sent_idx" on "campaign_deliveries" ("tenant_id", (coalesce(sent_at, created_at)))' },
  ],
});
export type CampaignDelivery = InferEntity<typeof CampaignDelivery>;

export const CampaignInteraction = defineEntity({
  name: 'CampaignInteraction',
  tableName: 'campaign_interactions',
  properties: {
    id: tenantOwned.id,
    tenantId: tenantOwned.tenantId,
    campaign: () => p.manyToOne(Campaign).createForeignKeyConstraint(false),
    customer: () => p.manyToOne(Customer).createForeignKeyConstraint(false),
    delivery: () => p.manyToOne(CampaignDelivery).nullable().createForeignKeyConstraint(false),
    type: p.enum(InteractionType),
    channel: p.enum(Channel),
    occurredAt: p.datetime(),
    metadata: p.json<Record<string, unknown>>().nullable(),
    // Each interaction's idempotency key (`open:<deliveryId>`, a webhook's event id, ...): an
    // interaction reported twice (a retried webhook, a reloaded pixel) is stored once.
    externalEventId: p.string().length(200).nullable(),
  },
  uniques: [{ name: 'campaign_interactions_external_uniq', properties: ['tenantId', 'externalEventId'], where: 'external_event_id is not null' }],
  indexes: [
    { name: 'campaign_interactions_campaign_idx', properties: ['tenantId', 'campaign', 'type', 'occurredAt'] },
    // The interactions list, newest first, without a type filter.
    { name: 'campaign_interactions_recent_idx', properties: ['tenantId', 'campaign', 'occurredAt'] },
    // Conversions: a customer's recent clicks.
    { name: 'campaign_interactions_customer_idx', properties: ['tenantId', 'customer', 'type', 'occurredAt'] },
    // A delivery's interactions of a type (its opened/clicked/converted flags).
    { name: 'campaign_interactions_delivery_idx', properties: ['delivery', 'type'], where: 'delivery_id is not null' },
  ],
});
export type CampaignInteraction = InferEntity<typeof CampaignInteraction>;

// The durable hand-off from a request's transaction to work that runs in Temporal (triggered
// campaigns, later journeys): written in the same transaction as what caused it, dispatched after
// commit and again by a sweeper, under a workflow id derived from `key`, so each runs once.
export const ReactionOutbox = defineEntity({
  name: 'ReactionOutbox',
  tableName: 'reaction_outbox',
  properties: {
    id: tenantOwned.id,
    tenantId: tenantOwned.tenantId,
    kind: p.string().length(50),
    key: p.string().length(300),
    payload: p.json<Record<string, unknown>>(),
    createdAt: tenantOwned.createdAt,
    dispatchedAt: p.datetime().nullable(),
    // A row whose dispatch failed waits until next_attempt_at (backing off), so it blocks no other.
    attempts: p.integer().default(0),
    nextAttemptAt: p.datetime().nullable(),
    lastError: p.text().nullable(),
  },
  uniques: [{ name: 'reaction_outbox_key_uniq', properties: ['tenantId', 'kind', 'key'] }],
  indexes: [{ name: 'reaction_outbox_pending_idx', properties: ['createdAt'], where: 'dispatched_at is null' }],
});
export type ReactionOutbox = InferEntity<typeof ReactionOutbox>;

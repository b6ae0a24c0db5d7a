import { defineEntity, p, type InferEntity } from '@mikro-orm/core';
import { tenantOwned } from './common.js';
import { Customer } from './customer.js';
import { CampaignStatus, CampaignType, Channel, DeliveryStatus, InteractionType } from './enums.js';
import { Segment } from './segment.js';

export const MessageTemplate = defineEntity({
  name: 'MessageTemplate',
  tableName: 'message_templates',
  properties: {
    ...tenantOwned,
    name: p.string(),
    channel: p.enum(Channel),
    subject: p.string().nullable(),
    // Liquid source rendered per recipient.
    body: p.text(),
  },
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
    targetCount: p.integer().default(0),
    sentCount: p.integer().default(0),
    deliveredCount: p.integer().default(0),
    openedCount: p.integer().default(0),
    clickedCount: p.integer().default(0),
    convertedCount: p.integer().default(0),
    unsubscribedCount: p.integer().default(0),
    bouncedCount: p.integer().default(0),
    createdBy: p.string().length(200).nullable(),
  },
  uniques: [{ name: 'campaigns_tenant_id_uniq', properties: ['tenantId', 'id'] }],
  indexes: [
    { name: 'campaigns_tenant_status_idx', properties: ['tenantId', 'status', 'createdAt'] },
    { name: 'campaigns_tenant_club_idx', properties: ['tenantId', 'clubId'] },
    { name: 'campaigns_tenant_trigger_idx', properties: ['tenantId', 'triggerEvent'] },
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
    providerMessageId: p.string().nullable(),
    error: p.text().nullable(),
    sentAt: p.datetime().nullable(),
    deliveredAt: p.datetime().nullable(),
  },
  uniques: [
    { name: 'campaign_deliveries_tenant_id_uniq', properties: ['tenantId', 'id'] },
    { name: 'campaign_deliveries_idem_uniq', properties: ['campaign', 'runKey', 'customer', 'channel'] },
  ],
  indexes: [{ name: 'campaign_deliveries_status_idx', properties: ['tenantId', 'campaign', 'status'] }],
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
    // Provider webhooks are retried; their event id keeps an interaction from counting twice.
    externalEventId: p.string().length(200).nullable(),
  },
  uniques: [{ name: 'campaign_interactions_external_uniq', properties: ['tenantId', 'externalEventId'], where: 'external_event_id is not null' }],
  indexes: [{ name: 'campaign_interactions_campaign_idx', properties: ['tenantId', 'campaign', 'type', 'occurredAt'] }],
});
export type CampaignInteraction = InferEntity<typeof CampaignInteraction>;

import { defineEntity, p, type InferEntity } from '@mikro-orm/core';
import { tenantOwned } from './common.js';
import { PromotionSourceType } from './enums.js';
import { Segment } from './segment.js';

export const EventPromotion = defineEntity({
  name: 'EventPromotion',
  tableName: 'event_promotions',
  properties: {
    ...tenantOwned,
    clubId: p.string().length(100),
    sourceType: p.enum(PromotionSourceType),
    sourceId: p.string().length(200),
    autoPromote: p.boolean().default(false),
    channels: p.array<string>().default([]),
    announceAt: p.datetime().nullable(),
    reminderDays: p.array<number>((v) => Number(v), (v) => String(v)).columnType('int[]').default([]),
    segment: () => p.manyToOne(Segment).nullable().createForeignKeyConstraint(false),
    emailTemplateId: p.string().length(100).nullable(),
    smsTemplateId: p.string().length(100).nullable(),
    socialContent: p.text().nullable(),
    lastPromotedAt: p.datetime().nullable(),
    isActive: p.boolean().default(true),
  },
  uniques: [{ name: 'event_promotions_source_uniq', properties: ['tenantId', 'sourceType', 'sourceId'] }],
  indexes: [{ name: 'event_promotions_tenant_club_idx', properties: ['tenantId', 'clubId'] }],
});
export type EventPromotion = InferEntity<typeof EventPromotion>;

// The latest known state of each competition, club event or special event, as upstream systems
// describe them through `POST /events` (domain/promotions/sources.ts). One row a source; an event
// older than the one stored (`occurredAt`, then its id) changes nothing.
export const PromotionSource = defineEntity({
  name: 'PromotionSource',
  tableName: 'promotion_sources',
  properties: {
    ...tenantOwned,
    sourceType: p.enum(PromotionSourceType),
    sourceId: p.string().length(200),
    clubId: p.string().length(100),
    title: p.string().length(500),
    description: p.text().nullable(),
    startsAt: p.datetime(),
    // When `startsAt` last changed (null: never since first recorded).
    startsAtChangedAt: p.datetime().nullable(),
    endsAt: p.datetime().nullable(),
    location: p.string().length(500).nullable(),
    url: p.text(),
    imageUrl: p.text().nullable(),
    cancelledAt: p.datetime().nullable(),
    // The event this state comes from: its time orders events; its id tells a resend apart.
    occurredAt: p.datetime(),
    sourceService: p.string().length(100),
    sourceEventId: p.string().length(200),
  },
  uniques: [{ name: 'promotion_sources_source_uniq', properties: ['tenantId', 'sourceType', 'sourceId'] }],
});
export type PromotionSource = InferEntity<typeof PromotionSource>;

// One announcement, reminder or manual run of a promotion: its key is unique, so a send already
// made is never made again (a workflow retried, continued or restarted, a double click). It holds
// the campaign it created and the event as the campaign's templates see it (`{{ event.title }}`).
export const PromotionSend = defineEntity({
  name: 'PromotionSend',
  tableName: 'promotion_sends',
  properties: {
    ...tenantOwned,
    promotionId: p.uuid(),
    key: p.string().length(300),
    kind: p.enum(['ANNOUNCE', 'REMINDER', 'MANUAL'] as const),
    campaignId: p.uuid().nullable(),
    recipientCount: p.integer().default(0),
    event: p.json<Record<string, unknown>>(),
  },
  uniques: [{ name: 'promotion_sends_key_uniq', properties: ['tenantId', 'key'] }],
  indexes: [
    { name: 'promotion_sends_promotion_idx', properties: ['tenantId', 'promotionId', 'createdAt'] },
    { name: 'promotion_sends_campaign_idx', properties: ['tenantId', 'campaignId'] },
  ],
});
export type PromotionSend = InferEntity<typeof PromotionSend>;

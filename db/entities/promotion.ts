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

import { defineEntity, p, type InferEntity } from '@mikro-orm/core';

// The analytics rollups (domain/analytics/analytics.ts). Only the statement-level triggers of the
// analytics migration write them, in the transaction of the write they count; each row is one
// writing backend's share (`writer`: its pid; 0 for the backfill), so readers sum a key's writers.

const count = () => p.bigint('number');

/** Customers per status and lifecycle stage, with what the averages and the at-risk count need. */
export const AnalyticsCustomerTotals = defineEntity({
  name: 'AnalyticsCustomerTotals',
  tableName: 'analytics_customer_totals',
  properties: {
    tenantId: p.string().length(100).primary(),
    status: p.text().primary(),
    lifecycleStage: p.text().primary(),
    writer: p.integer().primary(),
    customers: count(),
    engagementSum: count(),
    engagementCount: count(),
    churnRiskSum: count(),
    churnRiskCount: count(),
    atRisk: count(),
  },
});
export type AnalyticsCustomerTotals = InferEntity<typeof AnalyticsCustomerTotals>;

/** Activities per UTC hour of occurred_at. */
export const AnalyticsActivityHours = defineEntity({
  name: 'AnalyticsActivityHours',
  tableName: 'analytics_activity_hours',
  properties: {
    tenantId: p.string().length(100).primary(),
    hour: p.datetime().primary(),
    writer: p.integer().primary(),
    activities: count(),
  },
});
export type AnalyticsActivityHours = InferEntity<typeof AnalyticsActivityHours>;

/** Deliveries per campaign, channel and UTC hour of sending, counted as campaign stats count them. */
export const AnalyticsDeliveryHours = defineEntity({
  name: 'AnalyticsDeliveryHours',
  tableName: 'analytics_delivery_hours',
  properties: {
    tenantId: p.string().length(100).primary(),
    hour: p.datetime().primary(),
    campaignId: p.uuid().primary(),
    channel: p.text().primary(),
    writer: p.integer().primary(),
    sent: count(),
    delivered: count(),
    bounced: count(),
    opened: count(),
    clicked: count(),
    converted: count(),
  },
});
export type AnalyticsDeliveryHours = InferEntity<typeof AnalyticsDeliveryHours>;

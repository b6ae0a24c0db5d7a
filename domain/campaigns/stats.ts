import type { EntityManager } from '@mikro-orm/postgresql';
import type { Channel, InteractionType } from '../../db/entities/enums.js';
import { pgArray, TENANT } from '../../db/sql.js';
import { notFound } from '../../platform/errors.js';
import { fullName, isUuid } from '../customers/customers.js';

// Campaign statistics are counted from rows (campaign_deliveries, campaign_interactions), never
// kept as counters: concurrent sends and receipts write rows of their own and contend on nothing.

export interface CampaignCounts {
  targetCount: number;
  sentCount: number;
  deliveredCount: number;
  openedCount: number;
  clickedCount: number;
  convertedCount: number;
  unsubscribedCount: number;
  bouncedCount: number;
}

export interface ChannelStats { sent: number; delivered: number; opened: number; clicked: number; bounced: number; failed: number; skipped: number }

export interface CampaignStatsView extends CampaignCounts {
  campaignId: string;
  deliveryRate: number;
  openRate: number;
  clickRate: number;
  conversionRate: number;
  byChannel: Partial<Record<Channel, ChannelStats>>;
  /** Deliveries never sent, by why (NO_CONSENT, NO_ADDRESS, BOUNCED, INACTIVE, FREQUENCY_CAP), and by channel in `byChannel`. */
  skipped: Record<string, number>;
  timeline: { hour: string; sent: number; opened: number }[];
}

export interface InteractionView {
  id: string;
  customerId: string;
  customerEmail: string | null;
  customerName: string | null;
  type: InteractionType;
  channel: Channel;
  occurredAt: Date;
  metadata: Record<string, unknown> | null;
}

// A delivery counts as sent once the channel took it, whatever its receipt said since.
const SENT = `status in ('SENT', 'DELIVERED', 'BOUNCED')`;

const ZERO: CampaignCounts = {
  targetCount: 0, sentCount: 0, deliveredCount: 0, openedCount: 0, clickedCount: 0, convertedCount: 0, unsubscribedCount: 0, bouncedCount: 0,
};

/** Counts for many campaigns in one grouped query each (list pages). */
export async function campaignCounts(em: EntityManager, tenantId: string, campaignIds: string[]): Promise<Map<string, CampaignCounts>> {
  const ids = [...new Set(campaignIds.filter(isUuid))];
  const counts = new Map<string, CampaignCounts>(campaignIds.map((id) => [id, { ...ZERO }]));
  if (!ids.length) return counts;
  const deliveries = await em.execute<{ campaign_id: string; target: number; sent: number; delivered: number; bounced: number }[]>(
    `select campaign_id, count(distinct (run_key, customer_id))::int as target,
            (count(*) filter (where ${SENT}))::int as sent,
            (count(*) filter (where status = 'DELIVERED'))::int as delivered,
            (count(*) filter (where status = 'BOUNCED'))::int as bounced
       from campaign_deliveries where tenant_id = ? and campaign_id = any(?::uuid[]) group by campaign_id`,
    [tenantId, pgArray(ids)],
  );
  for (const r of deliveries) {
    Object.assign(counts.get(r.campaign_id)!, { targetCount: r.target, sentCount: r.sent, deliveredCount: r.delivered, bouncedCount: r.bounced });
  }
  const interactions = await em.execute<{ campaign_id: string; opened: number; clicked: number; converted: number; unsubscribed: number }[]>(
    `select campaign_id,
            (count(distinct delivery_id) filter (where type = 'OPENED'))::int as opened,
            (count(distinct delivery_id) filter (where type = 'CLICKED'))::int as clicked,
            (count(distinct delivery_id) filter (where type = 'CONVERTED'))::int as converted,
            (count(distinct delivery_id) filter (where type = 'UNSUBSCRIBED'))::int as unsubscribed
       from campaign_interactions
      where tenant_id = ? and campaign_id = any(?::uuid[]) and type in ('OPENED', 'CLICKED', 'CONVERTED', 'UNSUBSCRIBED')
      group by campaign_id`,
    [tenantId, pgArray(ids)],
  );
  for (const r of interactions) {
    Object.assign(counts.get(r.campaign_id)!, { openedCount: r.opened, clickedCount: r.clicked, convertedCount: r.converted, unsubscribedCount: r.unsubscribed });
  }
  return counts;
}

/** part/whole to 4 decimals (campaigns-api.md: 478/485 → 0.9856); 0 when nothing to divide by. */
export const rate = (part: number, whole: number) => (whole === 0 ? 0 : Math.round((part / whole) * 10_000) / 10_000);

/** An hour as campaigns-api.md writes it: `2025-12-14T09:00:00Z`. */
const hourIso = (d: Date) => d.toISOString().replace(/\.\d{3}Z$/, 'Z');

async function campaignOf(em: EntityManager, tenantId: string, campaignId: string): Promise<{ channels: Channel[] }> {
  const [row] = isUuid(campaignId)
    ? await em.execute<{ channels: Channel[] }[]>('select channels from campaigns where tenant_id = ? and id = ?', [tenantId, campaignId])
    : [];
  if (!row) throw notFound('campaign', campaignId);
  return row;
}

/** The body of GET /campaigns/:id/stats (campaigns-api.md). */
export async function campaignStats(em: EntityManager, tenantId: string, campaignId: string): Promise<CampaignStatsView> {
  const campaign = await campaignOf(em, tenantId, campaignId);
  const counts = (await campaignCounts(em, tenantId, [campaignId])).get(campaignId)!;

  const byChannel: Partial<Record<Channel, ChannelStats>> = {};
  const channel = (c: Channel) => (byChannel[c] ??= { sent: 0, delivered: 0, opened: 0, clicked: 0, bounced: 0, failed: 0, skipped: 0 });
  for (const c of campaign.channels) channel(c);
  const deliveries = await em.execute<{ channel: Channel; reason: string | null; sent: number; delivered: number; bounced: number; failed: number; skipped: number }[]>(
    `select channel, skip_reason as reason, (count(*) filter (where ${SENT}))::int as sent,
            (count(*) filter (where status = 'DELIVERED'))::int as delivered,
            (count(*) filter (where status = 'BOUNCED'))::int as bounced,
            (count(*) filter (where status = 'FAILED'))::int as failed,
            (count(*) filter (where status = 'SKIPPED'))::int as skipped
       from campaign_deliveries where tenant_id = ${TENANT} and campaign_id = ? group by channel, skip_reason`,
    [tenantId, campaignId],
  );
  const skipped: Record<string, number> = {};
  for (const r of deliveries) {
    const c = channel(r.channel);
    for (const k of ['sent', 'delivered', 'bounced', 'failed', 'skipped'] as const) c[k] += r[k];
    if (r.reason && r.skipped) skipped[r.reason] = (skipped[r.reason] ?? 0) + r.skipped;
  }
  const engaged = await em.execute<{ channel: Channel; opened: number; clicked: number }[]>(
    `select channel, (count(distinct delivery_id) filter (where type = 'OPENED'))::int as opened,
            (count(distinct delivery_id) filter (where type = 'CLICKED'))::int as clicked
       from campaign_interactions where tenant_id = ${TENANT} and campaign_id = ? and type in ('OPENED', 'CLICKED') group by channel`,
    [tenantId, campaignId],
  );
  for (const r of engaged) Object.assign(channel(r.channel), { opened: r.opened, clicked: r.clicked });

  const hours = await em.execute<{ hour: Date; sent: number; opened: number }[]>(
    `select hour, sum(sent)::int as sent, sum(opened)::int as opened from (
        select date_trunc('hour', sent_at, 'UTC') as hour, count(*) as sent, 0 as opened
          from campaign_deliveries where tenant_id = ${TENANT} and campaign_id = ? and ${SENT} and sent_at is not null group by 1
        union all
        select date_trunc('hour', occurred_at, 'UTC'), 0, count(distinct delivery_id)
          from campaign_interactions where tenant_id = ${TENANT} and campaign_id = ? and type = 'OPENED' group by 1
      ) t group by hour order by hour`,
    [tenantId, campaignId, tenantId, campaignId],
  );

  return {
    campaignId,
    ...counts,
    deliveryRate: rate(counts.deliveredCount, counts.sentCount),
    openRate: rate(counts.openedCount, counts.deliveredCount),
    clickRate: rate(counts.clickedCount, counts.openedCount),
    conversionRate: rate(counts.convertedCount, counts.clickedCount),
    byChannel,
    skipped,
    timeline: hours.map((h) => ({ hour: hourIso(new Date(h.hour)), sent: h.sent, opened: h.opened })),
  };
}

/** GET /campaigns/:id/interactions: newest first, with each customer's email and name. */
export async function listInteractions(
  em: EntityManager, tenantId: string, campaignId: string, q: { type?: InteractionType; skip: number; take: number },
): Promise<{ rows: InteractionView[]; total: number }> {
  await campaignOf(em, tenantId, campaignId);
  const typeFilter = q.type ? 'and i.type = ?' : '';
  const args = [tenantId, campaignId, ...(q.type ? [q.type] : [])];
  const [{ total }] = (await em.execute<{ total: number }[]>(
    `select count(*)::int as total from campaign_interactions i where i.tenant_id = ${TENANT} and i.campaign_id = ? ${typeFilter}`,
    args,
  )) as [{ total: number }];
  const rows = await em.execute<{
    id: string; customer_id: string; email: string | null; first_name: string | null; last_name: string | null;
    type: InteractionType; channel: Channel; occurred_at: Date; metadata: Record<string, unknown> | null;
  }[]>(
    `select i.id, i.customer_id, c.email, c.first_name, c.last_name, i.type, i.channel, i.occurred_at, i.metadata
       from campaign_interactions i
       left join customers c on c.tenant_id = i.tenant_id and c.id = i.customer_id
      where i.tenant_id = ${TENANT} and i.campaign_id = ? ${typeFilter}
      order by i.occurred_at desc, i.id desc offset ? limit ?`,
    [...args, q.skip, q.take],
  );
  return {
    total,
    rows: rows.map((r) => ({
      id: r.id, customerId: r.customer_id, customerEmail: r.email, customerName: fullName({ firstName: r.first_name, lastName: r.last_name }),
      type: r.type, channel: r.channel, occurredAt: new Date(r.occurred_at), metadata: r.metadata,
    })),
  };
}

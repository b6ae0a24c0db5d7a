import type { EntityManager } from '@mikro-orm/postgresql';
import { z } from 'zod';
import { ActivityCategory, type CampaignStatus, type Channel, type LifecycleStage, type SocialPlatform } from '../../db/entities/enums.js';
import { pgArray } from '../../db/sql.js';
import { rate } from '../campaigns/stats.js';
import type { ServiceContext } from '../context.js';
import { dateRangeMessage, inDateRange, validate } from '../validate.js';

// The four analytics reports (graphql-api.md; the types in implied-types.graphql), each a few
// set-based statements that stay fast on large tenants:
//  - engagement and campaign numbers come from the rollups the analytics migration keeps
//    (analytics_customer_totals, analytics_activity_hours, analytics_delivery_hours: exact, written
//    by triggers in the writers' own transactions), plus, where a time window cuts through an hour,
//    the raw rows of that part-hour only;
//  - journey numbers from the totals journeys keep (total_enrolled/completed/exited);
//  - social numbers by scanning the tenant's posts, which are few.
//
// Words, decided once:
//  - a live customer is one not MERGED or DELETED; totalCustomers, byLifecycleStage, the averages
//    and atRiskCustomers count live customers; activeCustomers those with status ACTIVE;
//  - averages are over the live customers that have the score (null when none has);
//  - activitiesLast30Days: activities whose occurredAt is within the 30 days up to now (inclusive);
//  - a campaign dateRange (inclusive at both ends) selects campaigns by createdAt for
//    totalCampaigns/byStatus, and messages by when they were sent (sentAt) for the message counts,
//    their opens, clicks and conversions included whenever those came. The counts and rates are the
//    definitions of campaign stats (domain/campaigns/stats.ts), so over one campaign they equal it;
//  - a social dateRange selects posts by when they went, or are due to go, out: publishedAt, else
//    scheduledAt, else createdAt.

export interface DateRange {
  startDate?: Date;
  endDate?: Date;
}

const when = z.coerce.date({ error: 'expected an ISO 8601 date-time' }).refine(inDateRange, dateRangeMessage);
const dateRangeInput = z
  .object({ startDate: when.optional(), endDate: when.optional() })
  .refine((r) => !r.startDate || !r.endDate || r.startDate <= r.endDate, { message: 'must not be before startDate', path: ['endDate'] });

/** A date range's checks; `prefix` names where it came from (`dateRange`, `query`). */
export function dateRangeOf(input: { startDate?: Date | string | null; endDate?: Date | string | null } | null | undefined, prefix: string): DateRange {
  const r = validate(dateRangeInput, { startDate: input?.startDate ?? undefined, endDate: input?.endDate ?? undefined }, prefix);
  return { startDate: r.startDate, endDate: r.endDate };
}

const HOUR = 3_600_000;
const ceilHour = (d: Date) => new Date(Math.ceil(d.getTime() / HOUR) * HOUR);
const floorHour = (d: Date) => new Date(Math.floor(d.getTime() / HOUR) * HOUR);
const iso = (d: Date) => d.toISOString();

type Where = [sql: string, params: unknown[]];

/**
 * A time window as rollup hours plus raw part-hours: the whole UTC hours inside [start, end] from
 * the rollup (a condition on its `hour`), the rest (under an hour at each end) from the rows (a
 * condition on their time). Null when no whole hour fits.
 */
function split(range: DateRange): { hours: ((col: string) => Where) | null; raw: ((col: string) => Where)[] } {
  const { startDate: s, endDate: e } = range;
  const lo = s && ceilHour(s);
  const hi = e && floorHour(e);
  if (s && e && lo! >= hi!) return { hours: null, raw: [(col) => [`${col} between ? and ?`, [iso(s), iso(e)]]] };
  const raw: ((col: string) => Where)[] = [];
  if (s && s < lo!) raw.push((col) => [`${col} >= ? and ${col} < ?`, [iso(s), iso(lo!)]]);
  if (e) raw.push((col) => [`${col} between ? and ?`, [iso(hi!), iso(e)]]);
  return {
    hours: (col) => [[lo && `${col} >= ?`, hi && `${col} < ?`, 'true'].filter(Boolean).join(' and '), [lo, hi].filter((d) => d !== undefined).map(iso)],
    raw,
  };
}

// ---------------------------------------------------------------------------------------------

export interface EngagementAnalyticsView {
  tenantId: string;
  totalCustomers: number;
  activeCustomers: number;
  averageEngagementScore: number | null;
  averageChurnRiskScore: number | null;
  atRiskCustomers: number;
  byLifecycleStage: Partial<Record<LifecycleStage, number>>;
  activitiesLast30Days: number;
  generatedAt: Date;
}

const LIVE = `status <> 'MERGED' and status <> 'DELETED'`;

/** Activities of the tenant in [start, end]: rollup hours and raw part-hours. */
async function activitiesBetween(em: EntityManager, tenantId: string, range: Required<DateRange>): Promise<number> {
  const { hours, raw } = split(range);
  const parts: string[] = [];
  const params: unknown[] = [];
  if (hours) {
    const [where, args] = hours('hour');
    parts.push(`select coalesce(sum(activities), 0)::bigint as n from analytics_activity_hours where tenant_id = ? and ${where}`);
    params.push(tenantId, ...args);
  }
  for (const part of raw) {
    // Every category named, so the (tenant_id, category, occurred_at) index serves the range.
    const [where, args] = part('occurred_at');
    parts.push(`select count(*)::bigint from activities where tenant_id = ? and category = any(?::text[]) and ${where}`);
    params.push(tenantId, pgArray([...ActivityCategory]), ...args);
  }
  const [row] = await em.execute<{ n: string }[]>(`select sum(n)::bigint as n from (${parts.join(' union all ')}) t`, params);
  return Number(row?.n ?? 0);
}

export async function engagementAnalytics(ctx: ServiceContext): Promise<EngagementAnalyticsView> {
  const now = new Date();
  const [stages, activities] = await Promise.all([
    ctx.em.execute<{ status: string; lifecycle_stage: LifecycleStage; customers: string; es: string; ec: string; cs: string; cc: string; at_risk: string }[]>(
      `select status, lifecycle_stage, sum(customers) as customers, sum(engagement_sum) as es, sum(engagement_count) as ec,
              sum(churn_risk_sum) as cs, sum(churn_risk_count) as cc, sum(at_risk) as at_risk
         from analytics_customer_totals where tenant_id = ? and ${LIVE} group by status, lifecycle_stage`,
      [ctx.tenantId],
    ),
    activitiesBetween(ctx.em, ctx.tenantId, { startDate: new Date(now.getTime() - 30 * 24 * HOUR), endDate: now }),
  ]);
  let total = 0, active = 0, atRisk = 0, es = 0, ec = 0, cs = 0, cc = 0;
  const byLifecycleStage: Partial<Record<LifecycleStage, number>> = {};
  for (const r of stages) {
    const n = Number(r.customers);
    if (!n) continue;
    total += n;
    if (r.status === 'ACTIVE') active += n;
    atRisk += Number(r.at_risk);
    es += Number(r.es); ec += Number(r.ec); cs += Number(r.cs); cc += Number(r.cc);
    byLifecycleStage[r.lifecycle_stage] = (byLifecycleStage[r.lifecycle_stage] ?? 0) + n;
  }
  return {
    tenantId: ctx.tenantId,
    totalCustomers: total,
    activeCustomers: active,
    averageEngagementScore: ec ? es / ec : null,
    averageChurnRiskScore: cc ? cs / cc : null,
    atRiskCustomers: atRisk,
    byLifecycleStage,
    activitiesLast30Days: activities,
    generatedAt: now,
  };
}

// ---------------------------------------------------------------------------------------------

export interface ChannelAnalytics { sent: number; delivered: number; opened: number; clicked: number; bounced: number }

export interface CampaignAnalyticsView {
  tenantId: string;
  startDate: Date | null;
  endDate: Date | null;
  totalCampaigns: number;
  byStatus: Partial<Record<CampaignStatus, number>>;
  sentCount: number;
  deliveredCount: number;
  openedCount: number;
  clickedCount: number;
  convertedCount: number;
  deliveryRate: number;
  openRate: number;
  clickRate: number;
  conversionRate: number;
  byChannel: Partial<Record<Channel, ChannelAnalytics>>;
}

const MEASURES = ['sent', 'delivered', 'bounced', 'opened', 'clicked', 'converted'] as const;
type Measures = Record<(typeof MEASURES)[number], number>;

// A delivery's measures as the rollup counts them (and campaign stats: sent once the channel took it).
const RAW_MEASURES = `(count(*) filter (where status in ('SENT', 'DELIVERED', 'BOUNCED'))) as sent,
  (count(*) filter (where status = 'DELIVERED')) as delivered, (count(*) filter (where status = 'BOUNCED')) as bounced,
  count(opened_at) as opened, count(clicked_at) as clicked, count(converted_at) as converted`;

/** Per channel, the deliveries of the tenant sent in the range and what became of them. */
async function deliveryCounts(em: EntityManager, tenantId: string, range: DateRange): Promise<Map<Channel, Measures>> {
  const { hours, raw } = split(range);
  const parts: string[] = [];
  const params: unknown[] = [];
  if (hours) {
    const [where, args] = hours('hour');
    parts.push(`select channel, ${MEASURES.map((m) => `sum(${m}) as ${m}`).join(', ')} from analytics_delivery_hours
      where tenant_id = ? and ${where} group by channel`);
    params.push(tenantId, ...args);
  }
  for (const part of raw) {
    // The expression of the campaign_deliveries_tenant_sent_idx index.
    const [where, args] = part('coalesce(sent_at, created_at)');
    parts.push(`select channel, ${RAW_MEASURES} from campaign_deliveries where tenant_id = ? and ${where} group by channel`);
    params.push(tenantId, ...args);
  }
  const rows = await em.execute<({ channel: Channel } & Record<(typeof MEASURES)[number], string>)[]>(
    `select channel, ${MEASURES.map((m) => `sum(${m})::bigint as ${m}`).join(', ')} from (${parts.join(' union all ')}) t group by channel order by channel`,
    params,
  );
  return new Map(rows.map((r) => [r.channel, Object.fromEntries(MEASURES.map((m) => [m, Number(r[m])])) as Measures]));
}

export async function campaignAnalytics(ctx: ServiceContext, range: DateRange): Promise<CampaignAnalyticsView> {
  const { startDate, endDate } = range;
  const created = [startDate && 'created_at >= ?', endDate && 'created_at <= ?'].filter(Boolean).map((c) => ` and ${c}`).join('');
  const [statuses, channels] = await Promise.all([
    ctx.em.execute<{ status: CampaignStatus; n: number }[]>(
      `select status, count(*)::int as n from campaigns where tenant_id = ?${created} group by status order by status`,
      [ctx.tenantId, ...[startDate, endDate].filter((d) => d !== undefined).map(iso)],
    ),
    deliveryCounts(ctx.em, ctx.tenantId, range),
  ]);
  const totals: Measures = { sent: 0, delivered: 0, bounced: 0, opened: 0, clicked: 0, converted: 0 };
  const byChannel: Partial<Record<Channel, ChannelAnalytics>> = {};
  for (const [channel, m] of channels) {
    for (const k of MEASURES) totals[k] += m[k];
    byChannel[channel] = { sent: m.sent, delivered: m.delivered, opened: m.opened, clicked: m.clicked, bounced: m.bounced };
  }
  return {
    tenantId: ctx.tenantId,
    startDate: startDate ?? null,
    endDate: endDate ?? null,
    totalCampaigns: statuses.reduce((n, r) => n + r.n, 0),
    byStatus: Object.fromEntries(statuses.map((r) => [r.status, r.n])),
    sentCount: totals.sent,
    deliveredCount: totals.delivered,
    openedCount: totals.opened,
    clickedCount: totals.clicked,
    convertedCount: totals.converted,
    deliveryRate: rate(totals.delivered, totals.sent),
    openRate: rate(totals.opened, totals.delivered),
    clickRate: rate(totals.clicked, totals.opened),
    conversionRate: rate(totals.converted, totals.clicked),
    byChannel,
  };
}

// ---------------------------------------------------------------------------------------------

export interface JourneyTotals { name: string; enrolled: number; active: number; completed: number; exited: number }

export interface JourneyAnalyticsView {
  tenantId: string;
  totalJourneys: number;
  activeJourneys: number;
  totalEnrolled: number;
  activeEnrollments: number;
  totalCompleted: number;
  totalExited: number;
  completionRate: number;
  byJourney: Record<string, JourneyTotals>;
}

/** From the totals each journey keeps exactly (domain/journeys/enrollment.ts): active = enrolled − completed − exited. */
export async function journeyAnalytics(ctx: ServiceContext): Promise<JourneyAnalyticsView> {
  const rows = await ctx.em.execute<{ id: string; name: string; status: string; enrolled: number; completed: number; exited: number }[]>(
    `select id, name, status, total_enrolled as enrolled, total_completed as completed, total_exited as exited
       from journeys where tenant_id = ? order by created_at, id`,
    [ctx.tenantId],
  );
  const view: JourneyAnalyticsView = {
    tenantId: ctx.tenantId, totalJourneys: rows.length, activeJourneys: 0, totalEnrolled: 0, activeEnrollments: 0, totalCompleted: 0, totalExited: 0,
    completionRate: 0, byJourney: {},
  };
  for (const r of rows) {
    const active = r.enrolled - r.completed - r.exited;
    if (r.status === 'ACTIVE') view.activeJourneys++;
    view.totalEnrolled += r.enrolled;
    view.totalCompleted += r.completed;
    view.totalExited += r.exited;
    view.activeEnrollments += active;
    view.byJourney[r.id] = { name: r.name, enrolled: r.enrolled, active, completed: r.completed, exited: r.exited };
  }
  view.completionRate = rate(view.totalCompleted, view.totalEnrolled);
  return view;
}

// ---------------------------------------------------------------------------------------------

export interface PlatformAnalytics { posts: number; likes: number; comments: number; shares: number; reach: number }

export interface SocialAnalyticsView {
  tenantId: string;
  startDate: Date | null;
  endDate: Date | null;
  totalPosts: number;
  publishedPosts: number;
  scheduledPosts: number;
  failedPosts: number;
  likes: number;
  comments: number;
  shares: number;
  reach: number;
  engagementRate: number;
  byPlatform: Partial<Record<SocialPlatform, PlatformAnalytics>>;
}

export async function socialAnalytics(ctx: ServiceContext, range: DateRange): Promise<SocialAnalyticsView> {
  const { startDate, endDate } = range;
  const at = 'coalesce(p.published_at, p.scheduled_at, p.created_at)';
  const window = [startDate && `${at} >= ?`, endDate && `${at} <= ?`].filter(Boolean).map((c) => ` and ${c}`).join('');
  const rows = await ctx.em.execute<{ platform: SocialPlatform; posts: number; published: number; scheduled: number; failed: number; likes: string; comments: string; shares: string; reach: string }[]>(
    `select c.platform, count(*)::int as posts,
            (count(*) filter (where p.status = 'PUBLISHED'))::int as published,
            (count(*) filter (where p.status = 'SCHEDULED'))::int as scheduled,
            (count(*) filter (where p.status = 'FAILED'))::int as failed,
            sum(p.likes)::bigint as likes, sum(p.comments)::bigint as comments, sum(p.shares)::bigint as shares, sum(p.reach)::bigint as reach
       from social_posts p join social_connections c on c.tenant_id = p.tenant_id and c.id = p.connection_id
      where p.tenant_id = ?${window}
      group by c.platform order by c.platform`,
    [ctx.tenantId, ...[startDate, endDate].filter((d) => d !== undefined).map(iso)],
  );
  const view: SocialAnalyticsView = {
    tenantId: ctx.tenantId, startDate: startDate ?? null, endDate: endDate ?? null,
    totalPosts: 0, publishedPosts: 0, scheduledPosts: 0, failedPosts: 0, likes: 0, comments: 0, shares: 0, reach: 0, engagementRate: 0, byPlatform: {},
  };
  for (const r of rows) {
    const m = { posts: r.posts, likes: Number(r.likes), comments: Number(r.comments), shares: Number(r.shares), reach: Number(r.reach) };
    view.byPlatform[r.platform] = m;
    view.totalPosts += r.posts;
    view.publishedPosts += r.published;
    view.scheduledPosts += r.scheduled;
    view.failedPosts += r.failed;
    view.likes += m.likes;
    view.comments += m.comments;
    view.shares += m.shares;
    view.reach += m.reach;
  }
  view.engagementRate = rate(view.likes + view.comments + view.shares, view.reach);
  return view;
}

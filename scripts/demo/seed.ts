// The demo club tenant of `npm run demo`: members with activity history, notes, home clubs and
// segments of every type, written through the platform's own services, so every rule (identity
// normalisation, idempotent events, SMART reactions, segment workflows) applies as it would to a
// real club. Generated from a fixed seed: a re-run writes the same people and events again, which
// the services recognise (import upserts by email, events dedupe by sourceEventId, notes and
// segments are looked up first), so nothing is duplicated.
import type { Client } from '@temporalio/client';
import { Club, Customer } from '../../db/entities/index.js';
import type { Orm } from '../../db/orm.js';
import type { ServiceContext } from '../../domain/context.js';
import { importCustomers, type ImportRow } from '../../domain/customers/import.js';
import { addNote, customerNotes } from '../../domain/customers/notes.js';
import { ingestEvents } from '../../domain/events/ingest.js';
import { createSegment, listSegments } from '../../domain/segments/segments.js';
import { createCampaign, executeCampaign, listCampaignsPage } from '../../domain/campaigns/campaigns.js';
import { createTemplate, listTemplatesPage } from '../../domain/templates/templates.js';
import { SCOPES } from '../../platform/auth.js';
import type { Config } from '../../platform/config.js';
import type { Logger } from '../../platform/logger.js';
import { TenantId } from '../../platform/search-attributes.js';

export interface DemoDeps {
  orm: Orm;
  temporal: Client;
  config: Config;
  log: Logger;
}

export interface DemoSummary {
  tenantId: string;
  members: { created: number; updated: number; rejected: number };
  events: { accepted: number; duplicates: number; rejected: number };
  notesAdded: number;
  segments: { id: string; name: string; type: string; memberCount: number; created: boolean }[];
  campaign?: { id: string; name: string; created: boolean };
}

const DAY = 86_400_000;
const EVENTS_PER_REQUEST = 1000;
const SOURCE = 'demo-club';

const CLUBS = [
  { id: 'royal-oaks', name: 'Royal Oaks Golf Club' },
  { id: 'silver-lakes', name: 'Silver Lakes Country Club' },
  { id: 'atlantic-links', name: 'Atlantic Links' },
  { id: 'highveld-tennis', name: 'Highveld Tennis & Padel' },
];
const FIRST = ['Thandi', 'Pieter', 'Aisha', 'Johan', 'Lerato', 'Michael', 'Naledi', 'Sipho', 'Emma', 'Ruan', 'Zanele', 'David',
  'Fatima', 'Liam', 'Kagiso', 'Olivia', 'Bongani', 'Chloe', 'Tebogo', 'Daniel', 'Precious', 'Ethan', 'Ayanda', 'Grace'];
const LAST = ['Nkosi', 'van der Merwe', 'Patel', 'Botha', 'Dlamini', 'Smith', 'Mokoena', 'Naidoo', 'Pretorius', 'Khumalo',
  'Jacobs', 'Williams', 'Mahlangu', 'Fourie', 'Ndlovu', 'Coetzee', 'Govender', 'Zulu', 'Steyn', 'Molefe'];
const TIERS = ['Platinum', 'Gold', 'Gold', 'Silver', 'Silver', 'Silver', 'Junior', 'Social'];
const STAGES = ['MEMBER', 'MEMBER', 'MEMBER', 'MEMBER', 'MEMBER', 'ADVOCATE', 'LEAD', 'SUBSCRIBER', 'CHURNED'] as const;

const ACTIVITIES = [
  { category: 'GOLF', type: 'round.played', title: (r: Rng) => `Played 18 holes, scored ${68 + r.int(30)}`, amount: 0 },
  { category: 'BOOKING', type: 'tee_time.booked', title: (r: Rng) => `Booked a tee time for ${1 + r.int(4)}`, amount: 0 },
  { category: 'FINANCIAL', type: 'payment.received', title: () => 'Pro shop purchase', amount: 450 },
  { category: 'FINANCIAL', type: 'membership.fee_paid', title: () => 'Monthly membership fee', amount: 1850 },
  { category: 'COMMUNICATION', type: 'newsletter.opened', title: () => 'Opened the club newsletter', amount: 0 },
  { category: 'ENGAGEMENT', type: 'clubhouse.visit', title: () => 'Checked in at the clubhouse', amount: 0 },
  { category: 'SOCIAL', type: 'event.attended', title: () => 'Attended the Friday social', amount: 0 },
  { category: 'MEMBERSHIP', type: 'membership.renewed', title: () => 'Renewed membership for another year', amount: 0 },
] as const;

const NOTES = [
  { type: 'GENERAL', content: 'Prefers early-morning tee times; usually plays with the Saturday four-ball.' },
  { type: 'SALES', content: 'Asked about upgrading to Platinum for the family. Follow up before renewal.' },
  { type: 'SUPPORT', content: 'Locker key replaced at reception.' },
  { type: 'COMPLAINT', content: 'Unhappy with green speeds on the back nine after aeration; passed on to the course manager.', isPinned: true },
] as const;

/** Segments of every type, with criteria a club manager would write. */
const CAMPAIGN = {
  name: 'We miss you on the course',
  template: {
    name: 'Come back to the course', channel: 'EMAIL', subject: '{{ firstName | default: "Golfer" }}, your tee time is waiting',
    body: '<p>Hi {{ firstName | default: "there" }},</p><p>We have not seen you at {{ club.name | default: "the club" }} for a while. '
      + 'This month\'s twilight rounds are half price.</p><p><a href="https://example.com/book">Book a tee time</a></p>'
      + '<p style="font-size:12px"><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>',
  },
};

const SEGMENTS = (clubs: typeof CLUBS) => [
  {
    name: 'AGM 2026 invitations', type: 'STATIC',
    description: 'Voting members at the time the invitations went out: a snapshot, refreshed only on request.',
    criteria: { all: [{ field: 'membershipTier', op: 'in', value: ['Platinum', 'Gold', 'Silver'] }, { field: 'membershipStatus', op: 'eq', value: 'active' }] },
  },
  {
    name: `Low handicappers at ${clubs[0]!.name}`, type: 'DYNAMIC', refreshIntervalMinutes: 60,
    description: 'Single-figure golfers whose home club is Royal Oaks: the club championship shortlist.',
    criteria: { all: [{ field: 'handicap', op: 'lt', value: 10 }, { field: 'homeClubId', op: 'eq', value: clubs[0]!.id }] },
  },
  {
    name: 'Golfers who stopped playing', type: 'DYNAMIC', refreshIntervalMinutes: 1440,
    description: 'Played before, but no round in the last 90 days.',
    criteria: {
      all: [
        { event: { category: 'GOLF' } },
        { event: { category: 'GOLF', within: 'P90D' }, count: { op: 'eq', value: 0 } },
      ],
    },
  },
  {
    name: 'Highly engaged members', type: 'SMART',
    description: 'Engagement score of 60 or more; follows every event and each scoring run.',
    criteria: { all: [{ field: 'engagementScore', op: 'gte', value: 60 }, { field: 'lifecycleStage', op: 'in', value: ['MEMBER', 'ADVOCATE'] }] },
  },
  {
    name: 'Churn risk, still paying', type: 'SMART',
    description: 'Active members whose churn risk is 70 or more: worth a call from the membership office.',
    criteria: { all: [{ field: 'churnRiskScore', op: 'gte', value: 70 }, { field: 'membershipStatus', op: 'eq', value: 'active' }] },
  },
  {
    name: 'Booked in the last 30 days', type: 'SMART',
    description: 'Anyone with a booking in the last 30 days who takes email.',
    criteria: { all: [{ event: { category: 'BOOKING', within: 'P30D' } }, { field: 'emailOptIn', op: 'eq', value: true }] },
  },
];

/** A small deterministic generator (mulberry32): the same seed gives the same club every run. */
class Rng {
  constructor(private state: number) {}
  next(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) | 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
}

interface Member {
  index: number;
  email: string;
  row: Record<string, unknown>;
  /** Days ago of the member's most recent activity; larger for the lapsing ones. */
  quietDays: number;
  activityCount: number;
}

function members(count: number): Member[] {
  return Array.from({ length: count }, (_, index) => {
    const r = new Rng(index + 1);
    const firstName = r.pick(FIRST);
    const lastName = r.pick(LAST);
    const tier = r.pick(TIERS);
    const lifecycleStage = r.pick(STAGES);
    const golfer = tier !== 'Social' && r.next() < 0.85;
    const email = `${firstName}.${lastName}.${index + 1}`.toLowerCase().replace(/[^a-z0-9.]+/g, '') + '@members.demo-club.example';
    const row: Record<string, unknown> = {
      email,
      firstName,
      lastName,
      lifecycleStage,
      membershipTier: tier,
      membershipStatus: lifecycleStage === 'CHURNED' ? 'lapsed' : r.next() < 0.08 ? 'pending' : 'active',
      homeClubId: CLUBS[index % CLUBS.length]!.id,
      emailOptIn: r.next() < 0.8,
      smsOptIn: r.next() < 0.45,
      pushOptIn: r.next() < 0.3,
    };
    if (golfer) row.handicap = Math.round((tier === 'Junior' ? 10 + r.next() * 26 : r.next() * 30) * 10) / 10;
    if (r.next() < 0.6) row.phoneNumber = `+2782${String(1_000_000 + index).padStart(7, '0')}`;
    const quietDays = lifecycleStage === 'CHURNED' ? 120 + r.int(200) : r.next() < 0.2 ? 60 + r.int(120) : r.int(20);
    return { index, email, row, quietDays, activityCount: lifecycleStage === 'SUBSCRIBER' ? r.int(2) : 2 + r.int(12) };
  });
}

/** Each member's history over the last year, ending `quietDays` ago; ids are stable across runs. */
function* events(people: Member[], now: number) {
  for (const m of people) {
    const r = new Rng(100_000 + m.index);
    for (let j = 0; j < m.activityCount; j++) {
      const kind = r.pick(ACTIVITIES);
      const daysAgo = j === 0 ? m.quietDays : m.quietDays + r.int(Math.max(1, 365 - m.quietDays));
      yield {
        type: kind.type,
        category: kind.category,
        title: kind.title(r),
        occurredAt: new Date(now - daysAgo * DAY - r.int(DAY)).toISOString(),
        customer: { email: m.email },
        createCustomer: false,
        metadata: kind.amount ? { amount: kind.amount + r.int(kind.amount), currency: 'ZAR' } : { clubId: m.row.homeClubId },
        sourceService: SOURCE,
        sourceEventId: `${m.index + 1}-${j}`,
      };
    }
  }
}

async function* importRows(people: Member[]): AsyncGenerator<ImportRow[]> {
  yield people.map((m) => ({ line: m.index + 1, record: m.row }));
}

function serviceContext(deps: DemoDeps, tenantId: string): ServiceContext {
  return {
    principal: { sub: 'demo-seed', name: 'Demo seed', tenantId, scopes: new Set(SCOPES) },
    tenantId,
    requestId: `demo_${Date.now()}`,
    em: deps.orm.em.fork(),
    temporal: deps.temporal,
    config: deps.config,
    log: deps.log,
  };
}

/** Seeds (or tops up) `tenantId` with `size` members; safe to run again. */
export async function seedDemo(deps: DemoDeps, tenantId: string, size: number): Promise<DemoSummary> {
  const ctx = () => serviceContext(deps, tenantId);
  const log = deps.log.child({ tenantId });
  const people = members(size);

  // Clubs belong to the upstream club system (no CRM operation writes them): registered here so
  // `homeClub` resolves to a name.
  const em = deps.orm.em.fork();
  await em.upsertMany(Club, CLUBS.map((c) => ({ tenantId, id: c.id, name: c.name, timezone: 'Africa/Johannesburg' })));

  const imported = await importCustomers(ctx(), importRows(people));
  log.info(imported, 'members imported');

  const summary: DemoSummary = {
    tenantId,
    members: { created: imported.created, updated: imported.updated, rejected: imported.rejected },
    events: { accepted: 0, duplicates: 0, rejected: 0 },
    notesAdded: 0,
    segments: [],
  };
  let batch: unknown[] = [];
  const send = async () => {
    const results = await ingestEvents(ctx(), batch);
    for (const r of results) {
      if (r.status === 'created') summary.events.accepted++;
      else if (r.status === 'duplicate') summary.events.duplicates++;
      else summary.events.rejected++;
    }
    batch = [];
  };
  for (const event of events(people, Date.now())) {
    batch.push(event);
    if (batch.length === EVENTS_PER_REQUEST) await send();
  }
  if (batch.length) await send();
  log.info(summary.events, 'activity history ingested');

  // Notes on every 40th member, unless a previous run left them.
  const noted = people.filter((m) => m.index % 40 === 7);
  const ids = new Map(
    (await deps.orm.em.fork().find(Customer, { tenantId, email: { $in: noted.map((m) => m.email) } }, { fields: ['id', 'email'] }))
      .map((c) => [c.email!, c.id]),
  );
  for (const m of noted) {
    const id = ids.get(m.email);
    if (!id || (await customerNotes(ctx(), id, null, 1)).length) continue;
    for (const note of [NOTES[m.index % NOTES.length]!, NOTES[(m.index + 1) % NOTES.length]!]) {
      await addNote(ctx(), id, note);
      summary.notesAdded++;
    }
  }

  // Freshly bulk-loaded tables have no planner statistics until autovacuum gets to them, and
  // without them scoring a few thousand members picks nested scans and takes a minute, not seconds.
  await deps.orm.em.fork().execute('analyze customers, activities');
  // Scores come from the history just written; the run also refreshes existing SMART segments.
  await deps.temporal.workflow.execute('customerScoringWorkflow', {
    workflowId: `customer-scoring-${tenantId}`,
    taskQueue: deps.config.TEMPORAL_TASK_QUEUE,
    args: [{ tenantId }],
    workflowIdConflictPolicy: 'USE_EXISTING',
    typedSearchAttributes: [{ key: TenantId, value: tenantId }],
  });
  log.info('scores computed');

  const existing = new Map((await listSegments(ctx(), null, 1000)).map((s) => [s.name, s]));
  for (const input of SEGMENTS(CLUBS)) {
    const found = existing.get(input.name);
    const segment = found ?? (await createSegment(ctx(), input));
    summary.segments.push({ id: segment.id, name: segment.name, type: segment.type, memberCount: segment.memberCount, created: !found });
  }
  log.info({ segments: summary.segments.length }, 'segments ready');

  // One campaign, sent once: its emails land in `npm start`'s mail catcher (or SMTP_URL).
  const lapsed = summary.segments.find((s) => s.name === 'Golfers who stopped playing');
  const sent = (await listCampaignsPage(ctx(), {}, 0, 100)).rows.find((c) => c.name === CAMPAIGN.name);
  if (lapsed && !sent) {
    const template = (await listTemplatesPage(ctx(), 'EMAIL', 0, 100)).rows.find((t) => t.name === CAMPAIGN.template.name)
      ?? (await createTemplate(ctx(), CAMPAIGN.template));
    const campaign = await createCampaign(ctx(), {
      name: CAMPAIGN.name, type: 'ONE_TIME', segmentId: lapsed.id, channels: ['EMAIL'], emailTemplateId: template.id, timezone: 'Africa/Johannesburg',
    });
    await executeCampaign(ctx(), campaign.id);
    summary.campaign = { id: campaign.id, name: campaign.name, created: true };
  } else if (sent) {
    summary.campaign = { id: sent.id, name: sent.name, created: false };
  }
  return summary;
}

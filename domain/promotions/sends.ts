import type { EntityManager } from '@mikro-orm/postgresql';
import { DateTime } from 'luxon';
import { v7 as uuidv7 } from 'uuid';
import { Campaign, type EventPromotion, type PromotionSource } from '../../db/entities/index.js';
import { createClubPosts } from '../social/club-posts.js';
import { compileTemplate } from '../templates/render.js';

// One announcement, reminder or manual run of a promotion: a ONE_TIME campaign on its channels (to
// its segment; SOCIAL: a post per active connection of its club, socialContent rendered with the
// event), ACTIVE at once (its run `campaign-<id>` is started by the caller: the
// promotion's workflow as a child, executeEventPromotion through the campaign service), recorded
// under the send's key first, so that a key is sent once whoever asks and however often.

export type SendKind = 'ANNOUNCE' | 'REMINDER' | 'MANUAL';

/** The club's zone for a promotion's times; UTC for a club the CRM has no zone for. */
export function zoneOf(timezone: string | null | undefined): string {
  return timezone && DateTime.local().setZone(timezone).isValid ? timezone : 'UTC';
}

/**
 * The `event` the promotion's templates and social content see: the source's fields, its times
 * as the club reads them (`startsAt`: "Saturday 3 April 2027, 09:00") and as ISO (`startsAtIso`).
 */
export function eventVariables(source: PromotionSource, zone: string): Record<string, unknown> {
  const local = (d: Date) => DateTime.fromJSDate(d, { zone });
  const starts = local(source.startsAt);
  return {
    sourceType: source.sourceType,
    sourceId: source.sourceId,
    clubId: source.clubId,
    title: source.title,
    description: source.description ?? null,
    startsAt: starts.toFormat('cccc d LLLL yyyy, HH:mm'),
    startsAtIso: starts.toISO(),
    date: starts.toFormat('cccc d LLLL yyyy'),
    time: starts.toFormat('HH:mm'),
    endsAt: source.endsAt ? local(source.endsAt).toFormat('cccc d LLLL yyyy, HH:mm') : null,
    endsAtIso: source.endsAt ? local(source.endsAt).toISO() : null,
    location: source.location ?? null,
    url: source.url,
    imageUrl: source.imageUrl ?? null,
    timezone: zone,
  };
}

/** The extra template variables of a campaign a promotion created (`event`); none for any other. */
export async function campaignVariables(em: EntityManager, tenantId: string, campaignId: string): Promise<Record<string, unknown>> {
  const [row] = await em.execute<{ event: Record<string, unknown> }[]>(
    'select event from promotion_sends where tenant_id = ? and campaign_id = ? limit 1', [tenantId, campaignId],
  );
  return row ? { event: row.event } : {};
}

/**
 * Whether the campaign is a promotion's send whose event has been cancelled since: what it still
 * holds back (a retry's wait, a recipient's hour) does not go out, nor does a send made as the
 * cancellation committed.
 */
export async function promotedEventCancelled(em: EntityManager, tenantId: string, campaignId: string): Promise<boolean> {
  const [row] = await em.execute<{ cancelled: boolean }[]>(
    `select s.cancelled_at is not null as cancelled
       from promotion_sends ps
       join event_promotions p on p.tenant_id = ps.tenant_id and p.id = ps.promotion_id
       join promotion_sources s on s.tenant_id = p.tenant_id and s.source_type = p.source_type and s.source_id = p.source_id
      where ps.tenant_id = ? and ps.campaign_id = ? limit 1`,
    [tenantId, campaignId],
  );
  return row?.cancelled === true;
}

export interface SendRecord {
  key: string;
  campaignId: string | null;
  recipientCount: number;
  /** False: the key had been sent already; this is that send. */
  created: boolean;
  createdAt: Date;
}

export const messagingChannels = (channels: readonly string[]) => channels.filter((c) => c !== 'SOCIAL');

const NAMES: Record<SendKind, (days?: number) => string> = {
  ANNOUNCE: () => 'announcement',
  REMINDER: (days) => `reminder, ${days} day${days === 1 ? '' : 's'} before`,
  MANUAL: () => 'sent now',
};

/** The send of `key`, if made. */
export async function findSend(em: EntityManager, tenantId: string, key: string): Promise<SendRecord | null> {
  const [row] = await em.execute<{ key: string; campaign_id: string | null; recipient_count: number; created_at: Date }[]>(
    'select key, campaign_id, recipient_count, created_at from promotion_sends where tenant_id = ? and key = ?', [tenantId, key],
  );
  return row ? { key: row.key, campaignId: row.campaign_id, recipientCount: row.recipient_count, created: false, createdAt: new Date(row.created_at) } : null;
}

/**
 * Makes the send of `key` once, in the caller's transaction: the key's row, the campaign (with its
 * social posts), `lastPromotedAt`. Sent before (the unique key): that send.
 * `recipientCount`: the segment's members now, whom the campaign's messages address (its targetCount; 0
 * for SOCIAL alone).
 */
export async function makeSend(
  em: EntityManager, promotion: EventPromotion, source: PromotionSource, zone: string, key: string, kind: SendKind, days?: number,
): Promise<SendRecord> {
  const tenantId = promotion.tenantId;
  const event = eventVariables(source, zone);
  const inserted = await em.execute<{ id: string; created_at: Date }[]>(
    `insert into promotion_sends (id, tenant_id, promotion_id, key, kind, event) values (?, ?, ?, ?, ?, ?)
     on conflict (tenant_id, key) do nothing returning id, created_at`,
    [uuidv7(), tenantId, promotion.id, key, kind, JSON.stringify(event)],
  );
  if (!inserted.length) return (await findSend(em, tenantId, key))!;
  const segmentId = promotion.segment?.id ?? null;
  const campaign = em.create(Campaign, {
    id: uuidv7(), tenantId, clubId: promotion.clubId, name: `${source.title}: ${NAMES[kind](days)}`,
    description: `Event promotion ${promotion.id} (${source.sourceType} ${source.sourceId}), ${key}`,
    type: 'ONE_TIME', status: 'ACTIVE', startedAt: new Date(), channels: promotion.channels, segment: segmentId,
    emailTemplateId: promotion.emailTemplateId ?? null, smsTemplateId: promotion.smsTemplateId ?? null, timezone: zone,
    createdBy: `event-promotion:${promotion.id}`,
  } as never);
  await em.persist(campaign).flush();
  let recipientCount = 0;
  if (messagingChannels(promotion.channels).length && segmentId) {
    const [count] = await em.execute<{ n: number }[]>(
      `select count(*)::int as n from segment_members m join customers c on c.tenant_id = m.tenant_id and c.id = m.customer_id
        where m.tenant_id = ? and m.segment_id = ?`,
      [tenantId, segmentId],
    );
    recipientCount = count!.n;
  }
  if (promotion.channels.includes('SOCIAL') && promotion.socialContent) {
    // The campaign's posts, one per active connection of the club; its run publishes them
    // (workflows/campaign.ts) before its messages go.
    const content = (await compileTemplate({ channel: 'SOCIAL', subject: null, body: promotion.socialContent, textBody: null }).render({ event })).body.trim();
    await createClubPosts(em, {
      tenantId, clubId: promotion.clubId, campaignId: campaign.id, key: `promotion:${key}`, content,
      linkUrl: source.url, mediaUrls: source.imageUrl ? [source.imageUrl] : [],
    });
  }
  await em.execute('update promotion_sends set campaign_id = ?, recipient_count = ? where id = ?', [campaign.id, recipientCount, inserted[0]!.id]);
  await em.execute('update event_promotions set last_promoted_at = now(), updated_at = now() where tenant_id = ? and id = ?', [tenantId, promotion.id]);
  return { key, campaignId: campaign.id, recipientCount, created: true, createdAt: new Date(inserted[0]!.created_at) };
}

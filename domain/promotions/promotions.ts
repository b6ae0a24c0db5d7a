import { UniqueConstraintViolationException } from '@mikro-orm/core';
import type { EntityManager } from '@mikro-orm/postgresql';
import { v7 as uuidv7 } from 'uuid';
import { Campaign, Club, EventPromotion, MessageTemplate, PromotionSource, Segment } from '../../db/entities/index.js';
import { AppError, notFound } from '../../platform/errors.js';
import { assertTemplateFits } from '../campaigns/campaigns.js';
import { startOneTimeRun } from '../campaigns/workflows.js';
import type { ServiceContext } from '../context.js';
import { isUuid, stripUndefined } from '../customers/customers.js';
import { compileTemplate } from '../templates/render.js';
import { validate } from '../validate.js';
import { signalPromotions } from './outbox.js';
import { createEventPromotionInput, listEventPromotionsFilter, updateEventPromotionInput } from './schemas.js';
import { findSend, makeSend, messagingChannels, zoneOf, type SendRecord } from './sends.js';

// Event promotions (graphql-api.md): which source to promote, to whom, on which channels, when.
// `event-promotion-<id>` (workflows/event-promotion.ts) sends automatic ones; executeEventPromotion
// sends one now. Both go through `makeSend` (domain/promotions/sends.ts).

export async function getEventPromotion(ctx: ServiceContext, id: string): Promise<EventPromotion> {
  const promotion = isUuid(id) ? await ctx.em.findOne(EventPromotion, { id: id.toLowerCase(), tenantId: ctx.tenantId }, { populate: ['segment'] }) : null;
  if (!promotion) throw notFound('eventPromotion', id);
  return promotion;
}

/** Newest first (ids are UUIDv7), `take` from `skip`, with the total. */
export async function listEventPromotionsPage(ctx: ServiceContext, filter: unknown, skip: number, take: number) {
  const { clubId } = validate(listEventPromotionsFilter, filter ?? {});
  const where = { tenantId: ctx.tenantId, ...(clubId && { clubId }) };
  const [rows, total] = await Promise.all([
    ctx.em.find(EventPromotion, where, { orderBy: { id: 'desc' }, limit: take, offset: skip, populate: ['segment'] }),
    ctx.em.count(EventPromotion, where),
  ]);
  return { rows, total };
}

// Another tenant's segment or template is no more found than one that does not exist.
async function segmentOf(ctx: ServiceContext, id: string): Promise<Segment> {
  const segment = isUuid(id) ? await ctx.em.findOne(Segment, { id: id.toLowerCase(), tenantId: ctx.tenantId }) : null;
  if (!segment) throw new AppError('RESOURCE_NOT_FOUND', `segmentId: segment ${id} not found`, { field: 'segmentId' });
  return segment;
}

async function templateOf(ctx: ServiceContext, field: 'emailTemplateId' | 'smsTemplateId', id: string): Promise<MessageTemplate> {
  const template = isUuid(id) ? await ctx.em.findOne(MessageTemplate, { id: id.toLowerCase(), tenantId: ctx.tenantId }) : null;
  if (!template) throw new AppError('RESOURCE_NOT_FOUND', `${field}: template ${id} not found`, { field });
  assertTemplateFits(template, field === 'emailTemplateId', field);
  return template;
}

const invalid = (field: string, message: string) => new AppError('VALIDATION_ERROR', `${field}: ${message}`, { field });

/**
 * What a promotion needs to send on its channels: EMAIL an email template, SMS, PUSH, WHATSAPP and
 * IN_APP a text template and the segment to send to, SOCIAL its content (Liquid, with `event`).
 */
function assertChannelsServed(p: Pick<EventPromotion, 'channels' | 'emailTemplateId' | 'smsTemplateId' | 'socialContent'> & { segmentId: string | null }): void {
  const channels = p.channels;
  if (channels.includes('EMAIL') && !p.emailTemplateId) throw invalid('emailTemplateId', 'required for EMAIL');
  const text = channels.filter((c) => c !== 'EMAIL' && c !== 'SOCIAL');
  if (text.length && !p.smsTemplateId) throw invalid('smsTemplateId', `required for ${text.join(', ')}`);
  if (messagingChannels(channels).length && !p.segmentId) throw invalid('segmentId', `required for ${messagingChannels(channels).join(', ')}: whom to send to`);
  if (channels.includes('SOCIAL') && !p.socialContent) throw invalid('socialContent', 'required for SOCIAL');
  if (p.socialContent) {
    try {
      compileTemplate({ channel: 'SOCIAL', subject: null, body: p.socialContent, textBody: null });
    } catch (err) {
      throw invalid('socialContent', `does not parse: ${(err as Error).message}`);
    }
  }
}

const sourceTaken = (sourceType: string, sourceId: string) =>
  new AppError('CONFLICT', `a promotion of ${sourceType} ${sourceId} exists already: update it instead (one promotion per source)`, { field: 'sourceId' });

export async function createEventPromotion(ctx: ServiceContext, input: unknown): Promise<EventPromotion> {
  const data = validate(createEventPromotionInput, input, 'input');
  const segment = data.segmentId ? await segmentOf(ctx, data.segmentId) : null;
  const email = data.emailTemplateId ? await templateOf(ctx, 'emailTemplateId', data.emailTemplateId) : null;
  const sms = data.smsTemplateId ? await templateOf(ctx, 'smsTemplateId', data.smsTemplateId) : null;
  const fields = {
    channels: data.channels, emailTemplateId: email?.id ?? null, smsTemplateId: sms?.id ?? null, socialContent: data.socialContent ?? null, segmentId: segment?.id ?? null,
  };
  assertChannelsServed(fields);
  const promotion = ctx.em.create(EventPromotion, {
    id: uuidv7(), tenantId: ctx.tenantId, clubId: data.clubId, sourceType: data.sourceType, sourceId: data.sourceId,
    autoPromote: data.autoPromote ?? false, announceAt: data.announceAt ? new Date(data.announceAt) : null, reminderDays: data.reminderDays ?? [], segment,
    channels: fields.channels, emailTemplateId: fields.emailTemplateId, smsTemplateId: fields.smsTemplateId, socialContent: fields.socialContent,
  } as never);
  try {
    await ctx.em.transactional(async (em) => {
      await em.persist(promotion).flush();
      if (promotion.autoPromote) await signalPromotions(em as EntityManager, ctx.tenantId, { promotionIds: [promotion.id] });
    });
  } catch (err) {
    if (err instanceof UniqueConstraintViolationException) throw sourceTaken(data.sourceType, data.sourceId);
    throw err;
  }
  return promotion;
}

/**
 * Changes reach the promotion's workflow through the outbox, in the same transaction: it re-reads
 * its plan (moved reminders, a new announceAt), ends when the promotion is switched off or stops
 * promoting automatically, and starts (again) when switched on.
 */
export async function updateEventPromotion(ctx: ServiceContext, id: string, input: unknown): Promise<EventPromotion> {
  const data = validate(updateEventPromotionInput, input, 'input');
  const promotion = await getEventPromotion(ctx, id);
  const wasRunning = promotion.isActive && promotion.autoPromote;
  // Given: checked; null: cleared; absent: kept.
  const segment = data.segmentId === undefined ? undefined : data.segmentId ? await segmentOf(ctx, data.segmentId) : null;
  const email = data.emailTemplateId === undefined ? undefined : data.emailTemplateId ? (await templateOf(ctx, 'emailTemplateId', data.emailTemplateId)).id : null;
  const sms = data.smsTemplateId === undefined ? undefined : data.smsTemplateId ? (await templateOf(ctx, 'smsTemplateId', data.smsTemplateId)).id : null;
  const changes = stripUndefined({
    autoPromote: data.autoPromote, channels: data.channels, reminderDays: data.reminderDays, isActive: data.isActive,
    announceAt: data.announceAt === undefined ? undefined : data.announceAt && new Date(data.announceAt),
    segment, emailTemplateId: email, smsTemplateId: sms, socialContent: data.socialContent,
  });
  assertChannelsServed({
    channels: changes.channels ?? promotion.channels,
    emailTemplateId: email !== undefined ? email : (promotion.emailTemplateId ?? null),
    smsTemplateId: sms !== undefined ? sms : (promotion.smsTemplateId ?? null),
    socialContent: data.socialContent !== undefined ? data.socialContent : (promotion.socialContent ?? null),
    segmentId: segment !== undefined ? (segment?.id ?? null) : (promotion.segment?.id ?? null),
  });
  ctx.em.assign(promotion, changes as never);
  await ctx.em.transactional(async (em) => {
    await em.flush();
    if (wasRunning || (promotion.isActive && promotion.autoPromote)) await signalPromotions(em as EntityManager, ctx.tenantId, { promotionIds: [promotion.id] });
  });
  return promotion;
}

/** The latest state of a promotion's source, if any event described it yet. */
export async function sourceOf(em: EntityManager, tenantId: string, p: Pick<EventPromotion, 'sourceType' | 'sourceId'>): Promise<PromotionSource | null> {
  return em.findOne(PromotionSource, { tenantId, sourceType: p.sourceType, sourceId: p.sourceId });
}

export async function clubZone(em: EntityManager, tenantId: string, clubId: string): Promise<string> {
  return zoneOf((await em.findOne(Club, { tenantId, id: clubId }))?.timezone);
}

/** Sources of many promotions, one statement (REST's `event` of a list). */
export async function sourcesOf(ctx: ServiceContext, promotions: EventPromotion[]): Promise<Map<string, PromotionSource>> {
  if (!promotions.length) return new Map();
  const sources = await ctx.em.find(PromotionSource, {
    tenantId: ctx.tenantId, $or: promotions.map((p) => ({ sourceType: p.sourceType, sourceId: p.sourceId })),
  });
  const byKey = new Map(sources.map((s) => [`${s.sourceType}:${s.sourceId}`, s]));
  return new Map(promotions.flatMap((p) => {
    const s = byKey.get(`${p.sourceType}:${p.sourceId}`);
    return s ? [[p.id, s] as const] : [];
  }));
}

export interface ExecutePromotionResult {
  promotionId: string;
  executedAt: Date;
  recipientCount: number;
  campaignId: string | null;
}

/**
 * Sends the promotion now, whatever its schedule: one campaign (and social posts) like an
 * announcement, under the key `<id>:manual:<requestId>`. A double click joins the first: while
 * the campaign of the latest manual run is still sending (its posts publishing), execute answers
 * that run again and starts nothing new. The event must be known and not cancelled, the
 * promotion active.
 */
export async function executeEventPromotion(ctx: ServiceContext, id: string): Promise<ExecutePromotionResult> {
  const found = await getEventPromotion(ctx, id);
  const send = await ctx.em.transactional(async (tx) => {
    const em = tx as EntityManager;
    // One execute of a promotion at a time: the second sees the first's send.
    await em.execute('select 1 from event_promotions where tenant_id = ? and id = ? for update', [ctx.tenantId, found.id]);
    const promotion = await em.findOneOrFail(EventPromotion, { tenantId: ctx.tenantId, id: found.id }, { populate: ['segment'], refresh: true });
    if (!promotion.isActive) throw new AppError('INVALID_STATE', `eventPromotion ${promotion.id} is inactive: set isActive to send it`, { currentStatus: 'INACTIVE' });
    const source = await sourceOf(em, ctx.tenantId, promotion);
    if (!source) {
      throw new AppError('INVALID_STATE', `no event of ${promotion.sourceType} ${promotion.sourceId} has been received yet (POST /events): nothing to promote`, { currentStatus: 'NO_SOURCE' });
    }
    if (source.cancelledAt) throw new AppError('INVALID_STATE', `${promotion.sourceType} ${promotion.sourceId} was cancelled: nothing to promote`, { currentStatus: 'CANCELLED' });
    const inFlight = await latestManualInFlight(em, ctx.tenantId, promotion.id);
    if (inFlight) return inFlight;
    return makeSend(em, promotion, source, await clubZone(em, ctx.tenantId, promotion.clubId), `${promotion.id}:manual:${ctx.requestId}`, 'MANUAL');
  });
  // Started (or joined: the id is the campaign's) after commit; a start that fails is started by
  // the next execute, which joins this send.
  if (send.campaignId) await startOneTimeRun(ctx, await ctx.em.findOneOrFail(Campaign, { tenantId: ctx.tenantId, id: send.campaignId }), null);
  return { promotionId: found.id, executedAt: send.createdAt, recipientCount: send.recipientCount, campaignId: send.campaignId };
}

async function latestManualInFlight(em: EntityManager, tenantId: string, promotionId: string): Promise<SendRecord | null> {
  const [row] = await em.execute<{ key: string }[]>(
    `select s.key from promotion_sends s join campaigns c on c.tenant_id = s.tenant_id and c.id = s.campaign_id
      where s.tenant_id = ? and s.promotion_id = ? and s.kind = 'MANUAL' and c.status in ('SCHEDULED', 'ACTIVE', 'PAUSED')
      order by s.created_at desc limit 1`,
    [tenantId, promotionId],
  );
  return row ? findSend(em, tenantId, row.key) : null;
}

/** The spec's EventPromotion, with what REST adds: templates, social content, the event as last heard. */
export function eventPromotionView(p: EventPromotion, source: PromotionSource | undefined) {
  return {
    id: p.id,
    tenantId: p.tenantId,
    clubId: p.clubId,
    sourceType: p.sourceType,
    sourceId: p.sourceId,
    autoPromote: p.autoPromote,
    channels: p.channels,
    announceAt: p.announceAt ?? null,
    reminderDays: p.reminderDays,
    segmentId: p.segment?.id ?? null,
    emailTemplateId: p.emailTemplateId ?? null,
    smsTemplateId: p.smsTemplateId ?? null,
    socialContent: p.socialContent ?? null,
    lastPromotedAt: p.lastPromotedAt ?? null,
    isActive: p.isActive,
    event: source
      ? {
        title: source.title, description: source.description ?? null, clubId: source.clubId, startsAt: source.startsAt, endsAt: source.endsAt ?? null,
        location: source.location ?? null, url: source.url, imageUrl: source.imageUrl ?? null, cancelled: source.cancelledAt != null, updatedAt: source.occurredAt,
      }
      : null,
    createdAt: p.createdAt,
    updatedAt: p.updatedAt,
  };
}
export type EventPromotionView = ReturnType<typeof eventPromotionView>;

export async function eventPromotionViews(ctx: ServiceContext, promotions: EventPromotion[]): Promise<EventPromotionView[]> {
  const sources = await sourcesOf(ctx, promotions);
  return promotions.map((p) => eventPromotionView(p, sources.get(p.id)));
}

import { v7 as uuidv7 } from 'uuid';
import { Campaign, MessageTemplate, Segment } from '../../db/entities/index.js';
import type { CampaignStatus, CampaignType, Channel } from '../../db/entities/enums.js';
import { AppError, notFound } from '../../platform/errors.js';
import { cancelCampaignRun, campaignRunId, pauseCampaignRun, resumeCampaignRun } from '../../workflows/campaign.js';
import type { ServiceContext } from '../context.js';
import { isUuid, stripUndefined } from '../customers/customers.js';
import { assertSocialCampaign } from '../social/club-posts.js';
import { compileTemplate, recipientVariables } from '../templates/render.js';
import { validate } from '../validate.js';
import {
  createCampaignInput, DRAFT_ONLY, recurringSchedule, scheduleCampaignInput, updateCampaignInput, type RecurringSchedule,
} from './schemas.js';
import { assertTransition, transition } from './state.js';
import { campaignCounts, type CampaignCounts } from './stats.js';
import {
  deleteRecurringSchedule, pauseRecurringSchedule, runningRuns, runStartAt, startOneTimeRun, triggerRecurringSchedule, updateRun,
  upsertRecurringSchedule,
} from './workflows.js';

export async function getCampaign(ctx: ServiceContext, id: string): Promise<Campaign> {
  const campaign = isUuid(id) ? await ctx.em.findOne(Campaign, { id: id.toLowerCase(), tenantId: ctx.tenantId }, { populate: ['segment'] }) : null;
  if (!campaign) throw notFound('campaign', id);
  return campaign;
}

/**
 * A JOURNEY campaign carries a journey's SEND steps: its journey activates, pauses and archives it,
 * so the campaign's own actions and edits are refused (409 INVALID_STATE naming the journey).
 */
async function assertNotJourney(ctx: ServiceContext, campaign: Campaign, action: string): Promise<void> {
  if (campaign.type !== 'JOURNEY') return;
  const [row] = await ctx.em.execute<{ id: string }[]>('select id from journeys where tenant_id = ? and campaign_id = ? limit 1', [ctx.tenantId, campaign.id]);
  const journey = row ? `its journey ${row.id}` : 'its journey';
  throw new AppError('INVALID_STATE', `campaign ${campaign.id} is a JOURNEY campaign: it is controlled by ${journey} (activateJourney, pauseJourney, archiveJourney); cannot ${action} it here`, {
    currentStatus: campaign.status, allowedActions: [], ...(row && { journeyId: row.id }),
  });
}

export interface CampaignFilter {
  clubId?: string | null;
  status?: CampaignStatus | null;
  type?: CampaignType | null;
}

const filterOf = (ctx: ServiceContext, f: CampaignFilter) => ({
  tenantId: ctx.tenantId,
  ...(f.clubId && { clubId: f.clubId }),
  ...(f.status && { status: f.status }),
  ...(f.type && { type: f.type }),
});

/** Newest first (ids are UUIDv7), `take` from `skip`, with the total. */
export async function listCampaignsPage(ctx: ServiceContext, filter: CampaignFilter, skip: number, take: number) {
  const [rows, total] = await Promise.all([
    ctx.em.find(Campaign, filterOf(ctx, filter), { orderBy: { id: 'desc' }, limit: take, offset: skip, populate: ['segment'] }),
    ctx.em.count(Campaign, filterOf(ctx, filter)),
  ]);
  return { rows, total };
}

async function segmentOf(ctx: ServiceContext, segmentId: string | null | undefined): Promise<Segment | null> {
  if (!segmentId) return null;
  const segment = isUuid(segmentId) ? await ctx.em.findOne(Segment, { id: segmentId.toLowerCase(), tenantId: ctx.tenantId }) : null;
  if (!segment) throw new AppError('VALIDATION_ERROR', `segmentId: segment ${segmentId} not found`, { field: 'segmentId' });
  return segment;
}

/** The template behind `field` exists, is the tenant's, and fits: EMAIL for email, a text template otherwise. */
async function templateOf(ctx: ServiceContext, field: 'emailTemplateId' | 'smsTemplateId', id: string | null | undefined): Promise<MessageTemplate | null> {
  if (!id) return null;
  const template = isUuid(id) ? await ctx.em.findOne(MessageTemplate, { id: id.toLowerCase(), tenantId: ctx.tenantId }) : null;
  if (!template) throw new AppError('VALIDATION_ERROR', `${field}: template ${id} not found`, { field });
  assertTemplateFits(template, field === 'emailTemplateId', field);
  return template;
}

/** A template for email is an EMAIL one; for the other channels a text (SMS, PUSH, WHATSAPP, IN_APP) one. */
export function assertTemplateFits(template: MessageTemplate, forEmail: boolean, field: string): void {
  if (forEmail !== (template.channel === 'EMAIL') || template.channel === 'SOCIAL') {
    throw new AppError('VALIDATION_ERROR', `${field}: template ${template.id} is a ${template.channel} template; ${forEmail ? 'an EMAIL' : 'a text (SMS, PUSH, WHATSAPP, IN_APP)'} template is needed`, { field });
  }
}

export async function createCampaign(ctx: ServiceContext, input: unknown): Promise<Campaign> {
  const data = validate(createCampaignInput, input, 'input');
  if (data.type === 'JOURNEY') throw new AppError('VALIDATION_ERROR', 'input.type: a JOURNEY campaign is created by activating its journey', { field: 'input.type' });
  const segment = await segmentOf(ctx, data.segmentId);
  const email = await templateOf(ctx, 'emailTemplateId', data.emailTemplateId);
  const sms = await templateOf(ctx, 'smsTemplateId', data.smsTemplateId);
  const campaign = ctx.em.create(Campaign, {
    id: uuidv7(),
    tenantId: ctx.tenantId,
    clubId: data.clubId ?? null,
    name: data.name,
    description: data.description ?? null,
    type: data.type,
    channels: data.channels,
    segment,
    emailTemplateId: email?.id ?? null,
    smsTemplateId: sms?.id ?? null,
    timezone: data.timezone ?? data.schedule?.timezone ?? null,
    schedule: (data.schedule ?? null) as Record<string, unknown> | null,
    triggerEvent: data.triggerEvent ?? null,
    triggerConditions: data.triggerConditions ?? null,
    conversionEvent: data.conversionEvent ?? null,
    sendInRecipientTimezone: data.sendInRecipientTimezone ?? false,
    quietHours: data.quietHours ?? null,
    frequencyCap: data.frequencyCap ?? null,
    createdBy: ctx.principal.sub,
  } as never);
  await ctx.em.persist(campaign).flush();
  return campaign;
}

export async function updateCampaign(ctx: ServiceContext, id: string, input: unknown): Promise<Campaign> {
  const data = validate(updateCampaignInput, input, 'input');
  const campaign = await getCampaign(ctx, id);
  await assertNotJourney(ctx, campaign, 'update');
  const frozen = DRAFT_ONLY.filter((f) => data[f] !== undefined);
  if (frozen.length && campaign.status !== 'DRAFT') {
    throw new AppError('INVALID_STATE', `campaign ${campaign.id} is ${campaign.status}: ${frozen.join(', ')} can change only while DRAFT`, {
      currentStatus: campaign.status, field: frozen[0],
    });
  }
  const segment = data.segmentId !== undefined ? await segmentOf(ctx, data.segmentId) : undefined;
  const email = data.emailTemplateId !== undefined ? await templateOf(ctx, 'emailTemplateId', data.emailTemplateId) : undefined;
  const sms = data.smsTemplateId !== undefined ? await templateOf(ctx, 'smsTemplateId', data.smsTemplateId) : undefined;
  const type = campaign.type;
  if (type === 'RECURRING' && data.schedule === null) throw new AppError('VALIDATION_ERROR', 'schedule: required for RECURRING campaigns', { field: 'schedule' });
  if (type === 'TRIGGERED' && data.triggerEvent === null) throw new AppError('VALIDATION_ERROR', 'triggerEvent: required for TRIGGERED campaigns', { field: 'triggerEvent' });
  ctx.em.assign(campaign, stripUndefined({
    name: data.name,
    description: data.description,
    clubId: data.clubId,
    channels: data.channels,
    segment: segment === undefined ? undefined : segment,
    emailTemplateId: email === undefined ? undefined : (email?.id ?? null),
    smsTemplateId: sms === undefined ? undefined : (sms?.id ?? null),
    timezone: data.timezone,
    schedule: data.schedule as Record<string, unknown> | null | undefined,
    triggerEvent: data.triggerEvent,
    triggerConditions: data.triggerConditions,
    conversionEvent: data.conversionEvent,
    sendInRecipientTimezone: data.sendInRecipientTimezone,
    quietHours: data.quietHours,
    frequencyCap: data.frequencyCap,
  }) as never);
  await ctx.em.flush();
  return campaign;
}

/**
 * What must hold before anything is sent: an audience, and for every channel a template that
 * renders (a syntax error or a filter that throws is caught here, not mid-send).
 */
async function assertSendable(ctx: ServiceContext, campaign: Campaign): Promise<void> {
  const messages = (campaign.channels as Channel[]).filter((c) => c !== 'SOCIAL');
  // A SOCIAL-only campaign has no recipients: its posts are its audience.
  if (campaign.type !== 'TRIGGERED' && messages.length && !campaign.segment) {
    throw new AppError('VALIDATION_ERROR', 'segmentId: a campaign needs a segment before it is scheduled or executed', { field: 'segmentId' });
  }
  if (messages.length < campaign.channels.length) await assertSocialCampaign(ctx.em, campaign);
  const needed = new Map<'emailTemplateId' | 'smsTemplateId', Channel[]>();
  for (const channel of messages) {
    const field = channel === 'EMAIL' ? 'emailTemplateId' : 'smsTemplateId';
    needed.set(field, [...(needed.get(field) ?? []), channel]);
  }
  for (const [field, channels] of needed) {
    const template = await templateOf(ctx, field, campaign[field]);
    if (!template) throw new AppError('VALIDATION_ERROR', `${field}: required for ${channels.join(', ')}`, { field });
    try {
      const sample = { id: '00000000-0000-0000-0000-000000000000', email: 'member@example.com', phoneNumber: '+27820000000', firstName: 'Sam', lastName: 'Member',
        membershipTier: null, membershipStatus: null, lifecycleStage: 'MEMBER', handicap: null, homeClubId: null, clubName: null, clubTimezone: null };
      await compileTemplate({ channel: channels[0]!, subject: template.subject ?? null, body: template.body, textBody: template.textBody ?? null })
        .render(recipientVariables(sample, 'https://example.com/unsubscribe'));
    } catch (err) {
      throw new AppError('VALIDATION_ERROR', `${field}: template ${template.id} does not render: ${(err as Error).message}`, { field });
    }
  }
}

/** POST /campaigns/:id/schedule: ONE_TIME at scheduledAt; RECURRING from scheduledAt (or now) on its schedule. */
export async function scheduleCampaign(ctx: ServiceContext, id: string, input: unknown): Promise<Campaign> {
  const { scheduledAt } = validate(scheduleCampaignInput, input, 'input');
  const campaign = await getCampaign(ctx, id);
  await assertNotJourney(ctx, campaign, 'schedule');
  assertTransition(campaign.id, campaign.status, 'schedule');
  if (campaign.type === 'TRIGGERED' || campaign.type === 'JOURNEY') {
    throw new AppError('VALIDATION_ERROR', `type: a ${campaign.type} campaign is not scheduled (${campaign.type === 'TRIGGERED' ? 'execute starts it listening for its event' : 'its journey sends it'})`, { field: 'type' });
  }
  if (campaign.type === 'ONE_TIME' && !scheduledAt) throw new AppError('VALIDATION_ERROR', 'scheduledAt: required', { field: 'scheduledAt' });
  if (scheduledAt && scheduledAt.getTime() <= Date.now()) {
    throw new AppError('VALIDATION_ERROR', 'scheduledAt: must be in the future (execute sends now)', { field: 'scheduledAt' });
  }
  await assertSendable(ctx, campaign);
  const previous = campaign.scheduledAt ?? null;
  await transition(ctx.em, ctx.tenantId, campaign.id, 'schedule', { scheduledAt: scheduledAt ?? null });
  campaign.scheduledAt = scheduledAt ?? null; // as written
  // Nothing half-made: if Temporal does not take the run (or schedule), the campaign stays DRAFT.
  try {
    if (campaign.type === 'ONE_TIME') await startOneTimeRun(ctx, campaign, runStartAt(campaign));
    else await upsertRecurringSchedule(ctx, campaign, recurringSchedule.parse(campaign.schedule) as RecurringSchedule, scheduledAt ?? null, false);
  } catch (err) {
    await ctx.em.execute(`update campaigns set status = 'DRAFT', scheduled_at = ? where tenant_id = ? and id = ? and status = 'SCHEDULED'`, [previous, ctx.tenantId, campaign.id]);
    throw err;
  }
  return ctx.em.refreshOrFail(campaign, { populate: ['segment'] } as never);
}

/**
 * POST /campaigns/:id/execute: DRAFT → ACTIVE now. ONE_TIME sends at once; RECURRING starts its
 * schedule with an occurrence now; TRIGGERED starts listening for its event. A second execute of
 * an ACTIVE ONE_TIME campaign joins the run in flight (a double click is not an error).
 */
export async function executeCampaign(ctx: ServiceContext, id: string): Promise<Campaign> {
  const campaign = await getCampaign(ctx, id);
  await assertNotJourney(ctx, campaign, 'execute');
  if (campaign.status === 'ACTIVE' && campaign.type === 'ONE_TIME') {
    await startOneTimeRun(ctx, campaign, null);
    return campaign;
  }
  assertTransition(campaign.id, campaign.status, 'execute');
  await assertSendable(ctx, campaign);
  await transition(ctx.em, ctx.tenantId, campaign.id, 'execute');
  try {
    if (campaign.type === 'ONE_TIME') await startOneTimeRun(ctx, campaign, null);
    if (campaign.type === 'RECURRING') {
      await upsertRecurringSchedule(ctx, campaign, recurringSchedule.parse(campaign.schedule) as RecurringSchedule, null, false);
      await triggerRecurringSchedule(ctx, campaign.id);
    }
  } catch (err) {
    await ctx.em.execute(`update campaigns set status = 'DRAFT', started_at = null where tenant_id = ? and id = ? and status = 'ACTIVE'`, [ctx.tenantId, campaign.id]);
    if (campaign.type === 'RECURRING') await deleteRecurringSchedule(ctx, campaign.id).catch(() => undefined);
    throw err;
  }
  return ctx.em.refreshOrFail(campaign, { populate: ['segment'] } as never);
}

type RunAction = 'pause' | 'resume' | 'cancel';
const RUN_UPDATE = { pause: pauseCampaignRun, resume: resumeCampaignRun, cancel: cancelCampaignRun };

/**
 * Pause, resume, cancel. A ONE_TIME campaign's run moves the campaign itself (it stops sending
 * first, so the counts read afterwards are true). RECURRING and TRIGGERED campaigns move here, then
 * their schedule, then any run still going.
 */
async function control(ctx: ServiceContext, id: string, action: RunAction): Promise<Campaign> {
  const campaign = await getCampaign(ctx, id);
  await assertNotJourney(ctx, campaign, action);
  assertTransition(campaign.id, campaign.status, action);
  if (campaign.type === 'ONE_TIME') {
    const reached = await updateRun(ctx, campaignRunId(campaign.id, 'once'), RUN_UPDATE[action]);
    // No run to ask (it ended a moment ago, or never started): the state machine decides alone.
    if (!reached) await transition(ctx.em, ctx.tenantId, campaign.id, action);
  } else {
    await transition(ctx.em, ctx.tenantId, campaign.id, action);
    if (campaign.type === 'RECURRING') {
      if (action === 'cancel') await deleteRecurringSchedule(ctx, campaign.id);
      else await pauseRecurringSchedule(ctx, campaign.id, action === 'pause');
    }
    for (const run of await runningRuns(ctx, campaign.id)) await updateRun(ctx, run, RUN_UPDATE[action]);
  }
  return ctx.em.refreshOrFail(campaign, { populate: ['segment'] } as never);
}

export const pauseCampaign = (ctx: ServiceContext, id: string) => control(ctx, id, 'pause');
export const resumeCampaign = (ctx: ServiceContext, id: string) => control(ctx, id, 'resume');
export const cancelCampaign = (ctx: ServiceContext, id: string) => control(ctx, id, 'cancel');

const rate = (n: number, d: number) => (d ? Math.round((n / d) * 10_000) / 10_000 : 0);

/** The spec's campaign body, counts included (counted from deliveries and interactions). */
export function campaignView(c: Campaign, counts: CampaignCounts | undefined) {
  const n = counts ?? { targetCount: 0, sentCount: 0, deliveredCount: 0, openedCount: 0, clickedCount: 0, convertedCount: 0, unsubscribedCount: 0, bouncedCount: 0 };
  const started = c.startedAt != null;
  return {
    id: c.id,
    tenantId: c.tenantId,
    clubId: c.clubId ?? null,
    name: c.name,
    description: c.description ?? null,
    type: c.type,
    status: c.status,
    channels: c.channels,
    segmentId: c.segment?.id ?? null,
    segmentName: c.segment?.name ?? null,
    emailTemplateId: c.emailTemplateId ?? null,
    smsTemplateId: c.smsTemplateId ?? null,
    scheduledAt: c.scheduledAt ?? null,
    timezone: c.timezone ?? null,
    schedule: c.schedule ?? null,
    triggerEvent: c.triggerEvent ?? null,
    triggerConditions: c.triggerConditions ?? null,
    conversionEvent: c.conversionEvent ?? null,
    sendInRecipientTimezone: c.sendInRecipientTimezone,
    quietHours: c.quietHours ?? null,
    frequencyCap: c.frequencyCap ?? null,
    ...n,
    // Before its audience is taken, the segment's current size is what the campaign would reach.
    targetCount: started || n.targetCount ? n.targetCount : (c.segment?.memberCount ?? 0),
    // Null until something was delivered (campaigns-api.md's list shows `openRate: null` before sending).
    openRate: n.deliveredCount ? rate(n.openedCount, n.deliveredCount) : null,
    clickRate: n.openedCount ? rate(n.clickedCount, n.openedCount) : null,
    startedAt: c.startedAt ?? null,
    pausedAt: c.pausedAt ?? null,
    resumedAt: c.resumedAt ?? null,
    completedAt: c.completedAt ?? null,
    cancelledAt: c.cancelledAt ?? null,
    createdBy: c.createdBy ?? null,
    createdAt: c.createdAt,
    updatedAt: c.updatedAt,
  };
}
export type CampaignView = ReturnType<typeof campaignView>;

/** Views of many campaigns, their counts in one grouped query. */
export async function campaignViews(ctx: ServiceContext, campaigns: Campaign[]): Promise<CampaignView[]> {
  const counts = await campaignCounts(ctx.em, ctx.tenantId, campaigns.map((c) => c.id));
  return campaigns.map((c) => campaignView(c, counts.get(c.id)));
}

export async function campaignDetail(ctx: ServiceContext, campaign: Campaign): Promise<CampaignView> {
  return (await campaignViews(ctx, [campaign]))[0]!;
}

import { LockMode } from '@mikro-orm/core';
import { v7 as uuidv7 } from 'uuid';
import { z } from 'zod';
import { Campaign, Club, MessageTemplate } from '../../db/entities/index.js';
import { publicBaseUrl } from '../../platform/config.js';
import { AppError, notFound } from '../../platform/errors.js';
import type { ServiceContext } from '../context.js';
import { getCustomer, isUuid, stripUndefined } from '../customers/customers.js';
import { journeysUsing, usedBy } from '../journeys/usage.js';
import { nonEmptyUpdate, optional, validate } from '../validate.js';
import { compileTemplate, recipientVariables, templateLimits, TemplateError, type RenderableTemplate, type RenderedMessage } from './render.js';

// Message templates: what a campaign sends on a channel, in Liquid (domain/templates/render.ts).
// A template is checked when saved: it must parse, so a syntax error never reaches a send.

/** Channels a campaign sends on; SOCIAL posts are written per post, not from templates. */
export const TemplateChannel = ['EMAIL', 'SMS', 'PUSH', 'WHATSAPP', 'IN_APP'] as const;

// A campaign in one of these may still send the template: it cannot be deleted from under it.
const SENDING_STATUSES = ['DRAFT', 'SCHEDULED', 'ACTIVE', 'PAUSED'] as const;

const name = z.string().trim().min(1).max(200);
const subject = z.string().max(255);
const body = z.string().min(1);

export const createTemplateInput = z
  .object({
    tenantId: z.string().optional(),
    name,
    channel: z.enum(TemplateChannel),
    subject: subject.nullish().describe('Required for EMAIL; the title of PUSH and IN_APP messages'),
    body: body.describe('Liquid: the HTML for EMAIL, the message text otherwise'),
    textBody: z.string().min(1).nullish().describe('EMAIL only: the plain-text part (Liquid); derived from the rendered HTML when not given'),
  })
  .strict();

export const updateTemplateInput = nonEmptyUpdate(
  z
    .object({
      name: optional(name),
      subject: subject.nullish(),
      body: optional(body),
      textBody: z.string().min(1).nullish().describe('null: derive the text part from the HTML again'),
    })
    .strict(),
);

export const previewTemplateInput = z
  .object({
    tenantId: z.string().optional(),
    customerId: z.string().min(1).describe('The customer whose variables fill the template'),
  })
  .strict();

export async function getTemplate(ctx: ServiceContext, id: string): Promise<MessageTemplate> {
  const template = isUuid(id) ? await ctx.em.findOne(MessageTemplate, { id: id.toLowerCase(), tenantId: ctx.tenantId }) : null;
  if (!template) throw notFound('template', id);
  return template;
}

const templateFilter = (ctx: ServiceContext, channel: string | null | undefined) => ({
  tenantId: ctx.tenantId,
  ...(channel && { channel: channel as MessageTemplate['channel'] }),
});

/** A page of the tenant's templates by name, with the total. */
export async function listTemplatesPage(ctx: ServiceContext, channel: string | null | undefined, skip: number, take: number) {
  const filter = templateFilter(ctx, channel);
  const rows = await ctx.em.find(MessageTemplate, filter, { orderBy: { name: 'asc', id: 'asc' }, limit: take, offset: skip });
  return { rows, total: await ctx.em.count(MessageTemplate, filter) };
}

const invalid = (field: string, message: string) => new AppError('VALIDATION_ERROR', `${field}: ${message}`, { field });

/** The rules a template must meet to be saved, as VALIDATION_ERRORs naming the field. */
function check(ctx: ServiceContext, t: RenderableTemplate): void {
  const isEmail = t.channel === 'EMAIL';
  if (isEmail && !t.subject?.trim()) throw invalid('subject', 'required for EMAIL templates');
  if (!isEmail && t.textBody != null) throw invalid('textBody', 'only EMAIL templates have a plain-text part');
  const max = ctx.config.TEMPLATE_MAX_CHARS;
  for (const field of ['subject', 'body', 'textBody'] as const) {
    if ((t[field]?.length ?? 0) > max) throw invalid(field, `at most ${max} characters`);
  }
  try {
    compileTemplate(t, templateLimits(ctx.config));
  } catch (err) {
    if (err instanceof TemplateError) throw invalid(err.field, `Liquid: ${err.detail}`);
    throw err;
  }
}

export async function createTemplate(ctx: ServiceContext, input: unknown): Promise<MessageTemplate> {
  const data = validate(createTemplateInput, input);
  const fields = { channel: data.channel, subject: data.subject ?? null, body: data.body, textBody: data.textBody ?? null };
  check(ctx, fields);
  const template = ctx.em.create(MessageTemplate, { id: uuidv7(), tenantId: ctx.tenantId, name: data.name, ...fields } as never);
  await ctx.em.persist(template).flush();
  return template;
}

export async function updateTemplate(ctx: ServiceContext, id: string, input: unknown): Promise<MessageTemplate> {
  const data = validate(updateTemplateInput, input);
  const template = await getTemplate(ctx, id);
  const changes = stripUndefined({ name: data.name, subject: data.subject, body: data.body, textBody: data.textBody });
  check(ctx, {
    channel: template.channel,
    subject: changes.subject !== undefined ? changes.subject : (template.subject ?? null),
    body: changes.body ?? template.body,
    textBody: changes.textBody !== undefined ? changes.textBody : (template.textBody ?? null),
  });
  ctx.em.assign(template, changes as never);
  await ctx.em.flush();
  return template;
}

/** Refused (CONFLICT) while a campaign that has not finished, or a journey still running on it, uses the template. */
export async function deleteTemplate(ctx: ServiceContext, id: string): Promise<boolean> {
  await ctx.em.transactional(async (em) => {
    // Locked, so a campaign taking the template up (which reads it FOR SHARE) waits for this to end.
    const template = isUuid(id)
      ? await em.findOne(MessageTemplate, { id: id.toLowerCase(), tenantId: ctx.tenantId }, { lockMode: LockMode.PESSIMISTIC_WRITE })
      : null;
    if (!template) throw notFound('template', id);
    const users = await em.find(
      Campaign,
      { tenantId: ctx.tenantId, status: { $in: [...SENDING_STATUSES] }, $or: [{ emailTemplateId: template.id }, { smsTemplateId: template.id }] },
      { fields: ['id', 'name', 'status'], orderBy: { name: 'asc', id: 'asc' } },
    );
    if (users.length) {
      throw new AppError('CONFLICT', `template ${template.id} is used by ${users.map((c) => `"${c.name}" (${c.id}, ${c.status})`).join(', ')}`);
    }
    // A journey's SEND steps too (activation reads the template FOR SHARE, so this lock orders them).
    const journeys = await journeysUsing(em, ctx.tenantId, template.id);
    if (journeys.length) throw new AppError('CONFLICT', `template ${template.id} is used by ${usedBy(journeys)}`);
    em.remove(template);
  });
  return true;
}

/** The template rendered for one of the tenant's customers, as the campaign would send it. */
export async function previewTemplate(ctx: ServiceContext, id: string, input: unknown): Promise<RenderedMessage> {
  const { customerId } = validate(previewTemplateInput, input);
  const template = await getTemplate(ctx, id);
  const customer = await getCustomer(ctx, customerId.toLowerCase());
  const club = customer.homeClubId ? await ctx.em.findOne(Club, { tenantId: ctx.tenantId, id: customer.homeClubId }) : null;
  const vars = recipientVariables(
    {
      id: customer.id,
      email: customer.email ?? null,
      phoneNumber: customer.phoneNumber ?? null,
      firstName: customer.firstName ?? null,
      lastName: customer.lastName ?? null,
      membershipTier: customer.membershipTier ?? null,
      membershipStatus: customer.membershipStatus ?? null,
      lifecycleStage: customer.lifecycleStage,
      handicap: customer.handicap == null ? null : Number(customer.handicap),
      homeClubId: customer.homeClubId ?? null,
      clubName: club?.name ?? null,
      clubTimezone: club?.timezone ?? null,
    },
    `${publicBaseUrl(ctx.config)}/t/u/preview`,
  );
  try {
    const renderable = { channel: template.channel, subject: template.subject ?? null, body: template.body, textBody: template.textBody ?? null };
    return await compileTemplate(renderable, templateLimits(ctx.config)).render(vars);
  } catch (err) {
    // A template that parsed when saved may still fail for this customer (a render limit).
    if (err instanceof TemplateError) throw invalid(err.field, err.detail);
    throw err;
  }
}

export function templateView(t: MessageTemplate) {
  return {
    id: t.id,
    tenantId: t.tenantId,
    name: t.name,
    channel: t.channel,
    subject: t.subject ?? null,
    body: t.body,
    textBody: t.textBody ?? null,
    createdAt: t.createdAt,
    updatedAt: t.updatedAt,
  };
}

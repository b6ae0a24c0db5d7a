import { randomUUID } from 'node:crypto';
import type { EntityManager } from '@mikro-orm/postgresql';
import { v7 as uuidv7 } from 'uuid';
import { z } from 'zod';
import { Campaign, Journey, JourneyStep, JourneyVersion } from '../../db/entities/index.js';
import { JourneyStatus, JourneyStepType } from '../../db/entities/enums.js';
import { pgArray } from '../../db/sql.js';
import { AppError, notFound } from '../../platform/errors.js';
import type { ServiceContext } from '../context.js';
import { isUuid } from '../customers/customers.js';
import { assertCleanJson, nonEmptyUpdate, optional, validate } from '../validate.js';
import { configFaults, eventTypesOf, graphError, graphFaults, pastUntilFaults, triggerFaults, type JourneyGraph } from './graph.js';
import { signalJourneyEnrollments } from './outbox.js';
import { assertEditable, assertJourneyTransition, targetStatus } from './state.js';
import { journeyTimeZone, STEP_CONFIG, TRIGGER_CONFIG, TRIGGER_TYPES, type TriggerType, type VersionStep } from './steps.js';

// The journey builder: journeys and their steps (the working copy), and the lifecycle that
// publishes versions of it. Every write runs in a transaction holding the journey's row lock, so
// concurrent edits and actions are serialised and each published version is numbered once.
// Editing an ACTIVE journey publishes the result as the next version in the same transaction, or
// is refused (VALIDATION_ERROR listing every fault) with nothing written.

const JSON_DEPTH = 32;
const name = z.string().trim().min(1).max(255);
const jsonObject = z.record(z.string(), z.unknown());

export const createJourneyInput = z
  .object({
    tenantId: z.string().optional(),
    name,
    description: z.string().max(2000).nullish(),
    triggerType: z.enum(TRIGGER_TYPES as [string, ...string[]]),
    triggerConfig: jsonObject.nullish(),
    allowReentry: optional(z.boolean()),
    timezone: journeyTimeZone.nullish(),
  })
  .strict();

export const updateJourneyInput = nonEmptyUpdate(
  z
    .object({
      name: optional(name),
      description: z.string().max(2000).nullish(),
      triggerType: optional(z.enum(TRIGGER_TYPES as [string, ...string[]])),
      triggerConfig: jsonObject.nullish(),
      allowReentry: optional(z.boolean()),
      timezone: journeyTimeZone.nullish(),
    })
    .strict(),
);

const stepId = z.string().trim().min(1).max(100);

export const addJourneyStepInput = z
  .object({
    type: z.enum(JourneyStepType),
    name: name.nullish(),
    config: jsonObject,
    afterStepId: stepId.nullish(),
  })
  .strict();

// Links: absent leaves one as it is, an explicit null clears it.
export const updateJourneyStepInput = nonEmptyUpdate(
  z
    .object({
      type: optional(z.enum(JourneyStepType)),
      name: name.nullish(),
      config: optional(jsonObject),
      nextStepId: stepId.nullable().optional(),
      nextStepYesId: stepId.nullable().optional(),
      nextStepNoId: stepId.nullable().optional(),
    })
    .strict(),
);

export interface JourneyFilter {
  status?: JourneyStatus | null;
}

const limitsOf = (ctx: ServiceContext) => ({ maxNodes: ctx.config.MAX_CRITERIA_NODES, maxValues: ctx.config.MAX_CRITERIA_VALUES });

function faultsError(faults: { field: string; message: string }[]): AppError {
  return new AppError('VALIDATION_ERROR', faults.map((f) => f.message).join('; '), { field: faults[0]?.field, fields: faults });
}

/** A trigger config read under its type; the error names `input.triggerConfig.<field>`. */
function parseTrigger(triggerType: string, triggerConfig: unknown): Record<string, unknown> | null {
  assertCleanJson(triggerConfig, 'input.triggerConfig', JSON_DEPTH);
  const faults = triggerFaults(triggerType, triggerConfig).map((f) => ({ field: `input.${f.field}`, message: `input.${f.message}` }));
  if (faults.length) throw faultsError(faults);
  // Stored as read (ids lower-case, event names trimmed): that is how entries and events match it.
  return triggerConfig == null ? null : (TRIGGER_CONFIG[triggerType as TriggerType].parse(triggerConfig) as Record<string, unknown>);
}

/** A step config read under its type; the error names `input.config.<field>`. */
function parseConfig(ctx: ServiceContext, type: JourneyStepType, config: unknown): Record<string, unknown> {
  assertCleanJson(config, 'input.config', JSON_DEPTH);
  const faults = configFaults(type, config, 'input.config', limitsOf(ctx));
  if (faults.length) throw faultsError(faults);
  return STEP_CONFIG[type].parse(config) as Record<string, unknown>;
}

// ---- reads ----------------------------------------------------------------------------------

export async function getJourney(ctx: ServiceContext, id: string): Promise<Journey> {
  const journey = isUuid(id) ? await ctx.em.findOne(Journey, { id: id.toLowerCase(), tenantId: ctx.tenantId }, { refresh: true }) : null;
  if (!journey) throw notFound('journey', id);
  return journey;
}

/** Newest first (ids are UUIDv7), `take` from `skip`, with the total. */
export async function listJourneysPage(ctx: ServiceContext, filter: JourneyFilter, skip: number, take: number) {
  const where = { tenantId: ctx.tenantId, ...(filter.status && { status: filter.status }) };
  const [rows, total] = await Promise.all([
    ctx.em.find(Journey, where, { orderBy: { id: 'desc' }, limit: take, offset: skip, refresh: true }),
    ctx.em.count(Journey, where),
  ]);
  return { rows, total };
}

export interface StepView extends VersionStep {
  journeyId: string;
  createdAt: Date;
  updatedAt: Date;
}

interface StepRow {
  id: string; journey_id: string; step_number: number; type: JourneyStepType; name: string | null; config: Record<string, unknown>;
  next_step_id: string | null; next_step_yes_id: string | null; next_step_no_id: string | null; created_at: Date; updated_at: Date;
}

const stepOf = (r: StepRow): StepView => ({
  id: r.id, journeyId: r.journey_id, stepNumber: r.step_number, type: r.type, name: r.name, config: r.config,
  nextStepId: r.next_step_id, nextStepYesId: r.next_step_yes_id, nextStepNoId: r.next_step_no_id,
  createdAt: new Date(r.created_at), updatedAt: new Date(r.updated_at),
});

/** The working copies of many journeys (the tenant's), each in stepNumber order, one statement. */
export async function stepsOfJourneys(em: EntityManager, tenantId: string, journeyIds: readonly string[]): Promise<Map<string, StepView[]>> {
  const rows = await em.execute<StepRow[]>(
    `select id, journey_id, step_number, type, name, config, next_step_id, next_step_yes_id, next_step_no_id, created_at, updated_at
       from journey_steps where tenant_id = ? and journey_id = any(?::uuid[]) order by journey_id, step_number`,
    [tenantId, pgArray([...journeyIds])],
  );
  const byJourney = new Map<string, StepView[]>(journeyIds.map((id) => [id, []]));
  for (const row of rows) byJourney.get(row.journey_id)?.push(stepOf(row));
  return byJourney;
}

export async function listJourneySteps(ctx: ServiceContext, journeyId: string): Promise<StepView[]> {
  const journey = await getJourney(ctx, journeyId);
  return (await stepsOfJourneys(ctx.em, ctx.tenantId, [journey.id])).get(journey.id)!;
}

async function stepView(em: EntityManager, tenantId: string, journeyId: string, id: string): Promise<StepView> {
  const step = (await stepsOfJourneys(em, tenantId, [journeyId])).get(journeyId)!.find((s) => s.id === id);
  if (!step) throw notFound('journey step', id);
  return step;
}

export function journeyView(j: Journey) {
  return {
    id: j.id,
    tenantId: j.tenantId,
    name: j.name,
    description: j.description ?? null,
    status: j.status,
    triggerType: j.triggerType,
    triggerConfig: j.triggerConfig ?? null,
    allowReentry: j.allowReentry,
    timezone: j.timezone ?? null,
    totalEnrolled: j.totalEnrolled,
    totalCompleted: j.totalCompleted,
    totalExited: j.totalExited,
    currentVersion: j.currentVersion,
    campaignId: j.campaignId ?? null,
    activatedAt: j.activatedAt ?? null,
    createdAt: j.createdAt,
    updatedAt: j.updatedAt,
  };
}
export type JourneyView = ReturnType<typeof journeyView>;

// ---- writes ---------------------------------------------------------------------------------

/**
 * Runs `change` on the journey under its row lock, in one transaction. An ACTIVE journey's result
 * is published as its next version in the same transaction, or the whole change is refused.
 */
async function withJourney<T>(ctx: ServiceContext, id: string, change: (em: EntityManager, journey: Journey) => Promise<T>, opts: { edit: boolean } = { edit: true }): Promise<{ journey: Journey; result: T }> {
  if (!isUuid(id)) throw notFound('journey', id);
  return ctx.em.transactional(async (em) => {
    const locked = await em.execute<{ id: string }[]>('select id from journeys where tenant_id = ? and id = ? for update', [ctx.tenantId, id.toLowerCase()]);
    if (!locked.length) throw notFound('journey', id);
    const journey = await em.findOneOrFail(Journey, { id: id.toLowerCase(), tenantId: ctx.tenantId }, { refresh: true });
    if (opts.edit) assertEditable(journey.id, journey.status);
    const result = await change(em, journey);
    await em.flush();
    if (opts.edit && journey.status === 'ACTIVE') await publish(ctx, em, journey);
    return { journey, result };
  });
}

async function workingCopy(em: EntityManager, tenantId: string, journey: Journey): Promise<JourneyGraph> {
  const steps = (await stepsOfJourneys(em, tenantId, [journey.id])).get(journey.id)!;
  return {
    triggerType: journey.triggerType,
    triggerConfig: journey.triggerConfig ?? null,
    steps: steps.map(({ id, stepNumber, type, name: n, config, nextStepId, nextStepYesId, nextStepNoId }) => ({
      id, stepNumber, type, name: n, config, nextStepId, nextStepYesId, nextStepNoId,
    })),
  };
}

/**
 * Validates the working copy and publishes it as version N+1 (unless it is the current version
 * unchanged): the frozen steps and the event types its enrolments listen for. The first
 * publication creates the journey's JOURNEY campaign, whose delivery rows carry the SEND steps.
 */
async function publish(ctx: ServiceContext, em: EntityManager, journey: Journey, opts: { firstActivation?: boolean } = {}): Promise<void> {
  const graph = await workingCopy(em, ctx.tenantId, journey);
  const faults = await graphFaults(em, ctx.tenantId, graph, limitsOf(ctx));
  if (opts.firstActivation) faults.push(...pastUntilFaults(graph, new Date()));
  if (faults.length) throw graphError(journey.id, faults);
  const snapshot = {
    triggerType: graph.triggerType, triggerConfig: graph.triggerConfig ?? null, allowReentry: journey.allowReentry,
    timezone: journey.timezone ?? null, steps: graph.steps,
  };
  if (journey.currentVersion > 0) {
    const current = await em.findOne(JourneyVersion, { journey: journey.id, version: journey.currentVersion }, { refresh: true });
    const same = current && JSON.stringify(sortKeys({
      triggerType: current.triggerType, triggerConfig: current.triggerConfig ?? null, allowReentry: current.allowReentry,
      timezone: current.timezone ?? null, steps: current.steps,
    })) === JSON.stringify(sortKeys(snapshot));
    if (same) return;
  }
  const version = journey.currentVersion + 1;
  em.create(JourneyVersion, {
    id: uuidv7(), tenantId: ctx.tenantId, journey: journey.id, version,
    triggerType: snapshot.triggerType, triggerConfig: snapshot.triggerConfig as Record<string, unknown> | null,
    allowReentry: snapshot.allowReentry, timezone: snapshot.timezone, steps: graph.steps as unknown as Record<string, unknown>[],
    eventTypes: eventTypesOf(graph),
  } as never);
  journey.currentVersion = version;
  const channels = [...new Set(graph.steps.filter((s) => s.type === 'SEND').map((s) => String(s.config.channel)))].sort();
  if (!journey.campaignId) {
    const campaign = em.create(Campaign, {
      id: uuidv7(), tenantId: ctx.tenantId, name: journey.name, description: `Messages of journey ${journey.id}`, type: 'JOURNEY', status: 'ACTIVE',
      channels, timezone: journey.timezone ?? null, startedAt: new Date(), createdBy: ctx.principal.sub,
    } as never);
    journey.campaignId = campaign.id;
  } else if (channels.length) {
    // Messages of earlier versions keep their channels in the campaign's stats.
    await em.execute(
      `update campaigns set channels = array(select distinct unnest(channels || ?::text[]) order by 1), updated_at = now() where tenant_id = ? and id = ?`,
      [pgArray(channels), ctx.tenantId, journey.campaignId],
    );
  }
  await em.flush();
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value && typeof value === 'object' && !(value instanceof Date)) {
    return Object.fromEntries(Object.keys(value).sort().map((k) => [k, sortKeys((value as Record<string, unknown>)[k])]));
  }
  return value;
}

export async function createJourney(ctx: ServiceContext, input: unknown): Promise<Journey> {
  const data = validate(createJourneyInput, input, 'input');
  const triggerConfig = parseTrigger(data.triggerType, data.triggerConfig ?? null);
  const journey = ctx.em.create(Journey, {
    id: uuidv7(),
    tenantId: ctx.tenantId,
    name: data.name,
    description: data.description ?? null,
    status: 'DRAFT',
    triggerType: data.triggerType,
    triggerConfig,
    allowReentry: data.allowReentry ?? false,
    timezone: data.timezone ?? null,
  } as never);
  await ctx.em.persist(journey).flush();
  return journey;
}

export async function updateJourney(ctx: ServiceContext, id: string, input: unknown): Promise<Journey> {
  const data = validate(updateJourneyInput, input, 'input');
  const { journey } = await withJourney(ctx, id, async (_em, j) => {
    if (data.triggerType !== undefined || data.triggerConfig !== undefined) {
      const type = data.triggerType ?? j.triggerType;
      const config = data.triggerConfig !== undefined ? data.triggerConfig : (j.triggerConfig ?? null);
      j.triggerType = type;
      j.triggerConfig = parseTrigger(type, config);
    }
    if (data.name !== undefined) j.name = data.name;
    if (data.description !== undefined) j.description = data.description;
    if (data.allowReentry !== undefined) j.allowReentry = data.allowReentry;
    if (data.timezone !== undefined) j.timezone = data.timezone;
  });
  return journey;
}

/** A link given in an input names a step of this journey (or null, clearing it). */
async function assertStepsOfJourney(em: EntityManager, tenantId: string, journeyId: string, links: Record<string, string | null | undefined>): Promise<Record<string, string | null | undefined>> {
  const given = Object.entries(links).filter((e): e is [string, string] => typeof e[1] === 'string');
  if (!given.length) return links;
  const ids = given.map(([, v]) => v.toLowerCase()).filter(isUuid);
  const found = ids.length
    ? new Set((await em.execute<{ id: string }[]>('select id from journey_steps where tenant_id = ? and journey_id = ? and id = any(?::uuid[])', [tenantId, journeyId, pgArray(ids)])).map((r) => r.id))
    : new Set<string>();
  const out: Record<string, string | null | undefined> = { ...links };
  const faults = [];
  for (const [field, value] of given) {
    if (!found.has(value.toLowerCase())) faults.push({ field: `input.${field}`, message: `input.${field}: step ${value} is not a step of journey ${journeyId}` });
    else out[field] = value.toLowerCase();
  }
  if (faults.length) throw faultsError(faults);
  return out;
}

export async function addJourneyStep(ctx: ServiceContext, journeyId: string, input: unknown): Promise<StepView> {
  const data = validate(addJourneyStepInput, input, 'input');
  const { journey, result } = await withJourney(ctx, journeyId, async (em, j) => {
    const config = parseConfig(ctx, data.type, data.config);
    let after: JourneyStep | null = null;
    if (data.afterStepId) {
      const { afterStepId } = await assertStepsOfJourney(em, ctx.tenantId, j.id, { afterStepId: data.afterStepId });
      after = await em.findOneOrFail(JourneyStep, { id: afterStepId!, tenantId: ctx.tenantId }, { refresh: true });
      if (after.type === 'CONDITION' || after.type === 'SPLIT') {
        throw new AppError('VALIDATION_ERROR', `input.afterStepId: step ${after.id} is a ${after.type} step with two branches; add the step unlinked and link it with nextStepYesId or nextStepNoId (updateJourneyStep)`, { field: 'input.afterStepId' });
      }
      if (after.type === 'END') {
        throw new AppError('VALIDATION_ERROR', `input.afterStepId: step ${after.id} is an END step, which has no next step; change its type first, or link the new step from another`, { field: 'input.afterStepId' });
      }
    }
    const [{ n, steps }] = await em.execute<{ n: number; steps: number }[]>(
      'select coalesce(max(step_number), 0) + 1 as n, count(*)::int as steps from journey_steps where tenant_id = ? and journey_id = ?', [ctx.tenantId, j.id],
    ) as [{ n: number; steps: number }];
    if (steps >= ctx.config.JOURNEY_MAX_STEPS) {
      throw new AppError('VALIDATION_ERROR', `input: a journey has at most ${ctx.config.JOURNEY_MAX_STEPS} steps (JOURNEY_MAX_STEPS)`, { field: 'input' });
    }
    const step = em.create(JourneyStep, {
      id: uuidv7(), tenantId: ctx.tenantId, journey: j.id, stepNumber: Number(n), type: data.type, name: data.name ?? null, config,
      // Inserted after `after`: the new step takes over where it went, and it now goes to the new one.
      nextStepId: after && data.type !== 'END' && data.type !== 'CONDITION' && data.type !== 'SPLIT' ? (after.nextStepId ?? null) : null,
      nextStepYesId: null, nextStepNoId: null,
    } as never);
    if (after && (data.type === 'CONDITION' || data.type === 'SPLIT') && after.nextStepId) {
      // A branching step taking over a single link: it goes to the yes branch; the no branch is the builder's to set.
      step.nextStepYesId = after.nextStepId;
    }
    if (after) after.nextStepId = step.id;
    await em.flush();
    return step.id;
  });
  return stepView(ctx.em, ctx.tenantId, journey.id, result);
}

export async function updateJourneyStep(ctx: ServiceContext, journeyId: string, stepId: string, input: unknown): Promise<StepView> {
  const data = validate(updateJourneyStepInput, input, 'input');
  const { journey } = await withJourney(ctx, journeyId, async (em, j) => {
    const step = isUuid(stepId) ? await em.findOne(JourneyStep, { id: stepId.toLowerCase(), tenantId: ctx.tenantId, journey: j.id }, { refresh: true }) : null;
    if (!step) throw notFound('journey step', stepId);
    if (data.type !== undefined || data.config !== undefined) {
      const type = data.type ?? step.type;
      step.config = parseConfig(ctx, type, data.config ?? step.config);
      step.type = type;
    }
    if (data.name !== undefined) step.name = data.name;
    const links = await assertStepsOfJourney(em, ctx.tenantId, j.id, { nextStepId: data.nextStepId, nextStepYesId: data.nextStepYesId, nextStepNoId: data.nextStepNoId });
    if (links.nextStepId !== undefined) step.nextStepId = links.nextStepId;
    if (links.nextStepYesId !== undefined) step.nextStepYesId = links.nextStepYesId;
    if (links.nextStepNoId !== undefined) step.nextStepNoId = links.nextStepNoId;
    step.updatedAt = new Date();
  });
  return stepView(ctx.em, ctx.tenantId, journey.id, stepId.toLowerCase());
}

/** Deletes a step; every step that led to it now leads where it went (nowhere, if it went nowhere). */
export async function deleteJourneyStep(ctx: ServiceContext, journeyId: string, stepId: string): Promise<boolean> {
  await withJourney(ctx, journeyId, async (em, j) => {
    const [step] = isUuid(stepId)
      ? await em.execute<{ id: string; next_step_id: string | null }[]>(
        'select id, next_step_id from journey_steps where tenant_id = ? and journey_id = ? and id = ?', [ctx.tenantId, j.id, stepId.toLowerCase()],
      )
      : [];
    if (!step) throw notFound('journey step', stepId);
    const next = step.next_step_id === step.id ? null : step.next_step_id;
    await em.execute(
      `update journey_steps set
          next_step_id = case when next_step_id = ?::uuid then ?::uuid else next_step_id end,
          next_step_yes_id = case when next_step_yes_id = ?::uuid then ?::uuid else next_step_yes_id end,
          next_step_no_id = case when next_step_no_id = ?::uuid then ?::uuid else next_step_no_id end,
          updated_at = now()
        where tenant_id = ? and journey_id = ? and id <> ?::uuid and ?::uuid in (next_step_id, next_step_yes_id, next_step_no_id)`,
      [step.id, next, step.id, next, step.id, next, ctx.tenantId, j.id, step.id, step.id],
    );
    await em.execute('delete from journey_steps where tenant_id = ? and id = ?', [ctx.tenantId, step.id]);
    return step;
  });
  return true;
}

// ---- lifecycle ------------------------------------------------------------------------------

/**
 * DRAFT|PAUSED → ACTIVE: validates the whole graph and publishes it as the next version (the
 * first activation also creates the JOURNEY campaign); a PAUSED journey's held enrolments resume.
 */
export async function activateJourney(ctx: ServiceContext, id: string): Promise<Journey> {
  const { journey } = await withJourney(ctx, id, async (em, j) => {
    assertJourneyTransition(j.id, j.status, 'activate');
    const resuming = j.status === 'PAUSED';
    await publish(ctx, em, j, { firstActivation: j.status === 'DRAFT' });
    j.status = targetStatus('activate');
    j.activatedAt = new Date();
    j.updatedAt = new Date();
    await em.flush();
    if (resuming) await signalJourneyEnrollments(em, ctx.tenantId, { journeyId: j.id }, 'resume', randomUUID());
  }, { edit: false });
  return journey;
}

/** ACTIVE → PAUSED: no new enrolments; running ones hold before their next step. */
export async function pauseJourney(ctx: ServiceContext, id: string): Promise<Journey> {
  const { journey } = await withJourney(ctx, id, async (em, j) => {
    assertJourneyTransition(j.id, j.status, 'pause');
    j.status = targetStatus('pause');
    j.updatedAt = new Date();
    await em.flush();
    await signalJourneyEnrollments(em, ctx.tenantId, { journeyId: j.id }, 'pause', randomUUID());
  }, { edit: false });
  return journey;
}

/**
 * DRAFT|ACTIVE|PAUSED → ARCHIVED: no new enrolments; every running one ends EXITED (`archived`) in
 * this transaction, the journey's totalExited counting them exactly, and its workflow is told.
 */
export async function archiveJourney(ctx: ServiceContext, id: string): Promise<Journey> {
  const { journey } = await withJourney(ctx, id, async (em, j) => {
    assertJourneyTransition(j.id, j.status, 'archive');
    // Signals first: signalJourneyEnrollments picks the enrolments that are still ACTIVE.
    await signalJourneyEnrollments(em, ctx.tenantId, { journeyId: j.id }, 'exit', randomUUID(), { reason: 'archived' });
    const ended = await em.execute<{ id: string }[]>(
      `update journey_enrollments set status = 'EXITED', exited_at = now(), exit_reason = 'archived', waiting_until = null, updated_at = now()
        where tenant_id = ? and journey_id = ? and status = 'ACTIVE' returning id`,
      [ctx.tenantId, j.id],
    );
    if (ended.length) {
      // The step each was at is closed as the workflow's own end would close it: the workflow, finding
      // its enrolment ended, stops without touching its records.
      await em.execute(
        `update journey_enrollment_steps set status = 'SKIPPED', outcome = coalesce(outcome, 'EXITED'), completed_at = now()
          where tenant_id = ? and enrollment_id = any(?::uuid[]) and status = 'ACTIVE'`,
        [ctx.tenantId, pgArray(ended.map((r) => r.id))],
      );
    }
    await em.execute(
      `update journeys set status = ?, total_exited = total_exited + ?, updated_at = now() where tenant_id = ? and id = ?`,
      [targetStatus('archive'), ended.length, ctx.tenantId, j.id],
    );
  }, { edit: false });
  return getJourney(ctx, journey.id);
}

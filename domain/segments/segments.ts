import { UniqueConstraintViolationException } from '@mikro-orm/core';
import { v7 as uuidv7 } from 'uuid';
import { z } from 'zod';
import { Segment } from '../../db/entities/index.js';
import { SegmentType } from '../../db/entities/enums.js';
import { AppError, notFound } from '../../platform/errors.js';
import type { ServiceContext } from '../context.js';
import { customersConnection, isUuid, stripUndefined } from '../customers/customers.js';
import { journeysUsing, usedBy } from '../journeys/usage.js';
import { counted, type PageArgs } from '../pagination.js';
import { nonEmptyUpdate, optional, validate } from '../validate.js';
import { compileCriteria } from './criteria.js';
import type { RefreshResult } from './membership.js';
import { refreshAfterSave, runRefresh, runSync, stopSegmentWork, upsertRefreshSchedule } from './workflows.js';

const interval = z.number().int().min(1).max(1440);

export const createSegmentInput = z
  .object({
    tenantId: z.string().optional(),
    name: z.string().trim().min(1).max(200),
    description: z.string().max(2000).nullish(),
    type: z.enum(SegmentType),
    criteria: z.unknown().optional(),
    refreshIntervalMinutes: optional(interval),
  })
  .strict();

export const updateSegmentInput = nonEmptyUpdate(
  z
    .object({
      name: optional(z.string().trim().min(1).max(200)),
      description: z.string().max(2000).nullish(),
      criteria: z.unknown().optional(),
      isActive: optional(z.boolean()),
      refreshIntervalMinutes: optional(interval),
    })
    .strict(),
);

export async function getSegment(ctx: ServiceContext, id: string): Promise<Segment> {
  const segment = isUuid(id) ? await ctx.em.findOne(Segment, { id: id.toLowerCase(), tenantId: ctx.tenantId }) : null;
  if (!segment) throw notFound('segment', id);
  return segment;
}

/** The tenant's segments by name, `limit` of them from `offset`. */
export function listSegments(ctx: ServiceContext, type: string | null | undefined, limit: number, offset = 0): Promise<Segment[]> {
  return ctx.em.find(Segment, segmentFilter(ctx, type), { orderBy: { name: 'asc', id: 'asc' }, limit, offset });
}

/** A page of the tenant's segments by name, with the total. */
export async function listSegmentsPage(ctx: ServiceContext, type: string | null | undefined, skip: number, take: number) {
  const rows = await listSegments(ctx, type, take, skip);
  return { rows, total: await ctx.em.count(Segment, segmentFilter(ctx, type)) };
}

const segmentFilter = (ctx: ServiceContext, type: string | null | undefined) => ({ tenantId: ctx.tenantId, ...(type && { type: type as Segment['type'] }) });

export async function segmentMembers(ctx: ServiceContext, segmentId: string, page: PageArgs = {}) {
  return counted(await segmentMembersConnection(ctx, segmentId, page));
}

/** As `segmentMembers`, counted only when asked; `options` as customersConnection's. */
export async function segmentMembersConnection(
  ctx: ServiceContext, segmentId: string, page: PageArgs = {}, options: Parameters<typeof customersConnection>[3] = {},
) {
  const segment = await getSegment(ctx, segmentId);
  return customersConnection(ctx, { segmentId: segment.id }, page, options);
}

/**
 * Validates criteria for `segmentId`: the language itself, that every referenced segment is the
 * tenant's, and that references do not cycle back to this one.
 */
async function checkCriteria(ctx: ServiceContext, criteria: unknown, segmentId: string): Promise<void> {
  const { segmentRefs } = compileCriteria(criteria, 'criteria', { maxNodes: ctx.config.MAX_CRITERIA_NODES, maxValues: ctx.config.MAX_CRITERIA_VALUES });
  for (const [ref, path] of segmentRefs) {
    if (ref === segmentId) throw new AppError('VALIDATION_ERROR', `${path}: a segment cannot refer to itself`, { field: path });
    const seen = new Set<string>();
    const stack = [ref];
    while (stack.length) {
      const id = stack.pop()!;
      if (seen.has(id)) continue;
      seen.add(id);
      const target = isUuid(id) ? await ctx.em.findOne(Segment, { id, tenantId: ctx.tenantId }) : null;
      if (!target) {
        throw new AppError('VALIDATION_ERROR', `${path}: ${id === ref ? `segment ${ref} not found` : `segment ${ref} refers to a missing segment`}`, { field: path });
      }
      if (target.criteria == null) continue;
      for (const next of compileCriteria(target.criteria).segmentRefs.keys()) {
        if (next === segmentId) {
          throw new AppError('VALIDATION_ERROR', `${path}: segment references form a cycle (${ref} leads back to this segment)`, { field: path });
        }
        stack.push(next);
      }
    }
  }
}

const nameTaken = (name: string) => new AppError('CONFLICT', `a segment named "${name}" already exists`, { field: 'name' });

export async function createSegment(ctx: ServiceContext, input: unknown): Promise<Segment> {
  const data = validate(createSegmentInput, input, 'input');
  if (data.type !== 'STATIC' && data.criteria == null) {
    throw new AppError('VALIDATION_ERROR', `criteria: required for ${data.type} segments`, { field: 'criteria' });
  }
  const segment = ctx.em.create(Segment, {
    id: uuidv7(),
    tenantId: ctx.tenantId,
    name: data.name,
    description: data.description ?? null,
    type: data.type,
    criteria: (data.criteria ?? null) as Record<string, unknown> | null,
    ...(data.refreshIntervalMinutes && { refreshIntervalMinutes: data.refreshIntervalMinutes }),
  } as never);
  await saveChecked(ctx, segment, data.criteria, data.name);
  // Nothing half-made: if Temporal cannot take the schedule or the first refresh, the segment goes.
  try {
    if (segment.type !== 'STATIC') await upsertRefreshSchedule(ctx, segment);
    if (segment.criteria != null) await refreshAfterSave(ctx, segment, 'created');
  } catch (err) {
    await stopSegmentWork(ctx, segment.id).catch(() => undefined);
    await ctx.em.fork().nativeDelete(Segment, { id: segment.id });
    throw err;
  }
  return ctx.em.refreshOrFail(segment);
}

export async function updateSegment(ctx: ServiceContext, id: string, input: unknown): Promise<Segment> {
  const data = validate(updateSegmentInput, input, 'input');
  const segment = await getSegment(ctx, id);
  const before = { criteria: segment.criteria, isActive: segment.isActive };
  const criteriaChanged = data.criteria !== undefined && JSON.stringify(data.criteria) !== JSON.stringify(segment.criteria);
  if (criteriaChanged && data.criteria === null && segment.type !== 'STATIC') {
    throw new AppError('VALIDATION_ERROR', `criteria: required for ${segment.type} segments`, { field: 'criteria' });
  }
  ctx.em.assign(segment, stripUndefined({
    name: data.name,
    description: data.description,
    criteria: data.criteria as Record<string, unknown> | null | undefined,
    isActive: data.isActive,
    refreshIntervalMinutes: data.refreshIntervalMinutes,
  }) as never);
  await saveChecked(ctx, segment, criteriaChanged ? data.criteria : null, data.name ?? segment.name);
  try {
    if (segment.type !== 'STATIC') await upsertRefreshSchedule(ctx, segment);
    // STATIC members change only on an explicit refresh; the others follow new criteria, or
    // catch up on what they missed while inactive, now.
    const reactivated = segment.isActive && !before.isActive;
    if (segment.type !== 'STATIC' && segment.isActive && (criteriaChanged || reactivated)) {
      await refreshAfterSave(ctx, segment, criteriaChanged ? 'criteria-changed' : 'reactivated');
    }
  } catch (err) {
    // Criteria that cannot be evaluated (or a refresh that could not run) do not stay behind.
    if (criteriaChanged || before.isActive !== segment.isActive) {
      ctx.em.assign(segment, before as never);
      await ctx.em.flush();
      if (segment.type !== 'STATIC') await upsertRefreshSchedule(ctx, segment).catch(() => undefined);
    }
    throw err;
  }
  return ctx.em.refreshOrFail(segment);
}

/**
 * Checks `criteria` (when given) and saves the segment in one transaction that holds the tenant's
 * criteria lock, so two concurrent edits cannot each pass the cycle check and together close a cycle.
 */
async function saveChecked(ctx: ServiceContext, segment: Segment, criteria: unknown, name: string): Promise<void> {
  try {
    await ctx.em.transactional(async (em) => {
      if (criteria != null) {
        await em.execute('select pg_advisory_xact_lock(hashtextextended(?, 0))', [`segment-criteria:${ctx.tenantId}`]);
        await checkCriteria({ ...ctx, em }, criteria, segment.id);
      }
      em.persist(segment);
    });
  } catch (err) {
    if (err instanceof UniqueConstraintViolationException) throw nameTaken(name);
    throw err;
  }
}

export async function deleteSegment(ctx: ServiceContext, id: string): Promise<boolean> {
  const segment = await getSegment(ctx, id);
  const others = await ctx.em.find(Segment, { tenantId: ctx.tenantId, id: { $ne: segment.id } });
  const users = others.filter((o) => o.criteria != null && compileCriteria(o.criteria).segmentRefs.has(segment.id));
  if (users.length) {
    throw new AppError('CONFLICT', `segment ${segment.id} is used in the criteria of ${users.map((u) => `"${u.name}" (${u.id})`).join(', ')}`);
  }
  // A journey's trigger, CONDITION or UPDATE step that still runs on it (as for a template).
  const journeys = await journeysUsing(ctx.em, ctx.tenantId, segment.id);
  if (journeys.length) throw new AppError('CONFLICT', `segment ${segment.id} is used by ${usedBy(journeys)}`);
  await stopSegmentWork(ctx, segment.id);
  await ctx.em.remove(segment).flush();
  return true;
}

export async function refreshSegment(ctx: ServiceContext, id: string): Promise<RefreshResult> {
  return runRefresh(ctx, await getSegment(ctx, id), 'manual');
}

export async function syncSegmentToMessaging(ctx: ServiceContext, id: string) {
  const segment = await getSegment(ctx, id);
  if (!ctx.config.MESSAGING_URL) throw new AppError('INVALID_STATE', 'the Messaging service is not configured (MESSAGING_URL)');
  return runSync(ctx, segment);
}

export function segmentView(s: Segment) {
  return {
    id: s.id,
    tenantId: s.tenantId,
    name: s.name,
    description: s.description ?? null,
    type: s.type,
    criteria: s.criteria ?? null,
    isActive: s.isActive,
    memberCount: s.memberCount,
    refreshIntervalMinutes: s.refreshIntervalMinutes,
    lastRefreshedAt: s.lastRefreshedAt ?? null,
    messagingSegmentId: s.messagingSegmentId ?? null,
    lastSyncedAt: s.lastSyncedAt ?? null,
    createdAt: s.createdAt,
    updatedAt: s.updatedAt,
  };
}

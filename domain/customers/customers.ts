import { UniqueConstraintViolationException } from '@mikro-orm/core';
import type { EntityManager, QueryBuilder } from '@mikro-orm/postgresql';
import { v7 as uuidv7 } from 'uuid';
import { Customer, Segment } from '../../db/entities/index.js';
import { escapeLike, LIVE_CUSTOMER, pgArray } from '../../db/sql.js';
import { AppError, notFound } from '../../platform/errors.js';
import type { ServiceContext } from '../context.js';
import { lazyCount, planPage, toPage, type LazyConnection, type Page, type PageArgs } from '../pagination.js';
import { exitCustomersEnrollments } from '../journeys/enrollment.js';
import { afterCustomersChanged } from '../reactions.js';
import { validate } from '../validate.js';
import { normalizePhone } from './identifiers.js';
import { createCustomerInput, customerFilter, updateCustomerInput, type CustomerFields, type CustomerFilter } from './schemas.js';

export const DEAD_STATUSES = ['MERGED', 'DELETED'] as const;
export const isLive = (c: Pick<Customer, 'status'>) => !(DEAD_STATUSES as readonly string[]).includes(c.status);
/** "is MERGED into <id>" / "is DELETED": why a profile no longer takes changes. */
export const deadState = (c: Pick<Customer, 'status' | 'mergedIntoId'>) => `is ${c.status}${c.mergedIntoId ? ` into ${c.mergedIntoId}` : ''}`;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export const isUuid = (id: string) => UUID.test(id);

/** A customer of the caller's tenant (merged and deleted ones included), or 404: never another tenant's. */
export async function getCustomer(ctx: { em: EntityManager; tenantId: string }, id: string): Promise<Customer> {
  const customer = isUuid(id) ? await ctx.em.findOne(Customer, { id, tenantId: ctx.tenantId }) : null;
  if (!customer) throw notFound('customer', id);
  return customer;
}

export async function getLiveCustomer(ctx: { em: EntityManager; tenantId: string }, id: string): Promise<Customer> {
  const customer = await getCustomer(ctx, id);
  if (!isLive(customer)) throw new AppError('INVALID_STATE', `customer ${id} ${deadState(customer)}`);
  return customer;
}

async function filterQuery(ctx: ServiceContext, filter: CustomerFilter) {
  const f = validate(customerFilter, filter, 'filter');
  const where: Record<string, unknown> = {
    tenantId: ctx.tenantId,
    status: f.status ?? { $nin: [...DEAD_STATUSES] },
  };
  const and: Record<string, unknown>[] = [];
  if (f.lifecycleStage) where.lifecycleStage = f.lifecycleStage;
  if (f.emailOptIn !== undefined) where.emailOptIn = f.emailOptIn;
  if (f.engagementMin !== undefined || f.engagementMax !== undefined) {
    where.engagementScore = { ...(f.engagementMin !== undefined && { $gte: f.engagementMin }), ...(f.engagementMax !== undefined && { $lte: f.engagementMax }) };
  }
  if (f.churnRiskMin !== undefined || f.churnRiskMax !== undefined) {
    where.churnRiskScore = { ...(f.churnRiskMin !== undefined && { $gte: f.churnRiskMin }), ...(f.churnRiskMax !== undefined && { $lte: f.churnRiskMax }) };
  }
  // A search that is a phone number, however written, finds its owner ("082 123 4567").
  const phone = f.search && /\d{4}/.test(f.search) ? normalizePhone(f.search, ctx.config.DEFAULT_PHONE_REGION) : undefined;
  const words = phone ? [] : (f.search?.split(/\s+/).filter(Boolean) ?? []);
  if (phone) where.phoneNumber = phone;
  // Otherwise every word must appear in the name, email or phone: "ann smi" finds Ann Smith.
  for (const word of words) {
    const like = `%${escapeLike(word)}%`;
    and.push({ $or: [{ firstName: { $ilike: like } }, { lastName: { $ilike: like } }, { email: { $ilike: like } }, { phoneNumber: { $like: like } }] });
  }
  if (and.length) where.$and = and;
  let segmentId: string | undefined;
  if (f.segmentId) {
    const segment = isUuid(f.segmentId) ? await ctx.em.findOne(Segment, { id: f.segmentId, tenantId: ctx.tenantId }) : null;
    if (!segment) throw notFound('segment', f.segmentId);
    segmentId = segment.id;
  }
  const qb = ctx.em.createQueryBuilder(Customer, 'c').where(where as never);
  if (segmentId) qb.andWhere('exists (select 1 from segment_members sm where sm.segment_id = ? and sm.customer_id = c.id)', [segmentId]);
  return qb;
}

/**
 * A page of customers as plain data, for reading only. A list is never changed in the request that
 * reads it, and making each row a managed entity (identity map, change-tracking snapshot) took a
 * third of a list request's CPU; the rows carry the same properties, typed as the entity.
 */
async function readPage(qb: QueryBuilder<Customer, 'c'>): Promise<Customer[]> {
  return (await qb.execute('all', true)) as unknown as Customer[];
}

const planCustomerPage = (args: PageArgs) => planPage(args, (key) => key.length === 1 && typeof key[0] === 'string' && isUuid(key[0]));

/**
 * How many customers `filter` selects. A filter on status and lifecycle stage alone (the list's
 * default, and most dashboards) is read from the customer totals the analytics triggers keep exact
 * in every writer's transaction (a few rows per status and stage), so it costs the same on any
 * tenant; any other filter counts its rows (`rowCount`, from `rowCountFor`).
 */
async function customerTotal(ctx: ServiceContext, filter: CustomerFilter, rowCount: { getCount(): Promise<number> } | undefined): Promise<number> {
  if (rowCount) return rowCount.getCount();
  const { status, lifecycleStage } = filter;
  const [row] = await ctx.em.execute<{ n: string }[]>(
    `select coalesce(sum(customers), 0)::bigint as n from analytics_customer_totals
      where tenant_id = ? and ${status ? 'status = ?' : `status not in (${DEAD_STATUSES.map((d) => `'${d}'`).join(', ')})`}
        ${lifecycleStage ? 'and lifecycle_stage = ?' : ''}`,
    [ctx.tenantId, ...(status ? [status] : []), ...(lifecycleStage ? [lifecycleStage] : [])],
  );
  return Number(row?.n ?? 0);
}

/** The rows to count when `filter` has more than the totals keep (a query to clone before paging it). */
function rowCountFor(filter: CustomerFilter, query: QueryBuilder<Customer, 'c'>): QueryBuilder<Customer, 'c'> | undefined {
  const { status: _s, lifecycleStage: _l, ...rest } = filter;
  return Object.values(rest).some((v) => v !== undefined) ? query.clone() : undefined;
}

/**
 * Newest first, Relay cursors over the time-ordered id; counted only when asked, or alongside the
 * page with `countNow` (the caller knows it will ask), so the request waits for one round trip.
 */
export async function customersConnection(
  ctx: ServiceContext, filter: CustomerFilter = {}, args: PageArgs = {}, { countNow = false } = {},
): Promise<LazyConnection<Customer>> {
  const plan = planCustomerPage(args);
  const qb = await filterQuery(ctx, filter);
  const rowCount = rowCountFor(filter, qb); // counted without the cursor
  const count = lazyCount(() => customerTotal(ctx, filter, rowCount));
  // Handled here as well, so a count that fails while the page does is not an unhandled rejection.
  if (countNow) count().catch(() => undefined);
  if (plan.cursor) qb.andWhere({ id: { [plan.backwards ? '$gt' : '$lt']: String(plan.cursor[0]) } });
  const rows = await readPage(qb.orderBy({ id: plan.backwards ? 'asc' : 'desc' }).limit(plan.limit));
  return { ...toPage(rows, plan, (c) => [c.id]), totalCount: count };
}

/**
 * One page of live members for each of `segmentIds` (the tenant's, already checked), in one
 * statement: the batched form of `customersConnection(ctx, { segmentId })`.
 */
export async function segmentMemberPages(ctx: ServiceContext, segmentIds: readonly string[], args: PageArgs): Promise<Map<string, Page<Customer>>> {
  const plan = planCustomerPage(args);
  const cursor = plan.cursor ? `and c.id ${plan.backwards ? '>' : '<'} ?` : '';
  const rows = await ctx.em.execute<({ segment__id: string } & Record<string, unknown>)[]>(
    `select s.id as segment__id, m.* from unnest(?::uuid[]) as s(id)
       cross join lateral (
         select c.* from segment_members sm join customers c on c.id = sm.customer_id
          where sm.segment_id = s.id and sm.tenant_id = ? and c.tenant_id = ? and ${LIVE_CUSTOMER} ${cursor}
          order by c.id ${plan.backwards ? 'asc' : 'desc'} limit ?
       ) m`,
    [pgArray([...segmentIds]), ctx.tenantId, ctx.tenantId, ...(plan.cursor ? [String(plan.cursor[0])] : []), plan.limit],
  );
  const bySegment = new Map<string, Customer[]>(segmentIds.map((id) => [id, []]));
  for (const { segment__id, ...row } of rows) bySegment.get(segment__id)!.push(ctx.em.map(Customer, row as never));
  return new Map([...bySegment].map(([id, customers]) => [id, toPage(customers, plan, (c) => [c.id])]));
}

/** Live members per segment, for `totalCount`: one statement for all of `segmentIds`. */
export async function segmentMemberCounts(ctx: ServiceContext, segmentIds: readonly string[]): Promise<Map<string, number>> {
  const rows = await ctx.em.execute<{ segment_id: string; n: number }[]>(
    `select sm.segment_id, count(*)::int as n from segment_members sm join customers c on c.id = sm.customer_id
      where sm.segment_id = any(?::uuid[]) and sm.tenant_id = ? and c.tenant_id = ? and ${LIVE_CUSTOMER}
      group by sm.segment_id`,
    [pgArray([...segmentIds]), ctx.tenantId, ctx.tenantId],
  );
  const counts = new Map(rows.map((r) => [r.segment_id, r.n]));
  return new Map(segmentIds.map((id) => [id, counts.get(id) ?? 0]));
}

export async function listCustomersPage(ctx: ServiceContext, filter: CustomerFilter, skip: number, take: number) {
  const qb = await filterQuery(ctx, filter);
  const rowCount = rowCountFor(filter, qb);
  const [rows, total] = await Promise.all([readPage(qb.orderBy({ id: 'desc' }).offset(skip).limit(take)), customerTotal(ctx, filter, rowCount)]);
  return { rows, total };
}

/** Throws CONFLICT (with the existing id) when a live profile of the tenant already owns one of the identifiers. */
async function assertIdentifiersFree(
  em: EntityManager,
  tenantId: string,
  ids: Pick<CustomerFields, 'email' | 'phoneNumber' | 'authUserId'>,
  exceptId?: string,
): Promise<void> {
  for (const field of ['email', 'phoneNumber', 'authUserId'] as const) {
    const value = ids[field];
    if (!value) continue;
    const existing = await em.findOne(
      Customer,
      { tenantId, [field]: value, status: { $nin: [...DEAD_STATUSES] }, ...(exceptId && { id: { $ne: exceptId } }) },
      { fields: ['id'] },
    );
    if (existing) {
      throw new AppError('CONFLICT', `customer ${existing.id} already has this ${field}`, { field, existingId: existing.id });
    }
  }
}

/** Runs `write`; a unique-index race with a concurrent writer becomes the same CONFLICT a pre-check gives. */
async function uniquely<T>(em: EntityManager, tenantId: string, ids: CustomerFields, exceptId: string | undefined, write: () => Promise<T>): Promise<T> {
  try {
    return await write();
  } catch (err) {
    if (!(err instanceof UniqueConstraintViolationException)) throw err;
    await assertIdentifiersFree(em.fork(), tenantId, ids, exceptId);
    throw new AppError('CONFLICT', 'another live customer owns one of these identifiers');
  }
}

export async function createCustomer(ctx: ServiceContext, input: unknown): Promise<Customer> {
  const { tenantId: _ignored, ...fields } = validate(createCustomerInput(ctx.config.DEFAULT_PHONE_REGION), input);
  return ctx.em.transactional((em) => insertCustomer(em, ctx.tenantId, fields));
}

/** Inserts a profile and lets SMART segments react; call inside a transaction. */
export async function insertCustomer(em: EntityManager, tenantId: string, fields: CustomerFields): Promise<Customer> {
  await assertIdentifiersFree(em, tenantId, fields);
  const customer = em.create(Customer, { id: uuidv7(), tenantId, ...stripUndefined(fields) } as never);
  await uniquely(em, tenantId, fields, undefined, () => em.flush());
  await afterCustomersChanged(em, tenantId, [customer.id], 'created');
  return customer;
}

/** `ctx` needs only the tenant, the EntityManager and the config: a workflow's activity calls it too. */
export async function updateCustomer(ctx: Pick<ServiceContext, 'tenantId' | 'em' | 'config'>, id: string, input: unknown): Promise<Customer> {
  const fields = validate(updateCustomerInput(ctx.config.DEFAULT_PHONE_REGION), input);
  return ctx.em.transactional(async (em) => {
    const customer = await getLiveCustomer({ em, tenantId: ctx.tenantId }, id);
    await assertIdentifiersFree(em, ctx.tenantId, fields, customer.id);
    em.assign(customer, stripUndefined(fields) as never);
    await uniquely(em, ctx.tenantId, fields, customer.id, () => em.flush());
    // A deleted profile's running journey enrolments exit.
    if (fields.status === 'DELETED') await exitCustomersEnrollments(em, ctx.tenantId, [customer.id], 'deleted');
    await afterCustomersChanged(em, ctx.tenantId, [customer.id], 'updated');
    return customer;
  });
}

export function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

export function fullName(c: Pick<Customer, 'firstName' | 'lastName'>): string | null {
  return [c.firstName, c.lastName].filter(Boolean).join(' ') || null;
}

/** The REST representation: every GraphQL field plus where a merged profile went. */
export function customerView(c: Customer) {
  return {
    id: c.id,
    tenantId: c.tenantId,
    email: c.email ?? null,
    phoneNumber: c.phoneNumber ?? null,
    authUserId: c.authUserId ?? null,
    firstName: c.firstName ?? null,
    lastName: c.lastName ?? null,
    fullName: fullName(c),
    status: c.status,
    lifecycleStage: c.lifecycleStage,
    membershipTier: c.membershipTier ?? null,
    membershipStatus: c.membershipStatus ?? null,
    handicap: c.handicap ?? null,
    homeClubId: c.homeClubId ?? null,
    engagementScore: c.engagementScore ?? null,
    churnRiskScore: c.churnRiskScore ?? null,
    lifetimeValue: c.lifetimeValue ?? null,
    emailOptIn: c.emailOptIn,
    smsOptIn: c.smsOptIn,
    pushOptIn: c.pushOptIn,
    lastActivityAt: c.lastActivityAt ?? null,
    mergedIntoId: c.mergedIntoId ?? null,
    mergedAt: c.mergedAt ?? null,
    createdAt: c.createdAt,
    updatedAt: c.updatedAt,
  };
}

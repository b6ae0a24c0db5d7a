import { LockMode, UniqueConstraintViolationException } from '@mikro-orm/core';
import type { EntityManager } from '@mikro-orm/postgresql';
import { v7 as uuidv7 } from 'uuid';
import { Customer, Segment } from '../../db/entities/index.js';
import { escapeLike, executeBound, LIVE_CUSTOMER, namedStatement, numberedPlaceholders, perValuesStatement, pgArray, TENANT, tenantKey } from '../../db/sql.js';
import { AppError, notFound } from '../../platform/errors.js';
import type { ServiceContext } from '../context.js';
import { lazyCount, planPage, toPage, type LazyConnection, type Page, type PageArgs } from '../pagination.js';
import { exitCustomersEnrollments } from '../journeys/enrollment.js';
import { addMemberCountDeltas } from '../segments/member-counts.js';
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
  const customer = isUuid(id) ? await ctx.em.findOne(Customer, { id, tenantId: tenantKey(ctx.tenantId) }) : null;
  if (!customer) throw notFound('customer', id);
  return customer;
}

export async function getLiveCustomer(ctx: { em: EntityManager; tenantId: string }, id: string): Promise<Customer> {
  const customer = await getCustomer(ctx, id);
  if (!isLive(customer)) throw new AppError('INVALID_STATE', `customer ${id} ${deadState(customer)}`);
  return customer;
}

/**
 * The live profile, locked until the transaction (`em`'s) ends, for a change to it: a merge or a
 * deletion committing meanwhile is waited for and then seen. Read without the lock, a profile merged
 * in between took the change (an edit made it live again beside its winner; a note went with it).
 */
export async function lockLiveCustomer(em: EntityManager, tenantId: string, id: string): Promise<Customer> {
  const customer = isUuid(id) ? await em.findOne(Customer, { id, tenantId: tenantKey(tenantId) }, { lockMode: LockMode.PESSIMISTIC_WRITE, refresh: true }) : null;
  if (!customer) throw notFound('customer', id);
  if (!isLive(customer)) throw new AppError('INVALID_STATE', `customer ${id} ${deadState(customer)}`);
  return customer;
}

/** A customer filter as SQL over `customers c`: its conditions, with `?` placeholders, and their values. */
interface FilterSql {
  where: string;
  params: unknown[];
  /** Whether it selects more than the totals keep (status and stage), so a total must count rows. */
  counted: boolean;
}

/**
 * A list's statement, planned on every request. A named one's generic plan, made without knowing
 * the tenant, judged every tenant half the table and walked `customers_pkey` backwards: on a
 * 1,000,000-customer database the page of a 10,000-customer tenant whose customers are all older
 * read past the other tenant's million, and requests waited out the pool (503). Planned with the
 * tenant's value, PostgreSQL takes the tenant's index.
 */
const perTenantPlan = numberedPlaceholders;

/**
 * A list's statement and its values: a first page selecting on the totals' keys alone (a tenant's
 * list, by status or stage: what dashboards and clients ask for most) runs from a plan made once per
 * connection for its tenant and page size (perValuesStatement); any other, planned per request.
 */
function listStatement(sql: string, params: unknown[], firstPage: boolean): [string, unknown[]] {
  const perValues = firstPage ? perValuesStatement(sql, params) : undefined;
  return perValues ? [perValues, []] : [perTenantPlan(sql), params];
}

const namedTotals = new Map<string, string>();
/** The totals statement, named: its plan (the totals' key) is the same for every tenant. */
function totalsStatement(sql: string): string {
  let text = namedTotals.get(sql);
  if (!text) namedTotals.set(sql, (text = namedStatement(sql)));
  return text;
}

/**
 * The filter as plain SQL text: building it with the query builder cost more CPU than PostgreSQL
 * spends reading the page (a third of a list request).
 */
async function filterSql(ctx: ServiceContext, filter: CustomerFilter): Promise<FilterSql> {
  const f = validate(customerFilter, filter, 'filter');
  const where = ['c.tenant_id = ?', f.status ? 'c.status = ?' : LIVE_CUSTOMER];
  const params: unknown[] = [ctx.tenantId, ...(f.status ? [f.status] : [])];
  const and = (condition: string, ...values: unknown[]) => {
    where.push(condition);
    params.push(...values);
  };
  if (f.lifecycleStage) and('c.lifecycle_stage = ?', f.lifecycleStage);
  const totalsKept = where.length;
  if (f.emailOptIn !== undefined) and('c.email_opt_in = ?', f.emailOptIn);
  if (f.engagementMin !== undefined) and('c.engagement_score >= ?', f.engagementMin);
  if (f.engagementMax !== undefined) and('c.engagement_score <= ?', f.engagementMax);
  if (f.churnRiskMin !== undefined) and('c.churn_risk_score >= ?', f.churnRiskMin);
  if (f.churnRiskMax !== undefined) and('c.churn_risk_score <= ?', f.churnRiskMax);
  // A search that is a phone number, however written, finds its owner ("082 123 4567").
  const phone = f.search && /\d{4}/.test(f.search) ? normalizePhone(f.search, ctx.config.DEFAULT_PHONE_REGION) : undefined;
  if (phone) and('c.phone_number = ?', phone);
  // Otherwise every word must appear in the name, email or phone: "ann smi" finds Ann Smith.
  for (const word of phone ? [] : (f.search?.split(/\s+/).filter(Boolean) ?? [])) {
    const like = `%${escapeLike(word)}%`;
    and('(c.first_name ilike ? or c.last_name ilike ? or c.email ilike ? or c.phone_number like ?)', like, like, like, like);
  }
  if (f.segmentId) {
    const segment = isUuid(f.segmentId) ? await ctx.em.findOne(Segment, { id: f.segmentId, tenantId: ctx.tenantId }, { fields: ['id'] }) : null;
    if (!segment) throw notFound('segment', f.segmentId);
    and('exists (select 1 from segment_members sm where sm.segment_id = ? and sm.customer_id = c.id)', segment.id);
  }
  return { where: where.join(' and '), params, counted: where.length > totalsKept };
}

/** A Customer property: what a caller may ask a page of customers for. */
export type CustomerProperty = keyof Customer & string;

const customerRows = new Map<string, { sql: string; times: string[] }>();
// Row shapes kept (a GraphQL client's few selections); others are built when asked.
const CUSTOMER_ROWS_KEPT = 64;

/**
 * A row of `customers c` as a JSON object keyed by the entity's property names (`properties`, with
 * the id, or all), timestamps as epoch milliseconds (truncated, as pg parses them). A page arrives
 * as one JSON text that the API parses once: reading 25 rows of 26 columns through the driver's row
 * parser and mapping them to entities cost more of a GraphQL list request's CPU than executing it,
 * and a GraphQL selection of ten fields rendered and parsed all 26.
 */
function customerRow(em: EntityManager, properties?: readonly CustomerProperty[]) {
  const key = properties ? [...new Set(properties)].sort().join(',') : '*';
  let row = customerRows.get(key);
  if (row) return row;
  const props = em.getMetadata().get(Customer).props.filter((p) => !properties || p.name === 'id' || properties.includes(p.name as CustomerProperty));
  const times = props.filter((p) => p.runtimeType === 'Date').map((p) => p.name);
  const sql = props.map((p) => (times.includes(p.name)
    ? `floor(extract(epoch from c.${p.fieldNames[0]}) * 1000)::int8 as "${p.name}"`
    : `c.${p.fieldNames[0]} as "${p.name}"`)).join(', ');
  row = { sql, times };
  if (customerRows.size < CUSTOMER_ROWS_KEPT) customerRows.set(key, row);
  return row;
}

/**
 * customerRow's JSON as the plain data a list needs, typed as the entity: a list is never changed in
 * the request that reads it, and making each row a managed entity (identity map, change-tracking
 * snapshot) took a third of a list request's CPU.
 */
function asCustomers(json: string, times: readonly string[]): Customer[] {
  const rows = JSON.parse(json) as Record<string, unknown>[];
  for (const row of rows) {
    for (const key of times) if (row[key] !== null) row[key] = new Date(row[key] as number);
  }
  return rows as Customer[];
}

const planCustomerPage = (args: PageArgs) => planPage(args, (key) => key.length === 1 && typeof key[0] === 'string' && isUuid(key[0]));

/**
 * How many customers `filter` selects. A filter on status and lifecycle stage alone (the list's
 * default, and most dashboards) is read from the customer totals the analytics triggers keep exact
 * in every writer's transaction (a few rows per status and stage), so it costs the same on any
 * tenant; any other filter counts its rows.
 */
async function customerTotal(ctx: ServiceContext, filter: CustomerFilter, sql: FilterSql): Promise<number> {
  const total = sql.counted
    ? { sql: `select count(*) as n from customers c where ${sql.where}`, params: sql.params }
    : totalsQuery(ctx.tenantId, filter);
  const [row] = await executeBound<{ n: string }>(ctx.em, sql.counted ? perTenantPlan(total.sql) : totalsStatement(total.sql), total.params);
  return Number(row?.n ?? 0);
}

/** The statement summing the customer totals `filter` selects (a filter on status and stage alone). */
function totalsQuery(tenantId: string, { status, lifecycleStage }: CustomerFilter) {
  return {
    sql: `select coalesce(sum(customers), 0)::bigint as n from analytics_customer_totals
           where tenant_id = ? and ${status ? 'status = ?' : `status not in (${DEAD_STATUSES.map((d) => `'${d}'`).join(', ')})`}
             ${lifecycleStage ? 'and lifecycle_stage = ?' : ''}`,
    params: [tenantId, ...(status ? [status] : []), ...(lifecycleStage ? [lifecycleStage] : [])],
  };
}

/**
 * Newest first, Relay cursors over the time-ordered id; counted only when asked, or alongside the
 * page with `countNow` (the caller knows it will ask), so the request waits for one round trip.
 * With `properties`, the customers carry only those (and the id): for a caller that reads no others.
 */
export async function customersConnection(
  ctx: ServiceContext, filter: CustomerFilter = {}, args: PageArgs = {},
  { countNow = false, properties }: { countNow?: boolean; properties?: readonly CustomerProperty[] } = {},
): Promise<LazyConnection<Customer>> {
  const plan = planCustomerPage(args);
  const sql = await filterSql(ctx, filter);
  // A total the totals keep rides in the page's statement; a counted one runs beside it.
  const totals = countNow && !sql.counted ? totalsQuery(ctx.tenantId, filter) : undefined;
  let count = lazyCount(() => customerTotal(ctx, filter, sql)); // counted without the cursor
  // Handled here as well, so a count that fails while the page does is not an unhandled rejection.
  if (countNow && !totals) count().catch(() => undefined);
  const cursor = plan.cursor ? ` and c.id ${plan.backwards ? '>' : '<'} ?` : '';
  const direction = plan.backwards ? 'asc' : 'desc';
  const shape = customerRow(ctx.em, properties);
  const [row] = await executeBound<{ page: string; total: string | null }>(ctx.em, ...listStatement(
    `select (select coalesce(json_agg(v order by v.id ${direction}), '[]')::text
               from (select ${shape.sql} from customers c where ${sql.where}${cursor} order by c.id ${direction} limit ?) v) as page
            ${totals ? `, (${totals.sql}) as total` : ''}`,
    [...sql.params, ...(plan.cursor ? [String(plan.cursor[0])] : []), plan.limit, ...(totals?.params ?? [])],
    !plan.cursor && !sql.counted,
  ));
  if (totals) {
    const total = Number(row!.total);
    count = () => Promise.resolve(total);
  }
  return { ...toPage(asCustomers(row!.page, shape.times), plan, (c) => [c.id]), get totalCount() { return count(); } };
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
          where sm.segment_id = s.id and sm.tenant_id = ${TENANT} and c.tenant_id = ${TENANT} and ${LIVE_CUSTOMER} ${cursor}
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
      where sm.segment_id = any(?::uuid[]) and sm.tenant_id = ${TENANT} and c.tenant_id = ${TENANT} and ${LIVE_CUSTOMER}
      group by sm.segment_id`,
    [pgArray([...segmentIds]), ctx.tenantId, ctx.tenantId],
  );
  const counts = new Map(rows.map((r) => [r.segment_id, r.n]));
  return new Map(segmentIds.map((id) => [id, counts.get(id) ?? 0]));
}

/**
 * A page of the REST list, as the JSON text of its `data` array, written by PostgreSQL from
 * customerView's fields (CUSTOMER_VIEW). Hydrating entities, mapping them to the view, checking it
 * against the schema and serializing twice was two thirds of a list request's CPU; parsing the rows
 * and stringifying them in the API was still a third of what remained (and most of its garbage).
 */
export async function listCustomersPage(ctx: ServiceContext, filter: CustomerFilter, skip: number, take: number): Promise<{ data: string; total: number }> {
  const sql = await filterSql(ctx, filter);
  // PostgreSQL writes the page's JSON (customerView's keys are the columns' names) and, when the
  // totals keep it, the total beside it, once, empty page or not.
  const totals = sql.counted ? undefined : totalsQuery(ctx.tenantId, filter);
  const [[row], counted] = await Promise.all([
    executeBound<{ data: string; total: string | null }>(ctx.em, ...listStatement(
      `select (select coalesce(json_agg(v order by v.id desc), '[]')::text
                 from (select ${CUSTOMER_VIEW} from (select * from customers c where ${sql.where} order by c.id desc limit ? offset ?) c) v) as data
              ${totals ? `, (${totals.sql}) as total` : ''}`,
      [...sql.params, take, skip, ...(totals?.params ?? [])],
      skip === 0 && !sql.counted,
    )),
    sql.counted ? customerTotal(ctx, filter, sql) : undefined,
  ]);
  return { data: row!.data, total: counted ?? Number(row!.total) };
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
      { tenantId: tenantKey(tenantId), [field]: value, status: { $nin: [...DEAD_STATUSES] }, ...(exceptId && { id: { $ne: exceptId } }) },
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
    const customer = await lockLiveCustomer(em, ctx.tenantId, id);
    await assertIdentifiersFree(em, ctx.tenantId, fields, customer.id);
    em.assign(customer, stripUndefined(fields) as never);
    await uniquely(em, ctx.tenantId, fields, customer.id, () => em.flush());
    // A deleted profile's running journey enrolments exit, and it leaves its segments.
    if (fields.status === 'DELETED') {
      await exitCustomersEnrollments(em, ctx.tenantId, [customer.id], 'deleted');
      await leaveSegments(em, ctx.tenantId, customer.id, 'deleted');
    }
    await afterCustomersChanged(em, ctx.tenantId, [customer.id], 'updated');
    return customer;
  });
}

/**
 * Takes a profile out of every segment it is in, each exit recorded and counted: a deleted profile
 * is in no list, and memberCount counts rows (a STATIC or DYNAMIC segment kept it until a refresh,
 * or for good). Its segments are locked key-share, in id order, as a merge locks them: one whose
 * deletion is in flight is waited for and then left out (its members went with it).
 */
async function leaveSegments(em: EntityManager, tenantId: string, customerId: string, cause: string): Promise<void> {
  await em.execute(
    `with mine as (
       select m.segment_id from segment_members m join segments s on s.id = m.segment_id and s.tenant_id = m.tenant_id
        where m.customer_id = ? and m.tenant_id = ${TENANT}
        order by s.id
          for key share of s
     ), gone as (
       delete from segment_members m using mine where m.segment_id = mine.segment_id and m.customer_id = ?
       returning m.segment_id
     ), changes as (
       insert into segment_membership_changes (tenant_id, segment_id, customer_id, change, cause)
       select ?, segment_id, ?::uuid, 'EXITED', ? from gone
     ), counted as (${addMemberCountDeltas('select segment_id, -1 from gone')}
     )
     select 1`,
    [customerId, tenantId, customerId, tenantId, customerId, cause],
  );
}

export function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

export function fullName(c: Pick<Customer, 'firstName' | 'lastName'>): string | null {
  return [c.firstName, c.lastName].filter(Boolean).join(' ') || null;
}

// A timestamp as JSON.stringify writes a Date: UTC, milliseconds (truncated, as pg parses them), "Z".
const isoUtc = (column: string) => `to_char(${column} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;

/**
 * customerView of a row `c`, as columns named as its keys, for the REST list: their JSON is the
 * answer (dates already ISO text), with no entity, no check and no serialization in the API between
 * (test/customers-list-json.test.ts holds the two equal).
 */
const CUSTOMER_VIEW = `c.id, c.tenant_id as "tenantId", c.email, c.phone_number as "phoneNumber", c.auth_user_id as "authUserId",
  c.first_name as "firstName", c.last_name as "lastName", nullif(concat_ws(' ', nullif(c.first_name, ''), nullif(c.last_name, '')), '') as "fullName",
  c.status, c.lifecycle_stage as "lifecycleStage", c.membership_tier as "membershipTier", c.membership_status as "membershipStatus",
  c.handicap, c.home_club_id as "homeClubId", c.engagement_score as "engagementScore", c.churn_risk_score as "churnRiskScore",
  c.lifetime_value as "lifetimeValue", c.email_opt_in as "emailOptIn", c.sms_opt_in as "smsOptIn", c.push_opt_in as "pushOptIn",
  ${isoUtc('c.last_activity_at')} as "lastActivityAt", c.merged_into_id as "mergedIntoId", ${isoUtc('c.merged_at')} as "mergedAt",
  ${isoUtc('c.created_at')} as "createdAt", ${isoUtc('c.updated_at')} as "updatedAt"`;

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

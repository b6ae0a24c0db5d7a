import { Duration } from 'luxon';
import { escapeLike, pgArray } from '../../db/sql.js';
import { ActivityCategory, CustomerStatus, LifecycleStage } from '../../db/entities/enums.js';
import { AppError } from '../../platform/errors.js';

// The segment criteria language (README, Segments > Criteria), validated with JSON paths in the
// errors and compiled to one parameterised SQL condition over `customers c`. No user value is
// ever spliced into SQL: fields map through FIELDS to fixed column names, values become params.

type FieldType = 'string' | 'enum' | 'number' | 'boolean' | 'date';
interface Field {
  column: string;
  type: FieldType;
  values?: readonly string[];
}

const FIELDS: Record<string, Field> = {
  status: { column: 'status', type: 'enum', values: CustomerStatus },
  lifecycleStage: { column: 'lifecycle_stage', type: 'enum', values: LifecycleStage },
  membershipTier: { column: 'membership_tier', type: 'string' },
  membershipStatus: { column: 'membership_status', type: 'string' },
  handicap: { column: 'handicap', type: 'number' },
  homeClubId: { column: 'home_club_id', type: 'string' },
  engagementScore: { column: 'engagement_score', type: 'number' },
  churnRiskScore: { column: 'churn_risk_score', type: 'number' },
  lifetimeValue: { column: 'lifetime_value', type: 'number' },
  emailOptIn: { column: 'email_opt_in', type: 'boolean' },
  smsOptIn: { column: 'sms_opt_in', type: 'boolean' },
  pushOptIn: { column: 'push_opt_in', type: 'boolean' },
  lastActivityAt: { column: 'last_activity_at', type: 'date' },
  createdAt: { column: 'created_at', type: 'date' },
  email: { column: 'email', type: 'string' },
  phoneNumber: { column: 'phone_number', type: 'string' },
  firstName: { column: 'first_name', type: 'string' },
  lastName: { column: 'last_name', type: 'string' },
};

const OPS_BY_TYPE: Record<FieldType, readonly string[]> = {
  string: ['eq', 'neq', 'in', 'nin', 'contains', 'startsWith', 'exists', 'notExists'],
  enum: ['eq', 'neq', 'in', 'nin'],
  number: ['eq', 'neq', 'gt', 'gte', 'lt', 'lte', 'in', 'nin', 'exists', 'notExists'],
  boolean: ['eq', 'neq'],
  date: ['gt', 'gte', 'lt', 'lte', 'within', 'notWithin', 'exists', 'notExists'],
};
const COMPARE: Record<string, string> = { eq: '=', neq: '<>', gt: '>', gte: '>=', lt: '<', lte: '<=' };
const SQL_TYPE: Record<FieldType, string> = { string: 'text', enum: 'text', number: 'float8', boolean: 'bool', date: 'timestamptz' };

const MAX_DEPTH = 10;

// Where an EXISTS subquery ends. PostgreSQL may run a correlated EXISTS as a hashed subplan: one
// scan of every matching row, then a lookup per customer. Over a whole tenant that is the better
// plan; for a batch of 1,000 customers it read every tenant's bookings of the week (201,000 rows,
// more with each batch) whenever the statistics of a fast-growing table made them look few, and a
// batch took 1.7 s instead of 0.3 s. OFFSET 0 keeps PostgreSQL from rewriting the EXISTS, so the
// per-customer form probes the customer's own rows, by index, whatever the statistics say.
const PER_CUSTOMER = '/*per-customer*/';
// On the same stale statistics the probe took the tenant's category index (tenant, category,
// occurred_at) and filtered on the customer: 500 rows read per customer, more with each batch.
// In the per-customer form the category is compared as an expression, which no index matches, so
// the probe takes the customer's timeline (tenant, customer, occurred_at).
const UNINDEXED_PER_CUSTOMER = '/*unindexed-per-customer*/';
// A probe without a category (an event type, checked or counted) had the same choice, and ties
// broke the wrong way: on statistics that took the tenant for one row, each probe read the
// tenant's whole timeline (3,000 rows per customer; a batch of 1,000 took 2 s instead of 70 ms).
// Newest first, only the customer's timeline gives the rows in order, so for the first few rows
// it is the cheaper plan whatever the statistics say.
const NEWEST_PER_CUSTOMER = '/*newest-per-customer*/';
// Ties happened anyway: where both plans are costed for the one row the statistics allow a tenant
// they do not know, sorting it costs nothing, and a batch's probes (planned for the tenant's value)
// read its whole timeline again. In the per-customer form the tenant is read through a scalar
// subquery, so no plan sees its value: the tenant counts for the average tenant's share, and only
// the customer's timeline narrows that down to the customer's rows.
const TENANT_OPEN = '/*tenant(*/';
const TENANT_CLOSE = '/*)tenant*/';
// Where a probe stands in the compiled text until it is rendered (inline, or as a reference).
const PROBE = '\u0001';
const probeToken = (i: number) => `${PROBE}${i}${PROBE}`;
const PROBE_TOKEN = new RegExp(`${PROBE}(\\d+)${PROBE}`, 'g');
/** Stands for the tenant among the parameters until `params(tenantId)`. */
const TENANT = Symbol('tenant');
/** How far a count's probe may count for others (see Probe): a customer's hundred rows, read by index. */
export const SHARED_COUNT_LIMIT = 100;

/**
 * A subquery of one customer's activities, in its per-customer form; `key` is its text and values.
 * A count's probe (`limit` set) counts only as far as its last parameter, the limit. Up to
 * SHARED_COUNT_LIMIT its key leaves the limit out: probes of one key then differ only in how far
 * they count, so one counting as far as the furthest serves them all. A longer count keeps its own
 * probe: shared, "at most 5,000 bookings" would have "at least 2" count 5,001 rows of every customer.
 */
export interface Probe {
  key: string;
  sql: string;
  params: unknown[];
  limit?: number;
}

export interface Compiled {
  /** For a whole tenant (refresh): the planner may hash a subquery over its rows. */
  sql: string;
  /** For given customers (SMART evaluation, journey conditions): every subquery probes per customer. */
  perCustomerSql: string;
  /** The statement's parameters for the tenant it runs for. */
  params: (tenantId: string) => unknown[];
  /**
   * The per-customer form with the given probes (subqueries of a customer's activities) replaced
   * by what `ref` names for them, so that the segments of one statement compute a probe they
   * share once per customer. A probe `ref` leaves undefined stays inline.
   */
  perCustomerWith: (tenantId: string, ref: (probe: Probe) => string | undefined) => { sql: string; params: unknown[] };
  probes: (tenantId: string) => Probe[];
  /** Segments this condition reads the membership of, with the JSON path that names each. */
  segmentRefs: Map<string, string>;
}

const fail = (path: string, message: string): never => {
  throw new AppError('VALIDATION_ERROR', `${path}: ${message}`, { field: path });
};
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function onlyKeys(node: Record<string, unknown>, allowed: string[], path: string) {
  const extra = Object.keys(node).filter((k) => !allowed.includes(k));
  if (extra.length) fail(path, `unexpected key(s) ${extra.join(', ')}`);
}

// The ISO-8601 durations PostgreSQL's interval input reads: whole units, no sign, at least one.
const DURATION = /^P(?!$)(\d{1,6}Y)?(\d{1,6}M)?(\d{1,6}W)?(\d{1,6}D)?(T(?=\d)(\d{1,6}H)?(\d{1,6}M)?(\d{1,6}S)?)?$/;
const MAX_DURATION_YEARS = 200;

function isoDuration(value: unknown, path: string): string {
  const duration = typeof value === 'string' && DURATION.test(value) ? Duration.fromISO(value) : undefined;
  if (!duration?.isValid || duration.as('years') > MAX_DURATION_YEARS) {
    fail(path, `an ISO-8601 duration such as "P30D" or "PT12H" (whole units, at most ${MAX_DURATION_YEARS} years)`);
  }
  return value as string;
}

function scalar(type: FieldType, field: Field, value: unknown, path: string): unknown {
  switch (type) {
    case 'number':
      if (typeof value !== 'number' || !Number.isFinite(value)) fail(path, 'a number');
      return value;
    case 'boolean':
      if (typeof value !== 'boolean') fail(path, 'true or false');
      return value;
    case 'date': {
      const year = typeof value === 'string' ? new Date(value).getUTCFullYear() : NaN;
      if (!(year >= 1 && year <= 9999)) fail(path, 'an ISO-8601 date-time between the years 1 and 9999');
      return new Date(value as string).toISOString();
    }
    case 'enum':
      if (typeof value !== 'string' || !field.values!.includes(value)) fail(path, `one of ${field.values!.join(', ')}`);
      return value;
    default:
      if (typeof value !== 'string') fail(path, 'a string');
      return value;
  }
}

/** How large criteria a caller may write: nodes in all, and `in`/`nin` values in all. */
export interface CriteriaLimits {
  maxNodes: number;
  maxValues: number;
}

class Compiler {
  params: unknown[] = [];
  /** Probes, each standing in the compiled text as probeToken(i), with its run of `params` (a count's limit last). */
  probes: { sql: string; first: number; count: number; counts?: boolean }[] = [];
  segmentRefs = new Map<string, string>();
  private nodes = 0;
  private values = 0;

  constructor(private readonly limits?: CriteriaLimits) {}

  private param(value: unknown, cast?: string): string {
    this.params.push(value);
    return cast ? `?::${cast}` : '?';
  }

  node(node: unknown, path: string, depth: number): string {
    if (depth > MAX_DEPTH) fail(path, `criteria nest deeper than ${MAX_DEPTH} levels`);
    if (this.limits && ++this.nodes > this.limits.maxNodes) fail(path, `criteria may have at most ${this.limits.maxNodes} nodes`);
    if (!isObject(node)) return fail(path, 'a criteria node: {all}, {any}, {not}, {field, op, value}, {event} or {segment}');
    if ('all' in node || 'any' in node) {
      const key = 'all' in node ? 'all' : 'any';
      onlyKeys(node, [key], path);
      const children = node[key];
      if (!Array.isArray(children) || children.length === 0) fail(`${path}.${key}`, 'a non-empty array of criteria');
      const parts = (children as unknown[]).map((child, i) => this.node(child, `${path}.${key}[${i}]`, depth + 1));
      return `(${parts.join(key === 'all' ? ' and ' : ' or ')})`;
    }
    if ('not' in node) {
      onlyKeys(node, ['not'], path);
      return `(not coalesce(${this.node(node.not, `${path}.not`, depth + 1)}, false))`;
    }
    if ('field' in node) return this.field(node, path);
    if ('event' in node) return this.event(node, path);
    if ('segment' in node) return this.segment(node, path);
    return fail(path, 'a criteria node: {all}, {any}, {not}, {field, op, value}, {event} or {segment}');
  }

  private field(node: Record<string, unknown>, path: string): string {
    onlyKeys(node, ['field', 'op', 'value'], path);
    const name = node.field;
    const field = typeof name === 'string' && Object.hasOwn(FIELDS, name) ? FIELDS[name]! : fail(`${path}.field`, `unknown field; one of ${Object.keys(FIELDS).join(', ')}`);
    const op = String(node.op);
    if (!OPS_BY_TYPE[field.type].includes(op)) {
      fail(`${path}.op`, `${op} does not apply to ${String(name)} (${field.type}); use one of ${OPS_BY_TYPE[field.type].join(', ')}`);
    }
    const col = `c.${field.column}`;
    const valuePath = `${path}.value`;
    switch (op) {
      case 'exists':
      case 'notExists':
        if (node.value !== undefined) fail(valuePath, `${op} takes no value`);
        return `(${col} is ${op === 'exists' ? 'not ' : ''}null)`;
      case 'in':
      case 'nin': {
        if (!Array.isArray(node.value) || node.value.length === 0) fail(valuePath, 'a non-empty array');
        this.values += (node.value as unknown[]).length;
        if (this.limits && this.values > this.limits.maxValues) fail(valuePath, `criteria may list at most ${this.limits.maxValues} values in all`);
        const values = (node.value as unknown[]).map((v, i) => scalar(field.type, field, v, `${valuePath}[${i}]`));
        const any = `${col} = any(${this.param(pgArray(values as string[]), `${SQL_TYPE[field.type]}[]`)})`;
        return op === 'in' ? `(${any})` : `(not coalesce(${any}, false))`;
      }
      case 'contains':
      case 'startsWith': {
        const text = scalar('string', field, node.value, valuePath) as string;
        return `(${col} ilike ${this.param(op === 'contains' ? `%${escapeLike(text)}%` : `${escapeLike(text)}%`)})`;
      }
      case 'within':
      case 'notWithin': {
        const since = `now() - ${this.param(isoDuration(node.value, valuePath), 'interval')}`;
        return op === 'within' ? `(${col} >= ${since})` : `(${col} is null or ${col} < ${since})`;
      }
      default: {
        const value = scalar(field.type, field, node.value, valuePath);
        const compared = `${col} ${COMPARE[op]} ${this.param(value, SQL_TYPE[field.type])}`;
        // neq also matches customers who have no value at all.
        return op === 'neq' ? `(${col} is null or ${compared})` : `(${compared})`;
      }
    }
  }

  private event(node: Record<string, unknown>, path: string): string {
    onlyKeys(node, ['event', 'count'], path);
    const event = node.event;
    if (!isObject(event)) return fail(`${path}.event`, 'an object with category, type and/or within');
    onlyKeys(event, ['category', 'type', 'within'], `${path}.event`);
    const firstParam = this.params.length;
    // The tenant is a value, not c.tenant_id: a subquery PostgreSQL hashes reads this tenant's
    // activities, never every tenant's.
    const conditions = [`a.tenant_id = ${TENANT_OPEN}${this.param(TENANT, 'text')}${TENANT_CLOSE}`, 'a.customer_id = c.id'];
    if (event.category !== undefined) {
      if (typeof event.category !== 'string' || !(ActivityCategory as readonly string[]).includes(event.category)) {
        fail(`${path}.event.category`, `one of ${ActivityCategory.join(', ')}`);
      }
      conditions.push(`a.category${UNINDEXED_PER_CUSTOMER} = ${this.param(event.category)}`);
    }
    if (event.type !== undefined) {
      if (typeof event.type !== 'string' || !event.type) fail(`${path}.event.type`, 'an activity type such as "booking.created"');
      conditions.push(`a.type = ${this.param(event.type)}`);
    }
    if (event.within !== undefined) conditions.push(`a.occurred_at >= now() - ${this.param(isoDuration(event.within, `${path}.event.within`), 'interval')}`);
    const where = conditions.join(' and ');

    let op = 'gte';
    let n = 1;
    if (node.count !== undefined) {
      const count = node.count;
      if (!isObject(count)) return fail(`${path}.count`, '{"op": "gte"|"lte"|"eq", "value": <integer>}');
      onlyKeys(count, ['op', 'value'], `${path}.count`);
      if (!['gte', 'lte', 'eq'].includes(String(count.op))) fail(`${path}.count.op`, 'gte, lte or eq');
      if (!Number.isInteger(count.value) || (count.value as number) < 0 || (count.value as number) > 2_147_483_647) {
        fail(`${path}.count.value`, 'a whole number from 0 to 2147483647');
      }
      op = String(count.op);
      n = count.value as number;
    }
    const probe = (sql: string, counts?: boolean) => {
      this.probes.push({ sql, first: firstParam, count: this.params.length - firstParam, counts });
      return probeToken(this.probes.length - 1);
    };
    // The common "did it at least once" needs no count.
    if (op === 'gte' && n === 1) return `(${probe(`exists (select 1 from activities a where ${where}${NEWEST_PER_CUSTOMER}${PER_CUSTOMER})`)})`;
    if (op === 'gte' && n === 0) {
      this.params.length = firstParam; // the conditions' values are not in the SQL, so not in its parameters
      return '(true)';
    }
    // Counted only as far as the comparison can tell (N for gte, N + 1 for lte and eq), so a
    // customer with years of bookings costs what one with a few does.
    const enough = op === 'gte' ? n : n + 1;
    const counted = probe(`(select count(*) from (select from activities a where ${where}${NEWEST_PER_CUSTOMER} limit ${this.param(enough, 'int8')}) counted)`, true);
    return `(${counted} ${COMPARE[op]} ${this.param(n, 'int')})`;
  }

  private segment(node: Record<string, unknown>, path: string): string {
    onlyKeys(node, ['segment', 'op'], path);
    if (typeof node.segment !== 'string' || !node.segment) fail(`${path}.segment`, 'a segment id');
    if (node.op !== 'in' && node.op !== 'notIn') fail(`${path}.op`, 'in or notIn');
    const id = (node.segment as string).toLowerCase();
    if (!this.segmentRefs.has(id)) this.segmentRefs.set(id, `${path}.segment`);
    const member = `exists (select 1 from segment_members sm where sm.segment_id = ${this.param(id, 'uuid')} and sm.customer_id = c.id${PER_CUSTOMER})`;
    return node.op === 'in' ? `(${member})` : `(not ${member})`;
  }
}

/**
 * Validates and compiles criteria; throws VALIDATION_ERROR naming the JSON path of the first fault.
 * `limits` bound what a caller writes; criteria already stored compile whatever the limits now are.
 */
export function compileCriteria(criteria: unknown, path = 'criteria', limits?: CriteriaLimits): Compiled {
  const compiler = new Compiler(limits);
  const template = compiler.node(criteria, path, 1);
  const bind = (tenantId: string, values: unknown[]) => values.map((p) => (p === TENANT ? tenantId : p));
  const tenantForm = (sql: string) => sql.replaceAll(PER_CUSTOMER, '').replaceAll(UNINDEXED_PER_CUSTOMER, '').replaceAll(NEWEST_PER_CUSTOMER, '')
    .replaceAll(TENANT_OPEN, '').replaceAll(TENANT_CLOSE, '');
  const perCustomerForm = (sql: string) => sql.replaceAll(PER_CUSTOMER, ' offset 0').replaceAll(UNINDEXED_PER_CUSTOMER, " || ''")
    .replaceAll(NEWEST_PER_CUSTOMER, ' order by a.occurred_at desc').replaceAll(TENANT_OPEN, '(select ').replaceAll(TENANT_CLOSE, ')');
  const probes = (tenantId: string): Probe[] => compiler.probes.map((p) => {
    const params = bind(tenantId, compiler.params.slice(p.first, p.first + p.count));
    const sql = perCustomerForm(p.sql);
    if (!p.counts) return { key: `${sql}\u0000${JSON.stringify(params)}`, sql, params };
    const limit = Number(params.at(-1));
    return { key: `${sql}\u0000${JSON.stringify(limit <= SHARED_COUNT_LIMIT ? params.slice(0, -1) : params)}`, sql, params, limit };
  });
  /** The template with each probe inline or, where `ref` names one, its reference (and not its values). */
  const assemble = (tenantId: string, ref: (probe: Probe, i: number) => string | undefined) => {
    const all = probes(tenantId);
    const values = bind(tenantId, compiler.params);
    const params: unknown[] = [];
    let next = 0;
    const sql = template.split(PROBE).map((piece, i) => {
      if (i % 2 === 0) {
        const placeholders = piece.split('?').length - 1;
        params.push(...values.slice(next, next + placeholders));
        next += placeholders;
        return piece;
      }
      const n = Number(piece);
      const probe = compiler.probes[n]!;
      const named = ref(all[n]!, n);
      if (named === undefined) params.push(...values.slice(next, next + probe.count));
      next += probe.count;
      return named ?? probe.sql;
    }).join('');
    return { sql, params };
  };
  const inline = template.replace(PROBE_TOKEN, (_, n: string) => compiler.probes[Number(n)]!.sql);
  return {
    sql: tenantForm(inline),
    perCustomerSql: perCustomerForm(inline),
    params: (tenantId) => bind(tenantId, compiler.params),
    perCustomerWith: (tenantId, ref) => {
      const { sql, params } = assemble(tenantId, ref);
      return { sql: perCustomerForm(sql), params };
    },
    probes,
    segmentRefs: compiler.segmentRefs,
  };
}

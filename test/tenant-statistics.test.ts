import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { EXACT_PROFILES } from '../domain/customers/resolve.js';
import { STORED_EVENTS } from '../domain/events/ingest.js';
import { LOCK_CUSTOMERS } from '../domain/reactions.js';

// Lookups by a key within the tenant (an event's source key, a customer's id or email) must probe
// the key for a tenant the statistics have not seen yet: a club that starts sending its history or
// importing its members. Planned for the tenant's value, such a tenant is costed at one row and an
// index led by tenant_id alone can win the tie, walking the tenant's rows once per key.
// Each case runs against copies of the tables in a schema of their own, so their statistics are this
// test's: taken before the new club's rows arrive. A small index on tenant_id alone stands for the
// tenant-led index that won the tie on a platform's own tables (on activities, the one on
// (tenant_id, category); on customers, the one on (tenant_id, churn_risk_score)).
let db: pg.Client;
const schema = `tenant_stats_${process.pid}`;
beforeAll(async () => {
  db = new pg.Client({ connectionString: inject('databaseUrl') });
  await db.connect();
  await db.query(`create schema ${schema}`);
  for (const table of ['activities', 'customers']) {
    await db.query(`create table ${schema}.${table} (like public.${table} including defaults including indexes)`);
    await db.query(`create index on ${schema}.${table} (tenant_id)`);
  }
  await db.query(`set search_path = ${schema}, public`);
  const clubs = ['club_a', 'club_b', 'club_c'];
  for (const club of clubs) await Promise.all([history(club), members(club)]);
  await db.query('analyze activities, customers');
  await Promise.all([history('club_new'), members('club_new')]);
});
afterAll(async () => {
  await db.query(`drop schema ${schema} cascade`);
  await db.end();
});

const ROWS = 20_000;
const history = (tenant: string) => db.query(
  `insert into activities (id, tenant_id, customer_id, type, category, title, occurred_at, source_service, source_event_id)
   select gen_random_uuid(), $1, gen_random_uuid(), 'booking.created', 'BOOKING', 'Booked', now() - g * interval '1 minute', 'shop', 'o' || g
     from generate_series(1, $2) g`,
  [tenant, ROWS],
);
const members = (tenant: string) => db.query(
  `insert into customers (id, tenant_id, email, phone_number, churn_risk_score)
   select gen_random_uuid(), $1::text, 'm' || g || '@' || $1::text || '.test', '+2782' || lpad(g::text, 7, '0'), g % 100 from generate_series(1, $2) g`,
  [tenant, ROWS],
);

interface PlanNode { 'Relation Name'?: string; 'Index Cond'?: string; Plans?: PlanNode[] }
type Plan = PlanNode & { 'Actual Rows': number; 'Shared Hit Blocks': number; 'Shared Read Blocks': number };
const scansOf = (node: PlanNode, table: string): PlanNode[] =>
  [...(node['Relation Name'] === table ? [node] : []), ...(node.Plans ?? []).flatMap((child) => scansOf(child, table))];

async function explained(sql: string, params: unknown[]): Promise<Plan> {
  await db.query('begin');
  try {
    const { rows: [row] } = await db.query(`explain (analyze, buffers, format json) ${sql}`, params);
    return (row['QUERY PLAN'] as [{ Plan: Plan }])[0].Plan;
  } finally {
    await db.query('rollback');
  }
}

/** Every scan of `table` probes `key`, and the statement reads a handful of pages per key, not the tenant's rows. */
function expectProbes(plan: Plan, table: string, key: RegExp, keys: number) {
  const scans = scansOf(plan, table);
  expect(scans.length).toBeGreaterThan(0);
  for (const scan of scans) expect(scan['Index Cond'] ?? '', `${scan['Relation Name']} scanned without its key`).toMatch(key);
  expect(plan['Shared Hit Blocks'] + plan['Shared Read Blocks']).toBeLessThan(keys * 12);
}

const keys = Array.from({ length: 200 }, (_, i) => i * 97 + 1);

describe('lookups by key for a tenant the statistics have not seen', () => {
  it('an event batch finds the events stored before by their source key', async () => {
    const ids = keys.map((k) => `o${k}`);
    const plan = await explained(STORED_EVENTS(ids.length), [ids.map(() => 'shop'), ids, 'club_new']);
    expect(plan['Actual Rows']).toBe(ids.length);
    expectProbes(plan, 'activities', /\bsource_event_id\)?(::text)? = /, ids.length);
  });

  it('an event batch locks its customers by id', async () => {
    const { rows } = await db.query<{ id: string }>(`select id from customers where tenant_id = 'club_new' and email = any($1::text[])`, [keys.map((k) => `m${k}@club_new.test`)]);
    expect(rows).toHaveLength(keys.length);
    const plan = await explained(LOCK_CUSTOMERS(rows.length), ['club_new', `{${rows.map((r) => r.id).join(',')}}`]);
    expectProbes(plan, 'customers', /\bid = ANY/, rows.length);
  });

  it('an event batch finds its customers by email and phone', async () => {
    const emails = keys.map((k) => `m${k}@club_new.test`);
    const phones = keys.map((k) => `+2782${String(k).padStart(7, '0')}`);
    const plan = await explained(EXACT_PROFILES(keys.length), [emails, phones, keys.map(() => null), 'club_new', 'club_new', 'club_new']);
    expect(plan['Actual Rows']).toBe(keys.length);
    expectProbes(plan, 'customers', /\b(email|phone_number|auth_user_id)\)?(::text)? = /, keys.length * 3);
  });
});

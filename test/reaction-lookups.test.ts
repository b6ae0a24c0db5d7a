import type { EntityManager } from '@mikro-orm/postgresql';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { openOrm, type Orm } from '../db/orm.js';
import { enqueueTriggeredCampaigns } from '../domain/campaigns/triggers.js';
import { journeysAfterActivities, journeysAfterSegmentEntries } from '../domain/journeys/enrollment.js';
import { afterActivitiesAppended } from '../domain/reactions.js';
import { reevaluateSmartSegments } from '../domain/segments/membership.js';
import { newTenant, testConfig } from './support/api.js';
import { insertCustomer } from './support/journey-fixtures.js';

// What reacts to an appended activity (triggered campaigns, journeys) or a segment entry (journeys)
// reads that row, not its tenant's history, whatever the planner believes of the tenant. A tenant
// whose history grew after the table was last analysed is taken for a handful of rows: filtering
// its rows by id then looked like a cheap plan, and read every one of them each time.

let orm: Orm;
let db: pg.Client;

/**
 * Rows of `table` its indexes and sequential scans have returned to this backend and not yet
 * reported: this transaction's, and those of its earlier transactions still pending (PostgreSQL
 * reports them at most once a second). Read before and after what is measured.
 */
async function rowsRead(em: EntityManager, table: string): Promise<number> {
  const [read] = await em.execute<{ index: string; seq: string }[]>(
    `select (select coalesce(sum(pg_stat_get_xact_tuples_returned(indexrelid)), 0) from pg_index where indrelid = ?::regclass) as index,
            (select coalesce(sum(seq_tup_read), 0) from pg_stat_xact_user_tables where relid = ?::regclass) as seq`,
    [table, table],
  );
  return Number(read!.index) + Number(read!.seq);
}
beforeAll(async () => {
  orm = await openOrm(testConfig().DATABASE_URL!);
  db = new pg.Client({ connectionString: inject('databaseUrl') });
  await db.connect();
});
afterAll(async () => {
  await db?.end();
  await orm?.close();
});

describe('reactions to an appended activity', () => {
  it('read that activity by its key, not the tenant timeline statistics took for a few rows', async () => {
    const tenant = newTenant();
    const customer = await insertCustomer(db, tenant);
    const insertActivities = (n: number) => db.query<{ id: string }>(
      `insert into activities (tenant_id, customer_id, type, category, title, occurred_at)
       select $1, $2, 'booking.created', 'BOOKING', 'Booked', now() - make_interval(secs => g) from generate_series(1, $3) g returning id`,
      [tenant, customer, n],
    );
    await insertActivities(1);
    await db.query('analyze activities'); // statistics that know this tenant as one row...
    const { rows } = await insertActivities(3000); // ...and a timeline that grew since
    const appended = [rows[0]!.id];

    const activitiesRead = await orm.em.fork().transactional(async (em) => {
      const before = await rowsRead(em, 'activities');
      await enqueueTriggeredCampaigns(em, tenant, appended);
      await journeysAfterActivities(em, tenant, appended, { enrol: true });
      return (await rowsRead(em, 'activities')) - before;
    });
    // One probe of the primary key per statement that looks (three), never the 3,001 rows.
    expect(activitiesRead).toBeGreaterThan(0);
    expect(activitiesRead).toBeLessThanOrEqual(3);
  });

  it('are not looked for at all in a tenant with no journeys and no campaign an event triggers or converts', async () => {
    const tenant = newTenant();
    const customer = await insertCustomer(db, tenant);
    const { rows } = await db.query<{ id: string; occurred_at: Date }>(
      `insert into activities (tenant_id, customer_id, type, category, title, occurred_at)
       select $1, $2, 'booking.created', 'BOOKING', 'Booked', now() - make_interval(secs => g) from generate_series(1, 200) g returning id, occurred_at`,
      [tenant, customer],
    );
    const appended = rows.map((r) => ({ id: r.id, customerId: customer, type: 'booking.created', category: 'BOOKING', occurredAt: r.occurred_at }));
    const read = (at: string) => orm.em.fork().transactional(async (em) => {
      const before = await rowsRead(em, 'activities');
      await afterActivitiesAppended(em, tenant, appended, at);
      return (await rowsRead(em, 'activities')) - before;
    });
    expect(await read('event')).toBe(0);
    // Once the tenant has a journey (a draft, even), its enrolments are looked for again.
    await db.query(`insert into journeys (tenant_id, name, trigger_type) values ($1, 'Draft', 'EVENT')`, [tenant]);
    expect(await read('event')).toBeGreaterThan(0);
  });

  it('read a segment entry by its key, not the membership changes statistics took for a few rows', async () => {
    const tenant = newTenant();
    const customer = await insertCustomer(db, tenant);
    const { rows: [segment] } = await db.query<{ id: string }>(`insert into segments (tenant_id, name, type) values ($1, 'Busy', 'STATIC') returning id`, [tenant]);
    const insertChanges = (n: number) => db.query<{ id: string }>(
      `insert into segment_membership_changes (tenant_id, segment_id, customer_id, change, cause)
       select $1, $2, $3, case when g % 2 = 0 then 'ENTERED' else 'EXITED' end, 'test' from generate_series(1, $4) g returning id`,
      [tenant, segment!.id, customer, n],
    );
    await insertChanges(1);
    await db.query('analyze segment_membership_changes');
    const { rows } = await insertChanges(3000);
    const changesRead = await orm.em.fork().transactional(async (em) => {
      const before = await rowsRead(em, 'segment_membership_changes');
      await journeysAfterSegmentEntries(em, tenant, rows.slice(0, 50).map((r) => r.id)); // a refresh's 50 entries
      return (await rowsRead(em, 'segment_membership_changes')) - before;
    });
    // At most one probe of the primary key per change (none when no journey listens), never the 3,001 rows.
    expect(changesRead).toBeLessThanOrEqual(50);
  });

  it('evaluate SMART segments on each customer\'s own timeline, not the tenant\'s that statistics took for one row', async () => {
    const tenant = newTenant();
    const customers = (await db.query<{ id: string }>(
      `insert into customers (tenant_id, email) select $1, 'smart' || g || '@lookups.test' from generate_series(1, 20) g returning id`, [tenant],
    )).rows.map((r) => r.id);
    await db.query(`insert into segments (tenant_id, name, type, criteria) values ($1, 'Regulars', 'SMART', $2), ($1, 'Bookers', 'SMART', $3)`,
      [tenant, JSON.stringify({ event: { type: 'booking.created' }, count: { op: 'gte', value: 2 } }), JSON.stringify({ event: { type: 'booking.created' } })]);
    await db.query(
      `insert into activities (tenant_id, customer_id, type, category, title, occurred_at)
       select $1, c, 'booking.created', 'BOOKING', 'Booked', now() - make_interval(secs => g) from unnest($2::uuid[]) c, generate_series(1, 150) g`,
      [tenant, customers],
    );

    const activitiesRead = await orm.em.fork().transactional(async (em) => {
      // Statistics in which this tenant does not appear (every row another tenant's): its 3,000
      // activities are taken for one. Set in this transaction only, and rolled back with it.
      await em.execute(`select pg_restore_attribute_stats('schemaname', 'public', 'relname', 'activities', 'attname', 'tenant_id',
        'inherited', false, 'null_frac', 0::real, 'avg_width', 20, 'n_distinct', 1::real,
        'most_common_vals', '{someone-else}'::text, 'most_common_freqs', '{1}'::real[])`);
      const before = await rowsRead(em, 'activities');
      await reevaluateSmartSegments(em, tenant, customers, 'test'); // a batch's statement, for its 20 customers
      const read = (await rowsRead(em, 'activities')) - before;
      await em.rollback();
      return read;
    });
    // Each of the two probes reads the customer's own 150 bookings at most: newest first it stops at
    // one or two, but where the statistics take a customer's timeline for a few rows, a bitmap scan
    // of it is as cheap a plan (two CI runs of the whole suite: 6,000 rows). Never its tenant's
    // 3,000 per customer: 120,001 rows before the tenant was read through a scalar subquery.
    expect(activitiesRead).toBeGreaterThan(0);
    expect(activitiesRead).toBeLessThanOrEqual(2 * 150 * customers.length);
  });
});

describe('a single event\'s SMART statements', () => {
  // A platform of few tenants and many segments (one federation): statistics that take every tenant
  // for a large share of the segments made the kept plan look dearer than one made for a small
  // tenant, and PostgreSQL planned the statement again on every event (the evaluation: 0.6 ms, four
  // times what running it costs).
  async function plansOverTenEvents(tenant: string, customer: string, statement: string) {
    // Connections of their own: PostgreSQL weighs a statement's plans by all it made on a connection.
    const own = await openOrm(testConfig().DATABASE_URL!);
    return own.em.fork().transactional(async (em) => {
      // Another tenant's 5,000 segments, analysed in this transaction (both rolled back with it).
      await em.execute(`insert into segments (tenant_id, name, type) select ?, 'Segment ' || g, 'SMART' from generate_series(1, 5000) g`, [newTenant()]);
      await em.execute('analyze segments');
      const plans = async () => {
        const [row] = await em.execute<{ custom: string; generic: string }[]>(
          `select coalesce(sum(custom_plans), 0) as custom, coalesce(sum(generic_plans), 0) as generic from pg_prepared_statements where statement like ?`,
          [`%${statement}%`],
        );
        return { custom: Number(row!.custom), generic: Number(row!.generic) };
      };
      const evaluate = async (times: number) => {
        for (let i = 0; i < times; i++) {
          await em.execute('savepoint evaluation');
          await reevaluateSmartSegments(em, tenant, [customer], 'test');
          await em.execute('rollback to savepoint evaluation');
        }
      };
      await evaluate(6); // PostgreSQL compares plans after five made for their values
      const before = await plans();
      await evaluate(10);
      const after = await plans();
      await em.rollback();
      return { custom: after.custom - before.custom, generic: after.generic - before.generic };
    }).finally(() => own.close());
  }

  it('keep one plan per connection for a tenant with SMART segments', async () => {
    const tenant = newTenant();
    const customer = await insertCustomer(db, tenant, { emailOptIn: true });
    await db.query(`insert into segments (tenant_id, name, type, criteria) select $1, 'Smart ' || g, 'SMART', $2 from generate_series(1, 3) g`,
      [tenant, JSON.stringify({ field: 'emailOptIn', op: 'eq', value: true })]);
    expect(await plansOverTenEvents(tenant, customer, 'cur.current')).toEqual({ custom: 0, generic: 10 });
  });

  it('keep one plan per connection for a tenant without', async () => {
    const tenant = newTenant();
    const customer = await insertCustomer(db, tenant);
    expect(await plansOverTenEvents(tenant, customer, 'md5(criteria::text) as version from segments')).toEqual({ custom: 0, generic: 10 });
  });
});

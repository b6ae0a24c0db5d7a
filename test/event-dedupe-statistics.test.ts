import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { STORED_EVENTS } from '../domain/events/ingest.js';

// Every event looks up whether it was stored before, by its (tenant, source, event id) key. A club
// that starts sending its history is a tenant the statistics have not seen yet: the lookup must
// still probe the key, not walk the timeline the tenant is filling, whatever PostgreSQL last sampled.
// The lookup runs against a copy of the activities table in a schema of its own, filled as a
// platform's is (upstream events, each with its source key), so its statistics are this test's.
let db: pg.Client;
const schema = `dedupe_${process.pid}`;
beforeAll(async () => {
  db = new pg.Client({ connectionString: inject('databaseUrl') });
  await db.connect();
  await db.query(`create schema ${schema}`);
  await db.query(`create table ${schema}.activities (like public.activities including defaults including indexes)`);
  // On a platform's own table the index on (tenant_id, category, occurred_at) is the smaller one,
  // so it won a tie with the unique key; here the smallest tenant-led index plays its part.
  await db.query(`create index on ${schema}.activities (tenant_id)`);
  await db.query(`set search_path = ${schema}, public`);
});
afterAll(async () => {
  await db.query(`drop schema ${schema} cascade`);
  await db.end();
});

interface PlanNode { 'Relation Name'?: string; 'Index Cond'?: string; Plans?: PlanNode[] }
const scansOf = (node: PlanNode): PlanNode[] => [...(node['Relation Name'] === 'activities' ? [node] : []), ...(node.Plans ?? []).flatMap(scansOf)];

const history = (tenant: string, events: number) => db.query(
  `insert into activities (id, tenant_id, customer_id, type, category, title, occurred_at, source_service, source_event_id)
   select gen_random_uuid(), $1, gen_random_uuid(), 'booking.created', 'BOOKING', 'Booked', now() - g * interval '1 minute', 'shop', 'o' || g
     from generate_series(1, $2) g`,
  [tenant, events],
);

describe('the stored-event lookup of a batch', () => {
  it('reads a few pages per event for a tenant whose activities the statistics have not seen', async () => {
    for (const club of ['club_a', 'club_b', 'club_c']) await history(club, 20_000);
    // Statistics from before the new club had any activity, then its history arrives.
    await db.query('analyze activities');
    await history('club_new', 20_000);
    const keys = Array.from({ length: 200 }, (_, i) => `o${i * 97 + 1}`);
    const { rows: [{ 'QUERY PLAN': [explained] }] } = await db.query(
      `explain (analyze, buffers, format json) ${STORED_EVENTS(keys.length)}`,
      [keys.map(() => 'shop'), keys, 'club_new'],
    );
    const { Plan: plan } = explained as { Plan: PlanNode & { 'Actual Rows': number; 'Shared Hit Blocks': number; 'Shared Read Blocks': number } };
    expect(plan['Actual Rows']).toBe(keys.length);
    for (const scan of scansOf(plan)) expect(scan['Index Cond'], JSON.stringify(scan)).toContain('source_event_id');
    // A key probe reads an index path and one heap page: a handful of pages per event, where a walk
    // of the tenant's timeline reads hundreds.
    expect(plan['Shared Hit Blocks'] + plan['Shared Read Blocks']).toBeLessThan(keys.length * 10);
  });
});

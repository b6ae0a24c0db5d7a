import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { newTenant } from './support/api.js';

// Memberships and membership changes reference their segment and customer (with the tenant)
// through statement-level checks and cascades (db/migrations/..._membership_references.ts), not
// per-row foreign keys. These are the guarantees a foreign key gave, checked against PostgreSQL.
let db: pg.Client;
let other: pg.Client;
beforeAll(async () => {
  db = new pg.Client({ connectionString: inject('databaseUrl') });
  other = new pg.Client({ connectionString: inject('databaseUrl') });
  await Promise.all([db.connect(), other.connect()]);
});
afterAll(async () => {
  await Promise.all([db.end(), other.end()]);
});

async function tenantWith(customers: number) {
  const tenant = newTenant();
  const segmentId = randomUUID();
  await db.query(`insert into segments (id, tenant_id, name, type) values ($1, $2, 'refs', 'STATIC')`, [segmentId, tenant]);
  const { rows } = await db.query<{ id: string }>(
    `insert into customers (tenant_id, email) select $1, 'r' || i || '@refs.test' from generate_series(1, $2) i returning id`, [tenant, customers],
  );
  return { tenant, segmentId, customerIds: rows.map((r) => r.id) };
}

type Fixture = Awaited<ReturnType<typeof tenantWith>>;

const addMember = (client: pg.Client, tenant: string, segmentId: string, customerIds: string[]) =>
  client.query(`insert into segment_members (segment_id, customer_id, tenant_id) select $1, unnest($2::uuid[]), $3`, [segmentId, customerIds, tenant]);
const addChange = (client: pg.Client, tenant: string, segmentId: string, customerId: string) =>
  client.query(`insert into segment_membership_changes (tenant_id, segment_id, customer_id, change, cause) values ($1, $2, $3, 'ENTERED', 'test')`, [tenant, segmentId, customerId]);
const addSynced = (client: pg.Client, tenant: string, segmentId: string, customerIds: string[]) =>
  client.query(`insert into segment_synced_members (segment_id, customer_id, tenant_id, fingerprint) select $1, unnest($2::uuid[]), $3, 'f'`, [segmentId, customerIds, tenant]);
const addDelta = (client: pg.Client, segmentId: string) =>
  client.query(`insert into segment_member_count_deltas (segment_id, writer, delta) values ($1, pg_backend_pid(), 1)
                on conflict (segment_id, writer) do update set delta = segment_member_count_deltas.delta + 1`, [segmentId]);
const count = async (sql: string, params: unknown[]) => (await db.query<{ n: number }>(`select count(*)::int as n from ${sql}`, params)).rows[0]!.n;
const refusal = (promise: Promise<unknown>) => promise.then(() => ({ code: 'none', constraint: 'none' }), (err: { code: string; constraint: string }) => err);

describe('membership references', () => {
  it('refuses a membership or change whose segment or customer is missing or another tenant\'s, and writes none of its statement', async () => {
    const a = await tenantWith(3);
    const b = await tenantWith(1);
    expect(await refusal(addMember(db, a.tenant, randomUUID(), a.customerIds))).toMatchObject({ code: '23503', constraint: 'segment_members_segment_id_foreign' });
    expect(await refusal(addMember(db, a.tenant, b.segmentId, a.customerIds))).toMatchObject({ code: '23503', constraint: 'segment_members_segment_id_foreign' });
    // One row of three names another tenant's customer: the whole statement is refused.
    expect(await refusal(addMember(db, a.tenant, a.segmentId, [...a.customerIds.slice(0, 2), b.customerIds[0]!])))
      .toMatchObject({ code: '23503', constraint: 'segment_members_customer_id_foreign' });
    expect(await count('segment_members where segment_id = $1', [a.segmentId])).toBe(0);
    expect(await refusal(addChange(db, a.tenant, a.segmentId, randomUUID()))).toMatchObject({ code: '23503', constraint: 'segment_membership_changes_customer_id_foreign' });
    expect(await refusal(addChange(db, a.tenant, b.segmentId, a.customerIds[0]!))).toMatchObject({ code: '23503', constraint: 'segment_membership_changes_segment_id_foreign' });

    // What Messaging holds references only its segment (a customer deleted since is still to remove).
    expect(await refusal(addSynced(db, a.tenant, b.segmentId, a.customerIds))).toMatchObject({ code: '23503', constraint: 'segment_synced_members_segment_id_foreign' });
    await addSynced(db, a.tenant, a.segmentId, [randomUUID()]);
    expect(await refusal(addDelta(db, randomUUID()))).toMatchObject({ code: '23503', constraint: 'segment_member_count_deltas_segment_id_foreign' });
    // A count's row added to in place needs no check; moved to a segment that does not exist, it is refused.
    await addDelta(db, a.segmentId);
    await addDelta(db, a.segmentId);
    expect(await count('segment_member_count_deltas where segment_id = $1 and delta = 2', [a.segmentId])).toBe(1);
    expect(await refusal(db.query(`update segment_member_count_deltas set segment_id = $1 where segment_id = $2`, [randomUUID(), a.segmentId])))
      .toMatchObject({ code: '23503', constraint: 'segment_member_count_deltas_segment_id_foreign' });

    await addMember(db, a.tenant, a.segmentId, a.customerIds);
    await addChange(db, a.tenant, a.segmentId, a.customerIds[0]!);
    expect(await count('segment_members where segment_id = $1', [a.segmentId])).toBe(3);
    expect(await refusal(db.query(`update segment_members set segment_id = $1 where segment_id = $2`, [b.segmentId, a.segmentId])))
      .toMatchObject({ code: '23503', constraint: 'segment_members_segment_id_foreign' });
  });

  it('deleting a segment or a customer deletes its memberships and changes, and nothing else', async () => {
    const a = await tenantWith(3);
    const second = randomUUID();
    await db.query(`insert into segments (id, tenant_id, name, type) values ($1, $2, 'second', 'STATIC')`, [second, a.tenant]);
    for (const segmentId of [a.segmentId, second]) {
      await addMember(db, a.tenant, segmentId, a.customerIds);
      await addSynced(db, a.tenant, segmentId, a.customerIds);
      for (const customerId of a.customerIds) await addChange(db, a.tenant, segmentId, customerId);
      await addDelta(db, segmentId);
    }
    await db.query('delete from segments where id = $1', [a.segmentId]);
    expect(await count('segment_members where segment_id = $1', [a.segmentId])).toBe(0);
    expect(await count('segment_membership_changes where segment_id = $1', [a.segmentId])).toBe(0);
    expect(await count('segment_synced_members where segment_id = $1', [a.segmentId])).toBe(0);
    expect(await count('segment_member_count_deltas where segment_id = $1', [a.segmentId])).toBe(0);
    expect(await count('segment_members where segment_id = $1', [second])).toBe(3);
    expect(await count('segment_member_count_deltas where segment_id = $1', [second])).toBe(1);
    expect(await count('segment_synced_members where segment_id = $1', [second])).toBe(3);

    await db.query('delete from customers where id = $1', [a.customerIds[0]]);
    expect(await count('segment_members where customer_id = $1', [a.customerIds[0]])).toBe(0);
    expect(await count('segment_membership_changes where customer_id = $1', [a.customerIds[0]])).toBe(0);
    expect(await count('segment_members where segment_id = $1', [second])).toBe(2);
    expect(await count('segment_membership_changes where segment_id = $1', [second])).toBe(2);
  });

  it('a deletion racing a membership write leaves no orphan, whichever goes first', async () => {
    // The write goes first: the deletion waits for it to commit, then removes its rows.
    const a = await tenantWith(2);
    await db.query('begin');
    await addMember(db, a.tenant, a.segmentId, a.customerIds);
    await addChange(db, a.tenant, a.segmentId, a.customerIds[0]!);
    await addSynced(db, a.tenant, a.segmentId, a.customerIds);
    await addDelta(db, a.segmentId);
    let deleted = false;
    const deletion = other.query('delete from segments where id = $1', [a.segmentId]).then(() => (deleted = true));
    await new Promise((r) => setTimeout(r, 300));
    expect(deleted).toBe(false);
    await db.query('commit');
    await deletion;
    expect(await count('segment_members where segment_id = $1', [a.segmentId])).toBe(0);
    expect(await count('segment_synced_members where segment_id = $1', [a.segmentId])).toBe(0);
    expect(await count('segment_membership_changes where segment_id = $1', [a.segmentId])).toBe(0);
    expect(await count('segment_member_count_deltas where segment_id = $1', [a.segmentId])).toBe(0);

    // A segment's deletion goes first: each kind of write waits for it, then is refused.
    for (const [write, constraint] of [
      [(t: Fixture) => addMember(db, t.tenant, t.segmentId, t.customerIds), 'segment_members_segment_id_foreign'],
      [(t: Fixture) => addChange(db, t.tenant, t.segmentId, t.customerIds[0]!), 'segment_membership_changes_segment_id_foreign'],
      [(t: Fixture) => addDelta(db, t.segmentId), 'segment_member_count_deltas_segment_id_foreign'],
    ] as const) {
      const s = await tenantWith(1);
      await other.query('begin');
      await other.query('delete from segments where id = $1', [s.segmentId]);
      let refused: { code: string; constraint: string } | undefined;
      const pending = refusal(write(s)).then((r) => (refused = r));
      await new Promise((r) => setTimeout(r, 300));
      expect(refused, constraint).toBeUndefined();
      await other.query('commit');
      expect(await pending).toMatchObject({ code: '23503', constraint });
    }

    // A customer's deletion goes first: the write waits for it, then is refused.
    const b = await tenantWith(2);
    await other.query('begin');
    await other.query('delete from customers where id = $1', [b.customerIds[1]]);
    let refused: { code: string; constraint: string } | undefined;
    const write = refusal(addMember(db, b.tenant, b.segmentId, b.customerIds)).then((r) => (refused = r));
    await new Promise((r) => setTimeout(r, 300));
    expect(refused).toBeUndefined();
    await other.query('commit');
    expect(await write).toMatchObject({ code: '23503', constraint: 'segment_members_customer_id_foreign' });
    expect(await count('segment_members where segment_id = $1', [b.segmentId])).toBe(0);

    // The write goes first, then a customer's deletion: it waits for the write, then removes its rows.
    const c = await tenantWith(2);
    await db.query('begin');
    await addMember(db, c.tenant, c.segmentId, c.customerIds);
    let gone = false;
    const purge = other.query('delete from customers where id = $1', [c.customerIds[0]]).then(() => (gone = true));
    await new Promise((r) => setTimeout(r, 300));
    expect(gone).toBe(false);
    await db.query('commit');
    await purge;
    expect(await count('segment_members where customer_id = $1', [c.customerIds[0]])).toBe(0);
    expect(await count('segment_members where segment_id = $1', [c.segmentId])).toBe(1);
  });

  it('checks a statement\'s segments by key, not every tenant\'s', async () => {
    // The platform's other tenants and their segments, known to the statistics.
    await db.query(`insert into segments (tenant_id, name, type) select 'refs-other-' || g, 'other', 'STATIC' from generate_series(1, 500) g`);
    await db.query('analyze segments');
    const a = await tenantWith(3);
    const fresh = new pg.Client({ connectionString: inject('databaseUrl') }); // no plan cached before the statistics
    await fresh.connect();
    await fresh.query('begin');
    try {
      await addMember(fresh, a.tenant, a.segmentId, a.customerIds);
      await addChange(fresh, a.tenant, a.segmentId, a.customerIds[0]!);
      await addDelta(fresh, a.segmentId);
      await addSynced(fresh, a.tenant, a.segmentId, a.customerIds);
      // This transaction's own reads, before they are flushed to the cumulative statistics.
      const { rows: [read] } = await fresh.query<{ segments: string }>(
        `select (select coalesce(sum(pg_stat_get_xact_tuples_returned(indexrelid)), 0) from pg_index where indrelid = 'segments'::regclass)
                  + (select coalesce(sum(seq_tup_read), 0) from pg_stat_xact_user_tables where relname = 'segments') as segments`,
      );
      // One probe of the segment per statement (four), never the 500 others. (Customers are checked
      // by an anti join that PostgreSQL sizes: a first population names the tenant's every customer.)
      expect(Number(read!.segments)).toBeGreaterThan(0);
      expect(Number(read!.segments)).toBeLessThanOrEqual(4);
    } finally {
      await fresh.end();
    }
  });

  it('refuses a change of a referenced key', async () => {
    const a = await tenantWith(1);
    expect(await refusal(db.query('update segments set id = $1 where id = $2', [randomUUID(), a.segmentId]))).toMatchObject({ code: '23503' });
    expect(await refusal(db.query('update customers set tenant_id = $1 where id = $2', [newTenant(), a.customerIds[0]]))).toMatchObject({ code: '23503' });
    expect(await refusal(db.query(`update customers set first_name = 'Kept' where id = $1`, [a.customerIds[0]]))).toMatchObject({ code: 'none' });
  });
});

import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, inject } from 'vitest';
import { migrate, openOrm, type Orm } from '../db/orm.js';

// A database of its own, so up and down from empty do not disturb the other files.
const name = `crm_migrations_${randomUUID().slice(0, 8)}`;
const adminUrl = inject('databaseUrl');
const url = adminUrl.replace(/\/[^/]+$/, `/${name}`);
let orm: Orm;

async function admin(sql: string) {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

async function tables(): Promise<string[]> {
  const rows = await orm.em.getConnection().execute<{ table_name: string }[]>(
    `select table_name from information_schema.tables where table_schema = 'public' and table_name <> 'mikro_orm_migrations' order by 1`,
  );
  return rows.map((r) => r.table_name);
}

beforeAll(async () => {
  await admin(`create database "${name}"`);
  orm = await openOrm(url);
});
afterAll(async () => {
  await orm.close();
  await admin(`drop database "${name}" with (force)`);
});

describe('migrations', () => {
  it('build the whole schema up from an empty database, and down again', async () => {
    expect(await tables()).toEqual([]);
    const applied = await migrate(orm);
    expect(applied.length).toBeGreaterThan(0);
    expect(await tables()).toEqual(expect.arrayContaining([
      'activities', 'campaign_deliveries', 'campaign_interactions', 'campaigns', 'clubs', 'customers', 'event_promotions',
      'journey_enrollment_steps', 'journey_enrollments', 'journey_steps', 'journeys', 'message_templates', 'notes',
      'rate_limits', 'segment_members', 'segment_membership_changes', 'segments', 'social_connections', 'social_posts',
    ]));
    expect(await migrate(orm)).toEqual([]); // idempotent

    await orm.migrator.down({ to: 0 });
    expect(await tables()).toEqual([]);
    expect((await migrate(orm)).length).toBe(applied.length);
  });

  it('match the entities: no pending schema difference', async () => {
    // The tenant-carrying foreign keys are the migrations' own (db/entities/common.ts): the ORM,
    // which declares none for those relations, would drop them. Exactly those are set aside, and
    // they must be exactly the relations that opt out of the ORM's constraint.
    const tenantKeys = await orm.em.getConnection().execute<{ table: string; name: string; column: string }[]>(
      `select c.conrelid::regclass::text as table, c.conname as name, a.attname as column
         from pg_constraint c join pg_attribute a on a.attrelid = c.conrelid and a.attnum = c.conkey[2]
        where c.contype = 'f' and c.connamespace = 'public'::regnamespace and array_length(c.conkey, 1) = 2
          and c.conkey[1] = (select attnum from pg_attribute where attrelid = c.conrelid and attname = 'tenant_id')`,
    );
    const optedOut = [...orm.getMetadata()]
      .flatMap((meta) => meta.props.filter((prop) => prop.kind === 'm:1' && prop.createForeignKeyConstraint === false).map((prop) => `${meta.tableName}.${prop.fieldNames[0]}`));
    // The references of the high-volume membership tables are checked once per statement by
    // triggers instead (Migration20261126074500_synced_members_cascade, ..._membership_references,
    // ..._segment_reference_locks; test/membership-references.test.ts), so they have no foreign key either.
    const statementChecked = [
      'segment_members.customer_id', 'segment_members.segment_id', 'segment_membership_changes.customer_id',
      'segment_membership_changes.segment_id', 'segment_synced_members.segment_id', 'segment_member_count_deltas.segment_id',
    ];
    expect([...tenantKeys.map((k) => `${k.table}.${k.column}`), ...statementChecked].sort()).toEqual(optedOut.sort());

    const ownDrops = new Set(tenantKeys.map((k) => `alter table "${k.table}" drop constraint "${k.name}";`));
    // So are the statement-level triggers with transition tables (the analytics rollups, the
    // membership references), the membership tables' TRUNCATE triggers and the triggers on updates
    // of some columns (the key-change guards, a count's segment changed): the ORM's
    // trigger definitions have no REFERENCING, TRUNCATE or UPDATE OF, so it would drop them (and a
    // function of its own naming that does not exist).
    const rollupTriggers = await orm.em.getConnection().execute<{ table: string; name: string }[]>(
      `select tgrelid::regclass::text as table, tgname as name from pg_trigger
        where not tgisinternal and (tgoldtable is not null or tgnewtable is not null or tgname like '%membership_truncate' or cardinality(tgattr::int2[]) > 0)`,
    );
    expect(rollupTriggers.length).toBeGreaterThan(0);
    for (const t of rollupTriggers) {
      ownDrops.add(`drop trigger if exists "${t.name}" on "${t.table}";`);
      ownDrops.add(`drop function if exists "${t.table}_${t.name}_fn"();`);
    }
    const diff = await orm.schema.getUpdateSchemaSQL({ wrap: false });
    expect(diff.split('\n').map((l) => l.trim()).filter((l) => l && !ownDrops.has(l))).toEqual([]);
  });

  it('store an upstream event once per (tenant, sourceService, sourceEventId)', async () => {
    const conn = orm.em.getConnection();
    const insert = async (tenant: string) => {
      const [customer] = await conn.execute<{ id: string }[]>(`insert into customers (tenant_id) values (?) returning id`, [tenant]);
      return conn.execute(
        `insert into activities (tenant_id, customer_id, type, category, title, occurred_at, source_service, source_event_id)
         values (?, ?, 'booking.created', 'BOOKING', 'Booked', now(), 'bookings', 'evt-1')`,
        [tenant, customer!.id],
      );
    };
    await insert('t1');
    await expect(insert('t1')).rejects.toThrow(/activities_source_event_uniq/);
    await insert('t2'); // another tenant's event with the same id is its own
  });

  it('keep identifiers unique among live customers of a tenant only', async () => {
    const conn = orm.em.getConnection();
    const add = (tenant: string, status = 'ACTIVE') =>
      conn.execute(`insert into customers (tenant_id, email, status) values (?, 'ann@example.com', ?)`, [tenant, status]);
    await add('t3');
    await expect(add('t3')).rejects.toThrow(/customers_tenant_email_live_uniq/);
    await add('t3', 'MERGED');
    await add('t4');
  });
});

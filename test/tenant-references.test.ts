import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, inject } from 'vitest';
import { newTenant } from './support/api.js';

// Tenant isolation held by the database itself: every foreign key between tenant-owned tables
// carries the tenant, so no row can point at another tenant's. The keys are read from the catalogue
// (pg_constraint), and rows are made from the columns' own types and checks, so a table or a
// reference added later is covered without editing this file.

interface ForeignKey { name: string; table: string; columns: string[]; referenced: string; referencedColumns: string[]; onDelete: string }
interface Column { name: string; type: string; maxLength: number | null; nullable: boolean; hasDefault: boolean }

// Tables that reference tenant-owned rows but hold no tenant of their own: nothing in them can
// name a tenant, so they cannot cross one.
const WITHOUT_TENANT = new Set(['segment_member_count_deltas']);

let db: pg.Client;
let foreignKeys: ForeignKey[];
const columns = new Map<string, Column[]>();
const allowed = new Map<string, string>(); // "table.column" → a value its check constraint accepts

beforeAll(async () => {
  db = new pg.Client({ connectionString: inject('databaseUrl') });
  await db.connect();
  foreignKeys = (await db.query<ForeignKey>(
    `select c.conname as name, c.conrelid::regclass::text as table, c.confrelid::regclass::text as referenced,
            array(select a.attname from unnest(c.conkey) with ordinality k(n, o) join pg_attribute a on a.attrelid = c.conrelid and a.attnum = k.n order by k.o)::text[] as columns,
            array(select a.attname from unnest(c.confkey) with ordinality k(n, o) join pg_attribute a on a.attrelid = c.confrelid and a.attnum = k.n order by k.o)::text[] as "referencedColumns",
            c.confdeltype as "onDelete"
       from pg_constraint c join pg_namespace n on n.oid = c.connamespace
      where c.contype = 'f' and n.nspname = 'public' order by 1`,
  )).rows;
  const cols = await db.query<Column & { table: string }>(
    `select table_name as table, column_name as name, data_type as type, character_maximum_length as "maxLength",
            is_nullable = 'YES' as nullable, column_default is not null as "hasDefault"
       from information_schema.columns where table_schema = 'public' order by table_name, ordinal_position`,
  );
  for (const c of cols.rows) columns.set(c.table, [...(columns.get(c.table) ?? []), c]);
  // `col in ('A', 'B')` is stored as `(col = ANY (ARRAY['A'::text, ...]))`.
  const checks = await db.query<{ table: string; def: string }>(
    `select conrelid::regclass::text as table, pg_get_constraintdef(oid) as def from pg_constraint where contype = 'c' and connamespace = 'public'::regnamespace`,
  );
  for (const { table, def } of checks.rows) {
    const m = /\(\(?"?(\w+)"?\)?(?:::text)?\s*=\s*(?:ANY\s*\(ARRAY\[)?'([^']*)'/.exec(def);
    if (m) allowed.set(`${table}.${m[1]}`, m[2]!);
  }
});
afterAll(() => db.end());

const isTenantOwned = (table: string) => columns.get(table)?.some((c) => c.name === 'tenant_id') ?? false;

/** Inserts a valid row into `table` for `tenant`, making the rows it must reference (same tenant). */
async function insertRow(table: string, tenant: string, set: Record<string, unknown> = {}): Promise<Record<string, any>> {
  const values: Record<string, unknown> = { ...set };
  for (const col of columns.get(table)!) {
    if (col.name in values || col.nullable || col.hasDefault) continue;
    if (col.name === 'tenant_id') {
      values.tenant_id = tenant;
      continue;
    }
    const fk = foreignKeys.find((k) => k.table === table && k.columns.includes(col.name));
    if (fk) {
      const parent = await insertRow(fk.referenced, tenant);
      fk.columns.forEach((c, i) => { if (!(c in values)) values[c] = parent[fk.referencedColumns[i]!]; });
      continue;
    }
    values[col.name] = allowed.get(`${table}.${col.name}`) ?? sample(col);
  }
  const names = Object.keys(values);
  const sql = `insert into "${table}" (${names.map((n) => `"${n}"`).join(', ')}) values (${names.map((_, i) => `$${i + 1}`).join(', ')}) returning *`;
  return (await db.query(sql, Object.values(values))).rows[0];
}

function sample(col: Column): unknown {
  switch (col.type) {
    case 'uuid': return randomUUID();
    case 'integer': case 'bigint': case 'double precision': return 1;
    case 'boolean': return false;
    case 'timestamp with time zone': return new Date();
    case 'jsonb': return {};
    case 'ARRAY': return [];
    default: return `x${randomUUID().replaceAll('-', '')}`.slice(0, col.maxLength ?? 40);
  }
}

/** The reference column of a tenant-carrying key: the one that is not tenant_id. */
const refColumn = (fk: ForeignKey) => fk.columns.find((c) => c !== 'tenant_id')!;

describe('references between tenant-owned rows', () => {
  it('all carry the tenant: (tenant_id, <ref>) → (tenant_id, id)', () => {
    const between = foreignKeys.filter((k) => isTenantOwned(k.referenced));
    expect(between.length).toBeGreaterThanOrEqual(21);
    const untenanted = between.filter((k) => !isTenantOwned(k.table) && !WITHOUT_TENANT.has(k.table)).map((k) => k.name);
    expect(untenanted, 'tables referencing tenant-owned rows carry a tenant_id').toEqual([]);
    const single = between
      .filter((k) => isTenantOwned(k.table))
      .filter((k) => k.columns.length !== 2 || k.columns[0] !== 'tenant_id' || k.referencedColumns.join() !== 'tenant_id,id')
      .map((k) => `${k.name}: (${k.columns.join(', ')}) → ${k.referenced} (${k.referencedColumns.join(', ')})`);
    expect(single).toEqual([]);
  });

  it('refuse a row pointing at another tenant\'s row, for every such key', async () => {
    const keys = foreignKeys.filter((k) => isTenantOwned(k.table) && isTenantOwned(k.referenced));
    const accepted: string[] = [];
    for (const fk of keys) {
      const theirs = await insertRow(fk.referenced, newTenant());
      try {
        await insertRow(fk.table, newTenant(), { [refColumn(fk)]: theirs.id });
        accepted.push(fk.name);
      } catch (err) {
        expect(err, fk.name).toMatchObject({ code: '23503', constraint: fk.name });
      }
    }
    expect(accepted, 'cross-tenant rows the database accepted').toEqual([]);
  });

  it('accept a row pointing at its own tenant\'s row, and keep each key\'s ON DELETE rule', async () => {
    const keys = foreignKeys.filter((k) => isTenantOwned(k.table) && isTenantOwned(k.referenced));
    for (const fk of keys) {
      const tenant = newTenant();
      const parent = await insertRow(fk.referenced, tenant);
      const child = await insertRow(fk.table, tenant, { [refColumn(fk)]: parent.id });
      expect(child[refColumn(fk)], fk.name).toBe(parent.id);

      await db.query(`delete from "${fk.referenced}" where tenant_id = $1 and id = $2`, [tenant, parent.id]);
      const after = await db.query(`select * from "${fk.table}" where tenant_id = $1`, [tenant]);
      const mine = after.rows.filter((r) => fk.columns.every((c) => c === 'tenant_id' || r[c] === null || r[c] === parent.id));
      if (fk.onDelete === 'c') expect(after.rows.filter((r) => r[refColumn(fk)] === parent.id), `${fk.name} cascades`).toEqual([]);
      if (fk.onDelete === 'n') {
        // set null clears the reference only; the row keeps its tenant.
        expect(mine.map((r) => [r.tenant_id, r[refColumn(fk)]]), `${fk.name} sets null`).toContainEqual([tenant, null]);
      }
    }
  });

  it('allow a null reference where the column is nullable (MATCH SIMPLE)', async () => {
    const nullable = foreignKeys.filter((k) => isTenantOwned(k.table) && isTenantOwned(k.referenced)
      && columns.get(k.table)!.find((c) => c.name === refColumn(k))!.nullable);
    expect(nullable.length).toBeGreaterThan(0);
    for (const fk of nullable) {
      const row = await insertRow(fk.table, newTenant(), { [refColumn(fk)]: null });
      expect(row[refColumn(fk)], fk.name).toBeNull();
    }
  });
});

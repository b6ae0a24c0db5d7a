import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, inject } from 'vitest';
import { newTenant } from './support/api.js';
import { catalogueRows, type ForeignKey, type Rows } from './support/rows.js';

// Tenant isolation held by the database itself: every foreign key between tenant-owned tables
// carries the tenant, so no row can point at another tenant's. The keys are read from the catalogue
// (pg_constraint), and rows are made from the columns' own types and checks, so a table or a
// reference added later is covered without editing this file.

// Tables that reference tenant-owned rows but hold no tenant of their own: nothing in them can
// name a tenant, so they cannot cross one.
const WITHOUT_TENANT = new Set(['segment_member_count_deltas']);

let db: pg.Client;
let rows: Rows;
let foreignKeys: ForeignKey[];
const isTenantOwned = (table: string) => rows.isTenantOwned(table);
const insertRow = (table: string, tenant: string, set?: Record<string, unknown>) => rows.insert(table, tenant, set);

beforeAll(async () => {
  db = new pg.Client({ connectionString: inject('databaseUrl') });
  await db.connect();
  rows = await catalogueRows(db);
  foreignKeys = rows.foreignKeys;
});
afterAll(() => db.end());

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
      && rows.columns.get(k.table)!.find((c) => c.name === refColumn(k))!.nullable);
    expect(nullable.length).toBeGreaterThan(0);
    for (const fk of nullable) {
      const row = await insertRow(fk.table, newTenant(), { [refColumn(fk)]: null });
      expect(row[refColumn(fk)], fk.name).toBeNull();
    }
  });
});

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
    // 21 keys, less the five references of the membership tables that triggers check per
    // statement (test/membership-references.test.ts holds them to the same guarantees).
    expect(between.length).toBeGreaterThanOrEqual(16);
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

  it('accept a row pointing at its own tenant\'s row; deleting that row cascades, or clears a nullable reference', async () => {
    const keys = foreignKeys.filter((k) => isTenantOwned(k.table) && isTenantOwned(k.referenced));
    for (const fk of keys) {
      const ref = refColumn(fk);
      const nullable = rows.columns.get(fk.table)!.find((c) => c.name === ref)!.nullable;
      expect(fk.onDelete, `${fk.name}: ON DELETE ${nullable ? 'SET NULL' : 'CASCADE'}`).toBe(nullable ? 'n' : 'c');
      const tenant = newTenant();
      const parent = await insertRow(fk.referenced, tenant);
      const child = await insertRow(fk.table, tenant, { [ref]: parent.id });
      expect(child[ref], fk.name).toBe(parent.id);

      await db.query(`delete from "${fk.referenced}" where tenant_id = $1 and id = $2`, [tenant, parent.id]);
      // Rows without an id of their own (memberships) are found by the reference itself.
      const key = 'id' in child ? ['id', child.id] : [ref, parent.id];
      const after = await db.query(`select * from "${fk.table}" where tenant_id = $1 and "${key[0]}" = $2`, [tenant, key[1]]);
      if (nullable) {
        // SET NULL (column): the reference goes, the row and its tenant stay.
        expect(after.rows.map((r) => [r.tenant_id, r[ref]]), fk.name).toEqual([[tenant, null]]);
      } else {
        expect(after.rows, `${fk.name} cascades`).toEqual([]);
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

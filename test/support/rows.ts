import { randomUUID } from 'node:crypto';
import type pg from 'pg';

// Valid rows of any table, made from the catalogue: column types, check constraints and foreign
// keys. Tests that need "a row of tenant X in table T" get one without a hand-written fixture, so
// tables added later are covered too.

export interface ForeignKey { name: string; table: string; columns: string[]; referenced: string; referencedColumns: string[]; onDelete: string }
export interface Column { name: string; type: string; maxLength: number | null; nullable: boolean; hasDefault: boolean }

export interface Rows {
  foreignKeys: ForeignKey[];
  columns: Map<string, Column[]>;
  isTenantOwned(table: string): boolean;
  /** Inserts a valid row into `table` for `tenant`, making the rows it must reference (same tenant). */
  insert(table: string, tenant: string, set?: Record<string, unknown>): Promise<Record<string, any>>;
}

export async function catalogueRows(db: pg.Client): Promise<Rows> {
  const foreignKeys = (await db.query<ForeignKey>(
    `select c.conname as name, c.conrelid::regclass::text as table, c.confrelid::regclass::text as referenced,
            array(select a.attname from unnest(c.conkey) with ordinality k(n, o) join pg_attribute a on a.attrelid = c.conrelid and a.attnum = k.n order by k.o)::text[] as columns,
            array(select a.attname from unnest(c.confkey) with ordinality k(n, o) join pg_attribute a on a.attrelid = c.confrelid and a.attnum = k.n order by k.o)::text[] as "referencedColumns",
            c.confdeltype as "onDelete"
       from pg_constraint c
      where c.contype = 'f' and c.connamespace = 'public'::regnamespace order by 1`,
  )).rows;
  const columns = new Map<string, Column[]>();
  const cols = await db.query<Column & { table: string }>(
    `select table_name as table, column_name as name, data_type as type, character_maximum_length as "maxLength",
            is_nullable = 'YES' as nullable, column_default is not null as "hasDefault"
       from information_schema.columns where table_schema = 'public' order by table_name, ordinal_position`,
  );
  for (const c of cols.rows) columns.set(c.table, [...(columns.get(c.table) ?? []), c]);
  // `col in ('A', 'B')` is stored as `(col = ANY (ARRAY['A'::text, ...]))`: the first value will do.
  const allowed = new Map<string, string>();
  const checks = await db.query<{ table: string; def: string }>(
    `select conrelid::regclass::text as table, pg_get_constraintdef(oid) as def from pg_constraint where contype = 'c' and connamespace = 'public'::regnamespace`,
  );
  for (const { table, def } of checks.rows) {
    const m = /\(\(?"?(\w+)"?\)?(?:::text)?\s*=\s*(?:ANY\s*\(ARRAY\[)?'([^']*)'/.exec(def);
    if (m) allowed.set(`${table}.${m[1]}`, m[2]!);
  }

  async function insert(table: string, tenant: string, set: Record<string, unknown> = {}): Promise<Record<string, any>> {
    const known = columns.get(table);
    if (!known) throw new Error(`no table ${table}`);
    const values: Record<string, unknown> = { ...set };
    for (const col of known) {
      if (col.name in values || col.nullable || col.hasDefault) continue;
      if (col.name === 'tenant_id') {
        values.tenant_id = tenant;
        continue;
      }
      const fk = foreignKeys.find((k) => k.table === table && k.columns.includes(col.name));
      if (fk) {
        const parent = await insert(fk.referenced, tenant);
        fk.columns.forEach((c, i) => { if (!(c in values)) values[c] = parent[fk.referencedColumns[i]!]; });
        continue;
      }
      values[col.name] = allowed.get(`${table}.${col.name}`) ?? sample(col);
    }
    const names = Object.keys(values);
    const sql = `insert into "${table}" (${names.map((n) => `"${n}"`).join(', ')}) values (${names.map((_, i) => `$${i + 1}`).join(', ')}) returning *`;
    return (await db.query(sql, Object.values(values))).rows[0];
  }

  return {
    foreignKeys,
    columns,
    isTenantOwned: (table) => columns.get(table)?.some((c) => c.name === 'tenant_id') ?? false,
    insert,
  };
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

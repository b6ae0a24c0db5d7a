import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { copyFromStdin, namedStatement, perValuesStatement, pgArray, runMarkedStatementsNamed } from '../db/sql.js';

let db: pg.Client;
beforeAll(async () => {
  db = new pg.Client({ connectionString: inject('databaseUrl') });
  await db.connect();
});
afterAll(() => db.end());

describe('pgArray', () => {
  it('gives PostgreSQL back every element exactly: quotes, backslashes, commas, braces, blanks and NULL', async () => {
    const values = ['plain', 'say "hi"', 'C:\\path\\', '\\"', 'a,b', '{x}', '', ' padded ', 'NULL', null, 'ünï ✓', '{"k":"v\\n"}'];
    const { rows } = await db.query<{ a: (string | null)[] }>('select $1::text[] as a', [pgArray(values)]);
    expect(rows[0]!.a).toEqual(values);
    const numbers = await db.query<{ a: number[] }>('select $1::int[] as a', [pgArray([1, -2, 3])]);
    expect(numbers.rows[0]!.a).toEqual([1, -2, 3]);
    expect((await db.query('select cardinality($1::text[]) as n', [pgArray([])])).rows[0].n).toBe(0);
  });
});

describe('named statements', () => {
  it('run prepared once per connection with their values bound, and unnamed past the cap', async () => {
    const client = new pg.Client({ connectionString: inject('databaseUrl') });
    await client.connect();
    try {
      runMarkedStatementsNamed(client);
      const prepared = async () => (await client.query<{ name: string }>('select name from pg_prepared_statements')).rows.map((r) => r.name);
      const sql = namedStatement('select ?::int + ? as n, ?::text[] as a');
      expect(sql).toContain('$1::int + $2');
      for (const n of [1, 2, 3]) {
        const { rows } = await client.query(sql, [n, 10, pgArray(['x', 'y'])]);
        expect(rows[0]).toEqual({ n: n + 10, a: ['x', 'y'] });
      }
      expect(await prepared()).toHaveLength(1);
      // Unmarked statements stay unnamed.
      await client.query('select $1::int as n', [1]);
      expect(await prepared()).toHaveLength(1);
      // A connection keeps at most 200; the rest still run, planned each time.
      for (let i = 0; i < 205; i++) expect((await client.query(namedStatement(`select ?::int + ${i} as n`), [1])).rows[0].n).toBe(1 + i);
      expect(await prepared()).toHaveLength(200);
    } finally {
      await client.end();
    }
  });
});

describe('per-values statements', () => {
  it('write plain values in as literals and refuse any value that would need escaping', () => {
    expect(perValuesStatement('select ?::text as t, ? as n', ['tenant_1.a:b@c-D', 25])).toMatch(/\*\/ select 'tenant_1\.a:b@c-D'::text as t, 25 as n$/);
    for (const value of ["x' or '1'='1", "x'", 'a b', 'a\\b', 'é', '', 'x'.repeat(101), 1.5, -0.5, Number.MAX_SAFE_INTEGER + 2, NaN, null, undefined, true, ['a'], { a: 1 }]) {
      expect(perValuesStatement('select ? as v', [value]), String(value)).toBeUndefined();
    }
    // Kept texts tell a number from its digits, and text from an array of it.
    expect(perValuesStatement('select ? as v', [25])).toMatch(/select 25 as v$/);
    expect(perValuesStatement('select ? as v', ['25'])).toMatch(/select '25' as v$/);
    expect(perValuesStatement('select ? as v', ['a'])).toMatch(/select 'a' as v$/);
    expect(perValuesStatement('select ? as v', [['a']])).toBeUndefined();
    // Every placeholder gets a value and every value a placeholder.
    expect(perValuesStatement('select ?, ?', ['a'])).toBeUndefined();
    expect(perValuesStatement('select ?', ['a', 'b'])).toBeUndefined();
  });

  it('run prepared per value set, 100 at most a connection, beside the 200 named statements', async () => {
    const client = new pg.Client({ connectionString: inject('databaseUrl') });
    await client.connect();
    try {
      runMarkedStatementsNamed(client);
      const prepared = async () => Number((await client.query('select count(*) as n from pg_prepared_statements')).rows[0].n);
      for (let i = 0; i < 200; i++) await client.query(namedStatement(`select ?::int + ${i} as n`), [1]);
      expect(await prepared()).toBe(200);
      for (let i = 0; i < 105; i++) {
        const sql = perValuesStatement('select ?::text as tenant, ?::int as n', [`tenant_${i}`, i])!;
        for (const _ of [1, 2]) expect((await client.query(sql, [])).rows[0]).toEqual({ tenant: `tenant_${i}`, n: i });
      }
      expect(await prepared()).toBe(300);
    } finally {
      await client.end();
    }
  });
});


describe('copyFromStdin', () => {
  it('streams a generator\'s chunks as a COPY, each taken once the last was sent; a refused row or a failing generator keeps nothing', async () => {
    const client = new pg.Client({ connectionString: inject('databaseUrl') });
    await client.connect();
    try {
      runMarkedStatementsNamed(client);
      await client.query('create temporary table copied (n int primary key, t text)');
      const copy = copyFromStdin('copy copied (n, t) from stdin with (format csv)');
      let made = 0;
      function* rows(from: number, to: number, fail?: number) {
        for (let n = from; n < to; n += 500) {
          if (n === fail) throw new Error('no more rows');
          made++;
          yield Array.from({ length: 500 }, (_, i) => `${n + i},"row ""${n + i}"", with a comma"\n`).join('');
        }
      }
      // 20,000 rows in 40 chunks of about 15 KB: well past the stream's buffer, so most wait for a drain.
      const result = await client.query(copy, [rows(0, 20_000)]);
      expect(result.rowCount).toBe(20_000);
      expect(made).toBe(40);
      const count = async () => Number((await client.query('select count(*) from copied')).rows[0].count);
      expect(await count()).toBe(20_000);
      expect((await client.query('select t from copied where n = 7')).rows[0].t).toBe('row "7", with a comma');

      // A duplicate key in a later chunk: the whole COPY is refused, with PostgreSQL's code.
      await expect(client.query(copy, [rows(19_000, 40_000)])).rejects.toMatchObject({ code: '23505' });
      // A generator that fails half-way: PostgreSQL is told, and keeps none of its rows.
      await expect(client.query(copy, [rows(40_000, 60_000, 50_000)])).rejects.toThrow('no more rows');
      expect(await count()).toBe(20_000);
      // The connection goes on.
      expect((await client.query('select 1 as one')).rows[0].one).toBe(1);
    } finally {
      await client.end();
    }
  });
});

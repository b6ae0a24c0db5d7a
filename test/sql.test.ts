import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { pgArray } from '../db/sql.js';

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

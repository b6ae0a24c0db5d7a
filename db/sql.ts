import { createHash } from 'node:crypto';
import { raw } from '@mikro-orm/core';
import type { EntityManager } from '@mikro-orm/postgresql';
import { CompiledQuery } from 'kysely';
import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';

/**
 * Live customers: merged and deleted profiles are in no list, segment or sync. Spelled as two
 * inequalities, the form the partial indexes on customers are declared with, so they apply.
 */
export const liveCustomer = (alias?: string) => {
  const status = alias ? `${alias}.status` : 'status';
  return `${status} <> 'MERGED' and ${status} <> 'DELETED'`;
};
export const LIVE_CUSTOMER = liveCustomer('c');

/**
 * A statement's tenant, as a `?` read through a scalar subquery, for lookups by a key within the
 * tenant: the plan is then made for a tenant of average size, not for the value. Planned for the
 * value, a tenant the statistics have not seen (a new club, or one that grew since the last
 * ANALYZE) is costed at one row, so an index led by tenant_id alone ties with the key's index,
 * and PostgreSQL may walk the tenant's rows for every key (test/tenant-statistics.test.ts). Not for
 * statements that read the tenant's rows in order (list pages): those want the value's own plan.
 */
export const TENANT = '(select ?::text)';
/** TENANT as a value of a MikroORM query's `tenantId`. */
export const tenantKey = (tenantId: string) => raw(TENANT, [tenantId]);

/** `text` as a literal LIKE/ILIKE pattern piece: its %, _ and \\ match themselves. */
export const escapeLike = (text: string) => text.replace(/[\\%_]/g, (ch) => `\\${ch}`);

/**
 * A PostgreSQL array literal, for one text parameter cast in SQL (`unnest(?::uuid[])`,
 * `= any(?::text[])`). MikroORM expands a JS array parameter into a list of parameters, which
 * breaks set-based statements; a literal keeps a whole column in one parameter.
 */
export function pgArray(values: readonly (string | number | boolean | null | undefined)[]): string {
  // A plain loop, escaping only the elements that need it (ids and times never do): the arrays
  // of an event batch's statements were a fifth of the API's CPU with a replace per element.
  let literal = '{';
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (i) literal += ',';
    if (v === null || v === undefined) {
      literal += 'NULL';
      continue;
    }
    const text = String(v);
    literal += text.includes('\\') || text.includes('"') ? `"${text.replace(ARRAY_ESCAPED, '\\$&')}"` : `"${text}"`;
  }
  return literal + '}';
}
const ARRAY_ESCAPED = /[\\"]/g;

/**
 * Runs `sql` with its values bound as parameters ($1, $2, …; a JS array is one array parameter)
 * on the em's connection, within its transaction if it has one. em.execute inlines every value,
 * escaped, into the SQL text: for the column arrays of a batch of thousands of rows, building and
 * escaping that text costs more CPU and memory than running the statement.
 */
export async function executeBound<T>(em: EntityManager, sql: string, parameters: unknown[]): Promise<T[]> {
  try {
    // Through the ORM's onQuery hook, as its own statements go: whoever watches or rewrites those sees these.
    const text = em.config.get('onQuery')(sql, parameters);
    return (await em.getKysely().executeQuery<T>(CompiledQuery.raw(text, parameters))).rows;
  } catch (err) {
    // The same exceptions as em.execute (a unique violation is a UniqueConstraintViolationException).
    throw err instanceof Error ? em.getDriver().convertException(err) : err;
  }
}

const NAMED = '/*named:';
/** Distinct named statements a connection keeps; past that, statements run unnamed (planned each time). */
const MAX_NAMED_PER_CONNECTION = 200;
const NAMED_PER_VALUES = '/*named-per-values:';
/** The same for perValuesStatement's, kept apart: value sets never crowd out namedStatement's. */
const MAX_PER_VALUES_PER_CONNECTION = 100;
const sha1 = (text: string) => createHash('sha1').update(text).digest('hex');

/**
 * `sql`, its `?` placeholders numbered ($1, $2, …; none may be in a literal), marked to run as a
 * named statement through executeBound: each pooled connection parses it once, and PostgreSQL's
 * plan cache keeps its plan. For statements that take longer to plan than to run, and run on every
 * event: a tenant's SMART evaluation, 20 conditions, planned in 5 ms and run in 1. Build it once
 * per text and keep it; the name is a hash of the text.
 */
export function namedStatement(sql: string): string {
  const numbered = numberedPlaceholders(sql);
  return `${NAMED}${sha1(numbered)}*/ ${numbered}`;
}

/** A value written into SQL as it is: a safe integer, or text with nothing to escape. */
const PLAIN_TEXT = /^[\w.:@-]{1,100}$/;

/**
 * `sql` with its `?` placeholders replaced by `values`, written in as literals, marked to run as a
 * named statement of its own: each pooled connection plans it once for these values. For a
 * statement that runs on every request and whose right plan depends on its values, so that no
 * generic plan suits them all: a tenant's first page of customers (its own index for a small tenant,
 * the primary key backwards for one that is most of the table; a generic plan walked the primary key
 * for every tenant and read past a million rows for a small one). Planned on every request it cost
 * PostgreSQL 373 µs a page, 130 µs run from its plan. Undefined when a value is not plain (a safe
 * integer, or text of letters, digits and `_.:@-`): those calls run the statement planned each time.
 */
export function perValuesStatement(sql: string, values: readonly unknown[]): string | undefined {
  // Kept: hashing and rewriting the text was a thirtieth of a list request's CPU.
  let key = sql;
  for (const value of values) key += `\u0000${typeof value}:${String(value)}`; // 25 and '25' are written in differently
  const kept = perValuesTexts.get(key);
  if (kept !== undefined) return kept ?? undefined;
  const text = writeValuesIn(sql, values);
  if (perValuesTexts.size >= PER_VALUES_TEXTS_KEPT) perValuesTexts.delete(perValuesTexts.keys().next().value!);
  perValuesTexts.set(key, text ?? null);
  return text;
}
const PER_VALUES_TEXTS_KEPT = 1_000;
const perValuesTexts = new Map<string, string | null>();

function writeValuesIn(sql: string, values: readonly unknown[]): string | undefined {
  let i = 0;
  let plain = true;
  const text = sql.replace(/\?/g, () => {
    const value = values[i++];
    if (typeof value === 'number' && Number.isSafeInteger(value)) return String(value);
    if (typeof value === 'string' && PLAIN_TEXT.test(value)) return `'${value}'`;
    plain = false;
    return '?';
  });
  return plain && i === values.length ? `${NAMED_PER_VALUES}${sha1(text)}*/ ${text}` : undefined;
}

/** Past this many elements, an array statement runs unnamed (see `sizedStatement`). */
export const NAMED_ARRAYS_AT_MOST = 50;

/**
 * A statement over arrays as long as a request's items, in two forms: named for a few elements (an
 * event or a short batch: planning it took longer than running it, on every event), unnamed past
 * NAMED_ARRAYS_AT_MOST, where the generic plan, costed for ten elements, could be far from right.
 * In the named form each array parameter is read through a scalar subquery, so custom plans too
 * are costed for ten elements: costed for the one an event has, they always looked cheaper than
 * the generic plan, and PostgreSQL re-planned the statement on every execution. (Cast again, or
 * `any()` would read the subquery as a set of arrays.) Write such a statement so that its plan
 * holds for any tenant (lookups by key).
 */
export function sizedStatement(sql: string): (elements: number) => string {
  const named = namedStatement(sql.replace(/\?::(\w+)\[\]/g, '(select ?::$1[])::$1[]'));
  const unnamed = numberedPlaceholders(sql);
  return (elements) => (elements <= NAMED_ARRAYS_AT_MOST ? named : unnamed);
}

/**
 * `sql` with its `?` placeholders numbered, to run unnamed through executeBound. For the forms of
 * named statements that take arrays of hundreds: a generic plan is costed for an array's default
 * of ten elements, and PostgreSQL would keep one that is far from right for a thousand.
 */
export function numberedPlaceholders(sql: string): string {
  let n = 0;
  return sql.replace(/\?/g, () => `$${++n}`);
}

const COPY = '/*copy-from-stdin*/';
/**
 * `copy <table> (<columns>) from stdin ...`, marked to run through executeBound with its one
 * parameter, the data in the statement's format as an iterable of text chunks, streamed as the
 * COPY's input: the ORM's connection (and so its transaction) has no COPY of its own. Answers no
 * rows. Each chunk is taken from the iterable only once the connection has sent the last, so a
 * generator's chunks die young instead of waiting, all made, for the socket.
 */
export function copyFromStdin(sql: string): string {
  return `${COPY} ${sql}`;
}

async function copy(query: (...args: unknown[]) => unknown, text: string, chunks: Iterable<string>): Promise<pg.QueryResult> {
  const stream = query(copyFrom(text)) as ReturnType<typeof copyFrom>;
  const done = new Promise<void>((resolve, reject) => {
    stream.on('error', reject);
    stream.on('finish', resolve);
  });
  done.catch(() => undefined); // awaited below, after the writes
  // Drained, or failed (PostgreSQL refused a row): either way the next chunk may be looked at.
  const drained = () => new Promise<void>((resolve) => {
    stream.once('drain', resolve);
    done.then(resolve, resolve);
  });
  try {
    for (const chunk of chunks) {
      if (!stream.write(chunk)) await drained();
      if (stream.errored) break;
    }
  } catch (err) {
    // The data could not be made: PostgreSQL is told the COPY failed, so nothing of it is kept.
    stream.destroy(err as Error);
    await done.catch(() => undefined);
    throw err;
  }
  stream.end();
  await done;
  return { command: 'COPY', rowCount: stream.rowCount, rows: [], oid: 0, fields: [] };
}

const isChunks = (value: unknown): value is Iterable<string> =>
  typeof value === 'object' && value !== null && typeof (value as Iterable<string>)[Symbol.iterator] === 'function';

/**
 * Installed on every pooled connection: runs the statements namedStatement marked as named ones,
 * and copyFromStdin's as COPY.
 */
export function runMarkedStatementsNamed(client: pg.Client): void {
  const query = client.query.bind(client) as (...args: unknown[]) => unknown;
  const names = new Set<string>();
  const perValues = new Set<string>();
  const named = (set: Set<string>, cap: number, name: string) => set.has(name) || (set.size < cap && !!set.add(name));
  client.query = ((...args: unknown[]) => {
    const [text, values] = args;
    if (typeof text === 'string' && text.startsWith(COPY) && Array.isArray(values) && values.length === 1 && isChunks(values[0])) {
      return copy(query, text, values[0]);
    }
    if (typeof text === 'string' && text.startsWith('/*named') && (args.length === 2 || (args.length === 3 && args[2] === undefined))) {
      const name = text.slice(text.indexOf(':') + 1, text.indexOf('*/'));
      if (text.startsWith(NAMED) ? named(names, MAX_NAMED_PER_CONNECTION, name) : text.startsWith(NAMED_PER_VALUES) && named(perValues, MAX_PER_VALUES_PER_CONNECTION, name)) {
        return query({ name, text, values });
      }
    }
    return query(...args);
  }) as typeof client.query;
}

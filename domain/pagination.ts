import { AppError } from '../platform/errors.js';

// Relay connections: opaque cursors (base64url JSON of the sort key) that stay valid while rows
// are added, because pages are cut by key (keyset), never by offset.

export interface PageArgs {
  first?: number | null;
  after?: string | null;
  last?: number | null;
  before?: string | null;
}

export interface Connection<T> {
  edges: { node: T; cursor: string }[];
  pageInfo: { hasNextPage: boolean; hasPreviousPage: boolean; startCursor: string | null; endCursor: string | null };
  totalCount: number;
}

/**
 * A connection whose `totalCount` is counted on demand: a getter, read only when the field is
 * selected, so an unselected count costs no query. A getter rather than a method, because
 * compiled GraphQL execution (api/graphql/executor.ts) reads a field's property and does not call it.
 */
export type LazyConnection<T> = Page<T> & { readonly totalCount: Promise<number> };

export type Page<T> = Omit<Connection<T>, 'totalCount'>;

export const DEFAULT_PAGE = 25;
export const MAX_PAGE = 100;

function encodeCursor(key: unknown[]): string {
  return Buffer.from(JSON.stringify(key)).toString('base64url');
}

/** `isKey` checks the cursor was issued by this connection: a foreign or forged one is a 400. */
function decodeCursor(cursor: string, field: string, isKey: (key: unknown[]) => boolean): unknown[] {
  try {
    const key = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (Array.isArray(key) && isKey(key)) return key;
  } catch {
    // fall through
  }
  throw new AppError('VALIDATION_ERROR', `${field}: not a cursor this API issued`, { field });
}

export interface PagePlan {
  /** Rows to fetch (one more than asked, to learn whether another page exists). */
  limit: number;
  size: number;
  /** Walking backwards (`last`/`before`): fetch in reverse order, then flip. */
  backwards: boolean;
  cursor?: unknown[];
  cursorField?: 'after' | 'before';
}

export function planPage(args: PageArgs, isKey: (key: unknown[]) => boolean, prefix = 'pagination'): PagePlan {
  const { first, last, after, before } = args;
  for (const [name, value] of [['first', first], ['last', last]] as const) {
    if (value !== undefined && value !== null && (!Number.isInteger(value) || value < 0 || value > MAX_PAGE)) {
      throw new AppError('VALIDATION_ERROR', `${prefix}.${name}: must be an integer from 0 to ${MAX_PAGE}`, { field: `${prefix}.${name}` });
    }
  }
  if (first != null && last != null) {
    throw new AppError('VALIDATION_ERROR', `${prefix}: use first/after or last/before, not both`, { field: `${prefix}.last` });
  }
  // One bound only: a page between two cursors was answered as if the second were not there.
  if (first != null && before != null) {
    throw new AppError('VALIDATION_ERROR', `${prefix}.before: pages forward (first) start after a cursor; use last with before`, { field: `${prefix}.before` });
  }
  if (last != null && after != null) {
    throw new AppError('VALIDATION_ERROR', `${prefix}.after: pages backward (last) end before a cursor; use first with after`, { field: `${prefix}.after` });
  }
  if (after != null && before != null) {
    throw new AppError('VALIDATION_ERROR', `${prefix}: use after or before, not both`, { field: `${prefix}.before` });
  }
  const backwards = last != null || (before != null && first == null);
  const size = (backwards ? last : first) ?? DEFAULT_PAGE;
  const cursorField = backwards ? (before != null ? 'before' : undefined) : after != null ? 'after' : undefined;
  const raw = cursorField === 'before' ? before : cursorField === 'after' ? after : undefined;
  return { limit: size + 1, size, backwards, cursorField, cursor: raw ? decodeCursor(raw, `${prefix}.${cursorField}`, isKey) : undefined };
}

/** Builds the page from rows fetched per `plan` (in fetch order). */
export function toPage<T>(rows: T[], plan: PagePlan, keyOf: (row: T) => unknown[]): Page<T> {
  const more = rows.length > plan.size;
  const page = rows.slice(0, plan.size);
  if (plan.backwards) page.reverse();
  const edges = page.map((node) => ({ node, cursor: encodeCursor(keyOf(node)) }));
  return {
    edges,
    pageInfo: {
      hasNextPage: plan.backwards ? plan.cursor !== undefined : more,
      hasPreviousPage: plan.backwards ? more : plan.cursor !== undefined,
      startCursor: edges[0]?.cursor ?? null,
      endCursor: edges.at(-1)?.cursor ?? null,
    },
  };
}

/** Runs `count` at most once, however often the field is resolved. */
export function lazyCount(count: () => Promise<number>): () => Promise<number> {
  let result: Promise<number> | undefined;
  return () => (result ??= count());
}

export async function counted<T>(connection: LazyConnection<T>): Promise<Connection<T>> {
  return { ...connection, totalCount: await connection.totalCount };
}

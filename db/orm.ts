import { MikroORM, type Options } from '@mikro-orm/postgresql';
import { Migrator } from '@mikro-orm/migrations';
import type pg from 'pg';
import type { Config } from '../platform/config.js';
import { entities } from './entities/index.js';
import { migrations } from './migrations/index.js';
import { runMarkedStatementsNamed } from './sql.js';

export type Orm = MikroORM;

/** How long one database call may take before it fails (SERVICE_UNAVAILABLE at the API). */
export interface DbTimeouts {
  /** Per statement, enforced by PostgreSQL (statement_timeout; lock waits included). */
  statementMs: number;
  /** To get a connection: from the pool when all are busy, or a new one from the server. */
  acquireMs: number;
}

// A server that stops answering altogether never enforces its statement_timeout: the client gives up
// this much later on its own.
const CLIENT_GRACE_MS = 2_000;

/** API requests wait briefly: a stalled database answers 503 instead of holding requests. */
export const apiDbTimeouts = (config: Config): DbTimeouts => ({ statementMs: config.DB_STATEMENT_TIMEOUT_MS, acquireMs: config.DB_ACQUIRE_TIMEOUT_MS });

/** Activities and batch tools run set-based statements over a whole tenant: a longer limit of their own. */
export const activityDbTimeouts = (config: Config): DbTimeouts => ({ statementMs: config.DB_ACTIVITY_STATEMENT_TIMEOUT_MS, acquireMs: config.DB_ACQUIRE_TIMEOUT_MS });

/** The pg pool settings that enforce `timeouts`, for every pool the platform opens. */
export function pgPoolTimeouts(timeouts: DbTimeouts): pg.PoolConfig {
  return {
    statement_timeout: timeouts.statementMs,
    query_timeout: timeouts.statementMs + CLIENT_GRACE_MS,
    connectionTimeoutMillis: timeouts.acquireMs,
  };
}

// BEGIN however spelled, COMMIT, ROLLBACK (not to a savepoint: its transaction goes on).
const TRANSACTION_CONTROL = /^\s*(begin|start transaction|commit|rollback)\s*$|^\s*start transaction\b/i;
const COMMIT = /^\s*commit\s*$/i;

/**
 * Takes a pooled connection out of the pool, closed, once its transaction cannot be known to have
 * begun or ended. Kysely gives a transaction's connection back only after its COMMIT or ROLLBACK
 * succeeds: a BEGIN that got no answer (a stalled database) kept its connection checked out for
 * good, and so did a ROLLBACK that failed after a failed statement (no answer, a reset socket, a
 * backend terminated). Each such request cost the pool a connection until none was left, and a
 * shutdown waited for them forever. Returned to the pool instead, the connection could run the next
 * request inside a transaction that began late. Only a COMMIT refused by the server itself (an
 * ERROR, such as a serialization failure, on a connection that goes on) keeps its connection: the
 * ROLLBACK that follows gives it back.
 */
function discardWhenTransactionControlFails(client: pg.PoolClient): void {
  const query = client.query.bind(client) as (...args: unknown[]) => unknown;
  client.query = ((...args: unknown[]) => {
    const result = query(...args);
    const [text] = args;
    if (typeof text !== 'string' || !TRANSACTION_CONTROL.test(text) || !(result instanceof Promise)) return result;
    return result.catch((err: unknown) => {
      if (!COMMIT.test(text) || !refusedByServer(err)) {
        const release = client.release;
        client.release = () => undefined; // once: whoever releases it after this changes nothing
        release?.call(client, err instanceof Error ? err : new Error(String(err)));
      }
      throw err;
    });
  }) as typeof client.query;
}

/** A server's ERROR on a connection that stays up (not FATAL, not a connection exception, not a socket's error). */
const refusedByServer = (err: unknown) => {
  const { severity, code } = (err ?? {}) as { severity?: unknown; code?: unknown };
  return severity === 'ERROR' && typeof code === 'string' && !code.startsWith('08');
};

function ormOptions(databaseUrl: string, timeouts?: DbTimeouts, extra: Partial<Options> = {}): Options {
  return {
    clientUrl: databaseUrl,
    entities,
    extensions: [Migrator],
    // Explicit list: migrations run the same under tsx, vitest and a bundled build.
    migrations: { migrationsList: migrations, transactional: true, allOrNothing: true, snapshot: false },
    // Writes go through the services' explicit transactions; reads never flush by surprise.
    allowGlobalContext: false,
    pool: { min: 0, max: 10 },
    driverOptions: {
      ...(timeouts && pgPoolTimeouts(timeouts)),
      onPoolCreated: (pool: pg.Pool) => pool.on('connect', (client) => {
        runMarkedStatementsNamed(client);
        discardWhenTransactionControlFails(client);
      }),
    },
    ...extra,
  };
}

/**
 * Without `timeouts` (migrations, tests' own setup), statements run as long as they need. `extra`
 * adds MikroORM options (a test's query hook).
 */
export async function openOrm(databaseUrl: string, timeouts?: DbTimeouts, extra: Partial<Options> = {}): Promise<Orm> {
  return MikroORM.init(ormOptions(databaseUrl, timeouts, extra));
}

export async function migrate(orm: Orm): Promise<string[]> {
  const applied = await orm.migrator.up();
  return applied.map((m) => m.name);
}

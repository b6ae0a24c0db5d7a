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
      onPoolCreated: (pool: pg.Pool) => pool.on('connect', runMarkedStatementsNamed),
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

import type { EntityManager } from '@mikro-orm/postgresql';
import type { Orm } from '../../db/orm.js';
import { executeBound, pgArray, sizedStatement } from '../../db/sql.js';
import type { Logger } from '../../platform/logger.js';
import { LOCK_CUSTOMERS } from '../reactions.js';
import { hasSmartSegments, reevaluateSmartSegments } from './membership.js';

// SMART segments follow profile and timeline changes of a few customers just after those commit,
// not inside them. The change's transaction queues its customers in segment_reevaluations (a row
// per change, so nothing it queued can be lost or taken by an earlier drain), and each API process
// drains the queue: a batch of rows per transaction, each tenant's customers evaluated by one
// statement per level of segments. Evaluated inside every event, 20 SMART segments cost an event
// two thirds of what the event itself costs (three statements and a statement's worth of trigger
// checks, for six memberships); a drain shares all of that among its customers. A change of many
// customers at once shares it already, and evaluates them in its own transaction as before.
//
// What a drain sees: it locks the customers it evaluates (as events do), so a change to one of
// them either committed before (and is seen) or waits and queues a row of its own (evaluated by
// the next drain). Drainers of several processes take disjoint rows (SKIP LOCKED), and the moves
// record each entry and exit once whoever makes it. A drain that fails puts its rows back,
// backing off, and the others go on.

/** Customers a change evaluates itself, rather than queue, from this many on. */
const EVALUATED_IN_PLACE = 100;
/** Rows a drain takes at most: one transaction's work. */
const BATCH = 1000;
/** Drains that run beside the first while it finds full batches. */
const HELPERS = 1;
/** After a drain that did not fill a batch, the wait for more to gather before the next. */
const GATHER_MS = 10;
const MAX_BACKOFF_SECONDS = 300;
/** How long a shutdown waits for the drain in progress. */
const STOP_WAIT_MS = 5_000;

const ENQUEUE = sizedStatement(`insert into segment_reevaluations (tenant_id, customer_id, cause) select ?, unnest(?::uuid[]), ?`);

// The rows to evaluate, oldest first; a row another drain holds is skipped, and one backing off waits.
const CLAIM = `delete from segment_reevaluations where id in (
    select id from segment_reevaluations where (next_attempt_at is null or next_attempt_at <= now()) and starts_with(tenant_id, $2)
     order by id limit $1 for update skip locked)
  returning tenant_id, customer_id, cause, attempts`;

// This deployment's rows only (OUTBOX_TENANT_PREFIX): another's backlog is not this one's lag.
const OLDEST = `select coalesce(extract(epoch from now() - (select enqueued_at from segment_reevaluations
  where starts_with(tenant_id, $1) order by id limit 1)), 0)::float8 as age`;

// Due rows only: one backing off would have an idle API open a transaction every poll, for nothing.
const PENDING = `select count(*)::int as n from (select 1 from segment_reevaluations
  where (next_attempt_at is null or next_attempt_at <= now()) and starts_with(tenant_id, $1) limit 1) q`;

const REQUEUE = `insert into segment_reevaluations (tenant_id, customer_id, cause, attempts, next_attempt_at)
  select $1, unnest($2::uuid[]), $3, $4::int, now() + make_interval(secs => $5)`;

/** 2, 4, 8 ... seconds, at most MAX_BACKOFF_SECONDS (2 ** 1024 is past any float: a tenant failing for days broke the drain). */
const backoffSeconds = (attempts: number) => Math.min(2 ** Math.min(attempts, 30), MAX_BACKOFF_SECONDS);

interface Claimed {
  tenant_id: string;
  customer_id: string;
  cause: string;
  attempts: number;
}

const nudges = new Set<() => void>();

/**
 * Has the tenant's SMART segments follow customers whose profiles or timelines changed, in the
 * transaction of the change: a few customers (an event, an edit, a merge) are queued for the
 * drain, which evaluates many changes' customers a statement; many at once (an event batch, an
 * import's batch) are evaluated here, where one statement already serves them all and a queue
 * would only add its rows. A tenant without active SMART segments does neither.
 */
export async function followSmartSegments(em: EntityManager, tenantId: string, customerIds: string[], cause: string): Promise<void> {
  if (!customerIds.length || !(await hasSmartSegments(em, tenantId))) return;
  const unique = [...new Set(customerIds)];
  if (unique.length >= EVALUATED_IN_PLACE) return reevaluateSmartSegments(em, tenantId, unique, cause);
  await executeBound(em, ENQUEUE(unique.length), [tenantId, pgArray(unique), cause]);
  for (const nudge of nudges) nudge();
}

export interface DrainOptions {
  /** Only tenants whose id starts with this (OUTBOX_TENANT_PREFIX: deployments sharing a database). */
  tenantPrefix: string;
  /** Told, once a drain commits, how many queued rows it evaluated and how many it put back. */
  report?: (outcome: 'evaluated' | 'failed', customers: number) => void;
}

/** Seconds since the oldest customer of the deployment's tenants was queued; 0 when none is. */
export async function oldestSmartReevaluationAge(orm: Orm, tenantPrefix: string): Promise<number> {
  return (await executeBound<{ age: number }>(orm.em.fork(), OLDEST, [tenantPrefix]))[0]!.age;
}

/** One drain: takes up to `batch` rows and evaluates them, tenant by tenant. Returns the rows taken. */
export async function drainSmartReevaluations(orm: Orm, log: Logger, { tenantPrefix, report }: DrainOptions, batch = BATCH): Promise<number> {
  // Whether anything waits, outside a transaction: an idle API opens none, every poll.
  const [waiting] = await executeBound<{ n: number }>(orm.em.fork(), PENDING, [tenantPrefix]);
  if (!waiting?.n) return 0;
  const outcomes = { evaluated: 0, failed: 0 };
  const taken = await orm.em.fork().transactional(async (em) => {
    const rows = await executeBound<Claimed>(em, CLAIM, [batch, tenantPrefix]);
    const tenants = groupBy(rows, (r) => r.tenant_id);
    // Tenants and customers in one order, the order events lock customers in: two drains (or a
    // drain and an event batch) wait for each other instead of deadlocking.
    for (const tenantId of [...tenants.keys()].sort()) {
      const claimed = tenants.get(tenantId)!;
      const customers = [...new Set(claimed.map((r) => r.customer_id))].sort();
      const causes = new Map([...groupBy(claimed, (r) => r.cause)].map(([cause, rs]) => [cause, rs.map((r) => r.customer_id)]));
      await executeBound(em, 'savepoint segment_reevaluation', []);
      try {
        await executeBound(em, LOCK_CUSTOMERS(customers.length), [tenantId, pgArray(customers)]);
        for (const [cause, ids] of causes) await reevaluateSmartSegments(em, tenantId, ids, cause);
        await executeBound(em, 'release savepoint segment_reevaluation', []);
        outcomes.evaluated += claimed.length;
      } catch (err) {
        await executeBound(em, 'rollback to savepoint segment_reevaluation', []);
        const attempts = Math.max(...claimed.map((r) => r.attempts)) + 1;
        log.warn({ err, tenantId, customers: customers.length, attempts }, 'SMART segment re-evaluation failed; trying again later');
        for (const [cause, ids] of causes) await executeBound(em, REQUEUE, [tenantId, pgArray(ids), cause, attempts, backoffSeconds(attempts)]);
        outcomes.failed += claimed.length;
      }
    }
    return rows.length;
  });
  // Once committed: what a rolled-back drain took is still queued, and counted by whoever takes it.
  for (const outcome of ['evaluated', 'failed'] as const) if (outcomes[outcome]) report?.(outcome, outcomes[outcome]);
  return taken;
}

function groupBy<T>(items: T[], key: (item: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const k = key(item);
    const group = groups.get(k);
    if (group) group.push(item);
    else groups.set(k, [item]);
  }
  return groups;
}

export interface SmartReevaluationDrainer {
  stop(): Promise<void>;
}

/**
 * Drains segment_reevaluations in this process until stopped: at once when a change of this
 * process queued rows (and, batches not yet full, after GATHER_MS, so a busy API evaluates many
 * customers a statement), and every `pollMs` for rows other processes queued or left behind.
 */
export function startSmartReevaluationDrainer(orm: Orm, log: Logger, pollMs: number, options: DrainOptions): SmartReevaluationDrainer {
  let stopped = false;
  let nudged = false;
  let wake: (() => void) | undefined;
  let timer: NodeJS.Timeout | undefined;
  const sleep = (ms: number, wakeable: boolean) =>
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, ms);
      if (wakeable) wake = resolve;
    }).finally(() => {
      wake = undefined;
      clearTimeout(timer);
    });
  const nudge = () => {
    nudged = true;
    wake?.();
  };
  nudges.add(nudge);
  const drain = async () => {
    try {
      return await drainSmartReevaluations(orm, log, options);
    } catch (err) {
      if (!stopped) log.warn({ err }, 'SMART segment re-evaluation: drain failed; trying again later');
      return 0;
    }
  };
  // A backlog (full batches: an event batch, an import) is drained by a second transaction at once.
  const helpers = new Set<Promise<void>>();
  const help = () => {
    const helper: Promise<void> = (async () => {
      while (!stopped && (await drain()) === BATCH);
    })().finally(() => helpers.delete(helper));
    helpers.add(helper);
  };
  const loop = (async () => {
    while (!stopped) {
      const wasNudged = nudged;
      nudged = false;
      const taken = await drain();
      if (stopped) break;
      if (taken === BATCH) {
        if (helpers.size < HELPERS) help();
        continue;
      }
      // Rows queued by a transaction not yet committed, or more to gather: soon; else at the next poll.
      await (taken || wasNudged || nudged ? sleep(GATHER_MS, false) : sleep(pollMs, true));
    }
  })();
  return {
    async stop() {
      stopped = true;
      nudges.delete(nudge);
      wake?.();
      // A drain stuck on a database that stopped answering must not hold the shutdown: closing the
      // pool ends it, and its rows, not committed, stay queued for another process.
      await Promise.race([Promise.all([loop, ...helpers]), new Promise((resolve) => setTimeout(resolve, STOP_WAIT_MS).unref())]);
    },
  };
}

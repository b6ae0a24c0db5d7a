import type { EntityManager } from '@mikro-orm/postgresql';
import { pgArray } from '../../db/sql.js';

// The reliable hand-off from committed changes to journey workflows: rows of reaction_outbox
// written in the transaction of the change, relayed to Temporal after commit by every worker's
// dispatcher (worker/outbox.ts), at least once; the workflow id makes a repeat harmless.
//  - JOURNEY_ENROLL, key = enrolment id: signalWithStart the enrolment's workflow.
//  - JOURNEY_SIGNAL, key = `<enrolmentId>:<signal>:<dedupe>`: signal a running enrolment; one
//    already finished is left alone.

export const JOURNEY_ENROLL = 'journey-enroll';
export const JOURNEY_SIGNAL = 'journey-signal';

export type JourneySignalName = 'event' | 'exit' | 'pause' | 'resume';

export interface JourneySignalPayload {
  workflowId: string;
  signal: JourneySignalName;
  /** The signal's one argument (JourneyEvent for `event`, {reason} for `exit`), if any. */
  arg?: unknown;
}

/**
 * Queues `signal` for every ACTIVE enrolment in scope (a whole journey, or given enrolments).
 * `dedupe` tells repeats apart: the upstream activity id for events, a fresh id for each pause,
 * resume or exit request.
 */
export async function signalJourneyEnrollments(
  em: EntityManager,
  tenantId: string,
  scope: { journeyId: string } | { enrollmentIds: string[] },
  signal: JourneySignalName,
  dedupe: string,
  arg?: unknown,
): Promise<number> {
  const [where, value] = 'journeyId' in scope ? ['e.journey_id = ?::uuid', scope.journeyId] : ['e.id = any(?::uuid[])', pgArray(scope.enrollmentIds)];
  const rows = await em.execute<{ id: string }[]>(
    `insert into reaction_outbox (id, tenant_id, kind, key, payload)
     select gen_random_uuid(), e.tenant_id, ?, e.id || ':' || ? || ':' || ?,
            jsonb_strip_nulls(jsonb_build_object('workflowId', e.workflow_id, 'signal', ?::text, 'arg', ?::jsonb))
       from journey_enrollments e
      where e.tenant_id = ? and ${where} and e.status = 'ACTIVE' and e.workflow_id is not null
     on conflict (tenant_id, kind, key) do nothing
     returning id`,
    [JOURNEY_SIGNAL, signal, dedupe, signal, arg === undefined ? null : JSON.stringify(arg), tenantId, value],
  );
  // Wakes listening dispatchers (worker/outbox.ts) at commit.
  if (rows.length) await em.execute(`select pg_notify('reaction_outbox', '')`);
  return rows.length;
}

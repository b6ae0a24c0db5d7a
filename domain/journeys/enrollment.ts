import type { EntityManager } from '@mikro-orm/postgresql';
import { randomUUID } from 'node:crypto';
import { v7 as uuidv7 } from 'uuid';
import { Customer, Journey, JourneyEnrollment, JourneyEnrollmentStep } from '../../db/entities/index.js';
import type { EnrollmentStatus } from '../../db/entities/enums.js';
import { executeBound, liveCustomer, pgArray, sizedStatement, TENANT } from '../../db/sql.js';
import { AppError, notFound } from '../../platform/errors.js';
import { journeyWorkflowId, type JourneyEvent } from '../../workflows/journey.js';
import type { ServiceContext } from '../context.js';
import { getCustomer, isLive, isUuid, deadState } from '../customers/customers.js';
import { resolveIn } from '../customers/resolve.js';
import { identifiersInput } from '../customers/schemas.js';
import { lazyCount, planPage, toPage, type LazyConnection, type PageArgs } from '../pagination.js';
import { validate } from '../validate.js';
import { JOURNEY_ENROLL, signalJourneyEnrollments } from './outbox.js';

// Enrolment: a database row first. Whatever causes it (an upstream event, a segment entry, the API)
// writes the ACTIVE JourneyEnrollment, bumps journeys.total_enrolled and queues a JOURNEY_ENROLL
// outbox row in its own transaction; the dispatcher (worker/outbox.ts) then signalWithStarts the
// workflow after commit. A rollback enrols no one; a crash loses nothing (the row waits).
//
// Ending: ACTIVE → EXITED is one conditional UPDATE that bumps journeys.total_exited in the same
// statement, so totals stay exact whoever ends an enrolment (the API, exitOn, a merge, a delete).
// The `exit` signal is queued first: signalJourneyEnrollments picks ACTIVE rows only.
//
// Lock order, everywhere (so no two of them can deadlock): the customers' rows (whoever takes them:
// events, merges, profile updates, an UPDATE step), then the JOURNEY rows (in id order), then the
// enrolment rows. archiveJourney (and every journey action) holds the journey row FOR UPDATE while
// it ends enrolments; the workflow's end (finishJourneyEnrollment) takes the journey row, then its
// enrolment's; an exit here takes the affected journeys' rows before touching any enrolment.

export interface EnrollCandidate {
  journeyId: string;
  customerId: string;
  idempotencyKey: string;
  /** The upstream event that caused it (delivered to the workflow as its first `event` signal). */
  event?: JourneyEvent;
}

/**
 * What became of a candidate:
 * - `enrolled`: a new enrolment was written;
 * - `existing`: the idempotencyKey was used before in this journey (that enrolment);
 * - `running`: the customer is in the journey now; the event (if any) was queued to it as a signal;
 * - `refused`: allowReentry is false and the customer was enrolled before (that enrolment);
 * - `ineligible`: the journey is not ACTIVE (or never published), or the customer is merged/deleted.
 */
export type EnrollOutcome = 'enrolled' | 'existing' | 'running' | 'refused' | 'ineligible';

export interface EnrollResult {
  candidate: EnrollCandidate;
  outcome: EnrollOutcome;
  enrollmentId?: string;
}

interface State {
  journey_id: string;
  customer_id: string;
  idem: string;
  ord: number;
  eligible: boolean;
  version: number | null;
  allow_reentry: boolean | null;
  active_id: string | null;
  any_id: string | null;
  max_seq: number | null;
  seen_id: string | null;
}

/**
 * Enrols candidates in their journeys, set-based, inside the caller's transaction (see the top of
 * this file). A second trigger for a running enrolment becomes an `event` signal to it, never a
 * second run. `lock` takes the customers' rows first (FOR NO KEY UPDATE, in id order) so concurrent
 * enrolments of one customer take turns and see each other; callers that already hold those locks,
 * or that must not take them (a segment refresh holds the segment's lock), pass false and rely on
 * the unique indexes (idempotency key, one ACTIVE per customer, sequence) to settle races.
 */
export async function enrollCustomers(em: EntityManager, tenantId: string, candidates: EnrollCandidate[], opts: { lock?: boolean } = {}): Promise<EnrollResult[]> {
  if (!candidates.length) return [];
  if (opts.lock) {
    await em.execute(
      'select 1 from customers where tenant_id = ? and id = any(?::uuid[]) order by id for no key update',
      [tenantId, pgArray([...new Set(candidates.map((c) => c.customerId))])],
    );
  }
  // Rounds of distinct (journey, customer): a later candidate for the same pair sees what an
  // earlier one of the same call wrote (an enrolment it then signals instead).
  const results: EnrollResult[] = [];
  let pending = candidates;
  while (pending.length) {
    const seen = new Set<string>();
    const round: EnrollCandidate[] = [];
    const later: EnrollCandidate[] = [];
    for (const c of pending) {
      const pair = `${c.journeyId}|${c.customerId}`;
      (seen.has(pair) ? later : round).push(c);
      seen.add(pair);
    }
    results.push(...(await enrollRound(em, tenantId, round)));
    pending = later;
  }
  return results;
}

async function enrollRound(em: EntityManager, tenantId: string, round: EnrollCandidate[]): Promise<EnrollResult[]> {
  // The journeys first, in id order (as exits lock them): their status is then read as it stays
  // until this commits. Read before, an archive committing in between left an ACTIVE enrolment in
  // an ARCHIVED journey (the archive had ended the ones it saw).
  await lockJourneys(em, tenantId, round.map((c) => c.journeyId));
  const states = await em.execute<State[]>(
    `select t.journey_id, t.customer_id, t.idem, t.ord::int as ord,
            (j.id is not null and v.id is not null and cu.id is not null) as eligible,
            v.version, v.allow_reentry,
            (select e.id from journey_enrollments e where e.journey_id = t.journey_id and e.customer_id = t.customer_id and e.status = 'ACTIVE' limit 1) as active_id,
            (select e.id from journey_enrollments e where e.journey_id = t.journey_id and e.customer_id = t.customer_id order by e.sequence desc limit 1) as any_id,
            (select max(e.sequence) from journey_enrollments e where e.journey_id = t.journey_id and e.customer_id = t.customer_id)::int as max_seq,
            (select e.id from journey_enrollments e where e.journey_id = t.journey_id and e.idempotency_key = t.idem) as seen_id
       from unnest(?::uuid[], ?::uuid[], ?::text[]) with ordinality as t(journey_id, customer_id, idem, ord)
       left join journeys j on j.tenant_id = ? and j.id = t.journey_id and j.status = 'ACTIVE' and j.current_version >= 1
       left join journey_versions v on v.tenant_id = j.tenant_id and v.journey_id = j.id and v.version = j.current_version
       left join customers cu on cu.tenant_id = ${TENANT} and cu.id = t.customer_id and ${liveCustomer('cu')}
      order by t.ord`,
    [
      pgArray(round.map((c) => c.journeyId)), pgArray(round.map((c) => c.customerId)), pgArray(round.map((c) => c.idempotencyKey)),
      tenantId, tenantId,
    ],
  );
  const results: EnrollResult[] = [];
  const inserts: { id: string; candidate: EnrollCandidate; version: number; sequence: number; workflowId: string }[] = [];
  for (const s of states) {
    const candidate = round[s.ord - 1]!;
    if (s.seen_id) results.push({ candidate, outcome: 'existing', enrollmentId: s.seen_id });
    else if (!s.eligible) results.push({ candidate, outcome: 'ineligible' });
    else if (s.active_id) results.push({ candidate, outcome: 'running', enrollmentId: s.active_id });
    else if (s.any_id && !s.allow_reentry) results.push({ candidate, outcome: 'refused', enrollmentId: s.any_id });
    else {
      const sequence = (s.max_seq ?? 0) + 1;
      inserts.push({ id: uuidv7(), candidate, version: s.version!, sequence, workflowId: journeyWorkflowId(candidate.journeyId, candidate.customerId, sequence) });
    }
  }

  if (inserts.length) {
    // One statement: the rows, the journeys' totals, and the outbox rows that start their runs
    // (payload {workflowId, input: JourneyEnrollmentInput, event?}). A concurrent writer that got
    // there first (same key, an ACTIVE one, the same sequence) wins; this candidate then reads
    // what it wrote.
    const written = await em.execute<{ id: string }[]>(
      `with t as (
         select * from unnest(?::uuid[], ?::uuid[], ?::uuid[], ?::int[], ?::int[], ?::text[], ?::text[], ?::jsonb[])
           as t(id, journey_id, customer_id, version, sequence, workflow_id, idem, event)
       ), ins as (
         insert into journey_enrollments (id, tenant_id, journey_id, customer_id, status, version, sequence, workflow_id, idempotency_key)
         select t.id, ?, t.journey_id, t.customer_id, 'ACTIVE', t.version, t.sequence, t.workflow_id, t.idem from t
         on conflict do nothing
         returning id, journey_id, customer_id, version, workflow_id
       ), counted as (
         update journeys j set total_enrolled = j.total_enrolled + n.c, updated_at = now()
           from (select journey_id, count(*)::int as c from ins group by journey_id) n
          where j.tenant_id = ? and j.id = n.journey_id
       ), queued as (
         insert into reaction_outbox (id, tenant_id, kind, key, payload)
         select gen_random_uuid(), ?, ?, ins.id::text,
                jsonb_build_object(
                  'workflowId', ins.workflow_id,
                  'input', jsonb_build_object('tenantId', ?::text, 'journeyId', ins.journey_id, 'customerId', ins.customer_id, 'enrollmentId', ins.id, 'version', ins.version)
                ) || case when t.event is null then '{}'::jsonb else jsonb_build_object('event', t.event) end
           from ins join t on t.id = ins.id
         on conflict (tenant_id, kind, key) do nothing
       )
       select id from ins`,
      [
        pgArray(inserts.map((i) => i.id)), pgArray(inserts.map((i) => i.candidate.journeyId)), pgArray(inserts.map((i) => i.candidate.customerId)),
        pgArray(inserts.map((i) => i.version)), pgArray(inserts.map((i) => i.sequence)), pgArray(inserts.map((i) => i.workflowId)),
        pgArray(inserts.map((i) => i.candidate.idempotencyKey)), pgArray(inserts.map((i) => (i.candidate.event ? JSON.stringify(i.candidate.event) : null))),
        tenantId, tenantId, tenantId, JOURNEY_ENROLL, tenantId,
      ],
    );
    const done = new Set(written.map((w) => w.id));
    if (done.size) await nudgeOutbox(em);
    for (const i of inserts) {
      if (done.has(i.id)) {
        results.push({ candidate: i.candidate, outcome: 'enrolled', enrollmentId: i.id });
        continue;
      }
      // Lost a race: read what the winner wrote (committed, or the conflict would not have been seen).
      const [again] = await enrollRound(em, tenantId, [i.candidate]);
      results.push(again!);
    }
  }

  // A second trigger for a running enrolment is a signal to it, deduplicated by the event.
  for (const r of results) {
    if (r.outcome === 'running' && r.candidate.event) {
      await signalJourneyEnrollments(em, tenantId, { enrollmentIds: [r.enrollmentId!] }, 'event', r.candidate.event.activityId, r.candidate.event);
    }
  }
  return results;
}

/** Wakes the dispatchers listening (worker/outbox.ts) once the transaction commits. */
export async function nudgeOutbox(em: EntityManager): Promise<void> {
  await em.execute(`select pg_notify('reaction_outbox', '')`);
}

/**
 * Ends the given ACTIVE enrolments as EXITED with `reason`: their journeys' rows are locked first
 * (FOR NO KEY UPDATE, in id order: the lock order at the top of this file), then the `exit` signal
 * is queued and one conditional UPDATE ends them and bumps total_exited by exactly those it ended
 * (one ended meanwhile, by an archive or the workflow's end, is left alone). Returns the ids it ended.
 */
export async function exitEnrollments(em: EntityManager, tenantId: string, enrollmentIds: string[], reason: string): Promise<string[]> {
  if (!enrollmentIds.length) return [];
  await lockJourneysOf(em, tenantId, enrollmentIds);
  await signalJourneyEnrollments(em, tenantId, { enrollmentIds }, 'exit', `exit:${reason}`, { reason });
  const ended = await em.execute<{ id: string }[]>(
    `with ended as (
       update journey_enrollments set status = 'EXITED', exited_at = now(), exit_reason = ?, waiting_until = null, updated_at = now()
        where tenant_id = ? and id = any(?::uuid[]) and status = 'ACTIVE'
       returning id, journey_id
     ), counted as (
       update journeys j set total_exited = j.total_exited + n.c, updated_at = now()
         from (select journey_id, count(*)::int as c from ended group by journey_id) n
        where j.tenant_id = ? and j.id = n.journey_id
     )
     select id from ended`,
    [reason, tenantId, pgArray(enrollmentIds), tenantId],
  );
  return ended.map((e) => e.id);
}

/** Locks the journeys' rows of these enrolments (FOR NO KEY UPDATE, in id order: the lock order above). */
async function lockJourneys(em: EntityManager, tenantId: string, journeyIds: string[]): Promise<void> {
  await em.execute('select id from journeys where tenant_id = ? and id = any(?::uuid[]) order by id for no key update', [tenantId, pgArray([...new Set(journeyIds)])]);
}

async function journeysOf(em: EntityManager, tenantId: string, enrollmentIds: string[]): Promise<string[]> {
  if (!enrollmentIds.length) return [];
  const rows = await em.execute<{ journey_id: string }[]>('select journey_id from journey_enrollments where tenant_id = ? and id = any(?::uuid[])', [tenantId, pgArray(enrollmentIds)]);
  return rows.map((r) => r.journey_id);
}

async function lockJourneysOf(em: EntityManager, tenantId: string, enrollmentIds: string[]): Promise<void> {
  await em.execute(
    `select j.id from journeys j
      where j.tenant_id = ? and j.id in (select e.journey_id from journey_enrollments e where e.tenant_id = ? and e.id = any(?::uuid[]))
      order by j.id for no key update of j`,
    [tenantId, tenantId, pgArray(enrollmentIds)],
  );
}

/** Ends every ACTIVE enrolment of these customers (a merge's loser, a deleted profile). */
export async function exitCustomersEnrollments(em: EntityManager, tenantId: string, customerIds: string[], reason: string): Promise<string[]> {
  if (!customerIds.length) return [];
  const rows = await em.execute<{ id: string }[]>(
    `select id from journey_enrollments where tenant_id = ? and customer_id = any(?::uuid[]) and status = 'ACTIVE'`,
    [tenantId, pgArray(customerIds)],
  );
  return exitEnrollments(em, tenantId, rows.map((r) => r.id), reason);
}

/** Ends every ACTIVE enrolment of a journey (archive). */
export async function exitJourneyEnrollments(em: EntityManager, tenantId: string, journeyId: string, reason: string): Promise<string[]> {
  const rows = await em.execute<{ id: string }[]>(
    `select id from journey_enrollments where tenant_id = ? and journey_id = ? and status = 'ACTIVE'`,
    [tenantId, journeyId],
  );
  return exitEnrollments(em, tenantId, rows.map((r) => r.id), reason);
}

// ---------------------------------------------------------------------------------------------
// Reactions (called from domain/reactions.ts and the segment membership writers, in the change's
// own transaction).

// The appended activities, each by its primary key, their tenant checked by the caller's WHERE
// (see domain/campaigns/triggers.ts: filtering the tenant's activities by id, a new tenant's stale
// statistics had PostgreSQL walk its whole timeline on every event).
const appendedActivities = `unnest(?::uuid[]) as k(id)
  cross join lateral (select a.tenant_id, a.id, a.customer_id, a.type, a.occurred_at, a.metadata from activities a where a.id = k.id limit 1) a`;

const LISTENING_ENROLLMENTS = sizedStatement(
  `select e.id as enrollment_id, a.id as activity_id, a.type, a.occurred_at,
          coalesce(v.trigger_config->>'exitOn' = a.type, false) as exit
     from ${appendedActivities}
     -- Each customer's own enrolments (OFFSET 0 keeps them a probe): the plan is kept for every
     -- tenant, and a tenant's ACTIVE enrolments are 100,000 where a journey waits on them.
     cross join lateral (select e.* from journey_enrollments e
                          where e.tenant_id = a.tenant_id and e.customer_id = a.customer_id and e.status = 'ACTIVE' offset 0) e
     join journey_versions v on v.tenant_id = e.tenant_id and v.journey_id = e.journey_id and v.version = e.version
    where a.tenant_id = ? and (a.type = any(v.event_types) or v.trigger_config->>'exitOn' = a.type)
    order by a.occurred_at, a.id`,
);
const TRIGGERED_JOURNEYS = sizedStatement(
  `select j.id as journey_id, a.customer_id, a.id as activity_id, a.type, a.occurred_at
     from ${appendedActivities}
     join journeys j on j.tenant_id = a.tenant_id and j.status = 'ACTIVE' and j.current_version >= 1
     join journey_versions v on v.tenant_id = j.tenant_id and v.journey_id = j.id and v.version = j.current_version
    where a.tenant_id = ? and v.trigger_type = 'EVENT' and v.trigger_config->>'event' = a.type
      and coalesce(a.metadata, '{}'::jsonb) @> coalesce(v.trigger_config->'conditions', '{}'::jsonb)
    order by a.occurred_at, a.id`,
);

/**
 * Activities appended to timelines reach journeys:
 * 1. running enrolments whose version's `exitOn` is the activity's type end (EXITED, `exitOn:<type>`);
 * 2. running enrolments whose version listens for the type (exitOn, WAIT untilEvent) get an
 *    `event` signal, deduplicated by activity id;
 * 3. unless `enrol` is false (campaign interactions: they reach waiting enrolments but never
 *    enrol anyone), EVENT-trigger journeys whose current version's `triggerConfig.event` is the
 *    type and whose `conditions` the metadata contains enrol the customer, idempotent on
 *    `event:<activityId>`; a customer already running in the journey gets a signal instead.
 * The caller holds the customers' row locks (afterActivitiesAppended takes them).
 */
export async function journeysAfterActivities(em: EntityManager, tenantId: string, activityIds: string[], opts: { enrol: boolean }): Promise<void> {
  if (!activityIds.length) return;
  const ids = pgArray(activityIds);
  const listening = await executeBound<{ enrollment_id: string; activity_id: string; type: string; occurred_at: Date; exit: boolean }>(
    em, LISTENING_ENROLLMENTS(activityIds.length), [ids, tenantId],
  );
  const exits = new Map<string, string>();
  for (const l of listening) if (l.exit && !exits.has(l.enrollment_id)) exits.set(l.enrollment_id, l.type);
  const triggered = opts.enrol
    ? await executeBound<{ journey_id: string; customer_id: string; activity_id: string; type: string; occurred_at: Date }>(em, TRIGGERED_JOURNEYS(activityIds.length), [ids, tenantId])
    : [];
  // The journeys the exits and the enrolments below touch, all at once and in id order: locked in
  // turn (an exit's, then an enrolment's), they could deadlock with a writer taking them in order.
  if (triggered.length) await lockJourneys(em, tenantId, [...triggered.map((t) => t.journey_id), ...await journeysOf(em, tenantId, [...exits.keys()])]);
  else if (exits.size) await lockJourneysOf(em, tenantId, [...exits.keys()]);
  for (const [enrollmentId, type] of exits) await exitEnrollments(em, tenantId, [enrollmentId], `exitOn:${type}`);
  for (const l of listening) {
    if (exits.has(l.enrollment_id)) continue;
    const event: JourneyEvent = { type: l.type, activityId: l.activity_id, occurredAt: new Date(l.occurred_at).toISOString() };
    await signalJourneyEnrollments(em, tenantId, { enrollmentIds: [l.enrollment_id] }, 'event', l.activity_id, event);
  }
  if (!triggered.length) return;
  await enrollCustomers(em, tenantId, triggered.map((t) => ({
    journeyId: t.journey_id,
    customerId: t.customer_id,
    idempotencyKey: `event:${t.activity_id}`,
    event: { type: t.type, activityId: t.activity_id, occurredAt: new Date(t.occurred_at).toISOString() },
  })));
}

/**
 * The ACTIVE SEGMENT_ENTRY journeys that segment entries enrol in, as SQL over `entries` (a
 * relation of segment_membership_changes rows: id, tenant_id, segment_id, customer_id, change),
 * in change order. Lower-cased: triggers saved before ids were stored lower-case may hold capitals. A writer that records entries in a CTE asks in the same statement.
 */
export const segmentEntryJourneys = (entries: string) => `
  select j.id as journey_id, m.customer_id, m.id::text as change_id
    from ${entries} m
    join journey_versions v on v.tenant_id = m.tenant_id and v.trigger_type = 'SEGMENT_ENTRY' and lower(v.trigger_config->>'segmentId') = m.segment_id::text
    join journeys j on j.tenant_id = v.tenant_id and j.id = v.journey_id and j.current_version = v.version and j.status = 'ACTIVE'
   where m.change = 'ENTERED'`;

export interface SegmentEntryJourney {
  journey_id: string;
  customer_id: string;
  change_id: string;
}

/** Enrols entries (rows of `segmentEntryJourneys`), idempotent on `segment-entry:<change id>`. */
export async function enrollSegmentEntries(em: EntityManager, tenantId: string, entries: SegmentEntryJourney[]): Promise<void> {
  await enrollCustomers(em, tenantId, entries.map((e) => ({ journeyId: e.journey_id, customerId: e.customer_id, idempotencyKey: `segment-entry:${e.change_id}` })));
}

/**
 * Segment entries (segment_membership_changes rows, ENTERED) enrol the entering customers in the
 * ACTIVE SEGMENT_ENTRY journeys of that segment, idempotent on `segment-entry:<change id>`.
 * Takes no customer locks: segment writers hold the segment's lock (see enrollCustomers).
 */
export async function journeysAfterSegmentEntries(em: EntityManager, tenantId: string, changeIds: (string | number)[]): Promise<void> {
  if (!changeIds.length) return;
  const entries = await em.execute<SegmentEntryJourney[]>(
    // Each change by its key, its tenant checked after (see appendedActivities): filtered from the
    // tenant's changes, which grow with every move, stale statistics walked all of them.
    `${segmentEntryJourneys(`(select c.* from unnest(?::bigint[]) as k(id)
                              cross join lateral (select * from segment_membership_changes c where c.id = k.id limit 1) c
                             where c.tenant_id = ?)`)} order by m.id`,
    [pgArray(changeIds.map(String)), tenantId],
  );
  await enrollSegmentEntries(em, tenantId, entries);
}

// ---------------------------------------------------------------------------------------------
// The API.

async function journeyOf(ctx: { em: EntityManager; tenantId: string }, id: string): Promise<Journey> {
  const journey = isUuid(id) ? await ctx.em.findOne(Journey, { id, tenantId: ctx.tenantId }) : null;
  if (!journey) throw notFound('journey', id);
  return journey;
}

export interface CustomerRef {
  id?: string | null;
  email?: string | null;
  phone?: string | null;
  authUserId?: string | null;
}

/** The live customer a reference names (an id, or identifiers resolved as the identity service does), or 404. */
async function customerByRef(ctx: ServiceContext, em: EntityManager, ref: CustomerRef | undefined | null): Promise<Customer> {
  if (!ref || typeof ref !== 'object') throw new AppError('VALIDATION_ERROR', 'customer: give id, email, phone or authUserId', { field: 'customer' });
  const { id, ...identifiers } = ref;
  let customer: Customer;
  if (id !== undefined && id !== null) {
    if (typeof id !== 'string') throw new AppError('VALIDATION_ERROR', 'customer.id: expected a string', { field: 'customer.id' });
    customer = await getCustomer({ em, tenantId: ctx.tenantId }, id);
  } else {
    const ids = validate(identifiersInput(ctx.config.DEFAULT_PHONE_REGION), identifiers, 'customer');
    const found = await resolveIn(em, ctx.tenantId, ids, false);
    if (!found) throw new AppError('RESOURCE_NOT_FOUND', 'no customer has these identifiers', { field: 'customer' });
    customer = found.profile;
  }
  if (!isLive(customer)) throw new AppError('INVALID_STATE', `customer ${customer.id} ${deadState(customer)}`, { field: 'customer' });
  return customer;
}

export interface ApiEnrollment {
  enrollment: JourneyEnrollment;
  created: boolean;
}

/**
 * Enrols one customer through the API (any trigger type, MANUAL included). A new enrolment is
 * `created`; the same idempotencyKey again, or a customer already running in the journey, answers
 * the existing enrolment. A journey not ACTIVE is INVALID_STATE; allowReentry false with an
 * earlier enrolment is CONFLICT naming it (existingId). Without an idempotencyKey one is made up:
 * the call is then not idempotent (but never starts a second concurrent run).
 */
export async function enrollCustomerInJourney(ctx: ServiceContext, journeyId: string, ref: CustomerRef | undefined | null, idempotencyKey?: string | null): Promise<ApiEnrollment> {
  if (idempotencyKey !== undefined && idempotencyKey !== null && (typeof idempotencyKey !== 'string' || !idempotencyKey.trim() || idempotencyKey.length > 200)) {
    throw new AppError('VALIDATION_ERROR', 'idempotencyKey: 1 to 200 characters', { field: 'idempotencyKey' });
  }
  const key = `api:${idempotencyKey ?? randomUUID()}`;
  const { id: enrollmentId, created } = await ctx.em.transactional(async (em) => {
    const journey = await journeyOf({ em, tenantId: ctx.tenantId }, journeyId);
    const customer = await customerByRef(ctx, em, ref);
    const [result] = await enrollCustomers(em, ctx.tenantId, [{ journeyId: journey.id, customerId: customer.id, idempotencyKey: key }], { lock: true });
    switch (result!.outcome) {
      case 'enrolled': return { id: result!.enrollmentId!, created: true };
      case 'existing': {
        const [{ customer_id }] = (await em.execute<{ customer_id: string }[]>('select customer_id from journey_enrollments where id = ?', [result!.enrollmentId])) as [{ customer_id: string }];
        if (customer_id !== customer.id) {
          throw new AppError('CONFLICT', `idempotencyKey: already used for enrollment ${result!.enrollmentId} of another customer`, { field: 'idempotencyKey', existingId: result!.enrollmentId });
        }
        return { id: result!.enrollmentId!, created: false };
      }
      case 'running': return { id: result!.enrollmentId!, created: false };
      case 'refused':
        throw new AppError('CONFLICT', `customer ${customer.id} was enrolled in journey ${journey.id} before (enrollment ${result!.enrollmentId}) and the journey does not allow re-entry`, { existingId: result!.enrollmentId });
      case 'ineligible': {
        const fresh = await em.refreshOrFail(journey);
        throw new AppError('INVALID_STATE', `journey ${journey.id} is ${fresh.status}${fresh.status === 'ACTIVE' ? ' but not published' : ''}: only an ACTIVE journey enrols`, { currentStatus: fresh.status });
      }
    }
  });
  const enrollment = await ctx.em.fork().findOneOrFail(JourneyEnrollment, { id: enrollmentId, tenantId: ctx.tenantId });
  return { enrollment, created };
}

/**
 * Exits the customer's running enrolment in the journey (EXITED, reason `api`). Returns false when
 * the customer has none running (the journey and customer must exist: 404 otherwise).
 */
export async function exitCustomerFromJourney(ctx: ServiceContext, journeyId: string, customerId: string, reason = 'api'): Promise<boolean> {
  return ctx.em.transactional(async (em) => {
    const journey = await journeyOf({ em, tenantId: ctx.tenantId }, journeyId);
    const customer = await getCustomer({ em, tenantId: ctx.tenantId }, customerId);
    const rows = await em.execute<{ id: string }[]>(
      `select id from journey_enrollments where tenant_id = ? and journey_id = ? and customer_id = ? and status = 'ACTIVE'`,
      [ctx.tenantId, journey.id, customer.id],
    );
    return (await exitEnrollments(em, ctx.tenantId, rows.map((r) => r.id), reason)).length > 0;
  });
}

// ---------------------------------------------------------------------------------------------
// Reads (PostgreSQL only; never Temporal).

const ENROLLMENT_STATUSES: readonly EnrollmentStatus[] = ['ACTIVE', 'COMPLETED', 'EXITED', 'FAILED'];

function checkStatus(status: unknown): EnrollmentStatus | undefined {
  if (status === undefined || status === null) return undefined;
  if (!ENROLLMENT_STATUSES.includes(status as EnrollmentStatus)) {
    throw new AppError('VALIDATION_ERROR', `status: one of ${ENROLLMENT_STATUSES.join(', ')}`, { field: 'status' });
  }
  return status as EnrollmentStatus;
}

/** Newest first (the time-ordered id), Relay cursors; counted only when asked. */
export async function journeyEnrollmentsConnection(ctx: ServiceContext, journeyId: string, status: unknown, args: PageArgs = {}): Promise<LazyConnection<JourneyEnrollment>> {
  const journey = await journeyOf(ctx, journeyId);
  const where = { tenantId: ctx.tenantId, journey: journey.id, ...(checkStatus(status) && { status: checkStatus(status) }) };
  const plan = planPage(args, (key) => key.length === 1 && typeof key[0] === 'string' && isUuid(key[0]));
  const count = lazyCount(() => ctx.em.count(JourneyEnrollment, where));
  const rows = await ctx.em.find(
    JourneyEnrollment,
    { ...where, ...(plan.cursor && { id: { [plan.backwards ? '$gt' : '$lt']: String(plan.cursor[0]) } }) },
    { orderBy: { id: plan.backwards ? 'asc' : 'desc' }, limit: plan.limit },
  );
  return { ...toPage(rows, plan, (e) => [e.id]), get totalCount() { return count(); } };
}

export async function listJourneyEnrollmentsPage(ctx: ServiceContext, journeyId: string, status: unknown, skip: number, take: number) {
  const journey = await journeyOf(ctx, journeyId);
  const where = { tenantId: ctx.tenantId, journey: journey.id, ...(checkStatus(status) && { status: checkStatus(status) }) };
  const [rows, total] = await Promise.all([
    ctx.em.find(JourneyEnrollment, where, { orderBy: { id: 'desc' }, offset: skip, limit: take }),
    ctx.em.fork().count(JourneyEnrollment, where),
  ]);
  return { rows, total };
}

/** Step records of many enrolments, each in the order its steps were first reached. */
export async function stepsOfEnrollments(ctx: { em: EntityManager; tenantId: string }, enrollmentIds: readonly string[]): Promise<Map<string, JourneyEnrollmentStep[]>> {
  const steps = enrollmentIds.length
    ? await ctx.em.find(
      JourneyEnrollmentStep,
      { tenantId: ctx.tenantId, enrollment: { $in: [...enrollmentIds] } },
      { orderBy: [{ startedAt: 'asc nulls last' }, { stepNumber: 'asc' }, { id: 'asc' }] as never },
    )
    : [];
  const byEnrollment = new Map<string, JourneyEnrollmentStep[]>(enrollmentIds.map((id) => [id, []]));
  for (const s of steps) byEnrollment.get((s.enrollment as unknown as { id: string }).id)?.push(s);
  return byEnrollment;
}

export function enrollmentStepView(s: JourneyEnrollmentStep) {
  return {
    stepId: s.stepId,
    stepNumber: s.stepNumber ?? null,
    stepName: s.stepName ?? null,
    stepType: s.stepType ?? null,
    status: s.status,
    outcome: s.outcome ?? null,
    visits: s.visits,
    startedAt: s.startedAt ?? null,
    completedAt: s.completedAt ?? null,
    error: s.error ?? null,
  };
}

const refId = (r: unknown) => (typeof r === 'string' ? r : (r as { id: string }).id);

export function enrollmentView(e: JourneyEnrollment, steps?: JourneyEnrollmentStep[]) {
  return {
    id: e.id,
    journeyId: refId(e.journey),
    customerId: refId(e.customer),
    status: e.status,
    version: e.version,
    sequence: e.sequence,
    currentStepId: e.currentStepId ?? null,
    currentStepNumber: e.currentStepNumber ?? null,
    waitingUntil: e.waitingUntil ?? null,
    enrolledAt: e.enrolledAt,
    completedAt: e.completedAt ?? null,
    exitedAt: e.exitedAt ?? null,
    exitReason: e.exitReason ?? null,
    workflowId: e.workflowId ?? null,
    ...(steps && { steps: steps.map(enrollmentStepView) }),
  };
}

export async function enrollmentViews(ctx: ServiceContext, rows: JourneyEnrollment[]) {
  const steps = await stepsOfEnrollments(ctx, rows.map((r) => r.id));
  return rows.map((r) => enrollmentView(r, steps.get(r.id) ?? []));
}

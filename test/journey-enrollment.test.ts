import { randomUUID } from 'node:crypto';
import { WorkflowNotFoundError, defaultPayloadConverter } from '@temporalio/common';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { activityDbTimeouts, openOrm, type Orm } from '../db/orm.js';
import { INTERACTION_CAUSE } from '../domain/campaigns/interactions.js';
import type { AppendedActivity } from '../domain/reactions.js';
import { appendActivities } from '../domain/customers/timeline.js';
import { enrollCustomers } from '../domain/journeys/enrollment.js';
import { CustomerId, JourneyId, TenantId } from '../platform/search-attributes.js';
import { createLogger } from '../platform/logger.js';
import { startOutboxDispatcher, type OutboxDispatcher } from '../worker/outbox.js';
import { journeyWorkflowId } from '../workflows/journey.js';
import { newTenant, testConfig, token } from './support/api.js';
import { startTestStack, type TestStack } from './support/stack.js';
import { until } from './support/until.js';

// Enrolments and the hand-off to Temporal, end to end: upstream events, segment entries and the
// API write enrolments in their own transaction; the outbox dispatcher then signalWithStarts the
// workflow `journey-<journeyId>-<customerId>`. Temporal is checked for what was handed over (the
// run, its search attributes, input and signals), not for steps: the interpreter is tested on its own.

let stack: TestStack;
let db: pg.Client;
let orm: Orm;
let dispatcher: OutboxDispatcher | undefined;
const dispatcherDeps = () => {
  const config = testConfig({ TEMPORAL_TASK_QUEUE: stack.taskQueue, OUTBOX_POLL_MS: '200', OUTBOX_DISPATCH: 'true' });
  return { orm, config, log: createLogger('silent') };
};

beforeAll(async () => {
  // This file's own dispatcher (below) relays the outbox, so a test can take it down.
  stack = await startTestStack({ RATE_LIMIT_CAMPAIGN: '100000', RATE_LIMIT_WRITE: '100000', RATE_LIMIT_READ: '100000' });
  db = new pg.Client({ connectionString: inject('databaseUrl') });
  await db.connect();
  orm = await openOrm(inject('databaseUrl'), activityDbTimeouts(testConfig()));
  dispatcher = startOutboxDispatcher(dispatcherDeps());
});
afterAll(async () => {
  await dispatcher?.stop();
  await stack?.close();
  await orm?.close();
  await db?.end();
});

const call = (method: string, path: string, auth: string, body?: unknown) => stack.api.call(method, `/api/v1${path}`, { auth, body });

interface JourneyFixture {
  triggerType?: 'EVENT' | 'SEGMENT_ENTRY' | 'MANUAL';
  triggerConfig?: Record<string, unknown>;
  allowReentry?: boolean;
  status?: string;
  eventTypes?: string[];
}

/** An ACTIVE journey published as version 1: TRIGGER → WAIT 7 days → END (rows, until the journey API lands). */
async function journey(tenant: string, f: JourneyFixture = {}): Promise<string> {
  const triggerType = f.triggerType ?? 'MANUAL';
  const triggerConfig = f.triggerConfig ?? {};
  const { rows: [j] } = await db.query(
    `insert into journeys (tenant_id, name, status, trigger_type, trigger_config, allow_reentry, current_version, activated_at)
     values ($1, $2, $3, $4, $5, $6, 1, now()) returning id`,
    [tenant, `J ${randomUUID().slice(0, 6)}`, f.status ?? 'ACTIVE', triggerType, triggerConfig, f.allowReentry ?? false],
  );
  const [t, w, e] = [randomUUID(), randomUUID(), randomUUID()];
  const step = (id: string, n: number, type: string, config: object, next: string | null) =>
    ({ id, stepNumber: n, type, name: type.toLowerCase(), config, nextStepId: next, nextStepYesId: null, nextStepNoId: null });
  const steps = [step(t, 1, 'TRIGGER', {}, w), step(w, 2, 'WAIT', { duration: 'P7D' }, e), step(e, 3, 'END', {}, null)];
  const eventTypes = f.eventTypes ?? (triggerConfig.exitOn ? [triggerConfig.exitOn as string] : []);
  await db.query(
    `insert into journey_versions (tenant_id, journey_id, version, trigger_type, trigger_config, allow_reentry, steps, event_types)
     values ($1, $2, 1, $3, $4, $5, $6, $7)`,
    [tenant, j.id, triggerType, triggerConfig, f.allowReentry ?? false, JSON.stringify(steps), eventTypes],
  );
  return j.id;
}

const enrollments = async (journeyId: string) =>
  (await db.query(`select * from journey_enrollments where journey_id = $1 order by sequence, enrolled_at`, [journeyId])).rows;
const totals = async (journeyId: string) =>
  (await db.query(`select total_enrolled, total_completed, total_exited from journeys where id = $1`, [journeyId])).rows[0];
const outbox = async (tenant: string, kind: string) =>
  (await db.query(`select key, payload, dispatched_at from reaction_outbox where tenant_id = $1 and kind = $2 order by created_at`, [tenant, kind])).rows;

async function customer(auth: string, fields: Record<string, unknown> = {}): Promise<{ id: string; email: string }> {
  const res = await call('POST', '/customers', auth, { email: `c-${randomUUID().slice(0, 8)}@journey.test`, firstName: 'Jo', ...fields });
  expect(res.status).toBe(201);
  return res.body.data;
}

const upstream = (email: string, over: Record<string, unknown> = {}) => ({
  type: 'membership.joined', category: 'MEMBERSHIP', title: 'Joined', occurredAt: new Date().toISOString(),
  customer: { email }, createCustomer: true, sourceService: 'members', sourceEventId: randomUUID(), metadata: { tier: 'GOLD' }, ...over,
});

/** The run Temporal has for the workflow id, once the dispatcher has handed it over. */
const run = (workflowId: string) =>
  until(`workflow ${workflowId}`, async () => {
    try {
      return await stack.client.workflow.getHandle(workflowId).describe();
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return undefined;
      throw err;
    }
  }, 60_000);

async function history(workflowId: string) {
  const h = await stack.client.workflow.getHandle(workflowId).fetchHistory();
  const started = h.events![0]!.workflowExecutionStartedEventAttributes!;
  const signals = h.events!.filter((e) => e.workflowExecutionSignaledEventAttributes).map((e) => ({
    name: e.workflowExecutionSignaledEventAttributes!.signalName,
    arg: defaultPayloadConverter.fromPayload(e.workflowExecutionSignaledEventAttributes!.input!.payloads![0]!) as Record<string, unknown>,
  }));
  return { type: started.workflowType!.name, input: defaultPayloadConverter.fromPayload(started.input!.payloads![0]!) as Record<string, unknown>, signals };
}

describe('enrolment from upstream events', () => {
  it('enrols once per event, hands the enrolment to Temporal, and makes a second trigger a signal to the same run', async () => {
    const tenant = newTenant();
    const auth = await token(tenant);
    const journeyId = await journey(tenant, { triggerType: 'EVENT', triggerConfig: { event: 'membership.joined', conditions: { tier: 'GOLD' } } });
    const email = `e-${randomUUID().slice(0, 8)}@journey.test`;
    const first = upstream(email);
    expect((await call('POST', '/events', auth, first)).body.data.results[0].status).toBe('created');
    // The same event again (same source id) is a duplicate: it enrols no one twice.
    expect((await call('POST', '/events', auth, first)).body.data.results[0].status).toBe('duplicate');
    // Not matching the conditions: nothing.
    await call('POST', '/events', auth, upstream(email, { metadata: { tier: 'SILVER' } }));

    const [e, ...more] = await enrollments(journeyId);
    expect(more).toEqual([]);
    expect(e).toMatchObject({ status: 'ACTIVE', version: 1, sequence: 1, workflow_id: journeyWorkflowId(journeyId, e.customer_id, 1) });
    expect(e.idempotency_key).toMatch(/^event:/);
    expect(await totals(journeyId)).toMatchObject({ total_enrolled: 1 });

    const description = await run(e.workflow_id);
    expect(description.type).toBe('journeyEnrollmentWorkflow');
    expect(description.typedSearchAttributes.get(TenantId)).toBe(tenant);
    expect(description.typedSearchAttributes.get(JourneyId)).toBe(journeyId);
    expect(description.typedSearchAttributes.get(CustomerId)).toBe(e.customer_id);
    const h = await history(e.workflow_id);
    expect(h.input).toEqual({ tenantId: tenant, journeyId, customerId: e.customer_id, enrollmentId: e.id, version: 1 });
    expect(h.signals).toEqual([{ name: 'event', arg: { type: 'membership.joined', activityId: e.idempotency_key.slice('event:'.length), occurredAt: expect.any(String) } }]);

    // A second matching event while the enrolment runs: a signal to the same run, not a second one.
    const second = upstream(email);
    const res = await call('POST', '/events', auth, second);
    expect(res.body.data.results[0].status).toBe('created');
    expect(await enrollments(journeyId)).toHaveLength(1);
    expect(await totals(journeyId)).toMatchObject({ total_enrolled: 1 });
    const signalled = await until('the second event as a signal', async () => {
      const { signals } = await history(e.workflow_id);
      return signals.length === 2 && signals;
    }, 60_000);
    expect(signalled[1]).toEqual({ name: 'event', arg: { type: 'membership.joined', activityId: res.body.data.results[0].activityId, occurredAt: expect.any(String) } });
  });

  it('enrols in a journey built and activated through the API, on the version it published', async () => {
    const tenant = newTenant();
    const auth = await token(tenant);
    const created = (await call('POST', '/journeys', auth, { name: 'Welcome', triggerType: 'EVENT', triggerConfig: { event: 'member.signed_up' } })).body.data;
    const steps = (await call('GET', `/journeys/${created.id}/steps`, auth)).body.data as { id: string; type: string }[];
    const trigger = steps.find((st) => st.type === 'TRIGGER') ?? (await call('POST', `/journeys/${created.id}/steps`, auth, { type: 'TRIGGER', config: {} })).body.data;
    const wait = (await call('POST', `/journeys/${created.id}/steps`, auth, { type: 'WAIT', config: { duration: 'P3D' }, afterStepId: trigger.id })).body.data;
    await call('POST', `/journeys/${created.id}/steps`, auth, { type: 'END', config: {}, afterStepId: wait.id });
    // Not active yet: the event enrols no one.
    const email = `api-${randomUUID().slice(0, 8)}@journey.test`;
    await call('POST', '/events', auth, upstream(email, { type: 'member.signed_up' }));
    expect(await enrollments(created.id)).toEqual([]);
    expect((await call('POST', `/journeys/${created.id}/activate`, auth)).status).toBe(200);
    await call('POST', '/events', auth, upstream(email, { type: 'member.signed_up' }));
    const [e, ...more] = await enrollments(created.id);
    expect(more).toEqual([]);
    expect(e).toMatchObject({ status: 'ACTIVE', version: 1 });
    await run(e.workflow_id);
    const listed = await call('GET', `/journeys/${created.id}/enrollments`, auth);
    expect(listed.body.data.map((x: { id: string }) => x.id)).toEqual([e.id]);
    expect((await call('GET', `/journeys/${created.id}`, auth)).body.data.totalEnrolled).toBe(1);
  });

  it('enrols no one when the transaction that stored the event rolls back', async () => {
    const tenant = newTenant();
    const auth = await token(tenant);
    const journeyId = await journey(tenant, { triggerType: 'EVENT', triggerConfig: { event: 'membership.joined' } });
    const c = await customer(auth);
    await expect(orm.em.fork().transactional(async (em) => {
      await appendActivities(em, tenant, [{ customerId: c.id, type: 'membership.joined', category: 'MEMBERSHIP', title: 'Joined', occurredAt: new Date() }]);
      // Inside the transaction the enrolment and its outbox row are there...
      const [{ n }] = (await em.execute<{ n: number }[]>(`select count(*)::int as n from reaction_outbox where tenant_id = ? and kind = 'journey-enroll'`, [tenant])) as [{ n: number }];
      expect(n).toBe(1);
      throw new Error('a later step of the same change failed');
    })).rejects.toThrow('a later step');
    // ...and with its rollback both are gone: nothing for the dispatcher to start.
    expect(await enrollments(journeyId)).toEqual([]);
    expect(await outbox(tenant, 'journey-enroll')).toEqual([]);
    expect(await totals(journeyId)).toMatchObject({ total_enrolled: 0 });
  });

  it('delivers campaign interactions to running enrolments that wait for them, but never enrols on them', async () => {
    const tenant = newTenant();
    const auth = await token(tenant);
    const waiting = await journey(tenant, { eventTypes: ['campaign.opened'] });
    const triggeredByOpen = await journey(tenant, { triggerType: 'EVENT', triggerConfig: { event: 'campaign.opened' } });
    const c = await customer(auth);
    const enrolled = await call('POST', `/journeys/${waiting}/enrollments`, auth, { customer: { id: c.id } });
    expect(enrolled.status).toBe(201);
    const [opened] = (await orm.em.fork().transactional((em) => appendActivities(em, tenant, [
      { customerId: c.id, type: 'campaign.opened', category: 'MARKETING', title: 'Opened', occurredAt: new Date() },
    ], INTERACTION_CAUSE))) as AppendedActivity[];
    expect(await enrollments(triggeredByOpen)).toEqual([]);
    const signals = await outbox(tenant, 'journey-signal');
    expect(signals.map((s) => s.key)).toEqual([`${enrolled.body.data.id}:event:${opened!.id}`]);
    expect(signals[0].payload).toMatchObject({ workflowId: enrolled.body.data.workflowId, signal: 'event', arg: { type: 'campaign.opened', activityId: opened!.id } });
  });

  it('ends an enrolment early on its exitOn event (EXITED, counted once)', async () => {
    const tenant = newTenant();
    const auth = await token(tenant);
    const journeyId = await journey(tenant, { triggerType: 'EVENT', triggerConfig: { event: 'membership.joined', exitOn: 'membership.cancelled' } });
    const email = `x-${randomUUID().slice(0, 8)}@journey.test`;
    await call('POST', '/events', auth, upstream(email));
    const [e] = await enrollments(journeyId);
    await run(e.workflow_id);
    const cancel = upstream(email, { type: 'membership.cancelled', title: 'Cancelled' });
    await call('POST', '/events', auth, cancel);
    await call('POST', '/events', auth, upstream(email, { type: 'membership.cancelled', title: 'Cancelled again' }));
    const [after] = await enrollments(journeyId);
    expect(after).toMatchObject({ status: 'EXITED', exit_reason: 'exitOn:membership.cancelled' });
    expect(await totals(journeyId)).toMatchObject({ total_enrolled: 1, total_exited: 1 });
    const exits = (await outbox(tenant, 'journey-signal')).filter((s) => s.payload.signal === 'exit');
    expect(exits).toHaveLength(1);
    expect(exits[0].payload).toMatchObject({ workflowId: e.workflow_id, arg: { reason: 'exitOn:membership.cancelled' } });
    await until('the exit signal reaches the run', async () => (await history(e.workflow_id)).signals.some((s) => s.name === 'exit'), 60_000);
  });
});

describe('the outbox hand-off', () => {
  it('loses no enrolment while the dispatcher is down: it starts the run once it is back, and a repeat is harmless', async () => {
    const tenant = newTenant();
    const auth = await token(tenant);
    const journeyId = await journey(tenant);
    const c = await customer(auth);
    await dispatcher!.stop();
    dispatcher = undefined;
    try {
      const res = await call('POST', `/journeys/${journeyId}/enrollments`, auth, { customer: { id: c.id } });
      expect(res.status).toBe(201);
      // Committed: the enrolment and its outbox row, waiting for a dispatcher.
      const [row] = await outbox(tenant, 'journey-enroll');
      expect(row).toMatchObject({ key: res.body.data.id, payload: { workflowId: journeyWorkflowId(journeyId, c.id, 1) } });
    } finally {
      dispatcher = startOutboxDispatcher(dispatcherDeps());
    }
    const workflowId = journeyWorkflowId(journeyId, c.id, 1);
    await run(workflowId);
    await until('the row marked dispatched', async () => (await outbox(tenant, 'journey-enroll'))[0].dispatched_at);
    // A dispatcher that crashed after Temporal took the run but before marking the row hands it over again.
    await db.query(`update reaction_outbox set dispatched_at = null where tenant_id = $1 and kind = 'journey-enroll'`, [tenant]);
    await until('the row dispatched again', async () => (await outbox(tenant, 'journey-enroll'))[0].dispatched_at);
    const { signals } = await history(workflowId);
    expect(signals.filter((s) => s.name === 'event').length).toBeGreaterThanOrEqual(1);
    expect(signals[0]!.arg).toMatchObject({ type: 'enrolled', activityId: (await enrollments(journeyId))[0].id });
  });

  it('keeps dispatching the other rows when one fails, and tries that one again later', async () => {
    const tenant = newTenant();
    const auth = await token(tenant);
    const { rows: [bad] } = await db.query(
      `insert into reaction_outbox (tenant_id, kind, key, payload) values ($1, 'no-such-kind', 'x', '{}') returning id`, [tenant],
    );
    const journeyId = await journey(tenant);
    const c = await customer(auth);
    await call('POST', `/journeys/${journeyId}/enrollments`, auth, { customer: { id: c.id } });
    await run(journeyWorkflowId(journeyId, c.id, 1));
    const failed = await until('the bad row marked for a retry', async () => {
      const { rows: [r] } = await db.query('select attempts, next_attempt_at, last_error, dispatched_at from reaction_outbox where id = $1', [bad.id]);
      return r.attempts >= 1 && r;
    });
    expect(failed).toMatchObject({ dispatched_at: null, last_error: expect.stringContaining('unknown kind') });
    expect(failed.next_attempt_at.getTime()).toBeGreaterThan(Date.now() - 60_000);
    await db.query('delete from reaction_outbox where id = $1', [bad.id]);
  });
});

describe('POST /journeys/{id}/enrollments', () => {
  it('enrols by id or identifiers, is idempotent on idempotencyKey, and answers the running enrolment to a second call', async () => {
    const tenant = newTenant();
    const auth = await token(tenant);
    const journeyId = await journey(tenant, { allowReentry: true });
    const c = await customer(auth, { phoneNumber: '+27821112233' });
    const first = await call('POST', `/journeys/${journeyId}/enrollments`, auth, { customer: { email: c.email }, idempotencyKey: 'crm-1' });
    expect(first.status).toBe(201);
    expect(first.body.data).toMatchObject({ journeyId, customerId: c.id, status: 'ACTIVE', sequence: 1, version: 1, steps: [], workflowId: journeyWorkflowId(journeyId, c.id, 1) });
    const again = await call('POST', `/journeys/${journeyId}/enrollments`, auth, { customer: { id: c.id }, idempotencyKey: 'crm-1' });
    expect(again.status).toBe(200);
    expect(again.body.data.id).toBe(first.body.data.id);
    // The same key for someone else is a mistake, not a replay.
    const someoneElse = await customer(auth);
    const misused = await call('POST', `/journeys/${journeyId}/enrollments`, auth, { customer: { id: someoneElse.id }, idempotencyKey: 'crm-1' });
    expect(misused.status).toBe(409);
    expect(misused.body.error).toMatchObject({ code: 'CONFLICT', existingId: first.body.data.id });
    const byPhone = await call('POST', `/journeys/${journeyId}/enrollments`, auth, { customer: { phone: '082 111 2233' } });
    expect(byPhone.status).toBe(200);
    expect(byPhone.body.data.id).toBe(first.body.data.id);
    expect(await totals(journeyId)).toMatchObject({ total_enrolled: 1 });

    // Re-entry allowed: after the first ended, a second enrolment with its own run id.
    expect((await call('DELETE', `/journeys/${journeyId}/enrollments/${c.id}`, auth)).status).toBe(204);
    expect((await call('DELETE', `/journeys/${journeyId}/enrollments/${c.id}`, auth)).status).toBe(404);
    const second = await call('POST', `/journeys/${journeyId}/enrollments`, auth, { customer: { id: c.id } });
    expect(second.status).toBe(201);
    expect(second.body.data).toMatchObject({ sequence: 2, workflowId: `${journeyWorkflowId(journeyId, c.id, 1)}-2` });
    // The first key still names the first (ended) enrolment.
    const replay = await call('POST', `/journeys/${journeyId}/enrollments`, auth, { customer: { id: c.id }, idempotencyKey: 'crm-1' });
    expect(replay.status).toBe(200);
    expect(replay.body.data).toMatchObject({ id: first.body.data.id, status: 'EXITED', exitReason: 'api' });
    expect(await totals(journeyId)).toMatchObject({ total_enrolled: 2, total_exited: 1 });
    await run(`${journeyWorkflowId(journeyId, c.id, 1)}-2`);

    const listed = await call('GET', `/journeys/${journeyId}/enrollments?status=EXITED`, auth);
    expect(listed.body.data.map((e: { id: string }) => e.id)).toEqual([first.body.data.id]);
    expect(listed.body.meta).toMatchObject({ total: 1 });
    expect((await call('GET', `/journeys/${journeyId}/enrollments`, auth)).body.meta.total).toBe(2);
  });

  it('an exit through the API closes the step the enrolment was on: none stays ACTIVE, and the stats count it skipped', async () => {
    const tenant = newTenant();
    const auth = await token(tenant);
    const journeyId = await journey(tenant);
    const c = await customer(auth);
    const enrolled = await call('POST', `/journeys/${journeyId}/enrollments`, auth, { customer: { id: c.id } });
    expect(enrolled.status).toBe(201);
    await run(enrolled.body.data.workflowId);
    await until('waiting', async () => (await db.query('select waiting_until from journey_enrollments where id = $1', [enrolled.body.data.id])).rows[0].waiting_until ?? undefined);
    expect((await call('DELETE', `/journeys/${journeyId}/enrollments/${c.id}`, auth)).status).toBe(204);
    await stack.client.workflow.getHandle(enrolled.body.data.workflowId).result();
    const { rows: steps } = await db.query(
      `select v.type, s.status, s.outcome from journey_enrollment_steps s
         join journey_enrollments e on e.id = s.enrollment_id
         join journey_versions v2 on v2.journey_id = e.journey_id and v2.version = e.version
         cross join lateral (select x->>'type' as type from jsonb_array_elements(v2.steps) x where x->>'id' = s.step_id::text) v
        where s.enrollment_id = $1 order by s.started_at`, [enrolled.body.data.id]);
    expect(steps).toEqual([{ type: 'TRIGGER', status: 'COMPLETED', outcome: null }, { type: 'WAIT', status: 'SKIPPED', outcome: 'EXITED' }]);
    const stats = (await call('GET', `/journeys/${journeyId}/stats`, auth)).body.data;
    expect(stats.steps.find((x: { type: string }) => x.type === 'WAIT')).toMatchObject({ active: 0, skipped: 1 });
  });

  it('never runs two at once: ten concurrent enrolments of one customer make one', async () => {
    const tenant = newTenant();
    const auth = await token(tenant);
    const journeyId = await journey(tenant, { allowReentry: true });
    const c = await customer(auth);
    const answers = await Promise.all(Array.from({ length: 10 }, () => call('POST', `/journeys/${journeyId}/enrollments`, auth, { customer: { id: c.id } })));
    expect(answers.map((a) => a.status).sort()).toEqual([200, 200, 200, 200, 200, 200, 200, 200, 200, 201]);
    expect(new Set(answers.map((a) => a.body.data.id)).size).toBe(1);
    expect(await enrollments(journeyId)).toHaveLength(1);
    expect(await totals(journeyId)).toMatchObject({ total_enrolled: 1 });
    expect(await outbox(tenant, 'journey-enroll')).toHaveLength(1);
  });

  it('enrols a customer at most once ever when re-entry is not allowed', async () => {
    const tenant = newTenant();
    const auth = await token(tenant);
    const journeyId = await journey(tenant, { allowReentry: false });
    const c = await customer(auth);
    const first = await call('POST', `/journeys/${journeyId}/enrollments`, auth, { customer: { id: c.id } });
    expect(first.status).toBe(201);
    expect((await call('DELETE', `/journeys/${journeyId}/enrollments/${c.id}`, auth)).status).toBe(204);
    const again = await call('POST', `/journeys/${journeyId}/enrollments`, auth, { customer: { id: c.id } });
    expect(again.status).toBe(409);
    expect(again.body.error).toMatchObject({ code: 'CONFLICT', existingId: first.body.data.id });
  });

  it('an enrolment racing an archive waits for it, and is refused once it commits: no ACTIVE enrolment in an ARCHIVED journey', async () => {
    const tenant = newTenant();
    const auth = await token(tenant);
    const journeyId = await journey(tenant);
    const c = await customer(auth);
    const archive = new pg.Client({ connectionString: inject('databaseUrl') });
    await archive.connect();
    try {
      await archive.query('begin');
      await archive.query(`update journeys set status = 'ARCHIVED' where id = $1`, [journeyId]);
      const [{ pid }] = (await archive.query('select pg_backend_pid() as pid')).rows;
      const enrolled = call('POST', `/journeys/${journeyId}/enrollments`, auth, { customer: { id: c.id } });
      await until('the enrolment waits for the archive', async () => (await db.query('select 1 from pg_stat_activity where $1 = any(pg_blocking_pids(pid))', [pid])).rowCount || undefined);
      await archive.query('commit');
      const res = await enrolled;
      expect([res.status, res.body.error?.code]).toEqual([409, 'INVALID_STATE']);
    } finally {
      await archive.end();
    }
    expect(await enrollments(journeyId)).toEqual([]);
  });

  it('refuses a journey that is not ACTIVE, an unknown customer, and a missing customer', async () => {
    const tenant = newTenant();
    const auth = await token(tenant);
    const paused = await journey(tenant, { status: 'PAUSED' });
    const active = await journey(tenant);
    const c = await customer(auth);
    const res = await call('POST', `/journeys/${paused}/enrollments`, auth, { customer: { id: c.id } });
    expect(res.status).toBe(409);
    expect(res.body.error.code).toBe('INVALID_STATE');
    expect((await call('POST', `/journeys/${active}/enrollments`, auth, { customer: { email: 'nobody@journey.test' } })).status).toBe(404);
    expect((await call('POST', `/journeys/${active}/enrollments`, auth, { customer: { id: randomUUID() } })).status).toBe(404);
    expect((await call('POST', `/journeys/${active}/enrollments`, auth, { customer: {} })).status).toBe(400);
    expect((await call('POST', `/journeys/${randomUUID()}/enrollments`, auth, { customer: { id: c.id } })).status).toBe(404);
    expect(await enrollments(paused)).toEqual([]);
  });
});

describe('segment entries, merges and deletes', () => {
  it('enrols customers entering the segment of a SEGMENT_ENTRY journey', async () => {
    const tenant = newTenant();
    const auth = await token(tenant);
    const segment = (await call('POST', '/segments', auth, { name: 'Gold', type: 'SMART', criteria: { field: 'membershipTier', op: 'eq', value: 'GOLD' } })).body.data;
    const journeyId = await journey(tenant, { triggerType: 'SEGMENT_ENTRY', triggerConfig: { segmentId: segment.id } });
    const silver = await customer(auth, { membershipTier: 'SILVER' });
    expect(await enrollments(journeyId)).toEqual([]);
    await call('PATCH', `/customers/${silver.id}`, auth, { membershipTier: 'GOLD' });
    const gold = await customer(auth, { membershipTier: 'GOLD' });
    await stack.api.settled(tenant);
    const rows = await enrollments(journeyId);
    expect(rows.map((r) => r.customer_id).sort()).toEqual([silver.id, gold.id].sort());
    expect(rows.every((r) => /^segment-entry:\d+$/.test(r.idempotency_key))).toBe(true);
    // Leaving and entering again is a new entry, but re-entry is not allowed here.
    await call('PATCH', `/customers/${gold.id}`, auth, { membershipTier: 'SILVER' });
    await stack.api.settled(tenant);
    await call('PATCH', `/customers/${gold.id}`, auth, { membershipTier: 'GOLD' });
    await stack.api.settled(tenant);
    expect((await db.query(`select change from segment_membership_changes where segment_id = $1 and customer_id = $2 order by id`, [segment.id, gold.id])).rows)
      .toEqual([{ change: 'ENTERED' }, { change: 'EXITED' }, { change: 'ENTERED' }]);
    expect(await enrollments(journeyId)).toHaveLength(2);
    await run(journeyWorkflowId(journeyId, gold.id, 1));
  });

  it('enrols on entries whatever the case its trigger wrote the segment id in', async () => {
    const tenant = newTenant();
    const auth = await token(tenant);
    const segment = (await call('POST', '/segments', auth, { name: 'Caps', type: 'SMART', criteria: { field: 'membershipTier', op: 'eq', value: 'CAPS' } })).body.data;
    // As stored before trigger configs were kept as read (ids lower-case).
    const journeyId = await journey(tenant, { triggerType: 'SEGMENT_ENTRY', triggerConfig: { segmentId: segment.id.toUpperCase() } });
    const c = await customer(auth, { membershipTier: 'CAPS' });
    await stack.api.settled(tenant);
    expect((await enrollments(journeyId)).map((r) => r.customer_id)).toEqual([c.id]);
  });

  it('enrols customers a refresh workflow finds entering a DYNAMIC segment', async () => {
    const tenant = newTenant();
    const auth = await token(tenant);
    const segment = (await call('POST', '/segments', auth, { name: 'Eagles', type: 'DYNAMIC', criteria: { field: 'membershipTier', op: 'eq', value: 'EAGLE' } })).body.data;
    const journeyId = await journey(tenant, { triggerType: 'SEGMENT_ENTRY', triggerConfig: { segmentId: segment.id } });
    const c = await customer(auth, { membershipTier: 'EAGLE' });
    expect(await enrollments(journeyId)).toEqual([]);
    const refreshed = await call('POST', `/segments/${segment.id}/refresh`, auth);
    expect(refreshed.body.data).toMatchObject({ added: 1 });
    expect((await enrollments(journeyId)).map((e) => e.customer_id)).toEqual([c.id]);
    await run(journeyWorkflowId(journeyId, c.id, 1));
  });

  it('enrols customers a journey\'s UPDATE step adds to a STATIC segment', async () => {
    const tenant = newTenant();
    const auth = await token(tenant);
    const fans = (await call('POST', '/segments', auth, { name: 'Fans', type: 'STATIC' })).body.data;
    const follow = await journey(tenant, { triggerType: 'SEGMENT_ENTRY', triggerConfig: { segmentId: fans.id } });
    const adder = (await call('POST', '/journeys', auth, { name: 'Adder', triggerType: 'MANUAL', triggerConfig: {} })).body.data;
    const steps = (await call('GET', `/journeys/${adder.id}/steps`, auth)).body.data as { id: string; type: string }[];
    const trigger = steps.find((st) => st.type === 'TRIGGER') ?? (await call('POST', `/journeys/${adder.id}/steps`, auth, { type: 'TRIGGER', config: {} })).body.data;
    const update = (await call('POST', `/journeys/${adder.id}/steps`, auth, { type: 'UPDATE', config: { addToSegment: fans.id }, afterStepId: trigger.id })).body.data;
    await call('POST', `/journeys/${adder.id}/steps`, auth, { type: 'END', config: {}, afterStepId: update.id });
    expect((await call('POST', `/journeys/${adder.id}/activate`, auth)).status).toBe(200);
    const c = await customer(auth);
    expect((await call('POST', `/journeys/${adder.id}/enrollments`, auth, { customer: { id: c.id } })).status).toBe(201);
    const [e] = await until('the entry enrolled', async () => {
      const rows = await enrollments(follow);
      return rows.length > 0 && rows;
    }, 60_000);
    expect(e).toMatchObject({ customer_id: c.id, status: 'ACTIVE' });
    expect(e.idempotency_key).toMatch(/^segment-entry:\d+$/);
  });

  it('ends the loser\'s running enrolments on a merge and keeps the totals exact', async () => {
    const tenant = newTenant();
    const auth = await token(tenant);
    const both = await journey(tenant);
    const loserOnly = await journey(tenant);
    const winner = await customer(auth);
    const loser = await customer(auth);
    for (const [j, c] of [[both, winner], [both, loser], [loserOnly, loser]] as const) {
      expect((await call('POST', `/journeys/${j}/enrollments`, auth, { customer: { id: c.id } })).status).toBe(201);
    }
    const merged = await call('POST', '/customers/merge', auth, { winnerId: winner.id, loserId: loser.id });
    expect(merged.status).toBe(200);
    const inBoth = await enrollments(both);
    // Both rows are the winner's now; the loser's ended (numbered after the winner's own).
    expect(inBoth.map((e) => [e.customer_id, e.sequence, e.status, e.exit_reason])).toEqual([
      [winner.id, 1, 'ACTIVE', null],
      [winner.id, 2, 'EXITED', 'merged'],
    ]);
    expect((await enrollments(loserOnly)).map((e) => [e.customer_id, e.status, e.exit_reason])).toEqual([[winner.id, 'EXITED', 'merged']]);
    expect(await totals(both)).toMatchObject({ total_enrolled: 2, total_exited: 1 });
    expect(await totals(loserOnly)).toMatchObject({ total_enrolled: 1, total_exited: 1 });
    const exits = (await outbox(tenant, 'journey-signal')).filter((s) => s.payload.signal === 'exit');
    expect(exits.map((s) => s.payload.workflowId).sort()).toEqual([journeyWorkflowId(both, loser.id, 1), journeyWorkflowId(loserOnly, loser.id, 1)].sort());
  });

  it('exits a deleted customer\'s running enrolments', async () => {
    const tenant = newTenant();
    const auth = await token(tenant);
    const journeyId = await journey(tenant);
    const c = await customer(auth);
    await call('POST', `/journeys/${journeyId}/enrollments`, auth, { customer: { id: c.id } });
    expect((await call('PATCH', `/customers/${c.id}`, auth, { status: 'DELETED' })).status).toBe(200);
    expect((await enrollments(journeyId)).map((e) => [e.status, e.exit_reason])).toEqual([['EXITED', 'deleted']]);
    expect(await totals(journeyId)).toMatchObject({ total_enrolled: 1, total_exited: 1 });
    // A deleted (or merged) profile is never enrolled again.
    const again = await call('POST', `/journeys/${journeyId}/enrollments`, auth, { customer: { id: c.id } });
    expect(again.status).toBe(409);
    expect(again.body.error.code).toBe('INVALID_STATE');
    const direct = await orm.em.fork().transactional((em) => enrollCustomers(em, tenant, [{ journeyId, customerId: c.id, idempotencyKey: 'x' }]));
    expect(direct[0]!.outcome).toBe('ineligible');
  });
});

describe('GraphQL, tenancy and scopes', () => {
  it('reads enrolments with their steps, enrols and exits', async () => {
    const tenant = newTenant();
    const auth = await token(tenant);
    const journeyId = await journey(tenant);
    const c = await customer(auth);
    const enrolled = await stack.api.graphql(auth, `mutation($j: ID!, $c: ID!) { enrollCustomerInJourney(journeyId: $j, customerId: $c) { id status journey { id totalEnrolled } customer { id } } }`, { j: journeyId, c: c.id });
    expect(enrolled.body.errors).toBeUndefined();
    const e = enrolled.body.data.enrollCustomerInJourney;
    expect(e).toMatchObject({ status: 'ACTIVE', journey: { id: journeyId, totalEnrolled: 1 }, customer: { id: c.id } });
    // Step records, as the interpreter writes them (TRIGGER done, waiting at the WAIT), in the order
    // the steps were first reached.
    const query = `query($j: ID!, $c: ID!) {
      journeyEnrollments(journeyId: $j, status: ACTIVE) { totalCount edges { cursor node { id waitingUntil steps { stepId stepName status startedAt completedAt } } } }
      customer(id: $c) { journeyEnrollments { id status } }
    }`;
    const read = await until('the enrolment waiting at its WAIT step', async () => {
      const r = await stack.api.graphql(auth, query, { j: journeyId, c: c.id });
      return r.body.data?.journeyEnrollments.edges[0]?.node.waitingUntil && r;
    });
    expect(read.body.errors).toBeUndefined();
    expect(read.body.data.journeyEnrollments.totalCount).toBe(1);
    expect(read.body.data.journeyEnrollments.edges[0].node.steps.map((s: { stepName: string; status: string }) => [s.stepName, s.status]))
      .toEqual([['trigger', 'COMPLETED'], ['wait', 'ACTIVE']]);
    expect(read.body.data.customer.journeyEnrollments).toEqual([{ id: e.id, status: 'ACTIVE' }]);
    const exit = `mutation($j: ID!, $c: ID!) { exitCustomerFromJourney(journeyId: $j, customerId: $c) }`;
    expect((await stack.api.graphql(auth, exit, { j: journeyId, c: c.id })).body.data.exitCustomerFromJourney).toBe(true);
    expect((await stack.api.graphql(auth, exit, { j: journeyId, c: c.id })).body.data.exitCustomerFromJourney).toBe(false);
    expect(await totals(journeyId)).toMatchObject({ total_enrolled: 1, total_exited: 1 });
  });

  it('keeps tenants apart and needs crm:campaigns to enrol or exit', async () => {
    const tenant = newTenant();
    const auth = await token(tenant);
    const journeyId = await journey(tenant);
    const c = await customer(auth);
    const other = await token(newTenant());
    expect((await call('POST', `/journeys/${journeyId}/enrollments`, other, { customer: { id: c.id } })).status).toBe(404);
    expect((await call('GET', `/journeys/${journeyId}/enrollments`, other)).status).toBe(404);
    expect((await call('DELETE', `/journeys/${journeyId}/enrollments/${c.id}`, other)).status).toBe(404);
    const reader = await token(tenant, ['crm:read']);
    expect((await call('POST', `/journeys/${journeyId}/enrollments`, reader, { customer: { id: c.id } })).status).toBe(403);
    expect((await call('DELETE', `/journeys/${journeyId}/enrollments/${c.id}`, reader)).status).toBe(403);
    expect((await call('GET', `/journeys/${journeyId}/enrollments`, reader)).status).toBe(200);
    // Another tenant's journey with this tenant's customer: still nothing.
    const otherTenant = newTenant();
    const otherJourney = await journey(otherTenant);
    expect((await call('POST', `/journeys/${otherJourney}/enrollments`, auth, { customer: { id: c.id } })).status).toBe(404);
    expect(await enrollments(journeyId)).toEqual([]);
    expect(await enrollments(otherJourney)).toEqual([]);
  });
});

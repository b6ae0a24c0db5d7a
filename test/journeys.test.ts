import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { newTenant, startTestApi, token, type TestApi } from './support/api.js';

// The journey builder over real HTTP (REST and GraphQL) and PostgreSQL: journeys, steps and their
// links, whole-graph validation listing every fault, the lifecycle, versions published by edits of
// an ACTIVE journey, the JOURNEY campaign, and tenancy.

let api: TestApi;
let db: pg.Client;

beforeAll(async () => {
  api = await startTestApi({ RATE_LIMIT_WRITE: '100000', RATE_LIMIT_READ: '100000' });
  db = new pg.Client({ connectionString: inject('databaseUrl') });
  await db.connect();
});
afterAll(async () => {
  await db?.end();
  await api?.close();
});

const call = (method: string, path: string, auth: string, body?: unknown) => api.call(method, `/api/v1${path}`, { auth, body });

async function ok(res: Promise<{ status: number; body: any }> | { status: number; body: any }, status = 200) {
  const r = await res;
  expect(r.status, JSON.stringify(r.body)).toBe(status);
  return r.body.data;
}

function expectInvalid(res: { status: number; body: any }, field: string) {
  expect(res.status, JSON.stringify(res.body)).toBe(400);
  expect(res.body.error.code).toBe('VALIDATION_ERROR');
  expect(res.body.error.field).toBe(field);
}

async function tenantWith() {
  const tenant = newTenant();
  const auth = await token(tenant);
  const email = await ok(call('POST', '/templates', auth, { name: 'Welcome', channel: 'EMAIL', subject: 'Welcome', body: '<p>Hi {{ firstName }}</p>' }), 201);
  const sms = await ok(call('POST', '/templates', auth, { name: 'Nudge', channel: 'SMS', body: 'Hi {{ firstName }}' }), 201);
  const staticSegment = await ok(call('POST', '/segments', auth, { name: `Static ${randomUUID().slice(0, 6)}`, type: 'STATIC' }), 201);
  return { tenant, auth, email: email.id as string, sms: sms.id as string, segment: staticSegment.id as string };
}

async function createJourney(auth: string, body: Record<string, unknown> = {}) {
  return ok(call('POST', '/journeys', auth, {
    name: 'Welcome series', triggerType: 'EVENT', triggerConfig: { event: 'member.joined', exitOn: 'member.left' }, timezone: 'Africa/Johannesburg', ...body,
  }), 201);
}
const addStep = (auth: string, journeyId: string, body: Record<string, unknown>) => ok(call('POST', `/journeys/${journeyId}/steps`, auth, body), 201);
const steps = async (auth: string, journeyId: string) => ok(call('GET', `/journeys/${journeyId}/steps`, auth)) as Promise<any[]>;
const byId = async (auth: string, journeyId: string) => new Map((await steps(auth, journeyId)).map((s) => [s.id, s]));

/** TRIGGER → SEND email → WAIT → CONDITION (yes: END; no: SEND sms → END): a shared END. */
async function welcome(t: Awaited<ReturnType<typeof tenantWith>>) {
  const journey = await createJourney(t.auth);
  const trigger = await addStep(t.auth, journey.id, { type: 'TRIGGER', name: 'Joined', config: {} });
  const end = await addStep(t.auth, journey.id, { type: 'END', config: {}, afterStepId: trigger.id });
  const send = await addStep(t.auth, journey.id, { type: 'SEND', name: 'Welcome email', config: { channel: 'EMAIL', templateId: t.email }, afterStepId: trigger.id });
  const wait = await addStep(t.auth, journey.id, { type: 'WAIT', config: { untilEvent: 'email.opened', timeout: 'P3D' }, afterStepId: send.id });
  const condition = await addStep(t.auth, journey.id, { type: 'CONDITION', name: 'Opted in?', config: { criteria: { field: 'emailOptIn', op: 'eq', value: true } } });
  const sms = await addStep(t.auth, journey.id, { type: 'SEND', config: { channel: 'SMS', templateId: t.sms } });
  await ok(call('PATCH', `/journeys/${journey.id}/steps/${wait.id}`, t.auth, { nextStepId: condition.id }));
  await ok(call('PATCH', `/journeys/${journey.id}/steps/${condition.id}`, t.auth, { nextStepYesId: end.id, nextStepNoId: sms.id }));
  await ok(call('PATCH', `/journeys/${journey.id}/steps/${sms.id}`, t.auth, { nextStepId: end.id }));
  return { journey, trigger, end, send, wait, condition, sms };
}

describe('journey builder', () => {
  it('links steps in: afterStepId takes over the next step, without it a step is unlinked; links clear with null; a delete relinks', async () => {
    const t = await tenantWith();
    const w = await welcome(t);
    expect(w.journey).toMatchObject({ status: 'DRAFT', currentVersion: 0, campaignId: null, timezone: 'Africa/Johannesburg', triggerType: 'EVENT' });
    let s = await byId(t.auth, w.journey.id);
    // Inserted in the middle: TRIGGER → SEND → WAIT → CONDITION, END shared by two branches.
    expect(s.get(w.trigger.id)!.nextStepId).toBe(w.send.id);
    expect(s.get(w.send.id)!.nextStepId).toBe(w.wait.id);
    expect(s.get(w.wait.id)!.nextStepId).toBe(w.condition.id);
    expect(s.get(w.condition.id)).toMatchObject({ nextStepYesId: w.end.id, nextStepNoId: w.sms.id, nextStepId: null });
    expect(s.get(w.sms.id)!.nextStepId).toBe(w.end.id);
    expect(w.sms.nextStepId).toBeNull(); // added unlinked
    expect((await steps(t.auth, w.journey.id)).map((x) => x.stepNumber)).toEqual([1, 2, 3, 4, 5, 6]);

    // An explicit null clears a link; a link left out stays.
    const cleared = await ok(call('PATCH', `/journeys/${w.journey.id}/steps/${w.condition.id}`, t.auth, { nextStepNoId: null, name: 'Still opted in?' }));
    expect(cleared).toMatchObject({ nextStepYesId: w.end.id, nextStepNoId: null, name: 'Still opted in?' });
    await ok(call('PATCH', `/journeys/${w.journey.id}/steps/${w.condition.id}`, t.auth, { nextStepNoId: w.sms.id }));

    // Deleting the WAIT: the SEND now goes where the WAIT went.
    expect(await ok(call('DELETE', `/journeys/${w.journey.id}/steps/${w.wait.id}`, t.auth))).toEqual({ deleted: true });
    s = await byId(t.auth, w.journey.id);
    expect(s.has(w.wait.id)).toBe(false);
    expect(s.get(w.send.id)!.nextStepId).toBe(w.condition.id);
    // Deleting the END that two steps lead to: both lead nowhere now (it led nowhere).
    await ok(call('DELETE', `/journeys/${w.journey.id}/steps/${w.end.id}`, t.auth));
    s = await byId(t.auth, w.journey.id);
    expect(s.get(w.condition.id)!.nextStepYesId).toBeNull();
    expect(s.get(w.sms.id)!.nextStepId).toBeNull();
    // A new step numbers after the highest.
    const again = await addStep(t.auth, w.journey.id, { type: 'END', config: {} });
    expect(again.stepNumber).toBe(7);

    // Refused: a step after a CONDITION (which branch?), a bad config naming its field, a link out of the journey.
    expectInvalid(await call('POST', `/journeys/${w.journey.id}/steps`, t.auth, { type: 'END', config: {}, afterStepId: w.condition.id }), 'input.afterStepId');
    expectInvalid(await call('POST', `/journeys/${w.journey.id}/steps`, t.auth, { type: 'WAIT', config: { duration: 'three days' } }), 'input.config.duration');
    expectInvalid(await call('POST', `/journeys/${w.journey.id}/steps`, t.auth, { type: 'SEND', config: { channel: 'EMAIL' } }), 'input.config.templateId');
    expectInvalid(await call('PATCH', `/journeys/${w.journey.id}/steps/${w.send.id}`, t.auth, { type: 'WAIT' }), 'input.config');
    const other = await createJourney(t.auth);
    const foreign = await addStep(t.auth, other.id, { type: 'END', config: {} });
    expectInvalid(await call('PATCH', `/journeys/${w.journey.id}/steps/${w.send.id}`, t.auth, { nextStepId: foreign.id }), 'input.nextStepId');
    expect((await call('PATCH', `/journeys/${w.journey.id}/steps/${foreign.id}`, t.auth, { name: 'x' })).status).toBe(404);
    expectInvalid(await call('POST', '/journeys', t.auth, { name: 'x', triggerType: 'EVENT', triggerConfig: {} }), 'input.triggerConfig.event');
    expectInvalid(await call('POST', '/journeys', t.auth, { name: 'x', triggerType: 'MANUAL', timezone: 'africa/johannesburg' }), 'timezone');
    expectInvalid(await call('POST', '/journeys', t.auth, { name: 'x', triggerType: 'WHENEVER' }), 'triggerType');
  });

  it('lists every fault of the graph at once when activating', async () => {
    const t = await tenantWith();
    // A DYNAMIC segment, as a row (creating one through the API waits for its first refresh).
    const dynamic = (await db.query(
      `insert into segments (tenant_id, name, type, criteria) values ($1, 'Gold', 'DYNAMIC', $2) returning id`,
      [t.tenant, JSON.stringify({ field: 'membershipTier', op: 'eq', value: 'GOLD' })],
    )).rows[0];
    const missing = randomUUID();
    const journey = await createJourney(t.auth, { triggerType: 'SEGMENT_ENTRY', triggerConfig: { segmentId: missing } });
    const id = journey.id;
    const trigger = await addStep(t.auth, id, { type: 'TRIGGER', config: {} });
    const noTemplate = await addStep(t.auth, id, { type: 'SEND', config: { channel: 'EMAIL', templateId: randomUUID() }, afterStepId: trigger.id });
    const wrongKind = await addStep(t.auth, id, { type: 'SEND', config: { channel: 'SMS', templateId: t.email }, afterStepId: noTemplate.id });
    const condition = await addStep(t.auth, id, { type: 'CONDITION', config: { inSegment: randomUUID() } });
    await ok(call('PATCH', `/journeys/${id}/steps/${wrongKind.id}`, t.auth, { nextStepId: condition.id }));
    const loopA = await addStep(t.auth, id, { type: 'UPDATE', config: { addToSegment: dynamic.id } });
    const loopB = await addStep(t.auth, id, { type: 'UPDATE', config: { set: { lifecycleStage: 'ADVOCATE' } }, afterStepId: loopA.id });
    await ok(call('PATCH', `/journeys/${id}/steps/${loopB.id}`, t.auth, { nextStepId: loopA.id }));
    await ok(call('PATCH', `/journeys/${id}/steps/${condition.id}`, t.auth, { nextStepYesId: loopA.id }));
    const secondTrigger = await addStep(t.auth, id, { type: 'TRIGGER', config: {} });
    const orphan = await addStep(t.auth, id, { type: 'END', config: {} });
    await ok(call('PATCH', `/journeys/${id}/steps/${secondTrigger.id}`, t.auth, { nextStepId: orphan.id }));
    const unreachable = await addStep(t.auth, id, { type: 'END', config: {} });
    void unreachable;

    const res = await call('POST', `/journeys/${id}/activate`, t.auth);
    expect(res.status, JSON.stringify(res.body)).toBe(400);
    expect(res.body.error.code).toBe('VALIDATION_ERROR');
    const faults = new Map<string, string>((res.body.error.faults as { field: string; message: string }[]).map((f) => [f.field, f.message]));
    // Steps by index in stepNumber order: 0 trigger, 1 noTemplate, 2 wrongKind, 3 condition, 4 loopA, 5 loopB, 6 secondTrigger, 7 orphan, 8 unreachable.
    expect(faults.get('steps[6]')).toMatch(/exactly one TRIGGER step; found 2/);
    expect(faults.get('steps[8]')).toMatch(/not reachable from the TRIGGER/);
    expect(faults.get('steps[3].nextStepNoId')).toMatch(/needs both branches/);
    expect(faults.get('steps[4]')).toMatch(/loop without a WAIT/);
    expect(faults.get('steps[1].config.templateId')).toMatch(/not found/);
    expect(faults.get('steps[2].config.templateId')).toMatch(/is a EMAIL template; a SMS step needs a text/);
    expect(faults.get('steps[3].config.inSegment')).toMatch(/segment .* not found/);
    expect(faults.get('steps[4].config.addToSegment')).toMatch(/is DYNAMIC; addToSegment needs a STATIC segment/);
    expect(faults.get('triggerConfig.segmentId')).toMatch(/not found/);
    expect(res.body.error.message).toMatch(/not valid \(\d+ faults\)/);
    // Nothing was published.
    expect(await ok(call('GET', `/journeys/${id}`, t.auth))).toMatchObject({ status: 'DRAFT', currentVersion: 0, campaignId: null });
    expect((await db.query('select 1 from journey_versions where journey_id = $1', [id])).rowCount).toBe(0);

    // GraphQL answers the same faults in extensions.
    const gql = await api.graphql(t.auth, 'mutation($id: ID!) { activateJourney(id: $id) { id } }', { id });
    expect(gql.body.errors[0].extensions.code).toBe('VALIDATION_ERROR');
    expect(gql.body.errors[0].extensions.faults.length).toBe(faults.size);
  });

  it('activates, versions edits of an ACTIVE journey (or refuses them, writing nothing), pauses and archives', async () => {
    const t = await tenantWith();
    const w = await welcome(t);
    const id = w.journey.id;
    const active = await ok(call('POST', `/journeys/${id}/activate`, t.auth));
    expect(active).toMatchObject({ status: 'ACTIVE', currentVersion: 1 });
    expect(active.activatedAt).toBeTruthy();
    const v1 = (await db.query('select * from journey_versions where journey_id = $1 order by version', [id])).rows;
    expect(v1).toHaveLength(1);
    expect(v1[0]).toMatchObject({ tenant_id: t.tenant, version: 1, trigger_type: 'EVENT', timezone: 'Africa/Johannesburg', event_types: ['email.opened', 'member.left'] });
    expect(v1[0].steps.map((s: any) => s.id)).toEqual((await steps(t.auth, id)).map((s) => s.id));

    // The JOURNEY campaign: created by the activation, refusing the campaign's own controls.
    const campaign = await ok(call('GET', `/campaigns/${active.campaignId}`, t.auth));
    expect(campaign).toMatchObject({ type: 'JOURNEY', status: 'ACTIVE', name: 'Welcome series', channels: ['EMAIL', 'SMS'] });
    for (const [method, path, body] of [
      ['POST', 'pause'], ['POST', 'resume'], ['POST', 'cancel'], ['POST', 'execute'], ['POST', 'schedule', { scheduledAt: new Date(Date.now() + 86_400_000).toISOString() }], ['PATCH', '', { name: 'Mine now' }],
    ] as [string, string, unknown?][]) {
      const res = await call(method, `/campaigns/${active.campaignId}${path ? `/${path}` : ''}`, t.auth, body);
      expect(res.status, `${method} ${path}: ${JSON.stringify(res.body)}`).toBe(409);
      expect(res.body.error.code).toBe('INVALID_STATE');
      expect(res.body.error.message).toContain(`controlled by its journey ${id}`);
    }
    expectInvalid(await call('POST', '/campaigns', t.auth, { name: 'x', type: 'JOURNEY', channels: ['EMAIL'] }), 'input.type');

    // A valid edit of the ACTIVE journey publishes version 2 with it.
    await ok(call('PATCH', `/journeys/${id}/steps/${w.send.id}`, t.auth, { name: 'Welcome email v2' }));
    expect(await ok(call('GET', `/journeys/${id}`, t.auth))).toMatchObject({ currentVersion: 2 });
    let versions = (await db.query('select version, steps from journey_versions where journey_id = $1 order by version', [id])).rows;
    expect(versions.map((v) => v.version)).toEqual([1, 2]);
    expect(versions[1].steps.find((s: any) => s.id === w.send.id).name).toBe('Welcome email v2');
    expect(versions[0].steps.find((s: any) => s.id === w.send.id).name).toBe('Welcome email');
    // A change that leaves the published graph as it is (the journey's name) publishes nothing.
    await ok(call('PATCH', `/journeys/${id}`, t.auth, { name: 'Welcome series (2026)' }));
    expect((await ok(call('GET', `/journeys/${id}`, t.auth))).currentVersion).toBe(2);

    // Invalid edits of an ACTIVE journey: refused with every fault, nothing written.
    const res = await call('PATCH', `/journeys/${id}/steps/${w.condition.id}`, t.auth, { nextStepNoId: null });
    expect(res.status).toBe(400);
    expect(res.body.error.faults.map((f: any) => f.field)).toEqual(['steps[4].nextStepNoId', 'steps[5]']);
    expect((await byId(t.auth, id)).get(w.condition.id)!.nextStepNoId).toBe(w.sms.id);
    const noTrigger = await call('DELETE', `/journeys/${id}/steps/${w.trigger.id}`, t.auth);
    expect(noTrigger.status).toBe(400);
    expect(noTrigger.body.error.faults[0].message).toMatch(/exactly one TRIGGER step; found none/);
    expect((await byId(t.auth, id)).has(w.trigger.id)).toBe(true);
    expect((await call('POST', `/journeys/${id}/steps`, t.auth, { type: 'SEND', config: { channel: 'EMAIL', templateId: randomUUID() }, afterStepId: w.send.id })).status).toBe(400);
    expect((await steps(t.auth, id)).length).toBe(6);
    expectInvalid(await call('PATCH', `/journeys/${id}`, t.auth, { triggerConfig: { event: 'member.joined', exitOn: '' } }), 'input.triggerConfig.exitOn');
    versions = (await db.query('select version from journey_versions where journey_id = $1', [id])).rows;
    expect(versions).toHaveLength(2);

    // Two concurrent edits: each gets its own version, in turn.
    const [a, b] = await Promise.all([
      call('PATCH', `/journeys/${id}/steps/${w.sms.id}`, t.auth, { name: 'Nudge A' }),
      call('PATCH', `/journeys/${id}/steps/${w.end.id}`, t.auth, { name: 'Done B' }),
    ]);
    expect([a.status, b.status]).toEqual([200, 200]);
    versions = (await db.query('select version, steps from journey_versions where journey_id = $1 order by version', [id])).rows;
    expect(versions.map((v) => v.version)).toEqual([1, 2, 3, 4]);
    expect(versions[3].steps.map((s: any) => s.name)).toEqual(expect.arrayContaining(['Nudge A', 'Done B']));

    // Transitions and their refusals.
    const again = await call('POST', `/journeys/${id}/activate`, t.auth);
    expect(again.status).toBe(409);
    expect(again.body.error).toMatchObject({ code: 'INVALID_STATE' });
    expect(again.body.error.message).toMatch(/is ACTIVE: cannot activate it; allowed: pause, archive/);

    // Customers: one enrolled (a row, as the enrolment service writes it).
    const customer = await ok(call('POST', '/customers', t.auth, { email: `j-${randomUUID().slice(0, 8)}@example.com` }), 201);
    const enrollment = (await db.query(
      `insert into journey_enrollments (tenant_id, journey_id, customer_id, status, version, workflow_id) values ($1, $2, $3, 'ACTIVE', 4, $4) returning id`,
      [t.tenant, id, customer.id, `journey-${id}-${customer.id}`],
    )).rows[0].id;
    await db.query('update journeys set total_enrolled = total_enrolled + 1 where id = $1', [id]);

    expect(await ok(call('POST', `/journeys/${id}/pause`, t.auth))).toMatchObject({ status: 'PAUSED' });
    const paused = await call('POST', `/journeys/${id}/pause`, t.auth);
    expect(paused.status).toBe(409);
    expect(paused.body.error.message).toMatch(/is PAUSED: cannot pause it; allowed: activate, archive/);
    // A PAUSED journey takes any edit; activation validates it.
    await ok(call('PATCH', `/journeys/${id}/steps/${w.condition.id}`, t.auth, { nextStepNoId: null }));
    expect((await call('POST', `/journeys/${id}/activate`, t.auth)).status).toBe(400);
    await ok(call('PATCH', `/journeys/${id}/steps/${w.condition.id}`, t.auth, { nextStepNoId: w.sms.id }));
    // Back as it was published: reactivating publishes nothing new.
    expect(await ok(call('POST', `/journeys/${id}/activate`, t.auth))).toMatchObject({ status: 'ACTIVE', currentVersion: 4, campaignId: active.campaignId });
    const signals = async (signal: string) => (await db.query(
      `select payload from reaction_outbox where tenant_id = $1 and kind = 'journey-signal' and key like $2`, [t.tenant, `${enrollment}:${signal}:%`],
    )).rows;
    expect(await signals('pause')).toHaveLength(1);
    expect(await signals('resume')).toHaveLength(1);

    // Archive: the running enrolment exits, counted exactly, and its workflow is told.
    const archived = await ok(call('POST', `/journeys/${id}/archive`, t.auth));
    expect(archived).toMatchObject({ status: 'ARCHIVED', totalEnrolled: 1, totalExited: 1 });
    expect((await db.query('select status, exit_reason, exited_at from journey_enrollments where id = $1', [enrollment])).rows[0]).toMatchObject({ status: 'EXITED', exit_reason: 'archived' });
    expect(await signals('exit')).toEqual([{ payload: { workflowId: `journey-${id}-${customer.id}`, signal: 'exit', arg: { reason: 'archived' } } }]);
    for (const [method, path, body] of [
      ['POST', 'archive'], ['POST', 'activate'], ['POST', 'pause'], ['PATCH', '', { name: 'x' }], ['POST', 'steps', { type: 'END', config: {} }],
      ['PATCH', `steps/${w.end.id}`, { name: 'x' }], ['DELETE', `steps/${w.end.id}`],
    ] as [string, string, unknown?][]) {
      const r = await call(method, `/journeys/${id}${path ? `/${path}` : ''}`, t.auth, body);
      expect(r.status, `${method} ${path}`).toBe(409);
      expect(r.body.error.message).toMatch(/is ARCHIVED/);
    }

    // Per-step stats of the current version.
    await db.query(
      `insert into journey_enrollment_steps (tenant_id, enrollment_id, step_id, step_number, step_type, status, visits, started_at, completed_at) values ($1, $2, $3, 1, 'TRIGGER', 'COMPLETED', 1, now(), now())`,
      [t.tenant, enrollment, w.trigger.id],
    );
    const stats = await ok(call('GET', `/journeys/${id}/stats`, t.auth));
    expect(stats).toMatchObject({ journeyId: id, version: 4, totalEnrolled: 1, totalExited: 1 });
    expect(stats.steps.find((s: any) => s.stepId === w.trigger.id)).toMatchObject({ entered: 1, completed: 1, messages: null });
    expect(stats.steps.find((s: any) => s.stepId === w.send.id)).toMatchObject({ entered: 0, messages: { sent: 0, opened: 0 } });
  });

  it('keeps trigger and step configs as read: event names trimmed, ids lower-case (as events and entries match them)', async () => {
    const t = await tenantWith();
    const padded = await createJourney(t.auth, { triggerConfig: { event: '  member.joined ', exitOn: ' member.left' } });
    expect(padded.triggerConfig).toEqual({ event: 'member.joined', exitOn: 'member.left' });
    const entry = await createJourney(t.auth, { triggerType: 'SEGMENT_ENTRY', triggerConfig: { segmentId: t.segment.toUpperCase() } });
    expect(entry.triggerConfig).toEqual({ segmentId: t.segment });
    const wait = await addStep(t.auth, padded.id, { type: 'WAIT', config: { untilEvent: ' email.opened ', timeout: 'P3D' } });
    expect(wait.config).toEqual({ untilEvent: 'email.opened', timeout: 'P3D' });
    const send = await addStep(t.auth, padded.id, { type: 'SEND', config: { channel: 'EMAIL', templateId: t.email.toUpperCase() } });
    expect(send.config).toEqual({ channel: 'EMAIL', templateId: t.email });
  });

  it('refuses a step past JOURNEY_MAX_STEPS (50), so one journey cannot grow without bound', async () => {
    const t = await tenantWith();
    const journey = await createJourney(t.auth);
    for (let i = 0; i < 50; i++) await addStep(t.auth, journey.id, { type: 'END', config: {} });
    const res = await call('POST', `/journeys/${journey.id}/steps`, t.auth, { type: 'END', config: {} });
    expect(res.status).toBe(400);
    expect(res.body.error).toMatchObject({ code: 'VALIDATION_ERROR', message: expect.stringContaining('at most 50 steps') });
    expect(await steps(t.auth, journey.id)).toHaveLength(50);
  });

  it('refuses a WAIT until a date PostgreSQL cannot hold, and at first activation one already passed (REST and GraphQL)', async () => {
    const t = await tenantWith();
    const journey = await createJourney(t.auth);
    const trigger = await addStep(t.auth, journey.id, { type: 'TRIGGER', config: {} });
    // Year 0 (and a date whose atLocalTime moves it past 9999) would leave every enrolment retrying its wait's write forever.
    for (const until of ['0000-01-01T00:00:00Z', '9999-12-31T23:00:00Z']) {
      expectInvalid(await call('POST', `/journeys/${journey.id}/steps`, t.auth, { type: 'WAIT', config: { until } }), 'input.config.until');
      const gql = await api.graphql(t.auth, 'mutation($journeyId: ID!, $input: CreateJourneyStepInput!) { addJourneyStep(journeyId: $journeyId, input: $input) { id } }', {
        journeyId: journey.id, input: { type: 'WAIT', config: { until, atLocalTime: '09:00' } },
      });
      expect(gql.body.errors?.[0]?.extensions, JSON.stringify(gql.body)).toMatchObject({ code: 'VALIDATION_ERROR', field: 'input.config.until' });
    }
    const wait = await addStep(t.auth, journey.id, { type: 'WAIT', config: { until: '2020-01-01T09:00:00Z' }, afterStepId: trigger.id });
    await addStep(t.auth, journey.id, { type: 'END', config: {}, afterStepId: wait.id });
    const res = await call('POST', `/journeys/${journey.id}/activate`, t.auth);
    expectInvalid(res, 'steps[1].config.until');
    expect(res.body.error.faults).toEqual([{ field: 'steps[1].config.until', message: expect.stringContaining('has already passed') }]);
    await ok(call('PATCH', `/journeys/${journey.id}/steps/${wait.id}`, t.auth, { config: { until: new Date(Date.now() + 86_400_000).toISOString() } }));
    expect(await ok(call('POST', `/journeys/${journey.id}/activate`, t.auth))).toMatchObject({ status: 'ACTIVE', currentVersion: 1 });
  });

  it('refuses deleting a template or segment an ACTIVE or PAUSED journey runs on (CONFLICT, as campaigns do); once archived, they go', async () => {
    const t = await tenantWith();
    const w = await welcome(t);
    const id = w.journey.id;
    // The segment is named inside the CONDITION's criteria (a segment reference), the template by a SEND.
    await ok(call('PATCH', `/journeys/${id}/steps/${w.condition.id}`, t.auth, { config: { criteria: { segment: t.segment, op: 'in' } } }));
    await ok(call('POST', `/journeys/${id}/activate`, t.auth));
    const refused = async (status: string) => {
      for (const path of [`/templates/${t.sms}`, `/segments/${t.segment}`]) {
        const res = await call('DELETE', path, t.auth);
        expect(res.status, `${status}: DELETE ${path}: ${JSON.stringify(res.body)}`).toBe(409);
        expect(res.body.error).toMatchObject({ code: 'CONFLICT', message: expect.stringContaining(`journey "Welcome series" (${id}, ${status})`) });
      }
      const gql = await api.graphql(t.auth, `mutation { deleteSegment(id: "${t.segment}") }`);
      expect(gql.body.errors?.[0]?.extensions?.code, JSON.stringify(gql.body)).toBe('CONFLICT');
    };
    await refused('ACTIVE');
    await ok(call('POST', `/journeys/${id}/pause`, t.auth));
    await refused('PAUSED');
    await ok(call('POST', `/journeys/${id}/archive`, t.auth));
    for (const path of [`/templates/${t.sms}`, `/templates/${t.email}`, `/segments/${t.segment}`]) expect((await call('DELETE', path, t.auth)).status, path).toBe(200);
  });

  it('lists journeys by status, and keeps tenants apart', async () => {
    const t = await tenantWith();
    const draft = await createJourney(t.auth, { name: 'Draft one', triggerType: 'MANUAL', triggerConfig: null });
    const w = await welcome(t);
    await ok(call('POST', `/journeys/${w.journey.id}/activate`, t.auth));
    const all = await api.call('GET', '/api/v1/journeys?take=10', { auth: t.auth });
    expect(all.body.meta).toMatchObject({ total: 2, skip: 0, take: 10, hasMore: false });
    const activeOnly = await api.call('GET', '/api/v1/journeys?status=ACTIVE', { auth: t.auth });
    expect(activeOnly.body.data.map((j: any) => j.id)).toEqual([w.journey.id]);
    expect(draft.triggerConfig).toBeNull();

    const other = await token(newTenant());
    for (const [method, path, body] of [
      ['GET', `/journeys/${w.journey.id}`], ['GET', `/journeys/${w.journey.id}/steps`], ['GET', `/journeys/${w.journey.id}/stats`],
      ['PATCH', `/journeys/${w.journey.id}`, { name: 'x' }], ['POST', `/journeys/${w.journey.id}/steps`, { type: 'END', config: {} }],
      ['PATCH', `/journeys/${w.journey.id}/steps/${w.end.id}`, { name: 'x' }], ['DELETE', `/journeys/${w.journey.id}/steps/${w.end.id}`],
      ['POST', `/journeys/${w.journey.id}/pause`], ['POST', `/journeys/${w.journey.id}/archive`], ['POST', `/journeys/${draft.id}/activate`],
    ] as [string, string, unknown?][]) {
      const res = await call(method, path, other, body);
      expect(res.status, `${method} ${path}`).toBe(404);
    }
    expect((await api.call('GET', '/api/v1/journeys', { auth: other })).body.meta.total).toBe(0);
    const reader = await token(t.tenant, ['crm:read']);
    expect((await call('POST', '/journeys', reader, { name: 'x', triggerType: 'MANUAL' })).status).toBe(403);
    expect((await call('POST', `/journeys/${draft.id}/steps`, reader, { type: 'END', config: {} })).status).toBe(403);
    expect((await call('GET', `/journeys/${draft.id}/steps`, reader)).status).toBe(200);
    expect((await ok(call('GET', `/journeys/${w.journey.id}`, t.auth))).status).toBe('ACTIVE');
  });
});

describe('journey builder over GraphQL', () => {
  const JOURNEY = 'id tenantId name status triggerType triggerConfig allowReentry totalEnrolled totalCompleted totalExited activatedAt createdAt steps { id stepNumber type name config nextStepId nextStepYesId nextStepNoId }';

  it('builds, links, activates, pauses and archives a journey', async () => {
    const t = await tenantWith();
    const gql = async (query: string, variables: Record<string, unknown>) => {
      const res = await api.graphql(t.auth, query, variables);
      expect(res.body.errors, JSON.stringify(res.body.errors)).toBeUndefined();
      return res.body.data;
    };
    const { createJourney: journey } = await gql(`mutation($input: CreateJourneyInput!) { createJourney(input: $input) { ${JOURNEY} } }`, {
      input: { tenantId: t.tenant, name: 'Tournament follow-up', triggerType: 'MANUAL', allowReentry: true },
    });
    expect(journey).toMatchObject({ status: 'DRAFT', triggerType: 'MANUAL', allowReentry: true, steps: [] });
    const add = async (input: Record<string, unknown>) => (await gql(
      'mutation($journeyId: ID!, $input: CreateJourneyStepInput!) { addJourneyStep(journeyId: $journeyId, input: $input) { id stepNumber type nextStepId } }',
      { journeyId: journey.id, input },
    )).addJourneyStep;
    const trigger = await add({ type: 'TRIGGER', config: {} });
    const end = await add({ type: 'END', config: {}, afterStepId: trigger.id });
    const split = await add({ type: 'SPLIT', config: { percentYes: 30 } });
    const send = await add({ type: 'SEND', config: { channel: 'EMAIL', templateId: t.email }, afterStepId: trigger.id });
    expect(send.nextStepId).toBe(end.id);
    // A bad config names its field.
    const bad = await api.graphql(t.auth, 'mutation($journeyId: ID!, $input: CreateJourneyStepInput!) { addJourneyStep(journeyId: $journeyId, input: $input) { id } }', {
      journeyId: journey.id, input: { type: 'SPLIT', config: { percentYes: 130 } },
    });
    expect(bad.body.errors[0].extensions).toMatchObject({ code: 'VALIDATION_ERROR', field: 'input.config.percentYes' });
    const update = 'mutation($journeyId: ID!, $stepId: ID!, $input: UpdateJourneyStepInput!) { updateJourneyStep(journeyId: $journeyId, stepId: $stepId, input: $input) { id nextStepId nextStepYesId nextStepNoId } }';
    await gql(update, { journeyId: journey.id, stepId: send.id, input: { nextStepId: split.id } });
    const linked = (await gql(update, { journeyId: journey.id, stepId: split.id, input: { nextStepYesId: end.id, nextStepNoId: end.id } })).updateJourneyStep;
    expect(linked).toMatchObject({ nextStepYesId: end.id, nextStepNoId: end.id, nextStepId: null });

    const { journey: read } = await gql(`query($id: ID!) { journey(id: $id) { ${JOURNEY} } }`, { id: journey.id });
    expect(read.steps.map((s: any) => s.type)).toEqual(['TRIGGER', 'END', 'SPLIT', 'SEND']);
    expect(read.steps.map((s: any) => s.stepNumber)).toEqual([1, 2, 3, 4]);
    const { journeySteps } = await gql('query($journeyId: ID!) { journeySteps(journeyId: $journeyId) { id } }', { journeyId: journey.id });
    expect(journeySteps.map((s: any) => s.id)).toEqual(read.steps.map((s: any) => s.id));

    const { activateJourney } = await gql(`mutation($id: ID!) { activateJourney(id: $id) { ${JOURNEY} } }`, { id: journey.id });
    expect(activateJourney.status).toBe('ACTIVE');
    // Journey.steps of a whole list, batched.
    const { journeys } = await gql(`query($tenantId: String!) { journeys(tenantId: $tenantId, status: ACTIVE) { id steps { id } } }`, { tenantId: t.tenant });
    expect(journeys).toEqual([{ id: journey.id, steps: read.steps.map((s: any) => ({ id: s.id })) }]);
    expect((await gql(`mutation($id: ID!) { pauseJourney(id: $id) { status } }`, { id: journey.id })).pauseJourney.status).toBe('PAUSED');
    const refused = await api.graphql(t.auth, 'mutation($id: ID!) { pauseJourney(id: $id) { status } }', { id: journey.id });
    expect(refused.body.errors[0].extensions.code).toBe('INVALID_STATE');
    // Editing a PAUSED journey (deleting the SPLIT relinks the SEND to where the SPLIT went: nowhere).
    expect((await gql('mutation($journeyId: ID!, $stepId: ID!) { deleteJourneyStep(journeyId: $journeyId, stepId: $stepId) }', { journeyId: journey.id, stepId: split.id })).deleteJourneyStep).toBe(true);
    const { updateJourney } = await gql('mutation($id: ID!, $input: UpdateJourneyInput!) { updateJourney(id: $id, input: $input) { name description } }', {
      id: journey.id, input: { name: 'Follow-up', description: 'After the club championship' },
    });
    expect(updateJourney).toEqual({ name: 'Follow-up', description: 'After the club championship' });
    expect((await gql(`mutation($id: ID!) { archiveJourney(id: $id) { status } }`, { id: journey.id })).archiveJourney.status).toBe('ARCHIVED');

    // Another tenant sees none of it.
    const other = await token(newTenant());
    const res = await api.graphql(other, `query($id: ID!) { journey(id: $id) { id } }`, { id: journey.id });
    expect(res.body.errors[0].extensions.code).toBe('RESOURCE_NOT_FOUND');
  });
});

import { MockActivityEnvironment } from '@temporalio/testing';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createActivities } from '../activities/index.js';
import { openOrm, type Orm } from '../db/orm.js';
import { createLogger } from '../platform/logger.js';
import { newTenant, startTestApi, testConfig, token, type TestApi } from './support/api.js';
import { enrollmentRow, graph, insertCustomer, insertEnrollment, insertJourney, journeyTotals, stepRecords } from './support/journey-fixtures.js';
import { until } from './support/until.js';

// The journey interpreter's activities against what else ends enrolments (archive, API exit) at the
// same time, on real PostgreSQL, without Temporal (MockActivityEnvironment): lock order, totals,
// step records.

let orm: Orm;
let db: pg.Client;
let api: TestApi;
let activities: ReturnType<typeof createActivities>;

beforeAll(async () => {
  const config = testConfig();
  orm = await openOrm(config.DATABASE_URL!);
  activities = createActivities({ orm, config, log: createLogger('silent') });
  db = new pg.Client({ connectionString: inject('databaseUrl') });
  await db.connect();
  api = await startTestApi({ RATE_LIMIT_WRITE: '100000', RATE_LIMIT_READ: '100000' });
});
afterAll(async () => {
  await api?.close();
  await db?.end();
  await orm?.close();
});

const run = <A extends unknown[], R>(fn: (...args: A) => Promise<R>, ...args: A) => new MockActivityEnvironment().run(fn, ...args);

async function simpleJourney() {
  const tenant = newTenant();
  const { steps, ids } = graph({ trigger: { type: 'TRIGGER' }, wait: { type: 'WAIT', config: { duration: 'P1D' } }, end: { type: 'END' } });
  const journey = await insertJourney(db, tenant, steps);
  const e = await insertEnrollment(db, journey, await insertCustomer(db, tenant));
  const ref = { tenantId: tenant, journeyId: journey.journeyId, enrollmentId: e.enrollmentId };
  return { tenant, journey, e, ids, ref };
}

describe('ending an enrolment while its journey is archived', () => {
  it('finishJourneyEnrollment takes the journey row before the enrolment row (archive\'s order): no deadlock, totals exact', async () => {
    const { journey, e, ref } = await simpleJourney();
    // archiveJourney's transaction: the journey row FOR UPDATE first, then the enrolments.
    const archive = new pg.Client({ connectionString: inject('databaseUrl') });
    await archive.connect();
    try {
      await archive.query('begin');
      await archive.query('select id from journeys where id = $1 for update', [journey.journeyId]);
      const finishing = run(activities.finishJourneyEnrollment, { ...ref, status: 'COMPLETED', at: new Date().toISOString(), last: null });
      // The workflow's end is now waiting for a lock the archive holds.
      await until('the finish to wait on a lock', async () => {
        const { rows } = await db.query(
          `select 1 from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock' and pid <> $1 and query ilike '%journey%'`,
          [(archive as unknown as { processID: number }).processID],
        );
        return rows.length > 0;
      });
      // The archive goes on: with the enrolment row held by the finish, this would deadlock.
      const ended = await archive.query(
        `update journey_enrollments set status = 'EXITED', exit_reason = 'archived', exited_at = now() where id = $1 and status = 'ACTIVE' returning id`,
        [e.enrollmentId],
      );
      await archive.query('update journeys set total_exited = total_exited + $2 where id = $1', [journey.journeyId, ended.rowCount]);
      await archive.query('commit');
      expect(ended.rowCount).toBe(1);
      expect(await finishing).toBe(false);
    } finally {
      await archive.end();
    }
    expect(await enrollmentRow(db, e.enrollmentId)).toMatchObject({ status: 'EXITED', exit_reason: 'archived' });
    expect(await journeyTotals(db, journey.journeyId)).toEqual({ total_enrolled: 1, total_completed: 0, total_exited: 1 });
  });
});

describe('ending an enrolment while it is exited elsewhere', () => {
  it('finishJourneyEnrollment never waits for the enrolment while holding the journey: an exit (enrolment, then journey) goes through; the retry finds it ended', async () => {
    const { journey, e, ref } = await simpleJourney();
    // Someone else holds the enrolment row (an UPDATE step under the journey row's KEY SHARE; here a bare update), then wants the journey's.
    const exit = new pg.Client({ connectionString: inject('databaseUrl') });
    await exit.connect();
    const pid = (exit as unknown as { processID: number }).processID;
    try {
      await exit.query('begin');
      const ended = await exit.query(`update journey_enrollments set status = 'EXITED', exit_reason = 'api', exited_at = now() where id = $1 and status = 'ACTIVE' returning id`, [e.enrollmentId]);
      const finishing = run(activities.finishJourneyEnrollment, { ...ref, status: 'COMPLETED', at: new Date().toISOString(), last: null }).then((v) => ({ v }), (err: Error) => ({ err }));
      // Either the finish answers (gave up at once), or it waits on a lock while holding the journey row.
      const first = await Promise.race([
        finishing,
        until('the finish to wait on a lock', async () => {
          const { rows } = await db.query(
            `select 1 from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock' and pid <> $1 and query ilike '%journey%'`, [pid],
          );
          return rows.length > 0 ? { waiting: true } : undefined;
        }),
      ]);
      // The exit bumps the journey's totals: deadlocks if the finish holds the journey row and waits.
      await exit.query('update journeys set total_exited = total_exited + $2 where id = $1', [journey.journeyId, ended.rowCount]);
      await exit.query('commit');
      expect(first).toMatchObject({ err: { message: expect.stringContaining('being ended elsewhere') } });
    } finally {
      await exit.end();
    }
    // Temporal retries the activity: the enrolment has ended, totals untouched by the finish.
    expect(await run(activities.finishJourneyEnrollment, { ...ref, status: 'COMPLETED', at: new Date().toISOString(), last: null })).toBe(false);
    expect(await enrollmentRow(db, e.enrollmentId)).toMatchObject({ status: 'EXITED', exit_reason: 'api' });
    expect(await journeyTotals(db, journey.journeyId)).toEqual({ total_enrolled: 1, total_completed: 0, total_exited: 1 });
  });
});

/** Runs `pending` until it is waiting on a row lock held by the connection `holder` (or has answered). */
async function waitingOnLock<T>(holder: pg.Client, what: string, pending: Promise<T>): Promise<void> {
  const pid = (holder as unknown as { processID: number }).processID;
  let settled = false;
  void pending.then(() => (settled = true), () => (settled = true));
  await until(what, async () => {
    if (settled) return true;
    const { rows } = await db.query(
      `select 1 from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock' and $1 = any(pg_blocking_pids(pid))`, [pid],
    );
    return rows.length > 0;
  });
}

describe('an exit elsewhere while the journey is archived', () => {
  it('the API exit (exitEnrollments: exitOn, merge and delete too) takes the journey row before the enrolment (archive\'s order): no deadlock, totals exact', async () => {
    const { tenant, journey, e } = await simpleJourney();
    const customerId = (await db.query<{ customer_id: string }>('select customer_id from journey_enrollments where id = $1', [e.enrollmentId])).rows[0]!.customer_id;
    // archiveJourney's transaction: the journey row FOR UPDATE first, then the enrolments.
    const archive = new pg.Client({ connectionString: inject('databaseUrl') });
    await archive.connect();
    const auth = await token(tenant);
    try {
      await archive.query('begin');
      await archive.query('select id from journeys where id = $1 for update', [journey.journeyId]);
      const exiting = api.call('DELETE', `/api/v1/journeys/${journey.journeyId}/enrollments/${customerId}`, { auth });
      await waitingOnLock(archive, 'the exit to wait for the archive', exiting);
      // The archive goes on: had the exit taken the enrolment row first, this would deadlock.
      const ended = await archive.query(
        `update journey_enrollments set status = 'EXITED', exit_reason = 'archived', exited_at = now() where id = $1 and status = 'ACTIVE' returning id`,
        [e.enrollmentId],
      );
      await archive.query(`update journeys set status = 'ARCHIVED', total_exited = total_exited + $2 where id = $1`, [journey.journeyId, ended.rowCount]);
      await archive.query('commit');
      expect(ended.rowCount).toBe(1);
      // The exit then finds nothing running.
      const exited = await exiting;
      expect(exited.status, JSON.stringify(exited.body)).toBe(404);
    } finally {
      await archive.end();
    }
    expect(await enrollmentRow(db, e.enrollmentId)).toMatchObject({ status: 'EXITED', exit_reason: 'archived' });
    expect(await journeyTotals(db, journey.journeyId)).toEqual({ total_enrolled: 1, total_completed: 0, total_exited: 1 });
  });

  it('an UPDATE step takes the journey row before the enrolment: it waits for an archive in progress, then finds the enrolment ended and changes nothing', async () => {
    const { journey, e, ref } = await simpleJourney();
    const customerId = (await db.query<{ customer_id: string }>('select customer_id from journey_enrollments where id = $1', [e.enrollmentId])).rows[0]!.customer_id;
    const archive = new pg.Client({ connectionString: inject('databaseUrl') });
    await archive.connect();
    try {
      await archive.query('begin');
      await archive.query('select id from journeys where id = $1 for update', [journey.journeyId]);
      const updating = run(activities.applyJourneyUpdate, { ...ref, customerId, config: { set: { lifecycleStage: 'ADVOCATE' } } });
      await waitingOnLock(archive, 'the UPDATE step to wait for the archive', updating);
      // Had the step taken the enrolment row first, the archive would wait for it here.
      const ended = await archive.query(
        `update journey_enrollments set status = 'EXITED', exit_reason = 'archived', exited_at = now() where id = $1 and status = 'ACTIVE' returning id`,
        [e.enrollmentId],
      );
      await archive.query(`update journeys set status = 'ARCHIVED', total_exited = total_exited + $2 where id = $1`, [journey.journeyId, ended.rowCount]);
      await archive.query('commit');
      expect(ended.rowCount).toBe(1);
      expect(await updating).toBe('ENDED');
    } finally {
      await archive.end();
    }
    const { rows } = await db.query<{ lifecycle_stage: string }>('select lifecycle_stage from customers where id = $1', [customerId]);
    expect(rows[0]!.lifecycle_stage).not.toBe('ADVOCATE');
    expect(await journeyTotals(db, journey.journeyId)).toEqual({ total_enrolled: 1, total_completed: 0, total_exited: 1 });
  });
});

describe('archiveJourney', () => {
  it('closes the step each running enrolment was at (no step record left ACTIVE, so stats show nobody at it)', async () => {
    const { tenant, journey, e, ids, ref } = await simpleJourney();
    const at = new Date().toISOString();
    const step = (id: string, stepNumber: number, type: 'TRIGGER' | 'WAIT') => ({ id, stepNumber, type, name: null });
    await run(activities.enterJourneyStep, { ...ref, step: step(ids.trigger, 1, 'TRIGGER'), visit: 1, at, previous: null });
    await run(activities.enterJourneyStep, {
      ...ref, step: step(ids.wait, 2, 'WAIT'), visit: 1, at, previous: { stepId: ids.trigger, status: 'COMPLETED', outcome: null, at },
    });
    const auth = await token(tenant);
    const archived = await api.call('POST', `/api/v1/journeys/${journey.journeyId}/archive`, { auth });
    expect(archived.status, JSON.stringify(archived.body)).toBe(200);
    expect(await enrollmentRow(db, e.enrollmentId)).toMatchObject({ status: 'EXITED', exit_reason: 'archived' });
    const records = await stepRecords(db, e.enrollmentId);
    expect(records.map((r) => [r.step_type, r.status, r.outcome])).toEqual([['TRIGGER', 'COMPLETED', null], ['WAIT', 'SKIPPED', 'EXITED']]);
    expect(records[1]!.completed_at).not.toBeNull();
    const stats = await api.call('GET', `/api/v1/journeys/${journey.journeyId}/stats`, { auth });
    expect(stats.body.data.steps.find((s: { stepId: string }) => s.stepId === ids.wait)).toMatchObject({ entered: 1, active: 0, skipped: 1 });
    // The workflow, at its next step, finds the enrolment ended and stops without touching anything.
    expect(await run(activities.enterJourneyStep, { ...ref, step: step(ids.end, 3, 'WAIT'), visit: 1, at, previous: null })).toMatchObject({ enrollment: 'EXITED' });
  });
});

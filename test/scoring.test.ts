import { randomUUID } from 'node:crypto';
import { CancelledFailure, WorkflowFailedError } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openOrm } from '../db/orm.js';
import { createLogger } from '../platform/logger.js';
import { ensurePlatformSchedules, migrateSegmentRefreshSchedules, SCORING_SCHEDULE_ID, SOCIAL_METRICS_SCHEDULE_ID, ANALYTICS_FOLD_SCHEDULE_ID, SEGMENT_COUNT_FOLD_SCHEDULE_ID } from '../worker/schedules.js';
import { createWorker } from '../worker/worker.js';
import type { customerScoringWorkflow, scoreAllTenantsWorkflow } from '../workflows/customer-scoring.js';
import { newTenant, testConfig, token } from './support/api.js';
import { startTestStack, type TestStack } from './support/stack.js';

let stack: TestStack;
beforeAll(async () => {
  stack = await startTestStack();
});
afterAll(() => stack.close());

const daysAgo = (d: number) => new Date(Date.now() - d * 86400e3).toISOString();

describe('customer scoring', () => {
  it('scores engagement, churn risk and lifetime value from the timeline, then updates SMART segments over scores', async () => {
    const tenant = newTenant();
    const auth = await token(tenant);
    const event = (email: string, i: number, days: number, extra: object = {}) => ({
      type: 'booking.created', category: 'BOOKING', title: 'x', occurredAt: daysAgo(days), customer: { email }, sourceService: 's', sourceEventId: `${email}-${i}`, ...extra,
    });
    const busy = Array.from({ length: 12 }, (_, i) => event('busy@s.test', i, i * 5));
    const spender = [
      event('spender@s.test', 1, 3, { category: 'FINANCIAL', type: 'payment.received', metadata: { amount: 2500 } }),
      event('spender@s.test', 2, 400, { category: 'FINANCIAL', type: 'payment.received', metadata: { amount: 1000.4 } }),
    ];
    const dormant = [event('dormant@s.test', 1, 200)];
    expect((await stack.api.call('POST', '/api/v1/events', { auth, body: [...busy, ...spender, ...dormant] })).body.data.accepted).toBe(15);
    const engaged = (await stack.api.call('POST', '/api/v1/segments', {
      auth, body: { name: 'engaged', type: 'SMART', criteria: { field: 'engagementScore', op: 'gte', value: 40 } },
    })).body.data;
    expect(engaged.memberCount).toBe(0);

    const result = await stack.client.workflow.execute<typeof customerScoringWorkflow>('customerScoringWorkflow', {
      workflowId: `customer-scoring-${tenant}`, taskQueue: stack.taskQueue, args: [{ tenantId: tenant }],
    });
    expect(result).toEqual({ scored: 3, smartSegments: 1 });

    const byEmail = Object.fromEntries((await stack.api.call('GET', '/api/v1/customers', { auth })).body.data.map((c: any) => [c.email, c]));
    const busyC = byEmail['busy@s.test'];
    const dormantC = byEmail['dormant@s.test'];
    const spenderC = byEmail['spender@s.test'];
    expect(busyC.engagementScore).toBeGreaterThan(spenderC.engagementScore);
    expect(spenderC.engagementScore).toBeGreaterThan(dormantC.engagementScore);
    expect(dormantC).toMatchObject({ engagementScore: 0, churnRiskScore: 100, lifetimeValue: 0 });
    expect(busyC.churnRiskScore).toBeLessThan(dormantC.churnRiskScore);
    expect(spenderC.lifetimeValue).toBe(3500);
    for (const c of [busyC, dormantC, spenderC]) {
      expect(c.engagementScore).toBeGreaterThanOrEqual(0);
      expect(c.engagementScore).toBeLessThanOrEqual(100);
    }
    const members = (await stack.api.call('GET', `/api/v1/segments/${engaged.id}/members`, { auth })).body.data.map((c: any) => c.email);
    expect(members).toContain('busy@s.test');
    expect(members).not.toContain('dormant@s.test');
  });

  it('runs nightly for every tenant from a platform schedule the worker creates', async () => {
    const config = testConfig({ TEMPORAL_TASK_QUEUE: stack.taskQueue });
    await ensurePlatformSchedules(stack.client, config);
    await ensurePlatformSchedules(stack.client, config); // idempotent
    const described = await stack.client.schedule.getHandle(SCORING_SCHEDULE_ID).describe();
    expect(described.action).toMatchObject({ type: 'startWorkflow', workflowType: 'scoreAllTenantsWorkflow' });
    expect(described.spec.calendars?.[0]).toMatchObject({ hour: [{ start: 2, end: 2, step: 1 }] });
    // Beside it, hourly social post metrics (the workflow itself: test/social-publishing.test.ts).
    const metrics = await stack.client.schedule.getHandle(SOCIAL_METRICS_SCHEDULE_ID).describe();
    expect(metrics.action).toMatchObject({ type: 'startWorkflow', workflowType: 'socialMetricsWorkflow', workflowId: 'social-metrics-all' });
    expect(metrics.spec.intervals).toMatchObject([{ every: 3_600_000 }]);
    // And the hourly fold of the analytics rollups (the workflow itself: test/analytics.test.ts).
    const fold = await stack.client.schedule.getHandle(ANALYTICS_FOLD_SCHEDULE_ID).describe();
    expect(fold.action).toMatchObject({ type: 'startWorkflow', workflowType: 'analyticsFoldWorkflow', workflowId: 'analytics-rollup-fold-all' });
    expect(fold.spec.intervals).toMatchObject([{ every: 3_600_000 }]);
    // And of the segments' count rows (the workflow itself: test/segments.test.ts).
    const counts = await stack.client.schedule.getHandle(SEGMENT_COUNT_FOLD_SCHEDULE_ID).describe();
    expect(counts.action).toMatchObject({ type: 'startWorkflow', workflowType: 'segmentCountFoldWorkflow', workflowId: 'segment-count-fold-all' });
    expect(counts.spec.intervals).toMatchObject([{ every: 3_600_000 }]);
  });

  it('moves segment refresh schedules made before scheduledSegmentRefreshWorkflow to it at worker start', async () => {
    const tenantId = newTenant();
    const segmentId = randomUUID();
    const scheduleId = `segment-refresh-schedule-${segmentId}`;
    // The shape upsertRefreshSchedule created before: the refresh itself, under timestamped ids.
    await stack.client.schedule.create({
      scheduleId,
      spec: { intervals: [{ every: '60m' }] },
      action: {
        type: 'startWorkflow', workflowType: 'segmentRefreshWorkflow', workflowId: `segment-refresh-${segmentId}`,
        taskQueue: stack.taskQueue, args: [{ tenantId, segmentId, cause: 'schedule' }],
      },
      state: { paused: true },
    });
    try {
      // Schedules are listed from visibility, which sees a new one a moment later.
      const listed = async () => {
        for await (const s of stack.client.schedule.list()) if (s.scheduleId === scheduleId) return true;
        return false;
      };
      while (!(await listed())) await new Promise((r) => setTimeout(r, 200));

      expect(await migrateSegmentRefreshSchedules(stack.client)).toContain(scheduleId);
      const described = await stack.client.schedule.getHandle(scheduleId).describe();
      expect(described.action).toMatchObject({
        type: 'startWorkflow', workflowType: 'scheduledSegmentRefreshWorkflow', workflowId: scheduleId,
        taskQueue: stack.taskQueue, args: [{ tenantId, segmentId }],
      });
      expect(described.state.paused).toBe(true);
      expect(described.spec.intervals?.[0]).toMatchObject({ every: 3_600_000 });
      // Idempotent: a second worker start changes nothing.
      expect(await migrateSegmentRefreshSchedules(stack.client)).not.toContain(scheduleId);
    } finally {
      await stack.client.schedule.getHandle(scheduleId).delete();
    }
  });

  it('stops when cancelled instead of going on to the next tenant', async () => {
    // Cancelled before any worker polls its queue, the run sees the cancellation at its first
    // child; swallowing it would move on to the next tenant and complete.
    const taskQueue = `scoring-cancel-${randomUUID().slice(0, 8)}`;
    const handle = await stack.client.workflow.start<typeof scoreAllTenantsWorkflow>('scoreAllTenantsWorkflow', {
      workflowId: `customer-scoring-all-${taskQueue}`, taskQueue, args: [{ remaining: [newTenant(), newTenant()] }],
    });
    await handle.cancel();
    const config = testConfig({ TEMPORAL_TASK_QUEUE: taskQueue });
    const orm = await openOrm(config.DATABASE_URL!);
    const worker = await createWorker(config, { orm, config, log: createLogger('silent') });
    const running = worker.run();
    try {
      const failure = await handle.result().then(() => undefined, (err: unknown) => err);
      expect(failure).toBeInstanceOf(WorkflowFailedError);
      expect((failure as WorkflowFailedError).cause).toBeInstanceOf(CancelledFailure);
      expect((await handle.describe()).status.name).toBe('CANCELLED');
    } finally {
      await worker.shutdown();
      await running;
      await orm.close();
    }
  });
});

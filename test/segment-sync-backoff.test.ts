import { randomUUID } from 'node:crypto';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openOrm, type Orm } from '../db/orm.js';
import { createLogger } from '../platform/logger.js';
import { startTimeSkippingEnvironment } from '../scripts/temporal-test-server.js';
import { createWorker } from '../worker/worker.js';
import type { segmentSyncWorkflow } from '../workflows/segment-sync.js';
import { newTenant, testConfig, token } from './support/api.js';
import { startMessagingServer, type MessagingServer } from '../scripts/messaging-server.js';
import { startTestStack, type TestStack } from './support/stack.js';

// Backoff between retries grows to minutes; Temporal's time-skipping test server (Java) jumps
// those timers, so a sync that outlasts ten failures finishes in seconds.
let env: TestWorkflowEnvironment;
let testServer: Awaited<ReturnType<typeof startTimeSkippingEnvironment>> | undefined;
let messaging: MessagingServer;
let stack: TestStack;
let orm: Orm;
beforeAll(async () => {
  messaging = await startMessagingServer();
  stack = await startTestStack({ MESSAGING_URL: messaging.url, MESSAGING_API_KEY: messaging.apiKey });
  testServer = await startTimeSkippingEnvironment();
  env = testServer.env;
});

afterAll(async () => {
  await testServer?.stop();
  await stack?.close();
  await messaging?.close();
  await orm?.close();
});

describe('segment sync backoff', () => {
  it('keeps retrying a failing Messaging service with growing backoff until it recovers', async () => {
    const tenant = newTenant();
    const auth = await token(tenant);
    await stack.api.call('POST', '/api/v1/customers', { auth, body: { email: 'one@backoff.test', membershipTier: 'GOLD' } });
    const segment = (await stack.api.call('POST', '/api/v1/segments', {
      auth, body: { name: 'gold', type: 'STATIC', criteria: { field: 'membershipTier', op: 'eq', value: 'GOLD' } },
    })).body.data;
    const failures = 7; // 1 + 2 + 4 + 8 + 16 + 32 + 60 seconds of backoff in all
    messaging.failNext(...Array.from({ length: failures }, () => ({ kind: 'error' as const, status: 503, message: 'maintenance' })));

    const config = testConfig({ MESSAGING_URL: messaging.url, MESSAGING_API_KEY: messaging.apiKey });
    orm = await openOrm(config.DATABASE_URL!);
    const taskQueue = `backoff-${randomUUID().slice(0, 8)}`;
    const worker = await createWorker(config, { orm, config, log: createLogger('silent') }, { connection: env.nativeConnection, taskQueue });
    const result = await worker.worker.runUntil(
      env.client.workflow.execute<typeof segmentSyncWorkflow>('segmentSyncWorkflow', {
        workflowId: `segment-sync-${segment.id}`, taskQueue, args: [{ tenantId: tenant, segmentId: segment.id }],
      }),
    );
    expect(result).toMatchObject({ messagingSegmentId: `msg_${segment.id}`, syncedCount: 1 });
    expect(messaging.received.filter(Boolean).length).toBe(failures + 1);
    // The workflow's clock went through every backoff interval (time skipped, not waited).
    const run = await env.client.workflow.getHandle(`segment-sync-${segment.id}`).describe();
    expect(run.closeTime!.getTime() - run.startTime.getTime()).toBeGreaterThanOrEqual(123_000);
  });
});

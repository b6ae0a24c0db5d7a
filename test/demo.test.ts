import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it, inject } from 'vitest';
import { openOrm, type Orm } from '../db/orm.js';
import { createLogger } from '../platform/logger.js';
import { seedDemo, type DemoSummary } from '../scripts/demo/seed.js';
import { newTenant, TEST_JWT_SECRET, testConfig, token } from './support/api.js';
import { startTestStack, type TestStack } from './support/stack.js';

const MEMBERS = 80;
let stack: TestStack;
let orm: Orm;
beforeAll(async () => {
  stack = await startTestStack();
  orm = await openOrm(testConfig().DATABASE_URL!);
});
afterAll(async () => {
  await orm.close();
  await stack.close();
});

const seed = (tenantId: string) =>
  seedDemo({ orm, temporal: stack.client, config: testConfig({ TEMPORAL_TASK_QUEUE: stack.taskQueue }), log: createLogger('silent') }, tenantId, MEMBERS);

describe('npm run demo', () => {
  const tenant = newTenant();
  let first: DemoSummary;

  it('seeds a club a user can explore: members, timelines, notes, clubs and populated segments of each type', async () => {
    first = await seed(tenant);
    expect(first.members).toEqual({ created: MEMBERS, updated: 0, rejected: 0 });
    expect(first.events.rejected).toBe(0);
    expect(first.events.accepted).toBeGreaterThan(MEMBERS);
    const auth = await token(tenant);

    const customers = await stack.api.call('GET', '/api/v1/customers?take=100', { auth });
    expect(customers.body.meta.total).toBe(MEMBERS);
    const active = customers.body.data.find((c: any) => c.lastActivityAt && c.engagementScore > 0);
    expect(active, 'someone has activity and a score').toBeDefined();

    const timeline = await stack.api.call('GET', `/api/v1/customers/${active.id}/timeline?take=50`, { auth });
    expect(timeline.status).toBe(200);
    expect(timeline.body.data.length).toBeGreaterThan(0);
    expect(timeline.body.data[0]).toMatchObject({ sourceService: 'demo-club', title: expect.any(String) });

    const segments = (await stack.api.call('GET', '/api/v1/segments', { auth })).body.data as any[];
    expect(segments.map((s) => s.type).sort()).toEqual(['DYNAMIC', 'DYNAMIC', 'SMART', 'SMART', 'SMART', 'STATIC']);
    for (const type of ['STATIC', 'DYNAMIC', 'SMART']) {
      const populated = segments.filter((s) => s.type === type && s.memberCount > 0);
      expect(populated.length, `a ${type} segment has members`).toBeGreaterThan(0);
      const members = await stack.api.call('GET', `/api/v1/segments/${populated[0].id}/members?take=100`, { auth });
      expect(members.body.meta.total).toBe(populated[0].memberCount);
    }

    const graphql = await stack.api.graphql(auth, `{ customers(tenantId: "${tenant}", pagination: { first: 100 }) { edges { node { homeClub { name } notes { content } } } } }`);
    const nodes = graphql.body.data.customers.edges.map((e: any) => e.node);
    expect(nodes.filter((n: any) => n.notes.length > 0).length).toBe(first.notesAdded / 2);
    expect(first.notesAdded).toBeGreaterThan(0);
    expect(new Set(nodes.map((n: any) => n.homeClub?.name)).size).toBe(4);
    // The demo campaign was executed to the lapsed golfers (no SMTP here: its emails fail, counted).
    expect(first.campaign).toMatchObject({ name: 'We miss you on the course', created: true });
    const campaign = (await stack.api.call('GET', `/api/v1/campaigns/${first.campaign!.id}`, { auth })).body.data;
    expect(campaign).toMatchObject({ type: 'ONE_TIME', channels: ['EMAIL'], segmentName: 'Golfers who stopped playing', startedAt: expect.any(String) });
  });

  it('adds nothing twice when run again', async () => {
    const again = await seed(tenant);
    expect(again.members).toEqual({ created: 0, updated: MEMBERS, rejected: 0 });
    expect(again.events).toEqual({ accepted: 0, duplicates: first.events.accepted, rejected: 0 });
    expect(again.notesAdded).toBe(0);
    expect(again.campaign).toEqual({ ...first.campaign, created: false });
    expect(again.segments.map((s) => [s.id, s.created])).toEqual(first.segments.map((s) => [s.id, false]));
    const auth = await token(tenant);
    expect((await stack.api.call('GET', '/api/v1/customers?take=1', { auth })).body.meta.total).toBe(MEMBERS);
    expect((await stack.api.call('GET', '/api/v1/segments', { auth })).body.data).toHaveLength(6);
  });

  it('prints a working token and the URLs to open', async () => {
    const demoTenant = newTenant();
    const port = new URL(stack.api.url).port;
    const { stdout } = await promisify(execFile)('npx', ['tsx', 'scripts/demo.ts', '--tenant', demoTenant, '--members', '12'], {
      env: {
        ...process.env, DATABASE_URL: inject('databaseUrl'), TEMPORAL_ADDRESS: inject('temporalAddress'), TEMPORAL_TASK_QUEUE: stack.taskQueue,
        JWT_SECRET: TEST_JWT_SECRET, PORT: port, LOG_LEVEL: 'silent',
      },
    });
    expect(stdout).toContain(`Demo club "${demoTenant}" ready`);
    const printed = stdout.split('\n').find((line) => /^ey[\w-]+\.[\w-]+\.[\w-]+$/.test(line.trim()))!.trim();
    const customers = await stack.api.call('GET', '/api/v1/customers?take=1', { auth: printed });
    expect(customers.status).toBe(200);
    expect(customers.body.meta.total).toBe(12);

    const explorer = stdout.match(/GraphQL explorer\s+(\S+)/)![1]!;
    expect(explorer.startsWith(`${stack.api.url}/graphql?query=`)).toBe(true);
    const example = new URL(explorer).searchParams.get('query')!;
    const run = await stack.api.graphql(printed, example);
    expect(run.body.errors).toBeUndefined();
    expect(run.body.data.segments).toHaveLength(6);
    expect(run.body.data.customers.totalCount).toBeGreaterThan(0);
    expect(stdout).toMatch(/REST API docs\s+http:\/\/127\.0\.0\.1:\d+\/docs/);
    expect(stdout).toContain(`query: TenantId = "${demoTenant}"`); // external Temporal: the query to paste
  });

  it('refuses to seed, saying why, when no worker is running', async () => {
    const attempt = promisify(execFile)('npx', ['tsx', 'scripts/demo.ts', '--tenant', newTenant(), '--members', '5'], {
      env: {
        ...process.env, DATABASE_URL: inject('databaseUrl'), TEMPORAL_ADDRESS: inject('temporalAddress'), TEMPORAL_TASK_QUEUE: 'no-worker-polls-this',
        JWT_SECRET: TEST_JWT_SECRET, LOG_LEVEL: 'silent',
      },
    });
    await expect(attempt).rejects.toMatchObject({ code: 1, stderr: expect.stringContaining('no worker polls the task queue "no-worker-polls-this"; start the platform first: npm start') });
  });
});

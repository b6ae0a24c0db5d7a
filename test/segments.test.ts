import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, inject } from 'vitest';
import { newTenant, token } from './support/api.js';
import { startTestStack, type TestStack } from './support/stack.js';
import { until } from './support/until.js';
import { compileCriteria, SHARED_COUNT_LIMIT } from '../domain/segments/criteria.js';
import { foldMemberCountDeltas } from '../domain/segments/member-counts.js';
import type { scheduledSegmentRefreshWorkflow, segmentRefreshWorkflow } from '../workflows/segment-refresh.js';
import type { segmentCountFoldWorkflow } from '../workflows/segment-count-fold.js';

let stack: TestStack;
beforeAll(async () => {
  stack = await startTestStack();
});
afterAll(() => stack.close());

async function sql<T = any>(text: string, params: unknown[] = []): Promise<T[]> {
  const client = new pg.Client({ connectionString: inject('databaseUrl') });
  await client.connect();
  try {
    return (await client.query(text, params)).rows as T[];
  } finally {
    await client.end();
  }
}

async function tenantWith(people: object[]) {
  const tenant = newTenant();
  const auth = await token(tenant);
  const ids: string[] = [];
  for (const p of people) {
    const res = await stack.api.call('POST', '/api/v1/customers', { auth, body: p });
    expect(res.status).toBe(201);
    ids.push(res.body.data.id);
  }
  return { tenant, auth, ids };
}

const members = async (auth: string, segmentId: string) =>
  (await stack.api.call('GET', `/api/v1/segments/${segmentId}/members?take=100`, { auth })).body.data.map((c: any) => c.firstName).sort();

describe('deleted customers', () => {
  it('leave every segment at once, each exit recorded: memberCount matches the members listed', async () => {
    const { tenant, auth, ids } = await tenantWith(['Ann', 'Bob', 'Cat'].map((firstName) => ({ firstName, email: `${firstName.toLowerCase()}@deleted.test`, membershipTier: 'GOLD' })));
    const segments: string[] = [];
    for (const type of ['STATIC', 'DYNAMIC', 'SMART']) {
      const res = await stack.api.call('POST', '/api/v1/segments', { auth, body: { name: `gold ${type}`, type, criteria: { field: 'membershipTier', op: 'eq', value: 'GOLD' } } });
      expect(res.body.data.memberCount).toBe(3);
      segments.push(res.body.data.id);
    }
    expect((await stack.api.call('PATCH', `/api/v1/customers/${ids[1]}`, { auth, body: { status: 'DELETED' } })).status).toBe(200);
    await stack.api.settled(tenant);
    for (const id of segments) {
      expect((await stack.api.call('GET', `/api/v1/segments/${id}`, { auth })).body.data.memberCount).toBe(2);
      expect(await members(auth, id)).toEqual(['Ann', 'Cat']);
    }
    const exits = await sql(`select segment_id from segment_membership_changes where customer_id = $1 and change = 'EXITED' order by segment_id`, [ids[1]]);
    expect(exits.map((r: { segment_id: string }) => r.segment_id)).toEqual([...segments].sort());
  });
});

describe('segment criteria', () => {
  it('counts events exactly at the boundaries of gte, lte and eq', async () => {
    const names = ['Zero', 'One', 'Two', 'Three'];
    const { auth } = await tenantWith(names.map((firstName) => ({ firstName, email: `${firstName.toLowerCase()}@count.test` })));
    const events = names.flatMap((name, n) => Array.from({ length: n }, (_, i) => ({
      customer: { email: `${name.toLowerCase()}@count.test` }, type: 'booking.created', category: 'BOOKING', title: 'x',
      occurredAt: new Date().toISOString(), sourceService: 'count', sourceEventId: `${name}-${i}`,
    })));
    expect((await stack.api.call('POST', '/api/v1/events', { auth, body: events })).body.data.accepted).toBe(6);
    const expected: [op: string, value: number, members: string[]][] = [
      ['gte', 0, ['One', 'Three', 'Two', 'Zero']], ['gte', 2, ['Three', 'Two']], ['gte', 3, ['Three']], ['gte', 4, []],
      ['lte', 0, ['Zero']], ['lte', 2, ['One', 'Two', 'Zero']], ['lte', 3, ['One', 'Three', 'Two', 'Zero']],
      ['eq', 0, ['Zero']], ['eq', 2, ['Two']], ['eq', 3, ['Three']],
    ];
    for (const [op, value, want] of expected) {
      const created = await stack.api.call('POST', '/api/v1/segments', {
        auth, body: { name: `${op} ${value}`, type: 'DYNAMIC', criteria: { event: { type: 'booking.created' }, count: { op, value } } },
      });
      expect(created.body.error, `${op} ${value}`).toBeUndefined();
      expect(await members(auth, created.body.data.id), `${op} ${value}`).toEqual(want);
    }
  });

  it('rejects bad criteria with VALIDATION_ERROR naming the JSON path', async () => {
    const { auth } = await tenantWith([]);
    const attempt = async (criteria: unknown) => {
      const res = await stack.api.call('POST', '/api/v1/segments', { auth, body: { name: `s${Math.random()}`, type: 'DYNAMIC', criteria } });
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe('VALIDATION_ERROR');
      return res.body.error;
    };
    expect((await attempt({ all: [{ field: 'shoeSize', op: 'eq', value: 9 }] })).field).toBe('criteria.all[0].field');
    expect((await attempt({ all: [{ field: 'handicap', op: 'contains', value: 'x' }] })).field).toBe('criteria.all[0].op');
    expect((await attempt({ any: [{ field: 'engagementScore', op: 'gte', value: 'high' }] })).field).toBe('criteria.any[0].value');
    expect((await attempt({ all: [] })).field).toBe('criteria.all');
    expect((await attempt({ not: { field: 'lastActivityAt', op: 'within', value: '30 days' } })).field).toBe('criteria.not.value');
    for (const bad of ['P', '-P30D', 'PT1,5S', 'P300000Y']) {
      expect((await attempt({ field: 'createdAt', op: 'within', value: bad })).field, bad).toBe('criteria.value');
    }
    expect((await attempt({ field: 'createdAt', op: 'gt', value: '0000-01-01T00:00:00Z' })).field).toBe('criteria.value');
    expect((await attempt({ all: [{ event: { category: 'PARTY' } }] })).field).toBe('criteria.all[0].event.category');
    expect((await attempt({ all: [{ event: { type: 'booking.created' }, count: { op: 'gte', value: -1 } }] })).field).toBe('criteria.all[0].count.value');
    expect((await attempt({ segment: '00000000-0000-7000-8000-000000000000', op: 'in' })).field).toBe('criteria.segment');
    let deep: unknown = { field: 'emailOptIn', op: 'eq', value: true };
    for (let i = 0; i < 11; i++) deep = { not: deep };
    expect((await attempt(deep)).message).toContain('deeper than 10');
    expect((await attempt(undefined)).field).toBe('criteria');
  });

  it('evaluates fields, events, nesting and segment references against real data', async () => {
    const { auth, ids } = await tenantWith([
      { firstName: 'Ann', email: 'ann@x.test', lifecycleStage: 'MEMBER', emailOptIn: true },
      { firstName: 'Bob', email: 'bob@x.test', lifecycleStage: 'LEAD', emailOptIn: true },
      { firstName: 'Cat', email: 'cat@y.test', lifecycleStage: 'MEMBER' },
      { firstName: 'Dov', phoneNumber: '+27825550002', lifecycleStage: 'CHURNED' },
    ]);
    const now = Date.now();
    const events = [
      { customer: { id: ids[0] }, category: 'BOOKING', type: 'booking.created', at: now - 2 * 86400e3 },
      { customer: { id: ids[0] }, category: 'BOOKING', type: 'booking.created', at: now - 3 * 86400e3 },
      { customer: { id: ids[1] }, category: 'BOOKING', type: 'booking.created', at: now - 40 * 86400e3 },
      { customer: { id: ids[2] }, category: 'GOLF', type: 'round.completed', at: now - 1 * 86400e3 },
    ].map((e, i) => ({ type: e.type, category: e.category, customer: e.customer, title: 't', occurredAt: new Date(e.at).toISOString(), sourceService: 'test', sourceEventId: `e${i}` }));
    expect((await stack.api.call('POST', '/api/v1/events', { auth, body: events })).body.data.accepted).toBe(4);

    const create = async (name: string, criteria: unknown, type = 'DYNAMIC') => {
      const res = await stack.api.call('POST', '/api/v1/segments', { auth, body: { name, type, criteria } });
      expect(res.status, JSON.stringify(res.body)).toBe(201);
      return res.body.data;
    };
    const members3 = await create('active members', {
      all: [
        { field: 'lifecycleStage', op: 'in', value: ['MEMBER', 'ADVOCATE'] },
        { any: [{ field: 'emailOptIn', op: 'eq', value: true }, { field: 'email', op: 'contains', value: '@y.test' }] },
        { field: 'lastActivityAt', op: 'within', value: 'P30D' },
      ],
    });
    expect(members3.memberCount).toBe(2);
    expect(await members(auth, members3.id)).toEqual(['Ann', 'Cat']);

    const frequent = await create('frequent bookers', { event: { category: 'BOOKING', within: 'P30D' }, count: { op: 'gte', value: 2 } });
    expect(await members(auth, frequent.id)).toEqual(['Ann']);
    const never = await create('never golfed', { not: { event: { category: 'GOLF' } } });
    expect(await members(auth, never.id)).toEqual(['Ann', 'Bob', 'Dov']);
    const noEmail = await create('no email', { field: 'email', op: 'notExists' });
    expect(await members(auth, noEmail.id)).toEqual(['Dov']);
    const notIn = await create('members who do not book', { all: [{ segment: members3.id, op: 'in' }, { segment: frequent.id, op: 'notIn' }] });
    expect(await members(auth, notIn.id)).toEqual(['Cat']);
    const quoted = await create("O'Brien \\ %_ test", { field: 'firstName', op: 'startsWith', value: "%'; drop table customers; --" });
    expect(quoted.memberCount).toBe(0);

    // customers(filter: {segmentId}) reads the same membership.
    const gql = await stack.api.graphql(auth, `{ customers(tenantId: "${(await stack.api.call('GET', '/api/v1/segments', { auth })).body.data[0].tenantId}", filter: {segmentId: "${frequent.id}"}) { totalCount edges { node { firstName segments { name } } } } }`);
    expect(gql.body.data.customers.totalCount).toBe(1);
    expect(gql.body.data.customers.edges[0].node.segments.map((s: any) => s.name)).toEqual(expect.arrayContaining(['active members', 'frequent bookers']));

    // A cycle through references is refused.
    const cyclic = await stack.api.call('PATCH', `/api/v1/segments/${members3.id}`, { auth, body: { criteria: { segment: notIn.id, op: 'in' } } });
    expect(cyclic.status).toBe(400);
    expect(cyclic.body.error.message).toContain('cycle');
    // A segment another one uses cannot be deleted.
    expect((await stack.api.call('DELETE', `/api/v1/segments/${frequent.id}`, { auth })).status).toBe(409);
  });
});

describe('segment lifecycle', () => {
  it('refreshes DYNAMIC segments on demand and on a schedule that follows isActive, and cleans up on delete', async () => {
    const { auth, tenant } = await tenantWith([{ firstName: 'Ann', email: 'a@t.test', lifecycleStage: 'MEMBER' }, { firstName: 'Bob', email: 'b@t.test' }]);
    const created = (await stack.api.call('POST', '/api/v1/segments', {
      auth, body: { name: 'members', type: 'DYNAMIC', criteria: { field: 'lifecycleStage', op: 'eq', value: 'MEMBER' }, refreshIntervalMinutes: 30 },
    })).body.data;
    expect(created).toMatchObject({ memberCount: 1, refreshIntervalMinutes: 30, isActive: true, lastRefreshedAt: expect.any(String) });

    const schedule = stack.client.schedule.getHandle(`segment-refresh-schedule-${created.id}`);
    const described = await schedule.describe();
    expect(described.spec.intervals?.[0]?.every).toBe(30 * 60 * 1000);
    expect(described.state.paused).toBe(false);
    expect(described.action).toMatchObject({ type: 'startWorkflow', workflowType: 'scheduledSegmentRefreshWorkflow', taskQueue: stack.taskQueue });

    // New matches wait for a refresh; the refresh reports the difference and records why.
    const bob = (await stack.api.call('GET', '/api/v1/customers?search=bob', { auth })).body.data[0];
    await stack.api.call('PATCH', `/api/v1/customers/${bob.id}`, { auth, body: { lifecycleStage: 'MEMBER' } });
    expect((await stack.api.call('GET', `/api/v1/segments/${created.id}`, { auth })).body.data.memberCount).toBe(1);
    const refresh = await stack.api.graphql(auth, `mutation { refreshSegment(id: "${created.id}") { segmentId previousCount newCount added removed } }`);
    expect(refresh.body.data.refreshSegment).toEqual({ segmentId: created.id, previousCount: 1, newCount: 2, added: 1, removed: 0 });
    const changes = await sql(`select customer_id, change, cause from segment_membership_changes where segment_id = $1`, [created.id]);
    expect(changes).toEqual([{ customer_id: bob.id, change: 'ENTERED', cause: 'manual' }]);
    const run = await stack.client.workflow.getHandle(`segment-refresh-${created.id}`).describe();
    expect(run.searchAttributes).toMatchObject({ TenantId: [tenant], SegmentId: [created.id] });

    // The schedule refreshes under the same workflow id as a manual refresh, so the two join
    // instead of running side by side (a Schedule's own ids carry a timestamp).
    await stack.api.call('PATCH', `/api/v1/customers/${bob.id}`, { auth, body: { lifecycleStage: 'LEAD' } });
    await schedule.trigger();
    for (let tries = 0; !(await sql(`select 1 from segment_membership_changes where segment_id = $1 and cause = 'schedule'`, [created.id])).length; tries++) {
      expect(tries, 'the scheduled refresh did not run').toBeLessThan(240);
      await new Promise((r) => setTimeout(r, 250));
    }
    const scheduled = stack.client.workflow.getHandle(`segment-refresh-${created.id}`);
    expect(await scheduled.result()).toMatchObject({ segmentId: created.id, previousCount: 2, newCount: 1, removed: 1 });
    const scheduledRun = await scheduled.describe();
    expect(scheduledRun.runId).not.toBe(run.runId);
    expect(scheduledRun.searchAttributes).toMatchObject({ TenantId: [tenant], SegmentId: [created.id] });
    expect(await sql(`select customer_id, change from segment_membership_changes where segment_id = $1 and cause = 'schedule'`, [created.id]))
      .toEqual([{ customer_id: bob.id, change: 'EXITED' }]);

    await stack.api.call('PATCH', `/api/v1/segments/${created.id}`, { auth, body: { isActive: false } });
    expect((await schedule.describe()).state.paused).toBe(true);

    expect((await stack.api.graphql(auth, `mutation { deleteSegment(id: "${created.id}") }`)).body.data.deleteSegment).toBe(true);
    await expect(schedule.describe()).rejects.toThrow();
    expect(await sql('select 1 from segment_members where segment_id = $1', [created.id])).toEqual([]);
    expect((await stack.api.call('GET', `/api/v1/segments/${created.id}`, { auth })).status).toBe(404);
  });

  it('joins a refresh already running instead of starting a second one on schedule', async () => {
    const { auth, tenant } = await tenantWith([{ firstName: 'Ann', email: 'a@j.test', lifecycleStage: 'MEMBER' }]);
    const segment = (await stack.api.call('POST', '/api/v1/segments', {
      auth, body: { name: 'members', type: 'DYNAMIC', criteria: { field: 'lifecycleStage', op: 'eq', value: 'MEMBER' } },
    })).body.data;
    // A refresh that stays running: on a task queue no worker polls.
    const running = await stack.client.workflow.start<typeof segmentRefreshWorkflow>('segmentRefreshWorkflow', {
      workflowId: `segment-refresh-${segment.id}`, taskQueue: `idle-${randomUUID().slice(0, 8)}`, args: [{ tenantId: tenant, segmentId: segment.id, cause: 'manual' }],
    });
    try {
      const outcome = await stack.client.workflow.execute<typeof scheduledSegmentRefreshWorkflow>('scheduledSegmentRefreshWorkflow', {
        workflowId: `segment-refresh-schedule-${segment.id}-${randomUUID().slice(0, 8)}`, taskQueue: stack.taskQueue, args: [{ tenantId: tenant, segmentId: segment.id }],
      });
      expect(outcome).toBe('joined');
      const current = await stack.client.workflow.getHandle(`segment-refresh-${segment.id}`).describe();
      expect(current.runId).toBe(running.firstExecutionRunId);
      expect(current.status.name).toBe('RUNNING');
    } finally {
      await running.terminate();
    }
  });

  it('keeps STATIC members fixed until an explicit refresh', async () => {
    const { auth } = await tenantWith([{ firstName: 'Ann', email: 'a@s.test', handicap: 8 }]);
    const s = (await stack.api.call('POST', '/api/v1/segments', { auth, body: { name: 'low handicaps', type: 'STATIC', criteria: { field: 'handicap', op: 'lt', value: 10 } } })).body.data;
    expect(s.memberCount).toBe(1);
    await stack.api.call('POST', '/api/v1/customers', { auth, body: { firstName: 'Bea', email: 'b@s.test', handicap: 4 } });
    await stack.api.call('PATCH', `/api/v1/segments/${s.id}`, { auth, body: { criteria: { field: 'handicap', op: 'lt', value: 5 } } });
    expect(await members(auth, s.id)).toEqual(['Ann']);
    expect((await stack.api.call('POST', `/api/v1/segments/${s.id}/refresh`, { auth })).body.data).toMatchObject({ added: 1, removed: 1, newCount: 1 });
    expect(await members(auth, s.id)).toEqual(['Bea']);
  });

  it('stores the exact count on a first population, folding the deltas recorded before it, and records no changes', async () => {
    const { auth, tenant, ids } = await tenantWith([
      { firstName: 'Ann', email: 'a@f.test', lifecycleStage: 'MEMBER' }, { firstName: 'Bob', email: 'b@f.test', lifecycleStage: 'MEMBER' },
      { firstName: 'Cy', email: 'c@f.test' },
    ]);
    // A segment never refreshed, with no members but real-time deltas left behind (one customer
    // entered and left before): the first population replaces them, not adds to them.
    const [{ id }] = await sql(
      `insert into segments (id, tenant_id, name, type, criteria) values (gen_random_uuid(), $1, 'first', 'DYNAMIC', $2) returning id`,
      [tenant, JSON.stringify({ field: 'lifecycleStage', op: 'eq', value: 'MEMBER' })],
    );
    await sql(`insert into segment_member_count_deltas (segment_id, writer, delta) values ($1, 1, 1), ($1, 2, -1), ($1, 3, 3)`, [id]);
    const refresh = (args: { cause: string }) => stack.client.workflow.execute<typeof segmentRefreshWorkflow>('segmentRefreshWorkflow', {
      workflowId: `segment-refresh-${id}`, taskQueue: stack.taskQueue, args: [{ tenantId: tenant, segmentId: id, ...args }],
    });
    expect(await refresh({ cause: 'created' })).toEqual({ segmentId: id, previousCount: 0, newCount: 2, added: 2, removed: 0 });
    const [stored] = await sql(
      `select member_count, last_refreshed_at is not null as refreshed, (select count(*)::int from segment_members where segment_id = s.id) as rows,
              (select count(*)::int from segment_member_count_deltas where segment_id = s.id) as deltas
         from segments s where id = $1`, [id],
    );
    expect(stored).toEqual({ member_count: 2, refreshed: true, rows: 2, deltas: 0 });
    expect((await stack.api.call('GET', `/api/v1/segments/${id}`, { auth })).body.data.memberCount).toBe(2);
    expect(await members(auth, id)).toEqual(['Ann', 'Bob']);
    expect(await sql('select 1 from segment_membership_changes where segment_id = $1', [id])).toEqual([]);

    // The next refresh diffs against it: nothing moved, then one entry recorded with its cause.
    expect(await refresh({ cause: 'manual' })).toEqual({ segmentId: id, previousCount: 2, newCount: 2, added: 0, removed: 0 });
    await stack.api.call('PATCH', `/api/v1/customers/${ids[2]}`, { auth, body: { lifecycleStage: 'MEMBER' } });
    expect(await refresh({ cause: 'manual' })).toEqual({ segmentId: id, previousCount: 2, newCount: 3, added: 1, removed: 0 });
    expect(await sql('select customer_id, change, cause from segment_membership_changes where segment_id = $1', [id]))
      .toEqual([{ customer_id: ids[2], change: 'ENTERED', cause: 'manual' }]);
  });

  it('moves SMART membership just after events arrive and profiles change', async () => {
    const { tenant, auth, ids } = await tenantWith([{ firstName: 'Ann', email: 'a@m.test' }, { firstName: 'Bob', email: 'b@m.test' }]);
    const smart = (await stack.api.call('POST', '/api/v1/segments', {
      auth, body: { name: 'recent bookers', type: 'SMART', criteria: { all: [{ event: { type: 'booking.created', within: 'P7D' } }, { field: 'status', op: 'eq', value: 'ACTIVE' }] } },
    })).body.data;
    expect(smart.memberCount).toBe(0);

    await stack.api.call('POST', '/api/v1/events', { auth, body: {
      type: 'booking.created', category: 'BOOKING', title: 'Booked', occurredAt: new Date().toISOString(), customer: { id: ids[0] }, sourceService: 'b', sourceEventId: '1',
    } });
    await stack.api.settled(tenant);
    expect(await members(auth, smart.id)).toEqual(['Ann']);
    // A brand-new customer created by an event joins too.
    await stack.api.call('POST', '/api/v1/events', { auth, body: {
      type: 'booking.created', category: 'BOOKING', title: 'Booked', occurredAt: new Date().toISOString(), customer: { email: 'new@m.test' }, sourceService: 'b', sourceEventId: '2',
    } });
    await stack.api.settled(tenant);
    expect((await stack.api.call('GET', `/api/v1/segments/${smart.id}`, { auth })).body.data.memberCount).toBe(2);

    await stack.api.call('PATCH', `/api/v1/customers/${ids[0]}`, { auth, body: { status: 'INACTIVE' } });
    await stack.api.settled(tenant);
    expect((await members(auth, smart.id)).length).toBe(1);
    const changes = await sql(`select change, cause from segment_membership_changes where segment_id = $1 and customer_id = $2 order by id`, [smart.id, ids[0]]);
    expect(changes).toEqual([{ change: 'ENTERED', cause: 'event' }, { change: 'EXITED', cause: 'updated' }]);

    // SMART segments also refresh on a schedule, for what time alone changes.
    expect((await stack.client.schedule.getHandle(`segment-refresh-schedule-${smart.id}`).describe()).state.paused).toBe(false);

    // A merge moves the loser's membership to the winner and the counts stay right.
    await stack.api.call('PATCH', `/api/v1/customers/${ids[0]}`, { auth, body: { status: 'ACTIVE' } });
    await stack.api.settled(tenant);
    await stack.api.call('POST', '/api/v1/customers/merge', { auth, body: { winnerId: ids[1], loserId: ids[0] } });
    await stack.api.settled(tenant);
    const after = (await stack.api.call('GET', `/api/v1/segments/${smart.id}`, { auth })).body.data;
    const stored = await sql('select count(*)::int as n from segment_members where segment_id = $1', [smart.id]);
    expect(after.memberCount).toBe(stored[0].n);
    expect(await members(auth, smart.id)).toContain('Bob');
    const merged = await sql(`select customer_id, change from segment_membership_changes where segment_id = $1 and cause = 'merged'`, [smart.id]);
    expect(merged).toContainEqual({ customer_id: ids[0], change: 'EXITED' });
    // A full refresh agrees with the real-time count.
    const refreshed = (await stack.api.call('POST', `/api/v1/segments/${smart.id}/refresh`, { auth })).body.data;
    expect(refreshed).toMatchObject({ previousCount: stored[0].n, newCount: stored[0].n, added: 0, removed: 0 });
  });

  it('keeps a real-time count exact in a row per writer, however many members move, after concurrent events, exits and merges', async () => {
    const people = Array.from({ length: 40 }, (_, i) => ({ firstName: `P${i}`, email: `p${i}@w.test` }));
    const { tenant, auth, ids } = await tenantWith(people);
    const smart = (await stack.api.call('POST', '/api/v1/segments', {
      auth, body: { name: 'active bookers', type: 'SMART', criteria: { all: [{ event: { type: 'booking.created' } }, { field: 'status', op: 'eq', value: 'ACTIVE' }] } },
    })).body.data;
    const booked = (i: number) => stack.api.call('POST', '/api/v1/events', { auth, body: {
      type: 'booking.created', category: 'BOOKING', title: 'Booked', occurredAt: new Date().toISOString(), customer: { id: ids[i] }, sourceService: 'w', sourceEventId: `b${i}`,
    } });
    // 40 entries, then 10 exits and 5 merges of two members (each one member fewer), all concurrent.
    await Promise.all(ids.map((_, i) => booked(i)));
    await Promise.all([
      ...ids.slice(0, 10).map((id) => stack.api.call('PATCH', `/api/v1/customers/${id}`, { auth, body: { status: 'INACTIVE' } })),
      ...[10, 12, 14, 16, 18].map((i) => stack.api.call('POST', '/api/v1/customers/merge', { auth, body: { winnerId: ids[i], loserId: ids[i + 1] } })),
    ]);
    await stack.api.settled(tenant);
    const [stored] = await sql<{ members: number; rows: number }>(
      `select (select count(*)::int from segment_members where segment_id = $1) as members,
              (select count(*)::int from segment_member_count_deltas where segment_id = $1) as rows`, [smart.id],
    );
    expect(stored!.members).toBe(25);
    expect((await stack.api.call('GET', `/api/v1/segments/${smart.id}`, { auth })).body.data.memberCount).toBe(25);
    // 55 moves, kept in at most a row per connection of the API's pool (10), not a row per statement.
    expect(stored!.rows).toBeLessThanOrEqual(10);
    // A refresh folds them into the stored count and agrees with it.
    expect((await stack.api.call('POST', `/api/v1/segments/${smart.id}/refresh`, { auth })).body.data)
      .toMatchObject({ previousCount: 25, newCount: 25, added: 0, removed: 0 });
    expect(await sql('select 1 from segment_member_count_deltas where segment_id = $1', [smart.id])).toEqual([]);
  });

  it('a refresh folds the count changes its snapshot saw, not one a merge adds meanwhile', async () => {
    const { tenant } = await tenantWith([]);
    const [{ id }] = await sql(`insert into segments (tenant_id, name, type) values ($1, 'folded', 'STATIC') returning id`, [tenant]);
    await sql(`insert into segment_member_count_deltas (segment_id, writer, delta) values ($1, 1, 5)`, [id]);
    const merge = new pg.Client({ connectionString: inject('databaseUrl') });
    const refresh = new pg.Client({ connectionString: inject('databaseUrl') });
    await Promise.all([merge.connect(), refresh.connect()]);
    try {
      // A writer's uncommitted -1 on the row; the refresh's snapshot sees 5, waits for the row, then folds.
      await merge.query('begin');
      await merge.query(`update segment_member_count_deltas set delta = delta - 1 where segment_id = $1 and writer = 1`, [id]);
      const folding = refresh.query(`with folded as (${foldMemberCountDeltas('$1::uuid')}) select (select count(*)::int from folded) as n`, [id]);
      let waiting = 0;
      for (let i = 0; i < 100 && !waiting; i++) {
        await new Promise((r) => setTimeout(r, 30));
        waiting = (await sql<{ n: number }>(`select count(*)::int as n from pg_stat_activity where wait_event_type = 'Lock' and query like '%seen.delta%'`))[0]!.n;
      }
      expect(waiting).toBe(1);
      await merge.query('commit');
      expect((await folding).rows).toEqual([{ n: 1 }]);
      expect(await sql('select delta from segment_member_count_deltas where segment_id = $1', [id])).toEqual([{ delta: -1 }]);
    } finally {
      await Promise.all([merge.end(), refresh.end()]);
    }
  });

  it('folds each segment\'s count rows into one hourly, skipping a writer still in its transaction and a segment being refreshed', async () => {
    const { auth, tenant } = await tenantWith([]);
    const [a, b] = await sql<{ id: string }>(`insert into segments (tenant_id, name, type) values ($1, 'a', 'STATIC'), ($1, 'b', 'STATIC') returning id`, [tenant]);
    await sql(`insert into segment_member_count_deltas (segment_id, writer, delta)
               values ($1, 101, 2), ($1, 102, -1), ($1, 103, 4), ($1, 104, 1), ($2, 101, 3), ($2, 102, 3)`, [a!.id, b!.id]);
    const memberCounts = async () => Promise.all([a!.id, b!.id].map(async (id) => (await stack.api.call('GET', `/api/v1/segments/${id}`, { auth })).body.data.memberCount));
    expect(await memberCounts()).toEqual([6, 6]);
    const writer = new pg.Client({ connectionString: inject('databaseUrl') });
    const refresh = new pg.Client({ connectionString: inject('databaseUrl') });
    await Promise.all([writer.connect(), refresh.connect()]);
    try {
      // Writer 104 is adding to its row in an open transaction; b is being refreshed.
      await writer.query('begin');
      await writer.query(`update segment_member_count_deltas set delta = delta + 1 where segment_id = $1 and writer = 104`, [a!.id]);
      await refresh.query('begin');
      await refresh.query(`select pg_advisory_xact_lock(hashtextextended('segment:' || $1, 0))`, [b!.id]);
      const run = await stack.client.workflow.execute<typeof segmentCountFoldWorkflow>('segmentCountFoldWorkflow', {
        workflowId: `segment-count-fold-${randomUUID()}`, taskQueue: stack.taskQueue, args: [],
      });
      expect(run.rows).toBeGreaterThanOrEqual(3);
      await writer.query('commit');
      await refresh.query('commit');
    } finally {
      await Promise.all([writer.end(), refresh.end()]);
    }
    const rows = (id: string) => sql('select writer, delta from segment_member_count_deltas where segment_id = $1 order by writer', [id]);
    expect(await rows(a!.id)).toEqual([{ writer: 0, delta: 5 }, { writer: 104, delta: 2 }]);
    expect(await rows(b!.id)).toEqual([{ writer: 101, delta: 3 }, { writer: 102, delta: 3 }]);
    expect(await memberCounts()).toEqual([7, 6]);
  });

  /**
   * Runs `action` while the segment's deletion is in flight: the deleting transaction holds the
   * segment until `action` waits on it in a statement matching `waitingIn`, then commits.
   */
  async function whileDeleting<T>(segmentId: string, waitingIn: string, action: () => Promise<T>): Promise<T> {
    const deleting = new pg.Client({ connectionString: inject('databaseUrl') });
    await deleting.connect();
    try {
      await deleting.query('begin');
      await deleting.query('delete from segments where id = $1', [segmentId]);
      const result = action();
      let waiting = 0;
      for (let i = 0; i < 200 && !waiting; i++) {
        await new Promise((r) => setTimeout(r, 50));
        waiting = (await sql<{ n: number }>(`select count(*)::int as n from pg_stat_activity where wait_event_type = 'Lock' and query like $1`, [`%${waitingIn}%`]))[0]!.n;
      }
      expect(waiting).toBe(1);
      await deleting.query('commit');
      return await result;
    } finally {
      await deleting.end();
    }
  }

  it('moves only the SMART members whose conditions changed, whatever else they belong to: STATIC segments and earlier levels stay as they are', async () => {
    const { tenant, auth, ids } = await tenantWith([{ firstName: 'Ann', email: 'a@lv.test', handicap: 4 }, { firstName: 'Bob', email: 'b@lv.test', handicap: 20 }]);
    const create = async (name: string, type: string, criteria: unknown) =>
      (await stack.api.call('POST', '/api/v1/segments', { auth, body: { name, type, criteria } })).body.data.id as string;
    const vips = await create('vips', 'STATIC', { field: 'handicap', op: 'lt', value: 10 });
    const bookers = await create('active bookers', 'SMART', { all: [{ event: { type: 'booking.created' } }, { field: 'status', op: 'eq', value: 'ACTIVE' }] });
    // A second level: it reads the first's membership.
    const bookingVips = await create('booking vips', 'SMART', { all: [{ segment: bookers, op: 'in' }, { segment: vips, op: 'in' }] });
    const bookingOthers = await create('booking others', 'SMART', { all: [{ event: { type: 'booking.created' } }, { segment: vips, op: 'notIn' }] });
    const book = (customer: string, id: string) => ({
      type: 'booking.created', category: 'BOOKING', title: 'Booked', occurredAt: new Date().toISOString(), customer: { id: customer }, sourceService: 'lv', sourceEventId: id,
    });
    const state = async () => Object.fromEntries(await Promise.all(Object.entries({ vips, bookers, bookingVips, bookingOthers })
      .map(async ([name, id]) => [name, (await members(auth, id)).sort()])));
    const changes = async () => (await sql<{ n: number }>('select count(*)::int as n from segment_membership_changes where tenant_id = $1', [tenant]))[0]!.n;

    // Both customers drained together (the many-customer statement), then each alone (the one-customer statement).
    await Promise.all([stack.api.call('POST', '/api/v1/events', { auth, body: book(ids[0]!, '1') }), stack.api.call('POST', '/api/v1/events', { auth, body: book(ids[1]!, '2') })]);
    await stack.api.settled(tenant);
    expect(await state()).toEqual({ vips: ['Ann'], bookers: ['Ann', 'Bob'], bookingVips: ['Ann'], bookingOthers: ['Bob'] });
    const recorded = await changes();
    expect(recorded).toBe(4);
    // Nothing changes for anyone: nothing moves, nothing is recorded.
    await stack.api.call('POST', '/api/v1/events', { auth, body: book(ids[0]!, '3') });
    await stack.api.settled(tenant);
    expect(await changes()).toBe(recorded);
    // Ann leaves the first level, and so the second; her STATIC membership stays.
    await stack.api.call('PATCH', `/api/v1/customers/${ids[0]}`, { auth, body: { status: 'INACTIVE' } });
    await stack.api.settled(tenant);
    expect(await state()).toEqual({ vips: ['Ann'], bookers: ['Bob'], bookingVips: [], bookingOthers: ['Bob'] });
    expect(await sql('select change, segment_id from segment_membership_changes where tenant_id = $1 and customer_id = $2 and cause = $3 order by segment_id', [tenant, ids[0], 'updated']))
      .toEqual([{ change: 'EXITED', segment_id: bookers }, { change: 'EXITED', segment_id: bookingVips }].sort((a, b) => (a.segment_id < b.segment_id ? -1 : 1)));
  });

  it('evaluates SMART segments that share a probe of the timeline (the same event, window and values) as each would alone', async () => {
    const { tenant, auth, ids } = await tenantWith([{ firstName: 'Ann', email: 'ann@p.test' }, { firstName: 'Bob', email: 'bob@p.test' }]);
    // twice, thrice and atMostOnce count the same bookings (one probe, counting as far as three);
    // atMostMany too, but too far to share: it counts alone. golfers, golfingAnn and noGolf read
    // the same GOLF probe.
    const criteria = {
      twice: { event: { type: 'booking.created' }, count: { op: 'gte', value: 2 } },
      thrice: { event: { type: 'booking.created' }, count: { op: 'gte', value: 3 } },
      atMostOnce: { event: { type: 'booking.created' }, count: { op: 'lte', value: 1 } },
      atMostMany: { event: { type: 'booking.created' }, count: { op: 'lte', value: SHARED_COUNT_LIMIT } },
      golfers: { event: { category: 'GOLF' } },
      golfingAnn: { all: [{ event: { category: 'GOLF' } }, { field: 'firstName', op: 'eq', value: 'Ann' }] },
      noGolf: { not: { event: { category: 'GOLF' } } },
    };
    const segments: Record<string, string> = {};
    for (const [name, c] of Object.entries(criteria)) {
      segments[name] = (await stack.api.call('POST', '/api/v1/segments', { auth, body: { name, type: 'SMART', criteria: c } })).body.data.id;
    }
    const event = (customer: string, type: string, category: string, id: string) => ({
      type, category, title: 'x', occurredAt: new Date().toISOString(), customer: { id: customer }, sourceService: 'probe', sourceEventId: id,
    });
    // Each drained alone: Ann's three events (one customer), then Bob's, each (the one-customer statement).
    const batch = await stack.api.call('POST', '/api/v1/events', {
      auth, body: ['1', '2', '5'].map((id) => event(ids[0]!, 'booking.created', 'BOOKING', id)),
    });
    expect(batch.status).toBe(200);
    await stack.api.settled(tenant);
    await stack.api.call('POST', '/api/v1/events', { auth, body: event(ids[1]!, 'booking.created', 'BOOKING', '3') });
    await stack.api.settled(tenant);
    await stack.api.call('POST', '/api/v1/events', { auth, body: event(ids[1]!, 'lesson.booked', 'GOLF', '4') });
    await stack.api.settled(tenant);
    const expected = { twice: ['Ann'], thrice: ['Ann'], atMostOnce: ['Bob'], atMostMany: ['Ann', 'Bob'], golfers: ['Bob'], golfingAnn: [], noGolf: ['Ann'] };
    const key = (c: unknown) => compileCriteria(c).probes(tenant)[0]!.key;
    expect(key(criteria.twice)).toBe(key(criteria.atMostOnce));
    expect(key(criteria.twice)).not.toBe(key(criteria.atMostMany));
    for (const [name, id] of Object.entries(segments)) {
      expect([name, (await members(auth, id)).sort()]).toEqual([name, expected[name as keyof typeof expected]]);
      // A refresh computes each segment on its own, over the tenant: it finds nothing to change.
      const refreshed = (await stack.api.call('POST', `/api/v1/segments/${id}/refresh`, { auth })).body.data;
      expect([name, refreshed.added, refreshed.removed]).toEqual([name, 0, 0]);
    }
  });

  it('takes an event that would move members of a SMART segment being deleted: the event lands, the segment goes', async () => {
    const { auth, ids } = await tenantWith([{ firstName: 'Ann', email: 'a@gone.test' }]);
    const smart = (await stack.api.call('POST', '/api/v1/segments', {
      auth, body: { name: 'bookers', type: 'SMART', criteria: { event: { type: 'booking.created' } } },
    })).body.data;
    // The deletion's cascade holds the segment's references lock, which the event's re-evaluation takes.
    const res = await whileDeleting(smart.id, 'segment-references', () => stack.api.call('POST', '/api/v1/events', { auth, body: {
      type: 'booking.created', category: 'BOOKING', title: 'Booked', occurredAt: new Date().toISOString(), customer: { id: ids[0] }, sourceService: 'gone', sourceEventId: '1',
    } }));
    expect(res.status).toBe(200);
    expect(res.body.data.accepted).toBe(1);
    expect(await sql('select count(*)::int as n from activities where customer_id = $1', [ids[0]])).toEqual([{ n: 1 }]);
    expect(await sql('select count(*)::int as n from segment_members where segment_id = $1', [smart.id])).toEqual([{ n: 0 }]);
    expect((await stack.api.call('GET', `/api/v1/segments/${smart.id}`, { auth })).status).toBe(404);
  });

  it('a refresh racing a merge waits for it: the merged profile is not put back in the segment', async () => {
    const { tenant, auth, ids } = await tenantWith([{ firstName: 'Ann', email: 'a@merge-refresh.test' }, { firstName: 'Bob', email: 'b@merge-refresh.test' }]);
    const anns = (await stack.api.call('POST', '/api/v1/segments', { auth, body: { name: 'anns', type: 'DYNAMIC', criteria: { field: 'firstName', op: 'eq', value: 'Ann' } } })).body.data;
    expect(await members(auth, anns.id)).toEqual(['Ann']);
    // The merge is held after it has moved the memberships, at the loser's campaign delivery.
    const [{ id: campaign }] = await sql(`insert into campaigns (tenant_id, name, type, status, channels) values ($1, 'held', 'ONE_TIME', 'ACTIVE', '{EMAIL}') returning id`, [tenant]);
    const [{ id: delivery }] = await sql(`insert into campaign_deliveries (tenant_id, campaign_id, customer_id, run_key, channel, status) values ($1, $2, $3, 'once', 'EMAIL', 'SENT') returning id`, [tenant, campaign, ids[0]]);
    const holder = new pg.Client({ connectionString: inject('databaseUrl') });
    await holder.connect();
    try {
      await holder.query('begin');
      await holder.query('select id from campaign_deliveries where id = $1 for update', [delivery]);
      const [{ pid }] = (await holder.query('select pg_backend_pid() as pid')).rows;
      const merged = stack.api.call('POST', '/api/v1/customers/merge', { auth, body: { winnerId: ids[1], loserId: ids[0] } });
      await until('the merge is held', async () => (await sql('select 1 from pg_stat_activity where $1 = any(pg_blocking_pids(pid))', [pid])).length || undefined);
      const refreshed = stack.api.call('POST', `/api/v1/segments/${anns.id}/refresh`, { auth });
      await new Promise((r) => setTimeout(r, 500)); // the refresh reaches the segment's lock (or, unlocked, its diff)
      await holder.query('commit');
      expect((await merged).status).toBe(200);
      expect((await refreshed).status).toBe(200);
    } finally {
      await holder.end();
    }
    expect(await sql('select customer_id from segment_members where segment_id = $1 and customer_id = $2', [anns.id, ids[0]])).toEqual([]);
    expect(await sql(`select 1 from segment_membership_changes where segment_id = $1 and customer_id = $2 and change = 'ENTERED' and cause <> 'created'`, [anns.id, ids[0]])).toEqual([]);
    const listed = await members(auth, anns.id);
    expect((await stack.api.call('GET', `/api/v1/segments/${anns.id}`, { auth })).body.data.memberCount).toBe(listed.length);
  });

  it('merges a customer whose segment is being deleted: the merge lands, the segment goes', async () => {
    const { auth, ids } = await tenantWith([{ firstName: 'Ann', email: 'a@merge-gone.test' }, { firstName: 'Bob', email: 'b@merge-gone.test' }]);
    const anns = (await stack.api.call('POST', '/api/v1/segments', {
      auth, body: { name: 'anns', type: 'SMART', criteria: { field: 'firstName', op: 'eq', value: 'Ann' } },
    })).body.data;
    expect(await members(auth, anns.id)).toEqual(['Ann']);
    const res = await whileDeleting(anns.id, 'pg_advisory_xact_lock_shared', () => stack.api.call('POST', '/api/v1/customers/merge', { auth, body: { winnerId: ids[1], loserId: ids[0] } }));
    expect(res.status).toBe(200);
    expect(await sql('select count(*)::int as n from segment_members where segment_id = $1', [anns.id])).toEqual([{ n: 0 }]);
    expect(await sql('select status from customers where id = $1', [ids[0]])).toEqual([{ status: 'MERGED' }]);
  });

  it('honours SMART segments edited, added or deactivated elsewhere from the next event on', async () => {
    const { tenant, auth, ids } = await tenantWith([{ firstName: 'Ann', email: 'a@e.test' }, { firstName: 'Bob', email: 'b@e.test' }]);
    const smart = (await stack.api.call('POST', '/api/v1/segments', {
      auth, body: { name: 'bookers', type: 'SMART', criteria: { event: { type: 'booking.created' } } },
    })).body.data;
    const post = (customerId: string, type: string, sourceEventId: string) => stack.api.call('POST', '/api/v1/events', { auth, body: {
      type, category: 'BOOKING', title: 'Booked', occurredAt: new Date().toISOString(), customer: { id: customerId }, sourceService: 'b', sourceEventId,
    } });
    await post(ids[0]!, 'booking.created', '1');
    await stack.api.settled(tenant);
    expect(await members(auth, smart.id)).toEqual(['Ann']);

    // Another API instance (here: SQL, so nothing in this process hears of it) edits the criteria.
    await sql(`update segments set criteria = $1 where id = $2`, [JSON.stringify({ event: { type: 'lesson.booked' } }), smart.id]);
    await post(ids[0]!, 'booking.created', '2');
    await post(ids[1]!, 'lesson.booked', '3');
    await stack.api.settled(tenant);
    expect(await members(auth, smart.id)).toEqual(['Bob']);

    // A SMART segment added elsewhere counts from the next event; one deactivated no longer moves.
    const added = randomUUID();
    await sql(`insert into segments (id, tenant_id, name, type, criteria) values ($1, $2, 'added', 'SMART', $3)`, [added, tenant, JSON.stringify({ field: 'firstName', op: 'eq', value: 'Ann' })]);
    await sql(`update segments set is_active = false where id = $1`, [smart.id]);
    await post(ids[0]!, 'lesson.booked', '4');
    await stack.api.settled(tenant);
    expect(await members(auth, added)).toEqual(['Ann']);
    expect(await members(auth, smart.id)).toEqual(['Bob']);
  });

  it('evaluates customers another process queued, or one that died before draining them, at its next poll', async () => {
    const { tenant, auth, ids } = await tenantWith([{ firstName: 'Ann', email: 'a@queued.test' }]);
    const vips = (await stack.api.call('POST', '/api/v1/segments', { auth, body: { name: 'vips', type: 'SMART', criteria: { field: 'lastName', op: 'eq', value: 'Vip' } } })).body.data;
    // What a worker's journey step, or an API killed after its commit, leaves: the change and its row, nobody told.
    await sql(`with changed as (update customers set last_name = 'Vip' where id = $2 returning id)
               insert into segment_reevaluations (tenant_id, customer_id, cause) select $1, id, 'journey' from changed`, [tenant, ids[0]]);
    await stack.api.settled(tenant);
    expect(await members(auth, vips.id)).toEqual(['Ann']);
    expect(await sql('select change, cause from segment_membership_changes where segment_id = $1', [vips.id])).toEqual([{ change: 'ENTERED', cause: 'journey' }]);
  });

  it('puts back, backing off, the customers of a tenant whose SMART segments cannot be evaluated, and evaluates the others', async () => {
    const broken = await tenantWith([{ firstName: 'Ann', email: 'a@broken.test' }]);
    const fine = await tenantWith([{ firstName: 'Bob', email: 'b@fine.test' }]);
    // Criteria no version of the API accepts, written past it (SQL): its tenant's evaluations fail.
    await sql(`insert into segments (tenant_id, name, type, criteria) values ($1, 'bad', 'SMART', $2)`, [broken.tenant, JSON.stringify({ field: 'nope', op: 'eq', value: 1 })]);
    const bobs = (await stack.api.call('POST', '/api/v1/segments', { auth: fine.auth, body: { name: 'bobs', type: 'SMART', criteria: { field: 'lastName', op: 'eq', value: 'B' } } })).body.data;
    await stack.api.call('PATCH', `/api/v1/customers/${broken.ids[0]}`, { auth: broken.auth, body: { lastName: 'A' } });
    await stack.api.call('PATCH', `/api/v1/customers/${fine.ids[0]}`, { auth: fine.auth, body: { lastName: 'B' } });
    await stack.api.settled(fine.tenant);
    expect(await members(fine.auth, bobs.id)).toEqual(['Bob']);
    const [back] = await until('the broken tenant\'s row put back', async () => {
      const rows = await sql(`select customer_id, cause, attempts, next_attempt_at > now() as later from segment_reevaluations where tenant_id = $1`, [broken.tenant]);
      return rows[0]?.attempts ? rows : undefined;
    }, 10_000);
    expect(back).toEqual({ customer_id: broken.ids[0], cause: 'updated', attempts: 1, later: true });
    // Operators see both, and how far behind the queue is.
    const metrics = await (await fetch(stack.api.metricsUrl)).text();
    const value = (line: string) => Number(metrics.match(new RegExp(`^${line.replace(/[{}]/g, '\\$&')} (\\S+)$`, 'm'))?.[1]);
    expect(value('crm_smart_reevaluations_total{outcome="failed"}')).toBeGreaterThanOrEqual(1);
    expect(value('crm_smart_reevaluations_total{outcome="evaluated"}')).toBeGreaterThanOrEqual(1);
    expect(value('crm_smart_reevaluation_lag_seconds')).toBeGreaterThan(0);
    // Another deployment's backlog in the same database (an hour old) is not this one's lag.
    const elsewhere = `elsewhere_${randomUUID().slice(0, 8)}`;
    await sql(`insert into segment_reevaluations (id, tenant_id, customer_id, cause, enqueued_at, next_attempt_at)
               select coalesce(min(id), 0) - 1, $1, $2, 'updated', now() - interval '1 hour', now() + interval '1 hour' from segment_reevaluations`,
      [elsewhere, randomUUID()]);
    const lag = async () => Number((await (await fetch(stack.api.metricsUrl)).text()).match(/^crm_smart_reevaluation_lag_seconds (\S+)$/m)?.[1]);
    try {
      expect(await lag()).toBeLessThan(600);
    } finally {
      await sql('delete from segment_reevaluations where tenant_id = $1', [elsewhere]);
    }
    // Days of failures later, the row is due again: its backoff stays at the bound, and the drain
    // that takes it with the other tenant's still evaluates that one.
    await sql('update segment_reevaluations set attempts = 1023, next_attempt_at = now() where tenant_id = $1', [broken.tenant]);
    await stack.api.call('PATCH', `/api/v1/customers/${fine.ids[0]}`, { auth: fine.auth, body: { lastName: 'C' } });
    await stack.api.settled(fine.tenant);
    expect(await members(fine.auth, bobs.id)).toEqual([]);
    const [later] = await until('the broken tenant\'s row put back again', async () => {
      const rows = await sql(`select attempts, extract(epoch from next_attempt_at - now())::float8 as wait from segment_reevaluations where tenant_id = $1`, [broken.tenant]);
      return rows[0]?.attempts === 1024 ? rows : undefined;
    }, 10_000);
    expect(later.wait).toBeGreaterThan(200);
    expect(later.wait).toBeLessThanOrEqual(300);
    await sql('delete from segments where tenant_id = $1', [broken.tenant]);
  });

  it('moves the SMART members of a batch of many customers in the batch\'s own transaction, queuing none', async () => {
    const { tenant, auth } = await tenantWith([]);
    const bookers = (await stack.api.call('POST', '/api/v1/segments', { auth, body: { name: 'bookers', type: 'SMART', criteria: { event: { type: 'booking.created' } } } })).body.data;
    const events = Array.from({ length: 120 }, (_, i) => ({
      type: 'booking.created', category: 'BOOKING', title: 'x', occurredAt: new Date().toISOString(), customer: { email: `m${i}@many.test` }, sourceService: 'many', sourceEventId: `${i}`,
    }));
    expect((await stack.api.call('POST', '/api/v1/events', { auth, body: events })).body.data.accepted).toBe(120);
    // Read at once: no wait for a drain.
    expect((await stack.api.call('GET', `/api/v1/segments/${bookers.id}`, { auth })).body.data.memberCount).toBe(120);
    expect(await sql('select count(*)::int as n from segment_membership_changes where segment_id = $1 and change = $2', [bookers.id, 'ENTERED'])).toEqual([{ n: 120 }]);
    expect(await sql('select 1 from segment_reevaluations where tenant_id = $1', [tenant])).toEqual([]);
  });

  it('gives a batch of events the same results, profiles, segments and changes as the same events one by one', async () => {
    const criteria = {
      twice: { event: { type: 'booking.created' }, count: { op: 'gte', value: 2 } },
      phoned: { field: 'phoneNumber', op: 'exists' },
      lessons: { all: [{ event: { category: 'GOLF' } }, { not: { field: 'firstName', op: 'eq', value: 'Bob' } }] },
    };
    const setUp = async () => {
      const t = await tenantWith([{ firstName: 'Ann', email: 'a@b.test', phoneNumber: '+27825550001' }, { firstName: 'Bob', email: 'b@b.test' }]);
      const segments: Record<string, string> = {};
      for (const [name, c] of Object.entries(criteria)) {
        const created = await stack.api.call('POST', '/api/v1/segments', { auth: t.auth, body: { name, type: 'SMART', criteria: c } });
        expect(created.body.error).toBeUndefined();
        segments[name] = created.body.data.id;
      }
      return { ...t, segments };
    };
    const events = [
      { customer: { email: 'a@b.test' }, type: 'booking.created' },
      { customer: { email: 'a@b.test', phone: '+27825550001' }, type: 'booking.created' },
      { customer: { email: 'b@b.test', phone: '+27825550002' }, type: 'booking.created' }, // completes Bob's profile
      { customer: { email: 'b@b.test', phone: '+27825550001' }, type: 'lesson.booked', category: 'GOLF' }, // Ann's phone: a conflict
      { customer: { email: 'new@b.test' }, type: 'lesson.booked', category: 'GOLF' }, // a new profile
      { customer: { email: 'none@b.test' }, type: 'booking.created', createCustomer: false },
      { customer: { email: 'a@b.test' }, type: 'booking.created', sourceEventId: 'e0' }, // repeated
      { customer: { email: 'new@b.test' }, type: 'booking.created' },
    ].map(({ category, sourceEventId, ...e }, i) => ({
      title: 'x', occurredAt: new Date().toISOString(), category: category ?? 'BOOKING', sourceService: 's', sourceEventId: sourceEventId ?? `e${i}`, ...e,
    }));
    const state = async (t: Awaited<ReturnType<typeof setUp>>) => {
      const names = Object.fromEntries(Object.entries(t.segments).map(([name, id]) => [id, name]));
      return {
        customers: await sql(`select email, phone_number, last_activity_at is not null as active,
            (select array_agg(type order by type) from activities a where a.customer_id = c.id) as activities
          from customers c where tenant_id = $1 order by email`, [t.tenant]),
        members: (await sql(`select sm.segment_id, c.email from segment_members sm join customers c on c.id = sm.customer_id where sm.tenant_id = $1`, [t.tenant]))
          .map((m) => `${names[m.segment_id]}:${m.email}`).sort(),
        changes: (await sql(`select m.segment_id, c.email, m.change from segment_membership_changes m join customers c on c.id = m.customer_id where m.tenant_id = $1`, [t.tenant]))
          .map((m) => `${names[m.segment_id]}:${m.email}:${m.change}`).sort(),
        counts: Object.fromEntries(await Promise.all(Object.entries(t.segments).map(async ([name, id]) =>
          [name, (await stack.api.call('GET', `/api/v1/segments/${id}`, { auth: t.auth })).body.data.memberCount]))),
      };
    };
    const single = await setUp();
    const singly = [];
    for (const e of events) {
      const res = await stack.api.call('POST', '/api/v1/events', { auth: single.auth, body: [e] });
      singly.push(res.body.data.results[0].status);
      await stack.api.settled(single.tenant);
    }
    const batch = await setUp();
    const together = (await stack.api.call('POST', '/api/v1/events', { auth: batch.auth, body: events })).body.data.results.map((r: any) => r.status);
    await stack.api.settled(batch.tenant);
    expect(together).toEqual(singly);
    expect(together).toEqual(['created', 'created', 'created', 'created', 'created', 'rejected', 'duplicate', 'created']);
    const expected = await state(single);
    expect(await state(batch)).toEqual(expected);
    expect(expected.members).toEqual(['lessons:new@b.test', 'phoned:a@b.test', 'phoned:b@b.test', 'twice:a@b.test']);
    expect(expected.customers.find((c: any) => c.email === 'b@b.test').activities).toEqual(['booking.created', 'identity.conflict', 'lesson.booked']);
  });

  it('creates, lists and updates segments over GraphQL with the same rules', async () => {
    const { auth, tenant } = await tenantWith([{ firstName: 'Ann', email: 'a@g.test', emailOptIn: true }, { firstName: 'Bob', email: 'b@g.test' }]);
    const created = await stack.api.graphql(auth, `mutation($c: JSON) { createSegment(input: {tenantId: "${tenant}", name: "opted in", type: SMART, criteria: $c}) {
      id name type criteria isActive memberCount lastRefreshedAt members(pagination: {first: 10}) { totalCount edges { node { firstName } } } } }`,
    { c: { field: 'emailOptIn', op: 'eq', value: true } });
    const segment = created.body.data.createSegment;
    expect(segment).toMatchObject({ name: 'opted in', type: 'SMART', isActive: true, memberCount: 1, criteria: { field: 'emailOptIn', op: 'eq', value: true } });
    expect(segment.members.edges.map((e: any) => e.node.firstName)).toEqual(['Ann']);
    const bad = await stack.api.graphql(auth, `mutation { createSegment(input: {tenantId: "${tenant}", name: "bad", type: DYNAMIC, criteria: {field: "nope", op: "eq", value: 1}}) { id } }`);
    expect(bad.body.errors[0]).toMatchObject({ extensions: { code: 'VALIDATION_ERROR', field: 'criteria.field' } });
    const updated = await stack.api.graphql(auth, `mutation { updateSegment(id: "${segment.id}", input: {name: "opted in (email)", criteria: {field: "emailOptIn", op: "eq", value: false}}) { name memberCount } }`);
    expect(updated.body.data.updateSegment).toEqual({ name: 'opted in (email)', memberCount: 1 });
    const listed = await stack.api.graphql(auth, `{ segments(tenantId: "${tenant}", type: SMART) { name } segmentMembers(segmentId: "${segment.id}") { edges { node { firstName } } } }`);
    expect(listed.body.data).toEqual({ segments: [{ name: 'opted in (email)' }], segmentMembers: { edges: [{ node: { firstName: 'Bob' } }] } });
  });

  it('lists segments by name a page at a time, with the total', async () => {
    const { auth } = await tenantWith([]);
    for (const name of ['c', 'a', 'b']) await stack.api.call('POST', '/api/v1/segments', { auth, body: { name, type: 'STATIC' } });
    const first = (await stack.api.call('GET', '/api/v1/segments?take=2', { auth })).body;
    expect(first.data.map((s: any) => s.name)).toEqual(['a', 'b']);
    expect(first.meta).toEqual({ total: 3, skip: 0, take: 2, hasMore: true });
    const rest = (await stack.api.call('GET', '/api/v1/segments?take=2&skip=2', { auth })).body;
    expect(rest.data.map((s: any) => s.name)).toEqual(['c']);
    expect(rest.meta).toEqual({ total: 3, skip: 2, take: 2, hasMore: false });
    expect((await stack.api.call('GET', '/api/v1/segments?take=101', { auth })).status).toBe(400);
  });

  it('scopes segments to the tenant and to crm:admin for writes', async () => {
    const { auth } = await tenantWith([]);
    const s = (await stack.api.call('POST', '/api/v1/segments', { auth, body: { name: 'mine', type: 'STATIC' } })).body.data;
    expect((await stack.api.call('POST', '/api/v1/segments', { auth, body: { name: 'mine', type: 'STATIC' } })).status).toBe(409);
    const other = await token(newTenant());
    for (const [method, path] of [['GET', `/api/v1/segments/${s.id}`], ['POST', `/api/v1/segments/${s.id}/refresh`], ['DELETE', `/api/v1/segments/${s.id}`], ['GET', `/api/v1/segments/${s.id}/members`]] as const) {
      expect((await stack.api.call(method, path, { auth: other })).status, path).toBe(404);
    }
    expect((await stack.api.call('GET', '/api/v1/segments', { auth: other })).body.data).toEqual([]);
    const writer = await token(newTenant(), ['crm:read', 'crm:write']);
    expect((await stack.api.call('POST', '/api/v1/segments', { auth: writer, body: { name: 'x', type: 'STATIC' } })).status).toBe(403);
  });
});

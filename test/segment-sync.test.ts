import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { newTenant, token } from './support/api.js';
import { startMessagingServer, type MessagingServer } from '../scripts/messaging-server.js';
import { startTestStack, type TestStack } from './support/stack.js';
import { until } from './support/until.js';

let stack: TestStack;
let messaging: MessagingServer;
beforeAll(async () => {
  messaging = await startMessagingServer();
  stack = await startTestStack({ MESSAGING_URL: messaging.url, MESSAGING_API_KEY: messaging.apiKey, MESSAGING_TIMEOUT_MS: '1000' });
});
afterAll(async () => {
  await stack.close();
  await messaging.close();
});

async function segmentOf(count: number) {
  const tenant = newTenant();
  const auth = await token(tenant);
  const rows = Array.from({ length: count }, (_, i) => JSON.stringify({ email: `m${i}@sync.test`, firstName: `M${i}`, membershipTier: 'GOLD' })).join('\n');
  const imported = await stack.api.call('POST', '/api/v1/customers/import', { auth, body: rows, headers: { 'content-type': 'application/x-ndjson' } });
  expect(imported.body.data.created).toBe(count);
  const segment = (await stack.api.call('POST', '/api/v1/segments', {
    auth, body: { name: 'gold', type: 'SMART', criteria: { field: 'membershipTier', op: 'eq', value: 'GOLD' } },
  })).body.data;
  expect(segment.memberCount).toBe(count);
  return { tenant, auth, segment };
}

const sync = (auth: string, id: string) => stack.api.graphql(auth, `mutation { syncSegmentToMessaging(id: "${id}") { messagingSegmentId syncedCount syncedAt } }`);

describe('syncSegmentToMessaging', () => {
  it('sends members in batches of at most 1,000, then only the difference', async () => {
    const { tenant, auth, segment } = await segmentOf(2500);
    const first = await sync(auth, segment.id);
    expect(first.body.data.syncSegmentToMessaging).toMatchObject({ messagingSegmentId: `msg_${segment.id}`, syncedCount: 2500, syncedAt: expect.any(String) });
    const mine = messaging.applied.filter((b) => b.segment === `msg_${segment.id}`);
    expect(mine).toHaveLength(3);
    expect(messaging.members.get(`msg_${segment.id}`)!.size).toBe(2500);
    expect(Math.max(...mine.map((b) => b.add + b.remove))).toBeLessThanOrEqual(1000);
    const stored = (await stack.api.call('GET', `/api/v1/segments/${segment.id}`, { auth })).body.data;
    expect(stored).toMatchObject({ messagingSegmentId: `msg_${segment.id}`, lastSyncedAt: expect.any(String) });

    // Two leave, one joins: the next sync sends exactly that.
    const before = messaging.applied.length;
    const some = (await stack.api.call('GET', '/api/v1/customers?take=3', { auth })).body.data;
    await stack.api.call('PATCH', `/api/v1/customers/${some[0].id}`, { auth, body: { membershipTier: 'SILVER' } });
    await stack.api.call('PATCH', `/api/v1/customers/${some[1].id}`, { auth, body: { membershipTier: 'SILVER' } });
    await stack.api.call('POST', '/api/v1/customers', { auth, body: { email: 'late@sync.test', membershipTier: 'GOLD' } });
    // SMART segments follow these changes just after they commit.
    await stack.api.settled(tenant);
    const second = await sync(auth, segment.id);
    expect(second.body.data.syncSegmentToMessaging.syncedCount).toBe(2499);
    expect(messaging.applied.slice(before).map((b) => [b.add, b.remove])).toEqual([[0, 2], [1, 0]]);
    expect(messaging.members.get(`msg_${segment.id}`)!.has(some[0].id)).toBe(false);

    // A member who opts in is sent again with the new flags; a deleted one is removed.
    await stack.api.call('PATCH', `/api/v1/customers/${some[2].id}`, { auth, body: { emailOptIn: true } });
    const late = (await stack.api.call('GET', '/api/v1/customers?search=late', { auth })).body.data[0];
    await stack.api.call('PATCH', `/api/v1/customers/${late.id}`, { auth, body: { status: 'DELETED' } });
    await stack.api.settled(tenant);
    const third = await sync(auth, segment.id);
    expect(third.body.data.syncSegmentToMessaging.syncedCount).toBe(2498);
    expect((messaging.members.get(`msg_${segment.id}`)!.get(some[2].id) as any).emailOptIn).toBe(true);
    expect(messaging.members.get(`msg_${segment.id}`)!.has(late.id)).toBe(false);

    // What was sent again is recorded with its new fields: nothing changed since, nothing is sent.
    const sent = messaging.applied.length;
    expect((await sync(auth, segment.id)).body.data.syncSegmentToMessaging.syncedCount).toBe(2498);
    expect(messaging.applied.length).toBe(sent);
  });

  it('retries 5xx answers and timeouts, resumes, and never applies a batch twice', async () => {
    const { auth, segment } = await segmentOf(2200);
    const receivedBefore = messaging.received.length;
    // The first request fails, the next is applied but its answer lost (the client times out, so
    // it must resend, and the idempotency key makes that a no-op), then a 500.
    messaging.failNext({ kind: 'error', status: 503, message: 'try later' }, { kind: 'lost', ms: 1500 }, { kind: 'error', status: 500, message: 'boom' });
    const res = await sync(auth, segment.id);
    expect(res.body.errors).toBeUndefined();
    expect(res.body.data.syncSegmentToMessaging.syncedCount).toBe(2200);
    const mine = [...messaging.members.get(`msg_${segment.id}`)!.keys()];
    expect(mine).toHaveLength(2200);
    expect(mine.every((id) => messaging.addCounts.get(id) === 1)).toBe(true);
    // 3 batches, each sent once more for each failure.
    expect(messaging.received.length - receivedBefore).toBe(3 + 3);
  });

  it('a segment deleted while a batch is out keeps nothing of its sync', async () => {
    const { auth, segment } = await segmentOf(2500);
    // The first batch is applied and answered after 700 ms; the segment is deleted meanwhile, so
    // recording that batch finds it gone.
    messaging.failNext({ kind: 'slow', ms: 700 });
    const received = messaging.received.length;
    const syncing = sync(auth, segment.id);
    while (messaging.received.length === received) await new Promise((r) => setTimeout(r, 10));
    expect((await stack.api.call('DELETE', `/api/v1/segments/${segment.id}`, { auth })).status).toBe(200);
    const res = await syncing;
    expect(res.body.errors?.length).toBe(1);
    // The deletion terminated the workflow at once; its activity learns of that only at its next
    // heartbeat, after the slow answer, and then tries to record the batch.
    await new Promise((r) => setTimeout(r, 1500));
    const db = new pg.Client({ connectionString: inject('databaseUrl') });
    await db.connect();
    try {
      const { rows: [left] } = await db.query<{ n: number }>('select count(*)::int as n from segment_synced_members where segment_id = $1', [segment.id]);
      expect(left!.n).toBe(0);
    } finally {
      await db.end();
    }
  });

  it('a member who leaves between a lost answer and its resend is recorded as sent, and the next sync removes them from Messaging', async () => {
    const tenant = newTenant();
    const auth = await token(tenant);
    const rows = Array.from({ length: 10 }, (_, i) => JSON.stringify({ email: `m${i}@ghost.test`, firstName: `M${i}`, membershipTier: 'GOLD' })).join('\n');
    await stack.api.call('POST', '/api/v1/customers/import', { auth, body: rows, headers: { 'content-type': 'application/x-ndjson' } });
    const segment = (await stack.api.call('POST', '/api/v1/segments', {
      auth, body: { name: 'gold', type: 'SMART', criteria: { field: 'membershipTier', op: 'eq', value: 'GOLD' } },
    })).body.data;
    const [leaver] = (await stack.api.call('GET', '/api/v1/customers?take=1', { auth })).body.data;
    // The batch is applied, its answer lost; before the retry, a member leaves the segment.
    messaging.failNext({ kind: 'lost', ms: 3000 });
    const applied = messaging.applied.length;
    const syncing = sync(auth, segment.id);
    await until('the batch applied', async () => messaging.applied.length > applied);
    await stack.api.call('PATCH', `/api/v1/customers/${leaver.id}`, { auth, body: { membershipTier: 'SILVER' } });
    await stack.api.settled(tenant);
    expect((await syncing).body.errors).toBeUndefined();
    // The batch was recorded as sent, leaver included: this sync's removals, or the next's, take
    // the leaver back out of Messaging.
    const again = await sync(auth, segment.id);
    expect(again.body.data.syncSegmentToMessaging).toMatchObject({ syncedCount: 9 });
    const held = messaging.members.get(`msg_${segment.id}`)!;
    expect(held.has(leaver.id)).toBe(false);
    expect(held.size).toBe(9);
  });

  it('fails fast with the remote message on a 4xx', async () => {
    const { auth, segment } = await segmentOf(10);
    messaging.failNext({ kind: 'error', status: 422, message: 'segment is archived on our side' });
    const received = messaging.received.length;
    const res = await sync(auth, segment.id);
    expect(res.body.errors[0].extensions.code).toBe('INVALID_STATE');
    expect(res.body.errors[0].message).toContain('segment is archived on our side');
    expect(messaging.received.length).toBe(received + 1); // no retries
  });
});

describe('a sync held up by a Messaging outage', () => {
  let held: TestStack;
  let down: MessagingServer;
  beforeAll(async () => {
    down = await startMessagingServer();
    held = await startTestStack({ MESSAGING_URL: down.url, MESSAGING_API_KEY: down.apiKey, MESSAGING_TIMEOUT_MS: '1000', WORKFLOW_RESULT_WAIT_MS: '1500' });
  });
  afterAll(async () => {
    await held?.close();
    await down?.close();
  });

  it('answers 503 instead of holding the request, goes on by itself, and a later call joins it', async () => {
    const auth = await token(newTenant());
    await held.api.call('POST', '/api/v1/customers', { auth, body: { email: 'held@sync.test', membershipTier: 'GOLD' } });
    const segment = (await held.api.call('POST', '/api/v1/segments', {
      auth, body: { name: 'gold', type: 'STATIC', criteria: { field: 'membershipTier', op: 'eq', value: 'GOLD' } },
    })).body.data;
    // Four failures: the retries back off 1 + 2 + 4 + 8 s, far past the request's 1.5 s wait.
    down.failNext(...Array.from({ length: 4 }, () => ({ kind: 'error' as const, status: 503, message: 'maintenance' })));

    const first = await held.api.call('POST', `/api/v1/segments/${segment.id}/sync`, { auth });
    expect(first.status).toBe(503);
    expect(first.body.error.code).toBe('SERVICE_UNAVAILABLE');
    expect(first.body.error.message).toContain(`segment-sync-${segment.id}`);
    expect(Number(first.headers.get('retry-after'))).toBeGreaterThan(0);

    let done: { status: number; body: any } = first;
    for (let attempt = 0; attempt < 60 && done.status === 503; attempt++) {
      done = await held.api.call('POST', `/api/v1/segments/${segment.id}/sync`, { auth });
    }
    expect(done.status).toBe(200);
    expect(done.body.data.syncedCount).toBe(1);
    // Every call joined the one run: the member was added once.
    expect([...down.addCounts.values()]).toEqual([1]);
  });

  it('a criteria change whose refresh outlasts the wait is kept, and the refresh it started finishes with it', async () => {
    const auth = await token(newTenant());
    for (const [email, tier] of [['g@held.test', 'GOLD'], ['s@held.test', 'SILVER']]) {
      await held.api.call('POST', '/api/v1/customers', { auth, body: { email, membershipTier: tier } });
    }
    const segment = (await held.api.call('POST', '/api/v1/segments', {
      auth, body: { name: 'tier', type: 'DYNAMIC', criteria: { field: 'membershipTier', op: 'eq', value: 'GOLD' } },
    })).body.data;
    expect(segment.memberCount).toBe(1);
    // The segment's refresh lock, held: the refresh waits past the request's 1.5 s.
    const lock = new pg.Client({ connectionString: inject('databaseUrl') });
    await lock.connect();
    try {
      await lock.query('begin');
      await lock.query('select pg_advisory_xact_lock(hashtextextended($1, 0))', [`segment:${segment.id}`]);
      const silver = { field: 'membershipTier', op: 'eq', value: 'SILVER' };
      const patched = await held.api.call('PATCH', `/api/v1/segments/${segment.id}`, { auth, body: { criteria: silver } });
      expect(patched.status, JSON.stringify(patched.body)).toBe(200);
      expect(patched.body.data.criteria).toEqual(silver);
      await lock.query('commit');
    } finally {
      await lock.end();
    }
    const members = async () => (await held.api.call('GET', `/api/v1/segments/${segment.id}/members`, { auth })).body.data.map((m: any) => m.email);
    await until('the refresh with the new criteria', async () => JSON.stringify(await members()) === JSON.stringify(['s@held.test']));
    expect((await held.api.call('GET', `/api/v1/segments/${segment.id}`, { auth })).body.data).toMatchObject({ criteria: { value: 'SILVER' }, memberCount: 1 });
  });

});

import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { openOrm, type Orm } from '../db/orm.js';
import { appendActivities } from '../domain/customers/timeline.js';
import { newTenant, startTestApi, token, type TestApi } from './support/api.js';

let api: TestApi;
let orm: Orm;
beforeAll(async () => {
  api = await startTestApi();
  orm = await openOrm(inject('databaseUrl'));
});
afterAll(async () => {
  await orm.close();
  await api.close();
});

const event = (over: Record<string, unknown> = {}) => ({
  type: 'booking.created',
  occurredAt: '2026-11-20T07:30:00+02:00',
  customer: { email: 'golfer@example.com' },
  category: 'BOOKING',
  title: 'Tee time booked',
  description: 'Saturday 07:30, 4 players',
  metadata: { courseId: 'north', players: 4, note: 'quote " and backslash \\ survive', nested: { a: [1, 2] } },
  sourceService: 'bookings',
  sourceEventId: 'evt-1',
  ...over,
});

describe('POST /api/v1/events', () => {
  it('resolves (creating) the customer, appends the activity and is idempotent on (sourceService, sourceEventId)', async () => {
    const auth = await token(newTenant());
    const first = await api.call('POST', '/api/v1/events', { auth, body: event() });
    expect(first.status).toBe(200);
    expect(first.body.data).toMatchObject({ accepted: 1, duplicates: 0, rejected: 0 });
    const { customerId, activityId } = first.body.data.results[0];

    const again = await api.call('POST', '/api/v1/events', { auth, body: event({ title: 'changed' }) });
    expect(again.body.data).toMatchObject({ accepted: 0, duplicates: 1 });
    expect(again.body.data.results[0]).toMatchObject({ status: 'duplicate', customerId });

    // Still a duplicate after its profile is deleted: re-sending never creates a new profile.
    await api.call('PATCH', `/api/v1/customers/${customerId}`, { auth, body: { status: 'DELETED' } });
    const afterDelete = await api.call('POST', '/api/v1/events', { auth, body: event() });
    expect(afterDelete.body.data.results[0]).toMatchObject({ status: 'duplicate', customerId });
    expect((await api.call('GET', '/api/v1/customers', { auth })).body.meta.total).toBe(0);

    const timeline = await api.call('GET', `/api/v1/customers/${customerId}/timeline`, { auth });
    expect(timeline.body.data).toEqual([{
      id: activityId, type: 'booking.created', category: 'BOOKING', title: 'Tee time booked', description: 'Saturday 07:30, 4 players',
      occurredAt: '2026-11-20T05:30:00.000Z', metadata: event().metadata, sourceService: 'bookings', sourceEventId: 'evt-1',
    }]);
    const customer = (await api.call('GET', `/api/v1/customers/${customerId}`, { auth })).body.data;
    expect(customer).toMatchObject({ email: 'golfer@example.com', status: 'DELETED', lastActivityAt: '2026-11-20T05:30:00.000Z' });
  });

  it('reports invalid items of a batch one by one and keeps the valid ones', async () => {
    const auth = await token(newTenant());
    const batch = [
      event({ sourceEventId: 'b-1' }),
      event({ sourceEventId: 'b-2', category: 'NOT_A_CATEGORY' }),
      event({ sourceEventId: 'b-3', customer: { email: 'bad' } }),
      event({ sourceEventId: 'b-4', customer: { phone: '0825551234' }, occurredAt: '2026-11-21T10:00:00Z' }),
      event({ sourceEventId: 'b-5', customer: { email: 'nobody@example.com' }, createCustomer: false }),
      event({ sourceEventId: 'b-1' }), // repeated inside the batch
      event({ sourceEventId: 'b-6', occurredAt: 'yesterday' }),
    ];
    const res = await api.call('POST', '/api/v1/events', { auth, body: batch });
    expect(res.status).toBe(200);
    expect(res.body.data).toMatchObject({ accepted: 2, duplicates: 1, rejected: 4 });
    const byIndex = res.body.data.results;
    expect(byIndex.map((r: any) => r.status)).toEqual(['created', 'rejected', 'rejected', 'created', 'rejected', 'duplicate', 'rejected']);
    expect(byIndex[1].error).toMatchObject({ code: 'VALIDATION_ERROR', field: 'category' });
    expect(byIndex[2].error.field).toBe('customer.email');
    expect(byIndex[4].error.code).toBe('RESOURCE_NOT_FOUND');
    expect(byIndex[6].error.field).toBe('occurredAt');
    expect((await api.call('GET', '/api/v1/customers', { auth })).body.meta.total).toBe(2);
  });

  it('refuses a single invalid event with 400, more than 1,000 events, and another tenant\'s customer id', async () => {
    const auth = await token(newTenant());
    const single = await api.call('POST', '/api/v1/events', { auth, body: event({ title: '' }) });
    expect(single.status).toBe(400);
    expect(single.body.error.field).toBe('title');
    const tooMany = await api.call('POST', '/api/v1/events', { auth, body: Array.from({ length: 1001 }, (_, i) => event({ sourceEventId: `x${i}` })) });
    expect(tooMany.status).toBe(400);
    expect(tooMany.body.error.message).toContain('1000');

    const otherAuth = await token(newTenant());
    const theirs = (await api.call('POST', '/api/v1/customers', { auth: otherAuth, body: { email: 'theirs@example.com' } })).body.data;
    const res = await api.call('POST', '/api/v1/events', { auth, body: event({ customer: { id: theirs.id } }) });
    expect(res.status).toBe(404);
    const timeline = await api.call('GET', `/api/v1/customers/${theirs.id}/timeline`, { auth: otherAuth });
    expect(timeline.body.data).toEqual([]);
  });

  it('answers an event repeated within a batch as the first, without creating the profile the repeat names', async () => {
    const auth = await token(newTenant());
    const res = await api.call('POST', '/api/v1/events', { auth, body: [
      event({ sourceEventId: 'twice', customer: { email: 'first@repeat.test' } }),
      event({ sourceEventId: 'twice', customer: { email: 'second@repeat.test' } }),
    ] });
    expect(res.status).toBe(200);
    const [first, repeat] = res.body.data.results;
    expect(first).toMatchObject({ status: 'created' });
    expect(repeat).toEqual({ index: 1, status: 'duplicate', customerId: first.customerId });
    expect((await api.call('GET', '/api/v1/customers?search=second', { auth })).body.data).toEqual([]);
  });

  it('refuses text holding half a surrogate pair with 400 naming it, creating nothing', async () => {
    const auth = await token(newTenant());
    const res = await api.call('POST', '/api/v1/events', { auth, body: [
      event({ sourceEventId: 's1', customer: { email: 'one@surrogate.test' } }),
      event({ sourceEventId: 's2', customer: { email: 'two@surrogate.test' }, metadata: { k: 'lone \udc00 half' } }),
    ] });
    expect(res.status).toBe(400);
    expect(res.body.error).toMatchObject({ code: 'VALIDATION_ERROR', message: expect.stringContaining('body[1].metadata.k') });
    expect((await api.call('GET', '/api/v1/customers', { auth })).body.data).toEqual([]);
    // A "__proto__" key would become the parsed object's prototype: dropped from what is stored, yet read through.
    const proto = await api.call('POST', '/api/v1/events', { auth, body: '[' + JSON.stringify(event({ sourceEventId: 's3' })).replace('"metadata":{', '"metadata":{"__proto__":{"sourceType":"x"},') + ']' });
    expect(proto.status).toBe(400);
    expect(proto.body.error.message).toContain('body[0].metadata.__proto__');
  });

  it('stores two batches carrying the same events in opposite orders, each event once, without a deadlock', async () => {
    const auth = await token(newTenant());
    const events = Array.from({ length: 500 }, (_, i) => event({ sourceEventId: `both-${i}`, customer: { email: `c${i % 50}@both.test` } }));
    const post = (body: unknown[]) => api.call('POST', '/api/v1/events', { auth, body });
    const [ahead, reversed] = await Promise.all([post(events), post([...events].reverse())]);
    expect([ahead.status, reversed.status]).toEqual([200, 200]);
    expect(ahead.body.data.accepted + reversed.body.data.accepted).toBe(500);
    expect(ahead.body.data.duplicates + reversed.body.data.duplicates).toBe(500);
  });

  it('puts an activity resolved before a merge on the profile merged into, and none on a profile deleted meanwhile', async () => {
    const tenant = newTenant();
    const auth = await token(tenant);
    const create = async (email: string) => (await api.call('POST', '/api/v1/customers', { auth, body: { email } })).body.data.id as string;
    const [winner, loser, deleted] = [await create('winner@race.test'), await create('loser@race.test'), await create('deleted@race.test')];
    // Resolved to the loser and to the deleted profile; the merge and the deletion commit before the event's transaction.
    expect((await api.call('POST', '/api/v1/customers/merge', { auth, body: { winnerId: winner, loserId: loser } })).status).toBe(200);
    expect((await api.call('PATCH', `/api/v1/customers/${deleted}`, { auth, body: { status: 'DELETED' } })).status).toBe(200);
    const outcomes = await orm.em.fork().transactional((em) => appendActivities(em, tenant, [loser, deleted].map((customerId, i) => ({
      customerId, type: 'booking.created', category: 'BOOKING' as const, title: 'Booked', occurredAt: new Date(), sourceService: 'race', sourceEventId: `r${i}`,
    }))));
    expect(outcomes).toEqual([expect.objectContaining({ customerId: winner }), 'gone']);
    const timeline = (await api.call('GET', `/api/v1/customers/${winner}/timeline`, { auth })).body.data.map((a: { type: string }) => a.type);
    expect(timeline).toContain('booking.created');
  });

  it('takes a full batch of 1,000 events for many customers', async () => {
    const auth = await token(newTenant());
    const batch = Array.from({ length: 1000 }, (_, i) => event({
      sourceEventId: `bulk-${i}`, customer: { email: `member${i % 100}@example.com` }, occurredAt: new Date(Date.UTC(2026, 10, 1, 0, i)).toISOString(),
    }));
    const res = await api.call('POST', '/api/v1/events', { auth, body: batch });
    expect(res.body.data).toMatchObject({ accepted: 1000, rejected: 0 });
    const list = await api.call('GET', '/api/v1/customers?take=1', { auth });
    expect(list.body.meta.total).toBe(100);
  });
});

describe('timeline and notes', () => {
  it('lists the timeline newest first with category and date filters and cursor paging', async () => {
    const auth = await token(newTenant());
    const events = ['MEMBERSHIP', 'BOOKING', 'GOLF', 'BOOKING', 'FINANCIAL'].map((category, i) =>
      event({ category, sourceEventId: `t-${i}`, title: `e${i}`, occurredAt: `2026-10-0${i + 1}T12:00:00Z` }));
    const { results } = (await api.call('POST', '/api/v1/events', { auth, body: events })).body.data;
    const id = results[0].customerId;
    const all = await api.call('GET', `/api/v1/customers/${id}/timeline`, { auth });
    expect(all.body.data.map((a: any) => a.title)).toEqual(['e4', 'e3', 'e2', 'e1', 'e0']);
    const bookings = await api.call('GET', `/api/v1/customers/${id}/timeline?categories=BOOKING,GOLF`, { auth });
    expect(bookings.body.data.map((a: any) => a.title)).toEqual(['e3', 'e2', 'e1']);
    const ranged = await api.call('GET', `/api/v1/customers/${id}/timeline?startDate=2026-10-02T00:00:00Z&endDate=2026-10-03T23:00:00Z`, { auth });
    expect(ranged.body.data.map((a: any) => a.title)).toEqual(['e2', 'e1']);
    const page1 = await api.call('GET', `/api/v1/customers/${id}/timeline?take=2`, { auth });
    expect(page1.body.meta).toMatchObject({ total: 5, hasMore: true });
    const page2 = await api.call('GET', `/api/v1/customers/${id}/timeline?take=2&after=${page1.body.meta.nextCursor}`, { auth });
    expect(page2.body.data.map((a: any) => a.title)).toEqual(['e2', 'e1']);
    expect(page2.body.meta.total).toBe(5); // the whole timeline, not what follows the cursor
    // A cursor whose instant this API did not write is refused (PostgreSQL reads none of these).
    for (const at of ['1', 'March 7', '2026-02-30T00:00:00.000Z', '0000-01-01T00:00:00.000Z', '+275760-09-13T00:00:00.000Z']) {
      const forged = Buffer.from(JSON.stringify([at, results[0].activityId])).toString('base64url');
      const rest = await api.call('GET', `/api/v1/customers/${id}/timeline?take=2&after=${forged}`, { auth });
      expect([at, rest.status, rest.body.error?.code]).toEqual([at, 400, 'VALIDATION_ERROR']);
      const viaGql = await api.graphql(auth, `query($id: ID!, $after: String) { customer(id: $id) { activities(first: 2, after: $after) { totalCount } } }`, { id, after: forged });
      expect([at, viaGql.body.errors?.[0]?.extensions?.code]).toEqual([at, 'VALIDATION_ERROR']);
    }
    const badCategory = await api.call('GET', `/api/v1/customers/${id}/timeline?categories=NOPE`, { auth });
    expect(badCategory.status).toBe(400);

    const gql = await api.graphql(auth, `query($id: ID!) {
      customerTimeline(customerId: $id, filters: {categories: [BOOKING]}) { totalCount edges { node { title category type occurredAt } } }
      customer(id: $id) { lastActivityAt activities(first: 2) { totalCount pageInfo { hasNextPage endCursor } edges { node { title } } } }
    }`, { id });
    expect(gql.body.data.customerTimeline.totalCount).toBe(2);
    expect(gql.body.data.customerTimeline.edges[0].node).toEqual({ title: 'e3', category: 'BOOKING', type: 'booking.created', occurredAt: '2026-10-04T12:00:00.000Z' });
    expect(gql.body.data.customer.lastActivityAt).toBe('2026-10-05T12:00:00.000Z');
    expect(gql.body.data.customer.activities.edges.map((e: any) => e.node.title)).toEqual(['e4', 'e3']);
    const after = gql.body.data.customer.activities.pageInfo.endCursor;
    const next = await api.graphql(auth, `query($id: ID!, $after: String) { customer(id: $id) { activities(first: 2, after: $after) { totalCount edges { node { title } } } } }`, { id, after });
    expect(next.body.data.customer.activities.edges.map((e: any) => e.node.title)).toEqual(['e2', 'e1']);
    expect(next.body.data.customer.activities.totalCount).toBe(5);
  });

  it('keeps notes with their author, pinned first, editable and deletable only within the tenant', async () => {
    const tenant = newTenant();
    const auth = await token(tenant, ['crm:read', 'crm:write'], { sub: 'user_77', name: 'Pro Shop' });
    const customer = (await api.call('POST', '/api/v1/customers', { auth, body: { email: 'notes@example.com' } })).body.data;
    const add = (body: object) => api.call('POST', `/api/v1/customers/${customer.id}/notes`, { auth, body });
    const a = (await add({ content: 'Asked about junior membership', type: 'SALES' })).body.data;
    const b = (await add({ content: 'Handicap certificate pending', isPinned: true })).body.data;
    await add({ content: 'Complained about bunker 7', type: 'COMPLAINT' });
    expect(a).toMatchObject({ createdBy: 'user_77', createdByName: 'Pro Shop', type: 'SALES', isPinned: false });
    expect((await add({ content: '   ' })).status).toBe(400);

    const list = await api.call('GET', `/api/v1/customers/${customer.id}/notes`, { auth });
    expect(list.body.data.map((n: any) => n.content)[0]).toBe('Handicap certificate pending');
    expect(list.body.data).toHaveLength(3);
    const paged = await api.call('GET', `/api/v1/customers/${customer.id.toUpperCase()}/notes?take=2&skip=2`, { auth });
    expect(paged.body.data.map((n: any) => n.content)).toEqual([list.body.data[2].content]);
    expect(paged.body.meta).toEqual({ total: 3, skip: 2, take: 2, hasMore: false });
    const complaints = await api.graphql(auth, `{ customerNotes(customerId: "${customer.id}", type: COMPLAINT) { content type isPinned createdBy } }`);
    expect(complaints.body.data.customerNotes).toEqual([{ content: 'Complained about bunker 7', type: 'COMPLAINT', isPinned: false, createdBy: 'user_77' }]);

    const edited = await api.graphql(auth, `mutation { updateNote(id: "${a.id}", input: {isPinned: true, content: "Junior membership: send forms"}) { content isPinned } }`);
    expect(edited.body.data.updateNote).toEqual({ content: 'Junior membership: send forms', isPinned: true });
    const other = await token(newTenant());
    expect((await api.call('PATCH', `/api/v1/notes/${b.id}`, { auth: other, body: { content: 'x' } })).status).toBe(404);
    expect((await api.call('DELETE', `/api/v1/notes/${b.id}`, { auth: other })).status).toBe(404);
    expect((await api.graphql(auth, `mutation { deleteNote(id: "${b.id}") }`)).body.data.deleteNote).toBe(true);
    expect((await api.call('DELETE', `/api/v1/notes/${b.id}`, { auth })).status).toBe(404);
    const gql = await api.graphql(auth, `{ customer(id: "${customer.id}") { notes { content } } }`);
    expect(gql.body.data.customer.notes.map((n: any) => n.content)).toEqual(['Junior membership: send forms', 'Complained about bunker 7']);
  });
});

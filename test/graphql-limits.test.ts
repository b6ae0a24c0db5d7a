import { Writable } from 'node:stream';
import pg from 'pg';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { newTenant, startTestApi, token, type TestApi } from './support/api.js';

// The attacks of issue 7 on POST /graphql, each now refused before it runs, plus batching: the
// statements a query issues depend on its shape, not its page sizes.

const statements: { sql: string; params: readonly unknown[] }[] = [];
const logs: { msg: string; requestId?: string; path?: string }[] = [];
let api: TestApi;
let db: pg.Client;

beforeAll(async () => {
  const capture = new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).split('\n').filter(Boolean)) logs.push(JSON.parse(line));
      done();
    },
  });
  api = await startTestApi({ RATE_LIMIT_WRITE: '100000' }, {
    log: pino({ level: 'info' }, capture),
    orm: { onQuery: (sql, params) => (statements.push({ sql, params }), sql) },
  });
  db = new pg.Client({ connectionString: inject('databaseUrl') });
  await db.connect();
});
afterAll(async () => {
  await db.end();
  await api.close();
});

/** Statements the API ran for `tenant` (every one of them filters on it: bound, or written in as a first page's is). */
const statementsOf = (tenant: string) => statements.filter((s) => s.params.includes(tenant) || s.sql.includes(`'${tenant}'`));

const nest = (levels: number, leaf: string) => {
  let q = leaf;
  for (let i = 0; i < levels; i++) q = `segments { members { edges { node { ${q} } } } }`;
  return q;
};

describe('GraphQL depth and cost limits', () => {
  it('refuses customers → segments → members nested three levels before running anything', async () => {
    const tenant = newTenant();
    const auth = await token(tenant);
    const res = await api.graphql(auth, `{ customers(tenantId: "${tenant}") { edges { node { ${nest(3, 'id')} } } } }`);
    expect(res.status).toBe(200); // application/json: request errors in a 200, as graphql-over-http says
    expect(res.body.data).toBeUndefined();
    expect(res.body.errors[0].extensions.code).toBe('VALIDATION_ERROR');
    expect(res.body.errors[0].message).toMatch(/depth 16 exceeds the limit of 12/);
    expect(statementsOf(tenant)).toEqual([]);

    const deep = await api.graphql(auth, `{ customers(tenantId: "${tenant}") { edges { node { ${nest(12, 'id')} } } } }`);
    expect(deep.body.errors[0].message).toMatch(/depth 52 exceeds the limit of 12/);
  });

  it('refuses a shallow query whose page sizes multiply past the cost limit', async () => {
    const tenant = newTenant();
    const auth = await token(tenant);
    const q = `{ customers(tenantId: "${tenant}", pagination: {first: 100}) { edges { node { segments { members(pagination: {first: 100}) { edges { node { id } } } } } } } }`;
    const res = await api.graphql(auth, q);
    expect(res.body.errors[0]).toMatchObject({ extensions: { code: 'VALIDATION_ERROR' } });
    // customers 1 + edges (1 + 100 × node (1 + segments (1 + 25 × members (1 + edges (1 + 100 × node 1)))))
    expect(res.body.errors[0].message).toMatch(/query cost 255202 exceeds the limit of 10000/);
    // The page size may come from a variable, too.
    const byVariable = await api.graphql(auth, q.replace('{ customers', 'query($n: Int) { customers').replace('first: 100}) { edges { node { segments', 'first: $n}) { edges { node { segments'), { n: 1 });
    expect(byVariable.body.errors).toBeUndefined();
    expect(statementsOf(tenant).length).toBeGreaterThan(0);
  });

  it('counts aliases: many copies of a nested field are refused', async () => {
    const tenant = newTenant();
    const auth = await token(tenant);
    const aliased = (n: number) => `{ customers(tenantId: "${tenant}", pagination: {first: 100}) { edges { node { ${
      Array.from({ length: n }, (_, i) => `a${i}: segments { id }`).join(' ')} } } } }`;
    const costly = await api.graphql(auth, aliased(150));
    expect(costly.body.errors[0].message).toMatch(/query cost 15102 exceeds the limit of 10000/);
    // 500 aliases do not even get past the parser's token limit.
    const huge = await api.graphql(auth, aliased(500));
    expect(huge.body.errors[0]).toMatchObject({ message: 'query has more than 2000 tokens (GRAPHQL_MAX_TOKENS)', extensions: { code: 'VALIDATION_ERROR' } });
    expect(statementsOf(tenant)).toEqual([]);
  });

  it('validates before expanding fragments: 22 doubling fragments are refused, valid or not', async () => {
    const tenant = newTenant();
    const auth = await token(tenant);
    const bomb = (leaf: string) => ['query { ...F0 }',
      ...Array.from({ length: 22 }, (_, i) => `fragment F${i} on Query { ...F${i + 1} ...F${i + 1} }`),
      `fragment F22 on Query { ${leaf} }`].join('\n');
    const valid = await api.graphql(auth, bomb(`segments(tenantId: "${tenant}") { id }`));
    expect(valid.body.errors[0].message).toMatch(/query cost \d+ exceeds the limit/);
    const invalid = await api.graphql(auth, bomb('noSuchField'));
    expect(invalid.body.errors[0]).toMatchObject({ message: expect.stringContaining('noSuchField'), extensions: { code: 'VALIDATION_ERROR' } });
    const cyclic = await api.graphql(auth, 'query { ...A } fragment A on Query { ...B } fragment B on Query { ...A }');
    expect(cyclic.body.errors[0].message).toMatch(/Cannot spread fragment "A" within itself/);
    expect(statementsOf(tenant)).toEqual([]);
  });

  it('charges the rate limit by cost: one point per 100, at least one per root field', async () => {
    const tenant = newTenant();
    const auth = await token(tenant);
    const remaining = async (query: string) => Number((await api.graphql(auth, query)).headers.get('x-ratelimit-remaining'));
    expect(await remaining(`{ customers(tenantId: "${tenant}") { edges { node { id } } } }`)).toBe(999); // cost 27
    // cost 1 + (1 + 100 × (1 + 1)) = 202: three points
    expect(await remaining(`{ customers(tenantId: "${tenant}", pagination: {first: 100}) { edges { node { id segments { id } } } } }`)).toBe(996);
    // Two root fields, each at least one point; a refused request spends one.
    expect(await remaining(`{ a: segments(tenantId: "${tenant}") { id } b: segments(tenantId: "${tenant}") { id } }`)).toBe(994);
    expect(await remaining(`{ customers(tenantId: "${tenant}") { edges { node { ${nest(5, 'id')} } } } }`)).toBe(993);
  });

  it('answers RATE_LIMITED once costly requests have spent the minute\'s points', async () => {
    const tenant = newTenant();
    const auth = await token(tenant);
    // 1 + (1 + 100 × (1 + 98)) = 9902: 100 of the 1000 read points a minute
    const costly = `{ customers(tenantId: "${tenant}", pagination: {first: 100}) { edges { node { ${
      Array.from({ length: 98 }, (_, i) => `a${i}: segments { id }`).join(' ')} } } } }`;
    for (let i = 1; i <= 10; i++) {
      const res = await api.graphql(auth, costly);
      expect(res.body.errors).toBeUndefined();
      expect(res.headers.get('x-ratelimit-remaining')).toBe(String(1000 - 100 * i));
    }
    const limited = await api.graphql(auth, costly);
    expect(limited.status).toBe(429);
    expect(limited.body.errors[0].extensions.code).toBe('RATE_LIMITED');
  });

  it('lets the explorer introspect the schema', async () => {
    const { getIntrospectionQuery } = await import('graphql');
    const res = await api.graphql(await token(newTenant()), getIntrospectionQuery({ descriptions: true, inputValueDeprecation: true, specifiedByUrl: true }));
    expect(res.body.errors).toBeUndefined();
    expect(res.body.data.__schema.queryType.name).toBe('Query');
  });
});

describe('GraphQL batching', () => {
  it('reads customers with their relationships in a handful of statements, whatever the page size', async () => {
    const tenant = newTenant();
    const auth = await token(tenant);
    const events = Array.from({ length: 30 }, (_, i) => [0, 1].map((n) => ({
      type: 'booking.created', category: 'BOOKING', title: `Booking ${n}`, occurredAt: `2026-11-${10 + n}T07:30:00Z`,
      customer: { email: `m${i}@example.com` }, sourceService: 'bookings', sourceEventId: `e${i}-${n}`,
    }))).flat();
    expect((await api.call('POST', '/api/v1/events', { auth, body: events })).body.data.accepted).toBe(60);
    const segment = (await api.call('POST', '/api/v1/segments', { auth, body: { name: 'Juniors', type: 'STATIC' } })).body.data;
    await db.query(`insert into clubs (tenant_id, id, name) values ($1, 'north', 'North Club')`, [tenant]);
    await db.query(`update customers set home_club_id = 'north' where tenant_id = $1`, [tenant]);
    await db.query(`insert into segment_members (segment_id, customer_id, tenant_id) select $2, id, tenant_id from customers where tenant_id = $1`, [tenant, segment.id]);
    await db.query(
      `insert into notes (id, tenant_id, customer_id, content, created_by) select gen_random_uuid(), tenant_id, id, 'note', 'user_test' from customers where tenant_id = $1`,
      [tenant],
    );

    const query = (first: number) => `{ customers(tenantId: "${tenant}", pagination: {first: ${first}}) { edges { node {
      email homeClub { name } notes { content } segments { name members(pagination: {first: 2}) { totalCount edges { node { id } } } }
      activities(first: 5) { totalCount edges { node { title } } } journeyEnrollments { id }
    } } } }`;
    const run = async (first: number) => {
      const before = statementsOf(tenant).length;
      const res = await api.graphql(auth, query(first));
      expect(res.body.errors).toBeUndefined();
      return { customers: res.body.data.customers.edges.map((e: any) => e.node), statements: statementsOf(tenant).slice(before) };
    };
    const big = await run(30);
    expect(big.customers).toHaveLength(30);
    for (const c of big.customers) {
      expect(c).toMatchObject({ homeClub: { name: 'North Club' }, notes: [{ content: 'note' }], journeyEnrollments: [] });
      expect(c.segments).toEqual([{ name: 'Juniors', members: { totalCount: 30, edges: [expect.anything(), expect.anything()] } }]);
      expect(c.activities.totalCount).toBe(2);
      expect(c.activities.edges.map((e: any) => e.node.title)).toEqual(['Booking 1', 'Booking 0']);
    }
    const small = await run(3);
    expect(small.customers).toHaveLength(3);
    // customers, club, notes, segments, enrollments, activities + count, members + count
    expect(big.statements.length).toBeLessThanOrEqual(10);
    expect(small.statements.length).toBe(big.statements.length);

    // totalCount is counted only when selected.
    // (the unfiltered total is read from the maintained customer totals, a filtered one counts rows)
    const counts = (ss: { sql: string }[]) => ss.filter((s) => /count\(|analytics_customer_totals/i.test(s.sql)).length;
    for (const filter of ['', 'filter: {search: "@"}']) {
      const before = statementsOf(tenant).length;
      await api.graphql(auth, `{ customers(tenantId: "${tenant}" ${filter}) { edges { node { id } } } }`);
      expect(counts(statementsOf(tenant).slice(before)), filter).toBe(0);
      const counted = await api.graphql(auth, `{ customers(tenantId: "${tenant}" ${filter}) { totalCount } }`);
      expect(counted.body.data.customers.totalCount, filter).toBe(30);
      expect(counts(statementsOf(tenant).slice(before)), filter).toBe(1);
    }

    // Batched members page forwards and backwards like the REST list.
    const rest = (await api.call('GET', `/api/v1/segments/${segment.id}/members?take=100`, { auth })).body.data.map((c: any) => c.id);
    const page = async (p: object) => (await api.graphql(auth, `query($p: PaginationInput) { segment(id: "${segment.id}") {
      members(pagination: $p) { totalCount pageInfo { hasNextPage hasPreviousPage startCursor endCursor } edges { node { id } } } } }`, { p })).body.data.segment.members;
    const ids = (m: any) => m.edges.map((e: any) => e.node.id);
    const p1 = await page({ first: 20 });
    expect(p1).toMatchObject({ totalCount: 30, pageInfo: { hasNextPage: true, hasPreviousPage: false } });
    expect(ids(p1)).toEqual(rest.slice(0, 20));
    const p2 = await page({ first: 20, after: p1.pageInfo.endCursor });
    expect(p2).toMatchObject({ totalCount: 30, pageInfo: { hasNextPage: false, hasPreviousPage: true } });
    expect(ids(p2)).toEqual(rest.slice(20));
    const back = await page({ last: 5, before: p2.pageInfo.startCursor });
    expect(back.pageInfo).toMatchObject({ hasNextPage: true, hasPreviousPage: true });
    expect(ids(back)).toEqual(rest.slice(15, 20));
  });
});

describe('GraphQL batching across mutations', () => {
  it('does not answer a later mutation from what an earlier one loaded', async () => {
    const tenant = newTenant();
    const auth = await token(tenant);
    const { id } = (await api.call('POST', '/api/v1/customers', { auth, body: { email: 'serial@example.com' } })).body.data;
    const res = await api.graphql(auth, `mutation {
      before: updateCustomer(id: "${id}", input: {firstName: "A"}) { notes { content } }
      add: addNote(customerId: "${id}", input: {content: "later"}) { id }
      after: updateCustomer(id: "${id}", input: {firstName: "B"}) { notes { content } }
    }`);
    expect(res.body.errors).toBeUndefined();
    expect(res.body.data.before.notes).toEqual([]);
    expect(res.body.data.after.notes).toEqual([{ content: 'later' }]);
  });
});

describe('a client that goes away', () => {
  it('stops the request: the waiting statement is cancelled and later mutations never run', async () => {
    const tenant = newTenant();
    const auth = await token(tenant);
    const customer = (await api.call('POST', '/api/v1/customers', { auth, body: { email: 'gone@example.com' } })).body.data;
    const notes: { id: string }[] = [];
    for (let i = 0; i < 5; i++) notes.push((await api.call('POST', `/api/v1/customers/${customer.id}/notes`, { auth, body: { content: `n${i}` } })).body.data);

    // Hold the first note's row, so the request's first UPDATE waits on it.
    const locker = new pg.Client({ connectionString: inject('databaseUrl') });
    await locker.connect();
    await locker.query('begin');
    await locker.query('select 1 from notes where id = $1 for update', [notes[0]!.id]);

    const client = new AbortController();
    const mutation = `mutation { ${notes.map((n, i) => `u${i}: updateNote(id: "${n.id}", input: {content: "changed"}) { id }`).join(' ')} }`;
    const request = fetch(`${api.url}/graphql`, {
      method: 'POST', signal: client.signal,
      headers: { authorization: `Bearer ${auth}`, 'content-type': 'application/json' },
      body: JSON.stringify({ query: mutation }),
    }).catch((err: Error) => err);
    const waiting = async () => (await db.query(`select count(*)::int as n from pg_stat_activity where wait_event_type = 'Lock' and query like $1`, [`%${notes[0]!.id}%`])).rows[0].n;
    await expect.poll(waiting, { timeout: 30_000 }).toBe(1);
    const before = statementsOf(tenant).length;

    client.abort();
    expect(await request).toBeInstanceOf(Error);
    // The server sees the disconnect, cancels the waiting UPDATE in PostgreSQL and finishes the request.
    await expect.poll(() => logs.some((l) => l.msg === 'client disconnected: GraphQL execution stopped'), { timeout: 30_000 }).toBe(true);
    await expect.poll(waiting, { timeout: 30_000 }).toBe(0);
    await expect.poll(() => logs.some((l) => l.msg === 'request' && l.path === '/graphql' && (l as any).tenantId === tenant), { timeout: 30_000 }).toBe(true);
    await locker.query('rollback');
    await locker.end();

    // Only the rollback of the cancelled transaction followed; no other note was touched.
    const after = statementsOf(tenant).slice(before);
    expect(after.filter((s) => /^\s*(update|insert|delete)/i.test(s.sql))).toEqual([]);
    const { rows } = await db.query('select content from notes where customer_id = $1 order by content', [customer.id]);
    expect(rows.map((r) => r.content)).toEqual(['n0', 'n1', 'n2', 'n3', 'n4']);
  });
});

describe('GraphQL over HTTP', () => {
  let auth: string;
  beforeAll(async () => {
    auth = await token(newTenant());
  });
  // fetch itself, with bytes: a string body would get a text/plain content type of fetch's choosing.
  const post = async (headers: Record<string, string>, body: string) => {
    const res = await fetch(`${api.url}/graphql`, { method: 'POST', headers: { authorization: `Bearer ${auth}`, ...headers }, body: new TextEncoder().encode(body) });
    return { status: res.status, headers: res.headers, body: (await res.json()) as any };
  };

  it('answers a body that is not JSON with 415, and a null or non-object body with 400', async () => {
    const q = JSON.stringify({ query: '{ __typename }' });
    for (const headers of [{}, { 'content-type': 'text/plain' }, { 'content-type': 'application/x-www-form-urlencoded' }] as Record<string, string>[]) {
      const res = await post(headers, q);
      expect(res.status, JSON.stringify(headers)).toBe(415);
      expect(res.body.errors[0]).toMatchObject({ message: expect.stringContaining('application/json'), extensions: { code: 'VALIDATION_ERROR' } });
    }
    for (const body of ['null', '[]', '42', '"query"', '{}', '{"query": 5}', '{"query": "{ __typename }", "variables": []}', '']) {
      const res = await post({ 'content-type': 'application/json' }, body);
      expect(res.status, body).toBe(400);
      expect(res.body.errors[0].extensions.code, body).toBe('VALIDATION_ERROR');
    }
  });

  it('answers Accept: text/html with 406', async () => {
    const res = await post({ 'content-type': 'application/json', accept: 'text/html' }, JSON.stringify({ query: '{ __typename }' }));
    expect(res.status).toBe(406);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    expect(res.body.errors[0].extensions.code).toBe('VALIDATION_ERROR');
  });

  it('speaks application/graphql-response+json when asked: 200 with data, 400 for request errors', async () => {
    const accept = { 'content-type': 'application/json', accept: 'application/graphql-response+json' };
    const ok = await post(accept, JSON.stringify({ query: '{ __typename }' }));
    expect(ok.status).toBe(200);
    expect(ok.headers.get('content-type')).toMatch(/^application\/graphql-response\+json/);
    expect(ok.body).toEqual({ data: { __typename: 'Query' } });
    for (const query of ['{ __typename', '{ noSuchField }', `{ customers(tenantId: "x") { edges { node { ${nest(5, 'id')} } } } }`]) {
      const bad = await post(accept, JSON.stringify({ query }));
      expect(bad.status, query).toBe(400);
      expect(bad.headers.get('content-type')).toMatch(/^application\/graphql-response\+json/);
      expect(bad.body.errors[0].extensions.code).toBe('VALIDATION_ERROR');
    }
    // A field error is still a GraphQL response with data: 200.
    const notFound = await post(accept, JSON.stringify({ query: '{ customer(id: "00000000-0000-7000-8000-000000000000") { id } }' }));
    expect(notFound.status).toBe(200);
    expect(notFound.body).toMatchObject({ data: { customer: null }, errors: [{ extensions: { code: 'RESOURCE_NOT_FOUND' } }] });
  });
});

describe('GraphQL lists without paging arguments', () => {
  // The cap is small here so the test stays small; it is GRAPHQL_LIST_SIZE, the number the cost counts.
  const CAP = 5;
  let capped: TestApi;
  beforeAll(async () => {
    capped = await startTestApi({ GRAPHQL_LIST_SIZE: String(CAP), GRAPHQL_MAX_COST: '500' });
  });
  afterAll(async () => {
    await capped?.close();
  });

  it('answer at most GRAPHQL_LIST_SIZE items, the ones the cost counted, however many there are', async () => {
    const tenant = newTenant();
    const auth = await token(tenant);
    const customer = (await capped.call('POST', '/api/v1/customers', { auth, body: { email: 'many@example.com' } })).body.data;
    await db.query(
      `insert into notes (tenant_id, customer_id, content, is_pinned, created_by, created_at)
       select $1, $2, 'note ' || n, n = 3, 'user_test', now() - n * interval '1 minute' from generate_series(1, 12) n`,
      [tenant, customer.id],
    );
    const { rows: segments } = await db.query(
      `insert into segments (tenant_id, name, type) select $1, 'Segment ' || lpad(n::text, 2, '0'), 'STATIC' from generate_series(1, 12) n returning id`,
      [tenant],
    );
    await db.query(`insert into segment_members (segment_id, customer_id, tenant_id) select unnest($3::uuid[]), $2, $1`, [tenant, customer.id, segments.map((s) => s.id)]);
    const { rows: [journey] } = await db.query(`insert into journeys (tenant_id, name, trigger_type) values ($1, 'Welcome', 'manual') returning id`, [tenant]);
    await db.query(
      `insert into journey_enrollments (tenant_id, journey_id, customer_id, status, enrolled_at, sequence)
       select $1, $2, $3, 'COMPLETED', now() - n * interval '1 hour', n from generate_series(1, 12) n`,
      [tenant, journey.id, customer.id],
    );

    // All twelve are there, in the order the lists keep.
    const allNotes = (await capped.call('GET', `/api/v1/customers/${customer.id}/notes`, { auth })).body.data.map((n: any) => n.content);
    expect(allNotes).toHaveLength(12);
    expect(allNotes.slice(0, 3)).toEqual(['note 3', 'note 1', 'note 2']);
    const allSegments = (await capped.call('GET', '/api/v1/segments', { auth })).body.data.map((s: any) => s.name);
    expect(allSegments).toHaveLength(12);

    const res = await capped.graphql(auth, `{
      customerNotes(customerId: "${customer.id}") { content }
      segments(tenantId: "${tenant}") { name }
      customer(id: "${customer.id}") { notes { content } segments { name } journeyEnrollments { enrolledAt journey { name } } }
    }`);
    expect(res.body.errors).toBeUndefined();
    const { customerNotes, segments: rootSegments, customer: c } = res.body.data;
    expect(customerNotes.map((n: any) => n.content)).toEqual(allNotes.slice(0, CAP));
    expect(c.notes.map((n: any) => n.content)).toEqual(allNotes.slice(0, CAP));
    expect(rootSegments.map((s: any) => s.name)).toEqual(allSegments.slice(0, CAP));
    expect(c.segments.map((s: any) => s.name)).toEqual(allSegments.slice(0, CAP));
    expect(c.journeyEnrollments).toHaveLength(CAP);
    const enrolled = c.journeyEnrollments.map((e: any) => Date.parse(e.enrolledAt));
    expect(enrolled).toEqual([...enrolled].sort((a, b) => b - a));
    expect(c.journeyEnrollments[0].journey).toEqual({ name: 'Welcome' });

    // The cost counts CAP segments: 1 + 5 × (1 + (1 + first × 1)), 501 at first: 98, 496 at first: 97.
    const members = (first: number) => capped.graphql(auth, `{ segments(tenantId: "${tenant}") { members(pagination: {first: ${first}}) { edges { node { id } } } } }`);
    expect((await members(98)).body.errors[0]).toMatchObject({ message: expect.stringMatching(/query cost 501 exceeds the limit of 500/), extensions: { code: 'VALIDATION_ERROR' } });
    const allowed = await members(97);
    expect(allowed.body.errors).toBeUndefined();
    expect(allowed.body.data.segments).toHaveLength(CAP);
    expect(allowed.body.data.segments.every((s: any) => s.members.edges.length === 1)).toBe(true);
  });
});

import { randomUUID } from 'node:crypto';
import {
  buildSchema, getIntrospectionQuery, getNamedType, isEnumType, isNonNullType, parse, type ExecutionResult, type GraphQLArgument, type GraphQLSchema,
} from 'graphql';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, inject } from 'vitest';
import { COMPILED_CHARS_AT_MOST, createExecutor } from '../api/graphql/executor.js';
import { typeDefs } from '../api/graphql/schema.js';
import { newTenant, startTestApi, token, type TestApi } from './support/api.js';
import { selection } from './support/graphql.js';
import { catalogueRows } from './support/rows.js';

// An operation runs through graphql-js GRAPHQL_COMPILE_AFTER times, then compiled (graphql-jit).
// A client sees the same answers either way: every Query field, selected three levels deep over a
// tenant that has one of everything, answers the same the first time (graphql-js) as the second
// (compiled). The other test files run everything compiled from the first request.

let api: TestApi;
let db: pg.Client;
let schema: GraphQLSchema;
let auth: string;
let tenant: string;
const ids: Record<string, string> = {};

beforeAll(async () => {
  api = await startTestApi({ GRAPHQL_COMPILE_AFTER: '1', GRAPHQL_MAX_COST: '1000000', RATE_LIMIT_READ: '1000000', RATE_LIMIT_WRITE: '1000000' });
  db = new pg.Client({ connectionString: inject('databaseUrl') });
  await db.connect();
  schema = buildSchema(typeDefs.join('\n'));
  tenant = newTenant();
  auth = await token(tenant);
  const ok = async (res: Promise<{ status: number; body: any }>) => {
    const { status, body } = await res;
    expect(status, JSON.stringify(body)).toBeLessThan(300);
    return body.data;
  };
  const customer = await ok(api.call('POST', '/api/v1/customers', { auth, body: { email: `ann-${randomUUID().slice(0, 8)}@example.com`, phoneNumber: '+14155550123', firstName: 'Ann' } }));
  await ok(api.call('POST', '/api/v1/customers', { auth, body: { firstName: 'Bob', lastName: 'Stone' } }));
  await ok(api.call('POST', `/api/v1/customers/${customer.id}/notes`, { auth, body: { content: 'likes early tee times' } }));
  await ok(api.call('POST', '/api/v1/events', {
    auth,
    body: { type: 'booking.created', category: 'BOOKING', title: 'Booked', occurredAt: new Date().toISOString(), customer: { id: customer.id }, sourceService: 'test', sourceEventId: randomUUID() },
  }));
  const segment = await ok(api.call('POST', '/api/v1/segments', { auth, body: { name: 'regulars', type: 'STATIC' } }));
  await db.query('insert into segment_members (segment_id, customer_id, tenant_id) values ($1, $2, $3)', [segment.id, customer.id, tenant]);
  const rows = await catalogueRows(db);
  const campaign = await rows.insert('campaigns', tenant, { segment_id: segment.id });
  const journey = await rows.insert('journeys', tenant);
  await rows.insert('journey_steps', tenant, { journey_id: journey.id });
  await rows.insert('journey_enrollments', tenant, { journey_id: journey.id, customer_id: customer.id });
  const connection = await rows.insert('social_connections', tenant);
  await rows.insert('social_posts', tenant, { connection_id: connection.id, campaign_id: campaign.id });
  await rows.insert('event_promotions', tenant, { segment_id: segment.id });
  Object.assign(ids, { customer: customer.id, segment: segment.id, campaign: campaign.id, journey: journey.id });
});
afterAll(async () => {
  await db?.end();
  await api?.close();
});

// What an ID argument names, by its name (and `id` by the field it is an argument of).
const ID_OF: Record<string, string> = { customerId: 'customer', segmentId: 'segment', journeyId: 'journey' };
const ID_OF_FIELD: Record<string, string> = { customer: 'customer', segment: 'segment', campaign: 'campaign', campaignStats: 'campaign', journey: 'journey' };

function argument(field: string, arg: GraphQLArgument): unknown {
  const type = isNonNullType(arg.type) ? arg.type.ofType : arg.type;
  if (arg.name === 'tenantId') return tenant;
  if (getNamedType(type).name === 'ID') {
    const resource = arg.name === 'id' ? ID_OF_FIELD[field] : ID_OF[arg.name];
    if (!resource && isNonNullType(arg.type)) throw new Error(`graphql-compiled test: what does ${field}(${arg.name}) name?`);
    return resource ? ids[resource] : undefined;
  }
  if (!isNonNullType(arg.type)) return undefined;
  if (isEnumType(type)) return type.getValues()[0]!.value;
  throw new Error(`graphql-compiled test: no value for ${field}(${arg.name})`);
}

/** The answer without what differs between any two requests (their ids, the time an analytics report was made). */
function comparable(body: any): unknown {
  return JSON.parse(JSON.stringify(body), (key, value) => (key === 'requestId' || key === 'generatedAt' ? undefined : value));
}

describe('compiled execution', () => {
  it('answers every Query field as graphql-js does', async () => {
    const fields = Object.values(schema.getQueryType()!.getFields());
    let answered = 0;
    for (const field of fields) {
      const args = field.args.map((arg) => [arg, argument(field.name, arg)] as const).filter(([, v]) => v !== undefined);
      const vars = args.map(([arg]) => `$${arg.name}: ${arg.type.toString()}`).join(', ');
      const query = `query${vars ? `(${vars})` : ''} { ${field.name}${args.length ? `(${args.map(([arg]) => `${arg.name}: $${arg.name}`).join(', ')})` : ''} ${selection(field.type, 3)} }`;
      const variables = Object.fromEntries(args.map(([arg, v]) => [arg.name, v]));
      const first = await api.graphql(auth, query, variables);
      const second = await api.graphql(auth, query, variables);
      expect(comparable(second.body), `${field.name}: compiled`).toEqual(comparable(first.body));
      expect(second.status, field.name).toBe(first.status);
      expect(JSON.stringify(first.body), field.name).not.toContain('"INTERNAL"');
      if (first.body.data?.[field.name] != null && !first.body.errors) answered++;
    }
    // Most fields answer data here (a few answer NOT_IMPLEMENTED, or nothing for this tenant).
    expect(answered).toBeGreaterThan(fields.length * 0.7);
  });

  // Compiled, enums and built-in scalars are answered without graphql-js's serializers: the
  // introspection answer (enums, booleans, nullable strings) must not change for it.
  it("answers the explorer's introspection query as graphql-js does", async () => {
    const query = getIntrospectionQuery();
    expect(query.length).toBeLessThanOrEqual(COMPILED_CHARS_AT_MOST);
    const first = await api.graphql(auth, query);
    const second = await api.graphql(auth, query);
    expect(first.body.data.__schema.types.length).toBeGreaterThan(50);
    expect(comparable(second.body)).toEqual(comparable(first.body));
  });

  it('answers variables, fragments, aliases, directives and nested totals as graphql-js does', async () => {
    const query = `query Page($first: Int!, $withNotes: Boolean!, $skipSegments: Boolean!) {
      everyone: customers(tenantId: "${tenant}", pagination: { first: $first }) {
        totalCount
        pageInfo { hasNextPage endCursor }
        edges { cursor node { ...person notes @include(if: $withNotes) { content } segments @skip(if: $skipSegments) { name memberCount members { totalCount } } } }
      }
      one: customer(id: "${ids.customer}") { ...person activities(first: 5) { totalCount edges { node { title type } } } __typename }
      missing: customer(id: "${randomUUID()}") { id }
    }
    fragment person on Customer { id fullName email status lifecycleStage emailOptIn createdAt }`;
    for (const variables of [{ first: 2, withNotes: true, skipSegments: false }, { first: 1, withNotes: false, skipSegments: true }]) {
      const first = await api.graphql(auth, query, variables);
      const second = await api.graphql(auth, query, variables);
      expect(first.status).toBe(200);
      expect(first.body.data.everyone.totalCount).toBe(2);
      expect(first.body.data.one.activities.totalCount).toBe(1);
      expect(comparable(second.body)).toEqual(comparable(first.body));
    }
  });

  it('an operation runs compiled once it has run GRAPHQL_COMPILE_AFTER times', async () => {
    // graphql-js calls a function-valued property for a field without a resolver; graphql-jit
    // reads the property. Which answer comes back shows which ran.
    const probe = buildSchema('type Query { mode: String }');
    const execute = createExecutor(2);
    const run = async () => ((await execute({ schema: probe, document: parse('{ mode }'), rootValue: { mode: () => 'graphql-js' } })) as ExecutionResult).data?.mode;
    const document = parse('{ mode }');
    const runDocument = async () => ((await execute({ schema: probe, document, rootValue: { mode: () => 'graphql-js' } })) as ExecutionResult).data?.mode;
    expect([await runDocument(), await runDocument()]).toEqual(['graphql-js', 'graphql-js']);
    expect(await runDocument()).not.toBe('graphql-js'); // compiled: the function itself, not its result
    expect(await run()).toBe('graphql-js'); // another document (parsed anew) starts over
    // A long document is never compiled (what its generated code would hold grows with it).
    const long = parse(`{ mode }\n#${'x'.repeat(COMPILED_CHARS_AT_MOST)}`);
    for (let i = 0; i < 4; i++) expect(((await execute({ schema: probe, document: long, rootValue: { mode: () => 'graphql-js' } })) as ExecutionResult).data?.mode).toBe('graphql-js');
  });

  it('never compiles a document carrying graphql-jit\'s code markers: a string literal cannot run code', async () => {
    // graphql-jit 0.8.9 turns `"__MAGIC_DATE__<its uuid>…"` in generated code into `new Date(…)`.
    const probe = buildSchema('type Query { echo(s: String): String }');
    const execute = createExecutor(0);
    const marker = '__MAGIC_DATE__33a9e76d_02e0_4128_8e92_3530ad3da74d';
    const global = globalThis as { compiledInjection?: number };
    for (const literal of [`"${marker}(globalThis.compiledInjection = 1)"`, `"\\u005F_MAGIC_DATE__33a9e76d_02e0_4128_8e92_3530ad3da74d(globalThis.compiledInjection = 2)"`]) {
      const result = (await execute({ schema: probe, document: parse(`{ echo(s: ${literal}) }`), rootValue: { echo: ({ s }: { s: string }) => s } })) as ExecutionResult;
      expect(result.data?.echo).toMatch(/compiledInjection/);
      expect(global.compiledInjection).toBeUndefined();
    }
    // And through the API: the answer is the literal, echoed back in the error message of a bad id.
    const query = `{ customer(id: "${marker}(globalThis.compiledInjection = 3)") { id } }`;
    for (let i = 0; i < 3; i++) await api.graphql(auth, query);
    expect(global.compiledInjection).toBeUndefined();
  });
});

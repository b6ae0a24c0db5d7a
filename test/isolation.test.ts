import { randomUUID } from 'node:crypto';
import {
  buildSchema, getNamedType, isEnumType, isInputObjectType, isListType, isNonNullType,
  type GraphQLArgument, type GraphQLInputType, type GraphQLSchema,
} from 'graphql';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, inject } from 'vitest';
import { typeDefs } from '../api/graphql/schema.js';
import { OPERATIONS, isOperation, isSigned, type OperationName } from '../domain/operations.js';
import { SCOPES } from '../platform/auth.js';
import { newTenant, token } from './support/api.js';
import { selection } from './support/graphql.js';
import { catalogueRows } from './support/rows.js';
import { startTestStack, type TestStack } from './support/stack.js';

// Tenant isolation, generated from the operation catalogue: every REST route of the OpenAPI
// document (by operationId) and every GraphQL root field is called as tenant B with the ids of
// tenant A's resources. An operation added later (campaigns, journeys, social) is covered as soon
// as it has a route or a field; one that cannot be called, or one whose arguments this file
// cannot fill, fails here instead of going untested.

// What an id argument or path parameter names, by its name. `id` names the resource of the path
// segment before it (`/segments/{id}`), in GraphQL the resource of the same operation's REST path.
const RESOURCE_OF_NAME: Record<string, Resource> = {
  customerId: 'customer', winnerId: 'customer', loserId: 'otherCustomer', segmentId: 'segment', journeyId: 'journey',
  stepId: 'journeyStep', campaignId: 'campaign', connectionId: 'socialConnection', postId: 'socialPost',
};
const RESOURCE_OF_PATH: Record<string, Resource> = {
  customers: 'customer', notes: 'note', segments: 'segment', campaigns: 'campaign', journeys: 'journey', steps: 'journeyStep',
  connections: 'socialConnection', posts: 'socialPost', promotions: 'eventPromotion', enrollments: 'customer', templates: 'template',
};
const TABLE_OF: Record<Resource, string> = {
  customer: 'customers', otherCustomer: 'customers', note: 'notes', segment: 'segments', campaign: 'campaigns', journey: 'journeys', journeyStep: 'journey_steps',
  socialConnection: 'social_connections', socialPost: 'social_posts', eventPromotion: 'event_promotions', template: 'message_templates',
};
type Resource = 'customer' | 'otherCustomer' | 'note' | 'segment' | 'campaign' | 'journey' | 'journeyStep' | 'socialConnection' | 'socialPost' | 'eventPromotion' | 'template';

// Operations that only REST has and whose body names a resource: what a client would send.
const REST_BODIES: Partial<Record<OperationName, (a: TenantA) => { body: string; contentType: string; namesA: boolean }>> = {
  ingestEvents: (a) => ({
    contentType: 'application/json',
    namesA: true,
    body: JSON.stringify({
      type: 'booking.created', category: 'BOOKING', title: 'Booked', occurredAt: new Date().toISOString(),
      customer: { id: a.ids.customer }, createCustomer: false, sourceService: 'isolation', sourceEventId: randomUUID(),
    }),
  }),
  // A's email imported by B makes B a profile of its own; nothing of A's may show.
  importCustomers: (a) => ({ contentType: 'application/x-ndjson', namesA: false, body: `${JSON.stringify({ email: a.email, firstName: 'B' })}\n` }),
  // Valid bodies, so that only the ids in the path (and a preview's customer) can make them fail.
  createTemplate: () => ({ contentType: 'application/json', namesA: false, body: JSON.stringify({ name: 'B', channel: 'SMS', body: 'Hi {{ firstName }}' }) }),
  updateTemplate: () => ({ contentType: 'application/json', namesA: false, body: JSON.stringify({ name: 'B' }) }),
  previewTemplate: (a) => ({ contentType: 'application/json', namesA: true, body: JSON.stringify({ customerId: a.ids.customer }) }),
  // An upstream system names the customer by id or identifiers; the journey in the path is A's.
  enrollCustomerInJourney: (a) => ({ contentType: 'application/json', namesA: true, body: JSON.stringify({ customer: { id: a.ids.customer }, idempotencyKey: 'isolation' }) }),
};

interface TenantA { tenant: string; email: string; phone: string; ids: Record<Resource, string> }
interface Call { operation: OperationName; label: string; namesA: boolean; send(auth: string): Promise<{ status: number; body: any }>; gqlField?: string }

let stack: TestStack;
let db: pg.Client;
let schema: GraphQLSchema;
let doc: { paths: Record<string, Record<string, { operationId?: string; parameters?: { name: string; in: string }[] }>> };
let a: TenantA;
const tenantB = newTenant();

beforeAll(async () => {
  // Limits out of the way: this file sends a few hundred requests per tenant.
  const unlimited = Object.fromEntries(['READ', 'WRITE', 'CAMPAIGN', 'SOCIAL', 'BULK'].map((c) => [`RATE_LIMIT_${c}`, '1000000000']));
  stack = await startTestStack({ MESSAGING_URL: 'http://127.0.0.1:9/', MESSAGING_WEBHOOK_SECRET: 'isolation-webhook-secret', ...unlimited });
  db = new pg.Client({ connectionString: inject('databaseUrl') });
  await db.connect();
  // From the served SDL, with this file's own graphql module (its type predicates are per module).
  schema = buildSchema(typeDefs.join('\n'));
  doc = (await stack.api.call('GET', '/api/v1/openapi.json')).body;

  // Tenant A: resources through the API where they have landed, rows of their tables otherwise.
  const tenant = newTenant();
  const auth = await token(tenant);
  const suffix = randomUUID().slice(0, 8);
  const email = `a-${suffix}@example.com`;
  const phone = `+1415555${String(Math.floor(Math.random() * 10_000)).padStart(4, '0')}`;
  const customer = (await stack.api.call('POST', '/api/v1/customers', { auth, body: { email, phoneNumber: phone, firstName: 'Ann' } })).body.data;
  const otherCustomer = (await stack.api.call('POST', '/api/v1/customers', { auth, body: { firstName: 'Bob' } })).body.data;
  const note = (await stack.api.call('POST', `/api/v1/customers/${customer.id}/notes`, { auth, body: { content: 'A only' } })).body.data;
  const segment = (await stack.api.call('POST', '/api/v1/segments', { auth, body: { name: `A ${suffix}`, type: 'STATIC' } })).body.data;
  const template = (await stack.api.call('POST', '/api/v1/templates', { auth, body: { name: `A ${suffix}`, channel: 'EMAIL', subject: 'A', body: '<p>A</p>' } })).body.data;
  await db.query('insert into segment_members (segment_id, customer_id, tenant_id) values ($1, $2, $3)', [segment.id, customer.id, tenant]);
  const rows = await catalogueRows(db);
  const campaign = await rows.insert('campaigns', tenant, { segment_id: segment.id });
  const journey = await rows.insert('journeys', tenant);
  const journeyStep = await rows.insert('journey_steps', tenant, { journey_id: journey.id });
  await rows.insert('journey_enrollments', tenant, { journey_id: journey.id, customer_id: customer.id });
  const socialConnection = await rows.insert('social_connections', tenant);
  const socialPost = await rows.insert('social_posts', tenant, { connection_id: socialConnection.id, campaign_id: campaign.id });
  const eventPromotion = await rows.insert('event_promotions', tenant, { segment_id: segment.id });
  a = {
    tenant, email, phone,
    ids: {
      customer: customer.id, otherCustomer: otherCustomer.id, note: note.id, segment: segment.id, campaign: campaign.id, journey: journey.id, journeyStep: journeyStep.id,
      socialConnection: socialConnection.id, socialPost: socialPost.id, eventPromotion: eventPromotion.id, template: template.id,
    },
  };
});
afterAll(async () => {
  await db?.end();
  await stack?.close();
});

/** The resource a path parameter names. */
function pathResource(path: string, param: string): Resource | undefined {
  if (param !== 'id') return RESOURCE_OF_NAME[param];
  const segments = path.split('/');
  return RESOURCE_OF_PATH[segments[segments.indexOf('{id}') - 1]!];
}

/** The resource the `id` of an operation names, from its REST path. */
function idResource(operation: string): Resource | undefined {
  for (const [path, methods] of Object.entries(doc.paths)) {
    if (Object.values(methods).some((m) => m.operationId === operation) && path.includes('{id}')) return pathResource(path, 'id');
  }
  return undefined;
}

/** A value for an argument or input field; `undefined` leaves an optional one out. */
function argValue(operation: string, name: string, type: GraphQLInputType, required: boolean, used: { namesA: boolean }): unknown {
  if (isNonNullType(type)) return argValue(operation, name, type.ofType, true, used);
  if (isListType(type)) {
    const item = argValue(operation, name, type.ofType, required, used);
    return item === undefined ? undefined : [item];
  }
  if (isInputObjectType(type)) {
    const fields = Object.values(type.getFields())
      .map((f) => [f.name, argValue(operation, f.name, f.type, isNonNullType(f.type), used)] as const)
      .filter(([, v]) => v !== undefined);
    // An update must change something: give it one harmless field (a flag or an enum).
    if (!fields.length && required) {
      const harmless = Object.values(type.getFields()).find((f) => isEnumType(getNamedType(f.type)) || getNamedType(f.type).name === 'Boolean');
      if (harmless) {
        const named = getNamedType(harmless.type);
        return { [harmless.name]: isEnumType(named) ? named.getValues()[0]!.value : false };
      }
    }
    return fields.length || required ? Object.fromEntries(fields) : undefined;
  }
  if (isEnumType(type)) return required ? type.getValues()[0]!.value : undefined;
  switch (type.name) {
    case 'ID': {
      const resource = name === 'id' ? idResource(operation) : RESOURCE_OF_NAME[name];
      if (!resource) {
        if (required) throw new Error(`isolation test: what does ${operation}(${name}) name? Add it to RESOURCE_OF_NAME`);
        return undefined;
      }
      used.namesA ||= required;
      return a.ids[resource];
    }
    case 'String':
      if (name === 'tenantId') return tenantB;
      if (name === 'email') return a.email;
      if (name === 'phone' || name === 'phoneNumber') return required ? a.phone : undefined;
      // A social post's media and hashtags are checked before its connection: valid ones.
      if (name === 'mediaUrls') return required ? 'https://cdn.example.com/isolation.mp4' : undefined;
      if (name === 'hashtags') return required ? 'isolation' : undefined;
      return required ? `isolation ${randomUUID().slice(0, 8)}` : undefined;
    case 'Int': case 'Float': return required ? 1 : undefined;
    case 'Boolean': return required ? false : undefined;
    case 'DateTime': return required ? new Date(Date.now() + 86_400_000).toISOString() : undefined;
    case 'JSON': return required ? {} : undefined;
    case 'ActivityType': return required ? 'isolation.test' : undefined;
    default: throw new Error(`isolation test: no sample for scalar ${type.name} (${operation}.${name})`);
  }
}

function graphqlCalls(): Call[] {
  const calls: Call[] = [];
  for (const [kind, root] of [['query', schema.getQueryType()!], ['mutation', schema.getMutationType()!]] as const) {
    for (const field of Object.values(root.getFields())) {
      if (!isOperation(field.name)) throw new Error(`${root.name}.${field.name} is not in domain/operations.ts`);
      const used = { namesA: false };
      const args = (field.args as GraphQLArgument[])
        .map((arg) => [arg, argValue(field.name, arg.name, arg.type, isNonNullType(arg.type), used)] as const)
        .filter(([, v]) => v !== undefined);
      const vars = args.map(([arg]) => `$${arg.name}: ${arg.type.toString()}`).join(', ');
      const query = `${kind}${vars ? `(${vars})` : ''} { ${field.name}${args.length ? `(${args.map(([arg]) => `${arg.name}: $${arg.name}`).join(', ')})` : ''} ${selection(field.type, 3)} }`;
      const variables = Object.fromEntries(args.map(([arg, v]) => [arg.name, v]));
      calls.push({
        operation: field.name, label: `GraphQL ${root.name}.${field.name}`, namesA: used.namesA, gqlField: field.name,
        send: (auth) => stack.api.graphql(auth, query, variables),
      });
    }
  }
  return calls;
}

function restCalls(): Call[] {
  const calls: Call[] = [];
  const fields = { ...schema.getQueryType()!.getFields(), ...schema.getMutationType()!.getFields() };
  for (const [template, methods] of Object.entries(doc.paths)) {
    for (const [method, route] of Object.entries(methods)) {
      const operation = route.operationId;
      if (!operation || !isOperation(operation)) throw new Error(`${method.toUpperCase()} ${template}: operationId ${operation} is not in domain/operations.ts`);
      const params = [...template.matchAll(/\{(\w+)\}/g)].map((m) => m[1]!);
      const path = template.replace(/\{(\w+)\}/g, (_, param: string) => {
        const resource = pathResource(template, param);
        if (!resource) throw new Error(`isolation test: what does ${template} {${param}} name? Add it to RESOURCE_OF_PATH / RESOURCE_OF_NAME`);
        return a.ids[resource];
      });
      // Query parameters that name a resource (a list filtered by A's segment, say) get A's id.
      const query = (route.parameters ?? [])
        .filter((p) => p.in === 'query' && RESOURCE_OF_NAME[p.name])
        .map((p) => `${p.name}=${a.ids[RESOURCE_OF_NAME[p.name]!]}`);
      let namesA = params.length > 0;
      let body: string | undefined;
      let contentType = 'application/json';
      const special = REST_BODIES[operation];
      if (special) {
        const made = special(a);
        ({ body, contentType } = made);
        namesA ||= made.namesA;
      } else if (method !== 'get' && method !== 'delete') {
        // The body mirrors the GraphQL arguments that are not in the path.
        const field = fields[operation];
        const used = { namesA: false };
        const pathResources = new Set(params.map((p) => pathResource(template, p)));
        const values = (field?.args ?? [])
          .filter((arg) => !(arg.name === 'id' || pathResources.has(RESOURCE_OF_NAME[arg.name]!)) || arg.name === 'input')
          .map((arg) => [arg.name, argValue(operation, arg.name, arg.type, isNonNullType(arg.type), used)] as const)
          .filter(([, v]) => v !== undefined);
        const input = values.find(([name]) => name === 'input');
        body = JSON.stringify(input ? input[1] : Object.fromEntries(values));
        namesA ||= used.namesA;
      }
      const url = `/api/v1${path}${query.length ? `?${query.join('&')}` : ''}`;
      calls.push({
        operation, label: `${method.toUpperCase()} ${template}`, namesA,
        send: (auth) => stack.api.call(method.toUpperCase(), url, { auth, body, headers: body === undefined ? {} : { 'content-type': contentType } }),
      });
    }
  }
  return calls;
}

function outcome(call: Call, res: { status: number; body: any }): { status: number; code?: string } {
  if (!call.gqlField) return { status: res.status, code: res.body?.error?.code };
  const code = res.body?.errors?.[0]?.extensions?.code;
  return { status: code ? 0 : res.status, code };
}

describe('tenant isolation, for every operation of the catalogue', () => {
  it('covers every operation with a REST route or a GraphQL field', () => {
    const covered = new Set([...restCalls(), ...graphqlCalls()].map((c) => c.operation));
    expect(Object.keys(OPERATIONS).filter((op) => !covered.has(op as OperationName))).toEqual([]);
  });

  it('answers another tenant\'s ids with RESOURCE_NOT_FOUND, and never shows another tenant\'s data', async () => {
    const auth = await token(tenantB);
    const leaks: string[] = [];
    const wrong: string[] = [];
    const secrets = Object.values(a.ids);
    for (const call of [...restCalls(), ...graphqlCalls()]) {
      const res = await call.send(auth);
      // An error message may echo the id the caller sent; the data must hold nothing of A's.
      const text = JSON.stringify(res.body);
      const data = JSON.stringify(res.body?.data ?? null);
      const shown = secrets.filter((s) => data.includes(s));
      if (shown.length) leaks.push(`${call.label} showed ${shown.join(', ')}`);
      const { status, code } = outcome(call, res);
      if (status >= 500 || code === 'INTERNAL') wrong.push(`${call.label} → ${res.status} ${text.slice(0, 200)}`);
      else if (call.namesA && code !== 'RESOURCE_NOT_FOUND') wrong.push(`${call.label} with tenant A's ids → ${res.status} ${code ?? ''} ${text.slice(0, 200)}`);
    }
    expect(leaks).toEqual([]);
    expect(wrong).toEqual([]);
  });

  it('left tenant A\'s resources as they were', async () => {
    const auth = await token(a.tenant);
    for (const resource of Object.keys(TABLE_OF) as Resource[]) {
      const { rowCount } = await db.query(`select 1 from "${TABLE_OF[resource]}" where tenant_id = $1 and id = $2`, [a.tenant, a.ids[resource]]);
      expect(rowCount, resource).toBe(1);
    }
    const customer = (await stack.api.call('GET', `/api/v1/customers/${a.ids.customer}`, { auth })).body.data;
    expect(customer).toMatchObject({ email: a.email, firstName: 'Ann', status: 'ACTIVE' });
    const members = (await stack.api.call('GET', `/api/v1/segments/${a.ids.segment}/members`, { auth })).body.data;
    expect(members.map((m: { id: string }) => m.id)).toEqual([a.ids.customer]);
  });

  it('refuses every operation to a token lacking its scope, with FORBIDDEN', async () => {
    const wrong: string[] = [];
    const tokens = new Map<string, string>();
    for (const scope of SCOPES) tokens.set(scope, await token(tenantB, SCOPES.filter((s) => s !== scope)));
    // A signed webhook takes no token at all (test/messaging-webhook.test.ts holds it to its signature).
    for (const call of [...restCalls(), ...graphqlCalls()].filter((c) => !isSigned(c.operation))) {
      const scope = OPERATIONS[call.operation].scope;
      const res = await call.send(tokens.get(scope)!);
      const { status, code } = outcome(call, res);
      if (code !== 'FORBIDDEN' || (!call.gqlField && status !== 403)) wrong.push(`${call.label} without ${scope} → ${res.status} ${code ?? ''}`);
    }
    expect(wrong).toEqual([]);
  });
});

import {
  buildClientSchema, getIntrospectionQuery, getNamedType, isCompositeType, isEnumType, isInputObjectType, isListType, isNonNullType,
  type GraphQLInputType,
} from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newTenant, token } from './support/api.js';
import { startTestStack, type TestStack } from './support/stack.js';

// Every REST operation, fed malformed input, answers a 4xx in the error envelope (or a normal
// answer), never a 500.
let stack: TestStack;
beforeAll(async () => {
  // Limits out of the way, so every request reaches its handler instead of a 429.
  const unlimited = Object.fromEntries(['READ', 'WRITE', 'CAMPAIGN', 'SOCIAL', 'BULK'].map((c) => [`RATE_LIMIT_${c}`, '1000000000']));
  // The webhook configured, so malformed input reaches its signature check and body validation.
  stack = await startTestStack({ MESSAGING_URL: 'http://127.0.0.1:9/', MESSAGING_WEBHOOK_SECRET: 'no-500-webhook-secret', ...unlimited });
});
afterAll(() => stack.close());

const BAD_BODIES: unknown[] = [
  [], 'text', 42, null, {}, { tenantId: 7 }, { name: '', type: 'NOPE', criteria: { all: 'x' } },
  { email: ['a'], phoneNumber: {}, firstName: 12, handicap: 'low', lifecycleStage: 5 }, { content: null, type: 'X', isPinned: 'yes' },
  { winnerId: 'x', loserId: 'y' }, { winnerId: '00000000-0000-7000-8000-000000000000', loserId: 5 },
];
// Every query parameter of every GET operation gets each of these (and repeats, brackets, no value).
const BAD_QUERY_VALUES = ['', '%00', 'a%00b', '99999999999999999999', '-99999999999999999999', '1e400', '-1', '0', '1.5', 'NaN', 'abc', '%FF%FE', 'x'.repeat(5000), '+275760-09-13T00:00:00Z', '99999', '0000-01-01', '2026-02-30'];
const nested = (depth: number) => '['.repeat(depth) + ']'.repeat(depth);
// [label, content type (none when empty), raw body]. Bodies over the size limit: input-limits.test.ts
// (the server answers 413 without reading them, which a client must read while still sending).
const ODD_BODIES: [string, string, string][] = [
  ['json, no content type', '', '{"email":"a@example.com"}'],
  ['text/plain', 'text/plain', '{"email":"a@example.com"}'],
  ['empty json', 'application/json', ''],
  ['json null', 'application/json', 'null'],
  ['truncated json', 'application/json', '{"email":'],
  ['nested 5,000 deep', 'application/json', `{"email":"a@example.com","firstName":${nested(5000)}}`],
  ['nested array body', 'application/json', nested(5000)],
  ['huge string', 'application/json', JSON.stringify({ email: 'a@example.com', firstName: 'x'.repeat(1_500_000), name: 'x'.repeat(100_000), content: 'x'.repeat(100_000) })],
  ['NUL in a key', 'application/json', '{"a\\u0000b":1,"email":"a@example.com"}'],
  ['upper-case media type with NUL', 'Application/JSON', '{"firstName":"a\\u0000b"}'],
  ['csv', 'text/csv', 'email\na@example.com\n"unclosed'],
  // A body of another (or no) media type must not skip the JSON body's NUL and depth checks.
  ...(['text/plain', ''] as const).flatMap((type): [string, string, string][] => [
    [`NUL as ${type || 'no content type'}`, type, '{"email":"a@example.com","title":"a\\u0000b","content":"a\\u0000b","name":"a\\u0000b"}'],
    [`nested 200,000 deep as ${type || 'no content type'}`, type, `{"email":"a@example.com","metadata":{"a":${nested(200_000)}},"criteria":${nested(200_000)}}`],
  ]),
];
const BAD_QUERIES = ['take=0', 'take=abc&skip=-1', 'status=NOPE', 'engagementMin=x', 'after=%%%', 'categories=NOPE&startDate=yesterday', 'type=WHAT'];

describe('malformed input', () => {
  it('never makes a REST operation answer 500', async () => {
    const auth = await token(newTenant());
    const customer = (await stack.api.call('POST', '/api/v1/customers', { auth, body: { email: 'fuzz@example.com' } })).body.data;
    const doc = (await stack.api.call('GET', '/api/v1/openapi.json')).body;
    const failures: string[] = [];
    for (const [template, methods] of Object.entries<Record<string, unknown>>(doc.paths)) {
      for (const method of Object.keys(methods)) {
        for (const id of [customer.id, 'not-an-id', '00000000-0000-7000-8000-000000000000']) {
          const path = `/api/v1${template.replace(/\{[^}]+\}/g, id)}`;
          const attempts = method === 'get' || method === 'delete'
            ? BAD_QUERIES.map((q) => stack.api.call(method.toUpperCase(), `${path}?${q}`, { auth }))
            : BAD_BODIES.map((body) => stack.api.call(method.toUpperCase(), path, { auth, body }));
          for (const res of await Promise.all(attempts)) {
            if (res.status >= 500) failures.push(`${method.toUpperCase()} ${path} → ${res.status} ${JSON.stringify(res.body).slice(0, 200)}`);
            if (res.status === 429) failures.push(`${method.toUpperCase()} ${path} was rate limited`);
            if (res.status >= 400) expect(res.body.error?.code, `${method} ${path}`).toEqual(expect.any(String));
          }
        }
      }
    }
    expect(failures).toEqual([]);
  });

  it('never answers 500 to bad query strings on any GET operation', async () => {
    const auth = await token(newTenant());
    const customer = (await stack.api.call('POST', '/api/v1/customers', { auth, body: { email: 'query-fuzz@example.com' } })).body.data;
    const doc = (await stack.api.call('GET', '/api/v1/openapi.json')).body;
    const failures: string[] = [];
    for (const [template, methods] of Object.entries<Record<string, any>>(doc.paths)) {
      if (!methods.get) continue;
      const path = `/api/v1${template.replace(/\{[^}]+\}/g, customer.id)}`;
      const names: string[] = [...(methods.get.parameters ?? []).filter((p: any) => p.in === 'query').map((p: any) => p.name), 'unknownParam'];
      const queries = names.flatMap((name) => [
        ...BAD_QUERY_VALUES.map((value) => `${name}=${value}`),
        `${name}=1&${name}=2`, `${name}[]=1`, name,
      ]);
      for (const res of await Promise.all(queries.map((q) => stack.api.call('GET', `${path}?${q}`, { auth }).then((r) => ({ ...r, q }))))) {
        if (res.status >= 500) failures.push(`GET ${path}?${res.q} → ${res.status} ${JSON.stringify(res.body).slice(0, 200)}`);
        if (res.status >= 400) expect(res.body.error?.code, `GET ${path}?${res.q}`).toEqual(expect.any(String));
      }
    }
    expect(failures).toEqual([]);
  });

  it('never answers 500 to odd bodies: no or another content type, deep nesting, huge or NUL text', async () => {
    const auth = await token(newTenant());
    const customer = (await stack.api.call('POST', '/api/v1/customers', { auth, body: { email: 'body-fuzz@example.com' } })).body.data;
    const doc = (await stack.api.call('GET', '/api/v1/openapi.json')).body;
    const failures: string[] = [];
    for (const [template, methods] of Object.entries<Record<string, unknown>>(doc.paths)) {
      for (const method of Object.keys(methods).filter((m) => m === 'post' || m === 'patch')) {
        const path = `/api/v1${template.replace(/\{[^}]+\}/g, customer.id)}`;
        const attempts = ODD_BODIES.map(async ([label, contentType, body]) => {
          const headers: Record<string, string> = { authorization: `Bearer ${auth}`, ...(contentType && { 'content-type': contentType }) };
          // A Uint8Array body carries no content type of its own.
          const res = await fetch(stack.api.url + path, { method: method.toUpperCase(), headers, body: new TextEncoder().encode(body) }).catch((err: Error) => err);
          if (res instanceof Error) return void failures.push(`${method.toUpperCase()} ${path} (${label}) → ${(res.cause as Error | undefined)?.message ?? res.message}`);
          const text = await res.text();
          if (res.status >= 500) failures.push(`${method.toUpperCase()} ${path} (${label}) → ${res.status} ${text.slice(0, 200)}`);
          if (res.status >= 400) expect(JSON.parse(text).error?.code, `${method} ${path} (${label})`).toEqual(expect.any(String));
        });
        await Promise.all(attempts);
      }
    }
    expect(failures).toEqual([]);
  });
});

// Every root field of the served schema, called with missing, wrong-typed and type-correct but
// nonsensical arguments, plus odd documents: errors carry a code, never INTERNAL, never a 500.
describe('malformed GraphQL', () => {
  const ODD_DOCUMENTS = [
    '', ' ', '{', '}', 'query', 'mutation', 'subscription { customers }', '{ __typename } { __typename }', '{ ...Missing }',
    'query Q { __typename } query Q { __typename }', '{ a: __typename a: __schema { queryType { name } } }', '{'.repeat(3000),
    '{ __typename @skip(if: "no") }', '{ __type(name: 5) { name } }', 'query($v: NoSuchType) { __typename }', '{ customer(id: "\\u0000") { id } }',
  ];

  it('never makes a root field answer 500 or INTERNAL', async () => {
    const tenant = newTenant();
    const auth = await token(tenant);
    const customer = (await stack.api.call('POST', '/api/v1/customers', { auth, body: { email: 'gql-fuzz@example.com' } })).body.data;
    const schema = buildClientSchema((await stack.api.graphql(auth, getIntrospectionQuery())).body.data);
    const ids = ['not-an-id', '00000000-0000-7000-8000-000000000000', customer.id];

    // A value the type system accepts but the service may not: empty, huge, foreign, nonsensical.
    const value = (type: GraphQLInputType, variant: number, name = ''): unknown => {
      if (isNonNullType(type)) return value(type.ofType, variant, name);
      if (isListType(type)) return variant === 1 ? [] : [value(type.ofType, variant, name), value(type.ofType, variant + 1, name)];
      if (isEnumType(type)) return type.getValues()[variant % type.getValues().length]!.name;
      if (isInputObjectType(type)) return Object.fromEntries(Object.values(type.getFields()).map((f) => [f.name, value(f.type, variant, f.name)]));
      if (name === 'tenantId') return [tenant, 'someone_else', tenant][variant % 3];
      switch (type.name) {
        case 'ID': return ids[variant % 3];
        case 'Int': return [-1, 2147483647, 0][variant % 3];
        case 'Float': return [-1e308, 1e308, 0.5][variant % 3];
        case 'Boolean': return variant % 2 === 0;
        case 'DateTime': return ['1970-01-01T00:00:00Z', '9999-12-31T23:59:59Z', '2026-02-30T00:00:00Z'][variant % 3];
        case 'JSON': return [{}, { all: 'x', any: [{ nope: 1 }] }, [[[[[]]]]]][variant % 3];
        case 'ActivityType': return ['a', 'booking.created', 'x'.repeat(200)][variant % 3];
        default: return ['', 'x'.repeat(10_000), 'text \u0000 with NUL'][variant % 3];
      }
    };
    // A literal of the wrong kind for every argument.
    const wrongLiteral = (type: GraphQLInputType): string => {
      const named = getNamedType(type);
      if (isListType(isNonNullType(type) ? type.ofType : type)) return '{ a: 1 }';
      if (isInputObjectType(named)) return '"not an object"';
      if (isEnumType(named)) return '"NOPE"';
      return '{ a: 1 }';
    };

    const failures: string[] = [];
    for (const root of [schema.getQueryType()!, schema.getMutationType()!]) {
      const op = root.name === 'Query' ? 'query' : 'mutation';
      for (const field of Object.values(root.getFields())) {
        const selection = isCompositeType(getNamedType(field.type)) ? '{ __typename }' : '';
        const declared = field.args.map((a, i) => `$a${i}: ${a.type}`).join(', ');
        const passed = field.args.map((a, i) => `${a.name}: $a${i}`).join(', ');
        const attempts: [string, Record<string, unknown>?][] = [
          [`${op} { ${field.name} ${selection} }`],
          [`${op} { ${field.name}${field.args.length ? `(${field.args.map((a) => `${a.name}: ${wrongLiteral(a.type)}`).join(', ')})` : ''} ${selection} }`],
          [`${op} { ${field.name}${passed ? `(${passed})` : ''} ${selection ? '' : '{ __typename }'} }`],
          ...[0, 1, 2].map((variant): [string, Record<string, unknown>] => [
            `${op}${declared ? `(${declared})` : ''} { ${field.name}${passed ? `(${passed})` : ''} ${selection} }`,
            Object.fromEntries(field.args.map((a, i) => [`a${i}`, value(a.type, variant, a.name)])),
          ]),
          [`${op}${declared ? `(${declared})` : ''} { ${field.name}${passed ? `(${passed})` : ''} ${selection} }`, Object.fromEntries(field.args.map((_, i) => [`a${i}`, { deep: 'x'.repeat(3) }]))],
        ];
        for (const [query, variables] of attempts) {
          const res = await stack.api.graphql(auth, query, variables);
          const internal = (res.body.errors ?? []).filter((e: any) => typeof e.extensions?.code !== 'string' || e.extensions.code === 'INTERNAL');
          if (res.status >= 500 || internal.length) failures.push(`${query} ${JSON.stringify(variables ?? {}).slice(0, 120)} → ${res.status} ${JSON.stringify(res.body).slice(0, 300)}`);
        }
      }
    }
    for (const query of ODD_DOCUMENTS) {
      const res = await stack.api.graphql(auth, query);
      if (res.status >= 500 || res.body.errors?.some((e: any) => e.extensions?.code !== 'VALIDATION_ERROR')) failures.push(`${query.slice(0, 60)} → ${res.status} ${JSON.stringify(res.body).slice(0, 300)}`);
    }
    const deep = JSON.parse(`${'{"a":'.repeat(2000)}1${'}'.repeat(2000)}`);
    const res = await stack.api.graphql(auth, 'query($c: JSON) { createSegment(input: {tenantId: "x", name: "deep", type: SMART, criteria: $c}) { id } }', { c: deep });
    if (res.status >= 500 || res.body.errors?.some((e: any) => e.extensions?.code === 'INTERNAL')) failures.push(`deep criteria → ${res.status} ${JSON.stringify(res.body).slice(0, 300)}`);
    expect(failures).toEqual([]);
  });
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newTenant, token } from './support/api.js';
import { startTestStack, type TestStack } from './support/stack.js';

// Every REST operation, fed malformed input, answers a 4xx in the error envelope (or a normal
// answer), never a 500.
let stack: TestStack;
beforeAll(async () => {
  // Limits out of the way, so every request reaches its handler instead of a 429.
  const unlimited = Object.fromEntries(['READ', 'WRITE', 'CAMPAIGN', 'SOCIAL', 'BULK'].map((c) => [`RATE_LIMIT_${c}`, '1000000000']));
  stack = await startTestStack({ MESSAGING_URL: 'http://127.0.0.1:9/', ...unlimited });
});
afterAll(() => stack.close());

const BAD_BODIES: unknown[] = [
  [], 'text', 42, null, {}, { tenantId: 7 }, { name: '', type: 'NOPE', criteria: { all: 'x' } },
  { email: ['a'], phoneNumber: {}, firstName: 12, handicap: 'low', lifecycleStage: 5 }, { content: null, type: 'X', isPinned: 'yes' },
  { winnerId: 'x', loserId: 'y' }, { winnerId: '00000000-0000-7000-8000-000000000000', loserId: 5 },
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
            if (res.status >= 500 && res.status !== 501) failures.push(`${method.toUpperCase()} ${path} → ${res.status} ${JSON.stringify(res.body).slice(0, 200)}`);
            if (res.status === 429) failures.push(`${method.toUpperCase()} ${path} was rate limited`);
            if (res.status >= 400) expect(res.body.error?.code, `${method} ${path}`).toEqual(expect.any(String));
          }
        }
      }
    }
    expect(failures).toEqual([]);
  });
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newTenant, startTestApi, token, type TestApi } from './support/api.js';

let api: TestApi;
let second: TestApi;
beforeAll(async () => {
  api = await startTestApi();
  second = await startTestApi(); // another API instance on the same database
});
afterAll(async () => {
  await api.close();
  await second.close();
});

describe('rate limits', () => {
  it('reports the read class on every authenticated response', async () => {
    const auth = await token(newTenant());
    const first = await api.call('GET', '/api/v1/segments', { auth });
    const next = await api.call('GET', '/api/v1/segments', { auth });
    expect(first.headers.get('x-ratelimit-limit')).toBe('1000');
    expect(Number(first.headers.get('x-ratelimit-remaining'))).toBe(999);
    expect(Number(next.headers.get('x-ratelimit-remaining'))).toBe(998);
    const reset = Number(first.headers.get('x-ratelimit-reset'));
    expect(reset).toBeGreaterThan(Date.now() / 1000);
    expect(reset).toBeLessThanOrEqual(Date.now() / 1000 + 61);
  });

  it('charges resolveCustomer as a write to a token that may write (it creates profiles then), as a read to one that may not', async () => {
    const tenant = newTenant();
    const writer = await api.call('POST', '/api/v1/customers/resolve', { auth: await token(tenant), body: { email: 'new@resolve-rate.test' } });
    expect(writer.headers.get('x-ratelimit-limit')).toBe('100');
    const gql = await api.graphql(await token(tenant), `{ resolveCustomer(tenantId: "${tenant}", email: "other@resolve-rate.test") { resolution { isNew } } }`);
    expect(gql.headers.get('x-ratelimit-limit')).toBe('100');
    const reader = await api.call('POST', '/api/v1/customers/resolve', { auth: await token(tenant, ['crm:read']), body: { email: 'new@resolve-rate.test' } });
    expect(reader.headers.get('x-ratelimit-limit')).toBe('1000');
  });

  it('answers 429 past the campaign-execution limit, counted across API instances, per tenant', async () => {
    const tenant = newTenant();
    const auth = await token(tenant);
    for (let i = 0; i < 10; i++) {
      const via = i % 2 ? second : api;
      const res = await via.call('POST', `/api/v1/campaigns/c${i}/execute`, { auth });
      expect(res.status).toBe(404);
      expect(res.headers.get('x-ratelimit-limit')).toBe('10');
      expect(res.headers.get('x-ratelimit-remaining')).toBe(String(9 - i));
    }
    const limited = await api.call('POST', '/api/v1/campaigns/c10/execute', { auth });
    expect(limited.status).toBe(429);
    expect(limited.body.error.code).toBe('RATE_LIMITED');
    expect(limited.headers.get('x-ratelimit-remaining')).toBe('0');
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);

    const gql = await second.graphql(auth, 'mutation { pauseCampaign(id: "c1") { id } }');
    expect(gql.status).toBe(429);
    expect(gql.body.errors[0].extensions.code).toBe('RATE_LIMITED');

    // Every aliased root field counts, fragments included.
    const fresh = await token(newTenant());
    const aliased = await api.graphql(fresh, 'mutation { a: pauseCampaign(id: "1") { id } b: pauseCampaign(id: "2") { id } ...More } fragment More on Mutation { cancelCampaign(id: "3") { id } }');
    expect(aliased.headers.get('x-ratelimit-remaining')).toBe('7');

    // Reads are a different class, and other tenants have their own counters.
    expect((await api.call('GET', '/api/v1/campaigns', { auth })).status).toBe(200);
    const other = await token(newTenant());
    expect((await api.call('POST', '/api/v1/campaigns/c1/execute', { auth: other })).status).toBe(404);
  });

  it('admits exactly the limit of concurrent requests across instances, each with its own remaining count', async () => {
    // An instance spends the requests that wait on one counter update together: the total spent,
    // who passes and what each is told must still be what one update per request would give.
    const auth = await token(newTenant());
    const results = await Promise.all(Array.from({ length: 25 }, (_, i) => (i % 2 ? second : api).call('POST', `/api/v1/campaigns/c${i}/execute`, { auth })));
    const admitted = results.filter((r) => r.status === 404);
    expect(admitted).toHaveLength(10);
    expect(results.filter((r) => r.status === 429)).toHaveLength(15);
    expect(admitted.map((r) => Number(r.headers.get('x-ratelimit-remaining'))).sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect((await second.call('POST', '/api/v1/campaigns/c99/execute', { auth })).status).toBe(429);
  });
});

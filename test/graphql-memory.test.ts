import { setImmediate as turn } from 'node:timers/promises';
import v8 from 'node:v8';
import vm from 'node:vm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newTenant, startTestApi, token, type TestApi } from './support/api.js';

// The API runs in this process, so its heap is this heap.
v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;
const heapAfterGc = async () => {
  for (let i = 0; i < 3; i++) {
    gc();
    await turn(); // FinalizationRegistry callbacks run between collections
  }
  return process.memoryUsage().heapUsed;
};

let api: TestApi;
beforeAll(async () => {
  api = await startTestApi({ RATE_LIMIT_READ: '1000000' });
});
afterAll(() => api?.close());

describe('GraphQL memory', () => {
  it('keeps nothing of a request once it is answered', async () => {
    const tenant = newTenant();
    const auth = await token(tenant);
    for (let i = 0; i < 5; i++) {
      expect((await api.call('POST', '/api/v1/customers', { auth, body: { email: `mem${i}@example.com` } })).status).toBe(201);
    }
    const query = `{ customers(tenantId: "${tenant}", pagination: {first: 5}) { totalCount edges { node { id email } } } }`;
    const requests = async (n: number) => {
      for (let done = 0; done < n; done += 20) {
        const answers = await Promise.all(Array.from({ length: 20 }, () => api.graphql(auth, query)));
        for (const res of answers) expect(res.body.data.customers.totalCount).toBe(5);
      }
    };
    await requests(200); // caches, pools and code warmed
    const before = await heapAfterGc();
    await requests(2000);
    const grown = (await heapAfterGc()) - before;
    // Each request kept whole (its context, entity manager, loaders, HTTP objects) was about 20 KB:
    // 40 MB here. Without that, what grows is noise.
    expect(grown).toBeLessThan(12 * 1024 * 1024);
  });
});

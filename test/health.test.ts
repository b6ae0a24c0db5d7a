import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApi, type TestApi } from './support/api.js';
import { freePort } from '../scripts/ports.js';

let api: TestApi;
beforeAll(async () => {
  api = await startTestApi();
});
afterAll(() => api.close());

describe('health', () => {
  it('is live and ready when PostgreSQL and Temporal answer', async () => {
    expect((await api.call('GET', '/healthz')).status).toBe(200);
    const ready = await api.call('GET', '/readyz');
    expect(ready.status).toBe(200);
    expect(ready.body.checks).toEqual({ postgres: { ok: true }, temporal: { ok: true } });
  });

  it('is live but not ready when Temporal cannot be reached', async () => {
    const orphan = await startTestApi({ TEMPORAL_ADDRESS: `127.0.0.1:${await freePort()}` });
    try {
      expect((await orphan.call('GET', '/healthz')).status).toBe(200);
      const ready = await orphan.call('GET', '/readyz');
      expect(ready.status).toBe(503);
      expect(ready.body.checks.postgres.ok).toBe(true);
      expect(ready.body.checks.temporal).toMatchObject({ ok: false, error: expect.any(String) });
    } finally {
      await orphan.close();
    }
  });

  it('serves the OpenAPI document, its rendered docs and the GraphQL explorer without a CDN', async () => {
    const doc = await api.call('GET', '/api/v1/openapi.json');
    expect(doc.status).toBe(200);
    expect(doc.body.openapi).toBe('3.1.0');
    expect(doc.body.paths['/campaigns/{id}/execute'].post.operationId).toBe('executeCampaign');

    for (const page of ['/docs', '/graphql']) {
      const html = await api.call('GET', page);
      expect(html.status).toBe(200);
      const assets = [...String(html.body).matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!);
      expect(assets.length).toBeGreaterThan(0);
      for (const asset of assets) {
        expect(asset.startsWith('/'), `${asset} must be served locally`).toBe(true);
        expect((await api.call('GET', asset)).status, asset).toBe(200);
      }
    }
  });
});

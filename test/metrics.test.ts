import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../scripts/ports.js';
import { ApiMetrics } from '../platform/metrics.js';
import { workerTelemetry } from '../worker/metrics.js';
import { newTenant, startTestApi, testConfig, token } from './support/api.js';
import { startMessagingServer, type MessagingServer } from '../scripts/messaging-server.js';
import { installTestRuntime, startTestStack, type TestStack } from './support/stack.js';

/** Samples of one metric from a Prometheus text page, as {labels, value}. */
function samples(page: string, name: string): { labels: Record<string, string>; value: number }[] {
  return page
    .split('\n')
    .filter((line) => line.startsWith(`${name}{`) || line.startsWith(`${name} `))
    .map((line) => {
      const match = line.match(/^[^{ ]+(?:\{(.*)\})? (\S+)$/)!;
      const labels = Object.fromEntries([...(match[1] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1]!, m[2]!]));
      return { labels, value: Number(match[2]) };
    });
}
const valueOf = (page: string, name: string, labels: Record<string, string>) =>
  samples(page, name).filter((s) => Object.entries(labels).every(([k, v]) => s.labels[k] === v)).reduce((sum, s) => sum + s.value, 0);

let stack: TestStack;
let messaging: MessagingServer;
let workerMetricsPort: number;
beforeAll(async () => {
  workerMetricsPort = await freePort();
  installTestRuntime(workerTelemetry(testConfig({ WORKER_METRICS_PORT: String(workerMetricsPort) })));
  messaging = await startMessagingServer();
  stack = await startTestStack({ RATE_LIMIT_WRITE: '2', MESSAGING_URL: messaging.url, MESSAGING_API_KEY: messaging.apiKey });
});
afterAll(async () => {
  await stack.close();
  await messaging.close();
});

describe('API metrics', () => {
  it('counts requests by route template, method and status, rate-limit rejections by class, and pool use', async () => {
    const auth = await token(newTenant());
    const missing = randomUUID();
    expect((await stack.api.call('GET', `/api/v1/customers/${missing}`, { auth })).status).toBe(404);
    expect((await stack.api.call('GET', `/no/such/${missing}`)).status).toBe(404);
    for (const i of [1, 2]) expect((await stack.api.call('POST', '/api/v1/customers', { auth, body: { email: `m${i}@example.com` } })).status).toBe(201);
    expect((await stack.api.call('POST', '/api/v1/customers', { auth, body: { email: 'm3@example.com' } })).status).toBe(429);

    const res = await fetch(`${stack.api.url}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/plain');
    const page = await res.text();

    expect(valueOf(page, 'crm_http_requests_total', { route: '/api/v1/customers/:id', method: 'GET', status: '404' })).toBe(1);
    expect(valueOf(page, 'crm_http_requests_total', { route: '/api/v1/customers', method: 'POST', status: '201' })).toBe(2);
    expect(valueOf(page, 'crm_http_requests_total', { route: 'unmatched', method: 'GET', status: '404' })).toBe(1);
    expect(valueOf(page, 'crm_http_request_duration_seconds_count', { route: '/api/v1/customers', method: 'POST', status: '429' })).toBe(1);
    expect(valueOf(page, 'crm_rate_limit_rejections_total', { class: 'write' })).toBe(1);
    expect(valueOf(page, 'crm_db_pool_connections', { pool: 'orm', state: 'total' })).toBeGreaterThan(0);
    expect(samples(page, 'crm_db_pool_connections').map((s) => `${s.labels.pool}/${s.labels.state}`).sort()).toEqual(
      ['orm/idle', 'orm/total', 'orm/waiting', 'rate_limit/idle', 'rate_limit/total', 'rate_limit/waiting'],
    );
    expect(samples(page, 'crm_api_process_resident_memory_bytes')[0]?.value).toBeGreaterThan(0);
    // No raw path, id or tenant ever becomes a label.
    expect(page).not.toContain(missing);
    expect(page).not.toContain('tenant_');
  });

  it('takes a bearer METRICS_TOKEN when one is set', async () => {
    const api = await startTestApi({ METRICS_TOKEN: 'scrape-secret' });
    try {
      const anonymous = await api.call('GET', '/metrics');
      expect(anonymous.status).toBe(401);
      expect(anonymous.body.error.code).toBe('UNAUTHENTICATED');
      expect((await api.call('GET', '/metrics', { headers: { authorization: 'Bearer wrong' } })).status).toBe(401);
      const allowed = await api.call('GET', '/metrics', { headers: { authorization: 'Bearer scrape-secret' } });
      expect(allowed.status).toBe(200);
      expect(String(allowed.body)).toContain('crm_http_requests_total');
    } finally {
      await api.close();
    }
  });

  it('serves metrics only on METRICS_PORT when one is set', async () => {
    const port = await freePort();
    const api = await startTestApi({ METRICS_PORT: String(port) });
    try {
      expect(api.metricsUrl).toBe(`http://127.0.0.1:${port}/metrics`);
      expect((await api.call('GET', '/metrics')).status).toBe(404);
      const res = await fetch(api.metricsUrl);
      expect(res.status).toBe(200);
      expect(await res.text()).toContain('crm_db_pool_connections');
    } finally {
      await api.close();
    }
  });

  it('serves the process metrics from every API in one process, collected once', async () => {
    const [a, b] = [new ApiMetrics(), new ApiMetrics()];
    const [pageA, pageB] = [await a.registry.metrics(), await b.registry.metrics()];
    for (const page of [pageA, pageB]) expect(samples(page, 'crm_api_nodejs_eventloop_lag_p99_seconds')).toHaveLength(1);
    // Both share one event-loop monitor instead of each starting one that nothing can stop.
    expect(a.registry.getSingleMetric('crm_api_nodejs_eventloop_lag_p99_seconds')).toBe(b.registry.getSingleMetric('crm_api_nodejs_eventloop_lag_p99_seconds'));
  });
});

describe('worker metrics', () => {
  it("exports the Temporal runtime's metrics and activity outcomes by type", async () => {
    const auth = await token(newTenant());
    expect((await stack.api.call('POST', '/api/v1/customers', { auth, body: { email: 'w@example.com', handicap: 5 } })).status).toBe(201);
    const created = await stack.api.call('POST', '/api/v1/segments', {
      auth, body: { name: 'Low handicaps', type: 'DYNAMIC', criteria: { field: 'handicap', op: 'lt', value: 10 } },
    });
    expect(created.status).toBe(201);

    const page = await (await fetch(`http://127.0.0.1:${workerMetricsPort}/metrics`)).text();
    const outcomes = samples(page, 'crm_activity_outcomes_total');
    const refreshes = outcomes.filter((s) => s.labels.activity_type === 'refreshSegmentMembership' && s.labels.outcome === 'completed' && s.labels.task_queue === stack.taskQueue);
    expect(refreshes.map((s) => s.value), page).toEqual([1]);
    expect(samples(page, 'temporal_activity_execution_latency_count').length).toBeGreaterThan(0);
    expect(samples(page, 'temporal_worker_task_slots_available').length).toBeGreaterThan(0);
  });

  it('counts failed activities', async () => {
    const auth = await token(newTenant());
    // The import's bulk class leaves this file's tight write limit to the segment and the sync.
    const imported = await stack.api.call('POST', '/api/v1/customers/import', {
      auth, body: JSON.stringify({ email: 'sync@example.com', membershipTier: 'GOLD' }), headers: { 'content-type': 'application/x-ndjson' },
    });
    expect(imported.body.data.created).toBe(1);
    const segment = await stack.api.call('POST', '/api/v1/segments', {
      auth, body: { name: 'Gold', type: 'STATIC', criteria: { field: 'membershipTier', op: 'eq', value: 'GOLD' } },
    });
    expect(segment.body.data.memberCount).toBe(1);
    messaging.failNext({ kind: 'error', status: 400, message: 'bad member' }); // a 4xx is not retried
    expect((await stack.api.call('POST', `/api/v1/segments/${segment.body.data.id}/sync`, { auth })).status).toBeGreaterThanOrEqual(400);

    const page = await (await fetch(`http://127.0.0.1:${workerMetricsPort}/metrics`)).text();
    const mine = samples(page, 'crm_activity_outcomes_total').filter((s) => s.labels.task_queue === stack.taskQueue && s.labels.activity_type !== 'refreshSegmentMembership');
    expect(mine.map((s) => [s.labels.activity_type, s.labels.outcome, s.value]).sort()).toEqual([
      ['ensureMessagingSegment', 'completed', 1],
      ['syncSegmentMembers', 'failed', 1],
    ]);
  });
});

import { randomUUID, timingSafeEqual } from 'node:crypto';
import { Hono } from 'hono';
import { requestId } from 'hono/request-id';
import type { ApiMetrics } from '../platform/metrics.js';
import { AppError } from '../platform/errors.js';
import type { AppEnv } from './env.js';
import { onError } from './middleware/errors.js';

function sameToken(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * `GET /metrics` in the Prometheus text format. The page names no tenant or customer, so it is
 * open unless METRICS_TOKEN is set, then it takes `Authorization: Bearer <METRICS_TOKEN>`.
 */
export function metricsRoutes(metrics: ApiMetrics, token?: string) {
  const app = new Hono<AppEnv>();
  app.get('/metrics', async (c) => {
    if (token && !sameToken(c.req.header('authorization')?.match(/^Bearer\s+(\S+)$/i)?.[1] ?? '', token)) {
      throw new AppError('UNAUTHENTICATED', 'metrics need Authorization: Bearer <METRICS_TOKEN>');
    }
    return c.body(await metrics.registry.metrics(), 200, { 'content-type': metrics.registry.contentType });
  });
  return app;
}

/** The same page alone, for METRICS_PORT: a port that only the scraper's network reaches. */
export function metricsApp(metrics: ApiMetrics, token?: string) {
  const app = new Hono<AppEnv>();
  app.use(requestId({ generator: () => `req_${randomUUID()}` }));
  app.onError(onError);
  app.notFound((c) => onError(new AppError('RESOURCE_NOT_FOUND', `no route for ${c.req.method} ${c.req.path}`), c));
  app.route('/', metricsRoutes(metrics, token));
  return app;
}

import { createMiddleware } from 'hono/factory';
import { routePath } from 'hono/route';
import type { ApiMetrics } from '../../platform/metrics.js';
import type { AppEnv } from '../env.js';

const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

// Requests are labelled by the route template that answered (`/api/v1/customers/:id`), never the
// raw path: ids and probes for unknown paths would make one time series each.
export const requestMetrics = (metrics: ApiMetrics) =>
  createMiddleware<AppEnv>(async (c, next) => {
    const started = performance.now();
    try {
      await next();
    } finally {
      const route = routePath(c);
      metrics.observeRequest(
        {
          route: !route || route.endsWith('*') ? 'unmatched' : route,
          method: METHODS.has(c.req.method) ? c.req.method : 'OTHER',
          status: c.res.status,
        },
        (performance.now() - started) / 1000,
      );
    }
  });

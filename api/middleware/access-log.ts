import { createMiddleware } from 'hono/factory';
import type { Logger } from '../../platform/logger.js';
import type { AppEnv } from '../env.js';

// One JSON line per request, carrying the request id that the response's X-Request-Id shows.
export const accessLog = (log: Logger) =>
  createMiddleware<AppEnv>(async (c, next) => {
    const started = performance.now();
    const requestLog = log.child({ requestId: c.get('requestId') });
    c.set('log', requestLog);
    await next();
    requestLog.info({
      method: c.req.method,
      path: c.req.path,
      status: c.res.status,
      ms: Math.round(performance.now() - started),
      tenantId: c.get('principal')?.tenantId,
    }, 'request');
  });

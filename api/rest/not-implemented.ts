import { createRoute, z } from '@hono/zod-openapi';
import type { OperationName } from '../../domain/operations.js';
import { notImplemented } from '../../platform/errors.js';
import type { AppDeps } from '../env.js';
import { guard } from '../middleware/guard.js';
import { ErrorEnvelope, errorResponses, router } from './openapi.js';

type Method = 'get' | 'post' | 'patch' | 'delete';

// The REST surface of capabilities that have not landed yet. Each route is real in every other
// respect (auth, scope, rate limit, OpenAPI entry) and answers 501 NOT_IMPLEMENTED; a capability
// lands by moving its rows into a router of its own.
const PENDING: [Method, string, OperationName, string][] = [];

export function pendingRoutes(deps: AppDeps) {
  const app = router();
  for (const [method, path, operation, tag] of PENDING) {
    const params = [...path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]!);
    const route = createRoute({
      method,
      path,
      operationId: operation,
      tags: [tag],
      summary: `${operation} (not implemented yet)`,
      middleware: [guard(deps, operation)] as const,
      request: params.length ? { params: z.object(Object.fromEntries(params.map((p) => [p, z.string()]))) } : {},
      responses: {
        501: { description: 'NOT_IMPLEMENTED', content: { 'application/json': { schema: ErrorEnvelope } } },
        ...errorResponses,
      },
    });
    app.openapi(route, () => {
      throw notImplemented(operation);
    });
  }
  return app;
}

import { OpenAPIHono } from '@hono/zod-openapi';
import { requestId } from 'hono/request-id';
import { randomUUID } from 'node:crypto';
import { AppError } from '../platform/errors.js';
import { docsRoutes } from './docs.js';
import type { AppDeps, AppEnv } from './env.js';
import { graphqlRoutes } from './graphql/route.js';
import { healthRoutes } from './health.js';
import { metricsRoutes } from './metrics.js';
import { accessLog } from './middleware/access-log.js';
import { bodyLimit } from './middleware/body-limit.js';
import { onError } from './middleware/errors.js';
import { requestMetrics } from './middleware/metrics.js';
import { campaignRoutes } from './rest/campaigns.js';
import { journeyEnrollmentRoutes } from './rest/journey-enrollments.js';
import { customerRoutes } from './rest/customers.js';
import { journeyRoutes } from './rest/journeys.js';
import { analyticsRoutes } from './rest/analytics.js';
import { promotionRoutes } from './rest/promotions.js';
import { segmentRoutes } from './rest/segments.js';
import { socialConnectionRoutes } from './rest/social-connections.js';
import { socialPostRoutes } from './rest/social-posts.js';
import { templateRoutes } from './rest/templates.js';
import { webhookRoutes } from './rest/webhooks.js';
import { trackingRoutes } from './tracking.js';

export const OPENAPI_INFO = {
  openapi: '3.1.0',
  info: {
    title: 'CRM & Marketing Platform API',
    version: '2.0',
    description: 'Scopes: crm:read (reads), crm:write (profiles, notes, events), crm:admin (merges, segments), crm:campaigns, crm:social.',
  },
  servers: [{ url: '/api/v1' }],
  security: [{ bearer: [] }],
};

/** The REST API under /api/v1; its routes are the OpenAPI document (`npm run openapi` prints it). */
export function restApi(deps: AppDeps) {
  const v1 = new OpenAPIHono<AppEnv>();
  v1.route('/', customerRoutes(deps));
  v1.route('/', segmentRoutes(deps));
  v1.route('/', campaignRoutes(deps));
  v1.route('/', journeyRoutes(deps));
  v1.route('/', journeyEnrollmentRoutes(deps));
  v1.route('/', socialPostRoutes(deps));
  v1.route('/', templateRoutes(deps));
  v1.route('/', socialConnectionRoutes(deps));
  v1.route('/', webhookRoutes(deps));
  v1.route('/', analyticsRoutes(deps));
  v1.route('/', promotionRoutes(deps));
  v1.openAPIRegistry.registerComponent('securitySchemes', 'bearer', { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' });
  return v1;
}

export function createApp(deps: AppDeps) {
  const app = new OpenAPIHono<AppEnv>();
  app.use(requestId({ generator: () => `req_${randomUUID()}` }));
  app.use(accessLog(deps.log));
  app.use(requestMetrics(deps.metrics));
  app.onError(onError);
  app.notFound((c) => onError(new AppError('RESOURCE_NOT_FOUND', `no route for ${c.req.method} ${c.req.path}`), c));
  // Before any route reads a body; the import streams its own, larger one.
  app.use(bodyLimit(deps.config.MAX_BODY_BYTES, { '/api/v1/customers/import': deps.config.MAX_IMPORT_BYTES }));

  app.route('/', healthRoutes(deps));
  if (deps.config.METRICS_PORT === undefined) app.route('/', metricsRoutes(deps.metrics, deps.config.METRICS_TOKEN));
  app.route('/', graphqlRoutes(deps));
  app.route('/', docsRoutes());
  app.route('/', trackingRoutes(deps));

  const v1 = restApi(deps);
  v1.doc31('/openapi.json', OPENAPI_INFO);
  app.route('/api/v1', v1);
  return app;
}

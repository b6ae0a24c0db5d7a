import { createRoute, z } from '@hono/zod-openapi';
import { EnrollmentStatus, JourneyStepType, StepStatus } from '../../db/entities/enums.js';
import {
  enrollCustomerInJourney, enrollmentViews, exitCustomerFromJourney, listJourneyEnrollmentsPage,
} from '../../domain/journeys/enrollment.js';
import { AppError } from '../../platform/errors.js';
import type { AppDeps } from '../env.js';
import { guard } from '../middleware/guard.js';
import { conflict, errorResponses, IdParam, json, jsonBody, PageQuery, pageMeta, router } from './openapi.js';
import { one, page, serialize } from './schemas.js';

// Journey enrolments over REST: upstream systems enrol a customer by id or identifiers (idempotent
// on their idempotencyKey), list a journey's enrolments with their per-step records, and exit one.
// Reads come from PostgreSQL only.

const timestamp = z.iso.datetime({ offset: true });
const uuid = z.string().openapi({ format: 'uuid' });

export const JourneyEnrollmentStep = z
  .object({
    stepId: uuid,
    stepNumber: z.number().int().nullable(),
    stepName: z.string().nullable(),
    stepType: z.enum(JourneyStepType).nullable(),
    status: z.enum(StepStatus),
    outcome: z.string().nullable().openapi({ description: 'CONDITION / SPLIT: YES or NO; SEND: the delivery status' }),
    visits: z.number().int(),
    startedAt: timestamp.nullable(),
    completedAt: timestamp.nullable(),
    error: z.string().nullable(),
  })
  .openapi('JourneyEnrollmentStep');

export const JourneyEnrollment = z
  .object({
    id: uuid,
    journeyId: uuid,
    customerId: uuid,
    status: z.enum(EnrollmentStatus),
    version: z.number().int().openapi({ description: 'The published journey version it runs on' }),
    sequence: z.number().int().openapi({ description: "The customer's n-th enrolment in this journey (re-entry)" }),
    currentStepId: uuid.nullable(),
    currentStepNumber: z.number().int().nullable(),
    waitingUntil: timestamp.nullable(),
    enrolledAt: timestamp,
    completedAt: timestamp.nullable(),
    exitedAt: timestamp.nullable(),
    exitReason: z.string().nullable().openapi({ example: 'api' }),
    workflowId: z.string().nullable().openapi({ example: 'journey-<journeyId>-<customerId>' }),
    steps: z.array(JourneyEnrollmentStep).openapi({ description: 'Per-step records, in the order the steps were first reached' }),
  })
  .openapi('JourneyEnrollment');

const EnrollBody = z
  .object({
    customer: z
      .object({
        id: z.string().optional(),
        email: z.string().optional(),
        phone: z.string().optional(),
        authUserId: z.string().optional(),
      })
      .openapi({ description: 'The customer: its id, or identifiers resolved as /customers/resolve does (never created here)' }),
    idempotencyKey: z.string().min(1).max(200).optional().openapi({
      description: 'Enrolling again with the same key answers the same enrolment (200). Without one the call is not idempotent.',
    }),
  })
  .openapi('EnrollCustomerInJourney');

const EnrollmentParams = z.object({
  id: z.string().openapi({ param: { name: 'id', in: 'path' } }),
  customerId: z.string().openapi({ param: { name: 'customerId', in: 'path' } }),
});

export function journeyEnrollmentRoutes(deps: AppDeps) {
  const app = router();
  const tags = ['Journeys'];

  app.openapi(
    createRoute({
      method: 'get', path: '/journeys/{id}/enrollments', operationId: 'journeyEnrollments', tags, middleware: [guard(deps, 'journeyEnrollments')] as const,
      description: 'Newest first, with each enrolment\'s per-step records.',
      request: { params: IdParam, query: PageQuery.extend({ status: z.enum(EnrollmentStatus).optional() }) },
      responses: { 200: json(page(JourneyEnrollment)), ...errorResponses },
    }),
    async (c) => {
      const ctx = c.get('ctx');
      const { status, skip, take } = c.req.valid('query');
      const { rows, total } = await listJourneyEnrollmentsPage(ctx, c.req.valid('param').id, status, skip, take);
      return c.json(serialize(page(JourneyEnrollment), { data: await enrollmentViews(ctx, rows), meta: pageMeta(total, skip, take) }), 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'post', path: '/journeys/{id}/enrollments', operationId: 'enrollCustomerInJourney', tags, middleware: [guard(deps, 'enrollCustomerInJourney')] as const,
      description: [
        'Enrols a customer in an ACTIVE journey, whatever its trigger type (201). The same idempotencyKey again, or a customer',
        'already running in the journey, answers that enrolment (200): never two at once. A journey that does not allow',
        're-entry refuses a customer enrolled before (409 CONFLICT, error.existingId names the enrolment); a journey that',
        'is not ACTIVE is 409 INVALID_STATE. The workflow starts right after commit.',
      ].join(' '),
      request: { params: IdParam, ...jsonBody(EnrollBody) },
      responses: { 200: json(one(JourneyEnrollment), 'The existing enrolment'), 201: json(one(JourneyEnrollment), 'Enrolled'), ...conflict, ...errorResponses },
    }),
    async (c) => {
      const ctx = c.get('ctx');
      const body = c.req.valid('json') as z.output<typeof EnrollBody> | undefined;
      if (!body) throw new AppError('VALIDATION_ERROR', 'body: expected a JSON object with customer', { field: 'body' });
      const { enrollment, created } = await enrollCustomerInJourney(ctx, c.req.valid('param').id, body.customer, body.idempotencyKey);
      const [view] = await enrollmentViews(ctx, [enrollment]);
      const data = serialize(one(JourneyEnrollment), { data: view });
      return created ? c.json(data, 201) : c.json(data, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'delete', path: '/journeys/{id}/enrollments/{customerId}', operationId: 'exitCustomerFromJourney', tags,
      middleware: [guard(deps, 'exitCustomerFromJourney')] as const,
      description: 'Exits the customer\'s running enrolment (EXITED, reason `api`): 204. 404 when the customer has none running.',
      request: { params: EnrollmentParams },
      responses: { 204: { description: 'Exited' }, ...errorResponses },
    }),
    async (c) => {
      const { id, customerId } = c.req.valid('param');
      const exited = await exitCustomerFromJourney(c.get('ctx'), id, customerId);
      if (!exited) throw new AppError('RESOURCE_NOT_FOUND', `customer ${customerId} has no running enrolment in journey ${id}`);
      return c.body(null, 204);
    },
  );
  return app;
}

import { createRoute, z } from '@hono/zod-openapi';
import { JourneyStatus, JourneyStepType } from '../../db/entities/enums.js';
import type { Journey as JourneyEntity } from '../../db/entities/index.js';
import type { ServiceContext } from '../../domain/context.js';
import {
  activateJourney, addJourneyStep, addJourneyStepInput, archiveJourney, createJourney, createJourneyInput, deleteJourneyStep, getJourney,
  journeyView, listJourneySteps, listJourneysPage, pauseJourney, updateJourney, updateJourneyInput, updateJourneyStep, updateJourneyStepInput,
} from '../../domain/journeys/journeys.js';
import { journeyStats } from '../../domain/journeys/stats.js';
import type { OperationName } from '../../domain/operations.js';
import type { AppDeps } from '../env.js';
import { guard } from '../middleware/guard.js';
import { conflict, documented, errorResponses, IdParam, json, jsonBody, PageQuery, pageMeta, router } from './openapi.js';
import { Deleted, list, one, page, serialize } from './schemas.js';

// The journey builder under /api/v1/journeys (graphql-api.md's journey operations): journeys, their
// steps (the working copy) and their lifecycle. Enrolments live in a router of their own.

const timestamp = z.iso.datetime({ offset: true });
const uuid = z.string().openapi({ format: 'uuid' });

export const Journey = z
  .object({
    id: uuid,
    tenantId: z.string(),
    name: z.string(),
    description: z.string().nullable(),
    status: z.enum(JourneyStatus),
    triggerType: z.string().openapi({ description: 'EVENT, SEGMENT_ENTRY or MANUAL' }),
    triggerConfig: z.record(z.string(), z.unknown()).nullable().openapi({ description: 'EVENT: {event, conditions?, exitOn?}; SEGMENT_ENTRY: {segmentId, exitOn?}; MANUAL: {exitOn?}' }),
    allowReentry: z.boolean(),
    timezone: z.string().nullable(),
    totalEnrolled: z.number().int(),
    totalCompleted: z.number().int(),
    totalExited: z.number().int(),
    currentVersion: z.number().int().openapi({ description: 'The published version new enrolments start on; 0 until first activated' }),
    campaignId: uuid.nullable().openapi({ description: 'The JOURNEY campaign whose deliveries carry the SEND steps (created at first activation)' }),
    activatedAt: timestamp.nullable(),
    createdAt: timestamp,
    updatedAt: timestamp,
  })
  .openapi('Journey');

export const JourneyStep = z
  .object({
    id: uuid,
    journeyId: uuid,
    stepNumber: z.number().int(),
    type: z.enum(JourneyStepType),
    name: z.string().nullable(),
    config: z.record(z.string(), z.unknown()),
    nextStepId: uuid.nullable(),
    nextStepYesId: uuid.nullable(),
    nextStepNoId: uuid.nullable(),
    createdAt: timestamp,
    updatedAt: timestamp,
  })
  .openapi('JourneyStep');

const count = z.number().int();
export const JourneyStats = z
  .object({
    journeyId: uuid,
    version: count.openapi({ description: 'The version whose steps are listed (0: the working copy, never activated)' }),
    totalEnrolled: count,
    totalCompleted: count,
    totalExited: count,
    steps: z.array(z.object({
      stepId: uuid,
      stepNumber: count,
      type: z.enum(JourneyStepType),
      name: z.string().nullable(),
      entered: count.openapi({ description: 'Enrolments that reached the step' }),
      active: count.openapi({ description: 'Enrolments at the step now' }),
      completed: count,
      skipped: count,
      failed: count,
      messages: z
        .object({ sent: count, delivered: count, opened: count, clicked: count, bounced: count, failed: count, skipped: count })
        .nullable()
        .openapi({ description: 'SEND steps: the step\'s messages (the JOURNEY campaign\'s deliveries naming it); null for other types' }),
    })),
  })
  .openapi('JourneyStats');

const CreateJourney = documented(createJourneyInput, 'CreateJourney');
const UpdateJourney = documented(updateJourneyInput, 'UpdateJourney');
const CreateJourneyStep = documented(addJourneyStepInput, 'CreateJourneyStep');
const UpdateJourneyStep = documented(updateJourneyStepInput, 'UpdateJourneyStep');
const StepParams = z.object({
  id: z.string().openapi({ param: { name: 'id', in: 'path' } }),
  stepId: z.string().openapi({ param: { name: 'stepId', in: 'path' } }),
});

const ACTIVE_EDIT = 'Editing an ACTIVE journey publishes the result as its next version in the same transaction, or is refused with VALIDATION_ERROR listing every fault (`error.faults`) and nothing written. ARCHIVED journeys refuse edits (409 INVALID_STATE).';

export function journeyRoutes(deps: AppDeps) {
  const app = router();
  const tags = ['Journeys'];
  const invalidState = { 409: conflict[409] };
  const body = (j: JourneyEntity) => serialize(one(Journey), { data: journeyView(j) });

  app.openapi(
    createRoute({
      method: 'get', path: '/journeys', operationId: 'journeys', tags, middleware: [guard(deps, 'journeys')] as const,
      request: { query: PageQuery.extend({ status: z.enum(JourneyStatus).optional() }) },
      responses: { 200: json(page(Journey)), ...errorResponses },
    }),
    async (c) => {
      const { status, skip, take } = c.req.valid('query');
      const { rows, total } = await listJourneysPage(c.get('ctx'), { status }, skip, take);
      return c.json(serialize(page(Journey), { data: rows.map(journeyView), meta: pageMeta(total, skip, take) }), 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'post', path: '/journeys', operationId: 'createJourney', tags, middleware: [guard(deps, 'createJourney')] as const,
      description: 'Creates a DRAFT journey. `triggerType` EVENT needs `triggerConfig.event`; SEGMENT_ENTRY needs `triggerConfig.segmentId`; `triggerConfig.exitOn` (an event type) ends enrolments early.',
      request: jsonBody(CreateJourney), responses: { 201: json(one(Journey), 'Created'), ...errorResponses },
    }),
    async (c) => c.json(body(await createJourney(c.get('ctx'), c.req.valid('json'))), 201),
  );

  app.openapi(
    createRoute({
      method: 'get', path: '/journeys/{id}', operationId: 'journey', tags, middleware: [guard(deps, 'journey')] as const,
      request: { params: IdParam }, responses: { 200: json(one(Journey)), ...errorResponses },
    }),
    async (c) => c.json(body(await getJourney(c.get('ctx'), c.req.valid('param').id)), 200),
  );

  app.openapi(
    createRoute({
      method: 'patch', path: '/journeys/{id}', operationId: 'updateJourney', tags, middleware: [guard(deps, 'updateJourney')] as const,
      description: ACTIVE_EDIT,
      request: { params: IdParam, ...jsonBody(UpdateJourney) }, responses: { 200: json(one(Journey)), ...invalidState, ...errorResponses },
    }),
    async (c) => c.json(body(await updateJourney(c.get('ctx'), c.req.valid('param').id, c.req.valid('json'))), 200),
  );

  app.openapi(
    createRoute({
      method: 'get', path: '/journeys/{id}/steps', operationId: 'journeySteps', tags, middleware: [guard(deps, 'journeySteps')] as const,
      description: 'The working copy, in stepNumber order.',
      request: { params: IdParam }, responses: { 200: json(list(JourneyStep)), ...errorResponses },
    }),
    async (c) => c.json(serialize(list(JourneyStep), { data: await listJourneySteps(c.get('ctx'), c.req.valid('param').id) }), 200),
  );

  app.openapi(
    createRoute({
      method: 'post', path: '/journeys/{id}/steps', operationId: 'addJourneyStep', tags, middleware: [guard(deps, 'addJourneyStep')] as const,
      description: `Adds a step (numbered after the last). With \`afterStepId\` it goes in after that step: it takes over that step's nextStepId and that step now leads to it (not after a CONDITION or SPLIT: which branch? Link those with updateJourneyStep). Without, it is added unlinked. ${ACTIVE_EDIT}`,
      request: { params: IdParam, ...jsonBody(CreateJourneyStep) }, responses: { 201: json(one(JourneyStep), 'Created'), ...invalidState, ...errorResponses },
    }),
    async (c) => c.json(serialize(one(JourneyStep), { data: await addJourneyStep(c.get('ctx'), c.req.valid('param').id, c.req.valid('json')) }), 201),
  );

  app.openapi(
    createRoute({
      method: 'patch', path: '/journeys/{id}/steps/{stepId}', operationId: 'updateJourneyStep', tags, middleware: [guard(deps, 'updateJourneyStep')] as const,
      description: `Sets the fields and links given; an explicit null clears a link. Links name steps of this journey. A new type re-validates the config. ${ACTIVE_EDIT}`,
      request: { params: StepParams, ...jsonBody(UpdateJourneyStep) }, responses: { 200: json(one(JourneyStep)), ...invalidState, ...errorResponses },
    }),
    async (c) => {
      const { id, stepId } = c.req.valid('param');
      return c.json(serialize(one(JourneyStep), { data: await updateJourneyStep(c.get('ctx'), id, stepId, c.req.valid('json')) }), 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'delete', path: '/journeys/{id}/steps/{stepId}', operationId: 'deleteJourneyStep', tags, middleware: [guard(deps, 'deleteJourneyStep')] as const,
      description: `Deletes a step; every step that led to it (by any link) now leads to its nextStepId (or nowhere). ${ACTIVE_EDIT}`,
      request: { params: StepParams }, responses: { 200: json(one(Deleted)), ...invalidState, ...errorResponses },
    }),
    async (c) => {
      const { id, stepId } = c.req.valid('param');
      return c.json(serialize(one(Deleted), { data: { deleted: await deleteJourneyStep(c.get('ctx'), id, stepId) } }), 200);
    },
  );

  const action = (path: string, operationId: OperationName, description: string, run: (ctx: ServiceContext, id: string) => Promise<JourneyEntity>) =>
    app.openapi(
      createRoute({
        method: 'post', path: `/journeys/{id}/${path}`, operationId, tags, description, middleware: [guard(deps, operationId)] as const,
        request: { params: IdParam },
        responses: { 200: json(one(Journey)), ...invalidState, ...errorResponses },
      }),
      async (c) => c.json(body(await run(c.get('ctx'), c.req.valid('param').id)), 200),
    );

  action('activate', 'activateJourney', 'DRAFT or PAUSED → ACTIVE. Validates the whole graph (one TRIGGER, every step reachable, both branches of CONDITION and SPLIT, no loop without a WAIT, templates and segments exist and fit) and answers VALIDATION_ERROR listing every fault in `error.faults`; then publishes the next version. The first activation creates the JOURNEY campaign. From PAUSED, held enrolments resume.', activateJourney);
  action('pause', 'pauseJourney', 'ACTIVE → PAUSED: no new enrolments; running ones hold before their next step until reactivated.', pauseJourney);
  action('archive', 'archiveJourney', 'DRAFT, ACTIVE or PAUSED → ARCHIVED: no new enrolments; running ones end EXITED (exitReason `archived`).', archiveJourney);

  app.openapi(
    createRoute({
      method: 'get', path: '/journeys/{id}/stats', operationId: 'journeyStats', tags, middleware: [guard(deps, 'journeyStats')] as const,
      description: 'Beyond the spec: per step of the current version, how many enrolments reached it, are at it, completed, skipped or failed it, and for SEND steps the messages sent, delivered, opened, clicked, bounced, failed and skipped.',
      request: { params: IdParam }, responses: { 200: json(one(JourneyStats)), ...errorResponses },
    }),
    async (c) => c.json(serialize(one(JourneyStats), { data: await journeyStats(c.get('ctx'), c.req.valid('param').id) }), 200),
  );
  return app;
}

import { createRoute, z } from '@hono/zod-openapi';
import { SegmentType } from '../../db/entities/enums.js';
import { customerView } from '../../domain/customers/customers.js';
import {
  createSegment, createSegmentInput, deleteSegment, getSegment, listSegmentsPage, refreshSegment, segmentMembers, segmentView, syncSegmentToMessaging, updateSegment, updateSegmentInput,
} from '../../domain/segments/segments.js';
import type { AppDeps } from '../env.js';
import { guard } from '../middleware/guard.js';
import { conflict, CursorQuery, cursorMeta, errorResponses, IdParam, json, jsonBody, PageQuery, pageMeta, router } from './openapi.js';
import { Customer, cursorPage, Deleted, one, page, RefreshResult, Segment, serialize, SyncResult } from './schemas.js';

const criteria = z.unknown().optional().openapi({ description: 'The criteria tree (README, "Criteria")' });
const CreateSegment = createSegmentInput.extend({ criteria }).openapi('CreateSegment');
const UpdateSegment = updateSegmentInput.safeExtend({ criteria }).openapi('UpdateSegment');

export function segmentRoutes(deps: AppDeps) {
  const app = router();
  const tags = ['Segments'];

  app.openapi(
    createRoute({
      method: 'get', path: '/segments', operationId: 'segments', tags, middleware: [guard(deps, 'segments')] as const,
      request: { query: PageQuery.extend({ type: z.enum(SegmentType).optional() }) },
      responses: { 200: json(page(Segment)), ...errorResponses },
    }),
    async (c) => {
      const { type, skip, take } = c.req.valid('query');
      const { rows, total } = await listSegmentsPage(c.get('ctx'), type, skip, take);
      return c.json(serialize(page(Segment), { data: rows.map(segmentView), meta: pageMeta(total, skip, take) }), 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'post', path: '/segments', operationId: 'createSegment', tags, middleware: [guard(deps, 'createSegment')] as const,
      description: 'Creates the segment and populates it (criteria in the README). DYNAMIC segments get a refresh schedule (refreshIntervalMinutes, default 15).',
      request: jsonBody(CreateSegment), responses: { 201: json(one(Segment), 'Created'), ...conflict, ...errorResponses },
    }),
    async (c) => c.json(serialize(one(Segment), { data: segmentView(await createSegment(c.get('ctx'), c.req.valid('json'))) }), 201),
  );

  app.openapi(
    createRoute({
      method: 'get', path: '/segments/{id}', operationId: 'segment', tags, middleware: [guard(deps, 'segment')] as const,
      request: { params: IdParam }, responses: { 200: json(one(Segment)), ...errorResponses },
    }),
    async (c) => c.json(serialize(one(Segment), { data: segmentView(await getSegment(c.get('ctx'), c.req.valid('param').id)) }), 200),
  );

  app.openapi(
    createRoute({
      method: 'patch', path: '/segments/{id}', operationId: 'updateSegment', tags, middleware: [guard(deps, 'updateSegment')] as const,
      request: { params: IdParam, ...jsonBody(UpdateSegment) }, responses: { 200: json(one(Segment)), ...conflict, ...errorResponses },
    }),
    async (c) => c.json(serialize(one(Segment), { data: segmentView(await updateSegment(c.get('ctx'), c.req.valid('param').id, c.req.valid('json'))) }), 200),
  );

  app.openapi(
    createRoute({
      method: 'delete', path: '/segments/{id}', operationId: 'deleteSegment', tags, middleware: [guard(deps, 'deleteSegment')] as const,
      request: { params: IdParam }, responses: { 200: json(one(Deleted)), ...conflict, ...errorResponses },
    }),
    async (c) => c.json(serialize(one(Deleted), { data: { deleted: await deleteSegment(c.get('ctx'), c.req.valid('param').id) } }), 200),
  );

  app.openapi(
    createRoute({
      method: 'post', path: '/segments/{id}/refresh', operationId: 'refreshSegment', tags, middleware: [guard(deps, 'refreshSegment')] as const,
      description: 'Runs (or joins) the workflow segment-refresh-<id> and answers its RefreshResult.',
      request: { params: IdParam }, responses: { 200: json(one(RefreshResult)), ...conflict, ...errorResponses },
    }),
    async (c) => c.json(serialize(one(RefreshResult), { data: await refreshSegment(c.get('ctx'), c.req.valid('param').id) }), 200),
  );

  app.openapi(
    createRoute({
      method: 'post', path: '/segments/{id}/sync', operationId: 'syncSegmentToMessaging', tags, middleware: [guard(deps, 'syncSegmentToMessaging')] as const,
      description: 'Runs (or joins) the workflow segment-sync-<id>: sends the members changed since the last sync to the Messaging service.',
      request: { params: IdParam }, responses: { 200: json(one(SyncResult)), ...conflict, ...errorResponses },
    }),
    async (c) => c.json(serialize(one(SyncResult), { data: await syncSegmentToMessaging(c.get('ctx'), c.req.valid('param').id) }), 200),
  );

  app.openapi(
    createRoute({
      method: 'get', path: '/segments/{id}/members', operationId: 'segmentMembers', tags, middleware: [guard(deps, 'segmentMembers')] as const,
      description: 'Newest first. Page with `take` and the `after` cursor of the previous page (meta.nextCursor).',
      request: { params: IdParam, query: CursorQuery },
      responses: { 200: json(cursorPage(Customer)), ...errorResponses },
    }),
    async (c) => {
      const { take, after } = c.req.valid('query');
      const members = await segmentMembers(c.get('ctx'), c.req.valid('param').id, { first: take, after });
      return c.json(serialize(cursorPage(Customer), { data: members.edges.map((e) => customerView(e.node)), meta: cursorMeta(members, take) }), 200);
    },
  );
  return app;
}

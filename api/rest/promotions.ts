import { createRoute, z } from '@hono/zod-openapi';
import {
  createEventPromotion, eventPromotionViews, executeEventPromotion, getEventPromotion, listEventPromotionsPage, updateEventPromotion,
} from '../../domain/promotions/promotions.js';
import { createEventPromotionInput, updateEventPromotionInput } from '../../domain/promotions/schemas.js';
import type { AppDeps } from '../env.js';
import { guard } from '../middleware/guard.js';
import { conflict, documented, errorResponses, IdParam, json, jsonBody, PageQuery, pageMeta, router } from './openapi.js';
import { EventPromotion, ExecutePromotionResult, one, page, serialize } from './schemas.js';

const CreateEventPromotion = documented(createEventPromotionInput, 'CreateEventPromotion');
const UpdateEventPromotion = documented(updateEventPromotionInput, 'UpdateEventPromotion');

export function promotionRoutes(deps: AppDeps) {
  const app = router();
  const tags = ['Promotions'];

  app.openapi(
    createRoute({
      method: 'get', path: '/promotions', operationId: 'eventPromotions', tags, middleware: [guard(deps, 'eventPromotions')] as const,
      request: { query: PageQuery.extend({ clubId: z.string().optional() }) },
      responses: { 200: json(page(EventPromotion)), ...errorResponses },
    }),
    async (c) => {
      const { clubId, skip, take } = c.req.valid('query');
      const ctx = c.get('ctx');
      const { rows, total } = await listEventPromotionsPage(ctx, { clubId }, skip, take);
      return c.json(serialize(page(EventPromotion), { data: await eventPromotionViews(ctx, rows), meta: pageMeta(total, skip, take) }), 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'post', path: '/promotions', operationId: 'createEventPromotion', tags, middleware: [guard(deps, 'createEventPromotion')] as const,
      description: 'One promotion per source (sourceType, sourceId): a second answers CONFLICT. With `autoPromote`, `event-promotion-<id>` announces at `announceAt` and reminds `reminderDays` days before the event.',
      request: jsonBody(CreateEventPromotion), responses: { 201: json(one(EventPromotion), 'Created'), ...conflict, ...errorResponses },
    }),
    async (c) => {
      const ctx = c.get('ctx');
      const promotion = await createEventPromotion(ctx, c.req.valid('json'));
      return c.json(serialize(one(EventPromotion), { data: (await eventPromotionViews(ctx, [promotion]))[0] }), 201);
    },
  );

  app.openapi(
    createRoute({
      method: 'get', path: '/promotions/{id}', operationId: 'eventPromotion', tags, middleware: [guard(deps, 'eventPromotion')] as const,
      request: { params: IdParam }, responses: { 200: json(one(EventPromotion)), ...errorResponses },
    }),
    async (c) => {
      const ctx = c.get('ctx');
      const promotion = await getEventPromotion(ctx, c.req.valid('param').id);
      return c.json(serialize(one(EventPromotion), { data: (await eventPromotionViews(ctx, [promotion]))[0] }), 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'patch', path: '/promotions/{id}', operationId: 'updateEventPromotion', tags, middleware: [guard(deps, 'updateEventPromotion')] as const,
      description: 'Changes reach the running workflow: reminders move, `isActive: false` or `autoPromote: false` stops it, switching back on starts it again.',
      request: { params: IdParam, ...jsonBody(UpdateEventPromotion) }, responses: { 200: json(one(EventPromotion)), ...errorResponses },
    }),
    async (c) => {
      const ctx = c.get('ctx');
      const promotion = await updateEventPromotion(ctx, c.req.valid('param').id, c.req.valid('json'));
      return c.json(serialize(one(EventPromotion), { data: (await eventPromotionViews(ctx, [promotion]))[0] }), 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'post', path: '/promotions/{id}/execute', operationId: 'executeEventPromotion', tags, middleware: [guard(deps, 'executeEventPromotion')] as const,
      description: 'Sends the promotion now: a ONE_TIME campaign to its segment (and social posts for SOCIAL). While the previous manual send is still going, a second execute answers it again (a double click sends once). INVALID_STATE: inactive, no event received yet, or the event cancelled.',
      request: { params: IdParam }, responses: { 200: json(one(ExecutePromotionResult)), ...conflict, ...errorResponses },
    }),
    async (c) => {
      const ctx = c.get('ctx');
      return c.json(serialize(one(ExecutePromotionResult), { data: await executeEventPromotion(ctx, c.req.valid('param').id) }), 200);
    },
  );
  return app;
}

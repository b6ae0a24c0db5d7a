import { createRoute, z } from '@hono/zod-openapi';
import {
  createTemplate, createTemplateInput, deleteTemplate, getTemplate, listTemplatesPage, previewTemplate, previewTemplateInput, TemplateChannel, templateView,
  updateTemplate, updateTemplateInput,
} from '../../domain/templates/templates.js';
import type { AppDeps } from '../env.js';
import { guard } from '../middleware/guard.js';
import { conflict, documented, errorResponses, IdParam, json, jsonBody, PageQuery, pageMeta, router } from './openapi.js';
import { Deleted, one, page, RenderedMessage, serialize, Template } from './schemas.js';

const CreateTemplate = documented(createTemplateInput, 'CreateTemplate');
const UpdateTemplate = documented(updateTemplateInput, 'UpdateTemplate');
const PreviewTemplate = documented(previewTemplateInput, 'PreviewTemplate');

export function templateRoutes(deps: AppDeps) {
  const app = router();
  const tags = ['Templates'];

  app.openapi(
    createRoute({
      method: 'get', path: '/templates', operationId: 'templates', tags, middleware: [guard(deps, 'templates')] as const,
      request: { query: PageQuery.extend({ channel: z.enum(TemplateChannel).optional() }) },
      responses: { 200: json(page(Template)), ...errorResponses },
    }),
    async (c) => {
      const { channel, skip, take } = c.req.valid('query');
      const { rows, total } = await listTemplatesPage(c.get('ctx'), channel, skip, take);
      return c.json(serialize(page(Template), { data: rows.map(templateView), meta: pageMeta(total, skip, take) }), 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'post', path: '/templates', operationId: 'createTemplate', tags, middleware: [guard(deps, 'createTemplate')] as const,
      description: 'Liquid templates (README, "Message templates"): a syntax error is a VALIDATION_ERROR naming the field. EMAIL needs a subject.',
      request: jsonBody(CreateTemplate), responses: { 201: json(one(Template), 'Created'), ...errorResponses },
    }),
    async (c) => c.json(serialize(one(Template), { data: templateView(await createTemplate(c.get('ctx'), c.req.valid('json'))) }), 201),
  );

  app.openapi(
    createRoute({
      method: 'get', path: '/templates/{id}', operationId: 'template', tags, middleware: [guard(deps, 'template')] as const,
      request: { params: IdParam }, responses: { 200: json(one(Template)), ...errorResponses },
    }),
    async (c) => c.json(serialize(one(Template), { data: templateView(await getTemplate(c.get('ctx'), c.req.valid('param').id)) }), 200),
  );

  app.openapi(
    createRoute({
      method: 'patch', path: '/templates/{id}', operationId: 'updateTemplate', tags, middleware: [guard(deps, 'updateTemplate')] as const,
      description: 'The channel cannot change. `textBody: null` derives the text part from the HTML again.',
      request: { params: IdParam, ...jsonBody(UpdateTemplate) }, responses: { 200: json(one(Template)), ...errorResponses },
    }),
    async (c) => c.json(serialize(one(Template), { data: templateView(await updateTemplate(c.get('ctx'), c.req.valid('param').id, c.req.valid('json'))) }), 200),
  );

  app.openapi(
    createRoute({
      method: 'delete', path: '/templates/{id}', operationId: 'deleteTemplate', tags, middleware: [guard(deps, 'deleteTemplate')] as const,
      description: 'CONFLICT while a DRAFT, SCHEDULED, ACTIVE or PAUSED campaign uses the template.',
      request: { params: IdParam }, responses: { 200: json(one(Deleted)), ...conflict, ...errorResponses },
    }),
    async (c) => c.json(serialize(one(Deleted), { data: { deleted: await deleteTemplate(c.get('ctx'), c.req.valid('param').id) } }), 200),
  );

  app.openapi(
    createRoute({
      method: 'post', path: '/templates/{id}/preview', operationId: 'previewTemplate', tags, middleware: [guard(deps, 'previewTemplate')] as const,
      description: 'The message as a campaign would send it to the customer (its unsubscribe link is a placeholder). Sends nothing.',
      request: { params: IdParam, ...jsonBody(PreviewTemplate) }, responses: { 200: json(one(RenderedMessage)), ...errorResponses },
    }),
    async (c) => c.json(serialize(one(RenderedMessage), { data: await previewTemplate(c.get('ctx'), c.req.valid('param').id, c.req.valid('json')) }), 200),
  );
  return app;
}

import { createRoute, z } from '@hono/zod-openapi';
import { CampaignStatus, CampaignType, InteractionType } from '../../db/entities/enums.js';
import {
  campaignDetail, campaignViews, cancelCampaign, createCampaign, executeCampaign, getCampaign, listCampaignsPage, pauseCampaign, resumeCampaign,
  scheduleCampaign, updateCampaign,
} from '../../domain/campaigns/campaigns.js';
import { createCampaignInput, scheduleCampaignInput, updateCampaignInput } from '../../domain/campaigns/schemas.js';
import { campaignStats, listInteractions } from '../../domain/campaigns/stats.js';
import type { ServiceContext } from '../../domain/context.js';
import type { OperationName } from '../../domain/operations.js';
import type { Campaign as CampaignEntity } from '../../db/entities/index.js';
import type { AppDeps } from '../env.js';
import { guard } from '../middleware/guard.js';
import { conflict, documented, errorResponses, IdParam, json, jsonBody, PageQuery, pageMeta, router } from './openapi.js';
import { Campaign, CampaignInteraction, CampaignStats, one, page, serialize } from './schemas.js';

const CreateCampaign = documented(createCampaignInput, 'CreateCampaign');
const UpdateCampaign = documented(updateCampaignInput, 'UpdateCampaign');
const ScheduleCampaign = documented(scheduleCampaignInput, 'ScheduleCampaign');

export function campaignRoutes(deps: AppDeps) {
  const app = router();
  const tags = ['Campaigns'];
  const invalidState = { 409: conflict[409] };

  app.openapi(
    createRoute({
      method: 'get', path: '/campaigns', operationId: 'campaigns', tags, middleware: [guard(deps, 'campaigns')] as const,
      request: { query: PageQuery.extend({ clubId: z.string().optional(), status: z.enum(CampaignStatus).optional(), type: z.enum(CampaignType).optional() }) },
      responses: { 200: json(page(Campaign)), ...errorResponses },
    }),
    async (c) => {
      const { clubId, status, type, skip, take } = c.req.valid('query');
      const ctx = c.get('ctx');
      const { rows, total } = await listCampaignsPage(ctx, { clubId, status, type }, skip, take);
      return c.json(serialize(page(Campaign), { data: await campaignViews(ctx, rows), meta: pageMeta(total, skip, take) }), 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'post', path: '/campaigns', operationId: 'createCampaign', tags, middleware: [guard(deps, 'createCampaign')] as const,
      description: 'Creates a DRAFT campaign. RECURRING needs `schedule`, TRIGGERED needs `triggerEvent`.',
      request: jsonBody(CreateCampaign), responses: { 201: json(one(Campaign), 'Created'), ...errorResponses },
    }),
    async (c) => {
      const ctx = c.get('ctx');
      return c.json(serialize(one(Campaign), { data: await campaignDetail(ctx, await createCampaign(ctx, c.req.valid('json'))) }), 201);
    },
  );

  app.openapi(
    createRoute({
      method: 'get', path: '/campaigns/{id}', operationId: 'campaign', tags, middleware: [guard(deps, 'campaign')] as const,
      request: { params: IdParam }, responses: { 200: json(one(Campaign)), ...errorResponses },
    }),
    async (c) => {
      const ctx = c.get('ctx');
      return c.json(serialize(one(Campaign), { data: await campaignDetail(ctx, await getCampaign(ctx, c.req.valid('param').id)) }), 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'patch', path: '/campaigns/{id}', operationId: 'updateCampaign', tags, middleware: [guard(deps, 'updateCampaign')] as const,
      description: 'Name, description and club change any time; the audience, templates, channels and timing only while DRAFT (INVALID_STATE otherwise).',
      request: { params: IdParam, ...jsonBody(UpdateCampaign) }, responses: { 200: json(one(Campaign)), ...invalidState, ...errorResponses },
    }),
    async (c) => {
      const ctx = c.get('ctx');
      return c.json(serialize(one(Campaign), { data: await campaignDetail(ctx, await updateCampaign(ctx, c.req.valid('param').id, c.req.valid('json'))) }), 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'post', path: '/campaigns/{id}/schedule', operationId: 'scheduleCampaign', tags, middleware: [guard(deps, 'scheduleCampaign')] as const,
      description: 'DRAFT → SCHEDULED. ONE_TIME sends at `scheduledAt` (the run `campaign-<id>` waits for it); RECURRING starts its schedule `campaign-schedule-<id>` (from `scheduledAt` if given).',
      request: { params: IdParam, ...jsonBody(ScheduleCampaign) },
      responses: { 200: json(one(Campaign)), ...invalidState, ...errorResponses },
    }),
    async (c) => {
      const ctx = c.get('ctx');
      // Validated already (scheduledAt is a Date now); the service takes the wire form. No JSON
      // body at all (another content type) leaves nothing validated: the service says what is missing.
      const body = c.req.valid('json') as { scheduledAt?: Date | null } | undefined;
      const campaign = await scheduleCampaign(ctx, c.req.valid('param').id, body && { scheduledAt: body.scheduledAt?.toISOString() ?? body.scheduledAt });
      return c.json(serialize(one(Campaign), { data: await campaignDetail(ctx, campaign) }), 200);
    },
  );

  const action = (path: string, operationId: OperationName, description: string, run: (ctx: ServiceContext, id: string) => Promise<CampaignEntity>) =>
    app.openapi(
      createRoute({
        method: 'post', path: `/campaigns/{id}/${path}`, operationId, tags, description, middleware: [guard(deps, operationId)] as const,
        request: { params: IdParam },
        responses: { 200: json(one(Campaign)), ...invalidState, ...errorResponses },
      }),
      async (c) => {
        const ctx = c.get('ctx');
        const campaign = await run(ctx, c.req.valid('param').id);
        return c.json(serialize(one(Campaign), { data: await campaignDetail(ctx, campaign) }), 200);
      },
    );

  action('execute', 'executeCampaign', 'DRAFT → ACTIVE now. A second execute of an ACTIVE ONE_TIME campaign joins its run.', executeCampaign);
  action('pause', 'pauseCampaign', 'ACTIVE → PAUSED: no new sends start; those in flight finish first, so `sentCount` is final until resumed.', pauseCampaign);
  action('resume', 'resumeCampaign', 'PAUSED → ACTIVE: sending goes on where it stopped.', resumeCampaign);
  action('cancel', 'cancelCampaign', 'SCHEDULED, ACTIVE or PAUSED → CANCELLED: what was not sent is marked cancelled.', cancelCampaign);

  app.openapi(
    createRoute({
      method: 'get', path: '/campaigns/{id}/stats', operationId: 'campaignStats', tags, middleware: [guard(deps, 'campaignStats')] as const,
      request: { params: IdParam }, responses: { 200: json(one(CampaignStats)), ...errorResponses },
    }),
    async (c) => {
      const ctx = c.get('ctx');
      const campaign = await getCampaign(ctx, c.req.valid('param').id);
      return c.json(serialize(one(CampaignStats), { data: await campaignStats(ctx.em, ctx.tenantId, campaign.id) }), 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'get', path: '/campaigns/{id}/interactions', operationId: 'campaignInteractions', tags, middleware: [guard(deps, 'campaignInteractions')] as const,
      request: { params: IdParam, query: PageQuery.extend({ type: z.enum(InteractionType).optional() }) },
      responses: { 200: json(page(CampaignInteraction)), ...errorResponses },
    }),
    async (c) => {
      const ctx = c.get('ctx');
      const { type, skip, take } = c.req.valid('query');
      const campaign = await getCampaign(ctx, c.req.valid('param').id);
      const { rows, total } = await listInteractions(ctx.em, ctx.tenantId, campaign.id, { type, skip, take });
      return c.json(serialize(page(CampaignInteraction), { data: rows, meta: pageMeta(total, skip, take) }), 200);
    },
  );
  return app;
}

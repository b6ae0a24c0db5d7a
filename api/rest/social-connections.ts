import { createRoute, z } from '@hono/zod-openapi';
import { SocialPlatform } from '../../db/entities/enums.js';
import {
  completeInput, completeSocialConnection, disconnectSocial, initiateInput, initiateSocialConnection, listSocialConnections,
} from '../../domain/social/connections.js';
import type { AppDeps } from '../env.js';
import { guard } from '../middleware/guard.js';
import { conflict, documented, errorResponses, IdParam, json, jsonBody, router } from './openapi.js';
import { list, one, serialize } from './schemas.js';

// Social connections over REST: the OAuth flow (initiate → the platform's page → complete), the
// list, and disconnect. No answer ever carries a token.

const timestamp = z.iso.datetime({ offset: true });

export const SocialConnection = z
  .object({
    id: z.string().openapi({ format: 'uuid' }),
    tenantId: z.string(),
    clubId: z.string().nullable(),
    platform: z.enum(SocialPlatform),
    accountId: z.string().openapi({ description: 'What posts publish as: the Facebook Page, the Instagram business account, the X / LinkedIn / TikTok user' }),
    accountName: z.string(),
    accountType: z.string().nullable().openapi({ example: 'PAGE' }),
    isActive: z.boolean(),
    statusReason: z.string().nullable().openapi({ description: 'Why the connection is inactive (`disconnected`, a refused refresh); null while active' }),
    permissions: z.array(z.string()).openapi({ description: 'The permissions granted, as the platform names them' }),
    tokenExpiry: timestamp.nullable(),
    lastUsedAt: timestamp.nullable(),
    createdAt: timestamp,
  })
  .openapi('SocialConnection');

const OAuthResult = z
  .object({
    authUrl: z.string().openapi({ description: 'The platform\'s authorisation page; it redirects back to redirectUri with `code` and `state`' }),
    state: z.string().openapi({ description: 'Signed, single-use, valid 10 minutes, bound to the tenant, club, platform and redirectUri' }),
  })
  .openapi('OAuthResult');

const InitiateBody = documented(initiateInput, 'InitiateSocialConnection');
const CompleteBody = documented(completeInput, 'CompleteSocialConnection');

export function socialConnectionRoutes(deps: AppDeps) {
  const app = router();
  const tags = ['Social'];

  app.openapi(
    createRoute({
      method: 'get', path: '/social/connections', operationId: 'socialConnections', tags, middleware: [guard(deps, 'socialConnections')] as const,
      description: 'The tenant\'s connections, newest first, inactive ones included (with statusReason).',
      request: { query: z.object({ tenantId: z.string().optional(), platform: z.enum(SocialPlatform).optional(), clubId: z.string().max(100).optional() }) },
      responses: { 200: json(list(SocialConnection)), ...errorResponses },
    }),
    async (c) => {
      const rows = await listSocialConnections(c.get('ctx'), c.req.valid('query'));
      return c.json(serialize(list(SocialConnection), { data: rows }), 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'post', path: '/social/connections/initiate', operationId: 'initiateSocialConnection', tags,
      middleware: [guard(deps, 'initiateSocialConnection')] as const,
      description: 'The platform\'s authorisation URL (with PKCE S256 for TWITTER and TIKTOK) and its state. Send the user to authUrl.',
      request: jsonBody(InitiateBody),
      responses: { 200: json(one(OAuthResult)), ...errorResponses },
    }),
    async (c) => c.json(serialize(one(OAuthResult), { data: await initiateSocialConnection(c.get('ctx'), c.req.valid('json')) }), 200),
  );

  app.openapi(
    createRoute({
      method: 'post', path: '/social/connections/complete', operationId: 'completeSocialConnection', tags,
      middleware: [guard(deps, 'completeSocialConnection')] as const,
      description: [
        'Checks the state (a reused, expired, forged, other tenant\'s or other platform\'s state is a 400 naming input.state),',
        'exchanges the code (refused: 400 naming input.code) and stores the connection. Reconnecting the same account updates it.',
      ].join(' '),
      request: jsonBody(CompleteBody),
      responses: { 200: json(one(SocialConnection)), ...conflict, ...errorResponses },
    }),
    async (c) => c.json(serialize(one(SocialConnection), { data: await completeSocialConnection(c.get('ctx'), c.req.valid('json')) }), 200),
  );

  app.openapi(
    createRoute({
      method: 'delete', path: '/social/connections/{id}', operationId: 'disconnectSocial', tags, middleware: [guard(deps, 'disconnectSocial')] as const,
      description: [
        'Revokes the grant at the platform where it allows that, deletes the tokens and stops the token refresh. The connection',
        'stays, inactive (statusReason `disconnected`), so published posts keep it; completing a connection to the same account again reactivates it.',
      ].join(' '),
      request: { params: IdParam },
      responses: { 200: json(one(SocialConnection)), ...errorResponses },
    }),
    async (c) => c.json(serialize(one(SocialConnection), { data: await disconnectSocial(c.get('ctx'), c.req.valid('param').id) }), 200),
  );
  return app;
}

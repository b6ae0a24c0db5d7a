import { createHmac, timingSafeEqual } from 'node:crypto';
import { createRoute, z } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { createMiddleware } from 'hono/factory';
import { OPERATIONS } from '../../domain/operations.js';
import { applyDeliveryReceipts, deliveryReceipts, MAX_RECEIPTS } from '../../domain/campaigns/receipts.js';
import { AppError } from '../../platform/errors.js';
import type { AppDeps, AppEnv } from '../env.js';
import { assertNoNul, clientAddress, discardBody, setRateLimitHeaders } from '../middleware/guard.js';
import { documented, errorResponses, json, jsonBody, router } from './openapi.js';
import { one, serialize } from './schemas.js';

const ReceiptResult = z
  .object({
    received: z.number().int(),
    applied: z.number().int(),
    duplicates: z.number().int().openapi({ description: 'Events whose id was seen before (replays)' }),
    ignored: z.array(z.object({ id: z.string(), reason: z.string() })).openapi({ description: 'Events not applied: unknown delivery, or one already past that state' }),
  })
  .openapi('DeliveryReceiptResult');

const SIGNATURE = /^t=(\d{1,12}),(v1=[0-9a-f]{64}(?:,v1=[0-9a-f]{64})*)$/;

/** The `v1` signatures of `header` include HMAC-SHA256(secret, "<t>.<raw body>") and `t` is recent. */
function assertSigned(header: string | undefined, raw: Buffer, secret: string, toleranceSeconds: number): void {
  const match = header?.trim().match(SIGNATURE);
  if (!match) throw new AppError('UNAUTHENTICATED', 'missing or malformed X-Messaging-Signature (t=<unix seconds>,v1=<hex HMAC-SHA256>)');
  const t = Number(match[1]);
  // Checked before the signature: a recorded request replayed later fails here even though it is signed.
  if (Math.abs(Date.now() / 1000 - t) > toleranceSeconds) {
    throw new AppError('UNAUTHENTICATED', `X-Messaging-Signature: timestamp ${t} is more than ${toleranceSeconds} s from now`);
  }
  const expected = createHmac('sha256', secret).update(`${t}.`).update(raw).digest();
  const given = match[2]!.split(',').map((v) => Buffer.from(v.slice(3), 'hex'));
  if (!given.some((g) => timingSafeEqual(g, expected))) throw new AppError('UNAUTHENTICATED', 'X-Messaging-Signature does not match the body');
}

/**
 * The webhook's front door instead of `guard`: the Messaging service holds no JWT, its signature
 * over the raw body is the credential. Failures are charged per client address, like bad tokens.
 */
const signed = (deps: AppDeps) =>
  createMiddleware<AppEnv>(async (c: Context<AppEnv>, next) => {
    const secret = deps.config.MESSAGING_WEBHOOK_SECRET;
    if (!secret) {
      await discardBody(c);
      throw new AppError('SERVICE_UNAVAILABLE', 'the messaging webhook is not configured (MESSAGING_WEBHOOK_SECRET)');
    }
    const raw = Buffer.from(await c.req.arrayBuffer()); // cached: the JSON validator parses the same bytes
    try {
      assertSigned(c.req.header('x-messaging-signature'), raw, secret, deps.config.MESSAGING_WEBHOOK_TOLERANCE_SECONDS);
    } catch (err) {
      setRateLimitHeaders(c, await deps.rateLimits.consume(OPERATIONS.messagingWebhook.rate, `addr:${clientAddress(c)}`));
      throw err;
    }
    let body: unknown;
    try {
      body = JSON.parse(raw.toString('utf8'));
    } catch {
      throw new AppError('VALIDATION_ERROR', 'request body is not valid JSON', { field: 'body' });
    }
    assertNoNul(body, deps.config.MAX_JSON_DEPTH);
    await next();
  });

export function webhookRoutes(deps: AppDeps) {
  const app = router();
  app.openapi(
    createRoute({
      method: 'post', path: '/webhooks/messaging', operationId: 'messagingWebhook', tags: ['Webhooks'], security: [],
      middleware: [signed(deps)] as const,
      description: `Delivery receipts from the Messaging service (README, "Messaging webhook"): up to ${MAX_RECEIPTS} events, ` +
        'signed with MESSAGING_WEBHOOK_SECRET in X-Messaging-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">. ' +
        'No bearer token. A replayed event id is counted as a duplicate; unknown deliveries are reported as ignored.',
      request: {
        headers: z.object({ 'x-messaging-signature': z.string().optional().openapi({ example: 't=1765702800,v1=50d858e0985ecc7f60418aaf0cc5ab587f42c2570a884095a9e8ccacd0f6545c', description: 't=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>"> with MESSAGING_WEBHOOK_SECRET' }) }),
        ...jsonBody(documented(deliveryReceipts, 'DeliveryReceipts')),
      },
      responses: { 200: json(one(ReceiptResult)), ...errorResponses },
    }),
    async (c) => {
      const result = await applyDeliveryReceipts(deps.orm.em.fork(), c.req.valid('json'));
      return c.json(serialize(one(ReceiptResult), { data: result }), 200);
    },
  );
  return app;
}

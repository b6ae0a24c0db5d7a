import type { ForkOptions } from '@mikro-orm/core';
import type { Context } from 'hono';
import { getConnInfo } from '@hono/node-server/conninfo';
import { createMiddleware } from 'hono/factory';
import { assertTenant, authorize, type ServiceContext } from '../../domain/context.js';
import { OPERATIONS, rateClassOf, type OperationName, type RateClass } from '../../domain/operations.js';
import { assertCleanJson } from '../../domain/validate.js';
import type { Principal } from '../../platform/auth.js';
import { AppError } from '../../platform/errors.js';
import { announcesBody } from './body-limit.js';
import type { RateLimitState } from '../../platform/rate-limit.js';
import type { AppDeps, AppEnv } from '../env.js';

export function setRateLimitHeaders(c: Context, s: RateLimitState): void {
  c.header('X-RateLimit-Limit', String(s.limit));
  c.header('X-RateLimit-Remaining', String(s.remaining));
  c.header('X-RateLimit-Reset', String(s.reset));
}

/** A request body PostgreSQL can store and the services can walk: no NUL characters, bounded nesting. */
export function assertNoNul(body: unknown, maxDepth?: number): void {
  assertCleanJson(body, 'body', maxDepth);
}

// The media types the routers' JSON validators read (hono's own test), any letter case.
const JSON_MEDIA_TYPE = /^application\/([\w.-]+\+)?json$/i;
const isJsonBody = (c: Context) => JSON_MEDIA_TYPE.test(c.req.header('content-type')?.split(';')[0]?.trim() ?? '');

/**
 * Reads and drops a refused body (the body limit bounds it) before answering: a server that
 * answers mid-upload closes the connection, and the client hears a reset instead of the refusal.
 */
export async function discardBody(c: Context): Promise<void> {
  if (!c.req.raw.body || c.req.raw.bodyUsed) return;
  for await (const _chunk of c.req.raw.body as unknown as AsyncIterable<Uint8Array>);
}

/** Query strings and path parameters reach the same text columns as bodies do. */
function assertCleanUrl(c: Context<AppEnv>): void {
  const query = Object.fromEntries(Object.entries(c.req.queries()).map(([k, v]) => [k, v.length === 1 ? v[0] : v]));
  assertCleanJson(query, 'query');
  assertCleanJson(c.req.param(), 'path');
}

export async function authenticate(c: Context<AppEnv>, deps: AppDeps): Promise<Principal> {
  try {
    const match = c.req.header('authorization')?.match(/^Bearer\s+(\S+)$/i);
    if (!match) throw new AppError('UNAUTHENTICATED', 'missing bearer token (Authorization: Bearer <jwt>)');
    const principal = await deps.verifyToken(match[1]!);
    c.set('principal', principal);
    return principal;
  } catch (err) {
    // Without a tenant to charge, failed attempts count per client address (read class), which
    // also slows down token guessing.
    setRateLimitHeaders(c, await deps.rateLimits.consume('read', `addr:${clientAddress(c)}`));
    throw err;
  }
}

export function clientAddress(c: Context): string {
  try {
    return getConnInfo(c).remote.address ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

/** Spends one point per operation, in its rate class, keyed by tenant. */
export async function rateLimit(c: Context<AppEnv>, deps: AppDeps, principal: Principal, classes: RateClass[]) {
  const points = new Map<RateClass, number>();
  for (const cls of classes) points.set(cls, (points.get(cls) ?? 0) + 1);
  await spendPoints(c, deps, principal, points);
}

/** Spends points per rate class, keyed by tenant. The headers show the tightest class touched. */
export async function spendPoints(c: Context<AppEnv>, deps: AppDeps, principal: Principal, points: Map<RateClass, number>) {
  let tightest: RateLimitState | undefined;
  for (const [cls, n] of points) {
    const state = await deps.rateLimits.consume(cls, principal.tenantId, n);
    if (!tightest || state.remaining < tightest.remaining) tightest = state;
  }
  if (tightest) setRateLimitHeaders(c, tightest);
}

export function serviceContext(c: Context<AppEnv>, deps: AppDeps, principal: Principal, fork?: ForkOptions): ServiceContext {
  const ctx: ServiceContext = {
    principal,
    tenantId: principal.tenantId,
    requestId: c.get('requestId'),
    em: deps.orm.em.fork(fork),
    temporal: deps.temporal,
    config: deps.config,
    log: c.get('log'),
  };
  c.set('ctx', ctx);
  return ctx;
}

export interface GuardOptions {
  /** The route reads its own non-JSON body (an import's NDJSON or CSV stream) and checks it itself. */
  rawBody?: boolean;
}

/**
 * The front door of every REST operation: token, rate limit, scope, tenant argument, in that
 * order, so a caller learns about a bad token before a missing scope. Every body but a raw one
 * must be JSON, so none skips the NUL and depth checks by being sent as another media type.
 */
export const guard = (deps: AppDeps, operation: OperationName, options: GuardOptions = {}) =>
  createMiddleware<AppEnv>(async (c, next) => {
    const principal = await authenticate(c, deps);
    await rateLimit(c, deps, principal, [rateClassOf(operation, principal.scopes)]);
    authorize(principal, operation);
    assertCleanUrl(c);
    assertTenant(principal, c.req.query('tenantId'));
    const jsonOnly = c.req.method !== 'GET' && !options.rawBody;
    if (jsonOnly && isJsonBody(c)) {
      let body: unknown;
      try {
        body = await c.req.json(); // cached by Hono for the route's own validator
      } catch {
        throw new AppError('VALIDATION_ERROR', 'request body is not valid JSON', { field: 'body' });
      }
      assertNoNul(body, deps.config.MAX_JSON_DEPTH);
      if (body && typeof body === 'object') assertTenant(principal, (body as { tenantId?: unknown }).tenantId);
    } else if (jsonOnly && announcesBody(c)) { // an action like refresh may come with none
      await discardBody(c);
      throw new AppError('VALIDATION_ERROR', 'content-type: send the body as application/json', { field: 'content-type' });
    }
    serviceContext(c, deps, principal);
    await next();
  });

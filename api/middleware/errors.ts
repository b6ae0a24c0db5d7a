import type { Context } from 'hono';
import { HTTPException } from 'hono/http-exception';
import { AppError, asAppError, type ErrorCode } from '../../platform/errors.js';
import type { AppEnv } from '../env.js';
import { setRateLimitHeaders } from './guard.js';

const CODE_BY_STATUS: Record<number, ErrorCode> = {
  400: 'VALIDATION_ERROR', 401: 'UNAUTHENTICATED', 403: 'FORBIDDEN', 404: 'RESOURCE_NOT_FOUND',
  409: 'CONFLICT', 413: 'PAYLOAD_TOO_LARGE', 429: 'RATE_LIMITED', 501: 'NOT_IMPLEMENTED',
};

function toAppError(err: unknown): AppError | undefined {
  const known = asAppError(err);
  if (known) return known;
  if (err instanceof HTTPException) {
    // The OpenAPI router's media-type gate: a JSON operation sent something else (or no type).
    if (err.status === 415) return new AppError('VALIDATION_ERROR', 'content-type: this operation takes application/json', { field: 'content-type' });
    const code = CODE_BY_STATUS[err.status];
    if (code) return new AppError(code, err.message || code);
  }
  return undefined;
}

/** Details a caller can act on: the offending field, the profile that already owns an identifier. */
export function publicDetails(error: AppError): {
  field?: string; existingId?: string; faults?: { field: string; message: string }[]; written?: { created: number; updated: number; rejected: number };
} {
  const { field, existingId, faults, written } = error.details ?? {};
  return {
    ...(typeof field === 'string' && { field }),
    ...(typeof existingId === 'string' && { existingId }),
    // An import stopped part way: what the rows before the stop wrote.
    ...(written !== null && typeof written === 'object' && { written: written as { created: number; updated: number; rejected: number } }),
    // A journey graph's faults, every one (activateJourney, edits of an ACTIVE journey).
    ...(Array.isArray(faults) && { faults: faults as { field: string; message: string }[] }),
  };
}

/** The spec's error envelope for REST; GraphQL's `errors` shape (same codes) under /graphql. */
export function onError(err: unknown, c: Context<AppEnv>) {
  let error = toAppError(err);
  if (!error) {
    (c.get('log') ?? console).error({ err }, 'unhandled error');
    error = new AppError('INTERNAL', 'Internal error');
  }
  const rateLimit = error.details?.rateLimit as Parameters<typeof setRateLimitHeaders>[1] | undefined;
  if (rateLimit) setRateLimitHeaders(c, rateLimit);
  if (rateLimit || error.details?.retryAfter !== undefined) c.header('Retry-After', String(error.details?.retryAfter ?? 60));
  const requestId = c.get('requestId');
  if (c.req.path === '/graphql') {
    return c.json({ errors: [{ message: error.message, extensions: { code: error.code, requestId, ...publicDetails(error) } }] }, error.status as 400);
  }
  return c.json({ error: { code: error.code, message: error.message, requestId, ...publicDetails(error) } }, error.status as 400);
}

import { DeadlockException, UniqueConstraintViolationException } from '@mikro-orm/core';
import { isDatabaseUnavailable } from './database-unavailable.js';
import type { ZodError } from 'zod';

// The error codes of api-reference.md, with their HTTP status. GraphQL errors carry the same codes
// in `extensions.code`.
export const ERROR_STATUS = {
  VALIDATION_ERROR: 400,
  UNAUTHENTICATED: 401,
  FORBIDDEN: 403,
  RESOURCE_NOT_FOUND: 404,
  INVALID_STATE: 409,
  CONFLICT: 409,
  PAYLOAD_TOO_LARGE: 413,
  RATE_LIMITED: 429,
  INTERNAL: 500,
  NOT_IMPLEMENTED: 501,
  SERVICE_UNAVAILABLE: 503,
} as const;

/** Seconds a client should wait before retrying a SERVICE_UNAVAILABLE answer. */
export const UNAVAILABLE_RETRY_AFTER_SECONDS = 5;

export type ErrorCode = keyof typeof ERROR_STATUS;

export class AppError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    // Machine-readable context, e.g. `{ field: 'email' }` or `{ existingId }`.
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
    this.name = 'AppError';
  }

  get status(): number {
    return ERROR_STATUS[this.code];
  }
}

/**
 * The platform error an exception stands for, if any. A unique-index violation that no service
 * anticipated (two writers racing for one identifier) is a CONFLICT, not a server fault.
 */
export function asAppError(err: unknown): AppError | undefined {
  if (err instanceof AppError) return err;
  if (err instanceof UniqueConstraintViolationException) {
    return new AppError('CONFLICT', 'a concurrent change took one of these unique values; retry');
  }
  // PostgreSQL undid a transaction to let a concurrent one through (a deadlock, or a
  // serialization failure): the request can be sent again.
  if (err instanceof DeadlockException) {
    return new AppError('CONFLICT', 'a concurrent change collided with this one; retry');
  }
  // A database that does not answer in time is a temporary condition of the service, not a fault
  // of this request: the caller is told to come back shortly instead of being held.
  if (isDatabaseUnavailable(err)) {
    return new AppError('SERVICE_UNAVAILABLE', 'the database did not answer in time; retry shortly', { retryAfter: UNAVAILABLE_RETRY_AFTER_SECONDS });
  }
  return undefined;
}

export const notFound = (resource: string, id: string) =>
  new AppError('RESOURCE_NOT_FOUND', `${resource} ${id} not found`);


/** One message naming every offending field, e.g. `email: Invalid email address; take: ...`. */
export function fromZod(error: ZodError, prefix?: string): AppError {
  const issues = error.issues.map((issue) => {
    const field = [prefix, ...issue.path.map(String)].filter(Boolean).join('.') || '(body)';
    return { field, message: issue.message };
  });
  return new AppError(
    'VALIDATION_ERROR',
    issues.map((i) => `${i.field}: ${i.message}`).join('; '),
    { field: issues[0]?.field, fields: issues },
  );
}

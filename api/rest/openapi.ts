import { OpenAPIHono, z } from '@hono/zod-openapi';
import { fromZod } from '../../platform/errors.js';
import type { AppEnv } from '../env.js';

// Every REST router is an OpenAPIHono whose validation failures become the spec's
// VALIDATION_ERROR, naming the offending field (e.g. `query.take: Too big: expected <= 100`).
export function router() {
  return new OpenAPIHono<AppEnv>({
    defaultHook: (result) => {
      if (!result.success) throw fromZod(result.error, result.target === 'json' ? undefined : result.target);
    },
  });
}

export const ErrorEnvelope = z
  .object({
    error: z.object({
      code: z.string().openapi({ example: 'RESOURCE_NOT_FOUND' }),
      message: z.string(),
      requestId: z.string().openapi({ example: 'req_3f2a…' }),
      field: z.string().optional().openapi({ description: 'The offending field (VALIDATION_ERROR)' }),
      existingId: z.string().optional().openapi({ description: 'The profile that already holds the identifier (CONFLICT)' }),
      faults: z
        .array(z.object({ field: z.string(), message: z.string() }))
        .optional()
        .openapi({ description: 'VALIDATION_ERROR of a journey graph: every fault, each naming its field (e.g. `steps[3].config.templateId`)' }),
      written: z
        .object({ created: z.number().int(), updated: z.number().int(), rejected: z.number().int() })
        .optional()
        .openapi({ description: 'An import stopped part way (400, 413): what the rows before the stop wrote (an upsert: the file may be sent again)' }),
    }),
  })
  .openapi('Error');

const error = (description: string) => ({ description, content: { 'application/json': { schema: ErrorEnvelope } } });

export const errorResponses = {
  400: error('VALIDATION_ERROR: the message names the field'),
  401: error('UNAUTHENTICATED'),
  403: error('FORBIDDEN: missing scope, or a tenantId other than the token\'s'),
  404: error('RESOURCE_NOT_FOUND'),
  413: error('PAYLOAD_TOO_LARGE: the body is over its limit (the message names it)'),
  429: error('RATE_LIMITED'),
  500: error('INTERNAL'),
  503: error('SERVICE_UNAVAILABLE: the database did not answer in time, or a workflow run is still going (it goes on; calling again joins it); retry after Retry-After seconds'),
} as const;

/**
 * A whole number in a query string. Unlike `z.coerce.number()`, an empty value (`take=`) is an
 * error naming the parameter instead of a silent 0.
 */
export const queryInt = (min: number, max: number) =>
  z.preprocess(
    (v) => (typeof v === 'string' ? (v.trim() ? Number(v) : NaN) : v),
    z.number({ error: 'expected a whole number' }).int({ error: 'expected a whole number' }).min(min).max(max),
  );

export const PageQuery = z.object({
  tenantId: z.string().optional().openapi({ description: 'Optional; must equal the token\'s tenant' }),
  skip: queryInt(0, Number.MAX_SAFE_INTEGER).default(0),
  take: queryInt(1, 100).default(25),
});

/** Paging by cursor (timelines, segment members): `take`, and `after` = the previous meta.nextCursor. */
export const CursorQuery = z.object({
  tenantId: z.string().optional(),
  take: queryInt(1, 100).default(25),
  after: z.string().optional(),
});

export function cursorMeta(page: { totalCount: number; pageInfo: { hasNextPage: boolean; endCursor: string | null } }, take: number) {
  const { hasNextPage, endCursor } = page.pageInfo;
  return { total: page.totalCount, take, hasMore: hasNextPage, nextCursor: hasNextPage ? endCursor : null };
}

export function pageMeta(total: number, skip: number, take: number) {
  return { total, skip, take, hasMore: skip + take < total };
}

export const json = <T extends z.ZodType>(schema: T, description = 'OK') => ({ description, content: { 'application/json': { schema } } });
export const jsonBody = <T extends z.ZodType>(schema: T) => ({ body: { content: { 'application/json': { schema } }, required: true } });
export const conflict = { 409: error('CONFLICT (an identifier or name already taken; error.existingId names the profile holding it) or INVALID_STATE') };

/**
 * A domain schema, named in the document. Domain modules may build their schemas before
 * @hono/zod-openapi has given zod its `.openapi()`, so the name goes on a copy made now.
 */
export const documented = <T extends z.ZodType>(schema: T, name: string) => schema.clone().openapi(name);

export const IdParam = z.object({ id: z.string().openapi({ param: { name: 'id', in: 'path' } }) });

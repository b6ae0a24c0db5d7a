import { createRoute, z } from '@hono/zod-openapi';
import { CustomerStatus, LifecycleStage, NoteType } from '../../db/entities/enums.js';
import { createCustomer, customerView, getCustomer, listCustomersPage, updateCustomer } from '../../domain/customers/customers.js';
import { importCustomers, importLimits, readImportRows, type ImportFormat } from '../../domain/customers/import.js';
import { mergeCustomers } from '../../domain/customers/merge.js';
import { addNote, customerNotesPage, deleteNote, noteView, updateNote } from '../../domain/customers/notes.js';
import { resolveCustomer } from '../../domain/customers/resolve.js';
import { createCustomerInput, customerFields, identifiersInput, noteInput, noteUpdate, updateCustomerInput } from '../../domain/customers/schemas.js';
import { customerTimeline } from '../../domain/customers/timeline.js';
import { ingestEvents, upstreamEventFields, MAX_BATCH } from '../../domain/events/ingest.js';
import { AppError } from '../../platform/errors.js';
import { validate } from '../../domain/validate.js';
import type { AppDeps } from '../env.js';
import { announcesBody, streamedBody } from '../middleware/body-limit.js';
import { discardBody, guard } from '../middleware/guard.js';
import { conflict, CursorQuery, cursorMeta, documented, errorResponses, IdParam, json, jsonBody, PageQuery, pageMeta, queryInt, router } from './openapi.js';
import { Activity, Customer, cursorPage, Deleted, ImportReport, IngestReport, MergeResult, Note, one, page, Resolution, serialize } from './schemas.js';
// Each event is validated by the domain, so a batch reports per item instead of failing whole.
const EventsBody = z.union([z.record(z.string(), z.unknown()), z.array(z.unknown())]);
const boolQuery = z.enum(['true', 'false']).transform((v) => v === 'true');

// The Activity schema is the one list of fields: a timeline row answers those, absent ones as null.
const activityView = (a: object) => Object.fromEntries(Object.keys(Activity.shape).map((k) => [k, (a as Record<string, unknown>)[k] ?? null]));

export function customerRoutes(deps: AppDeps) {
  const app = router();
  const tags = ['Customers'];
  const region = deps.config.DEFAULT_PHONE_REGION;
  // Bodies the domain parses itself, per item, so they are documented but not validated here.
  // A default makes a field optional to send; generators would read `default` as always present.
  const Event = upstreamEventFields(region, deps.config.MAX_EVENT_METADATA_BYTES)
    .extend({
      customer: upstreamEventFields(region, deps.config.MAX_EVENT_METADATA_BYTES).shape.customer.openapi({
        description: 'Required, except on competition.*, club_event.* and special_event.* events (promotion sources: README, "Event promotions"), which leave it out',
      }),
      createCustomer: z.boolean().optional().openapi({ description: 'Default true; false appends only to a known profile' }),
    })
    .openapi('Event');
  const ImportRow = customerFields(region).openapi('ImportRow');
  app.openAPIRegistry.register('Event', Event);
  app.openAPIRegistry.register('ImportRow', ImportRow);

  app.openapi(
    createRoute({
      method: 'get', path: '/customers', operationId: 'customers', tags, middleware: [guard(deps, 'customers')] as const,
      request: {
        query: PageQuery.extend({
          status: z.enum(CustomerStatus).optional(),
          lifecycleStage: z.enum(LifecycleStage).optional(),
          search: z.string().optional(),
          segmentId: z.string().optional(),
          engagementMin: queryInt(0, 100).optional(),
          engagementMax: queryInt(0, 100).optional(),
          churnRiskMin: queryInt(0, 100).optional(),
          churnRiskMax: queryInt(0, 100).optional(),
          emailOptIn: boolQuery.optional(),
        }),
      },
      responses: { 200: json(page(Customer)), ...errorResponses },
    }),
    async (c) => {
      const { skip, take, tenantId: _t, ...filter } = c.req.valid('query');
      const { data, total } = await listCustomersPage(c.get('ctx'), filter, skip, take);
      // The page's JSON comes ready from listCustomersPage (PostgreSQL renders its fields), so it is not parsed
      // and checked here; test/customers-list-json.test.ts holds it to the Customer schema.
      return c.body(`{"data":${data},"meta":${JSON.stringify(pageMeta(total, skip, take))}}`, 200, { 'content-type': 'application/json' }) as never;
    },
  );

  app.openapi(
    createRoute({
      method: 'post', path: '/customers', operationId: 'createCustomer', tags, middleware: [guard(deps, 'createCustomer')] as const,
      request: jsonBody(createCustomerInput(region).openapi('CreateCustomer')), responses: { 201: json(one(Customer), 'Created'), ...conflict, ...errorResponses },
    }),
    async (c) => c.json(serialize(one(Customer), { data: customerView(await createCustomer(c.get('ctx'), c.req.valid('json'))) }), 201),
  );

  app.openapi(
    createRoute({
      method: 'get', path: '/customers/{id}', operationId: 'customer', tags, middleware: [guard(deps, 'customer')] as const,
      request: { params: IdParam }, responses: { 200: json(one(Customer)), ...errorResponses },
    }),
    async (c) => c.json(serialize(one(Customer), { data: customerView(await getCustomer(c.get('ctx'), c.req.valid('param').id)) }), 200),
  );

  app.openapi(
    createRoute({
      method: 'patch', path: '/customers/{id}', operationId: 'updateCustomer', tags, middleware: [guard(deps, 'updateCustomer')] as const,
      request: { params: IdParam, ...jsonBody(updateCustomerInput(region).openapi('UpdateCustomer')) },
      responses: { 200: json(one(Customer)), ...conflict, ...errorResponses },
    }),
    async (c) => c.json(serialize(one(Customer), { data: customerView(await updateCustomer(c.get('ctx'), c.req.valid('param').id, c.req.valid('json'))) }), 200),
  );

  app.openapi(
    createRoute({
      method: 'post', path: '/customers/resolve', operationId: 'resolveCustomer', tags, middleware: [guard(deps, 'resolveCustomer')] as const,
      description: 'Finds the profile for {email, phone, authUserId}; creates it when none matches and the token has crm:write (otherwise 404).',
      request: jsonBody(identifiersInput(region).openapi('Identifiers')),
      responses: { 200: json(one(Resolution)), ...conflict, ...errorResponses },
    }),
    async (c) => {
      const ctx = c.get('ctx');
      const result = await resolveCustomer(ctx, c.req.valid('json'), { write: ctx.principal.scopes.has('crm:write') });
      if (!result) throw new AppError('RESOURCE_NOT_FOUND', 'no customer has these identifiers');
      return c.json(serialize(one(Resolution), { data: { profile: customerView(result.profile), resolution: result.resolution } }), 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'post', path: '/customers/merge', operationId: 'mergeCustomers', tags, middleware: [guard(deps, 'mergeCustomers')] as const,
      request: jsonBody(z.object({ winnerId: z.string().min(1), loserId: z.string().min(1) }).openapi('MergeCustomers')),
      responses: { 200: json(one(MergeResult)), ...conflict, ...errorResponses },
    }),
    async (c) => {
      const { winnerId, loserId } = c.req.valid('json');
      const result = await mergeCustomers(c.get('ctx'), winnerId, loserId);
      return c.json(serialize(one(MergeResult), { data: { winner: customerView(result.winner), mergedFields: result.mergedFields } }), 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'get', path: '/customers/{id}/timeline', operationId: 'customerTimeline', tags, middleware: [guard(deps, 'customerTimeline')] as const,
      description: 'Newest first. Page with `take` and the `after` cursor of the previous page (meta.nextCursor).',
      request: {
        params: IdParam,
        query: CursorQuery.extend({
          categories: z.string().optional().openapi({ description: 'Comma-separated ActivityCategory values' }),
          startDate: z.string().optional(),
          endDate: z.string().optional(),
        }),
      },
      responses: { 200: json(cursorPage(Activity)), ...errorResponses },
    }),
    async (c) => {
      const { categories, startDate, endDate, take, after } = c.req.valid('query');
      const connection = await customerTimeline(
        c.get('ctx'), c.req.valid('param').id,
        { categories: categories?.split(',').map((s) => s.trim()).filter(Boolean) as never, startDate: startDate as never, endDate: endDate as never },
        { first: take, after },
      );
      return c.json(serialize(cursorPage(Activity), { data: connection.edges.map((e) => activityView(e.node)), meta: cursorMeta(connection, take) }), 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'get', path: '/customers/{id}/notes', operationId: 'customerNotes', tags: ['Notes'], middleware: [guard(deps, 'customerNotes')] as const,
      request: { params: IdParam, query: PageQuery.extend({ type: z.enum(NoteType).optional() }) },
      responses: { 200: json(page(Note)), ...errorResponses },
    }),
    async (c) => {
      const { type, skip, take } = c.req.valid('query');
      const { rows, total } = await customerNotesPage(c.get('ctx'), c.req.valid('param').id, type, skip, take);
      return c.json(serialize(page(Note), { data: rows.map(noteView), meta: pageMeta(total, skip, take) }), 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'post', path: '/customers/{id}/notes', operationId: 'addNote', tags: ['Notes'], middleware: [guard(deps, 'addNote')] as const,
      request: { params: IdParam, ...jsonBody(documented(noteInput, 'CreateNote')) }, responses: { 201: json(one(Note), 'Created'), ...conflict, ...errorResponses },
    }),
    async (c) => c.json(serialize(one(Note), { data: noteView(await addNote(c.get('ctx'), c.req.valid('param').id, c.req.valid('json'))) }), 201),
  );

  app.openapi(
    createRoute({
      method: 'patch', path: '/notes/{id}', operationId: 'updateNote', tags: ['Notes'], middleware: [guard(deps, 'updateNote')] as const,
      request: { params: IdParam, ...jsonBody(documented(noteUpdate, 'UpdateNote')) }, responses: { 200: json(one(Note)), ...errorResponses },
    }),
    async (c) => c.json(serialize(one(Note), { data: noteView(await updateNote(c.get('ctx'), c.req.valid('param').id, c.req.valid('json'))) }), 200),
  );

  app.openapi(
    createRoute({
      method: 'delete', path: '/notes/{id}', operationId: 'deleteNote', tags: ['Notes'], middleware: [guard(deps, 'deleteNote')] as const,
      request: { params: IdParam }, responses: { 200: json(one(Deleted)), ...errorResponses },
    }),
    async (c) => c.json(serialize(one(Deleted), { data: { deleted: await deleteNote(c.get('ctx'), c.req.valid('param').id) } }), 200),
  );

  app.openapi(
    createRoute({
      method: 'post', path: '/events', operationId: 'ingestEvents', tags: ['Events'], middleware: [guard(deps, 'ingestEvents')] as const,
      description: 'One upstream event or an array of up to 1,000. Idempotent on (sourceService, sourceEventId). Each item is reported: created, duplicate or rejected (with the reason).',
      request: {
        body: {
          required: true,
          content: {
            'application/json': {
              schema: { oneOf: [{ $ref: '#/components/schemas/Event' }, { type: 'array', maxItems: MAX_BATCH, items: { $ref: '#/components/schemas/Event' } }] },
            },
          },
        },
      },
      responses: { 200: json(one(IngestReport)), ...conflict, ...errorResponses },
    }),
    async (c) => {
      const payload = validate(EventsBody, await c.req.json().catch(() => undefined), 'body');
      const single = !Array.isArray(payload);
      const results = await ingestEvents(c.get('ctx'), single ? [payload] : payload);
      const count = (s: string) => results.filter((r) => r.status === s).length;
      if (single && results[0]?.status === 'rejected') {
        const { code, message, field } = results[0].error!;
        throw new AppError(code as 'VALIDATION_ERROR', message, { field });
      }
      return c.json(serialize(one(IngestReport), { data: { accepted: count('created'), duplicates: count('duplicate'), rejected: count('rejected'), results } }), 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'post', path: '/customers/import', operationId: 'importCustomers', tags, middleware: [guard(deps, 'importCustomers', { rawBody: true })] as const,
      description: 'Streams NDJSON (`application/x-ndjson`) or CSV (`text/csv`, header row) and upserts by email, then phone. Counts against the bulk rate-limit class.',
      request: {
        body: {
          required: true,
          content: {
            'application/x-ndjson': {
              schema: { type: 'string', description: 'One ImportRow JSON object per line (`phone` is read as `phoneNumber`)' },
            },
            'text/csv': {
              schema: { type: 'string', description: 'A header row naming ImportRow fields, then one row per customer; blank cells are not given; booleans true/false/1/0/yes/no' },
            },
          },
        },
      },
      responses: { 200: json(one(ImportReport)), ...conflict, ...errorResponses },
    }),
    async (c) => {
      const type = c.req.header('content-type')?.split(';')[0]?.trim().toLowerCase();
      const format: ImportFormat | undefined = type === 'text/csv' ? 'csv' : type === 'application/x-ndjson' || type === 'application/ndjson' ? 'ndjson' : undefined;
      if (!format) {
        await discardBody(c);
        throw new AppError('VALIDATION_ERROR', 'content-type: send text/csv or application/x-ndjson', { field: 'content-type' });
      }
      if (!announcesBody(c)) throw new AppError('VALIDATION_ERROR', 'body: empty import', { field: 'body' });
      const body = streamedBody(c);
      const rows = readImportRows(body.stream, format, importLimits(deps.config), body.assertWhole);
      return c.json(serialize(one(ImportReport), { data: await importCustomers(c.get('ctx'), rows) }), 200);
    },
  );

  return app;
}

import {
  GraphQLError, getOperationAST, getVariableValues, parse, specifiedRules, validate, visit, type DocumentNode,
} from 'graphql';
import { createHandler, type OperationArgs, type OperationContext } from 'graphql-http';
import { Hono, type Context } from 'hono';
import { isOperation, rateClassOf, type RateClass } from '../../domain/operations.js';
import { assertCleanJson } from '../../domain/validate.js';
import type { Principal } from '../../platform/auth.js';
import { asAppError } from '../../platform/errors.js';
import type { AppDeps, AppEnv } from '../env.js';
import { publicDetails } from '../middleware/errors.js';
import { authenticate, serviceContext, spendPoints } from '../middleware/guard.js';
import type { GraphQLContext } from './context.js';
import { createExecutor } from './executor.js';
import { explorerAssets, explorerPage } from './explorer.js';
import { createCostAnalysis, limitError, maxDepthRule, type RootFieldCost } from './limits.js';
import { Loaders } from './loaders.js';
import { rootResolvers } from './resolvers.js';
import { buildSchema } from './schema.js';
import { implementedOperations, typeResolvers } from './operations/index.js';

/** The decoded values of a document's string literals. */
function stringLiterals(document: DocumentNode): string[] {
  const values: string[] = [];
  visit(document, { StringValue: (node) => void values.push(node.value) });
  return values;
}

// What graphql-http answers without a body (content negotiation), in the GraphQL errors shape.
const BODILESS: Record<number, string> = {
  406: 'Accept must allow application/graphql-response+json or application/json (utf-8)',
  415: 'Content-Type must be application/json (utf-8): {"query": "...", "variables": {...}}',
};

// Query text kept by the document cache, in characters (a parsed document takes a few times more).
const DOCUMENT_CACHE_CHARS = 1_000_000;

/** Parsed and validated documents by query text, least recently used dropped past `maxChars` of text. */
class DocumentCache {
  private readonly documents = new Map<string, DocumentNode>();
  private chars = 0;

  constructor(private readonly maxChars: number) {}

  get(query: string): DocumentNode | undefined {
    const document = this.documents.get(query);
    if (document) {
      this.documents.delete(query); // now the most recently used
      this.documents.set(query, document);
    }
    return document;
  }

  set(query: string, document: DocumentNode): void {
    if (query.length > this.maxChars || this.documents.has(query)) return;
    this.documents.set(query, document);
    this.chars += query.length;
    for (const oldest of this.documents.keys()) {
      if (this.chars <= this.maxChars) break;
      this.documents.delete(oldest);
      this.chars -= oldest.length;
    }
  }
}

/** Root fields' points by rate class; introspection and unknown fields are reads. */
function pointsByClass(costs: Map<string, RootFieldCost>, scopes: ReadonlySet<string>): Map<RateClass, number> {
  const points = new Map<RateClass, number>();
  for (const [field, { points: n }] of costs) {
    const cls = isOperation(field) ? rateClassOf(field, scopes) : 'read';
    points.set(cls, (points.get(cls) ?? 0) + n);
  }
  return points;
}

export function graphqlRoutes(deps: AppDeps) {
  const { config } = deps;
  const schema = buildSchema([rootResolvers(implementedOperations), ...typeResolvers]);
  const rules = [...specifiedRules, maxDepthRule(config.GRAPHQL_MAX_DEPTH)];
  const operationCost = createCostAnalysis(schema, {
    listSize: config.GRAPHQL_LIST_SIZE, costPerPoint: config.GRAPHQL_COST_PER_POINT,
    fieldSizes: Object.fromEntries(['Journey.steps', 'Query.journeySteps', 'JourneyEnrollment.steps'].map((f) => [f, config.JOURNEY_MAX_STEPS])),
  });

  // Parsing and validating a document cost more CPU than executing a page of customers; clients
  // send the same few query texts again and again, so the valid ones are kept (documents are not
  // changed by execution). Invalid texts are not kept: they cost their sender every time.
  const validDocuments = new DocumentCache(DOCUMENT_CACHE_CHARS);
  // Cached documents whose string literals are known to be clean (they do not change).
  const cleanLiterals = new WeakSet<DocumentNode>();
  const execute = createExecutor(config.GRAPHQL_COMPILE_AFTER);

  // Errors thrown by resolvers keep their AppError code; anything else is masked as INTERNAL and
  // logged. Errors of the request itself (syntax, validation, limits, variables) are VALIDATION_ERROR.
  const platformError = (err: Readonly<GraphQLError | Error>, ctx: GraphQLContext): GraphQLError => {
    const gql = err instanceof GraphQLError ? err : undefined;
    if (typeof gql?.extensions?.requestId === 'string') return gql; // already ours
    const original = gql ? gql.originalError : err;
    const extensions = { requestId: ctx.requestId };
    // graphql-jit's errors carry their locations but not the nodes graphql-js computes them from.
    const located = (error: GraphQLError) => (error.locations || !gql?.locations ? error : Object.assign(error, { locations: gql.locations }));
    const known = asAppError(original);
    if (known) return located(new GraphQLError(known.message, { nodes: gql?.nodes, path: gql?.path, extensions: { code: known.code, ...extensions, ...publicDetails(known) } }));
    if (!gql?.path) return located(new GraphQLError(err.message, { nodes: gql?.nodes, extensions: { code: 'VALIDATION_ERROR', ...extensions } }));
    // Once the client has gone, failing fields are the point, not a fault.
    if (!ctx.signal.aborted) ctx.log.error({ err: original ?? err, path: gql.path }, 'graphql resolver failed');
    return located(new GraphQLError('Internal error', { nodes: gql.nodes, path: gql.path, extensions: { code: 'INTERNAL', ...extensions } }));
  };

  /**
   * Parse (bounded by tokens), validate (spec rules, depth), cost (before anything runs), then
   * charge the rate limit by that cost. Returns the arguments to execute, or the request's errors.
   */
  const prepare = async (
    ctx: GraphQLContext,
    params: { query: string; operationName?: string | null; variables?: Record<string, unknown> | null },
    spend: (points: Map<RateClass, number>) => Promise<void>,
  ): Promise<OperationArgs<OperationContext> | readonly GraphQLError[]> => {
    let document = validDocuments.get(params.query);
    if (!document) {
      try {
        document = parse(params.query, { maxTokens: config.GRAPHQL_MAX_TOKENS });
      } catch (err) {
        const tooLong = /more th\w+ \d+ tokens/.test((err as Error).message);
        return [tooLong ? limitError(`query has more than ${config.GRAPHQL_MAX_TOKENS} tokens (GRAPHQL_MAX_TOKENS)`) : (err as GraphQLError)];
      }
      const invalid = validate(schema, document, rules);
      if (invalid.length) return invalid;
      validDocuments.set(params.query, document);
    }
    const operation = getOperationAST(document, params.operationName);
    if (!operation) return [new GraphQLError(params.operationName ? `no operation named "${params.operationName}"` : 'name the operation to run (operationName)')];
    const variables = getVariableValues(schema, operation.variableDefinitions ?? [], params.variables ?? {}, { maxErrors: 25 });
    if (variables.errors) return variables.errors;
    try {
      // PostgreSQL refuses NUL in text: in variables, or a string literal's decoded \u0000. Checked
      // apart, so the variables get the whole depth limit.
      if (!cleanLiterals.has(document)) {
        assertCleanJson(stringLiterals(document), 'query');
        cleanLiterals.add(document);
      }
      assertCleanJson(variables.coerced, 'variables', config.MAX_JSON_DEPTH);
    } catch (err) {
      return [platformError(err as Error, ctx)];
    }
    const costs = operationCost(document, operation, variables.coerced);
    const cost = [...costs.values()].reduce((sum, c) => sum + c.cost, 0);
    if (cost > config.GRAPHQL_MAX_COST) {
      return [limitError(`query cost ${cost} exceeds the limit of ${config.GRAPHQL_MAX_COST} (GRAPHQL_MAX_COST; lists count by their page size)`, operation)];
    }
    await spend(pointsByClass(costs, ctx.principal.scopes));
    return { schema, document, operationName: params.operationName, variableValues: params.variables, contextValue: ctx as never }; // graphql-http's context type wants an index signature
  };

  const app = new Hono<AppEnv>();
  app.route('/graphql/assets', explorerAssets());
  app.get('/graphql', (c) => c.html(explorerPage()));
  app.post('/graphql', async (c) => {
    const principal = await authenticate(c, deps);
    const signal = c.req.raw.signal;
    // 'cancel query': a query in flight when the client goes away is cancelled in PostgreSQL too.
    const service = serviceContext(c, deps, principal, { signal, inflightQueryAbortStrategy: 'cancel query' });
    const ctx: GraphQLContext = { ...service, loaders: new Loaders(service, config.GRAPHQL_LIST_SIZE), signal, listSize: config.GRAPHQL_LIST_SIZE };
    const onAbort = () => ctx.log.info('client disconnected: GraphQL execution stopped');
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      return await answer(c, ctx, principal);
    } finally {
      // Removed when the request ends: undici holds the request's signal strongly until the
      // request is collected, and a listener reaching back to the request (through ctx) kept every
      // GraphQL request in memory for good (20 MB/s at 500 requests/s, test/graphql-memory.test.ts).
      signal.removeEventListener('abort', onAbort);
    }
  });

  async function answer(c: Context<AppEnv>, ctx: GraphQLContext, principal: Principal) {
    let spent = false;
    const spend = (points: Map<RateClass, number>) => {
      spent = true;
      return spendPoints(c, deps, principal, points);
    };
    // A handler per request, because graphql-http's formatError sees no request (creating one does no schema work).
    const handler = createHandler<Context<AppEnv>, GraphQLContext, OperationContext>({
      schema,
      execute,
      onSubscribe: (_req, params) => prepare(ctx, params, spend),
      formatError: (err) => platformError(err, ctx),
    });
    const [body, init] = await handler({
      method: c.req.method, url: c.req.url, headers: c.req.raw.headers, body: () => c.req.text(), raw: c, context: ctx,
    });
    // A request refused before its cost was known still spends a read point.
    if (!spent) await spendPoints(c, deps, principal, new Map([['read', 1]]));
    if (body === null) {
      const errors = [{ message: BODILESS[init.status] ?? init.statusText, extensions: { code: 'VALIDATION_ERROR', requestId: ctx.requestId } }];
      return c.json({ errors }, init.status as 400, init.headers);
    }
    return c.body(body, init.status as 200, init.headers);
  }
  return app;
}

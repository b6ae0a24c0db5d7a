import {
  GraphQLError, parse, type DocumentNode, type ExecutionResult, type FragmentDefinitionNode, type OperationDefinitionNode, type SelectionSetNode,
} from 'graphql';
import { createHandler } from 'graphql-http/lib/use/fetch';
import { Hono } from 'hono';
import { isOperation, OPERATIONS, type RateClass } from '../../domain/operations.js';
import type { ServiceContext } from '../../domain/context.js';
import { AppError, asAppError } from '../../platform/errors.js';
import type { AppDeps, AppEnv } from '../env.js';
import { publicDetails } from '../middleware/errors.js';
import { assertNoNul, authenticate, rateLimit, serviceContext } from '../middleware/guard.js';
import { explorerAssets, explorerPage } from './explorer.js';
import { rootResolvers } from './resolvers.js';
import { buildSchema } from './schema.js';
import { implementedOperations, typeResolvers } from './operations/index.js';

interface GraphQLBody {
  query?: unknown;
  operationName?: unknown;
}

function selectedOperation(doc: DocumentNode, operationName: unknown): OperationDefinitionNode | undefined {
  const ops = doc.definitions.filter((d): d is OperationDefinitionNode => d.kind === 'OperationDefinition');
  return typeof operationName === 'string' && operationName ? ops.find((o) => o.name?.value === operationName) : ops[0];
}

/** The rate classes of the root fields a request will run (aliases and fragments included). */
function rateClasses(body: GraphQLBody): RateClass[] {
  if (typeof body.query !== 'string') return ['read'];
  let doc: DocumentNode;
  try {
    doc = parse(body.query);
  } catch {
    return ['read']; // graphql-http answers the syntax error
  }
  const fragments = new Map(
    doc.definitions.filter((d): d is FragmentDefinitionNode => d.kind === 'FragmentDefinition').map((f) => [f.name.value, f]),
  );
  const fields = (set: SelectionSetNode, seen: Set<string>): string[] =>
    set.selections.flatMap((s) => {
      if (s.kind === 'Field') return [s.name.value];
      if (s.kind === 'InlineFragment') return fields(s.selectionSet, seen);
      const fragment = fragments.get(s.name.value);
      if (!fragment || seen.has(s.name.value)) return [];
      return fields(fragment.selectionSet, new Set(seen).add(s.name.value));
    });
  const op = selectedOperation(doc, body.operationName);
  const classes = (op ? fields(op.selectionSet, new Set()) : []).filter(isOperation).map((name) => OPERATIONS[name].rate);
  // Introspection and unknown fields cost a read.
  return classes.length ? classes : ['read'];
}

// Errors thrown by resolvers keep their AppError code; anything else is masked as INTERNAL and logged.
function formatErrors(result: ExecutionResult, deps: AppDeps, requestId: string): ExecutionResult {
  if (!result.errors?.length) return result;
  const errors = result.errors.map((err) => {
    const original = err.originalError;
    let code: string;
    let message = err.message;
    const known = asAppError(original);
    let details = {};
    if (known) {
      code = known.code;
      message = known.message;
      details = publicDetails(known);
    } else if (!err.path) code = 'VALIDATION_ERROR'; // request-level: variable and argument coercion
    else {
      deps.log.error({ err: original ?? err, requestId, path: err.path }, 'graphql resolver failed');
      code = 'INTERNAL';
      message = 'Internal error';
    }
    return new GraphQLError(message, { nodes: err.nodes, path: err.path, extensions: { code, requestId, ...details } });
  });
  return { ...result, errors };
}

export function graphqlRoutes(deps: AppDeps) {
  const schema = buildSchema([rootResolvers(implementedOperations), ...typeResolvers]);
  // graphql-http's fetch adapter takes only the Request, so the per-request context rides on it.
  const contexts = new WeakMap<Request, ServiceContext>();
  const handler = createHandler({
    schema,
    context: (req) => contexts.get(req.raw) as never,
    onOperation: (req, _args, result) => formatErrors(result as ExecutionResult, deps, contexts.get(req.raw)!.requestId),
  });

  const app = new Hono<AppEnv>();
  app.route('/graphql/assets', explorerAssets());
  app.get('/graphql', (c) => c.html(explorerPage()));
  app.post('/graphql', async (c) => {
    const principal = await authenticate(c, deps);
    const text = await c.req.text();
    let body: GraphQLBody = {};
    try {
      body = JSON.parse(text) as GraphQLBody;
    } catch {
      throw new AppError('VALIDATION_ERROR', 'request body must be JSON: {"query": "...", "variables": {...}}');
    }
    assertNoNul(body);
    await rateLimit(c, deps, principal, rateClasses(body));
    const ctx = serviceContext(c, deps, principal);
    const request = new Request(c.req.url, { method: 'POST', headers: c.req.raw.headers, body: text });
    contexts.set(request, ctx);
    const response = await handler(request);
    const payload = (await response.json()) as ExecutionResult;
    // Syntax and validation errors never reach onOperation: give them the platform's code too.
    for (const err of payload.errors ?? []) {
      (err as { extensions?: Record<string, unknown> }).extensions = { code: 'VALIDATION_ERROR', requestId: ctx.requestId, ...err.extensions };
    }
    return c.json(payload, response.status as 200);
  });
  return app;
}

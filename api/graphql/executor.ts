import { BREAK, execute, visit, type DocumentNode, type ExecutionArgs, type ExecutionResult } from 'graphql';
import type { CompiledQuery } from 'graphql-jit';

type Execute = (args: ExecutionArgs) => Promise<ExecutionResult> | ExecutionResult;

/** Documents whose operations are kept compiled, the least recently run dropped first. */
export const COMPILED_DOCUMENTS_AT_MOST = 100;
/**
 * Longest document compiled, in characters. The code graphql-jit generates grows with the
 * document: the explorer's introspection query (1,927 characters) compiles in 6 ms to 200 KB of heap.
 */
export const COMPILED_CHARS_AT_MOST = 2_000;

let jit: Promise<typeof import('graphql-jit')> | undefined;

/**
 * graphql-js's `execute`, except that an operation run `compileAfter` times is compiled with
 * graphql-jit and runs compiled from then on; one-off documents never are. graphql-js resolves
 * every field of every row through one generic path (argument values, resolve info, type checks):
 * for a page of 25 customers, 300 fields and about a fifth of the request's CPU. The compiled
 * function calls the same resolvers and serializers with the same null propagation, specialised
 * to the document. It reads a field that has no resolver as a plain property: a value computed on
 * demand (a connection's totalCount) needs a resolver (schema.ts gives totalCount one).
 *
 * Values of GraphQL's own scalars (String, Int, Float, Boolean, ID) and of enums are answered as
 * the resolvers give them, not through graphql-js's coercing serializers: graphql-jit calls those
 * with a path and a location array built for each value, which was a quarter of a customer page's
 * garbage and 15% of its CPU. The resolvers give them typed (entities, numbers parsed from
 * bigint), and test/graphql-compiled.test.ts holds every Query field's answer to graphql-js's.
 * Custom scalars (DateTime, JSON, ActivityType) are still serialized.
 *
 * graphql-jit (and the serializers it brings) is loaded when the first operation is compiled: an
 * API that serves no repeated GraphQL, such as one taking a bulk import, does not carry it (loaded
 * at start, the API's peak RSS during an import of 1,000,000 customers was 408-424 MiB in three
 * runs, against 399-414 loaded on first use).
 *
 * Documents come from the route's cache of valid ones. Their run counts are held weakly, and at
 * most COMPILED_DOCUMENTS_AT_MOST of them are kept compiled: what a client can make this keep is
 * bounded by those two numbers, whatever it sends.
 *
 * graphql-jit writes a document's literal arguments into the code it generates, as JSON in which
 * it then replaces its own markers (`"__MAGIC_DATE__<uuid>…"` becomes `new Date(…)`). Those markers
 * are constants of its source: a string literal carrying one ran code of the sender's choosing in
 * this process (graphql-jit 0.8.9; test/graphql-compiled.test.ts). A document with one in any
 * string or name runs through graphql-js, always.
 */
export function createExecutor(compileAfter: number): Execute {
  const runs = new WeakMap<DocumentNode, Map<string, number>>();
  const compiled = new Map<DocumentNode, Map<string, CompiledQuery | 'not compilable'>>();
  return (args) => {
    const { document } = args;
    const name = args.operationName ?? '';
    const operations = compiled.get(document);
    const kept = operations?.get(name);
    if (kept) {
      compiled.delete(document); // now the most recently run
      compiled.set(document, operations!);
      if (kept !== 'not compilable') return kept.query(args.rootValue, args.contextValue, args.variableValues) as Promise<ExecutionResult> | ExecutionResult;
      return execute(args);
    }
    let counts = runs.get(document);
    if (!counts) runs.set(document, (counts = new Map()));
    const ran = counts.get(name) ?? 0;
    counts.set(name, ran + 1);
    if (ran < compileAfter || (document.loc?.source.body.length ?? Infinity) > COMPILED_CHARS_AT_MOST) return execute(args);
    if (carriesMarker(document)) {
      compiled.set(document, (operations ?? new Map()).set(name, 'not compilable'));
      return execute(args);
    }
    return (jit ??= import('graphql-jit')).then(({ compileQuery, isCompiledQuery }) => {
      // Stack traces of resolver errors are not captured twice: ours are logged from the original error.
      const query = compileQuery(args.schema, document, name || undefined, { disablingCapturingStackErrors: true, disableLeafSerialization: true });
      const compilable = isCompiledQuery(query) ? query : undefined;
      compiled.set(document, (compiled.get(document) ?? new Map()).set(name, compilable ?? 'not compilable'));
      if (compiled.size > COMPILED_DOCUMENTS_AT_MOST) compiled.delete(compiled.keys().next().value!);
      return compilable ? compilable.query(args.rootValue, args.contextValue, args.variableValues) : execute(args);
    }) as Promise<ExecutionResult>;
  };
}

/** Whether any string (decoded) or name of the document holds one of graphql-jit's code markers. */
function carriesMarker(document: DocumentNode): boolean {
  let found = false;
  const check = (node: { value: string }) => {
    if (!node.value.includes('__MAGIC_')) return undefined;
    found = true;
    return BREAK;
  };
  visit(document, { StringValue: check, Name: check });
  return found;
}

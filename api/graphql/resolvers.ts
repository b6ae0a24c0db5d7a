import type { IResolvers } from '@graphql-tools/utils';
import { Kind, parse, type GraphQLResolveInfo, type ObjectTypeDefinitionNode, type SelectionSetNode } from 'graphql';
import { assertTenant, authorize } from '../../domain/context.js';
import { isOperation, type OperationName } from '../../domain/operations.js';
import type { GraphQLContext } from './context.js';
import { typeDefs } from './schema.js';

export type RootResolver = (args: any, ctx: GraphQLContext, info: GraphQLResolveInfo) => unknown;

/** Whether the field being resolved selects `name` among its subfields (through fragments too). */
export function selects(info: GraphQLResolveInfo, name: string): boolean {
  const within = (set: SelectionSetNode | undefined): boolean =>
    !!set?.selections.some((s) =>
      s.kind === Kind.FIELD ? s.name.value === name
      : s.kind === Kind.INLINE_FRAGMENT ? within(s.selectionSet)
      : within(info.fragments[s.name.value]?.selectionSet));
  return info.fieldNodes.some((field) => within(field.selectionSet));
}

/**
 * The names of the fields selected at `path` below the field being resolved (through fragments
 * and aliases): `['edges', 'node']` of a connection gives what its nodes are asked for.
 */
export function selectedFields(info: GraphQLResolveInfo, path: readonly string[]): Set<string> {
  const names = new Set<string>();
  const walk = (set: SelectionSetNode | undefined, depth: number): void => {
    for (const s of set?.selections ?? []) {
      if (s.kind === Kind.INLINE_FRAGMENT) walk(s.selectionSet, depth);
      else if (s.kind === Kind.FRAGMENT_SPREAD) walk(info.fragments[s.name.value]?.selectionSet, depth);
      else if (depth === path.length) names.add(s.name.value);
      else if (s.name.value === path[depth]) walk(s.selectionSet, depth + 1);
    }
  };
  for (const field of info.fieldNodes) walk(field.selectionSet, 0);
  return names;
}

// Root fields of the spec's Query and Mutation types, in schema order.
function rootFields(typeName: 'Query' | 'Mutation'): string[] {
  const doc = parse(typeDefs[0]!);
  const type = doc.definitions.find(
    (d): d is ObjectTypeDefinitionNode => d.kind === 'ObjectTypeDefinition' && d.name.value === typeName,
  );
  return type?.fields?.map((f) => f.name.value) ?? [];
}

/**
 * Every root field gets the same guard: scope from the operation catalogue, then any `tenantId`
 * argument must be the token's. A root field without an implementation stops the start, like one
 * missing from the catalogue: the schema is served whole.
 */
export function rootResolvers(implemented: Partial<Record<OperationName, RootResolver>>): IResolvers {
  const build = (typeName: 'Query' | 'Mutation') =>
    Object.fromEntries(
      rootFields(typeName).map((field) => {
        if (!isOperation(field)) throw new Error(`${typeName}.${field} is missing from domain/operations.ts`);
        const impl = implemented[field];
        if (!impl) throw new Error(`${typeName}.${field} has no resolver in api/graphql/operations/`);
        const resolver = (_parent: unknown, args: Record<string, any>, ctx: GraphQLContext, info: GraphQLResolveInfo) => {
          ctx.signal.throwIfAborted(); // mutations run one after another: none starts once the client has gone
          // What an earlier mutation of the request loaded may have changed since.
          if (typeName === 'Mutation') ctx.loaders.forget();
          authorize(ctx.principal, field);
          assertTenant(ctx.principal, args.tenantId);
          assertTenant(ctx.principal, args.input?.tenantId, 'input.tenantId');
          return impl(args, ctx, info);
        };
        return [field, resolver];
      }),
    );
  return { Query: build('Query'), Mutation: build('Mutation') };
}

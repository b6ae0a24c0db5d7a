import type { IResolvers } from '@graphql-tools/utils';
import { parse, type ObjectTypeDefinitionNode } from 'graphql';
import { assertTenant, authorize } from '../../domain/context.js';
import { isOperation, type OperationName } from '../../domain/operations.js';
import type { GraphQLContext } from './context.js';
import { forgetLoaded } from './loaders.js';
import { typeDefs } from './schema.js';

export type RootResolver = (args: any, ctx: GraphQLContext) => unknown;

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
        const resolver = (_parent: unknown, args: Record<string, any>, ctx: GraphQLContext) => {
          ctx.signal.throwIfAborted(); // mutations run one after another: none starts once the client has gone
          // What an earlier mutation of the request loaded may have changed since.
          if (typeName === 'Mutation') forgetLoaded(ctx.loaders);
          authorize(ctx.principal, field);
          assertTenant(ctx.principal, args.tenantId);
          assertTenant(ctx.principal, args.input?.tenantId, 'input.tenantId');
          return impl(args, ctx);
        };
        return [field, resolver];
      }),
    );
  return { Query: build('Query'), Mutation: build('Mutation') };
}

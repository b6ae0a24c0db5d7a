import { getNamedType, isLeafType, isNonNullType, isObjectType, type GraphQLField, type GraphQLOutputType } from 'graphql';

/**
 * A selection of every field of `type` that needs no argument, and of the objects under it, `depth`
 * levels deep (scalars at the last level). Pass types of this module's graphql (its type
 * predicates are per module): a schema built with `buildSchema` from the served SDL.
 */
export function selection(type: GraphQLOutputType, depth: number): string {
  const named = getNamedType(type);
  if (isLeafType(named)) return '';
  if (!isObjectType(named)) return '{ __typename }';
  const parts = ['__typename'];
  for (const f of Object.values(named.getFields()) as GraphQLField<unknown, unknown>[]) {
    if (f.args.some((arg) => isNonNullType(arg.type))) continue;
    if (isLeafType(getNamedType(f.type))) parts.push(f.name);
    else if (depth > 1) parts.push(`${f.name} ${selection(f.type, depth - 1)}`);
  }
  return `{ ${parts.join(' ')} }`;
}

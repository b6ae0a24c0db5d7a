import { readFileSync } from 'node:fs';
import { makeExecutableSchema } from '@graphql-tools/schema';
import { GraphQLScalarType, isObjectType, Kind, type GraphQLSchema } from 'graphql';
import { DateTimeResolver, JSONResolver } from 'graphql-scalars';
import type { IResolvers } from '@graphql-tools/utils';
import { ACTIVITY_TYPE_PATTERN } from '../../db/entities/enums.js';

const sdl = (file: string) => readFileSync(new URL(file, import.meta.url), 'utf8');

// schema.graphql is graphql-api.md's schema, verbatim; implied-types.graphql defines what it leaves out.
export const typeDefs = [sdl('./schema.graphql'), sdl('./implied-types.graphql')];


function activityType(value: unknown): string {
  if (typeof value !== 'string' || value.length > 200 || !ACTIVITY_TYPE_PATTERN.test(value)) {
    throw new TypeError(`ActivityType must be lower-case words joined by ".", "_" or "-", got ${JSON.stringify(value)}`);
  }
  return value;
}

const ActivityTypeScalar = new GraphQLScalarType({
  name: 'ActivityType',
  serialize: (value) => String(value),
  parseValue: activityType,
  parseLiteral: (ast) => activityType(ast.kind === Kind.STRING ? ast.value : undefined),
});

// graphql-scalars' DateTime serializes to a Date, which JSON.stringify turns into text through
// its toJSON, off V8's fast path for the whole answer; it is serialized to that text here instead.
const DateTimeScalar = new GraphQLScalarType({
  ...DateTimeResolver.toConfig(),
  serialize: (value) => {
    const date = DateTimeResolver.serialize(value);
    return date instanceof Date ? date.toISOString() : date;
  },
});

export function buildSchema(resolvers: IResolvers[]): GraphQLSchema {
  const schema = makeExecutableSchema({
    typeDefs,
    resolvers: [{ DateTime: DateTimeScalar, JSON: JSONResolver, ActivityType: ActivityTypeScalar }, ...resolvers],
  });
  // Connections count on demand: their totalCount is a getter answering a promise
  // (domain/pagination.ts LazyConnection). Compiled execution (executor.ts) reads a field without
  // a resolver as a plain value, so the field gets one, which awaits it as graphql-js does.
  for (const type of Object.values(schema.getTypeMap())) {
    if (!isObjectType(type) || type.name.startsWith('__')) continue;
    const field = type.getFields().totalCount;
    if (field && !field.resolve) field.resolve = (connection: { totalCount: unknown }) => connection.totalCount;
  }
  return schema;
}

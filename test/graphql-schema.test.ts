import { existsSync, readFileSync } from 'node:fs';
import {
  buildClientSchema, getIntrospectionQuery, isEnumType, isInputObjectType, isInterfaceType, isObjectType, isScalarType, isUnionType,
  parse, print, type GraphQLNamedType, type GraphQLSchema, type TypeDefinitionNode,
} from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newTenant, startTestApi, token, type TestApi } from './support/api.js';

// The spec as shipped beside the repository (shared/spec), or the verbatim copy the server loads.
const specFile = [new URL('../../shared/spec/graphql-schema.graphql', import.meta.url), new URL('../api/graphql/schema.graphql', import.meta.url)]
  .find((u) => existsSync(u))!;
const spec = parse(readFileSync(specFile, 'utf8'));
const specTypes = spec.definitions.filter((d): d is TypeDefinitionNode => 'name' in d && d.kind.endsWith('TypeDefinition'));

let api: TestApi;
let served: GraphQLSchema;
beforeAll(async () => {
  api = await startTestApi();
  const res = await api.graphql(await token(newTenant(), ['crm:read']), getIntrospectionQuery());
  expect(res.status).toBe(200);
  served = buildClientSchema(res.body.data);
});
afterAll(() => api.close());

// A type's shape as SDL-ish lines: fields with argument and result types, enum values, input fields.
function shapeOfServed(type: GraphQLNamedType): string[] {
  if (isObjectType(type) || isInterfaceType(type)) {
    return Object.values(type.getFields()).map(
      (f) => `${f.name}(${f.args.map((a) => `${a.name}: ${a.type}`).join(', ')}): ${f.type}`,
    );
  }
  if (isInputObjectType(type)) return Object.values(type.getFields()).map((f) => `${f.name}: ${f.type}`);
  if (isEnumType(type)) return type.getValues().map((v) => v.name);
  if (isUnionType(type)) return type.getTypes().map((t) => t.name);
  return [];
}

function shapeOfSpec(def: TypeDefinitionNode): string[] {
  switch (def.kind) {
    case 'ObjectTypeDefinition':
    case 'InterfaceTypeDefinition':
      return (def.fields ?? []).map(
        (f) => `${f.name.value}(${(f.arguments ?? []).map((a) => `${a.name.value}: ${print(a.type)}`).join(', ')}): ${print(f.type)}`,
      );
    case 'InputObjectTypeDefinition':
      return (def.fields ?? []).map((f) => `${f.name.value}: ${print(f.type)}`);
    case 'EnumTypeDefinition':
      return (def.values ?? []).map((v) => v.name.value);
    case 'UnionTypeDefinition':
      return (def.types ?? []).map((t) => t.name.value);
    default:
      return [];
  }
}

const KIND: Record<string, (t: GraphQLNamedType) => boolean> = {
  ObjectTypeDefinition: isObjectType,
  InterfaceTypeDefinition: isInterfaceType,
  InputObjectTypeDefinition: isInputObjectType,
  EnumTypeDefinition: isEnumType,
  UnionTypeDefinition: isUnionType,
  ScalarTypeDefinition: isScalarType,
};

describe('served GraphQL schema', () => {
  it('was read from the spec file, of which the served copy is verbatim', () => {
    expect(specTypes.length).toBeGreaterThan(50);
    const shipped = new URL('../../shared/spec/graphql-schema.graphql', import.meta.url);
    if (existsSync(shipped)) {
      expect(readFileSync(new URL('../api/graphql/schema.graphql', import.meta.url), 'utf8')).toBe(readFileSync(shipped, 'utf8'));
    }
  });

  it.each(specTypes.map((d) => [d.name.value, d] as const))('%s matches graphql-api.md exactly', (name, def) => {
    const type = served.getType(name);
    expect(type, `${name} is not served`).toBeDefined();
    expect(KIND[def.kind]!(type!), `${name} has the wrong kind`).toBe(true);
    expect(shapeOfServed(type!).sort()).toEqual(shapeOfSpec(def).sort());
  });

  it('defines every type the spec references but leaves out', () => {
    const implied = [
      'Club', 'ActivityType', 'ActivityEdge', 'CampaignConnection', 'JourneyEnrollmentConnection', 'SocialPostFilter',
      'SocialPostConnection', 'EngagementAnalytics', 'CampaignAnalytics', 'JourneyAnalytics', 'SocialAnalytics',
      'UpdateCampaignInput', 'UpdateJourneyInput', 'UpdateJourneyStepInput', 'UpdateSocialPostInput', 'UpdateEventPromotionInput',
    ];
    const defined = new Set(specTypes.map((d) => d.name.value));
    for (const name of implied) {
      expect(defined.has(name), `${name} is now in the spec`).toBe(false);
      expect(served.getType(name), `${name} is not served`).toBeDefined();
    }
    expect(isScalarType(served.getType('ActivityType'))).toBe(true);
  });

  it('serves no root field the spec does not have', () => {
    for (const root of ['Query', 'Mutation'] as const) {
      const specRoot = specTypes.find((d) => d.name.value === root)!;
      expect(Object.keys((served.getType(root) as any).getFields()).sort()).toEqual(shapeOfSpec(specRoot).map((s) => s.split('(')[0]).sort());
    }
  });
});

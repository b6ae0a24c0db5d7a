import {
  GraphQLError, Kind, SchemaMetaFieldDef, TypeMetaFieldDef, TypeNameMetaFieldDef, getArgumentValues, getNamedType, getNullableType,
  isCompositeType, isIntrospectionType, isListType, isObjectType,
  type ASTVisitor, type DocumentNode, type FieldNode, type FragmentDefinitionNode, type GraphQLCompositeType, type GraphQLField,
  type GraphQLNamedType, type GraphQLSchema, type OperationDefinitionNode, type SelectionSetNode, type ValidationContext,
} from 'graphql';
import { DEFAULT_PAGE, MAX_PAGE } from '../../domain/pagination.js';

// What a GraphQL request may ask for, judged from the document alone, before anything executes.

export const limitError = (message: string, node?: OperationDefinitionNode) =>
  new GraphQLError(message, { nodes: node, extensions: { code: 'VALIDATION_ERROR' } });

/**
 * A validation rule refusing fields nested deeper than `max`, fragments followed (each measured
 * once). Introspection subtrees count as one level: graphql's MaxIntrospectionDepthRule bounds them.
 */
export function maxDepthRule(max: number) {
  return (context: ValidationContext): ASTVisitor => {
    const fragmentDepth = new Map<string, number>();
    const depthOf = (set: SelectionSetNode | undefined, visiting: Set<string>): number => {
      let deepest = 0;
      for (const s of set?.selections ?? []) {
        if (s.kind === Kind.FIELD) {
          deepest = Math.max(deepest, s.name.value.startsWith('__') ? 1 : 1 + depthOf(s.selectionSet, visiting));
        } else if (s.kind === Kind.INLINE_FRAGMENT) {
          deepest = Math.max(deepest, depthOf(s.selectionSet, visiting));
        } else {
          const name = s.name.value;
          let depth = fragmentDepth.get(name);
          if (depth === undefined) {
            const fragment = context.getFragment(name);
            if (!fragment || visiting.has(name)) continue; // unknown or cyclic: other rules report it
            visiting.add(name);
            depth = depthOf(fragment.selectionSet, visiting);
            visiting.delete(name);
            fragmentDepth.set(name, depth);
          }
          deepest = Math.max(deepest, depth);
        }
      }
      return deepest;
    };
    return {
      OperationDefinition(op) {
        const depth = depthOf(op.selectionSet, new Set());
        if (depth > max) context.reportError(limitError(`query depth ${depth} exceeds the limit of ${max} (GRAPHQL_MAX_DEPTH)`, op));
      },
    };
  };
}

export interface CostLimits {
  /** Length of a list field without paging arguments (Customer.notes, Query.segments): its resolvers stop there. */
  listSize: number;
  /** Cost that one rate-limit point buys. */
  costPerPoint: number;
  /** Lists bounded by something else than listSize (`Journey.steps`: the steps a journey may have). */
  fieldSizes?: Record<string, number>;
}

/** Cost and rate-limit points of one root field (summed over its aliases and repeats). */
export interface RootFieldCost {
  cost: number;
  points: number;
}

// Introspection answers from memory, without the database: its objects count a tenth.
const INTROSPECTION_DISCOUNT = 10;

const isConnection = (type: GraphQLNamedType) => isObjectType(type) && type.name.endsWith('Connection') && 'edges' in type.getFields();

/**
 * The expected lengths of introspection lists in this schema (averages: `types { fields }` visits
 * every type), so the explorer's introspection query costs what it really resolves.
 */
function introspectionListSizes(schema: GraphQLSchema): Map<string, number> {
  const types = Object.values(schema.getTypeMap());
  const directives = schema.getDirectives();
  const count = (pick: (t: GraphQLNamedType) => readonly unknown[] | undefined) => types.reduce((n, t) => n + (pick(t)?.length ?? 0), 0);
  const fields = types.flatMap((t) => (isObjectType(t) ? Object.values(t.getFields()) : []));
  const avg = (total: number, of: number) => Math.max(1, Math.ceil(total / Math.max(1, of)));
  return new Map([
    ['__Schema.types', types.length],
    ['__Schema.directives', directives.length],
    ['__Type.fields', avg(fields.length, types.length)],
    ['__Type.inputFields', avg(count((t) => ('getFields' in t && !isCompositeType(t) ? Object.values(t.getFields()) : undefined)), types.length)],
    ['__Type.enumValues', avg(count((t) => ('getValues' in t ? t.getValues() : undefined)), types.length)],
    ['__Type.interfaces', avg(count((t) => ('getInterfaces' in t ? t.getInterfaces() : undefined)), types.length)],
    ['__Type.possibleTypes', avg(count((t) => ('getTypes' in t ? t.getTypes() : undefined)), types.length)],
    ['__Field.args', avg(fields.reduce((n, f) => n + f.args.length, 0), fields.length)],
    ['__Directive.args', avg(directives.reduce((n, d) => n + d.args.length, 0), directives.length)],
  ]);
}

/**
 * Query cost, computed from the document and the variables before execution: every object-typed
 * field costs 1, and what it selects counts once per item of the list it returns (the page size
 * for connections: `first`/`last`/`pagination.first` or the default page; `limits.listSize` for
 * other lists; the schema's own averages for introspection lists). Leaf fields cost nothing.
 * Fragments are costed once each, never expanded.
 */
export function createCostAnalysis(schema: GraphQLSchema, limits: CostLimits) {
  const introspectionSizes = introspectionListSizes(schema);

  function fieldDefinition(parent: GraphQLCompositeType, name: string): GraphQLField<unknown, unknown> | undefined {
    if (name === '__typename') return TypeNameMetaFieldDef;
    if (parent === schema.getQueryType()) {
      if (name === '__schema') return SchemaMetaFieldDef;
      if (name === '__type') return TypeMetaFieldDef;
    }
    return 'getFields' in parent ? parent.getFields()[name] : undefined;
  }

  /** Items per page of a connection field; a connection without paging arguments answers a full page. */
  function pageSize(def: GraphQLField<unknown, unknown>, node: FieldNode, variables: Record<string, unknown>): number {
    const names = def.args.map((a) => a.name);
    if (!names.some((n) => n === 'first' || n === 'last' || n === 'pagination')) return MAX_PAGE;
    let args: Record<string, any> = {};
    try {
      args = getArgumentValues(def, node, variables);
    } catch {
      // invalid arguments fail in execution with their own message
    }
    const size = args.first ?? args.last ?? args.pagination?.first ?? args.pagination?.last ?? DEFAULT_PAGE;
    return typeof size === 'number' && Number.isFinite(size) ? Math.min(Math.max(size, 0), MAX_PAGE) : DEFAULT_PAGE;
  }

  function listSize(parent: GraphQLCompositeType, fieldName: string, page: number): number {
    if (isConnection(parent) && fieldName === 'edges') return page;
    if (isIntrospectionType(parent)) return introspectionSizes.get(`${parent.name}.${fieldName}`) ?? limits.listSize;
    return limits.fieldSizes?.[`${parent.name}.${fieldName}`] ?? limits.listSize;
  }

  /** Cost and points per root field name of `operation`; `variables` are the coerced variable values. */
  return function operationCost(document: DocumentNode, operation: OperationDefinitionNode, variables: Record<string, unknown>): Map<string, RootFieldCost> {
    const fragments = new Map(
      document.definitions.filter((d): d is FragmentDefinitionNode => d.kind === Kind.FRAGMENT_DEFINITION).map((f) => [f.name.value, f]),
    );
    const fragmentCost = new Map<string, number>();
    const typeOf = (name: string | undefined, fallback: GraphQLCompositeType) => {
      const type = name ? schema.getType(name) : fallback;
      return type && isCompositeType(type) ? type : undefined;
    };

    // Cost of resolving `set` once on an object of `type`; `page` is the page size when `type` is a connection.
    const setCost = (set: SelectionSetNode, type: GraphQLCompositeType, page: number): number => {
      let total = 0;
      for (const s of set.selections) {
        if (s.kind === Kind.FIELD) total += fieldCost(s, type, page);
        else if (s.kind === Kind.INLINE_FRAGMENT) {
          const on = typeOf(s.typeCondition?.name.value, type);
          if (on) total += setCost(s.selectionSet, on, page);
        } else {
          const key = `${s.name.value}@${page}`;
          let cost = fragmentCost.get(key);
          if (cost === undefined) {
            const fragment = fragments.get(s.name.value);
            const on = fragment && typeOf(fragment.typeCondition.name.value, type);
            fragmentCost.set(key, 0); // a cycle (refused by validation) adds nothing
            cost = fragment && on ? setCost(fragment.selectionSet, on, page) : 0;
            fragmentCost.set(key, cost);
          }
          total += cost;
        }
      }
      return total;
    };

    const fieldCost = (node: FieldNode, parent: GraphQLCompositeType, page: number): number => {
      const def = fieldDefinition(parent, node.name.value);
      const type = def && getNamedType(def.type);
      if (!def || !type || !isCompositeType(type) || !node.selectionSet) return 0;
      const items = isListType(getNullableType(def.type)) ? listSize(parent, node.name.value, page) : 1;
      const childPage = isConnection(type) ? pageSize(def, node, variables) : page;
      const cost = 1 + items * setCost(node.selectionSet, type, childPage);
      return def === SchemaMetaFieldDef || def === TypeMetaFieldDef ? Math.ceil(cost / INTROSPECTION_DISCOUNT) : cost;
    };

    // Root fields by name, fragments at the root costed once each as well.
    const root = operation.operation === 'mutation' ? schema.getMutationType() : schema.getQueryType();
    const rootFragments = new Map<string, Map<string, RootFieldCost>>();
    const add = (into: Map<string, RootFieldCost>, name: string, c: RootFieldCost, times = 1) => {
      const prev = into.get(name) ?? { cost: 0, points: 0 };
      into.set(name, { cost: prev.cost + c.cost * times, points: prev.points + c.points * times });
    };
    const rootCosts = (set: SelectionSetNode, visiting: Set<string>): Map<string, RootFieldCost> => {
      const out = new Map<string, RootFieldCost>();
      for (const s of set.selections) {
        if (s.kind === Kind.FIELD) {
          const cost = root ? fieldCost(s, root, 0) : 0;
          add(out, s.name.value, { cost, points: Math.max(1, Math.ceil(cost / limits.costPerPoint)) });
        } else {
          let inner: Map<string, RootFieldCost> | undefined;
          if (s.kind === Kind.INLINE_FRAGMENT) inner = rootCosts(s.selectionSet, visiting);
          else {
            const name = s.name.value;
            inner = rootFragments.get(name);
            const fragment = fragments.get(name);
            if (!inner && fragment && !visiting.has(name)) {
              inner = rootCosts(fragment.selectionSet, new Set(visiting).add(name));
              rootFragments.set(name, inner);
            }
          }
          for (const [name, c] of inner ?? []) add(out, name, c);
        }
      }
      return out;
    };
    return rootCosts(operation.selectionSet, new Set());
  };
}

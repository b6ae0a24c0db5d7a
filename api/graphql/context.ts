import type { ServiceContext } from '../../domain/context.js';
import type { Loaders } from './loaders.js';

/** What GraphQL resolvers receive: the service context plus this request's loaders and lifetime. */
export interface GraphQLContext extends ServiceContext {
  loaders: Loaders;
  /** Most items a list field without paging arguments answers (GRAPHQL_LIST_SIZE): what its cost assumes. */
  listSize: number;
  /** Aborted when the client goes away: root fields not yet begun are not, and the EntityManager cancels its queries. */
  signal: AbortSignal;
}

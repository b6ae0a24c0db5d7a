import type { ServiceContext } from '../../domain/context.js';
import type { Loaders } from './loaders.js';

/** What GraphQL resolvers receive: the service context plus this request's loaders and lifetime. */
export interface GraphQLContext extends ServiceContext {
  loaders: Loaders;
  /** Aborted when the client goes away: root fields not yet begun are not, and the EntityManager cancels its queries. */
  signal: AbortSignal;
}

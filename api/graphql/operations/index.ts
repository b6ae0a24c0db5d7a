import type { OperationName } from '../../../domain/operations.js';
import type { RootResolver } from '../resolvers.js';

// Root fields implemented so far, by domain; every other field answers NOT_IMPLEMENTED.
export const implementedOperations: Partial<Record<OperationName, RootResolver>> = {};

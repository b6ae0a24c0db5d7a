import type { EntityManager } from '@mikro-orm/postgresql';
import type { Client } from '@temporalio/client';
import type { Principal } from '../platform/auth.js';
import type { Config } from '../platform/config.js';
import { AppError } from '../platform/errors.js';
import type { Logger } from '../platform/logger.js';
import { OPERATIONS, type OperationName } from './operations.js';

// What every service call receives: who is calling, for which tenant, and the request's own
// EntityManager. Services never read the tenant from their arguments, only from here.
export interface ServiceContext {
  principal: Principal;
  tenantId: string;
  requestId: string;
  em: EntityManager;
  temporal: Client;
  config: Config;
  log: Logger;
}

export function authorize(principal: Principal, operation: OperationName): void {
  const { scope } = OPERATIONS[operation];
  if (!principal.scopes.has(scope)) {
    throw new AppError('FORBIDDEN', `${operation} requires the ${scope} scope`, { scope });
  }
}

/** A `tenantId` passed as an argument must be the token's: tokens never reach across tenants. */
export function assertTenant(principal: Principal, tenantId: unknown, field = 'tenantId'): void {
  if (tenantId !== undefined && tenantId !== null && tenantId !== principal.tenantId) {
    throw new AppError('FORBIDDEN', `${field} does not match the tenant of the token`, { field });
  }
}

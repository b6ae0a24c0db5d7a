import type { Client } from '@temporalio/client';
import type { Orm } from '../db/orm.js';
import type { ServiceContext } from '../domain/context.js';
import type { Principal, VerifyToken } from '../platform/auth.js';
import type { Config } from '../platform/config.js';
import type { Logger } from '../platform/logger.js';
import type { ApiMetrics } from '../platform/metrics.js';
import type { RateLimits } from '../platform/rate-limit.js';
import type { TemporalProbe } from '../platform/temporal.js';

// What the HTTP app is built from: everything with I/O is passed in, so tests build the same app
// against their own database and Temporal server.
export interface AppDeps {
  config: Config;
  orm: Orm;
  temporal: Client;
  /** Readiness only; see platform/temporal.ts for why it is not `temporal`. */
  temporalProbe: TemporalProbe;
  rateLimits: RateLimits;
  verifyToken: VerifyToken;
  log: Logger;
  metrics: ApiMetrics;
}

export interface AppEnv {
  Variables: {
    requestId: string;
    log: Logger;
    principal: Principal;
    ctx: ServiceContext;
    /** The byte limit of a route that streams its body (see middleware/body-limit.ts). */
    streamedBodyLimit: number;
  };
}

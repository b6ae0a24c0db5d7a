import type pg from 'pg';
import { RateLimiterMemory, RateLimiterPostgres, RateLimiterRes } from 'rate-limiter-flexible';
import type { RateClass } from '../domain/operations.js';
import { AppError } from './errors.js';

export interface RateLimitState {
  limit: number;
  remaining: number;
  reset: number; // epoch seconds
}

const WINDOW_SECONDS = 60;

// Per-tenant fixed windows of one minute per class. Counters live in PostgreSQL (`rate_limits`) so
// every API instance shares them; if the database hiccups, an in-process limiter stands in rather
// than failing the request.
export class RateLimits {
  private readonly limiters: Record<RateClass, RateLimiterPostgres>;

  constructor(
    pool: pg.Pool,
    readonly limits: Record<RateClass, number>,
    private readonly onRejected: (cls: RateClass) => void = () => undefined,
  ) {
    const make = (cls: RateClass) =>
      new RateLimiterPostgres({
        storeClient: pool,
        storeType: 'pool',
        tableName: 'rate_limits',
        tableCreated: true,
        keyPrefix: `rl:${cls}`,
        points: limits[cls],
        duration: WINDOW_SECONDS,
        insuranceLimiter: new RateLimiterMemory({ points: limits[cls], duration: WINDOW_SECONDS }),
      });
    this.limiters = { read: make('read'), write: make('write'), campaign: make('campaign'), social: make('social'), bulk: make('bulk') };
  }

  /** Spends `points` of `cls` for `key`; throws RATE_LIMITED (with the state) past the limit. */
  async consume(cls: RateClass, key: string, points = 1): Promise<RateLimitState> {
    const limit = this.limits[cls];
    const state = (res: RateLimiterRes): RateLimitState => ({
      limit,
      remaining: Math.max(0, res.remainingPoints),
      reset: Math.ceil((Date.now() + res.msBeforeNext) / 1000),
    });
    try {
      return state(await this.limiters[cls].consume(key, points));
    } catch (rejection) {
      if (!(rejection instanceof RateLimiterRes)) throw rejection;
      const s = state(rejection);
      this.onRejected(cls);
      throw new AppError('RATE_LIMITED', `rate limit of ${limit} ${cls} requests per minute exceeded; retry after ${new Date(s.reset * 1000).toISOString()}`, {
        rateLimit: s,
        retryAfter: Math.max(1, Math.ceil(rejection.msBeforeNext / 1000)),
      });
    }
  }
}

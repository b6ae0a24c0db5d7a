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

interface Spend {
  points: number;
  resolve(state: RateLimitState): void;
  reject(err: unknown): void;
}

// Per-tenant fixed windows of one minute per class. Counters live in PostgreSQL (`rate_limits`) so
// every API instance shares them; if the database hiccups, an in-process limiter stands in rather
// than failing the request.
//
// A tenant's counter is one row, and every request used to update it: under load the requests
// queued on that row lock and on the limiter's pool, one round trip each. Now an instance keeps at
// most one update per counter in flight; the requests that arrive meanwhile are added up and spent
// by the next single update, then judged one by one in arrival order against the total it returns,
// exactly as if each had updated the row alone (the store counts refused points too, as before).
export class RateLimits {
  private readonly limiters: Record<RateClass, RateLimiterPostgres>;
  /** Spends waiting for the counter's update in flight, by class and key. */
  private readonly waiting = new Map<string, Spend[]>();

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
  consume(cls: RateClass, key: string, points = 1): Promise<RateLimitState> {
    return new Promise((resolve, reject) => {
      const counter = `${cls}:${key}`;
      const queue = this.waiting.get(counter);
      if (queue) {
        queue.push({ points, resolve, reject });
        return;
      }
      this.waiting.set(counter, []);
      void this.drain(cls, key, counter, [{ points, resolve, reject }]);
    });
  }

  /**
   * Spends `batch` in one update, then whatever queued meanwhile, until nothing waits. A loop: a
   * counter that never empties under load would otherwise chain one pending promise per update.
   */
  private async drain(cls: RateClass, key: string, counter: string, batch: Spend[]): Promise<void> {
    while (batch.length) {
      try {
        await this.spend(cls, key, batch);
      } catch (err) {
        for (const s of batch) s.reject(err); // settles only those not judged yet
      }
      batch = this.waiting.get(counter)!;
      this.waiting.set(counter, []);
    }
    this.waiting.delete(counter);
  }

  /** One update of the counter for the whole batch; each spend judged in turn against its total. */
  private async spend(cls: RateClass, key: string, batch: Spend[]): Promise<void> {
    const limit = this.limits[cls];
    const total = batch.reduce((sum, s) => sum + s.points, 0);
    let res: RateLimiterRes | undefined;
    try {
      res = await this.limiters[cls].consume(key, total);
    } catch (rejection) {
      if (rejection instanceof RateLimiterRes) res = rejection;
      else for (const s of batch) s.reject(rejection);
    }
    if (res) {
      const reset = Math.ceil((Date.now() + res.msBeforeNext) / 1000);
      // The counter before this batch, then each spend in turn.
      let consumed = res.consumedPoints - total;
      for (const s of batch) {
        consumed += s.points;
        const state = { limit, remaining: Math.max(0, limit - consumed), reset };
        if (consumed <= limit) s.resolve(state);
        else {
          this.onRejected(cls);
          s.reject(new AppError('RATE_LIMITED', `rate limit of ${limit} ${cls} requests per minute exceeded; retry after ${new Date(reset * 1000).toISOString()}`, {
            rateLimit: state,
            retryAfter: Math.max(1, Math.ceil(res.msBeforeNext / 1000)),
          }));
        }
      }
    }
  }
}

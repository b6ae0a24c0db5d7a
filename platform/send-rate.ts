import type pg from 'pg';
import { RateLimiterMemory, RateLimiterPostgres, RateLimiterRes } from 'rate-limiter-flexible';
import type { Channel } from '../db/entities/enums.js';
import type { Config } from './config.js';

// Each channel's send rate (EMAIL_MAX_PER_SECOND, ...) holds across every worker: the budget of a
// one-second window lives in PostgreSQL (rate_limits, the API's limiter table). A sender takes it in
// grants of a tenth of the rate, so the database sees about ten calls a second per channel, not one
// per message.

export interface SendRate {
  /** Resolves when one more message of `channel` may go; `signal` gives up waiting. */
  take(channel: Channel, signal?: AbortSignal): Promise<void>;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** `work`, or the abort of `signal`, whichever first; the listener goes either way. */
function abortable<T>(work: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (!signal) return work;
  if (signal.aborted) return Promise.reject(signal.reason);
  let onAbort!: () => void;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
  });
  return Promise.race([work, aborted]).finally(() => signal.removeEventListener('abort', onAbort));
}

export function perSecondLimits(config: Config): Record<Channel, number> {
  return {
    EMAIL: config.EMAIL_MAX_PER_SECOND,
    SMS: config.SMS_MAX_PER_SECOND,
    PUSH: config.PUSH_MAX_PER_SECOND,
    WHATSAPP: config.WHATSAPP_MAX_PER_SECOND,
    IN_APP: config.IN_APP_MAX_PER_SECOND,
    SOCIAL: 1,
  };
}

export function createSendRate(pool: pg.Pool, limits: Record<Channel, number>): SendRate {
  const limiters = new Map<Channel, RateLimiterPostgres>();
  const tokens = new Map<Channel, number>();
  const waiting = new Map<Channel, Promise<void>>();
  const limiter = (channel: Channel) => {
    let l = limiters.get(channel);
    if (!l) {
      l = new RateLimiterPostgres({
        storeClient: pool,
        storeType: 'pool',
        tableName: 'rate_limits',
        tableCreated: true,
        keyPrefix: 'send',
        points: limits[channel],
        duration: 1,
        // The database hiccups: this worker alone keeps to the rate instead of stopping.
        insuranceLimiter: new RateLimiterMemory({ points: limits[channel], duration: 1 }),
      });
      limiters.set(channel, l);
    }
    return l;
  };
  const grant = (channel: Channel) => Math.max(1, Math.ceil(limits[channel] / 10));

  // Shared by every sender of the channel in this process: no one caller's signal stops it.
  async function refill(channel: Channel): Promise<void> {
    const points = grant(channel);
    for (;;) {
      try {
        await limiter(channel).consume(channel, points);
        tokens.set(channel, (tokens.get(channel) ?? 0) + points);
        return;
      } catch (rejection) {
        if (!(rejection instanceof RateLimiterRes)) throw rejection;
        await sleep(Math.max(5, rejection.msBeforeNext));
      }
    }
  }

  return {
    async take(channel, signal) {
      for (;;) {
        const left = tokens.get(channel) ?? 0;
        if (left > 0) {
          tokens.set(channel, left - 1);
          return;
        }
        // One refill at a time per channel; the other senders wait for it.
        let pending = waiting.get(channel);
        if (!pending) {
          pending = refill(channel).finally(() => waiting.delete(channel));
          waiting.set(channel, pending);
        }
        await abortable(pending, signal);
      }
    },
  };
}

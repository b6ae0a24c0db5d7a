import { defineEntity, p, type InferEntity } from '@mikro-orm/core';

// Counters of platform/rate-limit.ts, in the layout rate-limiter-flexible's RateLimiterPostgres
// reads and writes (it is the only writer). Shared by every API instance.
export const RateLimitCounter = defineEntity({
  name: 'RateLimitCounter',
  tableName: 'rate_limits',
  properties: {
    key: p.string().primary(),
    points: p.integer().default(0),
    expire: p.bigint('number').nullable(),
  },
});
export type RateLimitCounter = InferEntity<typeof RateLimitCounter>;

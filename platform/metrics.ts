import type pg from 'pg';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { RateClass } from '../domain/operations.js';

// Labels are bounded sets only (route templates, methods, statuses, rate classes, pool names):
// never a tenant, a customer or a raw path, so the page is safe to expose and cheap to scrape.
export class ApiMetrics {
  readonly registry = new Registry();
  readonly requests = new Counter({
    name: 'crm_http_requests_total',
    help: 'HTTP requests answered, by route template, method and status',
    labelNames: ['route', 'method', 'status'] as const,
    registers: [this.registry],
  });
  readonly duration = new Histogram({
    name: 'crm_http_request_duration_seconds',
    help: 'Time to answer an HTTP request, by route template, method and status',
    labelNames: ['route', 'method', 'status'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });
  readonly rateLimited = new Counter({
    name: 'crm_rate_limit_rejections_total',
    help: 'Requests refused with RATE_LIMITED, by rate-limit class',
    labelNames: ['class'] as const,
    registers: [this.registry],
  });
  private readonly pools = new Map<string, pg.Pool>();

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'crm_api_' });
    const pools = this.pools;
    new Gauge({
      name: 'crm_db_pool_connections',
      help: 'PostgreSQL connections of a pool: total open, idle, and requests waiting for one',
      labelNames: ['pool', 'state'] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        for (const [name, pool] of pools) {
          this.set({ pool: name, state: 'total' }, pool.totalCount);
          this.set({ pool: name, state: 'idle' }, pool.idleCount);
          this.set({ pool: name, state: 'waiting' }, pool.waitingCount);
        }
      },
    });
  }

  /** Reports `pool`'s use under `name` on every scrape. */
  watchPool(name: string, pool: pg.Pool): void {
    this.pools.set(name, pool);
  }

  observeRequest(labels: { route: string; method: string; status: number }, seconds: number): void {
    const l = { route: labels.route, method: labels.method, status: String(labels.status) };
    this.requests.inc(l);
    this.duration.observe(l, seconds);
  }

  rateLimitRejected(cls: RateClass): void {
    this.rateLimited.inc({ class: cls });
  }
}

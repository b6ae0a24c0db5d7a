import type pg from 'pg';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { RateClass } from '../domain/operations.js';

// Default metrics (CPU, memory, event-loop delay, GC) start monitors that cannot be stopped:
// collected once per process and shared by every ApiMetrics (tests create many).
let processMetrics: Registry | undefined;
function defaultMetrics(): Registry {
  if (!processMetrics) {
    processMetrics = new Registry();
    collectDefaultMetrics({ register: processMetrics, prefix: 'crm_api_' });
  }
  return processMetrics;
}

// Labels are bounded sets only (route templates, methods, statuses, rate classes, pool names):
// never a tenant, a customer or a raw path, so the page is safe to expose and cheap to scrape.
export class ApiMetrics {
  private readonly own = new Registry();
  /** What /metrics serves: this instance's metrics and the process's default ones. */
  readonly registry: Registry;
  readonly requests = new Counter({
    name: 'crm_http_requests_total',
    help: 'HTTP requests answered, by route template, method and status',
    labelNames: ['route', 'method', 'status'] as const,
    registers: [this.own],
  });
  readonly duration = new Histogram({
    name: 'crm_http_request_duration_seconds',
    help: 'Time to answer an HTTP request, by route template, method and status',
    labelNames: ['route', 'method', 'status'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.own],
  });
  readonly rateLimited = new Counter({
    name: 'crm_rate_limit_rejections_total',
    help: 'Requests refused with RATE_LIMITED, by rate-limit class',
    labelNames: ['class'] as const,
    registers: [this.own],
  });
  readonly smartReevaluations = new Counter({
    name: 'crm_smart_reevaluations_total',
    help: 'Queued customer changes this process re-evaluated for SMART segments (evaluated), or put back after a failed evaluation (failed)',
    labelNames: ['outcome'] as const,
    registers: [this.own],
  });
  private readonly pools = new Map<string, pg.Pool>();
  private smartQueueAge?: () => Promise<number>;

  constructor() {
    const pools = this.pools;
    const self = this;
    new Gauge({
      name: 'crm_smart_reevaluation_lag_seconds',
      help: 'Age of the oldest customer queued for SMART segments (0: none queued): how far behind real time they are',
      registers: [this.own],
      async collect() {
        // A database that does not answer leaves the gauge as it was rather than fail the page.
        const age = await self.smartQueueAge?.().catch(() => undefined);
        if (age !== undefined) this.set(age);
      },
    });
    new Gauge({
      name: 'crm_db_pool_connections',
      help: 'PostgreSQL connections of a pool: total open, idle, and requests waiting for one',
      labelNames: ['pool', 'state'] as const,
      registers: [this.own],
      collect() {
        this.reset();
        for (const [name, pool] of pools) {
          this.set({ pool: name, state: 'total' }, pool.totalCount);
          this.set({ pool: name, state: 'idle' }, pool.idleCount);
          this.set({ pool: name, state: 'waiting' }, pool.waitingCount);
        }
      },
    });
    this.registry = Registry.merge([this.own, defaultMetrics()]);
  }

  /** Reports `pool`'s use under `name` on every scrape. */
  /** `age` answers the lag gauge at each scrape. */
  watchSmartQueue(age: () => Promise<number>): void {
    this.smartQueueAge = age;
  }

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

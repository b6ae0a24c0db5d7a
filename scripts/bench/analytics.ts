// Issue benchmark for analytics: the four reports over HTTP on one large tenant (by default
// 1,000,000 customers, 10,000,000 activities, 1,000,000 deliveries), p50/p95 per endpoint, beside
// two baselines measured in the same run: a bare Hono + pg `select 1` endpoint (the floor of an HTTP
// round trip with a query), and the same numbers computed by full scans of the rows, which is what
// the rollups replace.
import pg from 'pg';
import { signDevToken, SCOPES } from '../../platform/auth.js';
import { freePort } from '../ports.js';
import { BENCH_SECRET, ratio, spawnServer, table } from './support.js';

const DAY = 86_400_000;

/** Seeds the tenant set-based (generate_series), with the rollup triggers on as in production. */
async function seed(db: pg.Client, tenant: string, sizes: { customers: number; activities: number; deliveries: number }): Promise<void> {
  const step = async (what: string, sql: string, params: unknown[] = []) => {
    const started = performance.now();
    await db.query(sql, params);
    process.stderr.write(`  ${what}: ${((performance.now() - started) / 1000).toFixed(1)} s\n`);
  };
  const chunk = 1_000_000;
  for (let from = 0; from < sizes.customers; from += chunk) {
    await step(`customers ${from}..`, `
      insert into customers (id, tenant_id, email, status, lifecycle_stage, engagement_score, churn_risk_score, created_at)
      select uuidv7(), $1::varchar, 'm' || g || '@' || $1::text || '.example.com',
             case when g % 100 < 90 then 'ACTIVE' when g % 100 < 95 then 'INACTIVE' when g % 100 < 98 then 'MERGED' else 'DELETED' end,
             (array['SUBSCRIBER', 'LEAD', 'CUSTOMER', 'MEMBER', 'ADVOCATE', 'CHURNED'])[1 + g % 6],
             case when g % 10 = 0 then null else (g * 37) % 101 end, case when g % 10 = 0 then null else (g * 53) % 101 end,
             now() - (g % 730) * interval '1 day'
        from generate_series($2::int, $3::int) g`, [tenant, from, Math.min(from + chunk, sizes.customers) - 1]);
  }
  await db.query(`create temp table bench_ids as select row_number() over () - 1 as n, id from customers where tenant_id = $1`, [tenant]);
  await db.query('create unique index on bench_ids (n)');
  for (let from = 0; from < sizes.activities; from += chunk) {
    // Over two years, one every few minutes, round the customers; ids by time as the API makes
    // them (uuidv7), in customer order so each chunk walks the timeline index once.
    await step(`activities ${from}..`, `
      insert into activities (id, tenant_id, customer_id, type, category, title, occurred_at)
      select uuidv7(), $1, c.id, 'booking.created', (array['MEMBERSHIP', 'BOOKING', 'ENGAGEMENT', 'GOLF', 'FINANCIAL'])[1 + g % 5], 'Booked',
             now() - (g::bigint * 730 * 86400 / $4) * interval '1 second'
        from generate_series($2::int, $3::int) g join bench_ids c on c.n = g % $5 order by c.id`,
      [tenant, from, Math.min(from + chunk, sizes.activities) - 1, sizes.activities, sizes.customers]);
  }
  await step('campaigns and journeys', `
    with c as (
      insert into campaigns (tenant_id, name, type, status, channels, created_at)
      select $1, 'Campaign ' || g, 'ONE_TIME', (array['DRAFT', 'SCHEDULED', 'ACTIVE', 'PAUSED', 'COMPLETED', 'CANCELLED'])[1 + g % 6],
             '{EMAIL,SMS,PUSH}', now() - (g * 365 / 200) * interval '1 day'
        from generate_series(0, 199) g returning 1
    )
    insert into journeys (tenant_id, name, status, trigger_type, total_enrolled, total_completed, total_exited)
    select $1, 'Journey ' || g, (array['DRAFT', 'ACTIVE', 'PAUSED', 'ARCHIVED'])[1 + g % 4], 'MANUAL', 1000 * g, 400 * g, 300 * g
      from generate_series(0, 49) g`, [tenant]);
  await db.query(`create temp table bench_campaigns as select row_number() over (order by created_at) - 1 as n, id, created_at from campaigns where tenant_id = $1`, [tenant]);
  // Each campaign sends within the day after its creation, over three channels.
  await step('deliveries', `
    insert into campaign_deliveries (tenant_id, campaign_id, customer_id, run_key, channel, status, sent_at, created_at)
    select $1, k.id, c.id, 'once', (array['EMAIL', 'SMS', 'PUSH'])[1 + g % 3],
           (array['DELIVERED', 'DELIVERED', 'DELIVERED', 'DELIVERED', 'SENT', 'BOUNCED', 'FAILED', 'SKIPPED'])[1 + (g / 3) % 8],
           case when (g / 3) % 8 < 6 then k.created_at + (g % 86400) * interval '1 second' end, k.created_at
      from generate_series(0, $2::int - 1) g
      join bench_campaigns k on k.n = g % 200
      join bench_ids c on c.n = (g / 200) % $3`, [tenant, sizes.deliveries, sizes.customers]);
  await step('interactions (opens, clicks, conversions)', `
    insert into campaign_interactions (tenant_id, campaign_id, customer_id, delivery_id, type, channel, occurred_at)
    select d.tenant_id, d.campaign_id, d.customer_id, d.id, t.type, d.channel, d.sent_at + interval '1 hour'
      from campaign_deliveries d
      cross join lateral (values ('OPENED', 30), ('CLICKED', 10), ('CONVERTED', 2)) as t(type, pct)
     where d.tenant_id = $1 and d.status = 'DELIVERED' and abs(hashtext(d.id::text)) % 100 < t.pct`, [tenant]);
  await step('social posts', `
    with c as (
      insert into social_connections (tenant_id, platform, account_id, account_name)
      select $1, p, 'acct-' || p, 'Club on ' || p from unnest(array['FACEBOOK', 'INSTAGRAM', 'TWITTER', 'LINKEDIN', 'TIKTOK']) p returning id
    ), n as (select row_number() over () - 1 as n, id from c)
    insert into social_posts (tenant_id, connection_id, content, status, published_at, scheduled_at, likes, comments, shares, reach)
    select $1, n.id, 'Post ' || g, (array['DRAFT', 'SCHEDULED', 'PUBLISHED', 'PUBLISHED', 'PUBLISHED', 'FAILED'])[1 + g % 6],
           case when g % 6 between 2 and 4 then now() - (g % 365) * interval '1 day' end, now() + (g % 30) * interval '1 day',
           g % 50, g % 7, g % 5, 100 + g % 1000
      from generate_series(0, 4999) g join n on n.n = g % 5`, [tenant]);
  // As a production table would be: statistics and visibility map current.
  await step('vacuum analyze', 'vacuum analyze customers, activities, campaign_deliveries, campaign_interactions, campaigns, journeys, social_posts, social_connections, analytics_customer_totals, analytics_activity_hours, analytics_delivery_hours');
}

// The same numbers straight from the rows: what each report would cost without the rollups.
const FULL_SCANS: Record<string, string> = {
  engagement: `
    select (select count(*) from customers where tenant_id = $1 and status <> 'MERGED' and status <> 'DELETED'),
           (select count(*) filter (where status = 'ACTIVE') from customers where tenant_id = $1),
           (select avg(engagement_score) from customers where tenant_id = $1 and status <> 'MERGED' and status <> 'DELETED'),
           (select avg(churn_risk_score) from customers where tenant_id = $1 and status <> 'MERGED' and status <> 'DELETED'),
           (select count(*) from customers where tenant_id = $1 and status <> 'MERGED' and status <> 'DELETED' and churn_risk_score >= 70),
           (select json_object_agg(lifecycle_stage, n) from (select lifecycle_stage, count(*) as n from customers
              where tenant_id = $1 and status <> 'MERGED' and status <> 'DELETED' group by 1) s),
           (select count(*) from activities where tenant_id = $1 and occurred_at between now() - interval '30 days' and now())`,
  campaigns: `
    select d.channel, count(*) filter (where d.status in ('SENT', 'DELIVERED', 'BOUNCED')), count(*) filter (where d.status = 'DELIVERED'),
           count(*) filter (where d.status = 'BOUNCED'),
           count(*) filter (where exists (select 1 from campaign_interactions i where i.delivery_id = d.id and i.type = 'OPENED')),
           count(*) filter (where exists (select 1 from campaign_interactions i where i.delivery_id = d.id and i.type = 'CLICKED')),
           count(*) filter (where exists (select 1 from campaign_interactions i where i.delivery_id = d.id and i.type = 'CONVERTED'))
      from campaign_deliveries d where d.tenant_id = $1 group by d.channel`,
};

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;

/** p50/p95 of `requests` calls, `lanes` at a time, after a warm-up. */
async function measure(requests: number, lanes: number, call: () => Promise<void>): Promise<{ p50: number; p95: number }> {
  for (let i = 0; i < Math.min(20, requests); i++) await call();
  const times: number[] = [];
  let next = 0;
  await Promise.all(Array.from({ length: lanes }, async () => {
    while (next++ < requests) {
      const started = performance.now();
      await call();
      times.push(performance.now() - started);
    }
  }));
  times.sort((a, b) => a - b);
  return { p50: Math.round(percentile(times, 50) * 10) / 10, p95: Math.round(percentile(times, 95) * 10) / 10 };
}

export async function benchAnalytics(databaseUrl: string, sizes: { customers: number; activities: number; deliveries: number }, requests: number, lanes: number): Promise<void> {
  const tenant = `bench_analytics_${Date.now()}`;
  const db = new pg.Client({ connectionString: databaseUrl });
  await db.connect();
  try {
    process.stderr.write(`seeding ${sizes.customers} customers, ${sizes.activities} activities, ${sizes.deliveries} deliveries...\n`);
    await seed(db, tenant, sizes);

    const api = await spawnServer('api/server.ts', {
      DATABASE_URL: databaseUrl, JWT_SECRET: BENCH_SECRET, TEMPORAL_ADDRESS: '127.0.0.1:1', RATE_LIMIT_READ: '1000000000',
    }, await freePort(), '/healthz');
    const bare = await spawnServer('scripts/bench/bare-server.ts', { DATABASE_URL: databaseUrl }, await freePort(), '/select1');
    const auth = { authorization: `Bearer ${await signDevToken(BENCH_SECRET, { tenantId: tenant, scopes: [...SCOPES] }, '1h')}` };
    const get = (url: string, headers: Record<string, string> = {}) => async () => {
      const res = await fetch(url, { headers });
      const body = await res.text();
      if (!res.ok) throw new Error(`${url}: ${res.status} ${body.slice(0, 300)}`);
    };
    const now = Date.now();
    // A range cutting through hours at both ends: whole hours from the rollup, part-hours from rows.
    const range = `startDate=${new Date(now - 180 * DAY + 17 * 60_000).toISOString()}&endDate=${new Date(now - 3 * DAY + 29 * 60_000).toISOString()}`;
    try {
      const baseline = await measure(requests, lanes, get(`${bare.url}/select1`));
      const rows: Record<string, string | number>[] = [{ endpoint: 'bare Hono + pg `select 1` (baseline)', 'p50 ms': baseline.p50, 'p95 ms': baseline.p95, 'p95 / bare': '1.00' }];
      for (const path of ['engagement', 'campaigns', `campaigns?${range}`, 'journeys', 'social', `social?${range}`]) {
        const r = await measure(requests, lanes, get(`${api.url}/api/v1/analytics/${path}`, auth));
        rows.push({ endpoint: `GET /analytics/${path.replace(/\?.*/, path.includes('?') ? '?startDate&endDate' : '')}`, 'p50 ms': r.p50, 'p95 ms': r.p95, 'p95 / bare': ratio(r.p95, baseline.p95) });
      }
      const gql = JSON.stringify({ query: `{ engagementAnalytics(tenantId: "${tenant}") { totalCustomers activitiesLast30Days } }` });
      const g = await measure(requests, lanes, async () => {
        const res = await fetch(`${api.url}/graphql`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: gql });
        if (!res.ok) throw new Error(`graphql: ${res.status}`);
        await res.text();
      });
      rows.push({ endpoint: 'GraphQL engagementAnalytics', 'p50 ms': g.p50, 'p95 ms': g.p95, 'p95 / bare': ratio(g.p95, baseline.p95) });

      // The full scans, a few times each (they take seconds at full size), against the rollup endpoints' p50.
      const scans: Record<string, string | number>[] = [];
      for (const [name, sql] of Object.entries(FULL_SCANS)) {
        const times: number[] = [];
        for (let i = 0; i < 3; i++) {
          const started = performance.now();
          await db.query(sql, [tenant]);
          times.push(performance.now() - started);
        }
        times.sort((a, b) => a - b);
        const ours = rows.find((r) => r.endpoint === `GET /analytics/${name}`)!;
        scans.push({ report: name, 'full scan p50 ms (SQL only)': Math.round(times[1]!), 'rollup endpoint p50 ms (HTTP)': ours['p50 ms']!, 'speed-up': ratio(times[1]!, Number(ours['p50 ms'])) });
      }
      process.stdout.write(`\nAnalytics: one tenant of ${sizes.customers} customers, ${sizes.activities} activities, ${sizes.deliveries} deliveries; ` +
        `${requests} requests per endpoint, ${lanes} at a time (target: p95 under 200 ms)\n${table(rows)}\n\n${table(scans)}\n`);
    } finally {
      await api.stop();
      await bare.stop();
    }
  } finally {
    await db.end();
  }
}

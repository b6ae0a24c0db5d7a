// `npm run bench [-- name ...]`: the performance benchmarks, each against a baseline measured in
// the same run. Uses DATABASE_URL, or starts a throwaway embedded PostgreSQL.
// Knobs: BENCH_SECONDS (per load run, default 10), BENCH_IMPORT_ROWS, BENCH_REFRESH_ROWS (default
// 1000000 each), BENCH_SYNC_ROWS (default 100000), BENCH_FANOUT_ROWS (campaign recipients against the
// baseline loop, default 100000), BENCH_FANOUT_LARGE_ROWS (the scale-up run, default 1000000);
// analytics: BENCH_ANALYTICS_CUSTOMERS (default 1000000), BENCH_ANALYTICS_ACTIVITIES (10000000),
// BENCH_ANALYTICS_DELIVERIES (1000000, at most 200x the customers), BENCH_ANALYTICS_REQUESTS (per
// endpoint, default 200), BENCH_ANALYTICS_LANES (requests in flight, default 4).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { migrate, openOrm } from '../db/orm.js';
import { freePort } from './ports.js';
import { startEmbeddedPostgres, type EmbeddedPostgres } from './embedded-postgres.js';
import { benchAnalytics } from './bench/analytics.js';
import { benchCampaignFanout } from './bench/campaigns.js';
import { benchCustomerImport, benchCustomerReads } from './bench/customers.js';
import { benchJourneyEnrollment, benchJourneyTimers } from './bench/journeys.js';
import { benchSegmentRefresh, benchSegmentSync, benchSmartIngest } from './bench/segments.js';

const seconds = Number(process.env.BENCH_SECONDS ?? 10);
const importRows = Number(process.env.BENCH_IMPORT_ROWS ?? 1_000_000);
const refreshRows = Number(process.env.BENCH_REFRESH_ROWS ?? 1_000_000);
const syncRows = Number(process.env.BENCH_SYNC_ROWS ?? 100_000);
const fanoutRows = Number(process.env.BENCH_FANOUT_ROWS ?? 100_000);
const fanoutLargeRows = Number(process.env.BENCH_FANOUT_LARGE_ROWS ?? 1_000_000);
const enrollEvents = Number(process.env.BENCH_ENROLL_EVENTS ?? 5_000);
const journeyWaiting = Number(process.env.BENCH_JOURNEY_WAITING ?? 100_000);
// Long enough for every enrolment to reach its WAIT first (the bench says so when it was not).
const journeyTimerSeconds = Number(process.env.BENCH_JOURNEY_TIMER_S ?? Math.ceil(120 + journeyWaiting / 50));
const analyticsSizes = {
  customers: Number(process.env.BENCH_ANALYTICS_CUSTOMERS ?? 1_000_000),
  activities: Number(process.env.BENCH_ANALYTICS_ACTIVITIES ?? 10_000_000),
  deliveries: Number(process.env.BENCH_ANALYTICS_DELIVERIES ?? 1_000_000),
};
const analyticsRequests = Number(process.env.BENCH_ANALYTICS_REQUESTS ?? 200);
const analyticsLanes = Number(process.env.BENCH_ANALYTICS_LANES ?? 4);
const BENCHES: Record<string, (url: string) => Promise<void>> = {
  'customer-reads': (url) => benchCustomerReads(url, seconds),
  'customer-import': (url) => benchCustomerImport(url, importRows),
  'segment-refresh': (url) => benchSegmentRefresh(url, refreshRows),
  'smart-ingest': (url) => benchSmartIngest(url, seconds),
  'segment-sync': (url) => benchSegmentSync(url, syncRows),
  'campaign-fanout': (url) => benchCampaignFanout(url, fanoutRows, fanoutLargeRows),
  'journey-enrollment': (url) => benchJourneyEnrollment(url, enrollEvents),
  'journey-timers': (url) => benchJourneyTimers(url, journeyWaiting, journeyTimerSeconds),
  analytics: (url) => benchAnalytics(url, analyticsSizes, analyticsRequests, analyticsLanes),
};

const selected = process.argv.slice(2).filter((a) => a !== '--');
const unknown = selected.filter((name) => !BENCHES[name]);
if (unknown.length) {
  process.stderr.write(`unknown benchmark(s): ${unknown.join(', ')}; known: ${Object.keys(BENCHES).join(', ')}\n`);
  process.exit(2);
}

let server: EmbeddedPostgres | undefined;
let scratch: string | undefined;
let url = process.env.DATABASE_URL;
if (!url) {
  scratch = mkdtempSync(path.join(tmpdir(), 'crm-bench-'));
  server = await startEmbeddedPostgres({ dataDir: path.join(scratch, 'pg'), port: await freePort(), database: 'crm_bench', durable: false });
  url = server.url;
}
try {
  const orm = await openOrm(url);
  await migrate(orm);
  await orm.close();
  for (const name of selected.length ? selected : Object.keys(BENCHES)) {
    process.stderr.write(`\n== ${name}\n`);
    await BENCHES[name]!(url);
  }
} finally {
  await server?.stop();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
}

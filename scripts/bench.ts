// `npm run bench [-- name ...]`: the performance benchmarks, each against a baseline measured in
// the same run. Uses DATABASE_URL, or starts a throwaway embedded PostgreSQL.
// `npm run bench -- --smoke` runs every benchmark at a size of seconds (CI does, so they keep
// working); the full sizes are the README's numbers. Every size is a knob: BENCH_SECONDS (per load
// run), BENCH_READS_CUSTOMERS / BENCH_READS_SMALL (the large and the small tenant of customer reads),
// BENCH_READS_RUNS (runs of each configuration), BENCH_IMPORT_ROWS / BENCH_IMPORT_SMALL_ROWS (the full
// import and the one its peak RSS is compared with, each on a fresh API process), BENCH_REFRESH_ROWS,
// BENCH_REFRESH_RUNS, BENCH_SYNC_ROWS, BENCH_EVENT_BATCHES and BENCH_EVENT_LANES (batches of 1,000
// events; in flight), BENCH_FANOUT_ROWS (campaign recipients against the baseline loop),
// BENCH_FANOUT_LARGE_ROWS (the scale-up run), BENCH_ENROLL_EVENTS, BENCH_JOURNEY_WAITING,
// BENCH_JOURNEY_TIMER_S; analytics: BENCH_ANALYTICS_CUSTOMERS, BENCH_ANALYTICS_ACTIVITIES,
// BENCH_ANALYTICS_DELIVERIES (at most 200x the customers), BENCH_ANALYTICS_REQUESTS (per endpoint),
// BENCH_ANALYTICS_LANES (requests in flight). BENCH_PROF=<dir> writes a V8 CPU profile of every
// API, worker and bare server the benchmarks start into <dir>, for finding where the time goes;
// BENCH_NODE_FLAGS (space-separated) are given to each of them, to try V8 settings (`--max-old-space-size=256`); BENCH_LOG_LEVEL
// (default silent) is their LOG_LEVEL, to see what a failing run's servers said (`error`).
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
import { benchEventBatches, benchSegmentRefresh, benchSegmentSync, benchSmartIngest } from './bench/segments.js';

const args = process.argv.slice(2).filter((a) => a !== '--');
const smoke = args.includes('--smoke');
/** A knob: its environment variable, else the full size, or the smoke size under --smoke. */
const knob = (name: string, full: number, smokeSize: number) => Number(process.env[name] ?? (smoke ? smokeSize : full));

const seconds = knob('BENCH_SECONDS', 10, 1);
const readsCustomers = knob('BENCH_READS_CUSTOMERS', 1_000_000, 5_000);
const readsSmall = knob('BENCH_READS_SMALL', 10_000, 1_000);
const readsRuns = knob('BENCH_READS_RUNS', 3, 1);
const importRows = knob('BENCH_IMPORT_ROWS', 1_000_000, 5_000);
const importSmallRows = knob('BENCH_IMPORT_SMALL_ROWS', 50_000, 1_000);
const refreshRows = knob('BENCH_REFRESH_ROWS', 1_000_000, 10_000);
const refreshRuns = knob('BENCH_REFRESH_RUNS', 3, 1);
const syncRows = knob('BENCH_SYNC_ROWS', 100_000, 2_000);
const eventBatches = knob('BENCH_EVENT_BATCHES', 100, 3);
const eventLanes = knob('BENCH_EVENT_LANES', 4, 2);
const fanoutRows = knob('BENCH_FANOUT_ROWS', 100_000, 300);
const fanoutLargeRows = knob('BENCH_FANOUT_LARGE_ROWS', 1_000_000, 600);
const enrollEvents = knob('BENCH_ENROLL_EVENTS', 5_000, 40);
const journeyWaiting = knob('BENCH_JOURNEY_WAITING', 100_000, 40);
// Long enough for every enrolment to reach its WAIT first (the bench says so when it was not).
const journeyTimerSeconds = knob('BENCH_JOURNEY_TIMER_S', Math.ceil(120 + journeyWaiting / 50), 30);
const analyticsSizes = {
  customers: knob('BENCH_ANALYTICS_CUSTOMERS', 1_000_000, 5_000),
  activities: knob('BENCH_ANALYTICS_ACTIVITIES', 10_000_000, 20_000),
  deliveries: knob('BENCH_ANALYTICS_DELIVERIES', 1_000_000, 5_000),
};
const analyticsRequests = knob('BENCH_ANALYTICS_REQUESTS', 200, 10);
const analyticsLanes = knob('BENCH_ANALYTICS_LANES', 4, 2);
const BENCHES: Record<string, (url: string) => Promise<void>> = {
  'customer-reads': (url) => benchCustomerReads(url, { large: readsCustomers, small: readsSmall, runs: readsRuns, seconds }),
  'customer-import': (url) => benchCustomerImport(url, importRows, importSmallRows),
  'segment-refresh': (url) => benchSegmentRefresh(url, refreshRows, refreshRuns),
  'smart-ingest': (url) => benchSmartIngest(url, seconds),
  'event-batches': (url) => benchEventBatches(url, eventBatches, eventLanes),
  'segment-sync': (url) => benchSegmentSync(url, syncRows),
  'campaign-fanout': (url) => benchCampaignFanout(url, fanoutRows, fanoutLargeRows),
  'journey-enrollment': (url) => benchJourneyEnrollment(url, enrollEvents),
  'journey-timers': (url) => benchJourneyTimers(url, journeyWaiting, journeyTimerSeconds),
  analytics: (url) => benchAnalytics(url, analyticsSizes, analyticsRequests, analyticsLanes),
};

const selected = args.filter((a) => a !== '--smoke');
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
    const started = performance.now();
    await BENCHES[name]!(url);
    process.stderr.write(`== ${name}: ${((performance.now() - started) / 1000).toFixed(0)} s\n`);
  }
} finally {
  await server?.stop();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
}

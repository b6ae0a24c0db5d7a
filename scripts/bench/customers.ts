// Issue benchmarks for customers: API reads against a bare Hono + pg endpoint, and bulk import
// against a plain COPY of the same rows. Each prints a ratio against its baseline, measured in
// the same run on the same database.
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { pipeline } from 'node:stream/promises';
import autocannon from 'autocannon';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { v7 as uuidv7 } from 'uuid';
import { signDevToken, SCOPES } from '../../platform/auth.js';
import { freePort } from '../ports.js';
import { BENCH_SECRET, peakRssMiB, ratio, spawnServer, STAGES, table } from './support.js';


function* customerRows(tenant: string, count: number) {
  for (let i = 0; i < count; i++) {
    yield {
      id: uuidv7(), tenant, email: `member${i}.${tenant}@example.com`, phone: `+2782${String(1_000_000 + i).padStart(7, '0')}`,
      firstName: `First${i}`, lastName: `Last${i % 5000}`, stage: STAGES[i % STAGES.length]!,
    };
  }
}

/**
 * Lines in chunks of about 64 KiB, as a file is read and sent (curl --data-binary @file, a
 * browser upload): a chunk a line made both the import and COPY pay per-message costs no real
 * client causes, and made the generating client compete for the two cores with what it measures.
 */
function* inChunks<T>(items: Iterable<T>, line: (item: T) => string): Generator<string> {
  let chunk = '';
  for (const item of items) {
    chunk += line(item);
    if (chunk.length >= 64 * 1024) {
      yield chunk;
      chunk = '';
    }
  }
  if (chunk) yield chunk;
}

async function copyCustomers(url: string, tenant: string, count: number): Promise<number> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  const started = performance.now();
  try {
    const sink = client.query(copyFrom('copy customers (id, tenant_id, email, phone_number, first_name, last_name, lifecycle_stage) from stdin with (format csv)'));
    await pipeline(Readable.from(inChunks(customerRows(tenant, count), (r) => `${r.id},${r.tenant},${r.email},${r.phone},${r.firstName},${r.lastName},${r.stage}\n`)), sink);
  } finally {
    await client.end();
  }
  return performance.now() - started;
}

const apiEnv = (url: string) => ({
  DATABASE_URL: url, JWT_SECRET: BENCH_SECRET, TEMPORAL_ADDRESS: '127.0.0.1:1',
  RATE_LIMIT_READ: '1000000000', RATE_LIMIT_BULK: '1000000000',
});

/**
 * How long a load run waits for the one before it to wind down. Started at once, a run's first
 * second took that wind-down (the load generator's 200 connections of the last run, whichever
 * server it loaded) as its own: 95-138 requests of a 10 s GraphQL run answered in 0.5-1.7 s while
 * the server's own log timed every one under 0.26 s, and p99 doubled. After 300 ms, none.
 */
const SETTLE_MS = 1_000;

async function load(url: string, opts: { connections: number; seconds: number; method?: 'GET' | 'POST'; headers?: Record<string, string>; body?: string }) {
  await sleep(SETTLE_MS);
  const result = await autocannon({ url, connections: opts.connections, duration: opts.seconds, method: opts.method ?? 'GET', headers: opts.headers, body: opts.body });
  if (result.non2xx || result.errors || result.timeouts) {
    throw new Error(`${url}: ${result.non2xx} non-2xx (${JSON.stringify(result.statusCodeStats)}), ${result.errors} errors, ${result.timeouts} timeouts`);
  }
  return { p50: result.latency.p50, p99: result.latency.p99, rps: Math.round(result.requests.average) };
}

async function seedReadTenant(databaseUrl: string, count: number): Promise<string> {
  const tenant = `bench_reads_${count}_${Date.now()}`;
  process.stderr.write(`seeding ${count} customers...\n`);
  await copyCustomers(databaseUrl, tenant, count);
  const admin = new pg.Client({ connectionString: databaseUrl });
  await admin.connect();
  // As a production table would be: visibility map set and statistics current.
  await admin.query('vacuum analyze customers');
  // And the seeding's dirty pages written now, not by a checkpoint in the middle of the first
  // measured runs (at 1,000,000 customers it slowed them fivefold, and requests waited past the
  // pool's acquire timeout). Needs a superuser; another DATABASE_URL's user skips it.
  await admin.query('checkpoint').catch(() => undefined);
  await admin.end();
  return tenant;
}

/**
 * Customer list pages on a large and a small tenant, at 50 and 200 connections, each configuration
 * `runs` times: p99 against the bare endpoint selecting the same page without counting, and the
 * large tenant's throughput against the small one's.
 */
export async function benchCustomerReads(databaseUrl: string, sizes: { large: number; small: number; runs: number; seconds: number }): Promise<void> {
  const { seconds } = sizes;
  const tenants = [
    { count: sizes.small, id: await seedReadTenant(databaseUrl, sizes.small) },
    { count: sizes.large, id: await seedReadTenant(databaseUrl, sizes.large) },
  ];
  const api = await spawnServer('api/server.ts', apiEnv(databaseUrl), await freePort(), '/healthz');
  const bare = await spawnServer('scripts/bench/bare-server.ts', { DATABASE_URL: databaseUrl }, await freePort(), `/customers?tenantId=${tenants[0]!.id}`);
  try {
    const rows: Record<string, string | number>[] = [];
    const rps = new Map<string, number[]>();
    for (const tenant of tenants) {
      const auth = { authorization: `Bearer ${await signDevToken(BENCH_SECRET, { tenantId: tenant.id, scopes: [...SCOPES] }, '1h')}` };
      const graphql = JSON.stringify({
        query: `{ customers(tenantId: "${tenant.id}", pagination: {first: 25}) { totalCount pageInfo { hasNextPage endCursor }
          edges { cursor node { id email phoneNumber firstName lastName fullName status lifecycleStage emailOptIn createdAt } } } }`,
      });
      const endpoints = [
        ['bare Hono + pg (page, no count)', `${bare.url}/customers?tenantId=${tenant.id}&take=25`, {}],
        ['REST GET /customers?take=25', `${api.url}/api/v1/customers?take=25`, { headers: auth }],
        ['GraphQL customers(first: 25) { totalCount }', `${api.url}/graphql`, { method: 'POST' as const, headers: { ...auth, 'content-type': 'application/json' }, body: graphql }],
      ] as const;
      for (const connections of [50, 200]) {
        // Warm both servers (JIT, pools, caches) before measuring.
        for (const [, target, opts] of endpoints) await load(target, { ...opts, connections, seconds: Math.min(2, seconds) });
        for (let run = 1; run <= sizes.runs; run++) {
          const results: Awaited<ReturnType<typeof load>>[] = [];
          for (const [, target, opts] of endpoints) results.push(await load(target, { ...opts, connections, seconds }));
          endpoints.forEach(([name], i) => {
            const r = results[i]!;
            const key = `${connections} ${name}`;
            rps.set(`${tenant.count} ${key}`, [...(rps.get(`${tenant.count} ${key}`) ?? []), r.rps]);
            rows.push({ customers: tenant.count, connections, run, endpoint: name, 'p50 ms': r.p50, 'p99 ms': r.p99, 'req/s': r.rps, 'p99 / bare p99': ratio(r.p99, results[0]!.p99) });
          });
        }
      }
    }
    const scaling: Record<string, string | number>[] = [];
    for (const connections of [50, 200]) {
      for (const [name] of [['REST GET /customers?take=25'], ['GraphQL customers(first: 25) { totalCount }']]) {
        const large = rps.get(`${sizes.large} ${connections} ${name}`)!;
        const small = rps.get(`${sizes.small} ${connections} ${name}`)!;
        scaling.push({ connections, endpoint: name!, [`req/s at ${sizes.small}`]: small.join(' / '), [`req/s at ${sizes.large}`]: large.join(' / '),
          ratio: large.map((l, i) => ratio(l, small[i]!)).join(' / ') });
      }
    }
    process.stdout.write(`\nCustomer reads, ${seconds}s per run, ${sizes.runs} run(s) each (targets: p99 within 1.5x of bare; throughput at ${sizes.large} at least 0.8x that at ${sizes.small})\n${table(rows)}\n\n${table(scaling)}\n`);
  } finally {
    await api.stop();
    await bare.stop();
  }
}

/** One import of `count` generated rows on a fresh API process (VmHWM is a process high-water mark). */
async function importOnFreshApi(databaseUrl: string, count: number) {
  const api = await spawnServer('api/server.ts', apiEnv(databaseUrl), await freePort(), '/healthz');
  try {
    const tenant = `bench_import_${count}_${Date.now()}`;
    const auth = `Bearer ${await signDevToken(BENCH_SECRET, { tenantId: tenant, scopes: [...SCOPES] }, '1h')}`;
    const rssStart = peakRssMiB(api.child.pid!);
    const body = Readable.from(inChunks(customerRows(tenant, count), (r) => `${JSON.stringify({ email: r.email, phone: r.phone, firstName: r.firstName, lastName: r.lastName, lifecycleStage: r.stage })}\n`));
    const started = performance.now();
    const res = await fetch(`${api.url}/api/v1/customers/import`, {
      method: 'POST', headers: { authorization: auth, 'content-type': 'application/x-ndjson' },
      body: Readable.toWeb(body) as ReadableStream, duplex: 'half',
    } as RequestInit);
    const answer = await res.text();
    const ms = performance.now() - started;
    const report = (res.headers.get('content-type')?.includes('json') ? JSON.parse(answer) : {}) as { data?: { created: number } };
    if (report.data?.created !== count) throw new Error(`import created ${report.data?.created} of ${count}: ${res.status} ${answer.slice(0, 500)}`);
    return { tenant, ms, rssStart, rssPeak: peakRssMiB(api.child.pid!) };
  } finally {
    await api.stop();
  }
}

/**
 * Imports `small` and then `count` rows, each on a fresh API process, against a plain COPY of the
 * same rows; prints the rates and how much the API's peak RSS grows from the small to the full size.
 */
export async function benchCustomerImport(databaseUrl: string, count: number, small: number): Promise<void> {
  const sizes = small < count ? [small, count] : [count];
  const rows: Record<string, string | number>[] = [];
  const peaks: number[] = [];
  for (const size of sizes) {
    const imported = await importOnFreshApi(databaseUrl, size);
    const copyMs = await copyCustomers(databaseUrl, `${imported.tenant}_copy`, size);
    const importRate = Math.round(size / (imported.ms / 1000));
    const copyRate = Math.round(size / (copyMs / 1000));
    peaks.push(imported.rssPeak);
    rows.push(
      { rows: size, method: 'COPY (baseline)', seconds: (copyMs / 1000).toFixed(1), 'rows/s': copyRate, 'ratio to COPY': '1.00', 'API RSS at start MiB': '', 'API peak RSS MiB': '' },
      { rows: size, method: 'POST /customers/import (NDJSON, streamed)', seconds: (imported.ms / 1000).toFixed(1), 'rows/s': importRate, 'ratio to COPY': ratio(importRate, copyRate),
        'API RSS at start MiB': imported.rssStart, 'API peak RSS MiB': imported.rssPeak },
    );
  }
  const growth = peaks.length > 1 ? `API peak RSS grows by ${peaks[1]! - peaks[0]!} MiB from ${small} to ${count} rows (target: at most 64 MiB)` : '';
  process.stdout.write(`\nBulk import of generated customers (target: at least 0.7x of COPY's rate at ${count} rows; API peak RSS grows by at most 64 MiB from ${small} to ${count})\n${table(rows)}\n${growth}\n`);
}

// Issue benchmarks for segments: refresh against a hand-written INSERT ... SELECT, SMART
// re-evaluation against the same ingest without SMART segments, and Messaging sync against a
// plain HTTP loop posting the same batches. Ratios are measured in the same run.
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import autocannon from 'autocannon';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { v7 as uuidv7 } from 'uuid';
import type { Segment } from '../../db/entities/index.js';
import { openOrm } from '../../db/orm.js';
import { evaluateMembership } from '../../domain/segments/membership.js';
import { signDevToken, SCOPES } from '../../platform/auth.js';
import type { segmentRefreshWorkflow } from '../../workflows/segment-refresh.js';
import type { segmentSyncWorkflow } from '../../workflows/segment-sync.js';
import { startMessagingServer } from '../messaging-server.js';
import { freePort } from '../ports.js';
import { BENCH_SECRET, machineBusyMs, peakRssMiB, query, ratio, spawnServer, STAGES, table, withTemporalAndWorker } from './support.js';

/** Varied customers: stages, opt-ins, scores and activity dates spread so that filters select a fraction. */
async function seedCustomers(url: string, tenant: string, count: number): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  const now = Date.now();
  try {
    const sink = client.query(copyFrom(
      'copy customers (id, tenant_id, email, first_name, lifecycle_stage, email_opt_in, engagement_score, last_activity_at) from stdin with (format csv)',
    ));
    await pipeline(Readable.from((function* () {
      for (let i = 0; i < count; i++) {
        const last = new Date(now - ((i * 7919) % 90) * 86400e3).toISOString();
        yield `${uuidv7()},${tenant},c${i}.${tenant}@example.com,C${i},${STAGES[i % 5]},${i % 3 === 0},${(i * 31) % 101},${last}\n`;
      }
    })()), sink);
  } finally {
    await client.end();
  }
  await query(url, 'vacuum analyze customers');
}

async function newSegmentRow(url: string, tenant: string, type: string, criteria: unknown): Promise<string> {
  const id = uuidv7();
  await query(url, `insert into segments (id, tenant_id, name, type, criteria) values ($1, $2, $3, $4, $5)`, [id, tenant, `bench ${id}`, type, criteria === null ? null : JSON.stringify(criteria)]);
  return id;
}

export async function benchSegmentRefresh(url: string, count: number, runs: number): Promise<void> {
  const tenant = `bench_refresh_${Date.now()}`;
  // A small tenant whose refresh warms the worker (its workflow sandbox, pools, ORM) first, as
  // the long-running worker of a deployment is.
  const warmTenant = `${tenant}_warm`;
  await seedCustomers(url, warmTenant, 100);
  process.stderr.write(`seeding ${count} customers...\n`);
  await seedCustomers(url, tenant, count);
  const criteria = {
    all: [
      { field: 'lifecycleStage', op: 'in', value: ['MEMBER', 'ADVOCATE'] },
      { any: [{ field: 'emailOptIn', op: 'eq', value: true }, { field: 'engagementScore', op: 'gte', value: 50 }] },
      { field: 'lastActivityAt', op: 'within', value: 'P30D' },
    ],
  };
  const baseline = async () => {
    const segment = await newSegmentRow(url, tenant, 'STATIC', null);
    const started = performance.now();
    const [{ n }] = await query(url, `
      with inserted as (
        insert into segment_members (segment_id, customer_id, tenant_id)
        select $1, c.id, c.tenant_id from customers c
         where c.tenant_id = $2 and c.status <> 'MERGED' and c.status <> 'DELETED'
           and c.lifecycle_stage in ('MEMBER', 'ADVOCATE') and (c.email_opt_in or c.engagement_score >= 50)
           and c.last_activity_at >= now() - interval '30 days'
        returning 1)
      select count(*)::int as n from inserted`, [segment, tenant]);
    return { n: n as number, ms: performance.now() - started };
  };

  const warmSegmentId = await newSegmentRow(url, warmTenant, 'DYNAMIC', criteria);
  await withTemporalAndWorker(url, {}, async ({ client, workerPid, taskQueue }) => {
    const rssStart = peakRssMiB(workerPid);
    const refresh = async (tenantId: string, id: string) => {
      const t = performance.now();
      const result = await client.workflow.execute<typeof segmentRefreshWorkflow>('segmentRefreshWorkflow', {
        workflowId: `segment-refresh-${id}`, taskQueue, args: [{ tenantId, segmentId: id, cause: 'bench' }],
      });
      return { result, ms: performance.now() - t };
    };
    await refresh(warmTenant, warmSegmentId);
    const rows: Record<string, string | number>[] = [];
    let members = 0;
    // Each run: the hand-written statement, then a new DYNAMIC segment's first population and a
    // refresh of it with nothing changed, alternated so both see the same machine.
    for (let run = 1; run <= runs; run++) {
      const expected = await baseline();
      const segmentId = await newSegmentRow(url, tenant, 'DYNAMIC', criteria);
      const first = await refresh(tenant, segmentId);
      if (first.result.newCount !== expected.n) throw new Error(`refresh found ${first.result.newCount} members, INSERT ... SELECT ${expected.n}`);
      const again = await refresh(tenant, segmentId);
      members = expected.n;
      rows.push(
        { run, what: 'INSERT ... SELECT (baseline)', seconds: (expected.ms / 1000).toFixed(2), ratio: '1.00' },
        { run, what: 'refresh workflow, first population', seconds: (first.ms / 1000).toFixed(2), ratio: ratio(first.ms, expected.ms) },
        { run, what: 'refresh workflow, nothing changed', seconds: (again.ms / 1000).toFixed(2), ratio: ratio(again.ms, expected.ms) },
      );
    }
    process.stdout.write(`\nSegment refresh: DYNAMIC segment (3 predicates, all + any, relative date) over ${count} customers, ${members} members\n${table(rows)}
Target: first population within 1.15x. Worker peak RSS: ${rssStart} MiB at start, ${peakRssMiB(workerPid)} MiB after the refreshes\n`);
  });
}

/**
 * `count` active SMART segments reading profile fields, events and event counts. `populated`: each
 * then gets its first population, by the refresh the API starts when it creates a segment (the
 * same code the worker runs), so events move only the memberships they change. Unpopulated, a
 * customer's first event also does the segment's first population for that customer.
 */
async function newSmartSegments(url: string, tenant: string, count: number, populated: boolean): Promise<void> {
  const segments: { id: string; tenantId: string; criteria: unknown }[] = [];
  for (let i = 0; i < count; i++) {
    const criteria = [
      { event: { category: 'BOOKING', within: 'P7D' } },
      { all: [{ field: 'lifecycleStage', op: 'eq', value: STAGES[i % 5] }, { field: 'lastActivityAt', op: 'within', value: 'P14D' }] },
      { event: { type: 'booking.created' }, count: { op: 'gte', value: 2 + (i % 3) } },
      { any: [{ field: 'engagementScore', op: 'gte', value: 50 + i }, { field: 'emailOptIn', op: 'eq', value: true }] },
    ][i % 4];
    segments.push({ id: await newSegmentRow(url, tenant, 'SMART', criteria), tenantId: tenant, criteria });
  }
  if (!populated || !segments.length) return;
  const orm = await openOrm(url);
  try {
    for (const segment of segments) await orm.em.fork().transactional((em) => evaluateMembership(em, segment as Segment, 'created'));
  } finally {
    await orm.close();
  }
}

/**
 * SMART segments follow events just after they commit: a run ends once every event's
 * re-evaluation has (what is still queued when the load stops counts against the rate).
 */
async function smartSettled(url: string, tenant: string): Promise<void> {
  while ((await query<{ n: number }>(url, 'select count(*)::int as n from segment_reevaluations where tenant_id = $1', [tenant]))[0]!.n) await sleep(5);
}

export async function benchSmartIngest(url: string, seconds: number): Promise<void> {
  const api = await spawnServer('api/server.ts', {
    DATABASE_URL: url, JWT_SECRET: BENCH_SECRET, TEMPORAL_ADDRESS: '127.0.0.1:1', RATE_LIMIT_WRITE: '1000000000',
  }, await freePort(), '/healthz');
  try {
    // The target's configuration is the second: SMART segments as the API creates them. The third
    // shows what the same events cost while the segments still await their first population.
    const configurations = [
      { tenant: 'no SMART segments (baseline)', segments: 0, populated: true },
      { tenant: '20 active SMART segments', segments: 20, populated: true },
      { tenant: '20 SMART segments, never populated', segments: 20, populated: false },
    ];
    const rows: Record<string, string | number>[] = [];
    let baseline = 0;
    for (const [k, { segments, populated, ...label }] of configurations.entries()) {
      const tenant = `bench_smart_${k}_${Date.now()}`;
      await seedCustomers(url, tenant, 10_000);
      await newSmartSegments(url, tenant, segments, populated);
      const auth = `Bearer ${await signDevToken(BENCH_SECRET, { tenantId: tenant, scopes: [...SCOPES] }, '1h')}`;
      let n = 0;
      const ingest = (duration: number) => autocannon({
        url: `${api.url}/api/v1/events`,
        connections: 20,
        duration,
        method: 'POST',
        headers: { authorization: auth, 'content-type': 'application/json' },
        requests: [{
          setupRequest: (req) => {
            const i = n++;
            return { ...req, body: JSON.stringify({
              type: 'booking.created', category: 'BOOKING', title: 'Tee time', occurredAt: new Date().toISOString(),
              customer: { email: `c${(i * 37) % 10_000}.${tenant}@example.com` }, sourceService: 'bench', sourceEventId: `e${i}`,
            }) };
          },
        }],
      });
      // Each tenant is measured warm, as a running platform is: the API's code optimised, its
      // connections' statements prepared, and statistics that have seen the tenant's events (the
      // first run of the evaluation on a timeline the statistics took for empty was slower by a
      // third, whichever tenant came first).
      const settled = () => smartSettled(url, tenant);
      await ingest(Math.min(3, seconds));
      await settled();
      await query(url, 'analyze activities, customers, segment_members, segment_membership_changes, segment_member_count_deltas');
      const moves = async () => (await query<{ n: number }>(url, 'select count(*)::int as n from segment_membership_changes where tenant_id = $1', [tenant]))[0]!.n;
      const [busy, moved] = [machineBusyMs(), await moves()];
      const started = performance.now();
      const result = await ingest(seconds);
      await settled();
      if (result.non2xx || result.errors) throw new Error(`ingest: ${result.non2xx} non-2xx, ${result.errors} errors`);
      const rate = Math.round(result.requests.total / ((performance.now() - started) / 1000));
      baseline ||= rate;
      rows.push({
        ...label, 'events/s': rate, ratio: ratio(rate, baseline),
        'machine CPU ms/event': ((machineBusyMs() - busy) / result.requests.total).toFixed(2),
        'memberships moved/event': ((await moves() - moved) / result.requests.total).toFixed(1),
      });
    }
    process.stdout.write(`\nSMART re-evaluation: single events through POST /events, 20 connections, ${seconds}s each\n${table(rows)}
Target: 20 active SMART segments at least 0.8x none\n`);
  } finally {
    await api.stop();
  }
}

/**
 * Batches of 1,000 upstream events through POST /events (an array body), on tenants with no and
 * with 20 active SMART segments, against a bare Hono + pg endpoint storing the same activities of
 * the same bodies in one multi-row INSERT. `batches` per run, `lanes` requests in flight.
 */
export async function benchEventBatches(url: string, batches: number, lanes: number): Promise<void> {
  const BATCH = 1000;
  const CUSTOMERS = 10_000;
  const api = await spawnServer('api/server.ts', {
    DATABASE_URL: url, JWT_SECRET: BENCH_SECRET, TEMPORAL_ADDRESS: '127.0.0.1:1', RATE_LIMIT_WRITE: '1000000000',
  }, await freePort(), '/healthz');
  const bare = await spawnServer('scripts/bench/bare-server.ts', { DATABASE_URL: url }, await freePort(), '/select1');
  try {
    const body = (tenant: string, batch: number) => JSON.stringify(Array.from({ length: BATCH }, (_, k) => {
      const i = batch * BATCH + k;
      return {
        type: 'booking.created', category: 'BOOKING', title: 'Tee time', occurredAt: new Date().toISOString(),
        customer: { email: `c${(i * 37) % CUSTOMERS}.${tenant}@example.com` }, sourceService: 'bench', sourceEventId: `e${i}`,
      };
    }));
    /** Posts `batches` bodies, `lanes` at a time; events per second, and the machine's CPU per batch. */
    const run = async (endpoint: string, tenant: string, headers: Record<string, string>) => {
      let next = 0;
      const busy = machineBusyMs();
      const started = performance.now();
      await Promise.all(Array.from({ length: lanes }, async () => {
        for (let batch = next++; batch < batches; batch = next++) {
          const res = await fetch(endpoint, { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body: body(tenant, batch) });
          const answer = (await res.json()) as { data?: { accepted: number } };
          if (!res.ok || answer.data?.accepted !== BATCH) throw new Error(`${endpoint} batch ${batch}: ${res.status} ${JSON.stringify(answer).slice(0, 300)}`);
        }
      }));
      await smartSettled(url, tenant);
      const seconds = (performance.now() - started) / 1000;
      return { rate: Math.round((batches * BATCH) / seconds), cpu: ((machineBusyMs() - busy) / batches).toFixed(1) };
    };
    const rows: Record<string, string | number>[] = [];
    const bareTenant = `bench_batch_bare_${Date.now()}`;
    await seedCustomers(url, bareTenant, CUSTOMERS);
    const bareRun = await run(`${bare.url}/events?tenantId=${bareTenant}`, bareTenant, {});
    const bareRate = bareRun.rate;
    rows.push({ endpoint: 'bare Hono + pg, multi-row INSERT (baseline)', 'events/s': bareRate, ratio: '1.00', 'machine CPU ms/batch': bareRun.cpu });
    for (const smartSegments of [0, 20]) {
      const tenant = `bench_batch_${smartSegments}_${Date.now()}`;
      await seedCustomers(url, tenant, CUSTOMERS);
      await newSmartSegments(url, tenant, smartSegments, true);
      const auth = `Bearer ${await signDevToken(BENCH_SECRET, { tenantId: tenant, scopes: [...SCOPES] }, '1h')}`;
      const { rate, cpu } = await run(`${api.url}/api/v1/events`, tenant, { authorization: auth });
      rows.push({ endpoint: `POST /events, ${smartSegments} active SMART segments`, 'events/s': rate, ratio: ratio(rate, bareRate), 'machine CPU ms/batch': cpu });
    }
    process.stdout.write(`\nEvent batches: ${batches} batches of ${BATCH} events (${CUSTOMERS} customers), ${lanes} in flight\n${table(rows)}\nTarget: with 20 SMART segments at least 0.5x the bare INSERT\n`);
  } finally {
    await bare.stop();
    await api.stop();
  }
}

export async function benchSegmentSync(url: string, count: number): Promise<void> {
  const messaging = await startMessagingServer();
  try {
    const tenant = `bench_sync_${Date.now()}`;
    await seedCustomers(url, tenant, count);
    const segmentId = await newSegmentRow(url, tenant, 'STATIC', null);
    await query(url, `insert into segment_members (segment_id, customer_id, tenant_id) select $1, id, tenant_id from customers where tenant_id = $2`, [segmentId, tenant]);
    // A small segment whose sync warms the worker (its workflow sandbox, pools, ORM) first, as a
    // long-running worker is.
    const warmTenant = `${tenant}_warm`;
    await seedCustomers(url, warmTenant, 1000);
    const warmSegmentId = await newSegmentRow(url, warmTenant, 'STATIC', null);
    await query(url, `insert into segment_members (segment_id, customer_id, tenant_id) select $1, id, tenant_id from customers where tenant_id = $2`, [warmSegmentId, warmTenant]);

    // Baseline: the same batches (same member fields, 1,000 each) posted in a plain loop.
    const rows = await query(url, `select id as "customerId", email, phone_number as "phoneNumber", first_name as "firstName", last_name as "lastName",
      email_opt_in as "emailOptIn", sms_opt_in as "smsOptIn", push_opt_in as "pushOptIn" from customers where tenant_id = $1 order by id`, [tenant]);
    const headers = { authorization: `Bearer ${messaging.apiKey}`, 'content-type': 'application/json' };
    await fetch(`${messaging.url}/segments/baseline`, { method: 'PUT', headers, body: JSON.stringify({ name: 'baseline', tenantId: tenant }) });
    const started = performance.now();
    for (let i = 0; i < rows.length; i += 1000) {
      const res = await fetch(`${messaging.url}/segments/msg_baseline/members`, {
        method: 'POST', headers: { ...headers, 'idempotency-key': `baseline-${i}` }, body: JSON.stringify({ add: rows.slice(i, i + 1000), remove: [] }),
      });
      if (!res.ok) throw new Error(`baseline batch ${i}: ${res.status}`);
    }
    const baselineMs = performance.now() - started;

    await withTemporalAndWorker(url, { MESSAGING_URL: messaging.url, MESSAGING_API_KEY: messaging.apiKey }, async ({ client, taskQueue }) => {
      await client.workflow.execute<typeof segmentSyncWorkflow>('segmentSyncWorkflow', {
        workflowId: `segment-sync-${warmSegmentId}`, taskQueue, args: [{ tenantId: warmTenant, segmentId: warmSegmentId }],
      });
      const t = performance.now();
      const result = await client.workflow.execute<typeof segmentSyncWorkflow>('segmentSyncWorkflow', {
        workflowId: `segment-sync-${segmentId}`, taskQueue, args: [{ tenantId: tenant, segmentId }],
      });
      const syncMs = performance.now() - t;
      if (result.syncedCount !== count) throw new Error(`sync reported ${result.syncedCount} of ${count}`);
      const rate = (ms: number) => Math.round(count / (ms / 1000));
      process.stdout.write(`\nSegment sync: ${count} members to the local Messaging server in batches of 1,000\n${table([
        { method: 'plain HTTP loop (baseline)', 'seconds': (baselineMs / 1000).toFixed(2), 'members/s': rate(baselineMs), ratio: '1.00' },
        { method: 'segment-sync workflow', 'seconds': (syncMs / 1000).toFixed(2), 'members/s': rate(syncMs), ratio: ratio(rate(syncMs), rate(baselineMs)) },
      ])}\n`);
    });
  } finally {
    await messaging.close();
  }
}

// Issue benchmarks for journeys, each beside a baseline on the same Temporal server:
//  - journey-enrollment: upstream events through POST /api/v1/events, each enrolling one new
//    customer (enrolment row, outbox, signalWithStart by the worker's dispatcher), against a bare
//    loop of signalWithStart on a no-op workflow with the same concurrency.
//  - journey-timers: N enrolments waiting on one WAIT `until` instant: worker memory, database
//    size, and how long firing them all takes, against N no-op workflows on the same timer.
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Client } from '@temporalio/client';
import { signDevToken, SCOPES } from '../../platform/auth.js';
import { freePort } from '../ports.js';
import { BENCH_SECRET, peakRssMiB, query, ratio, spawnServer, table, withTemporalAndWorker, type Server } from './support.js';

const CONCURRENCY = 16;
const NOOP = 'benchNoopWorkflow';

type Call = (method: string, path: string, body?: unknown) => Promise<any>;

function rssMiB(pid: number): number {
  return Math.round(Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024);
}

async function apiCaller(api: Server, tenant: string): Promise<Call> {
  const auth = `Bearer ${await signDevToken(BENCH_SECRET, { tenantId: tenant, scopes: [...SCOPES] }, '4h')}`;
  return async (method, path, body) => {
    const res = await fetch(`${api.url}/api/v1${path}`, {
      method, headers: { authorization: auth, ...(body !== undefined && { 'content-type': 'application/json' }) }, body: body === undefined ? undefined : JSON.stringify(body),
    });
    const json = await res.json() as { data: any };
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json)}`);
    return json.data;
  };
}

/** An EVENT journey on `event`: TRIGGER → WAIT (wait) → END, built and activated through the API. */
async function createJourney(call: Call, event: string, wait: Record<string, unknown>): Promise<string> {
  const journey = await call('POST', '/journeys', { name: `Bench ${event}`, triggerType: 'EVENT', triggerConfig: { event } });
  const steps = await call('GET', `/journeys/${journey.id}/steps`) as { id: string; type: string }[];
  const trigger = steps.find((s) => s.type === 'TRIGGER') ?? await call('POST', `/journeys/${journey.id}/steps`, { type: 'TRIGGER', config: {} });
  const waitStep = await call('POST', `/journeys/${journey.id}/steps`, { type: 'WAIT', config: wait, afterStepId: trigger.id });
  await call('POST', `/journeys/${journey.id}/steps`, { type: 'END', config: {}, afterStepId: waitStep.id });
  await call('POST', `/journeys/${journey.id}/activate`);
  return journey.id as string;
}

const signup = (event: string, tenant: string, i: number) => ({
  type: event, occurredAt: new Date().toISOString(), category: 'MEMBERSHIP', title: 'Signed up',
  customer: { email: `m${i}.${tenant}@example.com` }, sourceService: 'bench', sourceEventId: `${tenant}-${i}`,
});

async function inLanes(count: number, lanes: number, work: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: lanes }, async () => {
    while (next < count) await work(next++);
  }));
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(250);
  }
}

const count = async (url: string, sql: string, params: unknown[]) => (await query<{ n: number }>(url, sql, params))[0]!.n;
const running = (client: Client, taskQueue: string) => client.workflow.count(`TaskQueue = '${taskQueue}' AND ExecutionStatus = 'Running'`).then((c) => c.count);

/** The no-op worker on its own task queue of the same server, for the baseline. */
async function withNoopWorker<T>(address: string, work: (taskQueue: string, pid: number) => Promise<T>): Promise<T> {
  const taskQueue = `bench-noop-${randomUUID().slice(0, 8)}`;
  const worker = await spawnServer('scripts/bench/noop-worker.ts', { TEMPORAL_ADDRESS: address, TEMPORAL_TASK_QUEUE: taskQueue }, await freePort(), '/');
  try {
    return await work(taskQueue, worker.child.pid!);
  } finally {
    await worker.stop();
  }
}

async function signalWithStartLoop(client: Client, taskQueue: string, n: number, until?: string): Promise<number> {
  const started = performance.now();
  const prefix = randomUUID().slice(0, 8);
  await inLanes(n, CONCURRENCY, async (i) => {
    await client.workflow.signalWithStart(NOOP, {
      taskQueue, workflowId: `bench-noop-${prefix}-${i}`, args: until ? [until] : [], signal: 'event', signalArgs: [{ type: 'bench', activityId: String(i) }],
    });
  });
  return performance.now() - started;
}

function withApi<T>(url: string, address: string, taskQueue: string, work: (api: Server) => Promise<T>): Promise<T> {
  return (async () => {
    const api = await spawnServer('api/server.ts', {
      DATABASE_URL: url, JWT_SECRET: BENCH_SECRET, TEMPORAL_ADDRESS: address, TEMPORAL_TASK_QUEUE: taskQueue,
      ...Object.fromEntries(['READ', 'WRITE', 'BULK'].map((c) => [`RATE_LIMIT_${c}`, '1000000000'])),
    }, await freePort(), '/healthz');
    try {
      return await work(api);
    } finally {
      await api.stop();
    }
  })();
}

const workerEnv = { JWT_SECRET: BENCH_SECRET, LOG_LEVEL: 'warn', OUTBOX_DISPATCH: 'true' };

export async function benchJourneyEnrollment(url: string, events: number): Promise<void> {
  await withTemporalAndWorker(url, workerEnv, async ({ client, address, taskQueue }) => {
    const baselineMs = await withNoopWorker(address, (noopQueue) => signalWithStartLoop(client, noopQueue, events));
    await withApi(url, address, taskQueue, async (api) => {
      const tenant = `bench_enrol_${Date.now()}`;
      const call = await apiCaller(api, tenant);
      const journeyId = await createJourney(call, 'member.signed_up', { duration: 'P30D' });
      process.stderr.write(`posting ${events} events, ${CONCURRENCY} at a time...\n`);
      const started = performance.now();
      await inLanes(events, CONCURRENCY, async (i) => void (await call('POST', '/events', signup('member.signed_up', tenant, i))));
      const postedMs = performance.now() - started;
      await until('every enrolment started', async () => (await count(url,
        `select count(*)::int as n from reaction_outbox where tenant_id = $1 and kind = 'journey-enroll' and dispatched_at is not null`, [tenant])) >= events, 30 * 60_000);
      const startedMs = performance.now() - started;
      await until('every enrolment waiting', async () => (await count(url,
        `select count(*)::int as n from journey_enrollments where tenant_id = $1 and journey_id = $2 and waiting_until is not null`, [tenant, journeyId])) >= events, 30 * 60_000);
      const waitingMs = performance.now() - started;
      const enrolled = await count(url, 'select total_enrolled as n from journeys where tenant_id = $1 and id = $2', [tenant, journeyId]);
      if (enrolled !== events) throw new Error(`${events} events enrolled ${enrolled}`);
      const rate = (ms: number) => Math.round(events / (ms / 1000));
      process.stdout.write(`\nJourney enrolment: ${events} upstream events, each enrolling a new customer, ${CONCURRENCY} at a time\n${table([
        { run: 'signalWithStart loop, no-op workflow (baseline)', seconds: (baselineMs / 1000).toFixed(1), 'per second': rate(baselineMs), ratio: '1.00' },
        { run: 'events posted (API answered)', seconds: (postedMs / 1000).toFixed(1), 'per second': rate(postedMs), ratio: ratio(rate(postedMs), rate(baselineMs)) },
        { run: 'enrolment workflows started', seconds: (startedMs / 1000).toFixed(1), 'per second': rate(startedMs), ratio: ratio(rate(startedMs), rate(baselineMs)) },
        { run: 'enrolments waiting at their WAIT step', seconds: (waitingMs / 1000).toFixed(1), 'per second': rate(waitingMs), ratio: ratio(rate(waitingMs), rate(baselineMs)) },
      ])}\nTarget: enrolment workflows started ≥ 0.8x the baseline.\n`);
    });
  });
}

export async function benchJourneyTimers(url: string, waiting: number, timerSeconds: number): Promise<void> {
  await withTemporalAndWorker(url, workerEnv, async ({ client, address, workerPid, taskQueue }) => {
    // The baseline: the same number of workflows on one timer, run by a worker of their own.
    const baseline = await withNoopWorker(address, async (noopQueue, noopPid) => {
      const at = new Date(Date.now() + timerSeconds * 1000);
      process.stderr.write(`baseline: ${waiting} no-op workflows until ${at.toISOString()}...\n`);
      await signalWithStartLoop(client, noopQueue, waiting, at.toISOString());
      await until('the baseline running', async () => (await running(client, noopQueue)) >= waiting, 30 * 60_000);
      const rss = rssMiB(noopPid);
      if (Date.now() > at.getTime()) throw new Error(`not all were waiting when the timer came: raise BENCH_JOURNEY_TIMER_S`);
      await sleep(at.getTime() - Date.now());
      await until('the baseline fired', async () => (await running(client, noopQueue)) === 0, 60 * 60_000);
      return { fireMs: Date.now() - at.getTime(), rss, peak: peakRssMiB(noopPid) };
    });

    const journey = await withApi(url, address, taskQueue, async (api) => {
      const tenant = `bench_timers_${Date.now()}`;
      const call = await apiCaller(api, tenant);
      const at = new Date(Date.now() + timerSeconds * 1000);
      const journeyId = await createJourney(call, 'member.renewed', { until: at.toISOString() });
      process.stderr.write(`journey: ${waiting} enrolments until ${at.toISOString()}...\n`);
      const batches = Math.ceil(waiting / 1000);
      await inLanes(batches, 2, async (b) => {
        const items = Array.from({ length: Math.min(1000, waiting - b * 1000) }, (_, k) => signup('member.renewed', tenant, b * 1000 + k));
        await call('POST', '/events', items);
      });
      await until('every enrolment waiting', async () => (await count(url,
        `select count(*)::int as n from journey_enrollments where tenant_id = $1 and journey_id = $2 and waiting_until is not null`, [tenant, journeyId])) >= waiting, 60 * 60_000);
      const rss = rssMiB(workerPid);
      const [size] = await query<{ bytes: string }>(url,
        `select sum(pg_total_relation_size(t))::bigint as bytes from unnest(array['journey_enrollments', 'journey_enrollment_steps', 'reaction_outbox']::regclass[]) t`);
      if (Date.now() > at.getTime()) throw new Error(`not all were waiting when the timer came: raise BENCH_JOURNEY_TIMER_S`);
      await sleep(at.getTime() - Date.now());
      await until('every enrolment completed', async () => (await count(url,
        `select count(*)::int as n from journey_enrollments where tenant_id = $1 and journey_id = $2 and status = 'COMPLETED'`, [tenant, journeyId])) >= waiting, 60 * 60_000);
      return { fireMs: Date.now() - at.getTime(), rss, peak: peakRssMiB(workerPid), bytes: Number(size!.bytes) };
    });

    process.stdout.write(`\nJourney timers: ${waiting} workflows waiting on one instant\n${table([
      { run: 'no-op workflows (baseline)', 'fire all, s': (baseline.fireMs / 1000).toFixed(1), ratio: '1.00', 'worker RSS while waiting MiB': baseline.rss, 'worker peak RSS MiB': baseline.peak, 'PostgreSQL bytes per enrolment': '-' },
      { run: 'journey enrolments (WAIT until → END)', 'fire all, s': (journey.fireMs / 1000).toFixed(1), ratio: ratio(journey.fireMs, baseline.fireMs), 'worker RSS while waiting MiB': journey.rss, 'worker peak RSS MiB': journey.peak, 'PostgreSQL bytes per enrolment': Math.round(journey.bytes / waiting) },
    ])}\n(ratio: time to fire all, journey over baseline; lower is better)\n`);
  });
}

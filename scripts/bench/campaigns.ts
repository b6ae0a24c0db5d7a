// Issue benchmark for campaigns: a ONE_TIME SMS campaign's fan-out through the Messaging channel
// against a plain client loop sending the same requests to the same sink with the same concurrency,
// then the same campaign over ten times the audience (time, worker memory, history per run).
import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { v7 as uuidv7 } from 'uuid';
import { signDevToken, SCOPES } from '../../platform/auth.js';
import { MessagingClient } from '../../platform/messaging.js';
import { campaignRunId } from '../../workflows/campaign.js';
import { freePort } from '../ports.js';
import { BENCH_SECRET, peakRssMiB, query, ratio, spawnServer, table, withTemporalAndWorker, type Server } from './support.js';

const API_KEY = 'bench-messaging-key';
// The engine's default; the baseline loop uses the same.
const CONCURRENCY = 16;
const BODY = 'Hi {{ firstName }}, tee times are open this weekend. Reply STOP to opt out.';

/** Customers with a phone number and SMS consent, all members of one STATIC segment. */
async function seedAudience(url: string, tenant: string, count: number): Promise<string> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const sink = client.query(copyFrom('copy customers (id, tenant_id, email, phone_number, first_name, sms_opt_in) from stdin with (format csv)'));
    await pipeline(Readable.from((function* () {
      for (let i = 0; i < count; i++) yield `${uuidv7()},${tenant},c${i}.${tenant}@example.com,+1555${String(i).padStart(7, '0')},C${i},true\n`;
    })()), sink);
  } finally {
    await client.end();
  }
  const segmentId = uuidv7();
  await query(url, `insert into segments (id, tenant_id, name, type) values ($1, $2, 'Fan-out audience', 'STATIC')`, [segmentId, tenant]);
  await query(url, 'insert into segment_members (segment_id, customer_id, tenant_id) select $1, id, tenant_id from customers where tenant_id = $2', [segmentId, tenant]);
  await query(url, 'vacuum analyze customers, segment_members');
  return segmentId;
}

/** The baseline: the engine's own Messaging client, `count` sends, CONCURRENCY at a time. */
async function baselineLoop(sink: Server, tenant: string, customers: { id: string; phone: string; name: string }[]): Promise<number> {
  const client = new MessagingClient({ baseUrl: sink.url, apiKey: API_KEY });
  const campaignId = uuidv7();
  let next = 0;
  const started = performance.now();
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (next < customers.length) {
      const c = customers[next++]!;
      const deliveryId = randomUUID();
      await client.sendMessage({
        tenantId: tenant, channel: 'SMS', to: { customerId: c.id, email: null, phoneNumber: c.phone },
        content: { subject: null, body: BODY.replace('{{ firstName }}', c.name) }, metadata: { campaignId, deliveryId },
      }, deliveryId);
    }
  }));
  return performance.now() - started;
}

async function sinkStats(sink: Server, reset = false): Promise<{ received: number; accepted: number }> {
  return (await fetch(`${sink.url}/stats`, { method: reset ? 'DELETE' : 'GET' })).json() as Promise<{ received: number; accepted: number }>;
}

interface CampaignRun {
  ms: number;
  sent: number;
  rssMiB: number;
  maxHistory: number;
  runs: number;
}

/** Creates the template and campaign through the API, executes it and waits for COMPLETED. */
async function runCampaign(url: string, sink: Server, tenant: string, segmentId: string, count: number): Promise<CampaignRun> {
  const workerEnv = {
    MESSAGING_URL: sink.url, MESSAGING_API_KEY: API_KEY, JWT_SECRET: BENCH_SECRET,
    CAMPAIGN_SEND_CONCURRENCY: String(CONCURRENCY), SMS_MAX_PER_SECOND: '1000000000', LOG_LEVEL: 'warn',
  };
  return withTemporalAndWorker(url, workerEnv, async ({ client, address, workerPid, taskQueue }) => {
    const api = await spawnServer('api/server.ts', {
      DATABASE_URL: url, JWT_SECRET: BENCH_SECRET, TEMPORAL_ADDRESS: address, TEMPORAL_TASK_QUEUE: taskQueue,
    }, await freePort(), '/healthz');
    try {
      const auth = `Bearer ${await signDevToken(BENCH_SECRET, { tenantId: tenant, scopes: [...SCOPES] }, '2h')}`;
      const call = async (method: string, path: string, body?: unknown) => {
        const res = await fetch(`${api.url}/api/v1${path}`, {
          method, headers: { authorization: auth, ...(body !== undefined && { 'content-type': 'application/json' }) }, body: body === undefined ? undefined : JSON.stringify(body),
        });
        const json = await res.json() as { data: { id: string; status: string } };
        if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json)}`);
        return json.data;
      };
      const template = await call('POST', '/templates', { name: 'Fan-out SMS', channel: 'SMS', body: BODY });
      const campaign = await call('POST', '/campaigns', { name: 'Fan-out', type: 'ONE_TIME', segmentId, channels: ['SMS'], smsTemplateId: template.id });
      await sinkStats(sink, true);
      const started = performance.now();
      await call('POST', `/campaigns/${campaign.id}/execute`);
      const workflowId = campaignRunId(campaign.id, 'once');
      // Peak memory is the worker's whole life; sampled on the way for the log too.
      const progress = setInterval(async () => {
        const { accepted } = await sinkStats(sink).catch(() => ({ accepted: -1 }));
        process.stderr.write(`  ${Math.round((performance.now() - started) / 1000)}s: ${accepted} sent, worker peak RSS ${peakRssMiB(workerPid)} MiB\n`);
      }, 30_000);
      try {
        await client.workflow.getHandle(workflowId).result();
      } finally {
        clearInterval(progress);
      }
      const ms = performance.now() - started;
      const status = (await call('GET', `/campaigns/${campaign.id}`)).status;
      if (status !== 'COMPLETED') throw new Error(`campaign ended ${status}`);
      const sent = (await query<{ sent: number }>(url, `select count(*)::int as sent from campaign_deliveries where tenant_id = $1 and campaign_id = $2 and status = 'SENT'`, [tenant, campaign.id]))[0]!.sent;
      const { accepted } = await sinkStats(sink);
      if (sent !== count || accepted !== count) throw new Error(`${count} recipients: ${sent} deliveries SENT, ${accepted} messages at the sink`);
      // Every run of the workflow id (the first and each continued-as-new one).
      const histories: number[] = [];
      for await (const execution of client.workflow.list({ query: `WorkflowId = '${workflowId}'` })) {
        histories.push((await client.workflow.getHandle(workflowId, execution.runId).describe()).historyLength);
      }
      return { ms, sent, rssMiB: peakRssMiB(workerPid), maxHistory: Math.max(...histories), runs: histories.length };
    } finally {
      await api.stop();
    }
  });
}

export async function benchCampaignFanout(url: string, rows: number, largeRows: number): Promise<void> {
  const sink = await spawnServer('scripts/bench/messaging-sink.ts', { MESSAGING_API_KEY: API_KEY }, await freePort(), '/stats');
  try {
    const tenant = `bench_fanout_${Date.now()}`;
    process.stderr.write(`seeding ${rows} customers...\n`);
    const segmentId = await seedAudience(url, tenant, rows);
    const customers = await query<{ id: string; phone: string; name: string }>(url,
      'select id, phone_number as phone, first_name as name from customers where tenant_id = $1', [tenant]);
    await sinkStats(sink, true);
    const baselineMs = await baselineLoop(sink, tenant, customers);
    if ((await sinkStats(sink)).accepted !== rows) throw new Error('the baseline loop lost messages');

    process.stderr.write(`campaign to ${rows}...\n`);
    const small = await runCampaign(url, sink, tenant, segmentId, rows);

    const largeTenant = `bench_fanout_large_${Date.now()}`;
    process.stderr.write(`seeding ${largeRows} customers...\n`);
    const largeSegment = await seedAudience(url, largeTenant, largeRows);
    process.stderr.write(`campaign to ${largeRows}...\n`);
    const large = await runCampaign(url, sink, largeTenant, largeSegment, largeRows);

    const rate = (n: number, ms: number) => Math.round(n / (ms / 1000));
    process.stdout.write(`\nCampaign fan-out: ONE_TIME SMS campaign through the Messaging channel to a local sink, ${CONCURRENCY} sends at a time\n${table([
      { run: `plain client loop, ${rows} (baseline)`, seconds: (baselineMs / 1000).toFixed(1), 'messages/s': rate(rows, baselineMs), ratio: '1.00', 'worker peak RSS MiB': '-', 'max history events': '-' },
      { run: `campaign, ${rows}`, seconds: (small.ms / 1000).toFixed(1), 'messages/s': rate(rows, small.ms), ratio: ratio(rate(rows, small.ms), rate(rows, baselineMs)), 'worker peak RSS MiB': small.rssMiB, 'max history events': `${small.maxHistory} (${small.runs} run${small.runs > 1 ? 's' : ''})` },
      { run: `campaign, ${largeRows}`, seconds: (large.ms / 1000).toFixed(1), 'messages/s': rate(largeRows, large.ms), ratio: ratio(rate(largeRows, large.ms), rate(rows, baselineMs)), 'worker peak RSS MiB': large.rssMiB, 'max history events': `${large.maxHistory} (${large.runs} run${large.runs > 1 ? 's' : ''})` },
    ])}\nTargets: campaign ≥ 0.5x the baseline's messages/s; ${largeRows} recipients in ≤ ${(1.05 * largeRows / rows).toFixed(1)}x the ${rows} time (here ${ratio(large.ms, small.ms)}x); worker memory flat; history bounded per run.\n`);
  } finally {
    await sink.stop();
  }
}

import { randomUUID } from 'node:crypto';
import { Client, Connection } from '@temporalio/client';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startMessagingServer, type MessagingServer } from '../scripts/messaging-server.js';
import type { segmentSyncWorkflow } from '../workflows/segment-sync.js';
import { newTenant, TEST_JWT_SECRET } from './support/api.js';
import { spawnWorkerProcess, type WorkerProcess } from './support/processes.js';

// The worker syncing a segment is killed (SIGKILL: no shutdown, no flush) while Messaging holds
// the answer to a batch it has already applied: acknowledged over there, recorded nowhere here.
// The activity stops heartbeating; the server retries it after the heartbeat timeout on another
// worker, which resumes from the last heartbeat and the recorded acknowledgements.

const COUNT = 20_000;

/** Polls every few ms: batches go by fast, and the kill must land between two of them. */
async function soon<T>(what: string, probe: () => T | undefined | false, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

let messaging: MessagingServer;
let db: pg.Client;
let connection: Connection;
let workerEnv: Record<string, string>;
const workers: WorkerProcess[] = [];

beforeAll(async () => {
  messaging = await startMessagingServer();
  workerEnv = {
    TEMPORAL_TASK_QUEUE: `sync-kill-${randomUUID().slice(0, 8)}`,
    DATABASE_URL: inject('databaseUrl'),
    TEMPORAL_ADDRESS: inject('temporalAddress'),
    JWT_SECRET: TEST_JWT_SECRET,
    MESSAGING_URL: messaging.url,
    MESSAGING_API_KEY: messaging.apiKey,
    OUTBOX_DISPATCH: 'false',
  };
  db = new pg.Client({ connectionString: inject('databaseUrl') });
  await db.connect();
  connection = await Connection.connect({ address: inject('temporalAddress') });
}, 60_000);

afterAll(async () => {
  await Promise.all(workers.map((w) => w.stop()));
  await connection?.close();
  await db?.end();
  await messaging?.close();
});

describe('a worker process killed mid-sync', () => {
  it('the next worker resumes; the batch applied but not recorded is resent with its key; every member is added once', async () => {
    const tenant = newTenant();
    const segmentId = randomUUID();
    await db.query(
      `insert into customers (tenant_id, email, first_name) select $1, 'k' || i || '@sync-kill.test', 'K' || i from generate_series(1, $2) i`,
      [tenant, COUNT],
    );
    await db.query(`insert into segments (id, tenant_id, name, type) values ($1, $2, 'kill', 'STATIC')`, [segmentId, tenant]);
    await db.query(`insert into segment_members (segment_id, customer_id, tenant_id) select $1, id, tenant_id from customers where tenant_id = $2`, [segmentId, tenant]);
    const remote = `msg_${segmentId}`;
    const appliedHere = () => messaging.applied.filter((b) => b.segment === remote);

    const first = await spawnWorkerProcess(workerEnv);
    workers.push(first);
    const client = new Client({ connection });
    const handle = await client.workflow.start<typeof segmentSyncWorkflow>('segmentSyncWorkflow', {
      workflowId: `segment-sync-${segmentId}`, taskQueue: workerEnv.TEMPORAL_TASK_QUEUE!, args: [{ tenantId: tenant, segmentId }],
    });

    // A few batches in, the next one is applied and its answer held until the worker is dead.
    await soon('two batches applied', () => appliedHere().length >= 2);
    messaging.failNext({ kind: 'lost', ms: 5_000 });
    const received = messaging.received.length;
    const held = await soon('the held batch applied', () => messaging.received.length > received && messaging.applied.at(-1)?.key === messaging.received[received] && messaging.received[received]);
    first.child.kill('SIGKILL');
    expect(await first.exited).toBe('SIGKILL');
    const appliedAtKill = appliedHere().length;
    expect(appliedAtKill).toBeLessThan(COUNT / 1000);

    workers.push(await spawnWorkerProcess(workerEnv));
    const result = await handle.result();

    expect(result).toMatchObject({ messagingSegmentId: remote, syncedCount: COUNT });
    const members = messaging.members.get(remote)!;
    expect(members.size).toBe(COUNT);
    expect([...members.keys()].filter((id) => messaging.addCounts.get(id) !== 1)).toEqual([]);
    // The held batch was sent again with the same key (and acknowledged, not applied); no key applied twice.
    expect(messaging.received.filter((k) => k === held).length).toBeGreaterThanOrEqual(2);
    const keys = appliedHere().map((b) => b.key);
    expect(new Set(keys).size).toBe(keys.length);
    expect(appliedHere().reduce((n, b) => n + b.add, 0)).toBe(COUNT);
    const { rows: [recorded] } = await db.query<{ n: number }>('select count(*)::int as n from segment_synced_members where segment_id = $1', [segmentId]);
    expect(recorded!.n).toBe(COUNT);
  }, 240_000);
});

import { MockActivityEnvironment } from '@temporalio/testing';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { runPool } from '../activities/campaigns.js';
import { createActivities } from '../activities/index.js';
import { openOrm, type Orm } from '../db/orm.js';
import { createLogger } from '../platform/logger.js';
import { startMessagingServer, type MessagingServer } from '../scripts/messaging-server.js';
import { newTenant, testConfig } from './support/api.js';
import { insertTemplate } from './support/journey-fixtures.js';
import { until } from './support/until.js';

// Two attempts of one send slice at the same time, on real PostgreSQL and the local Messaging
// server, without Temporal (MockActivityEnvironment): Temporal timed the first out (its worker lost
// touch) and started the retry while the first, still alive, goes on sending. The claim lease
// (CAMPAIGN_CLAIM_LEASE_MS) keeps each row with one of them.

const LEASE_MS = 20_000;
let orm: Orm;
let db: pg.Client;
let messaging: MessagingServer;
let activities: ReturnType<typeof createActivities>;

beforeAll(async () => {
  messaging = await startMessagingServer();
  const config = testConfig({
    MESSAGING_URL: messaging.url, MESSAGING_API_KEY: messaging.apiKey, MESSAGING_TIMEOUT_MS: '2000', SMTP_TIMEOUT_MS: '2000',
    SMS_MAX_PER_SECOND: '1000', CAMPAIGN_BATCH_SIZE: '10', CAMPAIGN_SEND_CONCURRENCY: '2', CAMPAIGN_CLAIM_LEASE_MS: String(LEASE_MS),
  });
  orm = await openOrm(config.DATABASE_URL!);
  activities = createActivities({ orm, config, log: createLogger('silent') });
  db = new pg.Client({ connectionString: inject('databaseUrl') });
  await db.connect();
});
afterAll(async () => {
  await db?.end();
  await orm?.close();
  await messaging?.close();
});

/** A SMS campaign with `count` PENDING deliveries of run `once`. */
async function campaignWith(count: number) {
  const tenantId = newTenant();
  const template = await insertTemplate(db, tenantId, 'SMS', 'Hi {{ firstName }}');
  const { rows: [campaign] } = await db.query<{ id: string }>(
    `insert into campaigns (tenant_id, name, type, status, channels, sms_template_id, started_at) values ($1, 'Lease', 'ONE_TIME', 'ACTIVE', '{SMS}', $2, now()) returning id`,
    [tenantId, template],
  );
  const { rows: deliveries } = await db.query<{ id: string }>(
    `with c as (insert into customers (tenant_id, first_name, phone_number, sms_opt_in)
                select $1, 'Member ' || i, '+2782' || lpad(i::text, 7, '0'), true from generate_series(1, $3) i returning id)
     insert into campaign_deliveries (tenant_id, campaign_id, customer_id, run_key, channel, status)
     select $1, $2, c.id, 'once', 'SMS', 'PENDING' from c returning id`,
    [tenantId, campaign!.id, count],
  );
  return { tenantId, campaignId: campaign!.id, ids: new Set(deliveries.map((d) => d.id)) };
}

const attempt = (n: number) => new MockActivityEnvironment({
  attempt: n, activityId: 'send', workflowExecution: { workflowId: 'campaign-lease', runId: 'run' },
});
type Slice = Awaited<ReturnType<typeof activities.sendDeliveries>>;

describe('a retry beside an attempt that still sends', () => {
  it('takes none of the first attempt\'s rows: every message is posted once, and the run ends with all sent', async () => {
    const { tenantId, campaignId, ids } = await campaignWith(30);
    // Each post takes 150 ms: the first attempt is mid-batch when the retry starts.
    messaging.failNext(...Array.from({ length: 30 }, () => ({ kind: 'slow' as const, ms: 150 })));
    const ref = { tenantId, campaignId, runKey: 'once', ownsState: true };
    const first: Promise<Slice> = attempt(1).run(activities.sendDeliveries, ref);
    await until('the first attempt sending', async () => messaging.messagesReceived.some((k) => ids.has(k)));
    const retry: Slice = await attempt(2).run(activities.sendDeliveries, ref);
    const original = await first;

    const posted = messaging.messagesReceived.filter((k) => ids.has(k));
    expect(posted.length - new Set(posted).size).toBe(0);
    expect(new Set(posted)).toEqual(ids);
    expect(original.sent + retry.sent).toBe(30);
    const { rows } = await db.query('select status, count(*)::int as n from campaign_deliveries where campaign_id = $1 group by 1', [campaignId]);
    expect(rows).toEqual([{ status: 'SENT', n: 30 }]);
  });

  it('a dead attempt\'s rows are taken back once its lease has run out, and the slice says when', async () => {
    const { tenantId, campaignId, ids } = await campaignWith(5);
    // What a worker killed mid-batch leaves: rows SENDING under its claim, no longer renewed.
    await db.query(`update campaign_deliveries set status = 'SENDING', claimed_by = 'campaign-lease/send#1@gone:1', updated_at = now() where campaign_id = $1`, [campaignId]);
    const ref = { tenantId, campaignId, runKey: 'once', ownsState: true };
    const early: Slice = await attempt(2).run(activities.sendDeliveries, ref);
    expect(early).toMatchObject({ sent: 0, pending: 5, due: 0 });
    const wait = Date.parse(early.nextSendAt!) - Date.now();
    expect(wait).toBeGreaterThan(LEASE_MS - 5_000);
    expect(wait).toBeLessThanOrEqual(LEASE_MS);
    expect(messaging.messagesReceived.filter((k) => ids.has(k))).toEqual([]);

    // The lease ran out (the rows were last renewed longer ago than that).
    await db.query(`update campaign_deliveries set updated_at = now() - interval '${LEASE_MS + 1000} milliseconds' where campaign_id = $1`, [campaignId]);
    const later: Slice = await attempt(3).run(activities.sendDeliveries, ref);
    expect(later).toMatchObject({ sent: 5, pending: 0 });
    expect(new Set(messaging.messagesReceived.filter((k) => ids.has(k)))).toEqual(ids);
  });
});

describe('the send pool', () => {
  it('a send that throws stops the others starting, and the pool throws only once no send is still running', async () => {
    const running = new Set<number>();
    const started: number[] = [];
    let runningWhenThrown = -1;
    const pool = runPool(Array.from({ length: 20 }, (_, i) => i), 4, () => false, async (i) => {
      started.push(i);
      running.add(i);
      try {
        await new Promise((r) => setTimeout(r, i === 1 ? 10 : 60));
        if (i === 1) throw new Error('the template could not be loaded');
      } finally {
        running.delete(i);
      }
    });
    await expect(pool.catch((err) => {
      runningWhenThrown = running.size;
      throw err;
    })).rejects.toThrow('the template could not be loaded');
    // Sends 0, 2 and 3 were in flight when 1 failed: the pool waited for them, and started no more.
    expect(runningWhenThrown).toBe(0);
    expect(started.sort((a, b) => a - b)).toEqual([0, 1, 2, 3]);
  });
});

import net from 'node:net';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { newTenant, startTestApi, token, type TestApi } from './support/api.js';

// Issue 7 §2: a database that does not answer must not hold requests. Each API here runs with
// short database timeouts; the database is made to wait (a row lock) or to stall altogether.
const TIMEOUTS = { DB_STATEMENT_TIMEOUT_MS: '300', DB_ACQUIRE_TIMEOUT_MS: '500' };

/**
 * A TCP relay in front of PostgreSQL that can stop passing bytes (a stalled server) and go on
 * again, or reset each connection that sends a ROLLBACK (a connection lost as it rolls back).
 */
async function stallableRelay(target: URL) {
  const pairs = new Set<[net.Socket, net.Socket]>();
  let stalled = false;
  let resetRollbacks = false;
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(target.port), target.hostname);
    const pair: [net.Socket, net.Socket] = [client, upstream];
    pairs.add(pair);
    client.on('data', (chunk: Buffer) => {
      // A simple-protocol ROLLBACK: the statement's text, nul-terminated.
      if (resetRollbacks && /rollback\0/i.test(chunk.toString('latin1'))) {
        client.resetAndDestroy();
        upstream.destroy();
        return;
      }
      if (!upstream.write(chunk)) client.pause();
    });
    upstream.on('drain', () => stalled || client.resume());
    upstream.pipe(client).on('error', () => undefined);
    client.on('error', () => undefined).on('close', () => { upstream.destroy(); pairs.delete(pair); });
    upstream.on('error', () => undefined).on('close', () => client.destroy());
    if (stalled) pair.forEach((s) => s.pause());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = new URL(target);
  url.host = `127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  return {
    url: url.toString(),
    resetRollbacks(on: boolean) {
      resetRollbacks = on;
    },
    stall(on: boolean) {
      stalled = on;
      for (const pair of pairs) pair.forEach((s) => (on ? s.pause() : s.resume()));
    },
    async close() {
      for (const pair of pairs) pair.forEach((s) => s.destroy());
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describe('database timeouts', () => {
  let api: TestApi;
  let locker: pg.Client;
  beforeAll(async () => {
    api = await startTestApi(TIMEOUTS);
    locker = new pg.Client({ connectionString: inject('databaseUrl') });
    await locker.connect();
  });
  afterAll(async () => {
    await locker.end();
    await api.close();
  });

  it('answers 503 SERVICE_UNAVAILABLE with Retry-After while a statement waits past the timeout, and recovers', async () => {
    const tenant = newTenant();
    const auth = await token(tenant);
    const customer = (await api.call('POST', '/api/v1/customers', { auth, body: { email: 'locked@example.com' } })).body.data;
    await locker.query('begin');
    await locker.query('select id from customers where id = $1 for update', [customer.id]);
    try {
      const rest = await api.call('PATCH', `/api/v1/customers/${customer.id}`, { auth, body: { firstName: 'Waits' } });
      expect(rest.status).toBe(503);
      expect(rest.body.error).toMatchObject({ code: 'SERVICE_UNAVAILABLE', requestId: expect.any(String) });
      expect(Number(rest.headers.get('retry-after'))).toBeGreaterThan(0);
      const gql = await api.graphql(auth, `mutation { updateCustomer(id: "${customer.id}", input: { firstName: "Waits" }) { id } }`);
      expect(gql.body.errors[0].extensions.code).toBe('SERVICE_UNAVAILABLE');
    } finally {
      await locker.query('rollback');
    }
    const after = await api.call('PATCH', `/api/v1/customers/${customer.id}`, { auth, body: { firstName: 'Free' } });
    expect(after.status).toBe(200);
    expect(after.body.data.firstName).toBe('Free');
  });
});

describe('a stalled database', () => {
  let relay: Awaited<ReturnType<typeof stallableRelay>>;
  let api: TestApi;
  beforeAll(async () => {
    relay = await stallableRelay(new URL(inject('databaseUrl')));
    api = await startTestApi({ ...TIMEOUTS, DATABASE_URL: relay.url });
  });
  afterAll(async () => {
    relay.stall(false);
    await api.close();
    await relay.close();
  });

  /** As many writes at once as the pool holds (each needs a connection of its own), tried until all land: their statuses. */
  async function poolServesAgain(auth: string, domain: string): Promise<number[]> {
    let statuses: number[] = [];
    for (let attempt = 0; attempt < 50; attempt++) {
      statuses = (await Promise.all(Array.from({ length: 10 }, (_, i) => api.call('POST', '/api/v1/customers', { auth, body: { email: `after${attempt}.${i}@${domain}` } })))).map((r) => r.status);
      if (statuses.every((s) => s === 201)) break;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    return statuses;
  }

  it('answers 503 on pooled and new connections alike, then serves again when the database does', async () => {
    const auth = await token(newTenant());
    // Warm the pool: some requests then stall on a pooled connection, others on a new one.
    expect((await api.call('GET', '/api/v1/customers', { auth })).status).toBe(200);
    relay.stall(true);
    const stalled = await Promise.all(Array.from({ length: 12 }, () => api.call('GET', '/api/v1/customers', { auth })));
    expect(stalled.map((r) => r.status)).toEqual(Array(12).fill(503));
    expect(stalled[0]!.body.error.code).toBe('SERVICE_UNAVAILABLE');
    relay.stall(false);
    let status = 0;
    for (let attempt = 0; attempt < 50 && status !== 200; attempt++) {
      status = (await api.call('GET', '/api/v1/customers', { auth })).status;
      if (status !== 200) await new Promise((resolve) => setTimeout(resolve, 200));
    }
    expect(status).toBe(200);
  });

  it('gives back every connection lost as it rolled back: writes that failed answer 503, then all serve again', async () => {
    const auth = await token(newTenant());
    const customer = (await api.call('POST', '/api/v1/customers', { auth, body: { email: 'rolled@back.test' } })).body.data;
    // Each write waits for the row past its statement timeout, rolls back, and its connection drops.
    const locker = new pg.Client({ connectionString: inject('databaseUrl') });
    await locker.connect();
    await locker.query('begin');
    await locker.query('select id from customers where id = $1 for update', [customer.id]);
    relay.resetRollbacks(true);
    try {
      const failed = await Promise.all(Array.from({ length: 12 }, (_, i) => api.call('PATCH', `/api/v1/customers/${customer.id}`, { auth, body: { firstName: `F${i}` } })));
      expect(failed.map((r) => r.status)).toEqual(Array(12).fill(503));
    } finally {
      relay.resetRollbacks(false);
      await locker.query('rollback');
      await locker.end();
    }
    expect(await poolServesAgain(auth, 'back.test')).toEqual(Array(10).fill(201));
  });

  it('gives back every connection whose transaction could not begin: writes answer 503 while stalled, then all serve again', async () => {
    const auth = await token(newTenant());
    expect((await api.call('POST', '/api/v1/customers', { auth, body: { email: 'before@stall.test' } })).status).toBe(201);
    relay.stall(true);
    // More writes than the pool has connections, each stuck in its BEGIN.
    const stalled = await Promise.all(Array.from({ length: 12 }, (_, i) => api.call('POST', '/api/v1/customers', { auth, body: { email: `stalled${i}@stall.test` } })));
    expect(stalled.map((r) => r.status)).toEqual(Array(12).fill(503));
    relay.stall(false);
    expect(await poolServesAgain(auth, 'stall.test')).toEqual(Array(10).fill(201));
    // None of the stalled writes landed half-way: a BEGIN given up on never ran its statements.
    const list = (await api.call('GET', '/api/v1/customers?search=stalled', { auth })).body;
    expect(list.data).toEqual([]);
  });
});

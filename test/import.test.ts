import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, inject } from 'vitest';
import { Readable } from 'node:stream';
import { readImportRows } from '../domain/customers/import.js';
import { AppError } from '../platform/errors.js';
import { newTenant, startTestApi, token, TEST_JWT_SECRET, type TestApi } from './support/api.js';
import { until } from './support/until.js';

let api: TestApi;
beforeAll(async () => {
  api = await startTestApi();
});
afterAll(() => api.close());

const upload = (auth: string, body: string, type: string) =>
  api.call('POST', '/api/v1/customers/import', { auth, body, headers: { 'content-type': type } });

describe('POST /api/v1/customers/import', () => {
  it('upserts NDJSON by email then phone and reports created, updated and rejected rows with reasons', async () => {
    const auth = await token(newTenant());
    await api.call('POST', '/api/v1/customers', { auth, body: { email: 'existing@example.com', firstName: 'Old', lastName: 'Name' } });
    await api.call('POST', '/api/v1/customers', { auth, body: { phoneNumber: '+27821230000', firstName: 'Phone' } });
    const lines = [
      { email: 'EXISTING@example.com', firstName: 'New' },
      { phone: '082 123 0000', membershipTier: 'GOLD', emailOptIn: true },
      { email: 'fresh@example.com', firstName: 'Fresh', handicap: 12.4, lifecycleStage: 'MEMBER' },
      { firstName: 'No identifiers' },
      { email: 'broken' },
      { email: 'fresh@example.com', lastName: 'Twice' },
    ].map((l) => JSON.stringify(l));
    lines.splice(3, 0, '{not json', '');
    const res = await upload(auth, lines.join('\n'), 'application/x-ndjson');
    expect(res.status).toBe(200);
    expect(res.body.data).toMatchObject({ created: 1, updated: 3, rejected: 3 });
    expect(res.body.data.errors.map((e: any) => e.line)).toEqual([4, 6, 7]);
    expect(res.body.data.errors[0].reason).toContain('JSON');
    expect(res.body.data.errors[2].reason).toContain('email');

    const list = (await api.call('GET', '/api/v1/customers?take=100', { auth })).body.data;
    const byEmail = Object.fromEntries(list.map((c: any) => [c.email ?? c.phoneNumber, c]));
    expect(byEmail['existing@example.com']).toMatchObject({ firstName: 'New', lastName: 'Name' }); // blanks never erase
    expect(byEmail['+27821230000']).toMatchObject({ firstName: 'Phone', membershipTier: 'GOLD', emailOptIn: true });
    expect(byEmail['fresh@example.com']).toMatchObject({ firstName: 'Fresh', lastName: 'Twice', handicap: 12.4, lifecycleStage: 'MEMBER' });
    expect(list).toHaveLength(3);
  });

  it('reads CSV with a header row, and refuses an unknown content type', async () => {
    const auth = await token(newTenant());
    const csv = 'Email,Phone,First Name,last_name,EMAIL_OPT_IN,handicap\n' +
      'ann@example.com,0821111111,Ann,Lee,yes,8\n' +
      'bob@example.com,,Bob,"Smith, Jr",no,\n' +
      ',,Nobody,,,\n';
    const res = await upload(auth, csv, 'text/csv');
    expect(res.body.data).toMatchObject({ created: 2, updated: 0, rejected: 1 });
    expect(res.body.data.errors[0].line).toBe(4);
    const bob = (await api.call('GET', '/api/v1/customers?search=bob', { auth })).body.data[0];
    expect(bob).toMatchObject({ lastName: 'Smith, Jr', emailOptIn: false, handicap: null });
    const ann = (await api.call('GET', '/api/v1/customers?search=ann', { auth })).body.data[0];
    expect(ann).toMatchObject({ phoneNumber: '+27821111111', emailOptIn: true, handicap: 8 });
    expect((await upload(auth, 'x', 'application/pdf')).status).toBe(400);
  });

  it('streams a file larger than one batch', async () => {
    const auth = await token(newTenant());
    const rows = Array.from({ length: 2500 }, (_, i) => JSON.stringify({ email: `m${i}@example.com`, firstName: `M${i}` })).join('\n');
    const res = await upload(auth, rows, 'application/x-ndjson');
    expect(res.body.data).toMatchObject({ created: 2500, updated: 0, rejected: 0 });
    const again = await upload(auth, rows, 'application/x-ndjson');
    expect(again.body.data).toMatchObject({ created: 0, updated: 2500 });
    expect((await api.call('GET', '/api/v1/customers?take=1', { auth })).body.meta.total).toBe(2500);
  });

  it('streams a chunked body a row at a time, past the socket\'s buffers, to the end', async () => {
    const auth = await token(newTenant());
    let i = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (i === 6000) return controller.close();
        controller.enqueue(Buffer.from(`${JSON.stringify({ email: `s${i}@example.com`, firstName: 'x'.repeat(100), lastName: `S${i++}` })}\n`));
      },
    });
    const res = await fetch(`${api.url}/api/v1/customers/import`, {
      method: 'POST', body, duplex: 'half', headers: { authorization: `Bearer ${auth}`, 'content-type': 'application/x-ndjson' },
      signal: AbortSignal.timeout(30_000),
    } as RequestInit);
    expect(((await res.json()) as { data: unknown }).data).toMatchObject({ created: 6000, updated: 0, rejected: 0 });
  });

  it('a batch that meets a taken email after new ones still creates each new row once and updates the owner', async () => {
    const auth = await token(newTenant());
    const owner = (await api.call('POST', '/api/v1/customers', { auth, body: { email: 'm1700@example.com', firstName: 'Owner', lastName: 'Kept' } })).body.data;
    // The first batch is all new; the second meets the owner's email 700 rows in.
    const rows = Array.from({ length: 2500 }, (_, i) => JSON.stringify({ email: `m${i}@example.com`, firstName: `M${i}` })).join('\n');
    const res = await upload(auth, rows, 'application/x-ndjson');
    expect(res.body.data).toMatchObject({ created: 2499, updated: 1, rejected: 0 });
    expect((await api.call('GET', '/api/v1/customers?take=1', { auth })).body.meta.total).toBe(2500);
    expect((await api.call('GET', `/api/v1/customers/${owner.id}`, { auth })).body.data).toMatchObject({ firstName: 'M1700', lastName: 'Kept' });
  });

  it('two imports of overlapping files at once: every email one profile, every row created or updated', async () => {
    const auth = await token(newTenant());
    const file = (from: number) => Array.from({ length: 2000 }, (_, i) => JSON.stringify({ email: `o${from + i}@example.com`, firstName: `F${from}` })).join('\n');
    const [a, b] = await Promise.all([upload(auth, file(0), 'application/x-ndjson'), upload(auth, file(1000), 'application/x-ndjson')]);
    for (const r of [a, b]) {
      expect(r.status, JSON.stringify(r.body)).toBe(200);
      expect(r.body.data.created + r.body.data.updated).toBe(2000);
    }
    expect(a.body.data.created + b.body.data.created).toBe(3000);
    expect((await api.call('GET', '/api/v1/customers?take=1', { auth })).body.meta.total).toBe(3000);
  });

  it('updates profiles in the order events lock them: a file listing them backwards waits for an event batch instead of deadlocking with it', async () => {
    const auth = await token(newTenant());
    const a = (await api.call('POST', '/api/v1/customers', { auth, body: { email: 'a@order.test' } })).body.data;
    const b = (await api.call('POST', '/api/v1/customers', { auth, body: { email: 'b@order.test' } })).body.data;
    const [low, high] = [a, b].sort((x, y) => (x.id < y.id ? -1 : 1));
    // An event batch's transaction, as appendActivities takes its locks: by id, the lower first.
    const [batch, watcher] = [new pg.Client({ connectionString: inject('databaseUrl') }), new pg.Client({ connectionString: inject('databaseUrl') })];
    await Promise.all([batch.connect(), watcher.connect()]);
    try {
      await batch.query('begin');
      await batch.query('select 1 from customers where id = $1 for no key update', [low.id]);
      const imported = upload(auth, [high, low].map((c) => JSON.stringify({ email: c.email, firstName: 'Imported' })).join('\n'), 'application/x-ndjson');
      // Once the import waits for the lower one, the batch takes the higher one, and commits.
      // (Watched from outside: a transaction sees pg_stat_activity as it first read it.)
      const [{ pid }] = (await batch.query('select pg_backend_pid() as pid')).rows;
      await until('the import waits for the batch', async () => (await watcher.query(
        'select 1 from pg_stat_activity where $1 = any(pg_blocking_pids(pid))', [pid])).rowCount || undefined, 10_000);
      await batch.query('select 1 from customers where id = $1 for no key update', [high.id]);
      await batch.query('commit');
      const res = await imported;
      expect(res.status).toBe(200);
      expect(res.body.data).toMatchObject({ created: 0, updated: 2, rejected: 0 });
    } finally {
      await Promise.all([batch.end(), watcher.end()]);
    }
  });

  it('stores text exactly, whatever it holds, on both the insert and the update path', async () => {
    const auth = await token(newTenant());
    const odd = 'Quote " backslash \\ comma , brace { } tab \t emoji 🏌️ accent é';
    // A lone surrogate cannot be stored as text: it becomes U+FFFD, as anywhere else in the API.
    const lines = [
      { email: 'odd@example.com', firstName: odd, lastName: 'Lone \ud800 surrogate', handicap: -3.5, smsOptIn: 'yes' },
      { email: 'null@example.com', firstName: 'null', lastName: '{"a":1}' },
      // New rows go in through COPY's CSV: its end-of-data marker and quoted line breaks are data.
      { email: 'copy@example.com', firstName: 'two\nlines', lastName: '\\.', membershipTier: '"', homeClubId: '' },
    ].map((l) => JSON.stringify(l));
    const created = await upload(auth, lines.join('\n'), 'application/x-ndjson');
    expect(created.body.data).toMatchObject({ created: 3, updated: 0, rejected: 0 });
    const update = JSON.stringify({ email: 'null@example.com', membershipTier: odd });
    expect((await upload(auth, update, 'application/x-ndjson')).body.data).toMatchObject({ created: 0, updated: 1 });

    const list = (await api.call('GET', '/api/v1/customers?take=10', { auth })).body.data;
    const byEmail = Object.fromEntries(list.map((c: any) => [c.email, c]));
    expect(byEmail['odd@example.com']).toMatchObject({ firstName: odd, lastName: 'Lone \ufffd surrogate', handicap: -3.5, smsOptIn: true });
    expect(byEmail['null@example.com']).toMatchObject({ firstName: 'null', lastName: '{"a":1}', membershipTier: odd });
    expect(byEmail['copy@example.com']).toMatchObject({ firstName: 'two\nlines', lastName: '\\.', membershipTier: '"', homeClubId: null, lifecycleStage: 'SUBSCRIBER', emailOptIn: false });
  });

  it('reads lines however the body is cut: CRLF endings, characters split across chunks, no final line break', async () => {
    const auth = await token(newTenant());
    const names = ['Zoë', 'Søren 🏌️‍♂️', '李小龍', 'plain'];
    const text = names.map((firstName, i) => JSON.stringify({ email: `cut${i}@example.com`, firstName })).join('\r\n') + '\r\n\r\n{broken';
    const bytes = Buffer.from(text);
    // Seven bytes at a time: every multi-byte character and every CRLF is cut somewhere.
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < bytes.length; i += 7) controller.enqueue(bytes.subarray(i, i + 7));
        controller.close();
      },
    });
    const res = await fetch(`${api.url}/api/v1/customers/import`, {
      method: 'POST', body, duplex: 'half', headers: { authorization: `Bearer ${auth}`, 'content-type': 'application/x-ndjson' },
    } as RequestInit);
    const report = (await res.json()) as { data: { created: number; rejected: number; errors: { line: number }[] } };
    expect(report.data).toMatchObject({ created: 4, rejected: 1 });
    expect(report.data.errors.map((e) => e.line)).toEqual([6]);
    const list = (await api.call('GET', '/api/v1/customers?take=10', { auth })).body.data;
    expect(list.map((c: any) => c.firstName).sort()).toEqual([...names].sort());
  });

  it('a body cut short at its byte limit is refused for its size, not for the record the cut broke', async () => {
    const cut = () => {
      throw new AppError('PAYLOAD_TOO_LARGE', 'body: larger than the limit');
    };
    const limits = { maxRows: 10, maxLineBytes: 2000 };
    const read = async (text: string, format: 'csv' | 'ndjson', assertWhole: () => void = cut) => {
      const rows: unknown[] = [];
      for await (const group of readImportRows(Readable.from([Buffer.from(text)]), format, limits, assertWhole)) rows.push(...group);
      return rows;
    };
    // An open quote where the body was cut: an unclosed-quote CSV error but for the check.
    await expect(read('email,firstName\na@example.com,"Bo', 'csv')).rejects.toMatchObject({ code: 'PAYLOAD_TOO_LARGE' });
    await expect(read('email,firstName\na@example.com,"Bo', 'csv', () => {})).rejects.toMatchObject({ code: 'VALIDATION_ERROR' });
    await expect(read('{"email":"a@example.com"}\n{"email":"b@exa', 'ndjson')).rejects.toMatchObject({ code: 'PAYLOAD_TOO_LARGE' });
    // Over the row limit before the cut: the rows' fault is the one reported.
    const many = Array.from({ length: 11 }, (_, i) => JSON.stringify({ email: `r${i}@example.com` })).join('\n');
    await expect(read(many, 'ndjson')).rejects.toMatchObject({ code: 'PAYLOAD_TOO_LARGE', message: expect.stringContaining('10 rows') });
  });

  it('refuses a row naming an unknown field, "__proto__" included, and keeps the rest', async () => {
    const auth = await token(newTenant());
    const body = [
      '{"email":"proto@example.com","__proto__":{"firstName":"Injected"}}',
      '{"email":"extra@example.com","favouriteClub":"Royal"}',
      '{"email":"plain@example.com","phone":"","firstName":"Plain"}',
    ].join('\n');
    const res = await upload(auth, body, 'application/x-ndjson');
    expect(res.status).toBe(200);
    expect(res.body.data).toMatchObject({ created: 1, updated: 0, rejected: 2 });
    expect(res.body.data.errors.map((e: any) => e.line)).toEqual([1, 2]);
    expect(res.body.data.errors[0].reason).toContain('__proto__');
    expect(res.body.data.errors[1].reason).toContain('favouriteClub');
    const list = (await api.call('GET', '/api/v1/customers?take=10', { auth })).body.data;
    expect(list.map((c: any) => [c.email, c.firstName, c.phoneNumber])).toEqual([['plain@example.com', 'Plain', null]]);
  });

  it('refuses a CSV header naming no field once, for the file (however long the name), writing nothing', async () => {
    const auth = await token(newTenant());
    const rows = Array.from({ length: 1000 }, (_, i) => `m${i}@example.com,1`).join('\n');
    for (const header of ['Favourite Club', 'x'.repeat(60_000)]) {
      const res = await upload(auth, `email,${header}\n${rows}\n`, 'text/csv');
      expect([res.status, res.body.error?.code, res.body.error?.field]).toEqual([400, 'VALIDATION_ERROR', 'body']);
      expect(res.body.error.message).toMatch(/unknown column "(Favourite Club|x{60}… \(60000 characters\))"/);
      expect(JSON.stringify(res.body).length).toBeLessThan(1_000);
    }
    expect((await api.call('GET', '/api/v1/customers?take=1', { auth })).body.data).toEqual([]);
  });

  it('reports a rejection\'s reason at a bounded length, however long the key it names', async () => {
    const auth = await token(newTenant());
    const key = 'k'.repeat(50_000);
    const body = Array.from({ length: 200 }, (_, i) => JSON.stringify({ email: `r${i}@example.com`, [key]: 1 })).join('\n');
    const res = await upload(auth, body, 'application/x-ndjson');
    expect(res.body.data).toMatchObject({ created: 0, rejected: 200 });
    expect(Math.max(...res.body.data.errors.map((e: any) => e.reason.length))).toBeLessThanOrEqual(301);
    expect(JSON.stringify(res.body).length).toBeLessThan(200 * 400);
  });

  it('refuses a boolean it cannot read, naming the field, and leaves the profile\'s consent as it was', async () => {
    const auth = await token(newTenant());
    await upload(auth, JSON.stringify({ email: 'b@example.com', emailOptIn: true, smsOptIn: true, handicap: 9 }), 'application/x-ndjson');
    const res = await upload(auth, 'email,emailOptIn,smsOptIn,handicap\nb@example.com,Y,maybe, \nc@example.com,no,0, \n', 'text/csv');
    expect(res.body.data).toMatchObject({ created: 1, updated: 0, rejected: 1 });
    expect(res.body.data.errors[0]).toMatchObject({ line: 2 });
    expect(res.body.data.errors[0].reason).toMatch(/emailOptIn|smsOptIn/);
    const list = (await api.call('GET', '/api/v1/customers?take=10', { auth })).body.data;
    const by = Object.fromEntries(list.map((c: any) => [c.email, c]));
    expect(by['b@example.com']).toMatchObject({ emailOptIn: true, smsOptIn: true, handicap: 9 });
    expect(by['c@example.com']).toMatchObject({ emailOptIn: false, smsOptIn: false, handicap: null });
  });

  it('a file that stops part way (a malformed record) says what the rows before it wrote', async () => {
    const auth = await token(newTenant());
    const rows = Array.from({ length: 2500 }, (_, i) => `p${i}@example.com,P${i}`).join('\n');
    const res = await upload(auth, `email,firstName\n${rows}\nbad@example.com,"unclosed\n`, 'text/csv');
    expect([res.status, res.body.error?.code]).toEqual([400, 'VALIDATION_ERROR']);
    expect(res.body.error.written).toEqual({ created: expect.any(Number), updated: 0, rejected: 0 });
    const { written } = res.body.error;
    // The batches of 1,000 read before the bad record were written.
    expect(written.created).toBeGreaterThanOrEqual(2000);
    expect(res.body.error.message).toContain(`${written.created} created`);
    const db = new pg.Client({ connectionString: inject('databaseUrl') });
    await db.connect();
    try {
      const tenant = (await api.call('GET', '/api/v1/customers?take=1', { auth })).body.data[0]?.tenantId;
      const { rows: [n] } = await db.query('select count(*)::int as n from customers where tenant_id = $1', [tenant]);
      expect(n.n).toBe(written.created);
    } finally {
      await db.end();
    }
  });

  it('counts against the bulk rate-limit class', async () => {
    const auth = await token(newTenant());
    const res = await upload(auth, JSON.stringify({ email: 'rl@example.com' }), 'application/x-ndjson');
    expect(res.headers.get('x-ratelimit-limit')).toBe('10');
  });
});

describe('npm run import-customers', () => {
  it('imports a file from the command line with the same rules', () => {
    const tenant = newTenant();
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'crm-import-')), 'members.csv');
    writeFileSync(file, 'email,firstName\ncli1@example.com,One\ncli2@example.com,Two\nnot-an-email,Three\n');
    const run = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/import-customers.ts', '--tenant', tenant, '--file', file], {
      cwd: path.resolve(import.meta.dirname, '..'),
      env: { ...process.env, DATABASE_URL: inject('databaseUrl'), TEMPORAL_ADDRESS: inject('temporalAddress'), JWT_SECRET: TEST_JWT_SECRET, LOG_LEVEL: 'silent' },
      encoding: 'utf8',
    });
    expect(run.status, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ created: 2, updated: 0, rejected: 1, errors: [{ line: 4 }] });
    expect(run.stderr).toContain('rows');
  });
});

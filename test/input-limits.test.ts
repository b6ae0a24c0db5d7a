import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { upstreamEvent } from '../domain/events/ingest.js';
import { newTenant, startTestApi, token, type TestApi } from './support/api.js';

// The attacks of issue 7 (§2 request bodies and criteria, §3 500s that must be 4xx), against an API
// whose limits are turned down so each is cheap to reproduce.
const LIMITS = {
  MAX_BODY_BYTES: '20000',
  MAX_EVENT_METADATA_BYTES: '1000',
  MAX_IMPORT_BYTES: '60000',
  MAX_IMPORT_ROWS: '5',
  MAX_IMPORT_LINE_BYTES: '2000',
  MAX_CRITERIA_NODES: '20',
  MAX_CRITERIA_VALUES: '50',
};

let api: TestApi;
beforeAll(async () => {
  api = await startTestApi(LIMITS);
});
afterAll(() => api.close());

const event = (over: Record<string, unknown> = {}) => ({
  type: 'booking.created', occurredAt: '2026-11-20T07:30:00Z', customer: { email: 'golfer@example.com' }, category: 'BOOKING',
  title: 'Tee time booked', sourceService: 'bookings', sourceEventId: `evt-${Math.random()}`, ...over,
});

/**
 * Streams a chunked body (no Content-Length) of up to `totalBytes`, stopping as soon as the
 * server answers. Resolves with the answer and how much was sent before it.
 */
function streamUntilAnswered(path: string, auth: string, contentType: string, totalBytes: number, chunk = Buffer.alloc(16 * 1024, 'a')) {
  return new Promise<{ status: number; body: any; sent: number }>((resolve, reject) => {
    const url = new URL(api.url + path);
    let sent = 0;
    let answered = false;
    const req = http.request(
      { host: url.hostname, port: url.port, path: url.pathname, method: 'POST', headers: { authorization: `Bearer ${auth}`, 'content-type': contentType } },
      (res) => {
        answered = true;
        let text = '';
        res.setEncoding('utf8').on('data', (d) => (text += d)).on('end', () => {
          req.destroy();
          resolve({ status: res.statusCode!, body: JSON.parse(text), sent });
        });
      },
    );
    req.on('error', (err) => (answered ? undefined : reject(err)));
    const pump = () => {
      while (!answered && sent < totalBytes) {
        sent += chunk.length;
        if (!req.write(chunk)) return void req.once('drain', pump);
      }
      if (!answered) req.end();
    };
    pump();
  });
}

const nested = (depth: number) => '['.repeat(depth) + ']'.repeat(depth);

describe('request bodies are capped before they are buffered', () => {
  it('refuses a body over the limit by its Content-Length with 413 in the envelope, storing nothing', async () => {
    const auth = await token(newTenant());
    const big = event({ metadata: { blob: 'x'.repeat(30_000) } });
    const res = await api.call('POST', '/api/v1/events', { auth, body: big });
    expect(res.status).toBe(413);
    expect(res.body.error).toMatchObject({ code: 'PAYLOAD_TOO_LARGE', field: 'body' });
    expect(res.body.error.message).toContain('20000 bytes');
    const list = await api.call('GET', '/api/v1/customers', { auth });
    expect(list.body.meta.total).toBe(0);
  });

  it('stops reading a chunked body at the limit instead of taking it all (REST and GraphQL)', async () => {
    const auth = await token(newTenant());
    for (const path of ['/api/v1/events', '/graphql', '/api/v1/customers']) {
      const res = await streamUntilAnswered(path, auth, 'application/json', 64 * 1024 * 1024);
      expect(res.status, path).toBe(413);
      // The answer came while 64 MB were still to be sent: the server stopped reading.
      expect(res.sent, path).toBeLessThan(64 * 1024 * 1024);
      const code = path === '/graphql' ? res.body.errors[0].extensions.code : res.body.error.code;
      expect(code, path).toBe('PAYLOAD_TOO_LARGE');
    }
  });

  it('caps event metadata, naming the field and the item of a batch', async () => {
    const auth = await token(newTenant());
    const fat = { blob: 'x'.repeat(1500) };
    const single = await api.call('POST', '/api/v1/events', { auth, body: event({ metadata: fat }) });
    expect(single.status).toBe(400);
    expect(single.body.error).toMatchObject({ code: 'VALIDATION_ERROR', field: 'metadata' });
    expect(single.body.error.message).toContain('1000 bytes');

    const batch = await api.call('POST', '/api/v1/events', { auth, body: [event(), event({ metadata: fat })] });
    expect(batch.status).toBe(200);
    expect(batch.body.data).toMatchObject({ accepted: 1, rejected: 1 });
    expect(batch.body.data.results[1]).toMatchObject({ index: 1, status: 'rejected', error: { code: 'VALIDATION_ERROR', field: 'metadata' } });
  });
});

describe('streaming import stays bounded', () => {
  const upload = (auth: string, body: string, type = 'application/x-ndjson') =>
    api.call('POST', '/api/v1/customers/import', { auth, body, headers: { 'content-type': type } });
  const rows = (n: number) => Array.from({ length: n }, (_, i) => JSON.stringify({ email: `m${i}@example.com` })).join('\n');

  it('refuses more rows than the limit with a message naming it', async () => {
    const auth = await token(newTenant());
    expect((await upload(auth, rows(5))).body.data).toMatchObject({ created: 5 });
    const res = await upload(auth, rows(6));
    expect(res.status).toBe(413);
    expect(res.body.error).toMatchObject({ code: 'PAYLOAD_TOO_LARGE', field: 'body' });
    expect(res.body.error.message).toContain('5 rows');
  });

  it('refuses a line longer than the limit, NDJSON and CSV alike', async () => {
    const auth = await token(newTenant());
    const long = JSON.stringify({ email: 'long@example.com', firstName: 'x'.repeat(3000) });
    for (const [body, type] of [[`${rows(1)}\n${long}`, 'application/x-ndjson'], [`email,firstName\nlong@example.com,${'x'.repeat(3000)}`, 'text/csv']]) {
      const res = await upload(auth, body!, type);
      expect(res.status, type).toBe(413);
      expect(res.body.error.message, type).toMatch(/line 2 is longer than the limit of 2000 bytes/);
    }
  });

  it('refuses a streamed import over its byte limit while reading it', async () => {
    const auth = await token(newTenant());
    // Blank lines: no rows, no long lines; only the bytes add up.
    const blank = Buffer.from(`${' '.repeat(999)}\n`.repeat(16));
    const res = await streamUntilAnswered('/api/v1/customers/import', auth, 'application/x-ndjson', 64 * 1024 * 1024, blank);
    expect(res.status).toBe(413);
    expect(res.body.error.message).toContain('60000 bytes');
    expect(res.sent).toBeLessThan(64 * 1024 * 1024);

    // Over the row limit first: the answer names the rows, and the unread rest of the body is dropped.
    const line = Buffer.from(`${JSON.stringify({ email: 'same@example.com', firstName: 'x'.repeat(1000) })}\n`);
    const rows = await streamUntilAnswered('/api/v1/customers/import', auth, 'application/x-ndjson', 64 * 1024 * 1024, line);
    expect(rows.status).toBe(413);
    expect(rows.body.error.message).toContain('5 rows');
  });

  it('ends an import whose client went away in the middle of the body, instead of waiting for the rest', async () => {
    const auth = await token(newTenant());
    // Imports answered so far, whatever their status: a handler still waiting is not counted.
    const answered = async () => (await (await fetch(`${api.url}/metrics`)).text()).split('\n')
      .filter((l) => l.startsWith('crm_http_requests_total{') && l.includes('route="/api/v1/customers/import"'))
      .reduce((sum, l) => sum + Number(l.split(' ').pop()), 0);
    const before = await answered();
    const url = new URL(`${api.url}/api/v1/customers/import`);
    const req = http.request({ host: url.hostname, port: url.port, path: url.pathname, method: 'POST', headers: { authorization: `Bearer ${auth}`, 'content-type': 'application/x-ndjson' } });
    req.on('error', () => undefined);
    req.write(`${JSON.stringify({ email: 'gone@example.com' })}\n{"email":`);
    await new Promise((resolve) => setTimeout(resolve, 300));
    req.destroy();
    for (let i = 0; i < 100 && (await answered()) === before; i++) await new Promise((resolve) => setTimeout(resolve, 100));
    expect(await answered()).toBe(before + 1);
  });

  it('answers a CSV with an unclosed quote with VALIDATION_ERROR naming the line', async () => {
    const auth = await token(newTenant());
    const res = await upload(auth, 'email,firstName\na@example.com,Ann\nb@example.com,"Bob\n', 'text/csv');
    expect(res.status).toBe(400);
    expect(res.body.error).toMatchObject({ code: 'VALIDATION_ERROR', field: 'body' });
    expect(res.body.error.message).toMatch(/not valid CSV at line \d: Quote Not Closed/);
  });
});

describe('segment criteria are bounded', () => {
  it('refuses criteria with too many nodes or too many values, naming the JSON path, storing nothing', async () => {
    const auth = await token(newTenant());
    const leaf = { field: 'membershipTier', op: 'eq', value: 'GOLD' };
    const many = await api.call('POST', '/api/v1/segments', { auth, body: { name: 'many', type: 'DYNAMIC', criteria: { any: Array(25).fill(leaf) } } });
    expect(many.status).toBe(400);
    expect(many.body.error).toMatchObject({ code: 'VALIDATION_ERROR', field: 'criteria.any[19]' });
    expect(many.body.error.message).toContain('at most 20 nodes');

    const values = Array.from({ length: 51 }, (_, i) => `T${i}`);
    const wide = await api.call('POST', '/api/v1/segments', {
      auth, body: { name: 'wide', type: 'DYNAMIC', criteria: { all: [{ field: 'membershipTier', op: 'in', value: values }] } },
    });
    expect(wide.status).toBe(400);
    expect(wide.body.error).toMatchObject({ code: 'VALIDATION_ERROR', field: 'criteria.all[0].value' });
    expect(wide.body.error.message).toContain('at most 50 values');
    expect((await api.call('GET', '/api/v1/segments', { auth })).body.data).toEqual([]);
  });
});

describe('malformed requests get a 4xx, never a 500', () => {
  it('refuses JSON nested 5,000 levels deep, in REST and GraphQL', async () => {
    const auth = await token(newTenant());
    const rest = await api.call('POST', '/api/v1/customers', { auth, body: `{"email":"deep@example.com","x":${nested(5000)}}` });
    expect(rest.status).toBe(400);
    expect(rest.body.error).toMatchObject({ code: 'VALIDATION_ERROR' });
    expect(rest.body.error.message).toContain('nested deeper than 32 levels');
    const query = 'mutation($c: JSON) { createSegment(input: {tenantId: "x", name: "deep", type: SMART, criteria: $c}) { id } }';
    const gql = await api.call('POST', '/graphql', { auth, body: `{"query":${JSON.stringify(query)},"variables":{"c":${nested(5000)}}}` });
    expect(gql.status).toBeLessThan(500);
    expect(gql.body.errors[0].extensions.code).toBe('VALIDATION_ERROR');
    expect(gql.body.errors[0].message).toContain('nested deeper than 32 levels');
  });

  it('gives GraphQL variables the same depth limit as a REST body', async () => {
    const auth = await token(newTenant());
    const query = 'mutation($c: JSON) { createSegment(input: {tenantId: "x", name: "deep", type: SMART, criteria: $c}) { id } }';
    // {"c": ...}: the variables object is one level, so 31 more reach the limit of 32.
    const atLimit = await api.graphql(auth, query, { c: JSON.parse(nested(31)) });
    expect(atLimit.body.errors[0].message).not.toContain('nested deeper');
    const overLimit = await api.graphql(auth, query, { c: JSON.parse(nested(32)) });
    expect(overLimit.body.errors[0].extensions.code).toBe('VALIDATION_ERROR');
    expect(overLimit.body.errors[0].message).toMatch(/^variables\.c(\[0\]){31}: nested deeper than 32 levels/);
  });

  it('refuses an event body sent as text/plain or without a content type, so it cannot skip the NUL and depth checks', async () => {
    const auth = await token(newTenant());
    const nul = JSON.stringify(event({ title: 'a\u0000b' }));
    const deep = `{"type":"booking.created","metadata":{"a":${nested(5000)}}}`;
    for (const body of [nul, deep]) {
      for (const headers of [{ 'content-type': 'text/plain' }, {}]) {
        // A Uint8Array body carries no content type of its own.
        const res = await fetch(`${api.url}/api/v1/events`, { method: 'POST', headers: { authorization: `Bearer ${auth}`, ...headers }, body: new TextEncoder().encode(body) });
        expect(res.status).toBe(400);
        expect(((await res.json()) as any).error).toMatchObject({ code: 'VALIDATION_ERROR', field: 'content-type' });
      }
    }
    const asJson = await api.call('POST', '/api/v1/events', { auth, body: nul });
    expect(asJson.status).toBe(400);
    expect(asJson.body.error).toMatchObject({ code: 'VALIDATION_ERROR', field: 'body.title' });
    expect((await api.call('GET', '/api/v1/customers', { auth })).body.meta.total).toBe(0);
  });

  it('refuses event metadata too deep to measure as too large, not with a 500', () => {
    const metadata = JSON.parse(`{"a":${nested(200_000)}}`);
    const parsed = upstreamEvent('US', 1000).safeParse(event({ metadata }));
    expect(parsed.success).toBe(false);
    expect(parsed.error?.issues[0]).toMatchObject({ path: ['metadata'], message: 'at most 1000 bytes of JSON' });
  });

  it('refuses NUL characters in query strings and path parameters, naming them', async () => {
    const auth = await token(newTenant());
    const search = await api.call('GET', '/api/v1/customers?search=%00', { auth });
    expect(search.status).toBe(400);
    expect(search.body.error).toMatchObject({ code: 'VALIDATION_ERROR', field: 'query.search' });
    const param = await api.call('GET', '/api/v1/customers/ab%00cd', { auth });
    expect(param.status).toBe(400);
    expect(param.body.error).toMatchObject({ code: 'VALIDATION_ERROR', field: 'path.id' });
  });

  it('refuses POST and PATCH /customers without a body instead of touching an empty profile', async () => {
    const auth = await token(newTenant());
    const created = await api.call('POST', '/api/v1/customers', { auth });
    expect(created.status).toBe(400);
    expect(created.body.error.code).toBe('VALIDATION_ERROR');
    expect(created.body.error.message).toContain('at least one of email, phoneNumber, authUserId, firstName, lastName');
    expect((await api.call('POST', '/api/v1/customers', { auth, body: {} })).status).toBe(400);
    expect((await api.call('GET', '/api/v1/customers', { auth })).body.meta.total).toBe(0);

    const customer = (await api.call('POST', '/api/v1/customers', { auth, body: { firstName: 'Ann' } })).body.data;
    for (const body of [undefined, {}]) {
      const patched = await api.call('PATCH', `/api/v1/customers/${customer.id}`, { auth, body });
      expect(patched.status).toBe(400);
      expect(patched.body.error.message).toContain('at least one field to change');
    }
    const after = (await api.call('GET', `/api/v1/customers/${customer.id}`, { auth })).body.data;
    expect(after.updatedAt).toBe(customer.updatedAt);
    const text = await api.call('POST', '/api/v1/customers', { auth, body: 'email=a@example.com', headers: { 'content-type': 'text/plain' } });
    expect(text.status).toBe(400);
    expect(text.body.error).toMatchObject({ code: 'VALIDATION_ERROR', field: 'content-type' });
  });

  it('refuses empty and non-integer numeric query parameters, naming them', async () => {
    const auth = await token(newTenant());
    for (const [query, field] of [
      ['engagementMin=', 'query.engagementMin'], ['churnRiskMax=', 'query.churnRiskMax'], ['take=', 'query.take'], ['skip=%20', 'query.skip'],
      ['take=1e400', 'query.take'], ['skip=99999999999999999999', 'query.skip'], ['take=1&take=2', 'query.take'],
    ]) {
      const res = await api.call('GET', `/api/v1/customers?${query}`, { auth });
      expect(res.status, query).toBe(400);
      expect(res.body.error, query).toMatchObject({ code: 'VALIDATION_ERROR', field });
    }
    const members = await api.call('GET', '/api/v1/segments/00000000-0000-7000-8000-000000000000/members?take=', { auth });
    expect(members.body.error).toMatchObject({ code: 'VALIDATION_ERROR', field: 'query.take' });
  });

  it('refuses dates outside the years 1 to 9999 in timeline filters and events', async () => {
    const auth = await token(newTenant());
    const customer = (await api.call('POST', '/api/v1/customers', { auth, body: { email: 'dates@example.com' } })).body.data;
    for (const query of ['startDate=99999', 'endDate=0000-01-01']) {
      const res = await api.call('GET', `/api/v1/customers/${customer.id}/timeline?${query}`, { auth });
      expect(res.status, query).toBe(400);
      expect(res.body.error.message, query).toContain('between the years 1 and 9999');
    }
    const ev = await api.call('POST', '/api/v1/events', { auth, body: event({ occurredAt: '0000-01-01T00:00:00Z' }) });
    expect(ev.status).toBe(400);
    expect(ev.body.error).toMatchObject({ code: 'VALIDATION_ERROR', field: 'occurredAt' });
  });
});

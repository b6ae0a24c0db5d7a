import { SignJWT, UnsecuredJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newTenant, startTestApi, token, TEST_JWT_SECRET, type TestApi } from './support/api.js';

let api: TestApi;
const tenant = newTenant();
beforeAll(async () => {
  api = await startTestApi();
});
afterAll(() => api.close());

const key = (secret: string) => new TextEncoder().encode(secret);

async function signed(claims: Record<string, unknown>, opts: { secret?: string; exp?: string | number } = {}) {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject('user_1')
    .setIssuedAt()
    .setExpirationTime(opts.exp ?? '1h')
    .sign(key(opts.secret ?? TEST_JWT_SECRET));
}

describe('authentication (401)', () => {
  const cases: [string, () => Promise<Record<string, string>>][] = [
    ['no Authorization header', async () => ({})],
    ['a non-bearer scheme', async () => ({ authorization: `Basic ${Buffer.from('a:b').toString('base64')}` })],
    ['a malformed token', async () => ({ authorization: 'Bearer not.a.jwt' })],
    ['an expired token', async () => ({ authorization: `Bearer ${await signed({ tenantId: tenant, scope: 'crm:read' }, { exp: Math.floor(Date.now() / 1000) - 60 })}` })],
    ['a token signed with another secret', async () => ({ authorization: `Bearer ${await signed({ tenantId: tenant, scope: 'crm:read' }, { secret: 'forged-secret-forged-secret-forged' })}` })],
    ['alg: none', async () => ({ authorization: `Bearer ${new UnsecuredJWT({ tenantId: tenant, scope: 'crm:read', sub: 'u' }).setExpirationTime('1h').encode()}` })],
    ['a token without tenantId', async () => ({ authorization: `Bearer ${await signed({ scope: 'crm:read' })}` })],
    ['a token without exp', async () => ({
      authorization: `Bearer ${await new SignJWT({ tenantId: tenant, scope: 'crm:read' }).setProtectedHeader({ alg: 'HS256' }).setSubject('u').sign(key(TEST_JWT_SECRET))}`,
    })],
  ];

  it.each(cases)('REST refuses %s', async (_name, headers) => {
    const res = await api.call('GET', '/api/v1/segments', { headers: await headers() });
    expect(res.status).toBe(401);
    expect(res.headers.get('x-ratelimit-limit')).toBe('1000');
    expect(res.body.error.code).toBe('UNAUTHENTICATED');
    expect(res.body.error.requestId).toBe(res.headers.get('x-request-id'));
  });

  it.each(cases)('GraphQL refuses %s', async (_name, headers) => {
    const res = await api.call('POST', '/graphql', { headers: await headers(), body: { query: '{ segments(tenantId: "x") { id } }' } });
    expect(res.status).toBe(401);
    expect(res.body.errors[0].extensions.code).toBe('UNAUTHENTICATED');
    expect(res.body.data).toBeUndefined();
  });

  it('refuses a token that expires after it was accepted (verified tokens are remembered only until their exp)', async () => {
    const auth = await signed({ tenantId: tenant, scope: 'crm:read' }, { exp: Math.floor(Date.now() / 1000) + 2 });
    expect((await api.call('GET', '/api/v1/segments', { auth })).status).toBe(200);
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    const res = await api.call('GET', '/api/v1/segments', { auth });
    expect(res.status).toBe(401);
    expect(res.body.error.message).toContain('token expired');
  });
});

describe('authorization (403)', () => {
  it('refuses an operation whose scope the token lacks, naming the scope', async () => {
    const readOnly = await token(tenant, ['crm:read']);
    const rest = await api.call('POST', '/api/v1/segments', { auth: readOnly, body: { name: 'x', type: 'STATIC' } });
    expect(rest.status).toBe(403);
    expect(rest.body.error).toMatchObject({ code: 'FORBIDDEN', message: expect.stringContaining('crm:admin') });

    const gql = await api.graphql(readOnly, 'mutation { deleteSegment(id: "1") }');
    expect(gql.body.errors[0].extensions.code).toBe('FORBIDDEN');
    expect(gql.body.errors[0].message).toContain('crm:admin');
  });

  it('requires crm:read for reads', async () => {
    const writeOnly = await token(tenant, ['crm:write']);
    const res = await api.call('GET', '/api/v1/campaigns', { auth: writeOnly });
    expect(res.status).toBe(403);
  });

  it('refuses a tenantId other than the token\'s, in REST query, REST body and GraphQL arguments', async () => {
    const auth = await token(tenant);
    const query = await api.call('GET', '/api/v1/campaigns?tenantId=someone_else', { auth });
    expect(query.status).toBe(403);
    expect(query.body.error.message).toContain('tenantId');

    const body = await api.call('POST', '/api/v1/campaigns', { auth, body: { tenantId: 'someone_else', name: 'x' } });
    expect(body.status).toBe(403);

    const arg = await api.graphql(auth, '{ segments(tenantId: "someone_else") { id } }');
    expect(arg.body.errors[0].extensions.code).toBe('FORBIDDEN');
    const input = await api.graphql(auth, 'mutation { createSegment(input: {tenantId: "someone_else", name: "x", type: STATIC}) { id } }');
    expect(input.body.errors[0]).toMatchObject({ extensions: { code: 'FORBIDDEN' }, message: expect.stringContaining('input.tenantId') });
  });

  it('lets a correct token through to the operation', async () => {
    const auth = await token(tenant);
    const res = await api.call('GET', `/api/v1/campaigns?tenantId=${tenant}`, { auth });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ data: [], meta: { total: 0 } });
  });
});

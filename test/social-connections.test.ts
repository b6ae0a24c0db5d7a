import { createHash, randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { decodeJwt, SignJWT } from 'jose';
import pg from 'pg';
import { createServer } from 'node:net';
import { WorkflowNotFoundError } from '@temporalio/client';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SocialPlatform } from '../db/entities/enums.js';
import { openOrm, type Orm } from '../db/orm.js';
import { oauthStateKey } from '../domain/social/connections.js';
import { SOCIAL_TOKEN_REFRESH } from '../domain/social/workflows.js';
import { socialConnectionActivities } from '../activities/social-connections.js';
import { publishCredentials, refreshCredentials } from '../domain/social/credentials.js';
import { tokenCipher } from '../platform/social/token-cipher.js';
import { newTenant, startTestApi, testConfig, token } from './support/api.js';
import { startSocialFakes, type SocialFakes } from './support/social/fake-platforms.js';
import { startTestStack, type TestStack } from './support/stack.js';
import { until } from './support/until.js';

// Connecting social accounts through the API, against the fake platforms, with PostgreSQL and the
// Temporal dev server: the OAuth flow of all five platforms, state misuse, PKCE, reconnecting,
// refresh rotation, a refused grant, disconnecting, the refresh workflow started through the outbox
// (also while the API cannot reach Temporal), and tokens kept out of every answer and log line.

const PLATFORMS: SocialPlatform[] = ['FACEBOOK', 'INSTAGRAM', 'TWITTER', 'LINKEDIN', 'TIKTOK'];
const REDIRECT = 'https://club.example/social/callback';
const TOKEN_KEY = randomBytes(32).toString('base64');

let fakes: SocialFakes;
let stack: TestStack;
let db: pg.Client;
let orm: Orm;
const logLines: string[] = [];
const answers: string[] = [];
const env = () => ({ ...fakes.env, SOCIAL_TOKEN_KEY: TOKEN_KEY });
const config = () => testConfig(env());

beforeAll(async () => {
  fakes = await startSocialFakes();
  const sink = new Writable({
    write(chunk, _encoding, done) {
      logLines.push(chunk.toString());
      done();
    },
  });
  // This file's worker relays the outbox: complete starts the refresh workflow through it.
  stack = await startTestStack({ ...env(), OUTBOX_DISPATCH: 'true', OUTBOX_POLL_MS: '200' }, { log: pino({ level: 'debug' }, sink) });
  db = new pg.Client({ connectionString: config().DATABASE_URL });
  await db.connect();
  orm = await openOrm(config().DATABASE_URL!);
}, 120_000);

afterAll(async () => {
  await stack?.close();
  await db?.end();
  await orm?.close();
  await fakes?.close();
});

async function call(method: string, path: string, auth: string, body?: unknown) {
  const res = await stack.api.call(method, path, { auth, body });
  answers.push(JSON.stringify(res.body));
  return res;
}
async function gql(auth: string, query: string, variables?: Record<string, unknown>) {
  const res = await stack.api.graphql(auth, query, variables);
  answers.push(JSON.stringify(res.body));
  return res;
}

async function initiate(auth: string, tenant: string, platform: SocialPlatform, clubId = 'club_1') {
  const res = await call('POST', '/api/v1/social/connections/initiate', auth, { tenantId: tenant, clubId, platform, redirectUri: REDIRECT });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body.data as { authUrl: string; state: string };
}

/** The whole flow as a club would go through it: initiate, the platform's page, complete. */
async function connect(auth: string, tenant: string, platform: SocialPlatform) {
  const { authUrl, state } = await initiate(auth, tenant, platform);
  const back = await fakes.authorize(authUrl);
  expect(back.state).toBe(state);
  const res = await call('POST', '/api/v1/social/connections/complete', auth, { platform, code: back.code, state });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body.data;
}

const stored = async (id: string) =>
  (await db.query('select access_token_encrypted, refresh_token_encrypted, is_active, status_reason, token_expiry from social_connections where id = $1', [id])).rows[0];

/** The refresh workflow's status; undefined while its start waits in the outbox. */
async function workflowStatus(id: string): Promise<string | undefined> {
  try {
    return (await stack.client.workflow.getHandle(`social-token-refresh-${id}`).describe()).status.name;
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return undefined;
    throw err;
  }
}
const refreshRunning = (id: string) => until('refresh workflow running', async () => (await workflowStatus(id)) === 'RUNNING');

const outboxRows = async (tenant: string) =>
  (await db.query('select key, payload, dispatched_at from reaction_outbox where tenant_id = $1 and kind = $2 order by created_at', [tenant, SOCIAL_TOKEN_REFRESH])).rows;

describe.each(PLATFORMS)('%s: initiate → authorise → complete', (platform) => {
  it('stores the connection with its tokens encrypted, and starts the refresh workflow where tokens expire', async () => {
    const tenant = newTenant();
    const auth = await token(tenant);
    const { authUrl, state } = await initiate(auth, tenant, platform);

    const url = new URL(authUrl);
    expect(`${url.origin}${url.pathname}`).toBe(fakes.env[`${platform}_AUTH_URL`]);
    expect(url.searchParams.get(platform === 'TIKTOK' ? 'client_key' : 'client_id')).toBe(fakes.platforms[platform].clientId);
    expect(url.searchParams.get('redirect_uri')).toBe(REDIRECT);
    expect(url.searchParams.get('state')).toBe(state);
    const pkce = platform === 'TWITTER' || platform === 'TIKTOK';
    expect(url.searchParams.get('code_challenge_method')).toBe(pkce ? 'S256' : null);
    expect(url.searchParams.get('code_challenge')?.length ?? 0).toBe(pkce ? 43 : 0);
    // The state names its row and what it is bound to; the verifier stays on the server.
    expect(Object.keys(decodeJwt(state)).sort()).toEqual(['aud', 'club', 'exp', 'iat', 'jti', 'platform', 'tid']);
    const pending = (await db.query('select code_verifier_encrypted from social_oauth_states where id = $1', [decodeJwt(state).jti])).rows[0];
    expect(pending.code_verifier_encrypted === null).toBe(!pkce);

    const back = await fakes.authorize(authUrl);
    const res = await call('POST', '/api/v1/social/connections/complete', auth, { platform, code: back.code, state });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const connection = res.body.data;
    const fake = fakes.platforms[platform];
    expect(connection).toMatchObject({
      tenantId: tenant, clubId: 'club_1', platform, isActive: true, statusReason: null,
      accountId: platform === 'FACEBOOK' ? fake.pages[0]!.id : platform === 'INSTAGRAM' ? fake.pages[0]!.instagram!.id : fake.user.id,
    });
    expect(connection.permissions.length).toBeGreaterThan(0);
    expect(connection.tokenExpiry === null).toBe(platform === 'FACEBOOK' || platform === 'INSTAGRAM');

    // Encrypted at rest: the raw column is a key-id-tagged ciphertext, never the token.
    const row = await stored(connection.id);
    expect(row.access_token_encrypted).toMatch(new RegExp(`^${tokenCipher(config()).keyId}:[\\w-]+:[\\w-]+:[\\w-]+$`));
    const access = tokenCipher(config()).decrypt(row.access_token_encrypted);
    expect(fake.tokens.get(access)?.kind).toBe(platform === 'FACEBOOK' || platform === 'INSTAGRAM' ? 'page' : 'access');
    expect(row.access_token_encrypted).not.toContain(access);
    if (!pkce && platform !== 'LINKEDIN') expect(row.refresh_token_encrypted).toBeNull();
    else expect(fake.tokens.get(tokenCipher(config()).decrypt(row.refresh_token_encrypted))?.kind).toBe('refresh');

    // Listed over REST and GraphQL.
    const list = await call('GET', `/api/v1/social/connections?platform=${platform}`, auth);
    expect(list.body.data.map((c: { id: string }) => c.id)).toEqual([connection.id]);
    const q = await gql(auth, `query($t: String!, $p: SocialPlatform) { socialConnections(tenantId: $t, platform: $p) { id platform accountId isActive tokenExpiry } }`, { t: tenant, p: platform });
    expect(q.body.data.socialConnections).toEqual([{ id: connection.id, platform, accountId: connection.accountId, isActive: true, tokenExpiry: connection.tokenExpiry }]);

    // Tokens that expire are kept fresh by the workflow; Page tokens do not expire.
    if (platform === 'FACEBOOK' || platform === 'INSTAGRAM') await until('refresh workflow ended', async () => (await workflowStatus(connection.id)) === 'COMPLETED');
    else await refreshRunning(connection.id);

    // The credentials publishing uses: the same token, decrypted.
    const em = orm.em.fork();
    expect((await publishCredentials(em, config(), tenant, connection.id)).accessToken).toBe(access);
  });
});

describe('the state', () => {
  it('works once: completing it again is refused, naming input.state', async () => {
    const tenant = newTenant();
    const auth = await token(tenant);
    const { authUrl, state } = await initiate(auth, tenant, 'LINKEDIN');
    const { code } = await fakes.authorize(authUrl);
    expect((await call('POST', '/api/v1/social/connections/complete', auth, { platform: 'LINKEDIN', code, state })).status).toBe(200);
    const again = await call('POST', '/api/v1/social/connections/complete', auth, { platform: 'LINKEDIN', code, state });
    expect(again.status).toBe(400);
    expect(again.body.error).toMatchObject({ code: 'VALIDATION_ERROR' });
    expect(again.body.error.message).toMatch(/^input\.state: already used/);
  });

  it('expires after 10 minutes (the signed expiry, and the row\'s)', async () => {
    const tenant = newTenant();
    const auth = await token(tenant);
    const { state } = await initiate(auth, tenant, 'TWITTER');
    const claims = decodeJwt(state);
    const expired = await new SignJWT({ tid: claims.tid, club: claims.club, platform: claims.platform })
      .setProtectedHeader({ alg: 'HS256' }).setJti(claims.jti!).setAudience(claims.aud as string)
      .setIssuedAt(Math.floor(Date.now() / 1000) - 700).setExpirationTime(Math.floor(Date.now() / 1000) - 100)
      .sign(oauthStateKey(config()));
    const res = await call('POST', '/api/v1/social/connections/complete', auth, { platform: 'TWITTER', code: 'c', state: expired });
    expect(res.status).toBe(400);
    expect(res.body.error.message).toMatch(/^input\.state: expired/);

    await db.query(`update social_oauth_states set expires_at = now() - interval '1 second' where id = $1`, [claims.jti]);
    const late = await call('POST', '/api/v1/social/connections/complete', auth, { platform: 'TWITTER', code: 'c', state });
    expect(late.status).toBe(400);
    expect(late.body.error.message).toMatch(/^input\.state: expired/);
  });

  it('refuses a forged state, and another tenant\'s or another platform\'s, before using it up', async () => {
    const tenant = newTenant();
    const auth = await token(tenant);
    const { authUrl, state } = await initiate(auth, tenant, 'FACEBOOK');

    const claims = decodeJwt(state);
    const forged = await new SignJWT({ ...claims }).setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode('x'.repeat(32)));
    for (const bad of [forged, 'not-a-jwt', `${state.slice(0, -4)}AAAA`]) {
      const res = await call('POST', '/api/v1/social/connections/complete', auth, { platform: 'FACEBOOK', code: 'c', state: bad });
      expect(res.status).toBe(400);
      expect(res.body.error.message).toBe('input.state: not a state this platform issued');
    }

    const other = newTenant();
    const cross = await call('POST', '/api/v1/social/connections/complete', await token(other), { platform: 'FACEBOOK', code: 'c', state });
    expect(cross.status).toBe(400);
    expect(cross.body.error.message).toBe('input.state: issued to another tenant');

    const wrong = await gql(auth, `mutation($i: CompleteSocialConnectionInput!) { completeSocialConnection(input: $i) { id } }`, { i: { platform: 'INSTAGRAM', code: 'c', state } });
    expect(wrong.body.errors[0].extensions.code).toBe('VALIDATION_ERROR');
    expect(wrong.body.errors[0].message).toBe('input.state: issued for FACEBOOK, not INSTAGRAM');

    // None of those used it up: its tenant completes it.
    const { code } = await fakes.authorize(authUrl);
    expect((await call('POST', '/api/v1/social/connections/complete', auth, { platform: 'FACEBOOK', code, state })).status).toBe(200);
  });

  it('initiate refuses a redirectUri that is not an absolute http(s) URL, and an unconfigured platform', async () => {
    const tenant = newTenant();
    const auth = await token(tenant);
    for (const redirectUri of ['/relative', 'javascript:alert(1)', 'ftp://club.example/x', 'not a url']) {
      const res = await gql(auth, `mutation($i: InitiateSocialConnectionInput!) { initiateSocialConnection(input: $i) { authUrl state } }`, {
        i: { tenantId: tenant, clubId: 'c', platform: 'TWITTER', redirectUri },
      });
      expect(res.body.errors[0].extensions.code).toBe('VALIDATION_ERROR');
      expect(res.body.errors[0].message).toBe('input.redirectUri: an absolute http(s) URL, without a fragment or credentials');
    }
    for (const redirectUri of ['https://club.example/cb#frag', 'https://club.example/cb#', 'https://user:pw@club.example/cb', 'https://evil@club.example/cb']) {
      const res = await call('POST', '/api/v1/social/connections/initiate', auth, { clubId: 'c', platform: 'TWITTER', redirectUri });
      expect(res.status, redirectUri).toBe(400);
      expect(res.body.error.message).toBe('redirectUri: an absolute http(s) URL, without a fragment or credentials');
    }
    const bare = await startTestApi({ SOCIAL_TOKEN_KEY: TOKEN_KEY });
    try {
      const res = await bare.call('POST', '/api/v1/social/connections/initiate', { auth, body: { clubId: 'c', platform: 'TIKTOK', redirectUri: REDIRECT } });
      expect(res.status).toBe(400);
      expect(res.body.error.message).toMatch(/^input\.platform: TIKTOK is not configured here/);
    } finally {
      await bare.close();
    }
  });
});

describe('attacks on the flow', () => {
  it('completing one state twice at once: exactly one wins, the other is told it was used', async () => {
    const tenant = newTenant();
    const auth = await token(tenant);
    const { authUrl, state } = await initiate(auth, tenant, 'TWITTER');
    const { code } = await fakes.authorize(authUrl);
    const body = { platform: 'TWITTER', code, state };
    const results = await Promise.all([1, 2, 3].map(() => call('POST', '/api/v1/social/connections/complete', auth, body)));
    expect(results.map((r) => r.status).sort()).toEqual([200, 400, 400]);
    for (const lost of results.filter((r) => r.status === 400)) expect(lost.body.error.message).toMatch(/^input\.state: already used/);
    expect((await db.query('select 1 from social_connections where tenant_id = $1', [tenant])).rowCount).toBe(1);
  });

  it('parameters that try to smuggle OAuth parameters into authUrl stay one encoded value', async () => {
    const tenant = newTenant();
    const auth = await token(tenant);
    const redirectUri = 'https://club.example/cb?x=1&state=evil&client_id=evil&redirect_uri=https://evil.example';
    const clubId = 'c&state=evil&code_challenge=evil';
    const res = await call('POST', '/api/v1/social/connections/initiate', auth, { clubId, platform: 'TIKTOK', redirectUri });
    expect(res.status).toBe(200);
    const url = new URL(res.body.data.authUrl);
    expect(url.searchParams.getAll('state')).toEqual([res.body.data.state]);
    expect(url.searchParams.getAll('client_key')).toEqual([fakes.platforms.TIKTOK.clientId]);
    expect(url.searchParams.getAll('redirect_uri')).toEqual([redirectUri]);
    expect(url.searchParams.getAll('code_challenge')).toHaveLength(1);
    expect(url.searchParams.get('code_challenge')).toMatch(/^[\w-]{43}$/);
    // And the connection completes for the club as sent.
    const back = await fakes.authorize(res.body.data.authUrl);
    const done = await call('POST', '/api/v1/social/connections/complete', auth, { platform: 'TIKTOK', code: back.code, state: back.state });
    expect(done.body.data.clubId).toBe(clubId);
  });

  it('a megabyte of code or state is a 4xx naming the field (REST: the body\'s field; GraphQL: input.code), never a 500', async () => {
    const tenant = newTenant();
    const auth = await token(tenant);
    const { state } = await initiate(auth, tenant, 'LINKEDIN');
    const huge = 'A'.repeat(1024 * 1024);
    const code = await call('POST', '/api/v1/social/connections/complete', auth, { platform: 'LINKEDIN', code: huge, state });
    expect(code.status).toBe(400);
    expect(code.body.error.message).toMatch(/^code: /);
    const st = await call('POST', '/api/v1/social/connections/complete', auth, { platform: 'LINKEDIN', code: 'c', state: huge });
    expect(st.status).toBe(400);
    expect(st.body.error.message).toMatch(/^state: /);
    const g = await gql(auth, `mutation($i: CompleteSocialConnectionInput!) { completeSocialConnection(input: $i) { id } }`, { i: { platform: 'LINKEDIN', code: huge, state } });
    expect(g.body.errors[0].extensions.code).toBe('VALIDATION_ERROR');
    expect(g.body.errors[0].message).toMatch(/^input\.code: /);
    const r = await call('POST', '/api/v1/social/connections/initiate', auth, { clubId: 'c', platform: 'LINKEDIN', redirectUri: `https://club.example/${huge}` });
    expect(r.status).toBe(400);
    expect(r.body.error.message).toMatch(/^redirectUri: /);
    // None of that used the state up.
    expect((await db.query('select 1 from social_oauth_states where id = $1', [decodeJwt(state).jti])).rowCount).toBe(1);
  });

  it('PKCE S256 as RFC 7636 §4.2: the challenge is BASE64URL(SHA256(ASCII(verifier))), the verifier 43 unreserved characters', async () => {
    const tenant = newTenant();
    const auth = await token(tenant);
    const { authUrl, state } = await initiate(auth, tenant, 'TWITTER');
    const pending = (await db.query('select code_verifier_encrypted from social_oauth_states where id = $1', [decodeJwt(state).jti])).rows[0];
    const verifier = tokenCipher(config()).decrypt(pending.code_verifier_encrypted);
    expect(verifier).toMatch(/^[A-Za-z0-9\-._~]{43,128}$/);
    expect(new URL(authUrl).searchParams.get('code_challenge')).toBe(createHash('sha256').update(verifier, 'ascii').digest('base64url'));
  });
});

describe('the code', () => {
  it('a bad code is refused by the platform: 400 naming input.code, nothing stored', async () => {
    const tenant = newTenant();
    const auth = await token(tenant);
    const { state } = await initiate(auth, tenant, 'TIKTOK');
    const res = await call('POST', '/api/v1/social/connections/complete', auth, { platform: 'TIKTOK', code: 'made-up-code', state });
    expect(res.status).toBe(400);
    expect(res.body.error.message).toMatch(/^input\.code: the platform refused the authorisation code/);
    expect((await db.query('select 1 from social_connections where tenant_id = $1', [tenant])).rowCount).toBe(0);
  });

  it('PKCE: a code_verifier that does not match the challenge is refused by the platform', async () => {
    const tenant = newTenant();
    const auth = await token(tenant);
    const { authUrl, state } = await initiate(auth, tenant, 'TWITTER');
    const { code } = await fakes.authorize(authUrl);
    // Another verifier than the one the challenge was made from.
    await db.query('update social_oauth_states set code_verifier_encrypted = $1 where id = $2', [tokenCipher(config()).encrypt(randomBytes(32).toString('base64url')), decodeJwt(state).jti]);
    const res = await call('POST', '/api/v1/social/connections/complete', auth, { platform: 'TWITTER', code, state });
    expect(res.status).toBe(400);
    expect(res.body.error.message).toMatch(/^input\.code: .*code_verifier does not match/);
  });
});

describe('reconnecting, refreshing, disconnecting', () => {
  it('reconnecting the same account updates it in place and keeps a refresh token the platform did not send again', async () => {
    const tenant = newTenant();
    const auth = await token(tenant);
    const first = await connect(auth, tenant, 'LINKEDIN');
    const before = await stored(first.id);
    fakes.platforms.LINKEDIN.issueRefreshTokens = false;
    try {
      const second = await connect(auth, tenant, 'LINKEDIN');
      expect(second.id).toBe(first.id);
    } finally {
      fakes.platforms.LINKEDIN.issueRefreshTokens = true;
    }
    const after = await stored(first.id);
    const cipher = tokenCipher(config());
    expect(cipher.decrypt(after.access_token_encrypted)).not.toBe(cipher.decrypt(before.access_token_encrypted));
    expect(cipher.decrypt(after.refresh_token_encrypted)).toBe(cipher.decrypt(before.refresh_token_encrypted));
    expect((await call('GET', '/api/v1/social/connections', auth)).body.data).toHaveLength(1);
  });

  it('refresh rotates: the new pair is stored, the old refresh token is dead, and concurrent refreshers refresh once', async () => {
    const tenant = newTenant();
    const auth = await token(tenant);
    const connection = await connect(auth, tenant, 'TWITTER');
    const cipher = tokenCipher(config());
    const before = await stored(connection.id);
    const oldAccess = cipher.decrypt(before.access_token_encrypted);
    const oldRefresh = cipher.decrypt(before.refresh_token_encrypted);
    fakes.expireAccessTokens('TWITTER', oldAccess);

    const refreshes = () => fakes.platforms.TWITTER.requests.filter((r) => r.endpoint === 'refresh').length;
    const count = refreshes();
    const [a, b] = await Promise.all([
      refreshCredentials(orm.em.fork(), config(), tenant, connection.id, oldAccess),
      refreshCredentials(orm.em.fork(), config(), tenant, connection.id, oldAccess),
    ]);
    expect(refreshes() - count).toBe(1);
    expect(a.accessToken).toBe(b.accessToken);
    expect(a.accessToken).not.toBe(oldAccess);

    const after = await stored(connection.id);
    expect(cipher.decrypt(after.access_token_encrypted)).toBe(a.accessToken);
    const newRefresh = cipher.decrypt(after.refresh_token_encrypted);
    expect(newRefresh).not.toBe(oldRefresh);
    expect(fakes.liveTokens('TWITTER', 'refresh')).toContain(newRefresh);
    expect(fakes.liveTokens('TWITTER', 'refresh')).not.toContain(oldRefresh);
  });

  it('a refused grant (invalid_grant) marks the connection inactive with the reason, shown by the API', async () => {
    const tenant = newTenant();
    const auth = await token(tenant);
    const connection = await connect(auth, tenant, 'TIKTOK');
    fakes.fail('TIKTOK', 'refresh', { kind: 'invalid-grant' });
    await expect(refreshCredentials(orm.em.fork(), config(), tenant, connection.id)).rejects.toMatchObject({ code: 'INVALID_STATE' });

    const listed = (await call('GET', '/api/v1/social/connections', auth)).body.data[0];
    expect(listed).toMatchObject({ id: connection.id, isActive: false });
    expect(listed.statusReason).toMatch(/^refresh refused: TIKTOK .*revoked/);
    const q = await gql(auth, `query($t: String!) { socialConnections(tenantId: $t) { id isActive } }`, { t: tenant });
    expect(q.body.data.socialConnections).toEqual([{ id: connection.id, isActive: false }]);
    const row = await stored(connection.id);
    expect([row.access_token_encrypted, row.refresh_token_encrypted]).toEqual([null, null]);
    await expect(publishCredentials(orm.em.fork(), config(), tenant, connection.id)).rejects.toMatchObject({ code: 'INVALID_STATE' });
  });

  it('disconnect revokes at the platform, deletes the tokens, keeps the connection inactive and stops the workflow', async () => {
    const tenant = newTenant();
    const auth = await token(tenant);
    const connection = await connect(auth, tenant, 'TWITTER');
    const cipher = tokenCipher(config());
    const row = await stored(connection.id);
    const access = cipher.decrypt(row.access_token_encrypted);
    const refresh = cipher.decrypt(row.refresh_token_encrypted);
    await refreshRunning(connection.id);

    const res = await call('DELETE', `/api/v1/social/connections/${connection.id}`, auth);
    expect(res.status).toBe(200);
    expect(res.body.data).toMatchObject({ id: connection.id, isActive: false, statusReason: 'disconnected', tokenExpiry: null });
    expect(fakes.platforms.TWITTER.revoked).toEqual(expect.arrayContaining([access, refresh]));
    const after = await stored(connection.id);
    expect([after.access_token_encrypted, after.refresh_token_encrypted, after.is_active]).toEqual([null, null, false]);
    expect(await workflowStatus(connection.id)).toBe('TERMINATED');

    // Over GraphQL too (again: already disconnected is fine); another tenant's id is not found.
    const g = await gql(auth, `mutation($id: ID!) { disconnectSocial(id: $id) }`, { id: connection.id });
    expect(g.body.data.disconnectSocial).toBe(true);
    const other = await call('DELETE', `/api/v1/social/connections/${connection.id}`, await token(newTenant()));
    expect(other.status).toBe(404);

    // Reconnecting the account reactivates the same connection.
    const again = await connect(auth, tenant, 'TWITTER');
    expect(again).toMatchObject({ id: connection.id, isActive: true, statusReason: null });
    await refreshRunning(connection.id);
  });
});

describe('the refresh workflow, through the outbox', () => {
  it('complete queues its start with the connection (ids only); the dispatcher starts it, and a reconnect wakes the running one', async () => {
    const tenant = newTenant();
    const auth = await token(tenant);
    const connection = await connect(auth, tenant, 'TWITTER');
    const [queued, ...more] = await outboxRows(tenant);
    expect(more).toEqual([]);
    expect(queued.key).toMatch(new RegExp(`^${connection.id}:[0-9a-f-]{36}$`));
    expect(queued.payload).toEqual({ workflowId: `social-token-refresh-${connection.id}`, tenantId: tenant, connectionId: connection.id });
    await refreshRunning(connection.id);
    await until('row dispatched', async () => (await outboxRows(tenant))[0].dispatched_at);
    const handle = stack.client.workflow.getHandle(`social-token-refresh-${connection.id}`);
    const { runId } = await handle.describe();

    // Reconnecting queues a row of its own, which signals the same run: its tokens changed.
    const signals = async () => (await handle.fetchHistory()).events!.filter((e) => e.workflowExecutionSignaledEventAttributes?.signalName === 'tokensChanged').length;
    const before = await signals();
    expect((await connect(auth, tenant, 'TWITTER')).id).toBe(connection.id);
    expect(await outboxRows(tenant)).toHaveLength(2);
    await until('reconnect signalled', async () => (await signals()) > before);
    expect(await handle.describe()).toMatchObject({ runId, status: { name: 'RUNNING' } });
  });

  it('an API that cannot reach Temporal still answers the connection; the workflow starts from the outbox row', async () => {
    // A port nobody listens on: the API's Temporal client cannot connect.
    const closed = await new Promise<number>((resolve) => {
      const server = createServer().listen(0, '127.0.0.1', () => {
        const { port } = server.address() as { port: number };
        server.close(() => resolve(port));
      });
    });
    const cut = await startTestApi({ ...env(), TEMPORAL_TASK_QUEUE: stack.taskQueue, TEMPORAL_ADDRESS: `127.0.0.1:${closed}` });
    try {
      const tenant = newTenant();
      const auth = await token(tenant);
      const initiated = await cut.call('POST', '/api/v1/social/connections/initiate', { auth, body: { tenantId: tenant, clubId: 'club_1', platform: 'LINKEDIN', redirectUri: REDIRECT } });
      const back = await fakes.authorize(initiated.body.data.authUrl);
      const res = await cut.call('POST', '/api/v1/social/connections/complete', { auth, body: { platform: 'LINKEDIN', code: back.code, state: back.state } });
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      const connection = res.body.data;
      expect(connection).toMatchObject({ tenantId: tenant, platform: 'LINKEDIN', isActive: true });
      expect(await stored(connection.id)).toMatchObject({ is_active: true });
      // Committed with the connection, the row is relayed by the worker, which reaches Temporal.
      expect((await outboxRows(tenant)).map((r) => r.payload)).toEqual([{ workflowId: `social-token-refresh-${connection.id}`, tenantId: tenant, connectionId: connection.id }]);
      await refreshRunning(connection.id);
      await until('row dispatched', async () => (await outboxRows(tenant))[0].dispatched_at);
    } finally {
      await cut.close();
    }
  });
});

describe('refresh against disconnect and a lost answer', () => {
  it('a disconnect while a refresh is in flight waits for it and deletes (and revokes) its new tokens; the workflow\'s refresh then ends', async () => {
    const tenant = newTenant();
    const auth = await token(tenant);
    const connection = await connect(auth, tenant, 'TWITTER');
    const cipher = tokenCipher(config());
    const oldAccess = cipher.decrypt((await stored(connection.id)).access_token_encrypted);
    const refreshes = () => fakes.platforms.TWITTER.requests.filter((r) => r.endpoint === 'refresh').length;
    const count = refreshes();
    // The platform rotates at once but answers late: the refresh holds the row while it waits.
    fakes.fail('TWITTER', 'refresh', { kind: 'delay', ms: 1500 });
    const refreshing = refreshCredentials(orm.em.fork(), config(), tenant, connection.id, oldAccess);
    await until('the refresh reached the platform', async () => refreshes() > count);
    const disconnected = await call('DELETE', `/api/v1/social/connections/${connection.id}`, auth);
    const refreshed = await refreshing;
    expect(disconnected.status).toBe(200);
    // The refresh committed first; the disconnect then found its tokens, revoked and deleted them.
    expect(fakes.platforms.TWITTER.revoked).toContain(refreshed.accessToken);
    const row = await stored(connection.id);
    expect([row.access_token_encrypted, row.refresh_token_encrypted, row.is_active, row.status_reason]).toEqual([null, null, false, 'disconnected']);

    // Refreshing a disconnected connection changes nothing; the workflow's activity answers "done"
    // instead of retrying for ever (even if the workflow was not stopped).
    await expect(refreshCredentials(orm.em.fork(), config(), tenant, connection.id)).rejects.toMatchObject({ code: 'INVALID_STATE' });
    const activities = socialConnectionActivities({ orm, config: config(), log: pino({ level: 'silent' }) });
    expect(await activities.refreshSocialToken({ tenantId: tenant, connectionId: connection.id, seenExpiry: new Date().toISOString() })).toBeNull();
    expect(await activities.socialTokenRefreshDue({ tenantId: tenant, connectionId: connection.id })).toBeNull();
    expect(await activities.refreshSocialToken({ tenantId: newTenant(), connectionId: connection.id, seenExpiry: new Date().toISOString() })).toBeNull();
    const after = await stored(connection.id);
    expect([after.access_token_encrypted, after.refresh_token_encrypted, after.is_active]).toEqual([null, null, false]);
  });

  it('the documented window: the platform rotated but its answer was lost, so the old refresh token (now dead) is kept and the next refresh marks the connection inactive', async () => {
    const tenant = newTenant();
    const auth = await token(tenant);
    const connection = await connect(auth, tenant, 'TWITTER');
    const before = await stored(connection.id);
    fakes.fail('TWITTER', 'refresh', { kind: 'lost-answer' });
    await expect(refreshCredentials(orm.em.fork(), config(), tenant, connection.id)).rejects.toMatchObject({ name: 'SocialApiError', retryable: true });
    // Nothing half-written: the row is as it was.
    expect(await stored(connection.id)).toEqual(before);
    await expect(refreshCredentials(orm.em.fork(), config(), tenant, connection.id)).rejects.toMatchObject({ code: 'INVALID_STATE' });
    const listed = (await call('GET', '/api/v1/social/connections?platform=TWITTER', auth)).body.data[0];
    expect(listed).toMatchObject({ id: connection.id, isActive: false, statusReason: expect.stringMatching(/^refresh refused: /) });
  });
});

describe('token key rotation', () => {
  it('a connection stored under the old key is read with it in SOCIAL_TOKEN_KEYS_OLD, and moves to the new key on use', async () => {
    const tenant = newTenant();
    const auth = await token(tenant);
    const connection = await connect(auth, tenant, 'FACEBOOK');
    const before = await stored(connection.id);
    const access = tokenCipher(config()).decrypt(before.access_token_encrypted);
    const rotated = testConfig({ ...env(), SOCIAL_TOKEN_KEY: randomBytes(32).toString('base64'), SOCIAL_TOKEN_KEYS_OLD: TOKEN_KEY });
    expect((await publishCredentials(orm.em.fork(), rotated, tenant, connection.id)).accessToken).toBe(access);
    const after = await stored(connection.id);
    expect(after.access_token_encrypted.split(':')[0]).toBe(tokenCipher(rotated).keyId);
    expect(tokenCipher(rotated).decrypt(after.access_token_encrypted)).toBe(access);
    expect(() => tokenCipher(config()).decrypt(after.access_token_encrypted)).toThrow(/neither SOCIAL_TOKEN_KEY nor in SOCIAL_TOKEN_KEYS_OLD/);
  });
});

describe('secrets', () => {
  it('no token, code or verifier appears in any answer or log line', async () => {
    const secrets = PLATFORMS.flatMap((p) => [...fakes.platforms[p].tokens.keys(), ...fakes.platforms[p].codes.keys(), fakes.platforms[p].clientSecret]);
    expect(secrets.length).toBeGreaterThan(30);
    expect(answers.length).toBeGreaterThan(30);
    expect(logLines.length).toBeGreaterThan(10);
    const text = [...answers, ...logLines].join('\n');
    expect(secrets.filter((s) => text.includes(s))).toEqual([]);
    // The workflows' histories carry ids and times only.
    const ids = (await db.query<{ id: string }>('select id from social_connections where tenant_id like $1', ['tenant_%'])).rows.map((r) => r.id);
    let checked = 0;
    for (const id of ids) {
      const handle = stack.client.workflow.getHandle(`social-token-refresh-${id}`);
      const history = await handle.fetchHistory().catch(() => null);
      if (!history) continue;
      checked++;
      const json = JSON.stringify(history);
      expect(secrets.filter((s) => json.includes(s) || json.includes(Buffer.from(s).toString('base64')))).toEqual([]);
    }
    expect(checked).toBeGreaterThan(0);
  });
});

import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SOCIAL_TOKEN_REFRESH } from '../domain/social/workflows.js';
import { tokenCipher } from '../platform/social/token-cipher.js';
import { newTenant, token } from './support/api.js';
import { relayOutbox } from './support/outbox.js';
import { startSocialFakes, type SocialFakes } from './support/social/fake-platforms.js';
import { startTimeSkippingStack, type TimeSkippingStack } from './support/time-skipping-stack.js';
import { until } from './support/until.js';

// `social-token-refresh-<connectionId>` on Temporal's time-skipping server: hours pass in seconds.
// The X fake's access tokens live 2 hours; the workflow refreshes 5 minutes before that, saves the
// rotated pair, continues as new, and ends when the platform refuses the grant.

let fakes: SocialFakes;
let stack: TimeSkippingStack;

beforeAll(async () => {
  fakes = await startSocialFakes();
  stack = await startTimeSkippingStack('social-refresh', { ...fakes.env, SOCIAL_TOKEN_KEY: randomBytes(32).toString('base64') });
}, 180_000);

afterAll(async () => {
  await stack?.stop();
  await fakes?.close();
});

async function connect(auth: string, tenant: string) {
  const initiated = await stack.api.call('POST', '/api/v1/social/connections/initiate', { auth, body: { tenantId: tenant, clubId: 'club_1', platform: 'TWITTER', redirectUri: 'https://club.example/cb' } });
  const { code, state } = await fakes.authorize(initiated.body.data.authUrl);
  const completed = await stack.api.call('POST', '/api/v1/social/connections/complete', { auth, body: { platform: 'TWITTER', code, state } });
  expect(completed.status, JSON.stringify(completed.body)).toBe(200);
  // Complete queued the workflow's start in the outbox; relayed to this file's server.
  expect(await relayOutbox(stack.db, stack.env.client, stack.taskQueue, tenant, SOCIAL_TOKEN_REFRESH)).toBe(1);
  return completed.body.data as { id: string };
}

const tokensOf = async (id: string) => {
  const row = (await stack.db.query('select access_token_encrypted, refresh_token_encrypted, is_active, status_reason from social_connections where id = $1', [id])).rows[0];
  const cipher = tokenCipher(stack.config);
  return {
    access: row.access_token_encrypted && cipher.decrypt(row.access_token_encrypted),
    refresh: row.refresh_token_encrypted && cipher.decrypt(row.refresh_token_encrypted),
    isActive: row.is_active as boolean,
    statusReason: row.status_reason as string | null,
  };
};

describe('social-token-refresh (time-skipping server)', () => {
  it('refreshes shortly before expiry, rotating the refresh token, each cycle a new run; invalid_grant ends it, inactive with the reason', async () => {
    const tenant = newTenant();
    const auth = await token(tenant);
    const connection = await connect(auth, tenant);
    const handle = stack.env.client.workflow.getHandle(`social-token-refresh-${connection.id}`);
    const first = await tokensOf(connection.id);
    const firstRun = (await handle.describe()).runId;
    const refreshes = () => fakes.platforms.TWITTER.requests.filter((r) => r.endpoint === 'refresh').length;
    expect(refreshes()).toBe(0);

    // One hour: not yet due.
    await stack.env.sleep('1 hour');
    expect(refreshes()).toBe(0);
    // Past 1 h 55 min: refreshed once, the new pair stored, the old refresh token dead at the platform.
    await stack.env.sleep('58 minutes');
    await until('refreshed', async () => refreshes() === 1 || undefined, 60_000);
    const second = await until('stored', async () => {
      const t = await tokensOf(connection.id);
      return t.access !== first.access ? t : undefined;
    }, 60_000);
    expect(second.refresh).not.toBe(first.refresh);
    expect(fakes.liveTokens('TWITTER', 'refresh')).toContain(second.refresh);
    expect(fakes.liveTokens('TWITTER', 'refresh')).not.toContain(first.refresh);
    await until('continued as new', async () => (await handle.describe()).runId !== firstRun || undefined, 60_000);
    expect((await handle.describe()).status.name).toBe('RUNNING');

    // The user removes the app: the next refresh is refused, the connection goes inactive, the workflow ends.
    fakes.fail('TWITTER', 'refresh', { kind: 'invalid-grant' });
    await stack.env.sleep('2 hours');
    await handle.result();
    const last = await tokensOf(connection.id);
    expect(last).toMatchObject({ isActive: false, access: null, refresh: null });
    expect(last.statusReason).toMatch(/^refresh refused: TWITTER/);
    const listed = await stack.api.call('GET', '/api/v1/social/connections', { auth });
    expect(listed.body.data[0]).toMatchObject({ id: connection.id, isActive: false, statusReason: last.statusReason });
    // The histories hold ids and times, no token.
    const history = JSON.stringify(await handle.fetchHistory());
    for (const t of [first.access, first.refresh, second.access, second.refresh]) expect(history).not.toContain(t);
  });
});

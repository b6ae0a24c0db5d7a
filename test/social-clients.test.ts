import { createHash, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SocialPlatform } from '../db/entities/enums.js';
import {
  InvalidGrantError, OutcomeUnknownError, RateLimitedError, socialClient, SocialApiError, TokenExpiredError, type SocialPlatformClient, type TokenSet,
} from '../platform/social/index.js';
import { oauthTokens, retryAfterMs } from '../platform/social/http.js';
import { testConfig } from './support/api.js';
import { startSocialFakes, type SocialFakes } from './support/social/fake-platforms.js';

// The five platform clients against the fake platforms: the OAuth dance, publishing, finding a post
// whose answer was lost, metrics, and every failure mapped onto the contract's errors.

const PLATFORMS: SocialPlatform[] = ['FACEBOOK', 'INSTAGRAM', 'TWITTER', 'LINKEDIN', 'TIKTOK'];
const REDIRECT = 'https://crm.example/social/callback';

let fakes: SocialFakes;
const client = (platform: SocialPlatform, overrides: Record<string, string> = {}) => socialClient(testConfig({ ...fakes.env, ...overrides }), platform);

beforeAll(async () => {
  fakes = await startSocialFakes();
});
afterAll(() => fakes.close());

// Characters LinkedIn's text format reserves, and X escapes (&), in every post.
function post(platform: SocialPlatform, text = `Club night (18 holes) #golf & more ${randomBytes(4).toString('hex')}`) {
  const media = platform === 'TIKTOK' ? [`${fakes.url}/media/clip.mp4`] : platform === 'INSTAGRAM' || platform === 'TWITTER' ? [`${fakes.url}/media/green.png`] : [];
  return { text, mediaUrls: media, linkUrl: platform === 'FACEBOOK' ? 'https://club.example/night' : null };
}

/** Authorises as the fake's user and connects: the publishing account and its token. */
async function connect(c: SocialPlatformClient) {
  const verifier = randomBytes(32).toString('base64url');
  const challenge = createHash('sha256').update(verifier).digest('base64url');
  const state = randomBytes(8).toString('hex');
  const { code } = await fakes.authorize(c.authorizationUrl({ state, redirectUri: REDIRECT, codeChallenge: c.pkce ? challenge : undefined }));
  const tokens = await c.exchangeCode({ code, redirectUri: REDIRECT, codeVerifier: c.pkce ? verifier : undefined });
  const account = await c.account(tokens);
  const publishToken: TokenSet = account.publishToken ?? tokens;
  return { tokens, account, publishToken };
}

async function caught(promise: Promise<unknown>): Promise<any> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

describe.each(PLATFORMS)('%s client against the fake', (platform) => {
  it('authorisation URL: client, redirect, state, scopes, and PKCE S256 where the platform takes it', () => {
    const c = client(platform);
    const url = new URL(c.authorizationUrl({ state: 'st4te', redirectUri: REDIRECT, codeChallenge: 'ch4llenge' }));
    expect(url.origin + url.pathname).toBe(fakes.env[`${platform}_AUTH_URL`]);
    expect(url.searchParams.get(platform === 'TIKTOK' ? 'client_key' : 'client_id')).toBe(fakes.platforms[platform].clientId);
    expect(url.searchParams.get('redirect_uri')).toBe(REDIRECT);
    expect(url.searchParams.get('state')).toBe('st4te');
    expect(url.searchParams.get('response_type')).toBe('code');
    expect(url.searchParams.get('scope')).toBeTruthy();
    expect(c.pkce).toBe(platform === 'TWITTER' || platform === 'TIKTOK');
    expect(url.searchParams.get('code_challenge')).toBe(c.pkce ? 'ch4llenge' : null);
    expect(url.searchParams.get('code_challenge_method')).toBe(c.pkce ? 'S256' : null);
  });

  it('connects, publishes, finds the post again, reads its metrics, and revokes', async () => {
    const c = client(platform);
    const { tokens, account, publishToken } = await connect(c);
    const state = fakes.platforms[platform];
    if (platform === 'FACEBOOK' || platform === 'INSTAGRAM') {
      // The long-lived user token, then the Page's token for publishing.
      expect(state.requests.filter((r) => r.endpoint === 'refresh').length).toBeGreaterThan(0);
      expect(tokens.expiresAt!.getTime()).toBeGreaterThan(Date.now() + 50 * 86_400_000);
      expect(account.publishToken?.accessToken).toMatch(/-page-/);
      expect(account.accountId).toBe(platform === 'FACEBOOK' ? state.pages[0]!.id : state.pages[0]!.instagram!.id);
      expect(account.permissions).toContain('pages_show_list');
    } else {
      expect(tokens.refreshToken).toBeTruthy();
      expect(tokens.expiresAt).toBeInstanceOf(Date);
      expect(account.accountId).toBe(state.user.id);
      expect(account.permissions.length).toBeGreaterThan(0);
    }

    const since = new Date(Date.now() - 1000);
    const request = post(platform);
    const published = await c.publish(account.accountId, publishToken.accessToken, request);
    const stored = state.posts.find((p) => p.id === published.platformPostId)!;
    expect(stored.text).toBe(request.text);
    expect(stored.accountId).toBe(platform === 'FACEBOOK' || platform === 'INSTAGRAM' ? account.accountId : state.user.id);
    expect(published.platformUrl).toMatch(/^https:\/\//);

    expect(await c.findPublished(account.accountId, publishToken.accessToken, request, since)).toMatchObject({ platformPostId: published.platformPostId });
    expect(await c.findPublished(account.accountId, publishToken.accessToken, { ...request, text: 'never posted' }, since)).toBeNull();

    stored.metrics = { likes: 11, comments: 3, shares: 2, reach: 140 };
    const metrics = await c.metrics(account.accountId, publishToken.accessToken, published.platformPostId);
    // LinkedIn has share and reach statistics for organisation posts only.
    expect(metrics).toEqual(platform === 'LINKEDIN' ? { likes: 11, comments: 3, shares: 0, reach: 0 } : stored.metrics);

    expect(await c.revoke(publishToken)).toBe(true);
    expect(state.revoked).toContain(publishToken.accessToken);
    expect(await caught(c.publish(account.accountId, publishToken.accessToken, post(platform)))).toBeInstanceOf(TokenExpiredError);
  });

  it('a bad or reused code is an InvalidGrantError', async () => {
    const c = client(platform);
    expect(await caught(c.exchangeCode({ code: 'not-a-code', redirectUri: REDIRECT, codeVerifier: 'v'.repeat(43) }))).toBeInstanceOf(InvalidGrantError);
    const verifier = randomBytes(32).toString('base64url');
    const challenge = createHash('sha256').update(verifier).digest('base64url');
    const { code } = await fakes.authorize(c.authorizationUrl({ state: 's', redirectUri: REDIRECT, codeChallenge: challenge }));
    await c.exchangeCode({ code, redirectUri: REDIRECT, codeVerifier: verifier });
    const reused = await caught(c.exchangeCode({ code, redirectUri: REDIRECT, codeVerifier: verifier }));
    expect(reused).toBeInstanceOf(InvalidGrantError);
    expect(reused.message).not.toContain(code);
  });

  it('an expired access token is a TokenExpiredError; a 429 a RateLimitedError with Retry-After', async () => {
    const c = client(platform);
    const { account, publishToken } = await connect(c);
    fakes.fail(platform, 'account', { kind: 'expired-token' });
    expect(await caught(c.account(publishToken))).toBeInstanceOf(TokenExpiredError);

    fakes.fail(platform, 'publish', { kind: 'rate-limit', retryAfter: '7' });
    const limited = await caught(c.publish(account.accountId, publishToken.accessToken, post(platform)));
    expect(limited).toBeInstanceOf(RateLimitedError);
    expect(limited.retryAfterMs).toBe(7000);

    fakes.expireAccessTokens(platform);
    const expired = await caught(c.publish(account.accountId, publishToken.accessToken, post(platform)));
    expect(expired).toBeInstanceOf(TokenExpiredError);
    expect(expired.message).not.toContain(publishToken.accessToken);
  });

  it('a publish whose answer is lost, or that answers 5xx, is an OutcomeUnknownError, and findPublished finds it', async () => {
    const c = client(platform);
    const { account, publishToken } = await connect(c);
    const since = new Date(Date.now() - 1000);
    const state = fakes.platforms[platform];

    const lost = post(platform);
    fakes.fail(platform, 'publish', { kind: 'lost-answer' });
    expect(await caught(c.publish(account.accountId, publishToken.accessToken, lost))).toBeInstanceOf(OutcomeUnknownError);
    expect(state.posts.filter((p) => p.text === lost.text)).toHaveLength(1);
    const found = await c.findPublished(account.accountId, publishToken.accessToken, lost, since);
    expect(found?.platformPostId).toBe(state.posts.find((p) => p.text === lost.text)!.id);

    const failed = post(platform);
    fakes.fail(platform, 'publish', { kind: 'server-error', status: 503, apply: true });
    const unknown = await caught(c.publish(account.accountId, publishToken.accessToken, failed));
    expect(unknown).toBeInstanceOf(OutcomeUnknownError);
    expect(unknown.status).toBe(503);
    expect(await c.findPublished(account.accountId, publishToken.accessToken, failed, since)).not.toBeNull();

    // A read that fails is retryable, never an unknown outcome.
    fakes.fail(platform, 'list', { kind: 'server-error' });
    const read = await caught(c.findPublished(account.accountId, publishToken.accessToken, failed, since));
    expect(read).toBeInstanceOf(SocialApiError);
    expect(read).not.toBeInstanceOf(OutcomeUnknownError);
    expect(read.retryable).toBe(true);
  });

  it('an answer later than SOCIAL_TIMEOUT_MS is an OutcomeUnknownError, though the post exists', async () => {
    const c = client(platform, { SOCIAL_TIMEOUT_MS: '300' });
    const { account, publishToken } = await connect(c);
    const slow = post(platform);
    fakes.fail(platform, 'publish', { kind: 'delay', ms: 1500 });
    const err = await caught(c.publish(account.accountId, publishToken.accessToken, slow));
    expect(err).toBeInstanceOf(OutcomeUnknownError);
    expect(err.message).toMatch(/no answer within 300 ms/);
    expect(fakes.platforms[platform].posts.filter((p) => p.text === slow.text)).toHaveLength(1);
  });
});

describe.each(['TWITTER', 'LINKEDIN', 'TIKTOK'] as const)('%s refresh tokens', (platform) => {
  it('rotate: the new pair works, the old refresh token is then refused with invalid_grant', async () => {
    const c = client(platform);
    const { tokens } = await connect(c);
    const next = await c.refresh(tokens.refreshToken!);
    expect(next.accessToken).not.toBe(tokens.accessToken);
    expect(next.refreshToken).toBeTruthy();
    expect(next.refreshToken).not.toBe(tokens.refreshToken);
    await c.account(next);
    expect(fakes.liveTokens(platform, 'refresh')).not.toContain(tokens.refreshToken);
    const reused = await caught(c.refresh(tokens.refreshToken!));
    expect(reused).toBeInstanceOf(InvalidGrantError);
    expect(reused.message).not.toContain(tokens.refreshToken);
  });

  it('a revoked app or an injected invalid_grant is an InvalidGrantError', async () => {
    const c = client(platform);
    const { tokens } = await connect(c);
    fakes.fail(platform, 'refresh', { kind: 'invalid-grant' });
    expect(await caught(c.refresh(tokens.refreshToken!))).toBeInstanceOf(InvalidGrantError);
    fakes.revokeApp(platform);
    expect(await caught(c.refresh(tokens.refreshToken!))).toBeInstanceOf(InvalidGrantError);
  });
});

describe.each(['TWITTER', 'TIKTOK'] as const)('%s PKCE', (platform) => {
  it('refuses a code_verifier that does not match the challenge', async () => {
    const c = client(platform);
    const challenge = createHash('sha256').update('the-right-verifier-of-enough-length-0123456789').digest('base64url');
    const { code } = await fakes.authorize(c.authorizationUrl({ state: 's', redirectUri: REDIRECT, codeChallenge: challenge }));
    const err = await caught(c.exchangeCode({ code, redirectUri: REDIRECT, codeVerifier: 'a-wrong-verifier-of-enough-length-0123456789' }));
    expect(err).toBeInstanceOf(InvalidGrantError);
    expect(err.message).toMatch(/code_verifier/);
  });
});

describe('TIKTOK publishing', () => {
  it('a failure while waiting for an accepted video is an OutcomeUnknownError, and findPublished finds the video', async () => {
    const c = client('TIKTOK');
    const { account, publishToken } = await connect(c);
    const since = new Date(Date.now() - 1000);
    const request = post('TIKTOK');
    fakes.fail('TIKTOK', 'status', { kind: 'server-error', status: 502 });
    expect(await caught(c.publish(account.accountId, publishToken.accessToken, request))).toBeInstanceOf(OutcomeUnknownError);
    expect(await c.findPublished(account.accountId, publishToken.accessToken, request, since)).not.toBeNull();
  });
});

describe('Retry-After', () => {
  it('reads seconds, an HTTP date, and X\'s x-rate-limit-reset', async () => {
    const now = Date.parse('2026-11-26T10:00:00Z');
    expect(retryAfterMs(new Headers({ 'retry-after': '30' }), now)).toBe(30_000);
    expect(retryAfterMs(new Headers({ 'retry-after': 'Thu, 26 Nov 2026 10:01:30 GMT' }), now)).toBe(90_000);
    expect(retryAfterMs(new Headers({ 'x-rate-limit-reset': String(now / 1000 + 45) }), now)).toBe(45_000);

    const c = client('TWITTER');
    const { account, publishToken } = await connect(c);
    fakes.fail('TWITTER', 'publish', { kind: 'rate-limit', resetAt: Math.floor(Date.now() / 1000) + 120 });
    const err = await caught(c.publish(account.accountId, publishToken.accessToken, post('TWITTER')));
    expect(err).toBeInstanceOf(RateLimitedError);
    expect(err.retryAfterMs).toBeGreaterThan(100_000);
    expect(err.retryAfterMs).toBeLessThanOrEqual(120_000);
  });

  it('Graph API throttling answered as a 400 (Business Use Case, user, Page limits) is a RateLimitedError, not a refusal', async () => {
    for (const [platform, code] of [['INSTAGRAM', 80002], ['FACEBOOK', 80001], ['FACEBOOK', 17]] as const) {
      const c = client(platform);
      const { account, publishToken } = await connect(c);
      fakes.fail(platform, platform === 'INSTAGRAM' ? 'media' : 'publish', { kind: 'graph-throttle', code });
      const err = await caught(c.publish(account.accountId, publishToken.accessToken, post(platform)));
      expect(err, `${platform} ${code}`).toBeInstanceOf(RateLimitedError);
    }
  });

  it('a refused request names the platform\'s reason and is not retryable', async () => {
    const c = client('FACEBOOK');
    const { account, publishToken } = await connect(c);
    const err = await caught(c.publish(account.accountId, publishToken.accessToken, { text: '', mediaUrls: [], linkUrl: null }));
    expect(err).toBeInstanceOf(SocialApiError);
    expect(err.status).toBe(400);
    expect(err.retryable).toBe(false);
    expect(err.message).toMatch(/Missing message or attachment/);
    expect(err.message).not.toContain(publishToken.accessToken);
  });
});

describe('token responses', () => {
  it('a token response without an access_token is refused, never stored as "undefined"', () => {
    for (const body of [{}, { access_token: '' }, { access_token: 42 }, null]) {
      expect(() => oauthTokens('TWITTER', body)).toThrow(new SocialApiError('TWITTER', 'TWITTER: the token endpoint answered without an access_token', null, false));
    }
    expect(oauthTokens('TIKTOK', { access_token: 'a', refresh_token: '', expires_in: 60, scope: 'x,y' })).toMatchObject({ accessToken: 'a', refreshToken: null, scopes: ['x', 'y'] });
  });
});

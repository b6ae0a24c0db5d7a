// Used by the tests and `npm run social-fakes`.
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { SocialPlatform } from '../../../db/entities/enums.js';

// One real HTTP server playing all five social platforms, each below its own prefix (/facebook,
// /instagram, /twitter, /linkedin, /tiktok) with the platform's own paths, bodies and error shapes:
// the authorisation page (it approves at once and redirects back with code and state), the token
// endpoint (code exchange with PKCE verification and single-use codes, refresh with rotation),
// revocation, account info, publishing, recent posts and metrics. Its state is plain data the tests
// read, and faults are queued per platform and endpoint.

export type FakeEndpoint = 'authorize' | 'token' | 'refresh' | 'revoke' | 'account' | 'media' | 'publish' | 'status' | 'list' | 'metrics';

export type FakeFault =
  /** 429 with `Retry-After: retryAfter` (X also sends x-rate-limit-reset when `resetAt`, epoch seconds, is given). */
  | { kind: 'rate-limit'; retryAfter?: string; resetAt?: number }
  /** The platform's "access token expired/invalid" answer. */
  | { kind: 'expired-token' }
  /** invalid_grant on a token endpoint (a revoked app, a dead refresh token). */
  | { kind: 'invalid-grant' }
  /** The request takes effect, then the connection is destroyed: the answer is lost. */
  | { kind: 'lost-answer' }
  /** The request takes effect, and the answer comes `ms` later (beyond a client's timeout). */
  | { kind: 'delay'; ms: number }
  /** A 5xx; with `apply` the request took effect first. */
  | { kind: 'server-error'; status?: number; apply?: boolean }
  /** FACEBOOK / INSTAGRAM: Graph API throttling as it usually comes, a 400 with `code` (4, 17, 32, 613, 80001, 80002). */
  | { kind: 'graph-throttle'; code: number }
  /** The platform's definite refusal (400 in its own error shape) with `message`; nothing takes effect. */
  | { kind: 'refused'; message: string };

export interface FakePost {
  id: string;
  accountId: string;
  text: string;
  mediaUrls: string[];
  linkUrl: string | null;
  createdAt: Date;
  metrics: { likes: number; comments: number; shares: number; reach: number };
}

export interface FakeToken {
  kind: 'access' | 'refresh' | 'page';
  scopes: string[];
  expiresAt: number | null;
  revoked: boolean;
  /** A rotated refresh token (used once) is dead. */
  used: boolean;
  pageId?: string;
}

export interface FakePlatformState {
  platform: SocialPlatform;
  clientId: string;
  clientSecret: string;
  /** The user who approves every authorisation. */
  user: { id: string; name: string; username: string };
  /** FACEBOOK / INSTAGRAM: the user's Pages, the first with an Instagram business account. */
  pages: { id: string; name: string; category: string; instagram?: { id: string; username: string } }[];
  /** Seconds an access token lives. */
  accessTokenTtl: number;
  /** Off: code exchanges issue no refresh token (as a reconnect sometimes does). */
  issueRefreshTokens: boolean;
  /**
   * TIKTOK videos and INSTAGRAM video containers: how many status requests an upload answers as
   * still processing before it is done (a TikTok video is listed only then).
   */
  processingPolls: number;
  /** TIKTOK: the videos taken and not yet public, by publish_id. */
  processing: Map<string, { text: string; video: string; pollsLeft: number }>;
  codes: Map<string, { redirectUri: string; challenge: string | null; scopes: string[]; used: boolean }>;
  tokens: Map<string, FakeToken>;
  posts: FakePost[];
  /** Every request: method, path (below the prefix), endpoint. */
  requests: { method: string; path: string; endpoint: FakeEndpoint | null }[];
  /** Tokens revoked through the revocation endpoint. */
  revoked: string[];
  faults: { endpoint: FakeEndpoint; fault: FakeFault }[];
}

export interface SocialFakes {
  url: string;
  /** The P_CLIENT_ID, P_CLIENT_SECRET, P_AUTH_URL, P_API_URL variables pointing at this server. */
  env: Record<string, string>;
  platforms: Record<SocialPlatform, FakePlatformState>;
  /** Queues `fault` for the next `times` requests to the platform's endpoint. */
  fail(platform: SocialPlatform, endpoint: FakeEndpoint, fault: FakeFault, times?: number): void;
  /** Follows an authorisation URL as the approving user: the code and state it redirects back with. */
  authorize(authUrl: string): Promise<{ code: string; state: string; redirect: string }>;
  /** Every access token of the platform (or one) is expired from now on. */
  expireAccessTokens(platform: SocialPlatform, token?: string): void;
  /** The user removed the app: every token of the platform is dead, refresh gives invalid_grant. */
  revokeApp(platform: SocialPlatform): void;
  /** Tokens of a kind that are alive (not revoked, not rotated away, not expired). */
  liveTokens(platform: SocialPlatform, kind: FakeToken['kind']): string[];
  close(): Promise<void>;
}

const PREFIX: Record<SocialPlatform, string> = {
  FACEBOOK: 'facebook', INSTAGRAM: 'instagram', TWITTER: 'twitter', LINKEDIN: 'linkedin', TIKTOK: 'tiktok',
};
const GRAPH = '/v21.0';

type Answer = { status: number; body?: unknown; headers?: Record<string, string> };
class Refusal extends Error {
  constructor(readonly answer: Answer) {
    super('refused');
  }
}

const token = (prefix: string) => `${prefix}-${randomBytes(18).toString('base64url')}`;
const s256 = (verifier: string) => createHash('sha256').update(verifier).digest('base64url');

async function readBody(req: IncomingMessage): Promise<{ form: Record<string, string>; json: any }> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const text = Buffer.concat(chunks).toString();
  const type = req.headers['content-type'] ?? '';
  if (type.includes('application/x-www-form-urlencoded')) return { form: Object.fromEntries(new URLSearchParams(text)), json: {} };
  if (type.includes('application/json')) return { form: {}, json: text ? JSON.parse(text) : {} };
  return { form: {}, json: {} };
}

function newPlatform(platform: SocialPlatform, n: number): FakePlatformState {
  const p = PREFIX[platform];
  return {
    platform,
    clientId: `fake-${p}-client`,
    clientSecret: `fake-${p}-secret`,
    user: { id: `${1000 + n}${p.length}7`, name: `Fairway ${p} user`, username: `fairway_${p}` },
    pages: platform === 'FACEBOOK' || platform === 'INSTAGRAM'
      ? [
        { id: `${200 + n}01`, name: 'Fairway Golf Club', category: 'Golf Course & Driving Range', instagram: { id: `1784${n}001`, username: 'fairwaygolf' } },
        { id: `${200 + n}02`, name: 'Fairway Pro Shop', category: 'Sporting Goods Store' },
      ]
      : [],
    accessTokenTtl: platform === 'LINKEDIN' ? 5_184_000 : platform === 'TIKTOK' ? 86_400 : 7_200,
    issueRefreshTokens: true,
    processingPolls: 0,
    processing: new Map(),
    codes: new Map(),
    tokens: new Map(),
    posts: [],
    requests: [],
    revoked: [],
    faults: [],
  };
}

export async function startSocialFakes(port = 0): Promise<SocialFakes> {
  const platforms = Object.fromEntries(
    (['FACEBOOK', 'INSTAGRAM', 'TWITTER', 'LINKEDIN', 'TIKTOK'] as const).map((p, i) => [p, newPlatform(p, i)]),
  ) as Record<SocialPlatform, FakePlatformState>;
  let sequence = 0;
  const nextId = () => String(Date.now() * 100 + (sequence++ % 100));

  const alive = (t: FakeToken | undefined) => !!t && !t.revoked && !t.used && (t.expiresAt === null || t.expiresAt > Date.now());

  // ---- the platforms' error shapes ----
  const invalidToken = (platform: SocialPlatform): Answer => {
    switch (platform) {
      case 'FACEBOOK':
      case 'INSTAGRAM':
        return { status: 400, body: { error: { message: 'Error validating access token: Session has expired.', type: 'OAuthException', code: 190, error_subcode: 463 } } };
      case 'TWITTER':
        return { status: 401, body: { title: 'Unauthorized', type: 'about:blank', status: 401, detail: 'Unauthorized' } };
      case 'LINKEDIN':
        return { status: 401, body: { status: 401, serviceErrorCode: 65601, code: 'REVOKED_ACCESS_TOKEN', message: 'The token used in the request has expired or been revoked' } };
      case 'TIKTOK':
        return { status: 401, body: { error: { code: 'access_token_invalid', message: 'The access token is invalid or not found in the request.', log_id: nextId() } } };
    }
  };
  const invalidGrant = (platform: SocialPlatform, description: string): Answer =>
    platform === 'FACEBOOK' || platform === 'INSTAGRAM'
      ? { status: 400, body: { error: { message: description, type: 'OAuthException', code: 100 } } }
      : { status: 400, body: { error: 'invalid_grant', error_description: description } };
  const badRequest = (platform: SocialPlatform, message: string): Answer =>
    platform === 'FACEBOOK' || platform === 'INSTAGRAM'
      ? { status: 400, body: { error: { message, type: 'OAuthException', code: 100 } } }
      : platform === 'TIKTOK'
        ? { status: 400, body: { error: { code: 'invalid_params', message } } }
        : platform === 'TWITTER'
          ? { status: 400, body: { title: 'Invalid Request', detail: message, type: 'https://api.twitter.com/2/problems/invalid-request' } }
          : { status: 400, body: { status: 400, message } };
  const rateLimited = (platform: SocialPlatform, fault: { retryAfter?: string; resetAt?: number }): Answer => {
    const headers: Record<string, string> = {};
    if (fault.retryAfter !== undefined) headers['retry-after'] = fault.retryAfter;
    if (fault.resetAt !== undefined) headers['x-rate-limit-reset'] = String(fault.resetAt);
    const body = platform === 'TIKTOK' ? { error: { code: 'rate_limit_exceeded', message: 'Too many requests' } }
      : platform === 'FACEBOOK' || platform === 'INSTAGRAM' ? { error: { message: 'Application request limit reached', code: 4 } }
        : { title: 'Too Many Requests', detail: 'Too Many Requests', status: 429 };
    return { status: 429, headers, body };
  };

  // ---- OAuth ----
  function issue(state: FakePlatformState, scopes: string[], withRefresh: boolean, ttl = state.accessTokenTtl) {
    const access = token(`${PREFIX[state.platform]}-at`);
    state.tokens.set(access, { kind: 'access', scopes, expiresAt: Date.now() + ttl * 1000, revoked: false, used: false });
    let refresh: string | undefined;
    if (withRefresh) {
      refresh = token(`${PREFIX[state.platform]}-rt`);
      state.tokens.set(refresh, { kind: 'refresh', scopes, expiresAt: null, revoked: false, used: false });
    }
    return { access, refresh, ttl };
  }

  function redeemCode(state: FakePlatformState, code: string | undefined, redirectUri: string | undefined, verifier: string | undefined) {
    const grant = code ? state.codes.get(code) : undefined;
    if (!grant) throw new Refusal(invalidGrant(state.platform, 'The authorization code is invalid'));
    if (grant.used) throw new Refusal(invalidGrant(state.platform, 'The authorization code was already used'));
    grant.used = true;
    if (grant.redirectUri !== redirectUri) throw new Refusal(invalidGrant(state.platform, 'redirect_uri does not match the authorization request'));
    if (grant.challenge !== null && (!verifier || s256(verifier) !== grant.challenge)) {
      throw new Refusal(invalidGrant(state.platform, 'code_verifier does not match the code_challenge'));
    }
    return grant;
  }

  function rotate(state: FakePlatformState, refreshToken: string | undefined) {
    const old = refreshToken ? state.tokens.get(refreshToken) : undefined;
    if (!old || old.kind !== 'refresh' || !alive(old)) throw new Refusal(invalidGrant(state.platform, 'The refresh token is invalid or was revoked'));
    old.used = true;
    return issue(state, old.scopes, true);
  }

  function checkClient(state: FakePlatformState, id: string | undefined, secret: string | undefined) {
    if (id !== state.clientId || secret !== state.clientSecret) {
      throw new Refusal(state.platform === 'FACEBOOK' || state.platform === 'INSTAGRAM'
        ? { status: 400, body: { error: { message: 'Error validating client secret.', type: 'OAuthException', code: 1 } } }
        : { status: 401, body: { error: 'invalid_client', error_description: 'Client authentication failed' } });
    }
  }

  function basicClient(req: IncomingMessage): [string | undefined, string | undefined] {
    const header = req.headers.authorization ?? '';
    if (!header.startsWith('Basic ')) return [undefined, undefined];
    const [id, secret] = Buffer.from(header.slice(6), 'base64').toString().split(':');
    return [decodeURIComponent(id ?? ''), decodeURIComponent(secret ?? '')];
  }

  function bearer(state: FakePlatformState, req: IncomingMessage, url: URL): { value: string; token: FakeToken } {
    const header = req.headers.authorization ?? '';
    const value = header.startsWith('Bearer ') ? header.slice(7) : url.searchParams.get('access_token') ?? '';
    const found = state.tokens.get(value);
    if (!found || found.kind === 'refresh' || !alive(found)) throw new Refusal(invalidToken(state.platform));
    return { value, token: found };
  }

  function revokeAll(state: FakePlatformState) {
    for (const t of state.tokens.values()) t.revoked = true;
  }

  function newPost(state: FakePlatformState, accountId: string, text: string, mediaUrls: string[], linkUrl: string | null, id = nextId()): FakePost {
    const post: FakePost = { id, accountId, text, mediaUrls, linkUrl, createdAt: new Date(), metrics: { likes: 0, comments: 0, shares: 0, reach: 0 } };
    state.posts.push(post);
    return post;
  }

  // ---- routes: each answers (endpoint, apply) so faults can be placed before or after the effect ----
  type Route = { endpoint: FakeEndpoint; apply: () => Answer | Promise<Answer> };

  function authorizePage(state: FakePlatformState, url: URL): Route {
    return {
      endpoint: 'authorize',
      apply: () => {
        const clientId = url.searchParams.get(state.platform === 'TIKTOK' ? 'client_key' : 'client_id');
        const redirectUri = url.searchParams.get('redirect_uri');
        if (clientId !== state.clientId || !redirectUri) return badRequest(state.platform, 'unknown client or missing redirect_uri');
        const pkce = state.platform === 'TWITTER' || state.platform === 'TIKTOK';
        const challenge = url.searchParams.get('code_challenge');
        if (pkce && (!challenge || url.searchParams.get('code_challenge_method') !== 'S256')) return badRequest(state.platform, 'code_challenge with S256 is required');
        const code = token(`${PREFIX[state.platform]}-code`);
        const scopes = (url.searchParams.get('scope') ?? '').split(/[\s,]+/).filter(Boolean);
        state.codes.set(code, { redirectUri, challenge: pkce ? challenge : null, scopes, used: false });
        const back = new URL(redirectUri);
        back.searchParams.set('code', code);
        back.searchParams.set('state', url.searchParams.get('state') ?? '');
        return { status: 302, headers: { location: back.toString() } };
      },
    };
  }

  function graph(state: FakePlatformState, req: IncomingMessage, url: URL, rest: string, body: { form: Record<string, string>; json: any }): Route | null {
    const q = url.searchParams;
    const params = { ...Object.fromEntries(q), ...body.form };
    const method = req.method!;
    if (rest === '/oauth/access_token' && method === 'GET') {
      const exchange = q.get('grant_type') === 'fb_exchange_token';
      return {
        endpoint: exchange ? 'refresh' : 'token',
        apply: () => {
          checkClient(state, q.get('client_id') ?? undefined, q.get('client_secret') ?? undefined);
          if (exchange) {
            const short = state.tokens.get(q.get('fb_exchange_token') ?? '');
            if (!short || short.kind !== 'access' || !alive(short)) return invalidGrant(state.platform, 'Invalid OAuth access token');
            const long = issue(state, short.scopes, false, 5_184_000);
            return { status: 200, body: { access_token: long.access, token_type: 'bearer', expires_in: long.ttl } };
          }
          const grant = redeemCode(state, q.get('code') ?? undefined, q.get('redirect_uri') ?? undefined, undefined);
          const short = issue(state, grant.scopes, false, 3600);
          return { status: 200, body: { access_token: short.access, token_type: 'bearer', expires_in: short.ttl } };
        },
      };
    }
    if (rest === '/me/permissions' && method === 'GET') {
      return { endpoint: 'account', apply: () => ({ status: 200, body: { data: bearer(state, req, url).token.scopes.map((permission) => ({ permission, status: 'granted' })) } }) };
    }
    if (rest === '/me/permissions' && method === 'DELETE') {
      return {
        endpoint: 'revoke',
        apply: () => {
          const { value } = bearer(state, req, url);
          state.revoked.push(value);
          revokeAll(state);
          return { status: 200, body: { success: true } };
        },
      };
    }
    if (rest === '/me/accounts' && method === 'GET') {
      return {
        endpoint: 'account',
        apply: () => {
          const { token: user } = bearer(state, req, url);
          const data = state.pages.map((page) => {
            const pageToken = token(`${PREFIX[state.platform]}-page`);
            state.tokens.set(pageToken, { kind: 'page', scopes: user.scopes, expiresAt: null, revoked: false, used: false, pageId: page.id });
            return {
              id: page.id, name: page.name, category: page.category, access_token: pageToken,
              ...(page.instagram ? { instagram_business_account: { id: page.instagram.id, username: page.instagram.username } } : {}),
            };
          });
          return { status: 200, body: { data, paging: {} } };
        },
      };
    }
    const [, objectId, edge] = /^\/([^/]+)(?:\/([^/]+))?$/.exec(rest) ?? [];
    if (!objectId) return null;
    const page = state.pages.find((p) => p.id === objectId);
    const ig = state.pages.find((p) => p.instagram?.id === objectId);
    const pageAuth = (pageId: string) => {
      const { token: t } = bearer(state, req, url);
      if (t.kind !== 'page' || t.pageId !== pageId) throw new Refusal({ status: 403, body: { error: { message: '(#200) Requires a Page access token of this Page', type: 'OAuthException', code: 200 } } });
    };
    if (page && method === 'POST' && (edge === 'feed' || edge === 'photos')) {
      return {
        endpoint: 'publish',
        apply: () => {
          pageAuth(page.id);
          if (edge === 'photos') {
            const post = newPost(state, page.id, params.caption ?? '', [params.url ?? ''], null, `${page.id}_${nextId()}`);
            return { status: 200, body: { id: nextId(), post_id: post.id } };
          }
          if (!params.message && !params.link) return badRequest(state.platform, '(#100) Missing message or attachment');
          const post = newPost(state, page.id, params.message ?? '', [], params.link ?? null, `${page.id}_${nextId()}`);
          return { status: 200, body: { id: post.id } };
        },
      };
    }
    if (page && method === 'GET' && edge === 'feed') {
      return {
        endpoint: 'list',
        apply: () => {
          bearer(state, req, url);
          const since = Number(q.get('since') ?? 0) * 1000;
          const data = state.posts.filter((p) => p.accountId === page.id && p.createdAt.getTime() >= since).reverse()
            .map((p) => ({ id: p.id, message: p.text, created_time: p.createdAt.toISOString(), permalink_url: `https://www.facebook.com/${p.id}` }));
          return { status: 200, body: { data } };
        },
      };
    }
    if (ig && method === 'POST' && edge === 'media') {
      return {
        endpoint: 'media',
        apply: () => {
          pageAuth(ig.id);
          const media = params.image_url ?? params.video_url;
          if (!media) return badRequest(state.platform, 'The parameter image_url or video_url is required');
          const id = `c${nextId()}`;
          containers.set(id, { igId: ig.instagram!.id, caption: params.caption ?? '', media, published: false, pollsLeft: params.video_url ? state.processingPolls : 0 });
          return { status: 200, body: { id } };
        },
      };
    }
    if (ig && method === 'POST' && edge === 'media_publish') {
      return {
        endpoint: 'publish',
        apply: () => {
          pageAuth(ig.id);
          const container = containers.get(params.creation_id ?? '');
          if (!container || container.igId !== ig.instagram!.id) return badRequest(state.platform, 'Invalid creation_id');
          if (container.published) return badRequest(state.platform, 'The media has already been published');
          if (container.pollsLeft > 0) return badRequest(state.platform, 'Media ID is not available');
          container.published = true;
          const post = newPost(state, ig.instagram!.id, container.caption, [container.media], null);
          return { status: 200, body: { id: post.id } };
        },
      };
    }
    if (ig && method === 'GET' && edge === 'media') {
      return {
        endpoint: 'list',
        apply: () => {
          bearer(state, req, url);
          const data = state.posts.filter((p) => p.accountId === ig.instagram!.id).reverse()
            .map((p) => ({ id: p.id, caption: p.text, timestamp: p.createdAt.toISOString(), permalink: `https://www.instagram.com/p/${p.id}/` }));
          return { status: 200, body: { data } };
        },
      };
    }
    const container = containers.get(objectId);
    if (container && method === 'GET' && !edge) {
      return {
        endpoint: 'status',
        apply: () => {
          bearer(state, req, url);
          const processing = container.pollsLeft > 0 && container.pollsLeft-- > 0;
          return { status: 200, body: { id: objectId, status_code: container.published ? 'PUBLISHED' : processing ? 'IN_PROGRESS' : 'FINISHED' } };
        },
      };
    }
    const post = state.posts.find((p) => p.id === objectId);
    if (post && method === 'GET') {
      return {
        endpoint: 'metrics',
        apply: () => {
          bearer(state, req, url);
          const m = post.metrics;
          if (edge === 'insights') {
            const data = state.platform === 'FACEBOOK'
              ? [{ name: 'post_impressions_unique', period: 'lifetime', values: [{ value: m.reach }] }]
              : [{ name: 'reach', period: 'lifetime', values: [{ value: m.reach }] }, { name: 'shares', period: 'lifetime', values: [{ value: m.shares }] }];
            return { status: 200, body: { data } };
          }
          return {
            status: 200,
            body: state.platform === 'FACEBOOK'
              ? { id: post.id, reactions: { data: [], summary: { total_count: m.likes } }, comments: { data: [], summary: { total_count: m.comments } }, shares: { count: m.shares } }
              : { id: post.id, like_count: m.likes, comments_count: m.comments, permalink: `https://www.instagram.com/p/${post.id}/` },
          };
        },
      };
    }
    return null;
  }
  const containers = new Map<string, { igId: string; caption: string; media: string; published: boolean; pollsLeft: number }>();

  function twitter(state: FakePlatformState, req: IncomingMessage, url: URL, rest: string, body: { form: Record<string, string>; json: any }): Route | null {
    const method = req.method!;
    const f = body.form;
    if (rest === '/2/oauth2/token' && method === 'POST') {
      return {
        endpoint: f.grant_type === 'refresh_token' ? 'refresh' : 'token',
        apply: () => {
          checkClient(state, ...basicClient(req));
          const issued = f.grant_type === 'refresh_token'
            ? rotate(state, f.refresh_token)
            : (() => {
              const grant = redeemCode(state, f.code, f.redirect_uri, f.code_verifier);
              return issue(state, grant.scopes, state.issueRefreshTokens && grant.scopes.includes('offline.access'));
            })();
          const scopes = state.tokens.get(issued.access)!.scopes;
          return { status: 200, body: { token_type: 'bearer', expires_in: issued.ttl, access_token: issued.access, scope: scopes.join(' '), ...(issued.refresh ? { refresh_token: issued.refresh } : {}) } };
        },
      };
    }
    if (rest === '/2/oauth2/revoke' && method === 'POST') {
      return {
        endpoint: 'revoke',
        apply: () => {
          checkClient(state, ...basicClient(req));
          const t = state.tokens.get(f.token ?? '');
          if (t) {
            t.revoked = true;
            state.revoked.push(f.token!);
          }
          return { status: 200, body: { revoked: true } };
        },
      };
    }
    if (rest === '/2/users/me' && method === 'GET') {
      return { endpoint: 'account', apply: () => (bearer(state, req, url), { status: 200, body: { data: { id: state.user.id, name: state.user.name, username: state.user.username } } }) };
    }
    if (rest === '/2/media/upload' && method === 'POST') {
      return { endpoint: 'media', apply: () => (bearer(state, req, url), { status: 200, body: { data: { id: nextId(), media_key: `3_${nextId()}` } } }) };
    }
    if (rest === '/2/tweets' && method === 'POST') {
      return {
        endpoint: 'publish',
        apply: () => {
          bearer(state, req, url);
          const text = String(body.json.text ?? '');
          if (!text) return badRequest(state.platform, 'text is required');
          const post = newPost(state, state.user.id, text, (body.json.media?.media_ids ?? []).map(String), null);
          return { status: 201, body: { data: { id: post.id, text: post.text, edit_history_tweet_ids: [post.id] } } };
        },
      };
    }
    const timeline = /^\/2\/users\/([^/]+)\/tweets$/.exec(rest);
    if (timeline && method === 'GET') {
      return {
        endpoint: 'list',
        apply: () => {
          bearer(state, req, url);
          const since = Date.parse(url.searchParams.get('start_time') ?? '1970-01-01T00:00:00Z');
          const data = state.posts.filter((p) => p.accountId === timeline[1] && p.createdAt.getTime() >= since).reverse()
            // As X gives them back: &, < and > as entities, a tweet with media ending in its t.co link.
            .map((p) => ({
              id: p.id, text: p.text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;') + (p.mediaUrls.length ? ` https://t.co/${p.id.slice(-10)}` : ''),
              created_at: p.createdAt.toISOString(), edit_history_tweet_ids: [p.id],
            }));
          return { status: 200, body: data.length ? { data, meta: { result_count: data.length } } : { meta: { result_count: 0 } } };
        },
      };
    }
    const tweet = /^\/2\/tweets\/([^/]+)$/.exec(rest);
    if (tweet && method === 'GET') {
      return {
        endpoint: 'metrics',
        apply: () => {
          bearer(state, req, url);
          const post = state.posts.find((p) => p.id === tweet[1]);
          if (!post) return { status: 200, body: { errors: [{ resource_id: tweet[1], title: 'Not Found Error', detail: `Could not find tweet with id: [${tweet[1]}].` }] } };
          const m = post.metrics;
          return { status: 200, body: { data: { id: post.id, text: post.text, public_metrics: { like_count: m.likes, reply_count: m.comments, retweet_count: m.shares, quote_count: 0, impression_count: m.reach, bookmark_count: 0 } } } };
        },
      };
    }
    return null;
  }

  function linkedin(state: FakePlatformState, req: IncomingMessage, url: URL, rest: string, body: { form: Record<string, string>; json: any }): Route | null {
    const method = req.method!;
    const f = body.form;
    if (rest === '/oauth/v2/accessToken' && method === 'POST') {
      return {
        endpoint: f.grant_type === 'refresh_token' ? 'refresh' : 'token',
        apply: () => {
          checkClient(state, f.client_id, f.client_secret);
          const issued = f.grant_type === 'refresh_token' ? rotate(state, f.refresh_token) : issue(state, redeemCode(state, f.code, f.redirect_uri, undefined).scopes, state.issueRefreshTokens);
          const scopes = state.tokens.get(issued.access)!.scopes;
          return {
            status: 200,
            body: { access_token: issued.access, expires_in: issued.ttl, refresh_token: issued.refresh, refresh_token_expires_in: 31_536_000, scope: scopes.join(','), token_type: 'Bearer' },
          };
        },
      };
    }
    if (rest === '/oauth/v2/revoke' && method === 'POST') {
      return {
        endpoint: 'revoke',
        apply: () => {
          checkClient(state, f.client_id, f.client_secret);
          const t = state.tokens.get(f.token ?? '');
          if (t) {
            t.revoked = true;
            state.revoked.push(f.token!);
          }
          return { status: 200, body: {} };
        },
      };
    }
    if (rest === '/v2/userinfo' && method === 'GET') {
      return { endpoint: 'account', apply: () => (bearer(state, req, url), { status: 200, body: { sub: state.user.id, name: state.user.name, given_name: 'Fairway', family_name: 'User', locale: { country: 'ZA', language: 'en' } } }) };
    }
    if (rest === '/rest/posts' && method === 'POST') {
      return {
        endpoint: 'publish',
        apply: () => {
          bearer(state, req, url);
          if (!req.headers['linkedin-version']) return { status: 426, body: { status: 426, code: 'NONEXISTENT_VERSION', message: 'Requested version  is not active' } };
          const author = String(body.json.author ?? '');
          if (author !== `urn:li:person:${state.user.id}`) return { status: 403, body: { status: 403, message: `Not enough permissions to post as ${author}` } };
          // "Little text": a backslash escapes the next character, and LinkedIn silently cuts the
          // post at the first reserved character left unescaped.
          const commentary = String(body.json.commentary ?? '');
          const cut = commentary.search(/(?<!\\)[|{}@[\]()<>#*_~]/);
          const text = (cut < 0 ? commentary : commentary.slice(0, cut)).replace(/\\(.)/g, '$1');
          const post = newPost(state, state.user.id, text, [], body.json.content?.article?.source ?? null, `urn:li:share:${nextId()}`);
          return { status: 201, headers: { 'x-restli-id': post.id } };
        },
      };
    }
    if (rest === '/rest/posts' && method === 'GET') {
      return {
        endpoint: 'list',
        apply: () => {
          bearer(state, req, url);
          const author = url.searchParams.get('author');
          const elements = state.posts.filter((p) => `urn:li:person:${p.accountId}` === author).reverse()
            .map((p) => ({ id: p.id, author, commentary: p.text.replace(/[\\|{}@[\]()<>#*_~]/g, (c) => `\\${c}`), createdAt: p.createdAt.getTime(), lifecycleState: 'PUBLISHED' }));
          return { status: 200, body: { elements, paging: { start: 0, count: 20, total: elements.length } } };
        },
      };
    }
    const actions = /^\/rest\/socialActions\/(.+)$/.exec(rest);
    if (actions && method === 'GET') {
      return {
        endpoint: 'metrics',
        apply: () => {
          bearer(state, req, url);
          const post = state.posts.find((p) => p.id === decodeURIComponent(actions[1]!));
          if (!post) return { status: 404, body: { status: 404, message: 'Not Found' } };
          return { status: 200, body: { likesSummary: { totalLikes: post.metrics.likes }, commentsSummary: { aggregatedTotalComments: post.metrics.comments } } };
        },
      };
    }
    return null;
  }

  function tiktok(state: FakePlatformState, req: IncomingMessage, url: URL, rest: string, body: { form: Record<string, string>; json: any }): Route | null {
    const method = req.method!;
    const f = body.form;
    const ok = (data: unknown): Answer => ({ status: 200, body: { data, error: { code: 'ok', message: '', log_id: nextId() } } });
    if (rest === '/v2/oauth/token/' && method === 'POST') {
      return {
        endpoint: f.grant_type === 'refresh_token' ? 'refresh' : 'token',
        apply: () => {
          checkClient(state, f.client_key, f.client_secret);
          const issued = f.grant_type === 'refresh_token' ? rotate(state, f.refresh_token) : issue(state, redeemCode(state, f.code, f.redirect_uri, f.code_verifier).scopes, state.issueRefreshTokens);
          const scopes = state.tokens.get(issued.access)!.scopes;
          return {
            status: 200,
            body: { access_token: issued.access, expires_in: issued.ttl, open_id: state.user.id, refresh_token: issued.refresh, refresh_expires_in: 31_536_000, scope: scopes.join(','), token_type: 'Bearer' },
          };
        },
      };
    }
    if (rest === '/v2/oauth/revoke/' && method === 'POST') {
      return {
        endpoint: 'revoke',
        apply: () => {
          checkClient(state, f.client_key, f.client_secret);
          const t = state.tokens.get(f.token ?? '');
          if (t) {
            state.revoked.push(f.token!);
            revokeAll(state); // TikTok revokes the user's whole grant
          }
          return { status: 200, body: {} };
        },
      };
    }
    if (rest === '/v2/user/info/' && method === 'GET') {
      return { endpoint: 'account', apply: () => (bearer(state, req, url), ok({ user: { open_id: state.user.id, display_name: state.user.name, username: state.user.username } })) };
    }
    if (rest === '/v2/post/publish/video/init/' && method === 'POST') {
      return {
        endpoint: 'publish',
        apply: () => {
          bearer(state, req, url);
          const source = body.json.source_info ?? {};
          if (source.source !== 'PULL_FROM_URL' || !source.video_url) return badRequest(state.platform, 'source_info.video_url is required for PULL_FROM_URL');
          const publishId = `v_pub_url~v2.${nextId()}`;
          const text = String(body.json.post_info?.title ?? '');
          if (state.processingPolls > 0) state.processing.set(publishId, { text, video: source.video_url, pollsLeft: state.processingPolls });
          else publishes.set(publishId, newPost(state, state.user.id, text, [source.video_url], null).id);
          return ok({ publish_id: publishId });
        },
      };
    }
    if (rest === '/v2/post/publish/status/fetch/' && method === 'POST') {
      return {
        endpoint: 'status',
        apply: () => {
          bearer(state, req, url);
          const publishId = String(body.json.publish_id ?? '');
          const upload = state.processing.get(publishId);
          if (upload && upload.pollsLeft > 0) {
            upload.pollsLeft--;
            return ok({ status: 'PROCESSING_DOWNLOAD', uploaded_bytes: 0 });
          }
          if (upload) {
            // Public from now on: listed, and the same post for every later status request.
            state.processing.delete(publishId);
            publishes.set(publishId, newPost(state, state.user.id, upload.text, [upload.video], null).id);
          }
          const id = publishes.get(publishId);
          if (!id) return badRequest(state.platform, 'publish_id not found');
          return ok({ status: 'PUBLISH_COMPLETE', publicaly_available_post_id: [id], uploaded_bytes: 0 });
        },
      };
    }
    const video = /^\/v2\/video\/(list|query)\/$/.exec(rest);
    if (video && method === 'POST') {
      return {
        endpoint: video[1] === 'list' ? 'list' : 'metrics',
        apply: () => {
          bearer(state, req, url);
          const ids: string[] | undefined = body.json.filters?.video_ids;
          const videos = state.posts.filter((p) => !ids || ids.includes(p.id)).reverse().map((p) => ({
            id: p.id, title: p.text, video_description: p.text, create_time: Math.floor(p.createdAt.getTime() / 1000), share_url: `https://www.tiktok.com/@${state.user.username}/video/${p.id}`,
            like_count: p.metrics.likes, comment_count: p.metrics.comments, share_count: p.metrics.shares, view_count: p.metrics.reach,
          }));
          return ok({ videos, cursor: 0, has_more: false });
        },
      };
    }
    return null;
  }
  const publishes = new Map<string, string>();

  async function route(state: FakePlatformState, req: IncomingMessage, url: URL, rest: string): Promise<Route | null> {
    const authPath = new URL(env[`${state.platform}_AUTH_URL`]!).pathname;
    if (req.method === 'GET' && url.pathname === authPath) return authorizePage(state, url);
    const body = await readBody(req);
    switch (state.platform) {
      case 'FACEBOOK':
      case 'INSTAGRAM':
        return rest.startsWith(GRAPH) ? graph(state, req, url, rest.slice(GRAPH.length), body) : null;
      case 'TWITTER': return twitter(state, req, url, rest, body);
      case 'LINKEDIN': return linkedin(state, req, url, rest, body);
      case 'TIKTOK': return tiktok(state, req, url, rest, body);
    }
  }

  const send = (res: ServerResponse, answer: Answer) => {
    const headers = { ...(answer.body !== undefined ? { 'content-type': 'application/json' } : {}), ...answer.headers };
    res.writeHead(answer.status, headers).end(answer.body !== undefined ? JSON.stringify(answer.body) : undefined);
  };

  const server: Server = createServer(async (req, res) => {
    try {
      const url = new URL(req.url!, 'http://fake');
      const [, prefix, ...restParts] = url.pathname.split('/');
      // Media a post may link to (`<url>/media/<name>.png|.mp4`): the platforms fetch them by URL.
      if (prefix === 'media') {
        const video = url.pathname.endsWith('.mp4');
        return res.writeHead(200, { 'content-type': video ? 'video/mp4' : 'image/png' }).end(randomBytes(256));
      }
      const platform = (Object.keys(PREFIX) as SocialPlatform[]).find((p) => PREFIX[p] === prefix);
      if (!platform) return send(res, { status: 404, body: { message: 'no such platform' } });
      const state = platforms[platform];
      const rest = `/${restParts.join('/')}`;
      const found = await route(state, req, url, rest);
      state.requests.push({ method: req.method!, path: rest, endpoint: found?.endpoint ?? null });
      if (!found) return send(res, { status: 404, body: { message: `no route ${req.method} ${rest}` } });
      const queued = state.faults.findIndex((f) => f.endpoint === found.endpoint);
      const fault = queued >= 0 ? state.faults.splice(queued, 1)[0]!.fault : undefined;
      if (fault?.kind === 'rate-limit') return send(res, rateLimited(platform, fault));
      if (fault?.kind === 'graph-throttle') {
        return send(res, { status: 400, body: { error: { message: `(#${fault.code}) There have been too many calls`, type: 'OAuthException', code: fault.code, fbtrace_id: 'Fake' } } });
      }
      if (fault?.kind === 'expired-token') return send(res, invalidToken(platform));
      if (fault?.kind === 'invalid-grant') return send(res, invalidGrant(platform, 'The grant was revoked by the user'));
      if (fault?.kind === 'refused') return send(res, badRequest(platform, fault.message));
      if (fault?.kind === 'server-error' && !fault.apply) return send(res, { status: fault.status ?? 500, body: { message: 'Internal Server Error' } });
      let answer: Answer;
      try {
        answer = await found.apply();
      } catch (err) {
        if (err instanceof Refusal) return send(res, err.answer);
        throw err;
      }
      if (fault?.kind === 'lost-answer') return req.socket.destroy();
      if (fault?.kind === 'delay') await new Promise((resolve) => setTimeout(resolve, fault.ms));
      if (fault?.kind === 'server-error') return send(res, { status: fault.status ?? 500, body: { message: 'Internal Server Error' } });
      if (!res.destroyed) send(res, answer);
    } catch (err) {
      if (!res.headersSent) send(res, { status: 500, body: { message: String(err) } });
    }
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const authPaths: Record<SocialPlatform, string> = {
    FACEBOOK: `/facebook${GRAPH}/dialog/oauth`,
    INSTAGRAM: `/instagram${GRAPH}/dialog/oauth`,
    TWITTER: '/twitter/i/oauth2/authorize',
    LINKEDIN: '/linkedin/oauth/v2/authorization',
    TIKTOK: '/tiktok/v2/auth/authorize/',
  };
  const env: Record<string, string> = {};
  for (const p of Object.keys(PREFIX) as SocialPlatform[]) {
    env[`${p}_CLIENT_ID`] = platforms[p].clientId;
    env[`${p}_CLIENT_SECRET`] = platforms[p].clientSecret;
    env[`${p}_AUTH_URL`] = `${url}${authPaths[p]}`;
    env[`${p}_API_URL`] = `${url}/${PREFIX[p]}`;
  }

  return {
    url,
    env,
    platforms,
    fail(platform, endpoint, fault, times = 1) {
      for (let i = 0; i < times; i++) platforms[platform].faults.push({ endpoint, fault });
    },
    async authorize(authUrl) {
      const response = await fetch(authUrl, { redirect: 'manual' });
      const location = response.headers.get('location');
      if (response.status !== 302 || !location) throw new Error(`the authorisation page answered ${response.status}: ${await response.text()}`);
      const back = new URL(location);
      return { code: back.searchParams.get('code')!, state: back.searchParams.get('state')!, redirect: location };
    },
    expireAccessTokens(platform, value) {
      for (const [k, t] of platforms[platform].tokens) if (t.kind !== 'refresh' && (!value || k === value)) t.expiresAt = Date.now() - 1000;
    },
    revokeApp(platform) {
      revokeAll(platforms[platform]);
    },
    liveTokens(platform, kind) {
      return [...platforms[platform].tokens].filter(([, t]) => t.kind === kind && alive(t)).map(([k]) => k);
    },
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

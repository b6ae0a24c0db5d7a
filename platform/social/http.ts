import type { SocialPlatform } from '../../db/entities/enums.js';
import { InvalidGrantError, OutcomeUnknownError, RateLimitedError, SocialApiError, TokenExpiredError, type TokenSet } from './types.js';

// One request to a platform, with its answer mapped onto the contract's errors. Every client goes
// through here, so the mapping (and keeping tokens out of messages) is written once.

export interface SocialRequest {
  method: 'GET' | 'POST' | 'DELETE';
  url: string;
  /** A bearer token (Authorization header), never put in the URL. */
  token?: string;
  headers?: Record<string, string>;
  form?: Record<string, string | undefined>;
  json?: unknown;
  body?: FormData;
  /** A request that changes something: without an answer its outcome is unknown. */
  write?: boolean;
  /** An OAuth token endpoint: a refused grant is an InvalidGrantError. */
  tokenEndpoint?: boolean;
  /** Values that must never appear in an error message (tokens, codes, secrets sent in the request). */
  secrets?: (string | null | undefined)[];
}

export interface SocialResponse {
  status: number;
  headers: Headers;
  body: any;
}

const DEFAULT_RETRY_AFTER_MS = 60_000;

/** `Retry-After` (seconds or an HTTP date), else a reset header in epoch seconds (X's `x-rate-limit-reset`). */
export function retryAfterMs(headers: Headers, now = Date.now()): number {
  const retryAfter = headers.get('retry-after');
  if (retryAfter) {
    const seconds = Number(retryAfter);
    if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
    const at = Date.parse(retryAfter);
    if (Number.isFinite(at)) return Math.max(0, at - now);
  }
  const reset = Number(headers.get('x-rate-limit-reset') ?? headers.get('x-ratelimit-reset'));
  if (reset > 0) return Math.max(0, reset * 1000 - now);
  return DEFAULT_RETRY_AFTER_MS;
}

/** The platform's own words for an error, from whichever shape its body has. */
export function platformMessage(body: any, status: number): string {
  const e = body?.error;
  const candidates = [
    body?.error_description,
    typeof e === 'object' ? e?.message : undefined,
    typeof e === 'object' ? e?.error_user_msg : undefined,
    body?.detail,
    body?.errors?.[0]?.message,
    body?.message,
    body?.title,
    typeof e === 'string' ? e : undefined,
  ];
  const found = candidates.find((c) => typeof c === 'string' && c.trim() !== '');
  return (found as string | undefined)?.slice(0, 500) ?? `HTTP ${status}`;
}

function errorCode(body: any): string | undefined {
  const e = body?.error;
  if (typeof e === 'string') return e;
  if (e && typeof e === 'object' && e.code !== undefined) return String(e.code);
  return undefined;
}

// Tokens a platform refuses as expired or invalid, whatever the HTTP status: Graph API's OAuthException
// 190 (often a 400), TikTok's access_token_invalid, LinkedIn's and X's 401.
const TOKEN_ERRORS = new Set(['190', '102', '463', '467', 'access_token_invalid', 'invalid_token', 'expired_token']);
const CLIENT_ERRORS = new Set(['invalid_client', 'unauthorized_client', 'invalid_scope']);
// Throttling, whatever the HTTP status (Graph API sends most as 400 or 403): TikTok's
// rate_limit_exceeded; Graph's application (4), user (17), Page (32) and custom (613) limits, and
// the Business Use Case limits (80000-80014) that Page-token calls, Instagram's among them, fall under.
const RATE_LIMIT_CODES = new Set(['rate_limit_exceeded', '4', '17', '32', '613', ...Array.from({ length: 15 }, (_, i) => String(80_000 + i))]);

export class SocialHttp {
  constructor(readonly platform: SocialPlatform, private readonly timeoutMs: number) {}

  async call(req: SocialRequest): Promise<SocialResponse> {
    const headers: Record<string, string> = { accept: 'application/json', ...req.headers };
    if (req.token) headers.authorization = `Bearer ${req.token}`;
    let body: string | FormData | undefined;
    if (req.form) {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      body = new URLSearchParams(Object.entries(req.form).filter((e): e is [string, string] => e[1] !== undefined)).toString();
    } else if (req.json !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(req.json);
    } else if (req.body) {
      body = req.body;
    }
    const secrets = [req.token, ...(req.secrets ?? []), ...Object.values(req.form ?? {})].filter((s): s is string => !!s && s.length >= 8);
    const scrub = (text: string) => secrets.reduce((t, s) => t.split(s).join('[redacted]'), text);
    const what = `${req.method} ${new URL(req.url).pathname}`;

    let response: Response;
    let parsed: any;
    try {
      response = await fetch(req.url, { method: req.method, headers, body, signal: AbortSignal.timeout(this.timeoutMs), redirect: 'manual' });
      const text = await response.text();
      try {
        parsed = text ? JSON.parse(text) : {};
      } catch {
        parsed = { message: text.slice(0, 200) };
      }
    } catch (err) {
      const reason = err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError') ? `no answer within ${this.timeoutMs} ms` : 'the connection failed';
      const message = `${this.platform} ${what}: ${reason}`;
      if (req.write) throw new OutcomeUnknownError(this.platform, message);
      throw new SocialApiError(this.platform, message, null, true);
    }

    // An OAuth token endpoint may refuse with a 200 carrying `error` (TikTok).
    const failed = response.status >= 400 || (req.tokenEndpoint && typeof parsed?.error === 'string');
    if (!failed) return { status: response.status, headers: response.headers, body: parsed };

    const code = errorCode(parsed);
    const message = scrub(`${this.platform} ${what}: ${platformMessage(parsed, response.status)}`);
    const status = response.status;
    if (status === 429 || (code !== undefined && RATE_LIMIT_CODES.has(code))) {
      throw new RateLimitedError(this.platform, retryAfterMs(response.headers));
    }
    if (req.tokenEndpoint) {
      if (status >= 500) throw new SocialApiError(this.platform, message, status, true);
      if (code && CLIENT_ERRORS.has(code)) throw new SocialApiError(this.platform, message, status, false);
      throw new InvalidGrantError(this.platform, message);
    }
    if (status === 401 || (code && TOKEN_ERRORS.has(code))) throw new TokenExpiredError(this.platform, message);
    if (status >= 500) {
      if (req.write) throw new OutcomeUnknownError(this.platform, message, status);
      throw new SocialApiError(this.platform, message, status, true);
    }
    throw new SocialApiError(this.platform, message, status, false);
  }
}

/** `expires_in` seconds from now, or null. */
const expiresIn = (seconds: unknown): Date | null =>
  typeof seconds === 'number' && seconds > 0 ? new Date(Date.now() + seconds * 1000) : typeof seconds === 'string' && Number(seconds) > 0 ? new Date(Date.now() + Number(seconds) * 1000) : null;

/** Scopes as platforms return them: space- or comma-separated. */
export const scopeList = (scope: unknown): string[] => (typeof scope === 'string' ? scope.split(/[\s,]+/).filter(Boolean) : []);

/**
 * An OAuth 2.0 token response (RFC 6749 §5.1), as X, LinkedIn and TikTok send it. One without an
 * access token is refused here: stored, it would be the string "undefined".
 */
export function oauthTokens(platform: SocialPlatform, body: any): TokenSet {
  if (typeof body?.access_token !== 'string' || body.access_token === '') {
    throw new SocialApiError(platform, `${platform}: the token endpoint answered without an access_token`, null, false);
  }
  return {
    accessToken: body.access_token,
    refreshToken: typeof body.refresh_token === 'string' && body.refresh_token !== '' ? body.refresh_token : null,
    expiresAt: expiresIn(body.expires_in),
    scopes: scopeList(body.scope),
  };
}

/** Text compared with links ignored: platforms rewrite them (X's t.co) when they store a post. */
/**
 * Whether a platform's copy of a post's text is the text sent: links may come back shortened (and
 * X appends one for its media), entities HTML-escaped (X's `&amp;`), whitespace folded.
 */
export const sameText = (a: string | null | undefined, b: string): boolean => {
  const norm = (s: string) => s.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&')
    .replace(/https?:\/\/\S+/g, 'URL').replace(/\s+/g, ' ').trim().replace(/( ?URL)+$/, '').trim();
  return typeof a === 'string' && norm(a) === norm(b);
};

export const joinUrl = (root: string, path: string) => `${root.replace(/\/+$/, '')}${path}`;

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

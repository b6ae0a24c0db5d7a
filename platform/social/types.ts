import type { SocialPlatform } from '../../db/entities/enums.js';

// One interface for the five social platforms, the way platform/channels/channel.ts is one for the
// messaging channels. Each platform's client speaks its real HTTP contract below `P_API_URL` (and
// its authorisation page at `P_AUTH_URL`); tests point both at the fakes in test/support/social/.
// Tokens pass through these functions and nowhere else: callers are activities and services that
// load and decrypt them themselves, so no token enters a workflow's history, a log line or an error.

export interface TokenSet {
  accessToken: string;
  /** Absent when the platform issued none (a Facebook Page token); a rotated one replaces the old. */
  refreshToken?: string | null;
  /** Absent when the token does not expire. */
  expiresAt?: Date | null;
  /** The permissions the user granted, as the platform names them. */
  scopes?: string[];
}

export interface SocialAccount {
  /** The id posts are published as: the Page (FACEBOOK), the Instagram business account, the user. */
  accountId: string;
  accountName: string;
  accountType: string | null;
  permissions: string[];
  /**
   * The token to publish with when it is not the user's (FACEBOOK and INSTAGRAM publish with the
   * Page token); the connection stores this one.
   */
  publishToken?: TokenSet;
}

/** What is published: `text` is final (hashtags and link already placed by the caller). */
export interface PublishRequest {
  text: string;
  mediaUrls: string[];
  linkUrl: string | null;
}

export interface PublishedPost {
  platformPostId: string;
  platformUrl: string;
}

/**
 * A publish that waits on the platform's processing (a TikTok video, an Instagram container): the
 * platform names the upload before it is public, and that name is recorded, so a retry asks after
 * the upload (resume) rather than posting it again.
 */
export interface PublishProgress {
  /** The upload is taken and named (TikTok's publish_id, Instagram's creation id); resolves once recorded. */
  accepted(handle: string): Promise<void>;
  /** Waiting on processing stops by then (epoch ms): the attempt's outcome is unknown, and a retry resumes it. */
  waitUntil: number;
}

/** What resume asks after: the upload `handle` an earlier attempt of `post` was given at `since` or later. */
export interface PendingPublish {
  post: PublishRequest;
  handle: string;
  since: Date;
}

export interface PostMetrics {
  likes: number;
  comments: number;
  shares: number;
  reach: number;
}

export interface SocialPlatformClient {
  readonly platform: SocialPlatform;
  /** Whether the authorisation uses PKCE (S256). */
  readonly pkce: boolean;
  authorizationUrl(params: { state: string; redirectUri: string; codeChallenge?: string }): string;
  /** The code for tokens; FACEBOOK goes on to the long-lived token. Throws InvalidGrantError on a bad code. */
  exchangeCode(params: { code: string; redirectUri: string; codeVerifier?: string }): Promise<TokenSet>;
  account(token: TokenSet): Promise<SocialAccount>;
  /** Throws InvalidGrantError when the refresh token is refused (revoked app, expired, reused). */
  refresh(refreshToken: string): Promise<TokenSet>;
  /** False when the platform has no revocation endpoint. */
  revoke(token: TokenSet): Promise<boolean>;
  publish(accountId: string, accessToken: string, post: PublishRequest, progress?: PublishProgress): Promise<PublishedPost>;
  /**
   * Platforms with a processing stage: the outcome of an upload an earlier attempt was given. The
   * post once it is public; OutcomeUnknownError while still processing; a SocialApiError that is not
   * retryable when processing failed (nothing was published).
   */
  resume?(accountId: string, accessToken: string, pending: PendingPublish, progress: PublishProgress): Promise<PublishedPost>;
  /**
   * The post an attempt whose answer was lost may have created: one of the account's posts since
   * `since` with this text, or null. Checked before any retry, so nothing is published twice.
   */
  findPublished(accountId: string, accessToken: string, post: PublishRequest, since: Date): Promise<PublishedPost | null>;
  metrics(accountId: string, accessToken: string, platformPostId: string): Promise<PostMetrics>;
}

/** A platform's refusal or failure; `retryable` says whether the same request may succeed later. */
export class SocialApiError extends Error {
  constructor(
    readonly platform: SocialPlatform,
    message: string,
    readonly status: number | null,
    readonly retryable: boolean,
  ) {
    super(message);
    this.name = 'SocialApiError';
  }
}

/** 429: wait `retryAfterMs` (from `Retry-After`, or the platform's reset header) before the next try. */
export class RateLimitedError extends SocialApiError {
  constructor(platform: SocialPlatform, readonly retryAfterMs: number) {
    super(platform, `${platform} rate limit: retry after ${Math.ceil(retryAfterMs / 1000)} s`, 429, true);
    this.name = 'RateLimitedError';
  }
}

/** The access token was refused as expired or invalid: refresh once, then retry. */
export class TokenExpiredError extends SocialApiError {
  constructor(platform: SocialPlatform, message = `${platform} refused the access token`) {
    super(platform, message, 401, false);
    this.name = 'TokenExpiredError';
  }
}

/** The grant is gone (invalid_grant, a revoked app): the connection needs the user to reconnect. */
export class InvalidGrantError extends SocialApiError {
  constructor(platform: SocialPlatform, message: string) {
    super(platform, message, 400, false);
    this.name = 'InvalidGrantError';
  }
}

/**
 * The platform processed an upload (a TikTok video, an Instagram container) and will not publish
 * it: nothing of it is or will be public. The only answer that lets go of a recorded upload.
 */
export class UploadFailedError extends SocialApiError {
  constructor(platform: SocialPlatform, message: string) {
    super(platform, message, null, false);
    this.name = 'UploadFailedError';
  }
}

/** No answer (network error, timeout, 5xx) to a request that may have taken effect. */
export class OutcomeUnknownError extends SocialApiError {
  constructor(platform: SocialPlatform, message: string, status: number | null = null) {
    super(platform, message, status, true);
    this.name = 'OutcomeUnknownError';
  }
}

import type { Config } from '../config.js';
import { joinUrl, oauthTokens, sameText, SocialHttp } from './http.js';
import { SocialApiError, type PostMetrics, type PublishedPost, type PublishRequest, type SocialAccount, type SocialPlatformClient, type TokenSet } from './types.js';

// X (Twitter) API v2 with OAuth 2.0 Authorization Code + PKCE (S256) as a confidential client:
// token requests carry HTTP Basic client credentials; `offline.access` grants a refresh token,
// which rotates on every refresh (the old one is then dead).

const SCOPES = ['tweet.read', 'tweet.write', 'users.read', 'media.write', 'offline.access'];

export class TwitterClient implements SocialPlatformClient {
  readonly platform = 'TWITTER' as const;
  readonly pkce = true;
  private readonly http: SocialHttp;
  private readonly clientId: string;
  private readonly clientSecret: string;

  constructor(private readonly config: Config) {
    this.http = new SocialHttp('TWITTER', config.SOCIAL_TIMEOUT_MS);
    this.clientId = config.TWITTER_CLIENT_ID ?? '';
    this.clientSecret = config.TWITTER_CLIENT_SECRET ?? '';
  }

  private api(path: string) {
    return joinUrl(this.config.TWITTER_API_URL, path);
  }

  private get basic() {
    return { authorization: `Basic ${Buffer.from(`${encodeURIComponent(this.clientId)}:${encodeURIComponent(this.clientSecret)}`).toString('base64')}` };
  }

  authorizationUrl({ state, redirectUri, codeChallenge }: { state: string; redirectUri: string; codeChallenge?: string }): string {
    const url = new URL(this.config.TWITTER_AUTH_URL);
    url.searchParams.set('response_type', 'code');
    url.searchParams.set('client_id', this.clientId);
    url.searchParams.set('redirect_uri', redirectUri);
    url.searchParams.set('scope', SCOPES.join(' '));
    url.searchParams.set('state', state);
    url.searchParams.set('code_challenge', codeChallenge ?? '');
    url.searchParams.set('code_challenge_method', 'S256');
    return url.toString();
  }

  async exchangeCode({ code, redirectUri, codeVerifier }: { code: string; redirectUri: string; codeVerifier?: string }): Promise<TokenSet> {
    const answer = await this.http.call({
      method: 'POST', url: this.api('/2/oauth2/token'), tokenEndpoint: true, headers: this.basic, secrets: [this.clientSecret],
      form: { grant_type: 'authorization_code', code, redirect_uri: redirectUri, code_verifier: codeVerifier, client_id: this.clientId },
    });
    return oauthTokens('TWITTER', answer.body);
  }

  async account(token: TokenSet): Promise<SocialAccount> {
    const me = await this.http.call({ method: 'GET', url: this.api('/2/users/me'), token: token.accessToken });
    const user = me.body.data ?? {};
    return { accountId: String(user.id), accountName: user.username ? `@${user.username}` : String(user.name ?? user.id), accountType: 'USER', permissions: token.scopes ?? [] };
  }

  async refresh(refreshToken: string): Promise<TokenSet> {
    const answer = await this.http.call({
      method: 'POST', url: this.api('/2/oauth2/token'), tokenEndpoint: true, headers: this.basic, secrets: [this.clientSecret],
      form: { grant_type: 'refresh_token', refresh_token: refreshToken, client_id: this.clientId },
    });
    return oauthTokens('TWITTER', answer.body);
  }

  /** Revokes the refresh token (the grant) and the access token. */
  async revoke(token: TokenSet): Promise<boolean> {
    for (const [value, hint] of [[token.refreshToken, 'refresh_token'], [token.accessToken, 'access_token']] as const) {
      if (!value) continue;
      await this.http.call({
        method: 'POST', url: this.api('/2/oauth2/revoke'), headers: this.basic, write: true, secrets: [this.clientSecret],
        form: { token: value, token_type_hint: hint, client_id: this.clientId },
      });
    }
    return true;
  }

  /** Images are fetched from their URLs and uploaded (POST /2/media/upload), then attached. */
  async publish(_userId: string, accessToken: string, post: PublishRequest): Promise<PublishedPost> {
    const mediaIds: string[] = [];
    for (const mediaUrl of post.mediaUrls) mediaIds.push(await this.upload(accessToken, mediaUrl));
    const answer = await this.http.call({
      method: 'POST', url: this.api('/2/tweets'), token: accessToken, write: true,
      json: { text: post.text, ...(mediaIds.length ? { media: { media_ids: mediaIds } } : {}) },
    });
    const id = String(answer.body.data?.id);
    return { platformPostId: id, platformUrl: `https://x.com/i/web/status/${id}` };
  }

  private async upload(accessToken: string, mediaUrl: string): Promise<string> {
    const image = await fetch(mediaUrl, { signal: AbortSignal.timeout(this.config.SOCIAL_TIMEOUT_MS) }).catch(() => null);
    if (!image?.ok) throw new SocialApiError('TWITTER', `TWITTER: could not fetch the image ${mediaUrl}`, null, false);
    const form = new FormData();
    form.set('media_category', 'tweet_image');
    form.set('media', new Blob([await image.arrayBuffer()], { type: image.headers.get('content-type') ?? 'application/octet-stream' }));
    const answer = await this.http.call({ method: 'POST', url: this.api('/2/media/upload'), token: accessToken, body: form });
    return String(answer.body.data?.id);
  }

  async findPublished(userId: string, accessToken: string, post: PublishRequest, since: Date): Promise<PublishedPost | null> {
    const url = new URL(this.api(`/2/users/${encodeURIComponent(userId)}/tweets`));
    url.searchParams.set('start_time', since.toISOString().replace(/\.\d{3}Z$/, 'Z'));
    url.searchParams.set('max_results', '20');
    url.searchParams.set('tweet.fields', 'created_at,text');
    const answer = await this.http.call({ method: 'GET', url: url.toString(), token: accessToken });
    const found = ((answer.body.data ?? []) as any[]).find((t) => sameText(t.text, post.text));
    return found ? { platformPostId: String(found.id), platformUrl: `https://x.com/i/web/status/${found.id}` } : null;
  }

  async metrics(_userId: string, accessToken: string, tweetId: string): Promise<PostMetrics> {
    const answer = await this.http.call({ method: 'GET', url: this.api(`/2/tweets/${encodeURIComponent(tweetId)}?tweet.fields=public_metrics`), token: accessToken });
    const m = answer.body.data?.public_metrics ?? {};
    return {
      likes: Number(m.like_count ?? 0),
      comments: Number(m.reply_count ?? 0),
      shares: Number(m.retweet_count ?? 0) + Number(m.quote_count ?? 0),
      reach: Number(m.impression_count ?? 0),
    };
  }
}

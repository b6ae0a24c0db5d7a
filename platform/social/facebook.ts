import type { Config } from '../config.js';
import { joinUrl, oauthTokens, sameText, SocialHttp, sleep } from './http.js';
import {
  OutcomeUnknownError, SocialApiError, TokenExpiredError, UploadFailedError, type PendingPublish, type PostMetrics, type PublishedPost, type PublishProgress,
  type PublishRequest, type SocialAccount, type SocialPlatformClient, type TokenSet,
} from './types.js';

// Facebook Pages and Instagram business accounts, both through the Facebook login and the Graph API.
// The code becomes a short-lived user token, exchanged at once for the long-lived one (about 60
// days); the connection stores the first Page's token, which does not expire while the user's grant
// stands (Graph API: "Long-lived Page access token"). Instagram publishes with that same Page token
// as the Page's instagram_business_account. Neither platform issues refresh tokens.

const VERSION = 'v21.0';
const FACEBOOK_SCOPES = ['pages_show_list', 'pages_read_engagement', 'pages_manage_posts', 'read_insights'];
const INSTAGRAM_SCOPES = ['pages_show_list', 'pages_read_engagement', 'instagram_basic', 'instagram_content_publish', 'instagram_manage_insights'];
const CONTAINER_POLL_MS = 2_000;
const DEFAULT_WAIT_MS = 60_000;

interface GraphPage {
  id: string;
  name: string;
  category?: string;
  access_token: string;
  instagram_business_account?: { id: string; username?: string; name?: string };
}

abstract class GraphClient implements SocialPlatformClient {
  abstract readonly platform: 'FACEBOOK' | 'INSTAGRAM';
  readonly pkce = false;
  protected abstract readonly scopes: string[];
  protected readonly http: SocialHttp;

  constructor(protected readonly clientId: string, protected readonly clientSecret: string, protected readonly authUrl: string, protected readonly apiUrl: string, timeoutMs: number, platform: 'FACEBOOK' | 'INSTAGRAM') {
    this.http = new SocialHttp(platform, timeoutMs);
  }

  protected graph(path: string, query: Record<string, string> = {}): string {
    const url = new URL(joinUrl(this.apiUrl, `/${VERSION}${path}`));
    for (const [k, v] of Object.entries(query)) url.searchParams.set(k, v);
    return url.toString();
  }

  authorizationUrl({ state, redirectUri }: { state: string; redirectUri: string }): string {
    const url = new URL(this.authUrl);
    url.searchParams.set('client_id', this.clientId);
    url.searchParams.set('redirect_uri', redirectUri);
    url.searchParams.set('state', state);
    url.searchParams.set('response_type', 'code');
    url.searchParams.set('scope', this.scopes.join(','));
    return url.toString();
  }

  async exchangeCode({ code, redirectUri }: { code: string; redirectUri: string }): Promise<TokenSet> {
    const short = await this.http.call({
      method: 'GET', tokenEndpoint: true, secrets: [code, this.clientSecret],
      url: this.graph('/oauth/access_token', { client_id: this.clientId, client_secret: this.clientSecret, redirect_uri: redirectUri, code }),
    });
    const long = await this.http.call({
      method: 'GET', tokenEndpoint: true, secrets: [short.body.access_token, this.clientSecret],
      url: this.graph('/oauth/access_token', {
        grant_type: 'fb_exchange_token', client_id: this.clientId, client_secret: this.clientSecret, fb_exchange_token: String(short.body.access_token),
      }),
    });
    return oauthTokens(this.platform, long.body);
  }

  protected async grantedAndPages(token: TokenSet): Promise<{ permissions: string[]; pages: GraphPage[] }> {
    const permissions = await this.http.call({ method: 'GET', url: this.graph('/me/permissions'), token: token.accessToken });
    const pages = await this.http.call({
      method: 'GET', token: token.accessToken,
      url: this.graph('/me/accounts', { fields: 'id,name,category,access_token,instagram_business_account{id,username,name}' }),
    });
    return {
      permissions: ((permissions.body.data ?? []) as { permission: string; status: string }[]).filter((p) => p.status === 'granted').map((p) => p.permission),
      pages: (pages.body.data ?? []) as GraphPage[],
    };
  }

  abstract account(token: TokenSet): Promise<SocialAccount>;

  async refresh(): Promise<TokenSet> {
    throw new SocialApiError(this.platform, `${this.platform} issues no refresh tokens: reconnect the account`, null, false);
  }

  /** Removes the app's grant (DELETE /me/permissions) with the stored token. */
  async revoke(token: TokenSet): Promise<boolean> {
    await this.http.call({ method: 'DELETE', url: this.graph('/me/permissions'), token: token.accessToken, write: true });
    return true;
  }

  abstract publish(accountId: string, accessToken: string, post: PublishRequest, progress?: PublishProgress): Promise<PublishedPost>;
  abstract findPublished(accountId: string, accessToken: string, post: PublishRequest, since: Date): Promise<PublishedPost | null>;
  abstract metrics(accountId: string, accessToken: string, platformPostId: string): Promise<PostMetrics>;

  protected insight(body: any, name: string): number {
    const metric = ((body?.data ?? []) as any[]).find((m) => m.name === name);
    return Number(metric?.values?.[0]?.value ?? metric?.total_value?.value ?? 0) || 0;
  }
}

export class FacebookClient extends GraphClient {
  readonly platform = 'FACEBOOK' as const;
  protected readonly scopes = FACEBOOK_SCOPES;

  constructor(config: Config) {
    super(config.FACEBOOK_CLIENT_ID ?? '', config.FACEBOOK_CLIENT_SECRET ?? '', config.FACEBOOK_AUTH_URL, config.FACEBOOK_API_URL, config.SOCIAL_TIMEOUT_MS, 'FACEBOOK');
  }

  /** The user's first Page (GET /me/accounts order), published to with its Page token. */
  async account(token: TokenSet): Promise<SocialAccount> {
    const { permissions, pages } = await this.grantedAndPages(token);
    const page = pages[0];
    if (!page) throw new SocialApiError('FACEBOOK', 'FACEBOOK: the account manages no Facebook Page to publish to', null, false);
    return {
      accountId: page.id, accountName: page.name, accountType: 'PAGE', permissions,
      publishToken: { accessToken: page.access_token, refreshToken: null, expiresAt: null, scopes: permissions },
    };
  }

  async publish(pageId: string, accessToken: string, post: PublishRequest): Promise<PublishedPost> {
    const image = post.mediaUrls[0];
    const answer = image
      ? await this.http.call({ method: 'POST', write: true, token: accessToken, url: this.graph(`/${pageId}/photos`), form: { url: image, caption: post.text } })
      : await this.http.call({ method: 'POST', write: true, token: accessToken, url: this.graph(`/${pageId}/feed`), form: { message: post.text, link: post.linkUrl ?? undefined } });
    const id = String(answer.body.post_id ?? answer.body.id);
    return { platformPostId: id, platformUrl: `https://www.facebook.com/${id}` };
  }

  async findPublished(pageId: string, accessToken: string, post: PublishRequest, since: Date): Promise<PublishedPost | null> {
    const answer = await this.http.call({
      method: 'GET', token: accessToken,
      url: this.graph(`/${pageId}/feed`, { fields: 'id,message,created_time,permalink_url', since: String(Math.floor(since.getTime() / 1000)), limit: '25' }),
    });
    const found = ((answer.body.data ?? []) as any[]).find((p) => sameText(p.message, post.text));
    return found ? { platformPostId: String(found.id), platformUrl: found.permalink_url ?? `https://www.facebook.com/${found.id}` } : null;
  }

  async metrics(_pageId: string, accessToken: string, postId: string): Promise<PostMetrics> {
    const counts = await this.http.call({
      method: 'GET', token: accessToken,
      url: this.graph(`/${postId}`, { fields: 'reactions.summary(total_count).limit(0),comments.summary(total_count).limit(0),shares' }),
    });
    const insights = await this.http.call({ method: 'GET', token: accessToken, url: this.graph(`/${postId}/insights`, { metric: 'post_impressions_unique' }) });
    return {
      likes: Number(counts.body.reactions?.summary?.total_count ?? 0),
      comments: Number(counts.body.comments?.summary?.total_count ?? 0),
      shares: Number(counts.body.shares?.count ?? 0),
      reach: this.insight(insights.body, 'post_impressions_unique'),
    };
  }
}

const VIDEO = /\.(mp4|mov|m4v)(\?|$)/i;

export class InstagramClient extends GraphClient {
  readonly platform = 'INSTAGRAM' as const;
  protected readonly scopes = INSTAGRAM_SCOPES;

  constructor(config: Config) {
    super(config.INSTAGRAM_CLIENT_ID ?? '', config.INSTAGRAM_CLIENT_SECRET ?? '', config.INSTAGRAM_AUTH_URL, config.INSTAGRAM_API_URL, config.SOCIAL_TIMEOUT_MS, 'INSTAGRAM');
  }

  /** The business account of the user's first Page that has one; published to with that Page's token. */
  async account(token: TokenSet): Promise<SocialAccount> {
    const { permissions, pages } = await this.grantedAndPages(token);
    const page = pages.find((p) => p.instagram_business_account?.id);
    if (!page) throw new SocialApiError('INSTAGRAM', 'INSTAGRAM: no Facebook Page of the account has an Instagram business account', null, false);
    const ig = page.instagram_business_account!;
    return {
      accountId: ig.id, accountName: ig.username ?? ig.name ?? ig.id, accountType: 'BUSINESS', permissions,
      publishToken: { accessToken: page.access_token, refreshToken: null, expiresAt: null, scopes: permissions },
    };
  }

  async publish(igId: string, accessToken: string, post: PublishRequest, progress?: PublishProgress): Promise<PublishedPost> {
    const media = post.mediaUrls[0];
    if (!media) throw new SocialApiError('INSTAGRAM', 'INSTAGRAM: a post needs an image or a video', null, false);
    const container = await this.http.call({
      method: 'POST', write: true, token: accessToken, url: this.graph(`/${igId}/media`),
      form: VIDEO.test(media) ? { media_type: 'REELS', video_url: media, caption: post.text } : { image_url: media, caption: post.text },
    });
    const creationId = String(container.body.id);
    // Not recorded: nothing is published yet, and the next attempt makes a container of its own.
    await progress?.accepted(creationId);
    await this.untilFinished(creationId, accessToken, progress?.waitUntil);
    return this.publishContainer(igId, accessToken, { post, handle: creationId, since: new Date() });
  }

  /** The container an earlier attempt made: published once processed, or found if it was. */
  async resume(igId: string, accessToken: string, pending: PendingPublish, progress: PublishProgress): Promise<PublishedPost> {
    if (await this.untilFinished(pending.handle, accessToken, progress.waitUntil) === 'FINISHED') return this.publishContainer(igId, accessToken, pending);
    return this.publishedFrom(igId, accessToken, pending);
  }

  private async publishContainer(igId: string, accessToken: string, pending: PendingPublish): Promise<PublishedPost> {
    let published;
    try {
      published = await this.http.call({ method: 'POST', write: true, token: accessToken, url: this.graph(`/${igId}/media_publish`), form: { creation_id: pending.handle } });
    } catch (err) {
      if (!(err instanceof SocialApiError) || err.retryable || err instanceof TokenExpiredError) throw err;
      // Refused: an earlier media_publish whose answer was lost may have published it after all.
      const status = await this.http.call({ method: 'GET', token: accessToken, url: this.graph(`/${pending.handle}`, { fields: 'status_code' }) });
      if (status.body.status_code === 'PUBLISHED') return this.publishedFrom(igId, accessToken, pending);
      throw new UploadFailedError('INSTAGRAM', err.message);
    }
    const id = String(published.body.id);
    const permalink = await this.http.call({ method: 'GET', token: accessToken, url: this.graph(`/${id}`, { fields: 'permalink' }) }).catch(() => null);
    return { platformPostId: id, platformUrl: permalink?.body.permalink ?? `https://www.instagram.com/` };
  }

  /** The media a PUBLISHED container became (the container does not name it: found by caption). */
  private async publishedFrom(igId: string, accessToken: string, { post, since }: PendingPublish): Promise<PublishedPost> {
    const found = await this.findPublished(igId, accessToken, post, since);
    if (!found) throw new OutcomeUnknownError('INSTAGRAM', 'INSTAGRAM: the post was published but is not listed yet');
    return found;
  }

  /** A video is fetched and processed before it can be published (an image is FINISHED at once). */
  private async untilFinished(creationId: string, accessToken: string, waitUntil = Date.now() + DEFAULT_WAIT_MS): Promise<'FINISHED' | 'PUBLISHED'> {
    for (;;) {
      const status = await this.http.call({ method: 'GET', token: accessToken, url: this.graph(`/${creationId}`, { fields: 'status_code' }) });
      const code = status.body.status_code;
      if (code === 'FINISHED' || code === 'PUBLISHED') return code;
      if (code === 'ERROR' || code === 'EXPIRED') {
        throw new UploadFailedError('INSTAGRAM', `INSTAGRAM: the media could not be processed (${code})`);
      }
      const left = waitUntil - Date.now();
      if (left <= 0) throw new OutcomeUnknownError('INSTAGRAM', 'INSTAGRAM: the video was still processing');
      await sleep(Math.min(CONTAINER_POLL_MS, left));
    }
  }

  async findPublished(igId: string, accessToken: string, post: PublishRequest, since: Date): Promise<PublishedPost | null> {
    const answer = await this.http.call({ method: 'GET', token: accessToken, url: this.graph(`/${igId}/media`, { fields: 'id,caption,timestamp,permalink', limit: '25' }) });
    const found = ((answer.body.data ?? []) as any[]).find((m) => sameText(m.caption, post.text) && Date.parse(m.timestamp) >= since.getTime() - 1000);
    return found ? { platformPostId: String(found.id), platformUrl: found.permalink ?? 'https://www.instagram.com/' } : null;
  }

  async metrics(_igId: string, accessToken: string, mediaId: string): Promise<PostMetrics> {
    const counts = await this.http.call({ method: 'GET', token: accessToken, url: this.graph(`/${mediaId}`, { fields: 'like_count,comments_count' }) });
    const insights = await this.http.call({ method: 'GET', token: accessToken, url: this.graph(`/${mediaId}/insights`, { metric: 'reach,shares' }) });
    return {
      likes: Number(counts.body.like_count ?? 0),
      comments: Number(counts.body.comments_count ?? 0),
      shares: this.insight(insights.body, 'shares'),
      reach: this.insight(insights.body, 'reach'),
    };
  }
}

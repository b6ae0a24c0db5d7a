import type { Config } from '../config.js';
import { joinUrl, oauthTokens, sameText, SocialHttp, sleep } from './http.js';
import {
  OutcomeUnknownError, SocialApiError, TokenExpiredError, type PostMetrics, type PublishedPost, type PublishRequest, type SocialAccount, type SocialPlatformClient,
  type TokenSet,
} from './types.js';

// TikTok Login Kit (OAuth 2.0 with PKCE S256, `client_key`) and the Content Posting API: a video is
// posted by URL (PULL_FROM_URL) and TikTok reports when it is public. Refresh tokens rotate.

const SCOPES = ['user.info.basic', 'video.publish', 'video.list'];
const STATUS_POLLS = 30;
const STATUS_POLL_MS = 2_000;

export class TikTokClient implements SocialPlatformClient {
  readonly platform = 'TIKTOK' as const;
  readonly pkce = true;
  private readonly http: SocialHttp;
  private readonly clientKey: string;
  private readonly clientSecret: string;

  constructor(private readonly config: Config) {
    this.http = new SocialHttp('TIKTOK', config.SOCIAL_TIMEOUT_MS);
    this.clientKey = config.TIKTOK_CLIENT_ID ?? '';
    this.clientSecret = config.TIKTOK_CLIENT_SECRET ?? '';
  }

  private api(path: string) {
    return joinUrl(this.config.TIKTOK_API_URL, path);
  }

  authorizationUrl({ state, redirectUri, codeChallenge }: { state: string; redirectUri: string; codeChallenge?: string }): string {
    const url = new URL(this.config.TIKTOK_AUTH_URL);
    url.searchParams.set('client_key', this.clientKey);
    url.searchParams.set('response_type', 'code');
    url.searchParams.set('scope', SCOPES.join(','));
    url.searchParams.set('redirect_uri', redirectUri);
    url.searchParams.set('state', state);
    url.searchParams.set('code_challenge', codeChallenge ?? '');
    url.searchParams.set('code_challenge_method', 'S256');
    return url.toString();
  }

  async exchangeCode({ code, redirectUri, codeVerifier }: { code: string; redirectUri: string; codeVerifier?: string }): Promise<TokenSet> {
    const answer = await this.http.call({
      method: 'POST', url: this.api('/v2/oauth/token/'), tokenEndpoint: true,
      form: { client_key: this.clientKey, client_secret: this.clientSecret, code, grant_type: 'authorization_code', redirect_uri: redirectUri, code_verifier: codeVerifier },
    });
    return oauthTokens('TIKTOK', answer.body);
  }

  async account(token: TokenSet): Promise<SocialAccount> {
    const me = await this.http.call({ method: 'GET', url: this.api('/v2/user/info/?fields=open_id,display_name,username'), token: token.accessToken });
    const user = me.body.data?.user ?? {};
    return {
      accountId: String(user.open_id), accountName: String(user.display_name ?? user.username ?? user.open_id), accountType: 'CREATOR',
      permissions: token.scopes ?? [],
    };
  }

  async refresh(refreshToken: string): Promise<TokenSet> {
    const answer = await this.http.call({
      method: 'POST', url: this.api('/v2/oauth/token/'), tokenEndpoint: true,
      form: { client_key: this.clientKey, client_secret: this.clientSecret, grant_type: 'refresh_token', refresh_token: refreshToken },
    });
    return oauthTokens('TIKTOK', answer.body);
  }

  async revoke(token: TokenSet): Promise<boolean> {
    await this.http.call({
      method: 'POST', url: this.api('/v2/oauth/revoke/'), write: true,
      form: { client_key: this.clientKey, client_secret: this.clientSecret, token: token.accessToken },
    });
    return true;
  }

  /** The first media URL is the video; the text is its title. */
  async publish(_openId: string, accessToken: string, post: PublishRequest): Promise<PublishedPost> {
    const video = post.mediaUrls[0];
    if (!video) throw new SocialApiError('TIKTOK', 'TIKTOK: a post needs a video', null, false);
    const init = await this.http.call({
      method: 'POST', url: this.api('/v2/post/publish/video/init/'), token: accessToken, write: true,
      json: {
        post_info: { title: post.text, privacy_level: 'PUBLIC_TO_EVERYONE', disable_comment: false, disable_duet: false, disable_stitch: false },
        source_info: { source: 'PULL_FROM_URL', video_url: video },
      },
    });
    const publishId = String(init.body.data?.publish_id);
    try {
      return await this.untilPublished(accessToken, publishId);
    } catch (err) {
      // The video was accepted: whatever goes wrong while waiting for it, it may yet appear, so
      // the caller checks findPublished before any retry.
      if (err instanceof SocialApiError && !err.retryable && !(err instanceof TokenExpiredError)) throw err;
      throw new OutcomeUnknownError('TIKTOK', err instanceof Error ? err.message : 'TIKTOK: the post status is unknown');
    }
  }

  private async untilPublished(accessToken: string, publishId: string): Promise<PublishedPost> {
    for (let i = 0; i < STATUS_POLLS; i++) {
      const status = await this.http.call({ method: 'POST', url: this.api('/v2/post/publish/status/fetch/'), token: accessToken, json: { publish_id: publishId } });
      const data = status.body.data ?? {};
      if (data.status === 'PUBLISH_COMPLETE') {
        const id = String(data.publicaly_available_post_id?.[0] ?? data.publicly_available_post_id?.[0] ?? publishId);
        return { platformPostId: id, platformUrl: await this.shareUrl(accessToken, id) };
      }
      if (data.status === 'FAILED') throw new SocialApiError('TIKTOK', `TIKTOK: the video was not posted (${data.fail_reason ?? 'failed'})`, null, false);
      await sleep(STATUS_POLL_MS);
    }
    throw new OutcomeUnknownError('TIKTOK', 'TIKTOK: the video was still processing');
  }

  private async videos(accessToken: string, fields: string, body: unknown): Promise<any[]> {
    const answer = await this.http.call({ method: 'POST', url: this.api(`/v2/video/${fields}`), token: accessToken, json: body });
    return answer.body.data?.videos ?? [];
  }

  private async shareUrl(accessToken: string, id: string): Promise<string> {
    const [video] = await this.videos(accessToken, 'query/?fields=id,share_url', { filters: { video_ids: [id] } }).catch(() => []);
    return video?.share_url ?? `https://www.tiktok.com/video/${id}`;
  }

  async findPublished(_openId: string, accessToken: string, post: PublishRequest, since: Date): Promise<PublishedPost | null> {
    const videos = await this.videos(accessToken, 'list/?fields=id,title,video_description,create_time,share_url', { max_count: 20 });
    const found = videos.find((v) => (sameText(v.title, post.text) || sameText(v.video_description, post.text)) && Number(v.create_time ?? 0) * 1000 >= since.getTime() - 1000);
    return found ? { platformPostId: String(found.id), platformUrl: found.share_url ?? `https://www.tiktok.com/video/${found.id}` } : null;
  }

  async metrics(_openId: string, accessToken: string, videoId: string): Promise<PostMetrics> {
    const [video] = await this.videos(accessToken, 'query/?fields=id,like_count,comment_count,share_count,view_count', { filters: { video_ids: [videoId] } });
    return {
      likes: Number(video?.like_count ?? 0),
      comments: Number(video?.comment_count ?? 0),
      shares: Number(video?.share_count ?? 0),
      reach: Number(video?.view_count ?? 0),
    };
  }
}

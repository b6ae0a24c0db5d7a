import type { Config } from '../config.js';
import { joinUrl, oauthTokens, sameText, SocialHttp, sleep } from './http.js';
import {
  OutcomeUnknownError, SocialApiError, type PendingPublish, type PostMetrics, type PublishedPost, type PublishProgress, type PublishRequest, type SocialAccount,
  TokenExpiredError, UploadFailedError, type SocialPlatformClient, type TokenSet,
} from './types.js';

// TikTok Login Kit (OAuth 2.0 with PKCE S256, `client_key`) and the Content Posting API: a video is
// posted by URL (PULL_FROM_URL) and TikTok reports when it is public. Refresh tokens rotate.

const SCOPES = ['user.info.basic', 'video.publish', 'video.list'];
const STATUS_POLL_MS = 2_000;
const DEFAULT_WAIT_MS = 60_000;

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
  async publish(openId: string, accessToken: string, post: PublishRequest, progress?: PublishProgress): Promise<PublishedPost> {
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
    // The video was accepted: whatever goes wrong from here on, it may yet appear, so its
    // publish_id is what a retry asks after.
    try {
      await progress?.accepted(publishId);
    } catch (err) {
      throw new OutcomeUnknownError('TIKTOK', `TIKTOK: the video was accepted but not recorded (${err instanceof Error ? err.message : 'error'})`);
    }
    try {
      return await this.resume(openId, accessToken, { post, handle: publishId, since: new Date() }, progress);
    } catch (err) {
      // Refreshing the token and calling publish again would post the video twice.
      if (err instanceof TokenExpiredError) throw new OutcomeUnknownError('TIKTOK', err.message);
      throw err;
    }
  }

  /** Polls the upload's status until it is public, failed, or `waitUntil` comes. */
  async resume(_openId: string, accessToken: string, { handle: publishId }: PendingPublish, progress?: PublishProgress): Promise<PublishedPost> {
    const waitUntil = progress?.waitUntil ?? Date.now() + DEFAULT_WAIT_MS;
    try {
      for (;;) {
        const status = await this.http.call({ method: 'POST', url: this.api('/v2/post/publish/status/fetch/'), token: accessToken, json: { publish_id: publishId } });
        const data = status.body.data ?? {};
        if (data.status === 'PUBLISH_COMPLETE') {
          const id = String(data.publicaly_available_post_id?.[0] ?? data.publicly_available_post_id?.[0] ?? publishId);
          return { platformPostId: id, platformUrl: await this.shareUrl(accessToken, id) };
        }
        if (data.status === 'FAILED') throw new UploadFailedError('TIKTOK', `TIKTOK: the video was not posted (${data.fail_reason ?? 'failed'})`);
        const left = waitUntil - Date.now();
        if (left <= 0) throw new OutcomeUnknownError('TIKTOK', 'TIKTOK: the video was still processing');
        await sleep(Math.min(STATUS_POLL_MS, left));
      }
    } catch (err) {
      // A refusal of the token is the caller's to refresh; any other failure to hear back leaves
      // the upload as it is, for the next attempt to ask after.
      if (err instanceof SocialApiError && !err.retryable) throw err;
      throw err instanceof OutcomeUnknownError ? err : new OutcomeUnknownError('TIKTOK', err instanceof Error ? err.message : 'TIKTOK: the post status is unknown');
    }
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

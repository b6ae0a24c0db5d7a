import type { Config } from '../config.js';
import { joinUrl, oauthTokens, sameText, SocialHttp } from './http.js';
import type { PostMetrics, PublishedPost, PublishRequest, SocialAccount, SocialPlatformClient, TokenSet } from './types.js';

// LinkedIn: OAuth 2.0 (3-legged) with Sign In with OpenID Connect for the member, the versioned
// Posts API for publishing. The token and revocation endpoints sit next to the authorisation page
// (www.linkedin.com/oauth/v2/accessToken and /revoke), so they are resolved against LINKEDIN_AUTH_URL.

const SCOPES = ['openid', 'profile', 'w_member_social'];
const REST_HEADERS = { 'LinkedIn-Version': '202411', 'X-Restli-Protocol-Version': '2.0.0' };

/** Post text in LinkedIn's "little text" format: each of its reserved characters escaped. */
export const littleText = (text: string) => text.replace(/[\\|{}@[\]()<>#*_~]/g, (c) => `\\${c}`);
/** Posts are published as a member (`urn:li:person:<sub>`) unless the account id is already a URN (an organisation). */
const authorUrn = (accountId: string) => (accountId.startsWith('urn:li:') ? accountId : `urn:li:person:${accountId}`);
const postUrl = (urn: string) => `https://www.linkedin.com/feed/update/${urn}`;

export class LinkedInClient implements SocialPlatformClient {
  readonly platform = 'LINKEDIN' as const;
  readonly pkce = false;
  private readonly http: SocialHttp;
  private readonly clientId: string;
  private readonly clientSecret: string;

  constructor(private readonly config: Config) {
    this.http = new SocialHttp('LINKEDIN', config.SOCIAL_TIMEOUT_MS);
    this.clientId = config.LINKEDIN_CLIENT_ID ?? '';
    this.clientSecret = config.LINKEDIN_CLIENT_SECRET ?? '';
  }

  private oauth(endpoint: 'accessToken' | 'revoke') {
    return new URL(endpoint, this.config.LINKEDIN_AUTH_URL).toString();
  }

  private api(path: string) {
    return joinUrl(this.config.LINKEDIN_API_URL, path);
  }

  authorizationUrl({ state, redirectUri }: { state: string; redirectUri: string }): string {
    const url = new URL(this.config.LINKEDIN_AUTH_URL);
    url.searchParams.set('response_type', 'code');
    url.searchParams.set('client_id', this.clientId);
    url.searchParams.set('redirect_uri', redirectUri);
    url.searchParams.set('state', state);
    url.searchParams.set('scope', SCOPES.join(' '));
    return url.toString();
  }

  async exchangeCode({ code, redirectUri }: { code: string; redirectUri: string }): Promise<TokenSet> {
    const answer = await this.http.call({
      method: 'POST', url: this.oauth('accessToken'), tokenEndpoint: true,
      form: { grant_type: 'authorization_code', code, redirect_uri: redirectUri, client_id: this.clientId, client_secret: this.clientSecret },
    });
    return oauthTokens('LINKEDIN', answer.body);
  }

  async account(token: TokenSet): Promise<SocialAccount> {
    const me = await this.http.call({ method: 'GET', url: this.api('/v2/userinfo'), token: token.accessToken });
    return { accountId: String(me.body.sub), accountName: String(me.body.name ?? me.body.sub), accountType: 'PERSON', permissions: token.scopes ?? [] };
  }

  async refresh(refreshToken: string): Promise<TokenSet> {
    const answer = await this.http.call({
      method: 'POST', url: this.oauth('accessToken'), tokenEndpoint: true,
      form: { grant_type: 'refresh_token', refresh_token: refreshToken, client_id: this.clientId, client_secret: this.clientSecret },
    });
    return oauthTokens('LINKEDIN', answer.body);
  }

  async revoke(token: TokenSet): Promise<boolean> {
    await this.http.call({
      method: 'POST', url: this.oauth('revoke'), write: true,
      form: { token: token.accessToken, client_id: this.clientId, client_secret: this.clientSecret },
    });
    return true;
  }

  async publish(accountId: string, accessToken: string, post: PublishRequest): Promise<PublishedPost> {
    // Text goes as "little text": its reserved characters escaped, or LinkedIn cuts the post at the first.
    const answer = await this.http.call({
      method: 'POST', url: this.api('/rest/posts'), token: accessToken, write: true, headers: REST_HEADERS,
      json: {
        author: authorUrn(accountId),
        commentary: littleText(post.text),
        visibility: 'PUBLIC',
        distribution: { feedDistribution: 'MAIN_FEED', targetEntities: [], thirdPartyDistributionChannels: [] },
        lifecycleState: 'PUBLISHED',
        isReshareDisabledByAuthor: false,
        ...(post.linkUrl ? { content: { article: { source: post.linkUrl, title: post.linkUrl } } } : {}),
      },
    });
    const urn = answer.headers.get('x-restli-id') ?? String(answer.body.id);
    return { platformPostId: urn, platformUrl: postUrl(urn) };
  }

  async findPublished(accountId: string, accessToken: string, post: PublishRequest, since: Date): Promise<PublishedPost | null> {
    const url = new URL(this.api('/rest/posts'));
    url.searchParams.set('q', 'author');
    url.searchParams.set('author', authorUrn(accountId));
    url.searchParams.set('count', '20');
    url.searchParams.set('sortBy', 'CREATED');
    const answer = await this.http.call({ method: 'GET', url: url.toString(), token: accessToken, headers: REST_HEADERS });
    const found = ((answer.body.elements ?? []) as any[]).find((p) => sameText(p.commentary, littleText(post.text)) && Number(p.createdAt ?? 0) >= since.getTime() - 1000);
    return found ? { platformPostId: String(found.id), platformUrl: postUrl(String(found.id)) } : null;
  }

  /** Likes and comments from socialActions; shares and reach only exist for organisation posts. */
  async metrics(accountId: string, accessToken: string, urn: string): Promise<PostMetrics> {
    const actions = await this.http.call({ method: 'GET', url: this.api(`/rest/socialActions/${encodeURIComponent(urn)}`), token: accessToken, headers: REST_HEADERS });
    const metrics = {
      likes: Number(actions.body.likesSummary?.totalLikes ?? 0),
      comments: Number(actions.body.commentsSummary?.aggregatedTotalComments ?? 0),
      shares: 0,
      reach: 0,
    };
    if (authorUrn(accountId).startsWith('urn:li:organization:')) {
      const kind = urn.startsWith('urn:li:ugcPost:') ? 'ugcPosts' : 'shares';
      const stats = await this.http.call({
        method: 'GET', token: accessToken, headers: REST_HEADERS,
        url: this.api(`/rest/organizationalEntityShareStatistics?q=organizationalEntity&organizationalEntity=${encodeURIComponent(accountId)}&${kind}=List(${encodeURIComponent(urn)})`),
      });
      const total = stats.body.elements?.[0]?.totalShareStatistics ?? {};
      metrics.shares = Number(total.shareCount ?? 0);
      metrics.reach = Number(total.uniqueImpressionsCount ?? 0);
    }
    return metrics;
  }
}

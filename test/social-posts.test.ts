import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { openOrm } from '../db/orm.js';
import { createClubPosts } from '../domain/social/club-posts.js';
import { newTenant, token } from './support/api.js';
import { startTestStack, type TestStack } from './support/stack.js';
import { until } from './support/until.js';

// Social posts through the API (REST and GraphQL) against PostgreSQL and a real worker: what is
// refused before anything is sent, the state machine, listing, and SOCIAL as a campaign channel's
// checks. Publishing against the fake platforms: test/social-publishing.test.ts.

let stack: TestStack;
let db: pg.Client;

beforeAll(async () => {
  stack = await startTestStack({ RATE_LIMIT_SOCIAL: '1000', RATE_LIMIT_WRITE: '1000' });
  db = new pg.Client({ connectionString: inject('databaseUrl') });
  await db.connect();
});
afterAll(async () => {
  await stack?.close();
  await db?.end();
});

const call = (method: string, path: string, auth: string, body?: unknown) => stack.api.call(method, `/api/v1${path}`, { auth, body });
const IMAGE = 'https://cdn.example.com/flag.jpg';

/** A connection row as the connections work stores it (no token needed before publishing). */
async function connection(tenant: string, platform: string, set: { clubId?: string; isActive?: boolean } = {}): Promise<string> {
  const { rows } = await db.query<{ id: string }>(
    `insert into social_connections (tenant_id, club_id, platform, account_id, account_name, is_active) values ($1, $2, $3, $4, $5, $6) returning id`,
    [tenant, set.clubId ?? 'club-1', platform, `acct-${randomUUID().slice(0, 8)}`, `${platform} account`, set.isActive ?? true],
  );
  return rows[0]!.id;
}

async function tenantWith() {
  const tenant = newTenant();
  return { tenant, auth: await token(tenant) };
}

describe('createSocialPost and updateSocialPost', () => {
  it('creates a DRAFT with normalised hashtags; GET answers it', async () => {
    const { tenant, auth } = await tenantWith();
    const connectionId = await connection(tenant, 'FACEBOOK');
    const res = await call('POST', '/social/posts', auth, { connectionId, content: 'Spring Open on Saturday', hashtags: ['#Golf', 'golf', ' SpringOpen '], linkUrl: 'https://club.example.com/open' });
    expect(res.status).toBe(201);
    expect(res.body.data).toMatchObject({ connectionId, platform: 'FACEBOOK', status: 'DRAFT', hashtags: ['Golf', 'SpringOpen'], campaignId: null, likes: 0, error: null });
    const got = await call('GET', `/social/posts/${res.body.data.id}`, auth);
    expect(got.body.data).toEqual(res.body.data);
  });

  it('refuses what the connection\'s platform would refuse, naming the rule and the field', async () => {
    const { tenant, auth } = await tenantWith();
    const x = await connection(tenant, 'TWITTER');
    const insta = await connection(tenant, 'INSTAGRAM');
    const tiktok = await connection(tenant, 'TIKTOK');
    const tooLong = await call('POST', '/social/posts', auth, { connectionId: x, content: `${'a'.repeat(278)} https://example.com/${'b'.repeat(100)}` });
    expect(tooLong.status).toBe(400);
    expect(tooLong.body.error).toMatchObject({ code: 'VALIDATION_ERROR', field: 'input.content', message: 'input.content: X allows 280 characters as X counts them (a URL counts 23); this post has 302' });
    const noMedia = await call('POST', '/social/posts', auth, { connectionId: insta, content: 'No picture' });
    expect(noMedia.body.error).toMatchObject({ code: 'VALIDATION_ERROR', field: 'input.mediaUrls' });
    const noVideo = await call('POST', '/social/posts', auth, { connectionId: tiktok, content: 'A picture', mediaUrls: [IMAGE] });
    expect(noVideo.body.error.message).toMatch(/^input\.mediaUrls: TikTok needs a video/);
    const badTag = await call('POST', '/social/posts', auth, { connectionId: x, content: 'Hi', hashtags: ['ok', 'not ok'] });
    expect(badTag.body.error).toMatchObject({ code: 'VALIDATION_ERROR', field: 'input.hashtags[1]' });
    const badUrl = await call('POST', '/social/posts', auth, { connectionId: x, content: 'Hi', mediaUrls: ['ftp://example.com/a.jpg'] });
    expect(badUrl.body.error).toMatchObject({ code: 'VALIDATION_ERROR', field: 'mediaUrls.0' });
    // The body's shape is checked by the route (fields named as in the body), the platform's rules by the service.
    const tooMany = await call('POST', '/social/posts', auth, { connectionId: insta, content: 'Hi', mediaUrls: Array(11).fill(IMAGE) });
    expect(tooMany.body.error).toMatchObject({ code: 'VALIDATION_ERROR', field: 'mediaUrls' });
    const empty = await call('POST', '/social/posts', auth, { connectionId: x, content: '  ' });
    expect(empty.body.error).toMatchObject({ code: 'VALIDATION_ERROR', field: 'content' });
    const gqlEmpty = await stack.api.graphql(auth, 'mutation($c: ID!) { createSocialPost(input: { tenantId: "' + tenant + '", connectionId: $c, content: " " }) { id } }', { c: x });
    expect(gqlEmpty.body.errors[0].extensions).toMatchObject({ code: 'VALIDATION_ERROR' });
    expect(gqlEmpty.body.errors[0].message).toMatch(/^input\.content: /);
    const { rows } = await db.query('select 1 from social_posts where tenant_id = $1', [tenant]);
    expect(rows).toEqual([]); // nothing half-written
  });

  it('takes only an active connection and a campaign of the tenant (another tenant\'s: 404)', async () => {
    const { tenant, auth } = await tenantWith();
    const other = newTenant();
    const theirs = await connection(other, 'FACEBOOK');
    const inactive = await connection(tenant, 'FACEBOOK', { isActive: false });
    const mine = await connection(tenant, 'LINKEDIN');
    const { rows: [campaign] } = await db.query(`insert into campaigns (tenant_id, name, type, channels) values ($1, 'Theirs', 'ONE_TIME', '{EMAIL}') returning id`, [other]);
    expect((await call('POST', '/social/posts', auth, { connectionId: theirs, content: 'Hi' })).body.error.code).toBe('RESOURCE_NOT_FOUND');
    expect((await call('POST', '/social/posts', auth, { connectionId: mine, campaignId: campaign.id, content: 'Hi' })).body.error.code).toBe('RESOURCE_NOT_FOUND');
    const refused = await call('POST', '/social/posts', auth, { connectionId: inactive, content: 'Hi' });
    expect(refused.status).toBe(409);
    expect(refused.body.error).toMatchObject({ code: 'INVALID_STATE', field: 'input.connectionId' });
  });

  it('edits only DRAFT, SCHEDULED or FAILED posts (INVALID_STATE naming what is allowed), re-validating the result', async () => {
    const { tenant, auth } = await tenantWith();
    const x = await connection(tenant, 'TWITTER');
    const { body: { data: post } } = await call('POST', '/social/posts', auth, { connectionId: x, content: 'Draft one' });
    const edited = await call('PATCH', `/social/posts/${post.id}`, auth, { content: 'Draft two', hashtags: ['Golf'] });
    expect(edited.body.data).toMatchObject({ content: 'Draft two', hashtags: ['Golf'], status: 'DRAFT' });
    const tooLong = await call('PATCH', `/social/posts/${post.id}`, auth, { content: 'x'.repeat(280) });
    expect(tooLong.body.error).toMatchObject({ code: 'VALIDATION_ERROR', field: 'input.content' });
    expect((await call('PATCH', `/social/posts/${post.id}`, auth, {})).body.error.code).toBe('VALIDATION_ERROR');

    await db.query(`update social_posts set status = 'PUBLISHED', published_at = now() where id = $1`, [post.id]);
    const refused = await call('PATCH', `/social/posts/${post.id}`, auth, { content: 'Too late' });
    expect(refused.status).toBe(409);
    expect(refused.body.error).toMatchObject({ code: 'INVALID_STATE', message: `social post ${post.id} is PUBLISHED: cannot update it; allowed: none` });
    for (const action of ['schedule', 'publish']) {
      const res = await call('POST', `/social/posts/${post.id}/${action}`, auth, action === 'schedule' ? { scheduledAt: new Date(Date.now() + 3_600_000).toISOString() } : undefined);
      expect(res.body.error.code).toBe('INVALID_STATE');
    }
    await db.query(`update social_posts set status = 'FAILED', error = 'refused' where id = $1`, [post.id]);
    expect((await call('PATCH', `/social/posts/${post.id}`, auth, { content: 'Fixed' })).body.data).toMatchObject({ status: 'FAILED', content: 'Fixed' });
    const gql = await stack.api.graphql(auth, 'mutation($id: ID!) { updateSocialPost(id: $id, input: { content: "GraphQL" }) { content status } }', { id: post.id });
    expect(gql.body.data.updateSocialPost).toEqual({ content: 'GraphQL', status: 'FAILED' });
    await db.query(`update social_posts set status = 'PUBLISHING' where id = $1`, [post.id]);
    const busy = await stack.api.graphql(auth, 'mutation($id: ID!) { updateSocialPost(id: $id, input: { content: "no" }) { id } }', { id: post.id });
    expect(busy.body.errors[0].extensions.code).toBe('INVALID_STATE');
  });

  it('refuses a scheduledAt in the past, naming it', async () => {
    const { tenant, auth } = await tenantWith();
    const x = await connection(tenant, 'TWITTER');
    const { body: { data: post } } = await call('POST', '/social/posts', auth, { connectionId: x, content: 'Later' });
    const past = await call('POST', `/social/posts/${post.id}/schedule`, auth, { scheduledAt: new Date(Date.now() - 60_000).toISOString() });
    expect(past.body.error).toMatchObject({ code: 'VALIDATION_ERROR', field: 'scheduledAt' });
    const missing = await call('POST', `/social/posts/${post.id}/schedule`, auth, {});
    expect(missing.body.error).toMatchObject({ code: 'VALIDATION_ERROR', field: 'scheduledAt' });
    expect((await call('GET', `/social/posts/${post.id}`, auth)).body.data.status).toBe('DRAFT');
  });

  it('schedules into one run social-post-<id>; a reschedule moves that run (no second one)', async () => {
    const { tenant, auth } = await tenantWith();
    const x = await connection(tenant, 'TWITTER');
    const { body: { data: post } } = await call('POST', '/social/posts', auth, { connectionId: x, content: 'Next week' });
    const first = new Date(Date.now() + 7 * 86_400_000).toISOString();
    const second = new Date(Date.now() + 8 * 86_400_000).toISOString();
    expect((await call('POST', `/social/posts/${post.id}/schedule`, auth, { scheduledAt: first })).body.data).toMatchObject({ status: 'SCHEDULED', scheduledAt: first });
    const handle = stack.client.workflow.getHandle(`social-post-${post.id}`);
    const timers = async (n: number) => until(`${n} timer(s) in the run's history`, async () => {
      const history = await handle.fetchHistory();
      const found = (history.events ?? []).filter((e) => e.timerStartedEventAttributes).map((e) => Number(e.timerStartedEventAttributes!.startToFireTimeout!.seconds));
      return found.length >= n && found;
    });
    await timers(1);
    const { runId } = await handle.describe();
    const moved = await stack.api.graphql(auth, 'mutation($id: ID!, $at: DateTime!) { scheduleSocialPost(id: $id, scheduledAt: $at) { status scheduledAt } }', { id: post.id, at: second });
    expect(moved.body.data.scheduleSocialPost).toEqual({ status: 'SCHEDULED', scheduledAt: second });
    // The same run read the new time and sleeps on it: its second timer is a day longer.
    const [wait1, wait2] = await timers(2);
    expect(wait2! - wait1!).toBeGreaterThan(86_000);
    const after = await handle.describe();
    expect(after.runId).toBe(runId);
    expect(after.status.name).toBe('RUNNING');
    await handle.terminate('test over');
  });
});

describe('listing', () => {
  it('lists with SocialPostFilter fields over REST and GraphQL (Relay, totalCount, connection batched)', async () => {
    const { tenant, auth } = await tenantWith();
    const fb = await connection(tenant, 'FACEBOOK');
    const li = await connection(tenant, 'LINKEDIN');
    const made: string[] = [];
    for (const [connectionId, content] of [[fb, 'one'], [li, 'two'], [fb, 'three']] as const) {
      made.push((await call('POST', '/social/posts', auth, { connectionId, content })).body.data.id);
    }
    await db.query(`update social_posts set status = 'SCHEDULED', scheduled_at = now() + interval '2 days' where id = $1`, [made[2]]);
    const all = await call('GET', '/social/posts?take=2', auth);
    expect(all.body.meta).toEqual({ total: 3, skip: 0, take: 2, hasMore: true });
    expect(all.body.data.map((p: { id: string }) => p.id)).toEqual([made[2], made[1]]);
    expect((await call('GET', `/social/posts?platform=FACEBOOK`, auth)).body.data.map((p: { id: string }) => p.id)).toEqual([made[2], made[0]]);
    expect((await call('GET', `/social/posts?connectionId=${li}`, auth)).body.data.map((p: { id: string }) => p.id)).toEqual([made[1]]);
    expect((await call('GET', `/social/posts?status=SCHEDULED&scheduledFrom=${new Date(Date.now() + 86_400_000).toISOString()}`, auth)).body.meta.total).toBe(1);
    expect((await call('GET', `/social/posts?scheduledTo=${new Date().toISOString()}`, auth)).body.meta.total).toBe(0);
    expect((await call('GET', '/social/posts?connectionId=nope', auth)).body.error).toMatchObject({ code: 'VALIDATION_ERROR', field: 'connectionId' });

    const gql = await stack.api.graphql(auth, `query($t: String!, $f: SocialPostFilter) {
      socialPosts(tenantId: $t, filter: $f) { totalCount pageInfo { hasNextPage } edges { cursor node { id content connection { id platform accountName } } } } }`,
    { t: tenant, f: { platform: 'FACEBOOK' } });
    expect(gql.body.errors).toBeUndefined();
    const page = gql.body.data.socialPosts;
    expect(page.totalCount).toBe(2);
    expect(page.pageInfo.hasNextPage).toBe(false);
    expect(page.edges.map((e: { node: { id: string; connection: { id: string } } }) => [e.node.id, e.node.connection.id])).toEqual([[made[2], fb], [made[0], fb]]);
  });
});

describe('an attacker\'s inputs', () => {
  it('huge inputs answer 4xx in the error envelope and write nothing', async () => {
    const { tenant, auth } = await tenantWith();
    const connectionId = await connection(tenant, 'FACEBOOK');
    const manyMedia = await call('POST', '/social/posts', auth, { connectionId, content: 'x', mediaUrls: Array.from({ length: 10_000 }, (_, i) => `${IMAGE}?${i}`) });
    expect(manyMedia.status).toBe(400);
    expect(manyMedia.body.error).toMatchObject({ code: 'VALIDATION_ERROR', field: expect.stringMatching(/^(input\.)?mediaUrls$/) });
    const megabyte = await call('POST', '/social/posts', auth, { connectionId, content: 'a'.repeat(1_000_000) });
    expect(megabyte.status).toBe(400);
    expect(megabyte.body.error).toMatchObject({ code: 'VALIDATION_ERROR', field: expect.stringMatching(/^(input\.)?content$/) });
    const tags = await call('POST', '/social/posts', auth, { connectionId, content: 'x', hashtags: Array.from({ length: 10_000 }, (_, i) => `t${i}`) });
    expect(tags.body.error).toMatchObject({ code: 'VALIDATION_ERROR', field: expect.stringMatching(/^(input\.)?hashtags$/) });
    expect((await call('GET', '/social/posts', auth)).body.meta.total).toBe(0);
  });

  it('another tenant\'s post answers 404 to every operation; a tampered filter or paging is a 4xx', async () => {
    const owner = await tenantWith();
    const post = (await call('POST', '/social/posts', owner.auth, { connectionId: await connection(owner.tenant, 'FACEBOOK'), content: 'mine' })).body.data;
    const other = await tenantWith();
    const later = new Date(Date.now() + 86_400_000).toISOString();
    for (const [method, path, body] of [
      ['GET', `/social/posts/${post.id}`, undefined], ['PATCH', `/social/posts/${post.id}`, { content: 'theirs' }],
      ['POST', `/social/posts/${post.id}/schedule`, { scheduledAt: later }], ['POST', `/social/posts/${post.id}/publish`, undefined],
    ] as const) {
      const res = await call(method, path, other.auth, body);
      expect(res.status, `${method} ${path}`).toBe(404);
      expect(res.body.error.code).toBe('RESOURCE_NOT_FOUND');
    }
    expect((await call('GET', `/social/posts/${post.id}`, owner.auth)).body.data).toMatchObject({ status: 'DRAFT', content: 'mine' });
    expect((await call('GET', `/social/posts?connectionId=${post.connectionId}`, other.auth)).body.meta.total).toBe(0);

    // The spec's socialPosts pages by no cursor (the newest page); its filter and REST's paging are the inputs to tamper.
    for (const f of [{ connectionId: 'not-an-id' }, { connectionId: post.connectionId, scheduledFrom: 'yesterday' }, { status: 'GONE' }]) {
      const gql = await stack.api.graphql(other.auth, `query($t: String!, $f: SocialPostFilter) { socialPosts(tenantId: $t, filter: $f) { totalCount } }`, { t: other.tenant, f });
      const code = gql.body.errors?.[0]?.extensions?.code ?? (gql.body.data?.socialPosts?.totalCount === 0 ? 'EMPTY' : undefined);
      expect(code, JSON.stringify(f)).toBeDefined();
      expect(code).not.toBe('INTERNAL_ERROR');
    }
    for (const q of ['take=-1', 'take=100000', 'skip=-5', 'skip=abc', 'scheduledFrom=yesterday', 'status=GONE']) {
      const res = await call('GET', `/social/posts?${q}`, other.auth);
      expect(res.status, q).toBe(400);
      expect(res.body.error.code, q).toBe('VALIDATION_ERROR');
    }
  });
});

describe('SOCIAL as a campaign channel: what must hold before it runs', () => {
  it('refuses a SOCIAL campaign without its post, or whose club has no active connection, naming channels', async () => {
    const { tenant, auth } = await tenantWith();
    const created = await call('POST', '/campaigns', auth, { name: 'Open day', type: 'ONE_TIME', channels: ['SOCIAL'], clubId: 'club-9' });
    expect(created.status).toBe(201);
    const campaignId = created.body.data.id;
    const noPost = await call('POST', `/campaigns/${campaignId}/execute`, auth);
    expect(noPost.body.error).toMatchObject({ code: 'VALIDATION_ERROR', field: 'channels' });
    expect(noPost.body.error.message).toMatch(/createSocialPost/);
    const inactive = await connection(tenant, 'FACEBOOK', { clubId: 'club-9', isActive: false });
    const elsewhere = await connection(tenant, 'LINKEDIN', { clubId: 'club-other' });
    await db.query(`insert into social_posts (tenant_id, connection_id, campaign_id, content) values ($1, $2, $3, 'Open day!')`, [tenant, elsewhere, campaignId]);
    const noConnection = await call('POST', `/campaigns/${campaignId}/schedule`, auth, { scheduledAt: new Date(Date.now() + 86_400_000).toISOString() });
    expect(noConnection.body.error).toMatchObject({ code: 'VALIDATION_ERROR', field: 'channels', message: 'channels: SOCIAL needs an active social connection of club club-9; it has none' });
    void inactive;
    expect((await call('GET', `/campaigns/${campaignId}`, auth)).body.data.status).toBe('DRAFT');
  });

  it('allows one post per connection in a campaign', async () => {
    const { tenant, auth } = await tenantWith();
    const fb = await connection(tenant, 'FACEBOOK');
    const campaignId = (await call('POST', '/campaigns', auth, { name: 'Open day', type: 'ONE_TIME', channels: ['SOCIAL'], clubId: 'club-1' })).body.data.id;
    expect((await call('POST', '/social/posts', auth, { connectionId: fb, campaignId, content: 'One' })).status).toBe(201);
    const twice = await call('POST', '/social/posts', auth, { connectionId: fb, campaignId, content: 'Two' });
    expect(twice.status).toBe(409);
    expect(twice.body.error).toMatchObject({ code: 'CONFLICT', field: 'input.campaignId' });
  });
});

describe('createClubPosts (for promotions)', () => {
  it('makes one post per active connection of the club, once per key, a copy its platform refuses FAILED', async () => {
    const { tenant } = await tenantWith();
    const fb = await connection(tenant, 'FACEBOOK', { clubId: 'club-5' });
    const li = await connection(tenant, 'LINKEDIN', { clubId: 'club-5' });
    const tiktok = await connection(tenant, 'TIKTOK', { clubId: 'club-5' });
    await connection(tenant, 'TWITTER', { clubId: 'club-5', isActive: false });
    await connection(tenant, 'FACEBOOK', { clubId: 'club-6' });
    const orm = await openOrm(inject('databaseUrl'));
    try {
      const input = { tenantId: tenant, clubId: 'club-5', content: 'Club night on Friday', hashtags: ['#ClubNight', 'clubnight'], key: 'promotion-1-announce' };
      const first = await createClubPosts(orm.em.fork(), input);
      expect(first).toHaveLength(3);
      expect(await createClubPosts(orm.em.fork(), input)).toEqual(first);
      const { rows } = await db.query('select connection_id, status, hashtags, error, source_key from social_posts where tenant_id = $1 order by created_at, id', [tenant]);
      expect(rows.map((r) => r.connection_id)).toEqual([fb, li, tiktok]);
      expect(rows.map((r) => r.status)).toEqual(['DRAFT', 'DRAFT', 'FAILED']);
      expect(rows[0].hashtags).toEqual(['ClubNight']);
      expect(rows[2].error).toMatch(/^not publishable on TIKTOK: post\.mediaUrls: TikTok needs a video/);
      // Another key is another set of posts.
      expect(await createClubPosts(orm.em.fork(), { ...input, key: 'promotion-1-reminder-3' })).toHaveLength(3);
    } finally {
      await orm.close();
    }
  });
});

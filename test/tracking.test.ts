import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, inject } from 'vitest';
import { applyTracking, trackingKey, unsubscribeUrl } from '../domain/campaigns/tracking.js';
import { loadConfig } from '../platform/config.js';
import { newTenant, startTestApi, testConfig, token, type TestApi } from './support/api.js';
import { seedCampaign, seedCustomer, seedDelivery } from './support/campaign-rows.js';

let api: TestApi;
let db: pg.Client;
let key: Uint8Array;
beforeAll(async () => {
  api = await startTestApi();
  db = new pg.Client({ connectionString: inject('databaseUrl') });
  await db.connect();
  key = trackingKey(testConfig()); // the API's own configuration, so the API's key
});
afterAll(async () => {
  await db?.end();
  await api?.close();
});

const EMAIL = `<!doctype html><html><head><title>Spring Open</title></head><body>
<p>Hi Ann, <a href="https://club.example.com/offer?a=1&amp;b=2" class="cta">book now</a>.</p>
<p><a href="mailto:pro@club.example.com">Write</a> or <a href="tel:+27215550000">call</a>; <a href="#terms">terms</a>, <a href="/relative">relative</a>.</p>
<p><a href='http://example.org/plain'>plain http</a> <a>no href</a></p>
<p><a href="{{unsubscribe}}">Unsubscribe</a></p>
</body></html>`;

/** A rendered email for one delivery, its links pulled out in order. */
function render(deliveryId: string) {
  const opts = { baseUrl: api.url, key, deliveryId };
  const html = applyTracking(EMAIL.replace('{{unsubscribe}}', unsubscribeUrl(opts)), opts);
  const hrefs = [...html.matchAll(/href=["']([^"']*)["']/g)].map((m) => m[1]!.replace(/&amp;/g, '&'));
  const pixel = /<img src="([^"]+)"/.exec(html)![1]!;
  return { html, hrefs, pixel, unsubscribe: unsubscribeUrl(opts) };
}

async function setup(channel = 'EMAIL') {
  const tenant = newTenant();
  const customerId = await seedCustomer(db, tenant, { email: `ann-${randomUUID().slice(0, 6)}@example.com`, firstName: 'Ann' });
  const campaignId = await seedCampaign(db, tenant, { name: 'Spring Open', channels: [channel] });
  const deliveryId = await seedDelivery(db, tenant, campaignId, customerId, { channel });
  return { tenant, customerId, campaignId, deliveryId, auth: await token(tenant) };
}

const interactions = async (deliveryId: string) =>
  (await db.query<{ type: string; metadata: Record<string, unknown> | null }>(
    'select type, metadata from campaign_interactions where delivery_id = $1 order by occurred_at, id', [deliveryId],
  )).rows;

const timeline = async (auth: string, customerId: string) =>
  (await api.call('GET', `/api/v1/customers/${customerId}/timeline?take=100`, { auth })).body.data as { type: string; category: string; title: string }[];

const get = (url: string) => fetch(url, { redirect: 'manual' });

describe('applyTracking', () => {
  it('rewrites every http(s) link to the click redirect, leaves the others and the markup alone, and appends the pixel', async () => {
    const { deliveryId } = await setup();
    const { html, hrefs, pixel, unsubscribe } = render(deliveryId);
    expect(hrefs).toHaveLength(7);
    expect(hrefs[0]).toMatch(new RegExp(`^${api.url}/t/c/[A-Za-z0-9_-]+$`));
    expect(hrefs.slice(1, 5)).toEqual(['mailto:pro@club.example.com', 'tel:+27215550000', '#terms', '/relative']);
    expect(hrefs[5]).toMatch(new RegExp(`^${api.url}/t/c/`));
    expect(hrefs[6]).toBe(unsubscribe);
    expect(hrefs[0]).not.toBe(hrefs[5]);
    expect(html).toContain('class="cta">book now</a>');
    expect(html).toContain('<a>no href</a>');
    expect(pixel).toMatch(new RegExp(`^${api.url}/t/o/`));
    expect(html.indexOf('<img')).toBeLessThan(html.indexOf('</body>'));
    // Everything outside the rewritten attributes and the pixel is the input, byte for byte.
    const stripped = html.replace(/href="http:\/\/127\.0\.0\.1:\d+\/t\/c\/[^"]+"/g, 'X').replace(/<img [^>]+>/, '');
    expect(stripped).toBe(EMAIL.replace('{{unsubscribe}}', unsubscribe)
      .replace('href="https://club.example.com/offer?a=1&amp;b=2"', 'X').replace(`href='http://example.org/plain'`, 'X'));
  });
});

describe('trackingKey', () => {
  it('comes from TRACKING_SECRET, else from JWT_SECRET, and refuses to start with neither', () => {
    const bytes = (k: Uint8Array) => Buffer.from(k).toString('hex');
    const tracking = loadConfig({ TRACKING_SECRET: 'a-tracking-secret-of-at-least-32-chars', JWT_SECRET: 'one-jwt-secret-long-enough-for-hs256' });
    const otherJwt = loadConfig({ TRACKING_SECRET: 'a-tracking-secret-of-at-least-32-chars', JWT_SECRET: 'another-jwt-secret-long-enough-hs256' });
    expect(bytes(trackingKey(tracking))).toBe(bytes(trackingKey(otherJwt)));
    expect(bytes(trackingKey(loadConfig({ JWT_SECRET: 'one-jwt-secret-long-enough-for-hs256' })))).not.toBe(bytes(trackingKey(tracking)));
    expect(() => trackingKey(loadConfig({ JWT_JWKS_URL: 'https://auth.example.com/.well-known/jwks.json' }))).toThrow(/set TRACKING_SECRET/);
  });
});

describe('open pixel', () => {
  it('answers a 1x1 GIF and records OPENED once per delivery, on the timeline', async () => {
    const { deliveryId, customerId, auth } = await setup();
    const { pixel } = render(deliveryId);
    for (let i = 0; i < 3; i++) {
      const res = await get(pixel);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toBe('image/gif');
      const bytes = Buffer.from(await res.arrayBuffer());
      expect(bytes.subarray(0, 6).toString('latin1')).toBe('GIF89a');
      expect(bytes.readUInt16LE(6)).toBe(1); // width
      expect(bytes.readUInt16LE(8)).toBe(1); // height
    }
    expect((await interactions(deliveryId)).map((i) => i.type)).toEqual(['OPENED']);
    const entries = (await timeline(auth, customerId)).filter((a) => a.type.startsWith('campaign.'));
    expect(entries).toEqual([expect.objectContaining({ type: 'campaign.opened', category: 'MARKETING', title: 'Email opened: Spring Open' })]);
  });
});

describe('click redirect', () => {
  it('redirects to the signed target, records CLICKED once per link, and implies the open', async () => {
    const { deliveryId, customerId, auth } = await setup();
    const { hrefs, pixel } = render(deliveryId);
    const first = await get(hrefs[0]!);
    expect(first.status).toBe(302);
    expect(first.headers.get('location')).toBe('https://club.example.com/offer?a=1&b=2');
    expect((await get(hrefs[0]!)).headers.get('location')).toBe('https://club.example.com/offer?a=1&b=2');
    expect((await get(hrefs[5]!)).headers.get('location')).toBe('http://example.org/plain');
    await get(pixel); // the open was already implied by the click

    const rows = await interactions(deliveryId);
    expect(rows.map((r) => r.type).sort()).toEqual(['CLICKED', 'CLICKED', 'OPENED']);
    expect(rows.filter((r) => r.type === 'CLICKED').map((r) => r.metadata).sort((a, b) => Number(a!.linkIndex) - Number(b!.linkIndex))).toEqual([
      { linkIndex: 0, linkUrl: 'https://club.example.com/offer?a=1&b=2' },
      { linkIndex: 1, linkUrl: 'http://example.org/plain' },
    ]);
    const titles = (await timeline(auth, customerId)).filter((a) => a.type.startsWith('campaign.')).map((a) => a.title).sort();
    expect(titles).toEqual(['Email link clicked: Spring Open', 'Email link clicked: Spring Open', 'Email opened: Spring Open']);
  });

  it('answers 404, never a redirect, to forged, altered, misused or unknown tokens', async () => {
    const { deliveryId } = await setup();
    const { hrefs, pixel, unsubscribe } = render(deliveryId);
    const token = hrefs[0]!.split('/t/c/')[1]!;
    const flip = (s: string, at: number) => s.slice(0, at) + (s[at] === 'A' ? 'B' : 'A') + s.slice(at + 1);
    const otherKey = trackingKey(loadConfig({ TRACKING_SECRET: 'another-tracking-secret-of-32-chars!!' }));
    const forged = applyTracking('<a href="https://evil.example.com/">x</a>', { baseUrl: api.url, key: otherKey, deliveryId });
    const unknown = render(randomUUID()).hrefs[0]!;
    const attempts = [
      `${api.url}/t/c/${flip(token, 5)}`, // the delivery id altered
      `${api.url}/t/c/${flip(token, token.length - 30)}`, // the target altered
      `${api.url}/t/c/${flip(token, token.length - 1)}`, // the signature altered
      `${api.url}/t/c/${token}A`, `${api.url}/t/c/${token.slice(0, -1)}`, `${api.url}/t/c/${token}=`,
      /href="([^"]+)"/.exec(forged)![1]!, // signed with another key
      unknown, // a valid signature for a delivery that does not exist
      `${api.url}/t/c/${pixel.split('/t/o/')[1]}`, `${api.url}/t/c/${unsubscribe.split('/t/u/')[1]}`, // other kinds of token
      `${api.url}/t/o/${token}`, `${api.url}/t/u/${token}`,
      `${api.url}/t/c/not-a-token`, `${api.url}/t/c/%00`,
    ];
    for (const url of attempts) {
      const res = await get(url);
      expect(res.status, url).toBe(404);
      expect(res.headers.get('location'), url).toBeNull();
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('RESOURCE_NOT_FOUND');
    }
    const post = await fetch(`${api.url}/t/u/${flip(unsubscribe.split('/t/u/')[1]!, 8)}`, { method: 'POST' });
    expect(post.status).toBe(404);
    expect(await interactions(deliveryId)).toEqual([]);
  });
});

describe('unsubscribe', () => {
  it('shows a confirmation page on GET, unsubscribes on the one-click POST, once', async () => {
    const { deliveryId, customerId, auth } = await setup();
    const { unsubscribe } = render(deliveryId);
    const page = await fetch(unsubscribe);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    const html = await page.text();
    expect(html).toMatch(/<form method="post">/);
    expect(html).toContain('name="List-Unsubscribe" value="One-Click"');
    // A GET (a link scanner, a preview) changes nothing.
    expect((await api.call('GET', `/api/v1/customers/${customerId}`, { auth })).body.data.emailOptIn).toBe(true);

    for (let i = 0; i < 2; i++) {
      const res = await fetch(unsubscribe, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'List-Unsubscribe=One-Click' });
      expect(res.status).toBe(200);
      expect(await res.text()).toContain('You are unsubscribed');
    }
    const customer = (await api.call('GET', `/api/v1/customers/${customerId}`, { auth })).body.data;
    expect(customer).toMatchObject({ emailOptIn: false, smsOptIn: true, pushOptIn: true });
    expect((await interactions(deliveryId)).map((r) => r.type)).toEqual(['UNSUBSCRIBED']);
    const entries = (await timeline(auth, customerId)).filter((a) => a.type.startsWith('campaign.'));
    expect(entries).toEqual([expect.objectContaining({ type: 'campaign.unsubscribed', category: 'MARKETING', title: 'Unsubscribed from email: Spring Open' })]);
  });

  it('unsubscribes the profile a merge made of the recipient since the send', async () => {
    const { tenant, campaignId, deliveryId, customerId: loser, auth } = await setup();
    const winner = (await api.call('POST', '/api/v1/customers', { auth, body: { email: `winner-${randomUUID().slice(0, 6)}@example.com`, emailOptIn: true } })).body.data.id;
    // Both duplicates got the message: the loser's delivery stays the loser's.
    await seedDelivery(db, tenant, campaignId, winner);
    expect((await api.call('POST', '/api/v1/customers/merge', { auth, body: { winnerId: winner, loserId: loser } })).status).toBe(200);
    expect((await api.call('GET', `/api/v1/customers/${winner}`, { auth })).body.data.emailOptIn).toBe(true);
    const res = await fetch(render(deliveryId).unsubscribe, { method: 'POST' });
    expect(res.status).toBe(200);
    expect((await api.call('GET', `/api/v1/customers/${winner}`, { auth })).body.data.emailOptIn).toBe(false);
  });

  it('turns off the opt-in of the message\'s channel', async () => {
    for (const [channel, off] of [['SMS', 'smsOptIn'], ['WHATSAPP', 'smsOptIn'], ['PUSH', 'pushOptIn'], ['IN_APP', 'pushOptIn']] as const) {
      const { deliveryId, customerId, auth } = await setup(channel);
      const res = await fetch(unsubscribeUrl({ baseUrl: api.url, key, deliveryId }), { method: 'POST' });
      expect(res.status, channel).toBe(200);
      const customer = (await api.call('GET', `/api/v1/customers/${customerId}`, { auth })).body.data;
      expect({ emailOptIn: customer.emailOptIn, smsOptIn: customer.smsOptIn, pushOptIn: customer.pushOptIn }, channel)
        .toEqual({ emailOptIn: true, smsOptIn: off !== 'smsOptIn', pushOptIn: off !== 'pushOptIn' });
    }
  });
});

describe('rate limits', () => {
  it('charges bad tokens to the caller\'s address and good ones to their delivery', async () => {
    const limited = await startTestApi({ RATE_LIMIT_READ: '3' });
    try {
      const { deliveryId } = await setup();
      const opts = { baseUrl: limited.url, key, deliveryId };
      const pixel = /<img src="([^"]+)"/.exec(applyTracking('<p>hi</p>', opts))![1]!;
      const guesses = [];
      for (let i = 0; i < 4; i++) guesses.push((await get(`${limited.url}/t/c/guess${i}`)).status);
      // Counters are shared by every API instance (and this file's earlier guesses), so the budget
      // may be spent before the first one: at most three guesses get an answer.
      expect(guesses.every((s) => s === 404 || s === 429)).toBe(true);
      expect(guesses.at(-1)).toBe(429);
      // The guesser's address is spent; a recipient's pixel is counted against its own delivery.
      expect((await get(pixel)).status).toBe(200);
    } finally {
      await limited.close();
    }
  });
});


import type { EntityManager } from '@mikro-orm/postgresql';
import { Hono, type Context } from 'hono';
import type { Channel } from '../db/entities/enums.js';
import { TENANT } from '../db/sql.js';
import { CHANNEL_LABEL, recordInteractions } from '../domain/campaigns/interactions.js';
import { trackingKey, verifyTrackingToken, type TokenKind, type VerifiedToken } from '../domain/campaigns/tracking.js';
import { afterCustomersChanged } from '../domain/reactions.js';
import { AppError } from '../platform/errors.js';
import type { AppDeps, AppEnv } from './env.js';
import { clientAddress, discardBody, setRateLimitHeaders } from './middleware/guard.js';

// The links of campaign messages: open pixel, click redirect, unsubscribe. Outside /api/v1 and
// without a bearer token: the signed token in the path is the credential, and the tenant is the
// delivery's. Anything but a valid token of the right kind for an existing delivery is 404, so
// the redirect can never be pointed anywhere the message did not link to.

// A transparent 1x1 GIF.
const PIXEL = Buffer.from('R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7', 'base64');

// Which opt-in an unsubscribe turns off, per channel (SOCIAL posts reach no one by address).
const OPT_IN: Partial<Record<Channel, string>> = {
  EMAIL: 'email_opt_in', SMS: 'sms_opt_in', WHATSAPP: 'sms_opt_in', PUSH: 'push_opt_in', IN_APP: 'push_opt_in',
};

interface Delivery { id: string; tenant_id: string; campaign_id: string; customer_id: string; channel: Channel }

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);

function page(title: string, body: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex"><title>${escapeHtml(title)}</title>
<style>body{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;color:#222}button{font-size:1rem;padding:.5rem 1rem}</style>
</head><body><h1>${escapeHtml(title)}</h1>${body}</body></html>`;
}

export function trackingRoutes(deps: AppDeps) {
  const key = trackingKey(deps.config); // a process without a key fails at start, not at the first click
  const app = new Hono<AppEnv>();

  /** The verified token and its delivery, or 404. Guessing is charged per address, use per delivery. */
  async function resolve<K extends TokenKind>(c: Context<AppEnv>, kind: K): Promise<{ token: Extract<VerifiedToken, { kind: K }>; delivery: Delivery; em: EntityManager }> {
    const token = verifyTrackingToken(key, kind, c.req.param('token') ?? '');
    const em = deps.orm.em.fork();
    const [delivery] = token
      ? await em.execute<Delivery[]>('select id, tenant_id, campaign_id, customer_id, channel from campaign_deliveries where id = ?', [token.deliveryId])
      : [];
    setRateLimitHeaders(c, await deps.rateLimits.consume('read', delivery ? `track:${delivery.id}` : `addr:${clientAddress(c)}`));
    if (!token || !delivery) throw new AppError('RESOURCE_NOT_FOUND', 'no such link');
    return { token: token as Extract<VerifiedToken, { kind: K }>, delivery, em };
  }

  const interaction = (d: Delivery) => ({ tenantId: d.tenant_id, campaignId: d.campaign_id, customerId: d.customer_id, deliveryId: d.id, channel: d.channel });

  app.get('/t/o/:token', async (c) => {
    const { delivery, em } = await resolve(c, 'open');
    await em.transactional((tx) => recordInteractions(tx, [{ ...interaction(delivery), type: 'OPENED', occurredAt: new Date(), key: `open:${delivery.id}` }]));
    return c.body(new Uint8Array(PIXEL), 200, { 'content-type': 'image/gif', 'cache-control': 'no-store, max-age=0' });
  });

  app.get('/t/c/:token', async (c) => {
    const { token, delivery, em } = await resolve(c, 'click');
    const now = new Date();
    await em.transactional((tx) => recordInteractions(tx, [
      // Images blocked: the click is the first sign the message was opened.
      { ...interaction(delivery), type: 'OPENED', occurredAt: now, metadata: { impliedByClick: true }, key: `open:${delivery.id}` },
      { ...interaction(delivery), type: 'CLICKED', occurredAt: now, metadata: { linkIndex: token.linkIndex, linkUrl: token.url }, key: `click:${delivery.id}:${token.linkIndex}` },
    ]));
    c.header('cache-control', 'no-store');
    return c.redirect(token.url, 302);
  });

  app.get('/t/u/:token', async (c) => {
    const { delivery } = await resolve(c, 'unsubscribe');
    const what = CHANNEL_LABEL[delivery.channel].toLowerCase();
    return c.html(page('Unsubscribe', `<p>Stop receiving ${escapeHtml(what)} messages from us?</p>
<form method="post"><input type="hidden" name="List-Unsubscribe" value="One-Click"><button type="submit">Unsubscribe</button></form>`));
  });

  // RFC 8058 one-click (the mail client posts `List-Unsubscribe=One-Click`), and the form above.
  app.post('/t/u/:token', async (c) => {
    const { delivery, em } = await resolve(c, 'unsubscribe');
    await discardBody(c);
    const column = OPT_IN[delivery.channel];
    await em.transactional(async (tx) => {
      // The profile the recipient is now: merged since the send, it is the one it went into.
      const changed = column
        ? await tx.execute<{ id: string }[]>(
          `with recursive chain as (
             select id, status, merged_into_id, 0 as hop from customers where tenant_id = ${TENANT} and id = ?
             union all
             select c.id, c.status, c.merged_into_id, chain.hop + 1 from chain join customers c on c.tenant_id = ${TENANT} and c.id = chain.merged_into_id
              where chain.status = 'MERGED' and chain.hop < 10)
           update customers set ${column} = false, updated_at = now()
            where tenant_id = ${TENANT} and id = (select id from chain order by hop desc limit 1) and status <> 'MERGED' and ${column} returning id`,
          [delivery.tenant_id, delivery.customer_id, delivery.tenant_id, delivery.tenant_id],
        )
        : [];
      const fresh = await recordInteractions(tx, [{ ...interaction(delivery), type: 'UNSUBSCRIBED', occurredAt: new Date(), key: `unsubscribe:${delivery.id}` }]);
      // A new interaction has already told the reactions (its timeline entry); a repeat that still
      // changed the profile (opted in again since) tells them itself, as does one merged since.
      const target = changed[0]?.id;
      if (target && (!fresh || target !== delivery.customer_id)) await afterCustomersChanged(tx, delivery.tenant_id, [target], 'unsubscribe');
    });
    const what = CHANNEL_LABEL[delivery.channel].toLowerCase();
    return c.html(page('You are unsubscribed', `<p>You will receive no more ${escapeHtml(what)} messages from us.</p>`));
  });

  return app;
}

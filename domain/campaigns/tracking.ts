import { createHmac, hkdfSync, timingSafeEqual } from 'node:crypto';
import { parse } from 'parse5';
import type { DefaultTreeAdapterMap } from 'parse5';
import type { Config } from '../../platform/config.js';
import { jwtSecret } from '../../platform/jwt-secret.js';

// Tracking links carry their own proof: a token is the payload (what kind of link, which delivery,
// for a click which link and where it goes) followed by a truncated HMAC-SHA256 of it, in one
// base64url string. The link needs no table lookup to be trusted, and a token made for one
// purpose (an open pixel) never passes for another (an unsubscribe).

export type TokenKind = 'open' | 'click' | 'unsubscribe';
const KIND_BYTE: Record<TokenKind, number> = { open: 1, click: 2, unsubscribe: 3 };
const MAC_BYTES = 16; // 128 bits: forgery needs 2^128 guesses, and keeps links short
const UUID_BYTES = 16;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Where each kind of link is served (api/tracking.ts). */
const TRACKING_PATHS: Record<TokenKind, string> = { open: '/t/o/', click: '/t/c/', unsubscribe: '/t/u/' };

/**
 * The key tracking tokens are signed with: TRACKING_SECRET, else derived from the JWT secret under
 * a label of its own (so a tracking token is never a JWT signature, nor the reverse). Throws when
 * neither exists (a JWKS-only deployment must set TRACKING_SECRET), so a process fails at start.
 */
export function trackingKey(config: Config): Uint8Array {
  const secret = config.TRACKING_SECRET ?? jwtSecret(config);
  if (!secret) {
    throw new Error('tracking links need a signing key: set TRACKING_SECRET (at least 32 characters); ' +
      'it may only be left unset when JWT_SECRET is set, from which it is then derived.');
  }
  return new Uint8Array(hkdfSync('sha256', secret, '', `crm campaign tracking v1 (${config.TRACKING_SECRET ? 'tracking' : 'jwt'} secret)`, 32));
}

const mac = (key: Uint8Array, payload: Buffer) => createHmac('sha256', key).update(payload).digest().subarray(0, MAC_BYTES);

function uuidBytes(id: string): Buffer {
  if (!UUID.test(id)) throw new Error(`tracking: delivery id ${id} is not a UUID`);
  return Buffer.from(id.replace(/-/g, ''), 'hex');
}

const uuidText = (b: Buffer) => {
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
};

function sign(key: Uint8Array, payload: Buffer): string {
  return Buffer.concat([payload, mac(key, payload)]).toString('base64url');
}

export type VerifiedToken =
  | { kind: 'open' | 'unsubscribe'; deliveryId: string }
  | { kind: 'click'; deliveryId: string; linkIndex: number; url: string };

/** The token's content if it is one of ours for `kind`, untouched; otherwise null. Constant-time. */
export function verifyTrackingToken(key: Uint8Array, kind: TokenKind, token: string): VerifiedToken | null {
  if (!/^[A-Za-z0-9_-]+$/.test(token)) return null;
  const bytes = Buffer.from(token, 'base64url');
  // Node's decoder forgives stray bits and characters; only the canonical spelling is accepted.
  if (bytes.toString('base64url') !== token || bytes.length < 1 + UUID_BYTES + MAC_BYTES) return null;
  const payload = bytes.subarray(0, bytes.length - MAC_BYTES);
  if (!timingSafeEqual(mac(key, payload), bytes.subarray(bytes.length - MAC_BYTES))) return null;
  if (payload[0] !== KIND_BYTE[kind]) return null;
  const deliveryId = uuidText(payload.subarray(1, 1 + UUID_BYTES));
  if (kind !== 'click') return payload.length === 1 + UUID_BYTES ? { kind, deliveryId } : null;
  if (payload.length < 1 + UUID_BYTES + 4) return null;
  const linkIndex = payload.readUInt32BE(1 + UUID_BYTES);
  return { kind, deliveryId, linkIndex, url: payload.subarray(1 + UUID_BYTES + 4).toString('utf8') };
}

function token(key: Uint8Array, kind: TokenKind, deliveryId: string, link?: { index: number; url: string }): string {
  const parts = [Buffer.from([KIND_BYTE[kind]]), uuidBytes(deliveryId)];
  if (link) {
    const index = Buffer.alloc(4);
    index.writeUInt32BE(link.index);
    parts.push(index, Buffer.from(link.url, 'utf8'));
  }
  return sign(key, Buffer.concat(parts));
}

interface LinkOptions { baseUrl: string; key: Uint8Array; deliveryId: string }

const trackingUrl = (baseUrl: string, kind: TokenKind, value: string) => `${baseUrl.replace(/\/+$/, '')}${TRACKING_PATHS[kind]}${value}`;

export function unsubscribeUrl(opts: LinkOptions): string {
  return trackingUrl(opts.baseUrl, 'unsubscribe', token(opts.key, 'unsubscribe', opts.deliveryId));
}

export function openPixelUrl(opts: LinkOptions): string {
  return trackingUrl(opts.baseUrl, 'open', token(opts.key, 'open', opts.deliveryId));
}

/** An http(s) link worth tracking: its normalised form (what a browser would follow), else null. */
function trackable(href: string, baseUrl: string): string | null {
  let url: URL;
  try {
    url = new URL(href.trim());
  } catch {
    return null; // relative links, anchors, templates left unrendered
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return null; // mailto:, tel:, ...
  // The unsubscribe link, or any other of ours, stays as it is.
  return url.href.startsWith(new URL(`${baseUrl.replace(/\/+$/, '')}/t/`).href) ? null : url.href;
}

type Node = DefaultTreeAdapterMap['childNode'] | DefaultTreeAdapterMap['document'];

function* elements(node: Node): Generator<DefaultTreeAdapterMap['element']> {
  if ('tagName' in node) yield node;
  if ('childNodes' in node) for (const child of node.childNodes) yield* elements(child);
}

const escapeAttr = (s: string) => s.replace(/&/g, '&amp;').replace(/"/g, '&quot;');

/**
 * Rewrites every http(s) link of the HTML (a[href]) to the click redirect and appends the open pixel.
 * The HTML is parsed (parse5) only to locate the href attributes; the output is the input with
 * those attributes replaced, so the rest of the markup reaches the recipient byte for byte.
 */
export function applyTracking(html: string, opts: LinkOptions): string {
  const doc = parse(html, { sourceCodeLocationInfo: true });
  const edits: { start: number; end: number; text: string }[] = [];
  const seen = new Set<number>();
  let index = 0;
  let bodyEnd: number | undefined;
  for (const el of elements(doc)) {
    if (el.tagName === 'body' && el.sourceCodeLocation?.endTag) bodyEnd = el.sourceCodeLocation.endTag.startOffset;
    if (el.tagName !== 'a') continue;
    const at = el.sourceCodeLocation?.attrs?.href;
    const href = el.attrs.find((a) => a.name === 'href' && !a.prefix)?.value;
    // Elements the parser re-creates (misnested markup) share their source location: once each.
    if (!at || href === undefined || seen.has(at.startOffset)) continue;
    seen.add(at.startOffset);
    const url = trackable(href, opts.baseUrl);
    if (!url) continue;
    const click = trackingUrl(opts.baseUrl, 'click', token(opts.key, 'click', opts.deliveryId, { index: index++, url }));
    edits.push({ start: at.startOffset, end: at.endOffset, text: `href="${escapeAttr(click)}"` });
  }
  const pixel = `<img src="${escapeAttr(openPixelUrl(opts))}" width="1" height="1" alt="" style="display:block;width:1px;height:1px;border:0">`;
  edits.push({ start: bodyEnd ?? html.length, end: bodyEnd ?? html.length, text: pixel });
  edits.sort((a, b) => b.start - a.start);
  let out = html;
  for (const e of edits) out = out.slice(0, e.start) + e.text + out.slice(e.end);
  return out;
}

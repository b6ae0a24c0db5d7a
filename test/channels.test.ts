import { randomUUID } from 'node:crypto';
import { SMTPServer, type SMTPServerOptions } from 'smtp-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../scripts/ports.js';
import { startMessagingServer, type MessagingServer } from '../scripts/messaging-server.js';
import { ChannelError, type OutboundMessage } from '../platform/channels/channel.js';
import { EmailSender } from '../platform/channels/email.js';
import { createChannelSenders } from '../platform/channels/index.js';
import { loadConfig } from '../platform/config.js';

// The channels against real servers: an SMTP server (smtp-server) in this file, and the local
// Messaging service of scripts/messaging-server.ts.

/** An SMTP server on a free local port that keeps what it receives. */
async function smtpServer(options: Partial<SMTPServerOptions> = {}) {
  const received: { from: string; to: string[]; raw: string }[] = [];
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        received.push({
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          to: session.envelope.rcptTo.map((r) => r.address),
          raw: Buffer.concat(chunks).toString(),
        });
        callback();
      });
    },
    ...options,
  });
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return { url: `smtp://127.0.0.1:${port}`, received, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

/** The header block of a raw message, unfolded. */
function headers(raw: string): Map<string, string> {
  const block = raw.split(/\r?\n\r?\n/)[0]!.replace(/\r?\n[ \t]+/g, ' ');
  return new Map(block.split(/\r?\n/).map((line) => {
    const i = line.indexOf(':');
    return [line.slice(0, i).toLowerCase(), line.slice(i + 1).trim()] as const;
  }));
}

const message = (over: Partial<OutboundMessage> = {}): OutboundMessage => ({
  deliveryId: randomUUID(),
  tenantId: 'tenant_channels',
  campaignId: randomUUID(),
  channel: 'EMAIL',
  to: { customerId: randomUUID(), email: 'ann@example.com', phoneNumber: '+27821234567' },
  content: { subject: 'Spring open', body: '<p>Hello <b>Ann</b></p>', textBody: 'Hello Ann' },
  // As long as a signed token makes it: the header must stay one unbroken address.
  unsubscribeUrl: `https://crm.example.test/t/u/${'eyJhbGciOiJIUzI1NiJ9'.repeat(8)}`,
  ...over,
});

const emailOptions = (smtpUrl: string) => ({ smtpUrl, from: 'Kloof Club <news@kloof.example>', maxConnections: 2, timeoutMs: 10_000 });

async function channelError(send: Promise<unknown>): Promise<ChannelError> {
  const err = await send.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(ChannelError);
  return err as ChannelError;
}

describe('EMAIL over SMTP', () => {
  it('sends html and text with one-click unsubscribe headers and a Message-ID derived from the delivery', async () => {
    const smtp = await smtpServer();
    const sender = new EmailSender(emailOptions(smtp.url));
    try {
      const m = message();
      const receipt = await sender.send(m);
      expect(receipt.providerMessageId).toBe(`<${m.deliveryId}@kloof.example>`);
      expect(smtp.received).toHaveLength(1);
      const [mail] = smtp.received;
      expect(mail!.from).toBe('news@kloof.example');
      expect(mail!.to).toEqual(['ann@example.com']);
      const h = headers(mail!.raw);
      expect(h.get('message-id')).toBe(`<${m.deliveryId}@kloof.example>`);
      expect(h.get('list-unsubscribe')).toBe(`<${m.unsubscribeUrl}>`);
      expect(h.get('list-unsubscribe-post')).toBe('List-Unsubscribe=One-Click');
      expect(h.get('subject')).toBe('Spring open');
      expect(h.get('from')).toBe('Kloof Club <news@kloof.example>');
      expect(h.get('content-type')).toMatch(/^multipart\/alternative/);
      expect(mail!.raw).toMatch(/Content-Type: text\/plain[\s\S]*Hello Ann[\s\S]*Content-Type: text\/html[\s\S]*<p>Hello <b>Ann<\/b><\/p>/);

      // A resend of the same delivery carries the same Message-ID.
      await sender.send(m);
      expect(headers(smtp.received[1]!.raw).get('message-id')).toBe(`<${m.deliveryId}@kloof.example>`);
    } finally {
      await sender.close();
      await smtp.close();
    }
  });

  it('fails for good on a 5xx answer, retryably on 4xx and when no server answers', async () => {
    const reject = (code: number) => smtpServer({
      onRcptTo(_address, _session, callback) {
        callback(Object.assign(new Error(code >= 500 ? 'no such mailbox' : 'try again later'), { responseCode: code }));
      },
    });
    const permanent = await reject(550);
    const temporary = await reject(451);
    const nobody = `smtp://127.0.0.1:${await freePort()}`;
    const senders = [permanent.url, temporary.url, nobody].map((url) => new EmailSender({ ...emailOptions(url), timeoutMs: 5_000 }));
    try {
      const [p, t, n] = senders as [EmailSender, EmailSender, EmailSender];
      const refused = await channelError(p.send(message()));
      expect(refused.retryable).toBe(false);
      expect(refused.message).toContain('550');
      const deferred = await channelError(t.send(message()));
      expect(deferred.retryable).toBe(true);
      expect(deferred.message).toContain('451');
      expect((await channelError(n.send(message()))).retryable).toBe(true);
      expect((await channelError(p.send(message({ to: { customerId: 'x', email: null, phoneNumber: null } })))).retryable).toBe(false);
      expect(permanent.received).toHaveLength(0);
    } finally {
      await Promise.all(senders.map((s) => s.close()));
      await permanent.close();
      await temporary.close();
    }
  });
});

describe('SMS, PUSH, WHATSAPP and IN_APP through the Messaging service', () => {
  let messaging: MessagingServer;
  let senders: ReturnType<typeof createChannelSenders>;
  beforeAll(async () => {
    messaging = await startMessagingServer();
    senders = createChannelSenders(loadConfig({ MESSAGING_URL: messaging.url, MESSAGING_API_KEY: messaging.apiKey, MESSAGING_TIMEOUT_MS: '1000' }));
  });
  afterAll(async () => {
    await senders?.close();
    await messaging?.close();
  });

  it('posts the message keyed by its delivery, so a resend is answered with the same id and sent once', async () => {
    const m = message({ channel: 'SMS', content: { subject: null, body: 'Tee time at 8' } });
    const first = await senders.forChannel('SMS').send(m);
    expect(first.providerMessageId).toMatch(/^msg_/);
    const again = await senders.forChannel('SMS').send(m);
    expect(again.providerMessageId).toBe(first.providerMessageId);
    expect(messaging.messagesReceived.filter((k) => k === m.deliveryId)).toHaveLength(2);
    expect(messaging.messageCounts.get(`${m.to.customerId}/SMS`)).toBe(1);
    expect(messaging.messages.find((x) => x.key === m.deliveryId)!.message).toEqual({
      tenantId: m.tenantId,
      channel: 'SMS',
      to: m.to,
      content: { subject: null, body: 'Tee time at 8' },
      metadata: { campaignId: m.campaignId, deliveryId: m.deliveryId },
    });
    for (const channel of ['PUSH', 'WHATSAPP', 'IN_APP'] as const) {
      await senders.forChannel(channel).send(message({ channel, to: m.to }));
      expect(messaging.messageCounts.get(`${m.to.customerId}/${channel}`)).toBe(1);
    }
  });

  it('retries what may pass (5xx, 429, a lost answer) and not what cannot (4xx)', async () => {
    const sms = senders.forChannel('SMS');
    const m = message({ channel: 'SMS' });
    messaging.failNext({ kind: 'error', status: 500, message: 'boom' });
    const failed = await channelError(sms.send(m));
    expect(failed.retryable).toBe(true);
    expect(failed.message).toContain('boom');
    messaging.failNext({ kind: 'error', status: 429, message: 'slow down' });
    expect((await channelError(sms.send(m))).retryable).toBe(true);
    // Applied, but the answer never arrives: the resend gets the first send's id, and it counts once.
    messaging.failNext({ kind: 'lost', ms: 2_000 });
    expect((await channelError(sms.send(m))).retryable).toBe(true);
    const sent = await sms.send(m);
    expect(sent.providerMessageId).toBe(messaging.messages.find((x) => x.key === m.deliveryId)!.id);
    expect(messaging.messageCounts.get(`${m.to.customerId}/SMS`)).toBe(1);

    const other = message({ channel: 'SMS' });
    messaging.failNext({ kind: 'error', status: 400, message: 'invalid phone number' });
    const refused = await channelError(sms.send(other));
    expect(refused.retryable).toBe(false);
    expect(refused.message).toContain('invalid phone number');
    expect(messaging.messageCounts.get(`${other.to.customerId}/SMS`)).toBeUndefined();
  });

  it('refuses for good a channel it cannot send on', async () => {
    const unconfigured = createChannelSenders(loadConfig({}));
    try {
      const email = await channelError(unconfigured.forChannel('EMAIL').send(message()));
      expect(email).toMatchObject({ retryable: false, message: 'SMTP_URL is not configured' });
      const sms = await channelError(unconfigured.forChannel('SMS').send(message({ channel: 'SMS' })));
      expect(sms).toMatchObject({ retryable: false, message: 'MESSAGING_URL is not configured' });
      expect((await channelError(senders.forChannel('SOCIAL').send(message({ channel: 'SOCIAL' })))).retryable).toBe(false);
    } finally {
      await unconfigured.close();
    }
  });
});

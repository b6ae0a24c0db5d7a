import nodemailer from 'nodemailer';
import addressparser from 'nodemailer/lib/addressparser';
import { ChannelError, type ChannelSender, type OutboundMessage, type SendReceipt } from './channel.js';

// EMAIL over SMTP (nodemailer, pooled connections). Each email's Message-ID is derived from its
// delivery, so a message sent twice (a send in flight when a worker died) is recognisably the same
// message to the receiving side and to whoever reads the logs.

export interface EmailOptions {
  smtpUrl: string;
  /** `Name <address>`: the From of every email, and the domain of its Message-ID. */
  from: string;
  maxConnections: number;
  timeoutMs: number;
}

/** The domain of the From address: Message-IDs are `<deliveryId@domain>`. */
function fromDomain(from: string): string {
  const [first] = addressparser(from, { flatten: true });
  const domain = first?.address?.split('@')[1];
  if (!domain) throw new Error(`EMAIL_FROM "${from}" has no address with a domain`);
  return domain;
}

export const messageIdOf = (deliveryId: string, domain: string) => `<${deliveryId}@${domain}>`;

/**
 * SMTP 4xx and connection trouble may pass; a 5xx about the message or recipient is final. A refused
 * login (EAUTH: a wrong password, a revoked key) is the relay's trouble, not the recipient's: it is
 * retried (with backoff, until fixed) instead of failing every message of the campaign.
 */
function classify(err: unknown): ChannelError {
  const e = err as Error & { responseCode?: number; code?: string; response?: string };
  if (e.code === 'EAUTH') return new ChannelError(`SMTP login refused: ${e.response ?? e.message}`, true);
  if (typeof e.responseCode === 'number') {
    return new ChannelError(`SMTP ${e.responseCode}: ${e.response ?? e.message}`, e.responseCode < 500);
  }
  // No answer from the server at all: it may answer next time.
  const transient = ['ECONNECTION', 'ETIMEDOUT', 'ESOCKET', 'EDNS', 'ETLS', 'EMAXLIMIT', 'ECONNREFUSED', 'ECONNRESET', 'EPIPE'];
  return new ChannelError(`SMTP: ${e.message}`, transient.includes(e.code ?? ''));
}

export class EmailSender implements ChannelSender {
  private readonly transport;
  private readonly domain: string;

  constructor(private readonly opts: EmailOptions) {
    this.domain = fromDomain(opts.from);
    this.transport = nodemailer.createTransport({
      url: opts.smtpUrl,
      pool: true,
      maxConnections: opts.maxConnections,
      connectionTimeout: opts.timeoutMs,
      greetingTimeout: opts.timeoutMs,
      socketTimeout: opts.timeoutMs,
    });
  }

  async send(m: OutboundMessage): Promise<SendReceipt> {
    if (!m.to.email) throw new ChannelError('the customer has no email address', false);
    const messageId = messageIdOf(m.deliveryId, this.domain);
    try {
      await this.transport.sendMail({
        from: this.opts.from,
        to: m.to.email,
        subject: m.content.subject ?? '',
        html: m.content.body,
        ...(m.content.textBody != null && { text: m.content.textBody }),
        messageId,
        // RFC 8058 one-click unsubscribe: mail clients show an unsubscribe button that POSTs here.
        ...(m.unsubscribeUrl && {
          headers: { 'List-Unsubscribe': `<${m.unsubscribeUrl}>`, 'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click' },
        }),
      });
    } catch (err) {
      throw classify(err);
    }
    return { providerMessageId: messageId };
  }

  async close(): Promise<void> {
    this.transport.close();
  }
}

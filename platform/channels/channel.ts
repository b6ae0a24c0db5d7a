import type { Channel } from '../../db/entities/enums.js';

// One interface for every way a message leaves the platform; campaigns, and later journeys, send
// through it one recipient at a time. Implementations: email.ts (SMTP), messaging.ts (the Messaging
// service, for SMS, PUSH, WHATSAPP and IN_APP).

export interface OutboundMessage {
  /** The delivery row's id: the idempotency key of the send and the seed of the email Message-ID. */
  deliveryId: string;
  tenantId: string;
  campaignId: string;
  channel: Channel;
  to: { customerId: string; email: string | null; phoneNumber: string | null };
  /** Rendered content: HTML for EMAIL (tracking already applied), the message text otherwise. */
  content: { subject: string | null; body: string; textBody?: string | null };
  /** EMAIL: the one-click unsubscribe address (List-Unsubscribe, RFC 8058). */
  unsubscribeUrl?: string;
}

export interface SendReceipt {
  /** The provider's id of the message (the Message-ID for email). */
  providerMessageId: string;
}

export interface ChannelSender {
  send(message: OutboundMessage): Promise<SendReceipt>;
  close(): Promise<void>;
}

/** A send that failed; `retryable` says whether sending again can help (5xx, timeouts) or not (4xx). */
export class ChannelError extends Error {
  constructor(message: string, readonly retryable: boolean) {
    super(message);
    this.name = 'ChannelError';
  }
}

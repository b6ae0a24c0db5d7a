import { MessagingError, type MessagingClient } from '../messaging.js';
import { ChannelError, type ChannelSender, type OutboundMessage, type SendReceipt } from './channel.js';

// SMS, PUSH, WHATSAPP and IN_APP through the Messaging service's `POST /messages`. The delivery id
// is the idempotency key: a send retried after a timeout or a crash reaches the customer once.

export class MessagingSender implements ChannelSender {
  constructor(private readonly client: MessagingClient) {}

  async send(m: OutboundMessage): Promise<SendReceipt> {
    try {
      const id = await this.client.sendMessage(
        {
          tenantId: m.tenantId,
          channel: m.channel,
          to: m.to,
          content: { subject: m.content.subject, body: m.content.body },
          metadata: { campaignId: m.campaignId, deliveryId: m.deliveryId },
        },
        m.deliveryId,
      );
      return { providerMessageId: id };
    } catch (err) {
      if (err instanceof MessagingError) throw new ChannelError(err.message, err.retryable);
      throw err;
    }
  }

  async close(): Promise<void> {}
}

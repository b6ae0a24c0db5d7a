import type { Channel } from '../../db/entities/enums.js';
import type { Config } from '../config.js';
import { MessagingClient } from '../messaging.js';
import { ChannelError, type ChannelSender } from './channel.js';
import { EmailSender } from './email.js';
import { MessagingSender } from './messaging.js';

/** A channel that cannot send here: every send fails for good, saying why. */
const refusing = (reason: string): ChannelSender => ({
  send: async () => {
    throw new ChannelError(reason, false);
  },
  close: async () => {},
});

/**
 * The sender of each channel, built on first use (a worker that sends no email opens no SMTP
 * pool) and shared by every send of the process.
 */
export function createChannelSenders(config: Config): { forChannel(c: Channel): ChannelSender; close(): Promise<void> } {
  let email: ChannelSender | undefined;
  let messaging: ChannelSender | undefined;
  return {
    forChannel(c) {
      switch (c) {
        case 'EMAIL':
          return (email ??= config.SMTP_URL
            ? new EmailSender({ smtpUrl: config.SMTP_URL, from: config.EMAIL_FROM, maxConnections: config.SMTP_MAX_CONNECTIONS, timeoutMs: config.SMTP_TIMEOUT_MS })
            : refusing('SMTP_URL is not configured'));
        case 'SMS':
        case 'PUSH':
        case 'WHATSAPP':
        case 'IN_APP':
          return (messaging ??= config.MESSAGING_URL
            ? new MessagingSender(new MessagingClient({ baseUrl: config.MESSAGING_URL, apiKey: config.MESSAGING_API_KEY, timeoutMs: config.MESSAGING_TIMEOUT_MS }))
            : refusing('MESSAGING_URL is not configured'));
        default:
          return refusing(`${c} is not a campaign channel`);
      }
    },
    async close() {
      await Promise.all([email?.close(), messaging?.close()]);
    },
  };
}

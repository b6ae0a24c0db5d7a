// Client of the external Messaging service: segments and messages (contract in the README,
// "Messaging service contract"). Errors say whether a retry can help: 5xx, 429, 408 and timeouts
// can, other 4xx cannot (the remote message is kept for the caller). Requests go through the
// global fetch, whose agent keeps connections alive and reuses them across sends.

export interface MessagingMember {
  customerId: string;
  email: string | null;
  phoneNumber: string | null;
  firstName: string | null;
  lastName: string | null;
  emailOptIn: boolean;
  smsOptIn: boolean;
  pushOptIn: boolean;
}

/** One message to one customer (`POST /messages`). */
export interface MessagingMessage {
  tenantId: string;
  channel: string;
  to: { customerId: string; email: string | null; phoneNumber: string | null };
  content: { subject: string | null; body: string };
  metadata: { campaignId: string; deliveryId: string };
}

export class MessagingError extends Error {
  constructor(message: string, readonly retryable: boolean, readonly status?: number) {
    super(message);
    this.name = 'MessagingError';
  }
}

export interface MessagingOptions {
  baseUrl: string;
  apiKey?: string;
  timeoutMs?: number;
}

export class MessagingClient {
  constructor(private readonly opts: MessagingOptions) {}

  private async call(method: string, path: string, body: string, idempotencyKey?: string): Promise<unknown> {
    let res: Response;
    try {
      res = await fetch(new URL(path, this.opts.baseUrl.endsWith('/') ? this.opts.baseUrl : `${this.opts.baseUrl}/`), {
        method,
        headers: {
          'content-type': 'application/json',
          ...(this.opts.apiKey && { authorization: `Bearer ${this.opts.apiKey}` }),
          ...(idempotencyKey && { 'idempotency-key': idempotencyKey }),
        },
        body,
        signal: AbortSignal.timeout(this.opts.timeoutMs ?? 15_000),
      });
    } catch (err) {
      const timedOut = (err as Error).name === 'TimeoutError';
      throw new MessagingError(`Messaging ${method} ${path}: ${timedOut ? 'timed out' : (err as Error).message}`, true);
    }
    const text = await res.text();
    if (!res.ok) {
      let remote = text;
      try {
        remote = (JSON.parse(text) as { error?: { message?: string }; message?: string }).error?.message ?? JSON.parse(text).message ?? text;
      } catch {
        // plain-text error body
      }
      const retryable = res.status >= 500 || res.status === 429 || res.status === 408;
      throw new MessagingError(`Messaging ${method} ${path} answered ${res.status}: ${remote}`, retryable, res.status);
    }
    return text ? JSON.parse(text) : undefined;
  }

  /** Creates or updates the Messaging segment for ours (keyed by our id); returns its id there. */
  async ensureSegment(segment: { id: string; tenantId: string; name: string; description?: string | null }): Promise<string> {
    const body = (await this.call('PUT', `segments/${encodeURIComponent(segment.id)}`, JSON.stringify({
      tenantId: segment.tenantId,
      name: segment.name,
      description: segment.description ?? null,
    }))) as { id?: unknown };
    if (typeof body?.id !== 'string') throw new MessagingError('Messaging PUT segments answered without an id', false);
    return body.id;
  }

  /**
   * Sends one message; returns the Messaging service's id of it. A resend with the same key is
   * answered with the first send's id and not sent again.
   */
  async sendMessage(message: MessagingMessage, idempotencyKey: string): Promise<string> {
    const body = (await this.call('POST', 'messages', JSON.stringify(message), idempotencyKey)) as { id?: unknown };
    if (typeof body?.id !== 'string') throw new MessagingError('Messaging POST messages answered without an id', false);
    return body.id;
  }

  /**
   * Adds and removes members; the idempotency key makes a resent batch a no-op. The body is
   * `{ add: MessagingMember[], remove: string[] }` as JSON text: a sync's batches are written by PostgreSQL, and were most of the
   * worker's work when parsed into rows and serialized again.
   */
  async changeMembersJson(messagingSegmentId: string, change: string, idempotencyKey: string): Promise<void> {
    await this.call('POST', `segments/${encodeURIComponent(messagingSegmentId)}/members`, change, idempotencyKey);
  }
}

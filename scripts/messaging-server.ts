// Used by the tests, the benchmarks and `npm run schemathesis`.
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';

// A real HTTP server speaking the Messaging service contract of the README, with failures on
// demand: the next N member or message requests can answer 500, hang past the client's timeout,
// or 400.

// `lost`: the batch is applied, but the answer never reaches the client (it times out), as when a
// network or process fails mid-request; the client must resend, and the key makes it a no-op.
type Failure = { kind: 'error'; status: number; message: string } | { kind: 'lost'; ms: number } | { kind: 'slow'; ms: number };

export interface MessagingServer {
  url: string;
  apiKey: string;
  /** Members per Messaging segment id, as applied. */
  members: Map<string, Map<string, unknown>>;
  /** Member batches applied (each idempotency key once). */
  applied: { key: string; segment: string; add: number; remove: number }[];
  /** Every POST received, including retries and failures. */
  received: string[];
  /** How many times each customer was added. */
  addCounts: Map<string, number>;
  /** Messages applied (sent), each idempotency key once, with the id answered. */
  messages: { key: string; id: string; message: any }[];
  /** Every POST /messages received (its idempotency key), including retries and failures. */
  messagesReceived: string[];
  /** Messages applied per `<customerId>/<channel>`. */
  messageCounts: Map<string, number>;
  failNext(...failures: Failure[]): void;
  close(): Promise<void>;
}

async function readJson(req: IncomingMessage): Promise<any> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return JSON.parse(Buffer.concat(chunks).toString() || '{}');
}

export async function startMessagingServer(): Promise<MessagingServer> {
  const apiKey = 'messaging-test-key';
  const members = new Map<string, Map<string, unknown>>();
  const applied: MessagingServer['applied'] = [];
  const received: string[] = [];
  const addCounts = new Map<string, number>();
  const seen = new Map<string, string>();
  const failures: Failure[] = [];
  const messages: MessagingServer['messages'] = [];
  const messagesReceived: string[] = [];
  const messageCounts = new Map<string, number>();
  const sentIds = new Map<string, string>();

  const server: Server = createServer(async (req, res) => {
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    };
    if (req.headers.authorization !== `Bearer ${apiKey}`) return send(401, { error: { message: 'bad api key' } });
    const url = new URL(req.url!, 'http://x');
    const segment = /^\/segments\/([^/]+)$/.exec(url.pathname);
    const memberPath = /^\/segments\/([^/]+)\/members$/.exec(url.pathname);
    if (req.method === 'PUT' && segment) {
      const body = await readJson(req);
      if (!body.name) return send(422, { error: { message: 'name is required' } });
      const id = `msg_${segment[1]}`;
      if (!members.has(id)) members.set(id, new Map());
      return send(200, { id, name: body.name });
    }
    if (req.method === 'POST' && memberPath) {
      const key = String(req.headers['idempotency-key'] ?? '');
      received.push(key);
      const body = await readJson(req);
      const failure = failures.shift();
      if (failure?.kind === 'error') return send(failure.status, { error: { message: failure.message } });
      if (!key) return send(400, { error: { message: 'Idempotency-Key header is required' } });
      if (seen.has(key)) return send(200, JSON.parse(seen.get(key)!));
      const set = members.get(memberPath[1]!);
      if (!set) return send(404, { error: { message: 'unknown segment' } });
      if ((body.add?.length ?? 0) + (body.remove?.length ?? 0) > 1000) return send(413, { error: { message: 'at most 1000 members per request' } });
      for (const m of body.add ?? []) {
        set.set(m.customerId, m);
        addCounts.set(m.customerId, (addCounts.get(m.customerId) ?? 0) + 1);
      }
      for (const id of body.remove ?? []) set.delete(id);
      applied.push({ key, segment: memberPath[1]!, add: body.add?.length ?? 0, remove: body.remove?.length ?? 0 });
      const answer = { added: body.add?.length ?? 0, removed: body.remove?.length ?? 0, total: set.size };
      seen.set(key, JSON.stringify(answer));
      if (failure?.kind === 'lost' || failure?.kind === 'slow') await new Promise((r) => setTimeout(r, failure.ms));
      if (failure?.kind === 'lost') return res.destroy();
      return send(200, answer);
    }
    if (req.method === 'POST' && url.pathname === '/messages') {
      const key = String(req.headers['idempotency-key'] ?? '');
      messagesReceived.push(key);
      const body = await readJson(req);
      const failure = failures.shift();
      if (failure?.kind === 'error') return send(failure.status, { error: { message: failure.message } });
      if (!key) return send(400, { error: { message: 'Idempotency-Key header is required' } });
      if (sentIds.has(key)) return send(200, { id: sentIds.get(key) });
      const customerId = body.to?.customerId;
      if (!body.tenantId || !body.channel || !customerId || typeof body.content?.body !== 'string') {
        return send(400, { error: { message: 'tenantId, channel, to.customerId and content.body are required' } });
      }
      const id = `msg_${randomUUID()}`;
      sentIds.set(key, id);
      messages.push({ key, id, message: body });
      const counted = `${customerId}/${body.channel}`;
      messageCounts.set(counted, (messageCounts.get(counted) ?? 0) + 1);
      if (failure?.kind === 'lost' || failure?.kind === 'slow') await new Promise((r) => setTimeout(r, failure.ms));
      if (failure?.kind === 'lost') return res.destroy();
      return send(200, { id });
    }
    send(404, { error: { message: 'not found' } });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    apiKey,
    members,
    applied,
    received,
    addCounts,
    messages,
    messagesReceived,
    messageCounts,
    failNext: (...f) => failures.push(...f),
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

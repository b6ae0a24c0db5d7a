// The fan-out benchmark's sink: the Messaging service's `POST /messages` and nothing else, in its
// own process, so that neither the engine nor the baseline loop shares a thread with it and its
// bookkeeping (one id per idempotency key) stays small at a million messages. `GET /stats` answers
// how many requests came and how many distinct messages were accepted; `DELETE /stats` resets them.
import { createServer, type IncomingMessage } from 'node:http';

const apiKey = process.env.MESSAGING_API_KEY;
let received = 0;
let ids = new Map<string, number>();
let next = 0;

async function readJson(req: IncomingMessage): Promise<any> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return JSON.parse(Buffer.concat(chunks).toString() || '{}');
}

createServer(async (req, res) => {
  const send = (status: number, body: unknown) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  if (req.url === '/stats') {
    if (req.method === 'DELETE') {
      received = 0;
      ids = new Map();
    }
    return send(200, { received, accepted: ids.size });
  }
  if (req.headers.authorization !== `Bearer ${apiKey}`) return send(401, { error: { message: 'bad api key' } });
  if (req.method !== 'POST' || req.url !== '/messages') return send(404, { error: { message: 'not found' } });
  received++;
  const key = String(req.headers['idempotency-key'] ?? '');
  const body = await readJson(req);
  if (!key) return send(400, { error: { message: 'Idempotency-Key header is required' } });
  if (!body.tenantId || !body.channel || !body.to?.customerId || typeof body.content?.body !== 'string') {
    return send(400, { error: { message: 'tenantId, channel, to.customerId and content.body are required' } });
  }
  let id = ids.get(key);
  if (id === undefined) ids.set(key, (id = next++));
  send(200, { id: `msg_${id}` });
}).listen(Number(process.env.PORT), '127.0.0.1');

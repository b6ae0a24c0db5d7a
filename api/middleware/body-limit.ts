import type { Context } from 'hono';
import { bodyLimit as bufferedLimit } from 'hono/body-limit';
import { createMiddleware } from 'hono/factory';
import { AppError } from '../../platform/errors.js';
import type { AppEnv } from '../env.js';

const tooLarge = (maxBytes: number) =>
  new AppError('PAYLOAD_TOO_LARGE', `body: larger than the limit of ${maxBytes} bytes`, { field: 'body', limit: maxBytes });

/**
 * Refuses a request body over the limit before it is buffered: by its Content-Length up front, and
 * while reading a chunked body (hono's body-limit stops reading at the limit). Routes that stream
 * their body (`streamed`: path → limit) keep streaming: their body is counted as the route reads it
 * and the read fails with PAYLOAD_TOO_LARGE past the limit.
 */
export function bodyLimit(maxBytes: number, streamed: Record<string, number> = {}) {
  const buffered = bufferedLimit({ maxSize: maxBytes, onError: () => { throw tooLarge(maxBytes); } });
  return createMiddleware<AppEnv>(async (c, next) => {
    // Nothing to limit. Asking hono's limit builds the whole web Request (its body stream, an
    // abort signal) to find that out: on every GET, a tenth of a list page's CPU and garbage.
    if (!announcesBody(c)) return next();
    const streamLimit = Object.hasOwn(streamed, c.req.path) ? streamed[c.req.path]! : undefined;
    if (streamLimit === undefined) {
      // A declared length is the body's length (Node's parser reads no more), so it is judged by
      // the header alone, as hono's limit does too, but without first building a web Request to
      // ask whether a body exists: the route then reads it straight off the socket.
      if (c.req.header('transfer-encoding') !== undefined) return buffered(c, next);
      if (declaredLength(c) > maxBytes) throw tooLarge(maxBytes);
      return next();
    }
    if (declaredLength(c) > streamLimit) throw tooLarge(streamLimit);
    if (c.req.raw.body) c.req.raw = new Request(c.req.raw, { body: counted(c.req.raw.body, streamLimit), duplex: 'half' } as RequestInit);
    return next();
  });
}

/** Whether the client announces a body: a Content-Length above 0, or a Transfer-Encoding. */
export const announcesBody = (c: Context) => declaredLength(c) > 0 || c.req.header('transfer-encoding') !== undefined;

function declaredLength(c: Context): number {
  const length = Number(c.req.header('content-length'));
  return Number.isFinite(length) ? length : 0;
}

/** The body, read on demand; past `maxBytes` the read fails and the rest is never read. */
function counted(body: ReadableStream<Uint8Array>, maxBytes: number): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  let size = 0;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const { done, value } = await reader.read();
      if (done) return controller.close();
      size += value.byteLength;
      if (size <= maxBytes) return controller.enqueue(value);
      await reader.cancel().catch(() => undefined);
      controller.error(tooLarge(maxBytes));
    },
    cancel: (reason) => reader.cancel(reason),
  });
}

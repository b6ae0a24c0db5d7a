import { IncomingMessage } from 'node:http';
import { Readable, Transform } from 'node:stream';
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
    c.set('streamedBodyLimit', streamLimit);
    return next();
  });
}

/** Whether the client announces a body: a Content-Length above 0, or a Transfer-Encoding. */
export const announcesBody = (c: Context) => declaredLength(c) > 0 || c.req.header('transfer-encoding') !== undefined;

function declaredLength(c: Context): number {
  const length = Number(c.req.header('content-length'));
  return Number.isFinite(length) ? length : 0;
}

/** A streaming route's body: its bytes up to the route's limit, and a check that there were no more. */
export interface StreamedBody {
  stream: Readable;
  /** Throws PAYLOAD_TOO_LARGE when the body went on past the limit (`stream` ended there). */
  assertWhole(): void;
}

/**
 * A streaming route's body as a Node stream of at most the route's limit. Past the limit the
 * stream ends, rather than failing, so the route meets the body's faults in their order: rows
 * over the row limit before the bytes over the byte limit. The route then asks `assertWhole`.
 * Under @hono/node-server the body is read straight off the request: the web streams it is
 * otherwise adapted to and back (node-server wraps it twice) cost an import a twentieth of its
 * CPU. The rest of a body cut short is left unread, for node-server to drain after the answer:
 * the request is never destroyed, so the answer still reaches the client.
 */
function bodySource(c: Context<AppEnv>): Readable {
  const incoming = (c.env as { incoming?: unknown } | undefined)?.incoming;
  if (incoming instanceof IncomingMessage && !incoming.readableDidRead) return incoming;
  // Not before: building the web Request's body may start reading the request into it.
  const body = c.req.raw.body;
  return body ? Readable.fromWeb(body as never) : Readable.from([]);
}

export function streamedBody(c: Context<AppEnv>): StreamedBody {
  const maxBytes = c.get('streamedBodyLimit');
  if (maxBytes === undefined) throw new Error(`${c.req.path} streams its body but bodyLimit was not told its limit`);
  const source = bodySource(c);
  let size = 0;
  let cut = false;
  const stream: Transform = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      size += chunk.length;
      if (size <= maxBytes) return done(null, chunk);
      cut = true;
      source.unpipe(stream);
      done(null, chunk.subarray(0, chunk.length - (size - maxBytes)));
      stream.end();
    },
  });
  // pipe() passes on neither an error nor an early close: a client gone in the middle of its body
  // would leave the route waiting for the rest.
  const abandoned = (err?: Error) => {
    if (!cut && !source.readableEnded) {
      stream.destroy(new AppError('VALIDATION_ERROR', `body: the request ended before its body did${err ? ` (${err.message})` : ''}`, { field: 'body' }));
    }
  };
  source.once('error', abandoned);
  source.once('close', () => abandoned());
  return {
    stream: source.pipe(stream),
    assertWhole: () => {
      if (cut) throw tooLarge(maxBytes);
    },
  };
}

// PostgreSQL error classes that mean "not now" rather than "not this request": a statement
// cancelled by statement_timeout (57014), a lock not granted in time (55P03), a server shutting
// down, starting up or out of connections (57P0x, 53300), a broken connection (08xxx).
const UNAVAILABLE_SQLSTATE = /^(57014|55P03|57P0[1-4]|53300|08...)$/;

// What pg and pg-pool say when the client gives up first: no pooled connection in time
// (connectionTimeoutMillis), no answer to a query in time (query_timeout), a dropped connection.
const UNAVAILABLE_MESSAGE = /timeout exceeded when trying to connect|Connection terminated|Query read timeout|ECONNREFUSED|ECONNRESET/;

/** Whether an error (or what it wraps) says the database could not answer in time. */
export function isDatabaseUnavailable(err: unknown): boolean {
  for (let e = err, hops = 0; e && typeof e === 'object' && hops < 5; e = (e as { cause?: unknown }).cause, hops++) {
    const { code, message } = e as { code?: unknown; message?: unknown };
    if (typeof code === 'string' && UNAVAILABLE_SQLSTATE.test(code)) return true;
    if (typeof message === 'string' && UNAVAILABLE_MESSAGE.test(message)) return true;
  }
  return false;
}

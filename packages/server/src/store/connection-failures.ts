import pg from 'pg';

/**
 * Node's codes for a backing service that cannot be reached now. The PostgreSQL driver
 * surfaces them as is (an AggregateError carries the code of its attempts). EMFILE/ENFILE: the
 * process (or system) is out of descriptors, so the pool cannot open a connection until
 * sockets close — retryable, like a refused connection.
 */
const UNREACHABLE = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENOTFOUND',
  'EMFILE',
  'ENFILE',
]);

/** pg's own messages for a connection that failed or went away (they carry no code). */
const PG_CONNECTION =
  /^(Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|Cannot use a pool after calling end)/;

/**
 * PostgreSQL's SQLSTATEs for a server that is there but cannot take the connection now:
 * class 08 (connection exception), and 57P01–57P03 (shutting down, crashed, starting up).
 */
const PG_NOT_NOW = /^(08|57P0[123])/;

/**
 * Whether an error (or its cause, a few levels down) says the store's server cannot be
 * reached or cannot answer now, as opposed to a wrong query or a wrong configuration.
 */
export function isConnectionFailure(err: unknown): boolean {
  for (let e = err, depth = 0; e instanceof Error && depth < 3; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && (UNREACHABLE.has(code) || (e instanceof pg.DatabaseError && PG_NOT_NOW.test(code))))
      return true;
    if (PG_CONNECTION.test(e.message)) return true;
  }
  return false;
}

/**
 * Whether an error comes from the store's driver (SQLite or PostgreSQL) or its connection:
 * such a failure is the store's, not the request's, so the client may retry (503).
 */
export function isStoreFailure(err: unknown): boolean {
  for (let e = err, depth = 0; e instanceof Error && depth < 3; e = e.cause, depth++) {
    if (e.name === 'SqliteError' || e instanceof pg.DatabaseError) return true;
  }
  return isConnectionFailure(err);
}

/**
 * Every failure the SDK reports: a stable string `code` (the server's error code where there
 * is one, see docs/protocol.md, or one of the SDK's own below), the HTTP status or frame code,
 * and the close code when a close caused it.
 */
export class GatehouseClientError extends Error {
  override readonly name = 'GatehouseClientError';

  constructor(
    readonly code: string,
    message: string,
    readonly status?: number,
    readonly closeCode?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The SDK's own error codes (besides the server's). */
export const ClientErrorCode = {
  /** The outbox is full (`outboxLimit` sends waiting): the app should slow down. */
  OUTBOX_FULL: 'OUTBOX_FULL',
  /** The client was closed, or stopped for good (replaced, revoked, …), before the send was acknowledged. */
  CLOSED: 'CLOSED',
  /** No way to get a token: `getToken` is missing or failed. */
  NO_TOKEN: 'NO_TOKEN',
  /** A request got no reply in time. */
  TIMEOUT: 'TIMEOUT',
  /** The server could not be reached over HTTP. */
  NETWORK: 'NETWORK',
} as const;

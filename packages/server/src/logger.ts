import pino, { type Logger } from 'pino';
import { redact } from './gateway/handshake-request.js';

/**
 * Structured JSON logs. Credentials never appear whole: known header and field names are
 * shortened to their first 8 and last 4 characters (SPEC §8).
 */
export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'gatehouse' },
      redact: {
        paths: [
          'token',
          'refresh_token',
          'refreshToken',
          'ticket',
          'password',
          'headers.authorization',
          'headers.token',
          'headers["x-app-key"]',
          'headers["x-admin-key"]',
          'headers["sec-websocket-protocol"]',
        ],
        censor: (value) => (typeof value === 'string' ? redact(value) : '[redacted]'),
      },
    },
    destination,
  );
}

/** Strips credentials from a URL's query for logging. */
export function redactUrl(url: string): string {
  return url.replace(
    /([?&](?:token|access_token|ticket)=)([^&]*)/gi,
    (_m, key: string, value: string) => key + redact(value),
  );
}

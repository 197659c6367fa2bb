import { createHash } from 'node:crypto';
import pino, { type Logger } from 'pino';
import { redact } from './gateway/handshake-request.js';

/** Headers that carry a credential (Node lowercases header names). */
const CREDENTIAL_HEADERS = [
  'authorization',
  'proxy-authorization',
  'cookie',
  'set-cookie',
  'token',
  'x-app-key',
  'x-admin-key',
  'sec-websocket-protocol',
] as const;

/** What `redact` leaves of a credential: at most 8 characters, `…`, at most 4; or `***`. */
const SHORTENED = /^(\*\*\*|[^…]{0,8}…[^…]{0,4})$/u;

/**
 * pino's error serializer without `rawPacket`: the bytes of a request the HTTP parser refused
 * (Fastify logs that error at `trace`), headers and credentials included.
 */
function serializeError(err: Error): Record<string, unknown> {
  const { rawPacket: _raw, ...rest } = pino.stdSerializers.err(err) as unknown as Record<string, unknown>;
  return rest;
}

/**
 * Structured JSON logs. Credentials never appear whole: known header and field names are
 * shortened to their first 8 and last 4 characters (SPEC §8).
 */
export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'gatehouse' },
      serializers: { err: serializeError },
      redact: {
        paths: [
          'token',
          'refresh_token',
          'refreshToken',
          'ticket',
          'password',
          ...CREDENTIAL_HEADERS.map((name) => `headers["${name}"]`),
        ],
        // A value shortened already (redactHeaders) stays as it is rather than becoming `***`.
        censor: (value) => (typeof value !== 'string' ? '[redacted]' : SHORTENED.test(value) ? value : redact(value)),
      },
    },
    destination,
  );
}

/** Query parameters whose value is a credential, compared after decoding and in any case. */
const CREDENTIAL_PARAMS = new Set(['token', 'access_token', 'refresh_token', 'ticket', 'wstoken', 'password', 'pwd']);

function decodeParam(text: string): string {
  try {
    return decodeURIComponent(text.replace(/\+/g, ' '));
  } catch {
    return text;
  }
}

/**
 * Strips credentials from a URL's query for logging. Names are decoded first, as the query
 * parser reads them, so `?%74oken=…` is redacted like `?token=…`.
 */
export function redactUrl(url: string): string {
  const at = url.indexOf('?');
  if (at < 0) return url;
  const query = url
    .slice(at + 1)
    .split('&')
    .map((pair) => {
      const eq = pair.indexOf('=');
      if (eq < 0) return pair;
      const name = pair.slice(0, eq);
      if (!CREDENTIAL_PARAMS.has(decodeParam(name).toLowerCase())) return pair;
      return `${name}=${redact(decodeParam(pair.slice(eq + 1)))}`;
    });
  return `${url.slice(0, at)}?${query.join('&')}`;
}

/** A copy of request headers for a log line: credential headers shortened (see `redact`), the rest as is. */
export function redactHeaders(headers: Record<string, string | string[] | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    const text = Array.isArray(value) ? value.join(', ') : value;
    out[name] = (CREDENTIAL_HEADERS as readonly string[]).includes(name.toLowerCase()) ? redact(text) : text;
  }
  return out;
}

/**
 * Names a key in logs without revealing it: the first 8 hex digits of its SHA-256
 * (`printf %s "$KEY" | sha256sum | cut -c1-8`).
 */
export function keyFingerprint(key: string): string {
  return createHash('sha256').update(key).digest('hex').slice(0, 8);
}

import type { IncomingMessage } from 'node:http';
import { BEARER_SUBPROTOCOL_PREFIX } from '@gatehouse/protocol';
import type { EndpointConfig } from '../config.js';
import { GatehouseError, isGatehouseError } from '../errors.js';
import { deviceField, deviceTypeField } from './device-fields.js';

/** Device context a client declares in its handshake (SPEC §3); the type is normalised. */
export interface DeviceContext {
  deviceType: string | null;
  deviceId: string | null;
  clientId: string | null;
  protocolVersion: string | null;
}

/**
 * Everything the gateway decides a handshake on, read from the upgrade request once. The
 * gateway never looks at the raw request again (except to hand it to ws for the 101).
 */
export interface HandshakeRequest {
  /** The request path without its query. */
  path: string;
  /** The endpoint at that path; null answers 404. */
  endpoint: EndpointConfig | null;
  ip: string;
  origin: string | null;
  device: DeviceContext;
  /** The credential, from the first of the places SPEC §3 lists; null when none was presented. */
  credential: string | null;
  /**
   * Why the request is malformed (two different credentials, a bad device field), refused
   * as INVALID_REQUEST — after the rate and capacity checks, as any other refusal.
   */
  invalid: string | null;
}

export interface HandshakeParseOptions {
  endpoints: ReadonlyMap<string, EndpointConfig>;
  /** Read the client's address from the last `X-Forwarded-For` entry (one trusted proxy). */
  trustProxy: boolean;
}

const NO_DEVICE: DeviceContext = { deviceType: null, deviceId: null, clientId: null, protocolVersion: null };
const BEARER = /^bearer\s+/i;

function header(req: IncomingMessage, name: string): string | null {
  const value = req.headers[name];
  if (Array.isArray(value)) return value[0] ?? null;
  return value ?? null;
}

function stripBearer(value: string): string {
  return BEARER.test(value) ? value.replace(BEARER, '') : value;
}

/**
 * Parses an upgrade request. Cheap on the hot path: the path and query are split, not
 * URL-parsed, and the query is only parsed when there is one.
 */
export function parseHandshakeRequest(req: IncomingMessage, options: HandshakeParseOptions): HandshakeRequest {
  let target = req.url ?? '/';
  const hash = target.indexOf('#');
  if (hash >= 0) target = target.slice(0, hash);
  const q = target.indexOf('?');
  const path = q < 0 ? target : target.slice(0, q);
  const query = q < 0 ? null : new URLSearchParams(target.slice(q + 1));
  const request: HandshakeRequest = {
    path,
    endpoint: options.endpoints.get(path) ?? null,
    ip: clientIp(req, options.trustProxy),
    origin: header(req, 'origin'),
    device: NO_DEVICE,
    credential: null,
    invalid: null,
  };
  try {
    request.device = deviceContext(req, query);
    request.credential = findCredential(req, query);
  } catch (err) {
    if (!isGatehouseError(err)) throw err;
    request.invalid = err.message;
  }
  return request;
}

/**
 * The credential of a handshake, from the places SPEC §3 lists, in its order. Two places
 * carrying different credentials is INVALID_REQUEST; the same one twice is fine.
 */
function findCredential(req: IncomingMessage, query: URLSearchParams | null): string | null {
  let found: string | null = null;
  const add = (value: string): void => {
    if (!value) return;
    if (found !== null && found !== value)
      throw new GatehouseError('INVALID_REQUEST', 'two different credentials were presented');
    found = value;
  };
  const authorization = header(req, 'authorization');
  if (authorization && BEARER.test(authorization)) add(stripBearer(authorization).trim());
  const tokenHeader = header(req, 'token');
  if (tokenHeader) add(stripBearer(tokenHeader).trim());
  const protocols = header(req, 'sec-websocket-protocol');
  if (protocols)
    for (const entry of protocols.split(',')) {
      const protocol = entry.trim();
      if (protocol.startsWith(BEARER_SUBPROTOCOL_PREFIX)) add(protocol.slice(BEARER_SUBPROTOCOL_PREFIX.length));
    }
  if (query)
    for (const name of ['token', 'access_token', 'ticket']) {
      const value = query.get(name);
      if (value) add(stripBearer(value).trim());
    }
  return found;
}

function deviceContext(req: IncomingMessage, query: URLSearchParams | null): DeviceContext {
  const deviceType =
    header(req, 'devicetype') ??
    query?.get('device_type') ??
    query?.get('platform') ??
    query?.get('deviceType') ??
    null;
  const deviceId = header(req, 'device-id') ?? query?.get('device_id') ?? null;
  const clientId = header(req, 'client-id') ?? query?.get('client_id') ?? null;
  const protocolVersion = header(req, 'protocol-version');
  if (deviceType === null && deviceId === null && clientId === null && protocolVersion === null) return NO_DEVICE;
  return {
    deviceType: deviceTypeField('deviceType', deviceType),
    deviceId: deviceField('Device-Id', deviceId),
    clientId: deviceField('Client-Id', clientId),
    protocolVersion,
  };
}

/**
 * The client's address. Behind one trusted proxy (`server.trustProxy`) it is the last
 * `X-Forwarded-For` entry — the address the proxy saw; entries before it are whatever the
 * client claimed and are ignored.
 */
function clientIp(req: IncomingMessage, trustProxy: boolean): string {
  const direct = req.socket.remoteAddress ?? 'unknown';
  if (!trustProxy) return direct;
  const forwarded = header(req, 'x-forwarded-for');
  const last = forwarded?.split(',').at(-1)?.trim();
  return last || direct;
}

/** Redacts a credential for logs: first 8 and last 4 characters (SPEC §8). */
export function redact(credential: string | null | undefined): string {
  if (!credential) return '';
  if (credential.length <= 16) return '***';
  return `${credential.slice(0, 8)}…${credential.slice(-4)}`;
}

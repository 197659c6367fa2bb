import type { IncomingMessage } from 'node:http';
import { BEARER_SUBPROTOCOL_PREFIX } from '@gatehouse/protocol';
import { GatehouseError } from '../errors.js';

/** Device context a client declares in its handshake (SPEC §3). */
export interface DeviceContext {
  deviceType: string | null;
  deviceId: string | null;
  clientId: string | null;
  protocolVersion: string | null;
}

const DEVICE_FIELD = /^[A-Za-z0-9_.:-]{1,128}$/;

function header(req: IncomingMessage, name: string): string | null {
  const value = req.headers[name];
  if (Array.isArray(value)) return value[0] ?? null;
  return value ?? null;
}

function stripBearer(value: string): string {
  return /^bearer\s+/i.test(value) ? value.replace(/^bearer\s+/i, '') : value;
}

/**
 * The credential of a handshake, from the places SPEC §3 lists, in its order. Two places
 * carrying different credentials is INVALID_REQUEST; the same one twice is fine.
 */
export function findCredential(req: IncomingMessage, query: URLSearchParams): string | null {
  const found: string[] = [];
  const authorization = header(req, 'authorization');
  if (authorization && /^bearer\s+/i.test(authorization)) found.push(stripBearer(authorization).trim());
  const tokenHeader = header(req, 'token');
  if (tokenHeader) found.push(stripBearer(tokenHeader).trim());
  const protocols = header(req, 'sec-websocket-protocol');
  if (protocols)
    for (const entry of protocols.split(',')) {
      const protocol = entry.trim();
      if (protocol.startsWith(BEARER_SUBPROTOCOL_PREFIX)) found.push(protocol.slice(BEARER_SUBPROTOCOL_PREFIX.length));
    }
  for (const name of ['token', 'access_token', 'ticket']) {
    const value = query.get(name);
    if (value) found.push(stripBearer(value).trim());
  }
  const distinct = new Set(found.filter(Boolean));
  if (distinct.size > 1) throw new GatehouseError('INVALID_REQUEST', 'two different credentials were presented');
  return distinct.size === 1 ? (distinct.values().next().value as string) : null;
}

function deviceField(name: string, value: string | null): string | null {
  if (value === null || value === '') return null;
  if (!DEVICE_FIELD.test(value)) throw new GatehouseError('INVALID_REQUEST', `${name} is not a valid identifier`);
  return value;
}

export function deviceContext(req: IncomingMessage, query: URLSearchParams): DeviceContext {
  return {
    deviceType: deviceField(
      'deviceType',
      header(req, 'devicetype') ?? query.get('device_type') ?? query.get('platform') ?? query.get('deviceType'),
    ),
    deviceId: deviceField('Device-Id', header(req, 'device-id') ?? query.get('device_id')),
    clientId: deviceField('Client-Id', header(req, 'client-id') ?? query.get('client_id')),
    protocolVersion: header(req, 'protocol-version'),
  };
}

/**
 * The client's address. Behind one trusted proxy (`server.trustProxy`) it is the last
 * `X-Forwarded-For` entry — the address the proxy saw; entries before it are whatever the
 * client claimed and are ignored.
 */
export function clientIp(req: IncomingMessage, trustProxy: boolean): string {
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

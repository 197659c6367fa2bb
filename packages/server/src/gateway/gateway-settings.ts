import { type ConnectionPolicy, type EndpointConfig, type GatehouseConfig, ms } from '../config.js';

/** The slice of the configuration the gateway uses, durations in milliseconds. */
export interface GatewaySettings {
  endpoints: readonly EndpointConfig[];
  /** Empty: any origin. */
  allowedOrigins: readonly string[];
  connectionPolicy: Readonly<Record<string, ConnectionPolicy>>;
  trustProxy: boolean;
  maxFrameBytes: number;
  maxBufferedBytes: number;
  maxConnections: number;
  maxUnauthenticated: number;
  maxHandshakesInProgress: number;
  messagesPerSecond: number;
  authTimeout: number;
  heartbeatInterval: number;
  heartbeatTimeout: number;
  sweepInterval: number;
  /** How long before expiry `token_expiring` is sent. */
  expiringNotice: number;
}

export function gatewaySettings(config: GatehouseConfig): GatewaySettings {
  return {
    endpoints: config.ws.endpoints,
    allowedOrigins: config.ws.allowedOrigins,
    // Checked against the three policies when the configuration is loaded.
    connectionPolicy: config.ws.connectionPolicy as Record<string, ConnectionPolicy>,
    trustProxy: config.server.trustProxy,
    maxFrameBytes: config.ws.maxFrameBytes,
    maxBufferedBytes: config.ws.maxBufferedBytes,
    maxConnections: config.limits.maxConnections,
    maxUnauthenticated: config.limits.maxUnauthenticated,
    maxHandshakesInProgress: config.limits.maxHandshakesInProgress,
    messagesPerSecond: config.limits.messagesPerSecond,
    authTimeout: ms(config, 'ws.authTimeout'),
    heartbeatInterval: ms(config, 'ws.heartbeatInterval'),
    heartbeatTimeout: ms(config, 'ws.heartbeatTimeout'),
    sweepInterval: ms(config, 'ws.sweepInterval'),
    expiringNotice: ms(config, 'tokens.expiringNotice'),
  };
}

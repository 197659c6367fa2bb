export type {
  AckBody,
  ChatMessage,
  HistoryBody,
  PrincipalInfo,
  ServerEvent,
  SupportSession,
  TerminalStatus,
} from '@gatehouse/protocol';
export {
  type BackoffOptions,
  backoffDelay,
  DEFAULT_BACKOFF,
  nextSpreadAttempt,
  type SpreadSchedule,
  startSpread,
} from './backoff.js';
export { ClientErrorCode, GatehouseClientError } from './client-error.js';
export {
  type AuthMode,
  type ClientEvents,
  type ClientStatus,
  type CloseInfo,
  GatehouseClient,
  type GatehouseClientOptions,
} from './gatehouse-client.js';
export type { WebSocketConstructor } from './open-socket.js';

import type { Logger } from 'pino';
import type { AuthService } from './auth/auth-service.js';
import type { RateLimits } from './auth/rate-limits.js';
import type { RevocationCache } from './auth/revocation-cache.js';
import type { Broker } from './broker/broker.js';
import type { Clock } from './clock.js';
import type { ClusterState } from './cluster/cluster-state.js';
import type { GatehouseConfig } from './config.js';
import type { ControlChannel } from './control-channel.js';
import type { Gateway } from './gateway/gateway.js';
import type { Messaging } from './messaging/messaging.js';
import type { Metrics } from './metrics.js';
import type { Store } from './store/store.js';
import type { StoreStartup } from './store/store-startup.js';
import type { TokenService } from './tokens/token-service.js';

/** Everything the composition root wires together; routes and the CLI take what they need. */
export interface Services {
  config: GatehouseConfig;
  clock: Clock;
  log: Logger;
  store: Store;
  broker: Broker;
  tokens: TokenService;
  revocations: RevocationCache;
  control: ControlChannel;
  limits: RateLimits;
  auth: AuthService;
  gateway: Gateway;
  messaging: Messaging;
  metrics: Metrics;
  cluster: ClusterState;
  /** False while the store could not be reached at start (the node serves, not ready). */
  storeStartup: StoreStartup;
  nodeId: string;
  startedAt: number;
}

export { Gatehouse, type GatehouseOptions } from './app.js';
export type { Broker, BrokerStatus } from './broker/broker.js';
export { MemoryBroker } from './broker/memory-broker.js';
export { NatsBroker, type NatsBrokerOptions } from './broker/nats-broker.js';
export { RedisBroker, type RedisBrokerOptions } from './broker/redis-broker.js';
export { type Clock, ManualClock, systemClock } from './clock.js';
export {
  CONFIG_SCHEMA,
  ConfigError,
  type ConfigProblem,
  DEFAULT_CONFIG,
  envName,
  type GatehouseConfig,
  loadConfig,
} from './config.js';
export { GatehouseError } from './errors.js';
export type { Services } from './services.js';
export { PostgresStore, type PostgresStoreOptions } from './store/postgres-store.js';
export { SqliteStore } from './store/sqlite-store.js';
export type { Store } from './store/store.js';

export { Gatehouse, type GatehouseOptions } from './app.js';
export type { Broker } from './broker/broker.js';
export { MemoryBroker } from './broker/memory-broker.js';
export { type Clock, ManualClock, systemClock } from './clock.js';
export { DEFAULT_CONFIG, envName, type GatehouseConfig, loadConfig } from './config.js';
export { GatehouseError } from './errors.js';
export type { Services } from './services.js';
export { SqliteStore } from './store/sqlite-store.js';
export type { Store } from './store/store.js';

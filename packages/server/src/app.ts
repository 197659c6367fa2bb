import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import type { Logger } from 'pino';
import { AuthService } from './auth/auth-service.js';
import { RateLimits } from './auth/rate-limits.js';
import { RevocationCache } from './auth/revocation-cache.js';
import { sharedLimiters } from './auth/shared-rate-limiters.js';
import type { Broker } from './broker/broker.js';
import { MemoryBroker } from './broker/memory-broker.js';
import { NatsBroker } from './broker/nats-broker.js';
import { RedisBroker } from './broker/redis-broker.js';
import { type Clock, systemClock } from './clock.js';
import type { ClusterState } from './cluster/cluster-state.js';
import { MemoryClusterState } from './cluster/memory-cluster-state.js';
import { PostgresClusterState } from './cluster/postgres-cluster-state.js';
import { type ConfigInput, type GatehouseConfig, isLoadedConfig, loadConfig, ms } from './config.js';
import { ControlChannel } from './control-channel.js';
import { Gateway } from './gateway/gateway.js';
import { gatewaySettings } from './gateway/gateway-settings.js';
import { messageFrameHandlers } from './gateway/message-frames.js';
import { createRestApp, type RestApp } from './http/rest-app.js';
import { createLogger } from './logger.js';
import { ConversationDirectory } from './messaging/conversation-directory.js';
import { Delivery } from './messaging/delivery.js';
import { MessageWriter } from './messaging/message-writer.js';
import { Messaging } from './messaging/messaging.js';
import { PresenceNotifier } from './messaging/presence-notifier.js';
import { Metrics } from './metrics.js';
import type { Services } from './services.js';
import { PostgresStore } from './store/postgres-store.js';
import { SqliteStore } from './store/sqlite-store.js';
import type { Store } from './store/store.js';
import { keyRingFrom, loadOrCreateKeysFile } from './tokens/signing-keys.js';
import { TokenService } from './tokens/token-service.js';

export interface GatehouseOptions {
  /** A loaded configuration, or overrides applied on top of the defaults (no env, no file). */
  config?: GatehouseConfig | ConfigInput;
  clock?: Clock;
  logger?: Logger;
}

export interface StartupNotes {
  /** Set when the admin key was generated on this start (print it once). */
  generatedAdminKey: string | null;
  keysFileCreated: boolean;
  dataDir: string;
}

/** The data folder holds messages, password hashes and keys: a new one is owner-only (0700). */
function createDataDir(dataDir: string): void {
  if (existsSync(dataDir)) return;
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  chmodSync(dataDir, 0o700); // whatever the umask
}

/** The admin key: configured, or generated once into the data folder. */
function resolveAdminKey(config: GatehouseConfig, dataDir: string): { key: string; generated: boolean } {
  if (config.adminKey) return { key: config.adminKey, generated: false };
  const file = join(dataDir, 'admin-key');
  if (existsSync(file)) return { key: readFileSync(file, 'utf8').trim(), generated: false };
  const key = `gadm_${randomBytes(24).toString('base64url')}`;
  writeFileSync(file, `${key}\n`, { mode: 0o600 });
  return { key, generated: true };
}

function createStore(config: GatehouseConfig, dataDir: string, log: Logger): Store {
  const url = config.store.url;
  if (!url || url.startsWith('sqlite:')) {
    const file = url ? url.replace(/^sqlite:(\/\/)?/, '') : join(dataDir, 'gatehouse.db');
    return new SqliteStore(file === ':memory:' ? file : resolve(file), { synchronous: config.store.sqliteSynchronous });
  }
  if (url.startsWith('postgres://') || url.startsWith('postgresql://'))
    return new PostgresStore({
      url,
      poolSize: config.store.poolSize,
      connectTimeoutMs: ms(config, 'store.connectTimeout'),
      queryTimeoutMs: ms(config, 'store.queryTimeout'),
      onError: (err) => log.warn({ err }, 'a PostgreSQL connection was lost; the pool will open a new one'),
    });
  throw new TypeError(
    `store.url "${url.split(':')[0]}:…" is not supported (use sqlite:PATH, postgres://… or leave empty)`,
  );
}

/** Slots and presence live where every node can reach them: PostgreSQL when the store is there. */
function createClusterState(config: GatehouseConfig, nodeId: string, log: Logger): ClusterState {
  const url = config.store.url;
  if (/^postgres(ql)?:\/\//.test(url)) {
    const heartbeat = ms(config, 'ws.heartbeatInterval');
    return new PostgresClusterState(
      url,
      nodeId,
      Math.min(heartbeat, 10_000),
      heartbeat + ms(config, 'ws.heartbeatTimeout'),
      log,
    );
  }
  return new MemoryClusterState(nodeId);
}

function createBroker(config: GatehouseConfig, log: Logger): Broker {
  const { url, prefix } = config.broker;
  const logger = log.child({ component: 'broker' });
  if (url === 'memory://' || url === '') return new MemoryBroker();
  if (url.startsWith('redis://') || url.startsWith('rediss://')) return new RedisBroker(url, { prefix, logger });
  if (url.startsWith('nats://')) return new NatsBroker(url, { prefix, logger });
  throw new TypeError(`broker.url "${url.split(':')[0]}:…" is not supported (use memory://, redis://… or nats://…)`);
}

/** The composition root: picks the backends and wires every service. */
export class Gatehouse {
  private constructor(
    readonly services: Services,
    readonly rest: RestApp,
    readonly notes: StartupNotes,
    private readonly delivery: Delivery,
    private readonly closeLimiters: () => Promise<void>,
  ) {}

  static async create(options: GatehouseOptions = {}): Promise<Gatehouse> {
    const config = isLoadedConfig(options.config) ? options.config : loadConfig({ overrides: options.config ?? {} });
    const clock = options.clock ?? systemClock;
    const log = options.logger ?? createLogger(config.log.level);
    const dataDir = resolve(config.dataDir);
    createDataDir(dataDir);
    const keys = loadOrCreateKeysFile(config.tokens.keysFile || join(dataDir, 'keys.json'));
    const admin = resolveAdminKey(config, dataDir);
    const resolvedConfig: GatehouseConfig = Object.freeze({ ...config, adminKey: admin.key });

    const store = createStore(resolvedConfig, dataDir, log);
    try {
      await store.migrate();
    } catch (err) {
      await store.close();
      throw err;
    }
    const broker = createBroker(resolvedConfig, log);
    const nodeId = resolvedConfig.nodeId || `${hostname()}-${process.pid}-${randomBytes(2).toString('hex')}`;
    const tokens = new TokenService(
      keyRingFrom(keys.file, resolvedConfig.tokens.algorithms),
      {
        issuer: resolvedConfig.tokens.issuer,
        audience: resolvedConfig.tokens.audience,
        algorithms: resolvedConfig.tokens.algorithms,
        clockToleranceMs: ms(resolvedConfig, 'tokens.clockTolerance'),
      },
      clock,
    );
    const revocations = new RevocationCache(store);
    const control = new ControlChannel(broker);
    control.on((event) => {
      if (event.op === 'session-revoked') revocations.markSessionRevoked(event.sid);
      else if (event.op === 'principal-revoked' || event.op === 'blocked' || event.op === 'unblocked')
        revocations.setPrincipal(event.id, { tokenVersion: event.tokenVersion, blocked: event.op === 'blocked' });
    });
    const limiterBackend = sharedLimiters(resolvedConfig, log);
    const limits = new RateLimits(resolvedConfig, limiterBackend.create);
    await limiterBackend.ready();
    const auth = new AuthService(store, tokens, revocations, control, limits, resolvedConfig, clock);

    const cluster = createClusterState(resolvedConfig, nodeId, log);
    await cluster.start();
    let messaging: Messaging | null = null;
    let metrics: Metrics | null = null;
    let presence: PresenceNotifier | null = null;
    const gateway = new Gateway({
      auth,
      clock,
      limits,
      control,
      settings: gatewaySettings(resolvedConfig),
      log,
      nodeId,
      slots: cluster,
      hooks: {
        onAuthenticated: (conn) => {
          presence?.connected(conn);
          return messaging?.replay(conn);
        },
        onClosed: (conn) => presence?.disconnected(conn),
        onHandshake: (outcome) => metrics?.handshakes.inc({ outcome }),
      },
    });
    metrics = new Metrics(nodeId, gateway.registry);
    const m = metrics;
    const delivery = new Delivery(broker, gateway.registry, log, {
      publish: (s) => m.brokerLatency.observe(s),
      delivered: (s) => m.deliveryLatency.observe(s),
    });
    const writer = new MessageWriter(
      store,
      (err) => log.error({ err }, 'message batch failed to store'),
      (s) => m.storeLatency.observe(s),
    );
    presence = new PresenceNotifier(cluster, store, delivery, log);
    messaging = new Messaging(
      store,
      new ConversationDirectory(store),
      writer,
      delivery,
      control,
      resolvedConfig,
      clock,
      log,
    );
    for (const [type, handler] of Object.entries(messageFrameHandlers(messaging))) gateway.handle(type, handler);

    const services: Services = {
      config: resolvedConfig,
      clock,
      log,
      store,
      broker,
      tokens,
      revocations,
      control,
      limits,
      auth,
      gateway,
      messaging,
      metrics,
      cluster,
      nodeId,
      startedAt: clock.now(),
    };
    await control.start();
    await delivery.start();
    const rest = await createRestApp(services, log);
    gateway.attachTo(rest.server);
    return new Gatehouse(
      services,
      rest,
      { generatedAdminKey: admin.generated ? admin.key : null, keysFileCreated: keys.created, dataDir },
      delivery,
      limiterBackend.close,
    );
  }

  /** Starts listening; resolves with the bound address (port 0 picks a free one). */
  async listen(): Promise<{ host: string; port: number; url: string }> {
    const { host, port } = this.services.config.server;
    await this.rest.listen({ host, port });
    const address = this.rest.server.address();
    const bound = typeof address === 'object' && address ? address.port : port;
    const scheme = this.services.config.server.tlsCert ? 'https' : 'http';
    return { host, port: bound, url: `${scheme}://${host.includes(':') ? `[${host}]` : host}:${bound}` };
  }

  /** Graceful shutdown: stop accepting, close sockets with 1001, finish in-flight stores. */
  async close(): Promise<void> {
    const { gateway, messaging, control, broker, store } = this.services;
    await gateway.close();
    await messaging.drain();
    await this.rest.close();
    await control.stop();
    await this.delivery.stop();
    await this.services.cluster.stop();
    await this.closeLimiters();
    await broker.close();
    await store.close();
  }
}

import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import type pg from 'pg';
import type { Logger } from 'pino';
import { AuthService, tokenLifetimes } from './auth/auth-service.js';
import { RateLimits } from './auth/rate-limits.js';
import { RevocationCache } from './auth/revocation-cache.js';
import { type LimiterBackend, sharedLimiters } from './auth/shared-rate-limiters.js';
import type { Broker, BrokerStatus } from './broker/broker.js';
import { subscribeWhenReachable } from './broker/broker-subscriptions.js';
import { MemoryBroker } from './broker/memory-broker.js';
import { NatsBroker } from './broker/nats-broker.js';
import { RedisBroker } from './broker/redis-broker.js';
import { type Clock, systemClock } from './clock.js';
import { BrokerRecovery } from './cluster/broker-recovery.js';
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
import { StoreStartup } from './store/store-startup.js';
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
    return new SqliteStore(file === ':memory:' ? file : resolve(file), {
      synchronous: config.store.sqliteSynchronous,
      checkpointThread: config.store.sqliteCheckpointThread,
      onCheckpointThreadFailure: (err) =>
        log.error({ err }, 'the SQLite checkpoint thread failed; checkpoints run on the main connection from now on'),
    });
  }
  if (url.startsWith('postgres://') || url.startsWith('postgresql://'))
    return new PostgresStore({
      url,
      poolSize: config.store.poolSize,
      connectTimeoutMs: ms(config, 'store.connectTimeout'),
      queryTimeoutMs: ms(config, 'store.queryTimeout'),
      // The driver's error carries its whole client (parameters, parsed statements): the log keeps what it means.
      onError: (err) =>
        log.warn(
          { err: { type: err.name, message: err.message, code: (err as { code?: string }).code } },
          'a PostgreSQL connection was lost; the pool will open a new one',
        ),
    });
  throw new TypeError(
    `store.url "${url.split(':')[0]}:…" is not supported (use sqlite:PATH, postgres://… or leave empty)`,
  );
}

/** Slots and presence live where every node can reach them: PostgreSQL when the store is there. */
function createClusterState(
  config: GatehouseConfig,
  nodeId: string,
  pool: pg.Pool | null,
  clock: Clock,
  log: Logger,
): ClusterState {
  if (!pool) return new MemoryClusterState(nodeId);
  const heartbeat = ms(config, 'ws.heartbeatInterval');
  return new PostgresClusterState({
    pool,
    node: nodeId,
    heartbeatMs: Math.min(heartbeat, 10_000),
    liveWindowMs: heartbeat + ms(config, 'ws.heartbeatTimeout'),
    clock,
    log,
  });
}

/** Rate-limit counters: Redis when the broker is Redis, else PostgreSQL when the store is, else memory. */
function limiterBackend(config: GatehouseConfig, pool: pg.Pool | null): LimiterBackend {
  const { url, prefix } = config.broker;
  if (url.startsWith('redis://') || url.startsWith('rediss://')) return { kind: 'redis', url, prefix };
  if (pool) return { kind: 'postgres', pool };
  return { kind: 'memory' };
}

/**
 * What a start opened, closed in the reverse order: on a failed start (nothing stays open
 * behind the error) and on shutdown. A closer that fails is logged and the others still run.
 */
class Resources {
  private readonly closers: { what: string; close: () => Promise<unknown> | unknown }[] = [];

  constructor(private readonly log: Logger) {}

  add(what: string, close: () => Promise<unknown> | unknown): void {
    this.closers.push({ what, close });
  }

  async closeAll(): Promise<void> {
    for (const { what, close } of this.closers.splice(0).reverse()) {
      try {
        await close();
      } catch (err) {
        this.log.warn({ err, what }, 'closing failed');
      }
    }
  }
}

/** How often the store's upkeep runs on its own (SQLite: a checkpoint when 1,000 WAL pages wait). */
const UPKEEP_INTERVAL_MS = 1000;

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
    private readonly resources: Resources,
  ) {}

  /**
   * Opens the store, the broker and the rest, and wires them. A broker that is unreachable
   * does not hold the start up (the node serves, not ready, and subscribes once it can); a
   * start that fails closes everything it opened before the error.
   */
  static async create(options: GatehouseOptions = {}): Promise<Gatehouse> {
    const config = isLoadedConfig(options.config) ? options.config : loadConfig({ overrides: options.config ?? {} });
    const clock = options.clock ?? systemClock;
    const log = options.logger ?? createLogger(config.log.level);
    const dataDir = resolve(config.dataDir);
    createDataDir(dataDir);
    const keys = loadOrCreateKeysFile(config.tokens.keysFile || join(dataDir, 'keys.json'));
    const admin = resolveAdminKey(config, dataDir);
    const resolvedConfig: GatehouseConfig = Object.freeze({ ...config, adminKey: admin.key });
    const resources = new Resources(log);
    try {
      const services = await Gatehouse.wire(resolvedConfig, keys.file, clock, log, resources);
      const rest = await createRestApp(services, log);
      resources.add('REST server', () => rest.close());
      services.gateway.attachTo(rest.server);
      resources.add('WebSocket gateway', () => services.gateway.close());
      return new Gatehouse(
        services,
        rest,
        { generatedAdminKey: admin.generated ? admin.key : null, keysFileCreated: keys.created, dataDir },
        resources,
      );
    } catch (err) {
      await resources.closeAll();
      throw err;
    }
  }

  /** Everything but the HTTP side; each resource is added to `resources` as soon as it is open. */
  private static async wire(
    config: GatehouseConfig,
    keysFile: Parameters<typeof keyRingFrom>[0],
    clock: Clock,
    log: Logger,
    resources: Resources,
  ): Promise<Services> {
    const store = createStore(config, resolve(config.dataDir), log);
    resources.add('store', () => store.close());
    // Upkeep once a second too, besides after each batch of messages: writes other than messages
    // (logins, REST) get their checkpoint within a second, outside any commit.
    if (store.upkeep) {
      const stopUpkeep = clock.every(UPKEEP_INTERVAL_MS, () => store.upkeep?.());
      resources.add('store upkeep', async () => stopUpkeep());
    }
    // One PostgreSQL pool per node: the store's, shared by the cluster state and rate limits.
    const pool = store instanceof PostgresStore ? store.pool : null;
    const broker = createBroker(config, log);
    resources.add('broker', () => broker.close());
    const nodeId = config.nodeId || `${hostname()}-${process.pid}-${randomBytes(2).toString('hex')}`;
    const tokens = new TokenService(
      keyRingFrom(keysFile, config.tokens.algorithms),
      {
        issuer: config.tokens.issuer,
        audience: config.tokens.audience,
        algorithms: config.tokens.algorithms,
        clockToleranceMs: ms(config, 'tokens.clockTolerance'),
      },
      clock,
    );
    const revocations = new RevocationCache(store, clock, ms(config, 'auth.revocationCacheTtl'));
    const control = new ControlChannel(broker, log.child({ component: 'control' }));
    control.on((event) => {
      if (event.op === 'session-revoked') revocations.markSessionRevoked(event.sid);
      else if (event.op === 'principal-revoked' || event.op === 'blocked' || event.op === 'unblocked')
        revocations.setPrincipal(event.id, { tokenVersion: event.tokenVersion, blocked: event.op === 'blocked' });
    });
    const limiters = sharedLimiters(limiterBackend(config, pool), log);
    resources.add('rate limits', () => limiters.close());
    const limits = new RateLimits(
      { ...config.limits, loginWindowMs: ms(config, 'limits.loginWindow') },
      limiters.create,
    );
    const auth = new AuthService(store, tokens, revocations, control, limits, tokenLifetimes(config), clock);

    const cluster = createClusterState(config, nodeId, pool, clock, log);
    resources.add('cluster state', () => cluster.stop());
    // Everything that needs the store at start, retried in the background (the node serving,
    // not ready) while PostgreSQL cannot be reached.
    const storeStartup = new StoreStartup(async () => {
      await store.migrate();
      await limiters.ready();
      await cluster.start();
    }, log);
    resources.add('store start-up', () => storeStartup.stop());
    await storeStartup.start();
    let messaging: Messaging | null = null;
    let metrics: Metrics | null = null;
    let presence: PresenceNotifier | null = null;
    const gateway = new Gateway({
      auth,
      clock,
      limits,
      control,
      settings: gatewaySettings(config),
      log,
      nodeId,
      slots: cluster,
      hooks: {
        onBound: (conn) => messaging?.holdUntilReplay(conn),
        onAuthenticated: (conn) => {
          presence?.connected(conn);
          return messaging?.replay(conn);
        },
        onClosed: (conn) => presence?.disconnected(conn),
        onHandshake: (outcome) => metrics?.handshakes.inc({ outcome }),
      },
    });
    if (!storeStartup.ready) gateway.holdWhile(() => !storeStartup.ready);
    metrics = new Metrics(nodeId, gateway.registry);
    const m = metrics;
    const delivery = new Delivery(
      broker,
      gateway.registry,
      log,
      {
        publish: (s) => m.brokerLatency.observe(s),
        delivered: (s) => m.deliveryLatency.observe(s),
      },
      broker instanceof MemoryBroker,
    );
    const writer = new MessageWriter(
      store,
      (err) => log.error({ err }, 'message batch failed to store'),
      (s) => m.storeLatency.observe(s),
    );
    presence = new PresenceNotifier(cluster, store, delivery, log);
    const notifier = presence;
    // Closed after the gateway: the offline updates of the sockets it closed finish first.
    resources.add('presence updates', () => notifier.drain());
    const conversations = new ConversationDirectory(store);
    messaging = new Messaging(store, conversations, writer, delivery, control, config.messages, clock, log, (ids) =>
      cluster.online(ids),
    );
    for (const [type, handler] of Object.entries(messageFrameHandlers(messaging))) gateway.handle(type, handler);
    const drained = messaging;
    resources.add('message writer', () => drained.drain());

    const recovery = new BrokerRecovery(broker, revocations, [conversations], gateway.registry, log);
    recovery.start();
    resources.add('broker recovery', () => recovery.stop());
    resources.add('broker subscriptions', async () => {
      await control.stop();
      await delivery.stop();
    });
    const subscribed = Promise.all([
      subscribeWhenReachable(
        broker,
        () => control.start(),
        () => control.stop(),
        log,
      ),
      subscribeWhenReachable(
        broker,
        () => delivery.start(),
        () => delivery.stop(),
        log,
      ),
    ]);
    // Serve without the broker when it cannot be reached now (not ready until it is): wait
    // for the subscriptions only while the first connection attempt has not failed.
    let stopWaiting = () => {};
    const unreachable = new Promise<void>((resolve) => {
      const given = (status: BrokerStatus) => status === 'reconnecting' || status === 'closed';
      stopWaiting = broker.onStatus((status) => {
        if (given(status)) resolve();
      });
      // It may have failed already while the store and the cluster state were opening.
      if (given(broker.status())) resolve();
    });
    await Promise.race([subscribed, unreachable]);
    stopWaiting();
    return {
      config,
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
      storeStartup,
      nodeId,
      startedAt: clock.now(),
    };
  }

  /** Starts listening; resolves with the bound address (port 0 picks a free one). Closes everything when it cannot. */
  async listen(): Promise<{ host: string; port: number; url: string }> {
    const { host, port } = this.services.config.server;
    try {
      await this.rest.listen({ host, port });
    } catch (err) {
      // A port in use is a failed start too: nothing stays open behind the error.
      await this.close();
      throw err;
    }
    const address = this.rest.server.address();
    const bound = typeof address === 'object' && address ? address.port : port;
    const scheme = this.services.config.server.tlsCert ? 'https' : 'http';
    return { host, port: bound, url: `${scheme}://${host.includes(':') ? `[${host}]` : host}:${bound}` };
  }

  /**
   * Graceful shutdown, in the reverse order of the start: stop accepting and close sockets
   * with 1001, close the REST server, finish in-flight stores, then the broker
   * subscriptions, cluster state, rate limits, broker and store.
   */
  async close(): Promise<void> {
    await this.resources.closeAll();
  }
}

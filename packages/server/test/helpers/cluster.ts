import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { generateKeysFile } from '../../src/tokens/signing-keys.js';
import { api } from './test-server.js';

/** The compiled CLI next to this compiled helper (dist/test/helpers → dist/src/cli.js). */
const CLI = fileURLToPath(new URL('../../src/cli.js', import.meta.url));
/** The node's "listening" log line (stdout is JSON log lines only). */
const SERVING = /"url":"(https?:\/\/[^"]+)"[^\n]*"msg":"gatehouse listening"/;
/** How long a node may take to print its URL (three processes start at once on two cores). */
const START_WAIT_MS = 30_000;
/** How long a node may take to shut down on SIGTERM before it is killed. */
const STOP_WAIT_MS = 5_000;
const OUTPUT_TAIL = 20_000;

/** Every node process this test process started and that still runs: killed if the tests exit. */
const running = new Set<ChildProcess>();
let exitHookInstalled = false;
function track(child: ChildProcess): void {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', () => {
      for (const proc of running) proc.kill('SIGKILL');
    });
  }
  running.add(child);
  child.once('exit', () => running.delete(child));
}

function exited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

/**
 * One Gatehouse node as a separate process: `node cli.js serve --port P --data-dir D`, with
 * its configuration in GATEHOUSE_* variables. It keeps its port across restarts, like a node
 * behind a load balancer.
 */
export class ClusterNode {
  url = '';
  wsUrl = '';
  port = 0;
  private child: ChildProcess | null = null;
  private tail = '';
  /** Set while this helper kills or stops the process: any other exit is reported. */
  private exitExpected = false;

  constructor(
    readonly name: string,
    readonly nodeId: string,
    readonly dataDir: string,
    private readonly env: NodeJS.ProcessEnv,
  ) {}

  get running(): boolean {
    return this.child !== null && !exited(this.child);
  }

  /** The last lines the process wrote (stdout and stderr), for failure messages. */
  get output(): string {
    return this.tail;
  }

  /** Spawns the process and resolves once it printed the URL it serves on. */
  async start(): Promise<void> {
    if (this.running) throw new Error(`node ${this.name} is already running`);
    const child = spawn(process.execPath, [CLI, 'serve', '--port', String(this.port), '--data-dir', this.dataDir], {
      env: this.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    this.exitExpected = false;
    track(child);
    child.once('exit', (code, signal) => {
      if (!this.exitExpected)
        process.stderr.write(`cluster node ${this.name} exited by itself (${code ?? signal}):\n${this.tail}\n`);
    });
    const keep = (chunk: Buffer) => {
      this.tail = (this.tail + chunk.toString()).slice(-OUTPUT_TAIL);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    const url = await new Promise<string>((resolve, reject) => {
      let seen = '';
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`node ${this.name} did not start within ${START_WAIT_MS} ms:\n${this.tail}`));
      }, START_WAIT_MS);
      const onData = (chunk: Buffer) => {
        seen += chunk.toString();
        const match = SERVING.exec(seen);
        if (!match) return;
        clearTimeout(timer);
        child.stdout?.off('data', onData);
        resolve(match[1] as string);
      };
      child.stdout?.on('data', onData);
      child.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`node ${this.name} exited (${code ?? signal}) before serving:\n${this.tail}`));
      });
    });
    this.url = url;
    this.wsUrl = url.replace(/^http/, 'ws');
    this.port = Number(new URL(url).port);
  }

  /** `kill -9`: the process dies at once, saying goodbye to nobody. */
  async kill(): Promise<void> {
    await this.signal('SIGKILL', 0);
  }

  /** SIGTERM (graceful shutdown), then SIGKILL if it takes too long. */
  async stop(): Promise<void> {
    await this.signal('SIGTERM', STOP_WAIT_MS);
  }

  /** Kills the process if it runs and starts it again on the same port with the same node id. */
  async restart(): Promise<void> {
    await this.kill();
    await this.start();
  }

  private async signal(signal: NodeJS.Signals, graceMs: number): Promise<void> {
    const child = this.child;
    if (!child || exited(child)) return;
    const done = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    this.exitExpected = true;
    child.kill(signal);
    if (graceMs > 0) {
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<'late'>((resolve) => {
        timer = setTimeout(() => resolve('late'), graceMs);
      });
      const outcome = await Promise.race([done, late]);
      clearTimeout(timer);
      if (outcome === 'late') child.kill('SIGKILL');
    }
    await done;
  }
}

/** A database of its own on the PostgreSQL server of `baseUrl`, dropped by `drop()`. */
export interface ClusterDatabase {
  name: string;
  url: string;
  drop(): Promise<void>;
}

async function adminQuery(url: string, sql: string, values: unknown[] = []): Promise<unknown[]> {
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => {});
  await client.connect();
  try {
    return (await client.query(sql, values)).rows;
  } finally {
    await client.end();
  }
}

/** Whether the server of `baseUrl` has a database of this name (to check that a cluster cleaned up). */
export async function databaseExists(baseUrl: string, name: string): Promise<boolean> {
  return (await adminQuery(baseUrl, 'SELECT 1 FROM pg_database WHERE datname = $1', [name])).length > 0;
}

export async function createClusterDatabase(baseUrl: string): Promise<ClusterDatabase> {
  const name = `gh_cluster_${process.pid}_${randomBytes(4).toString('hex')}`;
  await adminQuery(baseUrl, `CREATE DATABASE ${name}`);
  const url = new URL(baseUrl);
  url.pathname = `/${name}`;
  return {
    name,
    url: url.toString(),
    drop: async () => {
      await adminQuery(baseUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    },
  };
}

export interface ClusterOptions {
  /** A PostgreSQL URL whose role may create databases; the cluster gets a fresh database on that server. */
  postgresUrl: string;
  /** `redis://…` or `nats://…`. */
  brokerUrl: string;
  /** Node names, started at once (default a, b, c). */
  nodes?: string[];
  /** More GATEHOUSE_* settings for every node. */
  env?: Record<string, string>;
}

/**
 * N Gatehouse nodes as separate processes sharing one configuration: a fresh PostgreSQL
 * database and a fresh broker prefix per cluster (so runs never meet), one keys file, one
 * admin key. `close()` stops every process and drops the database, whatever happened.
 */
export class Cluster {
  readonly nodes = new Map<string, ClusterNode>();

  private constructor(
    readonly database: ClusterDatabase,
    readonly prefix: string,
    readonly adminKey: string,
    readonly env: NodeJS.ProcessEnv,
    private readonly dir: string,
  ) {}

  static async start(options: ClusterOptions): Promise<Cluster> {
    const dir = mkdtempSync(join(tmpdir(), 'gatehouse-cluster-'));
    let database: ClusterDatabase;
    try {
      database = await createClusterDatabase(options.postgresUrl);
    } catch (err) {
      rmSync(dir, { recursive: true, force: true });
      throw err;
    }
    const keysFile = join(dir, 'keys.json');
    writeFileSync(keysFile, `${JSON.stringify(generateKeysFile(), null, 2)}\n`, { mode: 0o600 });
    const prefix = `gh-cluster-${process.pid}-${randomBytes(4).toString('hex')}`;
    const adminKey = `gadm_cluster_${randomBytes(12).toString('hex')}`;
    // Nothing of the test runner's own GATEHOUSE_* settings leaks into the nodes.
    const env: NodeJS.ProcessEnv = Object.fromEntries(
      Object.entries(process.env).filter(([key]) => !key.startsWith('GATEHOUSE_')),
    );
    Object.assign(env, {
      GATEHOUSE_SERVER_HOST: '127.0.0.1',
      GATEHOUSE_STORE_URL: database.url,
      // A small pool (the node's only one: the cluster state and rate limits share it): clusters
      // of other test runs may share this PostgreSQL server and its 100 connections.
      GATEHOUSE_STORE_POOL_SIZE: '4',
      GATEHOUSE_BROKER_URL: options.brokerUrl,
      GATEHOUSE_BROKER_PREFIX: prefix,
      GATEHOUSE_TOKENS_KEYS_FILE: keysFile,
      GATEHOUSE_ADMIN_KEY: adminKey,
      GATEHOUSE_DEMO_SEED: 'false',
      GATEHOUSE_LOG_LEVEL: 'info', // the "listening" line is at info
      GATEHOUSE_LIMITS_HANDSHAKES_PER_SECOND_PER_IP: '100000',
      GATEHOUSE_LIMITS_LOGIN_ATTEMPTS_PER_IP: '100000',
      GATEHOUSE_LIMITS_CUSTOMER_TOKENS_PER_MINUTE_PER_IP: '100000',
      GATEHOUSE_LIMITS_MESSAGES_PER_SECOND: '100000',
      // A short heartbeat so a dead node's presence expires within a bounded test.
      GATEHOUSE_WS_HEARTBEAT_INTERVAL: '2s',
      GATEHOUSE_WS_HEARTBEAT_TIMEOUT: '1s',
      ...options.env,
    });
    const cluster = new Cluster(database, prefix, adminKey, env, dir);
    try {
      await Promise.all((options.nodes ?? ['a', 'b', 'c']).map((name) => cluster.addNode(name)));
    } catch (err) {
      await cluster.close();
      throw err;
    }
    return cluster;
  }

  /** Starts one more node of this cluster (own data folder, node id `<prefix>-<name>`). */
  async addNode(name: string): Promise<ClusterNode> {
    if (this.nodes.has(name)) throw new Error(`node ${name} exists`);
    const dataDir = join(this.dir, `node-${name}`);
    mkdirSync(dataDir);
    const nodeId = `${this.prefix}-${name}`;
    const node = new ClusterNode(name, nodeId, dataDir, { ...this.env, GATEHOUSE_NODE_ID: nodeId });
    this.nodes.set(name, node);
    await node.start();
    return node;
  }

  node(name: string): ClusterNode {
    const node = this.nodes.get(name);
    if (!node) throw new Error(`no node ${name}`);
    return node;
  }

  /** The output of every node, for a failure message. */
  output(): string {
    return [...this.nodes.values()].map((n) => `--- node ${n.name} ---\n${n.output}`).join('\n');
  }

  /** Stops every node (kills the ones that do not stop), drops the database, removes the folders. */
  async close(): Promise<void> {
    await Promise.allSettled([...this.nodes.values()].map((node) => node.stop()));
    try {
      await this.database.drop();
    } finally {
      rmSync(this.dir, { recursive: true, force: true });
    }
  }

  /** Creates an app key through the admin API of `node`. */
  async createAppKey(node: ClusterNode, name = 'cluster test app'): Promise<string> {
    const res = await api(node, 'POST', '/api/v1/admin/app-keys', {
      headers: { 'x-admin-key': this.adminKey },
      body: { name },
    });
    if (res.status !== 201) throw new Error(`app key on ${node.name}: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body.key as string;
  }

  /** An admin call (`X-Admin-Key`) against `node`. */
  admin(node: ClusterNode, method: string, path: string, body?: unknown) {
    return api(node, method, path, { headers: { 'x-admin-key': this.adminKey }, ...(body ? { body } : {}) });
  }
}

/** Logs an IM user in through `node`'s open API (a new login session); resolves with the bare JWT. */
export async function loginUser(node: ClusterNode, appKey: string, id: string, device = 'im_web'): Promise<string> {
  const res = await api(node, 'POST', '/openapi/v1/user/login', {
    headers: { 'x-app-key': appKey },
    body: { id, nickname: `User ${id}`, device },
  });
  if (res.status !== 200) throw new Error(`user login on ${node.name}: ${res.status} ${JSON.stringify(res.body)}`);
  return (res.body.data.token as string).replace(/^Bearer /, '');
}

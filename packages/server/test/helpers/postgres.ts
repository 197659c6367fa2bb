import { randomBytes } from 'node:crypto';
import { createServer, type Server, type Socket, connect as tcpConnect } from 'node:net';
import pg from 'pg';

/** Set to a PostgreSQL URL (a role allowed to CREATE DATABASE) to run the PostgreSQL tests. */
export const POSTGRES_URL = process.env.GATEHOUSE_TEST_POSTGRES_URL ?? '';

/** The skip reason when no PostgreSQL is configured, or undefined when the tests can run. */
export const POSTGRES_SKIP = POSTGRES_URL
  ? undefined
  : 'GATEHOUSE_TEST_POSTGRES_URL is not set, so PostgreSQL was not tested ' +
    '(e.g. GATEHOUSE_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test)';

/** Runs one statement on a short-lived connection to `url`. */
export async function adminQuery<R extends pg.QueryResultRow = any>(
  url: string,
  sql: string,
  values: unknown[] = [],
): Promise<R[]> {
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => {});
  await client.connect();
  try {
    return (await client.query<R>(sql, values)).rows;
  } finally {
    await client.end();
  }
}

export interface TestDatabase {
  name: string;
  /** The URL of the new database (same server and role as the base URL). */
  url: string;
  /** Drops the database, closing whatever is still connected to it. */
  drop(): Promise<void>;
}

/** A fresh, empty database on the server of `baseUrl`, unique to this call (runs may overlap). */
export async function createTestDatabase(baseUrl: string = POSTGRES_URL): Promise<TestDatabase> {
  const name = `gh_test_${randomBytes(6).toString('hex')}`;
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

/** The same URL with another host and port (for a proxy in front of the server). */
export function withAddress(url: string, host: string, port: number): string {
  const parsed = new URL(url);
  parsed.hostname = host;
  parsed.port = String(port);
  return parsed.toString();
}

/**
 * A TCP proxy in front of PostgreSQL that a test can take down (listener closed, every
 * connection cut) and bring back on the same port, or freeze (connections stay open but
 * nothing gets through, as behind a dead network): a database that goes away and
 * returns, without touching the real server other runs share.
 */
export class TcpProxy {
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();
  private frozen = false;
  port = 0;

  constructor(
    private readonly targetHost: string,
    private readonly targetPort: number,
  ) {}

  private track(socket: Socket): void {
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => {});
  }

  async up(): Promise<void> {
    this.frozen = false;
    const server = createServer((client) => {
      this.track(client);
      if (this.frozen) return; // accepted, never answered
      const upstream = tcpConnect(this.targetPort, this.targetHost);
      this.track(upstream);
      client.pipe(upstream).pipe(client);
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
    const address = server.address();
    if (address && typeof address === 'object') this.port = address.port;
    this.server = server;
  }

  /** Stops forwarding in both directions; sockets stay open and new ones are accepted and ignored. */
  freeze(): void {
    this.frozen = true;
    for (const socket of this.sockets) {
      socket.unpipe();
      socket.pause();
    }
  }

  async down(): Promise<void> {
    const server = this.server;
    this.server = null;
    for (const socket of this.sockets) socket.destroy();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

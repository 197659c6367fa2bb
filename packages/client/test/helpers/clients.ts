import WebSocket from 'ws';
import { GatehouseClient, type GatehouseClientOptions } from '../../src/index.js';
import { type Api, userToken } from './server.js';

/** Client options without the socket class: the tests always use `ws`. */
export type ClientOptions = Omit<GatehouseClientOptions, 'WebSocket'>;

/**
 * The SDK clients one test file makes, closed together in `after()`, so that a failed
 * assertion cannot leave a client retrying (and the test process alive).
 */
export class ClientSet {
  private readonly made: GatehouseClient[] = [];

  /** A client over `ws` with these options. */
  make(options: ClientOptions): GatehouseClient {
    const client = new GatehouseClient({ WebSocket, ...options });
    this.made.push(client);
    return client;
  }

  /** A client of the app's IM user `id` on `/ws`, getting its tokens with the app key. */
  user(server: Api, appKey: string, id: string, extra: Partial<ClientOptions> = {}): GatehouseClient {
    return this.make({ url: `${server.wsUrl}/ws`, getToken: () => userToken(server, appKey, id), ...extra });
  }

  closeAll(): void {
    for (const client of this.made.splice(0)) client.close();
  }
}

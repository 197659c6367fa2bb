import { createServer, request, type Server } from 'node:http';
import { connect } from 'node:net';

/**
 * A loopback origin for browser tests: serves the given files, and passes everything else
 * (REST calls and WebSocket upgrades) through to the Gatehouse port, so the page, its REST
 * calls and its sockets share one origin the way a deployment behind a proxy does.
 */
export class PageServer {
  private server!: Server;
  url = '';

  constructor(
    private readonly files: Record<string, { type: string; body: () => string | Promise<string> }>,
    private readonly upstreamPort: number,
  ) {}

  async listen(): Promise<void> {
    this.server = createServer((req, res) => {
      const file = this.files[(req.url ?? '/').split('?')[0] as string];
      if (file) {
        Promise.resolve(file.body()).then(
          (body) => {
            res.writeHead(200, { 'content-type': file.type, 'cache-control': 'no-store' });
            res.end(body);
          },
          () => {
            res.writeHead(500);
            res.end();
          },
        );
        return;
      }
      const upstream = request(
        { host: '127.0.0.1', port: this.upstreamPort, method: req.method, path: req.url, headers: req.headers },
        (up) => {
          res.writeHead(up.statusCode ?? 502, up.headers);
          up.pipe(res);
        },
      );
      upstream.on('error', () => {
        res.destroy();
      });
      req.pipe(upstream);
    });
    this.server.on('upgrade', (req, socket, head) => {
      const upstream = connect(this.upstreamPort, '127.0.0.1', () => {
        const lines = [`${req.method} ${req.url} HTTP/1.1`];
        for (let i = 0; i < req.rawHeaders.length; i += 2) lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
        upstream.write(`${lines.join('\r\n')}\r\n\r\n`);
        if (head.length) upstream.write(head);
        upstream.pipe(socket);
        socket.pipe(upstream);
      });
      const end = () => {
        socket.destroy();
        upstream.destroy();
      };
      upstream.on('error', end).on('close', end);
      socket.on('error', end).on('close', end);
    });
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as { port: number }).port}`;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

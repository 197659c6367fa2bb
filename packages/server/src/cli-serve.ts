import { closeSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { Gatehouse } from './app.js';
import { type CliCommand, configFrom, type Flags, UsageError } from './cli-command.js';
import type { ConfigInput, GatehouseConfig } from './config.js';
import { createLogger } from './logger.js';

/** Demo data only where it cannot surprise anyone: a new embedded store, unless the operator says. */
export function shouldSeedDemo(config: GatehouseConfig): boolean {
  if (config.demo.seed !== 'auto') return config.demo.seed;
  return !/^postgres(ql)?:\/\//.test(config.store.url);
}

/**
 * Exits once the log's last lines are written. The log is written asynchronously, and pino's
 * `flush` does not wait for a write under way (it returns at once when lines are not batched), so
 * `process.exit` could cut the last lines or put them out of order (seen on a busy machine:
 * "gatehouse stopped" before "gatehouse stopping", or missing). With everything closed the event
 * loop empties once those writes are done and the process ends on its own; the timer bounds that,
 * in case the log's reader is gone or a handle was left open.
 */
function exitAfterLog(code: number): void {
  process.exitCode = code;
  setTimeout(() => process.exit(code), 2000).unref();
}

/** The kind of store a URL names, for the log (never the URL: it may hold a password). */
export function storeKind(url: string): string {
  return /^postgres(ql)?:\/\//.test(url) ? 'postgresql' : 'sqlite';
}

/** The kind of broker a URL names, for the log. */
export function brokerKind(url: string): string {
  return url === '' ? 'memory' : url.slice(0, Math.max(0, url.indexOf(':'))).replace(/^rediss$/, 'redis');
}

/** Writes the banner owner-only (0600), replacing an older one. */
function writePrivate(file: string, text: string): void {
  const fd = openSync(file, 'w', 0o600);
  try {
    writeSync(fd, text);
  } finally {
    closeSync(fd);
  }
}

async function serve(_args: string[], flags: Flags): Promise<number> {
  const overrides: ConfigInput = {};
  const sources: Record<string, string> = {};
  if (typeof flags.host === 'string') {
    overrides.server = { ...overrides.server, host: flags.host };
    sources['server.host'] = 'flag --host';
  }
  if (typeof flags.port === 'string') {
    const port = Number(flags.port);
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError('--port must be 0-65535');
    overrides.server = { ...overrides.server, port };
    sources['server.port'] = 'flag --port';
  }
  if (typeof flags['banner-file'] === 'string') {
    overrides.bannerFile = flags['banner-file'];
    sources.bannerFile = 'flag --banner-file';
  }
  const warnings: string[] = [];
  const config = configFrom(flags, { overrides, sources, warn: (m) => warnings.push(m) });
  // stdout carries the JSON log only; the banner (secrets) goes to a terminal or a private file.
  const log = createLogger(config.log.level);
  for (const warning of warnings) log.warn(warning);
  // A signal during start-up is kept and acted on once the node is up: stopping halfway through
  // (the banner, the demo seed) would leave a half-written first start, and the default handler
  // would exit without the "stopping"/"stopped" lines. A second one exits (1) without waiting for
  // the start, in case it is stuck: no graceful stop follows it to set another exit code.
  let pendingSignal: string | undefined;
  let givenUp = false;
  let onSignal = (signal: string) => {
    if (pendingSignal) {
      log.warn({ signal }, 'second signal during start-up: exiting without waiting for it');
      givenUp = true;
      exitAfterLog(1);
      return;
    }
    pendingSignal = signal;
    log.info({ signal }, 'signal during start-up: stopping once started (send it again to exit now)');
  };
  process.on('SIGINT', () => onSignal('SIGINT'));
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  const gatehouse = await Gatehouse.create({ config, logger: log });
  const { url } = await gatehouse.listen();
  const { notes, services } = gatehouse;
  const node = services.nodeId;
  // The pages, when served: the log line and the banner name them (stdout stays JSON lines).
  const pages = gatehouse.rest.hasRoute({ method: 'GET', url: '/widget.js' })
    ? { consoleUrl: `${url}/console/`, demoUrl: `${url}/demo/` }
    : null;
  log.info(
    {
      url,
      dataDir: notes.dataDir,
      node,
      store: storeKind(config.store.url),
      broker: brokerKind(config.broker.url),
      pid: process.pid,
      ...pages,
    },
    'gatehouse listening',
  );

  const banner: string[] = [];
  const pageLines = pages
    ? [
        `Agent console: ${pages.consoleUrl}`,
        `Demo page with the chat widget: ${pages.demoUrl}`,
        `Embed the widget: <script src="${url}/widget.js" data-channel="web" async></script>`,
      ]
    : [];
  if (notes.generatedAdminKey)
    banner.push(`Admin key (generated, kept in ${join(notes.dataDir, 'admin-key')}): ${notes.generatedAdminKey}`);
  // Seeding needs the store: a node still waiting for its database skips it (and says so).
  if (notes.keysFileCreated && shouldSeedDemo(config) && !services.storeStartup.ready)
    banner.push('', 'The store is not reachable yet: no demo agent or app key was created.');
  else if (notes.keysFileCreated && shouldSeedDemo(config)) {
    const password = `demo-${Math.random().toString(36).slice(2, 10)}`;
    await services.auth
      .createAccount({ kind: 'agent', username: 'demo-agent', password, name: 'Demo Agent' })
      .catch(() => {});
    const app = await services.auth.createAppKey('demo app');
    banner.push(
      '',
      'First start: created a demo agent and a demo app key.',
      `  agent: demo-agent / ${password}`,
      `  app key: ${app.key}`,
      '',
      'Try:',
      `  curl -s ${url}/api/v1/public/login -H 'content-type: application/json' -d '{"username":"demo-agent","password":"${password}"}'`,
      `  curl -s ${url}/openapi/v1/user/login -H 'X-App-Key: ${app.key}' -H 'content-type: application/json' -d '{"id":"alice","nickname":"Alice","device":"im_web"}'`,
      `  curl -s ${url}/api/v1/public/customer-token -H 'content-type: application/json' -d '{"name":"Visitor","channel":"web"}'`,
      `  npx gatehouse probe ${url.replace(/^http/, 'ws')}/ws/chat --token <token from the login above> --hello`,
    );
    log.info({ username: 'demo-agent' }, 'demo agent and demo app key created');
  }
  if (banner.length > 0) {
    const file = config.bannerFile || join(notes.dataDir, 'first-start.txt');
    writePrivate(file, `${[...pageLines, ...banner].join('\n')}\n`);
    log.info({ file }, 'first start: the admin key and demo login are in this file (mode 0600)');
  }
  if (process.stderr.isTTY)
    process.stderr.write(
      `${[`Gatehouse is serving on ${url}  (data: ${notes.dataDir})`, ...pageLines, ...banner].join('\n')}\n`,
    );

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    const since = Date.now();
    log.info({ node, signal, reason: `received ${signal}` }, 'gatehouse stopping');
    gatehouse.close().then(
      () => {
        log.info({ node, signal, durationMs: Date.now() - since }, 'gatehouse stopped');
        exitAfterLog(0);
      },
      (err) => {
        log.error({ err, node, signal }, 'shutdown failed');
        exitAfterLog(1);
      },
    );
  };
  if (!givenUp) {
    onSignal = stop;
    if (pendingSignal) stop(pendingSignal);
  }
  return -1;
}

export const serveCommand: CliCommand = {
  name: 'serve',
  usage: ['serve [--config FILE] [--host H] [--port P] [--data-dir DIR] [--banner-file FILE]'],
  options: {
    host: { type: 'string' },
    port: { type: 'string' },
    'banner-file': { type: 'string' },
  },
  run: serve,
};

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError, configKeys, DURATION_KEYS, envName, loadConfig, ms } from '../src/config.js';
import { fillConfigTable } from '../src/config-docs.js';

const readme = new URL('../../../../README.md', import.meta.url);

function problemsOf(run: () => unknown): { key: string; source: string; message: string }[] {
  try {
    run();
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    assert.ok(err instanceof TypeError);
    return err.problems;
  }
  assert.fail('the configuration was accepted');
}

describe('configuration', () => {
  it('documents every key in README.md from the schema (run npm run docs to refresh)', () => {
    for (const { path, description } of configKeys()) assert.ok(description.length > 10, `${path} has no description`);
    const doc = readFileSync(readme, 'utf8');
    assert.ok(doc.includes('<!-- table:config -->'), 'README.md lacks the config table');
    assert.equal(doc, fillConfigTable(doc));
  });

  it('marks exactly the DURATION_KEYS as durations in the schema', () => {
    const marked = configKeys()
      .filter((k) => k.schema['x-duration'])
      .map((k) => k.path);
    assert.deepEqual([...marked].sort(), [...DURATION_KEYS].sort());
  });

  it('has the keys other areas rely on, with their defaults', () => {
    const config = loadConfig();
    assert.deepEqual(config.server.cors.origins, []);
    assert.equal(config.server.metricsAuth, false);
    assert.equal(config.server.openapiAuth, false);
    assert.equal(config.store.sqliteSynchronous, 'FULL');
    assert.equal(ms(config, 'auth.revocationCacheTtl'), 5000);
    assert.equal(ms(config, 'auth.refreshReuseGrace'), 10_000);
    assert.equal(
      ms(loadConfig({ overrides: { auth: { refreshReuseGrace: '60s' } } }), 'auth.refreshReuseGrace'),
      60_000,
    );
    assert.equal(config.limits.loginAttemptsPerAccountAndIp, 10);
    assert.ok(config.limits.loginAttemptsPerAccount > config.limits.loginAttemptsPerAccountAndIp);
    assert.equal(config.limits.supportSessionsPerMinute, 10);
    assert.equal(config.demo.seed, 'auto');
  });

  it('reads every key from a GATEHOUSE_* variable, typed like its schema', () => {
    const config = loadConfig({
      env: {
        [envName('tokens.ttl.customer')]: '5s',
        [envName('server.port')]: '9999',
        [envName('server.trustProxy')]: 'true',
        [envName('ws.allowedOrigins')]: 'https://a.example, https://b.example',
        [envName('ws.endpoints')]: JSON.stringify([
          { path: '/x', kinds: ['user'], tokenRequired: true, rejectMode: 'close' },
        ]),
        [envName('demo.seed')]: 'false',
        [envName('store.sqliteSynchronous')]: 'NORMAL',
        [envName('tokens.ttl.user')]: '5000',
      },
    });
    assert.equal(envName('tokens.ttl.customer'), 'GATEHOUSE_TOKENS_TTL_CUSTOMER');
    assert.equal(envName('limits.handshakesPerSecondPerIp'), 'GATEHOUSE_LIMITS_HANDSHAKES_PER_SECOND_PER_IP');
    assert.equal(envName('server.cors.origins'), 'GATEHOUSE_SERVER_CORS_ORIGINS');
    assert.equal(ms(config, 'tokens.ttl.customer'), 5000);
    assert.equal(ms(config, 'tokens.ttl.user'), 5000);
    assert.equal(config.server.port, 9999);
    assert.equal(config.server.trustProxy, true);
    assert.deepEqual(config.ws.allowedOrigins, ['https://a.example', 'https://b.example']);
    assert.equal(config.ws.endpoints[0]?.rejectMode, 'close');
    assert.equal(config.demo.seed, false);
    assert.equal(config.store.sqliteSynchronous, 'NORMAL');
  });

  it('reports every bad value at once, each with its key and where it came from', () => {
    const dir = mkdtempSync(join(tmpdir(), 'gatehouse-config-'));
    try {
      const file = join(dir, 'config.json');
      writeFileSync(
        file,
        JSON.stringify({
          limits: { messagesPerSecond: 'abc', maxConnections: -1 },
          ws: { endpoints: [{ path: '/x', kinds: ['bot'], tokenRequired: true, rejectMode: 'http' }] },
          nope: 1,
        }),
      );
      const problems = problemsOf(() =>
        loadConfig({
          file,
          env: { GATEHOUSE_SERVER_PORT: 'eighty', GATEHOUSE_TOKENS_TTL_USER: 'forever' },
          overrides: { log: { level: 'loud' as never }, store: { url: 'mysql://db' } },
          overrideSources: { 'log.level': 'flag --log-level' },
        }),
      );
      const by = (key: string) => problems.find((p) => p.key === key);
      assert.equal(by('limits.messagesPerSecond')?.source, `file ${file}`);
      assert.equal(by('limits.maxConnections')?.source, `file ${file}`);
      assert.match(by('ws.endpoints[0].kinds[0]')?.message ?? '', /"bot" is not one of "user", "agent", "customer"/);
      assert.equal(by('ws.endpoints[0].kinds[0]')?.source, `file ${file}`);
      assert.equal(by('nope')?.message, 'is not a configuration key');
      assert.equal(by('server.port')?.source, 'variable GATEHOUSE_SERVER_PORT');
      assert.match(by('tokens.ttl.user')?.message ?? '', /"forever" is not a duration/);
      assert.equal(by('tokens.ttl.user')?.source, 'variable GATEHOUSE_TOKENS_TTL_USER');
      assert.equal(by('log.level')?.source, 'flag --log-level');
      // A rule across keys is reported beside the schema's findings.
      assert.match(by('store.url')?.message ?? '', /not supported/);
      assert.equal(problems.length, 8, JSON.stringify(problems, null, 2));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses numbers out of range, unknown enum values and cross-key conflicts', () => {
    for (const [overrides, key] of [
      [{ limits: { maxConnections: 0 } }, 'limits.maxConnections'],
      [{ limits: { messagesPerSecond: 1.5 } }, 'limits.messagesPerSecond'],
      [{ server: { port: 70_000 } }, 'server.port'],
      [{ ws: { maxFrameBytes: 100 } }, 'ws.maxFrameBytes'],
      [{ ws: { connectionPolicy: { user: 'many' } } }, 'ws.connectionPolicy.user'],
      [{ tokens: { algorithms: ['none'] } }, 'tokens.algorithms[0]'],
      [{ tokens: { algorithms: [] } }, 'tokens.algorithms'],
      [{ store: { sqliteSynchronous: 'OFF' } }, 'store.sqliteSynchronous'],
      [{ store: { url: 'mysql://x' } }, 'store.url'],
      [{ broker: { url: 'kafka://x' } }, 'broker.url'],
      [{ server: { tlsCert: 'cert.pem' } }, 'server.tlsKey'],
      [{ demo: { seed: 'yes' } }, 'demo.seed'],
      [
        { ws: { endpoints: [{ path: '/', kinds: ['user'], tokenRequired: true, rejectMode: 'login' }] } },
        'ws.endpoints[0]',
      ],
      [
        { ws: { endpoints: [{ path: 'ws', kinds: ['user'], tokenRequired: true, rejectMode: 'http' }] } },
        'ws.endpoints[0].path',
      ],
      [
        { ws: { endpoints: [{ path: '/ws', kinds: ['user'], tokenRequired: true, rejectMode: 'drop' }] } },
        'ws.endpoints[0].rejectMode',
      ],
      [{ server: { cors: { origins: 'https://a.example' } } }, 'server.cors.origins'],
      [{ ws: { sweepInterval: 0 } }, 'ws.sweepInterval'],
      [{ ws: { heartbeatInterval: '30d' } }, 'ws.heartbeatInterval'],
      [{ auth: { refreshReuseGrace: '61s' } }, 'auth.refreshReuseGrace'],
      [{ auth: { refreshReuseGrace: -1 } }, 'auth.refreshReuseGrace'],
      [{ constructor: { x: 1 } }, 'constructor'],
      [{ 'odd[key': 1 }, 'odd[key'],
      [JSON.parse('{"limits":{"__proto__":{"maxConnections":1}}}'), 'limits.__proto__'],
    ] as const) {
      const problems = problemsOf(() => loadConfig({ overrides: overrides as never }));
      assert.deepEqual(
        problems.map((p) => p.key),
        [key],
        `${JSON.stringify(overrides)}: ${JSON.stringify(problems)}`,
      );
      assert.ok(['overrides', 'default'].includes(problems[0]?.source ?? ''), JSON.stringify(problems));
    }
  });

  it('warns about unknown GATEHOUSE_* variables, with the likely intended name', () => {
    const warnings: string[] = [];
    loadConfig({
      env: {
        GATEHOUSE_LIMITS_MESAGES_PER_SECOND: '3',
        GATEHOUSE_WHATEVER_THIS_IS: 'x',
        GATEHOUSE_TEST_REDIS_URL: 'redis://x',
      },
      warn: (m) => warnings.push(m),
    });
    assert.deepEqual(warnings, [
      'unknown variable GATEHOUSE_LIMITS_MESAGES_PER_SECOND is ignored (did you mean GATEHOUSE_LIMITS_MESSAGES_PER_SECOND?)',
      'unknown variable GATEHOUSE_WHATEVER_THIS_IS is ignored',
    ]);
  });

  it('returns a deep-frozen configuration', () => {
    const config = loadConfig();
    assert.throws(() => {
      (config.limits as { messagesPerSecond: number }).messagesPerSecond = 1;
    }, TypeError);
    assert.throws(() => {
      (config.ws.endpoints.at(0)?.kinds ?? []).push('agent');
    }, TypeError);
    // A second load is independent of the first.
    assert.equal(loadConfig({ overrides: { server: { port: 1 } } }).server.port, 1);
    assert.equal(loadConfig().server.port, 8080);
  });
});

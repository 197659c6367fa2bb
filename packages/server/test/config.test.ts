import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { configKeys, envName, loadConfig, ms } from '../src/config.js';
import { CONFIG_DESCRIPTIONS, fillConfigTable } from '../src/config-docs.js';

const readme = new URL('../../../../README.md', import.meta.url);

describe('configuration', () => {
  it('documents every key in README.md with its environment variable (run npm run docs to refresh)', () => {
    for (const { path } of configKeys()) assert.ok(CONFIG_DESCRIPTIONS[path], `${path} has no description`);
    const doc = readFileSync(readme, 'utf8');
    assert.ok(doc.includes('<!-- table:config -->'), 'README.md lacks the config table');
    assert.equal(doc, fillConfigTable(doc));
  });

  it('reads every key from a GATEHOUSE_* variable, typed like its default', () => {
    const config = loadConfig({
      env: {
        [envName('tokens.ttl.customer')]: '5s',
        [envName('server.port')]: '9999',
        [envName('server.trustProxy')]: 'true',
        [envName('ws.allowedOrigins')]: 'https://a.example, https://b.example',
        [envName('ws.endpoints')]: JSON.stringify([
          { path: '/x', kinds: ['user'], tokenRequired: true, rejectMode: 'close' },
        ]),
      },
    });
    assert.equal(envName('tokens.ttl.customer'), 'GATEHOUSE_TOKENS_TTL_CUSTOMER');
    assert.equal(envName('limits.handshakesPerSecondPerIp'), 'GATEHOUSE_LIMITS_HANDSHAKES_PER_SECOND_PER_IP');
    assert.equal(ms(config, 'tokens.ttl.customer'), 5000);
    assert.equal(config.server.port, 9999);
    assert.equal(config.server.trustProxy, true);
    assert.deepEqual(config.ws.allowedOrigins, ['https://a.example', 'https://b.example']);
    assert.equal(config.ws.endpoints[0]?.rejectMode, 'close');
  });

  it('refuses unknown keys, bad durations and conflicting endpoint options with a TypeError', () => {
    assert.throws(() => loadConfig({ overrides: { nope: 1 } as never }), TypeError);
    assert.throws(() => loadConfig({ overrides: { tokens: { ttl: { user: 'forever' } } } }), TypeError);
    assert.throws(() => loadConfig({ env: { [envName('server.port')]: 'eighty' } }), TypeError);
    assert.throws(
      () =>
        loadConfig({
          overrides: { ws: { endpoints: [{ path: '/', kinds: ['user'], tokenRequired: true, rejectMode: 'login' }] } },
        }),
      TypeError,
    );
  });
});

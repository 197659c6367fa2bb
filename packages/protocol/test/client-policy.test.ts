import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { closePolicy, refusalCloseCode, SPREAD_RECONNECT_CODES, TERMINAL_STATUS } from '../src/client-policy.js';
import { CLOSE_CODES, closeAdvice } from '../src/codes.js';

describe('client close policy', () => {
  it('gives a terminal status only to codes the table says to stop on', () => {
    for (const code of Object.keys(TERMINAL_STATUS)) assert.equal(closeAdvice(Number(code)), 'stop', code);
  });

  it('names the 4410 status after the reason, and never reconnects after 4409, 4410 or 4403', () => {
    assert.deepEqual(closePolicy(4409, 'REPLACED'), {
      action: 'stop',
      status: 'replaced',
      delay: 'backoff',
      bug: false,
    });
    assert.equal(closePolicy(4410, 'KICKED').status, 'kicked');
    assert.equal(closePolicy(4410, 'BLOCKED').status, 'blocked');
    assert.equal(closePolicy(4410, 'REVOKED').status, 'revoked');
    assert.equal(closePolicy(4403, 'DEVICE_MISMATCH').status, 'forbidden');
  });

  it('spreads retries after 1001/1012, slowly after 4429/1013, re-authenticates after 4401', () => {
    for (const code of SPREAD_RECONNECT_CODES) assert.equal(closePolicy(code).delay, 'spread');
    assert.equal(closePolicy(4429).delay, 'long');
    assert.equal(closePolicy(1013).delay, 'long');
    assert.equal(closePolicy(4401, 'TOKEN_EXPIRED').action, 'reauthenticate');
    assert.equal(closePolicy(1006).action, 'reconnect');
    assert.equal(closePolicy(4400).bug, true);
    assert.equal(closePolicy(1000).status, null);
  });

  it('maps every close code of the table to an action', () => {
    for (const c of CLOSE_CODES)
      assert.ok(['stop', 'reconnect', 'reauthenticate'].includes(closePolicy(c.code).action));
  });

  it('turns a refused handshake into the close code of its error', () => {
    assert.equal(refusalCloseCode('TOKEN_EXPIRED', 401), 4401);
    assert.equal(refusalCloseCode('SERVER_BUSY', 503), 1013);
    assert.equal(refusalCloseCode('RATE_LIMITED', 429), 4429);
    assert.equal(refusalCloseCode(undefined, 403), 4403);
    assert.equal(refusalCloseCode(undefined, 502), 1006);
  });
});

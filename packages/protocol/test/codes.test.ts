import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CLOSE_CODES, CloseCode, closeAdvice, ERROR_CODES, errorInfo } from '../src/codes.js';

describe('protocol codes', () => {
  it('gives every close-capable error code a close code that lists it as a reason', () => {
    for (const e of ERROR_CODES) {
      if (e.close === null) continue;
      const close = CLOSE_CODES.find((c) => c.code === e.close);
      assert.ok(close, `${e.code}: close code ${e.close} is not in the table`);
      assert.ok(close.reasons.includes(e.code), `${e.code} is not a reason of ${e.close}`);
    }
  });

  it('uses 4000 + the HTTP status for the 4xxx close codes', () => {
    for (const e of ERROR_CODES) if (e.close && e.close >= 4000) assert.equal(e.close, 4000 + e.status, e.code);
  });

  it('tells clients to stop after 4409 REPLACED and to re-authenticate after 4401', () => {
    assert.equal(closeAdvice(CloseCode.REPLACED), 'stop');
    assert.equal(closeAdvice(CloseCode.UNAUTHORIZED), 'reauthenticate');
    assert.equal(closeAdvice(4999), 'reconnect');
    assert.equal(errorInfo('NOT_MEMBER').status, 403);
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEVICE_FIELD_PATTERN, DEVICE_TYPE_ALIASES, DEVICE_TYPES, normalizeDeviceType } from '../src/devices.js';

describe('device types', () => {
  it('maps every alias, in any case, to its im_* type', () => {
    const expected: Record<string, string> = {
      ios: 'im_app_ios',
      android: 'im_app_android',
      web: 'im_web',
      win: 'im_pc_win',
      windows: 'im_pc_win',
      pc: 'im_pc_win',
      mac: 'im_pc_mac',
    };
    assert.deepEqual({ ...DEVICE_TYPE_ALIASES }, expected);
    for (const [alias, type] of Object.entries(expected)) {
      assert.equal(normalizeDeviceType(alias), type);
      assert.equal(normalizeDeviceType(alias.toUpperCase()), type);
      assert.equal(normalizeDeviceType(alias[0]?.toUpperCase() + alias.slice(1)), type);
    }
  });

  it('keeps the canonical names and lower-cases them when sent in another case', () => {
    for (const type of DEVICE_TYPES) {
      assert.equal(normalizeDeviceType(type), type);
      assert.equal(normalizeDeviceType(type.toUpperCase()), type);
    }
  });

  it('keeps any other value as it is, and does not read the prototype', () => {
    assert.equal(normalizeDeviceType('kiosk-7'), 'kiosk-7');
    assert.equal(normalizeDeviceType('Phone'), 'Phone');
    assert.equal(normalizeDeviceType('constructor'), 'constructor');
    assert.equal(normalizeDeviceType('__proto__'), '__proto__');
  });

  it('accepts only short identifiers as device fields', () => {
    const field = new RegExp(DEVICE_FIELD_PATTERN);
    assert.ok(field.test('im_web'));
    assert.ok(field.test('dev-1:a.b'));
    assert.ok(field.test('x'.repeat(128)));
    assert.ok(!field.test('x'.repeat(129)));
    assert.ok(!field.test(''));
    assert.ok(!field.test('im_web\n'));
    assert.ok(!field.test('a b'));
  });
});

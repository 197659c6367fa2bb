import { DEVICE_FIELD_MAX_LENGTH, DEVICE_FIELD_PATTERN, normalizeDeviceType } from '@gatehouse/protocol';
import { Type } from '@sinclair/typebox';
import { GatehouseError } from '../errors.js';

/**
 * The one check for device fields (device type, device id, client id) wherever they enter:
 * the handshake and the login frame use `deviceField`/`deviceTypeField`, REST bodies the
 * `DeviceFieldSchema` built from the same pattern.
 */
const DEVICE_FIELD = new RegExp(DEVICE_FIELD_PATTERN);

/** TypeBox schema for REST bodies (same rule as the handshake and the frames). */
export const DeviceFieldSchema = Type.String({
  minLength: 1,
  maxLength: DEVICE_FIELD_MAX_LENGTH,
  pattern: DEVICE_FIELD_PATTERN,
});

/** A device id or client id: null when absent or empty; INVALID_REQUEST when not an identifier. */
export function deviceField(name: string, value: unknown): string | null {
  if (value === undefined || value === null || value === '') return null;
  if (typeof value !== 'string' || !DEVICE_FIELD.test(value))
    throw new GatehouseError(
      'INVALID_REQUEST',
      `${name} must be 1-${DEVICE_FIELD_MAX_LENGTH} letters, digits or _ . : - characters`,
    );
  return value;
}

/** A device type, checked like `deviceField` and normalised (`android` → `im_app_android`). */
export function deviceTypeField(name: string, value: unknown): string | null {
  const checked = deviceField(name, value);
  return checked === null ? null : normalizeDeviceType(checked);
}

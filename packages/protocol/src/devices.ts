/**
 * Device types (SPEC §3): the five canonical `im_*` names and the aliases integration examples
 * send. One table, used by the server wherever a device type enters and by clients, so that
 * one device type is one slot and one delivery cursor.
 */

export const DEVICE_TYPES = ['im_app_ios', 'im_app_android', 'im_web', 'im_pc_win', 'im_pc_mac'] as const;
export type DeviceType = (typeof DEVICE_TYPES)[number];

/** Alias → canonical type; matched case-insensitively. */
export const DEVICE_TYPE_ALIASES: Readonly<Record<string, DeviceType>> = Object.freeze({
  ios: 'im_app_ios',
  android: 'im_app_android',
  web: 'im_web',
  win: 'im_pc_win',
  windows: 'im_pc_win',
  pc: 'im_pc_win',
  mac: 'im_pc_mac',
});

/**
 * What a device type, device id or client id may look like wherever it enters (handshake,
 * login frame, REST): 1–128 letters, digits and `_ . : -`. No spaces, newlines or controls.
 */
export const DEVICE_FIELD_PATTERN = '^[A-Za-z0-9_.:-]{1,128}$';
export const DEVICE_FIELD_MAX_LENGTH = 128;

const canonical = new Map<string, string>([
  ...DEVICE_TYPES.map((t) => [t, t] as [string, string]),
  ...Object.entries(DEVICE_TYPE_ALIASES),
]);

/**
 * The canonical name of a device type: an alias or a canonical name in any case becomes the
 * `im_*` name; any other value is kept as it is (a custom device type is its own slot).
 */
export function normalizeDeviceType(value: string): string {
  return canonical.get(value.toLowerCase()) ?? value;
}

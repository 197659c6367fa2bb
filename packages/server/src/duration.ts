const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parses "500ms", "5s", "10m", "8h", "30d" or a bare number of milliseconds. */
export function parseDuration(value: string | number, what = 'duration'): number {
  if (typeof value === 'number' && Number.isFinite(value) && value >= 0) return value;
  const match = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?$/.exec(String(value).trim());
  if (!match) throw new TypeError(`${what}: "${value}" is not a duration (use e.g. 500ms, 5s, 10m, 8h, 30d)`);
  return Math.round(Number(match[1]) * (UNITS[match[2] ?? 'ms'] as number));
}

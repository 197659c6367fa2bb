import { GatehouseError } from '../errors.js';

/**
 * Well-formed Unicode: no lone surrogate (JSON `"\ud800"`). Ids that are not well-formed are
 * stored differently from how they arrive (SQLite writes U+FFFD), so a token's `sub` and the
 * stored principal would differ and block, revoke and tenant checks would miss one of them.
 */
const native = (String.prototype as { isWellFormed?: (this: string) => boolean }).isWellFormed;
// With the `u` flag a surrogate pair reads as one code point; only a lone half is `\p{Cs}`.
const LONE_SURROGATE = /\p{Cs}/u;

/** The check for engines without `String.prototype.isWellFormed` (exported for its test). */
export const isWellFormedByRegex = (value: string): boolean => !LONE_SURROGATE.test(value);

export const isWellFormedText: (value: string) => boolean = native
  ? (value) => native.call(value)
  : isWellFormedByRegex;

/** Throws 400 INVALID_REQUEST unless the id (or other text) is well-formed Unicode. */
export function requireWellFormed(name: string, value: string): string {
  if (!isWellFormedText(value))
    throw new GatehouseError('INVALID_REQUEST', `${name} is not well-formed Unicode (it has a lone surrogate)`);
  return value;
}

/**
 * The first problem with any string or key in a parsed JSON value: `nul` (U+0000, which
 * PostgreSQL text refuses) or `ill-formed` (a lone surrogate); null when there is none.
 * Iterative, so depth cannot overflow the stack; callers bound the size and depth first.
 */
export function badText(value: unknown): 'nul' | 'ill-formed' | null {
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const node = stack.pop();
    if (typeof node === 'string') {
      if (node.includes('\u0000')) return 'nul';
      if (!isWellFormedText(node)) return 'ill-formed';
    } else if (node && typeof node === 'object') {
      for (const [key, child] of Object.entries(node)) {
        if (key.includes('\u0000')) return 'nul';
        if (!isWellFormedText(key)) return 'ill-formed';
        stack.push(child);
      }
    }
  }
  return null;
}

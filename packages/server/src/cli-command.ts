import type { ParseArgsConfig } from 'node:util';
import { type ConfigInput, type GatehouseConfig, loadConfig } from './config.js';

/** Flags every command accepts. */
export const COMMON_OPTIONS = {
  config: { type: 'string' },
  'data-dir': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsConfig['options'];

export type Flags = Record<string, string | boolean | string[] | undefined>;

/**
 * One `gatehouse <name> …` subcommand. Add a command by writing it in its own `cli-*.ts` file
 * and listing it in `COMMANDS` (cli.ts).
 */
export interface CliCommand {
  name: string;
  /** Usage lines, without the leading `gatehouse `. */
  usage: string[];
  options: NonNullable<ParseArgsConfig['options']>;
  /** Resolves with the exit code, or -1 to keep running (a server). */
  run(args: string[], flags: Flags): Promise<number>;
}

/** Wrong usage: exit code 64 with the message and the usage text. */
export class UsageError extends Error {}

export function required(flags: Flags, name: string): string {
  const value = flags[name];
  if (typeof value !== 'string' || value === '') throw new UsageError(`--${name} is required`);
  return value;
}

/** The configuration from `--config`, `GATEHOUSE_*` variables and flags; warnings go to `warn`. */
export function configFrom(
  flags: Flags,
  options: { overrides?: ConfigInput; sources?: Record<string, string>; warn?: (message: string) => void } = {},
): GatehouseConfig {
  const overrides: ConfigInput = { ...options.overrides };
  const sources: Record<string, string> = { ...options.sources };
  if (typeof flags['data-dir'] === 'string') {
    overrides.dataDir = flags['data-dir'];
    sources.dataDir = 'flag --data-dir';
  }
  return loadConfig({
    ...(typeof flags.config === 'string' ? { file: flags.config } : {}),
    env: process.env,
    overrides,
    overrideSources: sources,
    warn: options.warn ?? ((message) => process.stderr.write(`gatehouse: warning: ${message}\n`)),
  });
}

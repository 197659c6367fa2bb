#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { appKeyCommand, tokenCommand, userCommand } from './cli-admin.js';
import { type CliCommand, COMMON_OPTIONS, type Flags, UsageError } from './cli-command.js';
import { keysCommand } from './cli-keys.js';
import { probeCommand } from './cli-probe.js';
import { serveCommand } from './cli-serve.js';

/** Every subcommand; each lives in its own cli-*.ts file. */
const COMMANDS: CliCommand[] = [serveCommand, userCommand, appKeyCommand, tokenCommand, keysCommand, probeCommand];

const USAGE = `gatehouse — token-authenticated WebSocket gateway

Usage:
${COMMANDS.flatMap((c) => c.usage.map((u) => `  gatehouse ${u}`)).join('\n')}
  gatehouse bench URL (--app-key K | --admin-key K) [--clients N] [--rate M] [--duration T]   (--help for more)

Every configuration key can also be set with a GATEHOUSE_* environment variable (see README).`;

export async function main(argv: string[]): Promise<number> {
  // `bench` parses its own options and loads the SDK, so it is imported only when asked for.
  if (argv[0] === 'bench') return (await import('./cli-bench.js')).benchCommand(argv.slice(1));
  const name = argv[0]?.startsWith('-') ? undefined : argv[0];
  const command = COMMANDS.find((c) => c.name === name);
  if (!command) {
    if (name) throw new UsageError(`unknown command "${name}"`);
    const help = argv.includes('--help') || argv.includes('-h');
    console.log(USAGE);
    return help ? 0 : 1;
  }
  const { values, positionals } = parseArgs({
    args: argv,
    options: { ...COMMON_OPTIONS, ...command.options },
    allowPositionals: true,
    strict: true,
  });
  if (values.help) {
    console.log(command.usage.map((u) => `gatehouse ${u}`).join('\n'));
    return 0;
  }
  return command.run(positionals.slice(1), values as Flags);
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exit(code);
  },
  (err: unknown) => {
    const code = (err as { code?: string }).code;
    if (
      err instanceof UsageError ||
      code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' ||
      code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE'
    ) {
      console.error(`gatehouse: ${(err as Error).message}\n\n${USAGE}`);
      process.exit(64);
    }
    console.error(`gatehouse: ${(err as Error).message}`);
    process.exit(1);
  },
);

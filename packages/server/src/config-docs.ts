import { configKeys, envName } from './config.js';

function format(value: unknown): string {
  if (typeof value === 'string') return value === '' ? '(empty)' : `\`${value}\``;
  const json = JSON.stringify(value);
  return json.length > 60 ? 'see below' : `\`${json}\``;
}

/** The README's configuration table: every key of the schema, its variable, default and description. */
export function renderConfigTable(): string {
  return [
    '| key | environment variable | default | meaning |',
    '|---|---|---|---|',
    ...configKeys().map(
      ({ path, value, description }) =>
        `| \`${path}\` | \`${envName(path)}\` | ${format(value)} | ${description.replaceAll('|', '\\|')} |`,
    ),
  ].join('\n');
}

/** Replaces the `<!-- table:config -->…<!-- /table:config -->` block of a document. */
export function fillConfigTable(doc: string): string {
  return doc.replace(
    /<!-- table:config -->[\s\S]*?<!-- \/table:config -->/,
    `<!-- table:config -->\n${renderConfigTable()}\n<!-- /table:config -->`,
  );
}

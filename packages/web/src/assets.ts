/** Where `npm run build` puts the pages the server serves, and their size budgets (min+gzip bytes). */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const PUBLIC_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'public');

/** The widget with Preact and the SDK: it loads on every page of a customer's site. */
export const WIDGET_BUDGET = 35 * 1024;
/** The console's JavaScript and CSS. */
export const CONSOLE_BUDGET = 150 * 1024;

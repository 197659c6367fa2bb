/**
 * Bundles the SDK for browsers (one minified ESM file, no dependencies) and reports its size.
 * `npm run size` runs it; the size-budget test fails when the bundle outgrows the budget.
 */
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { gzipSync } from 'node:zlib';
import { build } from 'esbuild';

/** Minified and gzipped, in bytes (socket.io-client is about 13 KB). */
export const SIZE_BUDGET = 10 * 1024;

const packageDir = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const BUNDLE_PATH = join(packageDir, 'dist', 'gatehouse-client.min.js');

export interface BundleReport {
  path: string;
  minified: number;
  gzipped: number;
  budget: number;
}

export async function bundle(): Promise<BundleReport> {
  const result = await build({
    entryPoints: [join(packageDir, 'src', 'index.ts')],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2020',
    minify: true,
    write: false,
    legalComments: 'none',
    logLevel: 'silent',
  });
  const code = result.outputFiles[0]?.contents;
  if (!code) throw new Error('esbuild produced no output');
  writeFileSync(BUNDLE_PATH, code);
  return {
    path: BUNDLE_PATH,
    minified: code.length,
    gzipped: gzipSync(code, { level: 9 }).length,
    budget: SIZE_BUDGET,
  };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const report = await bundle();
  const kb = (n: number) => `${(n / 1024).toFixed(2)} KB`;
  console.log(
    `${report.path}\n  minified ${kb(report.minified)}, min+gzip ${kb(report.gzipped)} (budget ${kb(report.budget)})`,
  );
  if (report.gzipped > report.budget) {
    console.error('over the size budget');
    process.exit(1);
  }
}

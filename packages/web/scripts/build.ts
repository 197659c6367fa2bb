/**
 * Bundles the pages with esbuild into `dist/public/` (what the server serves):
 *   widget.js                      one IIFE (Preact + SDK), not hashed: its URL is the embed code
 *   console/index.html             loads console/assets/console-HASH.{js,css} (hashed, immutable)
 *   demo/index.html, demo/zh.html  a page that embeds the widget
 * and reports each page's size (minified and gzipped) against its budget.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { gzipSync } from 'node:zlib';
import { build } from 'esbuild';
import { CONSOLE_BUDGET, PUBLIC_DIR, WIDGET_BUDGET } from '../src/assets.js';

const packageDir = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const src = join(packageDir, 'src');

const common = {
  bundle: true,
  minify: true,
  platform: 'browser' as const,
  target: 'es2020',
  jsx: 'automatic' as const,
  jsxImportSource: 'preact',
  legalComments: 'none' as const,
  logLevel: 'warning' as const,
};

export interface PageSize {
  page: 'widget' | 'console';
  files: string[];
  minified: number;
  gzipped: number;
  budget: number;
}

const gz = (file: string) => gzipSync(readFileSync(file), { level: 9 }).length;

export async function buildPages(): Promise<PageSize[]> {
  rmSync(PUBLIC_DIR, { recursive: true, force: true });
  mkdirSync(join(PUBLIC_DIR, 'demo'), { recursive: true });

  const widgetFile = join(PUBLIC_DIR, 'widget.js');
  await build({ ...common, entryPoints: [join(src, 'widget', 'widget.tsx')], format: 'iife', outfile: widgetFile });

  const consoleDir = join(PUBLIC_DIR, 'console');
  const result = await build({
    ...common,
    entryPoints: [join(src, 'console', 'console.tsx'), join(src, 'console', 'console.css')],
    format: 'esm',
    outdir: consoleDir,
    entryNames: 'assets/[name]-[hash]',
    metafile: true,
    absWorkingDir: packageDir,
  });
  const outputs = Object.keys(result.metafile.outputs).filter((f) => !f.endsWith('.map'));
  const js = outputs.find((f) => f.endsWith('.js')) as string;
  const css = outputs.find((f) => f.endsWith('.css')) as string;
  writeFileSync(
    join(consoleDir, 'index.html'),
    `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Gatehouse agent console</title>
<link rel="stylesheet" href="assets/${basename(css)}">
<script type="module" src="assets/${basename(js)}"></script>
</head>
<body>
<div id="app"></div>
</body>
</html>
`,
  );

  for (const [file, lang] of [
    ['index.html', ''],
    ['zh.html', 'zh'],
  ] as const)
    writeFileSync(
      join(PUBLIC_DIR, 'demo', file),
      `<!doctype html>
<html lang="${lang === 'zh' ? 'zh-CN' : 'en'}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Gatehouse widget demo</title>
<link rel="stylesheet" href="demo.css">
</head>
<body>
<main>
<h1>${lang === 'zh' ? '示例商店' : 'Example shop'}</h1>
<p>${
        lang === 'zh'
          ? '这个页面嵌入了 Gatehouse 聊天组件：点击右下角的气泡与客服聊天。'
          : 'This page embeds the Gatehouse chat widget: click the bubble in the corner to talk to an agent.'
      }</p>
<pre><code>&lt;script src="${'{ORIGIN}'}/widget.js" data-channel="web" async&gt;&lt;/script&gt;</code></pre>
<p><a href="/console/">${lang === 'zh' ? '打开客服控制台' : 'Open the agent console'}</a></p>
</main>
<script src="/widget.js" data-channel="web"${lang ? ` data-lang="${lang}"` : ''} async></script>
</body>
</html>
`.replace('{ORIGIN}', 'https://your-gatehouse.example'),
    );
  writeFileSync(
    join(PUBLIC_DIR, 'demo', 'demo.css'),
    'body{font:16px/1.5 Georgia,serif;margin:0;background:#fafaf9;color:#1c1917}main{max-width:640px;margin:40px auto;padding:0 20px}pre{background:#e7e5e4;padding:10px;overflow-x:auto;white-space:pre-wrap}\n',
  );

  const consoleFiles = [js, css].map((f) => join(packageDir, f));
  const size = (files: string[]) => files.reduce((n, f) => n + readFileSync(f).length, 0);
  return [
    {
      page: 'widget',
      files: [widgetFile],
      minified: size([widgetFile]),
      gzipped: gz(widgetFile),
      budget: WIDGET_BUDGET,
    },
    {
      page: 'console',
      files: consoleFiles,
      minified: size(consoleFiles),
      gzipped: consoleFiles.reduce((n, f) => n + gz(f), 0),
      budget: CONSOLE_BUDGET,
    },
  ];
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const kb = (n: number) => `${(n / 1024).toFixed(1)} KB`;
  for (const p of await buildPages()) {
    console.log(`${p.page}: minified ${kb(p.minified)}, min+gzip ${kb(p.gzipped)} (budget ${kb(p.budget)})`);
    if (p.gzipped > p.budget) {
      console.error(`${p.page} is over its size budget`);
      process.exit(1);
    }
  }
}

// `celluscan bench browser`: matmul variants (and optionally attention paths) in headless Chromium, on the browser's WebGPU adapter (SwiftShader where
// there is no GPU: what the web page runs on such a machine), side by side in one page. The page
// (bench/browser/matmulPage.ts) is bundled from src/ with esbuild (it comes with tsx), served on 127.0.0.1 and
// opened with playwright-core; every variant is checked against the float64 reference before it is timed. Wall
// clock per call including a sync (the browser's timestamp queries are quantised), best of `runs` after a warm-up.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BrowserBenchParams, BrowserBenchResult } from './browser/matmulPage.js';

export type { BrowserBenchResult };

export interface BrowserMatmulOptions extends Partial<BrowserBenchParams> {
  /** Chromium's executable (default $CHROMIUM or /usr/bin/chromium). */
  chromium?: string;
  /** Give up after this many seconds (default 1200). */
  timeoutS?: number;
}

/** The shapes timed by default: 512³, and the fashion-mnist model's Linear products in their three forms (batch 128). */
export const BROWSER_BENCH_SHAPES: BrowserBenchParams['shapes'] = [
  { m: 512, n: 512, k: 512 },
  { m: 2176, n: 192, k: 64, transB: true },
  { m: 2176, n: 64, k: 192 },
  { m: 192, n: 64, k: 2176, transA: true },
];

export const BROWSER_BENCH_VARIANTS = ['subgroup', 'subgroup@2x4/0x4', 'blocked-vec4', 'blocked', 'tiled-vec4', 'tiled'];

export async function benchBrowserMatmul(o: BrowserMatmulOptions = {}): Promise<BrowserBenchResult & { browser: string }> {
  const exe = o.chromium ?? process.env.CHROMIUM ?? '/usr/bin/chromium';
  if (!existsSync(exe)) throw new Error(`bench browser: no Chromium at ${exe} (install it with: apt-get install chromium, or set CHROMIUM)`);
  const params: BrowserBenchParams = { shapes: o.shapes ?? BROWSER_BENCH_SHAPES, variants: o.variants ?? BROWSER_BENCH_VARIANTS, runs: o.runs ?? 4, ...(o.attention ? { attention: o.attention } : {}), ...(o.vit ? { vit: o.vit } : {}) };
  let esbuild: typeof import('esbuild');
  try {
    esbuild = await import('esbuild');
  } catch (e) {
    throw new Error(`bench browser: esbuild is needed to bundle the page (it comes with tsx: npm install): ${(e as Error).message}`);
  }
  let chromium: typeof import('playwright-core').chromium;
  try {
    ({ chromium } = await import('playwright-core'));
  } catch (e) {
    throw new Error(`bench browser: playwright-core is needed to drive Chromium (a devDependency: npm install): ${(e as Error).message}`);
  }
  const dir = mkdtempSync(join(tmpdir(), 'celluscan-bench-browser-'));
  const server = createServer((req, res) => {
    const file = req.url?.split('#')[0] === '/page.js' ? 'page.js' : req.url === '/' ? 'index.html' : undefined;
    if (!file) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': file.endsWith('.js') ? 'text/javascript; charset=utf-8' : 'text/html; charset=utf-8' }).end(readFileSync(join(dir, file)));
  });
  let browser: Awaited<ReturnType<typeof chromium.launch>> | undefined;
  try {
    await esbuild.build({
      entryPoints: [fileURLToPath(new URL('./browser/matmulPage.ts', import.meta.url))],
      bundle: true,
      format: 'esm',
      platform: 'browser',
      outfile: join(dir, 'page.js'),
      logLevel: 'warning',
    });
    writeFileSync(join(dir, 'index.html'), '<!doctype html><title>celluscan bench</title><script type="module" src="/page.js"></script>');
    await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
    const port = (server.address() as AddressInfo).port;
    browser = await chromium.launch({
      executablePath: exe,
      args: ['--enable-unsafe-webgpu', '--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
      timeout: 60_000,
    });
    const page = await browser.newPage();
    await page.goto(`http://127.0.0.1:${port}/#${encodeURIComponent(JSON.stringify(params))}`);
    await page.waitForFunction(() => (window as unknown as { __celluscanBench?: unknown }).__celluscanBench !== undefined, null, { timeout: (o.timeoutS ?? 1200) * 1000, polling: 500 });
    const r = (await page.evaluate(() => (window as unknown as { __celluscanBench: unknown }).__celluscanBench)) as BrowserBenchResult;
    if (r.error) throw new Error(`bench browser: the page failed: ${r.error}`);
    return { ...r, browser: `${browser.browserType().name()} ${browser.version()}` };
  } finally {
    await browser?.close();
    await new Promise<void>((ok) => server.close(() => ok()));
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The attention rows as a markdown table (ms; ratio = explicit ÷ this path, > 1: faster than explicit). */
export function browserAttentionTable(r: BrowserBenchResult): string {
  const a = r.attention;
  if (!a) return '';
  const ex = a.rows.find((x) => x.path === 'explicit');
  const ratio = (ours?: number, base?: number) => (ours && base ? `${(base / ours).toFixed(2)}×` : '');
  const lines = [`attention ${a.shape} (default here: ${a.defaultChoice.train} for training, ${a.defaultChoice.infer} for inference)`, '| path | forward ms | fwd+bwd ms | vs explicit (fwd, fwd+bwd) | max rel. difference from explicit |', '| --- | --- | --- | --- | --- |'];
  for (const x of a.rows) {
    lines.push(
      x.failed
        ? `| ${x.path} | ✗ ${x.failed} | | | ${x.error === undefined ? '' : x.error.toExponential(1)} |`
        : `| ${x.path} | ${x.fwdMs!.toFixed(2)} | ${x.fwdBwdMs!.toFixed(2)} | ${x.path === 'explicit' ? '' : `${ratio(x.fwdMs, ex?.fwdMs)}, ${ratio(x.fwdBwdMs, ex?.fwdBwdMs)}`} | ${x.error === undefined ? '' : x.error.toExponential(1)} |`,
    );
  }
  return lines.join('\n');
}

/** The ViT rows as a markdown table (seconds per forward of the batch, per matmul variant). */
export function browserVitTable(r: BrowserBenchResult): string {
  const v = r.vit;
  if (!v) return '';
  const base = v.rows[0]?.seconds;
  return [
    `${v.config} forward, batch ${v.batch}, attention ${v.attention} (random weights; host input to logits; best of up to 2 after a warm-up)`,
    '| matmul variant | seconds | vs the first | logits max |Δ| from the first |',
    '| --- | --- | --- | --- |',
    ...v.rows.map((x) => (x.failed ? `| ${x.matmul} | ✗ ${x.failed} | | |` : `| ${x.matmul} | ${x.seconds!.toFixed(2)} | ${base ? `${(base / x.seconds!).toFixed(2)}×` : ''} | ${x.logitsDiff === undefined ? '' : x.logitsDiff.toExponential(1)} |`)),
  ].join('\n');
}

/** The result as a markdown table: one row per shape, one column per variant (GFLOP/s; the kernel that ran where it differs). */
export function browserBenchTable(r: BrowserBenchResult): string {
  const variants = r.rows[0]?.cells.map((c) => c.variant) ?? [];
  const head = `| shape | ${variants.join(' | ')} |\n| --- |${variants.map(() => ' --- |').join('')}`;
  const rows = r.rows.map(
    (row) =>
      `| ${row.shape} | ${row.cells
        .map((c) => (c.error ? `✗ ${c.error}` : `${c.gflops!.toFixed(2)}${c.ran !== c.variant.split('@')[0] ? ` (ran ${c.ran})` : ''}`))
        .join(' | ')} |`,
  );
  return [head, ...rows].join('\n');
}

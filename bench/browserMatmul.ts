// `celluscan bench browser`: matmul variants (and optionally attention paths and a ViT forward) in headless Chromium,
// on the browser's WebGPU adapter (SwiftShader where there is no GPU: what the web page runs on such a machine), side
// by side in one page. The page (bench/browser/matmulPage.ts) is bundled from src/ with esbuild (it comes with tsx),
// served on 127.0.0.1 and opened with playwright-core. Matmul: every variant is checked against the float64 reference
// before it is timed, by wall clock over enough calls per sync to take ≥ 30 ms (a sync alone costs ~3 ms in the
// page), best of `runs` after a warm-up. Attention: bench/attention_unfused.ts's timing (timestamp queries where the
// page has them; each row says which clock). ViT: wall clock of a forward, host input to logits.
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BrowserBenchParams, BrowserBenchResult } from './browser/matmulPage.js';
import { parseMatmulVariant } from '../src/kernels/matmul.js';
import { fmtNum } from './format.js';
import type { BenchRow, SuiteResult } from './suite.js';

export type { BrowserBenchResult };

export interface BrowserMatmulOptions extends Partial<BrowserBenchParams> {
  /** Chromium's executable (default $CHROMIUM or /usr/bin/chromium). */
  chromium?: string;
  /** Give up after this many seconds (default 1200). */
  timeoutS?: number;
}

/**
 * The shapes timed by default: 512³, and the Linear products of the patch-7 fashion-mnist model's attention input
 * projection (64 → 192 over 128 images × 17 tokens = 2176 rows) in the three forms a Linear runs: forward x·Wᵀ,
 * dX = dY·W, dW = dYᵀ·X.
 */
export const BROWSER_BENCH_SHAPES: BrowserBenchParams['shapes'] = [
  { m: 512, n: 512, k: 512 },
  { m: 2176, n: 192, k: 64, transB: true },
  { m: 2176, n: 64, k: 192 },
  { m: 192, n: 64, k: 2176, transA: true },
];

export const BROWSER_BENCH_VARIANTS = ['subgroup', 'subgroup@2x4/0x4', 'blocked-vec4', 'blocked', 'tiled-vec4', 'tiled'];

/** The first line of an error's message, without terminal colour codes (Playwright's errors carry a call log). */
function firstLine(e: unknown): string {
  // eslint-disable-next-line no-control-regex
  return String((e as Error)?.message ?? e).replace(/\x1b\[[0-9;]*m/g, '').split('\n')[0];
}

export async function benchBrowserMatmul(o: BrowserMatmulOptions = {}): Promise<BrowserBenchResult & { browser: string; consoleErrors: string[] }> {
  const exe = o.chromium ?? process.env.CHROMIUM ?? '/usr/bin/chromium';
  if (!existsSync(exe) || !statSync(exe).isFile()) throw new Error(`bench browser: no Chromium at ${exe} (install it with: apt-get install chromium, or set CHROMIUM)`);
  const params: BrowserBenchParams = {
    shapes: o.shapes ?? BROWSER_BENCH_SHAPES,
    variants: o.variants ?? BROWSER_BENCH_VARIANTS,
    runs: o.runs ?? 4,
    ...(o.attention ? { attention: o.attention } : {}),
    ...(o.vit ? { vit: o.vit } : {}),
    ...(o.roofline ? { roofline: true } : {}),
    ...(o.peers ? { peers: true } : {}),
  };
  const timeoutS = o.timeoutS ?? 1200;
  let esbuild: typeof import('esbuild');
  try {
    esbuild = await import('esbuild');
  } catch (e) {
    throw new Error(`bench browser: esbuild is needed to bundle the page (it comes with tsx: npm install): ${firstLine(e)}`);
  }
  let chromium: typeof import('playwright-core').chromium;
  try {
    ({ chromium } = await import('playwright-core'));
  } catch (e) {
    throw new Error(`bench browser: playwright-core is needed to drive Chromium (a devDependency: npm install): ${firstLine(e)}`);
  }
  const dir = mkdtempSync(join(tmpdir(), 'celluscan-bench-browser-'));
  const server = createServer((req, res) => {
    const file = req.url?.split('#')[0] === '/page.js' ? 'page.js' : req.url === '/' ? 'index.html' : undefined;
    if (!file) {
      res.writeHead(req.url === '/favicon.ico' ? 204 : 404).end();
      return;
    }
    res.writeHead(200, { 'content-type': file.endsWith('.js') ? 'text/javascript; charset=utf-8' : 'text/html; charset=utf-8' }).end(readFileSync(join(dir, file)));
  });
  let browser: Awaited<ReturnType<typeof chromium.launch>> | undefined;
  try {
    try {
      await esbuild.build({
        entryPoints: [fileURLToPath(new URL('./browser/matmulPage.ts', import.meta.url))],
        bundle: true,
        format: 'esm',
        platform: 'browser',
        outfile: join(dir, 'page.js'),
        logLevel: 'silent',
      });
    } catch (e) {
      throw new Error(`bench browser: bundling the page failed: ${firstLine(e)}`);
    }
    writeFileSync(join(dir, 'index.html'), '<!doctype html><title>celluscan bench</title><script type="module" src="/page.js"></script>');
    await new Promise<void>((ok, fail) => {
      server.once('error', (e) => fail(new Error(`bench browser: could not serve the page on 127.0.0.1: ${firstLine(e)}`)));
      server.listen(0, '127.0.0.1', ok);
    });
    const port = (server.address() as AddressInfo).port;
    try {
      browser = await chromium.launch({
        executablePath: exe,
        args: ['--enable-unsafe-webgpu', '--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
        timeout: 60_000,
      });
    } catch (e) {
      throw new Error(`bench browser: could not start Chromium at ${exe}: ${firstLine(e)}`);
    }
    const page = await browser.newPage();
    // WebGPU validation errors and the like reach the page's console only: kept, and shown with the result.
    const consoleErrors: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error') consoleErrors.push(m.text());
    });
    // An error outside the bench's own code (the module failing to load, a crash) would never set the result: fail fast.
    const failed = new Promise<never>((_, fail) => {
      page.on('pageerror', (e) => fail(new Error(`bench browser: the page failed: ${firstLine(e)}`)));
      page.on('crash', () => fail(new Error('bench browser: the page crashed (out of memory?)')));
    });
    failed.catch(() => {});
    await page.goto(`http://127.0.0.1:${port}/#${encodeURIComponent(JSON.stringify(params))}`);
    try {
      await Promise.race([
        page.waitForFunction(() => (window as unknown as { __celluscanBench?: unknown }).__celluscanBench !== undefined, null, { timeout: timeoutS * 1000, polling: 500 }),
        failed,
      ]);
    } catch (e) {
      if ((e as Error).name === 'TimeoutError') throw new Error(`bench browser: the page did not finish within ${timeoutS} s (--timeout raises the limit)`);
      throw e;
    }
    const r = (await page.evaluate(() => (window as unknown as { __celluscanBench: unknown }).__celluscanBench)) as BrowserBenchResult;
    if (r.error) throw new Error(`bench browser: the page failed: ${r.error}${consoleErrors.length ? ` (console: ${consoleErrors[0]})` : ''}`);
    return { ...r, browser: `${browser.browserType().name()} ${browser.version()}`, consoleErrors };
  } finally {
    // each step on its own: a failing close must not keep the server up or the folder on disk, nor hide the error
    await browser?.close().catch(() => {});
    await new Promise<void>((ok) => (server.listening ? server.close(() => ok()) : ok()));
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The attention rows as a markdown table (ms; ratio = explicit ÷ this path, > 1: faster than explicit). */
export function browserAttentionTable(r: BrowserBenchResult): string {
  const a = r.attention;
  if (!a) return '';
  const ex = a.rows.find((x) => x.path === 'explicit');
  const ratio = (ours?: number, base?: number) => (ours && base ? `${(base / ours).toFixed(2)}×` : '');
  const lines = [`attention ${a.shape} (default here: ${a.defaultChoice.train} for training, ${a.defaultChoice.infer} for inference)`, '| path | forward ms | fwd+bwd ms | vs explicit (fwd, fwd+bwd) | max rel. difference from explicit | clock |', '| --- | --- | --- | --- | --- | --- |'];
  for (const x of a.rows) {
    lines.push(
      x.failed
        ? `| ${x.path} | ✗ ${x.failed} | | | ${x.error === undefined ? '' : x.error.toExponential(1)} | |`
        : `| ${x.path} | ${fmtNum(x.fwdMs!)} | ${fmtNum(x.fwdBwdMs!)} | ${x.path === 'explicit' ? '' : `${ratio(x.fwdMs, ex?.fwdMs)}, ${ratio(x.fwdBwdMs, ex?.fwdBwdMs)}`} | ${x.error === undefined ? '' : x.error.toExponential(1)} | ${x.clock ?? ''} |`,
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
    '| matmul variant | kernel of x·Wᵀ | seconds | vs the first | logits max |Δ| from the first |',
    '| --- | --- | --- | --- | --- |',
    ...v.rows.map((x) =>
      x.failed
        ? `| ${x.matmul} | ${x.ran ?? ''} | ✗ ${x.failed} | | ${x.logitsDiff === undefined ? '' : x.logitsDiff.toExponential(1)} |`
        : `| ${x.matmul} | ${x.ran ?? ''} | ${fmtNum(x.seconds!)} | ${base ? `${(base / x.seconds!).toFixed(2)}×` : ''} | ${x.logitsDiff === undefined ? '' : x.logitsDiff.toExponential(1)} |`,
    ),
  ].join('\n');
}

/** Whether a cell's kernel is not its variant's own family (a vec4 kernel's scalar fallback, subgroup without a fixed size). */
function fellBack(c: { variant: string; ran: string }): boolean {
  return c.ran !== parseMatmulVariant(c.variant).family;
}

/**
 * The result as a markdown table: one row per shape, one column per variant (GFLOP/s; the kernel that ran where it
 * differs); with peers, the library's choice and tfjs-backend-webgpu timed per call with the read-back, and their ratio.
 */
export function browserBenchTable(r: BrowserBenchResult): string {
  const variants = r.rows[0]?.cells.map((c) => c.variant) ?? [];
  const peers = r.rows.some((x) => x.peer);
  const cols = [...variants, ...(peers ? ["library's choice, with read-back", 'tfjs-backend-webgpu, with read-back', 'ratio (×, > 1: ours faster)'] : [])];
  const head = `| shape | ${cols.join(' | ')} |\n| --- |${cols.map(() => ' --- |').join('')}`;
  const peerCells = (p: NonNullable<BrowserBenchResult['rows'][number]['peer']>) => [
    p.ours.error ? `✗ ${p.ours.error}` : `${fmtNum(p.ours.gflops!)} (${p.ours.variant})`,
    p.tfjs.error ? `✗ ${p.tfjs.error}` : fmtNum(p.tfjs.gflops!),
    p.ours.gflops !== undefined && p.tfjs.gflops !== undefined ? fmtNum(p.ours.gflops / p.tfjs.gflops) : '',
  ];
  const rows = r.rows.map(
    (row) =>
      `| ${row.shape} | ${[
        ...row.cells.map((c) => (c.error ? `✗ ${c.error}` : `${fmtNum(c.gflops!)}${fellBack(c) ? ` (ran ${c.ran})` : ''}`)),
        ...(peers ? (row.peer ? peerCells(row.peer) : ['', '', '']) : []),
      ].join(' | ')} |`,
  );
  return [head, ...rows].join('\n');
}

/**
 * The page's result as the suite records it (bench/results/<name>.{json,md,png}): one matmul row per shape and
 * variant (the library's choice carries the tfjs ratio, from wall-clock runs with the read-back on both sides, as the
 * suite's does), the suite's attention rows (each fused variant against the explicit path), and one ViT row per
 * matmul variant. Throws if any case failed its check: a failed run is not recorded.
 */
export function browserSuiteResult(r: BrowserBenchResult & { browser: string }, date = new Date()): SuiteResult {
  const a = r.adapter;
  if (!a) throw new Error('bench browser: the page reported no adapter');
  if (!r.roofline) throw new Error('bench browser: no roofline was measured in the page, so the rows cannot be put against the peak');
  const failed = [
    ...r.rows.flatMap((x) => x.cells.filter((c) => c.error).map((c) => `matmul ${x.shape} ${c.variant}: ${c.error}`)),
    ...r.rows.filter((x) => x.peer?.ours.error).map((x) => `matmul ${x.shape} ${x.peer!.ours.variant} (timed with read-back): ${x.peer!.ours.error}`),
    ...(r.attention?.rows.filter((x) => x.failed).map((x) => `attention ${x.path}: ${x.failed}`) ?? []),
    ...(r.vit?.rows.filter((x) => x.failed).map((x) => `vit matmul ${x.matmul}: ${x.failed}`) ?? []),
  ];
  if (failed.length) throw new Error(`bench browser: not recorded, ${failed.length} case(s) failed: ${failed.join('; ')}`);
  const roof = r.roofline;
  const rows: BenchRow[] = [];
  const errors: SuiteResult['errors'] = [];
  for (const x of r.rows) {
    const peer = x.peer;
    let peerPlaced = false;
    for (const c of x.cells) {
      const v = `${c.variant}${fellBack(c) ? ` (ran ${c.ran})` : ''}`;
      const row: BenchRow = { bench: 'matmul', case: x.shape, variant: v, metric: 'throughput (wall clock, >= 30 ms of calls per sync)', value: c.gflops!, unit: 'GFLOP/s', pctPeak: (100 * c.gflops!) / roof.peakGflops };
      if (peer && c.variant === peer.ours.variant && peer.tfjs.gflops !== undefined) {
        Object.assign(row, { peer: 'tfjs-backend-webgpu', peerValue: peer.tfjs.gflops, ratio: peer.ours.gflops! / peer.tfjs.gflops, note: `ratio from wall-clock runs incl. read-back of C on both sides: ours ${fmtNum(peer.ours.gflops)} GFLOP/s` });
        peerPlaced = true;
      }
      rows.push(row);
    }
    if (peer && peer.tfjs.error) errors.push({ bench: 'matmul', error: `${x.shape}: tfjs-backend-webgpu peer did not run: ${peer.tfjs.error}` });
    else if (peer && !peerPlaced && peer.tfjs.gflops !== undefined) {
      // the library's choice was not among the variants timed: its own row, timed the peer's way
      rows.push({
        bench: 'matmul', case: x.shape, variant: `${peer.ours.variant} (library's choice)`, metric: 'throughput (wall clock incl. read-back of C)', value: peer.ours.gflops!, unit: 'GFLOP/s',
        pctPeak: (100 * peer.ours.gflops!) / roof.peakGflops, peer: 'tfjs-backend-webgpu', peerValue: peer.tfjs.gflops, ratio: peer.ours.gflops! / peer.tfjs.gflops,
      });
    }
  }
  const att = r.attention;
  if (att) {
    const ex = att.rows.find((x) => x.path === 'explicit')!;
    const def = att.defaultChoice.train.match(/^fused (\S+)/)?.[1];
    for (const x of att.rows) {
      if (x.path === 'explicit') continue;
      const v = `fused ${x.path}${x.path === def ? ' (default)' : ''}`;
      const peer = 'explicit (matmul→softmax→matmul)';
      rows.push({ bench: 'attention', case: `${att.shape} forward`, variant: v, metric: `time (${x.clock})`, value: x.fwdMs!, unit: 'ms', peer, peerValue: ex.fwdMs, ratio: ex.fwdMs! / x.fwdMs! });
      rows.push({ bench: 'attention', case: `${att.shape} forward+backward`, variant: v, metric: `time (${x.clock})`, value: x.fwdBwdMs!, unit: 'ms', peer, peerValue: ex.fwdBwdMs, ratio: ex.fwdBwdMs! / x.fwdBwdMs! });
    }
  }
  const vit = r.vit;
  if (vit) {
    for (const x of vit.rows) {
      rows.push({
        bench: 'vit', case: `${vit.config} forward, batch ${vit.batch}`, variant: `matmul ${x.matmul}${x.matmul === a.defaultVariant ? ' (default)' : ''}, attention ${vit.attention}`, metric: 'time/image (wall clock, host input to logits)',
        value: x.seconds! / vit.batch, unit: 's/image',
      });
    }
  }
  return {
    adapter: a.key,
    adapterInfo: { vendor: a.vendor, architecture: a.architecture, device: a.device, description: a.description },
    runtime: `${r.browser} (headless)`,
    date: date.toISOString(),
    roofline: roof,
    rows,
    errors,
  };
}

// The same library in the browser: the page in web/ is built with Vite (from src/, no copies), served on
// 127.0.0.1 and opened in Debian's headless Chromium (playwright-core, WebGPU through SwiftShader). A small
// random ViT and a known image are made here; the page's logits must equal this process's (Dawn/lavapipe),
// with and without an ablated head. Without WebGPU the page must say so with NoAdapterError's message.
// Needs /usr/bin/chromium (npm test installs it: scripts/setup.sh --test). A screenshot is saved to
// $TMPDIR/celluscan-browser/browser.png.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { extname, join, normalize, resolve, sep } from 'node:path';
import pngjs from 'pngjs';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NO_ADAPTER_HELP } from '../src/kernels/device.js';
import { attentionMaps } from '../src/vit/attentionMaps.js';
import type { VitConfig } from '../src/vit/config.js';
import { decodeImage } from '../src/vit/decode.js';
import { prepareImage, type PreparedImage } from '../src/vit/image.js';
import { presetLabels } from '../src/vit/labels.js';
import { VisionTransformer } from '../src/vit/model.js';
import { loadModelFromSafetensors, logitsFor, type LoadedModel } from '../src/vit/predict.js';
import { celluscanMetadata, serializeSafetensors } from '../src/vit/safetensors.js';
import { useGpu } from './gpu.js';

useGpu();

const CHROMIUM = '/usr/bin/chromium';
const ROOT = resolve(import.meta.dirname, '..');
// Flags: WebGPU on (SwiftShader's adapter without a GPU), and none of Chromium's own network traffic.
const BASE_ARGS = ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'];
const WEBGPU_ARGS = ['--enable-unsafe-webgpu', ...BASE_ARGS];

// Small and odd: 17 tokens, head size 12, mlp 50 and 14 classes not multiples of 4 (so both the vec4 and the
// scalar matmul paths run), 2 layers × 3 heads.
const CONFIG: VitConfig = { image_size: 32, patch_size: 8, num_layers: 2, num_heads: 3, hidden_dim: 36, mlp_dim: 50, num_classes: 14, dropout: 0, attention_dropout: 0 };
const ABLATE: [number, number] = [1, 2];

// f32 throughout, on two different adapters (lavapipe here, SwiftShader in Chromium) whose kernels may differ
// (matmul variant per adapter, subgroup vs scalar reductions) and so sum in different orders. Logits of this
// model are O(1) and come from sums of at most 192 terms per layer; f32 rounding differences stay around 1e-6,
// so 1e-4 absolute leaves a wide margin while still catching any real difference (a wrong kernel, a lost
// head mask, a different preprocessing) which moves logits by 1e-2 or more.
const ATOL = 1e-4;

const tmp = mkdtempSync(join(tmpdir(), 'celluscan-browser-test-'));
const site = join(tmp, 'site');
const fixtures = join(tmp, 'fixtures');
const artifacts = join(tmpdir(), 'celluscan-browser');

let server: Server | undefined;
let base = '';
let browser: Browser | undefined;
const node: { lm?: LoadedModel; img?: PreparedImage; fused?: number[]; explicit?: number[]; ablated?: number[]; ablatedExplicit?: number[] } = {};

const MIME: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.png': 'image/png',
  '.safetensors': 'application/octet-stream',
};

/** A static file server: /fixtures/* from the fixtures folder, everything else from the built site. */
function serve(): Promise<string> {
  server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    let p = decodeURIComponent(url.pathname);
    const dir = p.startsWith('/fixtures/') ? fixtures : site;
    if (p.startsWith('/fixtures/')) p = p.slice('/fixtures'.length);
    if (p.endsWith('/')) p += 'index.html';
    const file = normalize(join(dir, p));
    if (!file.startsWith(dir + sep) || !existsSync(file) || !statSync(file).isFile()) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
      return;
    }
    res.writeHead(200, { 'content-type': MIME[extname(file)] ?? 'application/octet-stream', 'cache-control': 'no-store' });
    res.end(readFileSync(file));
  });
  return new Promise((ok) => server!.listen(0, '127.0.0.1', () => ok(`http://127.0.0.1:${(server!.address() as AddressInfo).port}`)));
}

/** A 40×30 RGB image with smooth gradients and a disc (not square: prepareImage resizes and pads it). */
function knownPng(): Buffer {
  const w = 40;
  const h = 30;
  const png = new pngjs.PNG({ width: w, height: h });
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = 4 * (y * w + x);
      const inDisc = (x - 22) ** 2 + (y - 14) ** 2 < 80;
      png.data[i] = inDisc ? 90 : (x * 37 + y * 11) % 256;
      png.data[i + 1] = inDisc ? 40 : (200 - 3 * y) & 255;
      png.data[i + 2] = inDisc ? 150 : (x * y) % 256;
      png.data[i + 3] = 255;
    }
  }
  return pngjs.PNG.sync.write(png, { colorType: 2 });
}

interface PageState {
  status: string;
  run: number;
  error?: string;
  gpuErrors: string[];
  logits?: number[];
  baseLogits?: number[];
  attentionLogits?: number[];
  ablate: [number, number][];
  top?: { label: string; prob: number }[];
  adapter?: { key: string; description: string };
}

const pageState = (page: Page) => page.evaluate(() => (window as unknown as { celluscan: unknown }).celluscan) as Promise<PageState>;

/** Wait until the page has finished run number `run` (or stopped with an error). */
async function settled(page: Page, run: number): Promise<PageState> {
  await page.waitForFunction(
    (n) => {
      const s = (window as unknown as { celluscan?: { status: string; run: number } }).celluscan;
      return !!s && (s.status === 'error' || s.status === 'no-adapter' || (s.status === 'ready' && s.run >= n));
    },
    run,
    { timeout: 120_000, polling: 100 },
  );
  return pageState(page);
}

function maxDiff(a: readonly number[], b: readonly number[]): number {
  expect(a.length).toBe(b.length);
  return a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i])), 0);
}

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is missing: install Debian's chromium (apt-get install -y --no-install-recommends chromium, or npm test, which runs scripts/setup.sh --test)`);
  }
  // 1. Build the page, exactly as `npm run web:build` does, into a temporary folder.
  execFileSync(process.execPath, [join(ROOT, 'node_modules/vite/bin/vite.js'), 'build', 'web', '--outDir', site, '--emptyOutDir', '--logLevel', 'warn'], {
    cwd: ROOT,
    stdio: 'inherit',
  });
  // 2. A random model and a known image, and their logits here (Dawn).
  mkdirSync(fixtures, { recursive: true });
  const model = new VisionTransformer(CONFIG, { init: 'random', seed: 11 });
  const sd = await model.stateDict();
  model.dispose();
  const bytes = serializeSafetensors(sd, celluscanMetadata({ config: CONFIG, labels: presetLabels('wbc14'), mean: [0.5, 0.45, 0.4], std: [0.25, 0.2, 0.22] }));
  writeFileSync(join(fixtures, 'tiny.safetensors'), bytes);
  const png = knownPng();
  writeFileSync(join(fixtures, 'cell.png'), png);
  const lm = loadModelFromSafetensors(bytes, 'tiny.safetensors');
  const img = prepareImage(decodeImage(png, 'cell.png'), { imageSize: CONFIG.image_size, mean: lm.mean, std: lm.std, name: 'cell.png' });
  node.lm = lm;
  node.img = img;
  node.fused = Array.from((await logitsFor(lm, [img]))[0]);
  node.ablated = Array.from((await logitsFor(lm, [img], { ablate: [ABLATE] }))[0]);
  node.explicit = (await attentionMaps(lm, img)).logits;
  node.ablatedExplicit = (await attentionMaps(lm, img, [ABLATE])).logits;
  // The check means something only if the logits differ between classes and the ablation moves them.
  expect(Math.max(...node.fused) - Math.min(...node.fused)).toBeGreaterThan(0.1);
  expect(maxDiff(node.fused, node.ablated)).toBeGreaterThan(1e-2);
  // 3. Serve it and start the browser.
  base = await serve();
  browser = await chromium.launch({ executablePath: CHROMIUM, args: WEBGPU_ARGS, timeout: 60_000 });
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await new Promise<void>((ok) => (server ? server.close(() => ok()) : ok()));
  node.lm?.model.dispose();
  rmSync(tmp, { recursive: true, force: true });
});

describe('the page in headless Chromium (SwiftShader WebGPU)', () => {
  it('gives the same logits as Node for the same weights and image, with and without an ablated head', async () => {
    const page = await browser!.newPage({ viewport: { width: 1180, height: 820 } });
    const consoleErrors: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error') consoleErrors.push(m.text());
    });
    page.on('pageerror', (e) => consoleErrors.push(e.message));
    await page.goto(`${base}/?weights=/fixtures/tiny.safetensors&image=/fixtures/cell.png`);
    let s = await settled(page, 1);
    expect(s.error, `the page failed on ${s.adapter?.description}: ${s.error}\n${consoleErrors.join('\n')}`).toBeUndefined();
    expect(s.status).toBe('ready');
    expect(s.gpuErrors).toEqual([]);
    expect(s.adapter?.key).toBe('swiftshader');
    const dFused = maxDiff(s.logits!, node.fused!);
    const dExplicit = maxDiff(s.attentionLogits!, node.explicit!);
    // Labels from the file's metadata, with the wbc14 descriptions shown.
    expect(await page.locator('#top5 li').count()).toBe(5);
    expect(await page.locator('#top5 .desc').first().textContent()).toMatch(/\w+/);

    // Ablate one head by ticking its box, as a user would.
    await page.locator(`#ablate-${ABLATE[0]}-${ABLATE[1]}`).check();
    s = await settled(page, 2);
    expect(s.error, s.error).toBeUndefined();
    expect(s.ablate).toEqual([ABLATE]);
    const dAblated = maxDiff(s.logits!, node.ablated!);
    const dAblatedExplicit = maxDiff(s.attentionLogits!, node.ablatedExplicit!);
    const dBase = maxDiff(s.baseLogits!, node.fused!);
    expect(await page.locator('#changes tbody tr').count()).toBeGreaterThan(0);

    mkdirSync(artifacts, { recursive: true });
    await page.screenshot({ path: join(artifacts, 'browser.png'), fullPage: true });
    console.log(
      `browser vs Node max |Δlogit|: fused ${dFused.toExponential(2)}, explicit ${dExplicit.toExponential(2)}, ` +
        `ablated ${dAblated.toExponential(2)} / ${dAblatedExplicit.toExponential(2)}; screenshot ${join(artifacts, 'browser.png')}`,
    );
    for (const [what, d] of [['fused', dFused], ['explicit', dExplicit], ['ablated fused', dAblated], ['ablated explicit', dAblatedExplicit], ['unablated after ablation', dBase]] as const) {
      expect(d, `${what} logits: browser vs Node differ by ${d}`).toBeLessThanOrEqual(ATOL);
    }
    expect(consoleErrors).toEqual([]);
    await page.close();
  });

  it('trains the tiny ViT in the page (backward kernels and AdamW on SwiftShader): the loss falls', async () => {
    const page = await browser!.newPage({ viewport: { width: 1180, height: 900 } });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${base}/`);
    await page.waitForFunction(() => (window as unknown as { celluscan?: { training?: unknown } }).celluscan?.training !== undefined, null, { timeout: 60_000 });
    const steps = 20;
    await page.fill('#train-steps', String(steps));
    await page.click('#train-start');
    await page.waitForFunction(
      () => ['done', 'error', 'stopped'].includes((window as unknown as { celluscan: { training: { status: string } } }).celluscan.training.status),
      null,
      { timeout: 150_000, polling: 250 },
    );
    const { training: t, gpuErrors } = (await page.evaluate(() => (window as unknown as { celluscan: unknown }).celluscan)) as {
      training: { status: string; losses: number[]; accuracy: [number, number][] };
      gpuErrors: string[];
    };
    const why = `${await page.locator('#train-status').textContent()} ${gpuErrors.join('; ')} ${errors.join('; ')}`;
    expect(t.status, why).toBe('done');
    expect(gpuErrors).toEqual([]);
    expect(t.losses).toHaveLength(steps);
    expect(t.losses.every(Number.isFinite)).toBe(true);
    // Four balanced classes start at ln 4 ≈ 1.386 (the head starts at zero); 20 AdamW steps at lr 3e-3 on this
    // easy task bring the mean of the last five well below that (measured 0.67, held-out accuracy 84%).
    expect(t.losses[0]).toBeCloseTo(Math.log(4), 3);
    const last5 = t.losses.slice(-5).reduce((a, b) => a + b, 0) / 5;
    expect(last5, `losses ${t.losses.map((l) => l.toFixed(3)).join(' ')}`).toBeLessThan(1.3);
    expect(t.accuracy.at(-1)![0]).toBe(steps);
    console.log(`in-page training: loss ${t.losses[0].toFixed(3)} → mean of the last five ${last5.toFixed(3)}, held-out accuracy ${(100 * t.accuracy.at(-1)![1]).toFixed(0)}% after ${steps} steps`);
    await page.close();
  });

  it('names a wrong URL parameter or an unreadable weights address instead of failing later or quietly', async () => {
    const page = await browser!.newPage();
    const cases: [string, RegExp][] = [
      ['?ablate=zz&weights=/fixtures/tiny.safetensors', /^URL parameter ablate=zz: 'zz' is not LAYER:HEAD/],
      ['?labels=bogus', /^URL parameter labels=bogus: choose one of file, wbc14$/],
      ['?weights=/fixtures/none.safetensors', /^weights: \/fixtures\/none\.safetensors: HTTP 404/],
      // a development server's answer to a wrong path: its index page with status 200
      ['?weights=/index.html', /^weights: \/index\.html: the server sent an HTML page, not a \.safetensors file/],
      ['?weights=http://127.0.0.1:1/w.safetensors', /^weights: http:\/\/127\.0\.0\.1:1\/w\.safetensors: could not be fetched \(/],
    ];
    for (const [query, want] of cases) {
      await page.goto(`${base}/${query}`);
      const s = await settled(page, 1);
      expect(s.status, query).toBe('error');
      expect(s.error, query).toMatch(want);
      expect(await page.locator('#error').textContent(), query).toBe(s.error);
    }
    // An ablation the loaded model has no head for is said in the notes, not dropped quietly.
    await page.goto(`${base}/?ablate=1:2,7:0&weights=/fixtures/tiny.safetensors&image=/fixtures/cell.png`);
    const s = await settled(page, 1);
    expect(s.error, s.error).toBeUndefined();
    expect(s.ablate).toEqual([ABLATE]);
    expect(await page.locator('#notes').textContent()).toMatch(/not ablated: 7:0 \(this model has 2 layers of 3 heads/);
    await page.close();
  });

  it('says plainly that there is no WebGPU adapter when Chromium runs without WebGPU', async () => {
    const plain = await chromium.launch({ executablePath: CHROMIUM, args: BASE_ARGS, timeout: 60_000 });
    try {
      const page = await plain.newPage();
      await page.goto(`${base}/`);
      const s = await settled(page, 1);
      expect(s.status).toBe('no-adapter');
      const shown = (await page.locator('#error').textContent()) ?? '';
      expect(shown.startsWith(NO_ADAPTER_HELP)).toBe(true);
      expect(await page.locator('#error').isVisible()).toBe(true);
    } finally {
      await plain.close();
    }
  });
});

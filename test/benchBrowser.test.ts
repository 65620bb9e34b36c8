// `celluscan bench browser`: the page is bundled from src/, opened in headless Chromium (SwiftShader), and every
// variant is checked against float64 there before it is timed. Needs /usr/bin/chromium (npm test installs it).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { benchBrowserMatmul, browserAttentionTable, browserBenchTable, browserSuiteResult, browserVitTable, type BrowserBenchResult } from '../bench/browserMatmul.js';
import { chartData, recordSuite, type SuiteResult } from '../bench/suite.js';
import { DEFAULT_MATMUL_VARIANTS } from '../src/kernels/autotune.js';
import { variantForShape } from '../src/kernels/matmul.js';

/** A page result as the page returns it, for the conversion's own checks (no browser needed). */
function pageResult(over: Partial<BrowserBenchResult> = {}): BrowserBenchResult & { browser: string } {
  return {
    browser: 'chromium 1.0',
    adapter: { key: 'swiftshader', description: 'd', vendor: 'google', architecture: 'swiftshader', device: '', features: [], defaultVariant: 'subgroup', defaultChoice: 'subgroup' },
    roofline: { adapter: 'swiftshader', peakGflops: 4, peakGBs: 2, clock: 'timestamp-query' },
    rows: [
      {
        shape: '64×64×64',
        cells: [
          { variant: 'tiled', ran: 'tiled', gflops: 1, ms: 0.5 },
          { variant: 'blocked-vec4', ran: 'blocked', gflops: 0.5, ms: 1 },
        ],
        peer: { ours: { variant: 'subgroup', gflops: 3 }, tfjs: { peer: 'tfjs-backend-webgpu', gflops: 0.5 } },
      },
    ],
    vit: { config: 'vit_ti_16', batch: 2, attention: 'explicit', rows: [{ matmul: 'subgroup', ran: 'subgroup', seconds: 3 }] },
    ...over,
  };
}

describe('bench browser results in the suite format', () => {
  it('gives the library\'s choice its own row when it was not among the variants timed, and puts rows against the peak', () => {
    const s = browserSuiteResult(pageResult());
    expect(s.rows.map((x) => `${x.bench}|${x.variant}|${x.value}|${x.pctPeak ?? ''}|${x.ratio ?? ''}`)).toEqual([
      'matmul|tiled|1|25|',
      'matmul|blocked-vec4 (ran blocked)|0.5|12.5|',
      "matmul|subgroup (library's choice)|3|75|6",
      'vit|matmul subgroup (default), attention explicit|1.5||',
    ]);
  });

  it('refuses a run without a roofline, with a failed case, or with a library choice that failed its check; a peer that failed is an error line', () => {
    expect(() => browserSuiteResult(pageResult({ roofline: undefined }))).toThrow(/no roofline was measured in the page/);
    const bad = pageResult();
    bad.rows[0].cells[1] = { variant: 'blocked-vec4', ran: 'blocked', error: 'differs from the float64 reference' };
    expect(() => browserSuiteResult(bad)).toThrow(/^bench browser: not recorded, 1 case\(s\) failed: matmul 64×64×64 blocked-vec4: differs from the float64 reference$/);
    const oursBad = pageResult();
    oursBad.rows[0].peer!.ours = { variant: 'subgroup', error: 'differs from the float64 reference' };
    expect(() => browserSuiteResult(oursBad)).toThrow(/matmul 64×64×64 subgroup \(timed with read-back\): differs/);
    const peerBad = pageResult();
    peerBad.rows[0].peer!.tfjs = { peer: 'tfjs-backend-webgpu', error: 'tfjs matMul differs from the float64 reference' };
    const s = browserSuiteResult(peerBad);
    expect(s.errors).toEqual([{ bench: 'matmul', error: '64×64×64: tfjs-backend-webgpu peer did not run: tfjs matMul differs from the float64 reference' }]);
    expect(s.rows.some((x) => x.peer)).toBe(false);
  });

  it('the chart has one bar per row with a ratio; rows sharing a case are told apart by their variant, not stacked', () => {
    const row = (c: string, variant: string, ratio?: number) => ({ bench: 'attention', case: c, variant, metric: 'time', value: 1, unit: 'ms', ...(ratio !== undefined ? { ratio, peer: 'explicit' } : {}) });
    expect(chartData([row('fwd', 'fused a', 0.5), row('fwd', 'fused b', 0.25), row('bwd', 'fused a', 2), row('other', 'x')]).map((d) => `${d.what}=${d.ratio}`)).toEqual([
      'attention fwd [fused a]=0.5',
      'attention fwd [fused b]=0.25',
      'attention bwd=2',
    ]);
    // a peak-memory ratio is in the table, not a bar on the speed chart
    expect(chartData([row('fwd', 'fused a', 0.5), { ...row('mem', 'fused a', 2.4), metric: 'peak memory', unit: 'MiB' }]).map((d) => d.what)).toEqual(['attention fwd']);
  });

  it('records JSON, markdown and chart under the given name; a later run of some benches keeps the others\' rows', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'celluscan-record-'));
    try {
      const files = await recordSuite(browserSuiteResult(pageResult()), { dir, name: 'swiftshader-browser' });
      expect(files.map((f) => f.slice(dir.length + 1))).toEqual(['swiftshader-browser.json', 'swiftshader-browser.md', 'swiftshader-browser.png']);
      const md = readFileSync(join(dir, 'swiftshader-browser.md'), 'utf8');
      expect(md).toMatch(/^# Benchmarks on swiftshader in chromium 1\.0 \(headless\)\n/);
      expect(md).toContain("| matmul | 64×64×64 | subgroup (library's choice) | 3.00 GFLOP/s | 75.0 | tfjs-backend-webgpu: 0.500 GFLOP/s | 6.00 |");
      expect(readFileSync(join(dir, 'swiftshader-browser.png')).subarray(1, 4).toString()).toBe('PNG');
      // a second run of the ViT only: the matmul rows stay, the ViT row is replaced
      const vitOnly = browserSuiteResult(pageResult({ rows: [], vit: { config: 'vit_ti_16', batch: 1, attention: 'explicit', rows: [{ matmul: 'subgroup', ran: 'subgroup', seconds: 2 }] } }));
      await recordSuite(vitOnly, { dir, name: 'swiftshader-browser' });
      const json = JSON.parse(readFileSync(join(dir, 'swiftshader-browser.json'), 'utf8')) as SuiteResult;
      expect(json.rows.map((x) => `${x.bench} ${x.value}`)).toEqual(['matmul 1', 'matmul 0.5', 'matmul 3', 'vit 2']);
      expect(json.runtime).toBe('chromium 1.0 (headless)');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('bench browser', () => {
  it('times checked matmul variants on the browser adapter and names the kernel that ran', async () => {
    const r = await benchBrowserMatmul({
      shapes: [
        { m: 36, n: 20, k: 44, transB: true },
        { m: 13, n: 18, k: 7, transA: true },
      ],
      variants: ['subgroup', 'blocked-vec4', 'tiled-vec4'],
      runs: 1,
      attention: { batch: 1, heads: 2, seq: 13, dim: 8, variants: ['subgroup-saved', 'rows', 'warp'] },
      roofline: true,
      peers: true,
    });
    expect(r.adapter?.key).toBe('swiftshader');
    expect(r.adapter?.defaultVariant).toBe(DEFAULT_MATMUL_VARIANTS.swiftshader);
    expect(r.rows.map((x) => x.shape)).toEqual(['36×20×44 tB', '13×18×7 tA']);
    for (const row of r.rows) {
      expect(row.cells.map((c) => c.variant)).toEqual(['subgroup', 'blocked-vec4', 'tiled-vec4']);
      for (const c of row.cells) {
        expect(c.error, `${row.shape} ${c.variant}`).toBeUndefined();
        expect(c.gflops! > 0 && Number.isFinite(c.gflops!)).toBe(true);
      }
    }
    // the vec4 kernels run their own code where aligned and fall back (to blocked / tiled) where not
    expect(r.rows[0].cells.map((c) => c.ran)).toEqual(['subgroup', 'blocked-vec4', 'tiled-vec4']);
    expect(r.rows[1].cells.map((c) => c.ran)).toEqual(['subgroup', 'blocked', 'tiled']);
    expect(browserBenchTable(r)).toMatch(/\| 13×18×7 tA \| [\d.]+ \| [\d.]+ \(ran blocked\) \| [\d.]+ \(ran tiled\) \|/);
    // attention: the explicit path, then each fused variant checked against it (f32: ~1e-6 relative) and timed; an
    // unknown variant is reported in its row, not thrown
    const a = r.attention!;
    expect(a.shape).toBe('B1 H2 N13 D8');
    expect(a.defaultChoice.train).toMatch(/^(explicit|fused \S+)/);
    expect(a.rows.map((x) => x.path)).toEqual(['explicit', 'subgroup-saved', 'rows', 'warp']);
    for (const x of a.rows.slice(0, 3)) {
      expect(x.failed, x.path).toBeUndefined();
      expect(x.fwdMs! > 0 && x.fwdBwdMs! > 0).toBe(true);
    }
    for (const x of a.rows.slice(1, 3)) expect(x.error!).toBeLessThan(1e-5);
    expect(a.rows[3].failed).toMatch(/warp/);
    expect(browserAttentionTable(r)).toMatch(/\| warp \| ✗ /);
    // the roofline measured in the page, and tfjs-backend-webgpu beside the library's choice on every shape (both
    // checked against float64 on the same operands, both timed with the read-back)
    expect(r.roofline!.peakGflops > 0 && r.roofline!.peakGBs > 0).toBe(true);
    for (const row of r.rows) {
      // the library's choice as matmul() names it for the shape (a smaller subgroup blocking on these small products)
      expect(row.peer!.ours.variant).toMatch(new RegExp(`^${DEFAULT_MATMUL_VARIANTS.swiftshader}(@|$)`));
      expect(row.peer!.ours.error).toBeUndefined();
      expect(row.peer!.tfjs.error, row.shape).toBeUndefined();
      expect(row.peer!.ours.gflops! > 0 && row.peer!.tfjs.gflops! > 0).toBe(true);
    }
    expect(browserBenchTable(r)).toMatch(/\| 13×18×7 tA \| .* \| [\d.]+ \(subgroup[^)]*\) \| [\d.]+ \| [\d.]+ \|$/m);
    // a run with a failed case is not recorded; the same run without it is, in the suite's format
    expect(() => browserSuiteResult(r)).toThrow(/^bench browser: not recorded, 1 case\(s\) failed: attention warp: /);
    const ok = { ...r, attention: { ...a, rows: a.rows.slice(0, 3) } };
    const s = browserSuiteResult(ok, new Date('2026-11-26T12:00:00Z'));
    expect(s).toMatchObject({ adapter: 'swiftshader', date: '2026-11-26T12:00:00.000Z', errors: [] });
    expect(s.runtime).toMatch(/^chromium \d+.* \(headless\)$/);
    // the library's choice for each shape as SwiftShader's 4-wide subgroups fit it: the full subgroup block for
    // 36×20, a smaller one for 13×18, which no cell timed, so it gets its own row (timed the peer's way)
    const choice = (m: number, n: number) => variantForShape(DEFAULT_MATMUL_VARIANTS.swiftshader, m, n, 4);
    expect([choice(36, 20), choice(13, 18)]).toEqual(['subgroup', 'subgroup@2x8/0x2']);
    expect(r.rows.map((x) => x.peer!.ours.variant)).toEqual([choice(36, 20), choice(13, 18)]);
    expect(s.rows.filter((x) => x.bench === 'matmul').map((x) => x.variant)).toEqual(['subgroup', 'blocked-vec4', 'tiled-vec4', 'subgroup', 'blocked-vec4 (ran blocked)', 'tiled-vec4 (ran tiled)', "subgroup@2x8/0x2 (library's choice)"]);
    const withPeer = s.rows.filter((x) => x.peer === 'tfjs-backend-webgpu');
    expect(withPeer.map((x) => `${x.case} ${x.variant}`)).toEqual(['36×20×44 tB subgroup', "13×18×7 tA subgroup@2x8/0x2 (library's choice)"]);
    for (const x of withPeer) expect(x.ratio).toBeCloseTo(r.rows.find((y) => y.shape === x.case)!.peer!.ours.gflops! / x.peerValue!, 12);
    expect(s.rows.filter((x) => x.bench === 'attention').map((x) => `${x.case} ${x.variant}`)).toEqual([
      'B1 H2 N13 D8 forward fused subgroup-saved' + (a.defaultChoice.train === 'fused subgroup-saved' ? ' (default)' : ''),
      'B1 H2 N13 D8 forward+backward fused subgroup-saved' + (a.defaultChoice.train === 'fused subgroup-saved' ? ' (default)' : ''),
      'B1 H2 N13 D8 forward fused rows',
      'B1 H2 N13 D8 forward+backward fused rows',
    ]);
  }, 240_000);

  it('times a ViT forward in the page with each matmul variant named; logits agree between them', async () => {
    const r = await benchBrowserMatmul({ shapes: [], variants: [], runs: 1, vit: { config: 'vit_ti_16', batch: 1, matmulVariants: ['subgroup', 'subgroup@2x4/0x4'] } });
    const v = r.vit!;
    expect(v).toMatchObject({ config: 'vit_ti_16', batch: 1 });
    expect(v.rows.map((x) => x.matmul)).toEqual(['subgroup', 'subgroup@2x4/0x4']);
    for (const x of v.rows) expect(x.failed === undefined && x.seconds! > 0).toBe(true);
    // the same model and input through another blocking of the same kernel: f32 sums in another grouping, logits O(1)
    expect(v.rows[1].logitsDiff!).toBeLessThan(1e-3);
    expect(browserVitTable(r)).toMatch(/^vit_ti_16 forward, batch 1, attention (explicit|fused \S+)/);
    await expect(benchBrowserMatmul({ shapes: [], variants: [], vit: { config: 'vit_zz', batch: 1, matmulVariants: [] } })).rejects.toThrow(/^bench browser: the page failed: RangeError: unknown ViT preset 'vit_zz'/);
  }, 240_000);

  it('reports a missing or broken Chromium and a page that runs too long in one line each', async () => {
    await expect(benchBrowserMatmul({ chromium: '/nonexistent/chromium' })).rejects.toThrow(/^bench browser: no Chromium at \/nonexistent\/chromium \(install it with/);
    await expect(benchBrowserMatmul({ chromium: '/tmp' })).rejects.toThrow(/^bench browser: no Chromium at \/tmp /);
    const broken = await benchBrowserMatmul({ chromium: '/bin/false' }).catch((e: Error) => e);
    expect((broken as Error).message).toMatch(/^bench browser: could not start Chromium at \/bin\/false: [^\n]*$/);
    await expect(benchBrowserMatmul({ shapes: [{ m: 2048, n: 2048, k: 2048 }], variants: ['naive'], timeoutS: 1 })).rejects.toThrow(
      /^bench browser: the page did not finish within 1 s \(--timeout raises the limit\)$/,
    );
  }, 120_000);

  it('records from the command line into --results-dir, and records nothing when a case fails', () => {
    const dir = mkdtempSync(join(tmpdir(), 'celluscan-record-cli-'));
    const cli = (...args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'bench', 'browser', ...args], { encoding: 'utf8', timeout: 200_000 });
    try {
      const ok = cli('--shapes', '13x18x7tA', '--variants', 'subgroup', '--runs', '1', '--record', '--results-dir', dir);
      expect(ok.status, ok.stderr).toBe(0);
      expect(ok.stdout).toMatch(/^measured roofline: [\d.]+ GFLOP\/s, [\d.]+ GB\/s/m);
      expect(ok.stdout).toContain(`recorded ${join(dir, 'swiftshader-browser.json')}`);
      const json = JSON.parse(readFileSync(join(dir, 'swiftshader-browser.json'), 'utf8')) as SuiteResult;
      expect(json.rows.map((x) => `${x.bench} ${x.case} ${x.variant} ${x.peer}`)).toEqual(['matmul 13×18×7 tA subgroup undefined', "matmul 13×18×7 tA subgroup@2x8/0x2 (library's choice) tfjs-backend-webgpu"]);
      // a case that fails in the page (fused attention takes head dimensions up to 256; the explicit path any): the
      // table says which, the command fails, nothing is written
      rmSync(dir, { recursive: true, force: true });
      const bad = cli('--shapes', '13x18x7tA', '--variants', 'subgroup', '--runs', '1', '--no-peers', '--attention', '1x1x5x300', '--attention-variants', 'rows', '--record', '--results-dir', dir);
      expect(bad.status).toBe(1);
      expect(bad.stdout).toMatch(/^\| rows \| ✗ attentionForward: head dimension D=300 /m);
      expect(bad.stderr).toMatch(/^celluscan: bench browser: 1 case\(s\) failed \(marked ✗\); nothing was recorded\n$/);
      expect(existsSync(dir)).toBe(false);
      const usage = cli('--results-dir', dir);
      expect(usage.status).toBe(1);
      expect(usage.stderr).toMatch(/^celluscan: bench browser: --results-dir needs --record\n$/);
      expect(existsSync(dir)).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 240_000);
});

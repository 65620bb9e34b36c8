// `celluscan bench browser`: the page is bundled from src/, opened in headless Chromium (SwiftShader), and every
// variant is checked against float64 there before it is timed. Needs /usr/bin/chromium (npm test installs it).
import { describe, expect, it } from 'vitest';
import { benchBrowserMatmul, browserAttentionTable, browserBenchTable, browserVitTable } from '../bench/browserMatmul.js';
import { DEFAULT_MATMUL_VARIANTS } from '../src/kernels/autotune.js';

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
});

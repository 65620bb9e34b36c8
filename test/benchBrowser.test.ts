// `celluscan bench browser`: the page is bundled from src/, opened in headless Chromium (SwiftShader), and every
// variant is checked against float64 there before it is timed. Needs /usr/bin/chromium (npm test installs it).
import { describe, expect, it } from 'vitest';
import { benchBrowserMatmul, browserBenchTable } from '../bench/browserMatmul.js';
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
  }, 240_000);

  it('reports a missing Chromium by name, not with a stack trace from the browser driver', async () => {
    await expect(benchBrowserMatmul({ chromium: '/nonexistent/chromium' })).rejects.toThrow(/^bench browser: no Chromium at \/nonexistent\/chromium \(install it with/);
  });
});

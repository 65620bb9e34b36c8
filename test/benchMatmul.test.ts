// The matmul kernel lab (bench/matmul.ts, `celluscan bench matmul`): batched products, and several variants side by side
// in alternating rounds, each checked against float64 before it is timed.
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { benchMatmul, compareMatmulVariants } from '../bench/matmul.js';
import { benchVit } from '../bench/vit.js';
import { describeMatmulChoice, matmulChoice, matmulVariantFor } from '../src/kernels/autotune.js';
import { gpu } from '../src/kernels/device.js';
import { useGpu } from './gpu.js';

useGpu();

describe('bench matmul', () => {
  it('compares variants on a batched product in alternating rounds; ratios are against the first, by one clock', async () => {
    const r = await compareMatmulVariants({ m: 17, n: 13, k: 16, batch: 7, transB: true, variants: ['subgroup', 'blocked', 'tiled:plain'], runs: 3 });
    expect(r).toMatchObject({ op: 'matmul', shape: '7×17×13×16 tB', checked: 'operands', rounds: 3 });
    expect(r.rows.map((x) => `${x.variant}=${x.kernel}`)).toEqual(['subgroup=subgroup', 'blocked=blocked', 'tiled:plain=tiled (plain copy)']);
    expect(r.rows[0].vs_first).toBe(1);
    for (const x of r.rows) {
      expect(x.gflops > 0 && Number.isFinite(x.gflops), x.variant).toBe(true);
      expect(x.best_ms).toBeLessThanOrEqual(x.median_ms);
      // the ratio and the rate come from one time per row: the first's time over this one's
      const ms = (row: typeof x) => row.gpu_ms ?? row.best_ms;
      expect(x.vs_first).toBeCloseTo(ms(r.rows[0]) / ms(x), 12);
      expect(x.gflops).toBeCloseTo((2 * 7 * 17 * 13 * 16) / ms(x) / 1e6, 9);
    }
    expect(r.clock).toBe(r.rows.every((x) => x.gpu_ms !== null) ? 'timestamp-query (median)' : 'wall clock (best)');
    // the kernel column names a split-K where one runs: Aᵀ·B in 4 chunks of 12; the batched product above runs unsplit
    const split = await compareMatmulVariants({ m: 20, n: 12, k: 48, transA: true, variants: ['blocked:k4', 'tiled-vec4:k4'], runs: 1 });
    expect(split.rows.map((x) => x.kernel)).toEqual(['blocked (split-K 4)', 'tiled-vec4 (split-K 4)']);
    const batched = await compareMatmulVariants({ m: 20, n: 12, k: 48, batch: 2, transA: true, variants: ['blocked:k4'], runs: 1 });
    expect(batched.rows[0].kernel).toBe('blocked');
    await expect(compareMatmulVariants({ m: 4, n: 4, k: 4, variants: ['subgroup', 'warp'] })).rejects.toThrow(/unknown variant 'warp'/);
    await expect(compareMatmulVariants({ m: 4, n: 4, k: 4, variants: [] })).rejects.toThrow(/no variants/);
  }, 240_000);

  it('times a batched product with a shared 2-D b, counting every product in the rate', async () => {
    const r = (await benchMatmul({ m: 20, n: 12, k: 8, batch: 5, sharedB: true, transA: true, variant: 'blocked', runs: 2 })) as Record<string, number | string | boolean>;
    expect(r).toMatchObject({ batch: 5, sharedB: true, transA: true, variant: 'blocked', kernel: 'blocked' });
    expect(r.gflops as number).toBeCloseTo((2 * 5 * 20 * 12 * 8) / (r.ms as number) / 1e6, 9);
  }, 120_000);

  it('names bad options on the command line', () => {
    const cli = (...args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'bench', 'matmul', ...args], { encoding: 'utf8', timeout: 120_000 });
    const shared = cli('--shared-b');
    expect(shared.status).toBe(1);
    expect(shared.stderr).toMatch(/^celluscan: bench matmul: --shared-b needs --batch\n$/);
    const bad = cli('--variant', 'subgroup,tiled@99x1/1x1');
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/^celluscan: bench matmul: --variant: matmul: bad variant 'tiled@99x1\/1x1'/);
  }, 120_000);

  it('bench vit --matmul: the forward per matmul choice in alternating rounds, logits against the first, the choice restored', async () => {
    const before = [matmulChoice(gpu().adapterKey), describeMatmulChoice(gpu().adapterKey), matmulVariantFor(gpu().adapterKey, false, true)];
    const r = await benchVit({ config: 'vit_ti_16', batch: 1, runs: 2, matmul: ['library', 'blocked', 'subgroup:plain'] });
    expect(r.matmul_rows!.map((x) => [x.matmul, x.describes])).toEqual([
      ['library', before[1]],
      ['blocked', 'blocked'],
      ['subgroup:plain', expect.stringMatching(/^subgroup:plain/)], // (+ a note where subgroup runs as another kernel)
    ]);
    expect(r.matmul_rows![0].vs_first).toBe(1);
    expect(r.seconds_per_image).toBe(r.matmul_rows![0].seconds_per_image);
    for (const x of r.matmul_rows!) {
      expect(x.seconds_per_image > 0).toBe(true);
      // the same model and input through other kernels: f32 sums in another grouping, logits O(1)
      expect(x.logits_max_diff).toBeLessThan(1e-3);
    }
    expect([matmulChoice(gpu().adapterKey), describeMatmulChoice(gpu().adapterKey), matmulVariantFor(gpu().adapterKey, false, true)]).toEqual(before);
    await expect(benchVit({ config: 'vit_ti_16', matmul: ['library', 'warp'] })).rejects.toThrow(/unknown variant 'warp'/);
  }, 240_000);
});

import { afterEach, describe, expect, it } from 'vitest';
import { GpuArray } from '../src/kernels/memory.js';
import { layerNormBackward, layerNormForward } from '../src/kernels/layernorm.js';
import { setRowTeamSize, setRowVariant } from '../src/kernels/softmax.js';
import { LAYERNORM_TOLERANCE, layerNormBackwardRef, layerNormRef, layerNormTolerance } from '../src/kernels/ref/layernorm.js';
import { randomArray, rowSumToleranceScale } from '../src/kernels/ref/math.js';
import { subgroupSize } from '../src/kernels/matmul.js';
import { expectClose, useGpu } from './gpu.js';
import { subgroupTeamTests } from './rowTeams.js';

useGpu();
afterEach(() => setRowVariant(null));

const U = 2 ** -24; // f32 unit roundoff

// Tolerances of y and dx and their reasoning: LAYERNORM_TOLERANCE beside the reference (rows up to 32 768 columns),
// scaled for longer rows by layerNormTolerance(cols) (the blocked row sums' error growth, ref/math.ts rowSumToleranceScale).
const [F_ATOL, F_RTOL] = LAYERNORM_TOLERANCE.y;

async function check(rows: number, cols: number, seed: number, eps = 1e-6, offset = 0) {
  const xs = randomArray(rows * cols, seed, -2, 2).map((v) => v + offset);
  const gs = randomArray(cols, seed + 1, -1.5, 1.5);
  const bs = randomArray(cols, seed + 2);
  const dys = randomArray(rows * cols, seed + 3);
  const x = GpuArray.fromData(xs, [rows, cols]);
  const gamma = GpuArray.fromData(gs, [cols]);
  const beta = GpuArray.fromData(bs, [cols]);
  const dy = GpuArray.fromData(dys, [rows, cols]);
  const f = layerNormForward(x, gamma, beta, eps);
  const ref = layerNormRef(xs, gs, bs, cols, eps);
  // A row offset makes the stored f32 mean itself coarser (it is rounded to ulp(offset)/2, 3.8e-6 at
  // 100, against ~1e-8 near 0), which shifts every x̂ by that · rstd: absolute tolerances scale with it.
  const k = 1 + offset / 10;
  const tol = layerNormTolerance(cols);
  expectClose(await f.y.read(), ref.y, tol.y[0] * k, tol.y[1], `layernorm y ${rows}×${cols}`);
  // mean = x0 + Σ(x − x0)/C, an f32 sum in blocks (shaders/lib/row_team.wgsl): |x − x0| ≤ 4, so the error is
  // ≲ 4·u·(√B + √(C/B)) with random rounding, ≤ 4·27·u ≈ 6.4e-6 for C ≤ 32 768 (4·136·u ≈ 3.2e-5 worst case up to
  // 4096), growing like C^(1/4) beyond (rowSumToleranceScale). 2e-5 leaves room; a plain running sum was off by 2.7e-5
  // at C = 100 000. rstd: half the relative error of the blocked Σ(x − mean)² (positive terms: ≲ 27u ≈ 1.6e-6) and
  // inverseSqrt's 2 ulp.
  const kc = rowSumToleranceScale(cols);
  expectClose(await f.mean.read(), ref.mean, 2e-5 * k * kc, 1e-6, `layernorm mean ${rows}×${cols}`);
  expectClose(await f.rstd.read(), ref.rstd, 0, 1e-5 * kc, `layernorm rstd ${rows}×${cols}`);
  const b = layerNormBackward(x, gamma, f.mean, f.rstd, dy);
  const rb = layerNormBackwardRef(xs, gs, dys, cols, eps);
  expectClose(await b.dx.read(), rb.dx, tol.dx[0] * k, tol.dx[1], `layernorm dx ${rows}×${cols}`);
  // dgamma, dbeta: sums down a column of `rows` terms (|dy·x̂| ≲ 2, |dy| ≤ 1), in chunks of √rows
  // then over √rows chunks, so the f32 error is ≤ 2√rows·u·Σ|terms| ≤ 2√rows·u·2·rows (worst case,
  // 6e-6·rows^1.5... far above what happens); in practice rounding errors are random and the error is
  // ~u·√rows·rms·√(2√rows). We allow 4·u·rows (absolute; 0.017 at 70 000 rows, where |dgamma| ~ 150)
  // plus 1e-5 relative, which covers the random-walk error ~10× and fails on any missed or double-counted row.
  // Each term also carries x̂'s own error (mean off by ≲ 1e-5 (above) times rstd ≈ 0.9), random in
  // sign across rows: + 1e-5·√rows.
  const atol = (4 * U * Math.max(rows, 8) + 1e-5 * Math.sqrt(rows)) * k;
  expectClose(await b.dgamma.read(), rb.dgamma, atol, 1e-5, `layernorm dgamma ${rows}×${cols}`);
  expectClose(await b.dbeta.read(), rb.dbeta, atol, 1e-5, `layernorm dbeta ${rows}×${cols}`);
  for (const a of [x, gamma, beta, dy, f.y, f.mean, f.rstd, b.dx, b.dgamma, b.dbeta]) a.dispose();
}

describe('layernorm', () => {
  for (const [rows, cols] of [[1, 1], [7, 13], [197, 768], [3, 100], [70_000, 7], [2, 5000]] as const) {
    it(`matches the float64 reference, ${rows}×${cols}`, async () => {
      await check(rows, cols, rows * 17 + cols);
    });
  }

  it('eps 1e-5 (torch default) and rows with a large mean (two-pass variance)', async () => {
    await check(7, 13, 3, 1e-5);
    await check(33, 197, 4, 1e-6, 100);
  });

  for (const [T, WG] of [[1, 64], [4, 64], [16, 16], [256, 256]] as const) {
    it(`matches the reference with team ${T}, workgroup ${WG}`, async () => {
      setRowTeamSize(T, WG);
      for (const [rows, cols] of [[1, 1], [7, 13], [19, 197], [3, 1000]] as const) await check(rows, cols, T + cols);
    });
  }

  subgroupTeamTests((rows, cols, seed) => check(rows, cols, seed));

  // Long rows (odd lengths, so blocks and team strides end mid-way), on the adapter's plan, one invocation per row (the
  // longest serial share: the sums are blocked, shaders/lib/row_team.wgsl; plain running sums made y 4× the tolerance
  // off at 100 000 columns), small and large teams, and subgroup teams where the adapter has them.
  // The adapter's plan also on 32 rows of 100 003 (the audit's shape: CPU adapters run one invocation per row from 32 rows).
  for (const variant of [null, 'team1', 'team16/16', 'team256', 'subgroup']) {
    it(`matches the reference on long rows (3×20 011, 2×100 003${variant ? '' : ', 32×100 003'}), ${variant ?? "the adapter's plan"}`, async () => {
      if (variant === 'subgroup' && subgroupSize() === null) return; // subgroupTeamTests checks the message
      setRowVariant(variant);
      if (variant === null) await check(32, 100_003, 55);
      await check(3, 20_011, 51);
      await check(2, 100_003, 53);
    });
  }

  it('works on higher-rank inputs', async () => {
    const xs = randomArray(2 * 3 * 5, 9, -3, 3);
    const g = randomArray(5, 10);
    const b = randomArray(5, 11);
    const f = layerNormForward(GpuArray.fromData(xs, [2, 3, 5]), GpuArray.fromData(g, [5]), GpuArray.fromData(b, [5]), 1e-5);
    expect(f.y.shape).toEqual([2, 3, 5]);
    expect(f.mean.shape).toEqual([6]);
    expectClose(await f.y.read(), layerNormRef(xs, g, b, 5, 1e-5).y, F_ATOL, F_RTOL, 'layernorm rank 3');
  });

  it('the reference backward is the gradient of the reference forward (central differences)', () => {
    const rows = 3;
    const cols = 6;
    const eps = 1e-5;
    const xs = Float64Array.from(randomArray(rows * cols, 21, -2, 2));
    const gs = Float64Array.from(randomArray(cols, 22));
    const bs = Float64Array.from(randomArray(cols, 23));
    const w = Float64Array.from(randomArray(rows * cols, 24));
    const f = (x: Float64Array, g: Float64Array, b: Float64Array) => layerNormRef(x, g, b, cols, eps).y.reduce((s, v, i) => s + v * w[i], 0);
    const h = 1e-6;
    const fd = (v: Float64Array, call: (v: Float64Array) => number) =>
      v.map((_, i) => {
        const p = v.slice();
        const m = v.slice();
        p[i] += h;
        m[i] -= h;
        return (call(p) - call(m)) / (2 * h);
      });
    const rb = layerNormBackwardRef(xs, gs, w, cols, eps);
    // float64 central differences, h = 1e-6: truncation ~h²·|f'''| and rounding ~1e-16·|f|/h ≈ 1e-9.
    expectClose(rb.dx, fd(xs, (v) => f(v, gs, bs)), 1e-7, 1e-6, 'layernorm dx fd');
    expectClose(rb.dgamma, fd(gs, (v) => f(xs, v, bs)), 1e-7, 1e-6, 'layernorm dgamma fd');
    expectClose(rb.dbeta, fd(bs, (v) => f(xs, gs, v)), 1e-7, 1e-6, 'layernorm dbeta fd');
  });

  it('rejects bad shapes and eps, naming the op and shapes', () => {
    const x = GpuArray.fromData(new Float32Array(6), [2, 3]);
    const g3 = GpuArray.fromData([1, 1, 1], [3]);
    const g2 = GpuArray.fromData([1, 1], [2]);
    const m = GpuArray.fromData([0, 0], [2]);
    expect(() => layerNormForward(x, g2, g2, 1e-5)).toThrow(/layerNormForward: gamma \[2\] does not match the last axis of x \[2, 3\]/);
    expect(() => layerNormForward(x, g3, g2, 1e-5)).toThrow(/layerNormForward: beta \[2\] does not match gamma \[3\]/);
    expect(() => layerNormForward(x, g3, g3, -1)).toThrow(/layerNormForward: eps must be a finite number >= 0, got -1/);
    expect(() => layerNormBackward(x, g3, m, m, g3)).toThrow(/layerNormBackward: dy \[3\] does not match x \[2, 3\]/);
    expect(() => layerNormBackward(x, g3, g3, m, x)).toThrow(/layerNormBackward: mean \[3\] and rstd \[2\] must both be \[2\] for x \[2, 3\]/);
  });
});

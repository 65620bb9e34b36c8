import { afterEach, describe, expect, it } from 'vitest';
import { GpuArray } from '../src/kernels/memory.js';
import { parseRowVariant, rowPlan, rowVariantName, setRowTeamSize, setRowVariant, softmaxBackward, softmaxForward } from '../src/kernels/softmax.js';
import { SOFTMAX_TOLERANCE, softmaxBackwardRef, softmaxForwardRef, softmaxTolerance } from '../src/kernels/ref/softmax.js';
import { randomArray, rowSumToleranceScale } from '../src/kernels/ref/math.js';
import { subgroupSize } from '../src/kernels/matmul.js';
import { expectClose, useGpu } from './gpu.js';
import { subgroupTeamTests } from './rowTeams.js';

useGpu();
afterEach(() => setRowVariant(null));

// Tolerances and their reasoning: SOFTMAX_TOLERANCE beside the reference (rows up to 32 768 columns), scaled for longer
// rows by softmaxTolerance(cols) (the blocked row sums' error growth, ref/math.ts rowSumToleranceScale).
const [F_ATOL, F_RTOL] = SOFTMAX_TOLERANCE.forward;

async function check(rows: number, cols: number, seed: number, lo = -8, hi = 8, mutate?: (x: Float32Array) => void) {
  const xs = randomArray(rows * cols, seed, lo, hi);
  mutate?.(xs);
  const dys = randomArray(rows * cols, seed + 1);
  const x = GpuArray.fromData(xs, [rows, cols]);
  const dy = GpuArray.fromData(dys, [rows, cols]);
  const y = softmaxForward(x);
  const ys = await y.read();
  const tol = softmaxTolerance(cols);
  expectClose(ys, softmaxForwardRef(xs, cols), ...tol.forward, `softmax forward ${rows}×${cols}`);
  const dx = softmaxBackward(y, dy);
  // The backward is checked against the reference applied to the GPU's own y, so it tests the
  // backward kernel alone.
  expectClose(await dx.read(), softmaxBackwardRef(ys, dys, cols), ...tol.backward, `softmax backward ${rows}×${cols}`);
  for (const a of [x, dy, y, dx]) a.dispose();
}

describe('softmax', () => {
  for (const [rows, cols] of [[1, 1], [7, 13], [197, 768], [3, 100], [1, 100_000], [70_000, 7], [5, 4097]] as const) {
    it(`matches the float64 reference, ${rows}×${cols} (the adapter's row plan)`, async () => {
      await check(rows, cols, rows * 31 + cols);
    });
  }

  // Every team size must give the same answer (the adapter default only exercises some).
  for (const [T, WG] of [[1, 64], [4, 64], [16, 16], [256, 256]] as const) {
    it(`matches the reference with team ${T}, workgroup ${WG}`, async () => {
      setRowTeamSize(T, WG);
      expect(rowPlan(10, 10)).toMatchObject({ T, WG });
      for (const [rows, cols] of [[1, 1], [7, 13], [19, 197], [3, 1000]] as const) await check(rows, cols, T * 7 + cols);
    });
  }

  subgroupTeamTests((rows, cols, seed) => check(rows, cols, seed));

  // Long rows (odd lengths, so blocks and team strides end mid-way), on the adapter's plan, one invocation per row (the
  // longest serial share: the sums are blocked, shaders/lib/row_team.wgsl; a plain running sum was off by 1.1e-4
  // relative at 100 003 columns, several times the tolerance), small and large teams, and subgroup teams where the adapter has them.
  // The adapter's plan also on 32 rows of 100 003 (the audit's shape: CPU adapters run one invocation per row from 32 rows).
  for (const variant of [null, 'team1', 'team16/16', 'team256', 'subgroup']) {
    it(`matches the reference on long rows (3×20 011, 2×100 003${variant ? '' : ', 32×100 003'}), ${variant ?? "the adapter's plan"}`, async () => {
      if (variant === 'subgroup' && subgroupSize() === null) return; // subgroupTeamTests checks the message
      setRowVariant(variant);
      if (variant === null) await check(32, 100_003, 45);
      await check(3, 20_011, 41);
      await check(2, 100_003, 43);
    });
  }

  it('row tolerances stay fixed up to 32 768 columns and grow like C^(1/4) beyond (the blocked sums\' error)', () => {
    for (const c of [1, 7, 197, 4096, 32_768]) expect(rowSumToleranceScale(c)).toBe(1);
    // growth(C) = √B + √(C/B), B = max(64, ⌈√C⌉): about 2·C^(1/4) past 4096; 26.91 at 32 768
    expect(rowSumToleranceScale(100_003)).toBeCloseTo((Math.sqrt(317) + Math.sqrt(100_003 / 317)) / (Math.sqrt(182) + Math.sqrt(32_768 / 182)), 12);
    expect(rowSumToleranceScale(1e8)).toBeCloseTo(200 / 26.91, 2);
    expect(softmaxTolerance(100_003).forward[1]).toBeCloseTo(SOFTMAX_TOLERANCE.forward[1] * rowSumToleranceScale(100_003), 15);
    expect(softmaxTolerance(768)).toEqual(SOFTMAX_TOLERANCE);
  });

  it('is stable for 1e4-magnitude logits and -Infinity entries', async () => {
    await check(7, 13, 5, -1e4, 1e4);
    // Rows with -Infinity entries: those get probability 0 and the rest still sum to 1.
    await check(9, 33, 6, -30, 30, (x) => {
      for (let i = 0; i < x.length; i += 3) x[i] = -Infinity;
    });
    const x = GpuArray.fromData([-Infinity, 0, -Infinity, 1e4, 1e4 - 1, -Infinity], [2, 3]);
    const y = await softmaxForward(x).read();
    expect(y[0]).toBe(0);
    expect(y[1]).toBe(1);
    expect(y[2]).toBe(0);
    expectClose(y.slice(3), [1 / (1 + Math.exp(-1)), Math.exp(-1) / (1 + Math.exp(-1)), 0], 1e-12, F_RTOL, 'softmax at 1e4');
  });

  it('works on higher-rank inputs (softmax over the last axis)', async () => {
    const xs = randomArray(2 * 3 * 5, 9, -3, 3);
    const y = softmaxForward(GpuArray.fromData(xs, [2, 3, 5]));
    expect(y.shape).toEqual([2, 3, 5]);
    expectClose(await y.read(), softmaxForwardRef(xs, 5), F_ATOL, F_RTOL, 'softmax rank 3');
  });

  it('the reference backward is the gradient of the reference forward (central differences)', () => {
    const rows = 3;
    const cols = 5;
    const xs = Float64Array.from(randomArray(rows * cols, 11, -3, 3));
    const w = Float64Array.from(randomArray(rows * cols, 12));
    // f(x) = Σ w ∘ softmax(x), so ∂f/∂x = softmaxBackward(y, w).
    const f = (x: Float64Array) => softmaxForwardRef(x, cols).reduce((s, v, i) => s + v * w[i], 0);
    const h = 1e-6;
    const fd = xs.map((_, i) => {
      const p = xs.slice();
      const m = xs.slice();
      p[i] += h;
      m[i] -= h;
      return (f(p) - f(m)) / (2 * h);
    });
    // float64 central differences, h = 1e-6: truncation ~h² and rounding ~1e-16/h ≈ 1e-10.
    expectClose(softmaxBackwardRef(softmaxForwardRef(xs, cols), w, cols), fd, 1e-8, 1e-7, 'softmax fd');
  });

  it('rejects bad shapes, naming the op and shapes', () => {
    const y = GpuArray.fromData([1, 2, 3, 4, 5, 6], [2, 3]);
    const dy = GpuArray.fromData([1, 2, 3, 4, 5, 6], [3, 2]);
    expect(() => softmaxBackward(y, dy)).toThrow(/softmaxBackward: dy \[3, 2\] does not match y \[2, 3\]/);
    expect(() => softmaxForward(GpuArray.fromData([1], []))).toThrow(/softmaxForward: x must have at least one dimension, got \[\]/);
    expect(() => setRowTeamSize(3)).toThrow(/setRowTeamSize: 3 is not a power of two/);
    expect(() => setRowVariant('team3')).toThrow(/row kernels: bad variant 'team3': team 3 is not a power of two in \[1, 256\]/);
    expect(() => setRowVariant('team64/32')).toThrow(/bad variant 'team64\/32': workgroup 32 is smaller than the team 64/);
    expect(() => setRowVariant('subgroup/100')).toThrow(/bad variant 'subgroup\/100': workgroup 100 is not a power of two/);
    expect(() => setRowVariant('warp')).toThrow(/bad variant 'warp': expected team<T>, team<T>\/<WG>, subgroup or subgroup\/<WG>/);
    expect(rowVariantName({ T: 1, WG: 64, subgroup: false })).toBe('team1/64');
    expect(parseRowVariant('team128/128')).toEqual({ kind: 'team', T: 128, WG: 128 });
  });

  it('handles empty inputs', async () => {
    expect((await softmaxForward(GpuArray.empty([0, 5])).read()).length).toBe(0);
    expect(softmaxForward(GpuArray.empty([4, 0])).shape).toEqual([4, 0]);
  });
});

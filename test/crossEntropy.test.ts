import { afterEach, describe, expect, it } from 'vitest';
import { GpuArray } from '../src/kernels/memory.js';
import { checkLabels, crossEntropyBackward, crossEntropyForward } from '../src/kernels/crossEntropy.js';
import { setRowTeamSize, setRowVariant } from '../src/kernels/softmax.js';
import { crossEntropyBackwardRef, crossEntropyRef } from '../src/kernels/ref/crossEntropy.js';
import { randomArray, rng } from '../src/kernels/ref/math.js';
import { expectClose, useGpu } from './gpu.js';
import { subgroupTeamTests } from './rowTeams.js';

useGpu();
afterEach(() => setRowVariant(null));

// lse = m + log Σ exp(x − m): Σ of C terms in (0, 1] is good to ~√C·u relative in practice and exp,
// log to a few ulp, so lse is off by ≲ 1e-6 absolute plus an ulp or two of |lse| (≤ 1e4 in the
// extreme test): 2e-6 absolute + 1e-6 relative.
const LSE_ATOL = 2e-6;
const LSE_RTOL = 1e-6;
// loss: the row losses lse − (1 − ε)x_y − (ε/C)Σx carry lse's error plus Σx's (C terms, |x| ≤ 8:
// ≲ √C·u·8C·ε/C), then the mean sums N of them in 256 strided serial slices and a tree: relative
// error ≲ (N/256 + 8)·u·(mean |row loss| / |mean|) ≈ 2e-5 worst at N = 70 000. 2e-5 relative + 1e-5.
const LOSS_ATOL = 1e-5;
const LOSS_RTOL = 2e-5;
// dlogits = dloss/N · (exp(x − lse) − t): exp is good to 3 + 2|x − lse| ulp and lse to ~1e-6, so
// softmax p is good to ~2e-5 relative where it matters (as in softmax.test.ts); p − t cancels when
// p ≈ t (the label's p near 1), so p's absolute error (p ≤ 1: ~1e-6, lse's error times p) must be
// allowed too. Both scale by dloss/N.
const G_RTOL = 2e-5;
const g_atol = (n: number, dloss: number) => (1e-6 * Math.abs(dloss)) / n;

function labelsFor(n: number, c: number, seed: number): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: n }, () => Math.floor(r() * c));
}

async function check(n: number, c: number, ls: number, seed: number, lo = -8, hi = 8, dlossValue = 1) {
  const xs = randomArray(n * c, seed, lo, hi);
  const ys = labelsFor(n, c, seed + 1);
  const logits = GpuArray.fromData(xs, [n, c]);
  const labels = GpuArray.fromData(ys, [n]);
  const dloss = GpuArray.fromData([dlossValue], [1]);
  const opts = { labelSmoothing: ls };
  const { loss, lse } = crossEntropyForward(logits, labels, opts);
  const ref = crossEntropyRef(xs, ys, c, opts);
  expectClose(await lse.read(), ref.lse, LSE_ATOL, LSE_RTOL, `cross-entropy lse ${n}×${c} ε=${ls}`);
  expectClose(await loss.read(), [ref.loss], LOSS_ATOL, LOSS_RTOL, `cross-entropy loss ${n}×${c} ε=${ls}`);
  const dx = crossEntropyBackward(logits, labels, lse, dloss, opts);
  expect(dx.shape).toEqual([n, c]);
  expectClose(await dx.read(), crossEntropyBackwardRef(xs, ys, c, dlossValue, opts), g_atol(n, dlossValue), G_RTOL, `cross-entropy dlogits ${n}×${c} ε=${ls}`);
  for (const a of [logits, labels, dloss, loss, lse, dx]) a.dispose();
}

describe('cross-entropy', () => {
  for (const ls of [0, 0.1]) {
    for (const [n, c] of [[1, 1], [7, 13], [197, 768], [3, 100], [70_000, 7], [2, 100_000]] as const) {
      it(`matches the float64 reference, ${n}×${c}, label smoothing ${ls}`, async () => {
        await check(n, c, ls, n * 13 + c);
      });
    }
  }

  for (const [T, WG] of [[1, 64], [4, 64], [16, 16], [256, 256]] as const) {
    it(`matches the reference with team ${T}, workgroup ${WG}`, async () => {
      setRowTeamSize(T, WG);
      for (const [n, c] of [[1, 1], [7, 13], [19, 197], [3, 1000]] as const) await check(n, c, 0.1, T + c);
    });
  }

  subgroupTeamTests((n, c, seed) => check(n, c, 0.1, seed));

  it('is stable for 1e4-magnitude logits, and scales by dloss', async () => {
    await check(7, 13, 0, 5, -1e4, 1e4, 2.5);
    await check(7, 13, 0.1, 6, -1e4, 1e4, -0.5);
  });

  it('the reference backward is the gradient of the reference forward (central differences)', () => {
    const n = 3;
    const c = 5;
    const xs = Float64Array.from(randomArray(n * c, 31, -3, 3));
    const ys = [4, 0, 2];
    for (const ls of [0, 0.1]) {
      const h = 1e-6;
      const fd = xs.map((_, i) => {
        const p = xs.slice();
        const m = xs.slice();
        p[i] += h;
        m[i] -= h;
        return (crossEntropyRef(p, ys, c, { labelSmoothing: ls }).loss - crossEntropyRef(m, ys, c, { labelSmoothing: ls }).loss) / (2 * h);
      });
      // float64 central differences, h = 1e-6: truncation ~h² and rounding ~1e-16/h ≈ 1e-10.
      expectClose(crossEntropyBackwardRef(xs, ys, c, 1, { labelSmoothing: ls }), fd, 1e-8, 1e-7, `cross-entropy fd ε=${ls}`);
    }
  });

  it('the reference matches torch-style label smoothing: (1 − ε)·nll + ε·mean_c(−log p_c)', () => {
    const xs = [1, 2, 3, -1, 0.5, 0];
    const ys = [2, 0];
    const nll = (r: number, k: number) => {
      const row = xs.slice(r * 3, r * 3 + 3);
      return Math.log(row.reduce((s, v) => s + Math.exp(v), 0)) - row[k];
    };
    const expected = [0, 1].reduce((s, r) => s + 0.9 * nll(r, ys[r]) + (0.1 / 3) * (nll(r, 0) + nll(r, 1) + nll(r, 2)), 0) / 2;
    expect(crossEntropyRef(xs, ys, 3, { labelSmoothing: 0.1 }).loss).toBeCloseTo(expected, 14);
  });

  it('gives a NaN loss (and NaN gradients for that row) for labels out of range, not an out-of-bounds read', async () => {
    for (const bad of [-1, 5, 1.5, 1e9]) {
      const logits = GpuArray.fromData(randomArray(15, 41), [3, 5]);
      const labels = GpuArray.fromData([0, bad, 4], [3]);
      const { loss, lse } = crossEntropyForward(logits, labels);
      expect((await loss.read())[0]).toBeNaN();
      expect((await lse.read()).every(Number.isFinite)).toBe(true);
      const dx = await crossEntropyBackward(logits, labels, lse, GpuArray.fromData([1], [1])).read();
      expect(dx.slice(5, 10).every(Number.isNaN)).toBe(true);
      expect([...dx.slice(0, 5), ...dx.slice(10)].every(Number.isFinite)).toBe(true);
    }
  });

  it('checkLabels names the bad index', () => {
    expect(() => checkLabels([0, 1, 2], 3)).not.toThrow();
    expect(() => checkLabels([0, 3, 1], 3)).toThrow(RangeError);
    expect(() => checkLabels([0, 3, 1], 3)).toThrow(/label 3 at index 1 is not an integer class index in \[0, 3\)/);
    expect(() => checkLabels(new Float32Array([0, 1, -1]), 3)).toThrow(/label -1 at index 2/);
    expect(() => checkLabels([0.5], 3)).toThrow(/label 0.5 at index 0/);
    expect(() => checkLabels([NaN], 3)).toThrow(/label NaN at index 0/);
  });

  it('rejects bad shapes and options, naming the op and shapes', () => {
    const logits = GpuArray.fromData(new Float32Array(6), [2, 3]);
    const labels = GpuArray.fromData([0, 1], [2]);
    const lse = GpuArray.fromData([0, 0], [2]);
    const one = GpuArray.fromData([1], [1]);
    expect(() => crossEntropyForward(GpuArray.fromData(new Float32Array(6), [6]), labels)).toThrow(/crossEntropyForward: logits must be \[N, C\], got \[6\]/);
    expect(() => crossEntropyForward(logits, GpuArray.fromData([0, 1, 2], [3]))).toThrow(/crossEntropyForward: labels \[3\] must be \[2\] for logits \[2, 3\]/);
    expect(() => crossEntropyForward(logits, labels, { labelSmoothing: 1.5 })).toThrow(/crossEntropyForward: labelSmoothing must be in \[0, 1\], got 1.5/);
    expect(() => crossEntropyBackward(logits, labels, one, one)).toThrow(/crossEntropyBackward: lse \[1\] must be \[2\] for logits \[2, 3\]/);
    expect(() => crossEntropyBackward(logits, labels, lse, lse)).toThrow(/crossEntropyBackward: dloss \[2\] must hold one value/);
  });
});

import { describe, expect, it } from 'vitest';
import { GpuArray } from '../src/kernels/memory.js';
import { binary } from '../src/kernels/elementwise.js';
import { chunkFor, max, mean, sum, sumToShape } from '../src/kernels/reduce.js';
import { binaryRef } from '../src/kernels/ref/elementwise.js';
import { maxRef, meanRef, sumAbsRef, sumRef, sumToShapeRef } from '../src/kernels/ref/reduce.js';
import { randomArray } from '../src/kernels/ref/math.js';
import { expectClose, useGpu } from './gpu.js';

useGpu();

const size = (s: number[]) => s.reduce((n, d) => n * d, 1);
const EPS32 = 2 ** -24;
// A pass with chunks of at least 64 over at most 2048 rows leaves at most 32 partials: the next pass is the last.
const MIN_CHUNK_FOR_TEST = 64;

// Tolerance of an f32 sum, per output: each pass adds its chunk with Neumaier compensation (error
// <= 2 ulp of Σ|x| over the chunk, independent of its length) and rounds the partial once more; a
// 1M-element reduce takes 2 passes, 3 at most for the sizes here, plus 1 ulp for mean's 1/count scaling.
// 3 passes × 3 ulp + 1 -> 10·2^-24·Σ|x|. A plain f32 running sum has error growing like n·2^-24·Σ|x|
// (see the test that checks the bound is tight enough to reject one).
const K_ULPS = 10;

function expectSumClose(actual: Float32Array, expected: Float64Array, sumAbs: Float64Array, what: string): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < actual.length; i++) {
    const tol = K_ULPS * EPS32 * sumAbs[i] + 1e-30;
    const err = Math.abs(actual[i] - expected[i]);
    if (!(err <= tol)) throw new Error(`${what}: element ${i} is ${actual[i]}, expected ${expected[i]} (|err| ${err} > ${tol} = ${K_ULPS} ulp of Σ|x|)`);
  }
}

async function check(shape: number[], axes: number[] | undefined, keepDims: boolean, seed = 1): Promise<void> {
  const data = randomArray(size(shape), seed, -1, 1);
  const x = GpuArray.fromData(data, shape);
  const what = `${JSON.stringify(shape)} axes ${JSON.stringify(axes)} keepDims ${keepDims}`;
  const s = sum(x, axes, keepDims);
  const sr = sumRef(data, shape, axes, keepDims);
  const sa = sumAbsRef(data, shape, axes, keepDims).data;
  expect(s.shape).toEqual(sr.shape);
  expectSumClose(await s.read(), sr.data, sa, `sum ${what}`);
  const m = mean(x, axes, keepDims);
  const mr = meanRef(data, shape, axes, keepDims);
  expect(m.shape).toEqual(mr.shape);
  const count = sr.data.length === 0 ? 1 : size(shape) / sr.data.length;
  expectSumClose(await m.read(), mr.data, sa.map((v) => v / count), `mean ${what}`);
  const mx = max(x, axes, keepDims);
  const xr = maxRef(data, shape, axes, keepDims);
  expect(mx.shape).toEqual(xr.shape);
  expectClose(await mx.read(), xr.data, 1e-30, 0, `max ${what}`); // max is exact
  for (const a of [x, s, m, mx]) a.dispose();
}

describe('sum, mean, max', () => {
  it('over the last, middle, first and several axes of [2, 197, 768], with and without keepDims', async () => {
    for (const keep of [false, true]) {
      for (const axes of [[-1], [1], [0], [0, 2], [1, 2], undefined]) await check([2, 197, 768], axes, keep);
    }
  });

  it('awkward shapes and axis sets', async () => {
    const cases: [number[], number[] | undefined][] = [
      [[1], undefined], [[7], [0]], [[13], [-1]], [[197], undefined], [[100], [0]],
      [[7, 13, 1, 5], [1, 3]], [[7, 13, 1, 5], [2]], [[7, 13, 1, 5], [0, 2]], [[3, 4, 5, 6], [0, 2]],
      [[3, 4, 5, 6], [1, 3]], [[13, 7], []], [[2, 3, 2, 3, 2, 3], [0, 2, 4]], [[1, 1, 7], [0, 1]],
      [[5000, 3], [0]], [[3, 5000], [1]], [[2, 3000, 2], [1]],
      // Bias gradients (column sums of [tokens, features]): few outputs, so short rows are split over two passes.
      [[2048, 64], [0]], [[100, 64], [0]], [[65, 7], [0]], [[7, 197, 13], [0, 1]],
    ];
    for (const [shape, axes] of cases) for (const keep of [false, true]) await check(shape, axes, keep, shape.length);
  });

  it('chunking: one pass when outputs are many or rows short, two (≥ 64 per chunk) when few outputs share long rows', () => {
    expect(chunkFor(1, 64, 8192)).toBe(64);
    expect(chunkFor(197, 768, 64)).toBe(768); // 12 608 outputs: enough threads already
    expect(chunkFor(1, 2048, 64)).toBe(64); // a bias gradient: 32 chunks × 64 outputs
    expect(chunkFor(1, 100, 64)).toBe(64);
    expect(Math.ceil(2048 / chunkFor(1, 2048, 1))).toBeLessThanOrEqual(MIN_CHUNK_FOR_TEST);
    expect(chunkFor(1, 1_000_003, 1)).toBe(1001);
  });

  it('stays accurate over 1M terms (multi-pass) where a plain f32 running sum would not', async () => {
    const n = 1_000_003;
    // All positive around 1: Σ|x| = |Σx| and rounding errors do not cancel by sign.
    const data = randomArray(n, 11, 0.9, 1.1);
    let naive = 0;
    let exact = 0;
    for (let i = 0; i < n; i++) {
      naive = Math.fround(naive + data[i]);
      exact += data[i];
    }
    const tol = K_ULPS * EPS32 * exact;
    expect(Math.abs(naive - exact)).toBeGreaterThan(tol); // the bound rejects an uncompensated sum
    const x = GpuArray.fromData(data, [n]);
    const s = sum(x);
    const m = mean(x, [0], true);
    expect(m.shape).toEqual([1]);
    expectSumClose(await s.read(), Float64Array.of(exact), Float64Array.of(exact), 'sum 1M');
    expectSumClose(await m.read(), Float64Array.of(exact / n), Float64Array.of(exact / n), 'mean 1M');
    // The same data as [1000003 / 7, 7]-ish middle-axis and a [3, n] batch of 1M rows.
    const x2 = GpuArray.fromData(data.subarray(0, 3 * 333_001), [3, 333_001]);
    const s2 = sum(x2, [1]);
    const r2 = sumRef(data.subarray(0, 3 * 333_001), [3, 333_001], [1]).data;
    expectSumClose(await s2.read(), r2, r2, 'sum [3, 333001] axis 1');
    for (const a of [x, s, m, x2, s2]) a.dispose();
  });

  it('more than 65535 workgroups of outputs (grid2d)', async () => {
    // 2 × 2^24 f32 is exactly lavapipe's 128 MiB binding limit; 2^24 outputs = 65536 workgroups of 256.
    const n = 16_777_216;
    const bd = randomArray(n, 12, -1, 1);
    const a = GpuArray.fromData([0.5, 0.25], [2, 1]);
    const b = GpuArray.fromData(bd, [1, n]);
    const x = binary('add', a, b); // [2, n]: rows b + 0.5, b + 0.25
    const s = sum(x, [0]);
    const got = await s.read();
    // Two terms: the f32 sum is the exact sum correctly rounded, within 1 ulp; check every output.
    let worst = 0;
    for (let i = 0; i < n; i++) {
      const r = Math.fround(bd[i] + 0.5) + Math.fround(bd[i] + 0.25);
      worst = Math.max(worst, Math.abs(got[i] - r) / (EPS32 * (Math.abs(bd[i] + 0.5) + Math.abs(bd[i] + 0.25)) + 1e-30));
    }
    expect(worst).toBeLessThanOrEqual(K_ULPS);
    for (const t of [a, b, x, s]) t.dispose();
  });

  it('zero-size arrays: sum gives 0, mean NaN, empty outputs stay empty; max over an empty axis throws', async () => {
    const x = GpuArray.fromData([], [0, 3]);
    const s = sum(x, [0]);
    expect(s.shape).toEqual([3]);
    expect([...(await s.read())]).toEqual([0, 0, 0]);
    const m = mean(x, [0]);
    expect([...(await m.read())].every(Number.isNaN)).toBe(true);
    const e = sum(x, [1], true);
    expect(e.shape).toEqual([0, 1]);
    expect(max(x, [1]).shape).toEqual([0]);
    expect(() => max(x, [0])).toThrow(/^max: cannot reduce shape \[0, 3\] over a zero-size axis/);
    for (const a of [x, s, m, e]) a.dispose();
  });

  it('rejects axes out of range or repeated, naming op and shape', () => {
    const x = GpuArray.zeros([2, 3, 4]);
    expect(() => sum(x, [3])).toThrow(/^sum: axis 3 is out of range for shape \[2, 3, 4\]$/);
    expect(() => mean(x, [-4])).toThrow(/^mean: axis -4 is out of range for shape \[2, 3, 4\]$/);
    expect(() => max(x, [1, -2])).toThrow(/^max: axis -2 is repeated in \[1, -2\] for shape \[2, 3, 4\]$/);
    expect(() => sum(x, [0.5])).toThrow(RangeError);
    x.dispose();
  });
});

describe('sumToShape', () => {
  it('sums a broadcast result back to each input shape', async () => {
    const xShape = [7, 5, 13];
    const data = randomArray(size(xShape), 3);
    const x = GpuArray.fromData(data, xShape);
    for (const shape of [[7, 1, 13], [5, 1], [13], [], [1, 1, 13], [7, 5, 13], [1, 5, 1], [1]]) {
      const y = sumToShape(x, shape);
      expect(y.shape).toEqual(shape);
      const r = sumToShapeRef(data, xShape, shape);
      const ra = sumToShapeRef(data.map(Math.abs), xShape, shape);
      expectSumClose(await y.read(), r, ra, `sumToShape ${JSON.stringify(shape)}`);
      y.dispose();
    }
    x.dispose();
  });

  it('the reference is the adjoint of broadcasting: <broadcast(u), v> = <u, sumToShape(v)>', () => {
    const xShape = [7, 5, 13];
    for (const shape of [[7, 1, 13], [5, 1], [13], []]) {
      const u = randomArray(size(shape), 4);
      const v = randomArray(size(xShape), 5);
      const bu = binaryRef('add', u, shape, new Float64Array(size(xShape)), xShape).data;
      const sv = sumToShapeRef(v, xShape, shape);
      const lhs = bu.reduce((acc, b, i) => acc + b * v[i], 0);
      const rhs = u.reduce((acc, a, i) => acc + a * sv[i], 0);
      expect(Math.abs(lhs - rhs)).toBeLessThan(1e-12 * size(xShape)); // float64 rounding only
    }
  });

  it('rejects a shape that does not broadcast to x', () => {
    const x = GpuArray.zeros([7, 5, 13]);
    expect(() => sumToShape(x, [5, 13, 1])).toThrow(/^sumToShape: shape \[5, 13, 1\] does not broadcast to \[7, 5, 13\]$/);
    expect(() => sumToShape(x, [2, 7, 5, 13])).toThrow(/^sumToShape: shape \[2, 7, 5, 13\] does not broadcast to \[7, 5, 13\]$/);
    expect(() => sumToShape(x, [7, 5, 14])).toThrow(RangeError);
    x.dispose();
  });
});

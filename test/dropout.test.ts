import { describe, expect, it } from 'vitest';
import { GpuArray } from '../src/kernels/memory.js';
import { dropoutBackward, dropoutForward } from '../src/kernels/dropout.js';
import { dropoutForwardRef, dropoutMaskRef, pcgHash } from '../src/kernels/ref/dropout.js';
import { randomArray } from '../src/kernels/ref/math.js';
import { expectClose, useGpu } from './gpu.js';

useGpu();

const size = (s: number[]) => s.reduce((n, d) => n * d, 1);
// Mask values are exact f32 (0 or f32(1/(1-p))) and y = x·mask is one correctly rounded f32 product of
// the same operands the reference rounds with Math.fround: everything is compared bit for bit.
const sameBits = (a: ArrayLike<number>, b: ArrayLike<number>, what: string) => {
  expect(a.length).toBe(b.length);
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], Math.fround(b[i]))) throw new Error(`${what}: element ${i} is ${a[i]}, expected ${Math.fround(b[i])}`);
};

describe('dropout', () => {
  it('the TS hash is the PCG output hash (known values)', () => {
    // pcg_hash(0), pcg_hash(1): the C code of Jarzynski & Olano evaluated independently (Python, u32 masks).
    expect(pcgHash(0)).toBe(129708002);
    expect(pcgHash(1)).toBe(2831084092);
  });

  for (const [shape, p, seed] of [[[1], 0.5, 1], [[7], 0.1, 2], [[13, 1], 0.9, 3], [[2, 197, 768], 0.1, 4], [[100], 0.5, -5], [[197, 13], 0.3, 2 ** 40 + 7]] as [number[], number, number][]) {
    it(`mask is bit-exact vs the TS reference, y = x∘mask, shape ${JSON.stringify(shape)} p=${p} seed=${seed}`, async () => {
      const n = size(shape);
      const xs = randomArray(n, n);
      const x = GpuArray.fromData(xs, shape);
      const { y, mask } = dropoutForward(x, p, seed);
      expect(y.shape).toEqual(shape);
      expect(mask.shape).toEqual(shape);
      const mr = dropoutMaskRef(n, p, seed);
      sameBits(await mask.read(), mr, 'mask');
      sameBits(await y.read(), dropoutForwardRef(xs, mr), 'y');
      for (const a of [x, y, mask]) a.dispose();
    });
  }

  it('is deterministic across calls, differs across seeds, and offset continues the numbering', async () => {
    const n = 10_007;
    const x = GpuArray.fromData(new Float32Array(n).fill(1), [n]);
    const a = dropoutForward(x, 0.5, 42);
    const b = dropoutForward(x, 0.5, 42);
    const c = dropoutForward(x, 0.5, 43);
    const am = await a.mask.read();
    expect(await b.mask.read()).toEqual(am);
    const cm = await c.mask.read();
    const agree = am.reduce((k, v, i) => k + (v === cm[i] ? 1 : 0), 0) / n;
    expect(agree).toBeGreaterThan(0.45); // independent masks agree on ~half the elements
    expect(agree).toBeLessThan(0.55);
    const tail = GpuArray.fromData(new Float32Array(n - 5000).fill(1), [n - 5000]);
    const d = dropoutForward(tail, 0.5, 42, 5000);
    expect(await d.mask.read()).toEqual(am.subarray(5000));
    sameBits(await d.mask.read(), dropoutMaskRef(n - 5000, 0.5, 42, 5000), 'offset mask');
    for (const t of [x, a.y, a.mask, b.y, b.mask, c.y, c.mask, tail, d.y, d.mask]) t.dispose();
  });

  it('keeps a fraction 1 − p and the mask has mean 1 (statistically)', async () => {
    const n = 1_000_000;
    const x = GpuArray.fromData(new Float32Array(n).fill(1), [n]);
    for (const p of [0.1, 0.5, 0.9]) {
      const { y, mask } = dropoutForward(x, p, 7);
      const m = await mask.read();
      let kept = 0;
      let sum = 0;
      for (const v of m) {
        if (v !== 0) kept++;
        sum += v;
      }
      // Bernoulli(1 − p) over n: the kept fraction has sd √(p(1−p)/n) (3e-4 at p = .5), and the mask mean
      // (1−p)/(1−p) = 1 has sd √(p/((1−p)n)) (3e-3 at p = .9). 5 sd bounds: a false failure ~1 in 10^6.
      expect(Math.abs(kept / n - (1 - p))).toBeLessThan(5 * Math.sqrt((p * (1 - p)) / n));
      expect(Math.abs(sum / n - 1)).toBeLessThan(5 * Math.sqrt(p / ((1 - p) * n)));
      y.dispose();
      mask.dispose();
    }
    x.dispose();
  });

  it('p = 0 keeps everything; the backward is dy∘mask', async () => {
    const xs = randomArray(197 * 13, 8);
    const x = GpuArray.fromData(xs, [197, 13]);
    const { y, mask } = dropoutForward(x, 0, 9);
    sameBits(await mask.read(), new Float64Array(xs.length).fill(1), 'p=0 mask');
    sameBits(await y.read(), xs, 'p=0 y');
    const d = dropoutForward(x, 0.25, 10);
    const dys = randomArray(xs.length, 11);
    const dy = GpuArray.fromData(dys, [197, 13]);
    const dx = dropoutBackward(dy, d.mask);
    // y is linear in x with slope mask: the backward of y = x∘mask is dy∘mask (a central difference
    // of the float64 forward gives exactly mask since y is linear).
    const mr = dropoutMaskRef(xs.length, 0.25, 10);
    const h = 1e-3;
    const fd = Float64Array.from(mr, (m, i) => (((xs[i] + h) * m - (xs[i] - h) * m) / (2 * h)) * dys[i]);
    expectClose(await dx.read(), fd, 1e-6, 1e-6, 'dropout backward vs finite differences');
    sameBits(await dx.read(), dropoutForwardRef(dys, mr), 'dropout backward');
    for (const t of [x, y, mask, d.y, d.mask, dy, dx]) t.dispose();
  });

  it('rejects p outside [0, 1), non-integer seeds and mismatched shapes', () => {
    const x = GpuArray.zeros([2, 3]);
    const m = GpuArray.zeros([3, 2]);
    expect(() => dropoutForward(x, 1, 0)).toThrow(/^dropoutForward: p = 1 is outside \[0, 1\) \(x \[2, 3\]\)$/);
    expect(() => dropoutForward(x, -0.1, 0)).toThrow(RangeError);
    expect(() => dropoutForward(x, Number.NaN, 0)).toThrow(RangeError);
    expect(() => dropoutForward(x, 0.5, 0.5)).toThrow(/^dropoutForward: seed 0.5 is not an integer/);
    expect(() => dropoutBackward(x, m)).toThrow(/^dropoutBackward: dy \[2, 3\] does not match mask \[3, 2\]$/);
    x.dispose();
    m.dispose();
  });
});

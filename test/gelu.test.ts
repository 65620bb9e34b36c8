import { describe, expect, it } from 'vitest';
import { GpuArray } from '../src/kernels/memory.js';
import { geluBackward, geluForward } from '../src/kernels/gelu.js';
import { geluBackwardRef, geluForwardRef } from '../src/kernels/ref/gelu.js';
import { erf, randomArray } from '../src/kernels/ref/math.js';
import { expectClose, useGpu } from './gpu.js';

useGpu();

// The WGSL erf has fractional error < 1.2e-7 (Numerical Recipes' erfcc) and f32 rounding adds a few
// ulps: 2e-6 relative + 1e-6 absolute covers both with room, and is 100× below a wrong formula's error
// (the tanh approximation differs from the erf form by up to ~5e-4).
const ATOL = 1e-6;
const RTOL = 2e-6;

describe('gelu', () => {
  it('reference erf matches known values', () => {
    expect(erf(0)).toBe(0);
    expect(erf(0.5)).toBeCloseTo(0.5204998778130465, 14);
    expect(erf(1)).toBeCloseTo(0.8427007929497149, 14);
    expect(erf(-2)).toBeCloseTo(-0.9953222650189527, 14);
    expect(erf(3)).toBeCloseTo(0.9999779095030014, 14);
  });

  for (const n of [1, 7, 13, 197, 100, 100_003, 25_216]) { // 100 and 25 216 = 2·197·64: the vec4 kernel
    it(`forward and backward match the float64 reference, n=${n}`, async () => {
      const xs = randomArray(n, n, -8, 8);
      const dys = randomArray(n, n + 1);
      const x = GpuArray.fromData(xs, [n]);
      const dy = GpuArray.fromData(dys, [n]);
      const y = geluForward(x);
      const dx = geluBackward(x, dy);
      expectClose(await y.read(), geluForwardRef(xs), ATOL, RTOL, 'gelu forward');
      expectClose(await dx.read(), geluBackwardRef(xs, dys), ATOL, RTOL, 'gelu backward');
      for (const a of [x, dy, y, dx]) a.dispose();
    });
  }

  it('the reference backward is the derivative of the reference forward (central differences)', () => {
    const xs = randomArray(50, 3, -4, 4);
    const h = 1e-6;
    const fd = Float64Array.from(xs, (v) => (geluForwardRef([v + h])[0] - geluForwardRef([v - h])[0]) / (2 * h));
    // Central differences in float64 with h=1e-6: truncation ~h² and rounding ~1e-16/h ≈ 1e-10.
    expectClose(geluBackwardRef(xs, new Float64Array(50).fill(1)), fd, 1e-8, 1e-8, 'gelu fd');
  });

  it('rejects a dy of another size, naming the op and shapes', () => {
    const x = GpuArray.fromData([1, 2, 3], [3]);
    const dy = GpuArray.fromData([1, 2], [2]);
    expect(() => geluBackward(x, dy)).toThrow(/geluBackward: dy \[2\] does not match x \[3\]/);
  });
});

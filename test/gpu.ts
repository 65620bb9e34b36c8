// Shared test set-up: one device per test file, on whatever adapter the machine has.
import { afterAll, beforeAll } from 'vitest';
import { destroyGpu, initGpu, type Gpu } from '../src/kernels/device.js';
import { toleranceRatio } from '../src/kernels/ref/math.js';

export function useGpu(): { current: Gpu | undefined } {
  const holder: { current: Gpu | undefined } = { current: undefined };
  beforeAll(async () => {
    holder.current = await initGpu();
  });
  afterAll(() => destroyGpu());
  return holder;
}

/**
 * Assert |actual - expected| <= atol + rtol·|expected| elementwise, with a message that names the
 * worst element. Returns the worst ratio (<= 1 passes).
 */
export function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, atol: number, rtol: number, what = ''): number {
  if (actual.length !== expected.length) throw new Error(`${what}: length ${actual.length} != expected ${expected.length}`);
  const ratio = toleranceRatio(actual, expected, atol, rtol);
  if (!(ratio <= 1)) {
    let wi = 0;
    let w = -1;
    for (let i = 0; i < actual.length; i++) {
      const r = Math.abs(actual[i] - expected[i]) / (atol + rtol * Math.abs(expected[i]));
      if (!(r <= w)) {
        w = r;
        wi = i;
        if (Number.isNaN(r)) break;
      }
    }
    throw new Error(`${what}: element ${wi} is ${actual[wi]}, expected ${expected[wi]} (tolerance atol ${atol}, rtol ${rtol}; worst ratio ${ratio.toFixed(2)})`);
  }
  return ratio;
}

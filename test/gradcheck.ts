// A generic gradient check: the GPU autograd backward of an op against central finite differences
// of the op's float64 reference forward (in the spirit of minitorch's property checks).
import { GpuArray, scope } from '../src/kernels/memory.js';
import { randomArray } from '../src/kernels/ref/math.js';
import { Tensor } from '../src/autograd/tensor.js';
import { expectClose } from './gpu.js';

export interface GradInput {
  shape: number[];
  lo?: number;
  hi?: number;
  /** false: a constant input (no gradient checked). */
  grad?: boolean;
  /** Fixed values instead of random ones. */
  values?: Float32Array;
}

export interface GradCase {
  name: string;
  inputs: GradInput[];
  gpu: (xs: Tensor[]) => Tensor;
  /** The same function in float64 (the reference). */
  ref: (xs: Float64Array[]) => ArrayLike<number>;
  /** Tolerance on gradients (and the forward value). */
  atol?: number;
  rtol?: number;
  /** Finite-difference step (float64). */
  h?: number;
}

/**
 * Checks forward(gpu) ≈ ref and, for L = Σ w ∘ f(x) with random w, dL/dx from the GPU backward ≈
 * (L(x + h·e_j) − L(x − h·e_j)) / 2h computed on the float64 reference.
 */
export async function gradCheck(c: GradCase, seed = 1): Promise<void> {
  const atol = c.atol ?? 2e-5;
  const rtol = c.rtol ?? 2e-4;
  const h = c.h ?? 1e-6;
  const xs = c.inputs.map((inp, i) => inp.values ?? randomArray(inp.shape.reduce((a, b) => a * b, 1), seed * 100 + i, inp.lo ?? -1, inp.hi ?? 1));
  const x64 = xs.map((x) => Float64Array.from(x));
  const y64 = c.ref(x64);
  const w = randomArray(y64.length, seed * 100 + 99);
  const [yGpu, grads] = await scope(async () => {
    const ts = c.inputs.map((inp, i) => Tensor.from(xs[i], inp.shape, inp.grad !== false));
    const y = c.gpu(ts);
    if (y.size !== y64.length) throw new Error(`${c.name}: GPU output has ${y.size} values, reference ${y64.length}`);
    y.backward(GpuArray.fromData(w, y.shape));
    const gs = await Promise.all(ts.map((t, i) => (c.inputs[i].grad === false ? null : t.grad ? t.grad.read() : Promise.resolve(new Float32Array(t.size)))));
    return [await y.read(), gs] as const;
  });
  expectClose(yGpu, y64, atol, rtol, `${c.name} forward`);
  const L = (inputs: Float64Array[]) => {
    const y = c.ref(inputs);
    let s = 0;
    for (let i = 0; i < y.length; i++) s += w[i] * y[i];
    return s;
  };
  c.inputs.forEach((inp, i) => {
    if (inp.grad === false) return;
    const fd = new Float64Array(xs[i].length);
    for (let j = 0; j < fd.length; j++) {
      const plus = x64.map((x) => x.slice());
      const minus = x64.map((x) => x.slice());
      plus[i][j] += h;
      minus[i][j] -= h;
      fd[j] = (L(plus) - L(minus)) / (2 * h);
    }
    expectClose(grads[i]!, fd, atol, rtol, `${c.name} d/dinput${i}`);
  });
}

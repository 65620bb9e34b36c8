// tfjs-backend-webgpu as a peer, run on the same Dawn adapter in the same process as our kernels.
// tfjs-backend-webgpu registers its backend at import time only if globalThis.navigator.gpu exists, and
// then asks navigator.gpu for an adapter; in Node we point navigator.gpu at the GPU object our device
// came from (gpu().gpu), so both libraries run on the same adapter (each with its own GPUDevice).
import { gpu } from '../src/kernels/device.js';
import { timeRuns } from './timing.js';

type Tf = typeof import('@tensorflow/tfjs-core');
let tfPromise: Promise<Tf> | undefined;

/** tfjs-core with the webgpu backend active; rejects with the reason when it cannot run. */
export function tfjsWebgpu(): Promise<Tf> {
  tfPromise ??= (async () => {
    const g = gpu();
    const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
    if (!nav?.gpu) {
      // Node 20 has no navigator; Node 21+ has one without gpu (a getter-only global: redefine it).
      Object.defineProperty(globalThis, 'navigator', { value: { ...(nav ?? {}), gpu: g.gpu }, configurable: true, writable: true });
    }
    const tf = (await import('@tensorflow/tfjs-core')) as Tf;
    await import('@tensorflow/tfjs-backend-webgpu');
    if (!tf.findBackendFactory('webgpu')) throw new Error('tfjs-backend-webgpu did not register (navigator.gpu missing at import)');
    const ok = await tf.setBackend('webgpu');
    if (!ok || tf.getBackend() !== 'webgpu') throw new Error('tf.setBackend("webgpu") failed');
    await tf.ready();
    return tf;
  })();
  tfPromise.catch(() => (tfPromise = undefined));
  return tfPromise;
}

export interface PeerResult {
  peer: string;
  version?: string;
  gflops?: number;
  ms?: number;
  median_ms?: number;
  /** Why the peer did not run (then there are no numbers). */
  error?: string;
}

/**
 * tfjs tf.matMul(a, b, transA, transB) for an m×n×k product, timed as ours is: best of `runs` after warm-up, each run
 * including the read-back (await c.data()). Checked on a 2×2 product before timing; given the bench's own operands
 * (`a` stored [m,k] or, transposed, [k,m]; `b` [k,n] or [n,k]) and their float64 product `ref`, its result on them is
 * checked too, with the tolerance ours gets (matmulTolerance), so a wrong peer is an error, not a time.
 */
export async function tfjsMatmul(opts: { m: number; n: number; k: number; transA?: boolean; transB?: boolean; a?: Float32Array; b?: Float32Array; ref?: ArrayLike<number>; runs?: number }): Promise<PeerResult> {
  const { m, n, k, transA = false, transB = false } = opts;
  const runs = opts.runs ?? 5;
  try {
    const tf = await tfjsWebgpu();
    const version = (tf.version_core as string | undefined) ?? undefined;
    // Sanity check: [[1,2],[3,4]]·[[5,6],[7,8]] = [[19,22],[43,50]].
    const s = tf.tidy(() => tf.matMul(tf.tensor2d([1, 2, 3, 4], [2, 2]), tf.tensor2d([5, 6, 7, 8], [2, 2])));
    const sv = Array.from(await s.data());
    tf.dispose(s);
    if (sv.join(',') !== '19,22,43,50') throw new Error(`tfjs matMul gave ${sv} for a 2×2 check`);
    const aShape: [number, number] = transA ? [k, m] : [m, k];
    const bShape: [number, number] = transB ? [n, k] : [k, n];
    const a = opts.a ? tf.tensor2d(opts.a, aShape) : tf.randomUniform(aShape, -1, 1, 'float32', 1);
    const b = opts.b ? tf.tensor2d(opts.b, bShape) : tf.randomUniform(bShape, -1, 1, 'float32', 2);
    let t;
    try {
      if (opts.ref) {
        const { toleranceRatio } = await import('../src/kernels/ref/math.js');
        const { matmulTolerance } = await import('../src/kernels/ref/matmul.js');
        const c = tf.matMul(a, b, transA, transB);
        const got = await c.data();
        c.dispose();
        if (!(toleranceRatio(got as Float32Array, opts.ref, ...matmulTolerance(k)) <= 1)) throw new Error('tfjs matMul differs from the float64 reference');
      }
      // Wall clock incl. read-back; the two warm-up runs compile tfjs's shaders.
      t = await timeRuns(async () => {
        const c = tf.matMul(a, b, transA, transB);
        await c.data();
        c.dispose();
      }, { runs, warmup: 2, gpuTime: false });
    } finally {
      tf.dispose([a, b]);
    }
    const ms = t.bestWallMs;
    return { peer: 'tfjs-backend-webgpu', version, gflops: (2 * m * n * k) / ms / 1e6, ms, median_ms: t.wallMs };
  } catch (e) {
    return { peer: 'tfjs-backend-webgpu', error: (e as Error).message ?? String(e) };
  }
}

/**
 * tfjs tf.softmax over the last axis of x [rows, cols], timed as ours is in the softmax row: best of `runs` after
 * warm-up, each run including the read-back (await y.data()). Its output for the benchmark input is first checked
 * against the float64 reference (1e-6 absolute: probabilities ≤ 1 from an f32 exp and sum over ≤ a few hundred
 * terms), so a wrong peer is an error, not a time. Bandwidth counts x read once and y written once.
 */
export async function tfjsSoftmax(opts: { x: Float32Array; rows: number; cols: number; runs?: number }): Promise<PeerResult & { gbps?: number }> {
  const { x, rows, cols } = opts;
  const runs = opts.runs ?? 5;
  try {
    const tf = await tfjsWebgpu();
    const version = (tf.version_core as string | undefined) ?? undefined;
    const { softmaxForwardRef } = await import('../src/kernels/ref/softmax.js');
    const xt = tf.tensor2d(x, [rows, cols]);
    const first = tf.softmax(xt);
    const got = await first.data();
    first.dispose();
    const want = softmaxForwardRef(x, cols);
    let worst = 0;
    for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]));
    if (!(worst <= 1e-6)) throw new Error(`tfjs softmax differs from the float64 reference by ${worst} (> 1e-6)`);
    const t = await timeRuns(async () => {
      const y = tf.softmax(xt);
      await y.data();
      y.dispose();
    }, { runs, warmup: 1, gpuTime: false });
    xt.dispose();
    const ms = t.bestWallMs;
    return { peer: 'tfjs-backend-webgpu', version, ms, median_ms: t.wallMs, gbps: (2 * rows * cols * 4) / (ms * 1e6) };
  } catch (e) {
    return { peer: 'tfjs-backend-webgpu', error: (e as Error).message ?? String(e) };
  }
}

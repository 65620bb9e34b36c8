// matmul throughput: best of several runs after warm-up, each run = matmul + readback of the result (as a
// user would time it), GPU time from timestamp queries where available; tfjs-backend-webgpu beside it.
import { matmulVariantFor } from '../src/kernels/autotune.js';
import { gpu, initGpu } from '../src/kernels/device.js';
import { matmul, parseMatmulVariant, resolveMatmulKernel } from '../src/kernels/matmul.js';
import { GpuArray } from '../src/kernels/memory.js';
import { matmulRef } from '../src/kernels/ref/matmul.js';
import { randomArray, toleranceRatio } from '../src/kernels/ref/math.js';
import { tfjsMatmul } from './tfjs-peer.js';
import { timeRuns } from './timing.js';

export interface BenchMatmulOptions {
  m: number;
  n: number;
  k: number;
  /** A stored [k, m] (op(A) = Aᵀ), B stored [n, k]: the forms a Linear layer's backward and forward run in. */
  transA?: boolean;
  transB?: boolean;
  /** Default: the adapter's choice (autotune.ts). */
  variant?: string;
  runs?: number;
  /** Also run tfjs-backend-webgpu on the same adapter (plain products only). */
  peers?: boolean;
}

/** Check a variant against the float64 reference on small awkward shapes, every transpose form; throws if wrong. */
async function checkVariant(variant: string): Promise<void> {
  // 132×136×44: aligned in every transpose form, so the vec4 kernels run their own code (not their scalar fallbacks) over
  // several blocks.
  for (const [M, N, K] of [
    [13, 20, 36],
    [7, 13, 5],
    [132, 136, 44],
  ]) {
    for (const [transA, transB] of [
      [false, false],
      [false, true],
      [true, false],
      [true, true],
    ]) {
      const a = randomArray(M * K, 7);
      const b = randomArray(K * N, 8);
      const aS = transA ? [K, M] : [M, K];
      const bS = transB ? [N, K] : [K, N];
      const A = GpuArray.fromData(a, aS);
      const B = GpuArray.fromData(b, bS);
      const C = matmul(A, B, { transA, transB, variant });
      const got = await C.read();
      for (const x of [A, B, C]) x.dispose();
      // Sums of ≤ 36 products of values in [-1, 1]: f32 error ≤ 38·2^-24·36 ≈ 8e-5.
      const r = toleranceRatio(got, matmulRef(a, aS, b, bS, { transA, transB }), 1e-4, 0);
      if (!(r <= 1)) throw new Error(`bench matmul: variant ${variant} disagrees with the reference on ${M}×${N}×${K} transA=${transA} transB=${transB} (error/tolerance ${r})`);
    }
  }
}

export async function benchMatmul(opts: BenchMatmulOptions): Promise<object> {
  await initGpu();
  const { m, n, k } = opts;
  const runs = opts.runs ?? 5;
  const g = gpu();
  const transA = !!opts.transA;
  const transB = !!opts.transB;
  const variant = opts.variant ?? matmulVariantFor(g.adapterKey, transA, transB);
  parseMatmulVariant(variant); // a bad name fails here, before any work
  await checkVariant(variant);
  const A = GpuArray.fromData(randomArray(m * k, 1), transA ? [k, m] : [m, k]);
  const B = GpuArray.fromData(randomArray(k * n, 2), transB ? [n, k] : [k, n]);
  const flops = 2 * m * n * k;
  let t;
  try {
    t = await timeRuns(
      async () => {
        const C = matmul(A, B, { variant, transA, transB });
        await C.read();
        C.dispose();
      },
      { runs, warmup: 1 },
    );
  } finally {
    A.dispose();
    B.dispose();
  }
  const result: Record<string, unknown> = {
    op: 'matmul',
    m,
    n,
    k,
    ...(transA ? { transA } : {}),
    ...(transB ? { transB } : {}),
    variant,
    /** The kernel that ran (a variant can fall back, e.g. blocked-vec4 on unaligned shapes). */
    kernel: resolveMatmulKernel(variant, m, n, k, transA, transB).family,
    adapter: g.adapterKey,
    device: g.info.description,
    gflops: flops / t.bestWallMs / 1e6,
    ms: t.bestWallMs,
    median_ms: t.wallMs,
    gpu_ms: t.gpuMs,
    gpu_gflops: t.gpuMs ? flops / t.gpuMs / 1e6 : null,
    clock: t.clock,
    runs,
    timing: 'best of runs after 1 warm-up; each run = dispatch + readback of C',
    date: new Date().toISOString(),
  };
  if (opts.peers && !transA && !transB) {
    const peer = await tfjsMatmul({ m, n, k, runs });
    result.tfjs = peer;
    if (peer.gflops) result.ratio_vs_tfjs = (result.gflops as number) / peer.gflops;
  }
  return result;
}

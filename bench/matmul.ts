// matmul throughput: best of several runs after warm-up, each run = matmul + readback of the result (as a
// user would time it), GPU time from timestamp queries where available; tfjs-backend-webgpu beside it.
import { matmulVariantForProduct } from '../src/kernels/autotune.js';
import { gpu, initGpu } from '../src/kernels/device.js';
import { matmul, parseMatmulVariant, resolveMatmulKernel } from '../src/kernels/matmul.js';
import { GpuArray } from '../src/kernels/memory.js';
import { matmulRef, matmulTolerance } from '../src/kernels/ref/matmul.js';
import { randomArray, toleranceRatio } from '../src/kernels/ref/math.js';
import { tfjsMatmul } from './tfjs-peer.js';
import { median, timeRuns } from './timing.js';

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
  /** Products per call (a batched matmul: A [batch, m, k], B [batch, k, n] or, with sharedB, 2-D); default 1. */
  batch?: number;
  sharedB?: boolean;
}

/** Operand shapes of a (batched) product as matmul() takes them. */
function operandShapes(o: { m: number; n: number; k: number; transA?: boolean; transB?: boolean; batch?: number; sharedB?: boolean }): { aS: number[]; bS: number[] } {
  const lead = (o.batch ?? 1) > 1 ? [o.batch!] : [];
  return { aS: [...lead, ...(o.transA ? [o.k, o.m] : [o.m, o.k])], bS: [...(o.sharedB ? [] : lead), ...(o.transB ? [o.n, o.k] : [o.k, o.n])] };
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
  // the adapter's choice for this product as matmul() makes it (per form, with the default table's K rule)
  const variant = opts.variant ?? matmulVariantForProduct(g.adapterKey, transA, transB, k);
  parseMatmulVariant(variant); // a bad name fails here, before any work
  await checkVariant(variant);
  const batch = opts.batch ?? 1;
  const { aS, bS } = operandShapes(opts);
  const A = GpuArray.fromData(randomArray(batch * m * k, 1), aS);
  const B = GpuArray.fromData(randomArray((opts.sharedB ? 1 : batch) * k * n, 2), bS);
  const flops = 2 * batch * m * n * k;
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
    ...(batch > 1 ? { batch } : {}),
    ...(opts.sharedB ? { sharedB: true } : {}),
    ...(transA ? { transA } : {}),
    ...(transB ? { transB } : {}),
    variant,
    /** The kernel that ran (a variant can fall back, e.g. blocked-vec4 on unaligned shapes). */
    kernel: kernelRan(variant, m, n, k, transA, transB, batch, !!opts.sharedB),
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
  if (opts.peers && !transA && !transB && batch === 1) {
    const peer = await tfjsMatmul({ m, n, k, runs });
    result.tfjs = peer;
    if (peer.gflops) result.ratio_vs_tfjs = (result.gflops as number) / peer.gflops;
  }
  return result;
}

export interface MatmulCompareRow {
  variant: string;
  /** The kernel that ran (a variant can fall back, e.g. blocked-vec4 on unaligned shapes). */
  kernel: string;
  /** Median and best time of one call (dispatch and sync, no read-back), ms. */
  median_ms: number;
  best_ms: number;
  /** Median GPU time of a call (timestamp queries; every pass the call records, e.g. a ':plain' variant's copies). */
  gpu_ms: number | null;
  /** From the GPU time where the adapter has timestamps, else from the best wall time. */
  gflops: number;
  /** The first variant's time ÷ this one's, by the same clock (> 1: faster than the first). */
  vs_first: number;
}

export interface MatmulCompareResult {
  op: 'matmul';
  shape: string;
  adapter: string;
  clock: string;
  /** Whether each variant was checked against float64 on the timed operands, or (larger products) on small shapes. */
  checked: 'operands' | 'small shapes';
  rounds: number;
  rows: MatmulCompareRow[];
}

/** The kernel a variant runs for this product, with the copy or the split-K it makes ('tiled-vec4 (split-K 4)'). */
function kernelRan(variant: string, m: number, n: number, k: number, transA: boolean, transB: boolean, batch: number, sharedB: boolean): string {
  // matmul() runs a batch over a shared B with an untransposed A as one product of batch·m rows; other batches unsplit
  const folded = batch > 1 && sharedB && !transA;
  const cfg = resolveMatmulKernel(variant, folded ? batch * m : m, n, k, transA, transB);
  const copy = cfg.plain && (transA || transB) ? ' (plain copy)' : '';
  return cfg.family + copy + (cfg.splitK && (batch === 1 || folded) ? ` (split-K ${cfg.splitK})` : '');
}

/** Products up to this many multiply-adds are checked against the float64 reference on the timed operands (~1–2 s of JS). */
const CHECK_OPERANDS_MAX = 2 ** 30;

/**
 * Several variants on one product, side by side in one process: each checked against the float64 reference (on the
 * timed operands when the product is small enough, else on small shapes in every form), warmed up, then timed in
 * alternating rounds — one call of each variant per round, `runs` rounds — so that drift on a noisy machine (a CPU
 * adapter's clock, another process) falls on every variant alike. Each call is timed to its sync, without a read-back.
 */
export async function compareMatmulVariants(opts: BenchMatmulOptions & { variants: string[] }): Promise<MatmulCompareResult> {
  await initGpu();
  const { m, n, k, variants } = opts;
  const transA = !!opts.transA;
  const transB = !!opts.transB;
  const batch = opts.batch ?? 1;
  if (!variants.length) throw new RangeError('bench matmul: no variants to compare');
  for (const v of variants) parseMatmulVariant(v); // a bad name fails before any work
  const g = gpu();
  const { aS, bS } = operandShapes(opts);
  const a = randomArray(batch * m * k, 1);
  const b = randomArray((opts.sharedB ? 1 : batch) * k * n, 2);
  const A = GpuArray.fromData(a, aS);
  const B = GpuArray.fromData(b, bS);
  const flops = 2 * batch * m * n * k;
  const small = flops / 2 <= CHECK_OPERANDS_MAX;
  const times = new Map<string, { wall: number[]; gpu: number[] }>();
  try {
    const ref = small ? matmulRef(a, aS, b, bS, { transA, transB }) : undefined;
    for (const v of variants) {
      if (ref) {
        const C = matmul(A, B, { variant: v, transA, transB });
        const got = await C.read();
        C.dispose();
        if (!(toleranceRatio(got, ref, ...matmulTolerance(k)) <= 1)) throw new Error(`bench matmul: variant ${v} disagrees with the float64 reference on the timed operands`);
      } else {
        await checkVariant(v);
      }
      matmul(A, B, { variant: v, transA, transB }).dispose(); // warm-up beyond the check's compile
      times.set(v, { wall: [], gpu: [] });
    }
    const rounds = opts.runs ?? 5;
    for (let r = 0; r < rounds; r++) {
      for (const v of variants) {
        const t = await timeRuns(() => matmul(A, B, { variant: v, transA, transB }).dispose(), { runs: 1, warmup: 0 });
        times.get(v)!.wall.push(t.wallMs);
        if (t.gpuMs !== null) times.get(v)!.gpu.push(t.gpuMs);
      }
    }
  } finally {
    A.dispose();
    B.dispose();
  }
  // GPU time only when every variant has it for every round (else wall clock for all, so the ratios compare alike)
  const gpuClock = [...times.values()].every((t) => t.gpu.length === (opts.runs ?? 5));
  const rows = variants.map((v) => {
    const t = times.get(v)!;
    const gpuMs = gpuClock ? median(t.gpu) : null;
    const ms = gpuMs ?? Math.min(...t.wall);
    return { variant: v, kernel: kernelRan(v, m, n, k, transA, transB, batch, !!opts.sharedB), median_ms: median(t.wall), best_ms: Math.min(...t.wall), gpu_ms: gpuMs, gflops: flops / ms / 1e6, vs_first: 0 };
  });
  for (const r of rows) r.vs_first = (rows[0].gpu_ms ?? rows[0].best_ms) / (r.gpu_ms ?? r.best_ms);
  const shape = `${batch > 1 ? `${batch}×` : ''}${m}×${n}×${k}${transA ? ' tA' : ''}${transB ? ' tB' : ''}${opts.sharedB ? ' (b shared)' : ''}`;
  return { op: 'matmul', shape, adapter: g.adapterKey, clock: gpuClock ? 'timestamp-query (median)' : 'wall clock (best)', checked: small ? 'operands' : 'small shapes', rounds: opts.runs ?? 5, rows };
}

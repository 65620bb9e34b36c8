// The explicit attention path (matmul with the 1/√D scale in its store → softmax → matmul, through autograd) timed at the same
// shapes as the fused kernel, so the two sit side by side in one run.
import { gpu } from '../src/kernels/device.js';
import { GpuArray, peakBytesOf, scope } from '../src/kernels/memory.js';
import { randomArray } from '../src/kernels/ref/math.js';
import { Tensor } from '../src/autograd/tensor.js';
import * as ops from '../src/autograd/ops.js';
import { timeRuns } from './timing.js';
import { sync } from '../src/kernels/encoder.js';

export interface AttentionShape {
  batch?: number;
  heads?: number;
  seq?: number;
  dim?: number;
  runs?: number;
}

/**
 * The largest difference between a fused variant and the explicit path over out, dq, dk and dv at [B, H, N, D]
 * (random inputs and output gradient), relative to the largest magnitude of each: checked before a variant is
 * timed, so a wrong kernel (or one the adapter failed to compile) is reported rather than timed.
 */
export async function fusedVsExplicitError(opts: AttentionShape & { variant?: string } = {}): Promise<number> {
  const B = opts.batch ?? 1, H = opts.heads ?? 12, N = opts.seq ?? 197, D = opts.dim ?? 64;
  const data = [11, 12, 13, 14].map((s) => randomArray(B * H * N * D, s));
  const results: Float32Array[][] = [];
  for (const path of ['fused', 'explicit'] as const) {
    results.push(
      await scope(async () => {
        const [q, k, v] = data.slice(0, 3).map((d) => Tensor.from(d, [B, H, N, D], true));
        const out =
          path === 'fused' ? ops.attention(q, k, v, { variant: opts.variant }) : ops.matmul(ops.softmax(ops.matmul(q, k, { transB: true, alpha: 1 / Math.sqrt(D) })), v);
        out.backward(GpuArray.fromData(data[3], [B, H, N, D]));
        return Promise.all([out.read(), q.grad!.read(), k.grad!.read(), v.grad!.read()]);
      }),
    );
  }
  let worst = 0;
  results[0].forEach((f, i) => {
    const e = results[1][i];
    let scale = 0;
    let diff = 0;
    for (let j = 0; j < e.length; j++) {
      scale = Math.max(scale, Math.abs(e[j]));
      const d = Math.abs(f[j] - e[j]);
      diff = Number.isNaN(d) ? Infinity : Math.max(diff, d);
    }
    worst = Math.max(worst, diff / (scale || 1));
  });
  return worst;
}

/**
 * q, k, v and the output gradient for n elements each (seeds 1–4), made once per size: the suite alternates paths in
 * rounds, and at B32 H12 N197 D64 making 4 × 4.8 M random floats in JavaScript took longer than the kernels.
 */
function inputsFor(n: number): Float32Array[] {
  if (inputs?.n !== n) inputs = { n, data: [1, 2, 3, 4].map((s) => randomArray(n, s)) };
  return inputs.data;
}
let inputs: { n: number; data: Float32Array[] } | undefined;

/**
 * One attention call through autograd on views of q, k and v ([B, H, N, D]) as leaf tensors: `path` 'explicit' (matmul
 * with the 1/√D scale in its store → softmax → matmul) or a fused variant ('default': the adapter's); with an output
 * gradient, the backward too. What it makes is left to the caller's scope().
 */
export function attentionStep(path: string, [q0, k0, v0]: GpuArray[], grad: GpuArray | null): void {
  const D = q0.shape[q0.shape.length - 1];
  const [q, k, v] = [q0, k0, v0].map((a) => new Tensor(a.view(a.shape), { requiresGrad: grad !== null }));
  const out =
    path === 'explicit'
      ? ops.matmul(ops.softmax(ops.matmul(q, k, { transB: true, alpha: 1 / Math.sqrt(D) })), v)
      : ops.attention(q, k, v, path === 'default' ? {} : { variant: path });
  if (grad) out.backward(grad);
}

/**
 * The GPU memory attention at [B, H, N, D] needs above its inputs (q, k, v and the output gradient), fused or
 * explicit, from one untimed run each: `fwd_bytes` for a forward without autograd (inference: the explicit path's
 * scores and probabilities, the fused kernels' output and row statistics), `fwd_bwd_bytes` for a forward that keeps
 * what its backward needs and the backward itself (training: the explicit path keeps P, `subgroup-saved` its
 * scores, `flash` only the output and row statistics; dq, dk and dv count on both sides). The peak of the bytes of
 * arrays alive at once (memory.ts, peakBytesOf): the same on every adapter for the same kernels and matmul variants.
 */
export async function attentionPeakMemory(path: 'fused' | 'explicit', opts: AttentionShape & { variant?: string } = {}): Promise<{ fwd_bytes: number; fwd_bwd_bytes: number }> {
  const B = opts.batch ?? 1, H = opts.heads ?? 12, N = opts.seq ?? 197, D = opts.dim ?? 64;
  const arrays = inputsFor(B * H * N * D).map((d) => GpuArray.fromData(d, [B, H, N, D]));
  const [q0, k0, v0, g0] = arrays;
  const forward = (grad: boolean) => attentionStep(path === 'fused' ? opts.variant ?? 'default' : 'explicit', [q0, k0, v0], grad ? g0 : null);
  try {
    const fwd = await peakBytesOf(() => scope(() => forward(false)));
    const both = await peakBytesOf(() => scope(() => forward(true)));
    await sync();
    return { fwd_bytes: fwd.peakBytes, fwd_bwd_bytes: both.peakBytes };
  } finally {
    for (const a of arrays) a.dispose();
  }
}

/** Forward and forward+backward time of attention at [B, H, N, D], fused or explicit. */
export async function benchAttentionPath(path: 'fused' | 'explicit', opts: AttentionShape & { variant?: string } = {}) {
  const B = opts.batch ?? 1, H = opts.heads ?? 12, N = opts.seq ?? 197, D = opts.dim ?? 64;
  const arrays = inputsFor(B * H * N * D).map((d) => GpuArray.fromData(d, [B, H, N, D]));
  const [q0, k0, v0, g0] = arrays;
  const forward = (grad: boolean) => attentionStep(path === 'fused' ? opts.variant ?? 'default' : 'explicit', [q0, k0, v0], grad ? g0 : null);
  const runs = opts.runs ?? 3;
  let fwd, both;
  try {
    fwd = await timeRuns(() => scope(() => forward(false)), { runs });
    both = await timeRuns(() => scope(() => forward(true)), { runs });
  } finally {
    for (const a of arrays) a.dispose();
  }
  const fwdMs = fwd.gpuMs ?? fwd.wallMs;
  const bothMs = both.gpuMs ?? both.wallMs;
  // Useful flops: QKᵀ and PV, 2·N·N·D each, per head (the backward does 2.5× the forward's matmuls).
  const flops = 4 * B * H * N * N * D;
  return {
    op: 'attention',
    path,
    ...(path === 'fused' ? { variant: opts.variant ?? 'default' } : {}),
    adapter: gpu().adapterKey,
    batch: B,
    heads: H,
    seq: N,
    dim: D,
    fwd_ms: fwdMs,
    fwd_bwd_ms: bothMs,
    bwd_ms: bothMs - fwdMs,
    fwd_gflops: flops / fwdMs / 1e6,
    clock: fwd.clock,
  };
}

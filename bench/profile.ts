// A per-kernel GPU-time profile of one training step (or one forward pass): every compute pass gets timestamp
// queries, and passes are grouped by their label (kernel and, for matmul, family and shape). This is how the
// lavapipe training step's hot spots were found (the shape-specialised permute, folded Linear matmuls, narrow
// per-head products off the subgroup kernel). Needs the adapter's 'timestamp-query' feature.
import * as ops from '../src/autograd/ops.js';
import { AdamW } from '../src/autograd/optim.js';
import { noGrad, Tensor } from '../src/autograd/tensor.js';
import { gpu, initGpu } from '../src/kernels/device.js';
import { sync } from '../src/kernels/encoder.js';
import { setPassHook } from '../src/kernels/launch.js';
import { GpuArray, memoryStats, peakBytesOf, scope } from '../src/kernels/memory.js';
import { randomArray } from '../src/kernels/ref/math.js';
import { benchModel } from './train.js';
import { VisionTransformer, type AttentionPath } from '../src/vit/model.js';

export interface ProfileOptions {
  /** 'fmnist' (the patch-7 Fashion-MNIST model of the fashion-mnist-quick and -p7 presets, default) or a ViT preset name such as 'vit_b_16'. */
  model?: string;
  batch?: number;
  /** 'train' (forward, backward, AdamW; default) or 'forward' (inference). */
  what?: 'train' | 'forward';
  attention?: AttentionPath;
}

export interface ProfileRow {
  label: string;
  ms: number;
  calls: number;
  share: number;
  /** matmul rows: the rate their GPU time gives (2·batch·M·N·K per call), to hold against the roofline's peak. */
  gflops?: number;
}

/** GFLOP/s of a matmul pass label ('matmul FAMILY [batch×]M×N×K[ tA][ tB]') over `calls` calls in `ms`; else undefined. */
export function matmulRate(label: string, calls: number, ms: number): number | undefined {
  const m = /^matmul \S+ (?:(\d+)×)?(\d+)×(\d+)×(\d+)/.exec(label);
  if (!m || !(ms > 0)) return undefined;
  const [batch, M, N, K] = [m[1] ?? '1', m[2], m[3], m[4]].map(Number);
  return (2 * batch * M * N * K * calls) / (ms * 1e6);
}

export interface ProfileResult {
  adapter: string;
  model: string;
  batch: number;
  what: 'train' | 'forward';
  /** Wall-clock time of the profiled step (timestamp writes add a little). */
  wall_ms: number;
  /** Sum of the passes' GPU times. */
  gpu_ms: number;
  passes: number;
  /** Bytes of arrays alive before the step: parameters and, for a training step, AdamW's two moments per parameter. */
  resident_bytes: number;
  /** The step's peak above resident_bytes: activations kept for the backward, gradients and temporaries (memory.ts). */
  step_peak_bytes: number;
  rows: ProfileRow[];
}

/** WebGPU allows 4096 queries per set: 2048 passes per set, sets added as the step needs them. */
const PASSES_PER_SET = 2048;
const MAX_PASSES = 64 * PASSES_PER_SET;

export async function profileStep(opts: ProfileOptions = {}): Promise<ProfileResult> {
  const name = opts.model ?? 'fmnist';
  const { config, batch } = benchModel(name, 'profile');
  const what = opts.what ?? 'train';
  const B = opts.batch ?? (batch === 128 ? 128 : 8);
  if (!Number.isInteger(B) || B < 1) throw new RangeError(`profile: batch must be a positive integer, got ${B}`);
  const g = await initGpu();
  if (!g.features.has('timestamp-query')) throw new Error(`profile: adapter ${g.adapterKey} has no 'timestamp-query' feature, so passes cannot be timed`);
  const model = new VisionTransformer(config, { init: 'random', seed: 1 });
  const opt = new AdamW(model.parameters(), { lr: 3e-4, weightDecay: 1e-2 });
  const S = config.image_size;
  const x = randomArray(B * 3 * S * S, 3, -2, 2);
  const y = Float32Array.from({ length: B }, (_, i) => i % config.num_classes);
  const step = () =>
    scope(async () => {
      if (what === 'forward') {
        model.eval();
        const out = noGrad(() => model.forward(Tensor.from(x, [B, 3, S, S]), { attention: opts.attention }).logits);
        await out.data.read();
        return;
      }
      model.train();
      const logits = model.forward(Tensor.from(x, [B, 3, S, S]), { attention: opts.attention }).logits;
      const loss = ops.crossEntropy(logits, GpuArray.fromData(y, [B]));
      loss.backward();
      opt.step();
      await loss.item();
      opt.zeroGrad();
    });
  const device = gpu().device;
  const sets: GPUQuerySet[] = [];
  const labels: string[] = [];
  try {
    await step(); // warm-up: pipelines compiled, buffers pooled
    await step();
    setPassHook((desc, label) => {
      if (labels.length >= MAX_PASSES) return;
      const s = Math.floor(labels.length / PASSES_PER_SET);
      if (s === sets.length) sets.push(device.createQuerySet({ type: 'timestamp', count: 2 * PASSES_PER_SET }));
      const i = (labels.length % PASSES_PER_SET) * 2;
      labels.push(label);
      desc.timestampWrites = { querySet: sets[s], beginningOfPassWriteIndex: i, endOfPassWriteIndex: i + 1 };
    });
    const resident = memoryStats().liveBytes;
    const t0 = performance.now();
    let stepPeak: number;
    try {
      stepPeak = (await peakBytesOf(step)).peakBytes;
    } finally {
      setPassHook(null);
    }
    const wall = performance.now() - t0;
    await sync();
    const n = labels.length * 2;
    const resolve = device.createBuffer({ size: Math.max(8, n * 8), usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
    const staging = device.createBuffer({ size: Math.max(8, n * 8), usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    const enc = device.createCommandEncoder();
    sets.forEach((qs, s) => {
      const count = Math.min(2 * PASSES_PER_SET, n - s * 2 * PASSES_PER_SET);
      enc.resolveQuerySet(qs, 0, count, resolve, s * 2 * PASSES_PER_SET * 8);
    });
    enc.copyBufferToBuffer(resolve, 0, staging, 0, Math.max(8, n * 8));
    device.queue.submit([enc.finish()]);
    await staging.mapAsync(GPUMapMode.READ);
    const t = new BigUint64Array(staging.getMappedRange().slice(0));
    staging.unmap();
    staging.destroy();
    resolve.destroy();
    const agg = new Map<string, { ms: number; calls: number }>();
    let total = 0;
    labels.forEach((label, i) => {
      const ms = t[2 * i + 1] > t[2 * i] ? Number(t[2 * i + 1] - t[2 * i]) / 1e6 : 0;
      total += ms;
      const a = agg.get(label) ?? { ms: 0, calls: 0 };
      a.ms += ms;
      a.calls++;
      agg.set(label, a);
    });
    const rows: ProfileRow[] = [...agg]
      .map(([label, a]) => {
        const gflops = matmulRate(label, a.calls, a.ms);
        return { label, ms: a.ms, calls: a.calls, share: total > 0 ? a.ms / total : 0, ...(gflops !== undefined ? { gflops } : {}) };
      })
      .sort((p, q) => q.ms - p.ms);
    return { adapter: g.adapterKey, model: name, batch: B, what, wall_ms: wall, gpu_ms: total, passes: labels.length, resident_bytes: resident, step_peak_bytes: stepPeak, rows };
  } finally {
    for (const qs of sets) qs.destroy();
    model.dispose();
    opt.dispose();
  }
}

const mib = (b: number) => (b / 2 ** 20).toFixed(1);

export function formatProfile(r: ProfileResult, top = 25): string {
  const lines = [
    `${r.what} step, ${r.model} batch ${r.batch} on ${r.adapter}: wall ${r.wall_ms.toFixed(1)} ms, GPU ${r.gpu_ms.toFixed(1)} ms in ${r.passes} passes`,
    `GPU memory: ${mib(r.resident_bytes)} MiB resident (parameters${r.what === 'train' ? ' and AdamW state' : ''}), ${mib(r.step_peak_bytes)} MiB more at the step's peak (${r.what === 'train' ? 'activations kept for the backward, gradients, temporaries' : 'activations and temporaries'})`,
    `${'kernel (pass label)'.padEnd(44)} ${'GPU ms'.padStart(9)} ${'calls'.padStart(6)} ${'share'.padStart(6)} ${'GFLOP/s'.padStart(9)}`,
    ...r.rows
      .slice(0, top)
      .map((x) => `${x.label.padEnd(44)} ${x.ms.toFixed(2).padStart(9)} ${String(x.calls).padStart(6)} ${(100 * x.share).toFixed(1).padStart(5)}% ${(x.gflops !== undefined ? x.gflops.toFixed(1) : '').padStart(9)}`),
  ];
  if (r.rows.length > top) lines.push(`… ${r.rows.length - top} more labels (--top N, or --json for all)`);
  return lines.join('\n');
}

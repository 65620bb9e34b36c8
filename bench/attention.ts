// Benchmark of the fused attention kernels (forward, and backward = prep + dQ + dK/dV).
// Times each call from record to completion (sync after each run), after warm-up runs that also
// compile the pipelines. Returns JSON-able numbers: best and median wall ms, plus the process CPU ms per
// run (lavapipe's worker threads are in-process, so this is a steadier figure on a busy machine).
import { gpu, initGpu } from '../src/kernels/device.js';
import { sync } from '../src/kernels/encoder.js';
import { GpuArray } from '../src/kernels/memory.js';
import { attentionBackward, attentionForward, defaultAttentionVariant, type AttentionOptions } from '../src/kernels/attention.js';
import { randomArray } from '../src/kernels/ref/math.js';

export interface BenchAttentionOptions {
  batch?: number;
  heads?: number;
  seq?: number;
  dim?: number;
  runs?: number;
  backward?: boolean;
  /** 'rows' or 'tiled'; default: the adapter's default variant. */
  variant?: string;
  warmup?: number;
}

interface Timing {
  best: number;
  median: number;
  cpu_median: number;
}

async function time(fn: () => void, runs: number, warmup: number): Promise<Timing> {
  for (let i = 0; i < warmup; i++) {
    fn();
    await sync();
  }
  const wall: number[] = [];
  const cpu: number[] = [];
  for (let i = 0; i < runs; i++) {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    fn();
    await sync();
    wall.push(performance.now() - t0);
    const c = process.cpuUsage(c0);
    cpu.push((c.user + c.system) / 1000);
  }
  const med = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
  const r = (x: number) => Math.round(x * 1000) / 1000;
  return { best: r(Math.min(...wall)), median: r(med(wall)), cpu_median: r(med(cpu)) };
}

export async function benchAttention(opts: BenchAttentionOptions = {}): Promise<object> {
  await initGpu();
  const B = opts.batch ?? 1;
  const H = opts.heads ?? 12;
  const N = opts.seq ?? 197;
  const D = opts.dim ?? 64;
  const runs = opts.runs ?? 10;
  const warmup = opts.warmup ?? 2;
  const variant = opts.variant ?? defaultAttentionVariant();
  const shape = [B, H, N, D];
  const size = B * H * N * D;
  const [q, k, v, g] = [1, 2, 3, 4].map((seed) => GpuArray.fromData(randomArray(size, seed), shape, 'benchAttention'));
  const aopts: AttentionOptions = { variant };
  const fwd = await time(() => {
    const r = attentionForward(q, k, v, aopts);
    r.out.dispose();
    r.lse.dispose();
  }, runs, warmup);
  const result: Record<string, unknown> = {
    op: 'attention',
    adapter: gpu().adapterKey,
    variant,
    shape: { B, H, N, D },
    runs,
    fwd_ms: fwd.median,
    fwd_best_ms: fwd.best,
    fwd_cpu_ms: fwd.cpu_median,
    // useful work: QKᵀ and PV, 2 flops per multiply-add
    fwd_gflops: Math.round(((4 * B * H * N * N * D) / (fwd.median * 1e6)) * 100) / 100,
  };
  if (opts.backward ?? true) {
    const { out, lse } = attentionForward(q, k, v, aopts);
    const bwd = await time(() => {
      const r = attentionBackward(q, k, v, out, lse, g, aopts);
      r.dq.dispose();
      r.dk.dispose();
      r.dv.dispose();
    }, runs, warmup);
    Object.assign(result, { bwd_ms: bwd.median, bwd_best_ms: bwd.best, bwd_cpu_ms: bwd.cpu_median });
    out.dispose();
    lse.dispose();
  }
  for (const a of [q, k, v, g]) a.dispose();
  return result;
}

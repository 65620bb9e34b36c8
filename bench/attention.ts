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
  /** 'rows', 'tiled' or 'blocked' (also 'blocked@RxC'); default: the adapter's default variant. */
  variant?: string;
  warmup?: number;
}

interface Timing {
  best: number;
  median: number;
  cpu_median: number;
}

async function time(fn: () => void, runs: number, warmup: number): Promise<Timing> {
  const { warmClocks, markTimedEnd } = await import('../src/kernels/clocks.js');
  for (let i = 0; i < warmup; i++) {
    fn();
    await sync();
  }
  const wall: number[] = [];
  const cpu: number[] = [];
  try {
    await warmClocks(fn, -Infinity);
    for (let i = 0; i < runs; i++) {
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      fn();
      await sync();
      wall.push(performance.now() - t0);
      const c = process.cpuUsage(c0);
      cpu.push((c.user + c.system) / 1000);
    }
  } finally {
    markTimedEnd();
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
    // As in training: 'subgroup-saved' keeps the scores for its backward (the timed forward above is inference's).
    const { out, lse, scores } = attentionForward(q, k, v, { ...aopts, saveScores: true });
    const bwd = await time(() => {
      const r = attentionBackward(q, k, v, out, lse, g, aopts, scores);
      r.dq.dispose();
      r.dk.dispose();
      r.dv.dispose();
    }, runs, warmup);
    Object.assign(result, { bwd_ms: bwd.median, bwd_best_ms: bwd.best, bwd_cpu_ms: bwd.cpu_median });
    out.dispose();
    lse.dispose();
    scores?.dispose();
  }
  for (const a of [q, k, v, g]) a.dispose();
  return result;
}

/**
 * Fused variants beside the explicit path (matmul with the 1/√D scale in its store → softmax → matmul, through autograd), all in one
 * process at one shape, timed the same way (bench/timing.ts: GPU timestamps where available, runs
 * interleaved variant by variant). Returns forward and forward+backward ms per path and the ratios
 * explicit / fused (> 1: the fused kernel is faster).
 */
export async function benchAttentionCompare(opts: BenchAttentionOptions & { variants?: string[] } = {}): Promise<object[]> {
  await initGpu();
  const { scope } = await import('../src/kernels/memory.js');
  const { timeRuns } = await import('./timing.js');
  const { fusedVsExplicitError, attentionStep, attentionPeakMemory } = await import('./attention_unfused.js');
  const { isSoftwareAdapter } = await import('../src/kernels/device.js');
  // One image on a CPU adapter, a training batch of 32 on a GPU (as the suite's attention row).
  const B = opts.batch ?? (isSoftwareAdapter() ? 1 : 32), H = opts.heads ?? 12, N = opts.seq ?? 197, D = opts.dim ?? 64;
  const runs = opts.runs ?? 3;
  const arrays = [1, 2, 3, 4].map((s) => GpuArray.fromData(randomArray(B * H * N * D, s), [B, H, N, D], 'benchAttention'));
  const [q0, k0, v0, g0] = arrays;
  const paths = ['explicit', ...(opts.variants ?? ['rows', 'blocked'])];
  const forward = (path: string, grad: boolean) => attentionStep(path, [q0, k0, v0], grad ? g0 : null);
  const rows: Record<string, unknown>[] = [];
  for (const path of paths) {
    if (path !== 'explicit') {
      // Checked against the explicit path before it is timed (the suite's rule: 1e-4 of the largest value, ~100× the
      // expected f32 difference between the two summation orders); a wrong or unsupported variant is a row, not a time.
      let err: number;
      try {
        err = await fusedVsExplicitError({ batch: B, heads: H, seq: N, dim: D, variant: path });
      } catch (e) {
        rows.push({ path, adapter: gpu().adapterKey, shape: `B${B} H${H} N${N} D${D}`, note: `not timed: ${(e as Error).message}` });
        continue;
      }
      if (!(err <= 1e-4)) {
        rows.push({ path, adapter: gpu().adapterKey, shape: `B${B} H${H} N${N} D${D}`, max_rel_error: err, note: 'not timed: differs from the explicit path by more than 1e-4 of the largest value' });
        continue;
      }
    }
    const c0 = performance.now();
    scope(() => forward(path, true));
    await sync();
    const firstMs = performance.now() - c0;  // compiles the pipelines (or finds them in the shader cache)
    const fwd = await timeRuns(() => scope(() => forward(path, false)), { runs });
    const both = await timeRuns(() => scope(() => forward(path, true)), { runs });
    const mem = await attentionPeakMemory(path === 'explicit' ? 'explicit' : 'fused', { batch: B, heads: H, seq: N, dim: D, ...(path === 'explicit' ? {} : { variant: path }) });
    rows.push({
      path, adapter: gpu().adapterKey, shape: `B${B} H${H} N${N} D${D}`, first_ms: Math.round(firstMs), fwd_ms: fwd.gpuMs ?? fwd.wallMs, fwd_bwd_ms: both.gpuMs ?? both.wallMs, clock: fwd.clock,
      fwd_mib: mem.fwd_bytes / 2 ** 20, fwd_bwd_mib: mem.fwd_bwd_bytes / 2 ** 20,
    });
  }
  const e = rows[0];
  for (const r of rows) {
    if (r.fwd_ms === undefined) continue;
    r.fwd_speedup = Math.round(((e.fwd_ms as number) / (r.fwd_ms as number)) * 100) / 100;
    r.fwd_bwd_speedup = Math.round(((e.fwd_bwd_ms as number) / (r.fwd_bwd_ms as number)) * 100) / 100;
    // memory: explicit / fused (> 1: the fused path needs less)
    r.fwd_bwd_mem_ratio = Math.round(((e.fwd_bwd_mib as number) / (r.fwd_bwd_mib as number)) * 100) / 100;
  }
  for (const a of arrays) a.dispose();
  return rows;
}

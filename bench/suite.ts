// The benchmark suite: runs the chosen benchmarks on the current adapter, prints a table, and
// records JSON, a markdown table and a chart under bench/results/<adapter>.{json,md,png}.
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gpu, initGpu, isSoftwareAdapter } from '../src/kernels/device.js';
import { measureRoofline, type Roofline } from './roofline.js';
import { fmtNum } from './format.js';

export const BENCHMARKS = ['matmul', 'softmax', 'layernorm', 'gelu', 'attention', 'vit', 'train'] as const;

export type BenchName = (typeof BENCHMARKS)[number];

/** One line of results: a measured number, and where it stands against the adapter's peak and peers. */
export interface BenchRow {
  bench: string;
  case: string;
  variant: string;
  metric: string;
  value: number;
  unit: string;
  /** Share of the measured roofline peak (compute for GFLOP/s, bandwidth for GB/s). */
  pctPeak?: number;
  /** A peer measured in the same run, and our value ÷ theirs (>1: we are faster). */
  peer?: string;
  peerValue?: number;
  ratio?: number;
  note?: string;
}

export interface SuiteOptions {
  quick?: boolean;
  runs?: number;
  /** Include peers (tfjs, ONNX Runtime, PyTorch) when installed. */
  peers?: boolean;
}

type Obj = Record<string, unknown>;
const num = (o: Obj, k: string) => (typeof o[k] === 'number' ? (o[k] as number) : NaN);

/**
 * Suite rows for the row-kernel variants (rowCandidates: team sizes, one subgroup per row) of softmax or layernorm at
 * one shape, alternated in one process and each checked against float64 first: what the default leaves. A variant that
 * fails its check is a row saying so, not a stop. The suite adds them on GPUs, beside the default's row.
 */
export async function rowVariantRows(op: 'softmax' | 'layernorm', r: number, c: number, o: { runs: number; pctB: (g: number) => number; variants?: string[] }): Promise<BenchRow[]> {
  const { compareRowVariants, rowCandidates } = await import('./rows.js');
  const res = await compareRowVariants({ op, rows: r, cols: c, variants: o.variants ?? rowCandidates(), runs: o.runs, keepGoing: true });
  const out: BenchRow[] = [];
  for (const x of res.results) {
    out.push({ bench: op, case: `${r}×${c} forward`, variant: x.plan, metric: 'bandwidth', value: x.fwd_gbps, unit: 'GB/s', pctPeak: o.pctB(x.fwd_gbps) });
    out.push({ bench: op, case: `${r}×${c} backward`, variant: x.plan, metric: 'bandwidth', value: x.bwd_gbps, unit: 'GB/s', pctPeak: o.pctB(x.bwd_gbps) });
  }
  for (const f of res.failed) out.push({ bench: op, case: `${r}×${c} forward and backward`, variant: f.variant, metric: 'error', value: NaN, unit: '', note: `not timed: ${f.error}` });
  return out;
}

async function runOne(name: BenchName, o: SuiteOptions, roof: Roofline): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  const pctF = (g: number) => (100 * g) / roof.peakGflops;
  const pctB = (g: number) => (100 * g) / roof.peakGBs;
  // On GPUs: the other row-kernel variants at the same shape (rowVariantRows).
  const rowVariants = async (op: 'softmax' | 'layernorm', r: number, c: number) => {
    if (!isSoftwareAdapter() && !o.quick) rows.push(...(await rowVariantRows(op, r, c, { runs: o.runs ?? 5, pctB })));
  };
  switch (name) {
    case 'matmul': {
      const { benchMatmul, compareMatmulVariants } = await import('./matmul.js');
      const { MATMUL_VARIANTS } = await import('../src/kernels/matmul.js');
      // 1024³ is ~1 s per product on a CPU adapter; a GPU needs 4096³ (137 GFLOP) to leave launch overhead behind.
      const software = isSoftwareAdapter();
      const size = o.quick ? 512 : software ? 1024 : 4096;
      const { matmulVariantFor, GPU_MATMUL_SHAPES } = await import('../src/kernels/autotune.js');
      // The library's variant on this adapter (the table's, or a tuned one such as 'subgroup@2x4/0x4') is always
      // among them; tfjs runs beside it.
      const libraryVariant = matmulVariantFor(roof.adapter);
      const variants = [...new Set([...(software ? MATMUL_VARIANTS : [...MATMUL_VARIANTS, ...GPU_MATMUL_SHAPES]), libraryVariant])].filter(
        (v) => !(v === 'naive' && !o.quick && software), // ~minutes at 1024³ on a CPU
      );
      // Every variant in alternating rounds (compareMatmulVariants), not one after another: on the H200 (2026-11-26) the
      // same kernel on the same product read 4× apart when timed minutes apart in one suite (tiled-vec4 at 4096³: 8.6
      // and 35 TFLOP/s), the library's row matching the tune and the training profile and the others not.
      const cmp = await compareMatmulVariants({ m: size, n: size, k: size, variants, runs: o.runs ?? 3 });
      const gpuClock = cmp.clock.startsWith('timestamp');
      for (const c of cmp.rows) {
        // tfjs beside the library's variant: wall-clock runs with the read-back of C on both sides (tfjs has no GPU timer)
        const r = o.peers !== false && c.variant === libraryVariant ? ((await benchMatmul({ m: size, n: size, k: size, variant: c.variant, runs: o.runs ?? 3, peers: true })) as Obj) : undefined;
        const peer = r?.tfjs as Obj | undefined;
        const wall = r ? num(r, 'gflops') : NaN;
        rows.push({
          bench: 'matmul', case: `${size}³`, variant: c.variant, metric: gpuClock ? 'throughput (GPU time)' : 'throughput (wall clock)', value: c.gflops, unit: 'GFLOP/s', pctPeak: pctF(c.gflops),
          ...(peer && typeof peer.gflops === 'number'
            ? { peer: 'tfjs-backend-webgpu', peerValue: peer.gflops as number, ratio: wall / (peer.gflops as number), note: `ratio from wall-clock runs incl. read-back of C on both sides: ours ${fmtNum(wall)} GFLOP/s` }
            : {}),
        });
      }
      // On GPUs: the products vit_b_16's MLP layer runs at batch 32 (6304 rows), in its three forms — forward x·Wᵀ,
      // backward dY·W and dYᵀ·X — for the library's variant, the other GPU families, the plain-layout variants
      // (transposed operand copied, then the plain product; the copy's pass is in the time) and the split-K ones (where
      // they split: dYᵀ·X and the 768-wide dY·W): whether the transposed forms keep the plain product's rate (a
      // Linear layer never runs the plain 4096³ form above). ~30 GFLOP each, the variants alternated per product.
      if (!software && !o.quick) {
        const { linearProducts, productLabel, GPU_PLAIN_CANDIDATES, GPU_SPLIT_K_CANDIDATES, matmulVariantForProduct } = await import('../src/kernels/autotune.js');
        const { parseMatmulVariant, splitKOf, splitKPlan } = await import('../src/kernels/matmul.js');
        const forms = linearProducts(32 * 197, 768, 3072, true);
        // The library's variant for each form (a tune can choose one per form) and the other GPU families.
        const libraries = forms.map((p) => matmulVariantForProduct(roof.adapter, !!p.transA, !!p.transB, p.k));
        const all = [...new Set([...libraries, 'blocked-vec4', 'tiled', 'tiled-vec4', ...GPU_PLAIN_CANDIDATES, ...GPU_SPLIT_K_CANDIDATES])];
        for (const [i, p] of forms.entries()) {
          const library = libraries[i];
          // a plain-layout variant is its base kernel on the plain product, a split-K one where it does not split
          // (splitKPlan: enough workgroups already): not timed there
          const vs = all.filter((v) => v === library || ((p.transA || p.transB || !parseMatmulVariant(v).plain) && (!splitKOf(v) || splitKPlan(v, p.m, p.n, p.k, p.transA, p.transB))));
          const c = await compareMatmulVariants({ m: p.m, n: p.n, k: p.k, transA: p.transA, transB: p.transB, variants: vs, runs: o.runs ?? 3 });
          for (const r of c.rows) {
            rows.push({ bench: 'matmul', case: `vit_b_16 MLP b32: ${productLabel(p)}`, variant: r.variant === library ? `${r.variant} (library)` : r.variant, metric: c.clock.startsWith('timestamp') ? 'throughput (GPU time)' : 'throughput (wall clock)', value: r.gflops, unit: 'GFLOP/s', pctPeak: pctF(r.gflops) });
          }
        }
      }
      break;
    }
    case 'softmax': {
      const { benchSoftmax } = await import('./softmax.js');
      // ViT-B/16 attention rows: 2 images' on a CPU adapter; a training batch of 32 on a GPU (2 images' 3.7 MB is a
      // few microseconds there: launch latency, not bandwidth).
      const shape = isSoftwareAdapter() || o.quick ? {} : { rows: 32 * 12 * 197, cols: 197 };
      const r = (await benchSoftmax({ runs: o.runs ?? 5, peers: o.peers !== false, ...shape })) as Obj;
      const variant = `${r.plan} (default)`;
      for (const dir of ['forward', 'backward'] as const) {
        const g = num((r[dir] ?? {}) as Obj, 'gbps');
        const peer = dir === 'forward' ? (r.tfjs as Obj | undefined) : undefined;
        const wall = r.forward_wall as Obj | undefined;
        rows.push({
          bench: 'softmax', case: `${r.rows}×${r.cols} ${dir}`, variant, metric: 'bandwidth', value: g, unit: 'GB/s', pctPeak: pctB(g),
          ...(peer && typeof peer.gbps === 'number' && wall
            ? { peer: 'tfjs-backend-webgpu', peerValue: peer.gbps as number, ratio: num(wall, 'gbps') / (peer.gbps as number), note: `ratio from wall-clock runs incl. read-back of y on both sides: ours ${fmtNum(num(wall, 'gbps'))} GB/s` }
            : peer && typeof peer.error === 'string' ? { note: `tfjs-backend-webgpu peer did not run: ${peer.error}` } : {}),
        });
      }
      await rowVariants('softmax', r.rows as number, r.cols as number);
      break;
    }
    case 'layernorm': {
      const { benchLayerNorm } = await import('./layernorm.js');
      // ViT-B/16's token rows: 8 images' on a CPU adapter, a batch of 32 on a GPU.
      const shape = isSoftwareAdapter() || o.quick ? {} : { rows: 32 * 197, cols: 768 };
      const r = (await benchLayerNorm({ runs: o.runs ?? 5, ...shape })) as Obj;
      const variant = `${r.plan} (default)`;
      for (const dir of ['forward', 'backward'] as const) {
        const g = num((r[dir] ?? {}) as Obj, 'gbps');
        rows.push({ bench: 'layernorm', case: `${r.rows}×${r.cols} ${dir}`, variant, metric: 'bandwidth', value: g, unit: 'GB/s', pctPeak: pctB(g) });
      }
      await rowVariants('layernorm', r.rows as number, r.cols as number);
      break;
    }
    case 'gelu': {
      const { benchGelu } = await import('./gelu.js');
      const r = await benchGelu({ n: o.quick ? 1 << 18 : undefined, runs: o.runs ?? 5 });
      rows.push({ bench: 'gelu', case: `n=${r.n} fwd`, variant: 'default', metric: 'bandwidth', value: r.fwd_gbs, unit: 'GB/s', pctPeak: pctB(r.fwd_gbs) });
      rows.push({ bench: 'gelu', case: `n=${r.n} bwd`, variant: 'default', metric: 'bandwidth', value: r.bwd_gbs, unit: 'GB/s', pctPeak: pctB(r.bwd_gbs) });
      break;
    }
    case 'attention': {
      const { benchAttentionPath, fusedVsExplicitError } = await import('./attention_unfused.js');
      const { defaultAttentionVariant, ATTENTION_VARIANTS } = await import('../src/kernels/attention.js');
      // ViT-B/16 attention: 12 heads, 197 tokens, head dim 64; batch 1 on a CPU adapter; on a GPU a training batch of
      // 32, then one image (the web demo's prediction: a few small launches, where fusing saves launches rather
      // than memory traffic).
      const software = isSoftwareAdapter();
      // Which row is what a model runs by default at this shape: the attention choice per mode (on NVIDIA flash-ds in
      // training, flash in inference; vit/attentionTuning.ts), else the fused kernels' default variant.
      const { defaultAttentionChoice } = await import('../src/vit/attentionTuning.js');
      const tag = (variant: string): string => {
        const modes = (['train', 'infer'] as const).filter((m) => {
          const c = defaultAttentionChoice(197, 64, m);
          return c.path === 'fused' && (c.variant ?? defaultAttentionVariant()) === variant;
        });
        if (modes.length === 2) return ' (default)';
        if (modes.length === 1) return ` (default in ${modes[0] === 'train' ? 'training' : 'inference'})`;
        return variant === defaultAttentionVariant() ? ' (default fused)' : '';
      };
      for (const batch of software ? [1] : [32, 1]) {
        const shape = { batch, heads: 12, seq: o.quick ? 65 : 197, dim: 64 };
        // The explicit path and each variant alternate in rounds (one timed run each, medians): timed one after the
        // other, the ratio moved between 0.9× and 1.7× from run to run on this noisy 2-core machine.
        const rounds = o.runs ?? 3;
        const median = (a: number[]) => [...a].sort((x, y) => x - y)[a.length >> 1];
        const c = `B${batch} H12 N${shape.seq} D64`;
        // The default fused variant on a CPU adapter (the others take seconds to compile there); every variant on a GPU.
        for (const variant of software ? [defaultAttentionVariant()] : [...ATTENTION_VARIANTS]) {
          const v = `fused ${variant}${tag(variant)}`;
          // Checked against the explicit path first (f32, different summation orders: 1e-4 of the largest value is
          // ~100× their expected difference and far below any indexing or softmax mistake); a failure is a row, not a stop.
          let err: number;
          try {
            err = await fusedVsExplicitError({ ...shape, variant });
          } catch (e) {
            rows.push({ bench: 'attention', case: `${c} forward and backward`, variant: v, metric: 'error', value: NaN, unit: '', note: `not timed: ${(e as Error).message}` });
            continue;
          }
          if (!(err <= 1e-4)) {
            rows.push({ bench: 'attention', case: `${c} forward and backward`, variant: v, metric: 'error', value: err, unit: 'rel', note: 'not timed: out, dq, dk or dv differs from the explicit path by more than 1e-4 of its largest value' });
            continue;
          }
          const t = { ef: [] as number[], eb: [] as number[], ff: [] as number[], fb: [] as number[] };
          for (let r = 0; r < rounds; r++) {
            const e = await benchAttentionPath('explicit', { ...shape, runs: 1 });
            const f = await benchAttentionPath('fused', { ...shape, variant, runs: 1 });
            t.ef.push(e.fwd_ms);
            t.eb.push(e.fwd_bwd_ms);
            t.ff.push(f.fwd_ms);
            t.fb.push(f.fwd_bwd_ms);
          }
          const [ef, eb, ff, fb] = [t.ef, t.eb, t.ff, t.fb].map(median);
          const note = `explicit and fused alternated in ${rounds} rounds, medians`;
          rows.push({ bench: 'attention', case: `${c} forward`, variant: v, metric: 'time', value: ff, unit: 'ms', peer: 'explicit (matmul→softmax→matmul)', peerValue: ef, ratio: ef / ff, note });
          rows.push({ bench: 'attention', case: `${c} forward+backward`, variant: v, metric: 'time', value: fb, unit: 'ms', peer: 'explicit (matmul→softmax→matmul)', peerValue: eb, ratio: eb / fb, note });
        }
      }
      // What fusing saves in memory: the peak GPU memory of a forward+backward above q, k, v and the output gradient
      // (ratio explicit / fused: > 1, the fused path needs less)
      // (one untimed run per path; the same on every adapter for the same kernels), at the timed shape and at 577
      // tokens (ViT-B/16 at 384 px, where the N² tensors are 9× the size of q) — every variant on a GPU, on a CPU
      // adapter its default and `flash` (the one that keeps nothing N²-sized).
      const { attentionPeakMemory } = await import('./attention_unfused.js');
      const memBatch = software ? 1 : 32;
      for (const seq of o.quick ? [65, 97] : [197, 577]) {
        const shape = { batch: memBatch, heads: 12, seq, dim: 64 };
        const explicit = await attentionPeakMemory('explicit', shape);
        for (const variant of software || seq !== 197 ? [...new Set([defaultAttentionVariant(), 'flash'])] : [...ATTENTION_VARIANTS]) {
          const v = `fused ${variant}${tag(variant)}`;
          const c = `B${memBatch} H12 N${seq} D64 peak memory, forward+backward`;
          try {
            const f = await attentionPeakMemory('fused', { ...shape, variant });
            const MiB = 2 ** 20;
            rows.push({
              bench: 'attention', case: c, variant: v, metric: 'peak memory', value: f.fwd_bwd_bytes / MiB, unit: 'MiB', peer: 'explicit (matmul→softmax→matmul)', peerValue: explicit.fwd_bwd_bytes / MiB, ratio: explicit.fwd_bwd_bytes / f.fwd_bwd_bytes,
              note: `${v}: forward alone (inference) ${fmtNum(f.fwd_bytes / MiB)} MiB, explicit ${fmtNum(explicit.fwd_bytes / MiB)} MiB`,
            });
          } catch (e) {
            rows.push({ bench: 'attention', case: c, variant: v, metric: 'peak memory', value: NaN, unit: '', note: `not measured: ${(e as Error).message}` });
          }
        }
      }
      break;
    }
    case 'vit': {
      const { benchVit } = await import('./vit.js');
      // One image on a CPU adapter; a batch of 32 on a GPU (one image would time launch overhead).
      const r = (await benchVit({ batch: isSoftwareAdapter() ? 1 : 32, runs: o.runs ?? 2, peers: o.peers !== false } as never)) as Obj;
      const s = num(r, 'seconds_per_image');
      const peers = (r.peers ?? {}) as Record<string, number | string>;
      const ortGpu = peers.onnxruntime_webgpu_s;
      const ortCpu = peers.onnxruntime_cpu_s;
      const torch = Object.entries(peers).find(([k, v]) => k.startsWith('PyTorch') && typeof v === 'number') as [string, number] | undefined;
      // The row's peer: ONNX Runtime's WebGPU EP on the same adapter when measured, else PyTorch on the CPU;
      // the others go in the note.
      const [peerName, peerValue] = typeof ortGpu === 'number' ? ['ONNX Runtime WebGPU EP', ortGpu] : (torch ?? []);
      const others = [
        ...(typeof ortGpu === 'number' && torch ? [`${torch[0]} ${fmtNum(torch[1])} s/image (×${(torch[1] / s).toFixed(2)})`] : []),
        ...(typeof ortCpu === 'number' ? [`ONNX Runtime CPU EP ${fmtNum(ortCpu)} s/image (×${(ortCpu / s).toFixed(2)})`] : []),
        ...(typeof ortGpu !== 'number' && typeof peers.onnxruntime_note === 'string' ? [`ONNX Runtime: ${peers.onnxruntime_note}`] : []),
      ];
      rows.push({
        bench: 'vit', case: `${r.config ?? 'vit_b_16'} forward, batch ${r.batch}`, variant: String(r.attention ?? 'fused'), metric: 'time/image', value: s, unit: 's/image',
        ...(peerName ? { peer: peerName, peerValue, ratio: (peerValue as number) / s } : {}),
        ...(others.length ? { note: others.join('; ') } : {}),
      });
      break;
    }
    case 'train': {
      const { benchTrain } = await import('./train.js');
      // The fashion-mnist model everywhere (PyTorch CPU beside it); on a GPU also a vit_b_16 step at batch 32,
      // beside PyTorch on CUDA (fp32, TF32 off) when torch sees a GPU there.
      const software = isSoftwareAdapter();
      for (const model of software ? ['fmnist'] : ['fmnist', 'vit_b_16']) {
        const r = (await benchTrain({ model, runs: o.runs ?? 2, peers: o.peers !== false, peerDevice: software ? 'cpu' : 'auto' })) as Obj;
        const v = num(r, 'images_per_s');
        const pt = r.pytorch_images_per_s;
        const host = r.host_ms_per_step;
        rows.push({
          bench: 'train', case: String(r.config ?? ''), variant: 'default', metric: 'throughput', value: v, unit: 'img/s',
          ...(typeof pt === 'number' ? { peer: `PyTorch ${r.pytorch_device ?? 'CPU'}`, peerValue: pt, ratio: v / pt } : {}),
          ...(typeof host === 'number' ? { note: `host recording ${host.toFixed(1)} ms of a ${((num(r, 'seconds_per_step')) * 1000).toFixed(1)} ms step` } : {}),
        });
        // GPU memory of the run (weights, AdamW state, a step's activations and gradients), beside PyTorch's on CUDA
        const mem = r.peak_mib;
        const ptMem = r.pytorch_peak_mib;
        if (typeof mem === 'number') {
          rows.push({
            bench: 'train', case: `${String(r.config ?? '')} peak memory`, variant: 'default', metric: 'peak memory', value: mem, unit: 'MiB',
            ...(typeof ptMem === 'number' ? { peer: `PyTorch ${r.pytorch_device ?? ''} (max_memory_allocated)`, peerValue: ptMem, ratio: ptMem / mem } : {}),
          });
        }
      }
      // The trainer's input pipeline (uint8 images → flip + TrivialAugmentWide + normalisation on the CPU, ~40 ms for 32
      // images at 224 px on this project's 2-core machine): the next batch made while the GPU runs the step, as `celluscan
      // train` does, beside batches made in turn. At 224 px, where it costs something: vit_b_16 on a GPU; on a CPU adapter
      // a 2-layer ViT with patch 32 (50 tokens), whose step is short enough to time here.
      const { FMNIST_VIT } = await import('../src/train/presets.js');
      const small = { ...FMNIST_VIT, image_size: 224, patch_size: 32, num_layers: 2, num_heads: 2, hidden_dim: 64, mlp_dim: 128, num_classes: 14 };
      const pipe = software ? { config: small } : { model: 'vit_b_16' };
      // Alternating rounds (one run each), the best of each: this machine's speed drifts between consecutive runs.
      let serial = 0;
      let ahead = 0;
      let label = '';
      for (let round = 0; round < (o.runs ?? 2); round++) {
        serial = Math.max(serial, num((await benchTrain({ ...pipe, runs: 1, input: 'trivialaugment', overlap: false })) as Obj, 'images_per_s'));
        const r = (await benchTrain({ ...pipe, runs: 1, input: 'trivialaugment', overlap: true })) as Obj;
        ahead = Math.max(ahead, num(r, 'images_per_s'));
        label = String(r.config ?? '');
      }
      rows.push({
        bench: 'train', case: `${label} + TrivialAugmentWide input`, variant: 'next batch made during the step (the trainer)',
        metric: 'throughput', value: ahead, unit: 'img/s', peer: 'batches made in turn', peerValue: serial, ratio: ahead / serial,
      });
      break;
    }
  }
  return rows;
}

/**
 * Runs the named benches in order. `afterEach` sees the result so far after every bench (the CLI records it then, so a
 * run stopped part-way — a time limit on a borrowed GPU — keeps what it measured).
 */
export async function runSuite(
  names: readonly BenchName[],
  o: SuiteOptions = {},
  log: (s: string) => void = () => {},
  afterEach?: (soFar: SuiteResult) => Promise<void>,
) {
  await initGpu();
  const roof = await measureRoofline({ quick: o.quick });
  log(`adapter ${gpu().adapterKey}: measured peak ${roof.peakGflops.toFixed(1)} GFLOP/s, ${roof.peakGBs.toFixed(2)} GB/s (${roof.clock})`);
  const rows: BenchRow[] = [];
  const errors: { bench: string; error: string }[] = [];
  for (const n of names) {
    log(`running ${n} …`);
    try {
      const r = await runOne(n, o, roof);
      rows.push(...r);
      for (const row of r) log('  ' + formatRow(row));
    } catch (e) {
      errors.push({ bench: n, error: (e as Error).message });
      if (process.argv.includes("--debug")) console.error((e as Error).stack);
      log(`  ${n}: not measured: ${(e as Error).message}`);
    }
    if (afterEach) await afterEach(snapshot());
  }
  return snapshot();
  function snapshot(): SuiteResult {
    return { adapter: gpu().adapterKey, adapterInfo: gpu().info, date: new Date().toISOString(), roofline: roof, rows: [...rows], errors: [...errors] };
  }
}

/** A recorded run: the suite's in Node, or `bench browser`'s in a page (then `runtime` names the browser). */
export interface SuiteResult {
  adapter: string;
  adapterInfo: Pick<GPUAdapterInfo, 'vendor' | 'architecture' | 'device' | 'description'>;
  /** Where the kernels ran when not in Node through Dawn, e.g. 'chromium 156.0.8078.108 (headless)'. */
  runtime?: string;
  date: string;
  roofline: Roofline;
  rows: BenchRow[];
  errors: { bench: string; error: string }[];
  /**
   * In a recorded file that merges runs (recordSuite keeps the rows of benches a later run did not measure): the
   * earlier runs whose rows are still in it, each with its date, its roofline (their rows' % of peak is against it)
   * and its benches. `date` and `roofline` above are the latest run's.
   */
  earlier?: { date: string; roofline: Roofline; benches: string[] }[];
}


export function formatRow(r: BenchRow): string {
  const peer = r.peer ? `   vs ${r.peer}: ${fmtNum(r.peerValue)} ${r.unit} (×${fmtNum(r.ratio)})` : '';
  const pct = r.pctPeak !== undefined ? ` (${fmtNum(r.pctPeak, 1)}% of peak)` : '';
  return `${r.bench} ${r.case} [${r.variant}]: ${fmtNum(r.value)} ${r.unit}${pct}${peer}${r.note ? ` — ${r.note}` : ""}`;
}

export function markdownTable(s: SuiteResult): string {
  const lines = [
    `# Benchmarks on ${s.adapter}${s.runtime ? ` in ${s.runtime}` : ''}`,
    '',
    `Adapter: ${s.adapterInfo.description || s.adapterInfo.device} (${s.adapterInfo.vendor}, ${s.adapterInfo.architecture}). Recorded ${s.date.slice(0, 10)}.`,
    `Measured roofline: ${fmtNum(s.roofline.peakGflops)} GFLOP/s, ${fmtNum(s.roofline.peakGBs)} GB/s (${s.roofline.clock}).`,
    ...(s.earlier?.length
      ? [
          `Rows from earlier runs (each row's % of peak is against its own run's roofline): ` +
            s.earlier.map((e) => `${e.benches.join(', ')} on ${e.date.slice(0, 16).replace('T', ' ')} UTC, roofline ${fmtNum(e.roofline.peakGflops)} GFLOP/s, ${fmtNum(e.roofline.peakGBs)} GB/s`).join('; ') +
            `; the rest on ${s.date.slice(0, 16).replace('T', ' ')} UTC with the roofline above.`,
        ]
      : []),
    '',
    '| bench | case | variant | value | % of peak | peer (same run) | ratio (×, >1 = we are faster; peak memory: we need less) |',
    '| --- | --- | --- | --- | --- | --- | --- |',
    ...s.rows.map((r) => `| ${r.bench} | ${r.case} | ${r.variant} | ${fmtNum(r.value)} ${r.unit} | ${fmtNum(r.pctPeak, 1)} | ${r.peer ? `${r.peer}: ${fmtNum(r.peerValue)} ${r.unit}` : ''} | ${fmtNum(r.ratio)} |`),
  ];
  const notes = s.rows.filter((r) => r.note);
  if (notes.length) lines.push('', 'Other peers in the same runs:', ...notes.map((r) => `- ${r.bench} ${r.case}: ${r.note}`));
  if (s.errors.length) lines.push('', 'Not measured:', ...s.errors.map((e) => `- ${e.bench}: ${e.error}`));
  return lines.join('\n') + '\n';
}

export const resultsDir = join(dirname(fileURLToPath(import.meta.url)), 'results');

function atomicWrite(path: string, data: string | Uint8Array): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, data);
  renameSync(tmp, path);
}

/**
 * The chart's bars: one per row with a peer ratio of speed (not of peak memory). Rows that share a case (several fused attention variants against
 * one explicit path) are told apart by their variant; with one label Vega-Lite stacks them into one bar as long as
 * their sum (the H200 chart's attention bar was 0.57 for three variants of ~0.2 each).
 */
export function chartData(rows: BenchRow[]): { what: string; ratio: number; peer?: string }[] {
  // (a speed chart: memory rows' ratios are in the table, not among its bars)
  const withRatio = rows.filter((r) => r.ratio !== undefined && r.metric !== 'peak memory');
  const label = (r: BenchRow) => `${r.bench} ${r.case}`;
  const shared = new Set(withRatio.map(label).filter((w, i, all) => all.indexOf(w) !== i));
  return withRatio.map((r) => ({ what: shared.has(label(r)) ? `${label(r)} [${r.variant}]` : label(r), ratio: r.ratio!, peer: r.peer }));
}

/**
 * Write <dir>/<name>.json (merged with the rows of benches this run did not measure), .md and .png; `dir` defaults to
 * bench/results, `name` to the adapter's key.
 */
export async function recordSuite(s: SuiteResult, o: { dir?: string; name?: string } = {}): Promise<string[]> {
  const dir = o.dir ?? resultsDir;
  mkdirSync(dir, { recursive: true });
  const base = join(dir, o.name ?? s.adapter);
  let merged = s;
  if (existsSync(`${base}.json`)) {
    try {
      const old = JSON.parse(readFileSync(`${base}.json`, 'utf8')) as SuiteResult;
      const fresh = new Set(s.rows.map((r) => r.bench));
      const kept = old.rows.filter((r) => !fresh.has(r.bench));
      // which earlier run each kept bench came from: the old file's own earlier runs, else its latest run
      const runs = [...(old.earlier ?? []), { date: old.date, roofline: old.roofline, benches: [] as string[] }];
      const runOf = (bench: string) => runs.find((e) => e.benches.includes(bench)) ?? runs[runs.length - 1];
      const earlier = runs.map((e) => ({ ...e, benches: [...new Set(kept.map((r) => r.bench))].filter((b) => runOf(b) === e) })).filter((e) => e.benches.length);
      merged = { ...s, rows: [...kept, ...s.rows], errors: s.errors, ...(earlier.length ? { earlier } : {}) };
    } catch {
      // an unreadable old file is replaced
    }
  }
  atomicWrite(`${base}.json`, JSON.stringify(merged, null, 1) + '\n');
  atomicWrite(`${base}.md`, markdownTable(merged));
  const data = await writeSuiteChart(base, merged);
  return [`${base}.json`, `${base}.md`, ...(data.length ? [`${base}.png`] : [])];
}

/**
 * <base>.png: the speed ratios of a suite's rows against their peers (chartData); nothing where no row has a peer.
 * Returns the chart's bars. (Also re-renders a recorded JSON's chart: writeSuiteChart(base, JSON.parse(…)).)
 */
export async function writeSuiteChart(base: string, s: SuiteResult): Promise<ReturnType<typeof chartData>> {
  const { writeChartPng } = await import('../src/plot/chart.js');
  const data = chartData(s.rows);
  if (data.length) {
    await writeChartPng(`${base}.png`, {
      title: `CelluScan vs peers on ${s.adapter}${s.runtime ? ` in ${s.runtime.split(' (')[0]}` : ''} (same run; >1 = CelluScan faster)`,
      width: 520,
      height: { step: 22 },
      data: { values: data },
      layer: [
        { mark: 'bar', encoding: { y: { field: 'what', type: 'nominal', title: null, sort: null, axis: { labelLimit: 560 } }, x: { field: 'ratio', type: 'quantitative', title: 'speed ratio (×)' }, color: { field: 'peer', type: 'nominal', legend: { orient: 'bottom', columns: 1, labelLimit: 400 } } } },
        { mark: { type: 'rule', color: 'black', strokeDash: [4, 3] }, encoding: { x: { datum: 1 } } },
      ],
    } as never);
  }
  return data;
}

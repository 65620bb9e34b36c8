// The page side of `celluscan bench browser` (bench/browserMatmul.ts bundles it with esbuild and opens it in headless
// Chromium): matmul variants on the browser's WebGPU adapter (SwiftShader without a GPU), each checked against the
// float64 reference on the same operands before it is timed. Parameters come as JSON in the URL's hash; the result
// is left in window.__celluscanBench.
import { initGpu } from '../../src/kernels/device.js';
import { sync } from '../../src/kernels/encoder.js';
import { matmul, parseMatmulVariant, resolveMatmulKernel, variantForShape } from '../../src/kernels/matmul.js';
import { describeMatmulChoice, matmulChoice, matmulVariantFor, matmulVariantForProduct, restoreMatmulChoice, setMatmulVariant } from '../../src/kernels/autotune.js';
import { VIT_PRESETS, vitPreset, type VitPresetName } from '../../src/vit/config.js';
import { VisionTransformer } from '../../src/vit/model.js';
import { GpuArray, pool } from '../../src/kernels/memory.js';
import { randomArray, toleranceRatio } from '../../src/kernels/ref/math.js';
import { matmulRef, matmulTolerance } from '../../src/kernels/ref/matmul.js';
import { defaultAttentionChoice, describeAttentionChoice } from '../../src/vit/attentionTuning.js';
import { benchAttentionPath, fusedVsExplicitError } from '../attention_unfused.js';
import { measureRoofline, type Roofline } from '../roofline.js';
import { tfjsMatmul, type PeerResult } from '../tfjs-peer.js';

export interface BrowserBenchParams {
  shapes: { m: number; n: number; k: number; transA?: boolean; transB?: boolean }[];
  variants: string[];
  runs: number;
  /** Also time attention at [batch, heads, seq, dim]: the explicit path and these fused variants. */
  attention?: { batch: number; heads: number; seq: number; dim: number; variants: string[] };
  /** Also time a ViT preset's forward (random weights, 14 classes, host input to logits) with each matmul variant (none: the adapter's). */
  vit?: { config: string; batch: number; matmulVariants: string[] };
  /** Measure the adapter's compute and bandwidth peaks in the page first (bench/roofline.ts), for the "% of peak" column. */
  roofline?: boolean;
  /**
   * Time tfjs-backend-webgpu's matMul on each shape beside the library's own choice, both by wall clock per call
   * including the read-back (the only way tfjs can be timed), on the same operands, each checked first.
   */
  peers?: boolean;
}

/** One shape's peer comparison: tfjs and the library's choice, each timed per call with the read-back of C. */
export interface BrowserMatmulPeer {
  /** the variant the library chose for this product (its default, or a tuned one) and its rate timed as tfjs's is */
  ours: { variant: string; gflops?: number; error?: string };
  tfjs: PeerResult;
}

export interface BrowserAttentionRow {
  /** 'explicit' or a fused variant */
  path: string;
  fwdMs?: number;
  fwdBwdMs?: number;
  /** max difference from the explicit path over out, dq, dk, dv, relative to each one's largest magnitude */
  error?: number;
  failed?: string;
  /** 'timestamp-query' or 'wall-clock' */
  clock?: string;
}

export interface BrowserBenchCell {
  variant: string;
  /** The kernel family that ran (a vec4 variant falls back to scalar loads where they would be misaligned). */
  ran: string;
  gflops?: number;
  ms?: number;
  error?: string;
}

export interface BrowserBenchResult {
  adapter?: {
    key: string;
    description: string;
    features: string[];
    /** the library's variant for plain products, and its whole choice per transpose form (describeMatmulChoice) */
    defaultVariant: string;
    defaultChoice: string;
    vendor: string;
    architecture: string;
    device: string;
  };
  roofline?: Roofline;
  rows: { shape: string; cells: BrowserBenchCell[]; peer?: BrowserMatmulPeer }[];
  attention?: { shape: string; defaultChoice: { train: string; infer: string }; rows: BrowserAttentionRow[] };
  /** seconds per forward of the batch, per matmul variant (logits max |difference| from the first variant's) */
  vit?: { config: string; batch: number; attention: string; rows: { matmul: string; ran?: string; seconds?: number; logitsDiff?: number; failed?: string }[] };
  error?: string;
}

async function run(p: BrowserBenchParams): Promise<BrowserBenchResult> {
  if (p.vit && !(p.vit.config in VIT_PRESETS)) throw new RangeError(`unknown ViT preset '${p.vit.config}' (known: ${Object.keys(VIT_PRESETS).join(', ')})`);
  const g = await initGpu();
  const res: BrowserBenchResult = {
    adapter: {
      key: g.adapterKey,
      description: g.info.description,
      vendor: g.info.vendor,
      architecture: g.info.architecture,
      device: g.info.device,
      features: [...g.features].sort(),
      defaultVariant: matmulVariantFor(g.adapterKey),
      defaultChoice: describeMatmulChoice(g.adapterKey),
    },
    rows: [],
  };
  if (p.roofline) res.roofline = await measureRoofline();
  for (const s of p.shapes) {
    const { m, n, k, transA = false, transB = false } = s;
    const a = randomArray(m * k, 1);
    const b = randomArray(k * n, 2);
    const A = GpuArray.fromData(a, transA ? [k, m] : [m, k]);
    const B = GpuArray.fromData(b, transB ? [n, k] : [k, n]);
    const ref = matmulRef(a, A.shape, b, B.shape, { transA, transB });
    const cells: BrowserBenchCell[] = [];
    for (const variant of p.variants) {
      const call = () => matmul(A, B, { variant, transA, transB });
      try {
        const ran = resolveMatmulKernel(variant, m, n, k, transA, transB).family;
        const C = call();
        let got: Float32Array;
        try {
          got = await C.read();
        } finally {
          C.dispose();
        }
        if (!(toleranceRatio(got, ref, ...matmulTolerance(k)) <= 1)) {
          cells.push({ variant, ran, error: 'differs from the float64 reference' });
          continue;
        }
        // Warm-up by time: on SwiftShader a product's time per call falls by up to 2× over the first second or so of
        // work (2176×192×64 tB: 40–70 ms per call, then 27), so calls run for ≥ 500 ms (at least 2) first. A sync costs
        // ~3 ms in the page: enough calls per sync that a timed batch takes ≥ 30 ms (from the last warm-up call).
        let last = 0;
        for (let i = 0, w0 = performance.now(); i < 2 || performance.now() - w0 < 500; i++) {
          const t0 = performance.now();
          call().dispose();
          await sync();
          last = performance.now() - t0;
        }
        const reps = Math.max(1, Math.min(100, Math.ceil(30 / Math.max(0.01, last))));
        let best = Infinity;
        for (let r = 0; r < p.runs; r++) {
          const t1 = performance.now();
          for (let i = 0; i < reps; i++) call().dispose();
          await sync();
          best = Math.min(best, (performance.now() - t1) / reps);
        }
        cells.push({ variant, ran, ms: best, gflops: (2 * m * n * k) / best / 1e6 });
      } catch (e) {
        cells.push({ variant, ran: '?', error: (e as Error).message });
      }
    }
    let peer: BrowserMatmulPeer | undefined;
    if (p.peers) {
      // The library's choice for this product, timed as tfjs can only be: each call followed by the read-back of C.
      // as matmul() names it for this product: the form's variant fitted to the shape (a smaller subgroup blocking on
      // a small product), so the ratio goes to the cell that timed the same kernel
      const variant = variantForShape(matmulVariantForProduct(g.adapterKey, transA, transB, k), m, n);
      const ours: BrowserMatmulPeer['ours'] = { variant };
      try {
        const once = async () => {
          const C = matmul(A, B, { transA, transB });
          try {
            return await C.read();
          } finally {
            C.dispose();
          }
        };
        if (!(toleranceRatio(await once(), ref, ...matmulTolerance(k)) <= 1)) throw new Error('differs from the float64 reference');
        await once(); // a second warm-up, as tfjs gets two (the page has run this shape's variants for ≥ 500 ms each just before)
        let best = Infinity;
        for (let r = 0; r < p.runs; r++) {
          const t0 = performance.now();
          await once();
          best = Math.min(best, performance.now() - t0);
        }
        ours.gflops = (2 * m * n * k) / best / 1e6;
      } catch (e) {
        ours.error = (e as Error).message;
      }
      peer = { ours, tfjs: await tfjsMatmul({ m, n, k, transA, transB, a, b, ref, runs: p.runs }) };
    }
    A.dispose();
    B.dispose();
    res.rows.push({ shape: `${m}×${n}×${k}${transA ? ' tA' : ''}${transB ? ' tB' : ''}`, cells, ...(peer ? { peer } : {}) });
  }
  if (p.attention) {
    const { batch, heads, seq, dim, variants } = p.attention;
    const shape = { batch, heads, seq, dim, runs: p.runs };
    const rows: BrowserAttentionRow[] = [];
    for (const path of ['explicit', ...variants]) {
      try {
        // a fused variant must agree with the explicit path (f32, N = 197: differences ~1e-6 relative) before it is timed
        const error = path === 'explicit' ? undefined : await fusedVsExplicitError({ ...shape, variant: path });
        if (error !== undefined && !(error < 1e-4)) {
          rows.push({ path, error, failed: 'differs from the explicit path' });
          continue;
        }
        const r = await benchAttentionPath(path === 'explicit' ? 'explicit' : 'fused', { ...shape, variant: path === 'explicit' ? undefined : path });
        rows.push({ path, fwdMs: r.fwd_ms, fwdBwdMs: r.fwd_bwd_ms, error, clock: r.clock });
      } catch (e) {
        rows.push({ path, failed: (e as Error).message });
      }
    }
    res.attention = {
      shape: `B${batch} H${heads} N${seq} D${dim}`,
      defaultChoice: { train: describeAttentionChoice({ ...defaultAttentionChoice(seq, dim, 'train', g.adapterKey), source: 'default' }), infer: describeAttentionChoice({ ...defaultAttentionChoice(seq, dim, 'infer', g.adapterKey), source: 'default' }) },
      rows,
    };
  }
  if (p.vit) {
    pool.trim(); // the matmul and attention cases' buffers
    const { config, batch, matmulVariants } = p.vit;
    const model = new VisionTransformer(vitPreset(config as VitPresetName, { num_classes: 14 }), { init: 'random', seed: 1 }).eval();
    const S = model.config.image_size;
    const input = randomArray(batch * 3 * S * S, 7, -2, 2);
    const rows: NonNullable<BrowserBenchResult['vit']>['rows'] = [];
    let first: Float32Array | undefined;
    const saved = matmulChoice(g.adapterKey);
    try {
      // none named: the adapter's own choice, per form, as the library makes it (nothing overridden)
      // (the library's row is labelled with its whole choice: per form, and the default table's K rule)
      for (const v of matmulVariants.length ? matmulVariants : [describeMatmulChoice(g.adapterKey)]) {
        // the kernel the model's Linear forward (x·Wᵀ, hidden → hidden) runs with this variant
        const hidden = model.config.hidden_dim;
        const xw = matmulVariants.length ? v : matmulVariantForProduct(g.adapterKey, false, true, hidden);
        const ran = resolveMatmulKernel(xw, 197, hidden, hidden, false, true).family + (parseMatmulVariant(xw).plain ? ' (plain copy)' : '');
        try {
          if (matmulVariants.length) setMatmulVariant(g.adapterKey, v);
          const logits = await model.predictLogits(input, batch); // warm-up (compiles the pipelines)
          if (!logits.every(Number.isFinite)) {
            rows.push({ matmul: v, ran, failed: 'logits are not finite' });
            continue;
          }
          let diff: number | undefined;
          if (first) {
            diff = 0;
            for (let i = 0; i < logits.length; i++) diff = Math.max(diff, Math.abs(logits[i] - first[i]));
            // logits O(1) from f32 sums of ≤ 3072 terms per layer: kernels that group the sums differently agree to
            // ~1e-5; 1e-3 is a wrong result, not rounding
            if (!(diff <= 1e-3)) {
              rows.push({ matmul: v, ran, logitsDiff: diff, failed: `logits differ from ${p.vit.matmulVariants[0] ?? 'the first variant'}'s` });
              continue;
            }
          } else first = logits;
          let best = Infinity;
          for (let r = 0; r < Math.max(1, Math.min(p.runs, 2)); r++) {
            const t0 = performance.now();
            await model.predictLogits(input, batch);
            best = Math.min(best, (performance.now() - t0) / 1000);
          }
          rows.push({ matmul: v, ran, seconds: best, logitsDiff: diff });
        } catch (e) {
          rows.push({ matmul: v, ran, failed: (e as Error).message });
        }
      }
    } finally {
      restoreMatmulChoice(g.adapterKey, saved);
      model.dispose();
    }
    res.vit = { config, batch, attention: describeAttentionChoice(model.attentionChoice('infer')), rows };
  }
  return res;
}

const w = window as unknown as { __celluscanBench?: BrowserBenchResult };
run(JSON.parse(decodeURIComponent(location.hash.slice(1))) as BrowserBenchParams).then(
  (r) => (w.__celluscanBench = r),
  (e: Error) => (w.__celluscanBench = { rows: [], error: `${e.name}: ${e.message}` }),
);

// Attention maps: the class token's attention over the patches for every layer and head (explicit attention
// path), attention rollout (Abnar & Zuidema 2020), heat-map overlays, and head ablation's effect on the classes.
//
// Rollout: per layer, A = mean over heads of the attention probabilities [N, N]; Â = (A + I) with rows
// renormalised to sum to 1 (i.e. (A + I)/2); R = Â_L · … · Â_1; the class token's row of R, without its own
// column, is the map over the patches. For a model without a class token (pool 'mean') the mean over all query
// rows stands in for the class token's row.
// Pure apart from the GPU: the PNG encoding (pngjs) lives with the CLI's file writing in overlayPng().
import { noGrad, Tensor } from '../autograd/tensor.js';
import { scope } from '../kernels/memory.js';
import type { PreparedImage } from './image.js';
import { softmax, type LoadedModel } from './predict.js';

export interface AttentionResult {
  image: string;
  /** Patches per side. */
  grid: number;
  /** [layer][head]: grid·grid values (class token → patch attention, row-major over the patch grid). */
  cls: number[][][];
  /** [layer]: the mean over heads. */
  clsMean: number[][];
  /** grid·grid values, normalised to sum 1. */
  rollout: number[];
  logits: number[];
  probs: number[];
  /** Tokens per sequence (the patches, and the class token first where the model has one). */
  tokens: number;
  /** [layer]: the attention probabilities [heads, tokens, tokens] (row: query, column: key), as the model computed them. */
  layerProbs: Float32Array[];
}

/** One forward on the explicit path with every layer's probabilities; B = 1. */
export async function attentionMaps(lm: LoadedModel, img: PreparedImage, ablate?: readonly (readonly [number, number])[]): Promise<AttentionResult> {
  const c = lm.config;
  const S = c.image_size;
  const g = S / c.patch_size;
  const n = g * g;
  const hasCls = !!lm.model.class_token;
  const N = n + (hasCls ? 1 : 0);
  const H = c.num_heads;
  const { logits, probsPerLayer } = await noGrad(() =>
    scope(async () => {
      const r = lm.model.forward(Tensor.from(img.input, [1, 3, S, S]), { attention: 'explicit', returnAttention: true, ablate });
      const probsPerLayer: Float32Array[] = [];
      for (const a of r.attentions!) probsPerLayer.push(await a.read());
      return { logits: await r.logits.read(), probsPerLayer };
    }),
  );
  const cls: number[][][] = [];
  const clsMean: number[][] = [];
  let R: Float64Array | null = null; // rollout so far, [N, N]
  for (const P of probsPerLayer) {
    const heads: number[][] = [];
    const A = new Float64Array(N * N);
    for (let h = 0; h < H; h++) {
      const base = h * N * N;
      const row = new Array<number>(n);
      if (hasCls) for (let j = 0; j < n; j++) row[j] = P[base + 1 + j];
      else {
        for (let j = 0; j < n; j++) {
          let s = 0;
          for (let i = 0; i < N; i++) s += P[base + i * N + j];
          row[j] = s / N;
        }
      }
      heads.push(row);
      for (let i = 0; i < N * N; i++) A[i] += P[base + i] / H;
    }
    cls.push(heads);
    clsMean.push(Array.from({ length: n }, (_, j) => heads.reduce((s, r) => s + r[j], 0) / H));
    // Â = (A + I), rows renormalised.
    for (let i = 0; i < N; i++) {
      A[i * N + i] += 1;
      let s = 0;
      for (let j = 0; j < N; j++) s += A[i * N + j];
      for (let j = 0; j < N; j++) A[i * N + j] /= s;
    }
    R = R ? matmul64(A, R, N) : A;
  }
  const rollout = new Array<number>(n).fill(0);
  if (R) {
    if (hasCls) for (let j = 0; j < n; j++) rollout[j] = R[1 + j];
    else for (let j = 0; j < n; j++) for (let i = 0; i < N; i++) rollout[j] += R[i * N + j] / N;
    const s = rollout.reduce((a, b) => a + b, 0);
    if (s > 0) for (let j = 0; j < n; j++) rollout[j] /= s;
  }
  return { image: img.name, grid: g, cls, clsMean, rollout, logits: Array.from(logits), probs: softmax(logits), tokens: N, layerProbs: probsPerLayer };
}

function matmul64(a: Float64Array, b: Float64Array, N: number): Float64Array {
  const out = new Float64Array(N * N);
  for (let i = 0; i < N; i++) {
    for (let k = 0; k < N; k++) {
      const x = a[i * N + k];
      if (x === 0) continue;
      for (let j = 0; j < N; j++) out[i * N + j] += x * b[k * N + j];
    }
  }
  return out;
}

// ---- overlays ---------------------------------------------------------------------------------------

/** The 'hot' colormap: black → red → yellow → white, t in [0, 1] → [r, g, b] 0..255. */
export function heatColor(t: number): [number, number, number] {
  const x = Math.min(1, Math.max(0, t)) * 3;
  return [Math.min(1, x), Math.min(1, Math.max(0, x - 1)), Math.min(1, Math.max(0, x - 2))].map((v) => Math.round(v * 255)) as [number, number, number];
}

/**
 * RGBA pixels (size × size) of a patch map (grid × grid, min-max scaled to [0, 1], bilinearly upsampled)
 * coloured with heatColor and blended over the prepared image: out = (1 − α)·image + α·heat.
 */
export function overlayRgba(img: PreparedImage, map: readonly number[], grid: number, alpha = 0.5): Uint8Array {
  const S = img.size;
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of map) {
    lo = Math.min(lo, v);
    hi = Math.max(hi, v);
  }
  const span = hi > lo ? hi - lo : 1;
  const at = (gy: number, gx: number) => (map[Math.min(grid - 1, Math.max(0, gy)) * grid + Math.min(grid - 1, Math.max(0, gx))] - lo) / span;
  const out = new Uint8Array(S * S * 4);
  const cell = S / grid;
  for (let y = 0; y < S; y++) {
    const fy = (y + 0.5) / cell - 0.5;
    const y0 = Math.floor(fy);
    const wy = fy - y0;
    for (let x = 0; x < S; x++) {
      const fx = (x + 0.5) / cell - 0.5;
      const x0 = Math.floor(fx);
      const wx = fx - x0;
      const t = (1 - wy) * ((1 - wx) * at(y0, x0) + wx * at(y0, x0 + 1)) + wy * ((1 - wx) * at(y0 + 1, x0) + wx * at(y0 + 1, x0 + 1));
      const [r, g, b] = heatColor(t);
      const i = y * S + x;
      out[i * 4] = Math.round((1 - alpha) * img.rgb[i * 3] + alpha * r);
      out[i * 4 + 1] = Math.round((1 - alpha) * img.rgb[i * 3 + 1] + alpha * g);
      out[i * 4 + 2] = Math.round((1 - alpha) * img.rgb[i * 3 + 2] + alpha * b);
      out[i * 4 + 3] = 255;
    }
  }
  return out;
}

export interface AblationChange {
  label: string;
  index: number;
  before: number;
  after: number;
  change: number;
}

/** Per class: probability without and with the ablation (sorted by |change|, largest first). */
export function ablationChanges(before: readonly number[], after: readonly number[], labels: readonly string[]): AblationChange[] {
  return before
    .map((b, index) => ({ label: labels[index] ?? `class_${index}`, index, before: b, after: after[index], change: after[index] - b }))
    .sort((p, q) => Math.abs(q.change) - Math.abs(p.change) || p.index - q.index);
}

/** Parse "L:H,L:H,…" (0-based layer and head); errors begin with `what` (the option or URL parameter it came from). */
export function parseAblateHeads(spec: string, what = '--ablate-heads'): [number, number][] {
  const out: [number, number][] = [];
  for (const part of spec.split(',').map((s) => s.trim()).filter(Boolean)) {
    const m = /^(\d+):(\d+)$/.exec(part);
    if (!m) throw new Error(`${what}: '${part}' is not LAYER:HEAD (0-based integers), e.g. 11:3,10:0`);
    out.push([Number(m[1]), Number(m[2])]);
  }
  if (!out.length) throw new Error(`${what}: no LAYER:HEAD pairs given`);
  return out;
}

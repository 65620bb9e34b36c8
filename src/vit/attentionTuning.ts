// Which attention path the model runs at a given shape on a given adapter: the explicit path (matmul → softmax →
// matmul) or a fused kernel variant. A default table (defaultAttentionChoice: what was measured), optionally replaced
// per shape by a short measured autotune (autotuneAttention) whose result is kept in memory and, in Node only, in
// $XDG_CACHE_HOME/celluscan/attention-autotune.json. Like matmul (src/kernels/autotune.ts), the model never tunes by
// itself: it reads the table or a result tuned or loaded in this process (`celluscan tune` tunes; the CLI loads the
// cache when it starts the GPU), so a library user's numbers do not depend on a timing they did not ask for.
import * as ops from '../autograd/ops.js';
import { noGrad, Tensor } from '../autograd/tensor.js';
import { ATTENTION_VARIANTS, defaultAttentionVariant } from '../kernels/attention.js';
import { keyedTuningCache, timeCandidate } from '../kernels/autotune.js';
import { gpu, hasGpu, isSoftwareAdapter } from '../kernels/device.js';
import { sync } from '../kernels/encoder.js';
import { subgroupSize } from '../kernels/matmul.js';
import { GpuArray, scope } from '../kernels/memory.js';
import { attentionBackwardRef, attentionRef } from '../kernels/ref/attention.js';
import { randomArray, toleranceRatio } from '../kernels/ref/math.js';

export type AttentionPath = 'fused' | 'explicit';
/** 'train': forward + backward (a graph is recorded); 'infer': forward only. The faster path can differ. */
export type AttentionMode = 'train' | 'infer';

export interface AttentionChoice {
  path: AttentionPath;
  /** The fused kernel variant (ops.attention's `variant`); absent: the adapter's default fused variant. */
  variant?: string;
  /** 'tuned': measured on this adapter at this shape (autotuneAttention or its cache); 'default': the table. */
  source: 'tuned' | 'default';
}

/**
 * The attention path measured faster, when nothing was tuned (what `tune` measured, made a table):
 * - llvmpipe, N ≥ 197 tokens and head dimension ≥ 64 (ViT-B/16 and larger): the fused kernel the adapter defaults to
 *   (`subgroup-saved`, which needs fixed-size subgroups): at B32 H12 N197 D64 1,208 vs 1,483 ms forward+backward
 *   (1.23×) and 533 vs 715 ms forward (1.34×); 1.08–1.27× at batch 1 (bench/results/llvmpipe-attention.md).
 * - NVIDIA GPUs, N ≥ 197 and head dimension 64 or 128 (the flash kernels' P·V loop takes the head
 *   columns 64 at a time; larger ones unmeasured): the fused `flash` kernels, training as `flash-ds`. On an H100 at B32 H12 N197 D64, the
 *   card's clocks held up (2026-11-27, bench/results/nvidia-h100.md; alternated in 3 rounds): forward 0.379 ms
 *   against the explicit path's 0.604 (1.59×); forward+backward `flash-ds` 1.66 against 1.97 ms (1.19×; `flash`
 *   1.86, 1.07×); at batch 1, 3.2× and 2.2–3.0×. (The H200's table of 2026-11-26 had the explicit path ahead, 1.57
 *   against 2.00 ms, before the flash kernels' vec4 P·V loops and with the clocks unchecked: an idle H100 timed
 *   the same paths 2.5× slower, src/kernels/clocks.ts.)
 * - everything else: the explicit path. On lavapipe at the from-scratch models' small shapes (N 17 or 50, D 16)
 *   the answer flips with the batch and is within ~20 % either way.
 * `celluscan tune` measures the candidates at a model's own shape and batch on the adapter at hand.
 */
export function defaultAttentionChoice(N: number, D: number, mode: AttentionMode, adapterKey = gpu().adapterKey): { path: AttentionPath; variant?: string } {
  if (adapterKey === 'llvmpipe' && N >= 197 && D >= 64) {
    // The kernel needs the device's fixed-size subgroups (every lavapipe Dawn runs on has them; checked anyway).
    const here = hasGpu() && gpu().adapterKey === adapterKey;
    if (!here || subgroupSize() !== null) return { path: 'fused', variant: 'subgroup-saved' };
  }
  if (adapterKey.startsWith('nvidia') && N >= 197 && (D === 64 || D === 128)) return { path: 'fused', variant: mode === 'train' ? 'flash-ds' : 'flash' };
  return { path: 'explicit' };
}

/** The default table's rule for an adapter, in words (for `celluscan info`). */
export function defaultAttentionRule(adapterKey = gpu().adapterKey): string {
  if (adapterKey === 'llvmpipe') return 'fused subgroup-saved for N ≥ 197 and D ≥ 64, else explicit';
  if (adapterKey.startsWith('nvidia')) return 'fused for N ≥ 197 and D 64 or 128 (flash-ds in training, flash in inference), else explicit';
  return 'explicit';
}

/** Bump when the kernels change enough that cached choices are stale. */
const CACHE_VERSION = 1;
const CACHE_FILE = 'attention-autotune.json';

const tuned = new Map<string, { path: AttentionPath; variant?: string }>();

/** The cache's name for a shape: tokens, head dimension and mode ("N197 D64 train"). */
export function attentionShapeKey(N: number, D: number, mode: AttentionMode): string {
  return `N${N} D${D} ${mode}`;
}

/** The path (and fused variant) the model uses for attention over N tokens of head dimension D. */
export function attentionChoiceFor(N: number, D: number, mode: AttentionMode, adapterKey = gpu().adapterKey): AttentionChoice {
  const t = tuned.get(`${adapterKey}|${attentionShapeKey(N, D, mode)}`);
  if (t) return { ...t, source: 'tuned' };
  return { ...defaultAttentionChoice(N, D, mode, adapterKey), source: 'default' };
}

/** "explicit", "fused" (the adapter's default variant) or "fused <variant>", with " (tuned)" for a measured choice. */
export function describeAttentionChoice(c: AttentionChoice): string {
  return `${c.path}${c.variant ? ' ' + c.variant : ''}${c.source === 'tuned' ? ' (tuned)' : ''}`;
}

/** Override (or with undefined, forget) the choice for an adapter and shape in this process. */
export function setAttentionChoice(adapterKey: string, N: number, D: number, mode: AttentionMode, choice: { path: AttentionPath; variant?: string } | undefined): void {
  const key = `${adapterKey}|${attentionShapeKey(N, D, mode)}`;
  if (choice === undefined) tuned.delete(key);
  else {
    checkChoice(choice);
    tuned.set(key, { path: choice.path, ...(choice.variant ? { variant: choice.variant } : {}) });
  }
}

/** The tuned choices for an adapter in this process, by shape key ("N197 D64 train" → "fused subgroup-saved"). */
export function tunedAttentionChoices(adapterKey = gpu().adapterKey): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, c] of tuned) {
    const [a, shape] = k.split('|');
    if (a === adapterKey) out[shape] = describeAttentionChoice({ ...c, source: 'default' });
  }
  return out;
}

/** Forget every tuned attention choice in this process (the table decides again). */
export function clearAttentionChoices(): void {
  tuned.clear();
}

function checkChoice(c: { path: AttentionPath; variant?: string }): void {
  if (c.path !== 'explicit' && c.path !== 'fused') throw new RangeError(`attention choice: path must be 'explicit' or 'fused', got '${String(c.path)}'`);
  if (c.variant !== undefined && !(ATTENTION_VARIANTS as readonly string[]).includes(c.variant.split('@')[0])) {
    throw new RangeError(`attention choice: unknown fused variant '${c.variant}' (known: ${ATTENTION_VARIANTS.join(', ')})`);
  }
}

export interface AttentionTuneOptions {
  /** Shape timed: batch, heads, tokens, head dimension (the model's; the batch is the one it will run at). */
  batch: number;
  heads: number;
  seq: number;
  dim: number;
  mode: AttentionMode;
  /** 'explicit' and fused variant names (with @ blockings); default: explicit, the adapter's default fused variant,
   *  and on GPUs the other GPU-shaped fused kernels. */
  candidates?: string[];
  /** Timed runs per candidate after one warm-up run (default 3); the best is kept. */
  runs?: number;
  /** Re-measure even when a cached result exists (one exists for the same shape, mode, batch and heads, tuned with
   *  the default candidates; naming candidates always measures). */
  force?: boolean;
  /** Called with each candidate's result as it is measured (ms is undefined for one that failed, with the reason). */
  onCandidate?: (name: string, ms: number | undefined, note?: string) => void;
  /** A fused variant must be this much faster than the explicit path to be chosen: 0..1, default 0.05 (5 %); 1 keeps
   *  the explicit path whenever it runs correctly. */
  margin?: number;
}

export interface AttentionTuneResult {
  adapter: string;
  shape: string;
  mode: AttentionMode;
  batch: number;
  heads: number;
  choice: { path: AttentionPath; variant?: string };
  /** Best wall-clock ms per call of each candidate (forward, or forward+backward in 'train' mode); a candidate that
   *  failed its correctness check or could not run has no time and an entry in `failed`. */
  timings: Record<string, number>;
  failed: Record<string, string>;
  fromCache: boolean;
}

/** On disk: adapter key → { description, shapes: shape key → result } (keyedTuningCache). */
const cache = keyedTuningCache<AttentionTuneResult>(CACHE_FILE, CACHE_VERSION, 'shapes');

/** The fused candidates worth timing on this adapter (the default one first). */
export function defaultAttentionCandidates(): string[] {
  const fused: string[] = [defaultAttentionVariant()];
  if (!isSoftwareAdapter()) {
    // On GPUs: the workgroup-tiled kernels, and the scores-saving one where subgroups have a fixed size. The flash
    // kernels also with 32 query rows per workgroup (@2x2): at ViT's 197 tokens 224 rows computed instead of 256, and
    // half the Q tile's workgroup memory (more workgroups per SM); the default blocking is the largest that fits.
    const flash = ['flash', 'flash-ds', 'flash@2x2', 'flash-ds@2x2'];
    for (const v of ['blocked', ...flash, ...(subgroupSize() !== null ? ['subgroup-saved'] : [])]) if (!fused.includes(v)) fused.push(v);
  }
  return ['explicit', ...fused];
}

/**
 * Load the cached attention choices for this adapter (Node only; nothing in a browser). Entries written for another
 * adapter description, or naming a variant this build does not know, are skipped. Returns how many were loaded.
 */
export async function loadAttentionTuning(): Promise<number> {
  const g = gpu();
  let n = 0;
  for (const r of Object.values(await cache.results())) {
    const m = /^N(\d+) D(\d+) (train|infer)$/.exec(r?.shape ?? '');
    if (!m || !r.choice) continue;
    try {
      setAttentionChoice(g.adapterKey, Number(m[1]), Number(m[2]), m[3] as AttentionMode, r.choice);
      n++;
    } catch {
      /* a variant of another build: ignored */
    }
  }
  return n;
}

function explicitAttention(q: Tensor, k: Tensor, v: Tensor, D: number): Tensor {
  // The model's explicit path (model.ts MultiheadSelfAttention): the 1/√D scale in the first matmul's store.
  return ops.matmul(ops.softmax(ops.matmul(q, k, { transB: true, alpha: 1 / Math.sqrt(D) })), v);
}

function runCandidate(name: string, q: Tensor, k: Tensor, v: Tensor, D: number): Tensor {
  return name === 'explicit' ? explicitAttention(q, k, v, D) : ops.attention(q, k, v, { scale: 1 / Math.sqrt(D), variant: name });
}

/**
 * A candidate against the float64 reference at a small awkward shape with the tuned head dimension (the kernels are
 * generated per D): B1 H2 N13, and a second N of 33 (more than one key tile for every variant's blocking on CPU
 * adapters). Inputs in [-1, 1]: sums of ≤ 64 products, so f32 errors stay near 1e-6 relative; any real bug (a wrong
 * scale, row or running max) is ≥ 1e-2. Tolerance: atol 5e-5, rtol 5e-4 (10× the kernel tests' own, since here it
 * only has to separate a working kernel from a broken one). Returns null when it passes, else what failed.
 */
async function checkCandidate(name: string, D: number, mode: AttentionMode): Promise<string | null> {
  for (const N of [13, 33]) {
    const shape = { B: 1, H: 2, N, D };
    const n = 2 * N * D;
    const [qd, kd, vd, gd] = [21, 22, 23, 24].map((s) => randomArray(n, s + N));
    const ref = attentionRef(qd, kd, vd, shape);
    const got = await scope(async () => {
      const train = mode === 'train';
      const [q, k, v] = [qd, kd, vd].map((d) => Tensor.from(d, [1, 2, N, D], train));
      const out = train ? runCandidate(name, q, k, v, D) : noGrad(() => runCandidate(name, q, k, v, D));
      if (!train) return [await out.read()];
      out.backward(GpuArray.fromData(gd, [1, 2, N, D]));
      return Promise.all([out.read(), q.grad!.read(), k.grad!.read(), v.grad!.read()]);
    });
    const expected: ArrayLike<number>[] = [ref.out];
    if (mode === 'train') {
      const rb = attentionBackwardRef(qd, kd, vd, gd, shape);
      expected.push(rb.dq, rb.dk, rb.dv);
    }
    const what = ['out', 'dq', 'dk', 'dv'];
    for (let i = 0; i < expected.length; i++) {
      const r = toleranceRatio(got[i], expected[i], 5e-5, 5e-4);
      if (!(r <= 1)) return `${what[i]} differs from the float64 reference at N=${N} D=${D} (error/tolerance ${r.toFixed(1)})`;
    }
  }
  return null;
}

/**
 * Time each candidate at the given shape (after checking it against the float64 reference), make the fastest the
 * model's choice for this adapter and shape, in memory and in the Node cache file. A fused variant is chosen only
 * when it beats the explicit path by `margin` (the explicit path is the reference one and can return probabilities;
 * within the noise of a few runs it stays). Wall clock with a sync per call: what a training step or forward pays,
 * dispatch overhead included.
 */
export async function autotuneAttention(opts: AttentionTuneOptions): Promise<AttentionTuneResult> {
  const g = gpu();
  const { batch: B, heads: H, seq: N, dim: D, mode } = opts;
  for (const [name, x] of [['batch', B], ['heads', H], ['seq', N], ['dim', D]] as const) {
    if (!Number.isInteger(x) || x < 1) throw new RangeError(`autotuneAttention: ${name} must be an integer >= 1, got ${x}`);
  }
  if (mode !== 'train' && mode !== 'infer') throw new RangeError(`autotuneAttention: mode must be 'train' or 'infer', got '${String(mode)}'`);
  const margin = opts.margin ?? 0.05;
  if (!(margin >= 0 && margin <= 1)) throw new RangeError(`autotuneAttention: margin must be in [0, 1], got ${margin}`);
  const shapeKey = attentionShapeKey(N, D, mode);
  if (opts.candidates !== undefined && !opts.candidates.length) throw new RangeError('autotuneAttention: no candidates');
  for (const c of opts.candidates ?? []) if (c !== 'explicit') checkChoice({ path: 'fused', variant: c });
  // A cached result answers only the question it measured: the same batch and heads (the ranking changes with the
  // batch), with the default candidates.
  if (!opts.force && opts.candidates === undefined) {
    const c = (await cache.results())[shapeKey];
    if (c?.choice && c.batch === B && c.heads === H) {
      try {
        setAttentionChoice(g.adapterKey, N, D, mode, c.choice);
        return { ...c, fromCache: true };
      } catch {
        /* a variant this build does not know: measure again */
      }
    }
  }
  const candidates = opts.candidates ?? defaultAttentionCandidates();
  const runs = opts.runs ?? 3;
  const timings: Record<string, number> = {};
  const failed: Record<string, string> = {};
  const count = B * H * N * D;
  const arrays = [1, 2, 3, 4].map((s) => GpuArray.fromData(randomArray(count, s), [B, H, N, D], 'autotuneAttention'));
  const [q0, k0, v0, g0] = arrays;
  const call = (name: string) =>
    scope(async () => {
      const train = mode === 'train';
      const [q, k, v] = [q0, k0, v0].map((a) => new Tensor(a.view(a.shape), { requiresGrad: train }));
      if (train) runCandidate(name, q, k, v, D).backward(g0);
      else noGrad(() => runCandidate(name, q, k, v, D));
      await sync();
    });
  try {
    for (const name of candidates) {
      try {
        const bad = await checkCandidate(name, D, mode);
        if (bad) {
          failed[name] = bad;
          opts.onCandidate?.(name, undefined, bad);
          continue;
        }
        const best = await timeCandidate(() => call(name), runs, Math.min(Infinity, ...Object.values(timings)));
        timings[name] = best;
        opts.onCandidate?.(name, best);
      } catch (e) {
        // A variant this adapter cannot run at this shape (workgroup memory, D too large, no subgroups): not a pick.
        failed[name] = (e as Error).message;
        opts.onCandidate?.(name, undefined, failed[name]);
      }
    }
  } finally {
    for (const a of arrays) a.dispose();
  }
  const ranked = Object.entries(timings).sort((x, y) => x[1] - y[1]);
  if (!ranked.length) throw new Error(`autotuneAttention: no candidate ran correctly at ${shapeKey}: ${Object.entries(failed).map(([k, v]) => `${k}: ${v}`).join('; ')}`);
  let pick = ranked[0][0];
  const explicitMs = timings.explicit;
  if (pick !== 'explicit' && explicitMs !== undefined && ranked[0][1] > explicitMs * (1 - margin)) pick = 'explicit';
  const choice = pick === 'explicit' ? { path: 'explicit' as const } : { path: 'fused' as const, variant: pick };
  setAttentionChoice(g.adapterKey, N, D, mode, choice);
  const result: AttentionTuneResult = { adapter: g.adapterKey, shape: shapeKey, mode, batch: B, heads: H, choice, timings, failed, fromCache: false };
  await cache.save(shapeKey, result);
  return result;
}

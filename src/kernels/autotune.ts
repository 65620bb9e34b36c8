// Which matmul variant to run on which adapter: a default table keyed by gpu().adapterKey, optionally
// replaced by a short measured autotune (autotuneMatmul) whose result is cached in memory and, in Node
// only, in ~/.cache/celluscan/matmul-autotune.json. matmul() never tunes by itself: it reads the table
// or a result already tuned/loaded in this process.
import { gpu, isSoftwareAdapter } from './device.js';
import { sync } from './encoder.js';
import { matmul, MATMUL_VARIANTS, parseMatmulVariant, PLAIN_SUFFIX, splitKOf, subgroupSize } from './matmul.js';
import { setPassHook } from './launch.js';
import { GpuArray } from './memory.js';
import { PassTimer } from './passTimer.js';
import { lastTimedEnd, markTimedEnd, warmClocks } from './clocks.js';
import { matmulRef } from './ref/matmul.js';
import { randomArray, toleranceRatio } from './ref/math.js';

/**
 * Defaults per adapter. lavapipe (CPU Vulkan) runs barriers slowly and per-lane loads as gathers: the subgroup kernel,
 * which shares A through shuffles, is fastest there (bench/results/llvmpipe.md). So it is on SwiftShader, the
 * browser's adapter without a GPU (subgroup size 4): 1.8–3.4 GFLOP/s against 0.22–0.28 for blocked-vec4, the earlier
 * default, at 512³ and a small ViT's Linear products (`celluscan bench browser`, bench/results/swiftshader-matmul.md). On an NVIDIA H200 (Dawn/Vulkan):
 * tiled-vec4, which two `tune` runs of the ninth session chose for vit_b_16's products at batch 32 (GPU time, the
 * MLP's three products: tiled-vec4 3.96 / 3.97 ms against blocked-vec4 6.95 / 6.97, blocked-vec4 with a plain-layout
 * copy of Bᵀ 4.38 / 4.39, tiled 5.29 / 5.30), and whose products in the tuned training step ran at 18–31 TFLOP/s
 * (bench/results/nvidia-h200-notes.md); 'nvidia' covers every NVIDIA key (nvidia-h100, …) until one is measured
 * apart. Other GPUs: workgroup-memory tiling.
 */
export const DEFAULT_MATMUL_VARIANTS: Record<string, string> = {
  llvmpipe: 'subgroup',
  swiftshader: 'subgroup',
  nvidia: 'tiled-vec4:k4',
  default: 'tiled',
};

/**
 * Defaults per adapter and transpose form, where a form runs another variant than DEFAULT_MATMUL_VARIANTS' (a `tune`
 * result replaces both). NVIDIA, Aᵀ·B (every Linear's dW = dYᵀ·X): split over K in 8 (':k8', matmul.ts
 * SPLIT_K_PATTERN). On the H200 (2026-11-26) the MLP's 3072×768×6304 dW took 1.47 ms as tiled-vec4 (144 workgroups of
 * 128×128 for 132 SMs), 1.16 as ':k4' and 1.01 as ':k8'; in the tuned vit_b_16 training step at batch 32 the four dW
 * products of a block went from 58.3 ms (7.4–22 TFLOP/s) to 37.4 (18.6–30.8), the step from 189.5 to 169.8 ms of GPU
 * time, and the step's throughput from 0.47× to 0.52× PyTorch's eager fp32 on the same card.
 * The other forms split over K in up to 4 (':k4', DEFAULT_MATMUL_VARIANTS), where a product has few workgroups for
 * its K (vit_b_16's 768-wide outputs with K = 3072: 6304×768×3072 and its x·Wᵀ form; wider products have enough
 * workgroups and run unsplit). H100 `tune` at batch 32 (2026-11-27, GPU time): 6304×768×3072 1.49 ms as tiled-vec4,
 * 1.05 as ':k4', 1.04 as ':k8'; its x·Wᵀ form 1.25 → 1.04 / 1.04; 6304×3072×768 x·Wᵀ 0.94 / 0.94 / 0.95 (not split);
 * dW 3072×768×6304 1.51 / 1.18 / 1.04 (hence ':k8' there). The suite's rows agree: 19.7 → 28.7 TFLOP/s for the
 * plain product (bench/results/nvidia-h100.md).
 * (The x·Bᵀ entry of the seventh session, blocked-vec4 through a plain-layout copy, was an inference from one run;
 * tiled-vec4 reads Bᵀ along k with vec4s and ran the forward's x·Wᵀ at 28–30 TFLOP/s, so it is gone.)
 */
export const DEFAULT_MATMUL_FORMS: Record<string, Partial<Record<MatmulForm, string>>> = {
  nvidia: { tA: 'tiled-vec4:k8' },
};

/**
 * Extra matmul shapes for GPU adapters (the bench suite times them beside each family's default, autotune tries
 * them): the 'tiled' kernel with larger blocks (128×128 and 128×64 per workgroup, 8×8 / 8×4 per invocation),
 * 'tiled-vec4' with smaller ones than its 128×128 default, and wider register blocks, the shapes that use a GPU's
 * registers; on CPU adapters they only cost time.
 */
export const GPU_MATMUL_SHAPES = [
  'tiled@8x8/16x16', 'tiled@8x4/16x16', 'tiled@4x8/16x16', 'tiled@4x4/8x8',
  'tiled-vec4@4x4/16x16', 'tiled-vec4@8x4/16x16', 'tiled-vec4@8x8/8x8',
  'blocked-vec4@8x8/16x16', 'blocked-vec4@8x4/16x8', 'subgroup@4x8/0x4',
];

/**
 * GPU candidates that run every product in the plain form (PLAIN_SUFFIX: a transposed operand copied first): the plain
 * form is the only one measured fast on a GPU so far (H200, 2026-11-26), and blocked-vec4's transposed-B loads — every
 * forward Linear's x·Wᵀ — are strided across lanes. `tune` keeps one per form where it wins; the suite times it on
 * vit_b_16's products. On CPU adapters only the table's variant with the copy is tried (DEFAULT_PLAIN_MIN_K).
 */
export const GPU_PLAIN_CANDIDATES = ['blocked-vec4:plain', 'tiled:plain'];

/**
 * GPU candidates that split products with few workgroups over K (':k<S>', matmul.ts SPLIT_K_PATTERN and splitKPlan).
 * On the H200 (2026-11-26, tuned vit_b_16 training step at batch 32) the four dW products of each block ran at
 * 7.4–22 TFLOP/s as 36–144 workgroups of 128×128, 58 ms of a 190 ms step, where the forward's 1200-workgroup x·Wᵀ ran
 * at 30; tiled-vec4:k8 took the MLP's dW from 1.47 to 1.01 ms. The 768-wide outputs (300 workgroups, 18–20 TFLOP/s:
 * the MLP-up tune's plain product among them) split in the other forms since; not yet timed on a GPU. Not on CPU
 * adapters, where a few workgroups already fill the cores.
 */
export const GPU_SPLIT_K_CANDIDATES = ['tiled-vec4:k2', 'tiled-vec4:k4', 'tiled-vec4:k8', 'blocked-vec4:k8'];

/**
 * Bump when the kernels change enough that cached timings are stale. 2: per-form choices, tiled-vec4, the padded
 * tiled kernel (a version-1 entry timed the products together and never tried them). 3: the ':plain' candidates and
 * the per-form default table (a version-2 entry never tried them, and would hide the table's forms). 4: the split-K
 * candidates (GPU_SPLIT_K_CANDIDATES) and the NVIDIA table measured on the H200. 5: split-K in every form
 * (tiled-vec4), bounded by the workgroups: a version-4 entry timed ':k<S>' on dW only.
 */
const CACHE_VERSION = 5;

/** A product's transpose form: plain A·B, Aᵀ·B ('tA', a Linear's dW = dYᵀ·X), A·Bᵀ ('tB', its forward x·Wᵀ), Aᵀ·Bᵀ. */
export type MatmulForm = 'plain' | 'tA' | 'tB' | 'tAtB';
export const MATMUL_FORMS: readonly MatmulForm[] = ['plain', 'tA', 'tB', 'tAtB'];
export function matmulForm(transA = false, transB = false): MatmulForm {
  return transA ? (transB ? 'tAtB' : 'tA') : transB ? 'tB' : 'plain';
}

/** A form's transposes [transA, transB] (matmulForm's inverse). */
export function formTransposes(f: MatmulForm): [boolean, boolean] {
  return [f === 'tA' || f === 'tAtB', f === 'tB' || f === 'tAtB'];
}

/** An adapter's entry in a per-adapter table: its own key's, else its vendor's ('nvidia' for 'nvidia-h100'). */
function byAdapter<T>(table: Record<string, T>, adapterKey: string): T | undefined {
  return table[adapterKey] ?? table[adapterKey.split('-')[0]];
}

/** A tuned choice: one variant, and where a form measured faster with another variant, that one for the form. */
export interface TunedChoice {
  variant: string;
  forms: Partial<Record<MatmulForm, string>>;
  /**
   * The forms the choice was measured on (a tune of the forward's products times only x·Wᵀ); other forms keep the
   * default table's variant for the form, if it has one. Absent: the choice covers every form (a user's override).
   */
  decided?: MatmulForm[];
  /**
   * The largest K the tune timed per form (its candidates include the table's variant through the plain-layout copy):
   * where that reaches the default table's K rule (DEFAULT_PLAIN_MIN_K), the tune's choice for the form stands as
   * measured and the rule is not applied on top of it.
   */
  measuredK?: Partial<Record<MatmulForm, number>>;
}
const tuned = new Map<string, TunedChoice>();

/** The variant matmul() uses on this adapter for a product of this form when none is named. */
export function matmulVariantFor(adapterKey: string, transA = false, transB = false): string {
  const form = matmulForm(transA, transB);
  const t = tuned.get(adapterKey);
  if (!t) return tableMatmulForms(adapterKey)[form] ?? tableMatmulVariant(adapterKey);
  if (t.forms[form]) return t.forms[form];
  return (t.decided && !t.decided.includes(form) ? tableMatmulForms(adapterKey)[form] : undefined) ?? t.variant;
}

/**
 * Per adapter and form, the inner dimension K from which the default table runs the form through a plain-layout copy
 * (PLAIN_SUFFIX) — for kernels whose transposed loads cost more the farther apart the rows are. Applies while the
 * form runs the table's variant (plainMinK); a named variant is used as it is. Figures: below, and
 * bench/results/llvmpipe-matmul.md.
 */
export const DEFAULT_PLAIN_MIN_K: Record<string, Partial<Record<MatmulForm, number>>> = {
  // lavapipe, subgroup kernel, x·Wᵀ at batch 1 of vit_b_16, GPU time, alternating rounds (`bench matmul --variant
  // subgroup,subgroup:plain`): K = 3072 (the MLP's second Linear) 1.14×, 1.25×, 1.47× faster through the copy; K = 768
  // (the first) 0.86×, 0.93× (slower); K = 64 (the fashion-mnist model's layers; its training step 5 % slower with the
  // copy in every x·Wᵀ). Each lane of the subgroup kernel reads its own rows of Wᵀ, K floats apart.
  llvmpipe: { tB: 2048 },
};

/**
 * The variant matmul() runs for one product when none is named: matmulVariantFor's, with the default table's K rule
 * (DEFAULT_PLAIN_MIN_K) applied to the forms that run the table's variant (plainMinK).
 */
export function matmulVariantForProduct(adapterKey: string, transA: boolean, transB: boolean, K: number): string {
  // Kept per (adapter, its device's subgroup size, form, K) until a choice changes (setMatmulVariant): every matmul() asks
  const key = `${adapterKey}|${subgroupSize()}|${transA}|${transB}|${K}`;
  let v = productVariants.get(key);
  if (v === undefined) {
    if (productVariants.size >= 4096) productVariants.clear();
    productVariants.set(key, (v = variantForProductUncached(adapterKey, transA, transB, K)));
  }
  return v;
}

/** matmulVariantForProduct's answers; emptied whenever a choice is set or forgotten. */
const productVariants = new Map<string, string>();

/**
 * A split-K choice (':k<S>', from the table or a tune) applies to products with at least this K; shorter ones run
 * its base variant. Every split measured faster had K ≥ 768 (vit_b_16's products: 768, 3072, 6304 on the H100 and
 * H200); a short K gives chunks of a few k steps and a reduce pass for a product that is launch-bound anyway (the
 * fashion-mnist model's K is 64-128). An explicit variant (matmul's `variant` option, `bench`) splits at any K.
 */
export const SPLIT_K_MIN_K = 512;

function variantForProductUncached(adapterKey: string, transA: boolean, transB: boolean, K: number): string {
  const chosen = matmulVariantFor(adapterKey, transA, transB);
  const split = splitKOf(chosen);
  const v = split && K < SPLIT_K_MIN_K ? split.base : chosen;
  // measured with the subgroup kernel: not where it runs as another kernel (no fixed subgroup size)
  if (parseMatmulVariant(v).family === 'subgroup' && !subgroupSize()) return v;
  const minK = plainMinK(adapterKey)[matmulForm(transA, transB)];
  // (a split-K variant was chosen for its own way of running the form: no copy is added to it)
  return minK !== undefined && K >= minK && !v.endsWith(PLAIN_SUFFIX) && !splitKOf(v) ? v + PLAIN_SUFFIX : v;
}

/**
 * The K rule in force for an adapter (DEFAULT_PLAIN_MIN_K): for the forms that run the default table's variant — a tune
 * that kept it below the rule's K (it times a model's first MLP product, not every K) keeps the rule; one that chose
 * another variant, or timed the form at the rule's K or above (TunedChoice.measuredK), drops it, and so does a variant
 * set for every form (`bench vit --matmul subgroup` runs subgroup, copies nowhere).
 */
export function plainMinK(adapterKey: string): Partial<Record<MatmulForm, number>> {
  const t = tuned.get(adapterKey);
  if (t && !t.decided) return {}; // a choice set for every form (setMatmulVariant without `decided`) runs as named
  const rule = byAdapter(DEFAULT_PLAIN_MIN_K, adapterKey) ?? {};
  const table = tableMatmulForms(adapterKey);
  const out: Partial<Record<MatmulForm, number>> = {};
  for (const f of MATMUL_FORMS) {
    const inForce = matmulVariantFor(adapterKey, ...formTransposes(f));
    const measured = t?.measuredK?.[f];
    if (rule[f] !== undefined && measured !== undefined && measured >= rule[f]) continue; // the tune timed such K: its choice stands
    if (rule[f] !== undefined && inForce === (table[f] ?? tableMatmulVariant(adapterKey))) out[f] = rule[f];
  }
  return out;
}

/** Put back a choice matmulChoice() returned (undefined: back to the default table's). */
export function restoreMatmulChoice(adapterKey: string, saved: TunedChoice | undefined): void {
  if (saved) setMatmulVariant(adapterKey, saved.variant, saved.forms, saved.decided, saved.measuredK);
  else setMatmulVariant(adapterKey, undefined);
}

/** The choice tuned or set for this adapter in this process (undefined: the default table's). */
export function matmulChoice(adapterKey: string): TunedChoice | undefined {
  const t = tuned.get(adapterKey);
  return t && { ...t, forms: { ...t.forms }, ...(t.decided ? { decided: [...t.decided] } : {}), ...(t.measuredK ? { measuredK: { ...t.measuredK } } : {}) };
}

/**
 * "subgroup", or with forms tuned apart "blocked-vec4 (tB: tiled)": what matmul() runs here, for info and logs (with a
 * note where the subgroup kernel cannot run on this device).
 */
export function describeMatmulChoice(adapterKey: string): string {
  const base = tuned.get(adapterKey)?.variant ?? tableMatmulVariant(adapterKey);
  const byForm = (f: MatmulForm) => matmulVariantFor(adapterKey, ...formTransposes(f));
  const apart = MATMUL_FORMS.filter((f) => byForm(f) !== base).map((f) => `${f}: ${byForm(f)}`);
  const rule = plainMinK(adapterKey);
  for (const f of MATMUL_FORMS) {
    const big = matmulVariantForProduct(adapterKey, ...formTransposes(f), rule[f] ?? Infinity);
    if (rule[f] !== undefined && big !== byForm(f)) apart.push(`${f} with K ≥ ${rule[f]}: ${big}`);
  }
  const note = [base, ...MATMUL_FORMS.map(byForm)].some((v) => v.startsWith('subgroup')) && !subgroupSize() ? ' [subgroup runs as tiled-vec4 / blocked here: no fixed subgroup size]' : '';
  return (apart.length ? `${base} (${apart.join(', ')})` : base) + note;
}

/** The default table's variant for an adapter (what matmulVariantFor gives when nothing was tuned). */
export function tableMatmulVariant(adapterKey: string): string {
  return byAdapter(DEFAULT_MATMUL_VARIANTS, adapterKey) ?? DEFAULT_MATMUL_VARIANTS.default;
}

/** The default table's variants per form for an adapter (DEFAULT_MATMUL_FORMS; a vendor's entry covers its keys). */
export function tableMatmulForms(adapterKey: string): Partial<Record<MatmulForm, string>> {
  return { ...(byAdapter(DEFAULT_MATMUL_FORMS, adapterKey) ?? DEFAULT_MATMUL_FORMS.default ?? {}) };
}

/** Whether the adapter's matmul variant was tuned (or loaded from the tuning cache) in this process. */
export function isMatmulTuned(adapterKey: string): boolean {
  return tuned.has(adapterKey);
}

/**
 * Override (or with undefined, forget) the choice for an adapter in this process; `forms`: other variants per form;
 * `decided`: the forms it was measured on (others keep the table's form variants; default: every form).
 */
export function setMatmulVariant(
  adapterKey: string,
  variant: string | undefined,
  forms: Partial<Record<MatmulForm, string>> = {},
  decided?: readonly MatmulForm[],
  measuredK?: Partial<Record<MatmulForm, number>>,
): void {
  productVariants.clear();
  if (variant === undefined) tuned.delete(adapterKey);
  else tuned.set(adapterKey, { variant, forms: { ...forms }, ...(decided ? { decided: [...decided] } : {}), ...(measuredK ? { measuredK: { ...measuredK } } : {}) });
}

/** The transpose forms of products named by productLabel ('6304×3072×768 tB'). */
export function formsOfLabels(labels: readonly string[]): MatmulForm[] {
  return [...new Set(labels.map((l) => matmulForm(/ tA\b/.test(l), / tB\b/.test(l))))];
}

/** The largest K per transpose form among products named by productLabel ('6304×3072×768 tB': K = 768). */
export function measuredKOfLabels(labels: readonly string[]): Partial<Record<MatmulForm, number>> {
  const out: Partial<Record<MatmulForm, number>> = {};
  for (const l of labels) {
    const m = /^\d+×\d+×(\d+)/.exec(l);
    if (!m) continue;
    const f = matmulForm(/ tA\b/.test(l), / tB\b/.test(l));
    out[f] = Math.max(out[f] ?? 0, Number(m[1]));
  }
  return out;
}

export interface AutotuneResult {
  adapter: string;
  variant: string;
  /** Milliseconds per matmul of each variant that was timed (Infinity: failed the correctness check). */
  timings: Record<string, number>;
  /** The first product's [M, N, K]. */
  shape: [number, number, number];
  /** Every product timed (productLabel), the times of one call summed over them. */
  products?: string[];
  /**
   * How the times were taken: 'timestamp-query' (GPU time of the kernels, on GPUs that have it), 'wall-clock', or
   * 'mixed' (some calls too short for the timestamps' resolution were timed by wall clock).
   */
  clock?: string;
  /** Milliseconds per call of each variant on each product (by productLabel), where products were timed apart. */
  productTimings?: Record<string, Record<string, number>>;
  /**
   * Forms whose products ran fastest with another variant than `variant` (by more than AUTOTUNE_FORM_MARGIN): matmul()
   * uses that one for products of the form.
   */
  forms?: Partial<Record<MatmulForm, string>>;
  fromCache: boolean;
}

const isNode = typeof process !== 'undefined' && !!process.versions?.node && typeof window === 'undefined';

interface CacheFile {
  version: number;
  entries: Record<string, AutotuneResult & { description: string }>;
}

/** The Node cache folder of tuning results ($XDG_CACHE_HOME/celluscan or ~/.cache/celluscan); null in a browser. */
async function nodeFs(fileName: string): Promise<{ fs: typeof import('node:fs/promises'); file: string } | null> {
  if (!isNode) return null;
  try {
    // Variable specifiers keep bundlers from following these imports into the browser build.
    const fsName = 'node:fs/promises';
    const osName = 'node:os';
    const pathName = 'node:path';
    const fs = (await import(/* @vite-ignore */ fsName)) as typeof import('node:fs/promises');
    const os = (await import(/* @vite-ignore */ osName)) as typeof import('node:os');
    const path = (await import(/* @vite-ignore */ pathName)) as typeof import('node:path');
    const dir = path.join(process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'celluscan');
    return { fs, file: path.join(dir, fileName) };
  } catch {
    return null;
  }
}

/** Where a tuning cache file lives (Node), for messages; undefined in a browser. */
export async function tuningCachePath(fileName: string): Promise<string | undefined> {
  return (await nodeFs(fileName))?.file;
}

/**
 * Why each tuning cache file (by file name) could not be used when last read, while it cannot: a file that exists but
 * is unreadable, not JSON or not a tuning cache. Read by loadTunings (src/cli/tune.ts) to say so; a missing file, or
 * one of another version (a stale cache only costs a re-tune), is no problem.
 */
const readProblems = new Map<string, string>();

/** Why the tuning cache file `fileName` was ignored when last read (undefined when it was fine or missing). */
export function tuningCacheReadProblem(fileName: string): string | undefined {
  return readProblems.get(fileName);
}

/** Record that a tuning cache file that was read is not a tuning cache (a caller's check of its contents). */
export function noteTuningCacheProblem(fileName: string, problem: string): void {
  readProblems.set(fileName, problem);
}

/**
 * A tuning cache file's parsed JSON when its `version` is `version`; an empty object with that version when the file
 * is missing, unreadable, malformed or of another version (a stale cache only costs a re-tune). An unreadable or
 * malformed file is also recorded (tuningCacheReadProblem), so the CLI can say it is ignored.
 */
export async function readTuningFile<T extends { version: number }>(fileName: string, version: number, empty: () => T): Promise<T> {
  const n = await nodeFs(fileName);
  if (n) {
    let text: string | undefined;
    try {
      text = await n.fs.readFile(n.file, 'utf8');
    } catch (e) {
      // no cache yet (no file, or no cache folder): fine; anything else (a folder, no permission): recorded
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') readProblems.delete(fileName);
      else readProblems.set(fileName, `cannot read it: ${(e as Error).message}`);
    }
    if (text !== undefined) {
      try {
        const c = JSON.parse(text) as unknown;
        if (!c || typeof c !== 'object' || Array.isArray(c)) throw new Error(`not a tuning cache: a JSON ${Array.isArray(c) ? 'array' : c === null ? 'null' : typeof c}, expected an object`);
        if (typeof (c as { version?: unknown }).version !== 'number') throw new Error('not a tuning cache: no version number');
        readProblems.delete(fileName);
        if ((c as T).version === version) return c as T;
      } catch (e) {
        readProblems.set(fileName, e instanceof SyntaxError ? `not valid JSON: ${e.message}` : (e as Error).message);
      }
    }
  }
  return empty();
}

/**
 * A tuning cache of results by adapter and by key (a shape, a kernel and row length): the file holds
 * `{ version, entries: { [adapter key]: { description, [field]: { [key]: result } } } }`. Results written under another
 * adapter description (another driver or card behind the same key) are not this adapter's; a missing, stale or
 * malformed file reads as empty. "This adapter" is the current device's (gpu()).
 */
export function keyedTuningCache<T>(fileName: string, version: number, field: string) {
  type Entry = { description: string } & Record<string, unknown>;
  type File = { version: number; entries: Record<string, Entry> };
  const read = async (): Promise<File> => {
    const c = await readTuningFile<File>(fileName, version, () => ({ version, entries: {} }));
    if (c.entries && typeof c.entries === 'object' && !Array.isArray(c.entries)) return c;
    noteTuningCacheProblem(fileName, 'not a tuning cache: no entries object');
    return { version, entries: {} };
  };
  const itemsOf = (e: Entry | undefined, description: string): Record<string, T> => {
    const items = e && e.description === description ? e[field] : undefined;
    return items && typeof items === 'object' ? (items as Record<string, T>) : {};
  };
  return {
    /** This adapter's results by key (empty when none, or written for another description). */
    async results(): Promise<Record<string, T>> {
      const g = gpu();
      return itemsOf((await read()).entries[g.adapterKey], g.info.description);
    },
    /** Store one result under `key` for this adapter, keeping its others (those of another description are dropped). */
    async save(key: string, result: T): Promise<void> {
      const g = gpu();
      const c = await read();
      c.entries[g.adapterKey] = { description: g.info.description, [field]: { ...itemsOf(c.entries[g.adapterKey], g.info.description), [key]: result } };
      await writeTuningFile(fileName, c);
    },
  };
}

/**
 * Tuning cache files (by file name) that this process failed to write, with why: their choices hold for this run only.
 * Kept for the process (a later write of the same file lacks the results the failed one held); `celluscan tune` reports them.
 */
const writeErrors = new Map<string, string>();

/** The tuning cache files this process could not write, by file name, with the reason. */
export function tuningCacheWriteErrors(): ReadonlyMap<string, string> {
  return writeErrors;
}

/** Forget the recorded write failures (tests; a command that reports them once). */
export function clearTuningCacheWriteErrors(): void {
  writeErrors.clear();
}

/**
 * Write a tuning cache file atomically (temporary file + rename). A failure (a read-only home, a cache folder that is
 * a file) does not throw, as it only costs a re-tune next time: it is returned (undefined when written) and recorded
 * (tuningCacheWriteErrors), so that a command does not claim the choices were cached.
 */
export async function writeTuningFile(fileName: string, content: unknown): Promise<string | undefined> {
  const n = await nodeFs(fileName);
  if (!n) return undefined;
  const tmp = `${n.file}.tmp-${process.pid}`;
  try {
    const pathName = 'node:path';
    const path = (await import(/* @vite-ignore */ pathName)) as typeof import('node:path');
    await n.fs.mkdir(path.dirname(n.file), { recursive: true });
    await n.fs.writeFile(tmp, JSON.stringify(content, null, 2));
    await n.fs.rename(tmp, n.file);
    return undefined;
  } catch (e) {
    await n.fs.unlink(tmp).catch(() => {});
    const reason = (e as Error).message;
    writeErrors.set(fileName, reason);
    return reason;
  }
}

const MATMUL_CACHE = 'matmul-autotune.json';
const emptyCache = (): CacheFile => ({ version: CACHE_VERSION, entries: {} });
async function readCache(): Promise<CacheFile> {
  const c = await readTuningFile<CacheFile>(MATMUL_CACHE, CACHE_VERSION, emptyCache);
  if (c.entries && typeof c.entries === 'object' && !Array.isArray(c.entries)) return c;
  noteTuningCacheProblem(MATMUL_CACHE, 'not a tuning cache: no entries object');
  return emptyCache();
}
const writeCache = async (c: CacheFile): Promise<void> => {
  await writeTuningFile(MATMUL_CACHE, c);
};

/** A cached variant name this build can run (a hand-edited or damaged entry is no cache). */
function knownVariant(v: unknown): v is string {
  if (typeof v !== 'string') return false;
  try {
    parseMatmulVariant(v);
    return true;
  } catch {
    return false;
  }
}

/** A cached entry's per-form choices when every one names a form and a variant this build can run; else none. */
function knownForms(f: unknown): Partial<Record<MatmulForm, string>> | undefined {
  if (f === undefined) return {};
  if (!f || typeof f !== 'object') return undefined;
  const entries = Object.entries(f as Record<string, unknown>);
  return entries.every(([k, v]) => (MATMUL_FORMS as readonly string[]).includes(k) && knownVariant(v)) ? (Object.fromEntries(entries) as Partial<Record<MatmulForm, string>>) : undefined;
}

/** The forms a cached entry was measured on (from its products' labels; an entry without them covers the plain form). */
function cachedForms(e: AutotuneResult): MatmulForm[] {
  return e.products?.length ? formsOfLabels(e.products) : ['plain'];
}

/** Load a cached autotune result for the current adapter, if any (Node only). Returns the variant. */
export async function loadMatmulTuning(): Promise<string | undefined> {
  const g = gpu();
  const e = (await readCache()).entries[g.adapterKey];
  const forms = knownForms(e?.forms);
  if (e && e.description === g.info.description && knownVariant(e.variant) && forms) {
    setMatmulVariant(g.adapterKey, e.variant, forms, cachedForms(e), measuredKOfLabels(e.products ?? []));
    return e.variant;
  }
  return undefined;
}

/**
 * The products the cached matmul tune for this adapter was measured on (productLabel form), or undefined when nothing
 * is cached for it: the choice serves every model's products, so `info` says which ones it was measured at.
 */
export async function cachedMatmulProducts(adapterKey = gpu().adapterKey): Promise<string[] | undefined> {
  const e = (await readCache()).entries[adapterKey];
  if (!e || e.description !== gpu().info.description) return undefined;
  return e.products ?? (Array.isArray(e.shape) ? [productLabel({ m: e.shape[0], n: e.shape[1], k: e.shape[2] })] : []);
}

/** One product timed by the autotune: op(A) [m, k] · op(B) [k, n], A stored [k, m] with transA, B [n, k] with transB. */
export interface MatmulProduct {
  m: number;
  n: number;
  k: number;
  transA?: boolean;
  transB?: boolean;
}

/** "6304×3072×768 tB": the product's sizes and transposes, as the cache and the bench labels name it. */
export function productLabel(p: MatmulProduct): string {
  return `${p.m}×${p.n}×${p.k}${p.transA ? ' tA' : ''}${p.transB ? ' tB' : ''}`;
}

/**
 * The three products of a Linear layer (torch's x·Wᵀ, W [out, in]) over `rows` rows, as the model runs them:
 * forward Y = X·Wᵀ, and in training dX = dY·W and dW = dYᵀ·X (ops.matmul's backward).
 */
export function linearProducts(rows: number, inFeatures: number, outFeatures: number, training: boolean): MatmulProduct[] {
  const fwd = { m: rows, n: outFeatures, k: inFeatures, transB: true };
  return training ? [fwd, { m: rows, n: inFeatures, k: outFeatures }, { m: outFeatures, n: inFeatures, k: rows, transA: true }] : [fwd];
}

export interface AutotuneOptions {
  /** Representative problem [M, N, K]; default 512³ on CPU adapters (one ViT-B layer's linear is ~197×768×768..3072), 2048³ on GPUs. */
  shape?: [number, number, number];
  /** Products timed together (their times summed), e.g. linearProducts(...): the forms a model runs; replaces `shape`. */
  products?: MatmulProduct[];
  /** Variants to try; default MATMUL_VARIANTS plus a few blocked shapes. */
  candidates?: string[];
  /** Re-measure even if a cached result exists. */
  force?: boolean;
  /**
   * 'gpu': time the kernels by timestamp queries (summed pass durations); 'wall': each call with its sync. Default:
   * 'gpu' on GPU adapters that have timestamp-query, 'wall' on CPU adapters (where the two agree).
   */
  clock?: 'gpu' | 'wall';
  runs?: number;
  /** Called with each candidate's result as it is measured (a line for people watching a long tune). */
  onCandidate?: (variant: string, ms: number, note?: string) => void;
}

/**
 * Stop timing a candidate whose first timed run took more than this many times the best time so far: it cannot be
 * the pick (on CPU adapters the slow families take seconds per run at a model's shapes).
 */
export const AUTOTUNE_GIVE_UP_RATIO = 2;

/**
 * A form gets its own variant only when that variant ran its products this much faster than the overall pick did
 * (0.05: 5 %), so that run-to-run noise does not split the choice.
 */
export const AUTOTUNE_FORM_MARGIN = 0.05;

/**
 * One candidate's time for an autotune: the best of `runs` calls after a warm-up call (which compiles pipelines), each
 * call awaited to completion by `call`: the milliseconds `call` returns (its own measurement, e.g. GPU time), or its
 * wall clock where it returns nothing. Stops early once the candidate cannot be the pick: after a timed call over
 * AUTOTUNE_GIVE_UP_RATIO × `bestSoFar` or 20 s; a warm-up past 20 s stands as the time (by wall clock, compile
 * included, whatever `call` returns).
 */
export async function timeCandidate(call: (timed?: boolean) => Promise<number | void>, runs: number, bestSoFar: number): Promise<number> {
  let best = Infinity;
  const idleSince = lastTimedEnd();
  try {
    for (let r = 0; r <= runs; r++) {
      const t0 = performance.now();
      const measured = await call();
      const wall = performance.now() - t0;
      const ms = typeof measured === 'number' ? measured : wall;
      if (r === 0) {
        if (wall > 20_000) return wall;
        // On a GPU that sat idle while the candidate was checked and compiled: its clocks raised first (clocks.ts); a
        // first call measured on the GPU (not wall clock: that includes compiling) counts towards it. Warm-up calls
        // get timed = false (not counted, e.g. by autotuneMatmul's clock bookkeeping).
        await warmClocks(() => call(false), idleSince, typeof measured === 'number' ? measured : 0);
        continue;
      }
      best = Math.min(best, ms);
      if (ms > 20_000 || best > AUTOTUNE_GIVE_UP_RATIO * bestSoFar) break;
    }
  } finally {
    markTimedEnd();
  }
  return best;
}

/**
 * The matmul autotune's default candidates on an adapter: the table's choice first (with a good time known early, slow
 * families are given up after one timed run), its per-form variants, every family, and on GPUs the extra shapes,
 * plain-layout and split-K candidates. `transposed`: whether a product to time is transposed (the plain-layout
 * candidates only run there; elsewhere they are their base kernel).
 */
export function autotuneCandidates(adapterKey: string, transposed: boolean, software: boolean): string[] {
  const table = tableMatmulVariant(adapterKey);
  return [
    ...new Set([
      table,
      ...Object.values(tableMatmulForms(adapterKey)).filter((v) => transposed || !v.endsWith(PLAIN_SUFFIX)),
      // (tiled-vec4, written for GPUs, ran at half of subgroup's rate on lavapipe at 1024³, and may win on a software
      // adapter without subgroups: tried everywhere, a slow candidate costs one timed run)
      ...MATMUL_VARIANTS.filter((v) => v !== 'naive'),
      'subgroup@2x4/0x4',
      'subgroup@1x8/0x4',
      // the table's variant through the plain-layout copy, on every adapter (DEFAULT_PLAIN_MIN_K: it wins some
      // shapes on lavapipe too); of a split-K table variant its base (':plain' and ':k<S>' exclude each other)
      ...(transposed ? [(splitKOf(table)?.base ?? table) + PLAIN_SUFFIX] : []),
      ...(software ? [] : [...GPU_MATMUL_SHAPES, ...(transposed ? GPU_PLAIN_CANDIDATES : []), ...GPU_SPLIT_K_CANDIDATES]),
    ]),
  ];
}

/**
 * Time each candidate (after checking it against the float64 reference on a small awkward shape, in every transpose
 * form) and make the fastest the default for this adapter, in memory and in the Node cache file.
 */
export async function autotuneMatmul(opts: AutotuneOptions = {}): Promise<AutotuneResult> {
  const g = gpu();
  const software = isSoftwareAdapter();
  // A GPU finishes 512³ in microseconds (launch overhead would decide); 2048³ is ~17 GFLOP.
  const shape = opts.shape ?? (software ? [512, 512, 512] : [2048, 2048, 2048]);
  // One of each product (a repeated one would only be timed twice).
  const products: MatmulProduct[] = opts.products?.length
    ? opts.products.filter((p, i, all) => all.findIndex((q) => productLabel(q) === productLabel(p)) === i)
    : [{ m: shape[0], n: shape[1], k: shape[2] }];
  for (const p of products) {
    if (![p.m, p.n, p.k].every((x) => Number.isInteger(x) && x >= 1)) throw new RangeError(`autotuneMatmul: product sizes must be integers >= 1, got ${productLabel(p)}`);
  }
  const labels = products.map(productLabel);
  if (!opts.force) {
    const c = (await readCache()).entries[g.adapterKey];
    // One variant per adapter; a cached result answers when no problem is asked for or it was tuned on the one asked
    // for (tuning for another model's shapes measures again, and the last tuning is the one kept).
    const cachedLabels = c?.products ?? (Array.isArray(c?.shape) ? [productLabel({ m: c.shape[0], n: c.shape[1], k: c.shape[2] })] : []);
    const same = (!opts.shape && !opts.products) || cachedLabels.join('; ') === labels.join('; ');
    const forms = knownForms(c?.forms);
    if (c && same && c.description === g.info.description && knownVariant(c.variant) && forms) {
      setMatmulVariant(g.adapterKey, c.variant, forms, cachedForms(c), measuredKOfLabels(cachedLabels));
      return { adapter: c.adapter, variant: c.variant, timings: c.timings, shape: c.shape, products: cachedLabels, productTimings: c.productTimings, forms, clock: c.clock, fromCache: true };
    }
  }
  const transposed = products.some((p) => p.transA || p.transB);
  const candidates = opts.candidates ?? autotuneCandidates(g.adapterKey, transposed, software);
  const runs = opts.runs ?? 3;
  // GPU time where there is a GPU with timestamp queries; on CPU adapters the kernels are the wall clock anyway.
  const wantGpu = (opts.clock ?? (software ? 'wall' : 'gpu')) === 'gpu';
  let timer: PassTimer | null = null;
  let timedOnGpu = 0;
  let timedOnWall = 0;
  const timings: Record<string, number> = {};
  // Each product timed apart (a variant can be the best for one form and not another).
  const productTimings: Record<string, Record<string, number>> = Object.fromEntries(labels.map((l) => [l, {}]));
  const operands = products.map((p, i) => ({
    p,
    A: GpuArray.fromData(randomArray(p.m * p.k, 1 + 2 * i), p.transA ? [p.k, p.m] : [p.m, p.k]),
    B: GpuArray.fromData(randomArray(p.k * p.n, 2 + 2 * i), p.transB ? [p.n, p.k] : [p.k, p.n]),
  }));
  // Correctness gate in every transpose form (the variant chosen serves all of them, whichever were timed), on two
  // shapes: 13×20×36 (vec4-aligned K, N; ragged M: the scalar fallbacks of the vec4 kernels in the transA forms) and
  // 132×136×44 (aligned in every form, so the vec4 kernels run their own code there, over several 64×64 blocks and
  // edge blocks of 128×128, with a last K tile of 4 of 8).
  const gateForms = [
    [false, false],
    [false, true],
    [true, false],
    [true, true],
  ];
  const gates = [
    [13, 20, 36],
    [132, 136, 44],
  ].flatMap(([cm, cn, ck], s) =>
    gateForms.map(([transA, transB], i) => {
      const ca = randomArray(cm * ck, 3 + 2 * i + 10 * s);
      const cb = randomArray(ck * cn, 4 + 2 * i + 10 * s);
      const aS = transA ? [ck, cm] : [cm, ck];
      const bS = transB ? [cn, ck] : [ck, cn];
      return { transA, transB, expected: matmulRef(ca, aS, cb, bS, { transA, transB }), CA: GpuArray.fromData(ca, aS), CB: GpuArray.fromData(cb, bS) };
    }),
  );
  try {
    timer = wantGpu && g.features.has('timestamp-query') ? new PassTimer(g.device) : null;
    for (const v of candidates) {
      let ok = true;
      for (const c of gates) {
        const cc = matmul(c.CA, c.CB, { variant: v, transA: c.transA, transB: c.transB });
        const got = await cc.read();
        cc.dispose();
        // Sums of ≤ 44 products of values in [-1, 1]: f32 error well under 1e-5.
        if (!(toleranceRatio(got, c.expected, 1e-4, 1e-4) <= 1)) ok = false;
      }
      if (!ok) {
        timings[v] = Infinity;
        opts.onCandidate?.(v, Infinity, 'differs from the float64 reference');
        continue;
      }
      let total = 0;
      const parts: string[] = [];
      for (const [i, { p, A, B }] of operands.entries()) {
        const byVariant = productTimings[labels[i]];
        const ms = await timeCandidate(
          async (timed = true) => {
            const t0 = performance.now();
            if (timer) setPassHook(timer.hook);
            try {
              matmul(A, B, { variant: v, transA: p.transA, transB: p.transB }).dispose();
            } finally {
              if (timer) setPassHook(null);
            }
            await sync();
            const wallMs = performance.now() - t0; // before the timestamps are read back
            if (timer) {
              const gpuMs = await timer.readMs();
              const over = timer.overflow;
              timer.overflow = false;
              // 0: shorter than one timestamp step (a browser's coarse timer); then the wall clock stands
              if (gpuMs > 0 && !over) {
                if (timed) timedOnGpu++;
                return gpuMs;
              }
            }
            if (timed) timedOnWall++;
            return wallMs;
          },
          runs,
          Math.min(Infinity, ...Object.values(byVariant)),
        );
        byVariant[v] = ms;
        total += ms;
        parts.push(`${labels[i]} ${ms.toFixed(2)}`);
      }
      timings[v] = total;
      opts.onCandidate?.(v, total, operands.length > 1 ? parts.join(', ') : undefined);
    }
  } finally {
    timer?.destroy();
    for (const o of operands) for (const x of [o.A, o.B]) x.dispose();
    for (const c of gates) for (const x of [c.CA, c.CB]) x.dispose();
  }
  const variant = Object.entries(timings).sort((x, y) => x[1] - y[1])[0][0];
  const forms = formChoices(products, labels, productTimings, variant);
  setMatmulVariant(g.adapterKey, variant, forms, formsOfLabels(labels), measuredKOfLabels(labels));
  const cache = await readCache();
  const first = products[0];
  // 'mixed': some calls could not be read by timestamps and were timed by wall clock (times less comparable)
  const clock = timedOnGpu > 0 ? (timedOnWall > 0 ? 'mixed' : 'timestamp-query') : 'wall-clock';
  const result: AutotuneResult = { adapter: g.adapterKey, variant, timings, shape: [first.m, first.n, first.k], products: labels, productTimings, forms, clock, fromCache: false };
  cache.entries[g.adapterKey] = { ...result, description: g.info.description };
  await writeCache(cache);
  return result;
}

/**
 * Per form (of the products timed), the variant that ran that form's products fastest, where it beat `overall` there by
 * more than AUTOTUNE_FORM_MARGIN; forms without such a variant are left to `overall`.
 */
export function formChoices(products: MatmulProduct[], labels: string[], productTimings: Record<string, Record<string, number>>, overall: string): Partial<Record<MatmulForm, string>> {
  const forms: Partial<Record<MatmulForm, string>> = {};
  for (const form of MATMUL_FORMS) {
    const ls = [...new Set(labels.filter((_, i) => matmulForm(products[i].transA, products[i].transB) === form))];
    if (!ls.length) continue;
    const sum = (v: string) => ls.reduce((t, l) => t + (productTimings[l][v] ?? Infinity), 0);
    const [best] = Object.keys(productTimings[ls[0]]).sort((x, y) => sum(x) - sum(y));
    if (best !== overall && sum(best) < (1 - AUTOTUNE_FORM_MARGIN) * sum(overall)) forms[form] = best;
  }
  return forms;
}

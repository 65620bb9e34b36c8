// Measured row-kernel variants (softmax, layernorm) per adapter and row length, from `celluscan tune`
// (bench/rows.ts autotuneRows), cached in $XDG_CACHE_HOME/celluscan/rows-autotune.json. rowPlan (softmax.ts) uses a
// measured choice for a kernel and row length when there is one, else the per-adapter table. As with matmul and
// attention, nothing tunes by itself: a command loads the cache when it starts the GPU (src/cli/tune.ts loadTunings).
import { gpu } from './device.js';
import { keyedTuningCache } from './autotune.js';

/** The row kernels a tune chooses for (forward and backward share the choice); cross-entropy keeps the table's. */
export const TUNED_ROW_KERNELS = ['softmax', 'layernorm'] as const;
export type TunedRowKernel = (typeof TUNED_ROW_KERNELS)[number];

/** What `celluscan tune` measured for one kernel and row length. */
export interface RowTuneResult {
  adapter: string;
  kernel: TunedRowKernel;
  /** The shape timed, rows × cols; the choice applies to every row count with these cols. */
  rows: number;
  cols: number;
  mode: 'train' | 'infer';
  /** The chosen variant name (parseRowVariant), or 'library' where the table's choice stayed. */
  choice: string;
  /** What the table's choice runs as (team1/64, …), for the record. */
  library: string;
  /** ms per call of each candidate that passed its check: forward + backward ('train') or forward ('infer'). */
  timings: Record<string, number>;
  failed: Record<string, string>;
  clock: string;
  fromCache: boolean;
}

const CACHE_VERSION = 1;
export const ROW_CACHE_FILE = 'rows-autotune.json';
/** On disk: adapter key → { description, choices: `${kernel}:${cols}` → result } (keyedTuningCache). */
const cache = keyedTuningCache<RowTuneResult>(ROW_CACHE_FILE, CACHE_VERSION, 'choices');

/** adapter key → `${kernel}:${cols}` → variant name (never 'library': that is the absence of an entry). */
const tuned = new Map<string, Map<string, string>>();

export const rowChoiceKey = (kernel: TunedRowKernel, cols: number) => `${kernel}:${cols}`;

/** The measured variant for a kernel and row length on this adapter, or undefined (the table decides). */
export function tunedRowVariant(kernel: TunedRowKernel, cols: number, adapterKey = gpu().adapterKey): string | undefined {
  return tuned.get(adapterKey)?.get(rowChoiceKey(kernel, cols));
}

/** Set (or with undefined / 'library', clear) the measured choice for a kernel and row length. */
export function setRowChoice(kernel: TunedRowKernel, cols: number, variant: string | undefined, adapterKey = gpu().adapterKey): void {
  let m = tuned.get(adapterKey);
  if (!m) tuned.set(adapterKey, (m = new Map()));
  if (variant === undefined || variant === 'library') m.delete(rowChoiceKey(kernel, cols));
  else m.set(rowChoiceKey(kernel, cols), variant);
}

/** Every measured choice on this adapter, `${kernel}:${cols}` → variant (for `info`). */
export function tunedRowChoices(adapterKey = gpu().adapterKey): Record<string, string> {
  return Object.fromEntries(tuned.get(adapterKey) ?? []);
}

/** Forget every measured choice (tests; a new device keeps them, they are per adapter key). */
export function clearRowChoices(): void {
  tuned.clear();
}

/** The cached result for a kernel and row length on this adapter (same adapter description), if any. */
export async function cachedRowResult(kernel: TunedRowKernel, cols: number): Promise<RowTuneResult | undefined> {
  return (await cache.results())[rowChoiceKey(kernel, cols)];
}

/** Record a measured result in memory and in the cache file. */
export async function saveRowResult(r: RowTuneResult): Promise<void> {
  setRowChoice(r.kernel, r.cols, r.choice, gpu().adapterKey);
  await cache.save(rowChoiceKey(r.kernel, r.cols), { ...r, fromCache: false });
}

/**
 * Load the cached row choices for this adapter (Node only). Entries for another adapter description, or naming a
 * variant this build does not parse (checked by `valid`), are skipped. Returns how many were loaded.
 */
export async function loadRowTuning(valid: (variant: string) => boolean): Promise<number> {
  const g = gpu();
  let n = 0;
  for (const r of Object.values(await cache.results())) {
    if (!r || !(TUNED_ROW_KERNELS as readonly string[]).includes(r.kernel) || !Number.isInteger(r.cols) || typeof r.choice !== 'string') continue;
    if (r.choice !== 'library' && !valid(r.choice)) continue;
    setRowChoice(r.kernel, r.cols, r.choice, g.adapterKey);
    n++;
  }
  return n;
}

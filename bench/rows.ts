// The row kernels' lab: softmax or layernorm variants (team sizes, subgroup teams; src/kernels/softmax.ts
// parseRowVariant) on one shape, side by side in one process. Each variant is checked against the float64 reference
// (forward and backward) before it is timed, then all are timed in alternating rounds — one forward and one backward
// call of each variant per round — so that drift on a noisy machine falls on every variant alike.
import { gpu, initGpu, isSoftwareAdapter } from '../src/kernels/device.js';
import { subgroupSize } from '../src/kernels/matmul.js';
import { layerNormBackward, layerNormForward } from '../src/kernels/layernorm.js';
import { GpuArray, scope } from '../src/kernels/memory.js';
import { layerNormBackwardRef, layerNormRef, layerNormTolerance } from '../src/kernels/ref/layernorm.js';
import { randomArray, toleranceRatio } from '../src/kernels/ref/math.js';
import { softmaxBackwardRef, softmaxForwardRef, softmaxTolerance } from '../src/kernels/ref/softmax.js';
import { isRowVariant, parseRowVariant, resolveRowVariant, rowPlan, rowVariantName, setRowVariant, softmaxBackward, softmaxForward, tableRowVariant } from '../src/kernels/softmax.js';
import { cachedRowResult, saveRowResult, setRowChoice, tunedRowVariant, type RowTuneResult, type TunedRowKernel } from '../src/kernels/rowTuning.js';
import { median, timeRuns } from './timing.js';

export const ROW_OPS = ['softmax', 'layernorm'] as const;
export type RowOp = (typeof ROW_OPS)[number];

/** Bytes an ideal kernel moves: forward reads x and writes y; backward reads two row tensors and writes dx. */
export const rowBytes = (rows: number, cols: number) => ({ forward: 2 * rows * cols * 4, backward: 3 * rows * cols * 4 });

export interface RowCompareRow {
  /** The name as given ('library' for the adapter's choice). */
  variant: string;
  /** What ran: team<T>/<WG> or subgroup/<WG>. */
  plan: string;
  fwd_ms: number;
  bwd_ms: number;
  fwd_gbps: number;
  bwd_gbps: number;
  /** The first row's time over this one's (> 1: faster than the first), forward and backward. */
  fwd_vs_first: number;
  bwd_vs_first: number;
}

export interface RowCompareResult {
  op: RowOp;
  adapter: string;
  rows: number;
  cols: number;
  clock: string;
  rounds: number;
  /** Rows compared with the float64 reference (the first and last ones; every row of a small shape). */
  checked_rows: number;
  results: RowCompareRow[];
  /** With keepGoing: the variants that failed their check (or could not run), not timed. */
  failed: { variant: string; error: string }[];
}

/** Elements of the reference check: the first and the last rows up to this many values (rows are independent). */
const CHECK_VALUES = 1 << 21;

/** 'library' (the adapter's own choice), or a row variant name. */
export const LIBRARY = 'library';

/**
 * The variants the lab and the suite time beside the library's choice: on a CPU adapter one invocation per row and a
 * team of 8 (the SIMD width); on a GPU teams of 32 to 256 invocations; one subgroup per row wherever the adapter has a
 * fixed subgroup size.
 */
export function rowCandidates(): string[] {
  return [...(isSoftwareAdapter() ? ['team1', 'team8'] : ['team32', 'team64', 'team128', 'team256']), ...(subgroupSize() ? ['subgroup'] : [])];
}

/**
 * Time `variants` of softmax or layernorm on rows × cols. Inputs as in the tests (softmax x in [-8, 8]; layernorm x in
 * [-2, 2], gamma in [-1.5, 1.5]); dy in [-1, 1].
 */
export async function compareRowVariants(opts: { op: RowOp; rows: number; cols: number; variants: string[]; runs?: number; keepGoing?: boolean }): Promise<RowCompareResult> {
  const { op, rows, cols } = opts;
  if (!ROW_OPS.includes(op)) throw new RangeError(`bench rows: unknown op '${op}' (${ROW_OPS.join(', ')})`);
  if (!(Number.isInteger(rows) && rows >= 1 && Number.isInteger(cols) && cols >= 1)) throw new RangeError(`bench ${op}: rows and cols must be positive integers, got ${rows}×${cols}`);
  if (!opts.variants.length) throw new RangeError(`bench ${op}: no variants to compare`);
  for (const v of opts.variants) if (v !== LIBRARY) parseRowVariant(v); // a bad name fails before any work
  const runs = opts.runs ?? 5;
  if (!(Number.isInteger(runs) && runs >= 1)) throw new RangeError(`bench ${op}: runs must be a positive integer, got ${runs}`);
  await initGpu();
  const g = gpu();
  const n = rows * cols;
  const isSoftmax = op === 'softmax';
  const xs = isSoftmax ? randomArray(n, 1, -8, 8) : randomArray(n, 1, -2, 2);
  const gs = randomArray(cols, 2, -1.5, 1.5);
  const bs = randomArray(cols, 3);
  const dys = randomArray(n, 4);
  const x = GpuArray.fromData(xs, [rows, cols]);
  const dy = GpuArray.fromData(dys, [rows, cols]);
  const gamma = GpuArray.fromData(gs, [cols]);
  const beta = GpuArray.fromData(bs, [cols]);
  const eps = 1e-6;
  // Rows checked: the first and the last `half` (all of them when that covers the shape).
  const half = Math.max(1, Math.floor(CHECK_VALUES / 2 / cols));
  const checked = rows <= 2 * half ? [[0, rows]] : [[0, half], [rows - half, rows]];
  const part = (a: Float32Array, [r0, r1]: number[]) => a.subarray(r0 * cols, r1 * cols);
  // The tests' tolerances for this row length (past 32 768 columns they grow with the blocked row sums' error:
  // ref/math.ts rowSumToleranceScale).
  const softmaxTol = softmaxTolerance(cols);
  const layerNormTol = layerNormTolerance(cols);
  const worst = (got: Float32Array, ref: (range: number[]) => ArrayLike<number>, tol: readonly [number, number]) =>
    Math.max(...checked.map((range) => toleranceRatio(part(got, range), ref(range), tol[0], tol[1])));

  // Saved forward outputs for the backward (each variant's own).
  const fwd = () => (isSoftmax ? { y: softmaxForward(x) } : layerNormForward(x, gamma, beta, eps));
  const bwd = (f: ReturnType<typeof fwd>) =>
    isSoftmax ? softmaxBackward(f.y, dy) : layerNormBackward(x, gamma, (f as ReturnType<typeof layerNormForward>).mean, (f as ReturnType<typeof layerNormForward>).rstd, dy).dx;
  const use = (v: string) => setRowVariant(v === LIBRARY ? null : v);
  const times = new Map<string, { f: number[]; b: number[]; fw: number[]; bw: number[]; plan: string; saved: ReturnType<typeof fwd> }>();
  /** Check variant v against the reference; a passing one keeps its forward outputs for the timed backward. */
  const checkOne = async (v: string) => {
    use(v);
    const plan = rowVariantName(rowPlan(rows, cols, op));
    const f = fwd();
    const y = await f.y.read();
    const dx = await scope(() => bwd(f)).read();
    const errF = isSoftmax
      ? worst(y, (r) => softmaxForwardRef(part(xs, r), cols), softmaxTol.forward)
      : worst(y, (r) => layerNormRef(part(xs, r), gs, bs, cols, eps).y, layerNormTol.y);
    // The backward against the reference applied to this variant's own y (softmax), or from x (layernorm).
    const errB = isSoftmax
      ? worst(dx, (r) => softmaxBackwardRef(part(y, r), part(dys, r), cols), softmaxTol.backward)
      : worst(dx, (r) => layerNormBackwardRef(part(xs, r), gs, part(dys, r), cols, eps).dx, layerNormTol.dx);
    if (!(errF <= 1 && errB <= 1)) {
      for (const a of Object.values(f)) a.dispose();
      throw new Error(`bench ${op}: variant ${v} (${plan}) disagrees with the float64 reference on ${rows}×${cols} (error/tolerance: forward ${errF.toPrecision(3)}, backward ${errB.toPrecision(3)})`);
    }
    times.set(v, { f: [], b: [], fw: [], bw: [], plan, saved: f });
  };
  const failed: { variant: string; error: string }[] = [];
  try {
    for (const v of opts.variants) {
      try {
        await checkOne(v);
      } catch (e) {
        if (!opts.keepGoing) throw e;
        failed.push({ variant: v, error: (e as Error).message });
      }
    }
    const timed = opts.variants.filter((v) => times.has(v));
    for (let r = 0; r < runs; r++) {
      for (const v of timed) {
        use(v);
        const t = times.get(v)!;
        // One warm-up call each (timeRuns' default is 2) in the first round only: the check above compiled the pipelines.
        const tf = await timeRuns(() => scope(() => void fwd()), { runs: 1, warmup: r === 0 ? 1 : 0 });
        const tb = await timeRuns(() => scope(() => void bwd(t.saved)), { runs: 1, warmup: r === 0 ? 1 : 0 });
        t.fw.push(tf.wallMs);
        t.bw.push(tb.wallMs);
        if (tf.gpuMs !== null) t.f.push(tf.gpuMs);
        if (tb.gpuMs !== null) t.b.push(tb.gpuMs);
      }
    }
  } finally {
    setRowVariant(null);
    for (const t of times.values()) for (const a of Object.values(t.saved)) a.dispose();
    for (const a of [x, dy, gamma, beta]) a.dispose();
  }
  // GPU time only when every variant has it for every round (else wall clock for all, so the ratios compare alike).
  const gpuClock = times.size > 0 && [...times.values()].every((t) => t.f.length === runs && t.b.length === runs);
  const bytes = rowBytes(rows, cols);
  const results = opts.variants.filter((v) => times.has(v)).map((v) => {
    const t = times.get(v)!;
    const fms = gpuClock ? median(t.f) : Math.min(...t.fw);
    const bms = gpuClock ? median(t.b) : Math.min(...t.bw);
    return { variant: v, plan: t.plan, fwd_ms: fms, bwd_ms: bms, fwd_gbps: bytes.forward / fms / 1e6, bwd_gbps: bytes.backward / bms / 1e6, fwd_vs_first: 0, bwd_vs_first: 0 };
  });
  for (const r of results) {
    r.fwd_vs_first = results[0].fwd_ms / r.fwd_ms;
    r.bwd_vs_first = results[0].bwd_ms / r.bwd_ms;
  }
  return { op, adapter: g.adapterKey, rows, cols, clock: gpuClock ? 'timestamp-query (median)' : 'wall clock (best)', rounds: runs, checked_rows: checked.reduce((s, [a, b]) => s + b - a, 0), results, failed };
}

/**
 * `celluscan tune`'s row step: time the table's choice ('library') and the candidates (rowCandidates) for one kernel
 * at the model's shape — alternated, each checked against float64 first — and keep the fastest for this kernel and row
 * length on this adapter, in memory and in the cache file; the table's choice stays unless another variant beats it by
 * `margin` (ms per call: forward + backward for 'train', forward for 'infer'). A cached result for the same shape and
 * mode answers without timing (unless `force`, or explicit `candidates`).
 */
export async function autotuneRows(opts: {
  kernel: TunedRowKernel;
  rows: number;
  cols: number;
  mode: 'train' | 'infer';
  runs?: number;
  force?: boolean;
  margin?: number;
  candidates?: string[];
}): Promise<RowTuneResult> {
  const { kernel, rows, cols, mode } = opts;
  if (mode !== 'train' && mode !== 'infer') throw new RangeError(`autotuneRows: mode must be 'train' or 'infer', got '${String(mode)}'`);
  const margin = opts.margin ?? 0.05;
  if (!(margin >= 0 && margin <= 1)) throw new RangeError(`autotuneRows: margin must be in [0, 1], got ${margin}`);
  if (opts.candidates !== undefined && !opts.candidates.length) throw new RangeError('autotuneRows: no candidates');
  for (const v of opts.candidates ?? []) parseRowVariant(v);
  await initGpu();
  if (!opts.force && opts.candidates === undefined) {
    const c = await cachedRowResult(kernel, cols);
    if (c && c.rows === rows && c.mode === mode && (c.choice === LIBRARY || isRowVariant(c.choice))) {
      setRowChoice(kernel, cols, c.choice);
      return { ...c, fromCache: true };
    }
  }
  // While timing, 'library' is the table's choice: a measured one from before is set aside (and put back on failure).
  const before = tunedRowVariant(kernel, cols);
  setRowChoice(kernel, cols, undefined);
  const table = tableRowVariant(rows, cols);
  let res: RowCompareResult;
  try {
    // A candidate that runs as the table's own plan would only time it twice.
    const sameAsTable = (v: string) => {
      try {
        return resolveRowVariant(v) === table;
      } catch {
        return false; // cannot run here: timed as a failure, so the result says why
      }
    };
    const candidates = (opts.candidates ?? rowCandidates()).filter((v) => !sameAsTable(v));
    res = await compareRowVariants({ op: kernel, rows, cols, variants: [LIBRARY, ...candidates], runs: opts.runs ?? 5, keepGoing: true });
  } catch (e) {
    setRowChoice(kernel, cols, before);
    throw e;
  }
  const cost = (x: RowCompareRow) => (mode === 'train' ? x.fwd_ms + x.bwd_ms : x.fwd_ms);
  const timings = Object.fromEntries(res.results.map((x) => [x.variant, cost(x)]));
  const failed = Object.fromEntries(res.failed.map((f) => [f.variant, f.error]));
  if (!res.results.length) {
    setRowChoice(kernel, cols, before);
    throw new Error(`autotuneRows: no ${kernel} variant ran correctly at ${rows}×${cols}: ${res.failed.map((f) => `${f.variant}: ${f.error}`).join('; ')}`);
  }
  const ranked = [...res.results].sort((a, b) => cost(a) - cost(b));
  const lib = res.results.find((x) => x.variant === LIBRARY);
  // The table's choice stays unless another beats it by the margin.
  const best = ranked[0];
  const choice = lib && cost(best) > cost(lib) * (1 - margin) ? LIBRARY : best.variant;
  const result: RowTuneResult = { adapter: res.adapter, kernel, rows, cols, mode, choice, library: table, timings, failed, clock: res.clock, fromCache: false };
  await saveRowResult(result);
  return result;
}

// Softmax over the last axis, forward and backward. WGSL: shaders/softmax.wgsl,
// shaders/softmax_backward.wgsl. Reference: ref/softmax.ts.
//
// Row kernels (softmax, layernorm, cross-entropy) share rowPlan(): each row is handled by a "team"
// of T invocations (a power of two). T = 1 is one invocation per row with no barriers at all; larger
// teams reduce through workgroup memory (log2 T barriers per reduction). lavapipe runs barriers
// slowly and runs a workgroup on one CPU core anyway, so it wants small teams; a real GPU wants
// teams large enough to coalesce loads and keep its many lanes busy. The choice is per adapter.
import { gpu } from './device.js';
import { dispatch, grid2d, packUniforms, pipeline } from './launch.js';
import { GpuArray, fmt } from './memory.js';
import { subgroupSize } from './matmul.js';
import { tunedRowVariant, type TunedRowKernel } from './rowTuning.js';

export interface RowPlan {
  /** Invocations per row. */
  T: number;
  /** Workgroup size (a multiple of T); WG / T rows per workgroup. */
  WG: number;
  /** The team is one subgroup (T = the adapter's fixed subgroup size) reducing with subgroup builtins, not barriers. */
  subgroup: boolean;
  groups: [number, number];
}

/** A row-kernel variant: how rows are split over invocations (see shaders/lib/row_team.wgsl). */
export interface RowVariant {
  /** 'team': T invocations per row reducing through workgroup memory; 'subgroup': one subgroup per row. */
  kind: 'team' | 'subgroup';
  /** Invocations per row ('team' only; a subgroup team has the adapter's subgroup size). */
  T?: number;
  /** Workgroup size; default max(T, 64) for teams, 128 for subgroup teams. */
  WG?: number;
}

/**
 * CPU adapters (lavapipe's llvmpipe, SwiftShader) run a workgroup on one core with 8 SIMD lanes and
 * pay dearly for each barrier (measured with bench/softmax.ts on llvmpipe, 2 cores: 70 000×7 takes
 * 7 ms with T = 1 and 12 s with T = 256; 4728×197 takes 11 ms with T = 1 and 290 ms with T = 256),
 * so they use one invocation per row, except for a few long rows (1×100 000: 2.9 ms with T = 1,
 * 1.6 ms with T = 16), where a small team fills the SIMD lanes. Subgroup teams (one row per 8-lane subgroup, no
 * barriers) did not pay there either: 0.8–1.3× of T = 1 at 2176×64, 1576×768 and 4728×197 (2026-11-26).
 */
const CPU_ADAPTERS = new Set(['llvmpipe', 'swiftshader']);

let forced: RowVariant | null = null;

const isPow2 = (n: number, max: number) => Number.isInteger(n) && n >= 1 && n <= max && (n & (n - 1)) === 0;

/** Default workgroup of a subgroup team: 128 invocations, or one subgroup where subgroups are larger. */
const SUBGROUP_TEAM_WG = 128;

/**
 * Parse a row-kernel variant name: 'team<T>' or 'team<T>/<WG>' (T invocations per row, a power of two up to 256,
 * reducing through workgroup memory; 'team1' is one invocation per row, no barriers), 'subgroup' or 'subgroup/<WG>'
 * (one subgroup per row, reducing with subgroup builtins; needs the adapter's 'subgroups' feature with a fixed
 * subgroup size, checked when a plan is made).
 */
export function parseRowVariant(name: string): RowVariant {
  const m = /^(team(\d+)|subgroup)(?:\/(\d+))?$/.exec(name);
  const bad = (why: string) => new RangeError(`row kernels: bad variant '${name}': ${why}`);
  if (!m) throw bad(`expected team<T>, team<T>/<WG>, subgroup or subgroup/<WG> (e.g. team1, team128/128, subgroup/64)`);
  const WG = m[3] === undefined ? undefined : Number(m[3]);
  if (WG !== undefined && !isPow2(WG, 256)) throw bad(`workgroup ${WG} is not a power of two in [1, 256]`);
  if (m[1] === 'subgroup') return { kind: 'subgroup', WG };
  const T = Number(m[2]);
  if (!isPow2(T, 256)) throw bad(`team ${T} is not a power of two in [1, 256]`);
  if (WG !== undefined && WG < T) throw bad(`workgroup ${WG} is smaller than the team ${T}`);
  return { kind: 'team', T, WG };
}

/** Whether a name parses as a row variant (a tuning cache written by another build may name one this build lacks). */
export function isRowVariant(name: string): boolean {
  try {
    parseRowVariant(name);
    return true;
  } catch {
    return false;
  }
}

/** The name of a plan's variant, as parseRowVariant reads it: 'team1/64', 'subgroup/128'. */
export function rowVariantName(p: Pick<RowPlan, 'T' | 'WG' | 'subgroup'>): string {
  return p.subgroup ? `subgroup/${p.WG}` : `team${p.T}/${p.WG}`;
}

/**
 * Force the variant of every row kernel (a name as parseRowVariant reads it, or a parsed one), for tests and
 * benchmarks; null restores the per-adapter choice.
 */
export function setRowVariant(v: string | RowVariant | null): void {
  forced = v === null ? null : typeof v === 'string' ? parseRowVariant(v) : parseRowVariant(variantString(v));
}

const variantString = (v: RowVariant) => (v.kind === 'subgroup' ? 'subgroup' : `team${v.T}`) + (v.WG === undefined ? '' : `/${v.WG}`);

/**
 * Force the team size (and optionally the workgroup size) of every row kernel, for tests and
 * benchmarks; null restores the per-adapter choice. (setRowVariant names subgroup teams too.)
 */
export function setRowTeamSize(T: number | null, WG?: number): void {
  if (T !== null && !isPow2(T, 256)) throw new RangeError(`setRowTeamSize: ${T} is not a power of two in [1, 256]`);
  if (T !== null && WG !== undefined && !(isPow2(WG, 256) && WG >= T)) throw new RangeError(`setRowTeamSize: workgroup ${WG} is not a power of two in [${T}, 256]`);
  forced = T === null ? null : { kind: 'team', T, WG };
}

const pow2ceil = (n: number) => 2 ** Math.ceil(Math.log2(Math.max(1, n)));

function choose(rows: number, cols: number): RowVariant {
  if (CPU_ADAPTERS.has(gpu().adapterKey)) {
    if (rows >= 32 || cols < 2048) return { kind: 'team', T: 1, WG: 64 };
    const T = Math.min(16, pow2ceil(cols / 2048));
    return { kind: 'team', T, WG: T };
  }
  // NVIDIA (fixed subgroups of 32): one subgroup per row, reduced without barriers, for rows of 128 to 1024. H200,
  // 2026-11-26, GPU time at batch-32 ViT-B/16 shapes (`tune`'s row step): softmax 75 648×197 0.489 ms against 0.600 for
  // the team of 32 below, layernorm 6304×768 0.458 against 0.483 for its team of 128.
  if (gpu().adapterKey.startsWith('nvidia') && cols >= 128 && cols <= 1024 && subgroupSize() !== null) return { kind: 'subgroup' };
  // Other GPUs: about 8 elements per invocation, up to a 256-wide workgroup per row (coalesced loads).
  const T = Math.min(256, pow2ceil(Math.ceil(cols / 8)));
  return { kind: 'team', T, WG: Math.max(T, 64) };
}

/** Resolve a variant to a team size and workgroup on the current adapter (a subgroup team needs a fixed subgroup size). */
function resolve(v: RowVariant): { T: number; WG: number; subgroup: boolean } {
  if (v.kind === 'team') {
    const T = v.T ?? 1;
    return { T, WG: v.WG ?? Math.max(T, 64), subgroup: false };
  }
  const S = subgroupSize();
  if (!S) throw new RangeError(`row kernels: variant '${variantString(v)}' needs the adapter's 'subgroups' feature with a fixed subgroup size (${gpu().adapterKey} has none)`);
  const WG = v.WG ?? Math.max(S, SUBGROUP_TEAM_WG);
  if (WG % S !== 0) throw new RangeError(`row kernels: variant '${variantString(v)}': the workgroup ${WG} is not a multiple of the subgroup size ${S}`);
  return { T: S, WG, subgroup: true };
}

/** What rowPlan runs: a forced variant, else the measured one for this kernel and row length, else the table's. */
function planFor(rows: number, cols: number, kernel?: TunedRowKernel): { T: number; WG: number; subgroup: boolean } {
  if (forced) return resolve(forced);
  const tuned = kernel ? tunedRowVariant(kernel, cols) : undefined;
  if (tuned) {
    try {
      return resolve(parseRowVariant(tuned)); // runs on this adapter (a cache is per adapter description, so it should)
    } catch {
      /* not runnable here: the table's choice */
    }
  }
  return resolve(choose(rows, cols));
}

/**
 * How the row kernels split rows × cols over workgroups on the current adapter. `kernel`: the tuned kernel this plan
 * is for (its measured choice for this row length applies; `celluscan tune`, src/kernels/rowTuning.ts).
 */
export function rowPlan(rows: number, cols: number, kernel?: TunedRowKernel): RowPlan {
  const c = planFor(rows, cols, kernel);
  return { ...c, groups: grid2d(Math.ceil(rows / (c.WG / c.T))) };
}

/** The table's rule on this adapter, in words (for `info`). */
export function describeRowRule(adapterKey = gpu().adapterKey): string {
  return CPU_ADAPTERS.has(adapterKey)
    ? 'team1 (one invocation per row; a team of up to 16 for fewer than 32 rows of 2048+)'
    : adapterKey.startsWith('nvidia')
      ? 'one subgroup per row for 128 to 1024 columns (fixed subgroup size), else a team of about cols/8 invocations (32 to 256) per row'
      : 'a team of about cols/8 invocations (32 to 256) per row';
}

/** What a variant name runs as on this adapter (e.g. 'subgroup' → 'subgroup/128'); throws where it cannot run. */
export function resolveRowVariant(name: string): string {
  return rowVariantName(resolve(parseRowVariant(name)));
}

/** The table's variant for rows × cols on this adapter (what rowPlan runs without a forced or measured choice). */
export function tableRowVariant(rows: number, cols: number): string {
  return rowVariantName(resolve(choose(rows, cols)));
}

/** The pipeline of row kernel `name` (a shader that includes shaders/lib/row_team.wgsl) for plan p. */
export function rowPipeline(name: string, p: RowPlan): GPUComputePipeline {
  return pipeline(name, { WG: p.WG, T: p.T, SUBGROUP_TEAM: String(p.subgroup) }, 'main', () =>
    p.subgroup
      ? { ENABLE: 'enable subgroups;', SG_MAX: 'subgroupMax', SG_ADD: 'subgroupAdd' }
      : { ENABLE: '', SG_MAX: 'no_subgroup_max', SG_ADD: 'no_subgroup_add' },
  );
}

function rowsOf(op: string, a: GpuArray): [number, number] {
  if (a.rank < 1) throw new RangeError(`${op}: x must have at least one dimension, got ${fmt(a.shape)}`);
  const cols = a.shape[a.rank - 1];
  return [cols === 0 ? 0 : a.size / cols, cols];
}

/** y = softmax(x) over the last axis, numerically stable (the row max is subtracted first). */
export function softmaxForward(x: GpuArray): GpuArray {
  const op = 'softmaxForward';
  const [rows, cols] = rowsOf(op, x);
  const y = GpuArray.empty(x.shape, op);
  if (x.size === 0) return y;
  const p = rowPlan(rows, cols, 'softmax');
  dispatch(op, rowPipeline('softmax', p), [x.buffer, y.buffer], packUniforms([['u32', rows], ['u32', cols]]), p.groups);
  return y;
}

/** dx = y ∘ (dy − rowsum(dy ∘ y)), from the forward output y. */
export function softmaxBackward(y: GpuArray, dy: GpuArray): GpuArray {
  const op = 'softmaxBackward';
  if (dy.shape.length !== y.shape.length || dy.shape.some((d, i) => d !== y.shape[i])) {
    throw new RangeError(`${op}: dy ${fmt(dy.shape)} does not match y ${fmt(y.shape)}`);
  }
  const [rows, cols] = rowsOf(op, y);
  const dx = GpuArray.empty(y.shape, op);
  if (y.size === 0) return dx;
  const p = rowPlan(rows, cols, 'softmax');
  dispatch(op, rowPipeline('softmax_backward', p), [y.buffer, dy.buffer, dx.buffer], packUniforms([['u32', rows], ['u32', cols]]), p.groups);
  return dx;
}

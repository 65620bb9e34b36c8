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

export interface RowPlan {
  /** Invocations per row. */
  T: number;
  /** Workgroup size (a multiple of T); WG / T rows per workgroup. */
  WG: number;
  groups: [number, number];
}

/**
 * CPU adapters (lavapipe's llvmpipe, SwiftShader) run a workgroup on one core with 8 SIMD lanes and
 * pay dearly for each barrier (measured with bench/softmax.ts on llvmpipe, 2 cores: 70 000×7 takes
 * 7 ms with T = 1 and 12 s with T = 256; 4728×197 takes 11 ms with T = 1 and 290 ms with T = 256),
 * so they use one invocation per row, except for a few long rows (1×100 000: 2.9 ms with T = 1,
 * 1.6 ms with T = 16), where a small team fills the SIMD lanes.
 */
const CPU_ADAPTERS = new Set(['llvmpipe', 'swiftshader']);

let forced: { T: number; WG?: number } | null = null;

const isPow2 = (n: number, max: number) => Number.isInteger(n) && n >= 1 && n <= max && (n & (n - 1)) === 0;

/**
 * Force the team size (and optionally the workgroup size) of every row kernel, for tests and
 * benchmarks; null restores the per-adapter choice.
 */
export function setRowTeamSize(T: number | null, WG?: number): void {
  if (T !== null && !isPow2(T, 256)) throw new RangeError(`setRowTeamSize: ${T} is not a power of two in [1, 256]`);
  if (T !== null && WG !== undefined && !(isPow2(WG, 256) && WG >= T)) throw new RangeError(`setRowTeamSize: workgroup ${WG} is not a power of two in [${T}, 256]`);
  forced = T === null ? null : { T, WG };
}

const pow2ceil = (n: number) => 2 ** Math.ceil(Math.log2(Math.max(1, n)));

function choose(rows: number, cols: number): { T: number; WG: number } {
  if (CPU_ADAPTERS.has(gpu().adapterKey)) {
    if (rows >= 32 || cols < 2048) return { T: 1, WG: 64 };
    const T = Math.min(16, pow2ceil(cols / 2048));
    return { T, WG: T };
  }
  // A GPU: about 8 elements per invocation, up to a 256-wide workgroup per row (coalesced loads).
  const T = Math.min(256, pow2ceil(Math.ceil(cols / 8)));
  return { T, WG: Math.max(T, 64) };
}

/** How the row kernels split rows × cols over workgroups on the current adapter. */
export function rowPlan(rows: number, cols: number): RowPlan {
  const c = forced ? { T: forced.T, WG: forced.WG ?? Math.max(forced.T, 64) } : choose(rows, cols);
  return { ...c, groups: grid2d(Math.ceil(rows / (c.WG / c.T))) };
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
  const p = rowPlan(rows, cols);
  dispatch(op, pipeline('softmax', { WG: p.WG, T: p.T }), [x.buffer, y.buffer], packUniforms([['u32', rows], ['u32', cols]]), p.groups);
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
  const p = rowPlan(rows, cols);
  dispatch(op, pipeline('softmax_backward', { WG: p.WG, T: p.T }), [y.buffer, dy.buffer, dx.buffer], packUniforms([['u32', rows], ['u32', cols]]), p.groups);
  return dx;
}

// Layout ops: permute/transpose, slice, concat, pad. All are one strided-copy kernel
// (shaders/permute.wgsl) over a view whose dims the launcher merges (mergeDims) to a rank <= 8; a view
// that merges to one contiguous run is a plain buffer copy instead. Reference: ref/layout.ts.
import { MAX_KERNEL_RANK, contiguousStrides, fill, mergeDims, vec8 } from './elementwise.js';
import { dispatch, grid2d, packUniforms, pipeline } from './launch.js';
import { GpuArray, copyBuffer, fmt, shapeSize } from './memory.js';

/**
 * dst[dstOff + Σ idx·dstStrides] = src[srcOff + Σ idx·srcStrides] for every multi-index of shape.
 * Strides and offsets in elements.
 */
function stridedCopy(
  op: string, src: GpuArray, dst: GpuArray, shape: readonly number[],
  srcStrides: readonly number[], dstStrides: readonly number[], srcOff: number, dstOff: number, accumulate = false,
): void {
  const n = shapeSize(shape);
  if (n === 0) return;
  const m = mergeDims(shape, [srcStrides, dstStrides]);
  const rank = m.shape.length;
  if (!accumulate && rank === 1 && (m.shape[0] === 1 || (m.strides[0][0] === 1 && m.strides[1][0] === 1))) {
    copyBuffer(src.buffer, dst.buffer, n * 4, srcOff * 4, dstOff * 4);
    return;
  }
  if (rank > MAX_KERNEL_RANK) {
    throw new RangeError(`${op}: shape ${fmt(shape)} needs ${rank} dims after merging; the kernel takes ${MAX_KERNEL_RANK}`);
  }
  // Runs of 4 contiguous elements on both sides, every stride and offset a multiple of 4 (the per-head D of a
  // q/k/v split or merge, a slice of whole rows): move vec4s, a quarter of the invocations and index arithmetic.
  const last = rank - 1;
  const vec4 =
    m.shape[last] % 4 === 0 && m.strides[0][last] === 1 && m.strides[1][last] === 1 && srcOff % 4 === 0 && dstOff % 4 === 0 &&
    m.strides.every((s) => s.every((v, d) => d === last || v % 4 === 0));
  const w = vec4 ? 4 : 1;
  const shp = m.shape.map((d, i) => (i === last ? d / w : d));
  const [ss, ds] = m.strides.map((s) => s.map((v, d) => (vec4 && d === last ? 1 : v / w)));
  const count = n / w;
  const u = packUniforms([
    ['u32', count], ['u32', srcOff / w], ['u32', dstOff / w], ['u32', 0],
    ...vec8(shp), ...vec8(ss), ...vec8(ds),
  ]);
  const index = count >= SPECIALISE_MIN / w ? specialisedIndex(shp, ss, ds) : GENERIC_INDEX.replace('{{RANK}}', String(rank));
  const store = accumulate ? '  dst[id] = dst[id] + src[is];' : '  dst[id] = src[is];';
  const T = vec4 ? 'vec4<f32>' : 'f32';
  dispatch(op, pipeline('permute', { INDEX: index, STORE: store, T }), [src.buffer, dst.buffer], u, grid2d(Math.ceil(count / 256)));
}

/** Copies of at least this many elements get a kernel with their shape and strides compiled in. */
const SPECIALISE_MIN = 4096;

const GENERIC_INDEX = `  for (var d = {{RANK}}u; d > 0u; d--) {
    let k = d - 1u;
    let s = P.shape[k / 4u][k % 4u];
    let idx = rem % s;
    rem = rem / s;
    is += idx * P.ss[k / 4u][k % 4u];
    id += idx * P.ds[k / 4u][k % 4u];
  }`;

/** The index arithmetic of GENERIC_INDEX unrolled for one (merged) shape, with its strides as constants. */
function specialisedIndex(shape: readonly number[], ss: readonly number[], ds: readonly number[]): string {
  const lines: string[] = [];
  for (let k = shape.length - 1; k >= 0; k--) {
    const idx = k === 0 ? 'rem' : `rem % ${shape[k]}u`;
    lines.push(`  { let idx = ${idx};${k > 0 ? ` rem = rem / ${shape[k]}u;` : ''} is += idx * ${ss[k]}u; id += idx * ${ds[k]}u; }`);
  }
  return lines.join('\n');
}

function normAxis(op: string, axis: number, shape: readonly number[]): number {
  if (!Number.isInteger(axis) || axis < -shape.length || axis >= shape.length) {
    throw new RangeError(`${op}: axis ${axis} is out of range for shape ${fmt(shape)}`);
  }
  return axis < 0 ? axis + shape.length : axis;
}

/** out.shape[i] = x.shape[perm[i]]: a general N-D permutation (any rank whose merged view is <= 8-D). */
export function permute(x: GpuArray, perm: number[]): GpuArray {
  const r = x.rank;
  const seen = new Set(perm);
  if (perm.length !== r || seen.size !== r || !perm.every((p) => Number.isInteger(p) && p >= 0 && p < r)) {
    throw new RangeError(`permute: [${perm.join(', ')}] is not a permutation of the ${r} axes of ${fmt(x.shape)}`);
  }
  const shape = perm.map((p) => x.shape[p]);
  const xs = contiguousStrides(x.shape);
  const out = GpuArray.empty(shape, 'permute');
  stridedCopy('permute', x, out, shape, perm.map((p) => xs[p]), contiguousStrides(shape), 0, 0);
  return out;
}

/** Swap axes a and b (default: the last two; negative allowed). */
export function transpose(x: GpuArray, a = -2, b = -1): GpuArray {
  if (x.rank < 2 && (a === -2 || b === -2)) {
    throw new RangeError(`transpose: shape ${fmt(x.shape)} has fewer than 2 axes`);
  }
  const i = normAxis('transpose', a, x.shape);
  const j = normAxis('transpose', b, x.shape);
  const r = x.rank;
  // The last two axes with both multiples of 4: 4×4 blocks moved as vec4s (shaders/transpose4.wgsl).
  if (Math.min(i, j) === r - 2 && Math.max(i, j) === r - 1 && x.shape[r - 2] % 4 === 0 && x.shape[r - 1] % 4 === 0 && x.size > 0) {
    const [R, C] = x.shape.slice(-2);
    const out = GpuArray.empty([...x.shape.slice(0, -2), C, R], 'transpose');
    const blocks = x.size / 16;
    dispatch('transpose', pipeline('transpose4'), [x.buffer, out.buffer], packUniforms([['u32', blocks], ['u32', R / 4], ['u32', C / 4], ['u32', 0]]), grid2d(Math.ceil(blocks / 256)));
    return out;
  }
  const perm = x.shape.map((_, k) => k);
  perm[i] = j;
  perm[j] = i;
  return permute(x, perm);
}

/** x[starts[0]:ends[0], ...]: one [start, end) per axis, negative indices counted from the end. */
export function slice(x: GpuArray, starts: number[], ends: number[]): GpuArray {
  if (starts.length !== x.rank || ends.length !== x.rank) {
    throw new RangeError(`slice: starts [${starts.join(', ')}] and ends [${ends.join(', ')}] need one entry per axis of ${fmt(x.shape)}`);
  }
  const s: number[] = [];
  const shape: number[] = [];
  x.shape.forEach((dim, d) => {
    const a = starts[d] < 0 ? starts[d] + dim : starts[d];
    const b = ends[d] < 0 ? ends[d] + dim : ends[d];
    if (!Number.isInteger(a) || !Number.isInteger(b) || a < 0 || b > dim || a > b) {
      throw new RangeError(`slice: [${starts[d]}, ${ends[d]}) is out of range for axis ${d} of ${fmt(x.shape)}`);
    }
    s.push(a);
    shape.push(b - a);
  });
  const xs = contiguousStrides(x.shape);
  const out = GpuArray.empty(shape, 'slice');
  const off = s.reduce((acc, a, d) => acc + a * xs[d], 0);
  stridedCopy('slice', x, out, shape, xs, contiguousStrides(shape), off, 0);
  return out;
}

/**
 * dst[starts[0] + i0, starts[1] + i1, …] += src[i0, i1, …] in place: slice's adjoint accumulated straight into a
 * gradient buffer (the autograd's slice backward), instead of padding src with zeros to dst's size and adding that.
 */
export function addToSlice(dst: GpuArray, src: GpuArray, starts: number[]): void {
  if (starts.length !== dst.rank || src.rank !== dst.rank) {
    throw new RangeError(`addToSlice: src ${fmt(src.shape)} and starts [${starts.join(', ')}] need one axis per axis of dst ${fmt(dst.shape)}`);
  }
  starts.forEach((a, d) => {
    if (!Number.isInteger(a) || a < 0 || a + src.shape[d] > dst.shape[d]) {
      throw new RangeError(`addToSlice: src ${fmt(src.shape)} at [${starts.join(', ')}] does not fit in dst ${fmt(dst.shape)} (axis ${d})`);
    }
  });
  if (src.buffer === dst.buffer) throw new RangeError('addToSlice: src and dst share a buffer');
  const ds = contiguousStrides(dst.shape);
  const off = starts.reduce((acc, a, d) => acc + a * ds[d], 0);
  stridedCopy('addToSlice', src, dst, src.shape, contiguousStrides(src.shape), ds, 0, off, true);
}

/** Join arrays along axis (negative allowed); all other dims must agree. */
export function concat(xs: GpuArray[], axis: number): GpuArray {
  if (xs.length === 0) throw new RangeError('concat: no arrays to join');
  const first = xs[0].shape;
  const ax = normAxis('concat', axis, first);
  for (const x of xs) {
    if (x.rank !== first.length || x.shape.some((d, i) => i !== ax && d !== first[i])) {
      throw new RangeError(`concat: shapes ${fmt(first)} and ${fmt(x.shape)} differ outside axis ${axis}`);
    }
  }
  const shape = [...first];
  shape[ax] = xs.reduce((n, x) => n + x.shape[ax], 0);
  const out = GpuArray.empty(shape, 'concat');
  const os = contiguousStrides(shape);
  let at = 0;
  for (const x of xs) {
    stridedCopy('concat', x, out, x.shape, contiguousStrides(x.shape), os, 0, at * os[ax]);
    at += x.shape[ax];
  }
  return out;
}

/** Pad each axis d with before[d] and after[d] elements of value (default 0): slice's adjoint. */
export function pad(x: GpuArray, before: number[], after: number[], value = 0): GpuArray {
  const ok = (v: number[]) => v.length === x.rank && v.every((p) => Number.isInteger(p) && p >= 0);
  if (!ok(before) || !ok(after)) {
    throw new RangeError(`pad: before [${before.join(', ')}] and after [${after.join(', ')}] need one integer >= 0 per axis of ${fmt(x.shape)}`);
  }
  const shape = x.shape.map((d, i) => d + before[i] + after[i]);
  const out = before.some((p) => p > 0) || after.some((p) => p > 0) ? fill(shape, value) : GpuArray.empty(shape, 'pad');
  const os = contiguousStrides(shape);
  const off = before.reduce((acc, p, d) => acc + p * os[d], 0);
  stridedCopy('pad', x, out, x.shape, contiguousStrides(x.shape), os, 0, off);
  return out;
}

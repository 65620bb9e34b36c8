// Reductions over arbitrary axes: sum, mean, max, and sumToShape (broadcasting's backward).
// WGSL: shaders/reduce.wgsl (one pass; the sum or max accumulator filled in here). Reference: ref/reduce.ts.
//
// Design: size-1 dims are dropped and neighbouring dims that are both reduced or both kept are merged,
// giving alternating kept/reduced groups. The last reduced group is reduced as an [outer, R, inner] view;
// then the next, until none is left. Each group takes one or more passes: a pass splits R into chunks (chunkFor)
// and one thread sums a chunk with Neumaier compensation, with no workgroup barriers (slow on lavapipe) and an
// error of a few ulp of Σ|x| per output. Chunks are about √R when R is long (1M terms: 1001-term chunks, then 3907 →
// 16 → 1),
// and shorter when there are few outputs, so that a bias gradient (a column sum of [tokens, 64]) still runs
// thousands of threads rather than 64 serial loops. Outputs beyond 65535 workgroups use grid2d.
import { broadcastShapes, fill } from './elementwise.js';
import { dispatch, grid2d, packUniforms, pipeline } from './launch.js';
import { GpuArray, fmt, shapeSize } from './memory.js';

type Kind = 'sum' | 'max';

/** The accumulator of shaders/reduce.wgsl per kind: declarations, the step folding in v, the result. */
const ACCUMULATOR: Record<Kind, { INIT: string; STEP: string; RESULT: string }> = {
  sum: {
    INIT: '  var s = 0.0;\n  var comp = 0.0;',
    // The low-order bits lost by s + v, recovered exactly (Neumaier): from the smaller-magnitude term.
    STEP: '    let sum = s + v;\n    comp += select((v - sum) + s, (s - sum) + v, abs(s) >= abs(v));\n    s = sum;',
    RESULT: 's + comp',
  },
  max: { INIT: '  var m = x[idx];', STEP: '    m = max(m, v);', RESULT: 'm' },
};

/** A reduce dim longer than this is always split over several passes. */
const MAX_SINGLE_PASS = 2048;
/** Threads a pass aims for (when the outputs alone are fewer), and the shortest chunk it splits R into for them. */
const TARGET_THREADS = 8192;
const MIN_CHUNK = 64;

/** The chunk length one thread sums in a pass over an [outer, r, inner] view. */
export function chunkFor(outer: number, r: number, inner: number): number {
  // Long: ~√r per chunk (1M terms: passes of 1001, 3907 → 16, 1). Short with few outputs: chunks of at least
  // MIN_CHUNK, at most 32 of them (2048 / 64), so the next pass is the last: a short dim takes at most two passes.
  if (r > MAX_SINGLE_PASS) return Math.max(256, Math.ceil(Math.sqrt(r)));
  const outputs = outer * inner;
  if (r <= MIN_CHUNK || outputs >= TARGET_THREADS) return r;
  return Math.max(MIN_CHUNK, Math.ceil(r / Math.ceil(TARGET_THREADS / outputs)));
}

/** Normalise axes (negative allowed; undefined means all) into one flag per dim; RangeError on bad axes. */
export function reducedAxes(op: string, shape: readonly number[], axes?: number[]): boolean[] {
  const flags = shape.map(() => axes === undefined);
  for (const a of axes ?? []) {
    if (!Number.isInteger(a) || a < -shape.length || a >= shape.length) {
      throw new RangeError(`${op}: axis ${a} is out of range for shape ${fmt(shape)}`);
    }
    const d = a < 0 ? a + shape.length : a;
    if (flags[d]) throw new RangeError(`${op}: axis ${a} is repeated in [${axes!.join(', ')}] for shape ${fmt(shape)}`);
    flags[d] = true;
  }
  return flags;
}

/**
 * One pass over an [outer, r, inner] view into [outer, nc, inner] partials; when this is the final pass
 * (the last group, nc = 1) it writes straight into an array of finalShape and applies scale.
 */
function onePass(op: string, kind: Kind, x: GpuArray, outer: number, r: number, inner: number, scale: number, finalShape: readonly number[] | null): { out: GpuArray; nc: number } {
  const chunk = chunkFor(outer, r, inner);
  const nc = Math.ceil(r / chunk);
  const final = finalShape !== null && nc === 1;
  const out = GpuArray.empty(final ? finalShape : [outer, nc, inner], op);
  const total = outer * nc * inner;
  const u = packUniforms([['u32', total], ['u32', inner], ['u32', nc], ['u32', r], ['u32', chunk], ['f32', final ? scale : 1]]);
  dispatch(op, pipeline('reduce', ACCUMULATOR[kind]), [x.buffer, out.buffer], u, grid2d(Math.ceil(total / 256)));
  return { out, nc };
}

/**
 * Reduce x over the flagged dims into a new array of outShape (whose size must be the product of the
 * kept dims), multiplying by scale at the end.
 */
function reduceTo(op: string, kind: Kind, x: GpuArray, flags: boolean[], outShape: readonly number[], scale: number): GpuArray {
  const count = x.shape.reduce((n, d, i) => (flags[i] ? n * d : n), 1);
  const outSize = shapeSize(outShape);
  if (outSize === 0) return GpuArray.empty(outShape, op);
  if (count === 0) {
    if (kind === 'max') throw new RangeError(`${op}: cannot reduce shape ${fmt(x.shape)} over a zero-size axis (no identity for max)`);
    return fill(outShape, 0 * scale); // sum of nothing is 0; mean is 0 · (1/0) = NaN, as NumPy
  }
  // Drop size-1 dims, merge runs of equally flagged dims.
  const dims: { n: number; red: boolean }[] = [];
  x.shape.forEach((n, i) => {
    if (n === 1) return;
    const last = dims[dims.length - 1];
    if (last && last.red === flags[i]) last.n *= n;
    else dims.push({ n, red: flags[i] });
  });
  let cur = x;
  for (;;) {
    let j = -1;
    for (let k = dims.length - 1; k >= 0; k--) if (dims[k].red) { j = k; break; }
    if (j < 0) break;
    const outer = dims.slice(0, j).reduce((n, d) => n * d.n, 1);
    const inner = dims.slice(j + 1).reduce((n, d) => n * d.n, 1);
    const lastGroup = !dims.slice(0, j).some((d) => d.red);
    let r = dims[j].n;
    while (r > 1) {
      const { out, nc } = onePass(op, kind, cur, outer, r, inner, scale, lastGroup ? outShape : null);
      if (cur !== x) cur.dispose(); // safe: the pass that reads it is already recorded
      cur = out;
      r = nc;
    }
    dims.splice(j, 1);
    // Merge the kept neighbours that are now adjacent.
    if (j > 0 && j < dims.length && !dims[j - 1].red && !dims[j].red) {
      dims[j - 1].n *= dims[j].n;
      dims.splice(j, 1);
    }
  }
  // Nothing to add up (every reduced dim has size 1, so count = 1 and scale does not matter): a copy.
  return cur === x ? x.reshape(outShape) : cur;
}

function outShapeOf(shape: readonly number[], flags: boolean[], keepDims: boolean): number[] {
  return keepDims ? shape.map((d, i) => (flags[i] ? 1 : d)) : shape.filter((_, i) => !flags[i]);
}

/** Sum over axes (default: all; negative allowed). keepDims keeps reduced dims as size 1. */
export function sum(x: GpuArray, axes?: number[], keepDims = false): GpuArray {
  const flags = reducedAxes('sum', x.shape, axes);
  return reduceTo('sum', 'sum', x, flags, outShapeOf(x.shape, flags, keepDims), 1);
}

/** Mean over axes: the compensated sum times 1/count (count 0 gives NaN). */
export function mean(x: GpuArray, axes?: number[], keepDims = false): GpuArray {
  const flags = reducedAxes('mean', x.shape, axes);
  const count = x.shape.reduce((n, d, i) => (flags[i] ? n * d : n), 1);
  return reduceTo('mean', 'sum', x, flags, outShapeOf(x.shape, flags, keepDims), 1 / count);
}

/** Max over axes; a zero-size reduced axis is a RangeError. */
export function max(x: GpuArray, axes?: number[], keepDims = false): GpuArray {
  const flags = reducedAxes('max', x.shape, axes);
  return reduceTo('max', 'max', x, flags, outShapeOf(x.shape, flags, keepDims), 1);
}

/**
 * Sum x down to shape, the inverse of broadcasting shape up to x.shape: sums the leading extra dims
 * and the dims where shape has 1 and x does not. RangeError unless shape broadcasts to x.shape.
 */
export function sumToShape(x: GpuArray, shape: readonly number[]): GpuArray {
  const err = () => new RangeError(`sumToShape: shape ${fmt(shape)} does not broadcast to ${fmt(x.shape)}`);
  let b: number[];
  try {
    b = broadcastShapes(shape, x.shape, 'sumToShape');
  } catch {
    throw err();
  }
  if (b.length !== x.shape.length || b.some((d, i) => d !== x.shape[i])) throw err();
  const off = x.shape.length - shape.length;
  const flags = x.shape.map((d, i) => i < off || (shape[i - off] === 1 && d !== 1));
  return reduceTo('sumToShape', 'sum', x, flags, shape, 1);
}

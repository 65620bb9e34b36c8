// Elementwise ops: binary with NumPy broadcasting, unary, affine, fill and in-place accumulation.
// WGSL: shaders/binary.wgsl (same shapes), shaders/binary_broadcast.wgsl (general), shaders/unary.wgsl,
// shaders/fill.wgsl, shaders/binary_inplace.wgsl. Reference: ref/elementwise.ts.
import { dispatch, grid2d, packUniforms, pipeline, type UniformField } from './launch.js';
import { GpuArray, copyBuffer, fmt, type Shape } from './memory.js';

export type BinaryOp = 'add' | 'sub' | 'mul' | 'div' | 'max' | 'min' | 'pow';
export type UnaryOp =
  | 'neg' | 'exp' | 'log' | 'sqrt' | 'rsqrt' | 'abs' | 'relu' | 'tanh' | 'sigmoid' | 'square' | 'reciprocal' | 'sign' | 'step';

/** WGSL expressions in x (from a) and y (from b). */
const BINARY_EXPR: Record<BinaryOp, string> = {
  add: 'x + y',
  sub: 'x - y',
  mul: 'x * y',
  div: 'x / y',
  max: 'max(x, y)',
  min: 'min(x, y)',
  pow: 'pow_f32(x, y)',
};

/** WGSL expressions in v. */
const UNARY_EXPR: Record<UnaryOp | 'affine', string> = {
  neg: '-v',
  exp: 'exp(v)',
  log: 'log(v)',
  sqrt: 'sqrt(v)',
  rsqrt: 'inverseSqrt(v)',
  abs: 'abs(v)',
  relu: 'max(v, 0.0)',
  tanh: 'tanh(clamp(v, -15.0, 15.0))',
  sigmoid: 'sigmoid_f32(v)',
  square: 'v * v',
  reciprocal: '1.0 / v',
  sign: 'sign(v)',
  step: 'select(0.0, 1.0, v > 0.0)',
  affine: 'P.scale * v + P.shift',
};

/** Ops whose WGSL expression means the same on vec4<f32> operands (pow, relu, tanh, sigmoid, step are scalar-only). */
const VEC4_OPS = new Set<string>(['add', 'sub', 'mul', 'div', 'max', 'min', 'neg', 'exp', 'log', 'sqrt', 'rsqrt', 'abs', 'square', 'reciprocal', 'sign', 'affine']);

/**
 * Element width of a dense same-shape kernel: 4 (vec4<f32> elements, a quarter of the invocations) when the size is
 * a multiple of 4 and the op allows it, else 1. Buffers start at offset 0, so vec4 loads are aligned.
 */
export function width(n: number, op?: string): { w: number; T: string } {
  return n % 4 === 0 && (op === undefined || VEC4_OPS.has(op)) ? { w: 4, T: 'vec4<f32>' } : { w: 1, T: 'f32' };
}

/** The highest rank the strided kernels take after merging dims (uniform arrays of 2 × vec4). */
export const MAX_KERNEL_RANK = 8;

const sameShape = (a: Shape, b: Shape) => a.length === b.length && a.every((d, i) => d === b[i]);

/** Row-major element strides of a dense array. */
export function contiguousStrides(shape: Shape): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    s[d] = acc;
    acc *= shape[d];
  }
  return s;
}

/**
 * Simplify a strided view for the kernels: drop size-1 dims, then merge neighbours d, d+1 wherever
 * every stride list is "contiguous across" them (stride[d] == stride[d+1]·shape[d+1], which broadcast
 * zeros satisfy too). Returns at least one dim.
 */
export function mergeDims(shape: Shape, strides: (readonly number[])[]): { shape: number[]; strides: number[][] } {
  const keep = shape.map((d, i) => (d !== 1 ? i : -1)).filter((i) => i >= 0);
  const outShape: number[] = [];
  const outStrides: number[][] = strides.map(() => []);
  for (const d of keep) {
    const last = outShape.length - 1;
    if (last >= 0 && strides.every((s, k) => outStrides[k][last] === s[d] * shape[d])) {
      outShape[last] *= shape[d];
      strides.forEach((s, k) => (outStrides[k][last] = s[d]));
    } else {
      outShape.push(shape[d]);
      strides.forEach((s, k) => outStrides[k].push(s[d]));
    }
  }
  if (outShape.length === 0) return { shape: [1], strides: strides.map(() => [0]) };
  return { shape: outShape, strides: outStrides };
}

/** The uniform fields for an array of up to 8 u32s packed as array<vec4<u32>, 2>. */
export function vec8(values: readonly number[]): UniformField[] {
  const out: UniformField[] = [];
  for (let i = 0; i < 8; i++) out.push(['u32', values[i] ?? 1]);
  return out;
}

/** NumPy broadcasting of two shapes; throws a RangeError naming op and both shapes. */
export function broadcastShapes(a: readonly number[], b: readonly number[], op = 'broadcast'): number[] {
  const n = Math.max(a.length, b.length);
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const da = a[a.length - n + i] ?? 1;
    const db = b[b.length - n + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) throw new RangeError(`${op}: shapes ${fmt(a)} and ${fmt(b)} do not broadcast`);
    out[i] = da === 1 ? db : da;
  }
  return out;
}

/** Element strides of `shape` read as if broadcast to `outShape` (0 along broadcast dims). */
export function broadcastStrides(shape: Shape, outShape: Shape): number[] {
  const s = contiguousStrides(shape);
  const off = outShape.length - shape.length;
  return outShape.map((_, i) => (i < off || shape[i - off] === 1 ? 0 : s[i - off]));
}

/** Elementwise op(a, b) with NumPy broadcasting; output shape broadcastShapes(a.shape, b.shape). */
export function binary(op: BinaryOp, a: GpuArray, b: GpuArray): GpuArray {
  const expr = BINARY_EXPR[op];
  if (expr === undefined) throw new RangeError(`binary: unknown op '${op}' (known: ${Object.keys(BINARY_EXPR).join(', ')})`);
  const shape = broadcastShapes(a.shape, b.shape, op);
  const out = GpuArray.empty(shape, op);
  if (out.size === 0) return out;
  const groups = grid2d(Math.ceil(out.size / 256));
  if (sameShape(a.shape, b.shape)) {
    const { w, T } = width(out.size, op);
    dispatch(op, pipeline('binary', { OP: expr, T }), [a.buffer, b.buffer, out.buffer], packUniforms([['u32', out.size / w]]), grid2d(Math.ceil(out.size / w / 256)));
    return out;
  }
  const m = mergeDims(shape, [broadcastStrides(a.shape, shape), broadcastStrides(b.shape, shape)]);
  const rank = m.shape.length;
  if (rank > MAX_KERNEL_RANK) {
    throw new RangeError(`${op}: shapes ${fmt(a.shape)} and ${fmt(b.shape)} need ${rank} dims after merging; the kernel takes ${MAX_KERNEL_RANK}`);
  }
  const u = packUniforms([
    ['u32', out.size], ['u32', 0], ['u32', 0], ['u32', 0],
    ...vec8(m.shape), ...vec8(m.strides[0]), ...vec8(m.strides[1]),
  ]);
  dispatch(op, pipeline('binary_broadcast', { OP: expr, RANK: rank }), [a.buffer, b.buffer, out.buffer], u, groups);
  return out;
}

function runUnary(label: string, expr: string, x: GpuArray, scale = 1, shift = 0, volatile = false): GpuArray {
  const out = GpuArray.empty(x.shape, label);
  const { w, T } = width(x.size, label);
  const u = packUniforms([['u32', x.size / w], ['f32', scale], ['f32', shift], ['u32', 0]]);
  dispatch(label, pipeline('unary', { OP: expr, T }), [x.buffer, out.buffer], u, grid2d(Math.ceil(x.size / w / 256)), volatile);
  return out;
}

/** Elementwise op(x). step is x > 0 ? 1 : 0 (relu's derivative); sign(0) = 0. */
export function unary(op: UnaryOp, x: GpuArray): GpuArray {
  const expr = UNARY_EXPR[op];
  if (expr === undefined || op === ('affine' as UnaryOp)) {
    throw new RangeError(`unary: unknown op '${op}' (known: ${Object.keys(UNARY_EXPR).filter((k) => k !== 'affine').join(', ')})`);
  }
  return runUnary(op, expr, x);
}

/**
 * scale·x + shift (f32 arithmetic; scale and shift are rounded to f32). `volatile`: scale or shift changes from call
 * to call (a clipping coefficient), so its uniform block is not kept in the dispatch cache.
 */
export function affine(x: GpuArray, scale: number, shift = 0, volatile = false): GpuArray {
  return runUnary('affine', UNARY_EXPR.affine, x, scale, shift, volatile);
}

/** A new array of this shape with every element = value (rounded to f32). */
export function fill(shape: readonly number[], value: number): GpuArray {
  const out = GpuArray.empty(shape, 'fill');
  fillInto(out, value);
  return out;
}

/** Overwrite every element of an existing array with value. */
export function fillInto(out: GpuArray, value: number): void {
  const { w, T } = width(out.size);
  dispatch('fill', pipeline('fill', { T }), [out.buffer], packUniforms([['u32', out.size / w], ['f32', value]]), grid2d(Math.ceil(out.size / w / 256)));
}

/** target += alpha·x in place (same shape): gradient accumulation. */
export function addInPlace(target: GpuArray, x: GpuArray, alpha = 1): void {
  if (!sameShape(target.shape, x.shape)) throw new RangeError(`addInPlace: x ${fmt(x.shape)} does not match target ${fmt(target.shape)}`);
  if (target.size === 0) return;
  if (target.buffer === x.buffer) {
    // One buffer cannot be bound read-only and writable in the same pass: target = (1 + alpha)·target.
    const t = affine(x, 1 + alpha);
    copyBuffer(t.buffer, target.buffer, t.size * 4);
    t.dispose();
    return;
  }
  const { w, T } = width(target.size);
  const u = packUniforms([['u32', target.size / w], ['f32', alpha]]);
  dispatch('addInPlace', pipeline('binary_inplace', { T }), [target.buffer, x.buffer], u, grid2d(Math.ceil(target.size / w / 256)));
}

// Float64 references for the elementwise ops (src/kernels/elementwise.ts).

export type Shape = readonly number[];

export const size = (shape: Shape) => shape.reduce((n, d) => n * d, 1);

/** NumPy broadcasting, written out per axis from the right. */
export function broadcastShapesRef(a: Shape, b: Shape): number[] {
  const n = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const da = i < n - a.length ? 1 : a[i - (n - a.length)];
    const db = i < n - b.length ? 1 : b[i - (n - b.length)];
    if (da !== db && da !== 1 && db !== 1) throw new RangeError(`shapes [${a}] and [${b}] do not broadcast`);
    out.push(da === 1 ? db : da);
  }
  return out;
}

/** The multi-index of flat index i in a row-major array of this shape. */
export function unravel(i: number, shape: Shape): number[] {
  const idx = new Array<number>(shape.length);
  for (let d = shape.length - 1; d >= 0; d--) {
    idx[d] = i % shape[d];
    i = Math.floor(i / shape[d]);
  }
  return idx;
}

/** The flat index of a multi-index in a row-major array of this shape. */
export function ravel(idx: readonly number[], shape: Shape): number {
  let i = 0;
  for (let d = 0; d < shape.length; d++) i = i * shape[d] + idx[d];
  return i;
}

/** Read x (of shape xShape) at an output multi-index under broadcasting. */
function broadcastRead(x: ArrayLike<number>, xShape: Shape, outIdx: readonly number[]): number {
  const off = outIdx.length - xShape.length;
  const idx = xShape.map((d, i) => (d === 1 ? 0 : outIdx[i + off]));
  return x[ravel(idx, xShape)];
}

export function binaryOpRef(op: string, x: number, y: number): number {
  switch (op) {
    case 'add': return x + y;
    case 'sub': return x - y;
    case 'mul': return x * y;
    case 'div': return x / y;
    case 'max': return Math.max(x, y);
    case 'min': return Math.min(x, y);
    case 'pow': return Math.pow(x, y);
    default: throw new RangeError(`binaryRef: unknown op ${op}`);
  }
}

export function binaryRef(op: string, a: ArrayLike<number>, aShape: Shape, b: ArrayLike<number>, bShape: Shape): { data: Float64Array; shape: number[] } {
  const shape = broadcastShapesRef(aShape, bShape);
  const data = new Float64Array(size(shape));
  for (let i = 0; i < data.length; i++) {
    const idx = unravel(i, shape);
    data[i] = binaryOpRef(op, broadcastRead(a, aShape, idx), broadcastRead(b, bShape, idx));
  }
  return { data, shape };
}

export function unaryOpRef(op: string, v: number): number {
  switch (op) {
    case 'neg': return -v;
    case 'exp': return Math.exp(v);
    case 'log': return Math.log(v);
    case 'sqrt': return Math.sqrt(v);
    case 'rsqrt': return 1 / Math.sqrt(v);
    case 'abs': return Math.abs(v);
    case 'relu': return v > 0 ? v : 0;
    case 'tanh': return Math.tanh(v);
    case 'sigmoid': return 1 / (1 + Math.exp(-v));
    case 'square': return v * v;
    case 'reciprocal': return 1 / v;
    case 'sign': return Math.sign(v);
    case 'step': return v > 0 ? 1 : 0;
    default: throw new RangeError(`unaryRef: unknown op ${op}`);
  }
}

export function unaryRef(op: string, x: ArrayLike<number>): Float64Array {
  return Float64Array.from(x, (v) => unaryOpRef(op, v));
}

export function affineRef(x: ArrayLike<number>, scale: number, shift = 0): Float64Array {
  return Float64Array.from(x, (v) => scale * v + shift);
}

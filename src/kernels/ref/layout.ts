// Float64 references for the layout ops (src/kernels/layout.ts), by multi-index arithmetic.
import { ravel, size, unravel, type Shape } from './elementwise.js';

type Result = { data: Float64Array; shape: number[] };

export function permuteRef(x: ArrayLike<number>, shape: Shape, perm: number[]): Result {
  const out = perm.map((p) => shape[p]);
  const data = new Float64Array(size(out));
  for (let i = 0; i < data.length; i++) {
    const o = unravel(i, out);
    const idx = new Array<number>(shape.length);
    perm.forEach((p, k) => (idx[p] = o[k]));
    data[i] = x[ravel(idx, shape)];
  }
  return { data, shape: out };
}

export function sliceRef(x: ArrayLike<number>, shape: Shape, starts: number[], ends: number[]): Result {
  const s = starts.map((a, d) => (a < 0 ? a + shape[d] : a));
  const e = ends.map((b, d) => (b < 0 ? b + shape[d] : b));
  const out = s.map((a, d) => e[d] - a);
  const data = new Float64Array(size(out));
  for (let i = 0; i < data.length; i++) data[i] = x[ravel(unravel(i, out).map((v, d) => v + s[d]), shape)];
  return { data, shape: out };
}

export function concatRef(xs: ArrayLike<number>[], shapes: Shape[], axis: number): Result {
  const ax = axis < 0 ? axis + shapes[0].length : axis;
  const out = [...shapes[0]];
  out[ax] = shapes.reduce((n, s) => n + s[ax], 0);
  const data = new Float64Array(size(out));
  for (let i = 0; i < data.length; i++) {
    const idx = unravel(i, out);
    let k = 0;
    while (idx[ax] >= shapes[k][ax]) idx[ax] -= shapes[k++][ax];
    data[i] = xs[k][ravel(idx, shapes[k])];
  }
  return { data, shape: out };
}

export function padRef(x: ArrayLike<number>, shape: Shape, before: number[], after: number[], value = 0): Result {
  const out = shape.map((d, i) => d + before[i] + after[i]);
  const data = new Float64Array(size(out));
  for (let i = 0; i < data.length; i++) {
    const idx = unravel(i, out).map((v, d) => v - before[d]);
    data[i] = idx.every((v, d) => v >= 0 && v < shape[d]) ? x[ravel(idx, shape)] : value;
  }
  return { data, shape: out };
}

/** dst with src added into the region that starts at `starts` (a copy; dst is not changed). */
export function addToSliceRef(dst: ArrayLike<number>, dstShape: Shape, src: ArrayLike<number>, srcShape: Shape, starts: number[]): Result {
  const data = Float64Array.from(dst);
  for (let i = 0; i < size(srcShape); i++) data[ravel(unravel(i, srcShape).map((v, d) => v + starts[d]), dstShape)] += src[i];
  return { data, shape: [...dstShape] };
}

// Float64 references for the reductions (src/kernels/reduce.ts): each input element is added into (or
// max-ed into) the output element it maps to.
import { ravel, size, unravel, type Shape } from './elementwise.js';

function flagsOf(shape: Shape, axes?: number[]): boolean[] {
  const flags = shape.map(() => axes === undefined);
  for (const a of axes ?? []) flags[a < 0 ? a + shape.length : a] = true;
  return flags;
}

function reduceRef(
  x: ArrayLike<number>, shape: Shape, axes: number[] | undefined, keepDims: boolean, init: number, combine: (acc: number, v: number) => number,
): { data: Float64Array; shape: number[] } {
  const flags = flagsOf(shape, axes);
  const keptShape = shape.map((d, i) => (flags[i] ? 1 : d));
  const data = new Float64Array(size(keptShape)).fill(init);
  for (let i = 0; i < size(shape); i++) {
    const idx = unravel(i, shape).map((v, d) => (flags[d] ? 0 : v));
    const o = ravel(idx, keptShape);
    data[o] = combine(data[o], x[i]);
  }
  return { data, shape: keepDims ? keptShape : shape.filter((_, i) => !flags[i]) };
}

export function sumRef(x: ArrayLike<number>, shape: Shape, axes?: number[], keepDims = false) {
  return reduceRef(x, shape, axes, keepDims, 0, (a, v) => a + v);
}

/** Σ|x| per output: the scale of the rounding error of an f32 sum. */
export function sumAbsRef(x: ArrayLike<number>, shape: Shape, axes?: number[], keepDims = false) {
  return reduceRef(x, shape, axes, keepDims, 0, (a, v) => a + Math.abs(v));
}

export function meanRef(x: ArrayLike<number>, shape: Shape, axes?: number[], keepDims = false) {
  const flags = flagsOf(shape, axes);
  const count = shape.reduce((n, d, i) => (flags[i] ? n * d : n), 1);
  const r = sumRef(x, shape, axes, keepDims);
  return { data: r.data.map((v) => v / count), shape: r.shape };
}

export function maxRef(x: ArrayLike<number>, shape: Shape, axes?: number[], keepDims = false) {
  return reduceRef(x, shape, axes, keepDims, -Infinity, (a, v) => Math.max(a, v));
}

/** Sum x (of xShape) down to shape, where shape broadcasts to xShape. */
export function sumToShapeRef(x: ArrayLike<number>, xShape: Shape, shape: Shape): Float64Array {
  const off = xShape.length - shape.length;
  const out = new Float64Array(size(shape));
  for (let i = 0; i < size(xShape); i++) {
    const idx = unravel(i, xShape).slice(off).map((v, d) => (shape[d] === 1 ? 0 : v));
    out[ravel(idx, shape)] += x[i];
  }
  return out;
}

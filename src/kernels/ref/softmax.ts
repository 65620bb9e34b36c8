// Float64 reference for softmax over the last axis (rows of length cols, row-major).
import { scaleRowTolerance } from './math.js';

/**
 * [atol, rtol] of the f32 kernels against this reference for rows of up to 32 768 columns (inputs in about [-8, 8]; the
 * tests and the row kernels' lab); softmaxTolerance(cols) scales them for longer rows.
 * Forward: y = exp(x − m)/Σ. The Vulkan exp is accurate to 3 + 2|x| ulp, and x − m is rounded (relative 6e-8 of
 * |x − m|), so for the entries that carry the mass (x − m ≥ −20) y is good to ~45 ulp ≈ 5e-6 relative. Σ is a blocked
 * f32 sum (shaders/lib/row_team.wgsl; ref/math.ts rowSumToleranceScale) of positive terms: ≤ 2·max(64, √C) + 8
 * roundings per term in the worst case (136u = 8e-6 relative up to 4096 columns), ~(√B + √(C/B))·u ≤ 27u ≈ 1.6e-6 in
 * practice up to 32 768. 2e-5 relative covers that with room (measured: ≤ 0.03 of it at 100 003 columns). Tiny
 * probabilities (x − m < −20, y < 2e-9) may lose more relative accuracy, which the 1e-9 absolute term absorbs. (A plain
 * running sum loses the terms below half an ulp of the running total: 1.1e-4 relative at 100 000 columns, 5.5× this
 * tolerance, which is why the sums are blocked.)
 * Backward (against the reference applied to the kernel's own y): dx = y(dy − d) with d = Σ dy·y (|d| ≤ max|dy| = 1)
 * accumulated in f32 in blocks as above: d is off by ≲ 27u ≈ 1.6e-6 (Σ|dy·y| ≤ 1), and dy − d can cancel, so the error
 * is absolute in units of y: 2e-7 absolute (y ≤ 1, and for C ≥ 197 y ≲ 0.05) plus 2e-5 relative for the y and dy − d
 * factors.
 */
export const SOFTMAX_TOLERANCE = { forward: [1e-9, 2e-5], backward: [2e-7, 2e-5] } as const;

/** SOFTMAX_TOLERANCE for rows of `cols` columns: scaled by the blocked sums' error growth past 32 768 (rowSumToleranceScale). */
export function softmaxTolerance(cols: number): { forward: [number, number]; backward: [number, number] } {
  return { forward: scaleRowTolerance(SOFTMAX_TOLERANCE.forward, cols), backward: scaleRowTolerance(SOFTMAX_TOLERANCE.backward, cols) };
}

export function softmaxForwardRef(x: ArrayLike<number>, cols: number): Float64Array {
  const y = new Float64Array(x.length);
  for (let r = 0; r * cols < x.length; r++) {
    const o = r * cols;
    let m = -Infinity;
    for (let c = 0; c < cols; c++) m = Math.max(m, x[o + c]);
    let s = 0;
    for (let c = 0; c < cols; c++) s += (y[o + c] = Math.exp(x[o + c] - m));
    for (let c = 0; c < cols; c++) y[o + c] /= s;
  }
  return y;
}

/** dx = y ∘ (dy − Σ dy ∘ y) per row. */
export function softmaxBackwardRef(y: ArrayLike<number>, dy: ArrayLike<number>, cols: number): Float64Array {
  const dx = new Float64Array(y.length);
  for (let r = 0; r * cols < y.length; r++) {
    const o = r * cols;
    let d = 0;
    for (let c = 0; c < cols; c++) d += dy[o + c] * y[o + c];
    for (let c = 0; c < cols; c++) dx[o + c] = y[o + c] * (dy[o + c] - d);
  }
  return dx;
}

/** Alias of softmaxForwardRef (the name the self-check uses). */
export const softmaxRef = softmaxForwardRef;

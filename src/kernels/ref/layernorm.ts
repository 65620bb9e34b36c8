// Float64 reference for LayerNorm over the last axis (rows of length cols, row-major), as
// torch.nn.LayerNorm: biased variance, eps inside the square root.
import { scaleRowTolerance } from './math.js';

/**
 * [atol, rtol] of the f32 kernels' y and dx against this reference, for |x| ≤ 2 around a mean near 0, |gamma| ≤ 1.5,
 * |dy| ≤ 1 and C ≤ 32 768 (the tests scale the absolute terms for rows with a large offset); layerNormTolerance(cols)
 * scales them for longer rows.
 * Forward: mean and variance are f32 sums of C terms (two-pass, so no cancellation between Σx² and (Σx)²), blocked
 * (shaders/lib/row_team.wgsl; ref/math.ts rowSumToleranceScale: ~(√B + √(C/B))·u ≤ 27u ≈ 1.6e-6 relative to Σ|terms| in
 * practice up to 32 768 columns); inverseSqrt is good to 2 ulp. x̂ = (x − mean)·rstd is then off by a few ulp relative
 * plus |mean error|·rstd absolute, with |mean error| ≲ 1.6e-6·mean|x − x0| ≈ 2e-6. y = x̂·gamma + beta with |y| up to
 * ~6: 1e-5 absolute + 1e-5 relative (measured: ≤ 0.07 of it at 100 003 columns). Backward dx: two more blocked row sums
 * of C terms (|g| ≤ 1, |g·x̂| ≲ 3) divided by C, then rstd·(g − a − x̂b): absolute error ~ rstd·3·27u per term; 2e-5
 * absolute + 1e-5 relative. (Plain running sums made the mean drift by 2.7e-5 at 100 000 columns and y miss this
 * tolerance 4×; blocked, the mean is off by ≤ 1e-6 there.)
 */
export const LAYERNORM_TOLERANCE = { y: [1e-5, 1e-5], dx: [2e-5, 1e-5] } as const;

/** LAYERNORM_TOLERANCE for rows of `cols` columns: scaled by the blocked sums' error growth past 32 768 (rowSumToleranceScale). */
export function layerNormTolerance(cols: number): { y: [number, number]; dx: [number, number] } {
  return { y: scaleRowTolerance(LAYERNORM_TOLERANCE.y, cols), dx: scaleRowTolerance(LAYERNORM_TOLERANCE.dx, cols) };
}

export interface LayerNormRefOut {
  y: Float64Array;
  mean: Float64Array;
  rstd: Float64Array;
}

export function layerNormRef(x: ArrayLike<number>, gamma: ArrayLike<number>, beta: ArrayLike<number>, cols: number, eps: number): LayerNormRefOut {
  const rows = cols === 0 ? 0 : x.length / cols;
  const y = new Float64Array(x.length);
  const mean = new Float64Array(rows);
  const rstd = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    let s = 0;
    for (let c = 0; c < cols; c++) s += x[o + c];
    const mu = s / cols;
    let q = 0;
    for (let c = 0; c < cols; c++) q += (x[o + c] - mu) ** 2;
    const rs = 1 / Math.sqrt(q / cols + eps);
    for (let c = 0; c < cols; c++) y[o + c] = (x[o + c] - mu) * rs * gamma[c] + beta[c];
    mean[r] = mu;
    rstd[r] = rs;
  }
  return { y, mean, rstd };
}

/** Gradients of Σ dy ∘ layerNorm(x) with respect to x, gamma and beta. */
export function layerNormBackwardRef(
  x: ArrayLike<number>,
  gamma: ArrayLike<number>,
  dy: ArrayLike<number>,
  cols: number,
  eps: number,
): { dx: Float64Array; dgamma: Float64Array; dbeta: Float64Array } {
  const { mean, rstd } = layerNormRef(x, gamma, new Float64Array(cols), cols, eps);
  const dx = new Float64Array(x.length);
  const dgamma = new Float64Array(cols);
  const dbeta = new Float64Array(cols);
  for (let r = 0; r < mean.length; r++) {
    const o = r * cols;
    const xh = (c: number) => (x[o + c] - mean[r]) * rstd[r];
    let a = 0;
    let b = 0;
    for (let c = 0; c < cols; c++) {
      const g = dy[o + c] * gamma[c];
      a += g;
      b += g * xh(c);
      dgamma[c] += dy[o + c] * xh(c);
      dbeta[c] += dy[o + c];
    }
    a /= cols;
    b /= cols;
    for (let c = 0; c < cols; c++) dx[o + c] = rstd[r] * (dy[o + c] * gamma[c] - a - xh(c) * b);
  }
  return { dx, dgamma, dbeta };
}

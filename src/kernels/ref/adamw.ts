// Float64 reference for one AdamW step (torch.optim.AdamW semantics). Pure: returns new arrays.

export interface AdamWRefOptions {
  lr: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
  step: number;
}

export function adamwRef(
  p: ArrayLike<number>,
  g: ArrayLike<number>,
  m: ArrayLike<number>,
  v: ArrayLike<number>,
  opts: AdamWRefOptions,
): { p: Float64Array<ArrayBuffer>; m: Float64Array<ArrayBuffer>; v: Float64Array<ArrayBuffer> } {
  const { lr, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weightDecay = 1e-2, step } = opts;
  const bc1 = 1 - beta1 ** step;
  const bc2 = 1 - beta2 ** step;
  const n = p.length;
  const P = new Float64Array(n);
  const M = new Float64Array(n);
  const V = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const decayed = p[i] - lr * weightDecay * p[i];
    M[i] = beta1 * m[i] + (1 - beta1) * g[i];
    V[i] = beta2 * v[i] + (1 - beta2) * g[i] * g[i];
    const mHat = M[i] / bc1;
    const vHat = V[i] / bc2;
    // torch: denom = sqrt(v)/sqrt(bc2) + eps, i.e. eps is added to sqrt(v̂), not inside it.
    P[i] = decayed - (lr * mHat) / (Math.sqrt(vHat) + eps);
  }
  return { p: P, m: M, v: V };
}

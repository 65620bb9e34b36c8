// Float64 reference for fused attention (forward and backward), written for clarity.
// S = scale·Q·Kᵀ + mask; P = softmax(S) over keys; O = headScale[h]·P·V; lse = logsumexp(S) per row.
// A row whose scores are all -Infinity has P = 0, O = 0, lse = -Infinity and zero gradients.

export interface AttentionShape {
  B: number;
  H: number;
  N: number;
  D: number;
}

export interface AttentionRefOptions {
  scale?: number;
  /** Additive mask, broadcast from maskShape: [N, N] or [B|1, H|1, N, N]. */
  mask?: ArrayLike<number>;
  maskShape?: number[];
  headScale?: ArrayLike<number>;
}

/** The mask value added to score (b, h, i, j), or 0 without a mask. */
function maskAt(opts: AttentionRefOptions, shape: AttentionShape, b: number, h: number, i: number, j: number): number {
  if (!opts.mask) return 0;
  const { N } = shape;
  const ms = opts.maskShape ?? [N, N];
  if (ms.length === 2) return opts.mask[i * N + j];
  const bb = ms[0] === 1 ? 0 : b;
  const hh = ms[1] === 1 ? 0 : h;
  return opts.mask[((bb * ms[1] + hh) * N + i) * N + j];
}

export function attentionRef(
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  shape: AttentionShape,
  opts: AttentionRefOptions = {},
): { out: Float64Array; lse: Float64Array; probs: Float64Array } {
  const { B, H, N, D } = shape;
  const scale = opts.scale ?? 1 / Math.sqrt(D);
  const out = new Float64Array(B * H * N * D);
  const lse = new Float64Array(B * H * N);
  const probs = new Float64Array(B * H * N * N);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const base = (b * H + h) * N * D;
      const hs = opts.headScale ? opts.headScale[h] : 1;
      for (let i = 0; i < N; i++) {
        const s = new Float64Array(N);
        let m = -Infinity;
        for (let j = 0; j < N; j++) {
          let dot = 0;
          for (let d = 0; d < D; d++) dot += q[base + i * D + d] * k[base + j * D + d];
          s[j] = scale * dot + maskAt(opts, shape, b, h, i, j);
          m = Math.max(m, s[j]);
        }
        const row = ((b * H + h) * N + i);
        if (m === -Infinity) {
          lse[row] = -Infinity; // probs and out stay 0
          continue;
        }
        let sum = 0;
        for (let j = 0; j < N; j++) sum += Math.exp(s[j] - m);
        lse[row] = m + Math.log(sum);
        for (let j = 0; j < N; j++) {
          const p = Math.exp(s[j] - lse[row]);
          probs[row * N + j] = p;
          for (let d = 0; d < D; d++) out[base + i * D + d] += hs * p * v[base + j * D + d];
        }
      }
    }
  }
  return { out, lse, probs };
}

/** Gradients of sum(dout ∘ out) with respect to q, k and v. */
export function attentionBackwardRef(
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  dout: ArrayLike<number>,
  shape: AttentionShape,
  opts: AttentionRefOptions = {},
): { dq: Float64Array; dk: Float64Array; dv: Float64Array } {
  const { B, H, N, D } = shape;
  const scale = opts.scale ?? 1 / Math.sqrt(D);
  const { probs } = attentionRef(q, k, v, shape, opts);
  const dq = new Float64Array(B * H * N * D);
  const dk = new Float64Array(B * H * N * D);
  const dv = new Float64Array(B * H * N * D);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const base = (b * H + h) * N * D;
      const hs = opts.headScale ? opts.headScale[h] : 1;
      for (let i = 0; i < N; i++) {
        const prow = ((b * H + h) * N + i) * N;
        // dP_ij = hs · dO_i · v_j; dS_ij = P_ij (dP_ij - Σ_l P_il dP_il)
        const dp = new Float64Array(N);
        let rowDot = 0;
        for (let j = 0; j < N; j++) {
          let t = 0;
          for (let d = 0; d < D; d++) t += dout[base + i * D + d] * v[base + j * D + d];
          dp[j] = hs * t;
          rowDot += probs[prow + j] * dp[j];
        }
        for (let j = 0; j < N; j++) {
          const p = probs[prow + j];
          const ds = p * (dp[j] - rowDot);
          for (let d = 0; d < D; d++) {
            dv[base + j * D + d] += hs * p * dout[base + i * D + d];
            dq[base + i * D + d] += scale * ds * k[base + j * D + d];
            dk[base + j * D + d] += scale * ds * q[base + i * D + d];
          }
        }
      }
    }
  }
  return { dq, dk, dv };
}

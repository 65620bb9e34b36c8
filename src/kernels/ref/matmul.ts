// Float64 reference for matmul: C[...batch, M, N] = op(A) · op(B) (+ bias), op = optional transpose.

export interface MatmulRefOptions {
  transA?: boolean;
  transB?: boolean;
  bias?: ArrayLike<number>;
  /** C = alpha·op(A)·op(B) + bias (default 1). */
  alpha?: number;
}

const fmt = (s: readonly number[]) => `[${s.join(', ')}]`;

/**
 * a: [...batch, M, K] ([...batch, K, M] if transA); b: [...batch, K, N] ([...batch, N, K] if transB)
 * or 2-D (shared across a's batch). bias: [N]. Returns [...batch, M, N] as a dense Float64Array.
 */
/**
 * Tolerance [atol, rtol] for a product of operands in [-1, 1] against matmulRef: each output sums k products in f32,
 * an error of ~√k·2⁻²⁴ per term, far under 1e-4·√k absolute (1e-4 relative) — any indexing or edge mistake is O(1).
 */
export function matmulTolerance(k: number): [number, number] {
  return [1e-4 * Math.sqrt(k), 1e-4];
}

export function matmulRef(
  a: ArrayLike<number>,
  aShape: number[],
  b: ArrayLike<number>,
  bShape: number[],
  opts: MatmulRefOptions = {},
): Float64Array {
  const { transA = false, transB = false, bias, alpha = 1 } = opts;
  if (aShape.length < 2 || bShape.length < 2) throw new RangeError(`matmulRef: operands must be at least 2-D: a ${fmt(aShape)} × b ${fmt(bShape)}`);
  const [ar, ac] = aShape.slice(-2);
  const [br, bc] = bShape.slice(-2);
  const M = transA ? ac : ar;
  const K = transA ? ar : ac;
  const Kb = transB ? bc : br;
  const N = transB ? br : bc;
  if (K !== Kb) throw new RangeError(`matmulRef: inner dimensions differ: a ${fmt(aShape)} × b ${fmt(bShape)}`);
  const batch = aShape.slice(0, -2).reduce((x, y) => x * y, 1);
  const bBatched = bShape.length > 2;
  if (bBatched && fmt(bShape.slice(0, -2)) !== fmt(aShape.slice(0, -2))) {
    throw new RangeError(`matmulRef: batch dimensions differ: a ${fmt(aShape)} × b ${fmt(bShape)}`);
  }
  if (bias && bias.length !== N) throw new RangeError(`matmulRef: bias has ${bias.length} values, expected ${N}`);
  const out = new Float64Array(batch * M * N);
  for (let t = 0; t < batch; t++) {
    const ao = t * M * K;
    const bo = bBatched ? t * K * N : 0;
    for (let i = 0; i < M; i++) {
      for (let j = 0; j < N; j++) {
        let s = 0;
        for (let k = 0; k < K; k++) {
          const av = a[ao + (transA ? k * M + i : i * K + k)];
          const bv = b[bo + (transB ? j * K + k : k * N + j)];
          s += av * bv;
        }
        out[(t * M + i) * N + j] = alpha * s + (bias ? bias[j] : 0);
      }
    }
  }
  return out;
}

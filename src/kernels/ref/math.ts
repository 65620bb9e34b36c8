// Float64 helpers shared by the references.

/** erf to ~1e-15: Taylor series near 0, continued fraction for erfc in the tails. */
export function erf(x: number): number {
  const a = Math.abs(x);
  let r: number;
  if (a < 2.5) {
    let term = a;
    let sum = a;
    const a2 = a * a;
    for (let n = 1; n < 100; n++) {
      term *= -a2 / n;
      const t = term / (2 * n + 1);
      sum += t;
      if (Math.abs(t) < 1e-17 * Math.abs(sum)) break;
    }
    r = (2 / Math.sqrt(Math.PI)) * sum;
  } else {
    let f = a;
    for (let k = 200; k >= 1; k--) f = a + k / 2 / f;
    r = 1 - Math.exp(-a * a) / (Math.sqrt(Math.PI) * f);
  }
  return x < 0 ? -r : r;
}

/** Deterministic pseudo-random numbers (mulberry32) for tests and benchmarks. */
export function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** n uniform values in [lo, hi) from a seed. */
export function randomArray(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  const r = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = lo + (hi - lo) * r();
  return out;
}

/** Max |a-b| / (atol + rtol·|b|) over all elements: <= 1 means within tolerance. */
export function toleranceRatio(a: ArrayLike<number>, b: ArrayLike<number>, atol: number, rtol: number): number {
  if (a.length !== b.length) throw new RangeError(`compare: lengths differ (${a.length} vs ${b.length})`);
  let worst = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (Number.isNaN(d)) return Infinity;
    worst = Math.max(worst, d / (atol + rtol * Math.abs(b[i])));
  }
  return worst;
}

/**
 * The factor by which the row kernels' tolerances (softmax, layernorm: ref/softmax.ts, ref/layernorm.ts), set for rows
 * of up to 32 768 columns, grow with the row length C. Those kernels' f32 row sums are blocked (shaders/lib/row_team.wgsl,
 * row_block_stride): an invocation sums its share of m ≤ C terms in blocks of B = max(64, ⌈√m⌉) consecutive terms, each
 * into a fresh accumulator, then adds the block sums. A term then goes through at most B + m/B + log2 T ≤
 * 2·max(64, √m) + 8 roundings (the worst-case relative error of the sum, in units of u = 2⁻²⁴ and of Σ|terms|: 136 up
 * to 4096 columns, 370 at 32 768; a plain running sum: m − 1), and with rounding errors of random sign the error grows
 * like growth(C) = √B + √(m/B): √C up to 64 columns, 8 + √(C/64) ≤ 16 up to 4096, 2·C^(1/4) beyond (26.9 at 32 768, 36
 * at 100 000, 200 at 10⁸). The tolerances leave about 10× room over that typical error up to 32 768 columns, so beyond
 * they scale by growth(C)/growth(32 768) (1 below). That over-covers: the part of the error that does not depend on C
 * (exp's, a few ulp of each product) does not grow. m = C is the longest share (one invocation per row); teams of T
 * share a row and only add log2 T ≤ 8 roundings in their reduction tree.
 */
export function rowSumToleranceScale(cols: number): number {
  const growth = (c: number) => {
    if (c <= 64) return Math.sqrt(Math.max(c, 1));
    const B = Math.max(64, Math.ceil(Math.sqrt(c)));
    return Math.sqrt(B) + Math.sqrt(c / B);
  };
  return Math.max(1, growth(cols) / growth(32_768));
}

/** A tolerance pair [atol, rtol] times rowSumToleranceScale(cols) (see there). */
export function scaleRowTolerance(tol: readonly [number, number], cols: number): [number, number] {
  const k = rowSumToleranceScale(cols);
  return [tol[0] * k, tol[1] * k];
}

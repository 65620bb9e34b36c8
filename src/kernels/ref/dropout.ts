// The dropout hash in TypeScript (bit-exact with shaders/dropout.wgsl) and a float64 reference.

/** PCG output hash on u32 (Jarzynski & Olano 2020). */
export function pcgHash(v: number): number {
  const state = (Math.imul(v >>> 0, 747796405) + 2891336453) >>> 0;
  const word = Math.imul(((state >>> ((state >>> 28) + 4)) ^ state) >>> 0, 277803737) >>> 0;
  return ((word >>> 22) ^ word) >>> 0;
}

/** The u32 key for a seed: any safe integer (negative or above 2^32 too) maps to 32 bits. */
export function dropoutKey(seed: number): number {
  const lo = seed >>> 0;
  const hi = Math.floor(seed / 4294967296) >>> 0;
  return pcgHash((pcgHash(hi) ^ lo) >>> 0);
}

/** Keep threshold: an element is kept when its hash >= round(p · 2^32). */
export function dropoutThreshold(p: number): number {
  return Math.min(0xffffffff, Math.round(p * 4294967296));
}

/** The hash of element i (flat index offset + i) under a seed's key. */
export function dropoutHash(key: number, index: number): number {
  return pcgHash((pcgHash((index ^ key) >>> 0) + key) >>> 0);
}

/** The dropout mask for n elements: 0 or f32(1/(1−p)), exactly as the GPU makes it. */
export function dropoutMaskRef(n: number, p: number, seed: number, offset = 0): Float64Array {
  const key = dropoutKey(seed);
  const thr = dropoutThreshold(p);
  const scale = Math.fround(1 / (1 - p));
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = dropoutHash(key, (offset + i) >>> 0) >= thr ? scale : 0;
  return out;
}

export function dropoutForwardRef(x: ArrayLike<number>, mask: ArrayLike<number>): Float64Array {
  return Float64Array.from(x, (v, i) => v * mask[i]);
}

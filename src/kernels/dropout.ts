// Seeded, deterministic dropout. WGSL: shaders/dropout.wgsl. Reference: ref/dropout.ts (the same
// integer hash, so masks can be compared bit for bit).
import { binary } from './elementwise.js';
import { dispatch, grid2d, packUniforms, pipeline } from './launch.js';
import { GpuArray, fmt } from './memory.js';
import { dropoutKey, dropoutThreshold } from './ref/dropout.js';

export { dropoutMaskRef } from './ref/dropout.js';

/**
 * y = x ∘ mask with mask[i] = 0 (probability p) or 1/(1−p), from a hash of (seed, offset + i): the same
 * (seed, offset, size) gives the same mask on every adapter and every call. p = 0 keeps everything.
 * offset (default 0) shifts the element numbering, for callers that split one array's dropout.
 */
export function dropoutForward(x: GpuArray, p: number, seed: number, offset = 0): { y: GpuArray; mask: GpuArray } {
  if (typeof p !== 'number' || !(p >= 0 && p < 1)) throw new RangeError(`dropoutForward: p = ${p} is outside [0, 1) (x ${fmt(x.shape)})`);
  if (!Number.isSafeInteger(seed)) throw new RangeError(`dropoutForward: seed ${seed} is not an integer (x ${fmt(x.shape)})`);
  if (!Number.isInteger(offset) || offset < 0 || offset > 0xffffffff) throw new RangeError(`dropoutForward: offset ${offset} is not a u32`);
  const y = GpuArray.empty(x.shape, 'dropoutForward');
  const mask = GpuArray.empty(x.shape, 'dropoutForward');
  const u = packUniforms([['u32', x.size], ['u32', dropoutKey(seed)], ['u32', dropoutThreshold(p)], ['u32', offset], ['f32', 1 / (1 - p)]]);
  dispatch('dropoutForward', pipeline('dropout'), [x.buffer, y.buffer, mask.buffer], u, grid2d(Math.ceil(x.size / 256)), true); // a new seed per call
  return { y, mask };
}

/** dx = dy ∘ mask. */
export function dropoutBackward(dy: GpuArray, mask: GpuArray): GpuArray {
  if (dy.rank !== mask.rank || dy.shape.some((d, i) => d !== mask.shape[i])) {
    throw new RangeError(`dropoutBackward: dy ${fmt(dy.shape)} does not match mask ${fmt(mask.shape)}`);
  }
  return binary('mul', dy, mask);
}

// LayerNorm over the last axis, forward and backward. WGSL: shaders/layernorm.wgsl,
// shaders/layernorm_backward.wgsl (dx), shaders/layernorm_backward_{partial,reduce}.wgsl (dgamma,
// dbeta). Reference: ref/layernorm.ts. Row kernels use rowPlan() (see softmax.ts).
import { dispatch, grid2d, packUniforms, pipeline } from './launch.js';
import { GpuArray, fmt } from './memory.js';
import { rowPipeline, rowPlan } from './softmax.js';

const same = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((d, i) => d === b[i]);

function rowsOf(op: string, x: GpuArray, gamma: GpuArray, what = 'gamma'): [number, number] {
  if (x.rank < 1) throw new RangeError(`${op}: x must have at least one dimension, got ${fmt(x.shape)}`);
  const cols = x.shape[x.rank - 1];
  if (!same(gamma.shape, [cols])) throw new RangeError(`${op}: ${what} ${fmt(gamma.shape)} does not match the last axis of x ${fmt(x.shape)}`);
  return [cols === 0 ? 0 : x.size / cols, cols];
}

/**
 * y = (x − mean)/sqrt(var + eps) · gamma + beta over the last axis C (biased variance, as
 * torch.nn.LayerNorm). Also returns mean and rstd = 1/sqrt(var + eps), shape [rows], for backward.
 */
export function layerNormForward(x: GpuArray, gamma: GpuArray, beta: GpuArray, eps: number): { y: GpuArray; mean: GpuArray; rstd: GpuArray } {
  const op = 'layerNormForward';
  const [rows, cols] = rowsOf(op, x, gamma);
  if (!same(beta.shape, gamma.shape)) throw new RangeError(`${op}: beta ${fmt(beta.shape)} does not match gamma ${fmt(gamma.shape)}`);
  if (!(Number.isFinite(eps) && eps >= 0)) throw new RangeError(`${op}: eps must be a finite number >= 0, got ${eps}`);
  const y = GpuArray.empty(x.shape, op);
  const mean = GpuArray.empty([rows], op);
  const rstd = GpuArray.empty([rows], op);
  if (x.size > 0) {
    const p = rowPlan(rows, cols, 'layernorm');
    const u = packUniforms([['u32', rows], ['u32', cols], ['f32', eps]]);
    dispatch(op, rowPipeline('layernorm', p), [x.buffer, gamma.buffer, beta.buffer, y.buffer, mean.buffer, rstd.buffer], u, p.groups);
  }
  return { y, mean, rstd };
}

/** Rows per chunk of the two-stage dgamma/dbeta reduction: about √rows, so both stages do about √rows adds. */
export function chunkRowsFor(rows: number): number {
  return Math.max(1, Math.ceil(Math.sqrt(rows)));
}

/** Gradients of layerNormForward from the saved mean and rstd. */
export function layerNormBackward(
  x: GpuArray,
  gamma: GpuArray,
  mean: GpuArray,
  rstd: GpuArray,
  dy: GpuArray,
): { dx: GpuArray; dgamma: GpuArray; dbeta: GpuArray } {
  const op = 'layerNormBackward';
  const [rows, cols] = rowsOf(op, x, gamma);
  if (!same(dy.shape, x.shape)) throw new RangeError(`${op}: dy ${fmt(dy.shape)} does not match x ${fmt(x.shape)}`);
  if (!same(mean.shape, [rows]) || !same(rstd.shape, [rows])) {
    throw new RangeError(`${op}: mean ${fmt(mean.shape)} and rstd ${fmt(rstd.shape)} must both be [${rows}] for x ${fmt(x.shape)}`);
  }
  const dx = GpuArray.empty(x.shape, op);
  if (x.size === 0) return { dx, dgamma: GpuArray.zeros([cols]), dbeta: GpuArray.zeros([cols]) };
  const dgamma = GpuArray.empty([cols], op);
  const dbeta = GpuArray.empty([cols], op);
  const p = rowPlan(rows, cols, 'layernorm');
  dispatch(op, rowPipeline('layernorm_backward', p), [x.buffer, gamma.buffer, mean.buffer, rstd.buffer, dy.buffer, dx.buffer], packUniforms([['u32', rows], ['u32', cols]]), p.groups);

  const chunkRows = chunkRowsFor(rows);
  const chunks = Math.ceil(rows / chunkRows);
  const colBlocks = Math.ceil(cols / 64);
  const partial = GpuArray.empty([chunks, 2, cols], op);
  dispatch(
    `${op} partial sums`,
    pipeline('layernorm_backward_partial'),
    [x.buffer, mean.buffer, rstd.buffer, dy.buffer, partial.buffer],
    packUniforms([['u32', rows], ['u32', cols], ['u32', chunkRows], ['u32', colBlocks], ['u32', chunks]]),
    grid2d(chunks * colBlocks),
  );
  dispatch(`${op} reduce`, pipeline('layernorm_backward_reduce'), [partial.buffer, dgamma.buffer, dbeta.buffer], packUniforms([['u32', cols], ['u32', chunks]]), grid2d(Math.ceil((2 * cols) / 64)));
  partial.dispose(); // back to the pool; commands already recorded keep the buffer until they run
  return { dx, dgamma, dbeta };
}

// GELU (exact erf form), forward and backward. WGSL: shaders/gelu.wgsl. Reference: ref/gelu.ts.
import { dispatch, grid2d, packUniforms, pipeline } from './launch.js';
import { GpuArray, fmt } from './memory.js';
import { width } from './elementwise.js';

function run(op: string, x: GpuArray, dy: GpuArray | null, mode: 0 | 1): GpuArray {
  if (dy && dy.size !== x.size) throw new RangeError(`${op}: dy ${fmt(dy.shape)} does not match x ${fmt(x.shape)}`);
  const out = GpuArray.empty(x.shape, op);
  // vec4 elements when the size allows (a quarter of the invocations; the same arithmetic per element)
  const { w, T } = width(x.size);
  const u = packUniforms([['u32', x.size / w], ['u32', mode]]);
  dispatch(op, pipeline('gelu', { T }), [x.buffer, (dy ?? x).buffer, out.buffer], u, grid2d(Math.ceil(x.size / w / 256)));
  return out;
}

/** y = x · Φ(x), as torch.nn.GELU() (approximate='none'). */
export function geluForward(x: GpuArray): GpuArray {
  return run('geluForward', x, null, 0);
}

/** dx = dy · (Φ(x) + x · φ(x)). */
export function geluBackward(x: GpuArray, dy: GpuArray): GpuArray {
  return run('geluBackward', x, dy, 1);
}

// The adapter's measured peaks (compute and bandwidth), so each kernel's numbers can be read as a
// share of what this adapter can do. Measured, not taken from a spec sheet.
import { gpu, isSoftwareAdapter } from '../src/kernels/device.js';
import { dispatch, grid2d, packUniforms, pipeline } from '../src/kernels/launch.js';
import { GpuArray } from '../src/kernels/memory.js';
import { timeRuns } from './timing.js';

export interface Roofline {
  adapter: string;
  peakGflops: number;
  peakGBs: number;
  clock: string;
}

const cache = new Map<string, Roofline>();

export async function measureRoofline(opts: { quick?: boolean } = {}): Promise<Roofline> {
  const key = gpu().adapterKey;
  const hit = cache.get(key);
  if (hit) return hit;
  const software = isSoftwareAdapter();
  // Enough work to dominate launch overhead, little enough to finish in ~a second on a CPU adapter.
  const invocations = software ? 1 << 16 : 1 << 22;
  const iters = software ? 512 : 1024;
  const out = GpuArray.empty([invocations], 'roofline');
  const wg = 256;
  const pf = pipeline('peak_flops', { WG: wg });
  const tf = await timeRuns(() => dispatch('peak_flops', pf, [out.buffer], packUniforms([['u32', iters], ['f32', 0.5]]), grid2d(invocations / wg)), { runs: opts.quick ? 3 : 5 });
  const flops = invocations * iters * 64;
  const fMs = tf.gpuMs ?? tf.wallMs;

  const n = software ? 1 << 24 : 1 << 25; // floats: 16 MiB / 128 MiB
  const src = GpuArray.empty([n], 'roofline');
  const dst = GpuArray.empty([n], 'roofline');
  const pb = pipeline('bandwidth');
  const tb = await timeRuns(() => dispatch('bandwidth', pb, [src.buffer, dst.buffer], packUniforms([['u32', n / 4]]), grid2d(n / 4 / 256)), { runs: opts.quick ? 3 : 5 });
  const bMs = tb.gpuMs ?? tb.wallMs;
  for (const a of [out, src, dst]) a.dispose();
  const r = { adapter: key, peakGflops: flops / fMs / 1e6, peakGBs: (2 * n * 4) / bMs / 1e6, clock: tf.clock };
  cache.set(key, r);
  return r;
}

// GELU forward/backward bandwidth (an elementwise kernel: bound by memory, not arithmetic).
import { gpu } from '../src/kernels/device.js';
import { geluBackward, geluForward } from '../src/kernels/gelu.js';
import { GpuArray, scope } from '../src/kernels/memory.js';
import { geluForwardRef } from '../src/kernels/ref/gelu.js';
import { randomArray, toleranceRatio } from '../src/kernels/ref/math.js';
import { timeRuns } from './timing.js';

export async function benchGelu(opts: { n?: number; runs?: number } = {}) {
  const n = opts.n ?? 197 * 3072 * 8; // ViT-B/16 MLP activations for a batch of 8
  const xs = randomArray(n, 1, -4, 4);
  const x = GpuArray.fromData(xs, [n]);
  const dy = GpuArray.fromData(randomArray(n, 2), [n]);
  // Checked against the reference before it is timed.
  const check = toleranceRatio((await scope(() => geluForward(x)).read()).subarray(0, 4096), geluForwardRef(xs.subarray(0, 4096)), 1e-6, 2e-6);
  if (!(check <= 1)) throw new Error(`bench gelu: the kernel disagrees with its reference (error/tolerance ${check})`);
  const fwd = await timeRuns(() => scope(() => void geluForward(x)), { runs: opts.runs ?? 5 });
  const bwd = await timeRuns(() => scope(() => void geluBackward(x, dy)), { runs: opts.runs ?? 5 });
  x.dispose();
  dy.dispose();
  const gbs = (bytes: number, ms: number) => bytes / ms / 1e6;
  return {
    op: 'gelu',
    adapter: gpu().adapterKey,
    n,
    fwd_ms: fwd.gpuMs ?? fwd.wallMs,
    bwd_ms: bwd.gpuMs ?? bwd.wallMs,
    fwd_gbs: gbs(8 * n, fwd.gpuMs ?? fwd.wallMs),
    bwd_gbs: gbs(12 * n, bwd.gpuMs ?? bwd.wallMs),
    clock: fwd.clock,
  };
}

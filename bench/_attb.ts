import { initGpu } from '../src/kernels/device.js';
import { sync } from '../src/kernels/encoder.js';
import { GpuArray, scope } from '../src/kernels/memory.js';
import { randomArray } from '../src/kernels/ref/math.js';
import { Tensor } from '../src/autograd/tensor.js';
import * as ops from '../src/autograd/ops.js';
await initGpu();
const B = Number(process.env.B ?? 1), H = Number(process.env.H ?? 12), N = Number(process.env.N ?? 197), D = Number(process.env.D ?? 64);
const paths = ['explicit', ...(process.env.V ?? 'subgroup').split(',')];
const arrays = [1, 2, 3, 4].map((s) => GpuArray.fromData(randomArray(B * H * N * D, s), [B, H, N, D]));
const [q0, k0, v0, g0] = arrays;
const run = (path: string, grad: boolean) => scope(() => {
  const [q, k, v] = [q0, k0, v0].map((a) => new Tensor(a.view(a.shape), { requiresGrad: grad }));
  const out = path === 'explicit' ? ops.matmul(ops.softmax(ops.matmul(q, k, { transB: true, alpha: 1 / Math.sqrt(D) })), v) : ops.attention(q, k, v, { variant: path });
  if (grad) out.backward(g0);
});
const best: Record<string, [number, number]> = {};
for (const p of paths) { run(p, true); run(p, false); await sync(); best[p] = [Infinity, Infinity]; }
for (let it = 0; it < Number(process.env.RUNS ?? 9); it++) {
  for (const p of paths) {
    for (const grad of [false, true]) {
      await sync();
      const t0 = performance.now();
      run(p, grad);
      await sync();
      const t = performance.now() - t0;
      const i = grad ? 1 : 0;
      best[p][i] = Math.min(best[p][i], t);
    }
  }
}
const e = best.explicit;
for (const p of paths) console.log(`${p.padEnd(28)} fwd ${best[p][0].toFixed(1)} ms (${(e[0] / best[p][0]).toFixed(2)}x)  fwd+bwd ${best[p][1].toFixed(1)} ms (${(e[1] / best[p][1]).toFixed(2)}x)`);
process.exit(0);

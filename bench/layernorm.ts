// LayerNorm benchmark: ms (best and median wall, and GPU time where timestamps exist, after warm-up) and the
// effective bandwidth (forward: x read + y written; backward: x and dy read + dx written, as an ideal
// kernel would) for the adapter's row plan, and for each team size in `teams` (to re-tune rowPlan).
// Run alone: `timeout 300 npx tsx bench/layernorm.ts [rows] [cols] [runs]`.
import { pathToFileURL } from 'node:url';
import { destroyGpu, gpu, initGpu } from '../src/kernels/device.js';
import { GpuArray } from '../src/kernels/memory.js';
import { layerNormBackward, layerNormForward } from '../src/kernels/layernorm.js';
import { randomArray } from '../src/kernels/ref/math.js';
import { rowPlan, rowVariantName, setRowTeamSize } from '../src/kernels/softmax.js';
import { timeKernel } from './softmax.js';

const gbps = (bytes: number, ms: number) => bytes / (ms * 1e6);

export async function benchLayerNorm(opts: { rows?: number; cols?: number; runs?: number; eps?: number; teams?: (number | [number, number])[] } = {}) {
  await initGpu();
  const rows = opts.rows ?? 197 * 8; // eight ViT-B/16 images' tokens
  const cols = opts.cols ?? 768;
  const runs = opts.runs ?? 10;
  const eps = opts.eps ?? 1e-6;
  const x = GpuArray.fromData(randomArray(rows * cols, 1, -2, 2), [rows, cols]);
  const dy = GpuArray.fromData(randomArray(rows * cols, 2), [rows, cols]);
  const gamma = GpuArray.fromData(randomArray(cols, 3), [cols]);
  const beta = GpuArray.fromData(randomArray(cols, 4), [cols]);
  const f = layerNormForward(x, gamma, beta, eps);
  const one = async (team: number | [number, number] | null) => {
    if (Array.isArray(team)) setRowTeamSize(team[0], team[1]);
    else setRowTeamSize(team);
    const { T, WG, subgroup } = rowPlan(rows, cols, 'layernorm');
    const plan = rowVariantName({ T, WG, subgroup });
    const fwd = await timeKernel(() => layerNormForward(x, gamma, beta, eps), runs);
    const bwd = await timeKernel(() => layerNormBackward(x, gamma, f.mean, f.rstd, dy), runs);
    return {
      T,
      WG,
      plan,
      forward: { ms: fwd.ms, gbps: gbps(2 * rows * cols * 4, fwd.timed) },
      backward: { ms: bwd.ms, gbps: gbps(3 * rows * cols * 4, bwd.timed) },
    };
  };
  try {
    const chosen = await one(null);
    const variants = [];
    for (const t of opts.teams ?? []) variants.push(await one(t));
    return { op: 'layernorm', adapter: gpu().adapterKey, rows, cols, runs, eps, ...chosen, variants };
  } finally {
    setRowTeamSize(null);
    for (const a of [x, dy, gamma, beta, f.y, f.mean, f.rstd]) a.dispose();
  }
}

// Run as a script (`npx tsx bench/layernorm.ts`) — not when bundled into the CLI, where every module shares one URL.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href && import.meta.url.endsWith('/bench/layernorm.ts')) {
  const [rows, cols, runs] = process.argv.slice(2).map(Number);
  const teams = process.env.TEAMS ? JSON.parse(process.env.TEAMS) : [1, 4, 16, 64, 256];
  const r = await benchLayerNorm({ rows: rows || undefined, cols: cols || undefined, runs: runs || undefined, teams });
  console.log(JSON.stringify(r, null, 1));
  destroyGpu();
}

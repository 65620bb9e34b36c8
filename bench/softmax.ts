// Softmax benchmark: ms (best and median wall, and GPU time where timestamps exist, after warm-up) and the
// effective bandwidth (x read once + y written once, as an ideal kernel would) for the team size the
// adapter's tuning picks, and for every team size in `teams` (to re-tune rowPlan on a new adapter).
// Run alone: `timeout 300 npx tsx bench/softmax.ts [rows] [cols] [runs]`.
import { pathToFileURL } from 'node:url';
import { destroyGpu, gpu, initGpu } from '../src/kernels/device.js';
import { GpuArray, scope } from '../src/kernels/memory.js';
import { timeRuns } from './timing.js';
import { randomArray } from '../src/kernels/ref/math.js';
import { rowPlan, rowVariantName, setRowTeamSize, softmaxBackward, softmaxForward } from '../src/kernels/softmax.js';

/** Time fn (which records GPU work) with the shared timer; what fn allocates is freed each run. */
export async function timeKernel(fn: () => unknown, runs: number) {
  const t = await timeRuns(() => scope(() => void fn()), { runs });
  return { ms: { best: t.bestWallMs, median: t.wallMs, gpu: t.gpuMs }, timed: t.gpuMs ?? t.wallMs };
}

const gbps = (bytes: number, ms: number) => bytes / (ms * 1e6);

/**
 * `peers`: also tfjs-backend-webgpu's tf.softmax on the same adapter and input; both sides are then also timed by wall
 * clock with the read-back of y (tfjs cannot be timed by our timestamp queries), and `ratio_vs_tfjs` compares those.
 */
export async function benchSoftmax(opts: { rows?: number; cols?: number; runs?: number; teams?: (number | [number, number])[]; peers?: boolean } = {}) {
  await initGpu();
  const rows = opts.rows ?? 12 * 197 * 2; // two ViT-B/16 images' attention rows
  const cols = opts.cols ?? 197;
  const runs = opts.runs ?? 10;
  const xs = randomArray(rows * cols, 1, -8, 8);
  const x = GpuArray.fromData(xs, [rows, cols]);
  const dy = GpuArray.fromData(randomArray(rows * cols, 2), [rows, cols]);
  const y = softmaxForward(x);
  const bytesFwd = 2 * rows * cols * 4;
  const bytesBwd = 3 * rows * cols * 4;
  const one = async (team: number | [number, number] | null) => {
    if (Array.isArray(team)) setRowTeamSize(team[0], team[1]);
    else setRowTeamSize(team);
    const { T, WG, subgroup } = rowPlan(rows, cols, 'softmax');
    const plan = rowVariantName({ T, WG, subgroup });
    const fwd = await timeKernel(() => softmaxForward(x), runs);
    const bwd = await timeKernel(() => softmaxBackward(y, dy), runs);
    return { T, WG, plan, forward: { ms: fwd.ms, gbps: gbps(bytesFwd, fwd.timed) }, backward: { ms: bwd.ms, gbps: gbps(bytesBwd, bwd.timed) } };
  };
  try {
    const chosen = await one(null);
    const variants = [];
    for (const t of opts.teams ?? []) variants.push(await one(t));
    const result: Record<string, unknown> = { op: 'softmax', adapter: gpu().adapterKey, rows, cols, runs, ...chosen, variants };
    if (opts.peers) {
      const { tfjsSoftmax } = await import('./tfjs-peer.js');
      setRowTeamSize(null);
      // Ours by wall clock incl. read-back, the way the peer is timed: best of runs after one warm-up.
      const wall = await timeRuns(() => scope(async () => void (await softmaxForward(x).read())), { runs, warmup: 1, gpuTime: false });
      const wallMs = wall.bestWallMs;
      result.forward_wall = { ms: wallMs, gbps: gbps(bytesFwd, wallMs), timing: 'best of runs after 1 warm-up; each run = dispatch + read-back of y' };
      const peer = await tfjsSoftmax({ x: xs, rows, cols, runs });
      result.tfjs = peer;
      if (peer.ms) result.ratio_vs_tfjs = peer.ms / wallMs;
    }
    return result;
  } finally {
    setRowTeamSize(null);
    for (const a of [x, dy, y]) a.dispose();
  }
}

// Run as a script (`npx tsx bench/softmax.ts`) — not when bundled into the CLI, where every module shares one URL.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href && import.meta.url.endsWith('/bench/softmax.ts')) {
  const [rows, cols, runs] = process.argv.slice(2).map(Number);
  const r = await benchSoftmax({ rows: rows || undefined, cols: cols || undefined, runs: runs || undefined, teams: process.env.TEAMS ? JSON.parse(process.env.TEAMS) : [1, 4, 16, 64, 256] });
  console.log(JSON.stringify(r, null, 1));
  destroyGpu();
}

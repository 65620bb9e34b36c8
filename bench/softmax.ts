// Softmax benchmark: ms (best and median of `runs` after warm-up, each synced with sync()) and the
// effective bandwidth (x read once + y written once, as an ideal kernel would) for the team size the
// adapter's tuning picks, and for every team size in `teams` (to re-tune rowPlan on a new adapter).
// Run alone: `timeout 300 npx tsx bench/softmax.ts [rows] [cols] [runs]`.
import { pathToFileURL } from 'node:url';
import { destroyGpu, gpu, initGpu } from '../src/kernels/device.js';
import { sync } from '../src/kernels/encoder.js';
import { GpuArray } from '../src/kernels/memory.js';
import { randomArray } from '../src/kernels/ref/math.js';
import { rowPlan, setRowTeamSize, softmaxBackward, softmaxForward } from '../src/kernels/softmax.js';

export interface Timing {
  best: number;
  median: number;
}

/** Time fn (which records GPU work and returns what to dispose) after `warmup` untimed calls. */
export async function timeRuns(fn: () => { dispose(): void }[], runs: number, warmup = 2): Promise<Timing> {
  for (let i = 0; i < warmup; i++) {
    const out = fn();
    await sync();
    for (const o of out) o.dispose();
  }
  const ms: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    const out = fn();
    await sync();
    ms.push(performance.now() - t0);
    for (const o of out) o.dispose();
  }
  ms.sort((a, b) => a - b);
  return { best: ms[0], median: ms[Math.floor(ms.length / 2)] };
}

const gbps = (bytes: number, ms: number) => bytes / (ms * 1e6);

export async function benchSoftmax(opts: { rows?: number; cols?: number; runs?: number; teams?: (number | [number, number])[] } = {}) {
  await initGpu();
  const rows = opts.rows ?? 12 * 197 * 2; // two ViT-B/16 images' attention rows
  const cols = opts.cols ?? 197;
  const runs = opts.runs ?? 10;
  const x = GpuArray.fromData(randomArray(rows * cols, 1, -8, 8), [rows, cols]);
  const dy = GpuArray.fromData(randomArray(rows * cols, 2), [rows, cols]);
  const y = softmaxForward(x);
  const bytesFwd = 2 * rows * cols * 4;
  const bytesBwd = 3 * rows * cols * 4;
  const one = async (team: number | [number, number] | null) => {
    if (Array.isArray(team)) setRowTeamSize(team[0], team[1]);
    else setRowTeamSize(team);
    const { T, WG } = rowPlan(rows, cols);
    const fwd = await timeRuns(() => [softmaxForward(x)], runs);
    const bwd = await timeRuns(() => [softmaxBackward(y, dy)], runs);
    return { T, WG, forward: { ms: fwd, gbps: gbps(bytesFwd, fwd.median) }, backward: { ms: bwd, gbps: gbps(bytesBwd, bwd.median) } };
  };
  try {
    const chosen = await one(null);
    const variants = [];
    for (const t of opts.teams ?? []) variants.push(await one(t));
    return { op: 'softmax', adapter: gpu().adapterKey, rows, cols, runs, ...chosen, variants };
  } finally {
    setRowTeamSize(null);
    for (const a of [x, dy, y]) a.dispose();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [rows, cols, runs] = process.argv.slice(2).map(Number);
  const r = await benchSoftmax({ rows: rows || undefined, cols: cols || undefined, runs: runs || undefined, teams: process.env.TEAMS ? JSON.parse(process.env.TEAMS) : [1, 4, 16, 64, 256] });
  console.log(JSON.stringify(r, null, 1));
  destroyGpu();
}

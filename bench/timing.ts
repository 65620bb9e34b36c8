// Timing for the benchmarks: GPU time from timestamp queries where the adapter has them (summed over
// the compute passes a run records), wall time always; medians of N runs after warm-up.
import { gpu } from '../src/kernels/device.js';
import { lastTimedEnd, markTimedEnd, warmClocks } from '../src/kernels/clocks.js';
import { sync } from '../src/kernels/encoder.js';
import { setPassHook } from '../src/kernels/launch.js';
import { PassTimer } from '../src/kernels/passTimer.js';

export interface Timing {
  /** Median wall time of a run, ms (includes submit and, if the run reads back, the readback). */
  wallMs: number;
  /** Best wall time, ms. */
  bestWallMs: number;
  /** Median GPU time of a run from timestamp queries, ms (null without timestamp-query). */
  gpuMs: number | null;
  runs: number;
  /** 'timestamp-query' or 'wall-clock' */
  clock: string;
}

export const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/**
 * Time fn (which records GPU work and may read back) after `warmup` untimed runs (and, on a hardware GPU that was
 * idle, clocks.ts' warm-up: the card's clocks raised again). Each timed run
 * ends with a full sync so runs do not overlap.
 */
export async function timeRuns(fn: () => unknown | Promise<unknown>, opts: { runs?: number; warmup?: number; gpuTime?: boolean } = {}): Promise<Timing> {
  const runs = opts.runs ?? 5;
  const warmup = opts.warmup ?? 2;
  const idleSince = lastTimedEnd();
  let afterFirst = 0; // when the first warm-up run (which may compile pipelines: CPU time) ended
  for (let i = 0; i < warmup; i++) {
    await fn();
    await sync();
    if (i === 0) afterFirst = performance.now();
  }
  // the warm-up runs after the first kept the GPU busy: they count towards the clock warm-up
  try {
    await warmClocks(fn, idleSince, warmup > 1 ? performance.now() - afterFirst : 0);
  } catch (e) {
    markTimedEnd();
    throw e;
  }
  const g = gpu();
  const useTs = (opts.gpuTime ?? true) && g.features.has('timestamp-query');
  const timer = useTs ? new PassTimer(g.device) : null;
  const walls: number[] = [];
  const gpus: number[] = [];
  try {
    for (let i = 0; i < runs; i++) {
      if (timer) setPassHook(timer.hook);
      const t0 = performance.now();
      await fn();
      await sync();
      walls.push(performance.now() - t0);
      if (timer) {
        setPassHook(null);
        const ms = await timer.readMs();
        if (!timer.overflow) gpus.push(ms);
        timer.overflow = false;
      }
    }
  } finally {
    setPassHook(null);
    timer?.destroy();
    markTimedEnd();
  }
  // A GPU time of 0 is no measurement (the work took less than one timestamp step): fall back to wall-clock time.
  const gpuMs = gpus.length && median(gpus) > 0 ? median(gpus) : null;
  return {
    wallMs: median(walls),
    bestWallMs: Math.min(...walls),
    gpuMs,
    runs,
    clock: gpuMs !== null ? 'timestamp-query' : 'wall-clock',
  };
}

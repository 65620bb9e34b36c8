// Timing for the benchmarks: GPU time from timestamp queries where the adapter has them (summed over
// the compute passes a run records), wall time always; medians of N runs after warm-up.
import { gpu } from '../src/kernels/device.js';
import { flush, sync } from '../src/kernels/encoder.js';
import { setPassHook } from '../src/kernels/launch.js';

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

const MAX_QUERIES = 4096;

/** Records begin/end timestamps of every compute pass while active. */
class PassTimer {
  private set: GPUQuerySet;
  private resolveBuf: GPUBuffer;
  private next = 0;
  overflow = false;

  constructor(private device: GPUDevice) {
    this.set = device.createQuerySet({ type: 'timestamp', count: MAX_QUERIES });
    this.resolveBuf = device.createBuffer({ size: MAX_QUERIES * 8, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
  }

  hook = (desc: GPUComputePassDescriptor) => {
    if (this.next + 2 > MAX_QUERIES) {
      this.overflow = true;
      return;
    }
    desc.timestampWrites = { querySet: this.set, beginningOfPassWriteIndex: this.next, endOfPassWriteIndex: this.next + 1 };
    this.next += 2;
  };

  /** Sum of pass durations recorded since the last reset, in ms. */
  async readMs(): Promise<number> {
    const n = this.next;
    if (n === 0) return 0;
    const enc = this.device.createCommandEncoder();
    enc.resolveQuerySet(this.set, 0, n, this.resolveBuf, 0);
    const staging = this.device.createBuffer({ size: n * 8, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    enc.copyBufferToBuffer(this.resolveBuf, 0, staging, 0, n * 8);
    flush();
    this.device.queue.submit([enc.finish()]);
    await staging.mapAsync(GPUMapMode.READ);
    const t = new BigUint64Array(staging.getMappedRange().slice(0));
    staging.unmap();
    staging.destroy();
    let ns = 0n;
    for (let i = 0; i < n; i += 2) if (t[i + 1] > t[i]) ns += t[i + 1] - t[i];
    this.next = 0;
    return Number(ns) / 1e6;
  }

  destroy(): void {
    this.set.destroy();
    this.resolveBuf.destroy();
  }
}

/**
 * Time fn (which records GPU work and may read back) after `warmup` untimed runs. Each timed run
 * ends with a full sync so runs do not overlap.
 */
export async function timeRuns(fn: () => unknown | Promise<unknown>, opts: { runs?: number; warmup?: number; gpuTime?: boolean } = {}): Promise<Timing> {
  const runs = opts.runs ?? 5;
  const warmup = opts.warmup ?? 2;
  for (let i = 0; i < warmup; i++) {
    await fn();
    await sync();
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
      }
    }
  } finally {
    setPassHook(null);
    timer?.destroy();
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

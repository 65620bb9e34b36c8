// GPU time of compute passes from timestamp queries: a pass hook (launch.ts setPassHook) gives every pass recorded
// while it is set a begin and an end timestamp; readMs() sums the durations. Used by the benchmarks (bench/timing.ts)
// and by the matmul autotune on GPUs, where a product takes a few milliseconds and a call's wall clock adds the
// submit and the wait for completion (the same for every candidate, and noisy beside a 5 % margin).
import { flush } from './encoder.js';

const MAX_QUERIES = 4096;

/** Records begin/end timestamps of every compute pass while its hook is set (at most 2048 passes between reads). */
export class PassTimer {
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

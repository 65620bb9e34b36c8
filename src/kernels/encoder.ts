// Commands are recorded into one shared encoder and submitted together (fewer submits, less
// per-dispatch overhead). Anything that writes through the queue or reads back calls flush() first.
import { gpu } from './device.js';

let enc: GPUCommandEncoder | null = null;
let encDevice: GPUDevice | null = null;
let recorded = 0;
const onFlush: (() => void)[] = [];

/** Flush automatically after this many recorded passes, to bound latency and held uniforms. */
export const MAX_PASSES_PER_SUBMIT = 128;

export function commandEncoder(): GPUCommandEncoder {
  const device = gpu().device;
  if (enc && encDevice !== device) {
    // Recorded on a device that is gone (destroyGpu or lost): that work cannot run anywhere.
    enc = null;
    recorded = 0;
  }
  if (!enc) {
    enc = device.createCommandEncoder();
    encDevice = device;
  }
  return enc;
}

/** Count one recorded pass; submits when the batch is full. */
export function recordedPass(): void {
  if (++recorded >= MAX_PASSES_PER_SUBMIT) flush();
}

/** Run cb after the next submit (used to recycle uniform buffers once their writes are ordered). */
export function afterFlush(cb: () => void): void {
  onFlush.push(cb);
}

export function flush(): void {
  if (enc) {
    const e = enc;
    enc = null;
    recorded = 0;
    gpu().device.queue.submit([e.finish()]);
  }
  for (const cb of onFlush.splice(0)) cb();
}

/** Submit pending work and wait until the GPU has finished it. */
export async function sync(): Promise<void> {
  flush();
  await gpu().device.queue.onSubmittedWorkDone();
}

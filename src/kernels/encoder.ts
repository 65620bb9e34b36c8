// Commands are recorded into one shared encoder and submitted together (fewer submits, less
// per-dispatch overhead). Anything that writes through the queue or reads back calls flush() first.
import { gpu } from './device.js';

let enc: GPUCommandEncoder | null = null;
let encDevice: GPUDevice | null = null;
/** The compute pass dispatches are recorded into, kept open across dispatches (see computePass). */
let pass: GPUComputePassEncoder | null = null;
let recorded = 0;
const onFlush: (() => void)[] = [];

/** Flush automatically after this many recorded dispatches, to bound latency and held uniforms. */
export const MAX_PASSES_PER_SUBMIT = 128;

/** The shared encoder, for copies and passes; ends the open compute pass, so commands stay in recording order. */
export function commandEncoder(): GPUCommandEncoder {
  const device = gpu().device;
  if (enc && encDevice !== device) {
    // Recorded on a device that is gone (destroyGpu or lost): that work cannot run anywhere.
    enc = null;
    pass = null;
    recorded = 0;
    onFlush.length = 0;
  }
  if (pass) {
    pass.end();
    pass = null;
  }
  if (!enc) {
    enc = device.createCommandEncoder();
    encDevice = device;
  }
  return enc;
}

/**
 * A compute pass to record one dispatch into. Consecutive dispatches share one pass (beginning and ending a pass
 * costs ~8 µs of host time each on Dawn; WebGPU makes each dispatch's writes visible to the next dispatch of the same
 * pass, so sharing changes nothing else). With `desc` (a pass that needs its own descriptor, e.g. timestamp writes)
 * the dispatch gets a pass of its own.
 */
export function computePass(desc?: GPUComputePassDescriptor): GPUComputePassEncoder {
  if (desc) return commandEncoder().beginComputePass(desc);
  if (pass && encDevice !== gpu().device) pass = null; // a device that is gone: commandEncoder() drops its encoder
  if (!pass) pass = commandEncoder().beginComputePass();
  return pass;
}

/** End a pass that computePass(desc) gave for one dispatch (the shared pass stays open). */
export function endComputePass(p: GPUComputePassEncoder): void {
  if (p !== pass) p.end();
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
  if (enc && encDevice !== gpu().device) {
    // Recorded on a device that is gone (destroyGpu or lost): that work, and what waits for its submit, is dropped.
    enc = null;
    pass = null;
    recorded = 0;
    onFlush.length = 0;
    return;
  }
  if (enc) {
    if (pass) pass.end();
    pass = null;
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

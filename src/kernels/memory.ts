// GPU memory: a size-bucketed buffer pool, the GpuArray (a dense f32 array on the device), and
// scope() to free everything a block made except what it returns (in the spirit of tf.tidy).
import { gpu } from './device.js';
import { commandEncoder, flush } from './encoder.js';
import { forgetBindGroups } from './launch.js';

const STORAGE_USAGE = () => GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;

/** Bucket sizes: powers of two split in quarters, so reuse wastes at most 25% (min 256 bytes). */
export function bucketBytes(bytes: number): number {
  const b = Math.max(256, Math.ceil(bytes / 4) * 4);
  if (b <= 4096) return 2 ** Math.ceil(Math.log2(b));
  const p = 2 ** Math.floor(Math.log2(b));
  const q = p / 4;
  return Math.ceil(b / q) * q;
}

export interface MemoryStats {
  /** GpuArrays alive (not yet disposed), views included. */
  liveArrays: number;
  /** Bytes of data held by live GpuArrays (a buffer shared by views counts once). */
  liveBytes: number;
  /** GPU buffers currently created (live + pooled free). */
  gpuBuffers: number;
  /** Bytes in the pool's free lists. */
  pooledBytes: number;
  /**
   * The most liveBytes reached since the last resetPeakMemory() (or the start): the memory a computation needed at
   * once, as the arrays it held — independent of the adapter and of the pool's bucket rounding.
   */
  peakLiveBytes: number;
  /** Bytes of the GPU buffers the pool has created and not destroyed (live + pooled free, in bucket sizes). */
  allocatedBytes: number;
}

class BufferPool {
  private free = new Map<number, GPUBuffer[]>();
  private pooledBytes = 0;
  created = 0;
  createdBytes = 0;
  /** The device the pooled buffers belong to: a new device (after destroyGpu or a lost device) starts a new pool. */
  private device: GPUDevice | null = null;
  private mine = new WeakSet<GPUBuffer>();

  acquire(bytes: number, op: string): GPUBuffer {
    const size = bucketBytes(bytes);
    const g = gpu();
    if (g.device !== this.device) {
      // The old device's buffers cannot be bound on this one (and were destroyed with it): forget them.
      this.free.clear();
      this.pooledBytes = 0;
      this.created = 0;
      this.createdBytes = 0;
      this.mine = new WeakSet();
      this.device = g.device;
    }
    const max = Math.min(g.limits.maxStorageBufferBindingSize, g.limits.maxBufferSize);
    if (size > max) {
      throw new RangeError(
        `${op}: a buffer of ${bytes} bytes is above this device's limit of ${max} bytes (maxStorageBufferBindingSize); use a smaller batch or shape`,
      );
    }
    const list = this.free.get(size);
    const b = list?.pop();
    if (b) {
      this.pooledBytes -= size;
      return b;
    }
    this.created++;
    this.createdBytes += size;
    const buf = g.device.createBuffer({ size, usage: STORAGE_USAGE() });
    this.mine.add(buf);
    return buf;
  }

  release(buf: GPUBuffer): void {
    if (!this.mine.has(buf)) return; // an earlier device's buffer: nothing to reuse
    const size = buf.size;
    let list = this.free.get(size);
    if (!list) this.free.set(size, (list = []));
    list.push(buf);
    this.pooledBytes += size;
  }

  /** Destroy every pooled (free) buffer. */
  trim(): void {
    flush(); // recorded commands may still use the free buffers (arrays are disposed once their dispatch is recorded)
    forgetBindGroups(); // cached bind groups may name the buffers destroyed here
    for (const list of this.free.values()) for (const b of list) b.destroy();
    this.created -= [...this.free.values()].reduce((n, l) => n + l.length, 0);
    this.createdBytes -= this.pooledBytes;
    this.free.clear();
    this.pooledBytes = 0;
  }

  get pooled(): number {
    return this.pooledBytes;
  }
}

export const pool = new BufferPool();
let liveArrays = 0;
let liveBytes = 0;
let peakLiveBytes = 0;

export function memoryStats(): MemoryStats {
  return { liveArrays, liveBytes, gpuBuffers: pool.created, pooledBytes: pool.pooled, peakLiveBytes, allocatedBytes: pool.createdBytes };
}

/** Start a new peak (memoryStats().peakLiveBytes) from the bytes live now. */
export function resetPeakMemory(): void {
  peakLiveBytes = liveBytes;
}

/**
 * The peak memory fn needed above what was live when it began: the most bytes of arrays alive at once while it ran,
 * minus those alive before (its inputs), with what it returns still counted. Arrays are disposed as soon as their
 * last dispatch is recorded and their buffers go to the next array that asks (the queue keeps the order), so this is
 * the working set the computation needs, not the buffers the pool holds. Async functions are awaited; work from
 * elsewhere that runs meanwhile counts too. The peak outside is kept (the larger of the two stands afterwards).
 */
export async function peakBytesOf<T>(fn: () => T | Promise<T>): Promise<{ result: T; peakBytes: number }> {
  const outer = peakLiveBytes;
  const base = liveBytes;
  peakLiveBytes = liveBytes;
  try {
    const result = await fn();
    return { result, peakBytes: peakLiveBytes - base };
  } finally {
    peakLiveBytes = Math.max(outer, peakLiveBytes);
  }
}

export type Shape = readonly number[];

export function shapeSize(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function checkShape(shape: Shape, op: string): void {
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) throw new RangeError(`${op}: invalid shape [${shape.join(', ')}]: dimensions must be integers >= 0`);
  }
}

export const fmt = (s: Shape) => `[${s.join(', ')}]`;

/** A pooled GPU buffer shared by an array and its views; returned to the pool when the last one goes. */
class SharedBuffer {
  refs = 1;
  constructor(readonly buffer: GPUBuffer, readonly bytes: number) {
    liveBytes += bytes;
    if (liveBytes > peakLiveBytes) peakLiveBytes = liveBytes;
  }
}

/** A dense, row-major float32 array in GPU memory. */
export class GpuArray {
  readonly shape: number[];
  readonly size: number;
  private shared: SharedBuffer | null;

  /** Use GpuArray.empty / fromData / view; the constructor takes one reference on a shared buffer. */
  private constructor(shape: Shape, shared: SharedBuffer) {
    this.shape = [...shape];
    this.size = shapeSize(shape);
    this.shared = shared;
    liveArrays++;
    track(this);
  }

  static empty(shape: Shape, op = 'alloc'): GpuArray {
    checkShape(shape, op);
    // Zero-size arrays still get a minimal buffer so bindings stay valid.
    const bytes = shapeSize(shape) * 4;
    return new GpuArray(shape, new SharedBuffer(pool.acquire(Math.max(4, bytes), `${op} ${fmt(shape)}`), bytes));
  }

  static fromData(data: ArrayLike<number>, shape: Shape, op = 'upload'): GpuArray {
    checkShape(shape, op);
    if (data.length !== shapeSize(shape)) {
      throw new RangeError(`${op}: ${data.length} values do not fill shape ${fmt(shape)} (${shapeSize(shape)} values)`);
    }
    const a = GpuArray.empty(shape, op);
    const f = data instanceof Float32Array ? data : Float32Array.from(data);
    if (f.length > 0) {
      flush(); // the buffer may be a recycled one that commands still pending in the encoder read
      gpu().device.queue.writeBuffer(a.buffer, 0, f.buffer, f.byteOffset, f.byteLength);
    }
    return a;
  }

  static zeros(shape: Shape): GpuArray {
    return GpuArray.fromData(new Float32Array(shapeSize(shape)), shape, 'zeros');
  }

  get buffer(): GPUBuffer {
    if (!this.shared) throw new Error(`a GpuArray of shape ${fmt(this.shape)} was used after dispose()`);
    return this.shared.buffer;
  }

  get disposed(): boolean {
    return this.shared === null;
  }

  get rank(): number {
    return this.shape.length;
  }

  /** Overwrite the contents with host data of the same size. */
  write(data: Float32Array): void {
    if (data.length !== this.size) throw new RangeError(`write: ${data.length} values into an array of shape ${fmt(this.shape)}`);
    flush();
    gpu().device.queue.writeBuffer(this.buffer, 0, data.buffer, data.byteOffset, data.byteLength);
  }

  /** Copy to the host. */
  async read(): Promise<Float32Array> {
    const buf = this.buffer;
    const bytes = this.size * 4;
    if (bytes === 0) return new Float32Array(0);
    const device = gpu().device;
    const staging = device.createBuffer({ size: bytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    commandEncoder().copyBufferToBuffer(buf, 0, staging, 0, bytes);
    flush();
    await staging.mapAsync(GPUMapMode.READ);
    const out = new Float32Array(staging.getMappedRange().slice(0));
    staging.unmap();
    staging.destroy();
    return out;
  }

  /**
   * The same data under another shape of the same size, with no copy: the view shares the buffer,
   * which goes back to the pool when the array and all its views are disposed. Views must not be
   * written while another alias is still read (kernels never write their inputs).
   */
  view(shape: Shape): GpuArray {
    checkShape(shape, 'view');
    if (shapeSize(shape) !== this.size) throw new RangeError(`reshape: cannot view ${fmt(this.shape)} (${this.size} values) as ${fmt(shape)} (${shapeSize(shape)})`);
    const shared = this.shared;
    if (!shared) throw new Error(`a GpuArray of shape ${fmt(this.shape)} was used after dispose()`);
    shared.refs++;
    return new GpuArray(shape, shared);
  }

  /** Alias of view(). */
  reshape(shape: Shape): GpuArray {
    return this.view(shape);
  }

  /** A new array with its own buffer holding a copy of this one's data (optionally reshaped). */
  clone(shape: Shape = this.shape): GpuArray {
    if (shapeSize(shape) !== this.size) throw new RangeError(`clone: cannot reshape ${fmt(this.shape)} to ${fmt(shape)}`);
    const out = GpuArray.empty(shape, 'clone');
    copyBuffer(this.buffer, out.buffer, this.size * 4);
    return out;
  }

  dispose(): void {
    const shared = this.shared;
    if (!shared) return;
    this.shared = null;
    if (--shared.refs === 0) {
      pool.release(shared.buffer);
      liveBytes -= shared.bytes;
    }
    liveArrays--;
    untrack(this);
  }
}

export function copyBuffer(src: GPUBuffer, dst: GPUBuffer, bytes: number, srcOffset = 0, dstOffset = 0): void {
  if (bytes === 0) return;
  commandEncoder().copyBufferToBuffer(src, srcOffset, dst, dstOffset, bytes);
}

// ---- scopes -------------------------------------------------------------------------------

/** Anything that owns GpuArrays (an autograd Tensor, a module) can say which, so scope() keeps them. */
export interface HoldsGpuArrays {
  gpuArrays(): Iterable<GpuArray>;
}

const scopes: Set<GpuArray>[] = [];

function track(a: GpuArray): void {
  scopes[scopes.length - 1]?.add(a);
}
function untrack(a: GpuArray): void {
  for (const s of scopes) s.delete(a);
}

/** Take arrays out of every open scope so they outlive it (e.g. parameters, optimizer state). */
export function keep<T extends GpuArray | HoldsGpuArrays>(x: T): T {
  const arrays = x instanceof GpuArray ? [x] : [...x.gpuArrays()];
  for (const a of arrays) untrack(a);
  return x;
}

function collect(x: unknown, out: Set<GpuArray>, seen: Set<unknown>): void {
  if (x === null || typeof x !== 'object' || seen.has(x)) return;
  seen.add(x);
  if (x instanceof GpuArray) {
    out.add(x);
    return;
  }
  if (typeof (x as HoldsGpuArrays).gpuArrays === 'function') {
    for (const a of (x as HoldsGpuArrays).gpuArrays()) out.add(a);
    return;
  }
  if (Array.isArray(x)) for (const v of x) collect(v, out, seen);
  else if (x instanceof Map) for (const v of x.values()) collect(v, out, seen);
  else if (Object.getPrototypeOf(x) === Object.prototype) for (const v of Object.values(x)) collect(v, out, seen);
}

function endScope(s: Set<GpuArray>, result: unknown): void {
  const i = scopes.lastIndexOf(s);
  if (i >= 0) scopes.splice(i, 1);
  const kept = new Set<GpuArray>();
  collect(result, kept, new Set());
  for (const a of s) {
    if (kept.has(a)) scopes[i - 1]?.add(a);
    else a.dispose();
  }
}

/**
 * Run fn; dispose every GpuArray it created that is not reachable from its result (arrays, plain
 * objects, Maps and objects with gpuArrays() are searched). Async functions are awaited.
 */
export function scope<T>(fn: () => T): T {
  const s = new Set<GpuArray>();
  scopes.push(s);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    endScope(s, undefined);
    throw e;
  }
  if (result instanceof Promise) {
    // Note: arrays created by other code while this promise is pending join this scope too;
    // keep async scopes un-nested with concurrent work.
    return result.then(
      (v) => (endScope(s, v), v),
      (e) => {
        endScope(s, undefined);
        throw e;
      },
    ) as T;
  }
  endScope(s, result);
  return result;
}

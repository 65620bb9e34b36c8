// One GPUDevice for the whole library, from navigator.gpu in a browser or Dawn (the `webgpu` npm
// package) in Node. Nothing here imports a Node module statically, so the browser bundle stays clean.

export interface AdapterDescription {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  isFallbackAdapter: boolean;
}

export interface Gpu {
  /** The GPU object (navigator.gpu or Dawn's instance). Held here because Dawn crashes if it is collected. */
  gpu: GPU;
  device: GPUDevice;
  adapter: GPUAdapter;
  info: AdapterDescription;
  /** Features enabled on the device (a subset of the adapter's). */
  features: Set<string>;
  limits: GPUSupportedLimits;
  /** A short stable name for result files: e.g. "llvmpipe" or "nvidia-h100". */
  adapterKey: string;
  /**
   * The subgroup size the subgroup kernels are compiled for, or null where they must not run: the device has
   * 'subgroups', the adapter reports one fixed size (min = max ≤ 128), and a probe at start found every subgroup full
   * and made of consecutive local_invocation_index values — the layout those kernels assume (row teams, the subgroup
   * matmul, the subgroup attention kernels), which neither WGSL nor Vulkan promises (probeSubgroupLayout).
   */
  subgroupSize: number | null;
}

export interface GpuOptions {
  /** A GPU object to use instead of navigator.gpu / Dawn (e.g. from another Dawn instance). */
  gpu?: GPU;
  /** Dawn toggles for Node, e.g. ['backend=vulkan', 'adapter=NAME']. */
  dawnOptions?: string[];
  powerPreference?: GPUPowerPreference;
}

/**
 * Dawn toggles used in Node unless GpuOptions.dawnOptions says otherwise. Dawn rounds timestamp queries to a coarse
 * step by default (a browser's defence against timing attacks: 32.8 µs steps were seen on an H200), which turns the
 * benchmarks' GPU times of short kernels into 0 or one step; a local process has no such threat.
 */
export const DEFAULT_DAWN_OPTIONS = ['disable-dawn-features=timestamp_quantization'];

/** Features requested when the adapter offers them. */
export const WANTED_FEATURES = ['timestamp-query', 'subgroups', 'shader-f16'] as const;

/** Limits raised to the adapter's maximum (WebGPU's defaults are lower than most adapters allow). */
const RAISED_LIMITS = [
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupSizeY',
  'maxComputeWorkgroupSizeZ',
  'maxComputeWorkgroupsPerDimension',
  'maxStorageBuffersPerShaderStage',
] as const;

export const NO_ADAPTER_HELP =
  'No WebGPU adapter was found. ' +
  'In a browser: use one with WebGPU enabled (Chrome/Edge 113+, or Chromium with --enable-unsafe-webgpu). ' +
  'In Node on Linux without a GPU: install a Vulkan driver, Mesa\'s lavapipe from bookworm-backports ' +
  '(run `bash scripts/setup.sh` as root, which does it; Debian 12\'s own Mesa 22.3 is too old for Dawn). ' +
  'With a GPU: install its Vulkan driver (libvulkan1 plus the vendor driver).';

export class NoAdapterError extends Error {
  constructor(detail?: string) {
    super(detail ? `${NO_ADAPTER_HELP} (${detail})` : NO_ADAPTER_HELP);
    this.name = 'NoAdapterError';
  }
}

let current: Gpu | undefined;
let pending: Promise<Gpu> | undefined;
let lostReason: string | undefined;

const isNode = typeof process !== 'undefined' && !!process.versions?.node && typeof window === 'undefined';

async function findGpu(opts: GpuOptions): Promise<GPU> {
  if (opts.gpu) return opts.gpu;
  const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
  if (nav?.gpu) return nav.gpu;
  if (isNode) {
    // A variable specifier keeps bundlers from following this import into the browser build.
    const spec = 'webgpu';
    let mod: { create: (o: string[]) => GPU; globals: Record<string, unknown> };
    try {
      mod = await import(/* @vite-ignore */ spec);
    } catch (e) {
      throw new NoAdapterError(`the 'webgpu' npm package (Dawn) could not be loaded: ${(e as Error).message}; run npm install`);
    }
    // Dawn's constants (GPUBufferUsage, GPUMapMode, ...) are globals in a browser; make them so here.
    for (const [k, v] of Object.entries(mod.globals)) {
      if (!(k in globalThis)) (globalThis as Record<string, unknown>)[k] = v;
    }
    return mod.create(opts.dawnOptions ?? DEFAULT_DAWN_OPTIONS);
  }
  throw new NoAdapterError('navigator.gpu is undefined: this browser has no WebGPU');
}

function describeAdapter(adapter: GPUAdapter): AdapterDescription {
  const i = (adapter as GPUAdapter & { info?: GPUAdapterInfo }).info;
  return {
    vendor: i?.vendor ?? '',
    architecture: i?.architecture ?? '',
    device: i?.device ?? '',
    description: i?.description ?? '',
    isFallbackAdapter: Boolean((adapter as { isFallbackAdapter?: boolean }).isFallbackAdapter ?? (i as { isFallbackAdapter?: boolean } | undefined)?.isFallbackAdapter),
  };
}

/** A short, file-name-safe adapter name: "llvmpipe", "swiftshader", "nvidia-h100", ... */
export function adapterKeyOf(info: AdapterDescription): string {
  const text = `${info.description} ${info.device} ${info.architecture} ${info.vendor}`.toLowerCase();
  if (text.includes('llvmpipe')) return 'llvmpipe';
  if (text.includes('swiftshader')) return 'swiftshader';
  const m = text.match(/\b([ahl]\d{2,3}[a-z]?)\b/);
  if (info.vendor.toLowerCase().includes('nvidia') || text.includes('nvidia')) return m ? `nvidia-${m[1]}` : 'nvidia';
  const first = (info.description || info.device || info.architecture || info.vendor || 'unknown').toLowerCase();
  return first.replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 40) || 'unknown';
}

const readyHooks: ((g: Gpu) => Promise<void> | void)[] = [];

/**
 * Run `hook` each time a new device is made, before initGpu() resolves (the CLI loads cached tuning results here,
 * so every command sees them; the library itself registers none, so its choices depend only on what a caller sets).
 * The device is current while hooks run (they may call gpu()), but initGpu() callers wait for them. A hook that
 * throws fails initGpu with its error and the device is destroyed (the next initGpu starts afresh). Returns a
 * function that removes the hook.
 */
export function onGpuReady(hook: (g: Gpu) => Promise<void> | void): () => void {
  readyHooks.push(hook);
  return () => {
    const i = readyHooks.indexOf(hook);
    if (i >= 0) readyHooks.splice(i, 1);
  };
}

/** The library's device; created on first call. */
export function initGpu(opts: GpuOptions = {}): Promise<Gpu> {
  // While the ready hooks run, `current` is set but callers wait for `pending` (resolved once they have run).
  if (pending) return pending;
  if (current) return Promise.resolve(current);
  pending = createGpu(opts).then(
    async (g) => {
      current = g;
      try {
        for (const h of readyHooks) await h(g);
      } catch (e) {
        if (current === g) current = undefined;
        pending = undefined;
        g.device.destroy();
        throw e;
      }
      return g;
    },
    (e) => {
      pending = undefined;
      throw e;
    },
  );
  return pending;
}

async function createGpu(opts: GpuOptions): Promise<Gpu> {
  const gpu = await findGpu(opts);
  const adapter = await gpu.requestAdapter({ powerPreference: opts.powerPreference ?? 'high-performance' });
  if (!adapter) throw new NoAdapterError('requestAdapter() returned null');
  const requiredFeatures = WANTED_FEATURES.filter((f) => adapter.features.has(f)) as GPUFeatureName[];
  const requiredLimits: Record<string, number> = {};
  for (const k of RAISED_LIMITS) {
    const v = (adapter.limits as unknown as Record<string, number>)[k];
    if (typeof v === 'number') requiredLimits[k] = v;
  }
  const device = await adapter.requestDevice({ requiredFeatures, requiredLimits });
  device.lost.then((info) => {
    // Only the current device's loss matters: a device destroyed earlier (destroyGpu, a failed ready hook) can report
    // its loss after a new device is being made, whose pending creation must not be forgotten.
    if (current?.device !== device) return;
    lostReason = `${info.reason}: ${info.message}`;
    current = undefined;
    pending = undefined;
  });
  device.addEventListener?.('uncapturederror', (ev: Event) => {
    const err = (ev as GPUUncapturedErrorEvent).error;
    console.error(`[celluscan] WebGPU error: ${err.message}`);
  });
  const info = describeAdapter(adapter);
  const features = new Set([...device.features] as string[]);
  const sub = (adapter as GPUAdapter & { info?: { subgroupMinSize?: number; subgroupMaxSize?: number } }).info;
  const fixed = features.has('subgroups') && sub?.subgroupMinSize && sub.subgroupMinSize === sub.subgroupMaxSize && sub.subgroupMinSize <= 128 ? sub.subgroupMinSize : null;
  return {
    gpu,
    device,
    adapter,
    info,
    features,
    limits: device.limits,
    adapterKey: adapterKeyOf(info),
    subgroupSize: fixed !== null && (await probeSubgroupLayout(device, fixed)) ? fixed : null,
  };
}

/**
 * Whether, on this device, workgroups of 256 invocations (1-D, and 2-D as S × 256/S, the subgroup matmul's shape) split
 * into full subgroups of `size` lanes whose lane i is local_invocation_index first + i, first a multiple of `size`.
 * The subgroup kernels index rows and shuffle partners by local_invocation_index on that assumption; a device where it
 * fails (or where the probe cannot run) gets no subgroup kernels rather than wrong results.
 */
export async function probeSubgroupLayout(device: GPUDevice, size: number): Promise<boolean> {
  if (!(Number.isInteger(size) && size >= 1 && 256 % size === 0)) return false;
  const check = `
    let first = subgroupBroadcast(li, 0u);
    let ok = ss == ${size}u && subgroupAdd(1u) == ${size}u && sid == li - first && first % ${size}u == 0u;
    out[slot * 256u + li] = select(0u, 1u, ok);`;
  const code = `enable subgroups;
@group(0) @binding(0) var<storage, read_write> out: array<u32>;
@compute @workgroup_size(256)
fn flat(@builtin(local_invocation_index) li: u32, @builtin(workgroup_id) w: vec3<u32>,
        @builtin(subgroup_invocation_id) sid: u32, @builtin(subgroup_size) ss: u32) {
  let slot = w.x;${check}
}
@compute @workgroup_size(${size}, ${256 / size})
fn grid(@builtin(local_invocation_index) li: u32, @builtin(workgroup_id) w: vec3<u32>,
        @builtin(subgroup_invocation_id) sid: u32, @builtin(subgroup_size) ss: u32) {
  let slot = 2u + w.x;${check}
}`;
  const out = device.createBuffer({ size: 4 * 256 * 4, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
  const read = device.createBuffer({ size: 4 * 256 * 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  // (a shader this device rejects is an answer, not an uncaptured error)
  device.pushErrorScope('validation');
  let scoped = true;
  const failed = async () => {
    scoped = false;
    return (await device.popErrorScope()) !== null;
  };
  try {
    const module = device.createShaderModule({ code, label: 'subgroup layout probe' });
    const enc = device.createCommandEncoder();
    const pass = enc.beginComputePass();
    for (const entryPoint of ['flat', 'grid']) {
      const p = device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint } });
      pass.setPipeline(p);
      pass.setBindGroup(0, device.createBindGroup({ layout: p.getBindGroupLayout(0), entries: [{ binding: 0, resource: { buffer: out } }] }));
      pass.dispatchWorkgroups(2);
    }
    pass.end();
    enc.copyBufferToBuffer(out, 0, read, 0, 4 * 256 * 4);
    device.queue.submit([enc.finish()]);
    if (await failed()) return false;
    await read.mapAsync(GPUMapMode.READ);
    const ok = new Uint32Array(read.getMappedRange()).every((v) => v === 1);
    read.unmap();
    return ok;
  } catch {
    return false;
  } finally {
    if (scoped) await failed().catch(() => true);
    out.destroy();
    read.destroy();
  }
}

/**
 * Whether an adapter key names a CPU (software) Vulkan adapter — lavapipe/llvmpipe or SwiftShader — where barriers
 * and gathers are slow and problems must be small; everything else is treated as a GPU.
 */
export function isSoftwareAdapterKey(adapterKey: string): boolean {
  return adapterKey === 'llvmpipe' || adapterKey === 'swiftshader';
}

/** isSoftwareAdapterKey for the current device, also true for an adapter that calls itself a fallback. */
export function isSoftwareAdapter(): boolean {
  const g = gpu();
  return g.info.isFallbackAdapter || isSoftwareAdapterKey(g.adapterKey);
}

/** The device created by initGpu(); throws with a clear message when there is none. */
export function gpu(): Gpu {
  if (current) return current;
  if (lostReason) throw new Error(`the WebGPU device was lost (${lostReason}); call initGpu() again`);
  throw new Error('no WebGPU device yet: await initGpu() first');
}

export function hasGpu(): boolean {
  return current !== undefined;
}

/** Destroy the device (lets a Node process exit promptly). */
export function destroyGpu(): void {
  if (current) {
    const d = current.device;
    current = undefined;
    pending = undefined;
    d.destroy();
  }
}

/** The limits that matter for this library, as plain numbers. */
export function keyLimits(limits: GPUSupportedLimits): Record<string, number> {
  const names = [...RAISED_LIMITS, 'maxUniformBufferBindingSize', 'minStorageBufferOffsetAlignment'];
  const out: Record<string, number> = {};
  for (const n of names) out[n] = (limits as unknown as Record<string, number>)[n];
  return out;
}

// Pipelines cached by a key naming the template values (generated code is a function of them); dispatch with a
// uniform block, through caches of uniform buffers and bind groups (see below).
import { gpu } from './device.js';
import { afterFlush, computePass, endComputePass, recordedPass } from './encoder.js';
import { SHADERS } from './shaders.gen.js';

/**
 * The WGSL of shaders/NAME.wgsl with each {{KEY}} replaced by defs[KEY]. A placeholder without a
 * value, or a value without a placeholder, is an error (a template and its launcher must agree).
 */
export function shaderSource(name: string, defs: Record<string, string | number> = {}): string {
  const src = SHADERS[name];
  if (src === undefined) throw new Error(`no shader named '${name}' in shaders/ (known: ${Object.keys(SHADERS).join(', ')})`);
  const used = new Set<string>();
  const out = src.replace(/\{\{(\w+)\}\}/g, (_, k: string) => {
    if (!(k in defs)) throw new Error(`shader '${name}': no value for the placeholder {{${k}}}`);
    used.add(k);
    return String(defs[k]);
  });
  for (const k of Object.keys(defs)) if (!used.has(k)) throw new Error(`shader '${name}': it has no placeholder {{${k}}}`);
  return out;
}

const pipelines = new Map<string, GPUComputePipeline>();
let cachedFor: GPUDevice | null = null;

/**
 * A compute pipeline for shaders/NAME.wgsl with these template values, cached by name + values. `generated`: more
 * template values (the unrolled statements a launcher writes out) that are a function of `defs` alone; they are made
 * only when the pipeline is first built and are not part of the cache key, so a cached lookup neither regenerates nor
 * hashes kilobytes of code on every dispatch.
 */
export function pipeline(name: string, defs: Record<string, string | number> = {}, entryPoint = 'main', generated?: () => Record<string, string>): GPUComputePipeline {
  const g = gpu();
  if (cachedFor !== g.device) {
    pipelines.clear();
    uniformFree.clear();
    uniformCache.clear();
    bindGroups.clear();
    cachedFor = g.device;
  }
  let key = name + '|' + entryPoint + '|';
  for (const k of Object.keys(defs).sort()) key += k + '=' + defs[k] + ',';
  let p = pipelines.get(key);
  if (!p) {
    const code = shaderSource(name, generated ? { ...defs, ...generated() } : defs);
    const label = shortLabel(key);
    const module = g.device.createShaderModule({ code, label });
    p = g.device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint }, label });
    pipelines.set(key, p);
  }
  return p;
}

/** Pipeline labels appear in Dawn's messages: keep generated code (long template values) out of them. */
function shortLabel(key: string): string {
  if (key.length <= 160) return key;
  let h = 2166136261;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 16777619);
  return `${key.slice(0, 120)}…#${(h >>> 0).toString(16)}`;
}

/** Check a compiled shader for errors (tests and the kernel lab use it; pipelines compile lazily). */
export async function compileErrors(name: string, defs: Record<string, string | number> = {}): Promise<string[]> {
  const module = gpu().device.createShaderModule({ code: shaderSource(name, defs) });
  const info = await module.getCompilationInfo();
  return info.messages.filter((m) => m.type === 'error').map((m) => `${name}:${m.lineNum}:${m.linePos} ${m.message}`);
}

export type UniformField = ['u32' | 'i32' | 'f32', number];

/** Pack scalar fields in order (each 4 bytes), padded to 16 bytes as uniform blocks require. */
export function packUniforms(fields: UniformField[]): ArrayBuffer {
  const buf = new ArrayBuffer(Math.max(16, Math.ceil((fields.length * 4) / 16) * 16));
  const v = new DataView(buf);
  fields.forEach(([t, x], i) => {
    if (t === 'u32') {
      if (!Number.isInteger(x) || x < 0 || x > 0xffffffff) throw new RangeError(`uniform field ${i}: ${x} is not a u32`);
      v.setUint32(i * 4, x, true);
    } else if (t === 'i32') v.setInt32(i * 4, x, true);
    else v.setFloat32(i * 4, x, true);
  });
  return buf;
}

const uniformFree = new Map<number, GPUBuffer[]>();
/** Each pipeline's bind group layout, asked for once (Dawn makes a new object per getBindGroupLayout call). */
const layouts = new WeakMap<GPUComputePipeline, GPUBindGroupLayout>();

// Host-side cost per dispatch (measured on lavapipe, one trivial kernel, record + submit): a new bind group ~17 µs, a
// queue.writeBuffer of the uniforms 5–13 µs, the pass itself ~8 µs, against 4 µs for the dispatch in an open pass
// with a bind group already made. A small model's training step records ~280 dispatches, so on a GPU the host can be
// the bottleneck. Hence two caches:
// - uniform blocks by content: a block (shape numbers, scales) is written once, at creation, into a buffer that is
//   never written again; the same matmul in the next step finds it. Past UNIFORM_CACHE_MAX distinct blocks, new
//   ones start the cache afresh, so it cannot grow without bound; blocks marked volatile go to recycled buffers
//   written per dispatch.
// - bind groups by (pipeline, uniform buffer, storage buffers): the buffer pool hands the same buffers to the same
//   ops step after step, so most bind groups recur. Cleared when it reaches BIND_GROUP_CACHE_MAX entries, when the
//   pool destroys buffers (forgetBindGroups, from BufferPool.trim) and with a new device.
const UNIFORM_CACHE_MAX = 4096;
const BIND_GROUP_CACHE_MAX = 8192;
const uniformCache = new Map<string, GPUBuffer>();
const bindGroups = new Map<string, GPUBindGroup>();
const ids = new WeakMap<object, number>();
let nextId = 1;
const idOf = (o: object): number => {
  let id = ids.get(o);
  if (id === undefined) ids.set(o, (id = nextId++));
  return id;
};

/** Drop every cached bind group (their buffers are about to be destroyed, or belong to a device that is gone). */
export function forgetBindGroups(): void {
  bindGroups.clear();
}

function uniformBuffer(data: ArrayBuffer, volatile: boolean): GPUBuffer {
  const device = gpu().device;
  const size = data.byteLength;
  // (the block's bytes as UTF-16 code units: a short key, made faster than a decimal join of its words)
  const key = volatile ? '' : String.fromCharCode.apply(null, new Uint16Array(data) as unknown as number[]);
  const cached = volatile ? undefined : uniformCache.get(key);
  if (cached) return cached;
  if (!volatile) {
    // Full: start again rather than fall back for good (a caller with a new value every step would otherwise fill it
    // once and leave every later block uncached). The dropped buffers are not destroyed: bind groups and the
    // unsubmitted encoder may still use them; they go when nothing does.
    if (uniformCache.size >= UNIFORM_CACHE_MAX) uniformCache.clear();
    const b = device.createBuffer({ size, usage: GPUBufferUsage.UNIFORM, mappedAtCreation: true });
    new Uint8Array(b.getMappedRange()).set(new Uint8Array(data));
    b.unmap();
    uniformCache.set(key, b);
    return b;
  }
  const b = uniformFree.get(size)?.pop() ?? device.createBuffer({ size, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
  // A recycled uniform buffer is written once per recorded pass and recycled only after the submit that uses it.
  device.queue.writeBuffer(b, 0, data);
  afterFlush(() => {
    if (cachedFor !== device) return; // a device that is gone: its buffers must not come back
    let l = uniformFree.get(size);
    if (!l) uniformFree.set(size, (l = []));
    l.push(b);
  });
  return b;
}

/** Optional hook the benchmarks use to add timestamp writes to each compute pass. */
export let passHook: ((desc: GPUComputePassDescriptor, label: string) => void) | null = null;
export function setPassHook(h: typeof passHook): void {
  passHook = h;
}

/** The pass hook in force (null: none). */
export function getPassHook(): typeof passHook {
  return passHook;
}

/**
 * Record one compute pass: uniforms (if any) at @binding(0), then the storage buffers at
 * @binding(1..n) of @group(0), in order. `volatileUniforms`: the block changes from call to call (a step
 * number, a seed), so it goes to a recycled buffer rather than filling the content cache with one-off blocks.
 */
export function dispatch(
  label: string,
  p: GPUComputePipeline,
  buffers: GPUBuffer[],
  uniforms: ArrayBuffer | null,
  groups: [number, number?, number?],
  volatileUniforms = false,
): void {
  const g = gpu();
  const [x, y = 1, z = 1] = groups;
  // Checked before any pass is begun (dispatchWorkgroups would throw inside it and leave a pass of its own open).
  if (![x, y, z].every((n) => Number.isInteger(n) && n >= 0)) throw new RangeError(`${label}: workgroup counts must be integers >= 0, got ${x}×${y}×${z}`);
  const maxG = g.limits.maxComputeWorkgroupsPerDimension;
  if (x > maxG || y > maxG || z > maxG) {
    throw new RangeError(`${label}: ${x}×${y}×${z} workgroups is above this device's limit of ${maxG} per dimension; use a smaller shape or batch`);
  }
  if (x === 0 || y === 0 || z === 0) return;
  const ub = uniforms ? uniformBuffer(uniforms, volatileUniforms) : null;
  // A bind group names buffers, not their contents, so one with a recycled (rewritten) uniform buffer is as good
  // for the next dispatch that gets the same buffers.
  let key = `${idOf(p)}|${ub ? idOf(ub) : 0}`;
  for (const b of buffers) key += ',' + idOf(b);
  let bindGroup = bindGroups.get(key);
  if (!bindGroup) {
    const entries: GPUBindGroupEntry[] = [];
    if (ub) entries.push({ binding: 0, resource: { buffer: ub } });
    buffers.forEach((b, i) => entries.push({ binding: i + 1, resource: { buffer: b } }));
    let layout = layouts.get(p);
    if (!layout) layouts.set(p, (layout = p.getBindGroupLayout(0)));
    bindGroup = g.device.createBindGroup({ layout, entries, label });
    if (bindGroups.size >= BIND_GROUP_CACHE_MAX) bindGroups.clear();
    bindGroups.set(key, bindGroup);
  }
  let desc: GPUComputePassDescriptor | undefined;
  if (passHook) {
    desc = { label };
    passHook(desc, label);
  }
  const pass = computePass(desc);
  pass.setPipeline(p);
  pass.setBindGroup(0, bindGroup);
  pass.dispatchWorkgroups(x, y, z);
  endComputePass(pass);
  recordedPass();
}

/** Split n workgroups over x and y so neither exceeds the per-dimension limit. */
export function grid2d(n: number): [number, number] {
  const maxG = gpu().limits.maxComputeWorkgroupsPerDimension;
  if (n <= maxG) return [n, 1];
  const y = Math.ceil(n / maxG);
  return [Math.ceil(n / y), y];
}

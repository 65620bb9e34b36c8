// Pipelines cached by a key naming everything that changes the WGSL; dispatch with a uniform block.
import { gpu } from './device.js';
import { afterFlush, commandEncoder, recordedPass } from './encoder.js';
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

/** A compute pipeline for shaders/NAME.wgsl with these template values, cached by name + values. */
export function pipeline(name: string, defs: Record<string, string | number> = {}, entryPoint = 'main'): GPUComputePipeline {
  const g = gpu();
  if (cachedFor !== g.device) {
    pipelines.clear();
    uniformFree.clear();
    cachedFor = g.device;
  }
  const key = `${name}|${entryPoint}|${Object.entries(defs).sort().map(([k, v]) => `${k}=${v}`).join(',')}`;
  let p = pipelines.get(key);
  if (!p) {
    const code = shaderSource(name, defs);
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

function uniformBuffer(data: ArrayBuffer): GPUBuffer {
  const device = gpu().device;
  const size = data.byteLength;
  const b = uniformFree.get(size)?.pop() ?? device.createBuffer({ size, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
  // A uniform buffer is written once per recorded pass and recycled only after the submit that uses it.
  device.queue.writeBuffer(b, 0, data);
  afterFlush(() => {
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

/**
 * Record one compute pass: uniforms (if any) at @binding(0), then the storage buffers at
 * @binding(1..n) of @group(0), in order.
 */
export function dispatch(
  label: string,
  p: GPUComputePipeline,
  buffers: GPUBuffer[],
  uniforms: ArrayBuffer | null,
  groups: [number, number?, number?],
): void {
  const g = gpu();
  const [x, y = 1, z = 1] = groups;
  const maxG = g.limits.maxComputeWorkgroupsPerDimension;
  if (x > maxG || y > maxG || z > maxG) {
    throw new RangeError(`${label}: ${x}×${y}×${z} workgroups is above this device's limit of ${maxG} per dimension; use a smaller shape or batch`);
  }
  if (x === 0 || y === 0 || z === 0) return;
  const entries: GPUBindGroupEntry[] = [];
  if (uniforms) entries.push({ binding: 0, resource: { buffer: uniformBuffer(uniforms) } });
  buffers.forEach((b, i) => entries.push({ binding: i + 1, resource: { buffer: b } }));
  const bindGroup = g.device.createBindGroup({ layout: p.getBindGroupLayout(0), entries, label });
  const desc: GPUComputePassDescriptor = { label };
  passHook?.(desc, label);
  const pass = commandEncoder().beginComputePass(desc);
  pass.setPipeline(p);
  pass.setBindGroup(0, bindGroup);
  pass.dispatchWorkgroups(x, y, z);
  pass.end();
  recordedPass();
}

/** Split n workgroups over x and y so neither exceeds the per-dimension limit. */
export function grid2d(n: number): [number, number] {
  const maxG = gpu().limits.maxComputeWorkgroupsPerDimension;
  if (n <= maxG) return [n, 1];
  const y = Math.ceil(n / maxG);
  return [Math.ceil(n / y), y];
}

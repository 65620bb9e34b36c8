// AdamW update, in place, with torch.optim.AdamW's semantics. WGSL: shaders/adamw.wgsl.
// Reference: ref/adamw.ts.
import { dispatch, grid2d, packUniforms, pipeline } from './launch.js';
import { gpu } from './device.js';
import { GpuArray, fmt } from './memory.js';

export interface AdamWOptions {
  lr: number;
  /** Default 0.9. */
  beta1?: number;
  /** Default 0.999. */
  beta2?: number;
  /** Default 1e-8. */
  eps?: number;
  /** Decoupled weight decay; default 1e-2 (torch's AdamW default). */
  weightDecay?: number;
  /** The step number t, starting at 1 (for the bias corrections). */
  step: number;
}

/** Resolve defaults and check the options, throwing a RangeError that names the bad one. */
export function adamwConfig(opts: AdamWOptions, op = 'adamwUpdate'): Required<AdamWOptions> {
  const c = { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 1e-2, ...opts };
  const bad = (what: string) => new RangeError(`${op}: ${what}`);
  if (!(Number.isFinite(c.lr) && c.lr >= 0)) throw bad(`lr must be a finite number >= 0, got ${c.lr}`);
  for (const k of ['beta1', 'beta2'] as const) if (!(c[k] >= 0 && c[k] < 1)) throw bad(`${k} must be in [0, 1), got ${c[k]}`);
  if (!(Number.isFinite(c.eps) && c.eps >= 0)) throw bad(`eps must be a finite number >= 0, got ${c.eps}`);
  if (!(Number.isFinite(c.weightDecay) && c.weightDecay >= 0)) throw bad(`weightDecay must be a finite number >= 0, got ${c.weightDecay}`);
  if (!(Number.isInteger(c.step) && c.step >= 1)) throw bad(`step must be an integer >= 1 (t starts at 1), got ${c.step}`);
  return c;
}

/** One tensor's AdamW update: its parameter, gradient and moments (all of one size). */
export interface AdamWItem {
  param: GpuArray;
  grad: GpuArray;
  m: GpuArray;
  v: GpuArray;
}

/**
 * One AdamW step on param, updating param, m (exp_avg) and v (exp_avg_sq) in place:
 * p ← p − lr·wd·p; m ← β1 m + (1−β1) g; v ← β2 v + (1−β2) g²;
 * p ← p − (lr/bc1) · m / (sqrt(v)/sqrt(bc2) + eps), bc_i = 1 − β_i^t.
 */
export function adamwUpdate(param: GpuArray, grad: GpuArray, m: GpuArray, v: GpuArray, opts: AdamWOptions): void {
  adamwUpdateMany([{ param, grad, m, v }], opts, 'adamwUpdate');
}

/** The most tensors one dispatch updates: four storage bindings each, within the device's limit per stage (≥ 8). */
export function adamwSlots(): number {
  return Math.max(1, Math.min(8, Math.floor(gpu().limits.maxStorageBuffersPerShaderStage / 4)));
}

/**
 * adamwUpdate on every item with the same options, as few dispatches as the device's bindings allow (adamwSlots()
 * tensors each): the same arithmetic per element, so the same results as one call per tensor.
 */
export function adamwUpdateMany(items: readonly AdamWItem[], opts: AdamWOptions, op = 'adamwUpdateMany'): void {
  for (const { param, grad, m, v } of items) {
    for (const [name, a] of [['grad', grad], ['m', m], ['v', v]] as const) {
      if (a.size !== param.size) throw new RangeError(`${op}: ${name} ${fmt(a.shape)} does not match param ${fmt(param.shape)}`);
    }
  }
  const c = adamwConfig(opts, op);
  const live = items.filter((it) => it.param.size > 0);
  if (!live.length) return;
  const bc1 = 1 - c.beta1 ** c.step;
  const bc2 = 1 - c.beta2 ** c.step;
  // Chunks of up to adamwSlots() tensors; a tensor whose buffers the chunk already binds (the same parameter listed
  // twice) starts a new one: one dispatch may not bind a buffer it writes twice, and two updates must run in turn.
  const slots = adamwSlots();
  const chunks: AdamWItem[][] = [];
  let bound = new Set<GPUBuffer>();
  for (const it of live) {
    const bufs = [it.param.buffer, it.grad.buffer, it.m.buffer, it.v.buffer];
    const last = chunks[chunks.length - 1];
    if (!last || last.length >= slots || bufs.some((b) => bound.has(b))) {
      chunks.push([it]);
      bound = new Set(bufs);
    } else {
      last.push(it);
      for (const b of bufs) bound.add(b);
    }
  }
  for (const chunk of chunks) {
    const S = chunk.length;
    const ends: number[] = [];
    let total = 0;
    for (const it of chunk) ends.push((total += it.param.size));
    const end4 = Math.ceil(S / 4);
    const u = packUniforms([
      ['f32', 1 - c.lr * c.weightDecay],
      ['f32', 1 - c.beta1],
      ['f32', c.beta2],
      ['f32', 1 - c.beta2],
      ['f32', c.lr / bc1],
      ['f32', Math.sqrt(bc2)],
      ['f32', c.eps],
      ['u32', total],
      ...Array.from({ length: 4 * end4 }, (_, s): ['u32', number] => ['u32', ends[Math.min(s, S - 1)]]),
    ]);
    const buffers = chunk.flatMap((it) => [it.param.buffer, it.grad.buffer, it.m.buffer, it.v.buffer]);
    // The block holds this step's lr and bias corrections: volatile (not kept in the uniform cache).
    // (pass label: the kernel's name, whichever call made it, so a profile shows AdamW as one row)
    dispatch('adamwUpdate', pipeline('adamw', { SLOTS: S }, 'main', () => adamwCode(S)), buffers, u, grid2d(Math.ceil(total / 256)), true);
  }
}

/** The generated bindings and per-tensor branches of shaders/adamw.wgsl for S tensors. */
function adamwCode(S: number): { BINDINGS: string; BODY: string } {
  const bindings: string[] = [];
  const body: string[] = [];
  for (let s = 0; s < S; s++) {
    const b = 1 + 4 * s;
    bindings.push(
      `@group(0) @binding(${b}) var<storage, read_write> param${s}: array<f32>;`,
      `@group(0) @binding(${b + 1}) var<storage, read> grad${s}: array<f32>;`,
      `@group(0) @binding(${b + 2}) var<storage, read_write> m${s}: array<f32>;`,
      `@group(0) @binding(${b + 3}) var<storage, read_write> v${s}: array<f32>;`,
    );
    const end = `P.ends[${s >> 2}][${s & 3}]`;
    const start = s === 0 ? '0u' : `P.ends[${(s - 1) >> 2}][${(s - 1) & 3}]`;
    body.push(
      `  ${s ? 'else ' : ''}if (i < ${end}) {`,
      `    let j = i - ${start};`,
      `    let r = adamw(param${s}[j], grad${s}[j], m${s}[j], v${s}[j]);`,
      `    param${s}[j] = r.x;`,
      `    m${s}[j] = r.y;`,
      `    v${s}[j] = r.z;`,
      `  }`,
    );
  }
  return { BINDINGS: bindings.join('\n'), BODY: body.join('\n') };
}

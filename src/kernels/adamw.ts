// AdamW update, in place, with torch.optim.AdamW's semantics. WGSL: shaders/adamw.wgsl.
// Reference: ref/adamw.ts.
import { dispatch, grid2d, packUniforms, pipeline } from './launch.js';
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

/**
 * One AdamW step on param, updating param, m (exp_avg) and v (exp_avg_sq) in place:
 * p ← p − lr·wd·p; m ← β1 m + (1−β1) g; v ← β2 v + (1−β2) g²;
 * p ← p − (lr/bc1) · m / (sqrt(v)/sqrt(bc2) + eps), bc_i = 1 − β_i^t.
 */
export function adamwUpdate(param: GpuArray, grad: GpuArray, m: GpuArray, v: GpuArray, opts: AdamWOptions): void {
  const op = 'adamwUpdate';
  for (const [name, a] of [['grad', grad], ['m', m], ['v', v]] as const) {
    if (a.size !== param.size) throw new RangeError(`${op}: ${name} ${fmt(a.shape)} does not match param ${fmt(param.shape)}`);
  }
  const c = adamwConfig(opts, op);
  if (param.size === 0) return;
  const bc1 = 1 - c.beta1 ** c.step;
  const bc2 = 1 - c.beta2 ** c.step;
  const u = packUniforms([
    ['u32', param.size],
    ['f32', 1 - c.lr * c.weightDecay],
    ['f32', 1 - c.beta1],
    ['f32', c.beta2],
    ['f32', 1 - c.beta2],
    ['f32', c.lr / bc1],
    ['f32', Math.sqrt(bc2)],
    ['f32', c.eps],
  ]);
  // The block holds this step's lr and bias corrections: volatile (not kept in the uniform cache).
  dispatch(op, pipeline('adamw'), [param.buffer, grad.buffer, m.buffer, v.buffer], u, grid2d(Math.ceil(param.size / 256)), true);
}

// AdamW with torch.optim.AdamW's semantics, on the adamw kernel; optimizer state outlives scopes.
import { adamwUpdateMany, type AdamWItem } from '../kernels/adamw.js';
import { GpuArray, keep } from '../kernels/memory.js';
import type { Parameter } from './tensor.js';

export interface AdamWConfig {
  lr: number;
  betas: [number, number];
  eps: number;
  weightDecay: number;
}

export interface ParamGroup {
  params: Parameter[];
  /** Overrides for this group (e.g. weightDecay 0 for norms and biases). */
  weightDecay?: number;
  lr?: number;
}

export const ADAMW_DEFAULTS: AdamWConfig = { lr: 3e-4, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 1e-2 };

export class AdamW {
  readonly config: AdamWConfig;
  readonly groups: ParamGroup[];
  /** Steps taken (torch's per-parameter `step`; all parameters step together here). */
  stepCount = 0;
  private state = new Map<Parameter, { m: GpuArray; v: GpuArray }>();

  constructor(params: Parameter[] | ParamGroup[], config: Partial<AdamWConfig> = {}) {
    this.config = { ...ADAMW_DEFAULTS, ...config };
    const { lr, eps, weightDecay, betas } = this.config;
    if (!(lr >= 0)) throw new RangeError(`AdamW: invalid learning rate ${lr}`);
    if (!(eps >= 0)) throw new RangeError(`AdamW: invalid eps ${eps}`);
    if (!(weightDecay >= 0)) throw new RangeError(`AdamW: invalid weight decay ${weightDecay}`);
    if (!(betas[0] >= 0 && betas[0] < 1 && betas[1] >= 0 && betas[1] < 1)) throw new RangeError(`AdamW: invalid betas ${betas}`);
    this.groups = params.length && 'params' in (params[0] as object) ? (params as ParamGroup[]) : [{ params: params as Parameter[] }];
  }

  /** Set the learning rate of every group (schedules call this before step()). */
  setLr(lr: number): void {
    this.config.lr = lr;
    for (const g of this.groups) delete g.lr;
  }

  /** One update of every parameter that has a gradient. */
  step(): void {
    this.stepCount++;
    const [beta1, beta2] = this.config.betas;
    for (const group of this.groups) {
      const lr = group.lr ?? this.config.lr;
      const weightDecay = group.weightDecay ?? this.config.weightDecay;
      const items: AdamWItem[] = [];
      for (const p of group.params) {
        if (!p.grad) continue;
        let s = this.state.get(p);
        if (!s) {
          s = { m: keep(GpuArray.zeros(p.shape)), v: keep(GpuArray.zeros(p.shape)) };
          this.state.set(p, s);
        }
        items.push({ param: p.data, grad: p.grad, m: s.m, v: s.v });
      }
      // several tensors per dispatch (adamwSlots()): a vit_b_16 step has 152 of them
      adamwUpdateMany(items, { lr, beta1, beta2, eps: this.config.eps, weightDecay, step: this.stepCount }, 'AdamW.step');
    }
  }

  zeroGrad(): void {
    for (const g of this.groups) for (const p of g.params) p.zeroGrad();
  }

  /** The moment buffers, for checkpoints. */
  stateOf(p: Parameter): { m: GpuArray; v: GpuArray } | undefined {
    return this.state.get(p);
  }

  /** Restore moments (e.g. from a checkpoint); arrays are copied. */
  setState(p: Parameter, m: Float32Array, v: Float32Array): void {
    const s = { m: keep(GpuArray.fromData(m, p.shape)), v: keep(GpuArray.fromData(v, p.shape)) };
    const old = this.state.get(p);
    old?.m.dispose();
    old?.v.dispose();
    this.state.set(p, s);
  }

  dispose(): void {
    for (const s of this.state.values()) {
      s.m.dispose();
      s.v.dispose();
    }
    this.state.clear();
  }
}

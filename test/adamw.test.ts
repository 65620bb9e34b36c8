import { describe, expect, it } from 'vitest';
import { GpuArray } from '../src/kernels/memory.js';
import { adamwSlots, adamwUpdate, adamwUpdateMany, type AdamWOptions } from '../src/kernels/adamw.js';
import { adamwRef } from '../src/kernels/ref/adamw.js';
import { randomArray } from '../src/kernels/ref/math.js';
import { expectClose, useGpu } from './gpu.js';

useGpu();

// Each step does a handful of f32 operations per element (a few ulp each) on |p| ≤ 1, and the step
// itself is ≤ lr·|m̂|/(sqrt(v̂) + eps) ≲ lr·few; rounding errors do not grow through the Adam
// recurrences (m, v are contractions), so after k steps p is within ~k·(4 ulp of |p| + 4 ulp of the
// step): we allow k·(2e-7 + 1e-6·lr) absolute + 1e-6 relative. m and v are plain lerps: 1e-6 relative
// plus 1e-7 (m) and 1e-8 (v, g² ≤ 1 scaled by 1 − β2) absolute per step.
async function run(n: number, steps: number, opts: Omit<AdamWOptions, 'step'>, seed: number) {
  const ps = randomArray(n, seed);
  if (n > 3) ps[3] = 0;
  const param = GpuArray.fromData(ps, [n]);
  const m = GpuArray.zeros([n]);
  const v = GpuArray.zeros([n]);
  let ref = { p: Float64Array.from(ps), m: new Float64Array(n), v: new Float64Array(n) };
  for (let t = 1; t <= steps; t++) {
    const gs = randomArray(n, seed + t, -2, 2);
    if (n > 5) gs[5] = 0; // a zero gradient: m, v decay, p moves by its old momentum only
    const grad = GpuArray.fromData(gs, [n]);
    adamwUpdate(param, grad, m, v, { ...opts, step: t });
    grad.dispose();
    ref = adamwRef(ref.p, gs, ref.m, ref.v, { ...opts, step: t });
  }
  const lr = opts.lr;
  expectClose(await param.read(), ref.p, steps * (2e-7 + 1e-6 * lr), 1e-6, `adamw p n=${n}`);
  expectClose(await m.read(), ref.m, steps * 1e-7, 1e-6, `adamw m n=${n}`);
  expectClose(await v.read(), ref.v, steps * 1e-8, 1e-6, `adamw v n=${n}`);
  for (const a of [param, m, v]) a.dispose();
}

describe('adamw', () => {
  for (const n of [1, 7, 13, 197, 100, 100_003]) {
    it(`5 steps match the float64 reference (defaults, weight decay 1e-2), n=${n}`, async () => {
      await run(n, 5, { lr: 1e-3 }, n);
    });
  }

  it('weight decay 0 and 0.1, other betas and eps, a large lr, 20 steps', async () => {
    await run(197, 20, { lr: 0.1, weightDecay: 0 }, 1);
    await run(197, 20, { lr: 0.05, weightDecay: 0.1, beta1: 0.8, beta2: 0.99, eps: 1e-6 }, 2);
    await run(13, 3, { lr: 1e-3, weightDecay: 0.5, beta1: 0, beta2: 0, eps: 1e-12 }, 3);
  });

  it('follows torch: decay first, eps added after dividing sqrt(v) by sqrt(bc2) (hand-computed step 1 and 2)', async () => {
    // Step 1 with p = 1, g = 0.5, lr = 0.1, wd = 0.01, β = (0.9, 0.999), eps = 1e-3:
    // p ← 1 − 0.1·0.01 = 0.999; m = 0.05, v = 0.00025; m̂ = 0.5, sqrt(v)/sqrt(0.001) = 0.5;
    // p ← 0.999 − 0.1·0.5/(0.5 + 1e-3).
    const p1 = 0.999 - (0.1 * 0.5) / (0.5 + 1e-3);
    const r1 = adamwRef([1], [0.5], [0], [0], { lr: 0.1, eps: 1e-3, step: 1 });
    expect(r1.p[0]).toBeCloseTo(p1, 14);
    // Adding eps before dividing by sqrt(bc2), (sqrt(v) + eps)/sqrt(bc2), would give a visibly different step.
    expect(Math.abs(p1 - (0.999 - (0.1 * 0.5) / ((Math.sqrt(0.00025) + 1e-3) / Math.sqrt(0.001))))).toBeGreaterThan(1e-3);
    const p = GpuArray.fromData([1], [1]);
    const m = GpuArray.zeros([1]);
    const v = GpuArray.zeros([1]);
    adamwUpdate(p, GpuArray.fromData([0.5], [1]), m, v, { lr: 0.1, eps: 1e-3, step: 1 });
    expectClose(await p.read(), [p1], 1e-7, 1e-6, 'adamw hand step 1');
    // Step 2, g = −1: m = 0.9·0.05 − 0.1 = −0.055, v = 0.999·0.00025 + 0.001.
    adamwUpdate(p, GpuArray.fromData([-1], [1]), m, v, { lr: 0.1, eps: 1e-3, step: 2 });
    const mm = -0.055;
    const vv = 0.999 * 0.00025 + 0.001;
    const p2 = p1 * (1 - 0.001) - ((0.1 / (1 - 0.81)) * mm) / (Math.sqrt(vv) / Math.sqrt(1 - 0.999 ** 2) + 1e-3);
    expectClose(await p.read(), [p2], 1e-7, 1e-6, 'adamw hand step 2');
    expectClose(await m.read(), [mm], 1e-8, 1e-6, 'adamw hand m');
    expectClose(await v.read(), [vv], 1e-9, 1e-6, 'adamw hand v');
  });

  it('many tensors per dispatch: bit-identical to one call per tensor, and to float64; empty tensors; one tensor listed twice', async () => {
    // More tensors than one dispatch binds (adamwSlots(): 4 on lavapipe, whose 16 storage buffers per stage Dawn grants), awkward sizes,
    // an empty one; the same arithmetic per element as adamwUpdate, so the results must match it exactly.
    const sizes = [1, 7, 13, 0, 197, 100, 100_003, 5, 64];
    expect(sizes.length).toBeGreaterThan(adamwSlots());
    const opts = { lr: 1e-2, weightDecay: 0.05 };
    const make = () =>
      sizes.map((n, i) => ({ param: GpuArray.fromData(randomArray(n, 10 + i), [n]), m: GpuArray.zeros([n]), v: GpuArray.zeros([n]) }));
    const many = make();
    const one = make();
    let ref = sizes.map((n, i) => ({ p: Float64Array.from(randomArray(n, 10 + i)), m: new Float64Array(n), v: new Float64Array(n) }));
    for (let t = 1; t <= 3; t++) {
      const gs = sizes.map((n, i) => randomArray(n, 100 * t + i, -2, 2));
      const grads = gs.map((g, i) => GpuArray.fromData(g, [sizes[i]]));
      adamwUpdateMany(many.map((x, i) => ({ ...x, grad: grads[i] })), { ...opts, step: t });
      one.forEach((x, i) => adamwUpdate(x.param, grads[i], x.m, x.v, { ...opts, step: t }));
      ref = ref.map((r, i) => adamwRef(r.p, gs[i], r.m, r.v, { ...opts, step: t }));
      for (const g of grads) g.dispose();
    }
    for (let i = 0; i < sizes.length; i++) {
      for (const k of ['param', 'm', 'v'] as const) expect(await many[i][k].read(), `${k} of tensor ${i} (n=${sizes[i]})`).toEqual(await one[i][k].read());
      expectClose(await many[i].param.read(), ref[i].p, 3 * (2e-7 + 1e-6 * opts.lr), 1e-6, `adamw many p n=${sizes[i]}`);
    }
    // the same tensor twice in one call: two updates in turn, as two calls
    const a = { param: GpuArray.fromData([1, -2, 3], [3]), m: GpuArray.zeros([3]), v: GpuArray.zeros([3]) };
    const b = { param: GpuArray.fromData([1, -2, 3], [3]), m: GpuArray.zeros([3]), v: GpuArray.zeros([3]) };
    const g = GpuArray.fromData([0.5, 0.25, -1], [3]);
    adamwUpdateMany([{ ...a, grad: g }, { ...a, grad: g }], { lr: 0.1, step: 1 });
    adamwUpdate(b.param, g, b.m, b.v, { lr: 0.1, step: 1 });
    adamwUpdate(b.param, g, b.m, b.v, { lr: 0.1, step: 1 });
    expect(await a.param.read()).toEqual(await b.param.read());
    expect(await a.v.read()).toEqual(await b.v.read());
    for (const x of [...many, ...one, a, b]) for (const arr of [x.param, x.m, x.v]) arr.dispose();
    g.dispose();
  });

  it('updates in place and accepts any shapes of the same size', async () => {
    const p = GpuArray.fromData([1, 2, 3, 4, 5, 6], [2, 3]);
    const before = p.buffer;
    adamwUpdate(p, GpuArray.fromData([1, 1, 1, 1, 1, 1], [6]), GpuArray.zeros([3, 2]), GpuArray.zeros([6]), { lr: 0.1, step: 1 });
    expect(p.buffer).toBe(before);
    const ref = adamwRef([1, 2, 3, 4, 5, 6], [1, 1, 1, 1, 1, 1], new Float64Array(6), new Float64Array(6), { lr: 0.1, step: 1 });
    expectClose(await p.read(), ref.p, 1e-6, 1e-6, 'adamw in place');
  });

  it('rejects bad shapes and options, naming the op and the problem', () => {
    const p = GpuArray.fromData([1, 2, 3], [3]);
    const z = GpuArray.zeros([3]);
    const two = GpuArray.zeros([2]);
    expect(() => adamwUpdate(p, two, z, z, { lr: 1e-3, step: 1 })).toThrow(/adamwUpdate: grad \[2\] does not match param \[3\]/);
    expect(() => adamwUpdate(p, z, z, two, { lr: 1e-3, step: 1 })).toThrow(/adamwUpdate: v \[2\] does not match param \[3\]/);
    expect(() => adamwUpdate(p, z, z, z, { lr: 1e-3, step: 0 })).toThrow(/adamwUpdate: step must be an integer >= 1 \(t starts at 1\), got 0/);
    expect(() => adamwUpdate(p, z, z, z, { lr: 1e-3, step: 1.5 })).toThrow(/step must be an integer >= 1/);
    expect(() => adamwUpdate(p, z, z, z, { lr: -1, step: 1 })).toThrow(/adamwUpdate: lr must be a finite number >= 0, got -1/);
    expect(() => adamwUpdate(p, z, z, z, { lr: 1e-3, beta1: 1, step: 1 })).toThrow(/adamwUpdate: beta1 must be in \[0, 1\), got 1/);
    expect(() => adamwUpdate(p, z, z, z, { lr: 1e-3, beta2: -0.1, step: 1 })).toThrow(/adamwUpdate: beta2 must be in \[0, 1\), got -0.1/);
    expect(() => adamwUpdate(p, z, z, z, { lr: 1e-3, eps: NaN, step: 1 })).toThrow(/adamwUpdate: eps must be a finite number >= 0, got NaN/);
    expect(() => adamwUpdate(p, z, z, z, { lr: 1e-3, weightDecay: -1, step: 1 })).toThrow(/adamwUpdate: weightDecay must be a finite number >= 0, got -1/);
  });
});

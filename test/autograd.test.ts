import { describe, expect, it } from 'vitest';
import { GpuArray, memoryStats, scope } from '../src/kernels/memory.js';
import { Parameter, Tensor, noGrad } from '../src/autograd/tensor.js';
import * as ops from '../src/autograd/ops.js';
import { Module } from '../src/autograd/module.js';
import { AdamW } from '../src/autograd/optim.js';
import { binaryRef, unaryRef, affineRef } from '../src/kernels/ref/elementwise.js';
import { geluForwardRef } from '../src/kernels/ref/gelu.js';
import { matmulRef } from '../src/kernels/ref/matmul.js';
import { softmaxForwardRef } from '../src/kernels/ref/softmax.js';
import { layerNormRef } from '../src/kernels/ref/layernorm.js';
import { attentionRef } from '../src/kernels/ref/attention.js';
import { crossEntropyRef } from '../src/kernels/ref/crossEntropy.js';
import { sumRef, meanRef } from '../src/kernels/ref/reduce.js';
import { permuteRef, sliceRef, concatRef } from '../src/kernels/ref/layout.js';
import { dropoutMaskRef } from '../src/kernels/ref/dropout.js';
import { adamwRef } from '../src/kernels/ref/adamw.js';
import { randomArray } from '../src/kernels/ref/math.js';
import { gradCheck, type GradCase } from './gradcheck.js';
import { expectClose, useGpu } from './gpu.js';

useGpu();

// Tolerances: the GPU computes in f32 (unit roundoff 6e-8); each op here sums at most a few hundred
// terms of magnitude ≤ ~10, so forward and gradient errors stay below ~1e-5 absolute. The finite
// differences are float64 with h = 1e-6 (truncation ~1e-12, rounding ~1e-10), so the comparison
// measures the GPU's error alone: 2e-5 absolute + 2e-4 relative leaves a margin of ~2× over f32
// accumulation and is far below the error of any wrong backward rule (O(1) relative).

const labels5 = Float32Array.from([3, 0, 4, 1, 1, 2, 0]);

const cases: GradCase[] = [
  ...(['add', 'sub', 'mul', 'div'] as const).map((op): GradCase => ({
    name: `${op} broadcast [7,1,13] ∘ [5,1]`,
    inputs: [{ shape: [7, 1, 13] }, { shape: [5, 1], lo: op === 'div' ? 0.5 : -1, hi: op === 'div' ? 2 : 1 }],
    gpu: ([a, b]) => ops[op](a, b),
    ref: ([a, b]) => binaryRef(op, a, [7, 1, 13], b, [5, 1]).data,
  })),
  { name: 'affine', inputs: [{ shape: [13] }], gpu: ([x]) => ops.affineOp(x, -2.5, 0.5), ref: ([x]) => affineRef(x, -2.5, 0.5) },
  ...(['exp', 'tanh', 'sigmoid', 'square', 'relu'] as const).map((op): GradCase => ({
    name: op,
    inputs: [{ shape: [7, 13], lo: -2, hi: 2 }],
    gpu: ([x]) => ops[op](x),
    ref: ([x]) => unaryRef(op, x),
  })),
  { name: 'log', inputs: [{ shape: [100], lo: 0.5, hi: 3 }], gpu: ([x]) => ops.log(x), ref: ([x]) => unaryRef('log', x) },
  { name: 'sqrt', inputs: [{ shape: [100], lo: 0.5, hi: 3 }], gpu: ([x]) => ops.sqrt(x), ref: ([x]) => unaryRef('sqrt', x) },
  { name: 'gelu', inputs: [{ shape: [197], lo: -4, hi: 4 }], gpu: ([x]) => ops.gelu(x), ref: ([x]) => geluForwardRef(x) },
  { name: 'sum axes [0,2]', inputs: [{ shape: [3, 7, 5] }], gpu: ([x]) => ops.sum(x, [0, 2]), ref: ([x]) => sumRef(x, [3, 7, 5], [0, 2]).data },
  { name: 'mean axis -1 keepDims', inputs: [{ shape: [7, 13] }], gpu: ([x]) => ops.mean(x, [-1], true), ref: ([x]) => meanRef(x, [7, 13], [-1], true).data },
  { name: 'sum all', inputs: [{ shape: [13, 7] }], gpu: ([x]) => ops.sum(x), ref: ([x]) => sumRef(x, [13, 7]).data },
  { name: 'reshape', inputs: [{ shape: [6, 5] }], gpu: ([x]) => ops.mul(ops.reshape(x, [3, 10]), ops.reshape(x, [3, -1])), ref: ([x]) => x.map((v) => v * v) },
  { name: 'permute (2,0,1)', inputs: [{ shape: [3, 5, 7] }], gpu: ([x]) => ops.permute(x, [2, 0, 1]), ref: ([x]) => permuteRef(x, [3, 5, 7], [2, 0, 1]).data },
  { name: 'slice', inputs: [{ shape: [7, 13] }], gpu: ([x]) => ops.slice(x, [1, -5], [6, 13]), ref: ([x]) => sliceRef(x, [7, 13], [1, -5], [6, 13]).data },
  {
    // Three slices of one tensor, two overlapping and a column never read: slice's backward adds each gradient into
    // its region of the parent's (addToSlice); the uncovered column's gradient must stay 0, the overlap must sum.
    name: 'three slices of one tensor (two overlapping; x[2] and the last column never read)',
    inputs: [{ shape: [3, 7, 13] }],
    gpu: ([x]) => {
      const a = ops.slice(x, [0, 0, 0], [1, 5, 12]);
      const b = ops.slice(x, [1, 0, 0], [2, 5, 12]);
      const c = ops.slice(x, [1, 2, 0], [2, 7, 12]); // rows 2..4 of x[1] also in b: their gradients must add
      return ops.mul(ops.mul(a, b), c);
    },
    ref: ([x]) => {
      const at = (i: number, r: number, k: number) => x[(i * 7 + r) * 13 + k];
      const out: number[] = [];
      for (let r = 0; r < 5; r++) for (let k = 0; k < 12; k++) out.push(at(0, r, k) * at(1, r, k) * at(1, r + 2, k));
      return out;
    },
  },
  {
    name: 'concat axis 1',
    inputs: [{ shape: [2, 1, 3] }, { shape: [2, 4, 3] }, { shape: [2, 2, 3] }],
    gpu: (xs) => ops.concat(xs, 1),
    ref: (xs) => concatRef(xs, [[2, 1, 3], [2, 4, 3], [2, 2, 3]], 1).data,
  },
  ...([[false, false], [true, false], [false, true], [true, true]] as const).map(([tA, tB]): GradCase => ({
    name: `matmul transA=${tA} transB=${tB} + bias, batched`,
    inputs: [{ shape: tA ? [2, 13, 7] : [2, 7, 13] }, { shape: tB ? [2, 5, 13] : [2, 13, 5] }, { shape: [5] }],
    gpu: ([a, b, c]) => ops.matmul(a, b, { transA: tA, transB: tB, bias: c }),
    ref: ([a, b, c]) => matmulRef(a, tA ? [2, 13, 7] : [2, 7, 13], b, tB ? [2, 5, 13] : [2, 13, 5], { transA: tA, transB: tB, bias: c }),
  })),
  {
    name: 'matmul alpha 1/√13 (scaled scores), transB, batched',
    inputs: [{ shape: [2, 7, 13] }, { shape: [2, 5, 13] }],
    gpu: ([a, b]) => ops.matmul(a, b, { transB: true, alpha: 1 / Math.sqrt(13) }),
    ref: ([a, b]) => matmulRef(a, [2, 7, 13], b, [2, 5, 13], { transB: true, alpha: 1 / Math.sqrt(13) }),
  },
  {
    name: 'linear (shared weight over a batch)',
    inputs: [{ shape: [2, 7, 13] }, { shape: [5, 13] }, { shape: [5] }],
    gpu: ([x, w, b]) => ops.linear(x, w, b),
    ref: ([x, w, b]) => matmulRef(x, [14, 13], w, [5, 13], { transB: true, bias: b }),
  },
  { name: 'softmax', inputs: [{ shape: [7, 13], lo: -3, hi: 3 }], gpu: ([x]) => ops.softmax(x), ref: ([x]) => softmaxForwardRef(x, 13) },
  {
    name: 'layerNorm eps 1e-6',
    inputs: [{ shape: [7, 13], lo: -2, hi: 2 }, { shape: [13] }, { shape: [13] }],
    gpu: ([x, g, b]) => ops.layerNorm(x, g, b, 1e-6),
    ref: ([x, g, b]) => layerNormRef(x, g, b, 13, 1e-6).y,
  },
  {
    name: 'attention (fused) with mask and head scale',
    inputs: [{ shape: [1, 2, 7, 5] }, { shape: [1, 2, 7, 5] }, { shape: [1, 2, 7, 5] }],
    gpu: ([q, k, v]) => {
      const mask = GpuArray.fromData(maskValues, [7, 7]);
      const headScale = GpuArray.fromData([1, 0.5], [2]);
      return ops.attention(q, k, v, { mask, headScale });
    },
    ref: ([q, k, v]) => attentionRef(q, k, v, { B: 1, H: 2, N: 7, D: 5 }, { mask: maskValues, maskShape: [7, 7], headScale: [1, 0.5] }).out,
  },
  {
    name: 'dropout p=0.3 (seeded)',
    inputs: [{ shape: [7, 13] }],
    gpu: ([x]) => ops.dropout(x, 0.3, 1234),
    ref: ([x]) => {
      const m = dropoutMaskRef(91, 0.3, 1234);
      return x.map((v, i) => v * m[i]);
    },
  },
  ...[0, 0.1].map((ls): GradCase => ({
    name: `cross-entropy label smoothing ${ls}`,
    inputs: [{ shape: [7, 5], lo: -3, hi: 3 }],
    gpu: ([x]) => ops.crossEntropy(x, GpuArray.fromData(labels5, [7]), { labelSmoothing: ls }),
    ref: ([x]) => [crossEntropyRef(x, labels5, 5, { labelSmoothing: ls }).loss],
  })),
];

// An additive mask with one key hidden from every query and a -1 bias elsewhere.
const maskValues = Float32Array.from({ length: 49 }, (_, i) => (i % 7 === 3 ? -Infinity : (i * 5) % 3 === 0 ? -1 : 0));

describe('autograd: every differentiable op vs central finite differences of its float64 reference', () => {
  for (const c of cases) it(c.name, () => gradCheck(c));
});

describe('autograd engine', () => {
  it('accumulates gradients where a tensor is used twice, and across backward calls', async () => {
    await scope(async () => {
      const x = Tensor.from([1, 2, 3], [3], true);
      const y = ops.sum(ops.mul(x, x)); // dy/dx = 2x
      y.backward();
      expect(Array.from(await x.grad!.read())).toEqual([2, 4, 6]);
      const z = ops.sum(ops.affineOp(x, 3)); // dz/dx = 3, accumulated
      z.backward();
      expect(Array.from(await x.grad!.read())).toEqual([5, 7, 9]);
    });
  });

  it('a broadcast gradient that is a view of the output gradient is not shared by two parents', async () => {
    // add([1,3,4], [3,4]): the [3,4] side's gradient is the output gradient reshaped (no reduction), i.e. a view of
    // the same buffer; each parent must still get its own gradient, here both accumulated into x (one through a
    // full slice, whose backward adds in place).
    await scope(async () => {
      const xs = Array.from({ length: 12 }, (_, i) => i - 5.5);
      const ws = Array.from({ length: 12 }, (_, i) => (i % 5) - 2);
      const x = Tensor.from(xs, [3, 4], true);
      const s = ops.slice(x, [0, 0], [3, 4]);
      const y = ops.add(ops.reshape(s, [1, 3, 4]), x);
      ops.sum(ops.mul(y, Tensor.from(ws, [1, 3, 4]))).backward(); // d/dx = 2w
      expect(Array.from(await x.grad!.read())).toEqual(ws.map((w) => 2 * w));
      const a = Tensor.from(xs, [1, 3, 4], true);
      const b = Tensor.from(xs, [3, 4], true);
      const z = ops.add(a, b);
      ops.sum(ops.mul(ops.mul(z, z), Tensor.from(ws, [1, 3, 4]))).backward(); // d/da = d/db = 2·z·w = 4·x·w
      expect(Array.from(await a.grad!.read())).toEqual(xs.map((v, i) => 4 * v * ws[i]));
      expect(Array.from(await b.grad!.read())).toEqual(xs.map((v, i) => 4 * v * ws[i]));
      ops.sum(ops.affineOp(a, 1)).backward(); // accumulating into a must not change b
      expect(Array.from(await b.grad!.read())).toEqual(xs.map((v, i) => 4 * v * ws[i]));
    });
  });

  it('release(): an output no backward rule reads is freed at once and gradients are unchanged; one that is read fails loudly', async () => {
    const run = (releaseS: boolean) =>
      scope(async () => {
        const q = Tensor.from(randomArray(2 * 5 * 3, 1), [2, 5, 3], true);
        const k = Tensor.from(randomArray(2 * 5 * 3, 2), [2, 5, 3], true);
        const s = ops.matmul(q, k, { transB: true }); // matmul's rule reads q and k, not s
        const before = memoryStats().liveBytes;
        const p = ops.softmax(s);
        if (releaseS) {
          s.release();
          expect(memoryStats().liveBytes).toBe(before + 2 * 5 * 5 * 4 - 2 * 5 * 5 * 4); // p made, s freed
        }
        ops.sum(ops.mul(p, p)).backward();
        return [await q.grad!.read(), await k.grad!.read()];
      });
    const [kept, released] = [await run(false), await run(true)];
    expect(Array.from(released[0])).toEqual(Array.from(kept[0]));
    expect(Array.from(released[1])).toEqual(Array.from(kept[1]));
    // softmax's rule reads its output: released, the backward cannot run on a stale value
    await expect(
      scope(async () => {
        const x = Tensor.from(randomArray(6, 3), [2, 3], true);
        const y = ops.softmax(ops.mul(x, x));
        const z = ops.sum(ops.mul(y, y));
        y.release();
        z.backward();
      }),
    ).rejects.toThrow(/used after dispose/);
    // a leaf is never released
    const w = Tensor.from([1, 2], [2], true);
    w.release();
    expect(Array.from(await w.read())).toEqual([1, 2]);
    w.data.dispose();
  });

  it('noGrad records nothing', async () => {
    await scope(async () => {
      const x = Tensor.from([1, 2], [2], true);
      const y = noGrad(() => ops.mul(x, x));
      expect(y.requiresGrad).toBe(false);
      expect(() => y.backward(GpuArray.fromData([1, 1], [2]))).toThrow(/does not require grad/);
    });
  });

  it('backward of a non-scalar needs a gradient, and names the shape', () => {
    scope(() => {
      const x = Tensor.from([1, 2], [2], true);
      expect(() => ops.mul(x, x).backward()).toThrow(/give a gradient for a tensor of shape \[2\]/);
    });
  });

  it('fused attention equals matmul → softmax → matmul, forward and backward', async () => {
    const [B, H, N, D] = [2, 3, 13, 16];
    const n = B * H * N * D;
    const q0 = randomArray(n, 1), k0 = randomArray(n, 2), v0 = randomArray(n, 3), w = randomArray(n, 4);
    const run = (fused: boolean) =>
      scope(async () => {
        const [q, k, v] = [q0, k0, v0].map((a) => Tensor.from(a, [B, H, N, D], true));
        const out = fused
          ? ops.attention(q, k, v)
          : ops.matmul(ops.softmax(ops.scale(ops.matmul(q, k, { transB: true }), 1 / Math.sqrt(D))), v);
        out.backward(GpuArray.fromData(w, [B, H, N, D]));
        return Promise.all([out.read(), q.grad!.read(), k.grad!.read(), v.grad!.read()]);
      });
    const fused = await run(true);
    const explicit = await run(false);
    // Both paths are f32 with different summation orders over N·D ≈ 200 terms: 1e-5 + 1e-4 relative.
    ['out', 'dq', 'dk', 'dv'].forEach((name, i) => expectClose(fused[i], explicit[i], 1e-5, 1e-4, `attention ${name}`));
  });
});

class TinyMlp extends Module {
  w1 = new Parameter(GpuArray.fromData(randomArray(16 * 8, 1, -0.3, 0.3), [16, 8]), 'w1');
  b1 = new Parameter(GpuArray.zeros([16]), 'b1');
  w2 = new Parameter(GpuArray.fromData(randomArray(4 * 16, 2, -0.3, 0.3), [4, 16]), 'w2');
  b2 = new Parameter(GpuArray.zeros([4]), 'b2');
  forward(x: Tensor): Tensor {
    return ops.linear(ops.gelu(ops.linear(x, this.w1, this.b1)), this.w2, this.b2);
  }
}

describe('training loop', () => {
  it('AdamW on the GPU matches the float64 AdamW reference for 3 steps of a fixed gradient', async () => {
    const p0 = randomArray(13, 5), g0 = randomArray(13, 6);
    const p = new Parameter(GpuArray.fromData(p0, [13]));
    const opt = new AdamW([p], { lr: 0.1, weightDecay: 0.01 });
    let ref = { p: Float64Array.from(p0), m: new Float64Array(13), v: new Float64Array(13) };
    for (let t = 1; t <= 3; t++) {
      p.grad = GpuArray.fromData(g0, [13]);
      opt.step();
      p.zeroGrad();
      ref = adamwRef(ref.p, g0, ref.m, ref.v, { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, step: t });
    }
    // Three updates of size ≤ lr = 0.1 in f32: 1e-6 absolute.
    expectClose(await p.data.read(), ref.p, 1e-6, 1e-5, 'AdamW parameters');
    opt.dispose();
    p.dispose();
  });

  it('200 forward+backward+AdamW steps leave the live-buffer count flat, and the loss falls', async () => {
    const model = new TinyMlp();
    const opt = new AdamW(model.parameters(), { lr: 1e-2 });
    const x = GpuArray.fromData(randomArray(32 * 8, 7), [32, 8]);
    const y = GpuArray.fromData(Float32Array.from({ length: 32 }, (_, i) => i % 4), [32]);
    const losses: number[] = [];
    let after10 = { liveArrays: 0, liveBytes: 0, gpuBuffers: 0 };
    for (let step = 0; step < 200; step++) {
      const loss = await scope(async () => {
        const l = ops.crossEntropy(model.forward(new Tensor(x.view(x.shape))), y);
        l.backward();
        opt.step();
        opt.zeroGrad();
        return l.item();
      });
      losses.push(loss);
      if (step === 10) after10 = memoryStats();
    }
    const end = memoryStats();
    expect(end.liveArrays).toBe(after10.liveArrays);
    expect(end.liveBytes).toBe(after10.liveBytes);
    expect(end.gpuBuffers).toBe(after10.gpuBuffers);
    expect(losses[199]).toBeLessThan(losses[0] * 0.5);
    x.dispose();
    y.dispose();
    opt.dispose();
    model.dispose();
  });
});

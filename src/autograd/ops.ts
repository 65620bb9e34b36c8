// Differentiable ops. Each op computes its forward with the kernels and states its backward rule
// right beside it, as a closure over what it saved.
import { GpuArray, fmt, type Shape } from '../kernels/memory.js';
import { affine, binary, broadcastShapes, fill, unary, type BinaryOp } from '../kernels/elementwise.js';
import { sum as sumK, mean as meanK, sumToShape } from '../kernels/reduce.js';
import { addToSlice, concat as concatK, pad, permute as permuteK, slice as sliceK } from '../kernels/layout.js';
import { matmul as matmulK } from '../kernels/matmul.js';
import { softmaxBackward, softmaxForward } from '../kernels/softmax.js';
import { layerNormBackward, layerNormForward } from '../kernels/layernorm.js';
import { geluBackward, geluForward } from '../kernels/gelu.js';
import { attentionBackward, attentionForward, type AttentionOptions } from '../kernels/attention.js';
import { dropoutBackward, dropoutForward } from '../kernels/dropout.js';
import { crossEntropyBackward, crossEntropyForward } from '../kernels/crossEntropy.js';
import { isGradEnabled, Tensor } from './tensor.js';

const needs = (t: Tensor) => t.requiresGrad;

function reduceGrad(g: GpuArray, shape: Shape): GpuArray {
  const same = g.shape.length === shape.length && g.shape.every((d, i) => d === shape[i]);
  return same ? g : sumToShape(g, shape);
}

// ---- elementwise ---------------------------------------------------------------------------

/** a ∘ b with NumPy broadcasting, for op in add, sub, mul, div. */
function binaryOp(op: 'add' | 'sub' | 'mul' | 'div', a: Tensor, b: Tensor): Tensor {
  broadcastShapes(a.shape, b.shape, op);
  const out = binary(op, a.data, b.data);
  return new Tensor(out, {
    op,
    parents: [a, b],
    backward: (g) => {
      let ga: GpuArray | null = null;
      let gb: GpuArray | null = null;
      if (op === 'add' || op === 'sub') {
        if (needs(a)) ga = reduceGrad(g, a.shape);
        if (needs(b)) {
          if (op === 'add') gb = reduceGrad(g, b.shape);
          else {
            const n = affine(g, -1);
            gb = reduceGrad(n, b.shape);
            if (gb !== n) n.dispose();
          }
        }
        // reduceGrad may hand back g itself for both: the engine copies a second use.
        return [ga, gb];
      }
      if (op === 'mul') {
        // d(a·b)/da = b, d(a·b)/db = a
        if (needs(a)) ga = reduceOwned(binary('mul', g, b.data), a.shape);
        if (needs(b)) gb = reduceOwned(binary('mul', g, a.data), b.shape);
        return [ga, gb];
      }
      // d(a/b)/da = 1/b, d(a/b)/db = −a/b²
      if (needs(a)) ga = reduceOwned(binary('div', g, b.data), a.shape);
      if (needs(b)) {
        const q = binary('div', a.data, b.data);
        const q2 = binary('div', q, b.data);
        q.dispose();
        const t = binary('mul', g, q2);
        q2.dispose();
        const n = affine(t, -1);
        t.dispose();
        gb = reduceOwned(n, b.shape);
      }
      return [ga, gb];
    },
  });
}

/** Reduce a fresh array to shape and free the unreduced one. */
function reduceOwned(x: GpuArray, shape: Shape): GpuArray {
  const r = reduceGrad(x, shape);
  if (r !== x) x.dispose();
  return r;
}

export const add = (a: Tensor, b: Tensor) => binaryOp('add', a, b);
export const sub = (a: Tensor, b: Tensor) => binaryOp('sub', a, b);
export const mul = (a: Tensor, b: Tensor) => binaryOp('mul', a, b);
export const div = (a: Tensor, b: Tensor) => binaryOp('div', a, b);

/** scale·x + shift. */
export function affineOp(x: Tensor, scale: number, shift = 0): Tensor {
  return new Tensor(affine(x.data, scale, shift), {
    op: 'affine',
    parents: [x],
    backward: (g) => [affine(g, scale)],
  });
}

export const scale = (x: Tensor, s: number) => affineOp(x, s);
export const neg = (x: Tensor) => affineOp(x, -1);

type UnaryName = 'exp' | 'log' | 'sqrt' | 'relu' | 'tanh' | 'sigmoid' | 'square';

/** y = f(x) for the unary ops with simple derivatives. */
export function unaryOp(op: UnaryName, x: Tensor): Tensor {
  const y = unary(op, x.data);
  return new Tensor(y, {
    op,
    parents: [x],
    backward: (g) => {
      const d = derivative(op, x.data, y);
      const r = binary('mul', g, d);
      d.dispose();
      return [r];
    },
  });
}

/** f'(x), from x or y = f(x) as convenient. */
function derivative(op: UnaryName, x: GpuArray, y: GpuArray): GpuArray {
  switch (op) {
    case 'exp':
      return y.clone();
    case 'log':
      return unary('reciprocal', x);
    case 'sqrt': {
      const r = unary('reciprocal', y);
      const h = affine(r, 0.5);
      r.dispose();
      return h;
    }
    case 'relu':
      return unary('step', x);
    case 'tanh': {
      const y2 = unary('square', y);
      const d = affine(y2, -1, 1);
      y2.dispose();
      return d;
    }
    case 'sigmoid': {
      const one = affine(y, -1, 1);
      const d = binary('mul', y, one);
      one.dispose();
      return d;
    }
    case 'square':
      return affine(x, 2);
  }
}

export const exp = (x: Tensor) => unaryOp('exp', x);
export const log = (x: Tensor) => unaryOp('log', x);
export const sqrt = (x: Tensor) => unaryOp('sqrt', x);
export const relu = (x: Tensor) => unaryOp('relu', x);
export const tanh = (x: Tensor) => unaryOp('tanh', x);
export const sigmoid = (x: Tensor) => unaryOp('sigmoid', x);
export const square = (x: Tensor) => unaryOp('square', x);

export function gelu(x: Tensor): Tensor {
  return new Tensor(geluForward(x.data), {
    op: 'gelu',
    parents: [x],
    backward: (g) => [geluBackward(x.data, g)],
  });
}

// ---- reductions ----------------------------------------------------------------------------

function normAxes(axes: number[] | undefined, rank: number, op: string): number[] {
  const all = axes ?? [...Array(rank).keys()];
  return all.map((a) => {
    const b = a < 0 ? a + rank : a;
    if (b < 0 || b >= rank) throw new RangeError(`${op}: axis ${a} is out of range for rank ${rank}`);
    return b;
  });
}

function reduceOp(kind: 'sum' | 'mean', x: Tensor, axes?: number[], keepDims = false): Tensor {
  const ax = normAxes(axes, x.shape.length, kind);
  const out = kind === 'sum' ? sumK(x.data, ax, keepDims) : meanK(x.data, ax, keepDims);
  const kept = x.shape.map((d, i) => (ax.includes(i) ? 1 : d));
  const count = ax.reduce((n, a) => n * x.shape[a], 1);
  return new Tensor(out, {
    op: kind,
    parents: [x],
    backward: (g) => {
      // Broadcast g (viewed with the reduced axes kept as 1) back to x's shape.
      const gk = g.view(kept);
      const zeros = fill(x.shape, 0);
      const r = binary('add', zeros, gk);
      zeros.dispose();
      gk.dispose();
      if (kind === 'mean') {
        const m = affine(r, 1 / count);
        r.dispose();
        return [m];
      }
      return [r];
    },
  });
}

export const sum = (x: Tensor, axes?: number[], keepDims = false) => reduceOp('sum', x, axes, keepDims);
export const mean = (x: Tensor, axes?: number[], keepDims = false) => reduceOp('mean', x, axes, keepDims);

// ---- shape ---------------------------------------------------------------------------------

export function reshape(x: Tensor, shape: number[]): Tensor {
  const n = shape.indexOf(-1);
  if (n >= 0) {
    const rest = shape.reduce((p, d, i) => (i === n ? p : p * d), 1);
    shape = shape.map((d, i) => (i === n ? x.size / rest : d));
  }
  return new Tensor(x.data.view(shape), {
    op: 'reshape',
    parents: [x],
    // The engine views a gradient of the right size under the parent's shape.
    backward: (g) => [g],
  });
}

export function permute(x: Tensor, perm: number[]): Tensor {
  const inv = new Array<number>(perm.length);
  perm.forEach((p, i) => (inv[p] = i));
  return new Tensor(permuteK(x.data, perm), {
    op: 'permute',
    parents: [x],
    backward: (g) => [permuteK(g, inv)],
  });
}

export function transpose(x: Tensor, a = -2, b = -1): Tensor {
  const r = x.shape.length;
  const perm = [...Array(r).keys()];
  const i = a < 0 ? a + r : a;
  const j = b < 0 ? b + r : b;
  [perm[i], perm[j]] = [perm[j], perm[i]];
  return permute(x, perm);
}

export function slice(x: Tensor, starts: number[], ends: number[]): Tensor {
  const out = sliceK(x.data, starts, ends);
  const r = x.shape.length;
  const st = x.shape.map((d, i) => {
    const s = starts[i] ?? 0;
    return s < 0 ? s + d : s;
  });
  return new Tensor(out, {
    op: 'slice',
    parents: [x],
    backward: (g) => [pad(g, st, x.shape.map((d, i) => d - st[i] - out.shape[i]).slice(0, r))],
    // Into the parent's gradient so far: add g into its region; the first contribution is the zero-padded g.
    backwardInto: (g, into) => {
      if (!into) return pad(g, st, x.shape.map((d, i) => d - st[i] - out.shape[i]).slice(0, r));
      // The engine keeps gradients under their tensors' shapes; view defensively all the same.
      const dst = into.view(x.shape);
      const src = g.view(out.shape);
      try {
        addToSlice(dst, src, st);
      } finally {
        dst.dispose();
        src.dispose();
      }
      return into;
    },
  });
}

export function concat(xs: Tensor[], axis: number): Tensor {
  const r = xs[0].shape.length;
  const ax = axis < 0 ? axis + r : axis;
  const out = concatK(xs.map((t) => t.data), ax);
  return new Tensor(out, {
    op: 'concat',
    parents: xs,
    backward: (g) => {
      let off = 0;
      return xs.map((t) => {
        const starts = g.shape.map((_, i) => (i === ax ? off : 0));
        const ends = g.shape.map((d, i) => (i === ax ? off + t.shape[ax] : d));
        off += t.shape[ax];
        return needs(t) ? sliceK(g, starts, ends) : null;
      });
    },
  });
}

// ---- linear algebra ------------------------------------------------------------------------

/**
 * a·b (batched; b may be 2-D and shared across a's batch), with optional transposes and a bias over
 * the last output axis. Backward: dA = dC·Bᵀ, dB = Aᵀ·dC (summed over the batch for a shared b),
 * dbias = Σ rows of dC.
 */
/** alpha·op(a)·op(b) (+ bias): the scale is applied in the kernel's store, so scaled scores cost no extra pass. */
export function matmul(a: Tensor, b: Tensor, opts: { transA?: boolean; transB?: boolean; bias?: Tensor; alpha?: number } = {}): Tensor {
  const { transA = false, transB = false, bias, alpha = 1 } = opts;
  const shared = b.shape.length === 2 && a.shape.length > 2;
  if (shared && transA) throw new RangeError(`matmul: transA with a batched a ${fmt(a.shape)} and a shared 2-D b ${fmt(b.shape)} is not supported`);
  const out = matmulK(a.data, b.data, { transA, transB, bias: bias?.data, alpha });
  const parents = bias ? [a, b, bias] : [a, b];
  return new Tensor(out, {
    op: 'matmul',
    parents,
    backward: (g) => {
      let ga: GpuArray | null = null;
      let gb: GpuArray | null = null;
      let gbias: GpuArray | null = null;
      if (needs(a)) {
        // C = op(A)·op(B): d op(A) = G·op(B)ᵀ, so dA = G·op(B)ᵀ, or (G·op(B)ᵀ)ᵀ = op(B)·Gᵀ when transA.
        // With alpha, both carry the factor (again in the kernel's store).
        ga = transA ? matmulK(b.data, g, { transA: transB, transB: true, alpha }) : matmulK(g, b.data, { transB: !transB, alpha });
      }
      if (needs(b)) {
        // A shared b sees every batch row: fold the batch into the rows of a and g.
        const K = a.shape[a.shape.length - 1];
        const N = g.shape[g.shape.length - 1];
        const aa = shared ? a.data.view([a.size / K, K]) : a.data;
        const gg = shared ? g.view([g.size / N, N]) : g;
        // d op(B) = op(A)ᵀ·G, so dB = op(A)ᵀ·G, or Gᵀ·op(A) when transB.
        gb = transB ? matmulK(gg, aa, { transA: true, transB: transA, alpha }) : matmulK(aa, gg, { transA: !transA, alpha });
        if (shared) {
          aa.dispose();
          gg.dispose();
        }
      }
      if (bias && needs(bias)) {
        const n = g.shape[g.shape.length - 1];
        const g2 = g.view([g.size / n, n]);
        gbias = sumK(g2, [0], false);
        g2.dispose();
      }
      return bias ? [ga, gb, gbias] : [ga, gb];
    },
  });
}

/** torch.nn.functional.linear: x·Wᵀ + b with W [out, in]. */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor): Tensor {
  if (x.shape[x.shape.length - 1] !== weight.shape[1]) {
    throw new RangeError(`linear: input ${fmt(x.shape)} does not match weight ${fmt(weight.shape)} (in_features ${weight.shape[1]})`);
  }
  return matmul(x, weight, { transB: true, bias });
}

// ---- normalisation, softmax, attention -------------------------------------------------------

export function softmax(x: Tensor): Tensor {
  const y = softmaxForward(x.data);
  return new Tensor(y, {
    op: 'softmax',
    parents: [x],
    backward: (g) => [softmaxBackward(y, g)],
  });
}

export function layerNorm(x: Tensor, gamma: Tensor, beta: Tensor, eps: number): Tensor {
  const { y, mean: mu, rstd } = layerNormForward(x.data, gamma.data, beta.data, eps);
  return new Tensor(y, {
    op: 'layerNorm',
    parents: [x, gamma, beta],
    saved: [mu, rstd],
    backward: (g) => {
      const { dx, dgamma, dbeta } = layerNormBackward(x.data, gamma.data, mu, rstd, g);
      return [dx, dgamma, dbeta];
    },
  });
}

/** Fused scaled-dot-product attention on q, k, v [B, H, N, D]. */
export function attention(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions = {}): Tensor {
  // 'subgroup-saved' keeps the scores for the backward only when one will run.
  const grad = isGradEnabled() && [q, k, v].some((t) => t.requiresGrad);
  const { out, lse, scores } = attentionForward(q.data, k.data, v.data, { ...opts, saveScores: grad && opts.saveScores !== false });
  return new Tensor(out, {
    op: 'attention',
    parents: [q, k, v],
    saved: scores ? [lse, scores] : [lse],
    backward: (g) => {
      const { dq, dk, dv } = attentionBackward(q.data, k.data, v.data, out, lse, g, opts, scores);
      return [dq, dk, dv];
    },
  });
}

export function dropout(x: Tensor, p: number, seed: number): Tensor {
  if (p === 0) return x;
  const { y, mask } = dropoutForward(x.data, p, seed);
  return new Tensor(y, {
    op: 'dropout',
    parents: [x],
    saved: [mask],
    backward: (g) => [dropoutBackward(g, mask)],
  });
}

/** Mean cross-entropy of logits [N, C] against class indices (as f32) [N]. */
export function crossEntropy(logits: Tensor, labels: GpuArray, opts: { labelSmoothing?: number } = {}): Tensor {
  const { loss, lse } = crossEntropyForward(logits.data, labels, opts);
  return new Tensor(loss, {
    op: 'crossEntropy',
    parents: [logits],
    saved: [lse],
    backward: (g) => [crossEntropyBackward(logits.data, labels, lse, g, opts)],
  });
}

export type { BinaryOp };

// A short check of every kernel against its float64 reference on awkward shapes, on whatever
// adapter is in use (the CLI's `selfcheck`, and the browser page can run it too).
import { initGpu } from './device.js';
import { GpuArray, scope } from './memory.js';
import { randomArray, toleranceRatio } from './ref/math.js';
import { geluBackward, geluForward } from './gelu.js';
import { geluBackwardRef, geluForwardRef } from './ref/gelu.js';
import { matmul, subgroupSize } from './matmul.js';
import { matmulRef } from './ref/matmul.js';
import { setRowVariant, softmaxForward } from './softmax.js';
import { softmaxRef } from './ref/softmax.js';
import { layerNormForward } from './layernorm.js';
import { layerNormRef } from './ref/layernorm.js';
import { attentionBackward, attentionForward } from './attention.js';
import { attentionBackwardRef, attentionRef } from './ref/attention.js';
import { crossEntropyForward } from './crossEntropy.js';
import { crossEntropyRef } from './ref/crossEntropy.js';
import { binary } from './elementwise.js';
import { binaryRef } from './ref/elementwise.js';
import { sum } from './reduce.js';
import { sumRef } from './ref/reduce.js';
import { permute, transpose } from './layout.js';
import { permuteRef } from './ref/layout.js';

export interface CheckResult {
  kernel: string;
  shape: string;
  /** Worst |gpu − ref| / (atol + rtol·|ref|): ≤ 1 passes. */
  worstRatio: number;
  atol: number;
  rtol: number;
  ok: boolean;
  ms: number;
}

interface Case {
  kernel: string;
  shape: string;
  atol: number;
  rtol: number;
  run: () => Promise<[ArrayLike<number>, ArrayLike<number>]>;
}

const r = (n: number, seed: number, lo = -1, hi = 1) => randomArray(n, seed, lo, hi);
const up = (x: Float32Array, shape: number[]) => GpuArray.fromData(x, shape);

function cases(): Case[] {
  const out: Case[] = [];
  // Tolerances: f32 accumulation over K terms of products of values in [-1, 1] — error grows like
  // √K·2⁻²⁴ typically and K·2⁻²⁴ at worst; 1e-5 absolute + 1e-4 relative covers K ≤ 1000 here.
  for (const [m, k, n] of [[1, 1, 1], [7, 13, 5], [3, 100, 48], [197, 64, 197]]) {
    out.push({
      kernel: 'matmul', shape: `${m}×${k}×${n}`, atol: 1e-5 * Math.max(1, k / 100), rtol: 1e-4,
      run: async () => {
        const a = r(m * k, 1), b = r(k * n, 2), bias = r(n, 3);
        const y = matmul(up(a, [m, k]), up(b, [k, n]), { bias: up(bias, [n]) });
        return [await y.read(), matmulRef(a, [m, k], b, [k, n], { bias })];
      },
    });
  }
  // The transposed forms a Linear layer runs (x·Wᵀ, dYᵀ·X), with the variant the adapter uses for each form (a form can
  // have its own: a tuned one, or the table's, such as NVIDIA's copy of Wᵀ to its plain layout).
  for (const [m, k, n, transA, transB] of [[13, 36, 20, false, true], [197, 64, 48, false, true], [20, 37, 12, true, false], [48, 197, 64, true, false]] as const) {
    out.push({
      kernel: 'matmul', shape: `${m}×${k}×${n} ${transA ? 'tA' : 'tB'}`, atol: 1e-5 * Math.max(1, k / 100), rtol: 1e-4,
      run: async () => {
        const a = r(m * k, 8), b = r(k * n, 9);
        const aS = transA ? [k, m] : [m, k];
        const bS = transB ? [n, k] : [k, n];
        const y = matmul(up(a, aS), up(b, bS), { transA, transB });
        return [await y.read(), matmulRef(a, aS, b, bS, { transA, transB })];
      },
    });
  }
  // Split-K (':k<S>', the dW form's default on NVIDIA and a GPU tune candidate in every form): each form in tiled-vec4
  // with few workgroups, so the K chunks and the reduce run (a bias, added in one chunk's layer only, where allowed).
  for (const [transA, transB] of [[false, false], [false, true], [true, false]] as const) {
    const [m, k, n] = [36, 200, 20];
    out.push({
      kernel: 'matmul tiled-vec4:k4', shape: `${m}×${k}×${n}${transA ? ' tA' : transB ? ' tB' : ''}`, atol: 1e-5 * Math.max(1, k / 100), rtol: 1e-4,
      run: async () => {
        const a = r(m * k, 10), b = r(k * n, 11), bias = transA ? undefined : r(n, 12);
        const aS = transA ? [k, m] : [m, k];
        const bS = transB ? [n, k] : [k, n];
        const y = matmul(up(a, aS), up(b, bS), { transA, transB, variant: 'tiled-vec4:k4', bias: bias && up(bias, [n]) });
        return [await y.read(), matmulRef(a, aS, b, bS, { transA, transB, bias })];
      },
    });
  }
  for (const [rows, cols] of [[1, 1], [7, 13], [13, 197], [3, 1000]]) {
    out.push({
      kernel: 'softmax', shape: `${rows}×${cols}`, atol: 1e-7, rtol: 1e-5,
      run: async () => {
        const x = r(rows * cols, 4, -10, 10);
        return [await softmaxForward(up(x, [rows, cols])).read(), softmaxRef(x, cols)];
      },
    });
    out.push({
      kernel: 'layernorm', shape: `${rows}×${cols}`, atol: 1e-5, rtol: 1e-4,
      run: async () => {
        const x = r(rows * cols, 5, -3, 3), g = r(cols, 6), b = r(cols, 7);
        const { y } = layerNormForward(up(x, [rows, cols]), up(g, [cols]), up(b, [cols]), 1e-6);
        return [await y.read(), layerNormRef(x, g, b, cols, 1e-6).y];
      },
    });
  }
  // Subgroup row teams (one subgroup per row: the layout of subgroups over a workgroup is assumed, as in the subgroup
  // matmul), where the adapter has a fixed subgroup size: a candidate of the row kernels' lab and tune.
  if (subgroupSize()) {
    for (const [rows, cols] of [[13, 197], [3, 1000]]) {
      const withSubgroupTeams = async <T>(f: () => Promise<T>): Promise<T> => {
        setRowVariant('subgroup');
        try {
          return await f();
        } finally {
          setRowVariant(null);
        }
      };
      out.push({
        kernel: 'softmax (subgroup teams)', shape: `${rows}×${cols}`, atol: 1e-7, rtol: 1e-5,
        run: () => withSubgroupTeams(async () => {
          const x = r(rows * cols, 4, -10, 10);
          return [await softmaxForward(up(x, [rows, cols])).read(), softmaxRef(x, cols)];
        }),
      });
      out.push({
        kernel: 'layernorm (subgroup teams)', shape: `${rows}×${cols}`, atol: 1e-5, rtol: 1e-4,
        run: () => withSubgroupTeams(async () => {
          const x = r(rows * cols, 5, -3, 3), g = r(cols, 6), b = r(cols, 7);
          const { y } = layerNormForward(up(x, [rows, cols]), up(g, [cols]), up(b, [cols]), 1e-6);
          return [await y.read(), layerNormRef(x, g, b, cols, 1e-6).y];
        }),
      });
    }
  }
  for (const n of [1, 7, 197, 1000]) {
    out.push({
      kernel: 'gelu', shape: `${n}`, atol: 1e-6, rtol: 2e-6,
      run: async () => {
        const x = r(n, 8, -6, 6);
        return [await geluForward(up(x, [n])).read(), geluForwardRef(x)];
      },
    });
    out.push({
      kernel: 'gelu backward', shape: `${n}`, atol: 1e-6, rtol: 2e-6,
      run: async () => {
        const x = r(n, 9, -6, 6), dy = r(n, 10);
        return [await geluBackward(up(x, [n]), up(dy, [n])).read(), geluBackwardRef(x, dy)];
      },
    });
  }
  // Attention: softmax-weighted sums of values in [-1, 1]; f32 error ~1e-6 at N=197.
  for (const [B, H, N, D] of [[1, 1, 1, 1], [2, 3, 7, 13], [1, 2, 197, 64]]) {
    out.push({
      kernel: 'attention', shape: `B${B} H${H} N${N} D${D}`, atol: 2e-5, rtol: 1e-4,
      run: async () => {
        const n = B * H * N * D;
        const q = r(n, 11), k = r(n, 12), v = r(n, 13);
        const s = [B, H, N, D];
        const { out: o } = attentionForward(up(q, s), up(k, s), up(v, s));
        return [await o.read(), attentionRef(q, k, v, { B, H, N, D }).out];
      },
    });
  }
  // Attention backward (dq, dk, dv concatenated) with the adapter's default variant, as training runs it (scores kept
  // where the variant keeps them): gradients O(0.01..1), f32 error ≤ ~1e-6 at N=197 (test/attention.test.ts).
  for (const [B, H, N, D] of [[2, 3, 7, 13], [1, 2, 197, 64]]) {
    out.push({
      kernel: 'attention backward', shape: `B${B} H${H} N${N} D${D}`, atol: 2e-5, rtol: 1e-4,
      run: async () => {
        const n = B * H * N * D;
        const q = r(n, 21), k = r(n, 22), v = r(n, 23), g = r(n, 24);
        const s = [B, H, N, D];
        const [qa, ka, va] = [q, k, v].map((x) => up(x, s));
        const f = attentionForward(qa, ka, va, { saveScores: true });
        const b = attentionBackward(qa, ka, va, f.out, f.lse, up(g, s), {}, f.scores);
        const got = [...(await b.dq.read()), ...(await b.dk.read()), ...(await b.dv.read())];
        const ref = attentionBackwardRef(q, k, v, g, { B, H, N, D });
        return [got, [...ref.dq, ...ref.dk, ...ref.dv]];
      },
    });
  }
  for (const [n, c] of [[1, 1], [7, 13], [100, 14]]) {
    out.push({
      kernel: 'cross-entropy', shape: `${n}×${c}`, atol: 1e-5, rtol: 1e-5,
      run: async () => {
        const logits = r(n * c, 14, -5, 5);
        const labels = Float32Array.from({ length: n }, (_, i) => (i * 7) % c);
        const { loss } = crossEntropyForward(up(logits, [n, c]), up(labels, [n]));
        return [await loss.read(), [crossEntropyRef(logits, labels, c).loss]];
      },
    });
  }
  out.push({
    kernel: 'add (broadcast)', shape: '[7,1,13] + [5,1]', atol: 1e-7, rtol: 1e-7,
    run: async () => {
      const a = r(91, 15), b = r(5, 16);
      return [await binary('add', up(a, [7, 1, 13]), up(b, [5, 1])).read(), binaryRef('add', a, [7, 1, 13], b, [5, 1]).data];
    },
  });
  out.push({
    kernel: 'sum (axes 0, 2)', shape: '[7, 13, 100]', atol: 1e-5, rtol: 1e-5,
    run: async () => {
      const a = r(9100, 17);
      return [await sum(up(a, [7, 13, 100]), [0, 2]).read(), sumRef(a, [7, 13, 100], [0, 2]).data];
    },
  });
  out.push({
    kernel: 'permute (0,2,1)', shape: '[2, 197, 64]', atol: 0, rtol: 0,
    run: async () => {
      const a = r(2 * 197 * 64, 18);
      return [await permute(up(a, [2, 197, 64]), [0, 2, 1]).read(), permuteRef(a, [2, 197, 64], [0, 2, 1]).data];
    },
  });
  // the 4×4-block kernel (both sides multiples of 4), which ':plain' matmul copies use
  out.push({
    kernel: 'transpose (4×4)', shape: '[3, 196, 64]', atol: 0, rtol: 0,
    run: async () => {
      const a = r(3 * 196 * 64, 19);
      return [await transpose(up(a, [3, 196, 64])).read(), permuteRef(a, [3, 196, 64], [0, 2, 1]).data];
    },
  });
  return out;
}

/** Run every case; each frees its GPU memory. */
export async function selfCheck(onResult?: (r: CheckResult) => void): Promise<CheckResult[]> {
  await initGpu();
  const results: CheckResult[] = [];
  for (const c of cases()) {
    const t0 = performance.now();
    const [got, want] = await scope(() => c.run());
    const worstRatio = c.atol === 0 && c.rtol === 0 ? exactMismatch(got, want) : toleranceRatio(got, want, c.atol, c.rtol);
    const res = { kernel: c.kernel, shape: c.shape, worstRatio, atol: c.atol, rtol: c.rtol, ok: worstRatio <= 1, ms: performance.now() - t0 };
    results.push(res);
    onResult?.(res);
  }
  return results;
}

function exactMismatch(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return Infinity;
  return 0;
}

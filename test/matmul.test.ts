import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { autotuneCandidates, autotuneMatmul, cachedMatmulProducts, measuredKOfLabels, plainMinK, timeCandidate, DEFAULT_MATMUL_FORMS, DEFAULT_MATMUL_VARIANTS, formsOfLabels, matmulChoice, matmulVariantForProduct, restoreMatmulChoice, describeMatmulChoice, formChoices, GPU_MATMUL_SHAPES, linearProducts, loadMatmulTuning, matmulVariantFor, productLabel, setMatmulVariant } from '../src/kernels/autotune.js';
import { getPassHook, setPassHook } from '../src/kernels/launch.js';
import { gpu } from '../src/kernels/device.js';
import { matmul, matmulGrid, MATMUL_VARIANTS, parseMatmulVariant, PLAIN_SUFFIX, resolveMatmulKernel, SPLIT_K_TARGET_WORKGROUPS, splitKOf, splitKParts, splitKPlan, subgroupSize, tiledBK, tiledPad, tiledVec4Stride, tiledVec4WorkgroupBytes, tiledWorkgroupBytes, variantForShape, vec4Aligned } from '../src/kernels/matmul.js';
import { GpuArray } from '../src/kernels/memory.js';
import { matmulRef } from '../src/kernels/ref/matmul.js';
import { randomArray, rng } from '../src/kernels/ref/math.js';
import { expectClose, useGpu } from './gpu.js';

useGpu();

// Tolerance. Every kernel sums its K products in order, in f32, with fma; the inputs are exact f32
// values also used by the float64 reference. Recursive summation then errs by at most
// γ·Σ_k |a_ik·b_kj| with γ = K·u/(1 - K·u), u = 2^-24 (Higham, Accuracy and Stability §3.1), plus one
// rounding each for alpha's scaling and the bias. We use atol = (K + 3)·2^-24 · max_ij(|alpha|·Σ_k |a_ik||b_kj| + |bias_j|)
// and rtol 0:
// a rigorous bound for every element. It is loose for random data (errors grow like √K in practice), so
// exactness is also checked separately on small-integer data, where f32 sums are exact and any
// indexing mistake shows.
const U = 2 ** -24;

function tolerance(a: Float32Array, aShape: number[], b: Float32Array, bShape: number[], K: number, opts: { transA?: boolean; transB?: boolean; bias?: Float32Array; alpha?: number }): number {
  const abs = (x: Float32Array) => Float32Array.from(x, Math.abs);
  const s = matmulRef(abs(a), aShape, abs(b), bShape, { ...opts, bias: opts.bias && abs(opts.bias), alpha: Math.abs(opts.alpha ?? 1) });
  let mx = 0;
  for (const v of s) mx = Math.max(mx, v);
  return (K + 3) * U * mx + 1e-30;
}

interface Case {
  batch?: number[];
  M: number;
  N: number;
  K: number;
  transA?: boolean;
  transB?: boolean;
  bias?: boolean;
  /** b is 2-D, shared over a's batch */
  shareB?: boolean;
  ints?: boolean;
  /** C = alpha·op(A)·op(B) + bias */
  alpha?: number;
}

function operands(c: Case, seed: number) {
  const batch = c.batch ?? [];
  const bs = batch.reduce((x, y) => x * y, 1);
  const aShape = [...batch, ...(c.transA ? [c.K, c.M] : [c.M, c.K])];
  const bShape = [...(c.shareB ? [] : batch), ...(c.transB ? [c.N, c.K] : [c.K, c.N])];
  const gen = (n: number, s: number) => {
    if (!c.ints) return randomArray(n, s);
    const r = rng(s);
    return Float32Array.from({ length: n }, () => Math.floor(r() * 9) - 4);
  };
  const a = gen(bs * c.M * c.K, seed);
  const b = gen((c.shareB ? 1 : bs) * c.K * c.N, seed + 1);
  const bias = c.bias ? gen(c.N, seed + 2) : undefined;
  return { a, b, bias, aShape, bShape };
}

async function check(variant: string | undefined, c: Case, seed = 1): Promise<void> {
  const { a, b, bias, aShape, bShape } = operands(c, seed);
  const A = GpuArray.fromData(a, aShape);
  const B = GpuArray.fromData(b, bShape);
  const Bias = bias && GpuArray.fromData(bias, [c.N]);
  const C = matmul(A, B, { transA: c.transA, transB: c.transB, bias: Bias, variant, alpha: c.alpha });
  const what = `matmul ${variant ?? '(default)'} a ${JSON.stringify(aShape)} b ${JSON.stringify(bShape)} transA=${!!c.transA} transB=${!!c.transB} bias=${!!bias} alpha=${c.alpha ?? 1}`;
  expect(C.shape, what).toEqual([...(c.batch ?? []), c.M, c.N]);
  const got = await C.read();
  const opts = { transA: c.transA, transB: c.transB, bias, alpha: c.alpha };
  const expected = matmulRef(a, aShape, b, bShape, opts);
  if (c.ints) expectClose(got, expected, 1e-30, 0, `${what} (integers: must be exact)`);
  else expectClose(got, expected, tolerance(a, aShape, b, bShape, c.K, opts), 0, what);
  for (const x of [A, B, Bias, C]) x?.dispose();
}

const TRANS: [boolean, boolean][] = [
  [false, false],
  [false, true],
  [true, false],
  [true, true],
];

// Awkward sizes: 1, primes, sizes just off multiples of 4 and of the tiles, and aligned ones (the vec4 path).
const SHAPES: [number, number, number][] = [
  [1, 1, 1],
  [7, 13, 5],
  [3, 100, 48],
  [13, 20, 36],
  [65, 68, 64],
  [100, 1, 17],
  [1, 97, 40],
];

/** The pass labels ('matmul FAMILY …') what `f` records. */
function passLabels(f: () => void): string[] {
  const seen: string[] = [];
  setPassHook((_d, label) => seen.push(label));
  try {
    f();
  } finally {
    setPassHook(null);
  }
  return seen;
}

describe('matmul', () => {
  for (const variant of MATMUL_VARIANTS) {
    for (const [transA, transB] of TRANS) {
      it(`${variant} transA=${transA} transB=${transB}: awkward shapes, with and without bias, vs float64`, async () => {
        let seed = 10;
        for (const [M, N, K] of SHAPES) {
          await check(variant, { M, N, K, transA, transB, bias: (M + N) % 2 === 0 }, seed++);
        }
        // Small integers: f32 sums are exact, so any indexing or edge mistake shows as a mismatch.
        await check(variant, { M: 33, N: 20, K: 44, transA, transB, bias: true, ints: true }, seed++);
        await check(variant, { M: 9, N: 11, K: 7, transA, transB, ints: true }, seed++);
      });
    }
  }

  // The tiled kernel's staging stores (matmul_tiled.wgsl): where k runs fastest (A untransposed, B transposed), a warp's
  // 32 consecutive invocations store words kk·stride + mm. With the padded stride they must hit 32 different banks
  // (a GPU's shared memory has 32 four-byte banks); the unpadded 64-word stride put a whole row in one bank.
  // Every tiled and tiled-vec4 shape the library uses (defaults and GPU shapes), every warp of a staging round.
  const stagedShapes = (family: string) =>
    [family, ...GPU_MATMUL_SHAPES.filter((v) => v.startsWith(`${family}@`))].map((v) => {
      const c = parseMatmulVariant(v);
      return { v, ...c };
    });
  it('tiled staging: every warp of k-fastest stores hits 32 different shared-memory banks', () => {
    for (const { v, tm, tn, wgx, wgy } of stagedShapes('tiled')) {
      const bk = tiledBK(tm, tn, wgx, wgy);
      const nt = wgx * wgy;
      // invocation e stores k = e % BK of row e / BK: word k·stride + row
      const worst = (rows: number, stride: number) => {
        let w = 32;
        for (let base = 0; base + 32 <= Math.min(nt, rows * bk); base += 32) {
          w = Math.min(w, new Set(Array.from({ length: 32 }, (_, i) => (((base + i) % bk) * stride + Math.floor((base + i) / bk)) % 32)).size);
        }
        return w;
      };
      for (const rows of [tm * wgy, tn * wgx]) {
        expect(worst(rows, rows + tiledPad(bk)), `${v} rows ${rows}`).toBe(32);
        expect(worst(rows, rows)).toBeLessThan(32); // the check can fail: unpadded, the stores collide
      }
      expect(tiledWorkgroupBytes(tm, tn, wgx, wgy)).toBeLessThanOrEqual(16384);
    }
  });

  it('tiled-vec4 staging: k-fastest component stores fill the 32 banks; strides are odd and fit workgroup memory', () => {
    for (const { v, tm, tn, wgx, wgy } of [...stagedShapes('tiled-vec4'), { v: 'tiled-vec4@4x4/64x1', ...parseMatmulVariant('tiled-vec4@4x4/64x1') }]) {
      for (const side of [tm * wgy, tn * wgx]) {
        const s4 = tiledVec4Stride(side);
        expect(s4 % 2, `${v} side ${side}`).toBe(1);
        // invocation e stores component (row % 4) of vec4 (k4·4 + i)·S4 + row/4, row = e / 2, k4 = e % 2: word ×4 + row % 4
        for (let i = 0; i < 4; i++) {
          for (let base = 0; base + 32 <= 2 * side; base += 32) {
            const banks = new Set(Array.from({ length: 32 }, (_, l) => {
              const e = base + l;
              const row = Math.floor(e / 2);
              return ((((e % 2) * 4 + i) * s4 + Math.floor(row / 4)) * 4 + (row % 4)) % 32;
            }));
            expect(banks.size, `${v} side ${side} component ${i}`).toBe(32);
          }
        }
      }
      expect(tiledVec4WorkgroupBytes(tm, tn, wgx, wgy)).toBeLessThanOrEqual(16384);
    }
  });

  // Parameterised tiled blocks: the 128×128 block real GPUs get (BK 8), and an odd, non-square one (BK 16).
  for (const variant of ['tiled@8x8/16x16', 'tiled@3x2/4x8']) {
    it(`${variant}: awkward shapes, every transpose, batched, vs float64`, async () => {
      let seed = 60;
      for (const [transA, transB] of TRANS) {
        for (const [M, N, K] of [...SHAPES, [130, 129, 19] as [number, number, number]]) {
          await check(variant, { M, N, K, transA, transB, bias: (M + K) % 2 === 0 }, seed++);
        }
        await check(variant, { M: 33, N: 20, K: 44, transA, transB, bias: true, ints: true }, seed++);
      }
      await check(variant, { batch: [2, 3], M: 17, N: 9, K: 12, bias: true }, seed++);
      await check(variant, { batch: [4], M: 17, N: 12, K: 12, shareB: true, bias: true }, seed++);
    });
  }

  // tiled-vec4 runs only where every vec4 load is aligned: shapes aligned in all four forms (blocks with edges, a last
  // K tile of 4 of its 8), each checked to run the vec4 kernel, and unaligned ones checked to fall back to 'tiled'.
  for (const variant of ['tiled-vec4', 'tiled-vec4@4x4/16x16', 'tiled-vec4@8x4/4x16']) {
    it(`${variant}: aligned shapes in every transpose form run the vec4 kernel; unaligned ones fall back; vs float64`, async () => {
      let seed = 80;
      const families = (transA: boolean, transB: boolean, M: number, N: number, K: number) => {
        const [A, B] = [GpuArray.zeros(transA ? [K, M] : [M, K]), GpuArray.zeros(transB ? [N, K] : [K, N])];
        const labels = passLabels(() => matmul(A, B, { variant, transA, transB }).dispose());
        A.dispose();
        B.dispose();
        return new Set(labels.map((l) => l.split(' ')[1]));
      };
      for (const [transA, transB] of TRANS) {
        for (const [M, N, K] of [[132, 136, 44], [4, 8, 4], [260, 12, 8], [12, 260, 20]] as [number, number, number][]) {
          expect([...families(transA, transB, M, N, K)]).toEqual(['tiled-vec4']);
          await check(variant, { M, N, K, transA, transB, bias: (M + K) % 8 === 0 }, seed++);
        }
        await check(variant, { M: 36, N: 20, K: 44, transA, transB, bias: true, ints: true }, seed++);
        await check(variant, { batch: [3], M: 20, N: 12, K: 12, transA, transB, shareB: transB, ints: true, alpha: 0.5 }, seed++);
      }
      expect([...families(false, false, 13, 20, 36)]).toEqual(['tiled-vec4']);
      expect([...families(true, false, 13, 20, 36)]).toEqual(['tiled']); // A [K, M] with M = 13: no vec4 along m
      expect([...families(false, true, 13, 20, 37)]).toEqual(['tiled']);
      expect([...families(false, false, 16, 18, 8)]).toEqual(['tiled']);
      // Aᵀ·B reads neither operand along k: any K (a Linear's dW = dYᵀ·X at an odd number of rows)
      expect([...families(true, false, 12, 20, 37)]).toEqual(['tiled-vec4']);
      await check(variant, { M: 12, N: 20, K: 37, transA: true, bias: true }, seed++);
      await check(variant, { M: 136, N: 132, K: 45, transA: true, ints: true }, seed++);
    });
  }

  // PLAIN_SUFFIX: transposed operands copied to their plain layout, then the kernel without transposes. Every form,
  // batched, b shared over the batch, bias and alpha; the passes show the copies and a plain-form product.
  for (const variant of ['blocked-vec4:plain', 'tiled@3x2/4x8:plain', 'subgroup:plain']) {
    it(`${variant}: every transpose form via plain-layout copies, batched, shared b, bias, alpha; vs float64`, async () => {
      let seed = 120;
      for (const [transA, transB] of TRANS) {
        for (const [M, N, K] of [[13, 20, 36], [132, 136, 44], [1, 7, 1], [7, 1, 13]] as [number, number, number][]) {
          await check(variant, { M, N, K, transA, transB, bias: (M + K) % 2 === 0 }, seed++);
        }
        await check(variant, { M: 33, N: 20, K: 44, transA, transB, bias: true, ints: true }, seed++);
        await check(variant, { batch: [2, 3], M: 7, N: 20, K: 8, transA, transB, ints: true, alpha: 0.125 }, seed++);
        await check(variant, { batch: [4], M: 17, N: 12, K: 12, shareB: true, transA, transB, bias: true }, seed++);
      }
      const labels = (transA: boolean, transB: boolean) => {
        const [A, B] = [GpuArray.zeros(transA ? [3, 44, 36] : [3, 36, 44]), GpuArray.zeros(transB ? [20, 44] : [44, 20])];
        const l = passLabels(() => matmul(A, B, { variant, transA, transB }).dispose());
        A.dispose();
        B.dispose();
        return l;
      };
      const family = resolveMatmulKernel(variant, 108, 20, 44).family; // subgroup runs as another kernel without a fixed subgroup size
      // Bᵀ copied (sides multiples of 4: the 4×4-block transpose kernel), then one product of the 3·36 folded rows in
      // the plain form
      expect(labels(false, true)).toEqual(['transpose', `matmul ${family} 108×20×44`]);
      // Aᵀ copied (the batch of three at once), then the folded plain product
      expect(labels(true, false)).toEqual(['transpose', `matmul ${family} 108×20×44`]);
      expect(labels(true, true)).toEqual(['transpose', 'transpose', `matmul ${family} 108×20×44`]);
      expect(labels(false, false)).toEqual([`matmul ${family} 108×20×44`]);
    });
  }

  // ':k<S>' (split-K): a 2-D Aᵀ·B as S chunk products over K plus a reduce in any family; the other forms in one
  // tiled-vec4 dispatch whose workgroup layers take chunks of K (the bias in layer 0). K with many divisors, a prime K,
  // S above K, unaligned shapes (tiled-vec4 falls back to tiled: no split), a batch folded into the rows, biases, alpha.
  for (const variant of ['tiled-vec4:k4', 'blocked@3x2/4x8:k8', 'subgroup:k3']) {
    it(`${variant}: split-K where it applies, the base kernel elsewhere; vs float64`, async () => {
      let seed = 160;
      for (const [transA, transB] of TRANS) {
        for (const [M, N, K] of [[13, 20, 36], [132, 136, 44], [1, 7, 1], [7, 1, 13], [20, 12, 197], [8, 8, 100]] as [number, number, number][]) {
          await check(variant, { M, N, K, transA, transB }, seed++);
        }
        await check(variant, { M: 33, N: 20, K: 48, transA, transB, ints: true, alpha: 0.25 }, seed++);
        await check(variant, { M: 12, N: 16, K: 24, transA, transB, bias: true }, seed++);
        await check(variant, { M: 12, N: 16, K: 36, transA, transB, bias: true, alpha: 0.5 }, seed++);
        await check(variant, { batch: [2, 3], M: 7, N: 20, K: 8, transA, transB, ints: true }, seed++);
        await check(variant, { batch: [4], M: 17, N: 12, K: 12, shareB: true, transA, transB, bias: true }, seed++);
      }
      const base = variant.replace(/:k\d+$/, '');
      const S = Number(variant.match(/:k(\d+)$/)![1]);
      const labels = (transA: boolean, transB: boolean, K: number, bias = false) => {
        const [A, B] = [GpuArray.zeros(transA ? [K, 36] : [36, K]), GpuArray.zeros(transB ? [20, K] : [K, 20])];
        const Bias = bias ? GpuArray.zeros([20]) : undefined;
        const l = passLabels(() => matmul(A, B, { variant, transA, transB, bias: Bias }).dispose());
        for (const x of [A, B, Bias]) x?.dispose();
        return l;
      };
      const fam = (K: number, tA: boolean, tB: boolean) => resolveMatmulKernel(base, 36, 20, K, tA, tB).family;
      // Aᵀ·B, K = 48: S chunks of 48/S (S = 3, 4, 8 all divide it), one batched product, then the reduce over the chunks
      expect(labels(true, false, 48)).toEqual([`matmul ${fam(48 / S, true, false)} ${S}×36×20×${48 / S} tA`, 'sum']);
      // K = 44 with S = 8: the largest divisor of 44 not above 8 is 4; K = 13 (prime): no split; a bias: no split
      expect(labels(true, false, 44)[0]).toBe(`matmul ${fam(44 / splitKParts(44, S), true, false)} ${splitKParts(44, S)}×36×20×${44 / splitKParts(44, S)} tA`);
      expect(labels(true, false, 13)).toEqual([`matmul ${fam(13, true, false)} 36×20×13 tA`]);
      expect(labels(true, false, 48, true)).toEqual([`matmul ${fam(48, true, false)} 36×20×48 tA`]);
      // the other forms: tiled-vec4 splits K = 48 into chunks of ⌈48/S/8⌉·8 = 16 (3 layers), bias or not; others do not
      for (const [tA, tB, bias] of [[false, false, false], [false, true, false], [false, true, true]] as const) {
        const unsplit = `matmul ${fam(48, tA, tB)} 36×20×48${tB ? ' tB' : ''}`;
        expect(labels(tA, tB, 48, bias)).toEqual(base === 'tiled-vec4' ? [`${unsplit} split-K 3`, 'sum'] : [unsplit]);
      }
      // tiled-vec4 on an unaligned K runs as tiled there: no split
      expect(labels(false, true, 13)).toEqual([`matmul ${fam(13, false, true)} 36×20×13 tB`]);
    });
  }

  it('a split-K variant splits only products with few workgroups, and only as far as the target', () => {
    // vit_b_16 at batch 32 under tiled-vec4:k8 (128×128 blocks): dW 144 workgroups → 8 chunks, 36 → 8; the 768-wide
    // outputs (300) → 4 chunks of 768; the 3072-wide ones (1200 ≥ SPLIT_K_TARGET_WORKGROUPS) are left whole
    expect(splitKPlan('tiled-vec4:k8', 3072, 768, 6304, true, false)).toEqual({ how: 'chunks', parts: 8, kc: 788 });
    expect(splitKPlan('tiled-vec4:k8', 768, 768, 6304, true, false)).toEqual({ how: 'chunks', parts: 8, kc: 788 });
    expect(splitKPlan('tiled-vec4:k8', 6304, 768, 3072, false, true)).toEqual({ how: 'kc', parts: 4, kc: 768 });
    expect(splitKPlan('tiled-vec4:k8', 6304, 768, 3072)).toEqual({ how: 'kc', parts: 4, kc: 768 });
    expect(splitKPlan('tiled-vec4:k2', 6304, 768, 3072)).toEqual({ how: 'kc', parts: 2, kc: 1536 });
    expect(splitKPlan('tiled-vec4:k8', 6304, 3072, 768, false, true)).toBeNull();
    expect(matmulGrid(parseMatmulVariant('tiled-vec4'), 6304, 3072)).toEqual([24, 50]);
    expect(SPLIT_K_TARGET_WORKGROUPS).toBeLessThan(24 * 50);
    // blocked-vec4 (blocks of 16 rows × 64 columns) has 2304 workgroups for the MLP's dW: not split; 4 for a 64×64 one:
    // split in 8 as Aᵀ·B, not in the other forms (only tiled-vec4 takes chunks per layer of workgroups)
    expect(matmulGrid(parseMatmulVariant('blocked-vec4'), 3072, 768)).toEqual([12, 192]);
    expect(splitKPlan('blocked-vec4:k8', 3072, 768, 6304, true, false)).toBeNull();
    expect(splitKPlan('blocked-vec4:k8', 64, 64, 6304, true, false)).toEqual({ how: 'chunks', parts: 8, kc: 788 });
    expect(splitKPlan('blocked-vec4:k8', 64, 64, 6304)).toBeNull();
    expect(splitKPlan('tiled-vec4', 64, 64, 6304)).toBeNull();
    expect(resolveMatmulKernel('tiled-vec4:k8', 6304, 768, 3072)).toMatchObject({ family: 'tiled-vec4', splitK: 4 });
    expect(resolveMatmulKernel('tiled-vec4:k8', 6304, 3072, 768)).not.toHaveProperty('splitK');
  });

  it("':k<S>' parses onto any variant but ':plain', names its chunks' kernel, and is never given a plain-layout copy", () => {
    expect(parseMatmulVariant('tiled-vec4:k8')).toMatchObject({ family: 'tiled-vec4', tm: 8, tn: 8, splitK: 8 });
    expect(parseMatmulVariant('blocked@3x2/4x8:k2')).toMatchObject({ family: 'blocked', tm: 3, tn: 2, splitK: 2 });
    expect(splitKOf('tiled')).toBeNull();
    expect(() => parseMatmulVariant('tiled:k1')).toThrow(/^matmul: bad variant 'tiled:k1': ':k<S>' takes S in 2..64$/);
    expect(() => parseMatmulVariant('tiled:k65')).toThrow(/S in 2..64/);
    expect(() => parseMatmulVariant('tiled:plain:k4')).toThrow(/':plain' and ':k<S>' exclude each other/);
    expect(() => parseMatmulVariant('tiled:k4:plain')).toThrow(/':plain' and ':k<S>' exclude each other/);
    expect(() => parseMatmulVariant('tiled@99x1/1x1:k4')).toThrow(/^matmul: bad variant 'tiled@99x1\/1x1:k4': TM, TN in 1..16/);
    expect(() => parseMatmulVariant('nope:k4')).toThrow(/unknown variant 'nope:k4'/);
    expect([splitKParts(6304, 8), splitKParts(6304, 3), splitKParts(197, 8), splitKParts(3, 8), splitKParts(1, 4)]).toEqual([8, 2, 1, 3, 1]);
    expect(variantForShape('subgroup:k4', 4, 3, 8)).toBe('blocked-vec4:k4');
    // the chunk (K / parts) decides the kernel: tiled-vec4's Aᵀ·B needs only M and N multiples of 4
    expect(resolveMatmulKernel('tiled-vec4:k4', 36, 20, 48, true, false)).toMatchObject({ family: 'tiled-vec4', splitK: 4 });
    expect(resolveMatmulKernel('tiled-vec4:k4', 36, 20, 48, false, true)).toMatchObject({ family: 'tiled-vec4', splitK: 3 });
    expect(resolveMatmulKernel('tiled-vec4:k4', 36, 20, 13, true, false)).not.toHaveProperty('splitK');
    expect(resolveMatmulKernel('blocked:k4', 36, 20, 48, false, true)).not.toHaveProperty('splitK');
    // the lavapipe K rule adds no copy to a split-K choice
    const key = gpu().adapterKey;
    const saved = matmulChoice(key);
    try {
      setMatmulVariant(key, 'blocked', { tA: 'blocked:k4', tB: 'blocked' });
      expect(matmulVariantForProduct(key, true, false, 1 << 20)).toBe('blocked:k4');
    } finally {
      restoreMatmulChoice(key, saved);
    }
  });

  it('the adapter\'s choice of a plain-layout variant for a form: copies, then a blocking fitted to the copies\' product', async () => {
    const key = gpu().adapterKey;
    const saved = matmulChoice(key);
    try {
      setMatmulVariant(key, 'blocked', { tA: 'blocked:plain' });
      // 16 products of [12, 40]ᵀ·[12, 64]: A copied to [16, 40, 12], then one folded 640-row plain product
      await check(undefined, { batch: [16], M: 40, N: 64, K: 12, transA: true, shareB: true, bias: true }, 140);
      const [A, B] = [GpuArray.zeros([16, 12, 40]), GpuArray.zeros([12, 64])];
      expect(passLabels(() => matmul(A, B, { transA: true }).dispose())).toEqual(['transpose', 'matmul blocked 640×64×12']);
      // an empty product records nothing; a bad name fails before any copy, naming the whole name
      const E = GpuArray.zeros([0, 12]);
      expect(passLabels(() => matmul(E, B, { transA: false }).dispose())).toEqual([]);
      expect(passLabels(() => matmul(GpuArray.zeros([12, 0]), B, { transA: true, variant: 'blocked:plain' }).dispose())).toEqual([]);
      expect(() => matmul(A, B, { transA: true, variant: 'foo:plain' })).toThrow(/^matmul: unknown variant 'foo:plain' \(known: /);
      for (const x of [A, B, E]) x.dispose();
    } finally {
      restoreMatmulChoice(key, saved);
    }
  });

  it('the default table\'s K rule: on this adapter, x·Wᵀ past its K threshold runs through the copy, below it directly', async () => {
    const key = gpu().adapterKey;
    const minK = plainMinK(key).tB;
    const saved = matmulChoice(key);
    setMatmulVariant(key, undefined);
    try {
      const labels = (K: number) => {
        const [A, B] = [GpuArray.zeros([5, K]), GpuArray.zeros([7, K])];
        const l = passLabels(() => matmul(A, B, { transB: true }).dispose());
        A.dispose();
        B.dispose();
        return l.map((x) => x.split(' ')[0]);
      };
      if (minK === undefined) {
        expect(labels(4096)).toEqual(['matmul']); // no rule for this adapter
      } else {
        expect(labels(minK)).toEqual(['permute', 'matmul']); // B [7, K]: 7 rows, not a multiple of 4, the strided copy
        expect(labels(minK - 4)).toEqual(['matmul']);
        await check(undefined, { M: 9, N: 11, K: minK + 3, transB: true, bias: true }, 150);
      }
    } finally {
      restoreMatmulChoice(key, saved);
    }
  });

  it("a tune that timed x·Wᵀ at the K rule's threshold decides that form: the rule is not applied on top of its choice", () => {
    const key = gpu().adapterKey;
    const saved = matmulChoice(key);
    setMatmulVariant(key, undefined);
    const rule = plainMinK(key).tB;
    const table = matmulVariantFor(key, false, true);
    try {
      // the tune kept the table's variant, timed only below the threshold: the rule still covers larger K
      setMatmulVariant(key, table, {}, ['tB'], measuredKOfLabels(['6304×3072×768 tB']));
      expect(plainMinK(key).tB).toBe(rule);
      if (rule !== undefined) {
        // timed at the threshold (its candidates held the table's variant through the copy) and kept the direct one
        setMatmulVariant(key, table, {}, ['tB'], measuredKOfLabels([`6304×768×${rule} tB`, '6304×3072×768 tB']));
        expect(plainMinK(key).tB).toBeUndefined();
        expect(matmulVariantForProduct(key, false, true, rule * 2)).toBe(table);
        // and the choice survives a save and restore
        const c = matmulChoice(key);
        expect(c?.measuredK).toEqual({ tB: rule });
        restoreMatmulChoice(key, c);
        expect(plainMinK(key).tB).toBeUndefined();
      }
    } finally {
      restoreMatmulChoice(key, saved);
    }
    expect(measuredKOfLabels(['6304×768×3072 tB', '10×20×30', '3072×768×6304 tA', '1×1×4096 tB', 'junk'])).toEqual({ tB: 4096, plain: 30, tA: 6304 });
  });

  it(`the ${PLAIN_SUFFIX} suffix parses onto any variant, survives the shape adjustment, and names the kernel that runs`, () => {
    expect(parseMatmulVariant('blocked-vec4:plain')).toMatchObject({ family: 'blocked-vec4', plain: true });
    expect(parseMatmulVariant('tiled@8x8/16x16:plain')).toMatchObject({ family: 'tiled', tm: 8, tn: 8, plain: true });
    expect(parseMatmulVariant('tiled')).not.toHaveProperty('plain');
    expect(() => parseMatmulVariant('tiled:plain:plain')).toThrow(/^matmul: bad variant 'tiled:plain:plain': ':plain' once, at the end$/);
    expect(() => parseMatmulVariant('tiled@99x1/1x1:plain')).toThrow(/^matmul: bad variant 'tiled@99x1\/1x1:plain': TM, TN in 1..16/);
    expect(() => parseMatmulVariant('plain')).toThrow(/unknown variant 'plain'/);
    expect(variantForShape('subgroup:plain', 4, 3, 8)).toBe('blocked-vec4:plain');
    // the kernel multiplies the copies, so a vec4 variant keeps its vec4 loads where only the transposed form was unaligned
    expect(resolveMatmulKernel('blocked-vec4', 13, 20, 36, true, false).family).toBe('blocked');
    expect(resolveMatmulKernel('blocked-vec4:plain', 13, 20, 36, true, false)).toMatchObject({ family: 'blocked-vec4', plain: true });
  });

  for (const variant of MATMUL_VARIANTS) {
    it(`${variant}: batched, b shared over the batch (2-D), bias`, async () => {
      await check(variant, { batch: [2, 3], M: 17, N: 9, K: 12, bias: true }, 40);
      await check(variant, { batch: [2, 3], M: 16, N: 8, K: 12, transB: true }, 41);
      await check(variant, { batch: [5], M: 4, N: 8, K: 16, transA: true, ints: true }, 42);
      await check(variant, { batch: [4], M: 17, N: 12, K: 12, shareB: true, bias: true }, 43);
      await check(variant, { batch: [2, 2], M: 7, N: 20, K: 8, shareB: true, transA: true, transB: true, ints: true }, 44);
      // alpha (the attention scores' 1/√D): a power of two keeps integer sums exact; 1/√13 with a bias does not.
      await check(variant, { batch: [3], M: 13, N: 13, K: 16, transB: true, ints: true, alpha: 0.125 }, 45);
      await check(variant, { batch: [2], M: 7, N: 20, K: 13, transA: true, bias: true, alpha: 1 / Math.sqrt(13) }, 46);
      await check(variant, { M: 65, N: 68, K: 64, shareB: true, bias: true, alpha: -0.3 }, 47);
    });
  }

  it('197×768×2304 (a ViT-B qkv projection) with each transpose, default variant, sampled rows vs float64', async () => {
    // The whole reference would be 350 M float64 multiply-adds per case; rows of C depend only on the
    // matching rows of op(A), so the reference is computed for 12 rows (first, last, and between).
    const [M, K, N] = [197, 768, 2304];
    const rows = [0, 1, 17, 63, 64, 100, 127, 128, 150, 191, 195, 196];
    for (const [transA, transB] of TRANS) {
      const { a, b, bias, aShape, bShape } = operands({ M, N, K, transA, transB, bias: true }, 50);
      const A = GpuArray.fromData(a, aShape);
      const B = GpuArray.fromData(b, bShape);
      const Bias = GpuArray.fromData(bias!, [N]);
      const C = matmul(A, B, { transA, transB, bias: Bias });
      const got = await C.read();
      const subA = new Float32Array(rows.length * K);
      rows.forEach((m, i) => {
        for (let k = 0; k < K; k++) subA[i * K + k] = transA ? a[k * M + m] : a[m * K + k];
      });
      const opts = { transB, bias };
      const expected = matmulRef(subA, [rows.length, K], b, bShape, opts);
      const sampled = new Float32Array(rows.length * N);
      rows.forEach((m, i) => sampled.set(got.subarray(m * N, (m + 1) * N), i * N));
      expectClose(sampled, expected, tolerance(subA, [rows.length, K], b, bShape, K, opts), 0, `matmul 197×768×2304 transA=${transA} transB=${transB}`);
      for (const x of [A, B, Bias, C]) x.dispose();
    }
  });

  it('the default subgroup blocking shrinks to narrow or short outputs, and stays correct', async () => {
    // a subgroup block is tm·SG rows × tn·SG columns (default tm 2, tn 8, 4 subgroups per workgroup); SG 8 here
    expect(variantForShape('subgroup', 2176, 192, 8)).toBe('subgroup'); // big enough: unchanged
    expect(variantForShape('subgroup', 2176, 64, 8)).toBe('subgroup'); // 64 columns = one full block
    expect(variantForShape('subgroup', 50, 16, 8)).toBe('subgroup@2x2/0x4'); // 16 columns: tn 2; 64 rows pad 22 %
    expect(variantForShape('subgroup', 17, 17, 8)).toBe('subgroup@1x3/0x3'); // 2-row blocks would pad 47 %
    expect(variantForShape('subgroup', 17, 16, 8)).toBe('subgroup@1x2/0x3');
    expect(variantForShape('subgroup', 50, 50, 8)).toBe('subgroup'); // 7 columns per lane > 8 / 2: the full block
    expect(variantForShape('subgroup', 197, 50, 32)).toBe('subgroup@2x2/0x4'); // SG 32
    expect(variantForShape('subgroup', 100, 3, 8)).toBe('blocked-vec4'); // under half a subgroup wide
    expect(variantForShape('subgroup', 3, 100, 8)).toBe('blocked-vec4');
    expect(variantForShape('tiled', 17, 17, 8)).toBe('tiled'); // only the subgroup family is adjusted
    expect(variantForShape('subgroup@1x8/0x4', 17, 16, 8)).toBe('subgroup@1x8/0x4'); // named blockings are kept
    expect(variantForShape('subgroup', 17, 17, null)).toBe(subgroupSize() ? 'subgroup@1x3/0x3' : 'subgroup');
    // a small ViT's per-head attention products (batch × heads = 48 here), through the default choice
    await check(undefined, { batch: [48], M: 17, N: 17, K: 16, transB: true }, 70);
    await check(undefined, { batch: [48], M: 17, N: 16, K: 17 }, 71);
    await check(undefined, { batch: [24], M: 50, N: 16, K: 50, transA: true }, 72);
    await check(undefined, { batch: [24], M: 50, N: 50, K: 16, transB: true }, 73);
  });

  it('K = 0 gives zeros (plus the bias); empty M or N give empty results', async () => {
    const A = GpuArray.fromData([], [3, 0]);
    const B = GpuArray.fromData([], [0, 5]);
    const bias = GpuArray.fromData([1, 2, 3, 4, 5], [5]);
    for (const variant of MATMUL_VARIANTS) {
      const C = matmul(A, B, { bias, variant });
      expect([...(await C.read())]).toEqual([1, 2, 3, 4, 5, 1, 2, 3, 4, 5, 1, 2, 3, 4, 5]);
      C.dispose();
    }
    const E = matmul(GpuArray.fromData([], [0, 4]), GpuArray.fromData(new Float32Array(8), [4, 2]));
    expect(E.shape).toEqual([0, 2]);
    expect((await E.read()).length).toBe(0);
  });

  it('rejects bad shapes, naming the op and the shapes', () => {
    const a = GpuArray.zeros([2, 3]);
    const b = GpuArray.zeros([4, 5]);
    expect(() => matmul(a, b)).toThrow(/^matmul: inner dimensions differ: a \[2, 3\] × b \[4, 5\]/);
    expect(() => matmul(a, GpuArray.zeros([5, 4]), { transB: true })).toThrow(/^matmul: inner dimensions differ: a \[2, 3\] × b \[5, 4\] \(transB\)/);
    expect(() => matmul(GpuArray.zeros([2, 2, 3]), GpuArray.zeros([3, 3, 4]))).toThrow(/^matmul: batch dimensions differ: a \[2, 2, 3\] × b \[3, 3, 4\]/);
    expect(() => matmul(a, GpuArray.zeros([2, 3, 4]))).toThrow(/^matmul: batch dimensions differ: a \[2, 3\] × b \[2, 3, 4\]/);
    expect(() => matmul(a, GpuArray.zeros([3, 4]), { bias: GpuArray.zeros([5]) })).toThrow(/^matmul: bias \[5\] does not match N = 4 of a \[2, 3\] × b \[3, 4\]/);
    expect(() => matmul(a, GpuArray.zeros([3, 4]), { bias: GpuArray.zeros([1, 4]) })).toThrow(/^matmul: bias \[1, 4\] does not match N = 4/);
    expect(() => matmul(GpuArray.zeros([3]), b)).toThrow(/^matmul: operands must be at least 2-D: a \[3\] × b \[4, 5\]/);
    expect(() => matmul(a, GpuArray.zeros([3, 4]), { variant: 'fastest' })).toThrow(/^matmul: unknown variant 'fastest'/);
    expect(() => matmul(a, GpuArray.zeros([3, 4]), { variant: 'blocked-vec4@3x4/8x8' })).toThrow(/^matmul: bad variant/);
    // 16×16 per invocation on 32×8 invocations: a 128×512 block needs 20 KiB of staged tiles per K step of 8.
    expect(() => matmul(a, GpuArray.zeros([3, 4]), { variant: 'tiled@16x16/32x8' })).toThrow(/^matmul: bad variant .*16 KiB of workgroup memory/);
    expect(() => matmul(a, GpuArray.zeros([3, 4]), { variant: 'tiled-vec4@6x4/16x16' })).toThrow(/^matmul: bad variant 'tiled-vec4@6x4\/16x16': .*4 or 8 for tiled-vec4/);
    expect(() => matmul(a, GpuArray.zeros([3, 4]), { variant: 'tiled-vec4@8x8/64x4' })).toThrow(/^matmul: bad variant .*16 KiB of workgroup memory/);
  });

  it('the vec4 path is used only when its loads are aligned (otherwise it falls back to scalar loads)', () => {
    expect(vec4Aligned(197, 2304, 768, false, false)).toBe(true);
    expect(vec4Aligned(197, 197, 64, false, true)).toBe(true);
    expect(vec4Aligned(197, 64, 197, false, false)).toBe(false);
    expect(vec4Aligned(197, 64, 768, true, false)).toBe(false);
    expect(vec4Aligned(768, 3072, 196, true, false)).toBe(true);
    expect(vec4Aligned(8, 13, 8, false, false)).toBe(false);
  });

  describe('variant choice', () => {
    const cacheDir = mkdtempSync(join(tmpdir(), 'celluscan-autotune-'));
    const savedXdg = process.env.XDG_CACHE_HOME;
    afterAll(() => {
      setMatmulVariant(gpu().adapterKey, undefined);
      if (savedXdg === undefined) delete process.env.XDG_CACHE_HOME;
      else process.env.XDG_CACHE_HOME = savedXdg;
      rmSync(cacheDir, { recursive: true, force: true });
    });

    it("the autotune's candidates parse on every adapter of the table (a split-K table variant keeps ':plain' off it)", () => {
      for (const a of [...Object.keys(DEFAULT_MATMUL_VARIANTS), 'nvidia-h100', 'some-new-gpu']) {
        for (const transposed of [false, true]) {
          const c = autotuneCandidates(a, transposed, a === 'llvmpipe' || a === 'swiftshader');
          expect(c[0]).toBe(matmulVariantFor(a));
          for (const v of c) expect(() => parseMatmulVariant(v), `${a}: ${v}`).not.toThrow();
        }
      }
      expect(autotuneCandidates('nvidia-h100', true, false)).toContain('tiled-vec4:plain');
    });

    it('has a default per adapter, and tiled for unknown (real) GPUs', () => {
      expect(matmulVariantFor('llvmpipe')).toBe(DEFAULT_MATMUL_VARIANTS.llvmpipe);
      expect(matmulVariantFor('some-new-gpu')).toBe('tiled');
      // a vendor's entry covers its models until one is measured apart
      expect(matmulVariantFor('nvidia-h100')).toBe(DEFAULT_MATMUL_VARIANTS.nvidia);
      expect(matmulVariantFor('nvidia')).toBe(DEFAULT_MATMUL_VARIANTS.nvidia);
      for (const v of Object.values(DEFAULT_MATMUL_VARIANTS)) {
        expect(MATMUL_VARIANTS).toContain(v.split('@')[0].replace(/:.*$/, ''));
        expect(() => parseMatmulVariant(v)).not.toThrow();
      }
      // per form: NVIDIA's Aᵀ·B split over K in up to 8; the other forms (in up to 4) and other adapters keep the adapter's variant
      expect(matmulVariantFor('nvidia-h100', true, false)).toBe('tiled-vec4:k8');
      expect(matmulVariantFor('nvidia-h100', false, true)).toBe('tiled-vec4:k4');
      expect(matmulVariantFor('nvidia-h100', false, false)).toBe('tiled-vec4:k4');
      expect(matmulVariantFor('llvmpipe', false, true)).toBe(DEFAULT_MATMUL_VARIANTS.llvmpipe);
      expect(matmulVariantFor('some-new-gpu', false, true)).toBe('tiled');
      expect(describeMatmulChoice('nvidia-h100')).toBe('tiled-vec4:k4 (tA: tiled-vec4:k8)');
      expect(describeMatmulChoice('llvmpipe')).toBe(`${DEFAULT_MATMUL_VARIANTS.llvmpipe} (tB with K ≥ 2048: ${DEFAULT_MATMUL_VARIANTS.llvmpipe}:plain)`);
      // the K rule: lavapipe's x·Wᵀ through a copy from K = 2048 (vit_b_16's second MLP Linear), not below, not other forms
      expect(matmulVariantForProduct('llvmpipe', false, true, 3072)).toBe('subgroup:plain');
      expect(matmulVariantForProduct('llvmpipe', false, true, 768)).toBe('subgroup');
      expect(matmulVariantForProduct('llvmpipe', true, false, 3072)).toBe('subgroup');
      // split-K only where K is long enough (SPLIT_K_MIN_K): shorter products run the base variant
      expect(matmulVariantForProduct('nvidia-h100', true, false, 6304)).toBe('tiled-vec4:k8');
      expect(matmulVariantForProduct('nvidia-h100', false, false, 3072)).toBe('tiled-vec4:k4');
      expect(matmulVariantForProduct('nvidia-h100', true, false, 64)).toBe('tiled-vec4');
      expect(matmulVariantForProduct('nvidia-h100', false, true, 511)).toBe('tiled-vec4');
      expect(matmulVariantForProduct('nvidia-h100', false, true, 512)).toBe('tiled-vec4:k4');
      expect(matmulVariantForProduct('some-new-gpu', false, true, 4096)).toBe('tiled');
      // a tune that kept the table's variant for the form keeps the rule (it timed one K); one that chose another drops it
      setMatmulVariant('llvmpipe', 'subgroup', {}, ['plain', 'tB']);
      expect(matmulVariantForProduct('llvmpipe', false, true, 3072)).toBe('subgroup:plain');
      setMatmulVariant('llvmpipe', 'subgroup');
      expect(matmulVariantForProduct('llvmpipe', false, true, 3072)).toBe('subgroup');
      setMatmulVariant('llvmpipe', 'subgroup', { tB: 'tiled' }, ['plain', 'tB']);
      expect(matmulVariantForProduct('llvmpipe', false, true, 3072)).toBe('tiled');
      expect(describeMatmulChoice('llvmpipe')).toBe('subgroup (tB: tiled)');
      setMatmulVariant('llvmpipe', undefined);
      for (const forms of Object.values(DEFAULT_MATMUL_FORMS)) for (const v of Object.values(forms)) expect(() => parseMatmulVariant(v)).not.toThrow();
      // a choice set for every form (a user's override) replaces the table's forms too
      setMatmulVariant('nvidia-h100', 'tiled');
      expect(matmulVariantFor('nvidia-h100', false, true)).toBe('tiled');
      // a tune measured on some forms decides those; the others keep the table's form variants, else its variant
      setMatmulVariant('nvidia-h100', 'tiled', {}, ['plain']);
      expect(matmulVariantFor('nvidia-h100', true, false)).toBe('tiled-vec4:k8');
      expect(matmulVariantFor('nvidia-h100', false, true)).toBe('tiled');
      expect(describeMatmulChoice('nvidia-h100')).toBe('tiled (tA: tiled-vec4:k8)');
      setMatmulVariant('nvidia-h100', 'tiled', { tA: 'blocked' }, ['plain', 'tB', 'tA']);
      expect(matmulVariantFor('nvidia-h100', true, false)).toBe('blocked');
      expect(describeMatmulChoice('nvidia-h100')).toBe('tiled (tA: blocked)');
      setMatmulVariant('nvidia-h100', 'tiled', {}, ['plain', 'tB', 'tA']);
      expect(matmulVariantFor('nvidia-h100', true, false)).toBe('tiled');
      setMatmulVariant('nvidia-h100', undefined);
      expect(matmulVariantFor('nvidia-h100', true, false)).toBe('tiled-vec4:k8');
      expect(formsOfLabels(['6304×3072×768 tB', '6304×768×3072', '768×3072×6304 tA', '5×5×5 tA tB'])).toEqual(['tB', 'plain', 'tA', 'tAtB']);
    });

    it('autotune times correct candidates, makes the fastest the default, and caches it in a file', async () => {
      process.env.XDG_CACHE_HOME = cacheDir;
      const r = await autotuneMatmul({ shape: [64, 64, 64], candidates: ['naive', 'blocked-vec4'], force: true, runs: 1 });
      expect(r.fromCache).toBe(false);
      expect(Object.keys(r.timings).sort()).toEqual(['blocked-vec4', 'naive']);
      expect(['naive', 'blocked-vec4']).toContain(r.variant);
      expect(matmulVariantFor(gpu().adapterKey)).toBe(r.variant);
      const file = JSON.parse(readFileSync(join(cacheDir, 'celluscan', 'matmul-autotune.json'), 'utf8'));
      expect(file.entries[gpu().adapterKey].variant).toBe(r.variant);
      setMatmulVariant(gpu().adapterKey, undefined);
      const again = await autotuneMatmul({ shape: [64, 64, 64] });
      expect(again).toMatchObject({ fromCache: true, variant: r.variant });
      expect(matmulVariantFor(gpu().adapterKey)).toBe(r.variant);
    });

    it("autotune on a model's products: a Linear layer's three forms, checked in each transpose, summed, cached by the products", async () => {
      process.env.XDG_CACHE_HOME = cacheDir;
      const products = linearProducts(50, 16, 24, true);
      expect(products.map(productLabel)).toEqual(['50×24×16 tB', '50×16×24', '24×16×50 tA']);
      expect(linearProducts(50, 16, 24, false).map(productLabel)).toEqual(['50×24×16 tB']);
      const r = await autotuneMatmul({ products, candidates: ['naive', 'blocked-vec4'], force: true, runs: 1 });
      expect(r).toMatchObject({ fromCache: false, shape: [50, 24, 16], products: ['50×24×16 tB', '50×16×24', '24×16×50 tA'] });
      expect(Object.values(r.timings).every((t) => t > 0 && Number.isFinite(t))).toBe(true);
      setMatmulVariant(gpu().adapterKey, undefined);
      expect(await autotuneMatmul({ products })).toMatchObject({ fromCache: true, variant: r.variant });
      // `info` says which products the choice was measured on (it serves every model's products on the adapter)
      expect(await cachedMatmulProducts()).toEqual(['50×24×16 tB', '50×16×24', '24×16×50 tA']);
      const { adapterInfo, formatInfo } = await import('../src/cli/info.js');
      const info = await adapterInfo();
      expect(info.kernels).toMatchObject({ matmulTuned: true, matmulTunedOn: ['50×24×16 tB', '50×16×24', '24×16×50 tA'] });
      expect(formatInfo(info)).toMatch(/^matmul +\S+.* \(tuned by `celluscan tune` on 50×24×16 tB, 50×16×24, 24×16×50 tA; used for every model's products here/m);
      // other products: measured again (and kept, as the last tuning)
      const other = await autotuneMatmul({ products: linearProducts(20, 16, 24, false), candidates: ['blocked-vec4'], runs: 1 });
      expect(other).toMatchObject({ fromCache: false, variant: 'blocked-vec4', products: ['20×24×16 tB'] });
      await expect(autotuneMatmul({ products: [{ m: 0, n: 4, k: 4 }], force: true })).rejects.toThrow(/product sizes must be integers >= 1, got 0×4×4/);
      setMatmulVariant(gpu().adapterKey, undefined);
    });

    it('a variant per transpose form: matmul() runs the form\'s variant, info describes it, the cache keeps it', async () => {
      process.env.XDG_CACHE_HOME = cacheDir;
      const g = gpu();
      const labels = async (transA: boolean, transB: boolean): Promise<string[]> => {
        const seen: string[] = [];
        setPassHook((_d, label) => seen.push(label));
        try {
          const A = GpuArray.fromData(randomArray(12 * 8, 1), transA ? [8, 12] : [12, 8]);
          const B = GpuArray.fromData(randomArray(8 * 16, 2), transB ? [16, 8] : [8, 16]);
          const C = matmul(A, B, { transA, transB });
          // still the right product, whichever kernel ran
          expectClose(await C.read(), matmulRef(await A.read(), A.shape, await B.read(), B.shape, { transA, transB }), 1e-5, 1e-5);
          for (const x of [A, B, C]) x.dispose();
        } finally {
          setPassHook(null);
        }
        return seen.filter((l) => l.startsWith('matmul'));
      };
      setMatmulVariant(g.adapterKey, 'blocked-vec4', { tB: 'naive' });
      expect((await labels(false, true))[0]).toMatch(/^matmul naive 12×16×8 tB$/);
      expect((await labels(false, false))[0]).toMatch(/^matmul blocked-vec4 12×16×8$/);
      expect((await labels(true, false))[0]).toMatch(/^matmul blocked-vec4 12×16×8 tA$/);
      expect(describeMatmulChoice(g.adapterKey)).toBe('blocked-vec4 (tB: naive)');
      setMatmulVariant(g.adapterKey, 'blocked-vec4');
      expect(describeMatmulChoice(g.adapterKey)).toBe('blocked-vec4');

      // formChoices: a form gets its own variant only past the margin
      const products = linearProducts(8, 4, 4, true); // tB, plain, tA
      const ls = products.map(productLabel);
      const t = (x: number[]) => ({ a: x[0], b: x[1] });
      const pt = { [ls[0]]: t([10, 5]), [ls[1]]: t([10, 9.7]), [ls[2]]: t([10, 30]) };
      expect(formChoices(products, ls, pt, 'a')).toEqual({ tB: 'b' }); // plain: b only 3 % faster, kept with a
      expect(formChoices(products, ls, pt, 'b')).toEqual({ tA: 'a' });

      // The cache round trip keeps the forms; an entry naming an unknown form or variant is no cache.
      const file = join(cacheDir, 'celluscan', 'matmul-autotune.json');
      mkdirSync(join(cacheDir, 'celluscan'), { recursive: true });
      const entry = { adapter: g.adapterKey, description: g.info.description, variant: 'blocked', timings: {}, shape: [1, 1, 1] };
      writeFileSync(file, JSON.stringify({ version: 5, entries: { [g.adapterKey]: { ...entry, forms: { tA: 'tiled:k4' } } } }));
      setMatmulVariant(g.adapterKey, undefined);
      expect(await loadMatmulTuning()).toBe('blocked');
      expect(matmulVariantFor(g.adapterKey, true, false)).toBe('tiled:k4');
      expect(matmulVariantFor(g.adapterKey, false, true)).toBe('blocked');
      // A version-1 file (products timed together, before tiled-vec4 and the per-form choice), a version-2 one
      // (before the ':plain' candidates and the per-form table, which it would hide), a version-3 one (before the
      // split-K candidates and the measured NVIDIA table) and a version-4 one (split-K on dW only) are stale: no cache.
      for (const version of [1, 2, 3, 4]) {
        writeFileSync(file, JSON.stringify({ version, entries: { [g.adapterKey]: { ...entry, forms: { tA: 'tiled' } } } }));
        setMatmulVariant(g.adapterKey, undefined);
        expect(await loadMatmulTuning()).toBeUndefined();
      }
      for (const forms of [{ tX: 'tiled' }, { tA: 'warp' }, 'tiled']) {
        writeFileSync(file, JSON.stringify({ version: 5, entries: { [g.adapterKey]: { ...entry, forms } } }));
        setMatmulVariant(g.adapterKey, undefined);
        expect(await loadMatmulTuning()).toBeUndefined();
      }
      setMatmulVariant(g.adapterKey, undefined);
    });

    it('autotune on transposed products records each product\'s timings and the forms it chose apart', async () => {
      process.env.XDG_CACHE_HOME = cacheDir;
      const products = linearProducts(40, 16, 24, true);
      const r = await autotuneMatmul({ products, candidates: ['naive', 'blocked-vec4'], force: true, runs: 1 });
      const ls = products.map(productLabel);
      expect(Object.keys(r.productTimings!)).toEqual(ls);
      for (const l of ls) for (const v of ['naive', 'blocked-vec4']) expect(r.productTimings![l][v]).toBeGreaterThan(0);
      // the overall time is the sum of the products'
      for (const v of ['naive', 'blocked-vec4']) expect(r.timings[v]).toBeCloseTo(ls.reduce((s, l) => s + r.productTimings![l][v], 0), 6);
      expect(r.forms).toEqual(formChoices(products, ls, r.productTimings!, r.variant));
      for (const p of products) {
        const f = r.forms![p.transA ? 'tA' : p.transB ? 'tB' : 'plain'];
        expect(matmulVariantFor(gpu().adapterKey, p.transA, p.transB)).toBe(f ?? r.variant);
      }
      setMatmulVariant(gpu().adapterKey, undefined);
      expect(await autotuneMatmul({ products })).toMatchObject({ fromCache: true, variant: r.variant, forms: r.forms });
      setMatmulVariant(gpu().adapterKey, undefined);
    });

    it('timeCandidate: the times a call returns (GPU time) or its wall clock, best after the warm-up, given up when hopeless', async () => {
      const seq = (xs: (number | undefined)[]) => {
        let i = 0;
        return async () => {
          const x = xs[i++];
          if (x === undefined) await new Promise((r) => setTimeout(r, 5));
          return x;
        };
      };
      expect(await timeCandidate(seq([50, 3, 1, 2]), 3, Infinity)).toBe(1); // the warm-up's 50 is not a timing
      const wall = await timeCandidate(seq([undefined, undefined]), 1, Infinity);
      expect(wall).toBeGreaterThanOrEqual(4);
      expect(wall).toBeLessThan(1000);
      // over AUTOTUNE_GIVE_UP_RATIO × the best so far after a timed call: no more calls
      let calls = 0;
      const slow = async () => {
        calls++;
        return 10;
      };
      expect(await timeCandidate(slow, 5, 2)).toBe(10);
      expect(calls).toBe(2);
    });

    it('autotune by GPU time (timestamp queries): the clock is recorded and every product has a positive time', async () => {
      process.env.XDG_CACHE_HOME = cacheDir;
      const g = gpu();
      const products = linearProducts(96, 32, 48, true);
      const r = await autotuneMatmul({ products, candidates: ['blocked-vec4', 'subgroup'], force: true, runs: 2, clock: 'gpu' });
      expect(r.clock).toBe(g.features.has('timestamp-query') ? 'timestamp-query' : 'wall-clock');
      for (const l of products.map(productLabel)) for (const v of ['blocked-vec4', 'subgroup']) expect(r.productTimings![l][v]).toBeGreaterThan(0);
      expect(getPassHook()).toBeNull(); // no timestamp hook left behind
      expect((await autotuneMatmul({ products, candidates: ['blocked-vec4'], force: true, runs: 1, clock: 'wall' })).clock).toBe('wall-clock');
      setMatmulVariant(g.adapterKey, undefined);
    });

    it('a candidate far slower than the best so far is timed once and keeps a real time (not Infinity); onCandidate hears each', async () => {
      process.env.XDG_CACHE_HOME = cacheDir;
      const heard: [string, number][] = [];
      // naive is >10× slower than blocked-vec4 at 256³ on every adapter measured, so it is given up after one timed run
      const r = await autotuneMatmul({ shape: [256, 256, 256], candidates: ['blocked-vec4', 'naive'], force: true, runs: 3, onCandidate: (v, ms) => heard.push([v, ms]) });
      expect(heard.map(([v]) => v)).toEqual(['blocked-vec4', 'naive']);
      for (const [v, ms] of heard) {
        expect(Number.isFinite(ms) && ms > 0).toBe(true);
        expect(r.timings[v]).toBe(ms);
      }
      expect(r.variant).toBe('blocked-vec4');
      setMatmulVariant(gpu().adapterKey, undefined);
    });

    it('a damaged cache entry (no variant, or one this build cannot parse) is no cache, not an error', async () => {
      process.env.XDG_CACHE_HOME = cacheDir;
      mkdirSync(join(cacheDir, 'celluscan'), { recursive: true });
      const file = join(cacheDir, 'celluscan', 'matmul-autotune.json');
      const g = gpu();
      setMatmulVariant(g.adapterKey, undefined);
      const table = matmulVariantFor(g.adapterKey);
      for (const entry of [{ description: g.info.description }, { description: g.info.description, variant: 'blocked-vec4@3x3/1x1' }, { description: g.info.description, variant: 'tiled:k1' }, { description: g.info.description, variant: 42 }]) {
        writeFileSync(file, JSON.stringify({ version: 5, entries: { [g.adapterKey]: entry } }));
        setMatmulVariant(g.adapterKey, undefined);
        expect(await loadMatmulTuning()).toBeUndefined();
        expect(matmulVariantFor(g.adapterKey)).toBe(table);
      }
      writeFileSync(file, '{ not json');
      expect(await loadMatmulTuning()).toBeUndefined();
    });
  });
});

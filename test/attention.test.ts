import { describe, expect, it } from 'vitest';
import { GpuArray } from '../src/kernels/memory.js';
import { subgroupSize } from '../src/kernels/matmul.js';
import { ATTENTION_VARIANTS, attentionBackward, attentionForward, defaultAttentionVariant, flashBytes, type AttentionOptions } from '../src/kernels/attention.js';
import { gpu } from '../src/kernels/device.js';
import { setPassHook } from '../src/kernels/launch.js';
import { attentionBackwardRef, attentionRef, type AttentionRefOptions } from '../src/kernels/ref/attention.js';
import { randomArray } from '../src/kernels/ref/math.js';
import { expectClose, useGpu } from './gpu.js';

useGpu();

// Tolerances, GPU (f32) vs the float64 reference. Inputs are uniform in [-1, 1], scale = 1/sqrt(D), so
// scores are O(1), outputs and gradients O(0.01..1) and lse ≈ log N ≤ 6. Each result is an f32 sum of at
// most N·D ≤ 25,000 products (two chained dot products of D terms inside a sum over N ≤ 197 keys), with
// f32 exp/log (a few ulp). Rounding (eps = 6e-8) grows like sqrt(terms) in practice: errors measured on
// lavapipe are ≤ 7e-7 absolute. 5e-6 absolute + 5e-5 relative leaves ~10× margin and is still far below
// any real bug (a missing scale, a wrong row or a stale max gives errors ≥ 1e-2).
const ATOL = 5e-6;
const RTOL = 5e-5;
// lse ≈ log N ± a few: f32 relative rounding of the running max and log(sum).
const LSE_ATOL = 5e-6;
const LSE_RTOL = 5e-6;

type Shape = { B: number; H: number; N: number; D: number };
type MaskKind = 'none' | 'NN' | 'B1NN' | 'BHNN';

/** A random mask in [-2, 2) with -Infinity entries: row 0 fully masked, and one entry in every other row. */
function makeMask(kind: MaskKind, s: Shape, seed: number): { data?: Float32Array; shape?: number[] } {
  if (kind === 'none') return {};
  const shape = kind === 'NN' ? [s.N, s.N] : kind === 'B1NN' ? [s.B, 1, s.N, s.N] : [s.B, s.H, s.N, s.N];
  const mats = shape.length === 2 ? 1 : shape[0] * shape[1];
  const data = randomArray(mats * s.N * s.N, seed, -2, 2);
  for (let m = 0; m < mats; m++) {
    const o = m * s.N * s.N;
    // Fully masked row (row m % N), so 2-D and batched masks each exercise it.
    const full = m % s.N;
    for (let j = 0; j < s.N; j++) data[o + full * s.N + j] = -Infinity;
    for (let i = 0; i < s.N; i++) if (i !== full && s.N > 1) data[o + i * s.N + ((i * 7 + m) % s.N)] = -Infinity;
  }
  return { data, shape };
}

const finite = (a: ArrayLike<number>) => Float64Array.from(a, (x) => (x === -Infinity ? -1e30 : x));

async function check(s: Shape, maskKind: MaskKind, withHeadScale: boolean, variant: string, seed: number, scale?: number, withoutScores = false): Promise<void> {
  if (variant.startsWith('subgroup') && !subgroupSize()) {
    // Needs fixed-size subgroups (lavapipe has them; some GPUs report a range): there it must refuse clearly.
    const a = GpuArray.zeros([1, 1, 2, 4]);
    expect(() => attentionForward(a, a, a, { variant })).toThrow(/variant 'subgroup(-saved)?' needs the adapter's 'subgroups' feature/);
    a.dispose();
    return;
  }
  const { B, H, N, D } = s;
  const size = B * H * N * D;
  const qs = randomArray(size, seed);
  const ks = randomArray(size, seed + 1);
  const vs = randomArray(size, seed + 2);
  const gs = randomArray(size, seed + 3);
  const m = makeMask(maskKind, s, seed + 4);
  // Head 1 (if any) is ablated with 0; the others get distinct scales.
  const hsData = withHeadScale ? Float32Array.from({ length: H }, (_, h) => (h === 1 ? 0 : 1 + 0.5 * h)) : undefined;
  const shape = [B, H, N, D];
  const [q, k, v, g] = [qs, ks, vs, gs].map((a) => GpuArray.fromData(a, shape));
  const opts: AttentionOptions = { variant, scale };
  if (m.data) opts.mask = GpuArray.fromData(m.data, m.shape!);
  if (hsData) opts.headScale = GpuArray.fromData(hsData, [H]);
  const { out, lse, scores } = attentionForward(q, k, v, { ...opts, saveScores: true });
  expect(scores === undefined).toBe(!variant.startsWith('subgroup-saved'));
  const { dq, dk, dv } = attentionBackward(q, k, v, out, lse, g, opts, withoutScores ? undefined : scores);
  const [o, l, gq, gk, gv] = await Promise.all([out, lse, dq, dk, dv].map((a) => a.read()));

  const ropts: AttentionRefOptions = { scale, mask: m.data, maskShape: m.shape, headScale: hsData };
  const ref = attentionRef(qs, ks, vs, s, ropts);
  const rb = attentionBackwardRef(qs, ks, vs, gs, s, ropts);
  const what = `${variant} [${shape}] mask=${maskKind} hs=${withHeadScale}${withoutScores ? ' (backward without scores)' : ''}`;
  expectClose(o, ref.out, ATOL, RTOL, `${what} out`);
  expect(Array.from(l).map((x) => x === -Infinity)).toEqual(Array.from(ref.lse).map((x) => x === -Infinity));
  expectClose(finite(l), finite(ref.lse), LSE_ATOL, LSE_RTOL, `${what} lse`);
  expectClose(gq, rb.dq, ATOL, RTOL, `${what} dq`);
  expectClose(gk, rb.dk, ATOL, RTOL, `${what} dk`);
  expectClose(gv, rb.dv, ATOL, RTOL, `${what} dv`);
  for (const a of [q, k, v, g, out, lse, scores, dq, dk, dv, opts.mask, opts.headScale]) a?.dispose();
}

const CASES: [Shape, MaskKind, boolean][] = [
  [{ B: 1, H: 1, N: 1, D: 1 }, 'none', false],
  [{ B: 2, H: 3, N: 7, D: 13 }, 'NN', true],
  [{ B: 1, H: 2, N: 197, D: 64 }, 'none', true],
  [{ B: 1, H: 1, N: 100, D: 128 }, 'NN', false],
  [{ B: 2, H: 1, N: 13, D: 100 }, 'B1NN', false],
  [{ B: 2, H: 2, N: 13, D: 16 }, 'BHNN', true],
  [{ B: 1, H: 3, N: 70, D: 48 }, 'B1NN', true],
];

describe('attention', () => {
  it('default variant follows the adapter', () => {
    expect(defaultAttentionVariant('llvmpipe', true)).toBe('subgroup-saved');
    expect(defaultAttentionVariant('llvmpipe', false)).toBe('rows');
    expect(defaultAttentionVariant('swiftshader', false)).toBe('rows');
    expect(defaultAttentionVariant('nvidia-h100')).toBe('flash');
  });

  for (const variant of ATTENTION_VARIANTS) {
    for (const [s, mask, hs] of CASES) {
      // 240 s: on lavapipe with a cold Mesa shader cache the generated large-D kernels (D = 100, 128) take up to ~50 s
      // to compile on an idle 2-core machine (measured for subgroup-saved), and test files run side by side in CI.
      it(`${variant}: forward and backward match float64, [${s.B}, ${s.H}, ${s.N}, ${s.D}] mask=${mask} headScale=${hs}`, async () => {
        await check(s, mask, hs, variant, s.N * 31 + s.D);
      }, 240_000);
    }
    it(`${variant}: explicit scale`, async () => {
      await check({ B: 1, H: 2, N: 9, D: 5 }, 'NN', false, variant, 77, 0.9);
    });
  }

  // The flash forward picks its blocking from the device's workgroup memory (flashPlan); these pin the other
  // blockings and the path that reads Q from global memory (D=256 does not fit a staged Q tile in 32 KiB).
  it('flash: named blockings (flash@1x2, flash@2x1/1x1/1x2) match float64', async () => {
    await check({ B: 1, H: 2, N: 37, D: 20 }, 'NN', true, 'flash@1x2', 41);
    await check({ B: 2, H: 1, N: 19, D: 9 }, 'BHNN', false, 'flash@2x1/1x1/1x2', 42);
  });

  it('flash: large D reads Q from global memory (D=200), or runs the blocked kernels where its tiles do not fit (D=256)', async () => {
    const limit = gpu().limits.maxComputeWorkgroupStorageSize;
    // Which path runs depends on the device's workgroup memory; on 32 KiB (lavapipe) D=200 has no room for a staged
    // Q tile (forward) nor for the backward's tiles, and D=256 not even for the unstaged forward: say so, so a change
    // in the byte counts cannot silently move these cases onto another path.
    if (limit === 32768) {
      expect([flashBytes('fwd', 200, 1, 1, true) > limit, flashBytes('fwd', 200, 1, 1, false) <= limit, flashBytes('dq', 200, 1, 1) > limit]).toEqual([true, true, true]);
      expect(flashBytes('fwd', 256, 1, 1, false) > limit).toBe(true);
    }
    await check({ B: 1, H: 1, N: 21, D: 200 }, 'B1NN', false, 'flash', 43);
    await check({ B: 1, H: 1, N: 18, D: 256 }, 'NN', true, 'flash', 44);
  });

  // 'subgroup-saved' with a named blocking (forward / dK-dV-dS, RQ = 2 so a subgroup owns 2·SG rows, past n here), and
  // its backward without the forward's scores, which must fall back to the 'subgroup' passes (same gradients).
  it('subgroup-saved: a named blocking, and a backward given no scores', async () => {
    await check({ B: 1, H: 2, N: 23, D: 10 }, 'BHNN', true, 'subgroup-saved@2x2/2x1', 45);
    await check({ B: 2, H: 1, N: 19, D: 12 }, 'NN', false, 'subgroup-saved', 46, undefined, true);
  });

  it('subgroup-saved: scores too large for one storage binding are not kept (the backward then recomputes them)', async () => {
    if (!subgroupSize()) return;
    // N = 5800, D = 1: q, k, v are tiny but N² floats are 134.6 MB, past lavapipe's 128 MiB binding limit.
    const N = 5800;
    const fits = N * N * 4 <= gpu().limits.maxStorageBufferBindingSize;
    const a = GpuArray.fromData(randomArray(N, 3), [1, 1, N, 1]);
    const { out, lse, scores } = attentionForward(a, a, a, { variant: 'subgroup-saved', saveScores: true });
    expect(scores === undefined).toBe(!fits);
    const o = await out.read();
    expect(o.every((x) => Number.isFinite(x))).toBe(true);
    for (const x of [a, out, lse, scores]) x?.dispose();
  });

  it('flash-ds: the dK/dV pass writes dS and dQ is a matmul; past the largest storage binding it runs as flash', async () => {
    const labels = async (B: number, N: number, D: number): Promise<string[]> => {
      const a = GpuArray.fromData(randomArray(B * 2 * N * D, 5), [B, 2, N, D]);
      const { out, lse } = attentionForward(a, a, a, { variant: 'flash-ds' });
      const seen: string[] = [];
      setPassHook((_d, l) => seen.push(l));
      try {
        const g = attentionBackward(a, a, a, out, lse, a, { variant: 'flash-ds' });
        const dq = await g.dq.read();
        expect(dq.every((x) => Number.isFinite(x))).toBe(true);
        for (const x of [g.dq, g.dk, g.dv]) x.dispose();
      } finally {
        setPassHook(null);
        for (const x of [a, out, lse]) x.dispose();
      }
      return seen;
    };
    // (the float64 cases above check the numbers; here, which passes ran)
    const small = await labels(1, 37, 20);
    expect(small).toContain('attentionBackward dkv-ds');
    expect(small.some((l) => /^matmul \S+ 2×37×20×37 tA$/.test(l))).toBe(true);
    expect(small).not.toContain('attentionBackward dq');
    // N = 4100, two heads, D = 1: dS would be 134.5 MB, past lavapipe's 128 MiB binding: the 'flash' passes run
    const N = 4100;
    if (2 * N * N * 4 > gpu().limits.maxStorageBufferBindingSize) {
      const big = await labels(1, N, 1);
      expect(big).toContain('attentionBackward dq');
      expect(big).toContain('attentionBackward dkv');
      expect(big).not.toContain('attentionBackward dkv-ds');
    }
  }, 240_000);

  it('subgroup-saved: scores of the wrong shape, or given to another variant, are refused', () => {
    if (!subgroupSize()) return; // the variant itself is refused there (checked in the float64 tests)
    const a = GpuArray.zeros([1, 2, 5, 4]);
    const lse = GpuArray.zeros([1, 2, 5]);
    const wrong = GpuArray.zeros([1, 2, 5, 4]);
    expect(() => attentionBackward(a, a, a, a, lse, a, { variant: 'subgroup-saved' }, wrong)).toThrow(/attentionBackward: scores \[1, 2, 5, 4\] must be \[1, 2, 5, 5\] for q \[1, 2, 5, 4\]/);
    expect(() => attentionBackward(a, a, a, a, lse, a, { variant: 'rows' }, wrong)).toThrow(/attentionBackward: scores are only read by the variant 'subgroup-saved' \(this is 'rows'\)/);
    expect(() => attentionForward(a, a, a, { variant: 'subgroup-saved@1x2/1x2/1x2' })).toThrow(/bad variant 'subgroup-saved@1x2\/1x2\/1x2': expected subgroup-saved@RQxTN or subgroup-saved@RQxTN\/RQxTN/);
    for (const x of [a, lse, wrong]) x.dispose();
  });

  it('ViT-B/16 shape [2, 12, 197, 64] (default variant)', async () => {
    await check({ B: 2, H: 12, N: 197, D: 64 }, 'none', false, defaultAttentionVariant(), 5);
  });

  it('a fully masked row gives out 0, lse -Infinity and zero (not NaN) gradients', async () => {
    const mask = new Float32Array(25);
    for (let j = 0; j < 5; j++) mask[2 * 5 + j] = -Infinity;
    const shape = [1, 1, 5, 3];
    const [q, k, v, g] = [1, 2, 3, 4].map((seed) => GpuArray.fromData(randomArray(15, seed), shape));
    const m = GpuArray.fromData(mask, [5, 5]);
    const { out, lse } = attentionForward(q, k, v, { mask: m });
    const { dq, dk, dv } = attentionBackward(q, k, v, out, lse, g, { mask: m });
    const o = await out.read();
    expect((await lse.read())[2]).toBe(-Infinity);
    expect(Array.from(o.slice(6, 9))).toEqual([0, 0, 0]);
    expect(Array.from(await dq.read()).slice(6, 9)).toEqual([0, 0, 0]);
    for (const x of [...o, ...(await dq.read()), ...(await dk.read()), ...(await dv.read())]) expect(Number.isFinite(x)).toBe(true);
  });

  it('the reference backward matches central differences of the reference forward', () => {
    const s = { B: 2, H: 2, N: 4, D: 3 };
    const size = 2 * 2 * 4 * 3;
    const q = Float64Array.from(randomArray(size, 11));
    const k = Float64Array.from(randomArray(size, 12));
    const v = Float64Array.from(randomArray(size, 13));
    const g = Float64Array.from(randomArray(size, 14));
    for (const kind of ['NN', 'B1NN'] as MaskKind[]) {
      const m = makeMask(kind, s, 15);
      const opts: AttentionRefOptions = { mask: m.data, maskShape: m.shape, headScale: [0.7, 1.3], scale: 0.8 };
      const loss = () => attentionRef(q, k, v, s, opts).out.reduce((acc, o, i) => acc + o * g[i], 0);
      const grads = attentionBackwardRef(q, k, v, g, s, opts);
      const h = 1e-6;
      for (const [name, x, an] of [['q', q, grads.dq], ['k', k, grads.dk], ['v', v, grads.dv]] as const) {
        const fd = new Float64Array(size);
        for (let i = 0; i < size; i++) {
          const x0 = x[i];
          x[i] = x0 + h;
          const lp = loss();
          x[i] = x0 - h;
          const lm = loss();
          x[i] = x0;
          fd[i] = (lp - lm) / (2 * h);
        }
        // float64 central differences, h = 1e-6: truncation ~h²·|f'''| ≈ 1e-12, rounding ~1e-16·|L|/h ≈ 1e-10.
        expectClose(an, fd, 1e-8, 1e-7, `attention fd d${name} mask=${kind}`);
      }
    }
  });

  it('rejects bad shapes, naming the op and the shapes', () => {
    const a = GpuArray.zeros([1, 2, 5, 4]);
    const b = GpuArray.zeros([1, 2, 6, 4]);
    const r3 = GpuArray.zeros([2, 5, 4]);
    const big = GpuArray.zeros([1, 1, 1, 300]);
    expect(() => attentionForward(a, b, a)).toThrow(/attentionForward: k \[1, 2, 6, 4\] does not match q \[1, 2, 5, 4\]/);
    expect(() => attentionForward(r3, r3, r3)).toThrow(/attentionForward: q must be \[B, H, N, D\], got q \[2, 5, 4\]/);
    expect(() => attentionForward(big, big, big)).toThrow(/attentionForward: head dimension D=300 of q \[1, 1, 1, 300\]/);
    const badMask = GpuArray.zeros([5, 6]);
    expect(() => attentionForward(a, a, a, { mask: badMask })).toThrow(/attentionForward: mask \[5, 6\] does not fit q \[1, 2, 5, 4\]/);
    const badHs = GpuArray.zeros([3]);
    expect(() => attentionForward(a, a, a, { headScale: badHs })).toThrow(/attentionForward: headScale \[3\] must be \[2\] for q \[1, 2, 5, 4\]/);
    expect(() => attentionForward(a, a, a, { variant: 'nope' })).toThrow(/attentionForward: unknown variant 'nope'/);
    if (subgroupSize()) {
      expect(() => attentionForward(a, a, a, { variant: 'subgroup@9x1' })).toThrow(/attentionForward: bad variant 'subgroup@9x1': expected subgroup@RQxTN/);
      expect(() => attentionForward(a, a, a, { variant: 'subgroup@1x2/1x2' })).toThrow(/bad variant 'subgroup@1x2\/1x2'/);
    } else {
      expect(() => attentionForward(a, a, a, { variant: 'subgroup' })).toThrow(/variant 'subgroup' needs the adapter's 'subgroups' feature/);
    }
    expect(() => attentionForward(a, a, a, { variant: 'flash@5x1' })).toThrow(/attentionForward: bad variant 'flash@5x1': expected flash@TRxTC or flash@TRxTC\/TRxTC\/TRxTC/);
    expect(() => attentionForward(a, a, a, { variant: 'flash@1x2/1x2' })).toThrow(/bad variant 'flash@1x2\/1x2'/);
    const wide = GpuArray.zeros([1, 1, 2, 256]);
    const limit = gpu().limits.maxComputeWorkgroupStorageSize;
    if (flashBytes('fwd', 256, 4, 4, false) > limit) {
      expect(() => attentionForward(wide, wide, wide, { variant: 'flash@4x4' })).toThrow(
        new RegExp(`variant 'flash' with 4x4 for the fwd pass needs ${flashBytes('fwd', 256, 4, 4, false)} bytes of workgroup memory at D=256; this device allows ${limit}`),
      );
    }
    if (flashBytes('dkv', 256, 1, 1) > limit) {
      expect(() => attentionForward(wide, wide, wide, { variant: 'flash@1x1/1x1/1x1' })).toThrow(/variant 'flash' with 1x1 for the (fwd|dq) pass needs \d+ bytes of workgroup memory at D=256/);
    }
    wide.dispose();
    const lse = GpuArray.zeros([1, 2, 4]);
    expect(() => attentionBackward(a, a, a, a, lse, a)).toThrow(/attentionBackward: lse \[1, 2, 4\] must be \[1, 2, 5\] for q \[1, 2, 5, 4\]/);
    expect(() => attentionBackward(a, a, a, a, GpuArray.zeros([1, 2, 5]), b)).toThrow(/attentionBackward: dout \[1, 2, 6, 4\] does not match q \[1, 2, 5, 4\]/);
    for (const x of [a, b, r3, big, badMask, badHs, lse]) x.dispose();
  });
});

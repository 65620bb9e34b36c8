import { describe, expect, it } from 'vitest';
import { GpuArray } from '../src/kernels/memory.js';
import { addToSlice, concat, pad, permute, slice, transpose } from '../src/kernels/layout.js';
import { addToSliceRef, concatRef, padRef, permuteRef, sliceRef } from '../src/kernels/ref/layout.js';
import { randomArray } from '../src/kernels/ref/math.js';
import { expectClose, useGpu } from './gpu.js';
import { setPassHook } from '../src/kernels/launch.js';

useGpu();

const size = (s: number[]) => s.reduce((n, d) => n * d, 1);
// Layout ops only move f32 values: results must be bit-identical (atol 1e-30 keeps 0/0 out of the ratio).
const EXACT: [number, number] = [1e-30, 0];

function upload(shape: number[], seed: number): { data: Float32Array; x: GpuArray } {
  const data = randomArray(size(shape), seed);
  return { data, x: GpuArray.fromData(data, shape) };
}

describe('permute and transpose', () => {
  const cases: [number[], number[]][] = [
    [[2, 197, 768], [0, 2, 1]],
    [[2, 197, 768], [1, 0, 2]],
    [[2, 197, 768], [2, 1, 0]],
    [[7], [0]],
    [[1, 13], [1, 0]],
    [[7, 13, 1, 5], [3, 1, 0, 2]],
    [[2, 3, 4, 5, 6, 7], [5, 3, 1, 0, 2, 4]],
    [[2, 3, 2, 3, 2, 3, 2], [6, 4, 2, 0, 5, 3, 1]], // 432 elements: the generic kernel (shape in uniforms)
    [[3, 5, 2, 7, 2, 3, 2, 5], [7, 5, 3, 1, 6, 4, 2, 0]], // 12 600, 8-D: the kernel specialised to its shape
    [[2, 197, 12, 64], [0, 2, 1, 3]], // attention heads split
    [[3, 5, 8], [1, 0, 2]], // rows of 8 contiguous on both sides: vec4 copies, generic index (30 vec4s)
    [[2, 6, 4, 12], [2, 0, 1, 3]], // vec4 copies, 4-D
    [[2, 6, 4, 14], [2, 0, 1, 3]], // rows of 14: not a multiple of 4, scalar copies
    [[0, 3, 5], [2, 0, 1]],
  ];
  for (const [shape, perm] of cases) {
    it(`permute ${JSON.stringify(shape)} by ${JSON.stringify(perm)}`, async () => {
      const { data, x } = upload(shape, shape.length);
      const y = permute(x, perm);
      const r = permuteRef(data, shape, perm);
      expect(y.shape).toEqual(r.shape);
      expectClose(await y.read(), r.data, ...EXACT, 'permute');
      x.dispose();
      y.dispose();
    });
  }

  it('transpose swaps two axes (default the last two)', async () => {
    const { data, x } = upload([7, 13, 100], 3);
    const t = transpose(x);
    expect(t.shape).toEqual([7, 100, 13]);
    expectClose(await t.read(), permuteRef(data, [7, 13, 100], [0, 2, 1]).data, ...EXACT, 'transpose');
    const t2 = transpose(x, 0, -1);
    expectClose(await t2.read(), permuteRef(data, [7, 13, 100], [2, 1, 0]).data, ...EXACT, 'transpose(0, -1)');
    for (const a of [x, t, t2]) a.dispose();
  });

  // The last two axes, both multiples of 4: the 4×4-block kernel (shaders/transpose4.wgsl); otherwise the strided copy.
  for (const [shape, kernel] of [
    [[4, 4], 'transpose'],
    [[8, 12], 'transpose'],
    [[3, 44, 36], 'transpose'],
    [[2, 2, 196, 64], 'transpose'],
    [[768, 3072], 'transpose'],
    [[5, 8], 'permute'],
    [[2, 12, 13], 'permute'],
    [[0, 8, 4], 'permute'],
  ] as [number[], string][]) {
    it(`transpose of the last two axes ${JSON.stringify(shape)}: ${kernel} kernel, bit-exact`, async () => {
      const { data, x } = upload(shape, 11);
      const seen: string[] = [];
      setPassHook((_d, label) => seen.push(label));
      let t: GpuArray;
      try {
        t = transpose(x);
      } finally {
        setPassHook(null);
      }
      const r = shape.length;
      const perm = shape.map((_, k) => (k === r - 2 ? r - 1 : k === r - 1 ? r - 2 : k));
      const ref = permuteRef(data, shape, perm);
      expect(t.shape).toEqual(ref.shape);
      expectClose(await t.read(), ref.data, ...EXACT, 'transpose');
      expect(seen).toEqual(size(shape) ? [kernel] : []);
      x.dispose();
      t.dispose();
    });
  }

  it('permute of a large array (> 65535 workgroups)', async () => {
    const shape = [4099, 4097];
    const { data, x } = upload(shape, 9);
    const y = permute(x, [1, 0]);
    const got = await y.read();
    let bad = -1;
    for (let i = 0; i < 4097 && bad < 0; i++) for (let j = 0; j < 4099; j++) if (got[i * 4099 + j] !== data[j * 4097 + i]) { bad = i * 4099 + j; break; }
    expect(bad).toBe(-1);
    x.dispose();
    y.dispose();
  });

  it('rejects a perm that is not a permutation, and bad axes', () => {
    const x = GpuArray.zeros([2, 3, 4]);
    expect(() => permute(x, [0, 0, 1])).toThrow(/^permute: \[0, 0, 1\] is not a permutation of the 3 axes of \[2, 3, 4\]$/);
    expect(() => permute(x, [0, 1])).toThrow(/^permute: \[0, 1\] is not a permutation/);
    expect(() => permute(x, [0, 1, 3])).toThrow(RangeError);
    expect(() => transpose(x, 0, 3)).toThrow(/^transpose: axis 3 is out of range for shape \[2, 3, 4\]$/);
    const v = GpuArray.zeros([5]);
    expect(() => transpose(v)).toThrow(/^transpose: shape \[5\] has fewer than 2 axes$/);
    x.dispose();
    v.dispose();
  });
});

describe('slice and pad', () => {
  const cases: [number[], number[], number[]][] = [
    [[7, 13], [1, -5], [-1, 13]],
    [[2, 197, 768], [0, 1, 0], [2, 197, 768]], // drop the class token
    [[2, 197, 768], [0, 0, 0], [2, 1, 768]], // keep the class token
    [[2, 197, 768], [1, 3, -100], [2, -3, -1]],
    [[100], [-7, ], [100]],
    [[1], [0], [1]],
    [[7, 13, 5], [3, 4, 2], [3, 4, 2]], // empty
    [[3, 4, 5, 6, 2, 3], [1, 0, 2, 1, 1, 0], [3, 4, 4, -1, 2, 2]],
  ];
  for (const [shape, starts, ends] of cases) {
    it(`slice ${JSON.stringify(shape)} [${starts}] to [${ends}], and pad back`, async () => {
      const { data, x } = upload(shape, shape.length + 1);
      const y = slice(x, starts, ends);
      const r = sliceRef(data, shape, starts, ends);
      expect(y.shape).toEqual(r.shape);
      expectClose(await y.read(), r.data, ...EXACT, 'slice');
      // pad is slice's adjoint: pad(slice(x)) restores x inside the window and value elsewhere.
      const before = r.shape.map((_, d) => (starts[d] < 0 ? starts[d] + shape[d] : starts[d]));
      const after = r.shape.map((n, d) => shape[d] - before[d] - n);
      const p = pad(y, before, after, -3.5);
      const pr = padRef(r.data, r.shape, before, after, -3.5);
      expect(p.shape).toEqual(shape);
      expectClose(await p.read(), pr.data, ...EXACT, 'pad');
      for (const a of [x, y, p]) a.dispose();
    });
  }

  it('pad defaults to zeros; the references satisfy <slice(x), y> = <x, pad(y)>', async () => {
    const { data, x } = upload([7, 1, 13], 4);
    const p = pad(x, [1, 2, 0], [0, 1, 3]);
    const r = padRef(data, [7, 1, 13], [1, 2, 0], [0, 1, 3]);
    expect(p.shape).toEqual([8, 4, 16]);
    expectClose(await p.read(), r.data, ...EXACT, 'pad zeros');
    const big = randomArray(8 * 4 * 16, 5);
    const ys = randomArray(7 * 13, 6);
    const s = sliceRef(big, [8, 4, 16], [1, 2, 0], [8, 3, 13]).data;
    const q = padRef(ys, [7, 1, 13], [1, 2, 0], [0, 1, 3]).data;
    const lhs = s.reduce((acc, v, i) => acc + v * ys[i], 0);
    const rhs = q.reduce((acc, v, i) => acc + v * big[i], 0);
    expect(Math.abs(lhs - rhs)).toBeLessThan(1e-12);
    x.dispose();
    p.dispose();
  });

  it('rejects out-of-range slices and bad pads, naming op and shape', () => {
    const x = GpuArray.zeros([7, 13]);
    expect(() => slice(x, [0, 0], [8, 13])).toThrow(/^slice: \[0, 8\) is out of range for axis 0 of \[7, 13\]$/);
    expect(() => slice(x, [0, -14], [7, 13])).toThrow(/^slice: \[-14, 13\) is out of range for axis 1 of \[7, 13\]$/);
    expect(() => slice(x, [5, 0], [3, 13])).toThrow(/^slice: \[5, 3\) is out of range for axis 0/);
    expect(() => slice(x, [0], [7])).toThrow(/^slice: starts \[0\] and ends \[7\] need one entry per axis of \[7, 13\]$/);
    expect(() => pad(x, [1, -1], [0, 0])).toThrow(/^pad: before \[1, -1\] and after \[0, 0\] need one integer >= 0 per axis of \[7, 13\]$/);
    x.dispose();
  });
});

describe('concat', () => {
  it('joins 3 arrays on a middle axis', async () => {
    const shapes = [[2, 1, 768], [2, 196, 768], [2, 5, 768]];
    const ins = shapes.map((s, k) => upload(s, 20 + k));
    const y = concat(ins.map((i) => i.x), 1);
    const r = concatRef(ins.map((i) => i.data), shapes, 1);
    expect(y.shape).toEqual([2, 202, 768]);
    expectClose(await y.read(), r.data, ...EXACT, 'concat axis 1');
    y.dispose();
    for (const i of ins) i.x.dispose();
  });

  it('joins on the first, last and a negative axis, with empty parts', async () => {
    const cases: [number[][], number][] = [
      [[[7, 13], [1, 13], [100, 13]], 0],
      [[[7, 13], [7, 1], [7, 0], [7, 5]], -1],
      [[[3, 4, 5, 6], [3, 4, 2, 6], [3, 4, 1, 6]], -2],
      [[[1]], 0],
    ];
    for (const [shapes, axis] of cases) {
      const ins = shapes.map((s, k) => upload(s, 30 + k));
      const y = concat(ins.map((i) => i.x), axis);
      const r = concatRef(ins.map((i) => i.data), shapes, axis);
      expect(y.shape).toEqual(r.shape);
      expectClose(await y.read(), r.data, ...EXACT, `concat ${JSON.stringify(shapes)} axis ${axis}`);
      y.dispose();
      for (const i of ins) i.x.dispose();
    }
  });

  it('rejects mismatched shapes and bad axes', () => {
    const a = GpuArray.zeros([2, 3]);
    const b = GpuArray.zeros([2, 4, 1]);
    const c = GpuArray.zeros([3, 4]);
    expect(() => concat([a, b], 1)).toThrow(/^concat: shapes \[2, 3\] and \[2, 4, 1\] differ outside axis 1$/);
    expect(() => concat([a, c], 1)).toThrow(/^concat: shapes \[2, 3\] and \[3, 4\] differ outside axis 1$/);
    expect(() => concat([a, c], 2)).toThrow(/^concat: axis 2 is out of range for shape \[2, 3\]$/);
    expect(() => concat([], 0)).toThrow(/^concat: no arrays to join$/);
    for (const x of [a, b, c]) x.dispose();
  });
});

describe('addToSlice (slice backward into an existing gradient)', () => {
  // dst += src over a region: one f32 addition per element, the same rounding as the float64 reference's rounded to
  // f32, so the comparison is exact up to that single rounding (rtol 6e-8, one ulp).
  const cases: [number[], number[], number[]][] = [
    [[7], [3], [4]],
    [[3, 197, 64], [1, 197, 64], [2, 0, 0]], // one of q/k/v: a contiguous run (still a kernel, not a copy)
    [[7, 13, 5], [7, 1, 5], [0, 12, 0]],
    [[13, 100], [5, 7], [8, 93]],
    [[1, 13, 1], [1, 13, 1], [0, 0, 0]],
    [[2, 50, 3, 4, 16], [2, 50, 1, 4, 16], [0, 0, 1, 0, 0]], // 6400 elements: the specialised kernel
  ];
  for (const [dshape, sshape, starts] of cases) {
    it(`${JSON.stringify(sshape)} into ${JSON.stringify(dshape)} at ${JSON.stringify(starts)}`, async () => {
      const d = upload(dshape, 1);
      const s = upload(sshape, 2);
      addToSlice(d.x, s.x, starts);
      expectClose(await d.x.read(), addToSliceRef(d.data, dshape, s.data, sshape, starts).data, 1e-30, 6e-8, 'addToSlice');
      expectClose(await s.x.read(), s.data, ...EXACT, 'src unchanged');
      d.x.dispose();
      s.x.dispose();
    });
  }

  it('names the problem when the region does not fit', () => {
    const d = GpuArray.zeros([4, 5]);
    const s = GpuArray.zeros([2, 3]);
    expect(() => addToSlice(d, s, [3, 0])).toThrow(/does not fit in dst \[4, 5\] \(axis 0\)/);
    expect(() => addToSlice(d, s, [0])).toThrow(/one axis per axis/);
    expect(() => addToSlice(d, d, [0, 0])).toThrow(/share a buffer/);
    d.dispose();
    s.dispose();
  });
});

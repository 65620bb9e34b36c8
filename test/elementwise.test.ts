import { describe, expect, it } from 'vitest';
import { GpuArray } from '../src/kernels/memory.js';
import { addInPlace, affine, binary, broadcastShapes, fill, mergeDims, unary, type BinaryOp, type UnaryOp } from '../src/kernels/elementwise.js';
import { affineRef, binaryRef, unaryRef } from '../src/kernels/ref/elementwise.js';
import { randomArray } from '../src/kernels/ref/math.js';
import { expectClose, useGpu } from './gpu.js';

useGpu();

const size = (s: number[]) => s.reduce((n, d) => n * d, 1);

// add/sub/mul/div/max/min are single correctly rounded f32 operations on f32 inputs, so the GPU result
// is the float64 result rounded to f32: |err| <= 2^-24·|ref| (6e-8). We allow 2e-7 relative + 1e-30.
// pow uses exp2(y·log2|x|), whose error grows with |y·log2|x|| (<= ~10 here): WGSL allows ~3 ulp for
// exp2/log2, amplified by that product -> 3e-6 relative.
const TOL: Record<BinaryOp, [number, number]> = {
  add: [1e-30, 2e-7], sub: [1e-30, 2e-7], mul: [1e-30, 2e-7], div: [1e-30, 2e-7], max: [1e-30, 0], min: [1e-30, 0], pow: [1e-30, 3e-6],
};

// Unary: exp/log/tanh/sigmoid are WGSL builtins with a few-ulp (exp: 3 + 2|x| ulp) error allowance;
// inverseSqrt 2 ulp. 2e-6 relative + 1e-7 absolute (for tanh/log near their zeros) covers them;
// the exact ops (neg, abs, relu, square, sign, step, sqrt, reciprocal) are within 1 ulp.
const UNARY_TOL: [number, number] = [1e-7, 2e-6];

function inputsFor(op: BinaryOp, n: number, seed: number, aligned: boolean): [Float32Array, Float32Array] {
  if (op === 'pow') {
    // Positive bases with real exponents, plus (where a and b are aligned) negative bases with small
    // integer exponents, whose sign follows the exponent's parity.
    const a = randomArray(n, seed, 0.05, 3);
    const b = randomArray(n, seed + 1, -3, 3);
    for (let i = 0; aligned && i < n; i += 3) {
      a[i] = -a[i];
      b[i] = Math.round(b[i]);
    }
    return [a, b];
  }
  const a = randomArray(n, seed, -2, 2);
  const b = randomArray(n, seed + 1, -2, 2);
  if (op === 'div') for (let i = 0; i < n; i++) if (Math.abs(b[i]) < 0.1) b[i] = 0.5;
  return [a, b];
}

async function checkBinary(op: BinaryOp, as: number[], bs: number[], seed = 1): Promise<void> {
  const [ad, bd0] = inputsFor(op, Math.max(size(as), size(bs)), seed, JSON.stringify(as) === JSON.stringify(bs));
  const aData = ad.subarray(0, size(as));
  const bData = bd0.subarray(0, size(bs));
  const a = GpuArray.fromData(aData, as);
  const b = GpuArray.fromData(bData, bs);
  const y = binary(op, a, b);
  const ref = binaryRef(op, aData, as, bData, bs);
  expect(y.shape).toEqual(ref.shape);
  const [atol, rtol] = TOL[op];
  expectClose(await y.read(), ref.data, atol, rtol, `${op} ${JSON.stringify(as)} ${JSON.stringify(bs)}`);
  for (const t of [a, b, y]) t.dispose();
}

describe('broadcastShapes', () => {
  it('follows NumPy', () => {
    expect(broadcastShapes([7, 1, 13], [5, 1])).toEqual([7, 5, 13]);
    expect(broadcastShapes([], [3])).toEqual([3]);
    expect(broadcastShapes([2, 0, 3], [1, 3])).toEqual([2, 0, 3]);
    expect(broadcastShapes([1], [0])).toEqual([0]);
  });
  it('throws naming the op and the shapes', () => {
    expect(() => broadcastShapes([7, 2], [5], 'add')).toThrow(RangeError);
    expect(() => broadcastShapes([7, 2], [5], 'add')).toThrow(/^add: shapes \[7, 2\] and \[5\] do not broadcast$/);
  });
  it('mergeDims drops size-1 dims and merges contiguous runs', () => {
    expect(mergeDims([2, 3, 4], [[12, 4, 1], [0, 0, 0]])).toEqual({ shape: [24], strides: [[1], [0]] });
    expect(mergeDims([7, 5, 13], [[13, 0, 1], [0, 1, 0]]).shape).toEqual([7, 5, 13]);
    expect(mergeDims([1, 1], [[1, 1]])).toEqual({ shape: [1], strides: [[0]] });
  });
});

describe('binary', () => {
  const cases: [number[], number[]][] = [
    [[1], [1]],
    [[7], [7]],
    [[197, 13], [197, 13]],
    [[2, 197, 64], [2, 197, 64]], // same shape, size a multiple of 4: the vec4 kernel (pow stays scalar)
    [[4], [4]],
    [[7, 1, 13], [5, 1]],
    [[100], [1]],
    [[1], [13]],
    [[2, 197, 768], [768]],
    [[13, 1, 7, 1], [1, 5, 1, 3]],
    [[2, 3, 1, 5, 1, 7], [3, 4, 1, 6, 1]],
    [[3, 1, 2, 1, 2, 1, 2, 1], [1, 2, 1, 2, 1, 2, 1, 2]], // 8-D that cannot merge: the kernel's maximum
    [[3, 2, 2, 1, 2, 1, 2, 1, 2], [1, 1, 1, 2, 1, 2, 1, 2, 1]], // 9-D, merges to 8 dims
  ];
  for (const op of ['add', 'sub', 'mul', 'div', 'max', 'min', 'pow'] as BinaryOp[]) {
    it(`${op} matches the float64 reference on awkward and broadcast shapes`, async () => {
      for (const [as, bs] of cases) await checkBinary(op, as, bs);
    });
  }

  it('add on a large array (> 65535 workgroups of 256: grid2d) and a large broadcast', async () => {
    const [rows, cols] = [4096, 4097]; // 16.78M elements = 65552 workgroups of 256
    const n = rows * cols;
    const ad = randomArray(n, 5);
    const bd = randomArray(cols, 6);
    const a = GpuArray.fromData(ad, [rows, cols]);
    const b = GpuArray.fromData(bd, [1, cols]);
    const y = binary('add', a, a); // same-shape path: 2a is exact in f32
    const yv = await y.read();
    let bad = -1;
    for (let i = 0; i < n && bad < 0; i++) if (yv[i] !== 2 * ad[i]) bad = i;
    expect(bad).toBe(-1);
    y.dispose();
    const z = binary('mul', a, b); // broadcast path, rank 2 after merging
    const zv = await z.read();
    for (let i = 0; i < n && bad < 0; i++) if (zv[i] !== Math.fround(ad[i] * bd[i % cols])) bad = i;
    expect(bad).toBe(-1); // one correctly rounded f32 product: bit-exact
    for (const t of [a, b, z]) t.dispose();
  });

  it('rejects views that need more than 8 dims after merging', () => {
    const a = GpuArray.zeros([2, 1, 2, 1, 2, 1, 2, 1, 2]);
    const b = GpuArray.zeros([1, 2, 1, 2, 1, 2, 1, 2, 1]);
    expect(() => binary('add', a, b)).toThrow(/^add: shapes \[2, 1, 2, 1, 2, 1, 2, 1, 2\] and \[1, 2, 1, 2, 1, 2, 1, 2, 1\] need 9 dims after merging/);
    a.dispose();
    b.dispose();
  });

  it('zero-size arrays do not crash', async () => {
    const a = GpuArray.fromData([], [0, 3]);
    const b = GpuArray.fromData([1, 2, 3], [3]);
    const y = binary('add', a, b);
    expect(y.shape).toEqual([0, 3]);
    expect((await y.read()).length).toBe(0);
    const z = unary('exp', a);
    expect(z.shape).toEqual([0, 3]);
    addInPlace(a, y);
    const f = fill([2, 0], 1);
    expect((await f.read()).length).toBe(0);
    for (const t of [a, b, y, z, f]) t.dispose();
  });

  it('rejects non-broadcastable shapes and unknown ops, naming op and shapes', () => {
    const a = GpuArray.fromData(new Float32Array(14), [7, 2]);
    const b = GpuArray.fromData(new Float32Array(5), [5]);
    expect(() => binary('mul', a, b)).toThrow(/^mul: shapes \[7, 2\] and \[5\] do not broadcast$/);
    expect(() => binary('foo' as BinaryOp, a, b)).toThrow(RangeError);
    expect(() => unary('foo' as UnaryOp, a)).toThrow(RangeError);
    expect(() => addInPlace(a, b)).toThrow(/^addInPlace: x \[5\] does not match target \[7, 2\]$/);
    a.dispose();
    b.dispose();
  });
});

describe('unary', () => {
  const ops: UnaryOp[] = ['neg', 'exp', 'log', 'sqrt', 'rsqrt', 'abs', 'relu', 'tanh', 'sigmoid', 'square', 'reciprocal', 'sign', 'step'];
  for (const n of [1, 7, 13, 197, 100, 100_003]) {
    it(`all ops match the float64 reference, n=${n}`, async () => {
      const signed = randomArray(n, n, -6, 6);
      signed[0] = 0; // sign(0) = 0, step(0) = 0, relu(0) = 0
      const positive = randomArray(n, n + 7, 0.01, 50);
      const xs = GpuArray.fromData(signed, [n]);
      const xp = GpuArray.fromData(positive, [n]);
      for (const op of ops) {
        const usePositive = op === 'log' || op === 'sqrt' || op === 'rsqrt';
        let data = usePositive ? positive : signed;
        if (op === 'reciprocal') (data = signed.slice())[0] = 0.5; // keep 1/0 out of the comparison
        const x = usePositive ? xp : op === 'reciprocal' ? GpuArray.fromData(data, [n]) : xs;
        const y = unary(op, x);
        expectClose(await y.read(), unaryRef(op, data), UNARY_TOL[0], UNARY_TOL[1], `${op} n=${n}`);
        y.dispose();
        if (op === 'reciprocal') x.dispose();
      }
      xs.dispose();
      xp.dispose();
    });
  }

  it('tanh and sigmoid saturate without NaN for large |x|', async () => {
    const data = [-1e30, -200, -90, -20, 20, 90, 200, 1e30];
    const x = GpuArray.fromData(data, [8]);
    for (const op of ['tanh', 'sigmoid'] as UnaryOp[]) {
      const y = unary(op, x);
      expectClose(await y.read(), unaryRef(op, data), 1e-7, 2e-6, op);
      y.dispose();
    }
    const e = unary('exp', x);
    const ev = await e.read();
    expect([...ev.subarray(5)]).toEqual([Infinity, Infinity, Infinity]);
    // exp's WGSL allowance is 3 + 2|x| ulp: 43 ulp (2.6e-6 relative) at x = 20.
    expectClose(ev.subarray(0, 5), unaryRef('exp', data.slice(0, 5)), 1e-30, 4e-6, 'exp');
    e.dispose();
    x.dispose();
  });

  // 1003 elements: scalar kernels; 1004: the vec4 kernels (size a multiple of 4).
  for (const [r, c] of [[17, 59], [4, 251]]) it(`affine, fill and addInPlace, [${r}, ${c}]`, async () => {
    const n = r * c;
    const xs = randomArray(n, 3, -4, 4);
    const ts = randomArray(n, 4, -4, 4);
    const x = GpuArray.fromData(xs, [r, c]);
    const y = affine(x, 0.37, -1.5);
    // Two f32 roundings (product, sum): 2 ulp of the larger term, ~2.4e-7 · 3 -> 1e-6 absolute.
    expectClose(await y.read(), affineRef(xs, Math.fround(0.37), Math.fround(-1.5)), 1e-6, 2e-7, 'affine');
    const y2 = affine(x, 2);
    expectClose(await y2.read(), affineRef(xs, 2), 1e-30, 0, 'affine without shift');
    const f = fill([r, c], -2.5);
    expectClose(await f.read(), new Float64Array(n).fill(-2.5), 1e-30, 0, 'fill');
    const t = GpuArray.fromData(ts, [r, c]);
    addInPlace(t, x, -0.5);
    addInPlace(t, x);
    expectClose(await t.read(), Float64Array.from(ts, (v, i) => v - 0.5 * xs[i] + xs[i]), 1e-6, 2e-7, 'addInPlace');
    addInPlace(t, t, 1); // the same array: t = 2t
    expectClose(await t.read(), Float64Array.from(ts, (v, i) => 2 * (v - 0.5 * xs[i] + xs[i])), 2e-6, 4e-7, 'addInPlace(t, t)');
    for (const a of [x, y, y2, f, t]) a.dispose();
  });
});

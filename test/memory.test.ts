import { describe, expect, it } from 'vitest';
import { GpuArray, bucketBytes, keep, memoryStats, peakBytesOf, pool, resetPeakMemory, scope } from '../src/kernels/memory.js';
import { affine } from '../src/kernels/elementwise.js';
import { geluForward } from '../src/kernels/gelu.js';
import { dispatch, packUniforms, pipeline, shaderSource } from '../src/kernels/launch.js';
import { destroyGpu, gpu, initGpu } from '../src/kernels/device.js';
import { geluForwardRef } from '../src/kernels/ref/gelu.js';
import { expectClose, useGpu } from './gpu.js';

useGpu();

describe('buffer pool and scopes', () => {
  it('buckets sizes so reuse wastes at most a quarter', () => {
    expect(bucketBytes(1)).toBe(256);
    expect(bucketBytes(4096)).toBe(4096);
    for (const b of [4097, 5000, 100_000, 1_234_567, 3 * 2 ** 20 + 1]) {
      const s = bucketBytes(b);
      expect(s).toBeGreaterThanOrEqual(b);
      expect(s).toBeLessThanOrEqual(b * 1.25 + 4);
    }
  });

  it('scope() frees what a block made except what it returns; keep() lets arrays escape', () => {
    const before = memoryStats().liveArrays;
    let kept!: GpuArray;
    const out = scope(() => {
      const a = GpuArray.fromData([1, 2, 3], [3]);
      GpuArray.zeros([5]);
      kept = keep(GpuArray.zeros([2]));
      return { y: geluForward(a) };
    });
    expect(memoryStats().liveArrays).toBe(before + 2);
    out.y.dispose();
    kept.dispose();
    expect(memoryStats().liveArrays).toBe(before);
  });

  it('async scopes dispose when the promise settles, also on error', async () => {
    const before = memoryStats().liveArrays;
    await expect(
      scope(async () => {
        GpuArray.zeros([4]);
        await Promise.resolve();
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    expect(memoryStats().liveArrays).toBe(before);
  });

  it('a reused buffer is never read stale: data written after a pending kernel read stays correct', async () => {
    const results = await scope(async () => {
      const outs: GpuArray[] = [];
      for (let i = 0; i < 20; i++) {
        const x = GpuArray.fromData([i, i + 1], [2]);
        outs.push(geluForward(x));
        x.dispose(); // its buffer goes back to the pool while the kernel is still only recorded
      }
      return Promise.all(outs.map((o) => o.read()));
    });
    // Same tolerance as test/gelu.test.ts.
    results.forEach((r, i) => expectClose(r, geluForwardRef([i, i + 1]), 1e-6, 2e-6, `output ${i}`));
  });

  it('views share data without a copy and free the buffer with the last reference', async () => {
    const before = memoryStats();
    const a = GpuArray.fromData([1, 2, 3, 4, 5, 6], [2, 3]);
    const v = a.view([3, 2]);
    a.dispose();
    expect(Array.from(await v.read())).toEqual([1, 2, 3, 4, 5, 6]);
    expect(memoryStats().liveBytes).toBe(before.liveBytes + 24);
    v.dispose();
    expect(memoryStats().liveBytes).toBe(before.liveBytes);
    await expect(v.read()).rejects.toThrow(/used after dispose/);
  });
});

describe('peak memory (the bench rows on attention memory use it)', () => {
  it('peakBytesOf counts the most bytes alive at once above what was live before, views once, the result included', async () => {
    const input = GpuArray.zeros([1000]); // live before: not counted
    const { result, peakBytes } = await peakBytesOf(() =>
      scope(() => {
        const a = GpuArray.zeros([100]); // 400 B
        const v = a.view([10, 10]); // the same buffer: no more bytes
        const b = GpuArray.zeros([50]); // 200 B: 600 at once
        a.dispose();
        v.dispose(); // a's buffer goes with its last view: 200 live
        const c = GpuArray.zeros([75]); // 300 B: 500 at once, below the peak
        b.dispose();
        return keep(c);
      }),
    );
    expect(peakBytes).toBe(600);
    expect(result.size).toBe(75);
    result.dispose();
    input.dispose();
  });

  it('a peak measured inside another is also the outer one’s; resetPeakMemory starts from what is live', async () => {
    const outer = await peakBytesOf(async () => {
      const inner = await peakBytesOf(async () => {
        const a = GpuArray.zeros([256]); // 1 KiB
        await Promise.resolve();
        a.dispose();
      });
      expect(inner.peakBytes).toBe(1024);
      const b = GpuArray.zeros([16]); // 64 B, below the inner peak
      b.dispose();
    });
    expect(outer.peakBytes).toBe(1024);
    const x = GpuArray.zeros([8]);
    resetPeakMemory();
    expect(memoryStats().peakLiveBytes).toBe(memoryStats().liveBytes);
    x.dispose();
  });

  it('allocatedBytes counts the pool’s buffers (bucket sizes, free ones included) until trim() destroys the free ones', () => {
    pool.trim();
    const before = memoryStats().allocatedBytes;
    const a = GpuArray.zeros([1500]); // 6000 B → a 6144-byte bucket
    expect(memoryStats().allocatedBytes).toBe(before + bucketBytes(6000));
    a.dispose();
    expect(memoryStats().allocatedBytes).toBe(before + bucketBytes(6000)); // pooled, not destroyed
    pool.trim();
    expect(memoryStats().allocatedBytes).toBe(before);
  });
});

describe('dispatch caches (uniform blocks by content, bind groups by buffers, one shared compute pass)', () => {
  it('a volatile uniform block rewritten call after call gives each call its own value', async () => {
    const x = GpuArray.fromData([1, 2, 3, 4, 5], [5]);
    // Recorded back to back (one submit), so recycled uniform buffers and cached bind groups are reused in between.
    const outs = [0.5, 2, -3, 7, 0.25, 11].flatMap((s) => [affine(x, s, 0, true), affine(x, s, 1)]);
    const got = await Promise.all(outs.map((o) => o.read()));
    [0.5, 2, -3, 7, 0.25, 11].forEach((s, i) => {
      expect(Array.from(got[2 * i])).toEqual([1, 2, 3, 4, 5].map((v) => Math.fround(v * s)));
      expect(Array.from(got[2 * i + 1])).toEqual([1, 2, 3, 4, 5].map((v) => Math.fround(Math.fround(v * s) + 1)));
    });
    for (const a of [x, ...outs]) a.dispose();
  });

  it('pool.trim() with work still recorded: the buffers it destroys are not lost to that work', async () => {
    const errors: string[] = [];
    const old = console.error;
    console.error = (...a: unknown[]) => void errors.push(a.join(' '));
    try {
      const a = GpuArray.fromData([1, 2, 3], [3]);
      const b = affine(a, 2, 0);
      a.dispose(); // a's buffer is free in the pool while the affine that reads it is only recorded
      pool.trim();
      expect(Array.from(await b.read())).toEqual([2, 4, 6]);
      b.dispose();
    } finally {
      console.error = old;
    }
    expect(errors.filter((e) => e.includes('WebGPU error'))).toEqual([]);
  });

  it('a bad workgroup count is refused before any pass is begun, and later work still runs', async () => {
    const p = pipeline('gelu', { T: 'f32' });
    const a = GpuArray.fromData([0, 1], [2]);
    const u = packUniforms([['u32', 2], ['u32', 0]]);
    expect(() => dispatch('myKernel', p, [a.buffer, a.buffer, a.buffer], u, [1.5])).toThrow(/myKernel: workgroup counts must be integers >= 0, got 1.5×1×1/);
    expectClose(await geluForward(a).read(), geluForwardRef([0, 1]), 1e-6, 1e-5, 'gelu after the refusal');
    a.dispose();
  });
});

describe('bad input', () => {
  it('names the op and shape for an array used after dispose', () => {
    const a = GpuArray.fromData([1, 2], [2]);
    a.dispose();
    expect(() => geluForward(a)).toThrow(/shape \[2\] was used after dispose/);
  });

  it('refuses a buffer above the device limit with the op and shape', () => {
    const max = gpu().limits.maxStorageBufferBindingSize;
    const n = Math.floor(max / 4) + 1024;
    expect(() => GpuArray.empty([n], 'bigOp')).toThrow(new RegExp(`bigOp \\[${n}\\]: a buffer of ${n * 4} bytes is above this device's limit`));
  });

  it('refuses data that does not fill the shape, and invalid shapes', () => {
    expect(() => GpuArray.fromData([1, 2, 3], [2, 2])).toThrow(/3 values do not fill shape \[2, 2\]/);
    expect(() => GpuArray.empty([2, -1])).toThrow(/invalid shape \[2, -1\]/);
    expect(() => GpuArray.empty([1.5])).toThrow(/invalid shape/);
  });

  it('refuses too many workgroups rather than losing the device', () => {
    const p = pipeline('gelu', { T: 'f32' });
    const a = GpuArray.zeros([4]);
    expect(() => dispatch('myKernel', p, [a.buffer, a.buffer, a.buffer], packUniforms([['u32', 4], ['u32', 0]]), [70000])).toThrow(/myKernel: 70000×1×1 workgroups is above/);
    a.dispose();
  });

  it('a new device (after destroyGpu) starts a new buffer pool: nothing of the old device is bound, results stay right', async () => {
    const data = Float32Array.from({ length: 1000 }, (_, i) => Math.sin(i) * 3);
    const first = geluForward(GpuArray.fromData(data, [1000]));
    expectClose(await first.read(), geluForwardRef(data), 1e-6, 1e-5, 'gelu on the first device');
    first.dispose(); // its buffer goes to the pool of the first device
    expect(memoryStats().pooledBytes).toBeGreaterThan(0);
    const errors: string[] = [];
    const old = console.error;
    console.error = (...a: unknown[]) => void errors.push(a.join(' '));
    try {
      destroyGpu();
      await initGpu();
      const x = GpuArray.fromData(data, [1000]); // same size bucket: must not come from the old pool
      const y = geluForward(x);
      expectClose(await y.read(), geluForwardRef(data), 1e-6, 1e-5, 'gelu on the second device');
      x.dispose();
      y.dispose();
    } finally {
      console.error = old;
    }
    // A buffer of the old device bound on the new one is a WebGPU validation error (logged by device.ts).
    expect(errors.filter((e) => e.includes('WebGPU error'))).toEqual([]);
  });

  it('a shader template without a value, or with an unused value, is an error', () => {
    expect(() => shaderSource('peak_flops', {})).toThrow(/no value for the placeholder \{\{WG\}\}/);
    expect(() => shaderSource('gelu', { T: 'f32', X: 1 })).toThrow(/has no placeholder \{\{X\}\}/);
    expect(() => shaderSource('nope')).toThrow(/no shader named 'nope'/);
  });
});

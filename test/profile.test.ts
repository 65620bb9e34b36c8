// `celluscan bench profile`: per-kernel GPU time of a training step, grouped by pass label.
import { describe, expect, it } from 'vitest';
import { matmulRate, profileStep, formatProfile } from '../bench/profile.js';
import { useGpu } from './gpu.js';

describe('bench profile', () => {
  const g = useGpu();

  it('times every pass of a small training step and groups them by label', async () => {
    if (!g.current!.features.has('timestamp-query')) {
      await expect(profileStep({ batch: 4 })).rejects.toThrow(/no 'timestamp-query' feature/);
      return;
    }
    const r = await profileStep({ batch: 4 });
    expect(r.what).toBe('train');
    expect(r.passes).toBeGreaterThan(50); // 4 layers forward + backward + AdamW
    expect(r.rows.reduce((n, x) => n + x.calls, 0)).toBe(r.passes);
    const sum = r.rows.reduce((n, x) => n + x.ms, 0);
    expect(Math.abs(sum - r.gpu_ms)).toBeLessThanOrEqual(1e-9 * Math.max(1, r.gpu_ms));
    expect(r.gpu_ms).toBeGreaterThan(0);
    // sorted by time; matmul passes name their kernel family and shape (4·17 = 68 rows of tokens fold into one product)
    for (let i = 1; i < r.rows.length; i++) expect(r.rows[i - 1].ms).toBeGreaterThanOrEqual(r.rows[i].ms);
    expect(r.rows.map((x) => x.label)).toContain('adamwUpdate');
    expect(r.rows.some((x) => /^matmul \S+ 68×192×64 tB$/.test(x.label))).toBe(true);
    // matmul rows with GPU time carry their rate, 2·[batch·]M·N·K flops per call (worked out here from the label);
    // other rows carry none
    let rated = 0;
    for (const x of r.rows) {
      const m = /^matmul \S+ (?:(\d+)×)?(\d+)×(\d+)×(\d+)/.exec(x.label);
      if (m && x.ms > 0) {
        const flops = 2 * Number(m[1] ?? 1) * Number(m[2]) * Number(m[3]) * Number(m[4]) * x.calls;
        expect(x.gflops).toBeCloseTo(flops / (x.ms * 1e6), 6);
        rated++;
      } else expect(x.gflops).toBeUndefined();
    }
    expect(rated).toBeGreaterThan(5);
    expect(formatProfile(r, 3).split('\n').length).toBe(3 + 3 + 1);
    // memory: the fmnist model's parameters and AdamW's two moments are resident (at least: other tests' arrays may be
    // alive too); the step's peak holds at least the gradients (one per parameter) above them
    const { VisionTransformer } = await import('../src/vit/model.js');
    const { benchModel } = await import('../bench/train.js');
    const m = new VisionTransformer(benchModel('fmnist', 'test').config);
    const paramBytes = 4 * m.numParameters();
    m.dispose();
    expect(r.resident_bytes).toBeGreaterThanOrEqual(3 * paramBytes);
    expect(r.step_peak_bytes).toBeGreaterThanOrEqual(paramBytes);
    expect(formatProfile(r, 3)).toMatch(/GPU memory: [\d.]+ MiB resident \(parameters and AdamW state\), [\d.]+ MiB more at the step's peak/);
  });

  it('matmulRate reads batch and sizes from a matmul pass label', () => {
    expect(matmulRate('matmul subgroup 384×197×197×64 tB', 2, 1)).toBeCloseTo((2 * 2 * 384 * 197 * 197 * 64) / 1e6, 6);
    expect(matmulRate('matmul blocked-vec4 6304×3072×768 tB', 1, 2)).toBeCloseTo((2 * 6304 * 3072 * 768) / 2e6, 6);
    expect(matmulRate('softmax', 1, 1)).toBeUndefined();
    expect(matmulRate('matmul tiled 8×8×8', 1, 0)).toBeUndefined();
  });

  it('names a bad model or batch', async () => {
    await expect(profileStep({ model: 'vit_z' })).rejects.toThrow(/^profile: unknown model 'vit_z' \(known: fmnist, vit_ti_16/);
    await expect(profileStep({ batch: 0 })).rejects.toThrow(/^profile: batch must be a positive integer, got 0/);
  });
});

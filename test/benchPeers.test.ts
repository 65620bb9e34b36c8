// Peers in the benchmark suite: tfjs-backend-webgpu on the same adapter, checked against our float64 reference before
// it is timed, and timed the way our side is for the ratio (wall clock with read-back on both sides).
import { describe, expect, it } from 'vitest';
import { benchSoftmax } from '../bench/softmax.js';
import { useGpu } from './gpu.js';

useGpu();

describe('bench peers', () => {
  it('softmax: tfjs-backend-webgpu runs on the same adapter, matches the reference, and gets a wall-clock ratio', async () => {
    const r = (await benchSoftmax({ rows: 13, cols: 197, runs: 2, peers: true })) as Record<string, any>;
    expect(r.tfjs.error).toBeUndefined();
    expect(r.tfjs.peer).toBe('tfjs-backend-webgpu');
    expect(r.tfjs.gbps).toBeGreaterThan(0);
    expect(r.forward_wall.gbps).toBeGreaterThan(0);
    // ratio = peer ms / our ms, both best-of-runs wall clock incl. read-back
    expect(r.ratio_vs_tfjs).toBeCloseTo(r.tfjs.ms / r.forward_wall.ms, 10);
  }, 120_000);

  it('softmax without peers records no peer numbers', async () => {
    const r = (await benchSoftmax({ rows: 7, cols: 13, runs: 1 })) as Record<string, unknown>;
    expect(r.tfjs).toBeUndefined();
    expect(r.ratio_vs_tfjs).toBeUndefined();
  }, 120_000);
});

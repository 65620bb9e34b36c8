// `celluscan selfcheck`: every kernel against its float64 reference on the adapter at hand (the check a user runs
// first on a new machine, and the first thing scripts/device-bench.sh runs on a borrowed GPU).
import { describe, expect, it } from 'vitest';
import { selfCheck } from '../src/kernels/selfcheck.js';
import { useGpu } from './gpu.js';

useGpu();

describe('selfcheck', () => {
  it('runs every kernel check, each within its stated tolerance, attention forward and backward included', async () => {
    const seen: string[] = [];
    const results = await selfCheck((r) => seen.push(`${r.kernel} ${r.shape}`));
    expect(seen).toEqual(results.map((r) => `${r.kernel} ${r.shape}`));
    const kernels = new Set(results.map((r) => r.kernel));
    for (const k of ['matmul', 'softmax', 'layernorm', 'gelu', 'gelu backward', 'attention', 'attention backward', 'cross-entropy']) expect(kernels).toContain(k);
    const failed = results.filter((r) => !r.ok || !(r.worstRatio <= 1)).map((r) => `${r.kernel} ${r.shape}: error/tolerance ${r.worstRatio}`);
    expect(failed).toEqual([]);
  }, 240_000);
});

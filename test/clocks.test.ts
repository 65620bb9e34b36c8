// The GPU-clock warm-up before timed runs (src/kernels/clocks.ts): a hardware GPU that sat idle runs the timed work
// untimed first; back-to-back timing skips it; a CPU adapter (the default here, lavapipe) has none unless asked for.
import { afterEach, describe, expect, it } from 'vitest';
import { clockWarmupMs, DEFAULT_CLOCK_WARMUP_MS, markTimedEnd, warmClocks } from '../src/kernels/clocks.js';
import { isSoftwareAdapter } from '../src/kernels/device.js';
import { timeCandidate } from '../src/kernels/autotune.js';
import { GpuArray } from '../src/kernels/memory.js';
import { timeRuns } from '../bench/timing.js';
import { useGpu } from './gpu.js';

useGpu();
const KEY = 'CELLUSCAN_BENCH_CLOCK_WARMUP_MS';
afterEach(() => {
  delete process.env[KEY];
});

// A little real GPU work per call, counted.
function counted() {
  const state = { calls: 0 };
  const fn = () => {
    state.calls++;
    GpuArray.zeros([64]).dispose();
  };
  return { state, fn };
}

describe('clock warm-up', () => {
  it('is off on a CPU adapter and 300 ms on a hardware GPU by default', () => {
    expect(clockWarmupMs()).toBe(isSoftwareAdapter() ? 0 : DEFAULT_CLOCK_WARMUP_MS);
  });

  it('rejects an override that is not a number of milliseconds >= 0, naming the variable', () => {
    for (const bad of ['abc', '-1', 'Infinity', '1e12']) {
      process.env[KEY] = bad;
      expect(() => clockWarmupMs()).toThrow(new RegExp(`${KEY} must be a number of milliseconds from 0 to 10000, got '${bad}'`));
    }
  });

  it('runs the work for the warm-up time after an idle gap, and not at all right after timed work', async () => {
    process.env[KEY] = '40';
    const { state, fn } = counted();
    const t0 = performance.now();
    const n = await warmClocks(fn, -Infinity);
    expect(n).toBeGreaterThanOrEqual(1);
    expect(state.calls).toBe(n);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(40);
    markTimedEnd();
    expect(await warmClocks(fn)).toBe(0);
    expect(state.calls).toBe(n);
    process.env[KEY] = '0';
    expect(await warmClocks(fn, -Infinity)).toBe(0);
  });

  it('timeRuns warms up after an idle gap only: a back-to-back call runs exactly warmup + runs', async () => {
    process.env[KEY] = '30';
    const a = counted();
    await new Promise((r) => setTimeout(r, 40)); // idle
    await timeRuns(a.fn, { runs: 2, warmup: 1, gpuTime: false });
    expect(a.state.calls).toBeGreaterThan(3);
    const b = counted();
    await timeRuns(b.fn, { runs: 2, warmup: 1, gpuTime: false });
    expect(b.state.calls).toBe(3);
  });

  it('GPU work already done counts: slow warm-up runs, or a slow first call measured on the GPU, need no more', async () => {
    process.env[KEY] = '30';
    // each call ~35 ms: the second warm-up run alone covers the 30 ms
    const slow = counted();
    const slowFn = async () => {
      slow.fn();
      await new Promise((r) => setTimeout(r, 35));
    };
    await new Promise((r) => setTimeout(r, 40));
    await timeRuns(slowFn, { runs: 1, warmup: 2, gpuTime: false });
    expect(slow.state.calls).toBe(3);
    // timeCandidate: a first call that reports 40 ms of GPU time is warm-up enough; warm-up calls are told they are untimed
    const seen: boolean[] = [];
    await new Promise((r) => setTimeout(r, 40));
    await timeCandidate(async (timed?: boolean) => (seen.push(timed !== false), 40), 2, Infinity);
    expect(seen).toEqual([true, true, true]);
    const fast: boolean[] = [];
    await new Promise((r) => setTimeout(r, 40));
    await timeCandidate(async (timed?: boolean) => (fast.push(timed !== false), 1), 1, Infinity);
    expect(fast[0]).toBe(true);
    expect(fast.at(-1)).toBe(true);
    expect(fast.slice(1, -1).length).toBeGreaterThan(0);
    expect(fast.slice(1, -1).every((t) => t === false)).toBe(true);
  });

  it("the autotune's timeCandidate warms up after its first (compiling) call when the GPU was idle", async () => {
    process.env[KEY] = '30';
    const a = counted();
    await new Promise((r) => setTimeout(r, 40));
    await timeCandidate(async () => a.fn(), 2, Infinity);
    expect(a.state.calls).toBeGreaterThan(3);
    const b = counted();
    await timeCandidate(async () => b.fn(), 2, Infinity);
    expect(b.state.calls).toBe(3);
  });
});

// GPU clocks and timing. A hardware GPU lowers its clocks within milliseconds of going idle and takes a while to
// raise them again: on an H100 (nvidia-smi sampled every 500 ms during `bench attention`, 2026-11-27) the SM clock fell
// from 1980 to 345 MHz while the CPU compared a variant against the explicit path, and the explicit path timed right
// after that check took 1.6-2.5 ms per forward where it takes 0.61 ms on a busy card; two warm-up runs (~10 ms of work)
// did not bring the clock back. So whatever times GPU work (the benchmarks, `celluscan tune`) first runs it untimed,
// after an idle gap, until the card has been busy for clockWarmupMs(); calls back to back (an alternation of
// variants) keep the card busy and skip it.
// A CPU adapter has no clocks to raise: 0 there. CELLUSCAN_BENCH_CLOCK_WARMUP_MS overrides it (0 turns it off).
import { isSoftwareAdapter } from './device.js';
import { sync } from './encoder.js';

/** Longer than this since the last timed GPU work, and the card may have lowered its clocks. */
export const IDLE_GAP_MS = 20;
/** The untimed warm-up on a hardware GPU after an idle gap, ms. */
export const DEFAULT_CLOCK_WARMUP_MS = 300;
/** The most CELLUSCAN_BENCH_CLOCK_WARMUP_MS may ask for (a typo must not stall every timed run). */
export const MAX_CLOCK_WARMUP_MS = 10_000;

let lastBusy = -Infinity;

export function clockWarmupMs(): number {
  // (no `process` in a browser: the default there)
  const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.CELLUSCAN_BENCH_CLOCK_WARMUP_MS;
  if (env !== undefined && env.trim() !== '') {
    const v = Number(env);
    if (!Number.isFinite(v) || v < 0 || v > MAX_CLOCK_WARMUP_MS) throw new RangeError(`CELLUSCAN_BENCH_CLOCK_WARMUP_MS must be a number of milliseconds from 0 to ${MAX_CLOCK_WARMUP_MS}, got '${env}'`);
    return v;
  }
  return isSoftwareAdapter() ? 0 : DEFAULT_CLOCK_WARMUP_MS;
}

/** When the last timed GPU work ended (performance.now()), for warmClocks' idle test. */
export function lastTimedEnd(): number {
  return lastBusy;
}

/** Marks the GPU busy until now: timing code calls it after its timed runs. */
export function markTimedEnd(): void {
  lastBusy = performance.now();
}

/**
 * Runs fn, then a full sync, again and again until the GPU has been busy for clockWarmupMs() when it may have been
 * idle since `idleSince` (more than IDLE_GAP_MS before this call); `busyMs`: GPU work already done since then (the
 * caller's own warm-up runs, or a first call's measured GPU time) counts towards it, so a slow function is not run
 * once more for nothing. Returns how many extra runs that took (0: no warm-up needed or wanted).
 */
export async function warmClocks(fn: () => unknown | Promise<unknown>, idleSince = lastBusy, busyMs = 0): Promise<number> {
  const ms = clockWarmupMs();
  if (ms <= 0 || performance.now() - idleSince <= IDLE_GAP_MS || busyMs >= ms) return 0;
  const t0 = performance.now();
  let n = 0;
  while (busyMs + performance.now() - t0 < ms) {
    await fn();
    await sync();
    n++;
  }
  return n;
}

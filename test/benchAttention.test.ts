// `celluscan bench attention`: fused variants beside the explicit path, each checked against it before timing.
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { benchAttentionCompare } from '../bench/attention.js';
import { attentionPeakMemory } from '../bench/attention_unfused.js';
import { useGpu } from './gpu.js';

const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'celluscan.mjs');

describe('bench attention', () => {
  useGpu();

  it('times the explicit path and each checked variant; a variant that fails is a row with a note, not a time', async () => {
    const rows = (await benchAttentionCompare({ batch: 1, heads: 2, seq: 13, dim: 8, runs: 1, variants: ['rows', 'flash@1x1', 'blocked@17x1'] })) as Record<string, unknown>[];
    expect(rows.map((r) => r.path)).toEqual(['explicit', 'rows', 'flash@1x1', 'blocked@17x1']);
    for (const r of rows.slice(0, 3)) {
      expect(r.shape).toBe('B1 H2 N13 D8');
      expect(r.fwd_ms as number).toBeGreaterThan(0);
      expect(r.fwd_bwd_ms as number).toBeGreaterThan(0);
      // speed-up = explicit / this path, so exactly 1 for the explicit row
      expect(r.fwd_speedup).toBeCloseTo((rows[0].fwd_ms as number) / (r.fwd_ms as number), 1);
    }
    expect(rows[0].fwd_speedup).toBe(1);
    // peak memory per path, in MiB, and its ratio explicit / this path
    for (const r of rows.slice(0, 3)) expect(r.fwd_bwd_mem_ratio).toBeCloseTo((rows[0].fwd_bwd_mib as number) / (r.fwd_bwd_mib as number), 1);
    expect(rows[0].fwd_mib).toBeCloseTo((2 * 2 * 13 * 13 * 4 + 2 * 13 * 8 * 4) / 2 ** 20, 9);
    expect(rows[3].fwd_ms).toBeUndefined();
    expect(String(rows[3].note)).toMatch(/^not timed: .*bad variant 'blocked@17x1'/);
  });

  it('measures the memory each path needs: the explicit forward holds S, P and the output; a fused one the output and row statistics', async () => {
    const [B, H, N, D] = [1, 2, 13, 8];
    const explicit = await attentionPeakMemory('explicit', { batch: B, heads: H, seq: N, dim: D });
    const flash = await attentionPeakMemory('fused', { batch: B, heads: H, seq: N, dim: D, variant: 'flash' });
    const saved = await attentionPeakMemory('fused', { batch: B, heads: H, seq: N, dim: D, variant: 'subgroup-saved' });
    const nn = B * H * N * N * 4, nd = B * H * N * D * 4, rows = B * H * N * 4;
    // Inference (no autograd): the scores S and probabilities P (N² each) and the output, all alive in the scope.
    expect(explicit.fwd_bytes).toBe(2 * nn + nd);
    // A fused forward writes the output and one log-sum-exp per row, nothing N²-sized.
    expect(flash.fwd_bytes).toBe(nd + rows);
    // With the backward: at least what the forward kept plus dq, dk, dv; the explicit path keeps P, `subgroup-saved` its
    // scores (so both need N²-sized memory), `flash` nothing N²-sized (less than one score matrix above the rest).
    expect(explicit.fwd_bwd_bytes).toBeGreaterThanOrEqual(2 * nn + 4 * nd);
    expect(saved.fwd_bwd_bytes).toBeGreaterThanOrEqual(nn + 4 * nd);
    expect(flash.fwd_bwd_bytes).toBeGreaterThanOrEqual(4 * nd);
    expect(flash.fwd_bwd_bytes).toBeLessThan(saved.fwd_bwd_bytes);
    expect(flash.fwd_bwd_bytes).toBeLessThan(explicit.fwd_bwd_bytes);
  });

  it('names an unknown variant on the command line', () => {
    const r = spawnSync(process.execPath, [CLI, 'bench', 'attention', '--variant', 'rows,flsh'], { encoding: 'utf8', timeout: 120_000 });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/bench attention: unknown variant flsh \(choose from rows, tiled, blocked, subgroup, subgroup-saved, flash, flash-ds, or all\)/);
  });
});

describe('bench attention --variant', () => {
  it("checks every name whole, @ blocking included, before anything is timed (as bench matmul and bench rows do)", () => {
    for (const [v, why] of [
      ['flash@bogus', /bench attention: --variant: bad variant 'flash@bogus': expected flash@TRxTC/],
      ['rows,blocked@17x1', /bench attention: --variant: bad variant 'blocked@17x1': expected blocked@RxC/],
      ['rows@2x2', /bench attention: --variant: variant 'rows' takes no '@' parameters \(got 'rows@2x2'\)/],
    ] as const) {
      const r = spawnSync(process.execPath, [CLI, 'bench', 'attention', '--variant', v, '--heads', '1', '--seq', '5', '--dim', '4', '--runs', '1'], { encoding: 'utf8', timeout: 120_000 });
      expect(r.status, v).toBe(1);
      expect(r.stdout, v).toBe('');
      expect(r.stderr.split('\n').filter((l) => l && !l.startsWith('Warning:')), v).toEqual([expect.stringMatching(new RegExp(`^celluscan: ${why.source}`))]);
    }
  });
});

describe('bench attention --seq sweep', () => {
  it('one comparison per sequence length, each with its own explicit baseline; the N²-sized memory grows with N', () => {
    const r = spawnSync(process.execPath, [CLI, 'bench', 'attention', '--variant', 'rows', '--heads', '2', '--seq', '13,29', '--dim', '8', '--runs', '1', '--json'], { encoding: 'utf8', timeout: 300_000 });
    expect(r.status, r.stderr).toBe(0);
    const rows = JSON.parse(r.stdout) as Record<string, number | string>[];
    expect(rows.map((x) => `${x.shape} ${x.path}`)).toEqual(['B1 H2 N13 D8 explicit', 'B1 H2 N13 D8 rows', 'B1 H2 N29 D8 explicit', 'B1 H2 N29 D8 rows']);
    // the explicit forward holds S and P (2·H·N² floats) and the output (H·N·D)
    for (const [i, n] of [[0, 13], [2, 29]]) expect(rows[i].fwd_mib).toBeCloseTo((2 * 2 * n * n * 4 + 2 * n * 8 * 4) / 2 ** 20, 9);
    expect(rows[2].fwd_speedup).toBe(1);
    const bad = spawnSync(process.execPath, [CLI, 'bench', 'attention', '--seq', '13,,29'], { encoding: 'utf8', timeout: 60_000 });
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toMatch(/--seq must be one or more comma-separated integers >= 1, got '13,,29'/);
  });
});

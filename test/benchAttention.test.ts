// `celluscan bench attention`: fused variants beside the explicit path, each checked against it before timing.
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { benchAttentionCompare } from '../bench/attention.js';
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
    expect(rows[3].fwd_ms).toBeUndefined();
    expect(String(rows[3].note)).toMatch(/^not timed: .*bad variant 'blocked@17x1'/);
  });

  it('names an unknown variant on the command line', () => {
    const r = spawnSync(process.execPath, [CLI, 'bench', 'attention', '--variant', 'rows,flsh'], { encoding: 'utf8', timeout: 120_000 });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/bench attention: unknown variant flsh \(choose from rows, tiled, blocked, subgroup, subgroup-saved, flash, flash-ds, or all\)/);
  });
});

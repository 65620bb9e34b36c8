// The row kernels' lab (bench/rows.ts, `celluscan bench rows`): softmax and layernorm variants side by side in
// alternating rounds, each checked against float64 before it is timed.
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { compareRowVariants, rowBytes } from '../bench/rows.js';
import { subgroupSize } from '../src/kernels/matmul.js';
import { rowPlan, rowVariantName } from '../src/kernels/softmax.js';
import { useGpu } from './gpu.js';

useGpu();

describe('bench rows', () => {
  for (const [op, rows, cols] of [['softmax', 37, 197], ['layernorm', 13, 768]] as const) {
    it(`${op}: variants in alternating rounds, ratios against the first by one clock, the library's choice restored`, async () => {
      const before = rowVariantName(rowPlan(rows, cols));
      const variants = ['library', 'team1', 'team4/16', ...(subgroupSize() ? ['subgroup'] : [])];
      const r = await compareRowVariants({ op, rows, cols, variants, runs: 2 });
      expect(r).toMatchObject({ op, rows, cols, rounds: 2, checked_rows: rows });
      expect(r.results.map((x) => [x.variant, x.plan])).toEqual([
        ['library', before],
        ['team1', 'team1/64'],
        ['team4/16', 'team4/16'],
        ...(subgroupSize() ? [['subgroup', `subgroup/${Math.max(128, subgroupSize()!)}`]] : []),
      ]);
      const bytes = rowBytes(rows, cols);
      for (const x of r.results) {
        expect(x.fwd_ms > 0 && x.bwd_ms > 0, x.variant).toBe(true);
        expect(x.fwd_gbps).toBeCloseTo(bytes.forward / x.fwd_ms / 1e6, 9);
        expect(x.bwd_gbps).toBeCloseTo(bytes.backward / x.bwd_ms / 1e6, 9);
        expect(x.fwd_vs_first).toBeCloseTo(r.results[0].fwd_ms / x.fwd_ms, 12);
        expect(x.bwd_vs_first).toBeCloseTo(r.results[0].bwd_ms / x.bwd_ms, 12);
      }
      expect(r.results[0].fwd_vs_first).toBe(1);
      expect(rowVariantName(rowPlan(rows, cols))).toBe(before);
    }, 240_000);
  }

  it('checks the first and the last rows of a large shape', async () => {
    // 2^20 values per end: 5322 rows of 197 at each end of 12 000
    const r = await compareRowVariants({ op: 'softmax', rows: 12_000, cols: 197, variants: ['team1'], runs: 1 });
    expect(r.checked_rows).toBe(2 * Math.floor(2 ** 20 / 197));
  }, 240_000);

  it('passes its own float64 check on long rows (the tolerance grows with the row; the sums are blocked)', async () => {
    // The audit's case: 64×100 000 softmax on lavapipe's team1 was 3.9× its tolerance with plain running sums, layernorm
    // at 64×30 000 1.5×. 32 rows run one invocation per row on CPU adapters too.
    for (const op of ['softmax', 'layernorm'] as const) {
      const r = await compareRowVariants({ op, rows: 32, cols: 100_003, variants: ['library', 'team1'], runs: 1 });
      expect(r.failed).toEqual([]);
      expect(r.results.map((x) => x.variant)).toEqual(['library', 'team1']);
    }
  }, 240_000);

  it('names bad input before any work', async () => {
    await expect(compareRowVariants({ op: 'softmax', rows: 4, cols: 4, variants: ['team1', 'warp'] })).rejects.toThrow(/bad variant 'warp'/);
    await expect(compareRowVariants({ op: 'softmax', rows: 4, cols: 4, variants: [] })).rejects.toThrow(/no variants/);
    await expect(compareRowVariants({ op: 'softmax', rows: 0, cols: 4, variants: ['team1'] })).rejects.toThrow(/rows and cols must be positive integers, got 0×4/);
    await expect(compareRowVariants({ op: 'gelu' as never, rows: 4, cols: 4, variants: ['team1'] })).rejects.toThrow(/unknown op 'gelu'/);
    const cli = (...args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'bench', 'rows', ...args], { encoding: 'utf8', timeout: 120_000 });
    const op = cli('--op', 'gelu');
    expect(op.status).toBe(1);
    expect(op.stderr).toMatch(/^celluscan: bench rows: --op must be one of softmax, layernorm, got 'gelu'\n$/);
    const bad = cli('--variant', 'team1,team64/32');
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/^celluscan: bench rows: --variant: row kernels: bad variant 'team64\/32': workgroup 32 is smaller than the team 64\n$/);
  }, 120_000);
});

describe('suite rows for the row variants (what the suite adds on a GPU)', () => {
  it('one bandwidth row per variant and direction, named as the variant runs, with its share of the peak', async () => {
    const { rowVariantRows } = await import('../bench/suite.js');
    const rows = await rowVariantRows('layernorm', 9, 100, { runs: 1, pctB: (g) => g * 10, variants: ['team1', 'team8/64'] });
    expect(rows.map((r) => [r.bench, r.case, r.variant, r.unit])).toEqual([
      ['layernorm', '9×100 forward', 'team1/64', 'GB/s'],
      ['layernorm', '9×100 backward', 'team1/64', 'GB/s'],
      ['layernorm', '9×100 forward', 'team8/64', 'GB/s'],
      ['layernorm', '9×100 backward', 'team8/64', 'GB/s'],
    ]);
    for (const r of rows) expect(r.pctPeak).toBeCloseTo(r.value * 10, 9);
  }, 120_000);

  it('a variant that cannot run is a row saying why, and the others are still timed', async () => {
    const { rowVariantRows } = await import('../bench/suite.js');
    // a 4-wide workgroup holds no whole subgroup on any adapter with a fixed size ≥ 8 (and without one, subgroup teams cannot run)
    const rows = await rowVariantRows('softmax', 5, 7, { runs: 1, pctB: (g) => g, variants: ['subgroup/4', 'team1'] });
    expect(rows.map((r) => [r.case, r.variant, r.metric])).toEqual([
      ['5×7 forward', 'team1/64', 'bandwidth'],
      ['5×7 backward', 'team1/64', 'bandwidth'],
      ['5×7 forward and backward', 'subgroup/4', 'error'],
    ]);
    expect(rows[2].note).toMatch(/^not timed: row kernels: variant 'subgroup\/4'(: the workgroup 4 is not a multiple of the subgroup size| needs the adapter's 'subgroups' feature)/);
  }, 120_000);
});

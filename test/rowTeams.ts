// Shared by the row kernels' tests (softmax, layernorm, cross-entropy): the same reference check under subgroup teams.
import { expect, it } from 'vitest';
import { subgroupSize } from '../src/kernels/matmul.js';
import { rowPlan, setRowVariant } from '../src/kernels/softmax.js';

/**
 * Subgroup teams (one subgroup per row, reduced with subgroupMax/subgroupAdd): the default workgroup of 128 and 256
 * (several rows per workgroup, the last one partly past the end), on rows shorter and longer than a subgroup; where the
 * adapter has no fixed subgroup size, the plan must say what it needs. `check(rows, cols, seed)` is the file's own
 * comparison with the float64 reference; the file's afterEach restores the variant.
 */
export function subgroupTeamTests(check: (rows: number, cols: number, seed: number) => Promise<void>): void {
  for (const variant of ['subgroup', 'subgroup/256']) {
    it(`matches the reference with the row variant '${variant}' (or names what it needs)`, async () => {
      setRowVariant(variant);
      if (subgroupSize() === null) {
        expect(() => rowPlan(7, 13)).toThrow(/needs the adapter's 'subgroups' feature with a fixed subgroup size/);
        return;
      }
      expect(rowPlan(7, 13)).toMatchObject({ subgroup: true, T: subgroupSize() });
      for (const [rows, cols] of [[1, 1], [7, 13], [19, 197], [3, 1000], [70, 7]] as const) await check(rows, cols, cols + 5);
    });
  }
}

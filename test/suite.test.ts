// The benchmark suite's runner (bench/suite.ts runSuite): what a caller sees after each bench, so that a run cut short
// (a time limit on a borrowed GPU) keeps the benches it finished, and how a partial run merges into a recorded file.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { recordSuite, runSuite, type SuiteResult } from '../bench/suite.js';
import { useGpu } from './gpu.js';

useGpu();

describe('bench suite', () => {
  it('hands the result so far to afterEach after every bench, each a snapshot; the recorded file merges them', async () => {
    const seen: SuiteResult[] = [];
    const dir = mkdtempSync(join(tmpdir(), 'suite-'));
    try {
      const files: string[][] = [];
      const result = await runSuite(['gelu', 'softmax'], { quick: true, runs: 1, peers: false }, () => {}, async (s) => {
        seen.push(s);
        files.push(await recordSuite(s, { dir, name: 'partial' }));
      });
      expect(seen.map((s) => [...new Set(s.rows.map((r) => r.bench))])).toEqual([['gelu'], ['gelu', 'softmax']]);
      // snapshots: a later bench does not change what an earlier call was given
      expect(seen[0].rows.every((r) => r.bench === 'gelu')).toBe(true);
      expect(result.rows).toEqual(seen[1].rows);
      // after the first bench the file held gelu's rows alone; after the second, both (atomic rewrites of one file)
      expect(files[0]).toEqual(files[1]);
      const recorded = JSON.parse(readFileSync(join(dir, 'partial.json'), 'utf8')) as SuiteResult;
      expect(recorded.rows.map((r) => `${r.bench} ${r.case} ${r.variant}`)).toEqual(result.rows.map((r) => `${r.bench} ${r.case} ${r.variant}`));
      // a later run of one bench replaces that bench's rows and keeps the others'
      await recordSuite({ ...seen[0], rows: seen[0].rows.map((r) => ({ ...r, value: -1 })) }, { dir, name: 'partial' });
      const merged = JSON.parse(readFileSync(join(dir, 'partial.json'), 'utf8')) as SuiteResult;
      expect(merged.rows.filter((r) => r.bench === 'gelu').every((r) => r.value === -1)).toBe(true);
      expect(merged.rows.filter((r) => r.bench === 'softmax').length).toBe(result.rows.filter((r) => r.bench === 'softmax').length);
      // the kept rows name the run they came from (its date and roofline: their % of peak is against it), in the JSON
      // and in the table's header
      expect(merged.earlier).toEqual([{ date: seen[1].date, roofline: seen[1].roofline, benches: ['softmax'] }]);
      expect(readFileSync(join(dir, 'partial.md'), 'utf8')).toMatch(/Rows from earlier runs \(each row's % of peak is against its own run's roofline\): softmax on /);
      // a run with a date of its own keeps that provenance through another partial run, and a run of every bench
      // leaves no earlier runs
      await recordSuite({ ...seen[0], date: '2030-01-01T00:00:00.000Z' }, { dir, name: 'partial' });
      const again = JSON.parse(readFileSync(join(dir, 'partial.json'), 'utf8')) as SuiteResult;
      expect(again.earlier).toEqual([{ date: seen[1].date, roofline: seen[1].roofline, benches: ['softmax'] }]);
      await recordSuite(seen[1], { dir, name: 'partial' });
      const whole = JSON.parse(readFileSync(join(dir, 'partial.json'), 'utf8')) as SuiteResult;
      expect(whole.earlier).toBeUndefined();
      expect(readFileSync(join(dir, 'partial.md'), 'utf8')).not.toMatch(/Rows from earlier runs/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 240_000);
});

describe('bench --results-dir', () => {
  it('a folder that cannot be written is an error before any bench runs', async () => {
    const { spawnSync } = await import('node:child_process');
    const { mkdtempSync, writeFileSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const dir = mkdtempSync(join(tmpdir(), 'results-dir-'));
    try {
      const file = join(dir, 'a-file');
      writeFileSync(file, 'x');
      for (const [args, msg] of [
        [['bench', 'gelu', '--results-dir', file], /^celluscan: bench: --results-dir .*a-file is a file, not a folder$/m],
        [['bench', 'browser', '--record', '--results-dir', join(file, 'sub')], /^celluscan: bench browser: --results-dir .*a-file\/sub: a file stands in its path$/m],
      ] as const) {
        const r = spawnSync(process.execPath, ['bin/celluscan.mjs', ...args], { encoding: 'utf8', timeout: 60_000 });
        expect(r.status, args.join(' ')).toBe(1);
        expect(r.stderr).toMatch(msg);
        expect(r.stdout).not.toMatch(/running gelu/);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

// Row-kernel variants per adapter and row length (src/kernels/rowTuning.ts, bench/rows.ts autotuneRows): a measured
// choice that rowPlan follows for its kernel and row length only, the autotune with its check, margin and cache file,
// and the loader.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { autotuneRows } from '../bench/rows.js';
import { gpu } from '../src/kernels/device.js';
import { GpuArray } from '../src/kernels/memory.js';
import { SOFTMAX_TOLERANCE, softmaxForwardRef } from '../src/kernels/ref/softmax.js';
import { randomArray } from '../src/kernels/ref/math.js';
import { clearRowChoices, loadRowTuning, ROW_CACHE_FILE, setRowChoice, tunedRowChoices, tunedRowVariant } from '../src/kernels/rowTuning.js';
import { isRowVariant, rowPlan, rowVariantName, setRowVariant, softmaxForward, tableRowVariant } from '../src/kernels/softmax.js';
import { expectClose, useGpu } from './gpu.js';

describe('row-kernel choice', () => {
  useGpu();
  const cacheDir = mkdtempSync(join(tmpdir(), 'celluscan-rows-'));
  const savedXdg = process.env.XDG_CACHE_HOME;
  process.env.XDG_CACHE_HOME = cacheDir;
  const cacheFile = join(cacheDir, 'celluscan', ROW_CACHE_FILE);
  afterEach(() => {
    clearRowChoices();
    setRowVariant(null);
  });
  afterAll(() => {
    if (savedXdg === undefined) delete process.env.XDG_CACHE_HOME;
    else process.env.XDG_CACHE_HOME = savedXdg;
    rmSync(cacheDir, { recursive: true, force: true });
  });

  it("rowPlan follows a measured choice for its kernel and row length only; a forced variant wins; one that cannot run here is the table's", async () => {
    const table = tableRowVariant(7, 13);
    expect(rowVariantName(rowPlan(7, 13, 'softmax'))).toBe(table);
    setRowChoice('softmax', 13, 'team4/16');
    expect(rowVariantName(rowPlan(7, 13, 'softmax'))).toBe('team4/16');
    expect(rowVariantName(rowPlan(500, 13, 'softmax'))).toBe('team4/16'); // any row count with these cols
    expect(rowVariantName(rowPlan(7, 14, 'softmax'))).toBe(tableRowVariant(7, 14));
    expect(rowVariantName(rowPlan(7, 13, 'layernorm'))).toBe(table);
    expect(rowVariantName(rowPlan(7, 13))).toBe(table); // cross-entropy: no tuned kernel
    expect(tunedRowChoices()).toEqual({ 'softmax:13': 'team4/16' });
    // the kernel runs it, and still matches the reference
    const xs = randomArray(7 * 13, 3, -8, 8);
    expectClose(await softmaxForward(GpuArray.fromData(xs, [7, 13])).read(), softmaxForwardRef(xs, 13), ...SOFTMAX_TOLERANCE.forward, 'softmax with a tuned team');
    setRowVariant('team8/8');
    expect(rowVariantName(rowPlan(7, 13, 'softmax'))).toBe('team8/8');
    setRowVariant(null);
    // a workgroup of 4 holds no whole subgroup (and without fixed subgroups none runs): the table's choice instead
    setRowChoice('softmax', 13, 'subgroup/4');
    expect(rowVariantName(rowPlan(7, 13, 'softmax'))).toBe(table);
    setRowChoice('softmax', 13, 'library');
    expect(tunedRowVariant('softmax', 13)).toBeUndefined();
  });

  it('autotune checks and times the candidates beside the table, keeps the fastest by the margin, and caches it', async () => {
    const table = tableRowVariant(64, 13);
    // margin 1: the table's choice stays whatever the times
    const kept = await autotuneRows({ kernel: 'softmax', rows: 64, cols: 13, mode: 'train', runs: 2, margin: 1, candidates: ['team8/8', 'team4/16'] });
    expect(kept).toMatchObject({ kernel: 'softmax', rows: 64, cols: 13, mode: 'train', choice: 'library', library: table, fromCache: false });
    expect(Object.keys(kept.timings).sort()).toEqual(['library', 'team4/16', 'team8/8'].filter((v) => v === 'library' || v !== table).sort());
    expect(tunedRowVariant('softmax', 13)).toBeUndefined();
    // margin 0: the fastest, whichever it is
    const r = await autotuneRows({ kernel: 'softmax', rows: 64, cols: 13, mode: 'infer', runs: 2, margin: 0, candidates: ['team8/8', 'team4/16'] });
    const fastest = Object.entries(r.timings).sort((a, b) => a[1] - b[1])[0][0];
    expect(r.choice).toBe(fastest);
    expect(tunedRowVariant('softmax', 13)).toBe(fastest === 'library' ? undefined : fastest);
    // in the cache file under this adapter and its description; a later default run answers from it
    const file = JSON.parse(readFileSync(cacheFile, 'utf8'));
    expect(file.entries[gpu().adapterKey]).toMatchObject({ description: gpu().info.description, choices: { 'softmax:13': { choice: fastest, mode: 'infer', rows: 64 } } });
    clearRowChoices();
    const again = await autotuneRows({ kernel: 'softmax', rows: 64, cols: 13, mode: 'infer' });
    expect(again).toMatchObject({ choice: fastest, fromCache: true });
    expect(tunedRowVariant('softmax', 13)).toBe(fastest === 'library' ? undefined : fastest);
    // one result per kernel and row length: the infer run replaced the train one, so train, or another row count, is
    // measured afresh
    expect((await autotuneRows({ kernel: 'softmax', rows: 64, cols: 13, mode: 'train', runs: 1 })).fromCache).toBe(false);
    expect((await autotuneRows({ kernel: 'softmax', rows: 65, cols: 13, mode: 'train', runs: 1 })).fromCache).toBe(false);
  }, 240_000);

  it('names bad modes, margins and candidates', async () => {
    await expect(autotuneRows({ kernel: 'softmax', rows: 4, cols: 4, mode: 'both' as never })).rejects.toThrow(/mode must be 'train' or 'infer', got 'both'/);
    await expect(autotuneRows({ kernel: 'softmax', rows: 4, cols: 4, mode: 'train', margin: 2 })).rejects.toThrow(/margin must be in \[0, 1\], got 2/);
    await expect(autotuneRows({ kernel: 'softmax', rows: 4, cols: 4, mode: 'train', candidates: [] })).rejects.toThrow(/no candidates/);
    await expect(autotuneRows({ kernel: 'softmax', rows: 4, cols: 4, mode: 'train', candidates: ['warp'] })).rejects.toThrow(/bad variant 'warp'/);
  });

  it('loading skips entries of another adapter description and variants this build does not know', async () => {
    const key = gpu().adapterKey;
    const entry = (choice: string, kernel = 'layernorm', cols = 768) => ({ adapter: key, kernel, rows: 10, cols, mode: 'train', choice, library: 'team1/64', timings: {}, failed: {}, clock: '', fromCache: false });
    writeFileSync(cacheFile, JSON.stringify({ version: 1, entries: { [key]: { description: 'another card', choices: { 'layernorm:768': entry('team8') } } } }));
    expect(await loadRowTuning(isRowVariant)).toBe(0);
    writeFileSync(
      cacheFile,
      JSON.stringify({
        version: 1,
        entries: { [key]: { description: gpu().info.description, choices: { a: entry('team8'), b: entry('warp', 'layernorm', 64), c: entry('team2', 'gelu', 5), d: entry('library', 'softmax', 197) } } },
      }),
    );
    expect(await loadRowTuning(isRowVariant)).toBe(2);
    expect(tunedRowChoices()).toEqual({ 'layernorm:768': 'team8' });
  });
});

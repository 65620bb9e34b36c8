// Cache files that cannot be used or written, and leftovers of interrupted writes: a tuning cache that cannot be
// written is not claimed as cached (`celluscan tune`), a corrupt tuning cache is ignored with one warning, and the
// temp file of an image-cache write stopped mid-way (Ctrl-C) is removed by a later run unless its writer still runs.
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { clearTuningCacheWriteErrors, readTuningFile, tuningCacheReadProblem, tuningCacheWriteErrors, writeTuningFile } from '../src/kernels/autotune.js';
import { loadTunings } from '../src/cli/tune.js';
import { cacheFileFor, prepareDataset, removeStaleTemps } from '../src/train/cache.js';
import type { Dataset, Sample } from '../src/train/data.js';
import { useGpu } from './gpu.js';

const root = mkdtempSync(join(tmpdir(), 'celluscan-cachefiles-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** Run `fn` with XDG_CACHE_HOME (and CELLUSCAN_TUNING) set, restoring them after. */
async function withEnv<T>(env: Record<string, string | undefined>, fn: () => Promise<T>): Promise<T> {
  const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
  const set = (e: Record<string, string | undefined>) => {
    for (const [k, v] of Object.entries(e)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  };
  set(env);
  try {
    return await fn();
  } finally {
    set(saved);
  }
}

const TINY = { image_size: 16, patch_size: 4, num_layers: 1, num_heads: 2, hidden_dim: 32, mlp_dim: 48, num_classes: 3, dropout: 0, attention_dropout: 0, representation_size: null };

describe('tuning cache files', () => {
  useGpu();

  it('writeTuningFile returns and records why a cache file could not be written (a cache folder that is a plain file)', async () => {
    const notDir = join(root, 'plain-file');
    writeFileSync(notDir, 'x');
    clearTuningCacheWriteErrors();
    const why = await withEnv({ XDG_CACHE_HOME: notDir }, () => writeTuningFile('attention-autotune.json', { version: 1, entries: {} }));
    expect(why).toMatch(/ENOTDIR/);
    expect(tuningCacheWriteErrors().get('attention-autotune.json')).toBe(why);
    const ok = join(root, 'writable');
    expect(await withEnv({ XDG_CACHE_HOME: ok }, () => writeTuningFile('rows-autotune.json', { version: 1, entries: {} }))).toBeUndefined();
    expect(tuningCacheWriteErrors().has('rows-autotune.json')).toBe(false);
    clearTuningCacheWriteErrors();
  });

  it('`tune` does not say "cached in" a file it could not write: a one-line warning, and --json has cacheError, not the file', () => {
    const notDir = join(root, 'plain-file-cli');
    writeFileSync(notDir, 'x');
    const cfg = join(root, 'tiny.json');
    writeFileSync(cfg, JSON.stringify(TINY));
    const file = join(notDir, 'celluscan', 'attention-autotune.json');
    const tune = (...extra: string[]) =>
      spawnSync(process.execPath, ['bin/celluscan.mjs', 'tune', '--model', cfg, '--batch', '2', '--runs', '1', '--only', 'attention', '--mode', 'infer', '--attention-variants', 'explicit', ...extra], {
        encoding: 'utf8',
        timeout: 120_000,
        env: { ...process.env, XDG_CACHE_HOME: notDir, CELLUSCAN_TUNING: undefined },
      });
    const text = tune();
    expect(text.status).toBe(0);
    expect(text.stdout).not.toMatch(/cached in/);
    expect(text.stdout).toContain(`not cached: could not write ${file} (ENOTDIR`);
    const warnings = text.stderr.split('\n').filter((l) => l.startsWith('celluscan: warning'));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(new RegExp(`^celluscan: warning: cannot write the tuning cache ${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} \\(ENOTDIR.*\\); its choices apply to this run only$`));
    const json = tune('--json');
    expect(json.status).toBe(0);
    const r = JSON.parse(json.stdout);
    expect(r.files).toEqual([]);
    expect(r.cacheError).toMatch(new RegExp(`^cannot write ${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} \\(ENOTDIR`));
  }, 240_000);

  it('readTuningFile: a missing file is silently empty; an unreadable, truncated or wrongly shaped one is empty and recorded', async () => {
    const dir = join(root, 'read');
    mkdirSync(join(dir, 'celluscan'), { recursive: true });
    const empty = () => ({ version: 1, entries: {} });
    await withEnv({ XDG_CACHE_HOME: dir }, async () => {
      expect(await readTuningFile('none.json', 1, empty)).toEqual(empty());
      expect(tuningCacheReadProblem('none.json')).toBeUndefined();
      for (const [name, text, problem] of [
        ['truncated.json', '{"version":1,"entr', /^not valid JSON: /],
        ['array.json', '[1,2]', /^not a tuning cache: a JSON array/],
        ['number.json', '7', /^not a tuning cache: a JSON number/],
        ['noversion.json', '{"entries":{}}', /^not a tuning cache: no version number/],
      ] as const) {
        writeFileSync(join(dir, 'celluscan', name), text);
        expect(await readTuningFile(name, 1, empty)).toEqual(empty());
        expect(tuningCacheReadProblem(name)).toMatch(problem);
      }
      mkdirSync(join(dir, 'celluscan', 'folder.json'));
      expect(await readTuningFile('folder.json', 1, empty)).toEqual(empty());
      expect(tuningCacheReadProblem('folder.json')).toMatch(/^cannot read it: EISDIR/);
      // another version: a stale cache, no problem; a fixed file clears the record
      writeFileSync(join(dir, 'celluscan', 'array.json'), '{"version":0,"entries":{}}');
      expect(await readTuningFile('array.json', 1, empty)).toEqual(empty());
      expect(tuningCacheReadProblem('array.json')).toBeUndefined();
    });
  });

  it('loadTunings warns once per corrupt cache file (per process) naming it, and says nothing of a missing one', async () => {
    const dir = join(root, 'load');
    mkdirSync(join(dir, 'celluscan'), { recursive: true });
    writeFileSync(join(dir, 'celluscan', 'matmul-autotune.json'), '{"version":1,"entries":{"llv');
    writeFileSync(join(dir, 'celluscan', 'attention-autotune.json'), '[1,2]');
    const errors: string[] = [];
    const spy = vi.spyOn(console, 'error').mockImplementation((m: unknown) => void errors.push(String(m)));
    try {
      await withEnv({ XDG_CACHE_HOME: dir, CELLUSCAN_TUNING: undefined }, async () => {
        await loadTunings();
        await loadTunings();
      });
    } finally {
      spy.mockRestore();
    }
    expect(errors).toHaveLength(2);
    expect(errors[0]).toMatch(new RegExp(`^celluscan: warning: ignoring the tuning cache ${join(dir, 'celluscan', 'matmul-autotune.json')} \\(not valid JSON: .*\\); re-measure with`));
    expect(errors[1]).toMatch(new RegExp(`^celluscan: warning: ignoring the tuning cache ${join(dir, 'celluscan', 'attention-autotune.json')} \\(not a tuning cache: a JSON array, expected an object\\); re-measure with`));
  });
});

describe('image cache temp files', () => {
  /** A tiny in-memory split of 3 gray 4×4 images. */
  const ds = (): Dataset => {
    const samples: Sample[] = [0, 1, 2].map((k) => ({ image: new Uint8Array(16).fill(40 * k), width: 4, height: 4, channels: 1, label: k % 2 }));
    return {
      id: 'cachefiles-test',
      length: 3,
      channels: 1,
      classes: ['a', 'b'],
      labels: Int32Array.from(samples.map((s) => s.label)),
      name: (i: number) => `img${i}`,
      get: (i: number) => samples[i],
      fingerprint: () => 'fixed',
    } as unknown as Dataset;
  };

  it('a temp file left by a stopped writer (pid gone) is removed by the next write; one a live process writes is kept', async () => {
    const cacheDir = join(root, 'images');
    mkdirSync(cacheDir, { recursive: true });
    const file = cacheFileFor(ds(), 4, cacheDir);
    const base = file.slice(cacheDir.length + 1);
    // a process that has exited: its pid is free (not reused within this test)
    const gone = spawnSync(process.execPath, ['-e', '0']).pid!;
    const live = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)']);
    try {
      const dead = `${base}.tmp-${gone}-abc123`;
      const writing = `${base}.tmp-${live.pid}-def456`;
      const oldLive = `other-slot.bin.tmp-${live.pid}-old`;
      for (const f of [dead, writing, oldLive]) writeFileSync(join(cacheDir, f), 'partial');
      // untouched for two hours: no live writer is that slow (a reused pid)
      const twoHoursAgo = (Date.now() - 2 * 3600_000) / 1000;
      utimesSync(join(cacheDir, oldLive), twoHoursAgo, twoHoursAgo);
      const p = prepareDataset(ds(), { imageSize: 4, cacheDir });
      expect(p.cacheHit).toBe(false);
      p.close();
      expect(readdirSync(cacheDir).sort()).toEqual([base, writing].sort());
      // and on its own: nothing more to remove while the writer runs
      expect(removeStaleTemps(cacheDir)).toEqual([]);
    } finally {
      live.kill();
    }
  });
});

// Bad input to the data tools (dedup, balance, info) and to the data listing: missing or non-folder paths are errors
// naming them, a failed balance leaves no output behind, files in image formats CelluScan cannot decode are reported
// instead of counted, and a validation fraction must leave something to train on.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { seededPng } from './seededPng.js';
import { listImageFolder, loadData, openSplits, stratifiedSplit, walkImages } from '../src/train/data.js';
import { dedup, formatDedup } from '../src/train/dedup.js';
import { balance, formatBalance } from '../src/train/balance.js';

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'celluscan-datatools-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const png = seededPng;

/** Files under root: name → PNG (seeded by its position) for .png names, else the given text. */
function writeTree(root: string, files: Record<string, string | null>): void {
  let seed = 1;
  for (const [rel, text] of Object.entries(files)) {
    mkdirSync(join(root, rel, '..'), { recursive: true });
    writeFileSync(join(root, rel), text === null ? png(seed++) : text);
  }
}

const cli = (...args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'data', ...args], { encoding: 'utf8' });

/** A failed command: exit 1 and one line on stderr matching `re`. */
function expectError(r: ReturnType<typeof cli>, re: RegExp): void {
  expect(r.status, r.stderr).toBe(1);
  expect(r.stdout).toBe('');
  const lines = r.stderr.trim().split('\n');
  expect(lines[lines.length - 1]).toMatch(re);
  expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
}

describe('missing and non-folder paths', () => {
  it('dedup of a missing folder or a file is an error naming it, not "0 images"', () => {
    expect(() => dedup(join(tmp, 'nope'))).toThrow(/image folder '.*nope' does not exist/);
    writeFileSync(join(tmp, 'plain-file'), 'x');
    expect(() => dedup(join(tmp, 'plain-file'))).toThrow(/image folder '.*plain-file' is not a folder/);
    expect(() => walkImages(join(tmp, 'nope'))).toThrow(/does not exist/);
    expectError(cli('dedup', join(tmp, 'nope')), /^celluscan: image folder '.*nope' does not exist$/);
    expectError(cli('dedup', join(tmp, 'plain-file')), /^celluscan: image folder '.*plain-file' is not a folder$/);
  });

  it('info and balance of a missing folder, and balance --out onto a file, are one-line errors', () => {
    expectError(cli('info', join(tmp, 'nope')), /^celluscan: data folder '.*nope' does not exist$/);
    expectError(cli('balance', join(tmp, 'nope'), '--min-per-class', '2', '--out', join(tmp, 'o')), /^celluscan: image folder '.*nope' does not exist$/);
    const src = join(tmp, 'outfile-src');
    writeTree(src, { 'a/1.png': null, 'b/1.png': null });
    writeFileSync(join(tmp, 'out-is-a-file'), 'x');
    expect(() => balance(src, { minPerClass: 2, out: join(tmp, 'out-is-a-file'), warn: () => {} })).toThrow(/the output folder '.*out-is-a-file' exists and is not a folder/);
    expectError(cli('balance', src, '--min-per-class', '2', '--out', join(tmp, 'out-is-a-file')), /^celluscan: the output folder '.*out-is-a-file' exists and is not a folder$/);
  });
});

describe('balance is atomic', () => {
  it('a failed balance leaves no output folder (and no temporary one), so a rerun works', () => {
    const src = join(tmp, 'atomic-src');
    const files: Record<string, string | null> = { 'b/broken.png': 'not a png' };
    for (let i = 0; i < 20; i++) files[`a/${i}.png`] = null;
    writeTree(src, files);
    const out = join(tmp, 'atomic-out');
    expect(() => balance(src, { minPerClass: 3, out, warn: () => {} })).toThrow(/class 'b' has no readable image to augment/);
    expect(existsSync(out)).toBe(false);
    expect(readdirSync(tmp).filter((n) => n.includes('atomic-out'))).toEqual([]);
    // An existing empty folder stays empty after a failure, and is filled by a run that succeeds.
    mkdirSync(out);
    expect(() => balance(src, { minPerClass: 3, out, warn: () => {} })).toThrow(/no readable image/);
    expect(readdirSync(out)).toEqual([]);
    expect(readdirSync(tmp).filter((n) => n.includes('atomic-out'))).toEqual(['atomic-out']);
    writeFileSync(join(src, 'b', 'good.png'), png(99));
    const r = balance(src, { minPerClass: 3, out, warn: () => {} });
    expect(r.classes.map((c) => [c.name, c.before, c.generated, c.after])).toEqual([
      ['a', 20, 0, 20],
      ['b', 2, 1, 3],
    ]);
    expect(readdirSync(join(out, 'b')).sort()).toEqual(['broken.png', 'good.png', 'good_aug0.png']);
    expect(readdirSync(tmp).filter((n) => n.includes('atomic-out'))).toEqual(['atomic-out']);
  });

  it('the CLI reports the failure and leaves nothing', () => {
    const src = join(tmp, 'atomic-cli-src');
    writeTree(src, { 'a/1.png': null, 'a/2.png': null, 'a/3.png': null, 'b/x.jpg': 'not a jpeg' });
    const out = join(tmp, 'atomic-cli-out');
    expectError(cli('balance', src, '--min-per-class', '3', '--out', out), /^celluscan: class 'b' has no readable image to augment/);
    expect(existsSync(out)).toBe(false);
    expect(readdirSync(tmp).filter((n) => n.includes('atomic-cli-out'))).toEqual([]);
  });
});

describe('only decodable formats count as images', () => {
  const root = () => join(tmp, 'formats');
  beforeAll(() => {
    writeTree(root(), {
      'a/1.png': null,
      'a/2.png': null,
      'a/3.BMP': 'BM',
      'a/4.webp': 'RIFF',
      'b/1.png': null,
      'b/2.tif': 'II*',
      'b/notes.txt': 'a note',
    });
  });

  it('the listing leaves out (and reports) .bmp .webp .tif files', () => {
    const l = listImageFolder(root());
    expect(l.paths.map((p) => p.slice(root().length + 1))).toEqual(['a/1.png', 'a/2.png', 'b/1.png']);
    expect(l.ignored.map((p) => p.slice(root().length + 1))).toEqual(['a/3.BMP', 'a/4.webp', 'b/2.tif']);
    const s = openSplits({ data: root(), valFraction: 0 });
    expect(s.train.length).toBe(3);
    expect(s.ignored).toHaveLength(3);
    const only = join(tmp, 'formats-only-bmp');
    writeTree(only, { 'a/1.png': null, 'b/1.bmp': 'BM' });
    expect(() => listImageFolder(only)).toThrow(/empty class folder in '.*': 'b' \(no \.png \.jpg \.jpeg files; 1 file in format CelluScan does not decode \(\.bmp\)\)/);
  });

  it('loadData warns about them once and trains on the rest', async () => {
    const warnings: string[] = [];
    const d = await loadData({ data: root(), imageSize: 4, valFraction: 0, cacheDir: false, warn: (m) => warnings.push(m) });
    expect(d.train.length).toBe(3);
    expect(d.skipped).toEqual([]);
    expect(warnings).toEqual(['3 files in formats CelluScan does not decode (.bmp, .tif, .webp): ignored']);
    d.close();
  });

  it('data info counts only decodable images and names the ignored formats', () => {
    const r = cli('info', root(), '--val-fraction', '0');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^3 files in formats CelluScan does not decode \(\.bmp, \.tif, \.webp\): ignored$/m);
    expect(r.stdout).toMatch(/^total\s+3\s*$/m);
    const j = JSON.parse(cli('info', root(), '--val-fraction', '0', '--json').stdout);
    expect(j.sizes).toEqual({ train: 3 });
    expect(j.ignored).toEqual({ files: 3, extensions: ['.bmp', '.tif', '.webp'] });
  });

  it('balance counts only decodable images toward --min-per-class and does not copy the others', () => {
    const out = join(tmp, 'formats-balanced');
    const warnings: string[] = [];
    const r = balance(root(), { minPerClass: 3, out, warn: (m) => warnings.push(m) });
    expect(r.classes.map((c) => [c.name, c.before, c.generated, c.after, c.unreadable.length])).toEqual([
      ['a', 2, 1, 3, 0],
      ['b', 1, 2, 3, 0],
    ]);
    expect(readdirSync(join(out, 'a')).sort()).toEqual(['1.png', '1_aug0.png', '2.png']);
    expect(readdirSync(join(out, 'b')).sort()).toEqual(['1.png', '1_aug0.png', '1_aug1.png']);
    expect(warnings).toEqual(['3 files in formats CelluScan does not decode (.bmp, .tif, .webp): not counted and not copied']);
    expect(formatBalance(r)).toMatch(/\n3 files in formats CelluScan does not decode \(\.bmp, \.tif, \.webp\): not counted and not copied$/);
  });

  it('dedup compares only decodable images and says how many it ignored', () => {
    const r = dedup(root(), { warn: () => {} });
    expect(r.images).toBe(3);
    expect(r.unreadable).toEqual([]);
    expect(r.ignored).toHaveLength(3);
    expect(formatDedup(r)).toMatch(/^3 images in .*; 3 files in formats CelluScan does not decode \(\.bmp, \.tif, \.webp\) ignored$/m);
  });
});

describe('--val-fraction', () => {
  it('must be in [0, 1): 1 would leave one training image per class', () => {
    const root = join(tmp, 'valfrac');
    const files: Record<string, string | null> = {};
    for (let i = 0; i < 4; i++) files[`a/${i}.png`] = files[`b/${i}.png`] = null;
    writeTree(root, files);
    for (const f of [1, 1.5, -0.1, NaN]) {
      expect(() => openSplits({ data: root, valFraction: f })).toThrow(/--val-fraction must be in \[0, 1\)/);
      expect(() => stratifiedSplit(Int32Array.from([0, 0, 1, 1]), f, 0)).toThrow(/--val-fraction must be in \[0, 1\)/);
    }
    expect(openSplits({ data: root, valFraction: 0.5 }).train.length).toBe(4);
    expect(openSplits({ data: root, valFraction: 0 }).val).toBeUndefined();
    expectError(cli('info', root, '--val-fraction', '1'), /^celluscan: --val-fraction must be in \[0, 1\) .*got 1$/);
  });
});

describe('the image cache key', () => {
  it('a file replaced by one of the same size with its old mtime restored (cp -p, rsync -a) changes the fingerprint', async () => {
    const { FolderDataset } = await import('../src/train/data.js');
    const { statSync, utimesSync, renameSync } = await import('node:fs');
    const root = mkdtempSync(join(tmpdir(), 'cache-key-'));
    try {
      mkdirSync(join(root, 'a'));
      const f = join(root, 'a', 'x.png');
      writeFileSync(f, png(1));
      utimesSync(f, 1_700_000_000, 1_700_000_000); // whole seconds: restored exactly below
      const before = FolderDataset.open(root).fingerprint();
      const st = statSync(f);
      const other = join(root, 'y.tmp');
      writeFileSync(other, Buffer.from(png(1)).reverse()); // other bytes, the same size
      expect(statSync(other).size).toBe(st.size);
      renameSync(other, f);
      utimesSync(f, 1_700_000_000, 1_700_000_000);
      expect(statSync(f).mtimeMs).toBe(st.mtimeMs);
      expect(FolderDataset.open(root).fingerprint()).not.toBe(before);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

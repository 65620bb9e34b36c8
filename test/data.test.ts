// Datasets: ImageFolder ordering (vs torchvision itself when python3-torchvision is installed), stratified
// splits and subsets, IDX parsing (hand-made + Debian's Fashion-MNIST), corrupt/empty/missing inputs, the
// decoded-image cache, mean/std and batches.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import pngjs from 'pngjs';
import {
  batches,
  classCounts,
  comparePython,
  FolderDataset,
  listImageFolder,
  loadData,
  loadSplit,
  makeBatch,
  openSplits,
  stratifiedSplit,
  stratifiedSubset,
} from '../src/train/data.js';
import { parseIdx, readFashionMnist, readIdxImages } from '../src/train/idx.js';
import { prepareDataset } from '../src/train/cache.js';
import { Rng } from '../src/train/augment.js';
import { dedup, dHash, formatDedup, hamming } from '../src/train/dedup.js';
import { balance, formatBalance } from '../src/train/balance.js';
import { decodeImage } from '../src/vit/decode.js';

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'celluscan-data-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A w×h RGB PNG whose pixels depend on `seed`. */
function png(w: number, h: number, seed: number): Buffer {
  const p = new pngjs.PNG({ width: w, height: h });
  for (let i = 0; i < w * h; i++) {
    p.data[4 * i] = (seed * 37 + i * 3) & 255;
    p.data[4 * i + 1] = (seed * 11 + i * 7) & 255;
    p.data[4 * i + 2] = (seed * 5 + i) & 255;
    p.data[4 * i + 3] = 255;
  }
  return pngjs.PNG.sync.write(p);
}

function writeFolder(root: string, spec: Record<string, string[]>, size = [6, 4]): void {
  let seed = 1;
  for (const [cls, files] of Object.entries(spec)) {
    mkdirSync(join(root, cls), { recursive: true });
    for (const f of files) {
      mkdirSync(join(root, cls, f, '..'), { recursive: true });
      writeFileSync(join(root, cls, f), f.endsWith('.txt') ? 'not an image' : png(size[0], size[1], seed++));
    }
  }
}

// Debian's python3-torchvision lives in /usr/bin/python3's dist-packages (a pyenv python3 on PATH may lack it).
const PYTHON = [process.env.PYTHON, '/usr/bin/python3', 'python3'].find((p) => p && spawnSync(p, ['-c', 'import importlib.util as u, sys; sys.exit(u.find_spec("torchvision") is None)'], { stdio: 'ignore' }).status === 0);
const hasTorchvision = PYTHON !== undefined;

describe('ImageFolder ordering', () => {
  it('sorts strings by code point like Python', () => {
    const xs = ['b', 'a', 'B', 'A', '10', '9', '_x', 'é', 'ｚ', '😀', 'a b', 'a/b'];
    // JS's default sort compares UTF-16 units and would put the emoji (D83D…) before 'ｚ' (FF5A).
    expect([...xs].sort(comparePython)).toEqual(['10', '9', 'A', 'B', '_x', 'a', 'a b', 'a/b', 'b', 'é', 'ｚ', '😀']);
  });

  it('lists classes and files as torchvision.datasets.ImageFolder does', () => {
    const root = join(tmp, 'order');
    writeFolder(root, {
      a: ['img10.png', 'img9.png', 'Img1.png', 'x.PNG', 'y.JpEg', 'notes.txt', 'sub/z.png', 'sub dir/w.png', 'sub/deeper/v.png'],
      B: ['b.png'],
      '10': ['c.png'],
      '9': ['d.jpg'],
      'ｚ': ['e.png'],
      '😀': ['f.png'],
    });
    writeFileSync(join(root, 'stray.png'), png(2, 2, 0)); // a file at the top is not a class
    const l = listImageFolder(root);
    expect(l.classes).toEqual(['10', '9', 'B', 'a', 'ｚ', '😀']);
    const rel = l.paths.map((p) => p.slice(root.length + 1));
    expect(rel.slice(3, 11)).toEqual(['a/Img1.png', 'a/img10.png', 'a/img9.png', 'a/x.PNG', 'a/y.JpEg', 'a/sub/z.png', 'a/sub dir/w.png', 'a/sub/deeper/v.png']);
    // (os.walk's roots sorted as strings: 'a/sub' < 'a/sub dir' < 'a/sub/deeper', since ' ' < '/')
    if (hasTorchvision) {
      const py = `import json,sys\nfrom torchvision.datasets import ImageFolder\nd=ImageFolder(sys.argv[1])\nprint(json.dumps({'classes':d.classes,'samples':d.samples}))`;
      const out = JSON.parse(execFileSync(PYTHON!, ['-c', py, root], { encoding: 'utf8' }));
      expect(l.classes).toEqual(out.classes);
      expect(l.paths.map((p, i) => [p, l.labels[i]])).toEqual(out.samples);
    }
  });

  it('an empty class folder and a missing folder are clear errors', () => {
    const root = join(tmp, 'empty');
    writeFolder(root, { good: ['a.png'], hollow: ['readme.txt'], void: [] });
    expect(() => listImageFolder(root)).toThrow(/empty class folders in '.*empty': 'hollow', 'void'/);
    expect(() => listImageFolder(join(tmp, 'nope'))).toThrow(/image folder '.*nope' does not exist/);
    expect(() => openSplits({ data: join(tmp, 'nope2') })).toThrow(/data folder '.*nope2' does not exist/);
    mkdirSync(join(tmp, 'noclasses'));
    expect(() => listImageFolder(join(tmp, 'noclasses'))).toThrow(/no class folders/);
  });
});

describe('splits and subsets', () => {
  const labels = Int32Array.from({ length: 1000 }, (_, i) => (i < 500 ? 0 : i < 800 ? 1 : i < 990 ? 2 : 3));
  it('stratified split: deterministic per seed, round(n·f) per class, disjoint and complete', () => {
    const a = stratifiedSplit(labels, 0.2, 7);
    const b = stratifiedSplit(labels, 0.2, 7);
    const c = stratifiedSplit(labels, 0.2, 8);
    expect(a).toEqual(b);
    expect(a.val).not.toEqual(c.val);
    const per = (idx: number[]) => [0, 1, 2, 3].map((k) => idx.filter((i) => labels[i] === k).length);
    expect(per(a.val)).toEqual([100, 60, 38, 2]);
    expect(new Set([...a.train, ...a.val]).size).toBe(1000);
    expect(a.train.length + a.val.length).toBe(1000);
    // A tiny class still gets one validation item, and keeps one for training.
    const small = Int32Array.from([0, 0, 1, 1, 1, 1, 1, 1, 1, 1]);
    const v = stratifiedSplit(small, 0.1, 0).val;
    expect([0, 1].map((k) => v.filter((i) => small[i] === k).length)).toEqual([1, 1]);
    expect(stratifiedSplit(Int32Array.from([0, 1, 1]), 0.5, 0).val.map((i) => [0, 1, 1][i])).toEqual([1]); // a 1-item class stays in train
    expect(per(stratifiedSplit(labels, 0, 0).val)).toEqual([0, 0, 0, 0]);
  });

  it('stratified subsets: 0.05, 0.2 and 1.0 of every class, seeded', () => {
    const per = (idx: number[]) => [0, 1, 2, 3].map((k) => idx.filter((i) => labels[i] === k).length);
    expect(per(stratifiedSubset(labels, 0.05, 1))).toEqual([25, 15, 10, 1]);
    expect(per(stratifiedSubset(labels, 0.2, 1))).toEqual([100, 60, 38, 2]);
    expect(stratifiedSubset(labels, 1, 1)).toEqual(Array.from({ length: 1000 }, (_, i) => i));
    expect(stratifiedSubset(labels, 0.2, 1)).toEqual(stratifiedSubset(labels, 0.2, 1));
    expect(stratifiedSubset(labels, 0.2, 1)).not.toEqual(stratifiedSubset(labels, 0.2, 2));
    expect(() => stratifiedSubset(labels, 0, 1)).toThrow(/subset must be in \(0, 1\]/);
  });

  it('finds train/val/test folders, or splits one folder', () => {
    const root = join(tmp, 'layout');
    writeFolder(join(root, 'train'), { x: ['1.png', '2.png', '3.png', '4.png'], y: ['1.png', '2.png'] });
    writeFolder(join(root, 'test'), { y: ['1.png'] });
    const s = openSplits({ data: root, valFraction: 0.25, seed: 3 });
    expect(s.classes).toEqual(['x', 'y']);
    expect(classCounts(s.train)).toEqual([3, 1]);
    expect(classCounts(s.val!)).toEqual([1, 1]);
    expect(Array.from(s.test!.labels)).toEqual([1]); // labels by the training set's class names
    writeFolder(join(root, 'val'), { x: ['v.png'] });
    const t = openSplits({ data: root });
    expect(t.train.length).toBe(6);
    expect(Array.from(t.val!.labels)).toEqual([0]);
    writeFolder(join(root, 'val'), { zz: ['v.png'] });
    expect(() => openSplits({ data: root })).toThrow(/class folders the training set lacks: zz/);
  });
});

describe('IDX files', () => {
  function idx(magicType: number, dims: number[], data: number[]): Uint8Array {
    const b = Buffer.alloc(4 + 4 * dims.length + data.length);
    b[2] = magicType;
    b[3] = dims.length;
    dims.forEach((d, i) => b.writeUInt32BE(d, 4 + 4 * i));
    Buffer.from(data).copy(b, 4 + 4 * dims.length);
    return new Uint8Array(b);
  }

  it('parses a tiny hand-made gzipped IDX pair', () => {
    const dir = join(tmp, 'idx');
    mkdirSync(dir);
    const pixels = Array.from({ length: 3 * 2 * 2 }, (_, i) => i * 10);
    writeFileSync(join(dir, 'train-images-idx3-ubyte.gz'), gzipSync(idx(8, [3, 2, 2], pixels)));
    writeFileSync(join(dir, 'train-labels-idx1-ubyte.gz'), gzipSync(idx(8, [3], [2, 0, 9])));
    writeFileSync(join(dir, 't10k-images-idx3-ubyte'), idx(8, [1, 2, 2], [1, 2, 3, 4])); // not gzipped: also read
    writeFileSync(join(dir, 't10k-labels-idx1-ubyte'), idx(8, [1], [5]));
    const d = readIdxImages(dir, 'train');
    expect([d.count, d.rows, d.cols]).toEqual([3, 2, 2]);
    expect(Array.from(d.images)).toEqual(pixels);
    expect(Array.from(d.labels)).toEqual([2, 0, 9]);
    const s = openSplits({ data: `fashion-mnist:${dir}`, valFraction: 0 });
    expect(s.classes[9]).toBe('Ankle boot');
    const g = s.train.get(0);
    expect([g.width, g.height, g.channels, g.label, ...g.image]).toEqual([2, 2, 1, 2, 0, 10, 20, 30]);
    expect([s.test!.length, s.test!.get(0).label]).toEqual([1, 5]);
  });

  it('rejects bad magic, types, sizes and mismatched pairs with clear errors', () => {
    expect(() => parseIdx(new Uint8Array([1, 2, 3, 4, 5]), 'f')).toThrow(/f: not an IDX file \(magic starts 01 02 03 04/);
    expect(() => parseIdx(idx(0x0d, [1], [0, 0, 0, 0]), 'f')).toThrow(/data type 0xd \(float\) is not supported/);
    expect(() => parseIdx(idx(8, [2, 3], [1, 2, 3]), 'f')).toThrow(/dims \[2, 3\] need 6 data bytes, file has 3/);
    expect(() => parseIdx(new Uint8Array([0x1f, 0x8b, 1, 2, 3]), 'f')).toThrow(/f: corrupt gzip data/);
    const dir = join(tmp, 'idx-bad');
    mkdirSync(dir);
    writeFileSync(join(dir, 't10k-images-idx3-ubyte'), idx(8, [2, 1, 1], [1, 2]));
    writeFileSync(join(dir, 't10k-labels-idx1-ubyte'), idx(8, [3], [1, 2, 3]));
    expect(() => readIdxImages(dir, 't10k')).toThrow(/3 labels but .* has 2 images/);
    writeFileSync(join(dir, 't10k-labels-idx1-ubyte'), idx(8, [2], [1, 12]));
    expect(() => readIdxImages(dir, 't10k')).toThrow(/label 12 at index 1 is out of range/);
    expect(() => readIdxImages(join(tmp, 'none'), 'train')).toThrow(/train-images-idx3-ubyte.gz not found/);
  });

  it("reads Debian's Fashion-MNIST (60000 + 10000)", () => {
    // Required, never skipped: `npm test` installs dataset-fashion-mnist (scripts/setup.sh --test).
    if (!existsSync('/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz')) throw new Error('Fashion-MNIST is missing: apt-get install dataset-fashion-mnist');
    const tr = readFashionMnist('train');
    const te = readFashionMnist('test');
    expect([tr.count, tr.rows, tr.cols, te.count, te.rows, te.cols]).toEqual([60000, 28, 28, 10000, 28, 28]);
    expect(new Set(tr.labels).size).toBe(10);
    const s = openSplits({ data: 'fashion-mnist', valFraction: 0.1, subset: 0.05, seed: 0 });
    expect(classCounts(s.train)).toEqual(new Array(10).fill(270)); // 5400 per class after the split, 5 % of it
    expect(classCounts(s.val!)).toEqual(new Array(10).fill(30));
    expect(classCounts(s.test!)).toEqual(new Array(10).fill(50));
  });
});

describe('decoding, the cache and batches', () => {
  it('skips and counts a corrupt image among good ones', async () => {
    const root = join(tmp, 'corrupt');
    writeFolder(root, { a: ['1.png', '2.png'], b: ['1.png', '2.png'] });
    writeFileSync(join(root, 'a', 'bad.png'), Buffer.concat([png(4, 4, 3).subarray(0, 40)])); // truncated PNG
    writeFileSync(join(root, 'b', 'text.jpg'), 'hello');
    const warnings: string[] = [];
    const d = await loadData({ data: root, imageSize: 8, valFraction: 0, cacheDir: false, warn: (m) => warnings.push(m) });
    expect(d.train.length).toBe(4);
    expect(d.skipped.map((s) => s.name.slice(root.length + 1))).toEqual(['a/bad.png', 'b/text.jpg']);
    expect(d.skipped[1].reason).toMatch(/not a PNG or JPEG/);
    expect(warnings.length).toBe(2);
    expect(warnings[0]).toMatch(/skipping corrupt image .*bad\.png: corrupt PNG/);
    expect(classCounts(d.train)).toEqual([2, 2]);
    expect(d.train.paths!.map((p) => p.slice(root.length + 1))).toEqual(['a/1.png', 'a/2.png', 'b/1.png', 'b/2.png']);
  });

  it('caches decoded images: miss, hit, invalidation when an input changes', () => {
    const root = join(tmp, 'cache');
    writeFolder(root, { a: ['1.png', '2.png'], b: ['3.png'] }, [10, 5]);
    const cacheDir = join(tmp, 'cache-dir');
    const ds = () => FolderDataset.open(root);
    const first = prepareDataset(ds(), { imageSize: 8, cacheDir });
    expect(first.cacheHit).toBe(false);
    expect(readdirSync(cacheDir)).toEqual([first.cacheFile!.slice(cacheDir.length + 1)]);
    const again = prepareDataset(ds(), { imageSize: 8, cacheDir });
    expect(again.cacheHit).toBe(true);
    expect(again.cacheFile).toBe(first.cacheFile);
    for (let i = 0; i < 3; i++) expect(again.read(i)).toEqual(first.read(i));
    // 10×5 → 8×4 centred in 8×8: rows 0, 1 and 6, 7 are padding.
    const r = again.read(0);
    expect(r.subarray(0, 2 * 8 * 3).every((v) => v === 0)).toBe(true);
    expect(r.subarray(2 * 8 * 3, 6 * 8 * 3).some((v) => v !== 0)).toBe(true);
    // Another size is another file; a changed file invalidates (and replaces) the old cache.
    expect(prepareDataset(ds(), { imageSize: 4, cacheDir }).cacheHit).toBe(false);
    writeFileSync(join(root, 'b', '3.png'), png(10, 5, 99));
    utimesSync(join(root, 'b', '3.png'), new Date(), new Date(Date.now() + 5000));
    const changed = prepareDataset(ds(), { imageSize: 8, cacheDir });
    expect(changed.cacheHit).toBe(false);
    expect(changed.cacheFile).not.toBe(first.cacheFile);
    expect(existsSync(first.cacheFile!)).toBe(false);
    expect(readdirSync(cacheDir).filter((f) => f.endsWith('.bin')).length).toBe(2); // sizes 8 and 4
    expect(readdirSync(cacheDir).some((f) => f.includes('.tmp-'))).toBe(false);
    expect(changed.read(2)).not.toEqual(first.read(2));
    // A cache file bigger than the in-memory limit is read a record at a time.
    const onDisk = prepareDataset(ds(), { imageSize: 8, cacheDir, inMemoryLimit: 10 });
    expect(onDisk.cacheHit).toBe(true);
    for (let i = 0; i < 3; i++) expect(onDisk.read(i)).toEqual(changed.read(i));
    onDisk.close();
    expect(() => onDisk.read(0)).toThrow(/already closed/);
    // A damaged cache file is rebuilt, not trusted.
    writeFileSync(changed.cacheFile!, 'garbage');
    const rebuilt = prepareDataset(ds(), { imageSize: 8, cacheDir });
    expect(rebuilt.cacheHit).toBe(false);
    expect(rebuilt.read(2)).toEqual(changed.read(2));
  });

  it('computes mean/std from the training set and makes normalised CHW batches', async () => {
    const root = join(tmp, 'batch');
    writeFolder(root, { a: ['1.png', '2.png', '3.png'], b: ['1.png', '2.png'] }, [4, 4]);
    const d = await loadData({ data: root, imageSize: 4, valFraction: 0, cacheDir: join(tmp, 'batch-cache') });
    // mean/std straight from the pixels
    const px: number[][] = [[], [], []];
    for (let i = 0; i < d.train.length; i++) d.train.read(i).forEach((v, j) => px[j % 3].push(v / 255));
    for (let c = 0; c < 3; c++) {
      const m = px[c].reduce((a, b) => a + b, 0) / px[c].length;
      const sd = Math.sqrt(px[c].reduce((a, b) => a + (b - m) ** 2, 0) / px[c].length);
      expect(d.mean[c]).toBeCloseTo(m, 12);
      expect(d.std[c]).toBeCloseTo(sd, 12);
    }
    const b = makeBatch(d.train, [4, 0], { mean: d.mean, std: d.std });
    expect(b.x.length).toBe(2 * 3 * 16);
    expect(Array.from(b.y)).toEqual([1, 0]);
    const img = d.train.read(4);
    for (let c = 0; c < 3; c++) for (let p = 0; p < 16; p++) expect(b.x[c * 16 + p]).toBeCloseTo((img[p * 3 + c] / 255 - d.mean[c]) / d.std[c], 5);
    // Epochs: every item once; the order and the augmentation depend only on (seed, epoch).
    const e1 = [...batches(d.train, { batchSize: 2, seed: 1, epoch: 0, augment: true, mean: d.mean, std: d.std })];
    const e1b = [...batches(d.train, { batchSize: 2, seed: 1, epoch: 0, augment: true, mean: d.mean, std: d.std })];
    const e2 = [...batches(d.train, { batchSize: 2, seed: 1, epoch: 1, augment: true, mean: d.mean, std: d.std })];
    expect(e1.map((x) => x.size)).toEqual([2, 2, 1]);
    expect(e1.flatMap((x) => x.indices).sort()).toEqual([0, 1, 2, 3, 4]);
    expect(e1).toEqual(e1b);
    expect(e1.map((x) => x.indices)).not.toEqual(e2.map((x) => x.indices));
    expect([...batches(d.train, { batchSize: 2, dropLast: true, mean: d.mean, std: d.std })].length).toBe(2);
    d.close();
    // One split alone, from the same cache.
    const one = await loadSplit({ data: root, imageSize: 4, valFraction: 0, split: 'train', cacheDir: join(tmp, 'batch-cache') });
    expect(one.data.cacheHit).toBe(true);
    await expect(loadSplit({ data: root, imageSize: 4, valFraction: 0, split: 'test', cacheDir: false })).rejects.toThrow(/no test split \(it has train\)/);
  });
});

describe('data tools: dedup and balance', () => {
  /** A w×h RGB PNG of seeded noise, each value + `bump` (clamped); `level` is pngjs's deflate level. */
  function noisePng(w: number, h: number, seed: number, bump = 0, level = 6): Buffer {
    const r = new Rng(seed);
    const p = new pngjs.PNG({ width: w, height: h });
    for (let i = 0; i < w * h; i++) {
      for (let k = 0; k < 3; k++) p.data[4 * i + k] = Math.min(255, 20 + r.int(200) + bump);
      p.data[4 * i + 3] = 255;
    }
    return pngjs.PNG.sync.write(p, { deflateLevel: level });
  }

  it('dedup finds exact and near duplicates, keeps the first in sorted order, and removes on request', () => {
    const root = join(tmp, 'dedup');
    mkdirSync(join(root, 'a'), { recursive: true });
    mkdirSync(join(root, 'b'), { recursive: true });
    writeFileSync(join(root, 'a', '1.png'), noisePng(32, 24, 1));
    writeFileSync(join(root, 'a', '2.png'), noisePng(32, 24, 1, 0, 1)); // same pixels, other compression
    writeFileSync(join(root, 'a', '3.png'), noisePng(32, 24, 1, 1)); // every value +1: same dHash, other pixels
    writeFileSync(join(root, 'a', '4.png'), noisePng(32, 24, 2));
    writeFileSync(join(root, 'a', 'bad.png'), 'not a png');
    writeFileSync(join(root, 'b', '0.png'), noisePng(32, 24, 2)); // an exact copy of a/4.png in another class
    writeFileSync(join(root, 'b', '5.png'), noisePng(32, 24, 3));
    const warnings: string[] = [];
    const r = dedup(root, { warn: (m) => warnings.push(m) });
    const rel = (p: string) => p.slice(root.length + 1);
    expect(r.images).toBe(7);
    expect(r.groups.map((g) => [rel(g.keep), g.duplicates.map((d) => [rel(d.path), d.kind, d.distance])])).toEqual([
      ['a/1.png', [['a/2.png', 'exact', 0], ['a/3.png', 'near', 0]]],
      ['a/4.png', [['b/0.png', 'exact', 0]]],
    ]);
    expect([r.exact, r.near, r.crossClass, r.unreadable.length, r.removed]).toEqual([2, 1, 1, 1, 0]);
    expect(warnings[0]).toMatch(/skipping unreadable image .*bad\.png: not a PNG or JPEG/);
    expect(formatDedup(r)).toMatch(/7 images in .*: 3 duplicates \(2 exact, 1 near with dHash distance ≤ 4\) in 2 groups; 1 across class folders; 1 unreadable skipped \(use --remove/);
    // Random images are far apart in dHash; an image is at distance 0 from itself.
    expect(hamming(dHash({ width: 2, height: 2, data: new Uint8Array(12) }), [0, 0])).toBe(0);
    const removed = dedup(root, { remove: true, warn: () => {} });
    expect(removed.removed).toBe(3);
    expect(readdirSync(join(root, 'a')).sort()).toEqual(['1.png', '4.png', 'bad.png']);
    expect(readdirSync(join(root, 'b'))).toEqual(['5.png']);
    expect(dedup(root, { warn: () => {} }).groups).toEqual([]);
    expect(() => dedup(root, { threshold: 64 })).toThrow(/threshold must be an integer 0..63/);
  });

  it('balance tops up minority classes with seeded augmented copies and copies the rest', () => {
    const root = join(tmp, 'bal');
    mkdirSync(join(root, 'few'), { recursive: true });
    mkdirSync(join(root, 'many'), { recursive: true });
    for (let i = 0; i < 2; i++) writeFileSync(join(root, 'few', `f${i}.png`), noisePng(12, 10, 10 + i));
    writeFileSync(join(root, 'few', 'broken.jpg'), 'no');
    for (let i = 0; i < 6; i++) writeFileSync(join(root, 'many', `m${i}.png`), noisePng(8, 8, 20 + i));
    const warnings: string[] = [];
    const r = balance(root, { minPerClass: 6, out: join(tmp, 'bal-out'), seed: 3, warn: (m) => warnings.push(m) });
    expect(r.classes.map((c) => [c.name, c.before, c.generated, c.after, c.unreadable.length])).toEqual([
      ['few', 3, 3, 6, 1],
      ['many', 6, 0, 6, 0],
    ]);
    expect(warnings).toHaveLength(1);
    expect(readdirSync(join(tmp, 'bal-out', 'few')).sort()).toEqual(['broken.jpg', 'f0.png', 'f0_aug0.png', 'f0_aug1.png', 'f1.png', 'f1_aug0.png']);
    expect(readdirSync(join(tmp, 'bal-out', 'many')).sort()).toEqual(['m0.png', 'm1.png', 'm2.png', 'm3.png', 'm4.png', 'm5.png']);
    const aug = decodeImage(new Uint8Array(readFileSync(join(tmp, 'bal-out', 'few', 'f0_aug0.png'))));
    expect([aug.width, aug.height]).toEqual([12, 10]);
    expect(readFileSync(join(tmp, 'bal-out', 'many', 'm3.png')).equals(readFileSync(join(root, 'many', 'm3.png')))).toBe(true);
    // The same seed gives the same files.
    balance(root, { minPerClass: 6, out: join(tmp, 'bal-out2'), seed: 3, warn: () => {} });
    for (const f of ['f0_aug0.png', 'f0_aug1.png', 'f1_aug0.png']) {
      expect(readFileSync(join(tmp, 'bal-out2', 'few', f)).equals(readFileSync(join(tmp, 'bal-out', 'few', f)))).toBe(true);
    }
    expect(formatBalance(r)).toMatch(/copied 9 images, generated 3 augmented ones so every class has at least 6 \(seed 3\)/);
    expect(() => balance(root, { minPerClass: 6, out: join(tmp, 'bal-out') })).toThrow(/already exists and is not empty/);
    expect(() => balance(root, { minPerClass: 6, out: join(root, 'x') })).toThrow(/must not be inside/);
  });

  it('the CLI prints one JSON object, or a one-line error', () => {
    const root = join(tmp, 'cli');
    mkdirSync(join(root, 'a'), { recursive: true });
    writeFileSync(join(root, 'a', '1.png'), noisePng(8, 8, 1));
    writeFileSync(join(root, 'a', '2.png'), noisePng(8, 8, 1));
    const cli = (...args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'data', ...args], { encoding: 'utf8' });
    const ok = cli('dedup', root, '--json');
    expect(ok.status).toBe(0);
    const j = JSON.parse(ok.stdout);
    expect([j.images, j.exact, j.near]).toEqual([2, 1, 0]);
    const bad = cli('balance', join(tmp, 'missing'), '--min-per-class', '3', '--out', join(tmp, 'o'));
    expect(bad.status).toBe(1);
    expect(bad.stderr.trim()).toMatch(/^celluscan: image folder '.*missing' does not exist$/);
  });
});
